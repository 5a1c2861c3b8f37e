//! Secrets: declared by name with their source, granted per step, read by the
//! plugin through the host, and never recorded: every log line (also split
//! across writes, in a long line, and base64-encoded), output and failure
//! reason is redacted, and provenance names secrets only.

use crate::session::Session;

const VALUE: &str = "s3cr3t-Value-0123456789";

fn pipeline(session: &Session, steps: &str) {
    session.file(
        "flow.yaml",
        format!(
            "version: 1\nname: secrets\nsecrets:\n  token: {{ env: FLOW_TEST_TOKEN }}\n  key: {{ file: key.txt }}\nsteps:\n{steps}"
        ),
    );
}

/// Everything the store and the provenance hold about the last run, as text.
fn everything_recorded(session: &Session) -> String {
    let mut all = String::new();
    for args in [
        vec!["--json", "show", "last"],
        vec!["logs", "last"],
        vec!["--json", "attest", "show", "last"],
    ] {
        let out = session.flow(args.clone()).run();
        out.expect_success();
        all.push_str(&out.stdout);
    }
    // The envelopes' payloads are base64: decode them too.
    let export = session
        .flow(["attest", "export", "last", "--out", "export"])
        .run();
    out_ok(&export);
    for entry in std::fs::read_dir(session.path("export")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        all.push_str(&text);
        if let Ok(envelope) = flow_provenance::Envelope::from_json(text.as_bytes()) {
            all.push_str(&String::from_utf8_lossy(&envelope.payload));
        }
    }
    // And the raw store files.
    for entry in crate::session::files_below(&session.data_dir().join("store")) {
        all.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap()));
    }
    all
}

fn out_ok(out: &crate::session::Output) {
    out.expect_success();
}

#[test]
fn a_granted_secret_is_readable_and_never_recorded() {
    let session = Session::new();
    session
        .plugin("misbehave")
        .file("key.txt", "file-secret-987654\n");
    pipeline(
        &session,
        "  leak:
    uses: ./misbehave.wasm
    grants: { secrets: [token] }
    with: { mode: leak, secret: token }
  leak-file:
    uses: ./misbehave.wasm
    needs: [leak]
    grants: { secrets: [key] }
    with: { mode: leak, secret: key, count: 1 }
",
    );
    let out = session
        .flow(["run", "--plain", "flow.yaml"])
        .env("FLOW_TEST_TOKEN", VALUE)
        .run();
    out.expect_code(1);
    assert!(
        !out.stdout.contains(VALUE) && !out.stderr.contains(VALUE),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let logs = session.flow(["logs", "last", "leak"]).run().stdout;
    for line in ["whole: ***", "split: *** end", "log: ***"] {
        assert!(logs.contains(line), "{line:?} in:\n{logs}");
    }
    assert!(
        logs.contains("Authorization: Basic ") && logs.contains("***"),
        "{logs}"
    );
    let show = session.flow(["--json", "show", "last"]).run().json();
    assert_eq!(show["steps"][0]["outputs"]["leaked"], "output ***");
    assert_eq!(show["steps"][1]["status"], "failed");
    assert_eq!(show["steps"][1]["reason"], "failed holding ***");

    let recorded = everything_recorded(&session);
    let basic = base64_std(format!("user:{VALUE}").as_bytes());
    for leaked in [VALUE, "file-secret-987654", &basic[8..basic.len() - 4]] {
        assert!(!recorded.contains(leaked), "`{leaked}` was recorded");
    }
    // Provenance names the secrets a step was granted, by name.
    let attest = session
        .flow(["--json", "attest", "show", "last", "leak"])
        .run();
    let envelope = &attest.json_lines()[0]["statement"];
    let envelope = flow_provenance::Envelope::from_json(envelope.to_string().as_bytes()).unwrap();
    let statement: serde_json::Value = serde_json::from_slice(&envelope.payload).unwrap();
    assert_eq!(
        statement["predicate"]["buildDefinition"]["internalParameters"]["grants"]["secrets"],
        serde_json::json!(["token"])
    );
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn a_step_reads_only_the_secrets_it_is_granted() {
    let session = Session::new();
    session
        .plugin("misbehave")
        .file("key.txt", "file-secret-987654\n");
    pipeline(
        &session,
        "  sneaky:
    uses: ./misbehave.wasm
    grants: { secrets: [key] }
    with: { mode: leak, secret: token }
",
    );
    session
        .flow(["run", "--plain", "flow.yaml"])
        .env("FLOW_TEST_TOKEN", VALUE)
        .run()
        .expect_code(1);
    let show = session.flow(["--json", "show", "last"]).run().json();
    assert_eq!(
        show["steps"][0]["reason"],
        "secret `token` is not granted: this step may read only key"
    );
}

#[test]
fn a_missing_or_unknown_secret_stops_the_run_before_it_starts() {
    let session = Session::new();
    session.plugin("misbehave");
    pipeline(
        &session,
        "  a:
    uses: ./misbehave.wasm
    grants: { secrets: [token, key] }
    with: { mode: ok }
",
    );
    let out = session
        .flow(["run", "flow.yaml"])
        .env_remove("FLOW_TEST_TOKEN")
        .run();
    out.expect_code(2);
    assert!(out.stderr.contains("flow.yaml:4:17: error: secret `token`: the environment variable `FLOW_TEST_TOKEN` is not set"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("flow.yaml:5:16: error: secret `key`: cannot read "),
        "{}",
        out.stderr
    );
    assert!(
        !session.data_dir().join("workspaces").exists(),
        "nothing ran"
    );

    pipeline(
        &session,
        "  a:
    uses: ./misbehave.wasm
    grants: { secrets: [tokn] }
    with: { mode: ok }
",
    );
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    assert!(
        out.stderr.contains("error: unknown secret `tokn`")
            && out.stderr.contains("did you mean `token`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_command_gets_a_secret_through_its_environment_redacted_in_its_output() {
    let session = Session::new();
    session.file("key.txt", "file-secret-987654\n");
    pipeline(
        &session,
        "  cmd:
    uses: build
    grants:
      exec: [sh]
      env: { TOKEN: { secret: token } }
    with: { command: [sh, -c, 'echo token is $TOKEN; test ${#TOKEN} = 23'] }
",
    );
    session
        .flow(["run", "--plain", "flow.yaml"])
        .env("FLOW_TEST_TOKEN", VALUE)
        .run()
        .expect_success();
    let logs = session.flow(["logs", "last"]).run().stdout;
    assert!(logs.contains("token is ***"), "{logs}");
    assert!(!everything_recorded(&session).contains(VALUE));
}
