//! What to run: a resolved command with its arguments, working directory, environment
//! and, when confined, the host paths it may see ([`Bind`]).

use std::path::PathBuf;

use crate::resolve::ResolvedCommand;

/// A host directory (or file) visible inside the sandbox, at the same absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Absolute, normalised host path; it must exist.
    pub path: PathBuf,
    /// Whether the command may write to it.
    pub writable: bool,
}

impl Bind {
    /// A read-only bind of `path`.
    pub fn read_only(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            writable: false,
        }
    }

    /// A writable bind of `path`.
    pub fn writable(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            writable: true,
        }
    }
}

/// Everything needed to run a command once.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// The command, as resolved when the pipeline was checked.
    pub command: ResolvedCommand,
    /// Arguments, not including `argv[0]`.
    pub args: Vec<String>,
    /// Working directory: absolute, existing, and inside one of `binds` (checked whether
    /// confined or not, so that a spec does not behave differently where bubblewrap is
    /// missing).
    pub cwd: PathBuf,
    /// The complete environment: the command starts with exactly these variables.
    pub env: Vec<(String, String)>,
    /// The only host paths, besides the system directories, visible when confined.
    pub binds: Vec<Bind>,
    /// Whether the network is reachable when confined (unconfined commands always have it).
    pub network: bool,
    /// Whether to run under bubblewrap; the caller decides from
    /// [`confinement()`](crate::confinement()) and its policy. Requires
    /// [`Confinement::Available`](crate::Confinement::Available).
    pub confine: bool,
}
