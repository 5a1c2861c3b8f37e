//! Signed provenance (issue 3): keys, a record for every step, the export
//! checked by the reference in-toto tools, and tampering that both `flow verify`
//! and `in-toto-verify` must notice.
//!
//! The reference tools come from a venv named by `FLOW_INTOTO_VENV`
//! (`pip install 'in-toto==3.1.0' 'in-toto-attestation==0.9.3'`; CI always sets
//! it). Without it, the parts that need them print `NOT RUN: FLOW_INTOTO_VENV is
//! not set` on stderr and are skipped; with it, a tool that fails fails the test.
//!
//! Not covered here: a file changed on disk after the run. Neither `in-toto-verify`
//! (it verifies the recorded links, not the files) nor `flow verify` (same) looks at
//! the workspace after the fact; what they prove is that the record is the one the
//! engine signed, and a file changed *between two steps* shows up as a material that
//! does not match its producer (see `a_changed_artifact_resigned_...`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flow_provenance::{Envelope, PublicKey, SigningKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::session::{Output, Session, run_id};

/// a writes a.txt; b (granted ./input, read-only) reads a.txt, lists ./input and
/// writes b.txt; c reads b.txt. `READ_IN_B` is what b reads.
const CHAIN: &str = r#"version: 1
name: chain
steps:
  a:
    uses: ./fs_probe.wasm
    with: { write: a.txt, content: from a }
  b:
    uses: ./fs_probe.wasm
    needs: [a]
    with: { read: READ_IN_B, list: INPUT_DIR, write: b.txt, content: from b }
    grants:
      fs:
        - { path: ./input, access: read }
  c:
    uses: ./fs_probe.wasm
    needs: [b]
    with: { read: b.txt }
"#;

const CONFIG: &str = "input data\n";

/// A session holding the chain pipeline (b reading `read_in_b`) and its input dir.
/// No signing key is configured: runs use (or create) the data dir's key.
fn chain_session(read_in_b: &str) -> Session {
    let session = Session::without_signing_key();
    session.plugin("fs_probe").file("input/config.txt", CONFIG);
    let input = session.path("input").display().to_string();
    session.file(
        "flow.yaml",
        CHAIN
            .replace("READ_IN_B", read_in_b)
            .replace("INPUT_DIR", &input),
    );
    session
}

/// Run `flow.yaml` and return the run id; `code` is the expected exit code.
fn run(session: &Session, code: i32) -> (String, Output) {
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_code(code);
    (run_id(&out.stdout), out)
}

/// A session whose chain ran and succeeded, with the data dir's key created.
fn succeeded_chain() -> (Session, String) {
    let session = chain_session("a.txt");
    let (run, _) = run(&session, 0);
    (session, run)
}

/// `flow attest export last --out <name>`; returns the directory.
pub(crate) fn export(session: &Session, name: &str) -> PathBuf {
    let out = session
        .flow(["attest", "export", "last", "--out", name])
        .run();
    out.expect_success();
    session.path(name)
}

fn sha256_hex(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The user's own public key (created by the first run).
fn user_key(session: &Session) -> PublicKey {
    flow_provenance::keys::load_public_key(&session.user_key_dir().join("signing-key.pub"))
        .expect("the user's public key")
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn read_envelope(path: &Path) -> Envelope {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Envelope::from_json(&bytes)
        .unwrap_or_else(|e| panic!("{}: not an envelope: {e}", path.display()))
}

fn write_envelope(path: &Path, envelope: &Envelope) {
    std::fs::write(path, envelope.to_json())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn payload_json(envelope: &Envelope) -> Value {
    serde_json::from_slice(&envelope.payload).expect("a JSON payload")
}

/// `<step>.<keyid[:8]>.link`.
fn link_name(step: &str, key: &PublicKey) -> String {
    format!("{step}.{}.link", &key.keyid()[..8])
}

/// `flow attest show --json last`: one object per step, in execution order.
fn show_json(session: &Session) -> Vec<Value> {
    let out = session.flow(["--json", "attest", "show", "last"]).run();
    out.expect_success();
    out.json_lines()
}

fn decode_payload(envelope: &Value) -> Value {
    let envelope = Envelope::from_json(envelope.to_string().as_bytes()).expect("an envelope");
    payload_json(&envelope)
}

// ---------------------------------------------------------------------------
// The reference tools.

/// The venv with in-toto 3.1.0 and in-toto-attestation, or `None` (after saying
/// so on stderr) when `FLOW_INTOTO_VENV` is not set.
pub(crate) fn venv(what: &str) -> Option<PathBuf> {
    match std::env::var_os("FLOW_INTOTO_VENV").filter(|v| !v.is_empty()) {
        None => {
            eprintln!("NOT RUN: FLOW_INTOTO_VENV is not set ({what})");
            None
        }
        Some(dir) => {
            let dir = PathBuf::from(dir);
            for tool in ["in-toto-verify", "python"] {
                assert!(
                    dir.join("bin").join(tool).exists(),
                    "FLOW_INTOTO_VENV={} has no bin/{tool}; create it with `pip install 'in-toto==3.1.0' 'in-toto-attestation==0.9.3'`",
                    dir.display()
                );
            }
            Some(dir)
        }
    }
}

/// What a reference tool did.
pub(crate) struct ToolRun {
    pub(crate) ok: bool,
    pub(crate) text: String,
}

/// Run a command to completion within a minute (fails the test otherwise).
fn run_tool(mut command: Command) -> ToolRun {
    let described = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {described}: {e}"));
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{described} did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("collect output");
    ToolRun {
        ok: out.status.success(),
        text: format!(
            "{described}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// `in-toto-verify --layout DIR/root.layout --verification-keys KEY --link-dir DIR`.
pub(crate) fn in_toto_verify(venv: &Path, dir: &Path, key: &Path) -> ToolRun {
    let mut command = Command::new(venv.join("bin/in-toto-verify"));
    command
        .arg("--layout")
        .arg(dir.join("root.layout"))
        .arg("--verification-keys")
        .arg(key)
        .arg("--link-dir")
        .arg(dir)
        .current_dir(dir);
    run_tool(command)
}

/// The last run verifies with `flow verify`, and its export with `in-toto-verify`
/// (when `FLOW_INTOTO_VENV` is set; `what` names the run in the notice otherwise).
pub(crate) fn verify_last_with_both_tools(session: &crate::session::Session, what: &str) {
    session.flow(["verify", "last"]).run().expect_success();
    session
        .flow(["attest", "export", "last", "--out", "export"])
        .run()
        .expect_success();
    if let Some(venv) = venv(what) {
        let dir = session.path("export");
        let checked = in_toto_verify(&venv, &dir, &dir.join("owner.pub"));
        assert!(checked.ok, "in-toto-verify: {}", checked.text);
    }
}

/// engine/provenance/tests/python/check_statement.py: securesystemslib's DSSE
/// verification and strict parsing with in-toto-attestation's Statement v1 and
/// SLSA Provenance v1 models.
pub(crate) fn check_statements(venv: &Path, key: &Path, statements: &[PathBuf]) -> ToolRun {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../provenance/tests/python/check_statement.py");
    let mut command = Command::new(venv.join("bin/python"));
    command.arg(script).arg(key).args(statements);
    run_tool(command)
}

pub(crate) fn statements_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the export")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".intoto.json"))
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------
// 1. Keys.

#[test]
fn the_first_run_creates_the_signing_key_and_says_so_once() {
    let session = chain_session("a.txt");
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_code(0);
    let keys = session.user_key_dir();
    let key = user_key(&session);
    assert_eq!(
        session.normalize(&out.stderr),
        format!(
            "note: created your signing key SESSION/home/.local/share/flow/keys/signing-key.pem (key id {}); every run's provenance is signed with it\n",
            &key.keyid()[..16]
        )
    );
    assert_eq!(
        mode(&keys.join("signing-key.pem")),
        0o600,
        "the private key's mode"
    );
    assert_eq!(mode(&keys), 0o700, "the key directory's mode");
    assert!(
        !session.data_dir().join("keys").exists(),
        "no key in the data dir"
    );
    // The pair is a pair: the private key's public half is the .pub file.
    let private = flow_provenance::keys::load_signing_key(&keys.join("signing-key.pem"))
        .expect("a PKCS#8 key");
    assert_eq!(private.public_key(), &key);

    // The second run signs with the same key and says nothing about it.
    let second = session.flow(["run", "flow.yaml"]).run();
    second.expect_success();
    let shown = session.flow(["attest", "show", "last", "a"]).run();
    shown.expect_success();
    assert!(
        shown
            .stdout
            .contains(&format!("  signed by  {}\n", key.keyid())),
        "{}",
        shown.stdout
    );
    let verified = session.flow(["verify", "last"]).run();
    verified.expect_success();
    assert_eq!(
        session.normalize(&verified.stdout),
        "run RUN: verified: a (succeeded), b (succeeded), c (succeeded)\n"
    );
}

/// `flow keys generate --out DIR` output with the key id as `KEYID`.
fn generated(session: &Session, out: &Output) -> (String, String) {
    let keyid = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("key id       "))
        .unwrap_or_else(|| panic!("no key id in:\n{}", out.stdout))
        .to_string();
    (
        session.normalize(&out.stdout.replace(&keyid, "KEYID")),
        keyid,
    )
}

#[test]
fn keys_generate_writes_a_pair_and_never_replaces_it() {
    let session = Session::without_signing_key();
    let out = session.flow(["keys", "generate", "--out", "k"]).run();
    out.expect_success();
    let (text, keyid) = generated(&session, &out);
    assert_eq!(
        text,
        "private key  k/signing-key.pem (mode 0600)\npublic key   k/signing-key.pub\nkey id       KEYID\n"
    );
    assert_eq!(
        mode(&session.path("k/signing-key.pem")),
        0o600,
        "the private key's mode"
    );
    let public = flow_provenance::keys::load_public_key(&session.path("k/signing-key.pub"))
        .expect("a public key");
    assert_eq!(public.keyid(), keyid);
    // securesystemslib's key id: sha256 of the canonical JSON of the public key.
    let canonical = format!(
        r#"{{"keytype":"ed25519","keyval":{{"public":"{}"}},"scheme":"ed25519"}}"#,
        hex::encode(public.as_bytes())
    );
    assert_eq!(keyid, sha256_hex(canonical));

    // A second generate into the same place refuses, and leaves the key alone.
    let before = std::fs::read(session.path("k/signing-key.pem")).unwrap();
    let again = session.flow(["keys", "generate", "--out", "k"]).run();
    again.expect_code(2);
    assert_eq!(again.stdout, "");
    assert_eq!(
        again.stderr,
        "error: k/signing-key.pem already exists; flow keys generate never replaces a key (move it away or choose another --out)\n"
    );
    assert_eq!(
        std::fs::read(session.path("k/signing-key.pem")).unwrap(),
        before
    );
    assert_eq!(mode(&session.path("k/signing-key.pem")), 0o600);

    // Without --out it is the user's own key, which runs then use without a note.
    let default = session.flow(["keys", "generate"]).run();
    default.expect_success();
    let (text, keyid) = generated(&session, &default);
    assert_eq!(
        text,
        "private key  SESSION/home/.local/share/flow/keys/signing-key.pem (mode 0600)\npublic key   SESSION/home/.local/share/flow/keys/signing-key.pub\nkey id       KEYID\n"
    );
    assert_eq!(mode(&session.user_key_dir().join("signing-key.pem")), 0o600);
    session.plugin("fs_probe").file("input/config.txt", CONFIG);
    let input = session.path("input").display().to_string();
    session.file(
        "flow.yaml",
        CHAIN
            .replace("READ_IN_B", "a.txt")
            .replace("INPUT_DIR", &input),
    );
    session.flow(["run", "flow.yaml"]).run().expect_success();
    let shown = session.flow(["attest", "show", "last", "c"]).run();
    shown.expect_success();
    assert!(
        shown.stdout.contains(&format!("  signed by  {keyid}\n")),
        "{}",
        shown.stdout
    );
}

#[test]
fn the_signing_key_comes_from_the_flag_or_the_environment() {
    let session = chain_session("a.txt");
    let (_, flag_id) = generated(
        &session,
        &session.flow(["keys", "generate", "--out", "k1"]).run(),
    );
    let (_, env_id) = generated(
        &session,
        &session.flow(["keys", "generate", "--out", "k2"]).run(),
    );

    let by_flag = session
        .flow(["run", "flow.yaml", "--signing-key", "k1/signing-key.pem"])
        .run();
    by_flag.expect_success();
    assert!(
        !session.user_key_dir().join("signing-key.pem").exists(),
        "a configured key must not create the user's"
    );
    let links: Vec<String> = show_json(&session)
        .iter()
        .map(|s| s["link_file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        links,
        [0, 1, 2].map(|i| format!("{}.{}.link", ["a", "b", "c"][i], &flag_id[..8]))
    );
    let shown = session.flow(["attest", "show", "last", "b"]).run();
    assert!(
        shown.stdout.contains(&format!("  signed by  {flag_id}\n")),
        "{}",
        shown.stdout
    );
    // The right key verifies it; another does not.
    session
        .flow(["verify", "last", "--key", "k1/signing-key.pub"])
        .run()
        .expect_success();
    let wrong = session
        .flow(["verify", "last", "--key", "k2/signing-key.pub"])
        .run();
    wrong.expect_code(1);
    assert!(
        wrong.stdout.contains(&format!(
            "owner.pub: owner key {flag_id} is not the trusted key {env_id}\n"
        )),
        "{}",
        wrong.stdout
    );

    let by_env = session
        .flow(["run", "flow.yaml"])
        .env("FLOW_SIGNING_KEY", session.path("k2/signing-key.pem"))
        .run();
    by_env.expect_success();
    for step in show_json(&session) {
        assert_eq!(step["link"]["signatures"][0]["keyid"], env_id.as_str());
        assert_eq!(step["statement"]["signatures"][0]["keyid"], env_id.as_str());
    }
    session
        .flow(["verify", "last", "--key", "k2/signing-key.pub"])
        .run()
        .expect_success();

    // The flag wins over the environment.
    session
        .flow(["run", "flow.yaml", "--signing-key", "k1/signing-key.pem"])
        .env("FLOW_SIGNING_KEY", session.path("k2/signing-key.pem"))
        .run()
        .expect_success();
    assert_eq!(
        show_json(&session)[0]["link"]["signatures"][0]["keyid"],
        flag_id.as_str()
    );
}

#[test]
fn a_bad_signing_key_is_refused_before_anything_runs() {
    let session = chain_session("a.txt");
    session.file("junk.pem", "not a key\n");
    let junk = session
        .flow(["run", "flow.yaml", "--signing-key", "junk.pem"])
        .run();
    junk.expect_code(2);
    assert_eq!(junk.stdout, "");
    assert!(
        junk.stderr.starts_with(
            "error: cannot load the signing key junk.pem: not an ed25519 PKCS#8 PEM private key: "
        ) && junk.stderr.ends_with('\n')
            && junk.stderr.lines().count() == 1,
        "{}",
        junk.stderr
    );

    // A public key is not a signing key.
    session
        .flow(["keys", "generate", "--out", "k"])
        .run()
        .expect_success();
    let public = session
        .flow(["run", "flow.yaml"])
        .env("FLOW_SIGNING_KEY", session.path("k/signing-key.pub"))
        .run();
    public.expect_code(2);
    assert!(
        public.stderr.starts_with(&format!(
            "error: cannot load the signing key {}: not an ed25519 PKCS#8 PEM private key: ",
            session.path("k/signing-key.pub").display()
        )),
        "{}",
        public.stderr
    );

    let missing = session
        .flow(["run", "flow.yaml", "--signing-key", "nowhere.pem"])
        .run();
    missing.expect_code(2);
    assert_eq!(
        missing.stderr,
        "error: cannot load the signing key nowhere.pem: nowhere.pem: No such file or directory (os error 2)\n"
    );

    // Nothing ran, and no key was created behind the user's back.
    assert!(!session.user_key_dir().join("signing-key.pem").exists());
    assert!(!session.data_dir().join("workspaces").exists());
    let runs = session.flow(["--json", "runs"]).run();
    assert_eq!(
        runs.stdout.trim(),
        "",
        "no run was recorded: {}{}",
        runs.stdout,
        runs.stderr
    );
}

// ---------------------------------------------------------------------------
// 2. A record for every step, with what it read and wrote.

#[test]
fn every_step_has_a_signed_record_that_says_how_it_ended() {
    // b reads a file that does not exist: b fails, c is skipped.
    let session = chain_session("missing.txt");
    let (run, _) = run(&session, 1);
    let key = user_key(&session);
    let plugin_sha256 = sha256_hex(std::fs::read(session.path("fs_probe.wasm")).unwrap());
    let pipeline_sha256 = sha256_hex(std::fs::read(session.path("flow.yaml")).unwrap());
    let a_txt = sha256_hex("from a");
    let config = session.path("input/config.txt").display().to_string();
    let workspace = session
        .data_dir()
        .join("workspaces")
        .join(&run)
        .display()
        .to_string();

    let steps = show_json(&session);
    let ids: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["a", "b", "c"],
        "one record per step, in execution order"
    );
    let mut statements = Vec::new();
    for (step, expected_outcome) in steps.iter().zip(["succeeded", "failed", "skipped"]) {
        let id = step["step"].as_str().unwrap();
        assert_eq!(step["link_file"], link_name(id, &key));
        for document in ["link", "statement"] {
            assert_eq!(
                step[document]["payloadType"],
                "application/vnd.in-toto+json"
            );
            let keyids: Vec<&str> = step[document]["signatures"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["keyid"].as_str().unwrap())
                .collect();
            assert_eq!(
                keyids,
                [key.keyid()],
                "{id} {document} signed by the data dir's key"
            );
        }
        let link = decode_payload(&step["link"]);
        assert_eq!(link["_type"], "link");
        assert_eq!(link["name"], id);
        assert_eq!(link["byproducts"]["outcome"], expected_outcome, "{id}");
        let statement = decode_payload(&step["statement"]);
        let predicate = &statement["predicate"];
        assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
        assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
        assert_eq!(
            predicate["buildDefinition"]["buildType"],
            "https://flow.dev/step/v1"
        );
        assert_eq!(
            predicate["runDetails"]["metadata"]["invocationId"],
            format!("{run}/{id}")
        );
        assert_eq!(predicate["runDetails"]["byproducts"][0]["name"], "outcome");
        assert_eq!(
            predicate["runDetails"]["byproducts"][0]["annotations"]["outcome"], expected_outcome,
            "{id}"
        );
        // The plugin by digest, for every step, also one that never ran.
        assert_eq!(
            predicate["buildDefinition"]["resolvedDependencies"][0],
            serde_json::json!({"uri": "./fs_probe.wasm", "digest": {"sha256": plugin_sha256}}),
            "{id}"
        );
        assert_eq!(
            predicate["buildDefinition"]["externalParameters"]["pipeline"],
            serde_json::json!({"name": "chain", "file": "flow.yaml", "digest": {"sha256": pipeline_sha256}})
        );
        assert_eq!(
            predicate["buildDefinition"]["internalParameters"]["runId"],
            run
        );
        assert_eq!(
            predicate["runDetails"]["builder"]["id"],
            format!("https://flow.dev/engine@{}", env!("CARGO_PKG_VERSION"))
        );
        statements.push((link, statement));
    }

    // a ran and wrote a.txt.
    let (a_link, a_statement) = &statements[0];
    assert_eq!(a_link["materials"], serde_json::json!({}));
    assert_eq!(
        a_link["products"],
        serde_json::json!({"a.txt": {"sha256": a_txt}})
    );
    assert_eq!(
        a_statement["subject"],
        serde_json::json!([{"name": "a.txt", "digest": {"sha256": a_txt}}])
    );
    assert_eq!(
        a_statement["predicate"]["buildDefinition"]["internalParameters"]["needs"],
        serde_json::json!([])
    );

    // b could read a's product and the granted file, failed, and says why.
    let (b_link, b_statement) = &statements[1];
    let reason = "cannot read missing.txt: No such file or directory (os error 44)";
    assert_eq!(
        b_link["materials"],
        serde_json::json!({"a.txt": {"sha256": a_txt}, config.clone(): {"sha256": sha256_hex(CONFIG)}})
    );
    assert_eq!(b_link["products"], serde_json::json!({}));
    assert_eq!(
        b_link["byproducts"],
        serde_json::json!({"outcome": "failed", "failure-reason": reason})
    );
    let b_predicate = &b_statement["predicate"];
    assert_eq!(
        b_predicate["runDetails"]["byproducts"][0]["annotations"],
        serde_json::json!({"outcome": "failed", "failureReason": reason})
    );
    assert_eq!(
        b_predicate["buildDefinition"]["externalParameters"]["params"],
        serde_json::json!({"read": "missing.txt", "list": session.path("input").display().to_string(), "write": "b.txt", "content": "from b"})
    );
    assert_eq!(
        b_predicate["buildDefinition"]["externalParameters"]["step"],
        "b"
    );
    assert_eq!(
        b_predicate["buildDefinition"]["internalParameters"]["grants"],
        serde_json::json!({"workspace": workspace, "fs": [{"path": session.path("input").display().to_string(), "access": "read", "hashed": true}]})
    );
    assert_eq!(
        b_predicate["buildDefinition"]["internalParameters"]["needs"],
        serde_json::json!(["a"])
    );
    // Nothing produced: the subject is the step's own link payload.
    let b_link_payload = Envelope::from_json(steps[1]["link"].to_string().as_bytes())
        .unwrap()
        .payload;
    assert_eq!(
        b_statement["subject"],
        serde_json::json!([{"name": format!("flow-step:{run}/b"), "digest": {"sha256": sha256_hex(&b_link_payload)}}])
    );

    // c never ran: skipped, with the reason, nothing read or written.
    let (c_link, c_statement) = &statements[2];
    assert_eq!(
        c_link["byproducts"],
        serde_json::json!({"outcome": "skipped", "failure-reason": "needs `b`, which failed"})
    );
    assert_eq!(c_link["materials"], serde_json::json!({}));
    assert_eq!(c_link["products"], serde_json::json!({}));
    assert_eq!(
        c_statement["predicate"]["buildDefinition"]["internalParameters"]["needs"],
        serde_json::json!(["b"])
    );

    // The readable summary of the failed step.
    let shown = session.flow(["attest", "show", "last", "b"]).run();
    shown.expect_success();
    assert_eq!(
        shown.stdout,
        format!(
            "step b
  outcome    failed
  reason     {reason}
  plugin     ./fs_probe.wasm sha256:{plugin_sha256}
  signed by  {keyid}
  materials  2 files
  products   0 files
  link       b.{keyid8}.link
",
            keyid = key.keyid(),
            keyid8 = &key.keyid()[..8]
        )
    );

    // A failed run's record is genuine: it verifies.
    let verified = session.flow(["verify", "last"]).run();
    verified.expect_success();
    assert_eq!(
        verified.stdout,
        format!("run {run}: verified: a (succeeded), b (failed), c (skipped)\n")
    );

    let dir = export(&session, "export");
    let Some(venv) = venv("the failed run's export against in-toto-verify and the SLSA models")
    else {
        return;
    };
    let checked = in_toto_verify(&venv, &dir, &dir.join("owner.pub"));
    assert!(
        checked.ok,
        "in-toto-verify rejected a failed run's export:\n{}",
        checked.text
    );
    let checked = check_statements(&venv, &dir.join("owner.pub"), &statements_in(&dir));
    assert!(checked.ok, "{}", checked.text);
}

// ---------------------------------------------------------------------------
// 3. The export, checked by the reference tools.

#[test]
fn an_export_verifies_with_flow_and_with_the_reference_tools() {
    let (session, run) = succeeded_chain();
    let key = user_key(&session);
    let dir = export(&session, "export");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected = vec![
        "owner.pub".to_string(),
        "root.layout".into(),
        "run.json".into(),
    ];
    for step in ["a", "b", "c"] {
        expected.push(link_name(step, &key));
        expected.push(format!("{step}.intoto.json"));
    }
    expected.sort();
    assert_eq!(files, expected);
    assert_eq!(
        flow_provenance::keys::load_public_key(&dir.join("owner.pub")).unwrap(),
        key
    );

    let verified = session.flow(["verify", "--dir", "export"]).run();
    verified.expect_success();
    assert_eq!(
        verified.stdout,
        "export: verified: a (succeeded), b (succeeded), c (succeeded)\n"
    );
    // The same with the key named explicitly.
    let public = session.user_key_dir().join("signing-key.pub");
    session
        .flow([
            "verify",
            "--dir",
            "export",
            "--key",
            public.to_str().unwrap(),
        ])
        .run()
        .expect_success();

    // The layout matches each step's materials against the steps that made
    // them, and nothing else: c read b.txt and saw a.txt.
    let layout = payload_json(&read_envelope(&dir.join("root.layout")));
    let rules: Vec<&Value> = layout["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["expected_materials"])
        .collect();
    assert_eq!(rules[0], &serde_json::json!([["DISALLOW", "*"]]));
    assert_eq!(
        rules[1],
        &serde_json::json!([
            ["MATCH", "*", "WITH", "PRODUCTS", "FROM", "a"],
            ["ALLOW", format!("{}/*", session.path("input").display())],
            ["DISALLOW", "*"]
        ])
    );
    assert_eq!(
        rules[2],
        &serde_json::json!([
            ["MATCH", "*", "WITH", "PRODUCTS", "FROM", "a"],
            ["MATCH", "*", "WITH", "PRODUCTS", "FROM", "b"],
            ["DISALLOW", "*"]
        ])
    );

    // The run record chains the step envelopes in execution order.
    let chain = payload_json(&read_envelope(&dir.join("run.json")));
    assert_eq!(chain["runId"], run);
    let chained: Vec<&str> = chain["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(chained, ["a", "b", "c"]);
    assert_eq!(
        chain["steps"][1]["linkSha256"],
        read_envelope(&dir.join(link_name("b", &key))).sha256()
    );

    let Some(venv) = venv("in-toto-verify and the SLSA v1 models on an export") else {
        return;
    };
    let checked = in_toto_verify(&venv, &dir, &dir.join("owner.pub"));
    assert!(
        checked.ok,
        "in-toto-verify rejected the export:\n{}",
        checked.text
    );
    let statements = statements_in(&dir);
    assert_eq!(statements.len(), 3);
    let checked = check_statements(&venv, &dir.join("owner.pub"), &statements);
    assert!(checked.ok, "{}", checked.text);
    for step in ["a", "b", "c"] {
        assert!(
            checked.text.contains(&format!(
                "ok {}: ",
                dir.join(format!("{step}.intoto.json")).display()
            )),
            "{}",
            checked.text
        );
    }
}

// ---------------------------------------------------------------------------
// 4. Tampering: each change must fail `flow verify` and, where it reads the
//    changed file, `in-toto-verify`.

/// A fresh copy of a succeeded chain's export, to tamper with.
struct Tamper {
    session: Session,
    key: PublicKey,
    dir: PathBuf,
}

impl Tamper {
    fn new() -> Self {
        let (session, _) = succeeded_chain();
        let key = user_key(&session);
        let dir = export(&session, "export");
        Tamper { session, key, dir }
    }

    fn link(&self, step: &str) -> PathBuf {
        self.dir.join(link_name(step, &self.key))
    }

    /// `flow verify --dir export [extra]`: must fail (exit 1); returns its stdout.
    fn flow_fails(&self, extra: &[&str]) -> String {
        let mut args = vec!["verify", "--dir", "export"];
        args.extend_from_slice(extra);
        let out = self.session.flow(args).run();
        out.expect_code(1);
        assert_eq!(out.stderr, "");
        assert!(
            out.stdout.starts_with("export: verification FAILED\n"),
            "{}",
            out.stdout
        );
        out.stdout
    }

    /// `in-toto-verify` with `key` (default: the export's owner.pub) must fail;
    /// returns its output, or `None` without the venv.
    fn in_toto_fails(&self, key: Option<&Path>, what: &str) -> Option<String> {
        let venv = venv(what)?;
        let owner = self.dir.join("owner.pub");
        let checked = in_toto_verify(&venv, &self.dir, key.unwrap_or(&owner));
        assert!(
            !checked.ok,
            "in-toto-verify accepted a tampered export ({what}):\n{}",
            checked.text
        );
        Some(checked.text)
    }
}

#[track_caller]
fn assert_lines(stdout: &str, lines: &[String]) {
    for line in lines {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing line {line:?} in:\n{stdout}"
        );
    }
}

/// Decode a link, let `change` edit its payload, re-encode it (keeping or
/// replacing the signature); returns (old envelope sha256, new envelope sha256).
fn edit_link(
    path: &Path,
    change: impl FnOnce(&mut Value),
    resign: Option<&SigningKey>,
) -> (String, String) {
    let mut envelope = read_envelope(path);
    let before = envelope.sha256();
    let mut payload = payload_json(&envelope);
    change(&mut payload);
    let bytes = serde_json::to_vec(&payload).unwrap();
    envelope = match resign {
        Some(key) => Envelope::sign(envelope.payload_type.clone(), bytes, key).unwrap(),
        None => Envelope {
            payload: bytes,
            ..envelope
        },
    };
    write_envelope(path, &envelope);
    (before, envelope.sha256())
}

#[test]
fn a_changed_artifact_digest_in_a_link_fails_both_verifiers() {
    let t = Tamper::new();
    let real = sha256_hex("from a");
    let fake = "0".repeat(64);
    let (before, after) = edit_link(
        &t.link("a"),
        |p| {
            assert_eq!(p["products"]["a.txt"]["sha256"], real.as_str());
            p["products"]["a.txt"]["sha256"] = Value::from(fake.clone());
        },
        None,
    );
    let stdout = t.flow_fails(&[]);
    let a = link_name("a", &t.key);
    assert_lines(
        &stdout,
        &[
            format!(
                "{a}: the signature by key {} does not match the payload (payload, type or signature changed)",
                t.key.keyid()
            ),
            format!("step a ({a}): envelope sha256 is {after}, but run.json chained {before}"),
        ],
    );
    if let Some(text) = t.in_toto_fails(None, "a changed link payload") {
        assert!(
            text.contains("Step 'a' requires at least '1' links validly signed"),
            "{text}"
        );
    }
}

#[test]
fn a_changed_artifact_resigned_with_the_owner_key_breaks_the_chain_between_steps() {
    // Someone holding the key rewrites what a produced. Every signature is valid,
    // but b read a.txt with another digest than a now claims to have produced, and
    // the run record chained the original envelope.
    let t = Tamper::new();
    let owner =
        flow_provenance::keys::load_signing_key(&t.session.user_key_dir().join("signing-key.pem"))
            .unwrap();
    let real = sha256_hex("from a");
    let fake = "0".repeat(64);
    let (before, after) = edit_link(
        &t.link("a"),
        |p| p["products"]["a.txt"]["sha256"] = Value::from(fake.clone()),
        Some(&owner),
    );
    let stdout = t.flow_fails(&[]);
    let (a, b) = (link_name("a", &t.key), link_name("b", &t.key));
    assert_lines(
        &stdout,
        &[
            format!(
                "step b ({b}): material a.txt has sha256 {real}, but step a produced sha256 {fake}"
            ),
            format!("step a ({a}): envelope sha256 is {after}, but run.json chained {before}"),
        ],
    );
    if let Some(text) = t.in_toto_fails(None, "a re-signed link with a changed product") {
        assert!(text.contains("RuleVerificationError"), "{text}");
    }
}

#[test]
fn a_changed_statement_payload_fails_flow_verify_and_the_dsse_check() {
    let t = Tamper::new();
    let path = t.dir.join("b.intoto.json");
    let mut envelope = read_envelope(&path);
    let before = envelope.sha256();
    let mut statement = payload_json(&envelope);
    let real = sha256_hex("from b");
    assert_eq!(statement["subject"][0]["digest"]["sha256"], real.as_str());
    statement["subject"][0]["digest"]["sha256"] = Value::from("1".repeat(64));
    envelope.payload = serde_json::to_vec(&statement).unwrap();
    write_envelope(&path, &envelope);
    let after = envelope.sha256();

    let stdout = t.flow_fails(&[]);
    assert_lines(
        &stdout,
        &[
            format!(
                "b.intoto.json: the signature by key {} does not match the payload (payload, type or signature changed)",
                t.key.keyid()
            ),
            format!(
                "step b (b.intoto.json): envelope sha256 is {after}, but run.json chained {before}"
            ),
        ],
    );
    let Some(venv) = venv("securesystemslib on a changed statement") else {
        return;
    };
    // in-toto-verify reads links only, so the statement is checked with
    // securesystemslib's DSSE verification, which must refuse it.
    let checked = check_statements(&venv, &t.dir.join("owner.pub"), std::slice::from_ref(&path));
    assert!(
        !checked.ok,
        "a changed statement passed the DSSE check:\n{}",
        checked.text
    );
    assert!(
        checked.text.contains(&format!("FAIL {}: ", path.display())),
        "{}",
        checked.text
    );
    // The untouched statements still pass.
    let others = vec![t.dir.join("a.intoto.json"), t.dir.join("c.intoto.json")];
    let checked = check_statements(&venv, &t.dir.join("owner.pub"), &others);
    assert!(checked.ok, "{}", checked.text);
}

#[test]
fn a_changed_signature_fails_both_verifiers() {
    let t = Tamper::new();
    let path = t.link("c");
    let mut envelope = read_envelope(&path);
    let before = envelope.sha256();
    envelope.signatures[0].sig[0] ^= 1;
    write_envelope(&path, &envelope);
    let after = envelope.sha256();
    let stdout = t.flow_fails(&[]);
    let c = link_name("c", &t.key);
    assert_lines(
        &stdout,
        &[
            format!(
                "{c}: the signature by key {} does not match the payload (payload, type or signature changed)",
                t.key.keyid()
            ),
            "step c: missing link 1 valid link(s)".to_string(),
            format!("step c ({c}): envelope sha256 is {after}, but run.json chained {before}"),
        ],
    );
    if let Some(text) = t.in_toto_fails(None, "a changed signature") {
        assert!(
            text.contains("Step 'c' requires at least '1' links validly signed"),
            "{text}"
        );
    }
}

#[test]
fn the_wrong_key_fails_both_verifiers() {
    let t = Tamper::new();
    let out = t.session.flow(["keys", "generate", "--out", "other"]).run();
    out.expect_success();
    let other = t.session.path("other/signing-key.pub");
    let other_id = flow_provenance::keys::load_public_key(&other)
        .unwrap()
        .keyid()
        .to_string();
    let stdout = t.flow_fails(&["--key", "other/signing-key.pub"]);
    assert_lines(
        &stdout,
        &[
            format!(
                "owner.pub: owner key {} is not the trusted key {other_id}",
                t.key.keyid()
            ),
            format!(
                "root.layout: signed by key(s) [\"{}\"], none of which is trusted (trusted: [\"{other_id}\"])",
                t.key.keyid()
            ),
        ],
    );
    // Replacing owner.pub in the export does not help an attacker who is checked
    // against the key the user trusts.
    std::fs::copy(&other, t.dir.join("owner.pub")).unwrap();
    let trusted = t.session.user_key_dir().join("signing-key.pub");
    let stdout = t.flow_fails(&["--key", trusted.to_str().unwrap()]);
    assert!(
        stdout.contains(&format!(
            "owner.pub: owner key {other_id} is not the trusted key {}\n",
            t.key.keyid()
        )),
        "{stdout}"
    );
    if let Some(text) = t.in_toto_fails(Some(&other), "verification with the wrong key") {
        assert!(text.contains("SignatureVerificationError"), "{text}");
    }
}

#[test]
fn a_deleted_link_fails_both_verifiers() {
    let t = Tamper::new();
    std::fs::remove_file(t.link("b")).unwrap();
    let stdout = t.flow_fails(&[]);
    let b = link_name("b", &t.key);
    assert_lines(
        &stdout,
        &[
            format!("step b: missing link {b}"),
            "step b: listed in run.json but its link or statement is missing (step removed)"
                .to_string(),
        ],
    );
    if let Some(text) = t.in_toto_fails(None, "a deleted link") {
        assert!(
            text.contains(
                "LinkNotFoundError: Step 'b' requires '1' link metadata file(s), found '0'."
            ),
            "{text}"
        );
    }
}

#[test]
fn a_deleted_statement_fails_flow_verify() {
    let t = Tamper::new();
    std::fs::remove_file(t.dir.join("c.intoto.json")).unwrap();
    let stdout = t.flow_fails(&[]);
    assert_lines(
        &stdout,
        &[
            "step c: listed in run.json but its link or statement is missing (step removed)"
                .to_string(),
            "step c: missing statement c.intoto.json".to_string(),
        ],
    );
}

// In the store: `flow verify RUN` reads the store itself.

/// Open the store of a session whose flow processes have all exited.
fn open_store(session: &Session) -> (flow_store::Store, flow_store::RunId) {
    let store = flow_store::Store::open(session.data_dir()).expect("open the data dir");
    let run = store.resolve("last").expect("a run");
    (store, run)
}

fn step_index(store: &flow_store::Store, run: &flow_store::RunId, step: &str) -> u32 {
    store
        .steps(run)
        .unwrap()
        .into_iter()
        .find(|s| s.step_id == step)
        .expect("the step")
        .index
}

#[test]
fn a_step_removed_from_the_store_fails_flow_verify_and_its_export() {
    let (session, run) = succeeded_chain();
    let key = user_key(&session);
    {
        let (store, id) = open_store(&session);
        let index = step_index(&store, &id, "b");
        assert!(
            store.remove_step_attestation(&id, index).unwrap(),
            "b had an attestation"
        );
        store.flush().unwrap();
    }
    let out = session.flow(["verify", "last"]).run();
    out.expect_code(1);
    assert_eq!(out.stderr, "");
    assert!(
        out.stdout
            .starts_with(&format!("run {run}: verification FAILED\n")),
        "{}",
        out.stdout
    );
    assert_lines(
        &out.stdout,
        &[
            format!("step b: missing link {}", link_name("b", &key)),
            "step b: listed in run.json but its link or statement is missing (step removed)"
                .to_string(),
        ],
    );
    // What the store still has exports without b; in-toto-verify notices too.
    let dir = export(&session, "export");
    assert!(!dir.join(link_name("b", &key)).exists());
    let Some(venv) = venv("in-toto-verify on the export of a store missing a step") else {
        return;
    };
    let checked = in_toto_verify(&venv, &dir, &dir.join("owner.pub"));
    assert!(
        !checked.ok,
        "in-toto-verify accepted an export without step b:\n{}",
        checked.text
    );
    assert!(
        checked.text.contains("LinkNotFoundError: Step 'b'"),
        "{}",
        checked.text
    );
}

#[test]
fn steps_reordered_in_the_store_fail_flow_verify() {
    let (session, run) = succeeded_chain();
    let original = export(&session, "before");
    {
        let (store, id) = open_store(&session);
        let mut attestations = store.step_attestations(&id).unwrap();
        let steps = store.steps(&id).unwrap();
        let (a, b) = (step_index(&store, &id, "a"), step_index(&store, &id, "b"));
        let position = |i: u32| {
            attestations
                .iter()
                .find(|(index, _)| *index == i)
                .unwrap()
                .1
                .position
        };
        let (pa, pb) = (position(a), position(b));
        assert_eq!((pa, pb), (0, 1));
        for (index, attestation) in &mut attestations {
            if *index == a || *index == b {
                attestation.position = if *index == a { pb } else { pa };
                let record = steps.iter().find(|s| s.index == *index).unwrap();
                let lines: Vec<_> = store
                    .logs(&id, Some(&record.step_id))
                    .unwrap()
                    .into_iter()
                    .map(|l| l.line)
                    .collect();
                store
                    .finish_step_attested(&id, record, &lines, Some(attestation))
                    .unwrap();
            }
        }
        store.flush().unwrap();
    }
    let out = session.flow(["verify", "last"]).run();
    out.expect_code(1);
    assert!(
        out.stdout
            .starts_with(&format!("run {run}: verification FAILED\n")),
        "{}",
        out.stdout
    );
    assert_lines(
        &out.stdout,
        &[
            "step b: stored at position 0, but run.json has it at 1 (steps reordered)".to_string(),
            "step a: stored at position 1, but run.json has it at 0 (steps reordered)".to_string(),
        ],
    );
    // An export has no order: the reordered store exports the same files, which
    // is why only `flow verify RUN` (and not in-toto-verify) can see a reorder.
    let after = export(&session, "after");
    for entry in std::fs::read_dir(&original).unwrap() {
        let name = entry.unwrap().file_name();
        assert_eq!(
            std::fs::read(original.join(&name)).unwrap(),
            std::fs::read(after.join(&name)).unwrap(),
            "{name:?} differs"
        );
    }
}

// ---------------------------------------------------------------------------
// 6. Reading provenance.

#[test]
fn attest_show_summarises_a_step() {
    let (session, run) = succeeded_chain();
    let key = user_key(&session);
    let plugin_sha256 = sha256_hex(std::fs::read(session.path("fs_probe.wasm")).unwrap());
    let shown = session.flow(["attest", "show", "last", "b"]).run();
    shown.expect_success();
    let text = shown
        .stdout
        .replace(&plugin_sha256, "PLUGIN")
        .replace(key.keyid(), "KEYID")
        .replace(&key.keyid()[..8], "KEY8");
    assert_eq!(
        session.normalize(&text),
        format!(
            "step b
  outcome    succeeded
  plugin     ./fs_probe.wasm sha256:PLUGIN
  signed by  KEYID
  materials  2 files
  products   1 file
    b.txt  sha256:{}
  link       b.KEY8.link
",
            sha256_hex("from b")
        )
    );
    // All steps, in execution order.
    let all = session.flow(["attest", "show", "last"]).run();
    all.expect_success();
    let headers: Vec<&str> = all
        .stdout
        .lines()
        .filter(|l| l.starts_with("step "))
        .collect();
    assert_eq!(headers, ["step a", "step b", "step c"]);

    let missing = session.flow(["attest", "show", "last", "nope"]).run();
    missing.expect_code(2);
    assert_eq!(
        missing.stderr,
        format!("error: run {run} has no step `nope`\n")
    );
}

#[test]
fn an_interrupted_run_has_no_provenance() {
    let session = Session::new();
    session.plugin("misbehave").file(
        "flow.yaml",
        "version: 1\nname: spin\nsteps:\n  spin:\n    uses: ./misbehave.wasm\n    with: { mode: loop }\n    timeout: 60s\n",
    );
    let mut running = session.flow(["run", "flow.yaml"]).spawn();
    running.wait_for_stdout("spin  started\n", Duration::from_secs(30));
    running.signal("KILL");
    let out = running.wait(Duration::from_secs(10));
    assert_eq!(out.code(), None, "killed by a signal");
    let run = run_id(&out.stdout);

    let no_provenance = format!(
        "error: run {run} has no provenance: it did not finish (interrupted runs are not signed as a whole) or it was recorded without a signing key\n"
    );
    let verify = session.flow(["verify", "last"]).run();
    verify.expect_code(2);
    assert_eq!(verify.stdout, "");
    assert_eq!(
        verify.stderr,
        format!(
            "note: run {run} was interrupted (its flow process ended while it ran)\n{no_provenance}"
        )
    );
    for args in [
        &["attest", "export", "last", "--out", "export"][..],
        &["attest", "show", "last"],
    ] {
        let out = session.flow(args.iter().copied()).run();
        out.expect_code(2);
        assert_eq!(out.stdout, "");
        assert_eq!(out.stderr, no_provenance, "{args:?}");
    }
    assert!(!session.path("export").exists());
}

// ---------------------------------------------------------------------------
// 7. What a step may see: its own view of the workspace, with the files of the
//    steps it needs (directly or through others) and nothing of the others, so
//    its materials verify whatever order the steps ran in; files no step
//    produced do not verify.

const SIBLINGS: &str = r#"version: 1
name: siblings
steps:
  a:
    uses: ./fs_probe.wasm
    with: { write: a.txt, content: from a }
  b:
    uses: ./fs_probe.wasm
    with: { write: b.txt, content: from b }
  c:
    uses: ./fs_probe.wasm
    needs: [b]
    with: { read: b.txt, list: . }
"#;

#[test]
fn a_step_sees_only_the_files_of_the_steps_it_needs_and_verifies_with_both_tools() {
    let session = Session::without_signing_key();
    session.plugin("fs_probe").file("flow.yaml", SIBLINGS);
    // One at a time: a completes before c starts, yet c does not need it.
    session
        .flow(["run", "-j", "1", "flow.yaml"])
        .run()
        .expect_code(0);
    let shown = show_json(&session);
    let c_materials = &decode_payload(&shown[2]["link"])["materials"];
    let names: Vec<&String> = c_materials.as_object().expect("materials").keys().collect();
    assert_eq!(names, ["b.txt"], "c's materials: {c_materials}");
    let show = session.flow(["--json", "show", "last"]).run().json();
    assert_eq!(show["steps"][2]["outputs"]["entries"], "b.txt");
    assert_eq!(show["steps"][2]["outputs"]["content"], "from b");
    // When the run ends, the workspace holds what every step made.
    let run = show["run"]["id"].as_str().expect("run id");
    let workspace = session.data_dir().join("workspaces").join(run);
    for (file, text) in [("a.txt", "from a"), ("b.txt", "from b")] {
        assert_eq!(std::fs::read_to_string(workspace.join(file)).unwrap(), text);
    }

    let verified = session.flow(["verify", "last"]).run();
    verified.expect_success();
    assert!(
        verified
            .stdout
            .ends_with(": verified: a (succeeded), b (succeeded), c (succeeded)\n"),
        "{}",
        verified.stdout
    );
    let dir = export(&session, "export");
    let Some(venv) = venv("in-toto-verify on a run whose steps see only what they need") else {
        return;
    };
    let checked = in_toto_verify(&venv, &dir, &dir.join("owner.pub"));
    assert!(
        checked.ok,
        "in-toto-verify rejected the export:\n{}",
        checked.text
    );
}

/// `writer` writes files while `pause → reader` runs beside it: with one shared
/// workspace, `reader` saw some of them, depending on timing, and its materials
/// named files no step it needs produced.
const WRITER_READER: &str = r#"version: 1
name: writer-reader
steps:
  seed:
    uses: ./fs_probe.wasm
    with: { write: seed.txt, content: seed }
  writer:
    uses: ./fs_probe.wasm
    needs: [seed]
    with: { write: w, count: 40, content: written }
  pause:
    uses: ./fs_probe.wasm
    needs: [seed]
    with: { write: paused.txt, content: paused }
  reader:
    uses: ./fs_probe.wasm
    needs: [pause]
    with: { list: . }
"#;

/// `edit` changes a file it received while `keep`, beside it, reads the same file.
const EDIT_BESIDE: &str = r#"version: 1
name: edit-beside
steps:
  seed:
    uses: ./fs_probe.wasm
    with: { write: shared.txt, content: original }
  edit:
    uses: ./fs_probe.wasm
    needs: [seed]
    with: { write: shared.txt, content: edited }
  keep:
    uses: ./fs_probe.wasm
    needs: [seed]
    with: { write: kept.txt, content: kept }
  after-keep:
    uses: ./fs_probe.wasm
    needs: [keep]
    with: { read: shared.txt }
  after-both:
    uses: ./fs_probe.wasm
    needs: [edit, keep]
    with: { read: shared.txt }
"#;

#[test]
fn a_step_that_edits_a_file_it_received_changes_nobody_else_s_copy() {
    let session = Session::without_signing_key();
    session.plugin("fs_probe").file("flow.yaml", EDIT_BESIDE);
    session.flow(["run", "flow.yaml"]).run().expect_code(0);
    let (show, workspace) = session.last_run();
    // A step that does not need `edit` still reads the original, whatever ran first.
    assert_eq!(show["steps"][3]["outputs"]["content"], "original", "{show}");
    // One that needs it reads the edit.
    assert_eq!(show["steps"][4]["outputs"]["content"], "edited", "{show}");
    // The workspace ends with every step's files, the edit included.
    assert_eq!(
        std::fs::read_to_string(workspace.join("shared.txt")).unwrap(),
        "edited"
    );
    assert_eq!(
        std::fs::read_to_string(workspace.join("kept.txt")).unwrap(),
        "kept"
    );
    // The stored original is untouched: its object still has its digest.
    let objects = session.data_dir().join("objects/sha256");
    let original = hex::encode(Sha256::digest(b"original"));
    let object = objects.join(&original[..2]).join(&original[2..]);
    assert_eq!(std::fs::read_to_string(&object).unwrap(), "original");
    session.flow(["verify", "last"]).run().expect_success();
}

#[test]
fn parallel_branches_verify_in_every_run_with_both_tools() {
    let session = Session::without_signing_key();
    session.plugin("fs_probe").file("flow.yaml", WRITER_READER);
    let venv = venv("in-toto-verify of parallel branches");
    for round in 0..20 {
        session.flow(["run", "flow.yaml"]).run().expect_code(0);
        let show = session.flow(["--json", "show", "last"]).run().json();
        assert_eq!(
            show["steps"][3]["outputs"]["entries"], "paused.txt,seed.txt",
            "round {round}: reader saw more than the steps it needs made"
        );
        let run = show["run"]["id"].as_str().expect("run id").to_string();
        let workspace = session.data_dir().join("workspaces").join(&run);
        let written = std::fs::read_dir(&workspace).unwrap().count();
        assert_eq!(
            written, 42,
            "round {round}: the workspace holds every step's files"
        );
        session.flow(["verify", "last"]).run().expect_success();
        if let Some(venv) = &venv {
            let dir = export(&session, &format!("export-{round}"));
            let checked = in_toto_verify(venv, &dir, &dir.join("owner.pub"));
            assert!(
                checked.ok,
                "round {round}: in-toto-verify rejected the export:\n{}",
                checked.text
            );
        }
    }
}

#[test]
fn a_file_no_step_produced_fails_verification_naming_it() {
    let session = Session::without_signing_key();
    session.plugin("fs_probe").file("flow.yaml", SIBLINGS);
    // A workspace that already holds a file: no step of the run made it.
    session.file("ws/planted.txt", "not from this run\n");
    session
        .flow(["run", "-j", "1", "--workspace", "ws", "flow.yaml"])
        .run()
        .expect_code(0);
    let verified = session.flow(["verify", "last"]).run();
    verified.expect_code(1);
    let digest = sha256_hex("not from this run\n");
    let expected = format!(
        "step a ({}): material planted.txt (sha256 {digest}) was produced by no step it needs and is not allowed",
        link_name("a", &user_key(&session))
    );
    assert!(
        verified.stdout.lines().any(|l| l == expected),
        "expected {expected:?} in:\n{}",
        verified.stdout
    );

    let dir = export(&session, "export");
    let Some(venv) = venv("in-toto-verify on a run with a planted file") else {
        return;
    };
    let checked = in_toto_verify(&venv, &dir, &dir.join("owner.pub"));
    assert!(
        !checked.ok,
        "in-toto-verify accepted a file no step produced:\n{}",
        checked.text
    );
    assert!(checked.text.contains("DISALLOW"), "{}", checked.text);
}
