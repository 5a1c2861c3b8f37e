//! The exports checked by the reference tools: `in-toto-verify` (in-toto 3.1.0),
//! securesystemslib's DSSE API and the in-toto-attestation 0.9.3 protobuf models.
//!
//! Runs when `FLOW_INTOTO_VENV` names a venv made with
//! `python3 -m venv V && V/bin/pip install 'in-toto==3.1.0' 'in-toto-attestation==0.9.3'`;
//! with the variable set, a missing tool or a failed check FAILS the test. Without it, each
//! test prints that it did not run, and why.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Tamper, copy_dir, demo, find, read_envelope, write_envelope};
use flow_provenance::verify::{Bundle, VerifyOptions, verify};

struct Venv {
    bin: PathBuf,
}

fn venv(test: &str) -> Option<Venv> {
    let Some(dir) = std::env::var_os("FLOW_INTOTO_VENV") else {
        // Straight to the stderr handle: libtest captures `println!`/`eprintln!` of passing
        // tests, and this line must be seen in every log.
        let _ = writeln!(
            std::io::stderr(),
            "python_tools::{test}: NOT RUN: FLOW_INTOTO_VENV is not set; set it to a venv with \
             in-toto==3.1.0 and in-toto-attestation==0.9.3 to check exports with the reference tools"
        );
        return None;
    };
    let bin = PathBuf::from(dir).join("bin");
    for tool in ["python", "in-toto-verify", "in-toto-run"] {
        assert!(
            bin.join(tool).exists(),
            "FLOW_INTOTO_VENV is set but {} is missing",
            bin.join(tool).display()
        );
    }
    Some(Venv { bin })
}

fn show(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

impl Venv {
    fn run(&self, tool: &str, args: &[&str], cwd: &Path) -> Output {
        Command::new(self.bin.join(tool))
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"))
    }

    /// `in-toto-verify` on an export, with `key` (default: the export's owner.pub).
    fn in_toto_verify(&self, dir: &Path, key: Option<&Path>) -> Output {
        let key = key
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.join("owner.pub"));
        let key = key.to_string_lossy().into_owned();
        self.run(
            "in-toto-verify",
            &[
                "--layout",
                "root.layout",
                "--verification-keys",
                &key,
                "--link-dir",
                ".",
            ],
            dir,
        )
    }

    fn check_statements(&self, dir: &Path, key: &Path) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_statement.py");
        let mut args = vec![
            script.to_string_lossy().into_owned(),
            key.to_string_lossy().into_owned(),
        ];
        let mut statements: Vec<String> = std::fs::read_dir(dir)
            .expect("read export")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.to_string_lossy().ends_with(".intoto.json"))
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        statements.sort();
        assert_eq!(statements.len(), 3, "one statement per step");
        args.extend(statements);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run("python", &args, dir)
    }
}

fn flow_verify(dir: &Path) -> flow_provenance::Report {
    verify(
        &Bundle::read_dir(dir).expect("readable export"),
        &VerifyOptions::default(),
    )
}

#[test]
fn in_toto_verify_accepts_a_real_run() {
    let Some(venv) = venv("in_toto_verify_accepts_a_real_run") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let demo = demo::build(tmp.path()).expect("demo");
    let output = venv.in_toto_verify(&demo.export, None);
    assert!(
        output.status.success(),
        "in-toto-verify rejected a real run:\n{}",
        show(&output)
    );
    assert!(flow_verify(&demo.export).is_ok());
}

#[test]
fn statements_verify_and_parse_strictly() {
    let Some(venv) = venv("statements_verify_and_parse_strictly") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let demo = demo::build(tmp.path()).expect("demo");
    let output = venv.check_statements(&demo.export, &demo.export.join("owner.pub"));
    assert!(
        output.status.success(),
        "statement check failed:\n{}",
        show(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        3,
        "{stdout}"
    );

    // The wrong key, and a changed statement payload, are refused by securesystemslib.
    let output = venv.check_statements(&demo.export, &demo.other.public_key);
    assert!(
        !output.status.success(),
        "a statement verified with the wrong key:\n{}",
        show(&output)
    );
    let dir = copy_dir(&demo.export, &tmp.path().join("statement-edited"));
    let path = dir.join("b.intoto.json");
    let mut env = read_envelope(&path);
    env.payload = String::from_utf8_lossy(&env.payload)
        .replace("run-0001/b", "run-0002/b")
        .into_bytes();
    write_envelope(&path, &env);
    let output = venv.check_statements(&dir, &dir.join("owner.pub"));
    assert!(
        !output.status.success(),
        "a changed statement verified:\n{}",
        show(&output)
    );
    assert!(!flow_verify(&dir).is_ok());
}

#[test]
fn every_tamper_fails_both_verifiers() {
    let Some(venv) = venv("every_tamper_fails_both_verifiers") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let demo = demo::build(&tmp.path().join("run")).expect("demo");

    let mut cases: Vec<(String, PathBuf, Option<PathBuf>)> = Vec::new();
    for tamper in Tamper::ALL {
        let dir = copy_dir(&demo.export, &tmp.path().join(format!("{tamper:?}")));
        tamper.apply(&dir);
        cases.push((format!("{tamper:?}"), dir, None));
    }
    let changed = demo::build_with(&tmp.path().join("changed-artifact"), true).expect("demo");
    cases.push((
        "changed artifact between steps".into(),
        changed.export.clone(),
        None,
    ));
    cases.push((
        "wrong key".into(),
        demo.export.clone(),
        Some(demo.other.public_key.clone()),
    ));

    for (name, dir, key) in cases {
        let output = venv.in_toto_verify(&dir, key.as_deref());
        assert!(
            !output.status.success(),
            "in-toto-verify accepted tamper {name}:\n{}",
            show(&output)
        );
        println!(
            "{name}: in-toto-verify: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let report = match &key {
            Some(key) => {
                let trusted = flow_provenance::keys::load_public_key(key).expect("key");
                let bundle = Bundle::read_dir(&dir).expect("readable export");
                verify(
                    &bundle,
                    &VerifyOptions {
                        trusted_owner: Some(trusted),
                        ..Default::default()
                    },
                )
            }
            None => flow_verify(&dir),
        };
        assert!(!report.is_ok(), "flow verify accepted tamper {name}");
        println!("{name}: flow verify: {}", report.failures[0]);
    }
}

#[test]
fn in_toto_run_reads_our_private_key_and_agrees_on_the_keyid() {
    let Some(venv) = venv("in_toto_run_reads_our_private_key_and_agrees_on_the_keyid") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = flow_provenance::SigningKey::generate().expect("key");
    let paths =
        flow_provenance::keys::write_key_pair(&tmp.path().join("keys"), &key).expect("write");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::write(work.join("f"), b"x").expect("write");
    let key_path = paths.private_key.to_string_lossy().into_owned();
    let output = venv.run(
        "in-toto-run",
        &[
            "--step-name",
            "x",
            "--signing-key",
            &key_path,
            "--use-dsse",
            "--materials",
            "f",
            "--products",
            "f",
            "--",
            "true",
        ],
        &work,
    );
    assert!(
        output.status.success(),
        "in-toto-run refused our key:\n{}",
        show(&output)
    );
    let link = find(&work, "x.", ".link");
    let expected_name = flow_provenance::link::link_file_name("x", key.keyid());
    assert_eq!(
        link.file_name().map(|n| n.to_string_lossy().into_owned()),
        Some(expected_name)
    );
    let env = read_envelope(&link);
    assert_eq!(env.signatures[0].keyid, key.keyid());
    env.verify(std::slice::from_ref(key.public_key()))
        .expect("our verifier accepts in-toto-run's DSSE link");
}

#[test]
fn canonical_json_matches_securesystemslib() {
    let Some(venv) = venv("canonical_json_matches_securesystemslib") else {
        return;
    };
    let value = serde_json::json!({
        "z": [1, -2, {"é": "q\"uo\\te", "a": null}], "A": true, "𝄞": "tab\tnl\n", "": false,
        "big": 18446744073709551615u64, "nested": {"b": [], "a": {}}
    });
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("value.json");
    std::fs::write(&input, serde_json::to_vec(&value).expect("json")).expect("write");
    let script = "import json,sys\nfrom securesystemslib.formats import encode_canonical\n\
                  sys.stdout.buffer.write(encode_canonical(json.load(open(sys.argv[1], encoding='utf-8'))).encode('utf-8'))";
    let output = venv.run(
        "python",
        &["-c", script, &input.to_string_lossy()],
        tmp.path(),
    );
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        flow_provenance::cjson::to_string(&value).expect("canonical")
    );
}
