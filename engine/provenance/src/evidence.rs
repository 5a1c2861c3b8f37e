//! The one internal record per step, [`StepEvidence`], that the engine fills and that the
//! step's signed documents (its link, [`crate::link`], and its statement,
//! [`crate::statement`]) are made from; with the types it is made of.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
