//! The error of building or signing a provenance document.

use crate::cjson::CanonicalJsonError;
use crate::keys::KeyError;

/// Errors building or signing provenance documents.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    /// A value could not be encoded as canonical JSON.
    #[error(transparent)]
    CanonicalJson(#[from] CanonicalJsonError),
    /// A document could not be serialized.
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        /// Which document.
        what: &'static str,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// The pipeline's steps do not make a valid layout.
    #[error("invalid layout: {0}")]
    Layout(String),
    /// The key could not sign (only a key held by an ssh-agent can fail to).
    #[error("cannot sign: {0}")]
    Sign(#[from] KeyError),
}
