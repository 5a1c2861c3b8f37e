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
//!    provenance) and identity. Before each run, [`ResolvedCommand::check_unchanged`]
//!    makes sure (with one `stat`) that the file was not replaced or modified since.
//!    The command is executed via its real path, with `argv[0]` set to the grant's file
//!    name.
//! 2. **Confinement probe**, once per process: [`confinement()`] tells whether bubblewrap
//!    (`bwrap`) is installed and works on this host, or why not. Set `FLOW_NO_BWRAP=1`
//!    ([`NO_BWRAP_ENV`]) to force it unavailable.
//! 3. **Running**: [`run`] starts a [`CommandSpec`], confined or not (the caller decides,
//!    from the probe and its policy), streams stdout and stderr to a callback, and kills
//!    the whole process tree when a `stop` future (deadline, Ctrl-C) resolves.
//!
//! # What every command gets
//!
//! - Exactly the environment in the spec, nothing inherited from the engine.
//! - stdin from `/dev/null`; stdout and stderr through pipes, streamed.
//! - Its own process group. On stop, the group gets `SIGKILL`; when the command exits on
//!   its own, anything it left running in its group (background jobs) is killed too. A
//!   command that must leave a daemon behind cannot.
//!
//! # Confined (`confine: true`, bubblewrap)
//!
//! The command runs in new user, pid, ipc, uts, cgroup and (unless `network: true`)
//! network namespaces, with no capabilities, in a new session, and dies with its `bwrap`.
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
//! system and the network, and can write wherever that user can. All it gets is the clean
//! environment, the working directory, and a process group that can be killed. A process
//! that leaves the group (`setsid`, a daemonising tool) escapes the kill. Only grant
//! commands to run unconfined that are trusted with the user's account.
#![deny(missing_docs)]

mod confine;
mod resolve;
mod run;

pub use confine::{Confinement, NO_BWRAP_ENV, confinement};
pub use resolve::{FileIdentity, ResolveError, ResolvedCommand, resolve};
pub use run::{Bind, CommandSpec, Outcome, RunError, StopReason, Stream, run};
