//! The `scan` plugin (inside WebAssembly) on a 500-package Cargo.lock against
//! the whole RustSec database, database load included. Prints figures:
//!
//!     cargo bench -p flow-engine --bench scan
//!
//! Target: under 200 ms per scan.

use std::path::Path;
use std::time::{Duration, Instant};

use flow_engine::Engine;
use flow_engine::capabilities::claims::Claims;
use flow_engine::capabilities::fs::DirGrant;
use flow_engine::capabilities::log::LogSink;
use flow_engine::runtime::{CancelFlag, StepInvocation, StepLimits};
use flow_pipeline::PluginRef;

fn main() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/scan/core/tests/data");
    let db = data
        .join("rustsec-advisory-db")
        .canonicalize()
        .expect("the vendored database");
    let tmp = tempfile::tempdir().expect("temp dir");
    let workspace = tmp.path().join("ws");
    std::fs::create_dir_all(&workspace).unwrap();
    let workspace = workspace.canonicalize().unwrap();
    std::fs::copy(
        data.join("lockfiles/synth-500.Cargo.lock"),
        workspace.join("Cargo.lock"),
    )
    .unwrap();
    let runs = 21;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let samples = rt.block_on(async {
        let engine = Engine::builder()
            .cache_dir(tmp.path().join("cache"))
            .jobs(1)
            .build()
            .expect("engine");
        let bytes = engine
            .registry()
            .bytes(&PluginRef::Builtin {
                name: "scan".into(),
                pin: None,
            })
            .expect("scan");
        let plugin = engine
            .runtime()
            .load("scan", &bytes)
            .await
            .expect("load scan");
        let mut params = serde_json::Map::new();
        params.insert("db".into(), db.display().to_string().into());
        params.insert("lockfiles".into(), serde_json::json!(["Cargo.lock"]));
        params.insert("fail-on".into(), "none".into());
        params.insert("unscored-as".into(), "high".into());
        params.insert("ignore".into(), serde_json::json!([]));
        params.insert("sarif".into(), "scan.sarif".into());
        let dirs = [DirGrant {
            path: db.clone(),
            writable: false,
        }];
        let cancel = CancelFlag::new();
        let mut samples = Vec::new();
        for i in 0..runs + 1 {
            let log = LogSink::new(1 << 20);
            let claims = Claims::new();
            let invocation = StepInvocation {
                run_id: "bench",
                step_id: "scan",
                params: &params,
                workspace: &workspace,
                dirs: &dirs,
                limits: StepLimits {
                    memory: 512 << 20,
                    timeout: Duration::from_secs(60),
                },
                cancel: &cancel,
                log: &log,
                exec: None,
                claims: &claims,
                secrets: None,
                keys: None,
            };
            let start = Instant::now();
            let outputs = engine
                .runtime()
                .run_step(&plugin, invocation)
                .await
                .unwrap_or_else(|e| {
                    let (lines, ..) = log.finish();
                    panic!("scan failed: {e}: {lines:?}")
                });
            let took = start.elapsed();
            assert_eq!(outputs["vulnerabilities"], "263");
            if i > 0 {
                samples.push(took);
            }
        }
        samples
    });
    let mut sorted = samples.clone();
    sorted.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    println!(
        "scan of a 498-package Cargo.lock against the whole RustSec database (1,225 advisories), in wasm, whole step:"
    );
    println!(
        "  median {}  min {}  max {}  ({runs} runs)",
        ms(sorted[runs / 2]),
        ms(sorted[0]),
        ms(sorted[runs - 1])
    );
    println!("  target: < 200 ms");
}
