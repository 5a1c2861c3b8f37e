//! The error type of the crate.

use std::io;
use std::path::PathBuf;

use crate::{ObjectId, ObjectKind};

/// Result alias with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while opening a repository, reading objects or checking out.
///
/// Corrupt or malicious input is always reported as an error (never a panic); the variants carry
/// the file, object and offset involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path is neither a work tree with a `.git` nor a (bare) git directory.
    #[error("not a git repository: {}", .0.display())]
    NotARepository(PathBuf),
    /// An I/O error on a repository file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A repository file (pack, index, loose object, ref) is malformed.
    #[error("corrupt {}: {msg}", path.display())]
    Corrupt {
        /// The file involved.
        path: PathBuf,
        /// What is wrong, including offsets where they are known.
        msg: String,
    },
    /// An object's content could not be parsed.
    #[error("corrupt {kind} {id}: {msg}")]
    CorruptObject {
        /// The object.
        id: ObjectId,
        /// Its type.
        kind: ObjectKind,
        /// What is wrong.
        msg: String,
    },
    /// The object is in none of the packs, loose object directories or alternates.
    #[error("object {0} not found")]
    ObjectNotFound(ObjectId),
    /// An object has an unexpected type (e.g. a tree entry points to a commit where a blob is due).
    #[error("object {id} is a {actual}, expected a {expected}")]
    WrongType {
        /// The object.
        id: ObjectId,
        /// The type that was needed.
        expected: ObjectKind,
        /// The type found.
        actual: ObjectKind,
    },
    /// A revision names no ref and no object.
    #[error("{}", not_found_message(rev, suggestions))]
    RevNotFound {
        /// The revision as given.
        rev: String,
        /// Close branch and tag names, best first (may be empty).
        suggestions: Vec<String>,
    },
    /// An abbreviated object id matches several objects.
    #[error("short object id {prefix} is ambiguous; candidates: {}", candidates.join(", "))]
    Ambiguous {
        /// The abbreviation.
        prefix: String,
        /// The matching objects, as `<id> <type>`.
        candidates: Vec<String>,
    },
    /// A revision is malformed or cannot be used as asked (e.g. it names a tree, or HEAD is unborn).
    #[error("invalid revision {rev:?}: {msg}")]
    InvalidRev {
        /// The revision as given.
        rev: String,
        /// Why.
        msg: String,
    },
    /// A tree contains an entry that must not be written (`..`, `.git`, a name with `/`, ...).
    #[error("refusing to check out unsafe path {path:?}: {reason}")]
    UnsafePath {
        /// The path (parent directories plus the offending name, lossily decoded).
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The [`Sink`](crate::Sink) failed.
    #[error("checkout of {path:?} failed: {source}")]
    Sink {
        /// The path being written.
        path: String,
        /// The sink's error.
        source: io::Error,
    },
}

fn not_found_message(rev: &str, suggestions: &[String]) -> String {
    let mut msg = format!("revision {rev:?} not found: no such branch, tag, ref or object");
    if !suggestions.is_empty() {
        msg.push_str("; did you mean ");
        msg.push_str(&suggestions.join(", "));
        msg.push('?');
    }
    msg
}

/// Maps an `io::Error` on `path` to [`Error::Io`].
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
