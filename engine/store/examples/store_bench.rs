//! How long recording a step takes.
//!
//! ```text
//! cargo run --release -p flow-store --example store_bench [STEPS]
//! ```
//!
//! Records STEPS steps (default 2000) of one run into a fresh store in a temporary dir,
//! each as `put_step` (running) then `finish_step` with 20 log lines, and prints the
//! median and tail times of each call, then the time of the final `flush`.

use std::time::{Duration, Instant};

use flow_store::{LogLevel, LogLine, LogStream, RunRecord, StepRecord, StepStatus, Store};

const LINES_PER_STEP: u64 = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: u32 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 2000,
    };
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    let step_ids: Vec<String> = (0..steps).map(|i| format!("step-{i}")).collect();
    let run = RunRecord::start(
        store.new_run_id()?,
        "bench",
        "flow.yaml",
        step_ids.clone(),
        "bench",
    );
    store.begin_run(&run)?;

    let mut put_times = Vec::with_capacity(steps as usize);
    let mut finish_times = Vec::with_capacity(steps as usize);
    let all = Instant::now();
    for (index, step_id) in (0..steps).zip(&step_ids) {
        let mut step = StepRecord::pending(step_id.as_str(), index, "builtin:echo@1");
        step.status = StepStatus::Running;
        step.started_at = Some(flow_store::now_millis());
        let t = Instant::now();
        store.put_step(&run.id, &step)?;
        put_times.push(t.elapsed());

        let lines: Vec<LogLine> = (0..LINES_PER_STEP)
            .map(|seq| LogLine {
                seq,
                at: flow_store::now_millis(),
                stream: if seq % 4 == 0 {
                    LogStream::Plugin(LogLevel::Info)
                } else {
                    LogStream::Stdout
                },
                text: format!(
                    "compiling unit {seq} of step {step_id}: 42 files, 0 warnings, cache hit"
                ),
            })
            .collect();
        step.status = StepStatus::Succeeded;
        step.finished_at = Some(flow_store::now_millis());
        step.plugin_digest = Some(format!("sha256:{:064x}", index));
        step.outputs
            .insert("artifact".into(), format!("target/{step_id}.tar"));
        step.log_bytes = lines.iter().map(|l| l.text.len() as u64 + 1).sum();
        let t = Instant::now();
        store.finish_step(&run.id, &step, &lines)?;
        finish_times.push(t.elapsed());
    }
    let recording = all.elapsed();
    let t = Instant::now();
    store.flush()?;
    let flush = t.elapsed();

    println!("{steps} steps, {LINES_PER_STEP} log lines each");
    report("put_step (running)", &mut put_times);
    report("finish_step (+20 lines)", &mut finish_times);
    println!("all steps recorded in {recording:.1?}, then flush in {flush:.1?}");
    Ok(())
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what:>24}: median {:>6.1?}  p90 {:>6.1?}  p99 {:>6.1?}  max {:>6.1?}",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}
