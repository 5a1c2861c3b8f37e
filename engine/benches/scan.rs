//! The `scan` plugin (inside WebAssembly) on a 500-package Cargo.lock against
//! the whole RustSec database, database load included. Prints figures:
//!
//!     cargo bench -p flow-engine --bench scan
//!
//! Target: under 200 ms per scan.

use std::path::Path;

use flow_engine::Engine;
use flow_engine::bench::DirGrant;

mod common;

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
        let plugin = common::builtin(&engine, "scan").await;
        let params = serde_json::json!({
            "db": db.display().to_string(), "lockfiles": ["Cargo.lock"], "fail-on": "none",
            "unscored-as": "high", "ignore": [], "sarif": "scan.sarif",
        });
        let params = params.as_object().expect("an object").clone();
        let dirs = [DirGrant {
            path: db.clone(),
            writable: false,
            identity: None,
        }];
        let mut samples = Vec::new();
        for i in 0..runs + 1 {
            let (outputs, took) =
                common::run_once(&engine, &plugin, &params, &workspace, &dirs, 512 << 20).await;
            assert_eq!(outputs["vulnerabilities"], "263");
            if i > 0 {
                samples.push(took); // the first run warms the page cache
            }
        }
        samples
    });
    let mut sorted = samples.clone();
    sorted.sort();
    println!(
        "scan of a 498-package Cargo.lock against the whole RustSec database (1,225 advisories), in wasm, whole step:"
    );
    println!(
        "  median {}  min {}  max {}  ({runs} runs)",
        common::ms(common::median(samples)),
        common::ms(sorted[0]),
        common::ms(sorted[runs - 1])
    );
    println!("  target: < 200 ms");
}
