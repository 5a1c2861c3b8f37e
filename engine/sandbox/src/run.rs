//! Running a resolved command, confined or not, streaming its output, killing its
//! process tree.

use std::future::Future;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::pin::pin;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::confine::{self, Confinement, EXEC_DIR, confinement};
use crate::reap::{ChildPlan, Exec, Mode, Reaping, reaping};
use crate::resolve::ResolveError;
use crate::spec::CommandSpec;

/// After the command exited (and its process group was killed), how long to keep reading
/// output from processes that escaped the group and still hold the pipes open.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Size of each read from the command's stdout or stderr.
const CHUNK: usize = 16 * 1024;

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Why a command was stopped before it finished on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// The step's deadline passed.
    Timeout,
    /// The run was cancelled (Ctrl-C, or the run failed elsewhere).
    Cancelled,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Exit code, if it exited. When confined, a command killed by signal `N` shows up as
    /// code `128 + N` (bubblewrap's convention), and bubblewrap's own failures as code 1
    /// with a `bwrap: ...` message on stderr.
    pub code: Option<i32>,
    /// The signal that killed it, if one did (unconfined; or bubblewrap itself, when
    /// confined, e.g. `SIGKILL` when stopped).
    pub signal: Option<i32>,
    /// Set when the `stop` future resolved first and the process tree was killed.
    pub stopped: Option<StopReason>,
    /// Wall time from start until the command was reaped and its output drained.
    pub duration: Duration,
    /// Whether it ran under bubblewrap.
    pub confined: bool,
    /// How what it left behind was reaped: [`Reaping::PidNamespace`] when confined
    /// (bubblewrap's) or when unconfined where [`reaping()`](crate::reaping()) found PID
    /// namespaces usable, else [`Reaping::ProcessGroupOnly`].
    pub reaped: Reaping,
}

impl Outcome {
    /// Whether the command exited with code 0 on its own.
    pub fn success(&self) -> bool {
        self.code == Some(0) && self.stopped.is_none()
    }
}

/// Why a command could not be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The working directory is unusable.
    #[error("working directory {} for `{name}`: {reason}", .cwd.display())]
    InvalidCwd {
        /// The command's grant.
        name: String,
        /// The working directory.
        cwd: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A bind is unusable.
    #[error("bind {} for `{name}`: {reason}", .path.display())]
    InvalidBind {
        /// The command's grant.
        name: String,
        /// The bind's path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An environment variable cannot be passed.
    #[error("environment variable {var:?} for `{name}`: {reason}")]
    InvalidEnv {
        /// The command's grant.
        name: String,
        /// The variable's name.
        var: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An argument contains a NUL byte.
    #[error("argument {index} of `{name}` contains a NUL byte")]
    InvalidArg {
        /// The command's grant.
        name: String,
        /// Index in [`CommandSpec::args`].
        index: usize,
    },
    /// The command changed since it was resolved, or is gone.
    #[error(transparent)]
    Changed(#[from] ResolveError),
    /// Confinement was asked for but is not available.
    #[error("cannot confine `{name}`: {reason}")]
    ConfinementUnavailable {
        /// The command's grant.
        name: String,
        /// Why (from [`Confinement::Unavailable`], or building the sandbox).
        reason: String,
    },
    /// The process could not be started.
    #[error("failed to start `{name}`{}: {source}", if *.confined { " under bwrap" } else { "" })]
    Spawn {
        /// The command's grant.
        name: String,
        /// Whether it was to be confined (then it is `bwrap` that failed to start).
        confined: bool,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Waiting for the process failed.
    #[error("waiting for `{name}`: {source}")]
    Wait {
        /// The command's grant.
        name: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Runs `spec` to completion, or until `stop` resolves.
///
/// Before starting, checks the spec (cwd, binds, environment, arguments), then opens the
/// command's real file and checks that the opened file is the one that was resolved
/// (device, inode, size, modification and change times; see
/// [`ResolvedCommand::check_unchanged`](crate::ResolvedCommand::check_unchanged)).
/// Unconfined, that very opened file is executed; confined, the check is made immediately
/// before bubblewrap is started (which executes the file by its path).
///
/// The command starts in a new process group, with stdin from `/dev/null`, and with
/// exactly the environment in the spec. Its stdout and stderr are passed to `on_output` in
/// chunks as they arrive (both streams concurrently, each in order); it is called from
/// within the returned future, so it should be quick and must not block.
///
/// Unconfined, the command runs in a new PID namespace where [`reaping()`](crate::reaping())
/// says the kernel allows one ([`Outcome::reaped`] tells which): when it exits or is
/// stopped, everything it started is killed, and this returns only once those processes
/// are gone. It is also killed (`PR_SET_PDEATHSIG`) if the thread that started it ends,
/// flow's death included: poll this future on a thread that outlives the command (a
/// tokio runtime's worker thread does).
///
/// When `stop` resolves first, the whole process group is sent `SIGKILL` and the command
/// is reaped; the outcome then has [`Outcome::stopped`] set. When the command exits on its
/// own, whatever it left behind in its process group (background jobs) is killed too.
/// Output is then drained until both pipes close, for at most a second (without a PID
/// namespace, a process that left the group, e.g. with `setsid`, may hold them open, and
/// keeps running). If the returned future is dropped early, the process group is killed
/// as well.
pub async fn run(
    spec: &CommandSpec,
    on_output: impl FnMut(Stream, &[u8]) + Send,
    stop: impl Future<Output = StopReason> + Send,
) -> Result<Outcome, RunError> {
    run_with(spec, on_output, stop, None).await
}

/// [`run`], with unconfined commands set up as `mode` says (`None`: as the probe found).
pub(crate) async fn run_with(
    spec: &CommandSpec,
    mut on_output: impl FnMut(Stream, &[u8]) + Send,
    stop: impl Future<Output = StopReason> + Send,
    mode: Option<Mode>,
) -> Result<Outcome, RunError> {
    validate(spec)?;
    let name = &spec.command.name;
    let spawn_error = |source: io::Error| RunError::Spawn {
        name: name.clone(),
        confined: spec.confine,
        source,
    };

    let (mut cmd, reaped) = if spec.confine {
        let bwrap = match confinement() {
            Confinement::Available { path, .. } => path,
            Confinement::Unavailable { reason } => {
                return Err(RunError::ConfinementUnavailable {
                    name: name.clone(),
                    reason: reason.clone(),
                });
            }
        };
        let args =
            confine::bwrap_args(spec).map_err(|reason| RunError::ConfinementUnavailable {
                name: name.clone(),
                reason,
            })?;
        tracing::debug!(command = %name, ?args, "starting under bwrap");
        let mut cmd = Command::new(bwrap);
        cmd.args(&args).current_dir("/");
        // bubblewrap asks to die with its parent only once it has set up (tens of ms):
        // flow killed before then would leave the sandbox running. So, where flow may
        // make a PID namespace by itself, bubblewrap runs in one whose init dies with
        // flow (asked for before anything runs, and checked), taking every process of
        // the namespace with it. Elsewhere, bubblewrap itself is made to die with flow
        // before it is executed, which leaves a sandbox that has just been made.
        let mode = match reaping().mode() {
            Mode::PidNamespace => Mode::PidNamespace,
            Mode::ProcessGroup | Mode::UserAndPidNamespace => Mode::ProcessGroup,
        };
        let file = std::fs::File::open(bwrap).map_err(spawn_error)?;
        let argv: Vec<&std::ffi::OsStr> = std::iter::once(bwrap.as_os_str())
            .chain(args.iter().map(|a| a.as_os_str()))
            .collect();
        let exec = Exec::new(file, bwrap, &argv, &spec.env).map_err(spawn_error)?;
        let plan = ChildPlan::new(mode, Some(exec));
        // SAFETY: `enter` only calls async-signal-safe functions, on memory prepared
        // before the fork (see the `reap` module).
        unsafe {
            cmd.pre_exec(move || plan.enter());
        }
        (cmd, Reaping::PidNamespace)
    } else {
        let mode = mode.unwrap_or_else(|| reaping().mode());
        let file = spec.command.open_unchanged()?;
        let argv: Vec<&std::ffi::OsStr> = std::iter::once(spec.command.argv0())
            .chain(spec.args.iter().map(String::as_str))
            .map(std::ffi::OsStr::new)
            .collect();
        let exec =
            Exec::new(file, &spec.command.real_path, &argv, &spec.env).map_err(spawn_error)?;
        let plan = ChildPlan::new(mode, Some(exec));
        tracing::debug!(command = %name, args = ?spec.args, cwd = %spec.cwd.display(), ?mode, "starting");
        // The program and arguments describe the command (for debugging): the child
        // executes the opened file itself, in `ChildPlan::enter`.
        let mut cmd = Command::new(&spec.command.real_path);
        cmd.arg0(spec.command.argv0())
            .args(&spec.args)
            .current_dir(&spec.cwd);
        // SAFETY: `enter` only calls async-signal-safe functions, on memory prepared
        // before the fork (see the `reap` module).
        unsafe {
            cmd.pre_exec(move || plan.enter());
        }
        (cmd, mode.reaping())
    };
    cmd.env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if spec.confine {
        // bubblewrap executes the file by its path: check it as late as possible.
        drop(spec.command.open_unchanged()?);
    }

    let started = Instant::now();
    let mut child = cmd.spawn().map_err(spawn_error)?;
    let group = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .filter(|&pid| pid > 1)
        .map(ProcessGroup);
    let (Some(group), Some(mut stdout), Some(mut stderr)) =
        (group, child.stdout.take(), child.stderr.take())
    else {
        // Not reachable with piped stdio on a fresh child; do not leave it running.
        let _ = child.start_kill();
        return Err(RunError::Spawn {
            name: name.clone(),
            confined: spec.confine,
            source: io::Error::other("the started process has no pid or pipes"),
        });
    };

    let mut stop = pin!(stop);
    let mut stopped = None;
    let mut status: Option<ExitStatus> = None;
    let mut drain_until: Option<tokio::time::Instant> = None;
    let (mut out_open, mut err_open) = (true, true);
    let mut out_buf = vec![0u8; CHUNK];
    let mut err_buf = vec![0u8; CHUNK];

    while status.is_none() || out_open || err_open {
        tokio::select! {
            biased;
            reason = &mut stop, if stopped.is_none() && status.is_none() => {
                tracing::debug!(command = %name, ?reason, "stopping: killing the process group");
                group.kill();
                stopped = Some(reason);
            }
            exited = child.wait(), if status.is_none() => {
                let exited = exited.map_err(|source| RunError::Wait { name: name.clone(), source })?;
                // Background processes the command left behind in its group.
                group.kill();
                status = Some(exited);
                drain_until = Some(tokio::time::Instant::now() + DRAIN_GRACE);
            }
            () = sleep_until(drain_until), if drain_until.is_some() => {
                tracing::debug!(command = %name, "output pipes still open after exit; not reading further");
                break;
            }
            read = stderr.read(&mut err_buf), if err_open => match read {
                Ok(0) => err_open = false,
                Ok(n) => on_output(Stream::Stderr, &err_buf[..n]),
                Err(e) => {
                    tracing::debug!(command = %name, error = %e, "reading stderr");
                    err_open = false;
                }
            },
            read = stdout.read(&mut out_buf), if out_open => match read {
                Ok(0) => out_open = false,
                Ok(n) => on_output(Stream::Stdout, &out_buf[..n]),
                Err(e) => {
                    tracing::debug!(command = %name, error = %e, "reading stdout");
                    out_open = false;
                }
            },
        }
    }
    group.disarm();

    let status = status.unwrap_or_else(|| unreachable!("the loop ends only after the wait"));
    Ok(Outcome {
        code: status.code(),
        signal: std::os::unix::process::ExitStatusExt::signal(&status),
        stopped,
        duration: started.elapsed(),
        confined: spec.confine,
        reaped,
    })
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The command's process group (its id is the command's pid, from `process_group(0)`).
///
/// Killed on drop unless disarmed, so that a dropped `run` future leaves nothing behind.
///
/// About pid reuse: the group id cannot be reused while any member is alive, and the
/// leader is not reaped before the stop kill. The kill of leftovers right after reaping
/// could, in theory, hit a new group if the pid space wrapped around between the two
/// system calls.
struct ProcessGroup(i32);

impl ProcessGroup {
    fn kill(&self) {
        // SAFETY: kill(2) has no memory-safety preconditions. The negative pid addresses the
        // process group whose id is the positive pid of our child (started with
        // process_group(0)), checked > 1 at construction, so never 0 or -1 (which would
        // address our own group or every process).
        let rc = unsafe { libc::kill(-self.0, libc::SIGKILL) };
        if rc != 0 {
            // ESRCH: the group is already empty.
            tracing::trace!(pgid = self.0, error = %io::Error::last_os_error(), "kill process group");
        }
    }

    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

fn validate(spec: &CommandSpec) -> Result<(), RunError> {
    let name = &spec.command.name;
    let bad_cwd = |reason: String| RunError::InvalidCwd {
        name: name.clone(),
        cwd: spec.cwd.clone(),
        reason,
    };
    for bind in &spec.binds {
        let bad = |reason: String| RunError::InvalidBind {
            name: name.clone(),
            path: bind.path.clone(),
            reason,
        };
        check_normalised(&bind.path).map_err(bad)?;
        if bind.path == Path::new("/") {
            return Err(bad("binding `/` would expose the whole host".to_owned()));
        }
        if confine::conflicts_with_exec_dir(&bind.path) {
            return Err(bad(format!(
                "overlaps {EXEC_DIR}, which the sandbox uses for itself"
            )));
        }
        if let Err(e) = std::fs::metadata(&bind.path) {
            return Err(bad(e.to_string()));
        }
    }
    check_normalised(&spec.cwd).map_err(bad_cwd)?;
    if !spec.binds.iter().any(|b| spec.cwd.starts_with(&b.path)) {
        return Err(bad_cwd("not inside any bind".to_owned()));
    }
    match std::fs::metadata(&spec.cwd) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(bad_cwd("not a directory".to_owned())),
        Err(e) => return Err(bad_cwd(e.to_string())),
    }
    for (var, value) in &spec.env {
        let reason = if var.is_empty() {
            Some("empty name")
        } else if var.contains('=') {
            Some("the name contains `=`")
        } else if var.contains('\0') || value.contains('\0') {
            Some("contains a NUL byte")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(RunError::InvalidEnv {
                name: name.clone(),
                var: var.clone(),
                reason,
            });
        }
    }
    if let Some(index) = spec.args.iter().position(|a| a.contains('\0')) {
        return Err(RunError::InvalidArg {
            name: name.clone(),
            index,
        });
    }
    Ok(())
}

/// Absolute, without `.` or `..` components.
fn check_normalised(path: &Path) -> Result<(), String> {
    if !path.is_absolute() {
        return Err("not an absolute path".to_owned());
    }
    if path
        .components()
        .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
    {
        return Err("contains `.` or `..`".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reap::trial;
    use crate::spec::Bind;
    use std::os::unix::fs::MetadataExt;

    fn sh(script: &str, dir: &Path) -> CommandSpec {
        CommandSpec {
            command: crate::resolve("sh", Some(std::ffi::OsStr::new("/usr/bin:/bin"))).unwrap(),
            args: vec!["-c".into(), script.into()],
            cwd: dir.to_owned(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            binds: vec![Bind::writable(dir)],
            network: false,
            confine: false,
        }
    }

    async fn run_in(mode: Mode, spec: &CommandSpec) -> (Outcome, String) {
        let mut stdout = String::new();
        let outcome = run_with(
            spec,
            |stream, bytes| {
                if stream == Stream::Stdout {
                    stdout.push_str(&String::from_utf8_lossy(bytes));
                }
            },
            std::future::pending(),
            Some(mode),
        )
        .await
        .unwrap();
        (outcome, stdout)
    }

    /// Live processes running `sleep <marker>`.
    fn sleeping(marker: &str) -> Vec<u32> {
        let wanted = format!("sleep\0{marker}\0");
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted.as_bytes())
            })
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect()
    }

    fn kill(pids: &[u32]) {
        for &pid in pids {
            // SAFETY: kill(2) on a pid this test found running its marker.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }

    fn marker(n: u32) -> String {
        format!("300.{}{n:03}", std::process::id())
    }

    /// The mode flow uses when it is not root, forced here (as root too).
    #[tokio::test]
    async fn user_and_pid_namespace_reaps_and_keeps_ids() {
        let dir = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(dir.path()).unwrap();
        if let Err(e) = trial(Mode::UserAndPidNamespace) {
            assert!(
                std::env::var_os("CI").is_none(),
                "user namespaces required with CI: {e}"
            );
            eprintln!("NOT RUN: no user namespace: {e}");
            return;
        }
        let m = marker(1);
        let script = format!(
            "echo x > file; setsid sleep {m} >/dev/null 2>&1 & sleep 0.2; kill -0 $! && echo started"
        );
        let (outcome, stdout) = run_in(Mode::UserAndPidNamespace, &sh(&script, &dir)).await;
        let survivors = sleeping(&m);
        kill(&survivors);
        assert_eq!((outcome.code, stdout.as_str()), (Some(0), "started\n"));
        assert_eq!(outcome.reaped, Reaping::PidNamespace);
        assert_eq!(survivors, Vec::<u32>::new());
        let meta = std::fs::metadata(dir.join("file")).unwrap();
        // SAFETY: no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));

        let (outcome, _) = run_in(Mode::UserAndPidNamespace, &sh("kill -TERM $$", &dir)).await;
        assert_eq!((outcome.code, outcome.signal), (None, Some(libc::SIGTERM)));
    }

    /// The fallback: today's behaviour, a process that left the group survives.
    #[tokio::test]
    async fn process_group_only_lets_setsid_escape() {
        let dir = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(dir.path()).unwrap();
        let m = marker(2);
        let script = format!(
            "setsid sleep {m} >/dev/null 2>&1 & sleep 0.2; kill -0 $! && echo started; echo $$"
        );
        let (outcome, stdout) = run_in(Mode::ProcessGroup, &sh(&script, &dir)).await;
        let survivors = sleeping(&m);
        kill(&survivors);
        assert_eq!(outcome.code, Some(0));
        assert_eq!(outcome.reaped, Reaping::ProcessGroupOnly);
        assert_eq!(survivors.len(), 1);
        // Not in a PID namespace: the shell's pid is not 2.
        assert!(stdout.starts_with("started\n"), "{stdout}");
        assert_ne!(stdout, "started\n2\n");

        let (outcome, _) = run_in(Mode::ProcessGroup, &sh("kill -TERM $$", &dir)).await;
        assert_eq!((outcome.code, outcome.signal), (None, Some(libc::SIGTERM)));
    }
}
