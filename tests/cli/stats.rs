//! `flow runs --stats`: figures over the data dir's runs, per pipeline and step.

use crate::session::Session;

const STATS: &str = r#"version: 1
name: stats
steps:
  seed:
    uses: ./fs_probe.wasm
    with: { write: seed.txt, content: seed }
  flaky:
    uses: ./misbehave.wasm
    needs: [seed]
    retry: { attempts: 2, backoff: 0s }
    grants: { fs: [ { path: state, access: write } ] }
    with: { mode: flaky, path: STATE/attempts, count: 2 }
  after:
    uses: ./fs_probe.wasm
    needs: [flaky]
    with: { list: . }
"#;

const FAILS: &str = "version: 1\nname: fails\nsteps:\n  boom:\n    uses: ./misbehave.wasm\n    with: { mode: fail }\n";

#[test]
fn stats_count_outcomes_retries_cache_hits_and_failures() {
    let session = Session::new();
    session
        .plugin("misbehave")
        .plugin("fs_probe")
        .dir("state")
        .file("fails.yaml", FAILS);
    let state = session.path("state").canonicalize().unwrap();
    session.file(
        "flow.yaml",
        STATS.replace("STATE", &state.display().to_string()),
    );
    // `flaky` fails its first attempt in the first run only; `seed` is cached the second time.
    session.flow(["run", "flow.yaml"]).run().expect_code(0);
    session.flow(["run", "flow.yaml"]).run().expect_code(0);
    session.flow(["run", "fails.yaml"]).run().expect_code(1);
    session.flow(["run", "fails.yaml"]).run().expect_code(1);

    let out = session.flow(["--json", "runs", "--stats"]).run();
    out.expect_success();
    let stats = out.json();
    assert_eq!(stats["runs"], 4);
    let pipelines = stats["pipelines"].as_array().unwrap();
    let names: Vec<&str> = pipelines
        .iter()
        .map(|p| p["pipeline"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fails", "stats"]);
    let (fails, ok) = (&pipelines[0], &pipelines[1]);
    assert_eq!(
        (&fails["runs"], &fails["failed"], &fails["success_rate"]),
        (&2.into(), &2.into(), &0.0.into())
    );
    assert_eq!(
        (&ok["runs"], &ok["succeeded"], &ok["success_rate"]),
        (&2.into(), &2.into(), &1.0.into())
    );
    assert_eq!(ok["durations"]["count"], 2);
    let step = |id: &str| {
        ok["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(step("seed")["cached"], 1);
    assert_eq!(
        step("seed")["durations"]["count"],
        1,
        "a cached step did not run"
    );
    assert_eq!(
        (
            step("flaky")["retried"].clone(),
            step("flaky")["flaky"].clone()
        ),
        (1.into(), 1.into())
    );
    assert_eq!(stats["recent_failures"].as_array().unwrap().len(), 2);
    assert_eq!(stats["recent_failures"][0]["pipeline"], "fails");

    let plain = session.flow(["runs", "--stats", "--since", "1d"]).run();
    plain.expect_success();
    let text = &plain.stdout;
    assert!(text.starts_with("4 runs since "), "{text}");
    assert!(
        text.contains(
            "flakiest steps:\n  stats/flaky  1 succeeded after a retry, 0 failed, of 2 runs"
        ),
        "{text}"
    );
    assert!(text.contains("recent failures (flow logs RUN):"), "{text}");
    assert!(text.contains("misbehave was told to fail"), "{text}");
    let none = session
        .flow(["--json", "runs", "--stats", "--since", "0s"])
        .run();
    none.expect_success();
    assert_eq!(none.json()["runs"], 0);
    let bad = session.flow(["runs", "--since", "1d"]).run();
    bad.expect_code(2);
}
