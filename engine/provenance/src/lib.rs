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
//! 3. appends the attestation to the run's [`RunChain`].
//!
//! Per run: [`sign_layout`] once (from the pipeline's steps), [`RunChain::sign`] when the
//! run ends, and [`Bundle`] to export or verify.
#![deny(missing_docs)]

mod agent;
pub mod chain;
pub mod cjson;
pub mod digest;
pub mod dsse;
mod error;
mod evidence;
pub mod keys;
pub mod layout;
pub mod link;
pub mod record;
mod ssh_wire;
pub mod sshsig;
pub mod statement;
mod time;
pub mod verify;

pub use chain::{RUN_PAYLOAD_TYPE, RunChain, RunStep};
pub use digest::{
    DigestCache, Root, SkippedFile, Snapshot, SnapshotLimits, SnapshotStop, products,
};
pub use dsse::{DsseError, Envelope, IN_TOTO_PAYLOAD_TYPE, Signature};
pub use error::ProvenanceError;
pub use evidence::{
    Dependency, Outcome, StepEvidence, TEMPLATE_URI_SCHEME, TemplateOrigin, TemplateRef,
};
pub use keys::{KeyError, KeySource, PublicKey, SigningKey};
pub use layout::{LayoutSpec, LayoutStep, sign_layout};
pub use record::{StepAttestation, attest_step};
pub use time::parse_rfc3339_millis;
pub use verify::{Bundle, Failure, Report, VerifyOptions, verify};
