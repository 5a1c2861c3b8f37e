//! `retry:`: a step tried again on the failures it names, every attempt recorded,
//! only the last attempt's result passed on.

use std::time::{Duration, Instant};

use crate::session::Session;

/// `flaky` fails until its attempt `count` (it counts in `STATE/attempts`, a granted
/// directory, which outlives its views), then `after` lists what it was given.
fn flaky(count: u32, retry: &str) -> String {
    format!(
        r#"version: 1
name: retried
steps:
  flaky:
    uses: ./misbehave.wasm
    retry: {retry}
    grants: {{ fs: [ {{ path: state, access: write }} ] }}
    with: {{ mode: flaky, path: STATE/attempts, count: {count} }}
  after:
    uses: ./fs_probe.wasm
    needs: [flaky]
    with: {{ list: . }}
"#
    )
}

fn session(pipeline: &str) -> Session {
    let session = Session::new();
    session.plugin("misbehave").plugin("fs_probe").dir("state");
    let state = session.path("state").canonicalize().unwrap();
    session.file(
        "flow.yaml",
        pipeline.replace("STATE", &state.display().to_string()),
    );
    session
}

#[test]
fn a_flaky_step_succeeds_on_a_later_attempt_and_every_attempt_is_recorded() {
    let session = session(&flaky(3, "{ attempts: 3, backoff: 0s }"));
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_success();
    assert!(
        out.stdout
            .contains("flaky  attempt 1 of 3 failed: flaky attempt 1 failed; retrying in 0ms\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("attempt 2 of 3 failed"),
        "{}",
        out.stdout
    );
    let (show, workspace) = session.last_run();
    let step = &show["steps"][0];
    assert_eq!(step["status"], "succeeded");
    let attempts = step["attempts"].as_array().expect("earlier attempts");
    assert_eq!(attempts.len(), 2, "{step}");
    for (i, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["attempt"], i + 1);
        assert_eq!(attempt["status"], "failed");
        assert_eq!(attempt["reason"], format!("flaky attempt {} failed", i + 1));
    }
    // Only the last attempt's files reach the steps that need it, and the workspace.
    assert_eq!(show["steps"][1]["outputs"]["entries"], "attempt-3.txt");
    let mut names: Vec<String> = std::fs::read_dir(&workspace)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["attempt-3.txt"]);

    // `show` lists the earlier attempts; the log holds every attempt, in order.
    let text = session.flow(["show", "last"]).run();
    text.expect_success();
    assert!(
        text.stdout.contains("attempt 1 failed after ")
            && text.stdout.contains(": flaky attempt 1 failed\n")
            && text.stdout.contains("attempt 3 succeeded\n"),
        "{}",
        text.stdout
    );
    let logs = session.flow(["logs", "last", "flaky"]).run();
    logs.expect_success();
    let first = logs.stdout.find("attempt 1\n").expect("attempt 1's output");
    let between = logs
        .stdout
        .find("attempt 1 of 3 failed: flaky attempt 1 failed; attempt 2 starts in 0ms")
        .unwrap_or_else(|| panic!("the host's line between attempts:\n{}", logs.stdout));
    let last = logs.stdout.find("attempt 3\n").expect("attempt 3's output");
    assert!(first < between && between < last, "{}", logs.stdout);

    // Provenance is the last attempt's, and says there were others; it verifies.
    let statement = session.statement("flaky");
    let text = statement.to_string();
    assert!(
        text.contains("attempt 3 of 3; earlier: attempt 1 failed: flaky attempt 1 failed"),
        "{text}"
    );
    let link = session
        .flow(["--json", "attest", "show", "last", "flaky"])
        .run();
    link.expect_success();
    assert!(!link.stdout.contains("attempt-1.txt"), "{}", link.stdout);
    session.flow(["verify", "last"]).run().expect_success();
}

#[test]
fn a_step_out_of_attempts_fails_with_its_last_attempt_s_reason() {
    let session = session(&flaky(5, "{ attempts: 2, backoff: 0s }"));
    session.flow(["run", "flow.yaml"]).run().expect_code(1);
    let (show, _) = session.last_run();
    let step = &show["steps"][0];
    assert_eq!(step["status"], "failed");
    assert_eq!(step["reason"], "flaky attempt 2 failed");
    assert_eq!(step["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(show["steps"][1]["status"], "skipped");
    assert_eq!(
        std::fs::read_to_string(session.path("state/attempts")).unwrap(),
        "2"
    );
}

#[test]
fn only_the_failures_retry_on_names_are_retried() {
    // A plain failure, retried only on timeouts: one attempt.
    let session = session(&flaky(2, "{ attempts: 3, backoff: 0s, on: [timeout] }"));
    session.flow(["run", "flow.yaml"]).run().expect_code(1);
    let (show, _) = session.last_run();
    assert_eq!(show["steps"][0]["status"], "failed");
    assert!(show["steps"][0].get("attempts").is_none(), "{show}");

    // A trap is retried when `on` names it.
    let session = Session::new();
    session.plugin("misbehave").file(
        "flow.yaml",
        "version: 1\nname: traps\nsteps:\n  crash:\n    uses: ./misbehave.wasm\n    retry: { attempts: 2, backoff: 0s, on: [trap] }\n    with: { mode: panic }\n",
    );
    session.flow(["run", "flow.yaml"]).run().expect_code(1);
    let (show, _) = session.last_run();
    let attempts = show["steps"][0]["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert!(
        attempts[0]["reason"]
            .as_str()
            .unwrap()
            .contains("misbehave was told to panic"),
        "{show}"
    );
}

#[test]
fn a_run_that_stops_does_not_wait_for_a_step_s_next_attempt() {
    let session = session(&format!(
        "{}  broken:\n    uses: ./misbehave.wasm\n    with: {{ mode: fail }}\n",
        flaky(5, "{ attempts: 3, backoff: 10m }")
    ));
    let started = Instant::now();
    session
        .flow(["run", "-j", "2", "flow.yaml"])
        .run()
        .expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the run waited {:?} for a retry",
        started.elapsed()
    );
    let (show, _) = session.last_run();
    // The waiting step ends with its last attempt's failure.
    assert_eq!(show["steps"][0]["status"], "failed");
    assert_eq!(show["steps"][0]["reason"], "flaky attempt 1 failed");
    session.flow(["verify", "last"]).run().expect_success();
}

#[test]
fn a_bad_retry_is_refused_at_its_line() {
    let session = Session::new();
    session.plugin("misbehave");
    for (retry, message) in [
        (
            "0",
            "4:12: error: `retry.attempts` must be a whole number from 1 to 100 (the first attempt included), found an integer",
        ),
        (
            "{ attempts: 2, on: [crash] }",
            "4:32: error: unknown failure `crash` in `retry.on`: use failed, trap, timeout",
        ),
        ("{ backoff: 2s }", "4:12: error: `retry` needs `attempts`"),
        (
            "{ attempts: 2, backoff: soon }",
            "4:36: error: `retry.backoff` must be a duration such as `2s` or `1m`",
        ),
    ] {
        session.file(
            "flow.yaml",
            format!(
                "version: 1\nname: bad\nsteps:\n  s:\n    uses: ./misbehave.wasm\n    retry: {retry}\n    with: {{ mode: ok }}\n"
            ),
        );
        let out = session.flow(["check", "flow.yaml"]).run();
        out.expect_code(2);
        assert!(
            out.stderr
                .contains(&message.replacen("4:", "flow.yaml:6:", 1)),
            "{retry}: {}",
            out.stderr
        );
    }
}
