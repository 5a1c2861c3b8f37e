//! Instructions per `echo` step through the runtime, counted by callgrind: a figure
//! that does not move with the machine's load, so that two versions can be compared
//! on a busy machine. Run with:
//!
//!     cargo bench -p flow-engine --bench step_instructions
//!
//! It runs itself again under `valgrind --tool=callgrind`, counting only inside
//! `measured_steps` (STEPS warm `echo` steps on one thread: store, WASI context,
//! capabilities, instantiate, call, outputs, drop), and prints instructions per step.
//! Without valgrind it says so and prints the wall-clock time instead.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use flow_engine::Engine;
use flow_engine::bench::LogSink;

mod common;
use common::builtin;

/// Steps counted.
const STEPS: u64 = 200;
/// Set in the child that runs under callgrind.
const UNDER_CALLGRIND: &str = "FLOW_BENCH_UNDER_CALLGRIND";

fn main() {
    if std::env::var_os(UNDER_CALLGRIND).is_some() {
        let _ = run_steps();
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("callgrind.out");
    let exe = std::env::current_exe().expect("this benchmark's path");
    let counted = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--collect-atstart=no",
            "--toggle-collect=*measured_steps*",
            "--smc-check=all-non-file",
        ])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&exe)
        .env(UNDER_CALLGRIND, "1")
        .output();
    match counted {
        Ok(output) if output.status.success() => match total_instructions(&out) {
            Some(total) => println!(
                "echo step through the runtime, {STEPS} steps under callgrind: {} instructions per step",
                total / STEPS
            ),
            None => println!("callgrind wrote no totals in {}", out.display()),
        },
        Ok(output) => println!(
            "callgrind failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => {
            println!("NOT COUNTED: valgrind is not available ({e}); wall-clock time instead");
            let measured = run_steps();
            println!(
                "{STEPS} echo steps through the runtime: {:.1} us per step",
                measured.as_secs_f64() * 1e6 / STEPS as f64
            );
        }
    }
}

/// The `totals:` (or `summary:`) line of a callgrind output file: instructions.
fn total_instructions(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals: ")
                .or_else(|| l.strip_prefix("summary: "))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Runs the warm-up and the counted steps; returns the time of the counted ones.
fn run_steps() -> std::time::Duration {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    let engine = Engine::builder()
        .cache_dir(tmp.path().join("cache"))
        .jobs(1)
        .build()
        .expect("engine");
    let plugin = runtime.block_on(builtin(&engine, "echo"));
    let workspace = tmp.path().join("ws");
    std::fs::create_dir_all(&workspace).expect("workspace");
    let workspace = workspace.canonicalize().expect("workspace");
    let mut params = serde_json::Map::new();
    params.insert("message".into(), "hi".into());
    // Warm: the pool's slots, the allocator, lazy statics.
    for _ in 0..20 {
        one_step(&runtime, &engine, &plugin, &params, &workspace);
    }
    let start = Instant::now();
    measured_steps(&runtime, &engine, &plugin, &params, &workspace);
    start.elapsed()
}

#[inline(never)]
fn measured_steps(
    runtime: &tokio::runtime::Runtime,
    engine: &Engine,
    plugin: &flow_engine::LoadedPlugin,
    params: &serde_json::Map<String, serde_json::Value>,
    workspace: &Path,
) {
    for _ in 0..STEPS {
        one_step(runtime, engine, plugin, params, workspace);
    }
}

fn one_step(
    runtime: &tokio::runtime::Runtime,
    engine: &Engine,
    plugin: &flow_engine::LoadedPlugin,
    params: &serde_json::Map<String, serde_json::Value>,
    workspace: &Path,
) {
    let log = LogSink::new(1 << 20);
    let outputs = runtime
        .block_on(flow_engine::bench::run_step(
            engine,
            plugin,
            "bench",
            "echo",
            params,
            workspace,
            &[],
            64 << 20,
            &log,
        ))
        .expect("echo runs");
    assert_eq!(outputs.get("message").map(String::as_str), Some("hi"));
}
