//! What the benchmarks share: running one built-in plugin as a step,
//! straight through the runtime (no store, no provenance), and printing times.
// Each benchmark is its own crate and uses part of this.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod stats;
#[allow(unused_imports)]
pub use stats::{median, ms, percentile, us};

use flow_engine::Engine;
use flow_engine::LoadedPlugin;
use flow_engine::bench::DirGrant;
use flow_engine::bench::LogSink;
use flow_pipeline::PluginRef;

/// Load a built-in plugin.
pub async fn builtin(engine: &Engine, name: &str) -> Arc<LoadedPlugin> {
    let bytes = engine
        .registry()
        .bytes(&PluginRef::Builtin {
            name: name.into(),
            pin: None,
        })
        .expect("a built-in plugin");
    engine
        .load_plugin(name, &bytes)
        .await
        .expect("the plugin loads")
}

/// Run `plugin` once as a step in `workspace`, with read-only `dirs`: its
/// outputs and how long the step took. Panics with the step's log if it fails.
pub async fn run_once(
    engine: &Engine,
    plugin: &LoadedPlugin,
    params: &serde_json::Map<String, serde_json::Value>,
    workspace: &Path,
    dirs: &[DirGrant],
    memory: u64,
) -> (BTreeMap<String, String>, Duration) {
    let log = LogSink::new(1 << 20);
    let start = Instant::now();
    let outputs = flow_engine::bench::run_step(
        engine, plugin, "bench", "bench", params, workspace, dirs, memory, &log,
    )
    .await
    .unwrap_or_else(|e| {
        let (lines, ..) = log.finish();
        panic!("the step failed: {e}: {lines:?}")
    });
    (outputs, start.elapsed())
}
