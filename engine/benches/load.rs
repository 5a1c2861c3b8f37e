//! Load in one embedded engine; prints figures. Run with:
//!
//!     cargo bench -p flow-engine --bench load
//!
//! 1. `FLOW_LOAD_AT_ONCE` (default 50) release pipelines started at once, each a
//!    checkout of a git repository, a cargo build of a small crate, a scan of
//!    flow's own Cargo.lock against the RustSec database, and a summary step.
//! 2. `FLOW_LOAD_RUNS` (default 1,000) two-step runs back to back, with the
//!    resident set size every 100 runs.
//!
//! The engine has `FLOW_LOAD_JOBS` (default 4) step slots. Every run is checked
//! afterwards (recorded, its own outputs, provenance verifies), as in the load test.

#[path = "../../tests/support/load.rs"]
mod load;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let (at_once, runs, jobs) = (
            knob("FLOW_LOAD_AT_ONCE", 50),
            knob("FLOW_LOAD_RUNS", 1000),
            knob("FLOW_LOAD_JOBS", 4),
        );
        let fixture = load::Fixture::new(jobs, flow_store::DEFAULT_CACHE_BYTES).await;
        println!(
            "one engine, {jobs} step slots, RSS at start {:.1} MiB",
            load::rss_bytes() as f64 / 1048576.0
        );
        // A first release run compiles nothing more afterwards: cargo's own start-up
        // is what each of the batch's builds costs.
        let warm = fixture
            .release_batch(1, "warm")
            .await
            .expect("a release run");
        print!("{}", load::describe("release, alone", &warm));
        let release = fixture
            .release_batch(at_once, "release")
            .await
            .expect("the release runs");
        print!(
            "{}",
            load::describe(&format!("release, {at_once} at once"), &release)
        );
        let short = fixture
            .short_series(runs, 100, "short")
            .await
            .expect("the short runs");
        print!("{}", load::describe("short, back to back", &short));
        println!(
            "store: {:.1} MiB on disk for {} runs",
            fixture.store_bytes() as f64 / 1048576.0,
            1 + at_once + runs
        );
        let checked = std::time::Instant::now();
        for figures in [&warm, &release, &short] {
            fixture
                .check_recorded(figures)
                .expect("every run recorded and verified");
        }
        println!(
            "checked {} runs (recorded, own outputs, provenance verifies) in {:.2} s",
            warm.runs.len() + release.runs.len() + short.runs.len(),
            checked.elapsed().as_secs_f64()
        );
    });
}
