//! What the benchmarks share: running one built-in plugin as a step,
//! straight through the runtime (no store, no provenance), and printing times.
// Each benchmark is its own crate and uses part of this.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flow_engine::Engine;
use flow_engine::capabilities::claims::Claims;
use flow_engine::capabilities::fs::DirGrant;
use flow_engine::capabilities::log::LogSink;
use flow_engine::runtime::{CancelFlag, LoadedPlugin, StepInvocation, StepLimits};
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
        .runtime()
        .load(name, &bytes)
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
    let (log, claims, cancel) = (LogSink::new(1 << 20), Claims::new(), CancelFlag::new());
    let invocation = StepInvocation {
        run_id: "bench",
        step_id: "bench",
        params,
        workspace,
        workspace_identity: None,
        dirs,
        limits: StepLimits {
            memory,
            timeout: Duration::from_secs(600),
        },
        cancel: &cancel,
        log: &log,
        exec: None,
        claims: &claims,
        secrets: None,
        keys: None,
        net: None,
        attestations: None,
    };
    let start = Instant::now();
    let outputs = engine
        .runtime()
        .run_step(plugin, invocation)
        .await
        .unwrap_or_else(|e| {
            let (lines, ..) = log.finish();
            panic!("the step failed: {e}: {lines:?}")
        });
    (outputs, start.elapsed())
}

/// The median of some durations.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The `p` quantile (0 to 1) of some durations.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Microseconds with one decimal.
pub fn us(d: Duration) -> String {
    format!("{:.1} us", d.as_secs_f64() * 1e6)
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
