//! Figures over the runs of a data dir (`flow runs --stats`): per pipeline, runs,
//! outcomes, success rate and durations; per step, how often it ran, failed, was
//! retried or taken from the cache, and how long it took; the slowest and flakiest
//! steps, and the latest failures.

use std::collections::BTreeMap;

use flow_store::{CacheUse, RunRecord, RunStatus, StepRecord, StepStatus, Store, StoreError};
use serde::Serialize;

/// Durations, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Durations {
    /// How many were measured.
    pub count: usize,
    /// The mean.
    pub mean_ms: u64,
    /// The median.
    pub p50_ms: u64,
    /// The 90th percentile.
    pub p90_ms: u64,
    /// The longest.
    pub max_ms: u64,
}

impl Durations {
    fn of(mut samples: Vec<u64>) -> Durations {
        if samples.is_empty() {
            return Durations::default();
        }
        samples.sort_unstable();
        let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
        Durations {
            count: samples.len(),
            mean_ms: samples.iter().sum::<u64>() / samples.len() as u64,
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            max_ms: at(1.0),
        }
    }
}

/// One pipeline's runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PipelineStats {
    /// The pipeline's name.
    pub pipeline: String,
    /// Runs, and how they ended.
    pub runs: usize,
    /// Runs that succeeded.
    pub succeeded: usize,
    /// Runs that failed.
    pub failed: usize,
    /// Runs cancelled or interrupted.
    pub cancelled: usize,
    /// Runs still running.
    pub running: usize,
    /// Succeeded over ended runs (0 to 1), none when no run ended.
    pub success_rate: Option<f64>,
    /// Durations of the runs that ended.
    pub durations: Durations,
    /// Per step, by id.
    pub steps: Vec<StepStats>,
}

/// One step of a pipeline, over its runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StepStats {
    /// The step's id.
    pub step: String,
    /// Runs in which it ended (any status).
    pub runs: usize,
    /// Times it succeeded.
    pub succeeded: usize,
    /// Times it failed or timed out.
    pub failed: usize,
    /// Times it was skipped.
    pub skipped: usize,
    /// Times it was taken from the step cache.
    pub cached: usize,
    /// Times it needed more than one attempt.
    pub retried: usize,
    /// Times it succeeded only after a failed attempt (a flaky step).
    pub flaky: usize,
    /// Durations of the times it ran (not taken from the cache).
    pub durations: Durations,
}

/// A run that failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Failure {
    /// The run.
    pub run: String,
    /// Its pipeline.
    pub pipeline: String,
    /// When it started (unix milliseconds).
    pub started_at: u64,
    /// Why.
    pub failure: String,
}

/// Figures over the runs of a data dir.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Runs started at or after this time (unix milliseconds), if limited.
    pub since: Option<u64>,
    /// Every run counted.
    pub runs: usize,
    /// Per pipeline, by name.
    pub pipelines: Vec<PipelineStats>,
    /// The latest failed runs, newest first (at most 10).
    pub recent_failures: Vec<Failure>,
}

/// How many failures [`Stats::recent_failures`] lists.
const FAILURES_LISTED: usize = 10;

impl Stats {
    /// The figures of every run in `store` started at or after `since` (unix ms).
    pub fn compute(store: &Store, since: Option<u64>) -> Result<Stats, StoreError> {
        let mut runs = Vec::new();
        for run in store.runs(None)? {
            if since.is_none_or(|s| run.started_at >= s) {
                let steps = store.steps(&run.id)?;
                runs.push((run, steps));
            }
        }
        Ok(Stats::of_runs(
            runs.iter().map(|(run, steps)| (run, steps.as_slice())),
            since,
        ))
    }

    /// The figures of `runs`, each with its steps, given newest first (as
    /// [`Store::runs`] lists them): for a reader that holds runs already, or counts
    /// some of them. `since` is only recorded, as the limit the runs were chosen by.
    pub fn of_runs<'a>(
        runs: impl IntoIterator<Item = (&'a RunRecord, &'a [StepRecord])>,
        since: Option<u64>,
    ) -> Stats {
        let mut by_pipeline: BTreeMap<String, (PipelineStats, Vec<u64>, StepsSeen)> =
            BTreeMap::new();
        let mut stats = Stats {
            since,
            ..Stats::default()
        };
        for (run, run_steps) in runs {
            stats.runs += 1;
            let (pipeline, durations, steps) =
                by_pipeline.entry(run.pipeline_name.clone()).or_default();
            pipeline.pipeline = run.pipeline_name.clone();
            pipeline.runs += 1;
            match run.status {
                RunStatus::Succeeded => pipeline.succeeded += 1,
                RunStatus::Failed => pipeline.failed += 1,
                RunStatus::Running => pipeline.running += 1,
                _ => pipeline.cancelled += 1,
            }
            if let Some(end) = run.finished_at {
                durations.push(end.saturating_sub(run.started_at));
            }
            if run.status == RunStatus::Failed && stats.recent_failures.len() < FAILURES_LISTED {
                stats.recent_failures.push(Failure {
                    run: run.id.to_string(),
                    pipeline: run.pipeline_name.clone(),
                    started_at: run.started_at,
                    failure: run.failure.clone().unwrap_or_default(),
                });
            }
            for step in run_steps {
                if !step.status.is_terminal() {
                    continue;
                }
                let (s, durations) = steps.entry(step.step_id.clone()).or_default();
                s.step = step.step_id.clone();
                s.runs += 1;
                match step.status {
                    StepStatus::Succeeded => s.succeeded += 1,
                    StepStatus::Failed | StepStatus::TimedOut => s.failed += 1,
                    StepStatus::Skipped => s.skipped += 1,
                    _ => {}
                }
                if !step.attempts.is_empty() {
                    s.retried += 1;
                    if step.status == StepStatus::Succeeded {
                        s.flaky += 1;
                    }
                }
                if matches!(step.cache, Some(CacheUse::Hit { .. })) {
                    s.cached += 1;
                } else if let (Some(start), Some(end)) = (step.started_at, step.finished_at) {
                    durations.push(end.saturating_sub(start));
                }
            }
        }
        for (_, (mut pipeline, durations, steps)) in by_pipeline {
            let ended = pipeline.succeeded + pipeline.failed + pipeline.cancelled;
            pipeline.success_rate = (ended > 0).then(|| pipeline.succeeded as f64 / ended as f64);
            pipeline.durations = Durations::of(durations);
            pipeline.steps = steps
                .into_values()
                .map(|(mut s, durations)| {
                    s.durations = Durations::of(durations);
                    s
                })
                .collect();
            stats.pipelines.push(pipeline);
        }
        stats
    }

    /// The `n` slowest steps by median duration: (pipeline, step).
    pub fn slowest(&self, n: usize) -> Vec<(&str, &StepStats)> {
        let mut all: Vec<(&str, &StepStats)> = self.steps().collect();
        all.sort_by_key(|(_, s)| std::cmp::Reverse(s.durations.p50_ms));
        all.retain(|(_, s)| s.durations.count > 0);
        all.truncate(n);
        all
    }

    /// The `n` flakiest steps (most successes after a failed attempt, then most
    /// failures): (pipeline, step).
    pub fn flakiest(&self, n: usize) -> Vec<(&str, &StepStats)> {
        let mut all: Vec<(&str, &StepStats)> = self
            .steps()
            .filter(|(_, s)| s.flaky > 0 || s.failed > 0)
            .collect();
        all.sort_by_key(|(_, s)| std::cmp::Reverse((s.flaky, s.failed)));
        all.truncate(n);
        all
    }

    fn steps(&self) -> impl Iterator<Item = (&str, &StepStats)> {
        self.pipelines
            .iter()
            .flat_map(|p| p.steps.iter().map(move |s| (p.pipeline.as_str(), s)))
    }
}

type StepsSeen = BTreeMap<String, (StepStats, Vec<u64>)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_their_percentiles() {
        let d = Durations::of((1..=10).map(|n| n * 100).collect());
        assert_eq!(
            d,
            Durations {
                count: 10,
                mean_ms: 550,
                p50_ms: 600,
                p90_ms: 900,
                max_ms: 1000
            }
        );
        assert_eq!(Durations::of(Vec::new()), Durations::default());
    }
}
