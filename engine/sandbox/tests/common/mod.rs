//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flow_sandbox::{Bind, CommandSpec, Outcome, RunError, StopReason, Stream, resolve, run};

/// The PATH used to resolve system commands in tests.
pub const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A temporary directory, canonicalised (so that `pwd` output compares equal).
pub struct TempDir {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn tempdir() -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fs::canonicalize(dir.path()).expect("canonicalize tempdir");
    TempDir { _dir: dir, path }
}

/// The sha256 of a file, as coreutils' `sha256sum` computes it (an independent tool).
pub fn sha256sum(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Writes an executable file.
pub fn write_exe(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A spec running system command `cmd` with `args` in `dir` (bound writable), with a
/// minimal PATH.
pub fn spec(cmd: &str, args: &[&str], dir: &Path) -> CommandSpec {
    CommandSpec {
        command: resolve(cmd, Some(OsStr::new(SYSTEM_PATH))).expect("resolve"),
        args: args.iter().map(|s| s.to_string()).collect(),
        cwd: dir.to_owned(),
        env: vec![("PATH".to_owned(), "/usr/bin:/bin".to_owned())],
        binds: vec![Bind::writable(dir)],
        network: false,
        confine: false,
    }
}

/// The collected output of a run.
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Runs `spec` until it ends or `stop` resolves, collecting its output.
pub async fn run_collect(
    spec: &CommandSpec,
    stop: impl Future<Output = StopReason> + Send,
) -> Result<(Outcome, Output), RunError> {
    let mut out = Output::default();
    let outcome = run(
        spec,
        |stream, bytes| {
            let s = String::from_utf8_lossy(bytes);
            match stream {
                Stream::Stdout => out.stdout.push_str(&s),
                Stream::Stderr => out.stderr.push_str(&s),
            }
        },
        stop,
    )
    .await?;
    Ok((outcome, out))
}

/// Runs `spec` to completion (no stop), collecting its output.
pub async fn run_to_end(spec: &CommandSpec) -> (Outcome, Output) {
    run_collect(spec, std::future::pending())
        .await
        .expect("run")
}

/// A stop future resolving with `Timeout` after `ms` milliseconds.
pub async fn timeout_after(ms: u64) -> StopReason {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    StopReason::Timeout
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// Waits up to `timeout` for `cond` to hold.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Live processes (not zombies) running `sleep <duration>`.
pub fn sleeping(duration: &str) -> Vec<u32> {
    let wanted = format!("sleep\0{duration}\0");
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline == wanted.as_bytes() && alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// A `sleep` duration unique to this test process and call, to find its processes.
pub fn unique_sleep() -> String {
    unique_sleep_of(30)
}

/// A `sleep` duration of a little more than `secs` seconds, unique to this test process and
/// call: the marker that finds its processes in `/proc/*/cmdline`.
pub fn unique_sleep_of(secs: u32) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{secs}.{}{:03}", std::process::id(), n)
}

/// When something happened, shared between a test and a future it runs.
pub type Seen = std::sync::Arc<std::sync::Mutex<Option<Instant>>>;

/// A stop future that never stops the command, but lets it go on: once `count` processes
/// run `sleep <marker>`, it creates the file `go` (which the command waits for) and notes
/// when in `seen`. After 5 s without them, it creates `go` anyway (and `seen` stays empty).
pub async fn go_when_sleeping(marker: String, count: usize, go: PathBuf, seen: Seen) -> StopReason {
    if wait_for_sleeping(&marker, count).await {
        *seen.lock().unwrap() = Some(Instant::now());
    }
    fs::write(&go, "").unwrap();
    std::future::pending().await
}

/// A stop future that stops the command (as a timeout) once `count` processes run
/// `sleep <marker>`, noting when in `seen`; after 5 s without them, it stops it anyway.
pub async fn stop_when_sleeping(marker: String, count: usize, seen: Seen) -> StopReason {
    if wait_for_sleeping(&marker, count).await {
        *seen.lock().unwrap() = Some(Instant::now());
    }
    StopReason::Timeout
}

async fn wait_for_sleeping(marker: &str, count: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if sleeping(marker).len() >= count {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Kills the processes running `sleep <marker>` (what a failed test left behind).
pub fn kill_sleeping(marker: &str) {
    for pid in sleeping(marker) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
}

/// Reads a pid written by a test command.
pub fn read_pid(path: &Path) -> u32 {
    assert!(
        eventually(Duration::from_secs(2), || fs::read_to_string(path)
            .map(|s| s.trim().parse::<u32>().is_ok())
            .unwrap_or(false)),
        "no pid in {}",
        path.display()
    );
    fs::read_to_string(path).unwrap().trim().parse().unwrap()
}
