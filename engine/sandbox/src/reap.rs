//! Reaping what an unconfined command leaves behind, and executing the very file that was
//! checked.
//!
//! Where the kernel allows it, an unconfined command runs in a new PID namespace, so that
//! nothing it starts (even after `setsid`, or double-forked into a daemon) outlives it:
//!
//! ```text
//! flow ── fork ──> relay (outside the namespace; in flow's process group)
//!                    │ unshare(CLONE_NEWPID [| CLONE_NEWUSER]), fork
//!                    └──> init (PID 1 of the namespace; in the command's process group)
//!                           │ fork
//!                           └──> the command (PID 2), exec'd from the checked file
//! ```
//!
//! The init waits for the command and hands its raw wait status to the relay over a socket,
//! then exits; when a namespace's PID 1 exits, the kernel kills everything left in it and
//! waits until those processes are gone. The relay then reaps the init, and exits the way
//! the command did (the same exit code, or the same signal re-raised on itself), so that
//! the caller sees the command's status only once the namespace is empty.
//!
//! The command is not PID 1 itself because PID 1 of a namespace ignores every signal it
//! has no handler for unless it comes from an ancestor namespace as `SIGKILL` or
//! `SIGSTOP`: `kill -TERM $$` would do nothing, and a broken pipe would not kill it.
//!
//! The relay leaves the command's process group for flow's own, so that a stop (`SIGKILL`
//! to the command's group) kills the init, the command and its group, but the relay lives
//! on to reap the init once the namespace is empty. It ignores the keyboard, hang-up and
//! termination signals that reach flow's group, and dies with flow (`PR_SET_PDEATHSIG`);
//! the init dies with the relay in the same way.
//!
//! Everything that runs in a child between the fork and the exec is async-signal-safe: raw
//! system calls on memory prepared before the fork, no allocation, no locks, no panics.
//! Forks there use `clone3` (the C library's `fork` runs `atfork` handlers), falling back
//! to `fork` where `clone3` is unavailable (kernels before 5.3, some seccomp filters).

use std::ffi::{CString, OsStr, c_char, c_int, c_uint, c_ulong};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Environment variable that, set to anything but empty or `0`, makes the probe report
/// PID namespaces as unavailable: unconfined commands then get their process group only
/// (for tools that misbehave in a PID namespace, see the crate documentation).
pub const NO_PID_NAMESPACE_ENV: &str = "FLOW_NO_PID_NAMESPACE";

/// How long the probe's trial may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How what a command leaves behind is reaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reaping {
    /// The command ran in its own PID namespace (a new one, or bubblewrap's when
    /// confined): when it ended or was stopped, every process it started was killed,
    /// including those that left its process group or session.
    PidNamespace,
    /// Only the command's process group was killed: a process that left it (`setsid`,
    /// a daemon) survives.
    ProcessGroupOnly,
}

/// Whether unconfined commands can run in a PID namespace on this host, from
/// [`reaping()`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReapingSupport {
    /// They run in a new PID namespace.
    PidNamespace {
        /// Whether a user namespace is created with it, because flow may not create a PID
        /// namespace on its own (it is not root). The user's uid and gid are mapped to
        /// themselves.
        user_namespace: bool,
    },
    /// They run in their own process group only.
    ProcessGroupOnly {
        /// Why, for humans.
        reason: String,
    },
}

impl ReapingSupport {
    /// What commands run with this support get.
    pub fn reaping(&self) -> Reaping {
        match self {
            ReapingSupport::PidNamespace { .. } => Reaping::PidNamespace,
            ReapingSupport::ProcessGroupOnly { .. } => Reaping::ProcessGroupOnly,
        }
    }

    /// Tries, in a child process, to create a PID namespace (then, if that is refused, a
    /// user and a PID namespace) and to start a process in it, as is done for every
    /// unconfined command. Blocks for as long as that takes, a millisecond or so;
    /// [`reaping()`] caches the answer.
    ///
    /// Setting `FLOW_NO_PID_NAMESPACE=1` ([`NO_PID_NAMESPACE_ENV`]) in the environment
    /// forces [`ReapingSupport::ProcessGroupOnly`].
    pub fn probe() -> ReapingSupport {
        let disabled = std::env::var_os(NO_PID_NAMESPACE_ENV);
        let support = probe_with(disabled.as_deref());
        tracing::debug!(?support, "pid namespaces for unconfined commands");
        support
    }

    pub(crate) fn mode(&self) -> Mode {
        match self {
            ReapingSupport::PidNamespace {
                user_namespace: false,
            } => Mode::PidNamespace,
            ReapingSupport::PidNamespace {
                user_namespace: true,
            } => Mode::UserAndPidNamespace,
            ReapingSupport::ProcessGroupOnly { .. } => Mode::ProcessGroup,
        }
    }
}

/// The result of [`ReapingSupport::probe`], computed once per process.
pub fn reaping() -> &'static ReapingSupport {
    static PROBED: OnceLock<ReapingSupport> = OnceLock::new();
    PROBED.get_or_init(ReapingSupport::probe)
}

fn probe_with(disabled: Option<&OsStr>) -> ReapingSupport {
    if let Some(v) = disabled
        && !v.is_empty()
        && v != "0"
    {
        return ReapingSupport::ProcessGroupOnly {
            reason: format!("disabled by {NO_PID_NAMESPACE_ENV}={}", v.to_string_lossy()),
        };
    }
    let pid_only = match trial(Mode::PidNamespace) {
        Ok(()) => {
            return ReapingSupport::PidNamespace {
                user_namespace: false,
            };
        }
        Err(e) => e,
    };
    match trial(Mode::UserAndPidNamespace) {
        Ok(()) => ReapingSupport::PidNamespace {
            user_namespace: true,
        },
        Err(with_user) => ReapingSupport::ProcessGroupOnly {
            reason: format!(
                "cannot create a pid namespace ({pid_only}), nor one in a new user namespace \
                 ({with_user})"
            ),
        },
    }
}

/// Runs the child side of `mode` without a command: the process that would execute it
/// exits with 0 instead.
pub(crate) fn trial(mode: Mode) -> Result<(), String> {
    let plan = ChildPlan::new(mode, None);
    // The program is never executed: the closure ends the child before std would.
    let mut cmd = std::process::Command::new("/nonexistent/flow-reaping-probe");
    cmd.env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    // SAFETY: the closure only calls async-signal-safe functions (see `ChildPlan::enter`).
    unsafe {
        cmd.pre_exec(move || {
            plan.enter()?;
            // Where the command would be executed: done.
            libc::_exit(0)
        });
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < PROBE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(None) => {
                if let Ok(pid) = i32::try_from(child.id())
                    && pid > 1
                {
                    // SAFETY: kill(2) has no memory-safety preconditions; -pid is the trial's
                    // process group (process_group(0)), pid > 1.
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("the trial did not finish within {PROBE_TIMEOUT:?}"));
            }
            Err(e) => return Err(format!("waiting for the trial: {e}")),
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(format!("the trial failed ({status})"))
    }
}

/// How a child is set up before the command is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Only its own process group (set up by the caller).
    ProcessGroup,
    /// A new PID namespace.
    PidNamespace,
    /// A new user namespace (uid and gid mapped to themselves) and PID namespace.
    UserAndPidNamespace,
}

impl Mode {
    pub(crate) fn reaping(self) -> Reaping {
        match self {
            Mode::ProcessGroup => Reaping::ProcessGroupOnly,
            Mode::PidNamespace | Mode::UserAndPidNamespace => Reaping::PidNamespace,
        }
    }
}

/// Everything the child needs, prepared before the fork.
pub(crate) struct ChildPlan {
    mode: Mode,
    /// flow's pid: the child checks that its parent is still this process once it asked to
    /// die with it.
    parent_pid: libc::pid_t,
    /// flow's process group, which the relay joins.
    parent_pgid: libc::pid_t,
    /// `/proc/self/uid_map` and `gid_map` contents, for [`Mode::UserAndPidNamespace`].
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    /// What to execute; `None` for the probe.
    exec: Option<Exec>,
}

impl ChildPlan {
    pub(crate) fn new(mode: Mode, exec: Option<Exec>) -> Self {
        // SAFETY: these have no preconditions and cannot fail.
        let (parent_pid, parent_pgid, uid, gid) = unsafe {
            (
                libc::getpid(),
                libc::getpgrp(),
                libc::geteuid(),
                libc::getegid(),
            )
        };
        ChildPlan {
            mode,
            parent_pid,
            parent_pgid,
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
            exec,
        }
    }

    /// Runs in the child, between fork and exec: sets it up and executes the command.
    ///
    /// Returns an error if something fails before the command could be executed (std
    /// then reports it to the parent as the spawn's error); returns `Ok` only without a
    /// command to execute, in the process that would have executed it. The relay and the
    /// init never return.
    ///
    /// # Safety
    ///
    /// Only to be called in a freshly forked child (std's `pre_exec`): it forks, exits
    /// and closes file descriptors.
    pub(crate) unsafe fn enter(&self) -> io::Result<()> {
        // SAFETY: all of this is raw system calls on memory owned by `self`, which stays
        // alive (the child has its own copy of it) until exec or exit.
        unsafe {
            match self.mode {
                Mode::ProcessGroup => {
                    die_with_parent(self.parent_pid)?;
                    self.exec()
                }
                Mode::PidNamespace => {
                    check(libc::unshare(libc::CLONE_NEWPID))?;
                    die_with_parent(self.parent_pid)?;
                    self.supervise()
                }
                Mode::UserAndPidNamespace => {
                    check(libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWPID))?;
                    // Unprivileged, supplementary groups must be frozen before a gid map
                    // may be written; the groups themselves are kept (access checks still
                    // use them), they just show up as the overflow group inside.
                    write_file(c"/proc/self/setgroups".as_ptr(), b"deny")?;
                    write_file(c"/proc/self/uid_map".as_ptr(), &self.uid_map)?;
                    write_file(c"/proc/self/gid_map".as_ptr(), &self.gid_map)?;
                    die_with_parent(self.parent_pid)?;
                    self.supervise()
                }
            }
        }
    }

    /// In the relay, after `unshare`: forks the init, which forks the command.
    unsafe fn supervise(&self) -> io::Result<()> {
        // SAFETY: see `enter`.
        unsafe {
            // The relay and the init wait for a specific child; a SIGCHLD handler
            // inherited from flow must not run in them.
            set_disposition(libc::SIGCHLD, libc::SIG_DFL);
            let mut pair: [c_int; 2] = [-1, -1];
            check(libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            ))?;
            let [relay_end, init_end] = pair;
            let init = fork_raw();
            if init < 0 {
                let e = io::Error::last_os_error();
                libc::close(relay_end);
                libc::close(init_end);
                return Err(e);
            }
            if init > 0 {
                libc::close(init_end);
                self.relay(init, relay_end)
            }
            // The init: PID 1 of the new namespace.
            libc::close(relay_end);
            libc::prctl(
                libc::PR_SET_NAME,
                c"flow-exec-init".as_ptr() as c_ulong,
                0 as c_ulong,
                0 as c_ulong,
                0 as c_ulong,
            );
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as c_ulong,
                0 as c_ulong,
                0 as c_ulong,
                0 as c_ulong,
            ) != 0
                || peer_gone(init_end)
            {
                libc::_exit(1);
            }
            let command = fork_raw();
            if command < 0 {
                let e = io::Error::last_os_error();
                libc::close(init_end);
                return Err(e);
            }
            if command > 0 {
                init_wait(command, init_end)
            }
            // The command: PID 2.
            libc::close(init_end);
            self.exec()
        }
    }

    /// The relay: waits for the init, then exits like the command.
    unsafe fn relay(&self, init: libc::pid_t, sock: RawFd) -> ! {
        // SAFETY: see `enter`.
        unsafe {
            // Out of the command's process group, so that a stop's SIGKILL to the group
            // leaves this process to reap the init once the namespace is empty. If that
            // is refused, stopping still works, only the caller may see the stop before
            // the namespace is gone.
            libc::setpgid(0, self.parent_pgid);
            // For `ps` and `top`: otherwise it shows as a copy of flow.
            libc::prctl(
                libc::PR_SET_NAME,
                c"flow-exec-relay".as_ptr() as c_ulong,
                0 as c_ulong,
                0 as c_ulong,
                0 as c_ulong,
            );
            for sig in [
                libc::SIGINT,
                libc::SIGQUIT,
                libc::SIGTSTP,
                libc::SIGTTIN,
                libc::SIGTTOU,
                libc::SIGHUP,
                libc::SIGTERM,
            ] {
                set_disposition(sig, libc::SIG_IGN);
            }
            close_all_but(sock);
            let mut buf = [0u8; 4];
            let reported = read_full(sock, &mut buf);
            let mut init_status: c_int = 0;
            loop {
                let r = libc::waitpid(init, &mut init_status, 0);
                if r == init {
                    break;
                }
                if r < 0 && errno() != libc::EINTR {
                    libc::_exit(1);
                }
            }
            let status = if reported {
                c_int::from_ne_bytes(buf)
            } else {
                init_status
            };
            exit_like(status)
        }
    }

    /// Executes the command from the opened file; returns only on failure (or, without a
    /// command, with `Ok`).
    unsafe fn exec(&self) -> io::Result<()> {
        let Some(exec) = &self.exec else {
            return Ok(());
        };
        let fd = exec.fd.as_raw_fd();
        // SAFETY: argv and envp are NULL-terminated arrays of pointers into CStrings owned
        // by `exec`; the paths are NUL-terminated.
        unsafe {
            if exec.elf {
                // The descriptor stays close-on-exec: the program does not inherit it.
                libc::syscall(
                    libc::SYS_execveat,
                    fd,
                    c"".as_ptr(),
                    exec.argv.as_ptr(),
                    exec.envp.as_ptr(),
                    libc::AT_EMPTY_PATH,
                );
                if errno() != libc::ENOENT {
                    return Err(io::Error::last_os_error());
                }
                // ENOENT: a binfmt handler may need a path it can open again, as for
                // scripts below (or the ELF interpreter is missing: the same error again).
            }
            // A script (or another format run by an interpreter): the kernel passes the
            // interpreter the path executed, which it opens again, and scripts find
            // their own files through it (`dirname "$0"`). So a script runs from its
            // real path, whose file was checked through the open descriptor just now;
            // a process outside the sandbox could still swap it in between (see the
            // crate documentation).
            libc::execve(exec.path.as_ptr(), exec.argv.as_ptr(), exec.envp.as_ptr());
            Err(io::Error::last_os_error())
        }
    }
}

/// The command to execute: the opened file, its arguments and environment.
pub(crate) struct Exec {
    /// The opened, checked command file (close-on-exec, and not 0, 1 or 2, which the child's
    /// stdio replaces).
    fd: OwnedFd,
    /// Whether the file is an ELF executable (executed with `execveat`, without
    /// inheriting the descriptor).
    elf: bool,
    /// The file's real path, for scripts (see `exec`).
    path: CString,
    /// Keeps the strings `argv` and `envp` point to alive.
    _strings: Vec<CString>,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
}

// SAFETY: the raw pointers point into `_strings`, owned by the same value and never
// mutated; sharing or sending them is as safe as sharing the strings.
unsafe impl Send for Exec {}
// SAFETY: as above.
unsafe impl Sync for Exec {}

impl Exec {
    /// Prepares executing `file` with `argv` (`argv[0]` included) and exactly `env` (later
    /// duplicates win, sorted by name, as std's `Command::envs` does).
    pub(crate) fn new(
        file: File,
        path: &std::path::Path,
        argv: &[&OsStr],
        env: &[(String, String)],
    ) -> io::Result<Exec> {
        let mut magic = [0u8; 4];
        let elf = matches!(file.read_at(&mut magic, 0), Ok(4)) && magic == *b"\x7fELF";
        let fd = above_stdio(OwnedFd::from(file))?;
        let path = cstring(path.as_os_str().as_bytes())?;
        let env: std::collections::BTreeMap<&str, &str> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut strings = Vec::with_capacity(argv.len() + env.len());
        for arg in argv {
            strings.push(cstring(arg.as_bytes())?);
        }
        for (k, v) in &env {
            strings.push(cstring(format!("{k}={v}").as_bytes())?);
        }
        let pointers = |s: &[CString]| -> Vec<*const c_char> {
            s.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        let argv_ptrs = pointers(&strings[..argv.len()]);
        let envp_ptrs = pointers(&strings[argv.len()..]);
        Ok(Exec {
            fd,
            elf,
            path,
            _strings: strings,
            argv: argv_ptrs,
            envp: envp_ptrs,
        })
    }
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "contains a NUL byte"))
}

/// `fd` itself if it is above 2, else a close-on-exec duplicate that is.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on an open descriptor we own.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

// ---- Async-signal-safe helpers, for use between fork and exec. ----

fn errno() -> c_int {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn check(rc: c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Asks for SIGKILL when the thread that forked this process ends, and makes sure it has
/// not already.
unsafe fn die_with_parent(parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: plain system calls.
    unsafe {
        check(libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        ))?;
        if libc::getppid() != parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    Ok(())
}

/// `clone3`'s arguments, version 0 (64 bytes).
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// fork(2) without the C library's `atfork` handlers: `clone3` with only an exit signal;
/// `fork` where `clone3` does not exist or is filtered out.
unsafe fn fork_raw() -> libc::pid_t {
    let mut args = CloneArgs {
        flags: 0,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
    };
    // SAFETY: without CLONE_VM or a stack, clone3 behaves like fork: the child continues
    // on a copy of this stack.
    unsafe {
        let rc = libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        );
        if rc >= 0 {
            return rc as libc::pid_t;
        }
        if matches!(errno(), libc::ENOSYS | libc::EPERM) {
            return libc::fork();
        }
    }
    -1
}

unsafe fn set_disposition(sig: c_int, handler: libc::sighandler_t) {
    // SAFETY: a zeroed sigaction is valid (empty mask, no flags).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        libc::sigaction(sig, &action, std::ptr::null_mut());
    }
}

/// Whether the other end of the socket was closed (its process died).
unsafe fn peer_gone(sock: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: sock,
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting. The peer never writes, so any event is the
    // end of the connection.
    unsafe { libc::poll(&mut pfd, 1, 0) != 0 }
}

/// The init: waits for the command, reports its status, exits (and so empties the
/// namespace).
unsafe fn init_wait(command: libc::pid_t, sock: RawFd) -> ! {
    // SAFETY: plain system calls.
    unsafe {
        close_all_but(sock);
        let mut status: c_int = 0;
        loop {
            let r = libc::waitpid(command, &mut status, 0);
            if r == command {
                break;
            }
            if r < 0 && errno() != libc::EINTR {
                libc::_exit(1);
            }
        }
        let bytes = status.to_ne_bytes();
        libc::send(sock, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL);
        libc::_exit(0)
    }
}

/// Reads exactly `buf.len()` bytes; false on end of file or error.
unsafe fn read_full(fd: RawFd, buf: &mut [u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the pointer and length stay within `buf`.
        let n = unsafe { libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        if n > 0 {
            done += n as usize;
        } else if n == 0 || errno() != libc::EINTR {
            return false;
        }
    }
    true
}

/// Closes every file descriptor except `keep`.
unsafe fn close_all_but(keep: RawFd) {
    // SAFETY: closing descriptors this process does not need any more.
    unsafe {
        if keep > 0 {
            close_range(0, keep as c_uint - 1);
        }
        close_range(keep as c_uint + 1, c_uint::MAX);
    }
}

unsafe fn close_range(first: c_uint, last: c_uint) {
    // SAFETY: plain system calls.
    unsafe {
        if libc::syscall(libc::SYS_close_range, first, last, 0) == 0 {
            return;
        }
        // Before Linux 5.9: one by one, up to the descriptor limit.
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur.min(1 << 20) as c_uint
        } else {
            1024
        };
        let mut fd = first;
        while fd <= last && fd < max {
            libc::close(fd as c_int);
            fd += 1;
        }
    }
}

/// Writes `data` to the file at `path` (one write, as `/proc` maps require).
unsafe fn write_file(path: *const c_char, data: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated, `data` valid for its length.
    unsafe {
        let fd = libc::open(path, libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let result = if n < 0 {
            Err(io::Error::last_os_error())
        } else if n as usize != data.len() {
            Err(io::Error::from_raw_os_error(libc::EIO))
        } else {
            Ok(())
        };
        libc::close(fd);
        result
    }
}

/// Ends this process the way `status` says the command ended: the same exit code, or
/// the same signal (re-raised with its default action, without a core dump of this
/// process).
unsafe fn exit_like(status: c_int) -> ! {
    // SAFETY: plain system calls.
    unsafe {
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            set_disposition(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), sig);
            // Only for a signal whose default action is not to terminate.
            libc::_exit(128 + sig);
        }
        libc::_exit(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_by_the_environment() {
        let support = probe_with(Some(OsStr::new("1")));
        assert_eq!(
            support,
            ReapingSupport::ProcessGroupOnly {
                reason: "disabled by FLOW_NO_PID_NAMESPACE=1".into()
            }
        );
        assert_eq!(support.reaping(), Reaping::ProcessGroupOnly);
        assert_eq!(support.mode(), Mode::ProcessGroup);
    }

    #[test]
    fn zero_or_empty_does_not_disable() {
        for v in ["", "0"] {
            if let ReapingSupport::ProcessGroupOnly { reason } = probe_with(Some(OsStr::new(v))) {
                assert!(!reason.contains(NO_PID_NAMESPACE_ENV), "{reason}");
            }
        }
    }

    #[test]
    fn process_group_trial_always_works() {
        trial(Mode::ProcessGroup).unwrap();
    }

    /// Why scripts are executed through `/proc/self/fd/N` with the descriptor inherited:
    /// the kernel refuses to run a script from a close-on-exec descriptor (its interpreter
    /// could not open it), while a binary runs either way.
    #[test]
    fn a_script_cannot_run_from_a_close_on_exec_descriptor() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script");
        std::fs::write(&script, "#!/bin/sh\necho ran\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let run = |cloexec: bool| {
            let file = File::open(&script).unwrap();
            let fd = file.as_raw_fd();
            let mut cmd = std::process::Command::new("/nonexistent");
            cmd.stdout(Stdio::piped()).env_clear();
            // SAFETY: fcntl and execveat only, on memory prepared before the fork.
            unsafe {
                cmd.pre_exec(move || {
                    if !cloexec {
                        check(libc::fcntl(fd, libc::F_SETFD, 0))?;
                    }
                    let argv = [c"script".as_ptr(), std::ptr::null()];
                    let envp: [*const c_char; 1] = [std::ptr::null()];
                    libc::syscall(
                        libc::SYS_execveat,
                        fd,
                        c"".as_ptr(),
                        argv.as_ptr(),
                        envp.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    );
                    Err(io::Error::last_os_error())
                });
            }
            cmd.output()
        };
        let err = run(true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
        let out = run(false).unwrap();
        assert_eq!(out.stdout, b"ran\n");
    }
}
