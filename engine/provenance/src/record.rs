//! The one internal record per step, and the signed documents made from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dsse::Envelope;
use crate::keys::SigningKey;
use crate::{ProvenanceError, link, statement};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// The step ran and its plugin reported success.
    #[serde(rename = "succeeded")]
    Succeeded,
    /// The step ran and failed (plugin error or trap).
    #[serde(rename = "failed")]
    Failed,
    /// The step exceeded its time limit.
    #[serde(rename = "timed out")]
    TimedOut,
    /// The run was cancelled while the step ran.
    #[serde(rename = "cancelled")]
    Cancelled,
    /// The step did not run (a step it needs failed, or its condition was false).
    #[serde(rename = "skipped")]
    Skipped,
}

impl Outcome {
    /// The word used in every document: `succeeded`, `failed`, `timed out`, `cancelled`
    /// or `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed out",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the engine knows about one step once it ended: the single source of the
/// step's statement and link. The engine fills it; this crate only reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepEvidence {
    /// The run's id.
    pub run_id: String,
    /// The step's id in the pipeline: also the in-toto step name, so it must be usable
    /// as a file name (no `/`).
    pub step_id: String,
    /// The pipeline's name.
    pub pipeline_name: String,
    /// The pipeline file's name as the user gave it (e.g. `flow.yaml`).
    pub pipeline_file: String,
    /// Hex sha256 of the pipeline file's bytes.
    pub pipeline_sha256: String,
    /// The plugin reference as written in the pipeline (becomes the dependency's `uri`).
    pub plugin: String,
    /// Hex sha256 of the plugin component's bytes.
    pub plugin_sha256: String,
    /// The resolved params, secret values already replaced by their names.
    pub params: serde_json::Value,
    /// The grants the step ran with.
    pub grants: serde_json::Value,
    /// When the step started, unix milliseconds (equal to `finished_unix_ms` if skipped).
    pub started_unix_ms: u64,
    /// When the step ended, unix milliseconds.
    pub finished_unix_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed, timed out, was cancelled or skipped, for a human.
    pub failure_reason: Option<String>,
    /// The engine's name (`flow`).
    pub engine_name: String,
    /// The engine's version (`0.1.0`).
    pub engine_version: String,
    /// Artifact name -> hex sha256 of what the step could read, before it ran.
    pub materials: BTreeMap<String, String>,
    /// Artifact name -> hex sha256 of what it created or changed.
    pub products: BTreeMap<String, String>,
    /// Ids of the steps it needs (directly).
    pub needs: Vec<String>,
    /// Notes for a reader, e.g. files a snapshot could not read ([`crate::SkippedFile`]).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Dependencies beyond the plugin and the materials: the host commands the step
    /// was granted (by path and sha256) and what the plugin claimed (e.g. the commit
    /// a checkout came from, by `gitCommit`).
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    /// The host commands the step ran, in order, as the host saw them
    /// (`{name, args, cwd, exitCode?, signal?, confined}`).
    #[serde(default)]
    pub commands: Vec<serde_json::Value>,
    /// Where the step came from when the pipeline was resolved from templates
    /// (recorded as `internalParameters.template`); `None` for a pipeline that extends
    /// no template, whose documents then have no such key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateOrigin>,
}

/// One template of the chain a pipeline was resolved from, as recorded.
///
/// Fields are declared in sorted order (the documents' keys are sorted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRef {
    /// Its id, `namespace/name`.
    pub id: String,
    /// The hex sha256 of its directory's content (see `docs/templates.md`).
    pub sha256: String,
    /// Its version (semver).
    pub version: String,
}

impl TemplateRef {
    /// `id@version`.
    pub fn name(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }

    /// The URI of its entry in `resolvedDependencies`: `flow-template:<id>@<version>`.
    pub fn uri(&self) -> String {
        format!("{TEMPLATE_URI_SCHEME}:{}", self.name())
    }

    /// Its entry in `resolvedDependencies`:
    /// `{uri: flow-template:<id>@<version>, name: <id>, digest: {sha256}}`.
    pub fn dependency(&self) -> Dependency {
        Dependency {
            claimed_by: None,
            uri: self.uri(),
            name: Some(self.id.clone()),
            digest: [("sha256".to_owned(), self.sha256.clone())]
                .into_iter()
                .collect(),
        }
    }
}

/// The scheme of a template's URI in `resolvedDependencies`.
pub const TEMPLATE_URI_SCHEME: &str = "flow-template";

/// Where a step of a pipeline resolved from templates came from: the step's
/// `internalParameters.template`.
///
/// ```json
/// {"chain":[{"id":"acme/secure-release","sha256":"…","version":"1.0.0"}],
///  "declaredBy":"acme/secure-release@1.0.0","interface":null,"sealed":true,"slot":null}
/// ```
/// Fields are declared in sorted order (the documents' keys are sorted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateOrigin {
    /// Every template of the chain, nearest first (the one the pipeline file extends,
    /// then the one that one extends...).
    pub chain: Vec<TemplateRef>,
    /// The template that declared the step, `id@version`, or `None` when the pipeline file
    /// did.
    pub declared_by: Option<String>,
    /// The interface the step implements (`uses: interface:<name>`), if any.
    pub interface: Option<String>,
    /// Whether a template seals the step (entirely or some of its keys).
    pub sealed: bool,
    /// The slot the step fills, if it was added through `fill:`.
    pub slot: Option<String>,
}

/// A resolved dependency that is not a file of the run: a resource descriptor with any
/// digest algorithms (`sha256`, `gitCommit`...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// Where it is: `file:///usr/bin/make`, `git+file:///src/app@refs/heads/main`.
    pub uri: String,
    /// A short name, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Algorithm -> lower-case hex digest.
    pub digest: BTreeMap<String, String>,
    /// Who asserts it when the host did not observe it itself: `Some("plugin")` for
    /// what a plugin claimed through the `provenance` import. Written into the
    /// statement as the descriptor's `annotations.claimedBy`, so that a reader never
    /// takes a plugin's word for the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
}

/// A step's two signed documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepAttestation {
    /// The step's id.
    pub step_id: String,
    /// The in-toto Statement v1 (SLSA Provenance v1) envelope: `<step>.intoto.json`.
    pub statement: Envelope,
    /// The in-toto v0.9 link envelope.
    pub link: Envelope,
    /// The link's file name in an export: `<step>.<keyid[:8]>.link`.
    pub link_file_name: String,
}

/// Builds and signs the step's link and statement. Cheap (tens of microseconds for a
/// step with few files): call it on the engine's thread when the step ends, and store
/// the result with the step's completion. With a key held by an ssh-agent each of the
/// two signatures is a blocking round trip to the agent (at most 10 s; usually well
/// under a millisecond), and an agent that fails makes this fail ([`ProvenanceError::Sign`]).
pub fn attest_step(
    evidence: &StepEvidence,
    key: &SigningKey,
) -> Result<StepAttestation, ProvenanceError> {
    let link_payload = link::link_payload(evidence)?;
    let statement_payload = statement::statement_payload(evidence, &link_payload)?;
    Ok(StepAttestation {
        step_id: evidence.step_id.clone(),
        link_file_name: link::link_file_name(&evidence.step_id, key.keyid()),
        statement: Envelope::sign(crate::IN_TOTO_PAYLOAD_TYPE, statement_payload, key)?,
        link: Envelope::sign(crate::IN_TOTO_PAYLOAD_TYPE, link_payload, key)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn evidence() -> StepEvidence {
        StepEvidence {
            run_id: "r1".into(),
            step_id: "build".into(),
            pipeline_name: "ci".into(),
            pipeline_file: "flow.yaml".into(),
            pipeline_sha256: "11".repeat(32),
            plugin: "https://plugins.flow.dev/cargo@1".into(),
            plugin_sha256: "22".repeat(32),
            params: serde_json::json!({"profile": "release", "token": "${secrets.TOKEN}", "jobs": 4}),
            grants: serde_json::json!({"read": ["/srv/assets"]}),
            started_unix_ms: 1_700_000_000_000,
            finished_unix_ms: 1_700_000_001_500,
            outcome: Outcome::Failed,
            failure_reason: Some("exit 1".into()),
            engine_name: "flow".into(),
            engine_version: "0.1.0".into(),
            materials: [("src/main.rs".to_owned(), "33".repeat(32))]
                .into_iter()
                .collect(),
            products: BTreeMap::new(),
            needs: vec!["checkout".into()],
            notes: vec!["/w/sock: not a regular file, directory or symlink".into()],
            dependencies: vec![Dependency {
                claimed_by: None,
                uri: "git+file:///src/app@refs/heads/main".into(),
                name: Some("app".into()),
                digest: [("gitCommit".to_owned(), "a".repeat(40))]
                    .into_iter()
                    .collect(),
            }],
            commands: vec![serde_json::json!({"name": "cargo", "args": ["build"], "exitCode": 0})],
            template: None,
        }
    }

    #[test]
    fn payloads_are_canonical_json() {
        let key = SigningKey::from_seed(&[5; 32]);
        let a = attest_step(&evidence(), &key).expect("attest");
        for payload in [&a.statement.payload, &a.link.payload] {
            let value: serde_json::Value = serde_json::from_slice(payload).expect("json");
            assert_eq!(&crate::cjson::to_vec(&value).expect("canonical"), payload);
        }
        assert_eq!(
            a.link_file_name,
            format!("build.{}.link", &key.keyid()[..8])
        );
    }

    #[test]
    fn a_step_without_products_is_its_own_subject() {
        let e = evidence();
        let link = crate::link::link_payload(&e).expect("link");
        let statement = crate::statement::statement_json(&e, &link);
        assert_eq!(
            statement["subject"],
            serde_json::json!([{"name": "flow-step:r1/build", "digest": {"sha256": hex::encode(Sha256::digest(&link))}}])
        );
        let predicate = &statement["predicate"];
        assert_eq!(
            predicate["runDetails"]["metadata"]["startedOn"],
            "2023-11-14T22:13:20.000Z"
        );
        assert_eq!(
            predicate["runDetails"]["metadata"]["invocationId"],
            "r1/build"
        );
        assert_eq!(
            predicate["runDetails"]["byproducts"][0]["annotations"]["failureReason"],
            "exit 1"
        );
        assert_eq!(
            predicate["buildDefinition"]["resolvedDependencies"][0],
            serde_json::json!({"uri": "https://plugins.flow.dev/cargo@1", "digest": {"sha256": "22".repeat(32)}})
        );
        assert_eq!(
            predicate["buildDefinition"]["resolvedDependencies"][1],
            serde_json::json!({"uri": "git+file:///src/app@refs/heads/main", "name": "app", "digest": {"gitCommit": "a".repeat(40)}})
        );
        assert_eq!(
            predicate["runDetails"]["byproducts"][0]["annotations"]["commands"],
            serde_json::json!([{"name": "cargo", "args": ["build"], "exitCode": 0}])
        );
        let link: serde_json::Value = serde_json::from_slice(&link).expect("json");
        assert_eq!(
            link["byproducts"],
            serde_json::json!({"outcome": "failed", "failure-reason": "exit 1"})
        );
        assert_eq!(link["command"], serde_json::json!([]));
        assert_eq!(link["environment"], serde_json::json!({}));
    }

    #[test]
    fn the_template_chain_is_in_internal_parameters() {
        let plain = crate::statement::statement_json(&evidence(), b"link");
        assert!(
            plain["predicate"]["buildDefinition"]["internalParameters"]
                .get("template")
                .is_none()
        );
        let mut e = evidence();
        let chain = vec![
            TemplateRef {
                id: "acme/rust-service".into(),
                version: "1.2.0".into(),
                sha256: "44".repeat(32),
            },
            TemplateRef {
                id: "acme/base".into(),
                version: "2.0.1".into(),
                sha256: "55".repeat(32),
            },
        ];
        e.dependencies
            .extend(chain.iter().map(TemplateRef::dependency));
        e.template = Some(TemplateOrigin {
            chain,
            declared_by: Some("acme/base@2.0.1".into()),
            interface: None,
            sealed: true,
            slot: None,
        });
        let key = SigningKey::from_seed(&[5; 32]);
        let a = attest_step(&e, &key).expect("attest");
        let value: serde_json::Value = serde_json::from_slice(&a.statement.payload).expect("json");
        assert_eq!(
            crate::cjson::to_vec(&value).expect("canonical"),
            a.statement.payload
        );
        let build = &value["predicate"]["buildDefinition"];
        assert_eq!(
            build["internalParameters"]["template"],
            serde_json::json!({
                "chain": [
                    {"id": "acme/rust-service", "version": "1.2.0", "sha256": "44".repeat(32)},
                    {"id": "acme/base", "version": "2.0.1", "sha256": "55".repeat(32)},
                ],
                "declaredBy": "acme/base@2.0.1",
                "sealed": true,
                "slot": null,
                "interface": null,
            })
        );
        assert_eq!(
            build["resolvedDependencies"][2],
            serde_json::json!({"uri": "flow-template:acme/rust-service@1.2.0", "name": "acme/rust-service", "digest": {"sha256": "44".repeat(32)}})
        );
        let back: TemplateOrigin =
            serde_json::from_value(build["internalParameters"]["template"].clone()).expect("parse");
        assert_eq!(Some(back), e.template);
    }

    #[test]
    fn evidence_round_trips_through_json() {
        let e = evidence();
        let back: StepEvidence =
            serde_json::from_value(serde_json::to_value(&e).expect("json")).expect("parse");
        assert_eq!(back, e);
        assert_eq!(
            serde_json::to_value(Outcome::TimedOut).expect("json"),
            "timed out"
        );
    }
}
