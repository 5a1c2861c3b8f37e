//! `flow serve` over a data dir of 10,000 runs; prints figures. Run with:
//!
//!     cargo bench -p flow-cli --bench serve
//!
//! The runs are written through the store's API (not by running pipelines): 4
//! pipelines of 5 steps over 60 days, one run in 8 failed, one step in 10 retried,
//! half the steps taken from the cache, each step with a few log lines. Then
//! `flow serve` on it:
//!
//! - how long `Store::open_reader` takes (it holds the data dir while it copies it);
//! - first load: from starting the server to the end of the first `/` (it copies and
//!   reads the whole store before it listens);
//! - `/` and `/api/stats`: p50 and p99 of 200 requests each, one at a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flow_store::{
    AttemptRecord, CacheUse, LogLine, LogStream, RunId, RunRecord, RunStatus, StepRecord,
    StepStatus, Store,
};

#[path = "../../benches/common/stats.rs"]
#[allow(dead_code)]
mod stats;
use stats::{ms, percentile};

const FLOW: &str = env!("CARGO_BIN_EXE_flow");
const RUNS: usize = 10_000;
const STEPS: [&str; 5] = ["checkout", "build", "test", "scan", "publish"];
const PIPELINES: [&str; 4] = ["api", "web", "worker", "docs"];

fn generate(dir: &std::path::Path) {
    let store = Store::open(dir).expect("open the store");
    let end: u64 = 1_767_225_600_000; // 2026-01-01
    let span: u64 = 60 * 24 * 3_600_000;
    for i in 0..RUNS {
        let started = end - span + (i as u64) * (span / RUNS as u64);
        let id = RunId::parse(&format!("bench-{i:06}")).expect("a run id");
        let pipeline = PIPELINES[i % PIPELINES.len()];
        let mut run = RunRecord::start(
            id.clone(),
            pipeline,
            "flow.yaml",
            STEPS.iter().map(|s| s.to_string()).collect(),
            "0.1.0",
        );
        run.started_at = started;
        run.inputs.insert(
            "branch".into(),
            if i % 3 == 0 { "main" } else { "dev" }.into(),
        );
        store.begin_run(&run).expect("begin");
        let failed = i % 8 == 7;
        let mut at = started;
        for (index, step) in STEPS.iter().enumerate() {
            let mut record = StepRecord::pending(*step, index as u32, "builtin:echo@1");
            let took = 200 + ((i * 37 + index * 101) % 1800) as u64;
            record.started_at = Some(at);
            at += took;
            record.finished_at = Some(at);
            record.status = if failed && index == 2 {
                record.reason = Some("tests failed".into());
                StepStatus::Failed
            } else if failed && index > 2 {
                StepStatus::Skipped
            } else {
                StepStatus::Succeeded
            };
            if (i + index) % 2 == 0 && record.status == StepStatus::Succeeded {
                record.cache = Some(CacheUse::Hit {
                    run: "bench-000000".into(),
                    step: (*step).into(),
                });
            }
            if (i + index) % 10 == 3 {
                record.attempts.push(AttemptRecord {
                    attempt: 1,
                    status: StepStatus::Failed,
                    reason: Some("flaky".into()),
                    started_at: record.started_at,
                    finished_at: started,
                    retried_after_ms: 0,
                });
            }
            let lines: Vec<LogLine> = (0..5)
                .map(|n| LogLine {
                    seq: n,
                    at,
                    stream: LogStream::Stdout,
                    text: format!("{step} line {n} of run {i}"),
                })
                .collect();
            store
                .finish_step(&id, &record, &lines)
                .expect("finish a step");
        }
        run.finished_at = Some(at);
        run.status = if failed {
            run.failure = Some("step test failed".into());
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        store.finish_run(&run).expect("finish a run");
    }
    store.flush().expect("flush");
}

fn get(addr: &str, path: &str) -> usize {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut body = Vec::new();
    stream.read_to_end(&mut body).expect("read");
    assert!(body.starts_with(b"HTTP/1.1 200"), "{path}");
    body.len()
}

fn main() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let data = tmp.path().join("data");
    let start = Instant::now();
    generate(&data);
    let size: u64 = std::fs::read_dir(data.join("store"))
        .expect("the store")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "generated {RUNS} runs in {:.1} s (store: {:.1} MiB)",
        start.elapsed().as_secs_f64(),
        size as f64 / (1024.0 * 1024.0)
    );

    // How long a reader holds the data dir (a writer waits at most that long).
    let mut holds = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let reader = Store::open_reader(&data).expect("a reader");
        holds.push(t.elapsed());
        drop(reader);
    }
    println!(
        "Store::open_reader (the copy, under the lock): median {}",
        ms(percentile(&holds, 0.5))
    );

    let start = Instant::now();
    let mut server = Command::new(FLOW)
        .args(["--plain", "--data-dir"])
        .arg(&data)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start flow serve");
    let mut first = String::new();
    BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("the first line");
    let addr = first
        .trim()
        .rsplit("http://")
        .next()
        .expect("an address")
        .trim_end_matches('/')
        .to_owned();
    let bytes = get(&addr, "/");
    println!(
        "first load of /: {} ({} KiB)",
        ms(start.elapsed()),
        bytes / 1024
    );
    for path in ["/", "/api/stats", "/?pipeline=web&status=failed"] {
        let mut samples = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            get(&addr, path);
            samples.push(t.elapsed());
        }
        println!(
            "{path:<30} p50 {:>9}  p99 {:>9}",
            ms(percentile(&samples, 0.5)),
            ms(percentile(&samples, 0.99))
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = server.kill();
    let _ = server.wait();
}
