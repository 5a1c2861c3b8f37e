//! Running commands without confinement: output, status, environment, cwd, killing,
//! reaping in a PID namespace, executing the checked file.
//!
//! Where PID namespaces are unavailable, the tests of what they guarantee print
//! `NOT RUN: ...` and pass, unless the `CI` environment variable is set: then they fail.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use flow_sandbox::{
    Bind, Reaping, ReapingSupport, ResolveError, RunError, StopReason, Stream, reaping, resolve,
    run,
};

/// Whether unconfined commands get a PID namespace here. Fails when they do not and `CI`
/// is set.
fn pid_namespace_available() -> bool {
    match reaping() {
        ReapingSupport::PidNamespace { .. } => true,
        ReapingSupport::ProcessGroupOnly { reason } => {
            if std::env::var_os("CI").is_some() {
                panic!("pid namespaces are required when CI is set: {reason}");
            }
            eprintln!("NOT RUN: no pid namespace for unconfined commands: {reason}");
            false
        }
    }
}

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
    assert_eq!(outcome.reaped, reaping().reaping());

    let (outcome, _) = run_to_end(&spec("sh", &["-c", "kill -9 $$"], &dir.path)).await;
    assert_eq!((outcome.code, outcome.signal), (None, Some(9)));

    // Not ignored, as it would be by PID 1 of a namespace.
    let (outcome, out) = run_to_end(&spec(
        "sh",
        &["-c", "kill -TERM $$; echo survived"],
        &dir.path,
    ))
    .await;
    assert_eq!((outcome.code, outcome.signal), (None, Some(15)), "{out:?}");
    assert_eq!(out.stdout, "");

    let (outcome, _) = run_to_end(&spec("sh", &["-c", "exit 255"], &dir.path)).await;
    assert_eq!((outcome.code, outcome.signal), (Some(255), None));
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
    let marker = unique_sleep();
    let script = format!("sleep {marker} & sleep {marker}");
    let spec = spec("sh", &["-c", &script], &dir.path);
    let seen = Seen::default();
    let start = Instant::now();
    let stop = stop_when_sleeping(marker.clone(), 2, seen.clone());
    let (outcome, _) = run_collect(&spec, stop).await.unwrap();
    let survivors = sleeping(&marker);
    kill_sleeping(&marker);
    assert!(seen.lock().unwrap().is_some(), "the sleeps never ran");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(outcome.stopped, Some(StopReason::Timeout));
    assert_eq!(outcome.signal, Some(libc_sigkill()));
    assert!(!outcome.success());
    assert_eq!(survivors, Vec::<u32>::new());
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
    let marker = unique_sleep();
    // One background job detached from the pipes, one still holding stdout.
    let script = format!(
        "sleep {marker} >/dev/null 2>&1 & sleep {marker} & \
         while [ ! -e go ]; do sleep 0.01; done; echo started"
    );
    let spec = spec("sh", &["-c", &script], &dir.path);
    let seen = Seen::default();
    let go = go_when_sleeping(marker.clone(), 2, dir.path.join("go"), seen.clone());
    let (outcome, out) = run_collect(&spec, go).await.unwrap();
    let released = seen.lock().unwrap().expect("the sleeps never ran");
    let survivors = sleeping(&marker);
    kill_sleeping(&marker);
    // Not held up by the sleep holding stdout.
    assert!(
        released.elapsed() < Duration::from_millis(900),
        "{:?}",
        released.elapsed()
    );
    assert_eq!(outcome.code, Some(0));
    assert_eq!(outcome.stopped, None);
    assert_eq!(out.stdout, "started\n");
    assert_eq!(survivors, Vec::<u32>::new());
}

/// The documented limit without a PID namespace; with one, the escaped process is killed.
#[tokio::test]
async fn escaped_process_holding_the_pipes_does_not_block_for_long() {
    let dir = tempdir();
    let marker = unique_sleep();
    let script =
        format!("setsid sleep {marker} & while [ ! -e go ]; do sleep 0.01; done; echo done");
    let spec = spec("sh", &["-c", &script], &dir.path);
    let seen = Seen::default();
    let go = go_when_sleeping(marker.clone(), 1, dir.path.join("go"), seen.clone());
    let (outcome, out) = run_collect(&spec, go).await.unwrap();
    let released = seen.lock().unwrap().expect("the sleep never ran");
    let survivors = sleeping(&marker);
    kill_sleeping(&marker);
    assert!(
        released.elapsed() < Duration::from_secs(2),
        "{:?}",
        released.elapsed()
    );
    assert_eq!(outcome.code, Some(0));
    assert_eq!(out.stdout, "done\n");
    match outcome.reaped {
        Reaping::PidNamespace => assert_eq!(survivors, Vec::<u32>::new()),
        Reaping::ProcessGroupOnly => assert_eq!(survivors.len(), 1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_run_kills_the_process_tree() {
    let dir = tempdir();
    let marker = unique_sleep();
    let script = format!("sleep {marker} & exec sleep {marker}");
    let spec = spec("sh", &["-c", &script], &dir.path);
    let task = tokio::spawn(async move {
        let _ = run(&spec, |_, _| {}, std::future::pending()).await;
    });
    assert!(
        eventually(Duration::from_secs(2), || sleeping(&marker).len() == 2),
        "the sleeps never ran"
    );
    task.abort();
    let _ = task.await;
    let gone = eventually(Duration::from_secs(1), || sleeping(&marker).is_empty());
    kill_sleeping(&marker);
    assert!(gone, "survivors");
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

/// The attack: the file rewritten in place, same size, modification time restored.
#[tokio::test]
async fn rewrite_in_place_with_restored_mtime_is_refused() {
    let dir = tempdir();
    let tool = dir.path.join("tool");
    write_exe(&tool, "#!/bin/sh\necho good\n");
    let mut spec = spec("true", &[], &dir.path);
    spec.command = resolve("tool", Some(dir.path.as_os_str())).unwrap();
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!((outcome.code, out.stdout.as_str()), (Some(0), "good\n"));

    // Keep the modification time, to restore it.
    let reference = dir.path.join("reference");
    fs::write(&reference, "").unwrap();
    touch_r(&tool, &reference);
    // Timestamps advance in ticks of a few milliseconds: make sure the rewrite is not in
    // the one the file was written in (a kernel with multigrain timestamps would not need
    // this, as the resolution's `stat` asked for the change time).
    std::thread::sleep(Duration::from_millis(30));
    let mut file = fs::OpenOptions::new().write(true).open(&tool).unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.write_all(b"#!/bin/sh\necho evil\n").unwrap();
    drop(file);
    touch_r(&reference, &tool);

    let now = fs::metadata(&tool).unwrap();
    let before = spec.command.identity;
    assert_eq!(
        (now.ino(), now.size(), now.mtime(), now.mtime_nsec()),
        (before.ino, before.size, before.mtime_sec, before.mtime_nsec),
        "the attack's premise: same inode, size and modification time"
    );

    let err = run_collect(&spec, std::future::pending())
        .await
        .unwrap_err();
    let RunError::Changed(ResolveError::Changed { ref detail, .. }) = err else {
        panic!("{err:?}");
    };
    assert!(
        detail.contains("status change time (ctime) changed"),
        "{detail}"
    );
    assert!(
        err.to_string()
            .starts_with("`tool` changed on disk since the pipeline was checked"),
        "{err}"
    );
    assert!(matches!(
        spec.command.check_unchanged(),
        Err(ResolveError::Changed { .. })
    ));
    assert!(matches!(
        spec.command.rehash(),
        Err(ResolveError::Changed { .. })
    ));
}

#[tokio::test]
async fn replaced_by_rename_is_refused() {
    let dir = tempdir();
    let tool = dir.path.join("tool");
    write_exe(&tool, "#!/bin/sh\necho good\n");
    let mut spec = spec("true", &[], &dir.path);
    spec.command = resolve("tool", Some(dir.path.as_os_str())).unwrap();
    let new = dir.path.join("new");
    write_exe(&new, "#!/bin/sh\necho evil\n");
    fs::rename(&new, &tool).unwrap();
    let err = run_collect(&spec, std::future::pending())
        .await
        .unwrap_err();
    let RunError::Changed(ResolveError::Changed { ref detail, .. }) = err else {
        panic!("{err:?}");
    };
    assert_eq!(detail, "the file was replaced (different inode)");
}

/// A script runs from its real path (its file checked through the open descriptor).
#[tokio::test]
async fn shebang_script_runs_from_its_checked_path() {
    let dir = tempdir();
    let tool = dir.path.join("tool");
    write_exe(&tool, "#!/bin/sh\necho \"$0\"; echo \"args: $*\"\n");
    let mut spec = spec("true", &["a b", "c"], &dir.path);
    spec.command = resolve("tool", Some(dir.path.as_os_str())).unwrap();
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!(outcome.code, Some(0), "{out:?}");
    // `$0` is the script's own path: scripts find their files through it.
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [tool.display().to_string().as_str(), "args: a b c"],
        "{out:?}"
    );
}

/// A binary is executed with `execveat` from the opened file, which it does not inherit.
#[tokio::test]
async fn binary_runs_from_the_opened_file_without_inheriting_it() {
    let dir = tempdir();
    let spec = spec("ls", &["-l", "/proc/self/fd/", "/proc/self/exe"], &dir.path);
    let real = spec.command.real_path.display().to_string();
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!(outcome.code, Some(0), "{out:?}");
    let (exe, fds): (Vec<&str>, Vec<&str>) = out
        .stdout
        .lines()
        .partition(|l| l.contains("/proc/self/exe"));
    assert!(
        exe.len() == 1 && exe[0].ends_with(&format!("-> {real}")),
        "{out:?}"
    );
    assert!(!fds.iter().any(|l| l.contains(&real)), "{out:?}");
}

/// Leftovers that left the process group and session are killed with the namespace,
/// before `run` returns.
#[tokio::test]
async fn setsid_and_daemonised_leftovers_are_reaped() {
    if !pid_namespace_available() {
        return;
    }
    let dir = tempdir();
    let marker = unique_sleep_of(300);
    let script = format!(
        "setsid sleep {marker} >/dev/null 2>&1 & \
         (setsid sh -c 'sleep {marker} </dev/null >/dev/null 2>&1 &' &); \
         while [ ! -e go ]; do sleep 0.01; done; echo done"
    );
    let spec = spec("sh", &["-c", &script], &dir.path);
    let seen = Seen::default();
    let go = go_when_sleeping(marker.clone(), 2, dir.path.join("go"), seen.clone());
    let (outcome, out) = run_collect(&spec, go).await.unwrap();
    let survivors = sleeping(&marker);
    kill_sleeping(&marker);
    assert!(seen.lock().unwrap().is_some(), "the sleeps never ran");
    assert_eq!((outcome.code, out.stdout.as_str()), (Some(0), "done\n"));
    assert_eq!(outcome.reaped, Reaping::PidNamespace);
    assert_eq!(survivors, Vec::<u32>::new());
}

#[tokio::test]
async fn stopped_run_reaps_setsid_and_daemonised_processes() {
    if !pid_namespace_available() {
        return;
    }
    let dir = tempdir();
    let marker = unique_sleep_of(300);
    let script = format!(
        "setsid sleep {marker} >/dev/null 2>&1 & \
         (setsid sh -c 'sleep {marker} </dev/null >/dev/null 2>&1 &' &); \
         exec sleep 300"
    );
    let spec = spec("sh", &["-c", &script], &dir.path);
    let seen = Seen::default();
    let stop = stop_when_sleeping(marker.clone(), 2, seen.clone());
    let (outcome, _) = run_collect(&spec, stop).await.unwrap();
    let survivors = sleeping(&marker);
    kill_sleeping(&marker);
    assert!(seen.lock().unwrap().is_some(), "the sleeps never ran");
    assert_eq!(outcome.stopped, Some(StopReason::Timeout));
    assert_eq!((outcome.code, outcome.signal), (None, Some(libc_sigkill())));
    assert_eq!(outcome.reaped, Reaping::PidNamespace);
    assert_eq!(survivors, Vec::<u32>::new());
}

#[tokio::test]
async fn files_written_are_owned_by_the_caller() {
    let dir = tempdir();
    let spec = spec("sh", &["-c", "echo x > file; mkdir sub; id -u"], &dir.path);
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!(outcome.code, Some(0), "{out:?}");
    let mine = dir.path.join("mine");
    fs::write(&mine, "").unwrap();
    let me = fs::metadata(&mine).unwrap();
    for written in ["file", "sub"] {
        let meta = fs::metadata(dir.path.join(written)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (me.uid(), me.gid()), "{written}");
    }
    assert_eq!(out.stdout.trim(), me.uid().to_string());
}

/// Runs this very test binary again as `nobody`, for the tests below: unprivileged, a user
/// namespace is needed for the PID namespace.
#[test]
fn unprivileged_user_gets_user_and_pid_namespaces() {
    use std::os::unix::process::CommandExt;
    let me = fs::metadata("/proc/self").unwrap();
    if me.uid() != 0 {
        eprintln!("NOT RUN: needs root to switch to an unprivileged user");
        return;
    }
    // The test binary may live where `nobody` cannot reach (a target dir under
    // /root): run a copy from a directory anyone can read.
    let copy_dir = tempfile::Builder::new()
        .prefix("flow-unprivileged")
        .tempdir_in("/tmp")
        .unwrap();
    fs::set_permissions(copy_dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let copy = copy_dir.path().join("run_unconfined");
    fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(&copy)
        .args([
            "--exact",
            "unprivileged",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(UNPRIVILEGED_ENV, "1")
        .env("TMPDIR", "/tmp")
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}\n{stderr}");
    if stderr.contains("NOT RUN") {
        eprintln!("{stderr}");
    }
}

const UNPRIVILEGED_ENV: &str = "FLOW_SANDBOX_TEST_UNPRIVILEGED";

/// Run by `unprivileged_user_gets_user_and_pid_namespaces`, as `nobody`.
#[tokio::test]
#[ignore = "run as an unprivileged user by unprivileged_user_gets_user_and_pid_namespaces"]
async fn unprivileged() {
    if std::env::var_os(UNPRIVILEGED_ENV).is_none() {
        return;
    }
    let uid = fs::metadata("/proc/self").unwrap().uid();
    assert_ne!(uid, 0);
    if !pid_namespace_available() {
        return;
    }
    assert_eq!(
        reaping(),
        &ReapingSupport::PidNamespace {
            user_namespace: true
        }
    );
    let dir = tempdir();
    let marker = unique_sleep_of(300);
    let script = format!(
        "echo x > file; id -u; id -g; \
         setsid sleep {marker} >/dev/null 2>&1 & \
         while [ ! -e go ]; do sleep 0.01; done"
    );
    let spec = spec("sh", &["-c", &script], &dir.path);
    let seen = Seen::default();
    let go = go_when_sleeping(marker.clone(), 1, dir.path.join("go"), seen.clone());
    let (outcome, out) = run_collect(&spec, go).await.unwrap();
    let survivors = sleeping(&marker);
    kill_sleeping(&marker);
    assert!(seen.lock().unwrap().is_some(), "the sleep never ran");
    assert_eq!(outcome.code, Some(0), "{out:?}");
    assert_eq!(outcome.reaped, Reaping::PidNamespace);
    assert_eq!(survivors, Vec::<u32>::new());
    let meta = fs::metadata(dir.path.join("file")).unwrap();
    let gid = fs::metadata("/proc/self").unwrap().gid();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    assert_eq!(out.stdout, format!("{uid}\n{gid}\n"));

    let (outcome, _) = run_to_end(&spec_in("sh", &["-c", "kill -TERM $$"], &dir)).await;
    assert_eq!((outcome.code, outcome.signal), (None, Some(15)));
    let (outcome, _) = run_to_end(&spec_in("sh", &["-c", "exit 3"], &dir)).await;
    assert_eq!((outcome.code, outcome.signal), (Some(3), None));
}

fn spec_in(cmd: &str, args: &[&str], dir: &TempDir) -> flow_sandbox::CommandSpec {
    spec(cmd, args, &dir.path)
}

fn touch_r(reference: &std::path::Path, file: &std::path::Path) {
    let status = Command::new("touch")
        .arg("-r")
        .arg(reference)
        .arg(file)
        .status()
        .unwrap();
    assert!(status.success());
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
