//! `flow report RUN --out FILE.html`: one self-contained page about a run.

use crate::browser;
use crate::session::{Session, repo_root};

const PIPELINE: &str = r#"version: 1
name: reported
steps:
  seed:
    uses: ./fs_probe.wasm
    with: { write: seed.txt, content: "<b>not markup</b>" }
  reader:
    uses: ./fs_probe.wasm
    needs: [seed]
    with: { read: seed.txt }
  broken:
    uses: ./misbehave.wasm
    needs: [seed]
    continue-on-error: true
    with: { mode: fail }
"#;

#[test]
fn the_report_shows_every_step_its_dag_timeline_log_and_verification_and_loads_nothing() {
    let session = Session::new();
    session
        .plugin("fs_probe")
        .plugin("misbehave")
        .file("flow.yaml", PIPELINE);
    session.flow(["run", "flow.yaml"]).run().expect_code(0);
    // Again: `seed` and `reader` are taken from the cache.
    session.flow(["run", "flow.yaml"]).run().expect_code(0);
    let id = session.last_run().0["run"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = session
        .flow(["report", "last", "--out", "report.html"])
        .run();
    out.expect_success();
    assert!(
        out.stdout.starts_with("wrote report.html ("),
        "{}",
        out.stdout
    );
    let html = std::fs::read_to_string(session.path("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains(&format!("<title>flow run {id}</title>")));
    for step in ["seed", "reader", "broken"] {
        for id in [format!("id=\"node-{step}\""), format!("id=\"step-{step}\"")] {
            assert!(html.contains(&id), "no {id}");
        }
    }
    // The DAG's edges: seed -> reader, seed -> broken.
    let dag = &html[html.find("<svg id=\"dag\"").unwrap()..];
    let dag = &dag[..dag.find("</svg>").unwrap()];
    assert_eq!(dag.matches("<path ").count(), 2, "{dag}");
    assert!(html.contains("<svg id=\"timeline\""));
    // Cache, failure, output (escaped), log and verification are there.
    assert!(html.contains("cached (from "), "no cache tag");
    assert!(html.contains("misbehave was told to fail"));
    assert!(html.contains("&lt;b&gt;not markup&lt;/b&gt;"));
    assert!(!html.contains("<b>not markup</b>"));
    assert!(html.contains("class=\"line host\">not run: taken from the cache"));
    assert!(
        html.contains("<span class=\"ok\">flow verify: verified:"),
        "verification"
    );
    assert!(html.contains("signed by</td><td><code>"));
    // Self-contained: nothing is loaded from anywhere.
    for loads in ["src=", "href=", "url(", "@import", "http://", "https://"] {
        assert!(!html.contains(loads), "the page has `{loads}`");
    }
    // A run id nobody knows is the user's error.
    let bad = session.flow(["report", "nope", "--out", "x.html"]).run();
    bad.expect_code(2);
}

/// The release example's report in Chromium: every step in the DAG and on the
/// timeline, a click on a step opens its log, a search finds lines, and the page
/// asks nothing of the network.
#[test]
fn the_release_examples_report_renders_in_a_browser() {
    let Some(root) = repo_root() else { return };
    let session = Session::new();
    let example = root.join("templates/examples/release/flow.yaml");
    session
        .flow(["run", "--plain", example.to_str().unwrap()])
        .with_toolchain()
        .env("FLOW_RELEASE_KEY", session.release_key())
        .run()
        .expect_success();
    let (show, _) = session.last_run();
    let steps: Vec<String> = show["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(steps.len(), 5);
    let report = session.path("release.html");
    session
        .flow(["report", "last", "--out", report.to_str().unwrap()])
        .run()
        .expect_success();
    let shots = browser::shots("release-report");
    let Some(seen) = browser::check(
        "report.mjs",
        &[
            report.to_str().unwrap(),
            shots.to_str().unwrap(),
            "build",
            "Compiling",
        ],
    ) else {
        return;
    };
    assert_eq!(seen["status"], "succeeded", "{seen}");
    assert_eq!(seen["nodes"], serde_json::json!(steps), "{seen}");
    assert_eq!(seen["visibleNodes"], 5, "{seen}");
    assert_eq!(seen["bars"], serde_json::json!(steps), "{seen}");
    // checkout -> build -> scan, sign -> publish: at least one edge per later step.
    assert!(seen["edges"].as_u64().unwrap() >= 4, "{seen}");
    assert!(
        seen["verification"]
            .as_str()
            .unwrap()
            .contains("flow verify: verified"),
        "{seen}"
    );
    assert_eq!(seen["logVisibleBefore"], false, "{seen}");
    assert_eq!(seen["logVisibleAfter"], true, "{seen}");
    assert!(
        seen["logText"].as_str().unwrap().contains("Compiling"),
        "{seen}"
    );
    assert!(
        seen["hits"].as_str().unwrap().ends_with("matching lines"),
        "{seen}"
    );
    let only_the_file = seen["requests"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r.as_str().unwrap().starts_with("file://"));
    assert!(only_the_file, "the page loaded more than itself: {seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    assert!(shots.join("clicked-build.png").is_file());
}

/// A failed run's report: the failed step says why when clicked, the steps after
/// it show as skipped.
#[test]
fn a_failed_runs_report_renders_in_a_browser() {
    let session = Session::new();
    session.plugin("fs_probe").plugin("misbehave").file(
        "flow.yaml",
        r#"version: 1
name: failing
steps:
  seed:
    uses: ./fs_probe.wasm
    with: { write: seed.txt, content: "x" }
  broken:
    uses: ./misbehave.wasm
    needs: [seed]
    with: { mode: fail }
  after:
    uses: ./fs_probe.wasm
    needs: [broken]
    with: { read: seed.txt }
"#,
    );
    session.flow(["run", "flow.yaml"]).run().expect_code(1);
    let report = session.path("failed.html");
    session
        .flow(["report", "last", "--out", report.to_str().unwrap()])
        .run()
        .expect_success();
    let shots = browser::shots("failed-report");
    let Some(seen) = browser::check(
        "report.mjs",
        &[report.to_str().unwrap(), shots.to_str().unwrap(), "broken"],
    ) else {
        return;
    };
    assert_eq!(seen["status"], "failed", "{seen}");
    assert_eq!(
        seen["nodes"],
        serde_json::json!(["seed", "broken", "after"])
    );
    assert_eq!(seen["edges"], 2, "{seen}");
    // `after` never ran: it has no bar.
    assert_eq!(
        seen["bars"],
        serde_json::json!(["seed", "broken"]),
        "{seen}"
    );
    assert!(
        seen["reason"]
            .as_str()
            .unwrap()
            .contains("misbehave was told to fail"),
        "{seen}"
    );
    assert_eq!(seen["logVisibleAfter"], true, "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
}
