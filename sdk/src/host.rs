//! Host services beyond WASI: file modes and symbolic links ([`fs`]), granted host
//! commands ([`exec`]) and provenance claims ([`provenance`]).

use std::path::{Path, PathBuf};

use crate::StepError;

/// An absolute path for the host: relative paths are taken from the working
/// directory (the workspace, unless the plugin changed it).
fn absolute(path: &Path) -> Result<String, StepError> {
    let path: PathBuf = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| StepError::new(format!("cannot read the working directory: {e}")))?
            .join(path)
    };
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| StepError::new(format!("{} is not valid UTF-8", path.display())))
}

/// File modes and symbolic links, which WASI preview 2 cannot set.
///
/// Both work inside the workspace and directories granted with `access: write`.
pub mod fs {
    use std::path::Path;

    use super::absolute;
    use crate::StepError;
    use crate::bindings::flow::plugin::files;

    /// Set (or clear) a regular file's executable bits (`u+x`, and `g+x`/`o+x`
    /// where it is readable by them).
    pub fn set_executable(path: impl AsRef<Path>, executable: bool) -> Result<(), StepError> {
        let path = absolute(path.as_ref())?;
        files::set_executable(&path, executable).map_err(StepError::new)
    }

    pub use crate::bindings::flow::plugin::files::{EntryKind, TreeEntry};

    /// Create many directories, files and symbolic links under `root` in one
    /// host call, in order (parents first); files must not exist yet. A
    /// checkout of thousands of files is much faster this way than through
    /// one WASI call sequence per file.
    pub fn write_tree(root: impl AsRef<Path>, entries: &[TreeEntry]) -> Result<(), StepError> {
        let root = absolute(root.as_ref())?;
        files::write_tree(&root, entries).map_err(StepError::new)
    }

    /// Create a symbolic link at `link` pointing to `target` (stored as given).
    pub fn symlink(target: &str, link: impl AsRef<Path>) -> Result<(), StepError> {
        let link = absolute(link.as_ref())?;
        files::symlink(target, &link).map_err(StepError::new)
    }
}

/// Run host commands the step is granted (`grants.exec`).
///
/// ```ignore
/// let status = exec::Command::new("cargo").args(["build", "--release"]).run()?;
/// if !status.success() { return Err(StepError::new(format!("cargo failed: {status}"))); }
/// ```
pub mod exec {
    use std::fmt;
    use std::path::Path;

    use super::absolute;
    use crate::StepError;
    use crate::bindings::flow::plugin::exec as wit;

    /// A command to run: the granted name, arguments, working directory and
    /// extra variables (each must be granted in `grants.env`).
    #[derive(Debug, Clone)]
    pub struct Command {
        name: String,
        args: Vec<String>,
        cwd: Option<String>,
        env: Vec<(String, String)>,
        error: Option<String>,
    }

    impl Command {
        /// The command granted as `name` (e.g. `cargo`).
        pub fn new(name: impl Into<String>) -> Self {
            Command {
                name: name.into(),
                args: Vec::new(),
                cwd: None,
                env: Vec::new(),
                error: None,
            }
        }

        /// Add one argument.
        pub fn arg(mut self, arg: impl Into<String>) -> Self {
            self.args.push(arg.into());
            self
        }

        /// Add arguments.
        pub fn args<I, S>(mut self, args: I) -> Self
        where
            I: IntoIterator<Item = S>,
            S: Into<String>,
        {
            self.args.extend(args.into_iter().map(Into::into));
            self
        }

        /// Run in this directory (inside the workspace or a granted directory;
        /// relative paths are taken from the working directory).
        pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
            match absolute(dir.as_ref()) {
                Ok(dir) => self.cwd = Some(dir),
                Err(e) => self.error = Some(e.message().to_owned()),
            }
            self
        }

        /// Set a variable (its name must be granted in `grants.env`).
        pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.env.push((name.into(), value.into()));
            self
        }

        /// The command line, for messages: `cargo build --release`.
        pub fn display(&self) -> String {
            std::iter::once(self.name.as_str())
                .chain(self.args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        }

        /// Run it to the end; its output goes to the step log. An error means it
        /// could not be started; check [`ExitStatus::success`] for the result.
        pub fn run(&self) -> Result<ExitStatus, StepError> {
            if let Some(error) = &self.error {
                return Err(StepError::new(error.clone()));
            }
            let status = wit::run(&wit::Command {
                name: self.name.clone(),
                args: self.args.clone(),
                cwd: self.cwd.clone(),
                env: self.env.clone(),
            })
            .map_err(StepError::new)?;
            Ok(ExitStatus {
                code: status.code,
                signal: status.signal,
                confined: status.confined,
            })
        }
    }

    /// How a command ended.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ExitStatus {
        /// The exit code, when it exited.
        pub code: Option<i32>,
        /// The signal that ended it, when one did.
        pub signal: Option<i32>,
        /// Whether it ran confined by bubblewrap.
        pub confined: bool,
    }

    impl ExitStatus {
        /// Exited with code 0.
        pub fn success(&self) -> bool {
            self.code == Some(0)
        }
    }

    impl fmt::Display for ExitStatus {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match (self.code, self.signal) {
                (Some(code), _) => write!(f, "exit code {code}"),
                (None, Some(signal)) => write!(f, "killed by signal {signal}"),
                (None, None) => write!(f, "ended without a status"),
            }
        }
    }
}

/// Claims a step adds to its own provenance.
pub mod provenance {
    use crate::bindings::flow::plugin::provenance as wit;

    /// Record something the step used that the host cannot hash itself, e.g. the
    /// commit a checkout came from:
    /// `add_dependency("git+file:///src/app@refs/heads/main", Some("app"), &[("gitCommit", sha)])`.
    pub fn add_dependency(uri: &str, name: Option<&str>, digest: &[(&str, &str)]) {
        wit::add_dependency(&wit::Dependency {
            uri: uri.to_owned(),
            name: name.map(str::to_owned),
            digest: digest
                .iter()
                .map(|(a, d)| ((*a).to_owned(), (*d).to_owned()))
                .collect(),
        });
    }

    /// The signed statements (DSSE envelope JSON) of the run's steps completed
    /// so far, as `(<step>.intoto.json, bytes)`.
    pub fn run_attestations() -> Vec<(String, Vec<u8>)> {
        wit::run_attestations()
    }
}

/// Secrets the step is granted (`grants.secrets`).
///
/// Whatever the step writes to its log or outputs is redacted by the host, but
/// pass values only where they are needed (a request header, a command's
/// environment), never into files the step produces.
pub mod secrets {
    use crate::StepError;
    use crate::bindings::flow::plugin::secrets as wit;

    /// The value of a granted secret.
    pub fn get(name: &str) -> Result<String, StepError> {
        wit::get(name).map_err(StepError::new)
    }
}

/// Signing with keys the host holds (`grants.keys`): the key never enters the
/// plugin.
pub mod signing {
    use crate::StepError;
    use crate::bindings::flow::plugin::signing as wit;

    pub use wit::PublicKeyInfo as KeyInfo;

    /// The public half of a granted key.
    pub fn key_info(key: &str) -> Result<KeyInfo, StepError> {
        wit::key_info(key).map_err(StepError::new)
    }

    /// An armored SSH signature of a message whose SHA-512 is `sha512`, in
    /// `namespace`; it verifies with `ssh-keygen -Y verify -n <namespace>`.
    pub fn sign_ssh(key: &str, namespace: &str, sha512: &[u8; 64]) -> Result<String, StepError> {
        wit::sign_ssh(key, namespace, sha512).map_err(StepError::new)
    }

    /// A DSSE envelope (JSON) of `payload`, signed with the key.
    pub fn sign_dsse(key: &str, payload_type: &str, payload: &[u8]) -> Result<String, StepError> {
        wit::sign_dsse(key, payload_type, payload).map_err(StepError::new)
    }

    /// Check that a DSSE envelope (JSON) is signed by the key: `Ok` holds its
    /// payload type, `Err` why it does not verify.
    pub fn verify_dsse(key: &str, envelope: &[u8]) -> Result<String, String> {
        wit::verify_dsse(key, envelope)
    }
}
