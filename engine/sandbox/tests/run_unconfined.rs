//! Running commands without confinement: output, status, environment, cwd, killing.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use common::*;
use flow_sandbox::{Bind, RunError, StopReason, Stream, resolve, run};

#[tokio::test]
async fn output_is_streamed_per_stream_in_order() {
    let dir = tempdir();
    let spec = spec(
        "sh",
        &["-c", "for i in 1 2 3; do echo out$i; echo err$i >&2; done"],
        &dir.path,
    );
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!(out.stdout, "out1\nout2\nout3\n");
    assert_eq!(out.stderr, "err1\nerr2\nerr3\n");
    assert_eq!(outcome.code, Some(0));
    assert_eq!(outcome.signal, None);
    assert_eq!(outcome.stopped, None);
    assert!(!outcome.confined);
    assert!(outcome.success());
}

#[tokio::test]
async fn output_arrives_while_the_command_runs() {
    let dir = tempdir();
    let spec = spec(
        "sh",
        &["-c", "echo first; sleep 0.5; echo second >&2"],
        &dir.path,
    );
    let start = Instant::now();
    let mut arrivals = Vec::new();
    let outcome = run(
        &spec,
        |stream, bytes| arrivals.push((stream, bytes.to_vec(), start.elapsed())),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.code, Some(0));
    assert_eq!(arrivals.len(), 2, "{arrivals:?}");
    assert_eq!(
        (arrivals[0].0, &arrivals[0].1[..]),
        (Stream::Stdout, &b"first\n"[..])
    );
    assert_eq!(
        (arrivals[1].0, &arrivals[1].1[..]),
        (Stream::Stderr, &b"second\n"[..])
    );
    assert!(
        arrivals[1].2 - arrivals[0].2 >= Duration::from_millis(400),
        "{arrivals:?}"
    );
}

#[tokio::test]
async fn exit_code_and_signal() {
    let dir = tempdir();
    let (outcome, _) = run_to_end(&spec("sh", &["-c", "exit 3"], &dir.path)).await;
    assert_eq!((outcome.code, outcome.signal), (Some(3), None));
    assert!(!outcome.success());

    let (outcome, _) = run_to_end(&spec("sh", &["-c", "kill -9 $$"], &dir.path)).await;
    assert_eq!((outcome.code, outcome.signal), (None, Some(9)));
}

#[tokio::test]
async fn environment_is_exactly_the_given_one() {
    let dir = tempdir();
    let mut spec = spec("env", &[], &dir.path);
    spec.env = vec![
        ("FOO".into(), "bar baz".into()),
        ("EMPTY".into(), String::new()),
    ];
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!(outcome.code, Some(0));
    let mut vars: Vec<_> = out.stdout.lines().collect();
    vars.sort();
    assert_eq!(vars, ["EMPTY=", "FOO=bar baz"]);

    spec.env.clear();
    let (_, out) = run_to_end(&spec).await;
    assert_eq!(out.stdout, "");
}

#[tokio::test]
async fn cwd_is_honoured_and_stdin_is_empty() {
    let dir = tempdir();
    let sub = dir.path.join("sub");
    fs::create_dir(&sub).unwrap();
    let mut spec = spec("sh", &["-c", "pwd; cat; echo end"], &dir.path);
    spec.cwd = sub.clone();
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!(outcome.code, Some(0));
    assert_eq!(out.stdout, format!("{}\nend\n", sub.display()));
}

#[tokio::test]
async fn argv0_is_the_grant_name() {
    let dir = tempdir();
    let sh = resolve("sh", Some(OsStr::new(SYSTEM_PATH))).unwrap();
    symlink(&sh.real_path, dir.path.join("mysh")).unwrap();
    let mut spec = spec("sh", &["-c", "echo $0"], &dir.path);
    spec.command = resolve("mysh", Some(dir.path.as_os_str())).unwrap();
    let (_, out) = run_to_end(&spec).await;
    assert_eq!(out.stdout, "mysh\n");
}

#[tokio::test]
async fn stop_kills_the_process_tree() {
    let dir = tempdir();
    let spec = spec(
        "sh",
        &["-c", "sleep 30 & echo $! > bg.pid; sleep 30"],
        &dir.path,
    );
    let start = Instant::now();
    let (outcome, _) = run_collect(&spec, timeout_after(200)).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(outcome.stopped, Some(StopReason::Timeout));
    assert_eq!(outcome.signal, Some(libc_sigkill()));
    assert!(!outcome.success());
    let bg = read_pid(&dir.path.join("bg.pid"));
    assert!(
        eventually(Duration::from_secs(1), || !alive(bg)),
        "background {bg} survived"
    );
}

#[tokio::test]
async fn stop_reason_is_passed_through() {
    let dir = tempdir();
    let spec = spec("sleep", &["30"], &dir.path);
    let stop = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        StopReason::Cancelled
    };
    let (outcome, _) = run_collect(&spec, stop).await.unwrap();
    assert_eq!(outcome.stopped, Some(StopReason::Cancelled));
}

#[tokio::test]
async fn leftovers_are_killed_after_a_normal_exit() {
    let dir = tempdir();
    // One background job detached from the pipes, one still holding stdout.
    let spec = spec(
        "sh",
        &[
            "-c",
            "sleep 30 >/dev/null 2>&1 & echo $! > bg.pid; sleep 30 & echo started",
        ],
        &dir.path,
    );
    let start = Instant::now();
    let (outcome, out) = run_to_end(&spec).await;
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(outcome.code, Some(0));
    assert_eq!(outcome.stopped, None);
    assert_eq!(out.stdout, "started\n");
    let bg = read_pid(&dir.path.join("bg.pid"));
    assert!(
        eventually(Duration::from_secs(1), || !alive(bg)),
        "background {bg} survived"
    );
}

#[tokio::test]
async fn escaped_process_holding_the_pipes_does_not_block_for_long() {
    let dir = tempdir();
    let spec = spec(
        "sh",
        &[
            "-c",
            "setsid sh -c 'echo $$ > escaped.pid; exec sleep 30' & \
         while [ ! -s escaped.pid ]; do sleep 0.01; done; echo done",
        ],
        &dir.path,
    );
    let start = Instant::now();
    let (outcome, out) = run_to_end(&spec).await;
    let escaped = read_pid(&dir.path.join("escaped.pid"));
    // Documented limit: unconfined, a process that left the group is not killed.
    let survived = alive(escaped);
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .arg(escaped.to_string())
        .status();
    assert!(survived);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(outcome.code, Some(0));
    assert_eq!(out.stdout, "done\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_run_kills_the_process_tree() {
    let dir = tempdir();
    let spec = spec(
        "sh",
        &["-c", "sleep 30 & echo $! > bg.pid; exec sleep 30"],
        &dir.path,
    );
    let task = tokio::spawn(async move {
        let _ = run(&spec, |_, _| {}, std::future::pending()).await;
    });
    let bg = read_pid(&dir.path.join("bg.pid"));
    assert!(alive(bg));
    task.abort();
    let _ = task.await;
    assert!(
        eventually(Duration::from_secs(1), || !alive(bg)),
        "background {bg} survived"
    );
}

#[tokio::test]
async fn spec_is_checked_before_running() {
    let dir = tempdir();
    let other = tempdir();
    let base = spec("true", &[], &dir.path);

    let mut s = base.clone();
    s.cwd = other.path.clone();
    let err = run_collect(&s, std::future::pending()).await.unwrap_err();
    assert!(matches!(err, RunError::InvalidCwd { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "working directory {} for `true`: not inside any bind",
            other.path.display()
        )
    );

    let mut s = base.clone();
    s.cwd = "relative".into();
    let err = run_collect(&s, std::future::pending()).await.unwrap_err();
    assert!(err.to_string().contains("not an absolute path"), "{err}");

    let mut s = base.clone();
    s.cwd = dir.path.join("missing");
    let err = run_collect(&s, std::future::pending()).await.unwrap_err();
    assert!(err.to_string().contains("No such file"), "{err}");

    let mut s = base.clone();
    s.binds.push(Bind::read_only(dir.path.join("..").join("x")));
    let err = run_collect(&s, std::future::pending()).await.unwrap_err();
    assert!(matches!(err, RunError::InvalidBind { .. }), "{err}");
    assert!(err.to_string().contains("contains `.` or `..`"), "{err}");

    for root in ["/", "/run"] {
        let mut s = base.clone();
        s.binds.push(Bind::read_only(root));
        let err = run_collect(&s, std::future::pending()).await.unwrap_err();
        assert!(matches!(err, RunError::InvalidBind { .. }), "{err}");
    }

    let mut s = base.clone();
    s.env.push(("A=B".into(), "c".into()));
    let err = run_collect(&s, std::future::pending()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable \"A=B\" for `true`: the name contains `=`"
    );

    let mut s = base.clone();
    s.args.push("a\0b".into());
    let err = run_collect(&s, std::future::pending()).await.unwrap_err();
    assert_eq!(err.to_string(), "argument 0 of `true` contains a NUL byte");
}

#[tokio::test]
async fn changed_command_is_refused() {
    let dir = tempdir();
    let tool = dir.path.join("tool");
    write_exe(&tool, "#!/bin/sh\necho hi\n");
    let mut spec = spec("true", &[], &dir.path);
    spec.command = resolve("tool", Some(dir.path.as_os_str())).unwrap();
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!((outcome.code, out.stdout.as_str()), (Some(0), "hi\n"));

    write_exe(&tool, "#!/bin/sh\necho evil\n");
    let err = run_collect(&spec, std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::Changed(_)), "{err}");
    assert!(
        err.to_string()
            .starts_with("`tool` changed on disk since the pipeline was checked"),
        "{err}"
    );
}

#[tokio::test]
async fn spawn_failure_names_the_command() {
    let dir = tempdir();
    let tool = dir.path.join("tool");
    write_exe(&tool, "#!/nonexistent/interpreter\n");
    let mut spec = spec("true", &[], &dir.path);
    spec.command = resolve("tool", Some(dir.path.as_os_str())).unwrap();
    let err = run_collect(&spec, std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::Spawn { .. }), "{err}");
    assert!(
        err.to_string().starts_with("failed to start `tool`: "),
        "{err}"
    );
}

fn libc_sigkill() -> i32 {
    9
}

#[test]
fn run_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let dir = tempdir();
    let spec = spec("true", &[], &dir.path);
    let fut = run(&spec, |_, _| {}, std::future::pending());
    assert_send(&fut);
}
