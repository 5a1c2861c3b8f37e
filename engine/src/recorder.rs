//! Provenance for every step: what it could read before it ran (materials),
//! what it created or changed (products), which plugin ran with which params
//! and grants, and how it ended — signed as an in-toto Statement (SLSA
//! Provenance v1) and an in-toto v0.9 link, stored with the step in one write.
//! A run adds a layout generated from the pipeline (and the order its steps
//! ran in) and a signed chain of its steps' envelopes in the order they
//! completed.
//!
//! Keys, documents and verification live in `flow_provenance`; this module
//! decides what a step's evidence is.

use crate::capabilities::RunCapabilities;
use std::collections::BTreeMap;
use std::sync::Arc;

use flow_pipeline::{FsAccess, Plan, PlannedStep};
use flow_provenance::{
    DigestCache, Envelope, LayoutSpec, LayoutStep, Outcome, Root, RunChain as Chain, RunStep,
    SigningKey, StepEvidence, TemplateOrigin, TemplateRef,
};
use flow_store::{RunAttestation, StepAttestation, StepStatus};

/// Failure to build or sign provenance: a host problem, reported as such.
#[derive(Debug, thiserror::Error)]
#[error("cannot record provenance: {0}")]
pub struct ProvenanceError(String);

/// The directories a step could read and write, as snapshot roots.
#[derive(Debug, Clone)]
pub(crate) struct StepRoots {
    pub readable: Vec<Root>,
    pub writable: Vec<Root>,
}

/// What the executor hands over when a step ends.
#[derive(Debug, Default)]
pub(crate) struct StepFacts {
    pub params: serde_json::Map<String, serde_json::Value>,
    pub plugin_sha256: String,
    pub started_ms: Option<u64>,
    pub materials: BTreeMap<String, String>,
    pub products: BTreeMap<String, String>,
    pub notes: Vec<String>,
    pub dependencies: Vec<flow_provenance::Dependency>,
    pub commands: Vec<serde_json::Value>,
}

/// Which run is recorded: its id, its pipeline file (as given, and the file's
/// sha256).
pub(crate) struct RunIdentity {
    pub run_id: String,
    pub pipeline_file: String,
    pub pipeline_sha256: String,
}

/// Records one run's provenance.
pub(crate) struct Recorder {
    key: Arc<SigningKey>,
    cache: Arc<DigestCache>,
    /// One per pipeline step, from the plan: its needs and granted directories.
    layout_steps: Vec<LayoutStep>,
    /// For each step that started and has not ended: the steps whose changes its view
    /// holds (all it needs, directly or through others), in plan order.
    visible: std::collections::HashMap<usize, Vec<usize>>,
    /// Every product so far: name -> (sha256, step index), oldest first.
    producers: std::collections::HashMap<String, Vec<(String, usize)>>,
    /// For each step (plan order): the earlier steps that produced its materials.
    sources: Vec<std::collections::BTreeSet<String>>,
    chain: Vec<RunStep>,
    run_id: String,
    pipeline_name: String,
    pipeline_file: String,
    pipeline_sha256: String,
    /// What each step was granted, described by its capabilities.
    caps: Arc<RunCapabilities>,
    /// The template chain the pipeline was resolved from, nearest first (empty when it
    /// extends none: then nothing about templates is recorded).
    templates: Vec<TemplateRef>,
}

impl Recorder {
    /// Start recording a run.
    pub fn new(
        plan: &Plan,
        key: Arc<SigningKey>,
        run: RunIdentity,
        caps: Arc<RunCapabilities>,
    ) -> Result<Self, ProvenanceError> {
        let layout_steps: Vec<LayoutStep> = plan
            .steps
            .iter()
            .map(|step| {
                let mut layout_step = LayoutStep::new(
                    step.id.clone(),
                    step.needs.iter().map(|&n| plan.steps[n].id.clone()),
                );
                // Files in granted host directories are inputs from outside the run.
                layout_step.allow_materials = step
                    .fs_grants
                    .iter()
                    .map(|g| format!("{}/*", g.path.display()))
                    .collect();
                layout_step
            })
            .collect();
        Ok(Recorder {
            key,
            cache: Arc::new(DigestCache::new()),
            sources: vec![Default::default(); layout_steps.len()],
            layout_steps,
            visible: Default::default(),
            producers: Default::default(),
            chain: Vec::new(),
            run_id: run.run_id,
            pipeline_name: plan.name.clone(),
            pipeline_file: run.pipeline_file,
            pipeline_sha256: run.pipeline_sha256,
            caps,
            templates: plan
                .templates
                .iter()
                .map(|t| TemplateRef {
                    id: t.id.clone(),
                    version: t.version.clone(),
                    sha256: t.sha256.clone(),
                })
                .collect(),
        })
    }

    /// A step is starting; `ancestors` are the steps it needs, directly or through
    /// others, that produced something (plan order): only they can have produced its
    /// materials.
    pub fn step_started(&mut self, step: &PlannedStep, ancestors: Vec<usize>) {
        self.visible.insert(step.index, ancestors);
    }

    /// Which steps its view holds produced `materials`, and remember `products` as
    /// made by `step`.
    fn trace(
        &mut self,
        step: &PlannedStep,
        materials: &BTreeMap<String, String>,
        products: &BTreeMap<String, String>,
    ) {
        if let Some(ancestors) = self.visible.remove(&step.index) {
            for (name, sha) in materials {
                let producer = self.producers.get(name).and_then(|made| {
                    made.iter()
                        .rev()
                        .find(|(digest, by)| digest == sha && ancestors.binary_search(by).is_ok())
                        .map(|(_, by)| *by)
                });
                if let (Some(producer), Some(sources)) =
                    (producer, self.sources.get_mut(step.index))
                    && let Some(layout) = self.layout_steps.get(producer)
                {
                    sources.insert(layout.name.clone());
                }
            }
        }
        for (name, sha) in products {
            self.producers
                .entry(name.clone())
                .or_default()
                .push((sha.clone(), step.index));
        }
    }

    /// The shared digest cache (files unchanged since they were last hashed in
    /// this run are not hashed again).
    pub fn cache(&self) -> Arc<DigestCache> {
        self.cache.clone()
    }

    /// The granted directories a step could read and write (its view of the
    /// workspace is known from what the host wrote and kept, not hashed again).
    pub fn roots(&self, step: &PlannedStep) -> StepRoots {
        let mut readable = Vec::new();
        let mut writable = Vec::new();
        for grant in &step.fs_grants {
            // `hash: false` leaves the directory out of materials and products alike.
            if !grant.hash {
                continue;
            }
            readable.push(Root::host(&grant.path));
            if grant.access == FsAccess::Write {
                writable.push(Root::host(&grant.path));
            }
        }
        StepRoots { readable, writable }
    }

    /// Sign a step's evidence and add it to the run chain.
    pub fn attest(
        &mut self,
        step: &PlannedStep,
        status: StepStatus,
        reason: Option<&str>,
        facts: StepFacts,
        finished_ms: u64,
    ) -> Result<StepAttestation, ProvenanceError> {
        let outcome = match status {
            StepStatus::Succeeded => Outcome::Succeeded,
            StepStatus::TimedOut => Outcome::TimedOut,
            StepStatus::Cancelled => Outcome::Cancelled,
            StepStatus::Skipped => Outcome::Skipped,
            _ => Outcome::Failed,
        };
        // What each capability granted the step.
        let grants = self.caps.describe(step);
        let commands = self
            .caps
            .exec
            .plan()
            .steps
            .get(step.index)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut dependencies: Vec<flow_provenance::Dependency> = commands
            .iter()
            .map(|c| flow_provenance::Dependency {
                claimed_by: None,
                uri: format!("file://{}", c.resolved.real_path.display()),
                name: Some(c.name.clone()),
                digest: [("sha256".to_owned(), c.resolved.sha256.clone())]
                    .into_iter()
                    .collect(),
            })
            .collect();
        // The templates the step was resolved from: by digest as dependencies, and where
        // the step came from in the internal parameters.
        dependencies.extend(self.templates.iter().map(TemplateRef::dependency));
        // A plugin's claims come after, marked as claims, and never stand for something
        // the host recorded itself (the plugin, a command, a template).
        let mut notes = facts.notes;
        let plugin_uri = step.plugin.to_string();
        for claim in facts.dependencies {
            if claim.claimed_by.is_none() {
                // Observed by the host while the step ran (a toolchain behind a proxy).
                if !dependencies.iter().any(|d| d.uri == claim.uri) {
                    dependencies.push(claim);
                }
                continue;
            }
            let shadows = claim.uri == plugin_uri
                || claim.uri.starts_with(flow_provenance::TEMPLATE_URI_SCHEME)
                || dependencies.iter().any(|d| d.uri == claim.uri);
            if shadows {
                notes.push(format!(
                    "ignored the plugin's claim for `{}`: the host records that dependency itself",
                    claim.uri
                ));
            } else {
                dependencies.push(claim);
            }
        }
        let template = self.template_origin(step);
        self.trace(step, &facts.materials, &facts.products);
        let evidence = StepEvidence {
            run_id: self.run_id.clone(),
            step_id: step.id.clone(),
            pipeline_name: self.pipeline_name.clone(),
            pipeline_file: self.pipeline_file.clone(),
            pipeline_sha256: self.pipeline_sha256.clone(),
            plugin: step.plugin.to_string(),
            plugin_sha256: facts.plugin_sha256,
            params: serde_json::Value::Object(facts.params),
            grants,
            started_unix_ms: facts.started_ms.unwrap_or(finished_ms),
            finished_unix_ms: finished_ms,
            outcome,
            failure_reason: reason.map(str::to_string),
            engine_name: "flow".into(),
            engine_version: env!("CARGO_PKG_VERSION").into(),
            materials: facts.materials,
            products: facts.products,
            needs: self
                .layout_steps
                .get(step.index)
                .map(|l| l.needs.clone())
                .unwrap_or_default(),
            notes,
            dependencies,
            commands: facts.commands,
            template,
        };
        let attestation = flow_provenance::attest_step(&evidence, &self.key)
            .map_err(|e| ProvenanceError(e.to_string()))?;
        let position = self.chain.len() as u32;
        self.chain.push(RunStep {
            step: step.id.clone(),
            outcome,
            statement_sha256: attestation.statement.sha256(),
            link_sha256: attestation.link.sha256(),
        });
        Ok(StepAttestation {
            position,
            link_file_name: attestation.link_file_name.clone(),
            statement: envelope_text(&attestation.statement),
            link: envelope_text(&attestation.link),
            keyid: self.key.keyid().to_string(),
        })
    }

    /// Takes a step that finished before the run was resumed as it was signed: its
    /// envelopes stay, its materials and products are traced, and it gets the next
    /// place in the run chain (the attestation is returned with that place, and whether
    /// the step had products).
    pub fn adopt(
        &mut self,
        step: &PlannedStep,
        attestation: &StepAttestation,
    ) -> Result<(StepAttestation, bool), ProvenanceError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            ProvenanceError(format!("step `{}`'s recorded {what}: {e}", step.id))
        };
        let statement = Envelope::from_json(attestation.statement.as_bytes())
            .map_err(|e| bad("statement", &e))?;
        let link = Envelope::from_json(attestation.link.as_bytes()).map_err(|e| bad("link", &e))?;
        let payload = flow_provenance::link::LinkPayload::parse(&link.payload)
            .map_err(|e| bad("link", &e))?;
        let sha256_of = |artifacts: &BTreeMap<String, BTreeMap<String, String>>| {
            artifacts
                .iter()
                .filter_map(|(name, digests)| Some((name.clone(), digests.get("sha256")?.clone())))
                .collect::<BTreeMap<_, _>>()
        };
        let products = sha256_of(&payload.products);
        self.trace(step, &sha256_of(&payload.materials), &products);
        let outcome = match payload.outcome() {
            Some("succeeded") | None => Outcome::Succeeded,
            Some(other) => return Err(bad("outcome", &other)),
        };
        let position = self.chain.len() as u32;
        self.chain.push(RunStep {
            step: step.id.clone(),
            outcome,
            statement_sha256: statement.sha256(),
            link_sha256: link.sha256(),
        });
        Ok((
            StepAttestation {
                position,
                ..attestation.clone()
            },
            !products.is_empty(),
        ))
    }

    /// Where `step` came from, when the pipeline was resolved from templates.
    fn template_origin(&self, step: &PlannedStep) -> Option<TemplateOrigin> {
        if self.templates.is_empty() {
            return None;
        }
        let origin = &step.origin;
        debug_assert!(
            origin.template.is_none_or(|i| i < self.templates.len()),
            "step {} names template #{:?} of {}",
            step.id,
            origin.template,
            self.templates.len()
        );
        Some(TemplateOrigin {
            chain: self.templates.clone(),
            declared_by: origin
                .template
                .and_then(|i| self.templates.get(i))
                .map(TemplateRef::name),
            interface: origin.interface.clone(),
            sealed: origin.sealed,
            slot: origin.slot.clone(),
        })
    }

    /// The run's layout and signed chain, to store when the run ends.
    ///
    /// The layout is the pipeline's steps, where a step's materials must be
    /// products of the steps that made them — steps it needs, directly or through
    /// others (its view of the workspace holds nothing else) — or lie in its
    /// granted directories; anything else is disallowed. Naming only the steps that produced its materials keeps
    /// the layout linear in the pipeline's size.
    pub fn finish(&self) -> Result<RunAttestation, ProvenanceError> {
        let steps = self
            .layout_steps
            .iter()
            .zip(&self.sources)
            .map(|(step, sources)| {
                let mut step = step.clone();
                step.sources = Some(sources.iter().cloned().collect());
                step
            })
            .collect();
        let spec = LayoutSpec::new(steps, vec![self.key.public_key().clone()]);
        let layout = flow_provenance::sign_layout(&spec, &self.key)
            .map_err(|e| ProvenanceError(e.to_string()))?;
        let mut chain = Chain::new(self.run_id.clone(), self.pipeline_name.clone(), &layout);
        chain.steps = self.chain.clone();
        let chain = chain
            .sign(&self.key)
            .map_err(|e| ProvenanceError(e.to_string()))?;
        Ok(RunAttestation {
            layout: envelope_text(&layout),
            chain: envelope_text(&chain),
            owner_public_key: self.key.public_key().to_pem(),
        })
    }
}

fn envelope_text(envelope: &Envelope) -> String {
    // `to_json` is canonical (sorted keys, no spaces) and ASCII.
    String::from_utf8_lossy(&envelope.to_json()).into_owned()
}

/// A snapshot of a step's files, with its skipped files as notes.
#[derive(Default)]
pub(crate) struct StepSnapshot {
    pub artifacts: BTreeMap<String, String>,
    pub notes: Vec<String>,
    pub stopped: Option<flow_provenance::SnapshotStop>,
}

/// Snapshot `roots` off the async threads (hashing is blocking work), within `limits`.
pub(crate) async fn snapshot(
    cache: Arc<DigestCache>,
    roots: Vec<Root>,
    limits: flow_provenance::SnapshotLimits,
) -> StepSnapshot {
    let result = tokio::task::spawn_blocking(move || cache.snapshot_within(&roots, limits)).await;
    match result {
        Ok(snapshot) => StepSnapshot {
            notes: snapshot
                .skipped
                .iter()
                .map(|s| format!("not hashed: {}: {}", s.path.display(), s.reason))
                .collect(),
            artifacts: snapshot.artifacts,
            stopped: snapshot.stopped,
        },
        Err(e) => StepSnapshot {
            artifacts: BTreeMap::new(),
            notes: vec![format!("the snapshot failed: {e}")],
            stopped: None,
        },
    }
}
