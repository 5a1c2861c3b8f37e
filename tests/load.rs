//! Load in one embedded engine: 50 release pipelines at once (checkout, a cargo
//! build, a scan, a summary), then 1,000 short runs back to back. Every run is
//! recorded, succeeded, carries its own input and no other run's, and verifies;
//! the process's memory does not grow across the 1,000. The figures themselves
//! (runs per second, latencies, memory over time) come from the benchmark:
//! `cargo bench -p flow-engine --bench load`.

#[path = "support/load.rs"]
mod load;

/// The store's cache of its pages in this test: small, so that what stays in memory
/// is the engine's, not the store's (which `DEFAULT_CACHE_BYTES` bounds, 64 MiB).
const STORE_CACHE: u64 = 4 << 20;

/// How much the resident set may grow from run 200 to the end of the 1,000: the
/// store's cache, the allocator's slack, with room. A leak of 20 KiB per run fails it.
const GROWTH_LIMIT: u64 = 16 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_pipelines_at_once_then_a_thousand_runs_in_one_engine() {
    let fixture = load::Fixture::new(4, STORE_CACHE).await;

    let release = fixture.release_batch(50, "release").await.unwrap();
    assert_eq!(release.runs.len(), 50);
    fixture.check_recorded(&release).unwrap();

    let short = fixture.short_series(1000, 50, "short").await.unwrap();
    assert_eq!(short.runs.len(), 1000);
    fixture.check_recorded(&short).unwrap();
    assert_eq!(fixture.store.runs(None).unwrap().len(), 1050);

    eprint!("{}", load::describe("release", &release));
    eprint!("{}", load::describe("short", &short));
    eprintln!("store: {:.1} MiB", fixture.store_bytes() as f64 / 1048576.0);
    let at = |n: usize| {
        short
            .rss
            .iter()
            .find(|(runs, _)| *runs == n)
            .map(|(_, b)| *b)
    };
    let base = at(200).expect("a sample at run 200");
    let peak = short
        .rss
        .iter()
        .filter(|(runs, _)| *runs >= 200)
        .map(|(_, b)| *b)
        .max()
        .unwrap_or(base);
    assert!(
        peak.saturating_sub(base) <= GROWTH_LIMIT,
        "the resident set grew by {} MiB from run 200 to run 1,000",
        (peak - base) >> 20
    );
}
