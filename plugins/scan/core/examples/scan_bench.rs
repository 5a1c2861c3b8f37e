//! Benchmark: opening the advisory database and matching a lockfile, end to end.
//!
//! ```text
//! cargo run --release -p flow-scan --example scan_bench -- DB LOCKFILE [RUNS]
//! ```
//!
//! Prints the median, minimum and maximum wall time of `Database::open` + `Lockfile::read`
//! + `scan` over RUNS runs (default 30), after one warm-up run.

use flow_scan::{Database, Lockfile, scan};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: scan_bench DB LOCKFILE [RUNS]");
        std::process::exit(2);
    }
    let db_dir = PathBuf::from(&args[0]);
    let lock_path = PathBuf::from(&args[1]);
    let runs: usize = args
        .get(2)
        .and_then(|r| r.parse().ok())
        .unwrap_or(30)
        .max(1);

    let once = || -> Result<(Duration, usize, usize), flow_scan::Error> {
        let start = Instant::now();
        let db = Database::open(&db_dir)?;
        let lock = Lockfile::read(&lock_path)?;
        let packages = lock.packages.len();
        let findings = scan(&db, &[lock])?;
        Ok((start.elapsed(), packages, findings.len()))
    };
    let (_, packages, findings) = once().unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1);
    });
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| once().map(|r| r.0).unwrap_or_default())
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{packages} packages, {findings} findings; load+match over {runs} runs: median {:.2} ms (min {:.2}, max {:.2})",
        ms(times[runs / 2]),
        ms(times[0]),
        ms(times[runs - 1])
    );
}
