//! A long step's progress (`log.progress`): thinned by the host, shown on the
//! terminal and in the run's events, and never a way for a plugin to write
//! escapes to the user's terminal.

use crate::session::Session;

fn progress_events(out: &crate::session::Output, step: &str) -> Vec<serde_json::Value> {
    out.json_lines()
        .into_iter()
        .filter(|e| e["event"] == "step-progress" && e["step"] == step)
        .collect()
}

#[test]
fn progress_reaches_the_events_thinned_and_ends_at_the_total() {
    let session = Session::new();
    session.plugin("misbehave").file(
        "flow.yaml",
        "version: 1\nname: progress\nsteps:\n  long:\n    uses: ./misbehave.wasm\n    with: { mode: progress, count: 1500, unit: \"\\e[2Jfiles\\n\" }\n",
    );
    let out = session.flow(["--json", "run", "flow.yaml"]).run();
    out.expect_code(0);
    let events = progress_events(&out, "long");
    let finished = out
        .json_lines()
        .into_iter()
        .find(|e| e["event"] == "step-finished")
        .unwrap();
    let ran_ms = finished["duration_ms"].as_u64().unwrap();
    // 1,501 reports over at least 1.5 s: at most one per 250 ms, plus the last.
    assert!(events.len() >= 3, "{events:?}");
    assert!(
        events.len() as u64 <= ran_ms / 250 + 2,
        "{} events in {ran_ms} ms",
        events.len()
    );
    let done: Vec<u64> = events.iter().map(|e| e["done"].as_u64().unwrap()).collect();
    assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");
    assert_eq!(*done.last().unwrap(), 1500);
    assert!(events.iter().all(|e| e["total"] == 1500));
    // The plugin's escape and new line are not passed on.
    assert!(events.iter().all(|e| e["unit"] == "[2Jfiles"), "{events:?}");
    // Plain output (a CI log) says it at most every few seconds: here, once.
    let plain = session
        .flow(["run", "--plain", "--no-cache", "flow.yaml"])
        .run();
    plain.expect_code(0);
    let said: Vec<&str> = plain
        .stdout
        .lines()
        .filter(|l| l.contains("[2Jfiles"))
        .collect();
    assert_eq!(said.len(), 1, "{}", plain.stdout);
    assert!(!plain.stdout.contains('\u{1b}'));
}
