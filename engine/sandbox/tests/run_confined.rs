//! Running commands under bubblewrap: visibility, read-only and writable binds, network,
//! environment, killing.
//!
//! When bubblewrap is unavailable these tests print `NOT RUN: ...` and pass, unless the
//! `CI` environment variable is set: then they fail.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use flow_sandbox::{Bind, CommandSpec, Confinement, StopReason, confinement, resolve};

/// Whether to run: bubblewrap works here. Fails when it does not and `CI` is set.
fn bwrap_available() -> bool {
    match confinement() {
        Confinement::Available { .. } => true,
        Confinement::Unavailable { reason } => {
            if std::env::var_os("CI").is_some() {
                panic!("bubblewrap is required when CI is set: {reason}");
            }
            eprintln!("NOT RUN: bwrap unavailable: {reason}");
            false
        }
    }
}

fn confined(cmd: &str, args: &[&str], dir: &TempDir) -> CommandSpec {
    let mut spec = spec(cmd, args, &dir.path);
    spec.confine = true;
    spec
}

#[test]
fn probe_reports_a_version() {
    if !bwrap_available() {
        return;
    }
    let Confinement::Available { path, version } = confinement() else {
        unreachable!()
    };
    assert!(path.is_absolute());
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "{version}"
    );
}

#[tokio::test]
async fn runs_and_streams_output() {
    if !bwrap_available() {
        return;
    }
    let dir = tempdir();
    let spec = confined("sh", &["-c", "echo out; echo err >&2; exit 4"], &dir);
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("out\n", "err\n")
    );
    assert_eq!(outcome.code, Some(4));
    assert!(outcome.confined);
}

#[tokio::test]
async fn unbound_paths_are_invisible() {
    if !bwrap_available() {
        return;
    }
    let (dir, secret) = (tempdir(), tempdir());
    fs::write(secret.path.join("file"), "secret").unwrap();
    let script = format!(
        "cat {}/file; echo cat=$?; ls /root; echo root=$?; ls /home | wc -l; pwd",
        secret.path.display()
    );
    let (outcome, out) = run_to_end(&confined("sh", &["-c", &script], &dir)).await;
    assert_eq!(outcome.code, Some(0), "{out:?}");
    assert!(!out.stdout.contains("secret"), "{out:?}");
    assert!(out.stdout.contains("cat=1\n"), "{out:?}");
    assert!(out.stdout.contains("root=2\n"), "{out:?}");
    assert!(
        out.stdout
            .ends_with(&format!("0\n{}\n", dir.path.display())),
        "{out:?}"
    );
}

#[tokio::test]
async fn password_hashes_are_hidden_but_etc_is_there() {
    if !bwrap_available() {
        return;
    }
    let dir = tempdir();
    let script = "wc -c < /etc/shadow; test -s /etc/passwd && echo passwd";
    let (outcome, out) = run_to_end(&confined("sh", &["-c", script], &dir)).await;
    assert_eq!(outcome.code, Some(0), "{out:?}");
    if std::path::Path::new("/etc/shadow").exists() {
        // Masked by /dev/null: empty, or unreadable (a device on a `nodev` mount).
        let masked = out.stdout == "0\npasswd\n"
            || (out.stdout == "passwd\n" && out.stderr.contains("Permission denied"));
        assert!(masked, "{out:?}");
    }
}

#[tokio::test]
async fn read_only_bind_cannot_be_written_writable_bind_can() {
    if !bwrap_available() {
        return;
    }
    let (dir, ro) = (tempdir(), tempdir());
    fs::write(ro.path.join("input"), "data").unwrap();
    let mut spec = confined(
        "sh",
        &[
            "-c",
            &format!(
                "cat {ro}/input; echo x > {ro}/new; echo ro=$?; echo written > out; echo rw=$?",
                ro = ro.path.display()
            ),
        ],
        &dir,
    );
    spec.binds.push(Bind::read_only(&ro.path));
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!(outcome.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "dataro=2\nrw=0\n", "{out:?}");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");
    assert!(!ro.path.join("new").exists());
    assert_eq!(
        fs::read_to_string(dir.path.join("out")).unwrap(),
        "written\n"
    );
}

#[tokio::test]
async fn nested_read_only_bind_inside_a_writable_one() {
    if !bwrap_available() {
        return;
    }
    let dir = tempdir();
    let locked = dir.path.join("locked");
    fs::create_dir(&locked).unwrap();
    let mut spec = confined("sh", &["-c", "echo a > locked/f; echo b > f"], &dir);
    // Given child first: the order of binds must not matter.
    spec.binds.insert(0, Bind::read_only(&locked));
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!(outcome.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");
    assert!(!locked.join("f").exists());
    assert!(dir.path.join("f").exists());
}

#[tokio::test]
async fn network_only_when_allowed() {
    if !bwrap_available() {
        return;
    }
    let dir = tempdir();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");

    let mut spec = confined("bash", &["-c", &script], &dir);
    let (outcome, out) = run_to_end(&spec).await;
    assert_ne!(outcome.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "");

    spec.network = true;
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!(outcome.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "connected\n");
}

#[tokio::test]
async fn environment_is_exactly_the_given_one() {
    if !bwrap_available() {
        return;
    }
    let dir = tempdir();
    let mut spec = confined("env", &[], &dir);
    spec.env = vec![
        ("FOO".into(), "bar baz".into()),
        ("EMPTY".into(), String::new()),
    ];
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!(outcome.code, Some(0), "{out:?}");
    let mut vars: Vec<_> = out.stdout.lines().collect();
    vars.sort();
    assert_eq!(vars, ["EMPTY=", "FOO=bar baz"]);

    // bubblewrap sets PWD itself; a given PWD wins.
    spec.env = vec![("PWD".into(), "/somewhere".into())];
    let (_, out) = run_to_end(&spec).await;
    assert_eq!(out.stdout, "PWD=/somewhere\n");

    spec.env.clear();
    let (_, out) = run_to_end(&spec).await;
    assert_eq!(out.stdout, "");
}

#[tokio::test]
async fn symlinked_command_runs_with_its_grant_name() {
    if !bwrap_available() {
        return;
    }
    let (dir, bin) = (tempdir(), tempdir());
    let sh = resolve("sh", Some(OsStr::new(SYSTEM_PATH))).unwrap();
    symlink(&sh.real_path, bin.path.join("mysh")).unwrap();
    let mut spec = confined("sh", &["-c", "echo $0"], &dir);
    spec.command = resolve("mysh", Some(bin.path.as_os_str())).unwrap();
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!(outcome.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "/run/flow-exec/mysh\n");

    // A command outside the system directories: its directory is made visible.
    let tool = bin.path.join("tool");
    write_exe(&tool, "#!/bin/sh\necho tool ran in $(pwd)\n");
    spec.command = resolve(tool.to_str().unwrap(), None).unwrap();
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!(outcome.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, format!("tool ran in {}\n", dir.path.display()));
}

#[tokio::test]
async fn command_found_through_a_symlinked_directory() {
    if !bwrap_available() {
        return;
    }
    let (dir, tools) = (tempdir(), tempdir());
    let real = tools.path.join("real");
    fs::create_dir(&real).unwrap();
    let link = tools.path.join("link");
    symlink(&real, &link).unwrap();
    write_exe(&real.join("tool"), "#!/bin/sh\necho tool; ls \"$1\"\n");
    let mut spec = confined("sh", &[link.to_str().unwrap()], &dir);
    spec.command = resolve("tool", Some(link.as_os_str())).unwrap();
    assert_eq!(spec.command.path, link.join("tool"));
    // The directory is visible both where the file really is and where it was found,
    // so that a PATH naming it works inside.
    spec.env = vec![("PATH".into(), format!("{}:/usr/bin:/bin", link.display()))];
    let (outcome, out) = run_to_end(&spec).await;
    assert_eq!(outcome.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "tool\ntool\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_the_whole_tree() {
    if !bwrap_available() {
        return;
    }
    let dir = tempdir();
    let marker = unique_sleep();
    let script = format!("sleep {marker} & sh -c 'sleep {marker}' & sleep {marker}");
    let spec = confined("sh", &["-c", &script], &dir);
    let all_seen = Arc::new(AtomicBool::new(false));
    let stop = {
        let (marker, all_seen) = (marker.clone(), all_seen.clone());
        async move {
            // Stop once all three sleeps run, or after 2 s.
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if sleeping(&marker).len() == 3 {
                    all_seen.store(true, Ordering::SeqCst);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            StopReason::Timeout
        }
    };
    let start = Instant::now();
    let (outcome, _) = run_collect(&spec, stop).await.unwrap();
    assert!(all_seen.load(Ordering::SeqCst), "the sleeps never all ran");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(outcome.stopped, Some(StopReason::Timeout));
    assert!(
        eventually(Duration::from_secs(1), || sleeping(&marker).is_empty()),
        "survivors: {:?}",
        sleeping(&marker)
    );
}

#[tokio::test]
async fn leftovers_die_with_the_sandbox() {
    if !bwrap_available() {
        return;
    }
    let dir = tempdir();
    let marker = unique_sleep();
    let script =
        format!("setsid sleep {marker} >/dev/null 2>&1 & sleep 0.1; kill -0 $! && echo started");
    let start = Instant::now();
    let (outcome, out) = run_to_end(&confined("sh", &["-c", &script], &dir)).await;
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    assert_eq!((outcome.code, out.stdout.as_str()), (Some(0), "started\n"));
    assert!(
        eventually(Duration::from_secs(1), || sleeping(&marker).is_empty()),
        "survivors: {:?}",
        sleeping(&marker)
    );
}

/// Exercised with `FLOW_NO_BWRAP=1` (without `CI`).
#[tokio::test]
async fn confining_without_bubblewrap_is_an_error() {
    let Confinement::Unavailable { reason } = confinement() else {
        return;
    };
    let dir = tempdir();
    let err = run_collect(&confined("true", &[], &dir), std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(err, flow_sandbox::RunError::ConfinementUnavailable { .. }),
        "{err}"
    );
    assert_eq!(err.to_string(), format!("cannot confine `true`: {reason}"));
}

const VANISH_ENV: &str = "FLOW_SANDBOX_TEST_VANISH";

/// flow killed the moment it starts a sandbox (before bubblewrap has run far enough to
/// ask to die with it) must not leave the sandbox running: the child asks for that
/// itself before it executes bubblewrap. Each round runs this test binary again, which
/// starts `sleep MARKER` confined and exits as soon as its child process exists.
#[test]
fn a_sandbox_started_as_flow_dies_dies_with_it() {
    if !bwrap_available() {
        return;
    }
    let marker = unique_sleep();
    for round in 0..12 {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "vanish_after_starting_a_sandbox", "--ignored"])
            .env(VANISH_ENV, format!("{marker} {}", round * 5000))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "round {round}: {out:?}");
        // Time for a sandbox left running to start its `sleep` (a few ms).
        std::thread::sleep(Duration::from_millis(500));
        let gone = eventually(Duration::from_secs(2), || sleeping(&marker).is_empty());
        if !gone {
            kill_sleeping(&marker);
        }
        assert!(gone, "round {round}: the sandbox outlived its flow");
    }
}

/// Run by `a_sandbox_started_as_flow_dies_dies_with_it`.
#[test]
#[ignore = "run in a process of its own by a_sandbox_started_as_flow_dies_dies_with_it"]
fn vanish_after_starting_a_sandbox() {
    let Some(marker) = std::env::var_os(VANISH_ENV) else {
        return;
    };
    let marker = marker.to_string_lossy().into_owned();
    // The sleep's marker, and how long after the child exists to go (in µs).
    let (marker, after) = marker.split_once(' ').unwrap_or((&marker, "0"));
    let after = Duration::from_micros(after.parse().unwrap_or(0));
    let dir = tempdir();
    let script = format!("sleep {marker}");
    let spec = confined("sh", &["-c", &script], &dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.spawn(async move {
        let _ = run_collect(&spec, std::future::pending()).await;
    });
    // As soon as any thread of this process has a child: gone, at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let started = fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .any(|task| {
                fs::read_to_string(task.path().join("children"))
                    .is_ok_and(|children| !children.trim().is_empty())
            });
        if started {
            let spin = Instant::now();
            while spin.elapsed() < after {}
            // SAFETY: ends the process without running anything of Rust's.
            unsafe { libc::_exit(0) };
        }
    }
    panic!("no child process within 10 s");
}
