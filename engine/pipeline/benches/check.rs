//! cargo bench -p flow-pipeline --bench check [-- SHAPE... STEPS...]
//!
//! Prints how long reading (`flow_pipeline::parse`) and checking (`flow_pipeline::check`)
//! take for generated pipelines of 2,000, 8,000, 16,000 and 100,000 steps (F7: `flow check`
//! must be linear in the number of steps). Each figure is the median of three runs (of one
//! run for the largest files). The shapes, all valid pipelines, are those of
//! `tests/common/generate.rs`: `chain`, `fan-in`, `far` (a chain whose steps also read one
//! far back) and `random` (a random DAG).
//!
//! Arguments narrow the run: shape names and step counts, e.g. `-- chain 2000 8000`.

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "../tests/common/generate.rs"]
mod generate;

use std::path::Path;
use std::time::{Duration, Instant};

const SHAPES: [&str; 4] = ["chain", "fan-in", "far", "random"];
const SIZES: [usize; 4] = [2_000, 8_000, 16_000, 100_000];

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn seconds(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let shapes: Vec<&str> = SHAPES
        .iter()
        .copied()
        .filter(|s| args.iter().all(|a| a.parse::<usize>().is_ok()) || args.iter().any(|a| a == s))
        .collect();
    let mut sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = SIZES.to_vec();
    }
    let base = Path::new(".");
    println!(
        "{:<8} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "shape", "steps", "bytes", "read", "check", "total"
    );
    for shape in &shapes {
        for &n in &sizes {
            let text = generate::generate(shape, n);
            let runs = if n >= 50_000 { 1 } else { 3 };
            let (mut reads, mut checks, mut totals) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..runs {
                let started = Instant::now();
                let pipeline = flow_pipeline::parse(&text, "flow.yaml", base)
                    .unwrap_or_else(|d| panic!("{shape} {n}: {}", d.render()));
                let read = started.elapsed();
                let plan = flow_pipeline::check(&pipeline, &common::TestResolver)
                    .unwrap_or_else(|d| panic!("{shape} {n}: {}", d.render()));
                let total = started.elapsed();
                assert_eq!(plan.steps.len(), n);
                std::hint::black_box(plan);
                reads.push(read);
                checks.push(total - read);
                totals.push(total);
            }
            println!(
                "{:<8} {:>8} {:>10} {:>10} {:>10} {:>10}",
                shape,
                n,
                text.len(),
                seconds(median(reads)),
                seconds(median(checks)),
                seconds(median(totals))
            );
        }
    }
}
