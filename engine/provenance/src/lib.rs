//! flow's provenance recorder.
//!
//! Every pipeline step leaves one internal record, [`StepEvidence`], which this crate turns
//! into two standard, signed documents:
//!
//! - an in-toto Statement v1 carrying a SLSA Provenance v1 predicate ([`statement`]), and
//! - an in-toto v0.9 link ([`link`]),
//!
//! both in DSSE envelopes ([`dsse`]) signed with ed25519 ([`keys`]: a key read from a file,
//! or one an ssh-agent holds so that flow never sees it). For a run it generates
//! a signed in-toto layout ([`layout`]) and a signed run record that chains the digests of
//! the step envelopes in execution order ([`chain`]). [`verify()`] checks all of that, from
//! an export directory or from memory, and names what failed; the same export verifies
//! with the reference `in-toto-verify`.
//!
//! The crate knows nothing of wasm, the store or the CLI. Per step, the engine:
//!
//! 1. snapshots what the step can read with [`DigestCache::snapshot`] (materials) before it
//!    runs and what it can write after it ran, keeping [`products`] (created or changed);
//! 2. fills a [`StepEvidence`] and calls [`attest_step`], which returns the signed
//!    statement and link ([`StepAttestation`]) to store with the step's completion;
//! 3. appends the attestation to the run's [`RunRecord`].
//!
//! Per run: [`sign_layout`] once (from the pipeline's steps), [`RunRecord::sign`] when the
//! run ends, and [`Bundle`] to export or verify.
#![deny(missing_docs)]

mod agent;
pub mod chain;
pub mod cjson;
pub mod digest;
pub mod dsse;
pub mod keys;
pub mod layout;
pub mod link;
pub mod record;
pub mod sshsig;
pub mod statement;
mod time;
pub mod verify;

pub use chain::{RUN_PAYLOAD_TYPE, RunRecord, RunStep};
pub use digest::{
    DigestCache, Root, SkippedFile, Snapshot, SnapshotLimits, SnapshotStop, products,
};
pub use dsse::{DsseError, Envelope, IN_TOTO_PAYLOAD_TYPE, Signature};
pub use keys::{KeyError, KeySource, PublicKey, SigningKey};
pub use layout::{LayoutSpec, LayoutStep, sign_layout};
pub use record::{
    Dependency, Outcome, StepAttestation, StepEvidence, TEMPLATE_URI_SCHEME, TemplateOrigin,
    TemplateRef, attest_step,
};
pub use time::parse_rfc3339_millis;
pub use verify::{Bundle, Failure, Report, VerifyOptions, verify};

/// Errors building or signing provenance documents.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    /// A value could not be encoded as canonical JSON.
    #[error(transparent)]
    CanonicalJson(#[from] cjson::CanonicalJsonError),
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
    Sign(#[from] keys::KeyError),
}
