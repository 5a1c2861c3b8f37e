//! How one run goes: its store, inputs, workspace, parallelism, cancellation,
//! events, signing key, secrets and quota.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use crate::cancel::CancelFlag;
use crate::event_delivery::EventDelivery;
use crate::events::Event;
use flow_provenance::SigningKey;
use flow_store::Store;

/// How to run a pipeline.
#[derive(Debug)]
pub struct RunOptions {
    pub(crate) store: Store,
    pub(crate) inputs: Vec<(String, String)>,
    pub(crate) workspace: Option<PathBuf>,
    pub(crate) jobs: Option<usize>,
    pub(crate) cancel: CancelFlag,
    pub(crate) events: Option<UnboundedSender<Event>>,
    pub(crate) delivery: Option<EventDelivery>,
    pub(crate) signing_key: Option<Arc<SigningKey>>,
    pub(crate) secrets: std::collections::BTreeMap<String, String>,
    pub(crate) workspace_quota: u64,
    pub(crate) no_cache: bool,
    pub(crate) resume: Option<flow_store::RunId>,
}

/// The most bytes a run's workspace may hold by default (see
/// [`RunOptions::workspace_quota`]): 32 GiB.
pub const DEFAULT_WORKSPACE_QUOTA: u64 = 32 << 30;

impl RunOptions {
    /// Record the run in `store`; no inputs; a fresh workspace in the
    /// store's data dir; the engine's parallelism.
    pub fn new(store: Store) -> Self {
        RunOptions {
            store,
            inputs: Vec::new(),
            workspace: None,
            jobs: None,
            cancel: CancelFlag::new(),
            events: None,
            delivery: None,
            signing_key: None,
            secrets: std::collections::BTreeMap::new(),
            workspace_quota: DEFAULT_WORKSPACE_QUOTA,
            no_cache: false,
            resume: None,
        }
    }

    /// The most bytes the run's workspace may hold (apparent file sizes, what hashing
    /// reads; default [`DEFAULT_WORKSPACE_QUOTA`]). It is measured when the host hashes
    /// a step's products; a step that leaves more fails, and says so.
    pub fn workspace_quota(mut self, bytes: u64) -> Self {
        self.workspace_quota = bytes;
        self
    }

    /// Run every step, without looking for results kept from earlier runs, and keep
    /// none of this run's (`flow run --no-cache`; default: the step cache is used, see
    /// `docs/cache.md`).
    pub fn no_cache(mut self, no_cache: bool) -> Self {
        self.no_cache = no_cache;
        self
    }

    /// Continue run `id` (of the same pipeline file) instead of starting a new one
    /// (`flow run --resume`): steps that succeeded are taken from the store after
    /// their files are checked against their digests, the others run again, and the
    /// run is recorded as one. It keeps its inputs and workspace: give neither.
    pub fn resume(mut self, id: flow_store::RunId) -> Self {
        self.resume = Some(id);
        self
    }

    /// The value of a secret the pipeline declares, instead of reading it from
    /// its `env` or `file` source (for embedders holding secrets themselves).
    pub fn secret(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.secrets.insert(name.into(), value.into());
        self
    }

    /// Pipeline inputs as `name=value` text, typed by the pipeline's `inputs:`.
    pub fn inputs(mut self, inputs: Vec<(String, String)>) -> Self {
        self.inputs = inputs;
        self
    }

    /// Use this directory as the run's workspace (created if missing).
    pub fn workspace(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workspace = Some(dir.into());
        self
    }

    /// Run at most `jobs` steps at once (default: the engine's [`EngineBuilder::jobs`],
    /// which is also the most a run may ask for: the runtime's instance pool is sized
    /// for it, and a run asking for more is refused).
    ///
    /// [`EngineBuilder::jobs`]: crate::EngineBuilder::jobs
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = Some(jobs.max(1));
        self
    }

    /// Cancel the run when this flag is set.
    pub fn cancel(mut self, cancel: CancelFlag) -> Self {
        self.cancel = cancel;
        self
    }

    /// Send the run's events here.
    pub fn events(mut self, events: UnboundedSender<Event>) -> Self {
        self.events = Some(events);
        self
    }

    /// Also send the run's events, as CDEvents, to `delivery`'s targets (`flow run
    /// --events-to`). Delivery never waits: call [`EventDelivery::finish`] after the run
    /// to wait (a bounded time) for what is queued, and to learn what was dropped.
    pub fn deliver_events(mut self, delivery: EventDelivery) -> Self {
        self.delivery = Some(delivery);
        self
    }

    /// Sign every step's provenance (in-toto statement and link) and the run's
    /// layout and chain with this key, and store them with the run. Without a
    /// key the run records no provenance (and says so in the engine's log);
    /// the `flow` CLI always gives one.
    pub fn signing_key(mut self, key: Arc<SigningKey>) -> Self {
        self.signing_key = Some(key);
        self
    }
}
