//! Engine benchmarks; prints figures. Run with:
//!
//!     cargo bench -p flow-engine --bench engine
//!
//! 1. Overhead per `echo` step: ready -> recorded running -> instantiated ->
//!    called -> recorded done (store write included), median of many.
//! 2. A 1,000-step pipeline through `Engine::run`: one chain, one fan-out, each
//!    first in a fresh store (every step runs and is looked up in the step cache),
//!    then again in one store (every step taken from the cache).
//! 3. The report page of each 1,000-step run (`flow report` without verifying).
//! 4. Recording a no-op step's provenance: build the statement and the link,
//!    sign both, store them with the step (one sled transaction).
//! 5. Resolving the bundled rust-service example through its two templates
//!    (find in the catalog, read, merge, hash and cache each template).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use flow_engine::bench::LogSink;
use flow_engine::catalog::LockMode;
use flow_engine::{Engine, RunOptions};
use flow_provenance::{Outcome, SigningKey, StepEvidence, attest_step};
use flow_store::{RunRecord, StepAttestation, StepRecord, StepStatus, Store};

mod common;
use common::{builtin, median, ms, percentile, us};

fn write_pipeline(dir: &Path, name: &str, steps: usize, chain: bool) -> std::path::PathBuf {
    let mut yaml = format!("version: 1\nname: {name}\nsteps:\n");
    for i in 0..steps {
        if chain && i > 0 {
            // Each link reads its predecessor's output, as real chains do.
            yaml.push_str(&format!(
                "  s{i}:\n    uses: echo\n    with: {{ n: \"{i}\", prev: \"${{{{ steps.s{}.outputs.n }}}}\" }}\n",
                i - 1
            ));
            yaml.push_str(&format!("    needs: [s{}]\n", i - 1));
        } else {
            yaml.push_str(&format!(
                "  s{i}:\n    uses: echo\n    with: {{ n: \"{i}\" }}\n"
            ));
            if i > 0 {
                yaml.push_str("    needs: [s0]\n");
            }
        }
    }
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).expect("write pipeline");
    path
}

fn main() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let cache = tmp.path().join("cache");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let engine = Engine::builder().cache_dir(&cache).jobs(2).build().expect("engine");
        println!("pooling allocator: {}", flow_engine::bench::pooling(&engine));

        // 1. Per-step overhead.
        let plugin = builtin(&engine, "echo").await;
        let store = Store::open(tmp.path().join("store1")).expect("store");
        let run = RunRecord::start(store.new_run_id().expect("id"), "bench", "bench.yaml", vec![], "bench");
        store.begin_run(&run).expect("begin");
        let workspace = tmp.path().join("ws");
        std::fs::create_dir_all(&workspace).expect("ws");
        let mut params = serde_json::Map::new();
        params.insert("message".into(), serde_json::Value::String("hi".into()));
        let mut samples = Vec::new();
        let mut in_wasm = Vec::new();
        for i in 0..3000u32 {
            let start = Instant::now();
            let mut record = StepRecord::pending(format!("s{i}"), i, "echo");
            record.status = StepStatus::Running;
            store.put_step(&run.id, &record).expect("put");
            let log = LogSink::new(1 << 20);
            let step_id = format!("s{i}");
            let wasm_start = Instant::now();
            let outputs: BTreeMap<String, String> = flow_engine::bench::run_step(
                &engine, &plugin, run.id.as_str(), &step_id, &params, &workspace, &[], 256 << 20, &log,
            )
            .await
            .expect("echo runs");
            let wasm = wasm_start.elapsed();
            let (lines, bytes, truncated) = log.finish();
            record.status = StepStatus::Succeeded;
            record.outputs = outputs;
            record.log_bytes = bytes;
            record.log_truncated = truncated;
            store.finish_step(&run.id, &record, &lines).expect("finish");
            if i >= 200 {
                samples.push(start.elapsed());
                in_wasm.push(wasm);
            }
        }
        println!(
            "echo step overhead (ready -> instantiated -> called -> recorded), {} samples: median {}, p90 {}, p99 {}",
            samples.len(),
            us(median(samples.clone())),
            us(percentile(&samples, 0.9)),
            us(percentile(&samples, 0.99)),
        );
        println!("  of which Runtime::run_step (store, WASI context, instantiate, call): median {}", us(median(in_wasm)));

        // 2. 1,000-step pipelines through the whole engine, signed as `flow run` signs.
        let key = std::sync::Arc::new(SigningKey::generate().expect("key"));
        for (name, chain) in [("chain", true), ("fanout", false)] {
            let file = write_pipeline(tmp.path(), name, 1000, chain);
            let load_start = Instant::now();
            let pipeline = engine.load_pipeline(&file).await.expect("load");
            let load = load_start.elapsed();
            let mut runs = Vec::new();
            for round in 0..5 {
                let store = Store::open(tmp.path().join(format!("store-{name}-{round}"))).expect("store");
                let start = Instant::now();
                let summary = engine.run(&pipeline, RunOptions::new(store.clone()).signing_key(key.clone())).await.expect("run");
                runs.push(start.elapsed());
                assert!(summary.steps.iter().all(|s| s.status == StepStatus::Succeeded));
                if round == 4 {
                    // 3. The run's report page (`flow report`), verification aside.
                    let mut renders = Vec::new();
                    let mut size = 0;
                    for _ in 0..5 {
                        let start = Instant::now();
                        let page = flow_engine::report::render(&store, &summary.run.id, Default::default()).expect("report");
                        renders.push(start.elapsed());
                        size = page.len();
                    }
                    println!(
                        "report of the 1,000-step {name} run: {} (median of 5), {:.0} KiB",
                        ms(median(renders)),
                        size as f64 / 1024.0
                    );
                }
            }
            let run = median(runs);
            println!(
                "1,000-step {name}, with provenance: load+check {}, run {} (median of 5), total {}; {} per step",
                ms(load),
                ms(run),
                ms(load + run),
                us(run / 1000)
            );
            // The same again in one store: every step taken from the step cache.
            let store = Store::open(tmp.path().join(format!("store-{name}-cached"))).expect("store");
            let mut cached = Vec::new();
            for round in 0..4 {
                let start = Instant::now();
                let summary = engine.run(&pipeline, RunOptions::new(store.clone()).signing_key(key.clone())).await.expect("run");
                if round > 0 {
                    cached.push(start.elapsed());
                    assert!(summary.steps.iter().all(|s| matches!(s.cache, Some(flow_store::CacheUse::Hit { .. }))));
                }
            }
            let cached = median(cached);
            println!(
                "1,000-step {name}, every step from the step cache: run {} (median of 3); {} per step",
                ms(cached),
                us(cached / 1000)
            );
        }
    });

    // 4. Provenance of a no-op step: build, sign, store.
    {
        let store = Store::open(tmp.path().join("store-prov")).expect("store");
        let run = RunRecord::start(
            store.new_run_id().expect("id"),
            "bench",
            "bench.yaml",
            vec![],
            "bench",
        );
        store.begin_run(&run).expect("begin");
        let key = SigningKey::generate().expect("key");
        let mut samples = Vec::new();
        let mut storing = Vec::new();
        for i in 0..3000u32 {
            let start = Instant::now();
            let evidence = StepEvidence {
                run_id: run.id.to_string(),
                step_id: format!("s{i}"),
                pipeline_name: "bench".into(),
                pipeline_file: "bench.yaml".into(),
                pipeline_sha256: "ab".repeat(32),
                plugin: "echo".into(),
                plugin_sha256: "cd".repeat(32),
                params: serde_json::json!({ "message": "hi" }),
                grants: serde_json::json!({ "fs": [] }),
                started_unix_ms: 1,
                finished_unix_ms: 2,
                outcome: Outcome::Succeeded,
                failure_reason: None,
                engine_name: "flow".into(),
                engine_version: "0.1.0".into(),
                materials: BTreeMap::new(),
                products: BTreeMap::new(),
                needs: Vec::new(),
                notes: Vec::new(),
                dependencies: Vec::new(),
                commands: Vec::new(),
                template: None,
            };
            let signed = attest_step(&evidence, &key).expect("attest");
            let attestation = StepAttestation {
                position: i,
                link_file_name: signed.link_file_name,
                statement: String::from_utf8_lossy(&signed.statement.to_json()).into_owned(),
                link: String::from_utf8_lossy(&signed.link.to_json()).into_owned(),
                keyid: key.keyid().to_string(),
            };
            let mut record = StepRecord::pending(format!("s{i}"), i, "echo");
            record.status = StepStatus::Succeeded;
            let store_start = Instant::now();
            store
                .finish_step_attested(&run.id, &record, &[], Some(&attestation))
                .expect("store");
            if i >= 200 {
                samples.push(start.elapsed());
                storing.push(store_start.elapsed());
            }
        }
        println!(
            "provenance of a no-op step (statement + link built, both signed, stored with the step), {} samples: median {}, p90 {}",
            samples.len(),
            us(median(samples.clone())),
            us(percentile(&samples, 0.9))
        );
        println!("  of which the store write: median {}", us(median(storing)));
    }

    // 5. Resolving through templates.
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/examples/rust-service/flow.yaml");
    let engine = Engine::builder().cache_dir(&cache).build().expect("engine");
    let mut samples = Vec::new();
    for i in 0..220 {
        let start = Instant::now();
        let resolution = engine
            .resolve_pipeline(&example, &LockMode::Ignore)
            .expect("the example resolves");
        assert_eq!(resolution.templates.len(), 2);
        if i >= 20 {
            samples.push(start.elapsed());
        }
    }
    println!(
        "resolving templates/examples/rust-service through acme/rust-service and acme/secure-release, {} samples: median {}, p90 {}",
        samples.len(),
        us(median(samples.clone())),
        us(percentile(&samples, 0.9))
    );
}
