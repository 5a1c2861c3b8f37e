//! The one error type of this crate. Messages never contain credentials.

use std::path::PathBuf;

use crate::digest::Digest;

/// Everything that can go wrong publishing, reading or promoting artifacts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `to:`/`from:` reference that does not follow the grammar.
    #[error("invalid reference `{input}`: {reason}")]
    InvalidReference {
        /// What the caller wrote.
        input: String,
        /// Why it was refused, with the expected form.
        reason: String,
    },
    /// A malformed digest string.
    #[error("invalid digest `{input}`: {reason}")]
    InvalidDigest {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// The artifact itself is ill-formed (e.g. two files with one title).
    #[error("invalid artifact: {0}")]
    InvalidArtifact(String),
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An OCI image-layout directory that is not one, or is damaged.
    #[error("OCI layout {}: {reason}", dir.display())]
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The tag already names a different artifact and overwriting was not asked for.
    #[error(
        "{reference} already points at {existing}; refusing to replace it with {new} \
         (one artifact per version: publish a new tag, or set `overwrite: true`)"
    )]
    TagExists {
        /// The full reference, e.g. `registry.example/app:1.2.0` or `oci:out:1.2.0`.
        reference: String,
        /// The manifest digest the tag points at now.
        existing: Digest,
        /// The manifest digest that was to be pushed.
        new: Digest,
    },
    /// Content whose digest is not the one expected (a corrupt or lying store).
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being checked.
        what: String,
        /// The digest we computed or asked for.
        expected: String,
        /// The digest found.
        actual: String,
    },
    /// A manifest, blob or tag that does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The registry wants credentials that were not given, or refused the given ones.
    #[error("unauthorized at {registry}: {detail}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// What happened (never the credentials themselves).
        detail: String,
    },
    /// The registry answered with an unexpected status.
    #[error("registry error: {method} {url} returned HTTP {status}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Registry {
        /// Request method.
        method: String,
        /// Request URL (without credentials; flow never puts them in URLs).
        url: String,
        /// HTTP status.
        status: u16,
        /// The registry's error codes and messages, if it sent any.
        message: String,
    },
    /// The registry or layout sent something that is not valid OCI/distribution data.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being read.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP transport failed (connection refused, timeout, ...).
    #[error("transport error: {0}")]
    Transport(String),
}

/// Shorthand for `Result<T, flow_oci::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn malformed(what: impl Into<String>, reason: impl std::fmt::Display) -> Error {
        Error::Malformed {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
