//! flow's engine: runs pipelines whose steps are sandboxed WebAssembly
//! components, and records every run.
//!
//! The CLI (`flow`) is one client of this library; a service embeds it the
//! same way:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use flow_engine::{Engine, RunOptions};
//!
//! let engine = Engine::builder().jobs(4).build()?;
//! let pipeline = engine.load_pipeline("flow.yaml".as_ref()).await?;
//! let store = flow_engine::Store::open("/var/lib/flow/runs")?;
//! let (events, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! tokio::spawn(async move { while let Some(event) = rx.recv().await { println!("{event:?}") } });
//! let summary = engine.run(&pipeline, RunOptions::new(store).events(events)).await?;
//! println!("{}", summary.run.status);
//! # Ok(()) }
//! ```
//!
//! Data moves one way: [`Engine::load_pipeline`] (or [`Engine::load_pipeline_text`])
//! parses the file, resolves the templates it extends, loads the plugins it names, and
//! checks it into an immutable [`flow_pipeline::Plan`]; [`Engine::run`] executes the
//! plan and records it, with signed provenance, in a [`Store`]; [`verification`]
//! reads that provenance back, exports it, verifies it and checks it against a
//! policy (what `flow verify` and `flow attest` do).
//!
//! The API is what this page lists: the engine and its builder, run options, events,
//! the run summary, the store's records, verification and policies, template
//! catalogs. Nothing here prints or exits; the process environment is read only where
//! a pipeline asks for it: granted host commands are found on `PATH`, host paths
//! expand `~/` and `${VAR}`, secrets may come from variables, granted variables are
//! passed to commands. The `flow` command is a separate package, one client of this
//! library.
#![deny(missing_docs)]

// The public API.
pub mod catalog;
pub mod cdevents;
mod engine;
mod error;
pub mod event_delivery;
pub mod events;
mod mac;
mod options;
pub mod report;
pub mod stats;
pub mod units;
pub mod verification;

// How it works inside.
mod bindings;
mod cancel;
pub(crate) mod capabilities;
mod executor;
mod plugins;
pub(crate) mod policy;
pub(crate) mod reach;
mod recorder;
mod resume;
mod run_setup;
pub(crate) mod runtime;
pub mod step_cache;
mod step_task;
mod views;

pub use cancel::CancelFlag;
pub use engine::{
    ENGINE_VERSION, Engine, EngineBuilder, LoadedPipeline, LockReport, parse_input_arg,
};
pub use error::EngineError;
pub use event_delivery::{DeliveryOptions, EventDelivery, EventTarget, SinkReport};
pub use events::Event;
pub use executor::{RunSummary, StepDefaults};
pub use flow_provenance::{PublicKey, SigningKey};
pub use flow_store::{
    LogLine, RunId, RunRecord, RunStatus, StepRecord, StepStatus, Store, StoreError,
};
pub use options::{DEFAULT_WORKSPACE_QUOTA, RunOptions};
pub use plugins::PluginRegistry;
pub use runtime::{CacheKey, CacheOutcome, LoadedPlugin, PluginDigest, RuntimeError};

/// Not part of the API: what the benchmarks measure inside the engine (one step
/// through the runtime, without the executor). It may change in any release.
#[doc(hidden)]
pub mod bench {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::Duration;

    pub use crate::capabilities::fs::DirGrant;
    pub use crate::capabilities::log::LogSink;
    pub use crate::runtime::StepFailure;

    /// Runs `plugin` once as a step in `workspace`, granted `dirs` and nothing else.
    #[allow(clippy::too_many_arguments)]
    pub async fn run_step(
        engine: &crate::Engine,
        plugin: &crate::LoadedPlugin,
        run_id: &str,
        step_id: &str,
        params: &serde_json::Map<String, serde_json::Value>,
        workspace: &Path,
        dirs: &[DirGrant],
        memory: u64,
        log: &LogSink,
    ) -> Result<BTreeMap<String, String>, StepFailure> {
        let mut caps = crate::capabilities::StepCapabilities::none(log);
        caps.fs = crate::capabilities::fs::FsStep::new(
            DirGrant {
                path: workspace.to_path_buf(),
                writable: true,
                identity: None,
            },
            dirs.to_vec(),
        );
        caps.files = crate::capabilities::files::WritableRoots(caps.fs.writable());
        let cancel = crate::CancelFlag::new();
        let invocation = crate::runtime::StepInvocation {
            run_id,
            step_id,
            params,
            limits: crate::runtime::StepLimits {
                memory,
                timeout: Duration::from_secs(600),
            },
            cancel: &cancel,
            log,
            caps,
        };
        engine.runtime().run_step(plugin, invocation).await
    }

    /// Whether the engine's runtime uses the pooling allocator.
    pub fn pooling(engine: &crate::Engine) -> bool {
        engine.runtime().pooling()
    }

    /// Walks `dir` into `objects` as a step's files are kept after it ran: every file
    /// read and stored, except those of `shown` (a view written by [`write_view`])
    /// that the step cannot have touched. `step_started` decides which of `shown`'s
    /// files are too recent to trust by their metadata.
    pub fn keep_tree(
        objects: &flow_store::Objects,
        dir: &Path,
        shown: Option<&View>,
        step_started: std::time::SystemTime,
    ) -> std::io::Result<flow_store::Tree> {
        let empty = crate::views::Written::default();
        crate::views::capture(
            objects,
            dir,
            shown.map_or(&empty, |v| &v.0),
            step_started,
            flow_provenance::SnapshotLimits::default(),
            if shown.is_some() {
                crate::views::Take::Move
            } else {
                crate::views::Take::Copy
            },
        )
        .map(|c| c.tree)
        .map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// A view written by [`write_view`].
    pub struct View(crate::views::Written);

    /// Writes `tree` into the empty directory `dir`, as a step's view is written.
    pub fn write_view(
        objects: &flow_store::Objects,
        dir: &Path,
        tree: flow_store::Tree,
    ) -> std::io::Result<View> {
        crate::views::materialize(objects, dir, tree).map(View)
    }
}
