//! What a step can and cannot do: crashes, limits, files, logs.

use std::time::Duration;

use serde_json::Value;

use crate::session::{Session, run_id};

/// Run a one-step pipeline (`misbehave` and `fs_probe` copied in) and return
/// `flow show --json last` of it.
fn run_one(session: &Session, step: &str, expected_code: i32) -> Value {
    session.plugin("misbehave").plugin("fs_probe");
    session.file(
        "flow.yaml",
        format!("version: 1\nname: sandbox\nsteps:\n  probe:\n{step}"),
    );
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_code(expected_code);
    let show = session.flow(["--json", "show", "last"]).run();
    show.expect_success();
    let show = show.json();
    assert_eq!(show["run"]["id"], run_id(&out.stdout));
    show["steps"][0].clone()
}

#[test]
fn a_panic_fails_the_step_with_its_message() {
    let session = Session::new();
    let step = run_one(
        &session,
        "    uses: ./misbehave.wasm\n    with: { mode: panic }\n",
        1,
    );
    assert_eq!(step["status"], "failed");
    let reason = step["reason"].as_str().expect("a reason");
    assert!(
        reason.starts_with("the plugin crashed: panicked at plugins/testing/misbehave/src/lib.rs:")
            && reason.ends_with(": misbehave was told to panic"),
        "{reason}"
    );
    // The panic message is in the step's log too.
    let logs = session.flow(["logs", "last", "probe"]).run();
    logs.expect_success();
    assert!(
        logs.stdout.contains("misbehave was told to panic\n"),
        "{}",
        logs.stdout
    );
}

#[test]
fn an_endless_loop_times_out() {
    let session = Session::new();
    session.plugin("misbehave");
    session.file(
        "flow.yaml",
        "version: 1\nname: sandbox\nsteps:\n  spin:\n    uses: ./misbehave.wasm\n    with: { mode: loop }\n    timeout: 1s\n",
    );
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_code(1);
    assert_eq!(
        session.normalize(&out.stdout),
        "run RUN started: sandbox (1 step)
spin  started
spin  timed out in <dur>: timed out after <dur>
run RUN failed in <dur> (1 timed out)
  ⏱ spin timed out: timed out after <dur>
"
    );
    assert!(out.took < Duration::from_secs(10), "took {:?}", out.took);
    let show = session.flow(["--json", "show", "last"]).run().json();
    assert_eq!(show["steps"][0]["status"], "timed_out");
    assert_eq!(show["steps"][0]["reason"], "timed out after 1s");
    assert_eq!(
        show["run"]["failure"],
        "step `spin` timed out: timed out after 1s"
    );
}

#[test]
fn allocating_past_the_memory_limit_fails_the_step() {
    let session = Session::new();
    let step = run_one(
        &session,
        "    uses: ./misbehave.wasm\n    with: { mode: alloc }\n    memory: 64MiB\n",
        1,
    );
    assert_eq!(step["status"], "failed");
    assert_eq!(step["reason"], "exceeded its memory limit of 64 MiB");
}

#[test]
fn a_stack_overflow_crashes_the_step_not_flow() {
    let session = Session::new();
    let step = run_one(
        &session,
        "    uses: ./misbehave.wasm\n    with: { mode: stack }\n",
        1,
    );
    assert_eq!(step["status"], "failed");
    let reason = step["reason"].as_str().expect("a reason");
    assert!(reason.starts_with("the plugin crashed: "), "{reason}");
}

#[test]
fn host_files_outside_the_grants_are_invisible() {
    let session = Session::new();
    session.file("private/secret.txt", "the secret is 42\n");
    let secret = session.path("private/secret.txt").display().to_string();
    session.plugin("misbehave").file(
        "flow.yaml",
        format!(
            "version: 1\nname: sandbox\nsteps:\n  passwd:\n    uses: ./misbehave.wasm\n    with: {{ mode: read, path: /etc/passwd }}\n    continue-on-error: true\n  secret:\n    uses: ./misbehave.wasm\n    with: {{ mode: read, path: {secret} }}\n    continue-on-error: true\n"
        ),
    );
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_success();
    let show = session.flow(["--json", "show", "last"]).run().json();
    assert_eq!(show["steps"][0]["status"], "failed");
    assert_eq!(
        show["steps"][0]["reason"],
        "cannot read /etc/passwd: No such file or directory (os error 44)"
    );
    assert_eq!(show["steps"][1]["status"], "failed");
    assert_eq!(
        show["steps"][1]["reason"],
        format!("cannot read {secret}: No such file or directory (os error 44)")
    );
    assert_eq!(show["steps"][1]["outputs"], serde_json::json!({}));
    let everything = [
        out.stdout,
        session.flow(["show", "last"]).run().stdout,
        session.flow(["logs", "last"]).run().stdout,
    ]
    .concat();
    assert!(!everything.contains("the secret is 42"), "{everything}");
    assert!(!everything.contains("root:"), "{everything}");
}

#[test]
fn a_read_grant_shows_the_directory_at_its_own_path() {
    let session = Session::new();
    session
        .file("granted/notes.txt", "granted text\n")
        .file("granted/more.txt", "");
    let granted = session.path("granted").display().to_string();
    let step = run_one(
        &session,
        &format!(
            "    uses: ./fs_probe.wasm\n    with: {{ read: {granted}/notes.txt, list: {granted} }}\n    grants:\n      fs:\n        - {{ path: ./granted, access: read }}\n"
        ),
        0,
    );
    assert_eq!(step["status"], "succeeded");
    assert_eq!(step["outputs"]["content"], "granted text\n");
    assert_eq!(step["outputs"]["entries"], "more.txt,notes.txt");
}

#[test]
fn writing_into_a_read_grant_fails() {
    let session = Session::new();
    session.dir("granted");
    let target = session.path("granted/new.txt");
    let step = run_one(
        &session,
        &format!(
            "    uses: ./fs_probe.wasm\n    with: {{ write: {} }}\n    grants:\n      fs:\n        - {{ path: ./granted, access: read }}\n",
            target.display()
        ),
        1,
    );
    assert_eq!(step["status"], "failed");
    assert_eq!(
        step["reason"],
        format!(
            "cannot write {}: Operation not permitted (os error 63)",
            target.display()
        )
    );
    assert!(!target.exists(), "the file was written");
}

#[test]
fn writing_into_a_write_grant_reaches_the_host() {
    let session = Session::new();
    session.dir("out");
    let target = session.path("out/report.txt");
    let step = run_one(
        &session,
        &format!(
            "    uses: ./fs_probe.wasm\n    with: {{ write: {}, content: hello host }}\n    grants:\n      fs:\n        - {{ path: ./out, access: write }}\n",
            target.display()
        ),
        0,
    );
    assert_eq!(step["status"], "succeeded");
    assert_eq!(
        std::fs::read_to_string(&target).expect("the written file"),
        "hello host"
    );
}

#[test]
fn a_relative_write_lands_in_the_step_s_view_then_in_the_run_workspace() {
    let session = Session::new();
    let step = run_one(
        &session,
        "    uses: ./fs_probe.wasm\n    with: { write: made.txt, content: made }\n",
        0,
    );
    let show = session.flow(["--json", "show", "last"]).run().json();
    let run = show["run"]["id"].as_str().expect("run id").to_string();
    let workspace = session.data_dir().join("workspaces").join(&run);
    // The step ran in its own view of the workspace, removed once its files were kept.
    let view = session.data_dir().join("views").join(&run).join("0");
    assert_eq!(step["outputs"]["cwd"], view.display().to_string());
    assert!(!session.data_dir().join("views").join(&run).exists());
    assert_eq!(
        std::fs::read_to_string(workspace.join("made.txt")).expect("made.txt in the workspace"),
        "made"
    );
    assert!(!session.path("made.txt").exists());
}

#[test]
fn workspace_puts_the_run_workspace_where_asked() {
    let session = Session::new();
    session.plugin("fs_probe").file(
        "flow.yaml",
        "version: 1\nname: ws\nsteps:\n  probe:\n    uses: ./fs_probe.wasm\n    with: { write: made.txt, content: made }\n",
    );
    let workspace = session.path("my-workspace");
    let out = session
        .flow(["run", "flow.yaml", "--workspace", "my-workspace"])
        .run();
    out.expect_success();
    assert_eq!(
        std::fs::read_to_string(workspace.join("made.txt")).expect("made.txt in --workspace"),
        "made"
    );
    let show = session.flow(["--json", "show", "last"]).run().json();
    let run = show["run"]["id"].as_str().expect("run id");
    let view = session.data_dir().join("views").join(run).join("0");
    assert_eq!(
        show["steps"][0]["outputs"]["cwd"],
        view.display().to_string()
    );
    assert!(
        !session
            .data_dir()
            .join("workspaces")
            .join(run_id(&out.stdout))
            .exists()
    );
}

#[test]
fn a_log_flood_is_truncated_and_flow_stays_responsive() {
    let session = Session::new();
    session.plugin("misbehave").file(
        "flow.yaml",
        "version: 1\nname: flood\nsteps:\n  flood:\n    uses: ./misbehave.wasm\n    with: { mode: flood, count: 100000 }\n  quick:\n    uses: echo\n    with: { m: x }\n",
    );
    let out = session
        .flow(["--json", "run", "flow.yaml", "-j", "2"])
        .run();
    out.expect_success();
    let finished: Vec<String> = out
        .json_lines()
        .iter()
        .filter(|e| e["event"] == "step-finished")
        .map(|e| e["step"].as_str().expect("step").to_string())
        .collect();
    assert_eq!(
        finished,
        ["quick", "flood"],
        "the quick step finished while the flood went on"
    );

    let show = session.flow(["show", "last"]).run();
    show.expect_success();
    assert_eq!(
        session.normalize(&show.stdout),
        "run       RUN
pipeline  flood (flow.yaml)
status    succeeded
started   <time>
duration <dur>

  STEP   STATUS     DURATION  PLUGIN
✓ flood  succeeded <dur>  ./misbehave.wasm
         (log truncated)
✓ quick  succeeded <dur>  echo
         m = x
"
    );
    let logs = session.flow(["logs", "last", "flood"]).run();
    logs.expect_success();
    let lines: Vec<&str> = logs.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "flood line 0 .........................................................."
    );
    assert_eq!(
        lines.last().copied(),
        Some("log truncated: the step wrote more than 1048576 bytes")
    );
    assert!(
        logs.stdout.len() < (1 << 20) + 200,
        "kept {} bytes",
        logs.stdout.len()
    );
    assert!(!logs.stdout.contains("flood line 99999 "));
}
