//! What `flow verify`, `flow attest` and `flow verify --policy` do, callable from
//! Rust: read a run's signed provenance from the store (or an export directory),
//! export it as the standard in-toto files, verify it, and check it against a
//! release policy.
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use flow_engine::verification::{self, PolicyCheck};
//!
//! let store = flow_engine::Store::open("/var/lib/flow/runs")?;
//! let run = store.resolve("last")?;
//! let bundle = verification::bundle(&store, &run)?;
//! let report = verification::verify(&bundle, None);
//! assert!(report.is_ok(), "{report}");
//! let policy = verification::Policy::load("release-policy.yaml".as_ref())?;
//! let check = PolicyCheck::new(policy, None, &[])?;
//! let evaluation = check.evaluate(&bundle)?;
//! println!("policy passed: {}", evaluation.passed());
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use flow_provenance::{Envelope, StepAttestation, VerifyOptions};
use flow_store::{RunId, Store, StoreError};

pub use crate::policy::{Check, Evaluation, Policy, Rule, RunFacts, TemplateLocator};
pub use flow_provenance::{Bundle, Failure, PublicKey, Report};

/// Why a run's provenance could not be read, exported or checked against a policy.
/// (A run whose provenance does not verify is not an error: see [`Report`].)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerificationError {
    /// The store failed, or the run is not in it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run has no provenance: it did not finish, or it ran without a signing key.
    #[error(
        "run {0} has no provenance: it did not finish (interrupted runs are not signed as a whole) \
         or it was recorded without a signing key"
    )]
    NoProvenance(RunId),
    /// What the store holds for the run cannot be read.
    #[error("run {run}: {what}")]
    Corrupt {
        /// The run.
        run: RunId,
        /// What is wrong.
        what: String,
    },
    /// An export directory could not be read or written.
    #[error("{0}")]
    Export(String),
    /// The template directories given for a policy could not be read.
    #[error("{0}")]
    Templates(String),
    /// The verified statements do not say what a policy needs.
    #[error("{0}")]
    Statements(String),
}

/// A run's provenance from the store, in the order its steps completed.
pub fn bundle(store: &Store, run: &RunId) -> Result<Bundle, VerificationError> {
    let Some(run_attestation) = store.run_attestation(run)? else {
        return Err(VerificationError::NoProvenance(run.clone()));
    };
    let corrupt = |what: String| VerificationError::Corrupt {
        run: run.clone(),
        what,
    };
    let steps = store.steps(run)?;
    let mut attestations = store.step_attestations(run)?;
    attestations.sort_by_key(|(_, a)| a.position);
    let mut step_attestations = Vec::new();
    for (index, stored) in attestations {
        let step_id = steps
            .iter()
            .find(|s| s.index == index)
            .map(|s| s.step_id.clone())
            .ok_or_else(|| {
                corrupt(format!(
                    "an attestation for step #{index}, which the run does not have"
                ))
            })?;
        let parse = |text: &str| {
            Envelope::from_json(text.as_bytes())
                .map_err(|e| corrupt(format!("step `{step_id}`: {e}")))
        };
        step_attestations.push(StepAttestation {
            statement: parse(&stored.statement)?,
            link: parse(&stored.link)?,
            link_file_name: stored.link_file_name,
            step_id,
        });
    }
    let envelope = |text: &str, what: &str| {
        Envelope::from_json(text.as_bytes()).map_err(|e| corrupt(format!("the {what}: {e}")))
    };
    let owner = PublicKey::from_pem(&run_attestation.owner_public_key)
        .map_err(|e| corrupt(format!("the owner key: {e}")))?;
    Ok(Bundle::new(
        envelope(&run_attestation.layout, "layout")?,
        owner,
        envelope(&run_attestation.chain, "run chain")?,
        &step_attestations,
    ))
}

/// Reads an export directory (`flow attest export`).
pub fn read_export(dir: &Path) -> Result<Bundle, VerificationError> {
    Bundle::read_dir(dir)
        .map_err(|e| VerificationError::Export(format!("cannot read the export: {e}")))
}

/// Writes a run's provenance as the standard files into `out` (new or empty):
/// `root.layout`, `owner.pub`, `run.json`, one `<step>.<keyid>.link` and one
/// `<step>.intoto.json` per step. `in-toto-verify --layout root.layout
/// --verification-keys owner.pub --link-dir OUT` checks it.
pub fn export(store: &Store, run: &RunId, out: &Path) -> Result<Bundle, VerificationError> {
    let bundle = bundle(store, run)?;
    bundle
        .write_dir(out)
        .map_err(|e| VerificationError::Export(format!("cannot export: {e}")))?;
    Ok(bundle)
}

/// Verifies every signature, the materials -> products chain between steps and the
/// run chain. With `trusted`, the owner key must be that key; without, the bundle's
/// own owner key is used (which proves the record is whole, not who made it).
pub fn verify(bundle: &Bundle, trusted: Option<&PublicKey>) -> Report {
    let options = VerifyOptions {
        trusted_owner: trusted.cloned(),
        ..VerifyOptions::default()
    };
    flow_provenance::verify(bundle, &options)
}

/// A dependency a plugin asserted (not observed by the host), as a verified
/// statement records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The step whose statement records it.
    pub step: String,
    /// What the plugin claims it used.
    pub uri: String,
    /// Its digests, `algorithm:value`.
    pub digests: Vec<String>,
}

/// The claims of every step of a bundle, in the order the steps completed.
pub fn claims(bundle: &Bundle) -> Vec<Claim> {
    let mut out = Vec::new();
    for (step, statement) in &bundle.statements {
        let body: serde_json::Value =
            serde_json::from_slice(&statement.payload).unwrap_or_default();
        let dependencies = body["predicate"]["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for dependency in dependencies {
            if !dependency["annotations"]["claimedBy"].is_string() {
                continue;
            }
            out.push(Claim {
                step: step.clone(),
                uri: dependency["uri"].as_str().unwrap_or("?").to_owned(),
                digests: dependency["digest"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(a, v)| format!("{a}:{}", v.as_str().unwrap_or("?")))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
    out
}

/// A policy, and where the templates of a run's chain are found (the template cache
/// under `cache_dir`, and directories given).
#[derive(Debug)]
pub struct PolicyCheck {
    policy: Policy,
    locator: TemplateLocator,
}

impl PolicyCheck {
    /// A check of `policy`, finding templates by digest in `cache_dir`'s template
    /// cache and in `template_dirs` (each hashed now).
    pub fn new(
        policy: Policy,
        cache_dir: Option<PathBuf>,
        template_dirs: &[PathBuf],
    ) -> Result<PolicyCheck, VerificationError> {
        let locator = TemplateLocator::new(cache_dir, template_dirs)
            .map_err(|e| VerificationError::Templates(e.to_string()))?;
        Ok(PolicyCheck { policy, locator })
    }

    /// Checks a bundle that verified against the policy: one [`Check`] per rule and
    /// step. Read only verified bundles: a policy decides on what was signed.
    pub fn evaluate(&self, bundle: &Bundle) -> Result<Evaluation, VerificationError> {
        let statements = bundle
            .statements
            .iter()
            .map(|(step, env)| (step.as_str(), env.payload.as_slice()));
        let run = RunFacts::from_statements(statements)
            .map_err(|e| VerificationError::Statements(e.to_string()))?;
        Ok(crate::policy::evaluate(
            &self.policy,
            &run,
            &mut |template| self.locator.find(template).map(|(_, d)| d.sealed_steps),
        ))
    }
}
