//! The step cache: a step whose key — its plugin, params, grants, host commands,
//! variables, secrets (keyed), view of the workspace and granted files — matches a
//! result kept from an earlier run does not run; its files and outputs are taken from
//! that result, and its provenance says so. Misses say why, against the last key the
//! same step of the same pipeline had. Records live in the store
//! ([`flow_store::StepCache`]), files in the object store.

pub(crate) mod explain;
pub mod gc;
pub(crate) mod manifest;
pub mod predict;

use std::collections::BTreeMap;
use std::sync::Arc;

use flow_pipeline::{FsAccess, PlannedStep};
use flow_store::{CacheEntry, CacheUse, LastKey, Objects, StepCache, Tree};
use serde::{Deserialize, Serialize};

pub(crate) use explain::Producer;
pub(crate) use manifest::Manifest;

/// The cache as one run uses it.
pub(crate) struct RunCache {
    pub cache: StepCache,
    pub secret: [u8; 32],
    pub pipeline: String,
    pub run: String,
}

impl std::fmt::Debug for RunCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunCache")
            .field("pipeline", &self.pipeline)
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

/// Why `step` runs without asking the cache, if it does. A step that may reach the
/// network or run commands unconfined is asked for; what it did decides whether its
/// result is kept (see [`Looked::outside`]).
pub(crate) fn off_reason(step: &PlannedStep) -> Option<String> {
    if step.cache == Some(false) {
        return Some("`cache: false`".into());
    }
    // What the cache cannot give back, even when asked: files written outside the view.
    if let Some(grant) = step.fs_grants.iter().find(|g| g.access == FsAccess::Write) {
        return Some(format!(
            "it writes to the granted directory {}, which the cache cannot give back",
            grant.path.display()
        ));
    }
    if let Some(grant) = step.fs_grants.iter().find(|g| !g.hash) {
        return Some(format!(
            "it reads {}, which is not hashed (`hash: false`)",
            grant.path.display()
        ));
    }
    None
}

/// A step's evidence as kept with its result (what its provenance says beyond its
/// materials, which its key fixes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Evidence {
    pub products: BTreeMap<String, String>,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub dependencies: Vec<flow_provenance::Dependency>,
    #[serde(default)]
    pub commands: Vec<serde_json::Value>,
}

/// What a step's task needs to look it up: everything in its key but its files.
pub(crate) struct Lookup {
    pub run: Arc<RunCache>,
    pub step: String,
    pub manifest: Manifest,
    pub producers: Vec<Producer>,
    /// `cache: true`: its result is kept even when it reached outside its inputs.
    pub keep_anyway: bool,
}

/// A step looked up: its key, what went into it, and what was found.
pub(crate) struct Looked {
    pub key: String,
    pub manifest: Manifest,
    /// The result kept under the key, when there is one whose files are all kept.
    pub hit: Option<Box<CacheEntry>>,
    /// On a miss, why.
    pub why: Vec<String>,
    pub run: Arc<RunCache>,
    pub step: String,
    /// Whether the step's result may be kept (its files were all kept and hashed).
    pub storable: bool,
    /// `cache: true` on the step.
    pub keep_anyway: bool,
}

impl Lookup {
    /// Completes the key with the step's view and granted files, and looks it up.
    pub(crate) fn find(
        self,
        view: &Tree,
        granted: &BTreeMap<String, String>,
        objects: &Objects,
    ) -> Looked {
        let Lookup {
            run,
            step,
            mut manifest,
            producers,
            keep_anyway,
        } = self;
        manifest.set_inputs(view);
        manifest.granted = granted.clone();
        let key = manifest.key(&run.secret);
        let (hit, why) = match run.cache.get(&key) {
            Ok(Some(entry)) if entry.objects().all(|(sha, _)| objects.contains(sha)) => {
                (Some(Box::new(entry)), Vec::new())
            }
            Ok(Some(entry)) => (
                None,
                vec![format!(
                    "the result kept from run {} lost files from the object store",
                    entry.run
                )],
            ),
            Ok(None) => (None, miss_causes(&run, &step, &key, &manifest, &producers)),
            Err(e) => (None, vec![format!("the cache could not be read: {e}")]),
        };
        Looked {
            key,
            manifest,
            hit,
            why,
            run,
            step,
            storable: true,
            keep_anyway,
        }
    }
}

fn miss_causes(
    run: &RunCache,
    step: &str,
    key: &str,
    manifest: &Manifest,
    producers: &[Producer],
) -> Vec<String> {
    let last = match run.cache.last(&run.pipeline, step) {
        Ok(Some(last)) => last,
        Ok(None) => {
            return vec![format!(
                "no earlier run of step `{step}` in pipeline `{}`",
                run.pipeline
            )];
        }
        Err(e) => return vec![format!("the cache could not be read: {e}")],
    };
    if last.key == key {
        return vec![format!(
            "its key is run {}'s, but that result is no longer kept (evicted by `flow cache gc`, or that step failed)",
            last.run
        )];
    }
    match serde_json::from_value::<Manifest>(last.manifest) {
        Ok(before) => explain::causes(&before, &last.run, manifest, producers),
        Err(_) => vec![format!(
            "run {}'s key was made by another version of flow",
            last.run
        )],
    }
}

impl Looked {
    /// The step did things its inputs do not fix (`outside`: a network request, an
    /// unconfined command): unless it says `cache: true`, its result is not kept, and
    /// its record says why the next run will miss too.
    pub(crate) fn outside(&mut self, outside: &[String]) {
        if outside.is_empty() || self.keep_anyway {
            return;
        }
        self.storable = false;
        self.why.push(format!(
            "its result is not kept: {}; `cache: true` keeps it anyway",
            outside.join(", ")
        ));
    }

    /// What the record says the cache did.
    pub(crate) fn use_(&self) -> CacheUse {
        match &self.hit {
            Some(entry) => CacheUse::Hit {
                run: entry.run.clone(),
                step: entry.step.clone(),
            },
            None => CacheUse::Miss {
                why: self.why.clone(),
            },
        }
    }

    /// Remembers the step's key (what the next miss is explained against), keeps the
    /// result of a step that ran and succeeded, and marks a taken result as used.
    /// The cache only saves work: a failure here is logged, not the run's.
    pub(crate) fn remember(
        self,
        result: Option<(BTreeMap<String, String>, flow_store::Changes, Evidence)>,
        redact: impl Fn(&mut String) -> bool,
        now: u64,
    ) {
        let stored = self.manifest.to_stored(&redact);
        let written = (|| -> flow_store::Result<()> {
            self.run.cache.set_last(
                &self.run.pipeline,
                &self.step,
                &LastKey {
                    run: self.run.run.clone(),
                    key: self.key.clone(),
                    manifest: stored.clone(),
                },
            )?;
            match (self.hit, result) {
                (Some(mut entry), _) => {
                    entry.used_at = now;
                    entry.hits += 1;
                    self.run.cache.put(&self.key, &entry)
                }
                (None, Some((outputs, changes, evidence))) if self.storable => {
                    let mut manifest = stored;
                    if let Some(m) = manifest.as_object_mut() {
                        // The inputs are listed in the last key; the entry keeps their count.
                        m.remove("inputs");
                        m.insert("input_count".into(), self.manifest.inputs.len().into());
                    }
                    let entry = CacheEntry {
                        run: self.run.run.clone(),
                        step: self.step.clone(),
                        pipeline: self.run.pipeline.clone(),
                        created_at: now,
                        used_at: now,
                        hits: 0,
                        outputs,
                        changes,
                        evidence: serde_json::to_value(evidence).unwrap_or_default(),
                        manifest,
                    };
                    self.run.cache.put(&self.key, &entry)
                }
                _ => Ok(()),
            }
        })();
        if let Err(e) = written {
            tracing::warn!(step = %self.step, error = %e, "cannot update the step cache");
        }
    }
}
