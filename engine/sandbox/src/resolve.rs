//! Resolving an `exec` grant to one file on disk, once, when the pipeline is checked.
//!
//! A grant is either a bare command name (`cargo`), looked up in `PATH` like a shell would,
//! or an absolute, normalised path (`/usr/bin/make`). Resolution follows symlinks, records
//! both the path as found and the canonical real path, hashes the real file and remembers
//! its identity (device, inode, size, modification and change times) so that
//! [`ResolvedCommand::check_unchanged`] can cheaply tell whether it was replaced or
//! modified before it is run.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A granted command, resolved to a regular, executable file.
///
/// The command is executed from [`real_path`](Self::real_path) (so that the file that runs
/// is the file that was hashed): unconfined, the file is opened, checked and executed
/// through that descriptor; confined, bubblewrap executes it by its path. `argv[0]` is set
/// to [`argv0`](Self::argv0), the file name of the grant: multi-call binaries such as
/// rustup's proxies (`~/.cargo/bin/cargo`, links to one binary) dispatch on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCommand {
    /// The grant exactly as written in the pipeline (`cargo`, `/usr/bin/make`).
    pub name: String,
    /// The path as found: the `PATH` directory joined with the name, or the absolute grant.
    /// It may be (or go through) a symlink.
    pub path: PathBuf,
    /// The canonical path of the file, all symlinks followed.
    pub real_path: PathBuf,
    /// Lowercase hex SHA-256 of the real file's contents.
    pub sha256: String,
    /// Size of the real file in bytes.
    pub size: u64,
    /// Identity of the real file when it was hashed, for [`check_unchanged`](Self::check_unchanged).
    pub identity: FileIdentity,
}

/// What identifies a file's state cheaply: where it is and when it last changed.
///
/// The modification time can be set to anything by the file's owner (`touch -r`), the
/// change time (`ctime`) cannot: the kernel sets it to the current time whenever the
/// contents or the metadata (mode, owner, links, times) change. A rewrite in place with the
/// same size and a restored modification time therefore still shows in the change time.
/// (Timestamps are taken from a clock that advances in ticks of a few milliseconds; on
/// Linux 6.13 and later, file systems with multigrain timestamps use a finer one for a
/// change that follows a `stat`, so that even a change within the same tick shows.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// Device number of the file system holding the file.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime_sec: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: i64,
    /// Status change time (`ctime`), seconds since the Unix epoch.
    pub ctime_sec: i64,
    /// Nanoseconds part of the status change time.
    pub ctime_nsec: i64,
}

impl FileIdentity {
    /// The identity recorded in `meta`.
    pub fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_sec: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            ctime_sec: meta.ctime(),
            ctime_nsec: meta.ctime_nsec(),
        }
    }

    /// How `now` differs from `self`, for messages; `None` when they are equal.
    fn difference(&self, now: &FileIdentity) -> Option<String> {
        if self.dev != now.dev || self.ino != now.ino {
            Some("the file was replaced (different inode)".to_owned())
        } else if self.size != now.size {
            Some(format!("size {} -> {} bytes", self.size, now.size))
        } else if (self.mtime_sec, self.mtime_nsec) != (now.mtime_sec, now.mtime_nsec) {
            Some("modification time changed".to_owned())
        } else if (self.ctime_sec, self.ctime_nsec) != (now.ctime_sec, now.ctime_nsec) {
            Some(
                "status change time (ctime) changed: its contents or metadata were modified \
                 (same size and modification time, which may have been restored)"
                    .to_owned(),
            )
        } else {
            None
        }
    }
}

/// Why a grant could not be resolved, or why a resolved command may no longer be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The grant is the empty string.
    #[error("empty command name")]
    Empty,
    /// The grant contains a NUL byte.
    #[error("command `{}` contains a NUL byte", .grant.escape_debug())]
    ContainsNul {
        /// The grant.
        grant: String,
    },
    /// The grant is `.` or `..`.
    #[error("`{grant}` is not a command name")]
    InvalidName {
        /// The grant.
        grant: String,
    },
    /// The grant has a slash but does not start with one (`./x`, `bin/sh`).
    #[error(
        "command `{grant}` is a relative path; use a bare name looked up in PATH (`cargo`) \
         or an absolute path (`/usr/bin/cargo`)"
    )]
    RelativePath {
        /// The grant.
        grant: String,
    },
    /// The absolute grant has `.`, `..` or empty (`//`, trailing `/`) components.
    #[error(
        "command path `{grant}` is not normalised: write it without `.`, `..`, `//` or a \
         trailing `/`"
    )]
    NotNormalised {
        /// The grant.
        grant: String,
    },
    /// A bare name was not found in any `PATH` directory.
    #[error("{}", not_found_message(.name, .searched, .skipped))]
    NotFound {
        /// The grant.
        name: String,
        /// The absolute `PATH` directories searched, in order.
        searched: Vec<PathBuf>,
        /// Files with the name that exist but were not usable, and why.
        skipped: Vec<(PathBuf, String)>,
    },
    /// An absolute grant names nothing.
    #[error("command `{}` does not exist", .path.display())]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// An absolute grant is a symlink whose target does not exist.
    #[error("command `{}` is a dangling symlink", .path.display())]
    DanglingSymlink {
        /// The path.
        path: PathBuf,
    },
    /// The grant names a directory.
    #[error("command `{}` is a directory", .path.display())]
    IsDirectory {
        /// The path.
        path: PathBuf,
    },
    /// The grant names something that is not a regular file, even after following symlinks.
    #[error("command `{}` is not a regular file (it is a {kind})", .path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is instead (`fifo`, `socket`, `character device`, ...).
        kind: &'static str,
    },
    /// The file has no execute permission bit.
    #[error("command `{}` is not executable (mode {mode:o})", .path.display())]
    NotExecutable {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file could not be inspected or read.
    #[error("cannot read command `{}`: {source}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// rustup could not tell which toolchain binary a rustup proxy runs
    /// ([`rustup_toolchain`](crate::rustup_toolchain)).
    #[error("cannot tell which toolchain binary `{name}` runs: {reason}")]
    Toolchain {
        /// The grant (the proxy).
        name: String,
        /// What failed: rustup's error, a timeout, unexpected output.
        reason: String,
    },
    /// The real file differs from the one that was resolved and hashed.
    #[error("`{name}` changed on disk since the pipeline was checked ({}: {detail})", .path.display())]
    Changed {
        /// The grant.
        name: String,
        /// The real path.
        path: PathBuf,
        /// What changed.
        detail: String,
    },
}

fn not_found_message(name: &str, searched: &[PathBuf], skipped: &[(PathBuf, String)]) -> String {
    let mut msg = if searched.is_empty() {
        format!("command `{name}` not found: PATH is unset or has no absolute directories")
    } else {
        let dirs: Vec<_> = searched.iter().map(|d| d.display().to_string()).collect();
        format!(
            "command `{name}` not found in PATH (searched {})",
            dirs.join(", ")
        )
    };
    if !skipped.is_empty() {
        let files: Vec<_> = skipped
            .iter()
            .map(|(p, why)| format!("{} ({why})", p.display()))
            .collect();
        msg.push_str("; skipped unusable ");
        msg.push_str(&files.join(", "));
    }
    msg
}

/// Resolves an `exec` grant to a file: a bare name is looked up in `path_env` (a `PATH`
/// value; directories in order, empty and relative entries skipped, as are candidates that
/// are not executable regular files), an absolute path is taken as is.
///
/// The result records the path as found, the real path, the SHA-256 and identity of the
/// real file. Refuses, with a specific error: empty names, NUL bytes, relative paths with a
/// slash, non-normalised absolute paths, and anything that is not an existing executable
/// regular file after following symlinks.
pub fn resolve(grant: &str, path_env: Option<&OsStr>) -> Result<ResolvedCommand, ResolveError> {
    if grant.is_empty() {
        return Err(ResolveError::Empty);
    }
    if grant.contains('\0') {
        return Err(ResolveError::ContainsNul {
            grant: grant.to_owned(),
        });
    }
    if grant == "." || grant == ".." {
        return Err(ResolveError::InvalidName {
            grant: grant.to_owned(),
        });
    }
    if grant.contains('/') {
        resolve_absolute(grant)
    } else {
        resolve_in_path(grant, path_env)
    }
}

fn resolve_absolute(grant: &str) -> Result<ResolvedCommand, ResolveError> {
    let Some(rest) = grant.strip_prefix('/') else {
        return Err(ResolveError::RelativePath {
            grant: grant.to_owned(),
        });
    };
    let path = PathBuf::from(grant);
    if rest.is_empty() {
        return Err(ResolveError::IsDirectory { path });
    }
    if rest
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(ResolveError::NotNormalised {
            grant: grant.to_owned(),
        });
    }
    match inspect(&path) {
        Ok(found) => Ok(found.into_resolved(grant, path)),
        Err(rejection) => Err(rejection.into_error(path)),
    }
}

fn resolve_in_path(name: &str, path_env: Option<&OsStr>) -> Result<ResolvedCommand, ResolveError> {
    let mut searched = Vec::new();
    let mut skipped = Vec::new();
    for dir in path_env.map(std::env::split_paths).into_iter().flatten() {
        // Empty entries mean "the current directory" to a shell and relative ones depend on
        // it: neither is a stable answer for a pipeline, so both are ignored.
        if !dir.is_absolute() {
            continue;
        }
        // Collecting components drops `.` and repeated or trailing slashes.
        let dir: PathBuf = dir.components().collect();
        if searched.contains(&dir) {
            continue;
        }
        let candidate = dir.join(name);
        searched.push(dir);
        match inspect(&candidate) {
            Ok(found) => return Ok(found.into_resolved(name, candidate)),
            Err(Rejection::Missing) => {}
            Err(rejection) => skipped.push((candidate, rejection.to_string())),
        }
    }
    Err(ResolveError::NotFound {
        name: name.to_owned(),
        searched,
        skipped,
    })
}

/// An executable regular file, opened, hashed and identified.
pub(crate) struct Found {
    pub(crate) real_path: PathBuf,
    pub(crate) sha256: String,
    pub(crate) identity: FileIdentity,
}

impl Found {
    fn into_resolved(self, grant: &str, path: PathBuf) -> ResolvedCommand {
        ResolvedCommand {
            name: grant.to_owned(),
            path,
            real_path: self.real_path,
            sha256: self.sha256,
            size: self.identity.size,
            identity: self.identity,
        }
    }
}

/// Why a candidate file is not usable.
#[derive(Debug)]
pub(crate) enum Rejection {
    Missing,
    Dangling,
    Directory,
    NotRegular(&'static str),
    NotExecutable(u32),
    Io(io::Error),
    ChangedWhileHashing,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Missing => f.write_str("does not exist"),
            Rejection::Dangling => f.write_str("dangling symlink"),
            Rejection::Directory => f.write_str("a directory"),
            Rejection::NotRegular(kind) => write!(f, "not a regular file but a {kind}"),
            Rejection::NotExecutable(mode) => write!(f, "not executable, mode {mode:o}"),
            Rejection::Io(e) => write!(f, "{e}"),
            Rejection::ChangedWhileHashing => f.write_str("changed while being hashed"),
        }
    }
}

impl Rejection {
    pub(crate) fn into_error(self, path: PathBuf) -> ResolveError {
        match self {
            Rejection::Missing => ResolveError::Missing { path },
            Rejection::Dangling => ResolveError::DanglingSymlink { path },
            Rejection::Directory => ResolveError::IsDirectory { path },
            Rejection::NotRegular(kind) => ResolveError::NotRegularFile { path, kind },
            Rejection::NotExecutable(mode) => ResolveError::NotExecutable { path, mode },
            Rejection::Io(source) => ResolveError::Io { path, source },
            Rejection::ChangedWhileHashing => ResolveError::Io {
                path,
                source: io::Error::other("the file changed while it was being hashed"),
            },
        }
    }
}

fn file_kind(meta: &Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

/// Checks that `path` is an executable regular file (after following symlinks), and
/// hashes it.
pub(crate) fn inspect(path: &Path) -> Result<Found, Rejection> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(match fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_symlink() => Rejection::Dangling,
                _ => Rejection::Missing,
            });
        }
        Err(e) => return Err(Rejection::Io(e)),
    };
    check_kind(&meta)?;
    let real_path = fs::canonicalize(path).map_err(Rejection::Io)?;
    // O_NONBLOCK: should the file have been swapped for a fifo since the stat, opening it
    // must not hang; it is then refused by the checks on the opened file below.
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&real_path)
        .map_err(Rejection::Io)?;
    // Check, hash and identify the very file that was opened.
    let before = file.metadata().map_err(Rejection::Io)?;
    check_kind(&before)?;
    let sha256 = sha256_of(&mut file).map_err(Rejection::Io)?;
    let after = file.metadata().map_err(Rejection::Io)?;
    let identity = FileIdentity::of(&before);
    if identity != FileIdentity::of(&after) {
        return Err(Rejection::ChangedWhileHashing);
    }
    Ok(Found {
        real_path,
        sha256,
        identity,
    })
}

fn check_kind(meta: &Metadata) -> Result<(), Rejection> {
    if meta.is_dir() {
        return Err(Rejection::Directory);
    }
    if !meta.is_file() {
        return Err(Rejection::NotRegular(file_kind(meta)));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o111 == 0 {
        return Err(Rejection::NotExecutable(mode));
    }
    Ok(())
}

fn sha256_of(file: &mut File) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

impl ResolvedCommand {
    /// The `argv[0]` the command runs with: the file name of the grant (`cargo` for both
    /// `cargo` and `/home/me/.cargo/bin/cargo`).
    pub fn argv0(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }

    /// Whether the path as found differs from the real path (a symlink on the way).
    pub fn is_symlinked(&self) -> bool {
        self.path != self.real_path
    }

    /// Cheaply checks (one `stat`) that the real file is still the one that was resolved:
    /// same device, inode, size, modification time and status change time (see
    /// [`FileIdentity`]). It does not re-hash the file (see [`rehash`](Self::rehash)), and
    /// does not look at the path as found (the command runs via the real path).
    ///
    /// [`run`](crate::run()) makes the same check on the file it opens to execute.
    pub fn check_unchanged(&self) -> Result<(), ResolveError> {
        let meta = fs::metadata(&self.real_path).map_err(|e| self.changed(e.to_string()))?;
        self.compare(&meta)
    }

    /// Opens the real file and checks that the opened file is the one that was resolved
    /// (as [`check_unchanged`](Self::check_unchanged) does, on the opened file).
    ///
    /// The file is opened read-only, close-on-exec and non-blocking (should it have been
    /// swapped for a fifo, opening it must not hang; it is then refused as changed).
    pub(crate) fn open_unchanged(&self) -> Result<File, ResolveError> {
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.real_path)
            .map_err(|e| self.changed(e.to_string()))?;
        let meta = file.metadata().map_err(|e| self.changed(e.to_string()))?;
        self.compare(&meta)?;
        Ok(file)
    }

    /// Re-reads the real file and checks that its SHA-256 is still
    /// [`sha256`](Self::sha256): opens it, checks its identity
    /// (as [`check_unchanged`](Self::check_unchanged)), hashes the opened file, and checks
    /// that its identity did not change while it was being hashed. Returns
    /// [`ResolveError::Changed`] for any difference.
    ///
    /// This reads the whole file: use it where the cost is acceptable (once per step, say)
    /// for assurance beyond the identity check, e.g. on a file system whose timestamps
    /// cannot be trusted.
    pub fn rehash(&self) -> Result<(), ResolveError> {
        let mut file = self.open_unchanged()?;
        let sha256 = sha256_of(&mut file).map_err(|source| ResolveError::Io {
            path: self.real_path.clone(),
            source,
        })?;
        let meta = file.metadata().map_err(|e| self.changed(e.to_string()))?;
        if let Some(detail) = self.identity.difference(&FileIdentity::of(&meta)) {
            return Err(self.changed(format!("{detail}, while it was being hashed")));
        }
        if sha256 != self.sha256 {
            return Err(self.changed(format!(
                "its contents differ: sha256 {sha256}, resolved as {}",
                self.sha256
            )));
        }
        Ok(())
    }

    fn compare(&self, meta: &Metadata) -> Result<(), ResolveError> {
        match self.identity.difference(&FileIdentity::of(meta)) {
            None => Ok(()),
            Some(detail) => Err(self.changed(detail)),
        }
    }

    fn changed(&self, detail: String) -> ResolveError {
        ResolveError::Changed {
            name: self.name.clone(),
            path: self.real_path.clone(),
            detail,
        }
    }
}
