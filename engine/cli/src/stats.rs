//! `flow runs --stats`: figures over the runs of the data dir.

use std::time::Duration;

use flow_engine::stats::{Durations, Stats};
use flow_engine::units::format_duration;
use flow_store::{Store, format_rfc3339, now_millis};

use crate::progress::first_line;
use crate::{Failure, Style, exit};

/// How many of the slowest and flakiest steps are listed.
const LISTED: usize = 5;

pub(crate) fn print(store: &Store, since: Option<Duration>, style: Style) -> Result<u8, Failure> {
    let since_ms = since.map(|d| now_millis().saturating_sub(d.as_millis() as u64));
    let stats = Stats::compute(store, since_ms)?;
    if style == Style::Json {
        outln!("{}", serde_json::to_string(&stats).unwrap_or_default());
        return Ok(exit::SUCCESS);
    }
    match since_ms {
        Some(ms) => outln!("{} runs since {}", stats.runs, format_rfc3339(ms)),
        None => outln!("{} runs", stats.runs),
    }
    if stats.runs == 0 {
        return Ok(exit::SUCCESS);
    }
    let width = stats
        .pipelines
        .iter()
        .map(|p| p.pipeline.len())
        .max()
        .unwrap_or(8)
        .max(8);
    outln!();
    outln!(
        "{:<width$}  {:>5}  {:>5}  {:>6}  {:>9}  {:>7}  {:>8}  {:>8}  {:>8}",
        "PIPELINE",
        "RUNS",
        "OK",
        "FAILED",
        "CANCELLED",
        "SUCCESS",
        "MEDIAN",
        "P90",
        "MAX"
    );
    for p in &stats.pipelines {
        outln!(
            "{:<width$}  {:>5}  {:>5}  {:>6}  {:>9}  {:>7}  {}",
            p.pipeline,
            p.runs,
            p.succeeded,
            p.failed,
            p.cancelled,
            p.success_rate
                .map_or_else(|| "-".to_owned(), |r| format!("{:.0}%", r * 100.0)),
            durations(&p.durations)
        );
    }
    for p in &stats.pipelines {
        let width = p
            .steps
            .iter()
            .map(|s| s.step.len())
            .max()
            .unwrap_or(4)
            .max(4);
        outln!();
        outln!("steps of {}:", p.pipeline);
        outln!(
            "  {:<width$}  {:>5}  {:>6}  {:>7}  {:>5}  {:>6}  {:>8}  {:>8}  {:>8}",
            "STEP",
            "RUNS",
            "FAILED",
            "RETRIED",
            "FLAKY",
            "CACHED",
            "MEDIAN",
            "P90",
            "MAX"
        );
        for s in &p.steps {
            outln!(
                "  {:<width$}  {:>5}  {:>6}  {:>7}  {:>5}  {:>6}  {}",
                s.step,
                s.runs,
                s.failed,
                s.retried,
                s.flaky,
                s.cached,
                durations(&s.durations)
            );
        }
    }
    let slowest = stats.slowest(LISTED);
    if !slowest.is_empty() {
        outln!();
        outln!("slowest steps (median when run):");
        for (pipeline, s) in slowest {
            outln!(
                "  {pipeline}/{}  {}",
                s.step,
                format_duration(Duration::from_millis(s.durations.p50_ms))
            );
        }
    }
    let flakiest = stats.flakiest(LISTED);
    if !flakiest.is_empty() {
        outln!();
        outln!("flakiest steps:");
        for (pipeline, s) in flakiest {
            outln!(
                "  {pipeline}/{}  {} succeeded after a retry, {} failed, of {} runs",
                s.step,
                s.flaky,
                s.failed,
                s.runs
            );
        }
    }
    if !stats.recent_failures.is_empty() {
        outln!();
        outln!("recent failures (flow logs RUN):");
        for f in &stats.recent_failures {
            outln!("  {}  {}  {}", f.run, f.pipeline, first_line(&f.failure));
        }
    }
    Ok(exit::SUCCESS)
}

fn durations(d: &Durations) -> String {
    if d.count == 0 {
        return format!("{:>8}  {:>8}  {:>8}", "-", "-", "-");
    }
    let f = |ms: u64| format_duration(Duration::from_millis(ms));
    format!("{:>8}  {:>8}  {:>8}", f(d.p50_ms), f(d.p90_ms), f(d.max_ms))
}
