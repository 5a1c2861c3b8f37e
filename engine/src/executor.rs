//! The executor: runs a checked plan's steps as their needs complete, up to
//! `jobs` at once, recording every state change in the store and reporting
//! events. A failed step stops the run (no new step starts) unless it says
//! `continue-on-error`; its dependents do not run. Cancellation stops the
//! running steps within one epoch tick and records the run as cancelled.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flow_pipeline::{EvalContext, FsAccess, Plan, StepOutcome};
use flow_store::{now_millis, LogLine, RunRecord, RunStatus, StepRecord, StepStatus, Store, StoreError};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;

use crate::capabilities::fs::DirGrant;
use crate::capabilities::log::LogSink;
use crate::events::Event;
use crate::plugins::ResolvedPlugins;
use crate::runtime::{CancelFlag, LoadedPlugin, Runtime, StepFailure, StepInvocation, StepLimits};

/// Limits a step gets when the pipeline does not set its own.
#[derive(Debug, Clone, Copy)]
pub struct StepDefaults {
    /// Memory, in bytes (default 256 MiB).
    pub memory: u64,
    /// Wall-clock time (default 30 minutes).
    pub timeout: Duration,
    /// Log bytes kept per step (default 1 MiB).
    pub log_limit: u64,
}

impl Default for StepDefaults {
    fn default() -> Self {
        StepDefaults { memory: 256 << 20, timeout: Duration::from_secs(30 * 60), log_limit: 1 << 20 }
    }
}

/// Extra time a step gets beyond its timeout before the host stops waiting
/// for it (a guest blocked in a host call does not see epoch interrupts).
const HOST_GRACE: Duration = Duration::from_secs(2);

/// Everything one run needs besides the plan.
pub(crate) struct RunContext {
    pub runtime: Arc<Runtime>,
    pub store: Store,
    pub plugins: Arc<ResolvedPlugins>,
    pub inputs: BTreeMap<String, Value>,
    pub workspace: PathBuf,
    pub jobs: usize,
    pub cancel: CancelFlag,
    pub events: Option<UnboundedSender<Event>>,
    pub defaults: StepDefaults,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run as recorded.
    pub run: RunRecord,
    /// Its steps as recorded, in plan order.
    pub steps: Vec<StepRecord>,
}

struct Finished {
    index: usize,
    result: Result<BTreeMap<String, String>, StepFailure>,
    log: Vec<LogLine>,
    log_bytes: u64,
    log_truncated: bool,
    digest: String,
}

struct Execution<'a> {
    plan: &'a Plan,
    cx: &'a RunContext,
    run: RunRecord,
    records: Vec<StepRecord>,
    remaining: Vec<usize>,
    ready: BTreeSet<usize>,
    eval: EvalContext,
    halted: Option<String>,
    first_failure: Option<String>,
    started: Vec<Option<Instant>>,
}

pub(crate) async fn execute(plan: &Plan, cx: RunContext, run: RunRecord) -> Result<RunSummary, StoreError> {
    let steps = &plan.steps;
    let records = steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepRecord::pending(s.id.clone(), i as u32, s.plugin.to_string()))
        .collect();
    let remaining: Vec<usize> = steps.iter().map(|s| s.needs.len()).collect();
    let ready = (0..steps.len()).filter(|&i| remaining[i] == 0).collect();
    let mut ex = Execution {
        plan,
        eval: EvalContext::new(cx.inputs.clone()),
        cx: &cx,
        run,
        records,
        remaining,
        ready,
        halted: None,
        first_failure: None,
        started: vec![None; steps.len()],
    };
    cx.store.begin_run(&ex.run)?;
    // Record every step as pending and make the run durable before anything
    // runs, so that a killed process leaves the whole run behind, marked
    // interrupted, rather than losing its last half second of records.
    for record in &ex.records {
        cx.store.put_step(&ex.run.id, record)?;
    }
    cx.store.flush_async().await?;
    ex.emit(Event::RunStarted {
        run: ex.run.id.to_string(),
        pipeline: ex.run.pipeline_name.clone(),
        steps: steps.iter().map(|s| s.id.clone()).collect(),
        workspace: cx.workspace.display().to_string(),
        at: ex.run.started_at,
    });

    let mut running: JoinSet<Finished> = JoinSet::new();
    loop {
        while ex.halted.is_none() && !cx.cancel.is_cancelled() && running.len() < cx.jobs.max(1) {
            let Some(index) = ex.ready.pop_first() else { break };
            ex.start(index, &mut running)?;
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => match joined {
                Some(Ok(finished)) => ex.finish(finished)?,
                Some(Err(e)) => {
                    // A step task panicked or was aborted: a host bug, not the plugin's.
                    tracing::error!(error = %e, "a step task ended abnormally");
                    ex.halted.get_or_insert_with(|| "internal error: a step task ended abnormally".into());
                }
                None => {}
            },
            _ = cx.cancel.cancelled(), if !cx.cancel.is_cancelled() => {}
        }
    }
    ex.close()
}

impl Execution<'_> {
    fn emit(&self, event: Event) {
        if let Some(tx) = &self.cx.events {
            let _ = tx.send(event);
        }
    }

    fn run_id(&self) -> String {
        self.run.id.to_string()
    }

    /// Decide whether a ready step runs; if so, start it.
    fn start(&mut self, index: usize, running: &mut JoinSet<Finished>) -> Result<(), StoreError> {
        let step = &self.plan.steps[index];
        if let Some((condition, _)) = &step.condition {
            match step.evaluate_condition(&self.eval) {
                Ok(true) => {}
                Ok(false) => {
                    let reason = format!("condition `{}` was false", condition.source());
                    return self.settle(index, StepStatus::Skipped, Some(reason), BTreeMap::new(), &[], 0, false);
                }
                Err(diagnostic) => {
                    let reason = diagnostic.render();
                    return self.settle(index, StepStatus::Failed, Some(reason), BTreeMap::new(), &[], 0, false);
                }
            }
        }
        let params = match step.resolve_params(&self.eval) {
            Ok(params) => params,
            Err(diagnostic) => {
                let reason = diagnostic.render();
                return self.settle(index, StepStatus::Failed, Some(reason), BTreeMap::new(), &[], 0, false);
            }
        };
        let Some(plugin) = self.cx.plugins.get(&step.plugin).cloned() else {
            let reason = format!("plugin `{}` is not loaded", step.plugin);
            return self.settle(index, StepStatus::Failed, Some(reason), BTreeMap::new(), &[], 0, false);
        };

        let record = &mut self.records[index];
        record.status = StepStatus::Running;
        record.started_at = Some(now_millis());
        record.plugin_digest = Some(plugin.digest.to_string());
        self.cx.store.put_step(&self.run.id, record)?;
        self.started[index] = Some(Instant::now());
        self.emit(Event::StepStarted { run: self.run_id(), step: step.id.clone(), at: now_millis() });

        let limits = StepLimits {
            memory: step.memory.unwrap_or(self.cx.defaults.memory),
            timeout: step.timeout.unwrap_or(self.cx.defaults.timeout),
        };
        let task = StepTask {
            runtime: self.cx.runtime.clone(),
            plugin,
            index,
            run_id: self.run_id(),
            step_id: step.id.clone(),
            params,
            workspace: self.cx.workspace.clone(),
            dirs: step
                .fs_grants
                .iter()
                .map(|g| DirGrant { path: g.path.clone(), writable: g.access == FsAccess::Write })
                .collect(),
            limits,
            cancel: self.cx.cancel.clone(),
            log: LogSink::new(self.cx.defaults.log_limit),
        };
        tracing::debug!(run = %self.run.id, step = %step.id, memory = limits.memory, timeout = ?limits.timeout, "step starting");
        running.spawn(task.run());
        Ok(())
    }

    fn finish(&mut self, done: Finished) -> Result<(), StoreError> {
        let (status, reason, outputs) = match done.result {
            Ok(outputs) => (StepStatus::Succeeded, None, outputs),
            Err(failure) => {
                let status = match failure {
                    StepFailure::TimedOut(_) => StepStatus::TimedOut,
                    StepFailure::Cancelled => StepStatus::Cancelled,
                    _ => StepStatus::Failed,
                };
                (status, Some(failure.to_string()), BTreeMap::new())
            }
        };
        self.records[done.index].plugin_digest = Some(done.digest);
        self.settle(done.index, status, reason, outputs, &done.log, done.log_bytes, done.log_truncated)
    }

    /// Record a step's final state, then release or skip its dependents.
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &mut self,
        index: usize,
        status: StepStatus,
        reason: Option<String>,
        outputs: BTreeMap<String, String>,
        log: &[LogLine],
        log_bytes: u64,
        log_truncated: bool,
    ) -> Result<(), StoreError> {
        let steps = &self.plan.steps;
        let step = &steps[index];
        let now = now_millis();
        let record = &mut self.records[index];
        record.status = status;
        record.reason = reason.clone();
        record.outputs = outputs.clone();
        record.finished_at = Some(now);
        record.log_bytes = log_bytes;
        record.log_truncated = log_truncated;
        self.cx.store.finish_step(&self.run.id, record, log)?;
        let duration_ms = self.started[index].map(|t| t.elapsed().as_millis() as u64).unwrap_or(0);
        tracing::debug!(run = %self.run.id, step = %step.id, %status, duration_ms, "step finished");
        self.emit(Event::StepFinished {
            run: self.run_id(),
            step: step.id.clone(),
            status,
            reason: reason.clone(),
            duration_ms,
            outputs: outputs.clone(),
            at: now,
        });
        let outcome = match status {
            StepStatus::Succeeded => StepOutcome::Succeeded,
            StepStatus::Skipped => StepOutcome::Skipped,
            StepStatus::Cancelled => StepOutcome::Cancelled,
            _ => StepOutcome::Failed,
        };
        self.eval.record_step(step.id.clone(), outcome, outputs);

        let failed = matches!(status, StepStatus::Failed | StepStatus::TimedOut | StepStatus::Cancelled);
        if failed && !step.continue_on_error {
            let why = format!("step `{}` {}: {}", step.id, status, reason.as_deref().unwrap_or("no reason given"));
            self.first_failure.get_or_insert(why);
            self.halted.get_or_insert_with(|| format!("step `{}` {}", step.id, status));
        }
        // Once cancelled, steps that never started are settled as cancelled by `close`.
        if self.cx.cancel.is_cancelled() {
            return Ok(());
        }
        // A dependent runs once all its needs are done and none blocks it.
        for &dependent in &step.dependents {
            self.remaining[dependent] -= 1;
            if self.remaining[dependent] > 0 {
                continue;
            }
            match self.blocking_need(dependent) {
                None => {
                    self.ready.insert(dependent);
                }
                Some(reason) => {
                    self.settle(dependent, StepStatus::Skipped, Some(reason), BTreeMap::new(), &[], 0, false)?;
                }
            }
        }
        Ok(())
    }

    /// Why a step whose needs are all done must not run, if it must not.
    fn blocking_need(&self, index: usize) -> Option<String> {
        let steps = &self.plan.steps;
        steps[index].needs.iter().find_map(|&need| {
            let record = &self.records[need];
            let ok = match record.status {
                StepStatus::Succeeded => true,
                StepStatus::Failed | StepStatus::TimedOut => steps[need].continue_on_error,
                _ => false,
            };
            (!ok).then(|| format!("needs `{}`, which {}", steps[need].id, describe_status(record.status)))
        })
    }

    /// Settle every step that never started, and the run.
    fn close(mut self) -> Result<RunSummary, StoreError> {
        let cancelled = self.cx.cancel.is_cancelled();
        for index in 0..self.records.len() {
            if self.records[index].status.is_terminal() {
                continue;
            }
            let (status, reason) = if cancelled {
                (StepStatus::Cancelled, "the run was cancelled before the step started".to_string())
            } else {
                let why = self.halted.clone().unwrap_or_else(|| "the run stopped".into());
                (StepStatus::Skipped, format!("not run: {why}"))
            };
            let record = &mut self.records[index];
            record.status = status;
            record.reason = Some(reason.clone());
            record.finished_at = Some(now_millis());
            self.cx.store.finish_step(&self.run.id, record, &[])?;
            let step = record.step_id.clone();
            self.emit(Event::StepFinished {
                run: self.run_id(),
                step,
                status,
                reason: Some(reason),
                duration_ms: 0,
                outputs: BTreeMap::new(),
                at: now_millis(),
            });
        }
        let now = now_millis();
        self.run.finished_at = Some(now);
        (self.run.status, self.run.failure) = if cancelled {
            (RunStatus::Cancelled, Some("cancelled".into()))
        } else if let Some(failure) = self.first_failure.take() {
            (RunStatus::Failed, Some(failure))
        } else {
            (RunStatus::Succeeded, None)
        };
        self.cx.store.finish_run(&self.run)?;
        self.cx.store.flush()?;
        self.emit(Event::RunFinished {
            run: self.run_id(),
            status: self.run.status,
            failure: self.run.failure.clone(),
            duration_ms: now.saturating_sub(self.run.started_at),
            at: now,
        });
        Ok(RunSummary { run: self.run, steps: self.records })
    }
}

fn describe_status(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Failed => "failed",
        StepStatus::TimedOut => "timed out",
        StepStatus::Cancelled => "was cancelled",
        StepStatus::Skipped => "was skipped",
        _ => "did not finish",
    }
}

/// One step, owned, so it can run on its own task.
struct StepTask {
    runtime: Arc<Runtime>,
    plugin: Arc<LoadedPlugin>,
    index: usize,
    run_id: String,
    step_id: String,
    params: serde_json::Map<String, Value>,
    workspace: PathBuf,
    dirs: Vec<DirGrant>,
    limits: StepLimits,
    cancel: CancelFlag,
    log: LogSink,
}

impl StepTask {
    async fn run(self) -> Finished {
        let invocation = StepInvocation {
            run_id: &self.run_id,
            step_id: &self.step_id,
            params: &self.params,
            workspace: &self.workspace,
            dirs: &self.dirs,
            limits: self.limits,
            cancel: &self.cancel,
            log: &self.log,
        };
        let result =
            match tokio::time::timeout(self.limits.timeout + HOST_GRACE, self.runtime.run_step(&self.plugin, invocation))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(StepFailure::TimedOut(self.limits.timeout)),
            };
        let (log, log_bytes, log_truncated) = self.log.finish();
        Finished { index: self.index, result, log, log_bytes, log_truncated, digest: self.plugin.digest.to_string() }
    }
}
