//! in-toto v0.9 links, in DSSE envelopes, as `in-toto-verify` reads them.
//!
//! ```json
//! {"_type":"link","name":"build","materials":{"src/main.rs":{"sha256":"…"}},
//!  "products":{"target/app":{"sha256":"…"}},"byproducts":{"outcome":"succeeded"},
//!  "command":[],"environment":{}}
//! ```
//! `command` is empty (a step runs a plugin, not a command line; `expected_command` in
//! the layout is empty too). `byproducts` carries `outcome` and, when there is one,
//! `failure-reason`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ProvenanceError;
use crate::evidence::StepEvidence;

/// `<step>.<keyid[:8]>.link`: the name `in-toto-verify` looks for.
pub fn link_file_name(step: &str, keyid: &str) -> String {
    format!("{step}.{}.link", keyid.get(..8).unwrap_or(keyid))
}

/// The link's JSON.
pub fn link_json(evidence: &StepEvidence) -> Value {
    serde_json::to_value(LinkDocument::of(evidence)).unwrap_or(Value::Null)
}

/// The link's payload bytes (compact JSON, keys sorted).
pub fn link_payload(evidence: &StepEvidence) -> Result<Vec<u8>, ProvenanceError> {
    serde_json::to_vec(&LinkDocument::of(evidence)).map_err(|source| ProvenanceError::Serialize {
        what: "link",
        source,
    })
}

/// The link, borrowed from the evidence and serialized directly (no intermediate
/// `Value`: recording is on every step's path). Fields in sorted order.
#[derive(Serialize)]
struct LinkDocument<'a> {
    #[serde(rename = "_type")]
    type_: &'static str,
    byproducts: Byproducts<'a>,
    command: [&'a str; 0],
    environment: Empty,
    materials: Artifacts<'a>,
    name: &'a str,
    products: Artifacts<'a>,
}

impl<'a> LinkDocument<'a> {
    fn of(e: &'a StepEvidence) -> Self {
        Self {
            type_: "link",
            byproducts: Byproducts {
                failure_reason: e.failure_reason.as_deref(),
                outcome: e.outcome.as_str(),
            },
            command: [],
            environment: Empty {},
            materials: Artifacts(&e.materials),
            name: &e.step_id,
            products: Artifacts(&e.products),
        }
    }
}

#[derive(Serialize)]
struct Byproducts<'a> {
    #[serde(rename = "failure-reason", skip_serializing_if = "Option::is_none")]
    failure_reason: Option<&'a str>,
    outcome: &'static str,
}

#[derive(Serialize)]
struct Empty {}

/// `{name: {"sha256": digest}}`, the in-toto artifact map.
pub(crate) struct Artifacts<'a>(pub(crate) &'a BTreeMap<String, String>);

impl Serialize for Artifacts<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct Sha256<'a> {
            sha256: &'a str,
        }
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, digest) in self.0 {
            map.serialize_entry(name, &Sha256 { sha256: digest })?;
        }
        map.end()
    }
}

/// The parts of a link payload that [`crate::verify()`] reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LinkPayload {
    /// Must be `link`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// The step name.
    pub name: String,
    /// Artifact name -> hash algorithm -> hex digest.
    pub materials: BTreeMap<String, BTreeMap<String, String>>,
    /// Artifact name -> hash algorithm -> hex digest.
    pub products: BTreeMap<String, BTreeMap<String, String>>,
    /// Free-form; flow writes `outcome` and `failure-reason`.
    #[serde(default)]
    pub byproducts: BTreeMap<String, Value>,
}

impl LinkPayload {
    /// Parses a link payload.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The recorded outcome, if any.
    pub fn outcome(&self) -> Option<&str> {
        self.byproducts.get("outcome").and_then(Value::as_str)
    }
}
