//! The host side of flow's `exec` capability: pipeline steps (WebAssembly plugins) may be
//! granted named host commands (`grants: { exec: [cargo, make] }`), and the host runs them
//! on the plugin's behalf.
//!
//! # The model
//!
//! 1. **Resolution**, when the pipeline is checked, before anything runs: [`resolve`] turns
//!    each grant into a [`ResolvedCommand`]: one executable regular file, found in `PATH`
//!    (bare name) or given as an absolute, normalised path. Symlinks are followed; both the
//!    path as found and the real path are kept, with the real file's SHA-256 (for
//!    provenance) and identity ([`FileIdentity`]: device, inode, size, modification and
//!    status change times). [`ResolvedCommand::check_unchanged`] tells (with one `stat`)
//!    whether the file was replaced or modified since; [`ResolvedCommand::rehash`] reads
//!    it again and compares the SHA-256. The command is executed from its real file, with
//!    `argv[0]` set to the grant's file name.
//! 2. **Probes**, once per process: [`confinement()`] tells whether bubblewrap (`bwrap`) is
//!    installed and works on this host, or why not (`FLOW_NO_BWRAP=1`, [`NO_BWRAP_ENV`],
//!    forces it unavailable); [`reaping()`] whether unconfined commands can run in a PID
//!    namespace, or why not (`FLOW_NO_PID_NAMESPACE=1`, [`NO_PID_NAMESPACE_ENV`], forces
//!    them not to).
//! 3. **Running**: [`run`] starts a [`CommandSpec`], confined or not (the caller decides,
//!    from the probe and its policy), streams stdout and stderr to a callback, and kills
//!    the whole process tree when a `stop` future (deadline, Ctrl-C) resolves. The
//!    [`Outcome`] says how it ended, and how what it left behind was reaped
//!    ([`Outcome::reaped`]).
//! 4. **Provenance of rustup proxies**: when a command is a rustup proxy
//!    (`~/.cargo/bin/cargo`, a link to rustup), its SHA-256 is rustup's;
//!    [`rustup_toolchain`] asks rustup which toolchain binary it runs for a working
//!    directory and environment, and hashes that binary.
//!
//! # What every command gets
//!
//! - Exactly the environment in the spec, nothing inherited from the engine.
//! - stdin from `/dev/null`; stdout and stderr through pipes, streamed.
//! - Its own process group. On stop, the group gets `SIGKILL`; when the command exits on
//!   its own, anything it left running in its group (background jobs) is killed too. A
//!   command that must leave a daemon behind cannot.
//! - Its own PID namespace, when confined (bubblewrap's) or where [`reaping()`] allows it
//!   when unconfined: then nothing it started outlives it, see below.
//!
//! # Which file runs
//!
//! Unconfined, [`run`] opens the real file, checks that the opened file's identity is the
//! resolved one, and executes that opened file: a binary with `execveat(fd, "",
//! AT_EMPTY_PATH)` (it does not inherit the descriptor); anything else (a `#!` script),
//! which its interpreter opens again by path, from its real path right after the opened
//! file was checked (so that `$0` is the script's path, which scripts use to find their
//! own files). A file replaced (renamed over, deleted) since resolution is refused, as is
//! one modified in place: its change time moved, even when its size is the same and its
//! modification time was set back. Confined, bubblewrap executes the file by its path; the
//! same check is made on the opened file immediately before bubblewrap is started.
//!
//! What remains: a process outside the sandbox running as the user (or root) who can
//! write the file can still modify it in place between the check and the exec (a few
//! microseconds unconfined; the start of bubblewrap, some milliseconds, confined), or swap
//! a script's path for another file before its interpreter opens it, and a
//! script's interpreter reads the script while it runs, so a script modified in place
//! after it started runs the new text. Such a change shows in the file's identity
//! afterwards, but the run that used it is not refused. The check relies on the file
//! system's change time: where there is no real one (FAT), a rewrite with a restored
//! modification time escapes it, and only [`ResolvedCommand::rehash`] finds it. Metadata
//! changes that leave the contents alone (`chmod`, a new hard link) also refuse the
//! command.
//!
//! # Confined (`confine: true`, bubblewrap)
//!
//! The command runs in new user, pid, ipc, uts, cgroup and (unless `network: true`)
//! network namespaces, with no capabilities, in a new session, and dies with its `bwrap`.
//! bubblewrap only asks to die with flow once it has set up (tens of milliseconds after it
//! starts): so, where flow may make a PID namespace by itself (root, or `CAP_SYS_ADMIN`),
//! `bwrap` runs as pid 2 of one whose init dies with flow (asked for and checked before
//! anything runs), and flow killed at any moment takes the whole sandbox with it;
//! elsewhere, `bwrap` itself dies with flow, and a sandbox made in the first moments of
//! a `bwrap` whose flow was killed can outlive it.
//! Its file system is a fresh tmpfs root holding only:
//!
//! - the system directories, read-only: `/usr`, `/bin`, `/sbin`, `/lib`, `/lib64`,
//!   `/lib32` (whichever exist; merged-`/usr` symlinks are recreated as symlinks) and
//!   `/etc` (so user and host names, certificates and tool configuration resolve);
//! - a fresh `/proc` (of the new pid namespace), a minimal `/dev`, an empty `/tmp`;
//! - the directory of the command's real file and, if different, the one it was found in,
//!   read-only (sibling tools, such as `rustc` next to `cargo`);
//! - the spec's [`Bind`]s, at the same absolute paths, read-only or writable;
//! - `/run/flow-exec/<name>`, a symlink to the command through which it is executed (so
//!   that `argv[0]` ends in the grant's name).
//!
//! Everything else on the host, the home directory included, is invisible: a tool that
//! needs more (`~/.rustup` and `~/.cargo/registry` for a rustup-managed `cargo`) needs
//! binds for it. With `network: true` the host's network namespace is shared (and, if
//! `/etc/resolv.conf` points outside `/etc`, its target is made visible).
//!
//! Limits: the system directories (and `/etc`) are readable in full; the kernel is shared
//! (this is not a VM); there is no resource limit (CPU, memory, disk) beyond the stop
//! future's deadline; a killed command's exit status arrives through bubblewrap, as
//! `128 + signal`.
//!
//! # Unconfined (`confine: false`)
//!
//! The command is **not isolated**: it runs as the engine's user, sees the whole file
//! system (the host's `/proc` included) and the network, and can write wherever that user
//! can. Only grant commands to run unconfined that are trusted with the user's account.
//! What it gets is the clean environment, the working directory, its process group, and,
//! where [`reaping()`] says so ([`Reaping::PidNamespace`] in [`Outcome::reaped`]), its
//! own PID namespace.
//!
//! **Guaranteed with a PID namespace**: every process the command starts, directly or not,
//! in its process group or not (`setsid`, `nohup`, a double-forked daemon), is killed
//! when the command exits or is stopped, and [`run`] returns only once they are all gone.
//! The namespace is created with `unshare(CLONE_NEWPID)` when flow may (root, or
//! `CAP_SYS_ADMIN`), otherwise together with a new user namespace that maps the user's
//! uid and gid to themselves (`setgroups` denied): files it writes belong to the user, and
//! the user's permissions, supplementary groups included, apply as before. The command
//! is not PID 1 of the namespace (a small init, a copy of flow, is): it dies of its
//! signals normally, and its exit code or signal is reported unchanged.
//!
//! **Also guaranteed**: if flow dies (killed, crashed), the command dies with it
//! (`PR_SET_PDEATHSIG`; with a PID namespace, everything it started as well). This is tied
//! to the thread that started the command: [`run`] must be polled on a thread that
//! outlives it (a tokio runtime's worker thread does).
//!
//! **Not guaranteed**:
//! - Without a PID namespace ([`Reaping::ProcessGroupOnly`]: the kernel or a container
//!   forbids it, or `FLOW_NO_PID_NAMESPACE` is set), only the process group is killed:
//!   a process that left it survives the step and flow; if flow dies, only the command
//!   itself is killed, not its children.
//! - Processes started on the command's behalf by something running outside it are not
//!   its descendants and are not reaped: a `systemd-run --user` unit, a container started
//!   through a daemon (`docker run`), a session of an already-running `tmux` server, a
//!   job queued with `at` or `cron`, a login over `ssh localhost`. Nor is anything it
//!   changed on disk undone.
//! - The command sees the host's `/proc`, not its namespace's: pids it gets from the
//!   kernel (`getpid()`, `$$`, `$!`) are the namespace's, so `/proc/<its own pid>` names a
//!   different process (`/proc/self` is right), and pids it writes to files mean nothing
//!   outside. In the user namespace variant, setuid programs (`sudo`, `su`) and file
//!   capabilities do not take effect, and other users' ids show as `nobody`. Set
//!   `FLOW_NO_PID_NAMESPACE=1` for tools that cannot live with this.
//! - The init and a relay that reports the command's status are copies (forks) of flow
//!   that live as long as the command: they share flow's memory copy-on-write, so memory
//!   flow modifies while the command runs is duplicated (at most flow's resident memory
//!   per running command).
#![deny(missing_docs)]

mod confine;
mod reap;
mod resolve;
mod run;
mod spec;
mod toolchain;

pub use confine::{Confinement, NO_BWRAP_ENV, confinement};
pub use reap::{NO_PID_NAMESPACE_ENV, Reaping, ReapingSupport, reaping};
pub use resolve::{FileIdentity, ResolveError, ResolvedCommand, resolve};
pub use run::{Outcome, RunError, StopReason, Stream, run};
pub use spec::{Bind, CommandSpec};
pub use toolchain::{ToolchainBinary, rustup_toolchain};
