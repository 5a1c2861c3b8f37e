//! `flow run --dry-run --explain`: which steps the cache would stand in for, and why the
//! others would run, without running anything. A step whose needs would all be taken
//! from the cache is looked up with the view those results make; one that needs a step
//! that would run cannot be known before it runs, and says so.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flow_pipeline::{EvalContext, Plan, StepOutcome};
use flow_provenance::{DigestCache, Root, SnapshotLimits};
use flow_store::{Objects, Tree};
use serde::Serialize;
use serde_json::Value;

use super::{Lookup, Manifest, RunCache, off_reason};
use crate::cancel::CancelFlag;
use crate::capabilities::claims::Claims;
use crate::capabilities::log::LogSink;
use crate::capabilities::{RunCapabilities, StepInputs};
use crate::plugins::ResolvedPlugins;

/// What the cache would do for a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Prediction {
    /// It would not run: a result is kept under its key.
    Hit {
        /// The run whose step made the result.
        run: String,
        /// That step.
        step: String,
    },
    /// It would run: nothing is kept under its key; why, one line per cause.
    Miss {
        /// The causes.
        why: Vec<String>,
    },
    /// It would run without asking the cache.
    Off {
        /// Why.
        why: String,
    },
    /// It would be skipped (its condition is false).
    Skip {
        /// Why.
        why: String,
    },
    /// Not known before other steps run.
    Unknown {
        /// Why.
        why: String,
    },
}

/// What a prediction needs of the run it would be.
pub(crate) struct Predictor<'a> {
    pub plan: &'a Plan,
    pub plugins: &'a ResolvedPlugins,
    pub caps: &'a RunCapabilities,
    pub cache: Result<Arc<RunCache>, String>,
    pub objects: &'a Objects,
    pub base: Tree,
    pub inputs: BTreeMap<String, Value>,
    pub workspace: &'a std::path::Path,
}

impl Predictor<'_> {
    /// Every step's prediction, in plan order.
    pub(crate) fn predict(self) -> Vec<(String, Prediction)> {
        let steps = &self.plan.steps;
        let mut eval = EvalContext::new(self.inputs.clone());
        let mut out: Vec<(String, Prediction)> = Vec::with_capacity(steps.len());
        // By plan index: the changes a step taken from the cache would bring.
        let mut changes: Vec<Option<flow_store::Changes>> = vec![None; steps.len()];
        let mut ancestors: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); steps.len()];
        let digests = DigestCache::new();
        for (index, step) in steps.iter().enumerate() {
            let mut all = BTreeSet::new();
            for &need in &step.needs {
                all.insert(need);
                all.extend(ancestors[need].iter().copied());
            }
            ancestors[index] = all;
            let runs_first = ancestors[index]
                .iter()
                .find(|&&a| !matches!(out[a].1, Prediction::Hit { .. } | Prediction::Skip { .. }));
            // A step that runs whatever the cache holds says so first.
            let off = match &self.cache {
                Err(why) => Some(why.clone()),
                Ok(_) => off_reason(step),
            };
            let (prediction, kept) = match runs_first {
                Some(_) if let Some(why) = off => (Prediction::Off { why }, None),
                Some(&first) => (
                    Prediction::Unknown {
                        why: format!(
                            "`{}` would run first: what it leaves is not known before it runs",
                            steps[first].id
                        ),
                    },
                    None,
                ),
                None => self.one(step, &mut eval, &changes, &ancestors[index], &digests),
            };
            if let Prediction::Skip { .. } = &prediction {
                eval.record_step(step.id.clone(), StepOutcome::Skipped, BTreeMap::new());
            }
            if let Some(entry) = kept {
                let entry = *entry;
                eval.record_step(step.id.clone(), StepOutcome::Succeeded, entry.outputs);
                changes[index] = Some(entry.changes);
            }
            out.push((step.id.clone(), prediction));
        }
        out
    }

    fn one(
        &self,
        step: &flow_pipeline::PlannedStep,
        eval: &mut EvalContext,
        changes: &[Option<flow_store::Changes>],
        ancestors: &BTreeSet<usize>,
        digests: &DigestCache,
    ) -> (Prediction, Option<Box<flow_store::CacheEntry>>) {
        if let Some((condition, _)) = &step.condition {
            match step.evaluate_condition(eval) {
                Ok(true) => {}
                Ok(false) => {
                    let why = format!("condition `{}` would be false", condition.source());
                    return (Prediction::Skip { why }, None);
                }
                Err(d) => return (Prediction::Unknown { why: d.render() }, None),
            }
        }
        let params = match step.resolve_params(eval) {
            Ok(params) => params,
            Err(d) => return (Prediction::Unknown { why: d.render() }, None),
        };
        let run = match &self.cache {
            Ok(run) => run.clone(),
            Err(why) => return (Prediction::Off { why: why.clone() }, None),
        };
        if let Some(why) = off_reason(step) {
            return (Prediction::Off { why }, None);
        }
        let Some(plugin) = self.plugins.get(&step.plugin) else {
            let why = format!("plugin `{}` is not loaded", step.plugin);
            return (Prediction::Unknown { why }, None);
        };
        let log = LogSink::new(0);
        let claims = Claims::new();
        let cancel = CancelFlag::new();
        let prepared = self.caps.prepare(&StepInputs {
            step,
            workspace: self.workspace,
            workspace_identity: None,
            log: &log,
            claims: &claims,
            attestations: None,
            deadline: Instant::now() + Duration::from_secs(3600),
            cancel: &cancel,
        });
        let manifest = Manifest::of_step(
            step,
            &params,
            &plugin.digest.hex(),
            self.caps,
            prepared.exec.plugin_env(),
            &run.secret,
        );
        let mut view = self.base.clone();
        for &a in ancestors {
            if let Some(c) = &changes[a] {
                view.apply(c);
            }
        }
        let roots: Vec<Root> = step
            .fs_grants
            .iter()
            .filter(|g| g.hash)
            .map(|g| Root::host(&g.path))
            .collect();
        let granted = if roots.is_empty() {
            BTreeMap::new()
        } else {
            digests
                .snapshot_within(&roots, SnapshotLimits::default())
                .artifacts
        };
        let looked = Lookup {
            run,
            step: step.id.clone(),
            manifest,
            producers: Vec::new(),
            keep_anyway: step.cache == Some(true),
        }
        .find(&view, &granted, self.objects);
        match looked.hit {
            Some(entry) => (
                Prediction::Hit {
                    run: entry.run.clone(),
                    step: entry.step.clone(),
                },
                Some(entry),
            ),
            None => (Prediction::Miss { why: looked.why }, None),
        }
    }
}
