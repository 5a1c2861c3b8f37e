//! Which toolchain binary a rustup proxy runs.
//!
//! `~/.cargo/bin/cargo` is usually not cargo but rustup (a symlink or hard link to it),
//! which picks a toolchain (from `RUSTUP_TOOLCHAIN`, a `rust-toolchain.toml` in the working
//! directory or above, a directory override, the default) and executes that toolchain's
//! `cargo`. The command's own SHA-256 is then rustup's; [`rustup_toolchain`] asks rustup
//! which binary it would run, and hashes that.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::resolve::{ResolveError, ResolvedCommand, inspect};

/// How long `rustup which` and `<binary> --version` may each take.
const TIMEOUT: Duration = Duration::from_secs(20);
/// After such a process exited, how long to wait for its output pipes to close.
const DRAIN_GRACE: Duration = Duration::from_secs(1);
/// Output beyond this is not read.
const OUTPUT_LIMIT: u64 = 1024 * 1024;
/// rustup (1.28 and later) installs a missing toolchain on use unless this is `0`.
const AUTO_INSTALL: &str = "RUSTUP_AUTO_INSTALL";

/// The toolchain binary a rustup proxy runs, from [`rustup_toolchain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolchainBinary {
    /// The binary's path as rustup printed it
    /// (`~/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/cargo`).
    pub path: PathBuf,
    /// Its canonical path, all symlinks followed (different from `path` for a linked
    /// toolchain, `rustup toolchain link`).
    pub real_path: PathBuf,
    /// Lowercase hex SHA-256 of the real file, hashed from the opened file.
    pub sha256: String,
    /// The first line the binary prints for `--version` (`cargo 1.95.0 (...)`), if it
    /// succeeded and printed one.
    pub version: Option<String>,
    /// The toolchain's directory name (`1.95.0-x86_64-unknown-linux-gnu`), when the path
    /// is `.../toolchains/<name>/bin/<binary>`.
    pub toolchain: Option<String>,
}

/// When `command` is a rustup proxy, which toolchain binary it runs, given the working
/// directory and the complete environment the command will get (they decide the
/// toolchain: `RUSTUP_TOOLCHAIN`, `rust-toolchain.toml`, `RUSTUP_HOME`, `HOME`).
///
/// `None` when `command` is not a rustup proxy: when its real file is not named `rustup`
/// and no `rustup` next to it (in the directory it was found in) is the same file (a hard
/// link), or when it is `rustup` itself.
///
/// Otherwise, checks that the proxy is unchanged, runs `rustup which <argv0>` (the proxy's
/// own file, as `rustup`) in `cwd` with exactly `env` plus `RUSTUP_AUTO_INSTALL=0`, checks
/// that the printed path is an executable regular file and hashes it (as
/// [`resolve`](crate::resolve()) does), then runs it with `--version` (same `cwd` and
/// `env`) for its version line. Each process may take 20 seconds; it is then killed with
/// its process group. Blocks for as long as that takes, some tens of milliseconds usually.
///
/// Nothing is installed: rustup 1.28 and later do not install a missing toolchain for
/// `which`, and `RUSTUP_AUTO_INSTALL=0` keeps them from it elsewhere; a toolchain that is
/// not installed is an error ([`ResolveError::Toolchain`], with rustup's message). Older
/// rustup versions ignore `RUSTUP_AUTO_INSTALL`, and may install it.
///
/// The answer is not cached: it depends on rustup's settings (the default toolchain,
/// directory overrides) as well as on the arguments, and a stale answer would record the
/// wrong binary. The result is what rustup says at the time of the call; the proxy decides
/// again when the command starts, so call this immediately before running the command.
/// Only the binary the proxy runs is covered: tools that binary starts in turn (`rustc`,
/// through another proxy) are not.
///
/// `untrusted` are directories a step may write (its workspace, its writable grants):
/// a `rust-toolchain.toml` there can name a toolchain directory of the step's own
/// making (`path = "..."`), so a binary found below one of them is refused, and never
/// run for its version outside the sandbox.
pub fn rustup_toolchain(
    command: &ResolvedCommand,
    cwd: &Path,
    env: &[(String, String)],
    untrusted: &[&Path],
) -> Option<Result<ToolchainBinary, ResolveError>> {
    rustup_toolchain_within(command, cwd, env, untrusted, TIMEOUT)
}

pub(crate) fn rustup_toolchain_within(
    command: &ResolvedCommand,
    cwd: &Path,
    env: &[(String, String)],
    untrusted: &[&Path],
    timeout: Duration,
) -> Option<Result<ToolchainBinary, ResolveError>> {
    if !is_rustup_proxy(command) {
        return None;
    }
    Some(which(command, cwd, env, untrusted, timeout))
}

fn is_rustup_proxy(command: &ResolvedCommand) -> bool {
    if command.argv0() == "rustup" {
        return false;
    }
    if command.real_path.file_name() == Some(OsStr::new("rustup")) {
        return true;
    }
    let Some(dir) = command.path.parent() else {
        return false;
    };
    fs::metadata(dir.join("rustup"))
        .is_ok_and(|m| m.dev() == command.identity.dev && m.ino() == command.identity.ino)
}

fn which(
    command: &ResolvedCommand,
    cwd: &Path,
    env: &[(String, String)],
    untrusted: &[&Path],
    timeout: Duration,
) -> Result<ToolchainBinary, ResolveError> {
    let fail = |reason: String| ResolveError::Toolchain {
        name: command.name.clone(),
        reason,
    };
    command.check_unchanged()?;
    let argv0 = command.argv0();
    let which_env: Vec<(&str, &str)> = env
        .iter()
        .filter(|(k, _)| k != AUTO_INSTALL)
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([(AUTO_INSTALL, "0")])
        .collect();
    let shown = format!("`rustup which {argv0}`");
    let out = capture(
        &command.real_path,
        "rustup",
        &["which", argv0],
        cwd,
        &which_env,
        timeout,
    )
    .map_err(|e| fail(format!("{shown}: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(fail(format!(
            "{shown} failed ({}): {}",
            out.status,
            stderr.trim()
        )));
    }
    let line = out.stdout.strip_suffix(b"\n").unwrap_or(&out.stdout);
    if line.is_empty() || line.contains(&b'\n') {
        return Err(fail(format!(
            "{shown} printed {:?}, not one path",
            String::from_utf8_lossy(&out.stdout)
        )));
    }
    let path = PathBuf::from(OsStr::from_bytes(line));
    if !path.is_absolute() {
        return Err(fail(format!(
            "{shown} printed a relative path: {}",
            path.display()
        )));
    }
    let writable = |p: &Path| untrusted.iter().any(|dir| p.starts_with(dir));
    if writable(&path) {
        return Err(fail(format!(
            "{shown} names {}, in a directory the step may write: the step could have made that toolchain",
            path.display()
        )));
    }
    let found = inspect(&path).map_err(|rejection| rejection.into_error(path.clone()))?;
    if writable(&found.real_path) {
        return Err(fail(format!(
            "{shown} names {}, whose real file {} is in a directory the step may write: the step could have made that toolchain",
            path.display(),
            found.real_path.display()
        )));
    }
    let binary_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| argv0.to_owned());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let version = match capture(
        &found.real_path,
        &binary_name,
        &["--version"],
        cwd,
        &env,
        timeout,
    ) {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned),
        Ok(out) => {
            tracing::debug!(path = %path.display(), status = %out.status, "--version failed");
            None
        }
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "--version failed");
            None
        }
    };
    Ok(ToolchainBinary {
        toolchain: toolchain_name(&path),
        path,
        real_path: found.real_path,
        sha256: found.sha256,
        version,
    })
}

/// `<name>` in `.../toolchains/<name>/bin/<binary>`.
fn toolchain_name(path: &Path) -> Option<String> {
    let parts: Vec<&OsStr> = path.iter().collect();
    match parts.as_slice() {
        [.., toolchains, name, bin, _] if *toolchains == "toolchains" && *bin == "bin" => {
            name.to_str().map(str::to_owned)
        }
        _ => None,
    }
}

/// What a finished process printed.
struct Captured {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `program` (as `argv0`) with `args` in `cwd` with exactly `env`, in its own process
/// group, and collects its output; kills the group after `timeout`.
fn capture(
    program: &Path,
    argv0: &str,
    args: &[&str],
    cwd: &Path,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Captured, String> {
    let mut child = Command::new(program)
        .arg0(argv0)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let kill_group = |child: &mut std::process::Child| {
        if let Ok(pid) = i32::try_from(child.id())
            && pid > 1
        {
            // SAFETY: kill(2) has no memory-safety preconditions; -pid is the group of our
            // unreaped child (process_group(0)), pid > 1.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = child.kill();
        let _ = child.wait();
    };
    let readers = (
        child.stdout.take().map(read_in_thread).transpose(),
        child.stderr.take().map(read_in_thread).transpose(),
    );
    let (stdout, stderr) = match readers {
        (Ok(stdout), Ok(stderr)) => (stdout, stderr),
        (Err(e), _) | (_, Err(e)) => {
            kill_group(&mut child);
            return Err(e);
        }
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                kill_group(&mut child);
                return Err(format!("did not finish within {} s", timeout.as_secs_f64()));
            }
            Err(e) => {
                kill_group(&mut child);
                return Err(format!("waiting for it: {e}"));
            }
        }
    };
    let drained = Instant::now() + DRAIN_GRACE;
    Ok(Captured {
        status,
        stdout: collect(stdout, drained),
        stderr: collect(stderr, drained),
    })
}

fn read_in_thread(pipe: impl Read + Send + 'static) -> Result<mpsc::Receiver<Vec<u8>>, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("flow-rustup-output".into())
        .spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.take(OUTPUT_LIMIT).read_to_end(&mut buf);
            let _ = tx.send(buf);
        })
        .map_err(|e| format!("cannot start a thread to read its output: {e}"))?;
    Ok(rx)
}

fn collect(rx: Option<mpsc::Receiver<Vec<u8>>>, until: Instant) -> Vec<u8> {
    rx.and_then(|rx| {
        rx.recv_timeout(until.saturating_duration_since(Instant::now()))
            .ok()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn toolchain_names() {
        let name = |p: &str| toolchain_name(Path::new(p));
        assert_eq!(
            name("/root/.rustup/toolchains/1.95.0-x86_64-unknown-linux-gnu/bin/cargo").as_deref(),
            Some("1.95.0-x86_64-unknown-linux-gnu")
        );
        assert_eq!(name("/usr/bin/cargo"), None);
        assert_eq!(name("/opt/toolchains/bin/cargo"), None);
    }

    /// A fake rustup that never answers is killed, with what it started, and reported.
    #[test]
    fn hanging_rustup_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let dir = fs::canonicalize(dir.path()).unwrap();
        let marker = format!("300.{}777", std::process::id());
        let rustup = dir.join("rustup");
        fs::write(&rustup, format!("#!/bin/sh\nsleep {marker}\n")).unwrap();
        fs::set_permissions(&rustup, fs::Permissions::from_mode(0o755)).unwrap();
        fs::hard_link(&rustup, dir.join("cargo")).unwrap();
        let command = crate::resolve("cargo", Some(dir.as_os_str())).unwrap();
        let env = vec![("PATH".to_owned(), "/usr/bin:/bin".to_owned())];
        let started = Instant::now();
        let err = rustup_toolchain_within(&command, &dir, &env, &[], Duration::from_millis(300))
            .expect("a proxy")
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(err, ResolveError::Toolchain { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "cannot tell which toolchain binary `cargo` runs: `rustup which cargo`: did not \
             finish within 0.3 s"
        );
        let wanted = format!("sleep\0{marker}\0");
        let survivors = fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted.as_bytes()))
            .count();
        assert_eq!(survivors, 0);
    }
}
