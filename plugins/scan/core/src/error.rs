//! The crate's error type: every input error names the file and, when known, the line.

use std::fmt;
use std::path::{Path, PathBuf};

/// Errors reading lockfiles, advisories or policies.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file's content is malformed.
    #[error("{}: {message}", Location { path, line: *line })]
    Parse {
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        message: String,
    },
    /// The scan policy is invalid.
    #[error("invalid policy: {0}")]
    Policy(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn parse(path: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Error::Parse {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    /// The file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. } | Error::Parse { path, .. } => Some(path),
            Error::Policy(_) => None,
        }
    }

    /// The 1-based line the error is about, if known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Error::Parse { line, .. } => *line,
            _ => None,
        }
    }
}

struct Location<'a> {
    path: &'a Path,
    line: Option<usize>,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        Ok(())
    }
}

/// Shorthand result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// 1-based line of a byte offset in `text`.
pub(crate) fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Message and line of a TOML error; `line_offset` is added (front matter in a file).
pub(crate) fn toml_error(
    text: &str,
    e: &toml::de::Error,
    line_offset: usize,
) -> (Option<usize>, String) {
    let line = e
        .span()
        .map(|s| line_of_offset(text, s.start) + line_offset);
    (line, e.message().trim().to_string())
}
