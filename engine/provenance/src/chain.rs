//! The run record: which step envelopes a run produced, in execution order, signed.
//!
//! Each step's statement and link are signed on their own, so deleting a step's files,
//! or presenting them in another order, leaves every remaining signature valid. The run
//! record closes that gap: it lists, in the order the steps completed, the sha256 of
//! each step's statement and link envelope ([`crate::Envelope::sha256`]) and of the
//! layout, and is signed as a DSSE envelope of type [`RUN_PAYLOAD_TYPE`].
//!
//! ```json
//! {"_type":"https://flow.dev/run/v1","runId":"r1","pipeline":"ci","layoutSha256":"…",
//!  "steps":[{"step":"a","outcome":"succeeded","statementSha256":"…","linkSha256":"…"}]}
//! ```

use serde::{Deserialize, Serialize};

use crate::dsse::Envelope;
use crate::error::ProvenanceError;
use crate::evidence::Outcome;
use crate::keys::SigningKey;
use crate::record::StepAttestation;

/// Payload type of the run record envelope (`run.json` in an export).
pub const RUN_PAYLOAD_TYPE: &str = "application/vnd.flow.run+json";
/// The run record's `_type`.
pub const RUN_RECORD_TYPE: &str = "https://flow.dev/run/v1";

/// A run's chain of step envelopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunChain {
    /// Always [`RUN_RECORD_TYPE`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// The run's id.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// sha256 of the run's layout envelope.
    pub layout_sha256: String,
    /// The steps in the order they completed.
    pub steps: Vec<RunStep>,
}

/// One step in a [`RunChain`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStep {
    /// The step's id.
    pub step: String,
    /// How it ended.
    pub outcome: Outcome,
    /// sha256 of its statement envelope.
    pub statement_sha256: String,
    /// sha256 of its link envelope.
    pub link_sha256: String,
}

impl RunChain {
    /// An empty record for a run whose layout is `layout`.
    pub fn new(run_id: impl Into<String>, pipeline: impl Into<String>, layout: &Envelope) -> Self {
        Self {
            type_: RUN_RECORD_TYPE.to_owned(),
            run_id: run_id.into(),
            pipeline: pipeline.into(),
            layout_sha256: layout.sha256(),
            steps: Vec::new(),
        }
    }

    /// Appends a completed step.
    pub fn push(&mut self, outcome: Outcome, step: &StepAttestation) {
        self.steps.push(RunStep {
            step: step.step_id.clone(),
            outcome,
            statement_sha256: step.statement.sha256(),
            link_sha256: step.link.sha256(),
        });
    }

    /// The record signed with `key`. Signing again after each step is cheap (one
    /// signature), so the stored record can always be current.
    pub fn sign(&self, key: &SigningKey) -> Result<Envelope, ProvenanceError> {
        let payload = serde_json::to_vec(self).map_err(|source| ProvenanceError::Serialize {
            what: "run record",
            source,
        })?;
        Ok(Envelope::sign(RUN_PAYLOAD_TYPE, payload, key)?)
    }

    /// Parses a run record payload (does not verify the envelope).
    pub fn parse(payload: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(payload)
    }
}
