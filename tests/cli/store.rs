//! What `flow` remembers: runs, show, logs, data dirs, the component cache,
//! and runs that end early (Ctrl-C, a killed process).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::session::{Session, run_id};

const HELLO: &str = r#"version: 1
name: hello
steps:
  greet:
    uses: echo
    with: { message: hi world }
  shout:
    uses: echo
    needs: [greet]
    with: { message: "${{ steps.greet.outputs.message }}!" }
"#;

fn run_ok(session: &Session, file: &str) -> String {
    let out = session.flow(["run", file]).run();
    out.expect_success();
    run_id(&out.stdout)
}

#[test]
fn runs_lists_newest_first() {
    let session = Session::new();
    let empty = session.flow(["runs"]).run();
    empty.expect_success();
    assert_eq!(
        session.normalize(&empty.stdout),
        "no runs yet in SESSION/data\n"
    );

    session.file("first.yaml", HELLO.replace("name: hello", "name: first"));
    session.file("second.yaml", HELLO.replace("name: hello", "name: second"));
    let first = run_ok(&session, "first.yaml");
    let second = run_ok(&session, "second.yaml");
    let out = session.flow(["runs"]).run();
    out.expect_success();
    assert_eq!(
        session.normalize(&out.stdout),
        "RUN                   STATUS       STARTED                    DURATION  PIPELINE
RUN  succeeded    <time> <dur>  second
RUN  succeeded    <time> <dur>  first
"
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[1].starts_with(&second) && lines[2].starts_with(&first),
        "{}",
        out.stdout
    );

    let limited = session.flow(["runs", "-n", "1"]).run();
    assert_eq!(limited.stdout.lines().count(), 2, "{}", limited.stdout);
    assert!(limited.stdout.contains(&second));
}

#[test]
fn show_finds_a_run_by_id_prefix_or_last() {
    let session = Session::new();
    session.file("flow.yaml", HELLO);
    let first = run_ok(&session, "flow.yaml");
    let second = run_ok(&session, "flow.yaml");
    let common = first
        .chars()
        .zip(second.chars())
        .take_while(|(a, b)| a == b)
        .count();

    let by_id = session.flow(["show", &first]).run();
    by_id.expect_success();
    assert!(
        by_id.stdout.starts_with(&format!("run       {first}\n")),
        "{}",
        by_id.stdout
    );

    let prefix = &first[..common + 1];
    let by_prefix = session.flow(["show", prefix]).run();
    by_prefix.expect_success();
    assert_eq!(by_prefix.stdout, by_id.stdout);

    let last = session.flow(["show", "last"]).run();
    last.expect_success();
    assert!(
        last.stdout.starts_with(&format!("run       {second}\n")),
        "{}",
        last.stdout
    );
}

#[test]
fn show_explains_an_unknown_or_ambiguous_run() {
    let session = Session::new();
    let none = session.flow(["show", "last"]).run();
    none.expect_code(2);
    assert_eq!(
        session.normalize(&none.stderr),
        "error: no runs yet in SESSION/data\n"
    );

    session.file("flow.yaml", HELLO);
    let first = run_ok(&session, "flow.yaml");
    let second = run_ok(&session, "flow.yaml");

    let unknown = session.flow(["show", "nope"]).run();
    unknown.expect_code(2);
    assert_eq!(unknown.stdout, "");
    assert_eq!(
        session.normalize(&unknown.stderr),
        "error: no run `nope` in SESSION/data\n"
    );

    let common = first
        .chars()
        .zip(second.chars())
        .take_while(|(a, b)| a == b)
        .count();
    let prefix = &first[..common];
    let ambiguous = session.flow(["show", prefix]).run();
    ambiguous.expect_code(2);
    let data = session.data_dir().display().to_string();
    let message = |a: &str, b: &str| {
        format!("error: `{prefix}` matches 2 runs in {data}: {a}, {b}; give more of the id\n")
    };
    assert!(
        ambiguous.stderr == message(&first, &second)
            || ambiguous.stderr == message(&second, &first),
        "{}",
        ambiguous.stderr
    );
}

#[test]
fn logs_prints_a_run_or_one_step() {
    let session = Session::new();
    session.file("flow.yaml", HELLO);
    let run = run_ok(&session, "flow.yaml");

    let all = session.flow(["logs", &run]).run();
    all.expect_success();
    assert_eq!(
        all.stdout,
        "greet | message = hi world\nshout | message = hi world!\n"
    );

    let one = session.flow(["logs", &run, "shout"]).run();
    one.expect_success();
    assert_eq!(one.stdout, "message = hi world!\n");

    let unknown = session.flow(["logs", "last", "shuot"]).run();
    unknown.expect_code(2);
    assert_eq!(
        session.normalize(&unknown.stderr),
        "error: run RUN in SESSION/data has no step `shuot`\n"
    );
}

#[test]
fn logs_stops_quietly_when_its_reader_goes_away() {
    let session = Session::new();
    session.plugin("misbehave").file(
        "flow.yaml",
        "version: 1\nname: flood\nsteps:\n  flood:\n    uses: ./misbehave.wasm\n    with: { mode: flood, count: 20000 }\n",
    );
    run_ok(&session, "flow.yaml");
    // `flow logs last flood | head -1`: the log is larger than a pipe holds.
    let mut logs = session
        .flow(["logs", "last", "flood"])
        .spawn_with_closed_stdout_after_first_line();
    let out = logs.wait(Duration::from_secs(30));
    assert_eq!(out.stderr, "", "writing to a closed pipe is not an error");
    assert_eq!(out.code(), Some(0));
}

#[test]
fn data_dir_comes_from_the_flag_or_the_environment() {
    let session = Session::new();
    session.file("flow.yaml", HELLO);

    let flag = session.path("from-flag");
    let out = session
        .flow(["--data-dir", "from-flag", "run", "flow.yaml"])
        .run();
    out.expect_success();
    assert!(flag.join("workspaces").join(run_id(&out.stdout)).is_dir());

    let env = session.path("from-env");
    let out = session
        .flow(["run", "flow.yaml"])
        .env("FLOW_DATA_DIR", &env)
        .run();
    out.expect_success();
    assert!(env.join("workspaces").join(run_id(&out.stdout)).is_dir());

    // Each dir holds its own run; the flag wins over the environment.
    let listed = session
        .flow(["--data-dir", "from-flag", "runs"])
        .env("FLOW_DATA_DIR", &env)
        .run();
    listed.expect_success();
    assert_eq!(listed.stdout.lines().count(), 2, "{}", listed.stdout);
    assert!(
        !session.data_dir().exists(),
        "the session's own data dir was not used"
    );
}

#[test]
fn the_default_data_dir_is_the_user_s_own_outside_the_repository() {
    let session = Session::new();
    session.file("project/flow.yaml", HELLO);
    let out = session
        .flow(["run", "project/flow.yaml"])
        .env_remove("FLOW_DATA_DIR")
        .run();
    out.expect_success();
    let run = run_id(&out.stdout);
    assert!(!session.path("project/.flow").exists());
    assert!(!session.path(".flow").exists());
    // One data dir per pipeline directory, named after it.
    let projects = session.home().join(".local/share/flow/projects");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&projects)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let name = dirs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("project-") && name.len() == "project-".len() + 16,
        "{name}"
    );
    assert!(dirs[0].join("workspaces").join(&run).is_dir());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dirs[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the data dir is the user's alone");

    // From the project directory, `flow show` finds it; so does `-C project`.
    for show in [
        session
            .flow(["show", "last"])
            .env_remove("FLOW_DATA_DIR")
            .current_dir(session.path("project"))
            .run(),
        session
            .flow(["-C", "project", "show", "last"])
            .env_remove("FLOW_DATA_DIR")
            .run(),
    ] {
        show.expect_success();
        assert!(
            show.stdout.starts_with(&format!("run       {run}\n")),
            "{}",
            show.stdout
        );
    }
    // Elsewhere there are no runs, and nothing is created by looking.
    let elsewhere = session
        .flow(["show", "last"])
        .env_remove("FLOW_DATA_DIR")
        .run();
    elsewhere.expect_code(2);
    assert!(
        elsewhere.stderr.starts_with("error: no runs yet in "),
        "{}",
        elsewhere.stderr
    );
    assert_eq!(std::fs::read_dir(&projects).unwrap().count(), 1);
}

#[test]
fn runs_recorded_beside_the_pipeline_by_earlier_versions_are_pointed_at() {
    let session = Session::new();
    session.file("project/flow.yaml", HELLO);
    // An earlier version's data dir: `.flow` beside the pipeline.
    session
        .flow(["--data-dir", "project/.flow", "run", "project/flow.yaml"])
        .run()
        .expect_success();
    let show = session
        .flow(["-C", "project", "show", "last"])
        .env_remove("FLOW_DATA_DIR")
        .run();
    show.expect_code(2);
    assert!(
        show.stderr.contains(
            "help: runs recorded by earlier versions of flow are in ./.flow: read them with `--data-dir ./.flow`"
        ),
        "{}",
        show.stderr
    );
    let run = session
        .flow(["run", "project/flow.yaml"])
        .env_remove("FLOW_DATA_DIR")
        .run();
    run.expect_code(0);
    assert!(
        session
            .normalize(&run.stderr)
            .contains("those recorded earlier stay in project/.flow (read them with `--data-dir project/.flow`)"),
        "{}",
        run.stderr
    );
}

fn cached_files(session: &Session) -> BTreeMap<String, SystemTime> {
    std::fs::read_dir(session.cache_dir())
        .expect("the cache dir exists after a run")
        .map(|entry| {
            let entry = entry.expect("a cache entry");
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .expect("an mtime");
            (entry.file_name().to_string_lossy().into_owned(), modified)
        })
        .collect()
}

#[test]
fn a_second_run_reuses_the_compiled_components() {
    let session = Session::new();
    session.plugin("misbehave").file(
        "flow.yaml",
        "version: 1\nname: cached\nsteps:\n  ok:\n    uses: ./misbehave.wasm\n    with: { mode: ok }\n  echo:\n    uses: echo\n    with: { m: x }\n",
    );
    run_ok(&session, "flow.yaml");
    let first = cached_files(&session);
    assert_eq!(
        first.len(),
        2,
        "one compiled component per plugin: {first:?}"
    );
    assert!(
        first.keys().all(|name| name.ends_with(".cwasm")),
        "{first:?}"
    );

    run_ok(&session, "flow.yaml");
    assert_eq!(
        cached_files(&session),
        first,
        "the second run rewrote the cache"
    );
}

const SPIN: &str = r#"version: 1
name: spin
steps:
  spin:
    uses: ./misbehave.wasm
    with: { mode: loop }
    timeout: 60s
  after:
    uses: echo
    needs: [spin]
    with: { m: x }
"#;

#[test]
fn ctrl_c_cancels_the_run() {
    cancel_with("INT");
}

/// SIGTERM, as CI services and process managers stop a job, cancels as Ctrl-C does.
#[test]
fn sigterm_cancels_the_run() {
    cancel_with("TERM");
}

fn cancel_with(signal: &str) {
    let session = Session::new();
    session.plugin("misbehave").file("flow.yaml", SPIN);
    let mut running = session.flow(["run", "flow.yaml"]).spawn();
    running.wait_for_stdout("spin   started\n", Duration::from_secs(30));
    running.signal(signal);
    let out = running.wait(Duration::from_secs(10));
    out.expect_code(1);
    assert!(
        out.took < Duration::from_secs(5),
        "cancelling took {:?}",
        out.took
    );
    assert_eq!(
        out.stderr,
        "\ncancelling: stopping running steps (press Ctrl-C again to quit at once)\n"
    );
    assert_eq!(
        session.normalize(&out.stdout),
        "run RUN started: spin (2 steps)
spin   started
spin   cancelled in <dur>: cancelled
after  cancelled: the run was cancelled before the step started
run RUN cancelled in <dur> (2 cancelled)
"
    );

    let show = session.flow(["show", "last"]).run();
    show.expect_success();
    assert_eq!(
        session.normalize(&show.stdout),
        "run       RUN
pipeline  spin (flow.yaml)
status    cancelled
started   <time>
duration <dur>
failure   cancelled

  STEP   STATUS     DURATION  PLUGIN
⊘ spin   cancelled <dur>  ./misbehave.wasm
         cancelled
⊘ after  cancelled         -  echo
         the run was cancelled before the step started
"
    );
}

#[test]
fn a_killed_run_is_shown_as_interrupted() {
    let session = Session::new();
    session.plugin("misbehave").file("flow.yaml", SPIN);
    let mut running = session.flow(["run", "flow.yaml"]).spawn();
    running.wait_for_stdout("spin   started\n", Duration::from_secs(30));
    running.signal("KILL");
    let out = running.wait(Duration::from_secs(10));
    assert_eq!(out.code(), None, "killed by a signal");
    let run = run_id(&out.stdout);

    // The first command to open the data dir notices, and says so once.
    let runs = session.flow(["runs"]).run();
    runs.expect_code(0);
    assert_eq!(
        runs.stderr,
        format!("note: run {run} was interrupted (its flow process ended while it ran)\n")
    );
    assert_eq!(
        session.normalize(&runs.stdout),
        "RUN                   STATUS       STARTED                    DURATION  PIPELINE
RUN  interrupted  <time>          -  spin
"
    );

    let show = session.flow(["show", "last"]).run();
    show.expect_success();
    // Whether the step's start reached the disk before the kill depends on
    // the store's background flush; both are honest.
    let spin_reason = if show.stdout.contains("ended while the step was running") {
        "flow process ended while the step was running"
    } else {
        "flow process ended before the step started"
    };
    assert_eq!(
        session.normalize(&show.stdout),
        format!(
            "run       RUN
pipeline  spin (flow.yaml)
status    interrupted
started   <time>
duration  -
failure   flow process ended while the run was in progress

  STEP   STATUS     DURATION  PLUGIN
⊘ spin   cancelled         -  ./misbehave.wasm
         {spin_reason}
⊘ after  cancelled         -  echo
         flow process ended before the step started
"
        )
    );
}
