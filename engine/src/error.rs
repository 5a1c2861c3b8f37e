//! Why the engine could not run a pipeline (a failing step is not one of these).

use std::path::PathBuf;

use flow_pipeline::Diagnostics;

use crate::runtime::RuntimeError;
use flow_store::StoreError;

/// Everything that can stop the engine from running a pipeline. A failing
/// step is not an error: it is in the [`RunSummary`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The pipeline file (or the inputs given) has problems; nothing ran.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// The run store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The WebAssembly runtime failed to start.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Provenance could not be built or signed.
    #[error(transparent)]
    Provenance(#[from] crate::recorder::ProvenanceError),
    /// The run's workspace could not be prepared.
    #[error("cannot prepare the workspace {}: {source}", path.display())]
    Workspace {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
