//! in-toto Statement v1 with a SLSA Provenance v1 predicate.
//!
//! ```text
//! _type          https://in-toto.io/Statement/v1
//! subject        the products: [{name, digest:{sha256}}]
//! predicateType  https://slsa.dev/provenance/v1
//! predicate
//!   buildDefinition
//!     buildType             https://flow.dev/step/v1 (this document's shape, see below)
//!     externalParameters    {pipeline:{name, file, digest:{sha256}}, step, params}
//!     internalParameters    {runId, needs, grants, template?}
//!     resolvedDependencies  [{uri: plugin reference, digest:{sha256}}]
//!                           + templates of the chain [{uri: flow-template:<id>@<version>, name: <id>, digest:{sha256}}]
//!                           + granted host commands [{uri: file://path, name, digest:{sha256}}]
//!                           + what the plugin claimed [{uri, name?, digest:{gitCommit...},
//!                                                      annotations:{claimedBy: "plugin"}}]
//!                           + materials as [{name, digest:{sha256}}]
//!   runDetails
//!     builder               {id: https://flow.dev/engine@<version>, version:{<engine>: <version>}}
//!     metadata              {invocationId: <run>/<step>, startedOn, finishedOn}
//!     byproducts            [{name: "outcome", annotations:{outcome, failureReason?, notes?, commands?}}]
//! ```
//!
//! **Subject of a step without products.** The attestation framework requires at least
//! one subject, each with a digest. A step that produced nothing (a failed, skipped or
//! checking step) gets one subject naming the step, `flow-step:<run>/<step>`, whose
//! digest is the sha256 of the step's link payload (the `payload` of its `.link`
//! envelope): the statement is then about the step's own record, which any reader of the
//! export can hash and compare.
//!
//! **Build type.** `https://flow.dev/step/v1` means: one pipeline step run by the flow
//! engine; `externalParameters` are what the pipeline file said (its identity, the step,
//! the resolved params with secrets named, not valued), `internalParameters` what the
//! engine decided (run, grants, needs, and for a pipeline resolved from templates where
//! the step came from: [`crate::TemplateOrigin`]), dependencies are the plugin component,
//! the templates of the chain and every file the step could read.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ProvenanceError;
use crate::evidence::{Dependency, StepEvidence, TemplateOrigin};
use crate::time::rfc3339_millis;

/// The Statement `_type`.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate type of SLSA Provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// flow's build type URI (see the module documentation).
pub const BUILD_TYPE: &str = "https://flow.dev/step/v1";
/// Prefix of the subject name of a step without products.
pub const STEP_SUBJECT_PREFIX: &str = "flow-step:";

/// `https://flow.dev/engine@<version>`.
pub fn builder_id(engine_version: &str) -> String {
    format!("https://flow.dev/engine@{engine_version}")
}

/// The subject name of a step without products: `flow-step:<run>/<step>`.
pub fn step_subject_name(run_id: &str, step_id: &str) -> String {
    format!("{STEP_SUBJECT_PREFIX}{run_id}/{step_id}")
}

/// The Statement's JSON; `link_payload` is the step's link payload (used as the subject
/// when there are no products).
pub fn statement_json(evidence: &StepEvidence, link_payload: &[u8]) -> Value {
    serde_json::to_value(StatementDocument::of(evidence, link_payload)).unwrap_or(Value::Null)
}

/// The Statement's payload bytes (compact JSON, keys sorted).
pub fn statement_payload(
    evidence: &StepEvidence,
    link_payload: &[u8],
) -> Result<Vec<u8>, ProvenanceError> {
    serde_json::to_vec(&StatementDocument::of(evidence, link_payload)).map_err(|source| {
        ProvenanceError::Serialize {
            what: "statement",
            source,
        }
    })
}

// The document, borrowed from the evidence and serialized directly (recording is on
// every step's path). Fields are declared in sorted order, so the JSON's keys are sorted.

#[derive(Serialize)]
struct StatementDocument<'a> {
    #[serde(rename = "_type")]
    type_: &'static str,
    predicate: Predicate<'a>,
    #[serde(rename = "predicateType")]
    predicate_type: &'static str,
    subject: Vec<Descriptor<'a>>,
}

/// A resource descriptor: `{digest:{sha256}, name?, uri?}`.
#[derive(Serialize)]
struct Descriptor<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<ClaimAnnotations<'a>>,
    digest: DigestSet<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<&'a str>,
}

/// Marks a dependency the host did not observe itself.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClaimAnnotations<'a> {
    claimed_by: &'a str,
}

#[derive(Serialize)]
struct Sha256Digest<'a> {
    sha256: Cow<'a, str>,
}

/// A descriptor's digest: sha256 only (files, plugins) or any algorithms.
#[derive(Serialize)]
#[serde(untagged)]
enum DigestSet<'a> {
    Sha256(Sha256Digest<'a>),
    Any(&'a BTreeMap<String, String>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Predicate<'a> {
    build_definition: BuildDefinition<'a>,
    run_details: RunDetails<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildDefinition<'a> {
    build_type: &'static str,
    external_parameters: ExternalParameters<'a>,
    internal_parameters: InternalParameters<'a>,
    resolved_dependencies: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
struct ExternalParameters<'a> {
    params: &'a Value,
    pipeline: Pipeline<'a>,
    step: &'a str,
}

#[derive(Serialize)]
struct Pipeline<'a> {
    digest: Sha256Digest<'a>,
    file: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InternalParameters<'a> {
    grants: &'a Value,
    needs: &'a [String],
    run_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<&'a TemplateOrigin>,
}

#[derive(Serialize)]
struct RunDetails<'a> {
    builder: Builder<'a>,
    byproducts: [OutcomeDescriptor<'a>; 1],
    metadata: Metadata,
}

#[derive(Serialize)]
struct Builder<'a> {
    id: String,
    version: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct OutcomeDescriptor<'a> {
    annotations: OutcomeAnnotations<'a>,
    name: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutcomeAnnotations<'a> {
    #[serde(skip_serializing_if = "<[Value]>::is_empty")]
    commands: &'a [Value],
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
    outcome: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    finished_on: String,
    invocation_id: String,
    started_on: String,
}

impl<'a> StatementDocument<'a> {
    fn of(e: &'a StepEvidence, link_payload: &[u8]) -> Self {
        let artifact = |(name, digest): (&'a String, &'a String)| Descriptor {
            annotations: None,
            digest: DigestSet::Sha256(Sha256Digest {
                sha256: Cow::Borrowed(digest),
            }),
            name: Some(Cow::Borrowed(name)),
            uri: None,
        };
        let subject = if e.products.is_empty() {
            vec![Descriptor {
                annotations: None,
                digest: DigestSet::Sha256(Sha256Digest {
                    sha256: Cow::Owned(hex::encode(Sha256::digest(link_payload))),
                }),
                name: Some(Cow::Owned(step_subject_name(&e.run_id, &e.step_id))),
                uri: None,
            }]
        } else {
            e.products.iter().map(artifact).collect()
        };
        let mut dependencies = Vec::with_capacity(e.materials.len() + e.dependencies.len() + 1);
        dependencies.push(Descriptor {
            annotations: None,
            digest: DigestSet::Sha256(Sha256Digest {
                sha256: Cow::Borrowed(&e.plugin_sha256),
            }),
            name: None,
            uri: Some(&e.plugin),
        });
        // What the host observed first, then what the plugin claimed, marked as such.
        let (observed, claimed): (Vec<&Dependency>, Vec<&Dependency>) =
            e.dependencies.iter().partition(|d| d.claimed_by.is_none());
        dependencies.extend(observed.into_iter().chain(claimed).map(|d| {
            Descriptor {
                annotations: d
                    .claimed_by
                    .as_deref()
                    .map(|claimed_by| ClaimAnnotations { claimed_by }),
                digest: DigestSet::Any(&d.digest),
                name: d.name.as_deref().map(Cow::Borrowed),
                uri: Some(&d.uri),
            }
        }));
        dependencies.extend(e.materials.iter().map(artifact));
        StatementDocument {
            type_: STATEMENT_TYPE,
            predicate: Predicate {
                build_definition: BuildDefinition {
                    build_type: BUILD_TYPE,
                    external_parameters: ExternalParameters {
                        params: &e.params,
                        pipeline: Pipeline {
                            digest: Sha256Digest {
                                sha256: Cow::Borrowed(&e.pipeline_sha256),
                            },
                            file: &e.pipeline_file,
                            name: &e.pipeline_name,
                        },
                        step: &e.step_id,
                    },
                    internal_parameters: InternalParameters {
                        grants: &e.grants,
                        needs: &e.needs,
                        run_id: &e.run_id,
                        template: e.template.as_ref(),
                    },
                    resolved_dependencies: dependencies,
                },
                run_details: RunDetails {
                    builder: Builder {
                        id: builder_id(&e.engine_version),
                        version: [(e.engine_name.as_str(), e.engine_version.as_str())]
                            .into_iter()
                            .collect(),
                    },
                    byproducts: [OutcomeDescriptor {
                        annotations: OutcomeAnnotations {
                            commands: &e.commands,
                            failure_reason: e.failure_reason.as_deref(),
                            notes: &e.notes,
                            outcome: e.outcome.as_str(),
                        },
                        name: "outcome",
                    }],
                    metadata: Metadata {
                        finished_on: rfc3339_millis(e.finished_unix_ms),
                        invocation_id: format!("{}/{}", e.run_id, e.step_id),
                        started_on: rfc3339_millis(e.started_unix_ms),
                    },
                },
            },
            predicate_type: SLSA_PROVENANCE_V1,
            subject,
        }
    }
}
