//! Errors of the runtime itself, not of a step.

use std::path::PathBuf;

/// Errors of the runtime itself (not of a step).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// wasmtime could not be configured.
    #[error("cannot start the WebAssembly runtime: {0}")]
    Engine(String),
    /// The bytes are not a component this host can run.
    #[error("{origin} is not a valid flow plugin: {reason}")]
    InvalidPlugin {
        /// Where the bytes came from (a path or a built-in name).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A granted directory could not be opened.
    #[error("cannot grant {}: {reason}", path.display())]
    Grant {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}
