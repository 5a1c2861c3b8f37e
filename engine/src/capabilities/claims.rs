//! What a step adds to its provenance while it runs: dependencies the plugin
//! claims (the `provenance` import) and the host commands it ran.

use std::sync::{Arc, Mutex, MutexGuard};

use flow_provenance::Dependency;

use crate::runtime::bindings::flow::plugin::provenance as wit_provenance;

/// Most dependencies one step may claim; past this, claims are dropped with a note.
const MAX_CLAIMS: usize = 1_000;

/// Shared between a step's store and the executor, which reads it when the step ends.
#[derive(Debug, Clone, Default)]
pub struct Claims(Arc<Mutex<ClaimsInner>>);

#[derive(Debug, Default)]
struct ClaimsInner {
    dependencies: Vec<Dependency>,
    commands: Vec<serde_json::Value>,
    dropped: usize,
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

    pub(crate) fn add_command(&self, command: serde_json::Value) {
        let mut inner = self.lock();
        if inner.commands.len() >= MAX_CLAIMS {
            inner.dropped += 1;
        } else {
            inner.commands.push(command);
        }
    }

    /// Take what was claimed: dependencies, commands run, and a note if some were dropped.
    pub fn take(&self) -> (Vec<Dependency>, Vec<serde_json::Value>, Option<String>) {
        let mut inner = self.lock();
        let note = (inner.dropped > 0).then(|| {
            format!(
                "{} provenance claims past the first {MAX_CLAIMS} were dropped",
                inner.dropped
            )
        });
        (
            std::mem::take(&mut inner.dependencies),
            std::mem::take(&mut inner.commands),
            note,
        )
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

    fn list(&self) -> Vec<(String, Vec<u8>)> {
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

impl wit_provenance::Host for crate::runtime::StepState {
    fn run_attestations(&mut self) -> Vec<(String, Vec<u8>)> {
        self.attestations
            .as_ref()
            .map(RunAttestations::list)
            .unwrap_or_default()
    }

    fn add_dependency(&mut self, dependency: wit_provenance::Dependency) {
        let valid_digest = |(algorithm, value): &(String, String)| {
            !algorithm.is_empty()
                && algorithm.len() <= 64
                && algorithm
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && !value.is_empty()
                && value.len() <= 256
                && value.chars().all(|c| c.is_ascii_hexdigit())
        };
        if dependency.uri.is_empty()
            || dependency.uri.len() > 4096
            || !dependency.digest.iter().all(valid_digest)
        {
            self.log.line(
                crate::capabilities::log::LogSource::Host,
                &format!(
                    "ignored an invalid provenance dependency claim for `{}`",
                    dependency.uri
                ),
            );
            return;
        }
        self.claims.add_dependency(Dependency {
            uri: dependency.uri,
            name: dependency.name,
            digest: dependency
                .digest
                .into_iter()
                .map(|(a, d)| (a, d.to_ascii_lowercase()))
                .collect(),
        });
    }
}
