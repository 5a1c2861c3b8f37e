//! The `sign` plugin with a key the host holds: the SSH signature verifies with
//! `ssh-keygen -Y verify` (no flow code) and fails for a changed file; each file
//! gets a DSSE-signed in-toto statement with its digest as subject; the key
//! never reaches the plugin or the run's records.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::session::Session;

fn setup(session: &Session) -> flow_provenance::SigningKey {
    let out = session.flow(["keys", "generate", "--out", "release"]).run();
    out.expect_success();
    session.file(
        "flow.yaml",
        "version: 1
name: sign
keys:
  release: { file: release/signing-key.pem }
steps:
  build:
    uses: build
    grants: { exec: [sh] }
    with: { command: [sh, -c, 'mkdir -p dist && echo artifact one > dist/app && echo two > dist/lib.so'], artifacts: ['dist/*'] }
  sign:
    uses: sign
    needs: [build]
    grants: { keys: [release] }
    with: { files: [dist/app, dist/lib.so], key: release }
",
    );
    flow_provenance::keys::load_signing_key(&session.path("release/signing-key.pem"))
        .expect("the generated key")
}

fn ssh_verify(dir: &Path, file: &str, allowed: &Path) -> std::process::Output {
    Command::new("ssh-keygen")
        .current_dir(dir)
        .args(["-Y", "verify", "-f"])
        .arg(allowed)
        .args([
            "-I",
            "release@acme",
            "-n",
            "file",
            "-s",
            &format!("{file}.sig"),
        ])
        .stdin(std::fs::File::open(dir.join(file)).unwrap())
        .output()
        .expect("ssh-keygen runs")
}

#[test]
fn signatures_verify_with_ssh_keygen_and_attest_each_file() {
    let session = Session::new();
    let key = setup(&session);
    session
        .flow(["run", "--plain", "flow.yaml"])
        .run()
        .expect_success();
    let show = session.flow(["--json", "show", "last"]).run().json();
    let workspace = session
        .data_dir()
        .join("workspaces")
        .join(show["run"]["id"].as_str().unwrap());
    let outputs = &show["steps"][1]["outputs"];
    assert_eq!(outputs["keyid"], key.keyid());
    let public = outputs["public-key"].as_str().unwrap();
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");

    // An allowed-signers file from the public key the step reported.
    let allowed = session.path("allowed_signers");
    std::fs::write(&allowed, format!("release@acme {public}\n")).unwrap();
    for file in ["dist/app", "dist/lib.so"] {
        let out = ssh_verify(&workspace, file, &allowed);
        assert!(
            out.status.success(),
            "{file}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A changed file fails.
    std::fs::write(workspace.join("dist/app"), "artifact one, tampered\n").unwrap();
    assert!(
        !ssh_verify(&workspace, "dist/app", &allowed)
            .status
            .success()
    );

    // The attestation: signed by the key, about the file's digest.
    let envelope = flow_provenance::Envelope::from_json(
        &std::fs::read(workspace.join("dist/lib.so.intoto.json")).unwrap(),
    )
    .unwrap();
    envelope
        .verify(std::slice::from_ref(key.public_key()))
        .expect("signed with the release key");
    let statement: Value = serde_json::from_slice(&envelope.payload).unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(workspace.join("dist/lib.so")).unwrap(),
    ));
    assert_eq!(
        statement["subject"],
        serde_json::json!([{ "name": "dist/lib.so", "digest": { "sha256": sha } }])
    );
    assert_eq!(statement["predicateType"], "https://flow.dev/signature/v1");
    assert_eq!(statement["predicate"]["signer"]["keyid"], key.keyid());
    let other = flow_provenance::SigningKey::from_seed(&[9; 32]);
    assert!(
        envelope
            .verify(std::slice::from_ref(other.public_key()))
            .is_err()
    );

    // The step's own provenance names the key by id; the private key appears nowhere.
    let pem = std::fs::read_to_string(session.path("release/signing-key.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let attest = session
        .flow(["--json", "attest", "show", "last", "sign"])
        .run();
    attest.expect_success();
    assert!(!attest.stdout.contains(&body));
    let step = flow_provenance::Envelope::from_json(
        attest.json_lines()[0]["statement"].to_string().as_bytes(),
    )
    .unwrap();
    let step: Value = serde_json::from_slice(&step.payload).unwrap();
    assert_eq!(
        step["predicate"]["buildDefinition"]["internalParameters"]["grants"]["keys"],
        serde_json::json!([{ "name": "release", "keyid": key.keyid() }])
    );
}

#[test]
fn a_key_that_is_not_granted_or_missing_is_refused() {
    let session = Session::new();
    setup(&session);
    let yaml = std::fs::read_to_string(session.path("flow.yaml")).unwrap();
    session.file(
        "flow.yaml",
        yaml.replace("grants: { keys: [release] }", "grants: { keys: [relase] }"),
    );
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    assert!(
        out.stderr.contains("unknown key `relase`")
            && out.stderr.contains("did you mean `release`?"),
        "{}",
        out.stderr
    );

    session.file(
        "flow.yaml",
        yaml.replace("grants: { keys: [release] }", "grants: { keys: [] }"),
    );
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    assert!(
        out.stderr.contains(
            "plugin `sign` needs secrets or signing keys, but step `sign` does not grant it"
        ),
        "{}",
        out.stderr
    );

    std::fs::remove_file(session.path("release/signing-key.pem")).unwrap();
    session.file("flow.yaml", yaml);
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("flow.yaml:4:20: error: key `release`: "),
        "{}",
        out.stderr
    );
}
