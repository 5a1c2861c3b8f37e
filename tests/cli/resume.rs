//! `flow run --resume`: a run that failed, or whose process was killed at any moment,
//! continues in the same run; what it leaves (step outputs, workspace files) equals an
//! uninterrupted run's, and its provenance verifies as one run.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::provenance::verify_last_with_both_tools;
use crate::session::Session;

/// `seed` writes a file; `flaky` fails on its first attempt (it counts attempts in a
/// granted directory); `after` lists what it was given.
const FLAKY: &str = r#"version: 1
name: resumed
steps:
  seed:
    uses: ./fs_probe.wasm
    with: { write: seed.txt, content: seeded }
  flaky:
    uses: ./misbehave.wasm
    needs: [seed]
    grants: { fs: [ { path: state, access: write } ] }
    with: { mode: flaky, path: STATE/attempts, count: 2 }
  after:
    uses: ./fs_probe.wasm
    needs: [flaky]
    with: { list: . }
"#;

#[test]
fn a_failed_run_resumes_in_place_keeping_what_succeeded() {
    let session = Session::new();
    session.plugin("misbehave").plugin("fs_probe").dir("state");
    let state = session.path("state").canonicalize().unwrap();
    session.file(
        "flow.yaml",
        FLAKY.replace("STATE", &state.display().to_string()),
    );
    session.flow(["run", "flow.yaml"]).run().expect_code(1);
    let (failed, _) = session.last_run();
    let id = failed["run"]["id"].as_str().unwrap().to_owned();
    assert_eq!(failed["steps"][1]["status"], "failed");
    let seed_before = session.statement("seed");

    let out = session.flow(["run", "--resume", "last", "flow.yaml"]).run();
    out.expect_code(0);
    assert!(
        out.stdout.contains(&format!("run {id} started")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("seed   succeeded, kept (it finished before the run was resumed)"),
        "{}",
        out.stdout
    );
    let (resumed, workspace) = session.last_run();
    assert_eq!(resumed["run"]["id"], id.as_str(), "one run");
    assert_eq!(resumed["run"]["status"], "succeeded");
    assert_eq!(resumed["run"]["resumed_at"].as_array().unwrap().len(), 1);
    assert_eq!(
        resumed["steps"][2]["outputs"]["entries"],
        "attempt-2.txt,seed.txt"
    );
    let runs = session.flow(["--json", "runs"]).run().json_lines();
    assert_eq!(runs.len(), 1, "{runs:?}");
    // The kept step's envelopes are the ones signed before.
    assert_eq!(session.statement("seed"), seed_before);
    assert_eq!(
        std::fs::read_to_string(workspace.join("seed.txt")).unwrap(),
        "seeded"
    );
    assert!(workspace.join("attempt-2.txt").exists());
    assert!(!workspace.join("attempt-1.txt").exists());

    // One run, verified by flow and by in-toto-verify.
    verify_last_with_both_tools(&session, "a resumed run");

    // Nothing left to resume; and a changed pipeline or new inputs are refused.
    let again = session.flow(["run", "--resume", "last", "flow.yaml"]).run();
    again.expect_code(2);
    assert!(
        again
            .stderr
            .contains(&format!("run {id} succeeded: there is nothing to resume")),
        "{}",
        again.stderr
    );
    let both = session
        .flow(["run", "--resume", "last", "-i", "a=b", "flow.yaml"])
        .run();
    both.expect_code(2);
    assert!(
        both.stderr.contains("cannot be used with"),
        "{}",
        both.stderr
    );
}

#[test]
fn a_changed_pipeline_cannot_resume_a_run() {
    let session = Session::new();
    session.plugin("misbehave").file(
        "flow.yaml",
        "version: 1\nname: fails\nsteps:\n  boom:\n    uses: ./misbehave.wasm\n    with: { mode: fail }\n",
    );
    session.flow(["run", "flow.yaml"]).run().expect_code(1);
    session.file(
        "flow.yaml",
        "version: 1\nname: fails\nsteps:\n  boom:\n    uses: ./misbehave.wasm\n    with: { mode: fail, count: 2 }\n",
    );
    let out = session.flow(["run", "--resume", "last", "flow.yaml"]).run();
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("was started from another version of flow.yaml"),
        "{}",
        out.stderr
    );
}

/// 400 steps in a binary tree: each writes its own file and reads its parent's.
fn tree_pipeline() -> String {
    let mut text = String::from("version: 1\nname: tree\nsteps:\n");
    for i in 0..400 {
        text.push_str(&format!("  s{i}:\n    uses: ./fs_probe.wasm\n"));
        if i == 0 {
            text.push_str("    with: { write: f0.txt, content: root }\n");
        } else {
            let parent = (i - 1) / 2;
            text.push_str(&format!(
                "    needs: [s{parent}]\n    with: {{ read: f{parent}.txt, write: f{i}.txt, content: \"{i}\" }}\n"
            ));
        }
    }
    text
}

/// What a finished run left: each step's status and outputs (but `cwd`, the path of the
/// view it ran in), and the workspace's files.
fn result_of(
    session: &Session,
    data: &Path,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let data = data.to_str().unwrap();
    let show = session
        .flow(["--json", "--data-dir", data, "show", "last"])
        .run();
    show.expect_success();
    let show = show.json();
    assert_eq!(show["run"]["status"], "succeeded", "{}", show["run"]);
    let steps = show["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut outputs = s["outputs"].as_object().unwrap().clone();
            outputs.remove("cwd");
            (
                s["step_id"].as_str().unwrap().to_owned(),
                format!("{} {}", s["status"], serde_json::Value::Object(outputs)),
            )
        })
        .collect();
    let workspace = Path::new(show["run"]["workspace"].as_str().unwrap());
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(workspace).unwrap() {
        let path = entry.unwrap().path();
        files.insert(
            path.file_name().unwrap().to_string_lossy().into_owned(),
            std::fs::read_to_string(&path).unwrap_or_else(|e| format!("unreadable: {e}")),
        );
    }
    (steps, files)
}

/// How many kills: 100 (about six minutes on two cores); `FLOW_KILL_ROUNDS` for
/// another number.
fn rounds() -> u32 {
    std::env::var("FLOW_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

#[test]
fn a_run_killed_at_any_moment_resumes_to_what_an_uninterrupted_run_leaves() {
    let session = Session::new();
    session
        .plugin("fs_probe")
        .file("flow.yaml", tree_pipeline());
    // The uninterrupted run, and how long it takes.
    let whole = session.path("uninterrupted");
    let start = Instant::now();
    session
        .flow(["--data-dir", whole.to_str().unwrap(), "run", "flow.yaml"])
        .run()
        .expect_code(0);
    let took = start.elapsed();
    let expected = result_of(&session, &whole);
    assert_eq!(expected.0.len(), 400);
    assert_eq!(expected.1.len(), 400);

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill moments seeded with {seed}");
    let mut outcomes = BTreeMap::<&str, u32>::new();
    for round in 0..rounds() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let at = Duration::from_micros((seed >> 33) % (took.as_micros() as u64 + 1));
        let data = session.path(&format!("killed-{round}"));
        let data_arg = data.to_str().unwrap();
        let mut running = session
            .flow(["--data-dir", data_arg, "run", "flow.yaml"])
            .spawn();
        std::thread::sleep(at);
        running.signal("KILL");
        let killed = running.wait(Duration::from_secs(30));
        // The store opens afterwards (marking the run interrupted), whatever the moment.
        let runs = session
            .flow(["--json", "--data-dir", data_arg, "runs"])
            .run();
        runs.expect_code(0);
        let recorded = runs.stdout.lines().count();
        let outcome = match (killed.code(), recorded) {
            (Some(0), _) => "finished before the kill",
            (_, 0) => "killed before the run was recorded",
            _ => "killed mid-run",
        };
        *outcomes.entry(outcome).or_default() += 1;
        match outcome {
            "killed mid-run" => {
                let resumed = session
                    .flow([
                        "--data-dir",
                        data_arg,
                        "run",
                        "--resume",
                        "last",
                        "flow.yaml",
                    ])
                    .run();
                // A run killed after its last record was written has nothing left to do.
                if resumed.code() == Some(2) {
                    assert!(
                        resumed.stderr.contains("there is nothing to resume"),
                        "round {round} (killed at {at:?}): {}",
                        resumed.stderr
                    );
                } else {
                    resumed.expect_code(0);
                }
            }
            "killed before the run was recorded" => {
                session
                    .flow(["--data-dir", data_arg, "run", "flow.yaml"])
                    .run()
                    .expect_code(0);
            }
            _ => {}
        }
        let got = result_of(&session, &data);
        assert_eq!(got.0, expected.0, "round {round}: steps (killed at {at:?})");
        assert_eq!(
            got.1, expected.1,
            "round {round}: workspace (killed at {at:?})"
        );
        session
            .flow(["--data-dir", data_arg, "verify", "last"])
            .run()
            .expect_success();
        std::fs::remove_dir_all(&data).unwrap();
    }
    eprintln!("{outcomes:?}");
}
