//! What a step adds to its provenance while it runs: the dependencies its plugin
//! claims and the host observes, the commands it ran; and the run's attestations so
//! far, which a step may read.

use std::sync::{Arc, Mutex, MutexGuard};

use flow_provenance::Dependency;

/// Most dependencies one step may claim; past this, claims are dropped with a note.
const MAX_CLAIMS: usize = 1_000;

/// Shared between a step's store and the executor, which reads it when the step ends.
#[derive(Debug, Clone, Default)]
pub struct Claims(Arc<Mutex<ClaimsInner>>);

#[derive(Debug, Default)]
struct ClaimsInner {
    dependencies: Vec<Dependency>,
    /// Dependencies the host observed while the step ran (the toolchain a proxy ran).
    observed: Vec<Dependency>,
    commands: Vec<serde_json::Value>,
    dropped: usize,
    /// What the step did that its inputs do not fix (a network request, an
    /// unconfined command), in plain words, each once.
    outside: Vec<String>,
}

impl Claims {
    /// Nothing claimed yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, ClaimsInner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn add_dependency(&self, dependency: Dependency) {
        let mut inner = self.lock();
        if inner.dependencies.len() >= MAX_CLAIMS {
            inner.dropped += 1;
        } else {
            inner.dependencies.push(dependency);
        }
    }

    /// A dependency the host itself observed during the step.
    pub(crate) fn add_observed(&self, dependency: Dependency) {
        let mut inner = self.lock();
        if inner.observed.len() >= MAX_CLAIMS {
            inner.dropped += 1;
        } else if !inner.observed.contains(&dependency) {
            inner.observed.push(dependency);
        }
    }

    pub(crate) fn add_command(&self, command: serde_json::Value) {
        let mut inner = self.lock();
        if inner.commands.len() >= MAX_CLAIMS {
            inner.dropped += 1;
        } else {
            inner.commands.push(command);
        }
    }

    /// The step did something its inputs do not fix: its result may not stand in for a
    /// later run (unless the step says `cache: true`).
    pub(crate) fn add_outside(&self, what: String) {
        let mut inner = self.lock();
        if !inner.outside.contains(&what) && inner.outside.len() < 16 {
            inner.outside.push(what);
        }
    }

    /// What the step did that its inputs do not fix.
    pub(crate) fn outside(&self) -> Vec<String> {
        self.lock().outside.clone()
    }

    /// Take what was recorded: dependencies (those the host observed first, then the
    /// plugin's claims), commands run, and a note if some were dropped.
    pub fn take(&self) -> (Vec<Dependency>, Vec<serde_json::Value>, Option<String>) {
        let mut inner = self.lock();
        let note = (inner.dropped > 0).then(|| {
            format!(
                "{} provenance claims past the first {MAX_CLAIMS} were dropped",
                inner.dropped
            )
        });
        let mut dependencies = std::mem::take(&mut inner.observed);
        dependencies.append(&mut inner.dependencies);
        (dependencies, std::mem::take(&mut inner.commands), note)
    }
}

/// Reads the run's step attestations recorded so far, for `run-attestations`.
#[derive(Clone)]
pub struct RunAttestations {
    store: flow_store::Store,
    run: flow_store::RunId,
    /// Step ids in plan order.
    steps: Arc<Vec<String>>,
}

impl std::fmt::Debug for RunAttestations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunAttestations")
            .field("run", &self.run)
            .finish()
    }
}

impl RunAttestations {
    /// The attestations of `run` in `store`.
    pub fn new(store: flow_store::Store, run: flow_store::RunId, steps: Arc<Vec<String>>) -> Self {
        RunAttestations { store, run, steps }
    }

    pub(crate) fn list(&self) -> Vec<(String, Vec<u8>)> {
        match self.store.step_attestations(&self.run) {
            Ok(found) => found
                .into_iter()
                .filter_map(|(index, a)| {
                    let step = self.steps.get(index as usize)?;
                    Some((format!("{step}.intoto.json"), a.statement.into_bytes()))
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}
