//! The executor: runs a checked plan's steps as their needs complete, up to
//! `jobs` at once, recording every state change in the store and reporting
//! events. A failed step stops the run (no new step starts) unless it says
//! `continue-on-error`; its dependents do not run. Cancellation stops the
//! running steps within one epoch tick and records the run as cancelled.
//! With a signing key, every step (run, failed or skipped) gets signed
//! provenance, stored in the same write that completes it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flow_pipeline::{EvalContext, Plan, StepOutcome};
use flow_provenance::{DigestCache, Root, SigningKey};
use flow_store::{
    Changes, LogLine, Objects, RunRecord, RunStatus, StepRecord, StepStatus, Store, Tree,
    now_millis,
};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;

use crate::EngineError;
use crate::cancel::CancelFlag;
use crate::capabilities::claims::{Claims, RunAttestations};
use crate::capabilities::log::LogSink;
use crate::capabilities::secrets::Redactor;
use crate::capabilities::{RunCapabilities, StepCapabilities, StepInputs};
use crate::events::Event;
use crate::plugins::ResolvedPlugins;
use crate::recorder::{self, Recorder, RunIdentity, StepFacts, StepRoots};
use crate::runtime::{LoadedPlugin, Runtime, StepFailure, StepInvocation, StepLimits};
use crate::views;

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
        StepDefaults {
            memory: 256 << 20,
            timeout: Duration::from_secs(30 * 60),
            log_limit: 1 << 20,
        }
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
    /// Every capability's run-level facts.
    pub caps: Arc<RunCapabilities>,
    pub redactor: Option<Arc<Redactor>>,
    pub inputs: BTreeMap<String, Value>,
    /// Where the steps' changes are applied when the run ends.
    pub workspace: PathBuf,
    /// The content-addressed store the steps' files are kept in.
    pub objects: Objects,
    /// The directory the steps' views are made in (one per run).
    pub views: PathBuf,
    /// What the workspace held when the run started: every view starts from it.
    pub base: Arc<Tree>,
    pub jobs: usize,
    pub cancel: CancelFlag,
    pub events: Option<UnboundedSender<Event>>,
    pub defaults: StepDefaults,
    pub workspace_quota: u64,
    pub signing_key: Option<Arc<SigningKey>>,
    pub pipeline_file: String,
    pub pipeline_sha256: String,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run as recorded.
    pub run: RunRecord,
    /// Its steps as recorded, in plan order.
    pub steps: Vec<StepRecord>,
}

/// How a step ended, with everything that is recorded about it.
#[derive(Default)]
struct StepEnd {
    status: Option<StepStatus>,
    reason: Option<String>,
    outputs: BTreeMap<String, String>,
    log: Vec<LogLine>,
    log_bytes: u64,
    log_truncated: bool,
    facts: StepFacts,
    /// What it changed in its view of the workspace (none when it did not run).
    changes: Option<Changes>,
}

impl StepEnd {
    /// A step that ended without its plugin running.
    fn not_run(status: StepStatus, reason: String) -> Self {
        StepEnd {
            status: Some(status),
            reason: Some(reason),
            ..StepEnd::default()
        }
    }
}

struct Finished {
    index: usize,
    end: StepEnd,
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
    recorder: Option<Recorder>,
    /// Set while `close` settles the steps that never started.
    closing: bool,
    /// Step ids in plan order (for attestation file names).
    step_ids: Arc<Vec<String>>,
    /// What each step that ran changed in its view, by plan index.
    changes: Vec<Option<Arc<Changes>>>,
}

pub(crate) async fn execute(
    plan: &Plan,
    cx: RunContext,
    run: RunRecord,
) -> Result<RunSummary, EngineError> {
    let steps = &plan.steps;
    let records = steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepRecord::pending(s.id.clone(), i as u32, s.plugin.to_string()))
        .collect();
    let remaining: Vec<usize> = steps.iter().map(|s| s.needs.len()).collect();
    let ready = (0..steps.len()).filter(|&i| remaining[i] == 0).collect();
    let recorder = match &cx.signing_key {
        Some(key) => Some(Recorder::new(
            plan,
            key.clone(),
            RunIdentity {
                run_id: run.id.to_string(),
                pipeline_file: cx.pipeline_file.clone(),
                pipeline_sha256: cx.pipeline_sha256.clone(),
            },
            cx.caps.clone(),
        )?),
        None => None,
    };
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
        recorder,
        closing: false,
        step_ids: Arc::new(steps.iter().map(|s| s.id.clone()).collect()),
        changes: vec![None; steps.len()],
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
            let Some(index) = ex.ready.pop_first() else {
                break;
            };
            ex.start(index, &mut running)?;
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => match joined {
                Some(Ok(finished)) => ex.settle(finished.index, finished.end)?,
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
    fn start(&mut self, index: usize, running: &mut JoinSet<Finished>) -> Result<(), EngineError> {
        let step = &self.plan.steps[index];
        if let Some((condition, _)) = &step.condition {
            match step.evaluate_condition(&self.eval) {
                Ok(true) => {}
                Ok(false) => {
                    let reason = format!("condition `{}` was false", condition.source());
                    return self.settle(index, StepEnd::not_run(StepStatus::Skipped, reason));
                }
                Err(diagnostic) => {
                    return self.settle(
                        index,
                        StepEnd::not_run(StepStatus::Failed, diagnostic.render()),
                    );
                }
            }
        }
        let params = match step.resolve_params(&self.eval) {
            Ok(params) => params,
            Err(diagnostic) => {
                return self.settle(
                    index,
                    StepEnd::not_run(StepStatus::Failed, diagnostic.render()),
                );
            }
        };
        let Some(plugin) = self.cx.plugins.get(&step.plugin).cloned() else {
            let reason = format!("plugin `{}` is not loaded", step.plugin);
            return self.settle(index, StepEnd::not_run(StepStatus::Failed, reason));
        };
        // Its own view of the workspace: the run's start plus what the steps it needs
        // changed. Its files are written by the step's task, off this loop.
        let ancestors = ancestors(self.plan, index);
        let view = views::view_dir(&self.cx.views, index);
        if let Err(e) = views::create(&view) {
            let reason = format!(
                "cannot make the step's view of the workspace in {}: {e}",
                view.display()
            );
            return self.settle(index, StepEnd::not_run(StepStatus::Failed, reason));
        }
        let mut view_tree = (*self.cx.base).clone();
        for &a in &ancestors {
            if let Some(changes) = &self.changes[a] {
                view_tree.apply(changes);
            }
        }

        let started_ms = now_millis();
        let record = &mut self.records[index];
        record.status = StepStatus::Running;
        record.started_at = Some(started_ms);
        record.plugin_digest = Some(plugin.digest.to_string());
        self.cx.store.put_step(&self.run.id, record)?;
        self.started[index] = Some(Instant::now());
        let snapshot = self.recorder.as_ref().map(|r| (r.cache(), r.roots(step)));
        if let Some(recorder) = &mut self.recorder {
            recorder.step_started(step, ancestors);
        }
        self.emit(Event::StepStarted {
            run: self.run_id(),
            step: step.id.clone(),
            at: started_ms,
        });

        let limits = StepLimits {
            memory: step.memory.unwrap_or(self.cx.defaults.memory),
            timeout: step.timeout.unwrap_or(self.cx.defaults.timeout),
        };
        let log = LogSink::new(self.cx.defaults.log_limit).with_redactor(self.cx.redactor.clone());
        let claims = Claims::new();
        let deadline = Instant::now() + limits.timeout;
        let attestations = self.recorder.as_ref().map(|_| {
            RunAttestations::new(
                self.cx.store.clone(),
                self.run.id.clone(),
                self.step_ids.clone(),
            )
        });
        // Every capability's part of the step's store, from its grants.
        let caps = self.cx.caps.prepare(&StepInputs {
            step,
            workspace: &view,
            workspace_identity: crate::capabilities::fs::identity_of(&view).ok(),
            log: &log,
            claims: &claims,
            attestations: attestations.as_ref(),
            deadline,
            cancel: &self.cx.cancel,
        });
        let task = StepTask {
            runtime: self.cx.runtime.clone(),
            plugin,
            index,
            run_id: self.run_id(),
            step_id: step.id.clone(),
            params,
            limits,
            deadline,
            cancel: self.cx.cancel.clone(),
            log,
            claims,
            caps: Some(caps),
            redactor: self.cx.redactor.clone(),
            snapshot,
            view: StepView {
                dir: view,
                tree: Some(view_tree),
                objects: self.cx.objects.clone(),
            },
            workspace_quota: self.cx.workspace_quota,
            started_ms,
        };
        tracing::debug!(run = %self.run.id, step = %step.id, memory = limits.memory, timeout = ?limits.timeout, "step starting");
        running.spawn(task.run());
        Ok(())
    }

    /// Record a step's final state (with its provenance), then release or skip
    /// its dependents.
    fn settle(&mut self, index: usize, end: StepEnd) -> Result<(), EngineError> {
        let steps = &self.plan.steps;
        let step = &steps[index];
        let status = end.status.unwrap_or(StepStatus::Failed);
        let now = now_millis();
        let mut facts = end.facts;
        let changes = end.changes.map(Arc::new);
        // A step that never ran still names the plugin it would have run, by digest.
        if facts.plugin_sha256.is_empty()
            && let Some(plugin) = self.cx.plugins.get(&step.plugin)
        {
            facts.plugin_sha256 = plugin.digest.hex();
        }
        let attestation = match &mut self.recorder {
            Some(recorder) => {
                Some(recorder.attest(step, status, end.reason.as_deref(), facts, now)?)
            }
            None => None,
        };
        let record = &mut self.records[index];
        record.status = status;
        record.reason = end.reason.clone();
        record.outputs = end.outputs.clone();
        record.finished_at = Some(now);
        record.log_bytes = end.log_bytes;
        record.log_truncated = end.log_truncated;
        self.cx.store.complete_step(
            &self.run.id,
            record,
            flow_store::StepCompletion {
                lines: &end.log,
                attestation: attestation.as_ref(),
                changes: changes.as_deref(),
            },
        )?;
        self.changes[index] = changes;
        let duration_ms = self.started[index]
            .map(|t| t.elapsed().as_millis() as u64)
            .unwrap_or(0);
        tracing::debug!(run = %self.run.id, step = %step.id, %status, duration_ms, "step finished");
        self.emit(Event::StepFinished {
            run: self.run_id(),
            step: step.id.clone(),
            status,
            reason: end.reason.clone(),
            duration_ms,
            outputs: end.outputs.clone(),
            at: now,
        });
        let outcome = match status {
            StepStatus::Succeeded => StepOutcome::Succeeded,
            StepStatus::Skipped => StepOutcome::Skipped,
            StepStatus::Cancelled => StepOutcome::Cancelled,
            _ => StepOutcome::Failed,
        };
        self.eval.record_step(step.id.clone(), outcome, end.outputs);

        let failed = matches!(
            status,
            StepStatus::Failed | StepStatus::TimedOut | StepStatus::Cancelled
        );
        if failed && !step.continue_on_error {
            let why = format!(
                "step `{}` {}: {}",
                step.id,
                status,
                end.reason.as_deref().unwrap_or("no reason given")
            );
            self.first_failure.get_or_insert(why);
            self.halted
                .get_or_insert_with(|| format!("step `{}` {}", step.id, status));
        }
        // Once cancelled (or closing), steps that never started are settled by `close`.
        if self.cx.cancel.is_cancelled() || self.closing {
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
                    self.settle(dependent, StepEnd::not_run(StepStatus::Skipped, reason))?
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
            (!ok).then(|| {
                format!(
                    "needs `{}`, which {}",
                    steps[need].id,
                    describe_status(record.status)
                )
            })
        })
    }

    /// Settle every step that never started, and the run.
    fn close(mut self) -> Result<RunSummary, EngineError> {
        let cancelled = self.cx.cancel.is_cancelled();
        self.closing = true;
        for index in 0..self.records.len() {
            if self.records[index].status.is_terminal() {
                continue;
            }
            let end = if cancelled {
                StepEnd::not_run(
                    StepStatus::Cancelled,
                    "the run was cancelled before the step started".into(),
                )
            } else {
                let why = self
                    .halted
                    .clone()
                    .unwrap_or_else(|| "the run stopped".into());
                StepEnd::not_run(StepStatus::Skipped, format!("not run: {why}"))
            };
            self.settle(index, end)?;
        }
        // The workspace gets every step's changes, in plan order.
        if let Err(e) = self.publish() {
            let why = format!(
                "cannot write the steps' results into the workspace {}: {e}",
                self.cx.workspace.display()
            );
            tracing::error!(run = %self.run.id, "{why}");
            self.first_failure.get_or_insert(why);
        }
        let _ = views::remove(&self.cx.views);
        let now = now_millis();
        self.run.finished_at = Some(now);
        (self.run.status, self.run.failure) = if cancelled {
            (RunStatus::Cancelled, Some("cancelled".into()))
        } else if let Some(failure) = self.first_failure.take() {
            (RunStatus::Failed, Some(failure))
        } else {
            (RunStatus::Succeeded, None)
        };
        let attestation = match &self.recorder {
            Some(recorder) => Some(recorder.finish()?),
            None => None,
        };
        self.cx
            .store
            .finish_run_attested(&self.run, attestation.as_ref())?;
        self.cx.store.flush()?;
        self.emit(Event::RunFinished {
            run: self.run_id(),
            status: self.run.status,
            failure: self.run.failure.clone(),
            duration_ms: now.saturating_sub(self.run.started_at),
            at: now,
        });
        Ok(RunSummary {
            run: self.run,
            steps: self.records,
        })
    }
}

impl Execution<'_> {
    /// Applies every step's changes to the run's workspace, in plan order.
    fn publish(&self) -> std::io::Result<()> {
        for changes in self.changes.iter().flatten() {
            views::publish(&self.cx.objects, &self.cx.workspace, changes)?;
        }
        Ok(())
    }
}

/// Every step `index` needs, directly or through others, in plan order.
fn ancestors(plan: &Plan, index: usize) -> Vec<usize> {
    let mut seen = vec![false; index];
    let mut stack: Vec<usize> = plan.steps[index].needs.clone();
    let mut found = Vec::new();
    while let Some(i) = stack.pop() {
        if i >= seen.len() || seen[i] {
            continue;
        }
        seen[i] = true;
        found.push(i);
        stack.extend(plan.steps[i].needs.iter().copied());
    }
    found.sort_unstable();
    found
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

/// Why the host stopped hashing a step's files, as the step's failure.
fn host_stop(
    stop: flow_provenance::SnapshotStop,
    limits: StepLimits,
    quota: u64,
    what: &str,
) -> StepFailure {
    use crate::units::format_bytes;
    match stop {
        flow_provenance::SnapshotStop::Deadline { files, .. } => StepFailure::HostTimedOut {
            timeout: limits.timeout,
            doing: format!("while the host hashed its {what} ({files} files by then)"),
        },
        flow_provenance::SnapshotStop::Quota { bytes, .. } => StepFailure::Host(format!(
            "its workspace holds more than the run's quota of {} (at least {} when the host hashed its {what}): \
             remove what is not needed, or raise the quota (`flow run --workspace-quota`)",
            format_bytes(quota),
            format_bytes(bytes)
        )),
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
    limits: StepLimits,
    /// When the step (its plugin and the host's work for it) must be done.
    deadline: Instant,
    cancel: CancelFlag,
    log: LogSink,
    claims: Claims,
    /// Every capability's part of the step's store (taken when the plugin runs).
    caps: Option<StepCapabilities>,
    redactor: Option<Arc<Redactor>>,
    snapshot: Option<(Arc<DigestCache>, StepRoots)>,
    view: StepView,
    workspace_quota: u64,
    started_ms: u64,
}

/// A step's view of the workspace: its directory and what the host writes there.
struct StepView {
    dir: PathBuf,
    /// Taken when it is written.
    tree: Option<Tree>,
    objects: Objects,
}

impl StepTask {
    /// The step ends before its plugin runs (the host could not prepare its evidence).
    fn finish_early(self, failure: StepFailure) -> Finished {
        let status = match failure {
            StepFailure::TimedOut(_) | StepFailure::HostTimedOut { .. } => StepStatus::TimedOut,
            _ => StepStatus::Failed,
        };
        let (log, log_bytes, log_truncated) = self.log.finish();
        Finished {
            index: self.index,
            end: StepEnd {
                status: Some(status),
                reason: Some(failure.to_string()),
                log,
                log_bytes,
                log_truncated,
                facts: StepFacts {
                    params: self.params,
                    plugin_sha256: self.plugin.digest.hex(),
                    started_ms: Some(self.started_ms),
                    notes: vec!["materials not recorded: the host stopped hashing them".into()],
                    ..StepFacts::default()
                },
                ..StepEnd::default()
            },
        }
    }

    async fn run(self) -> Finished {
        let dir = self.view.dir.clone();
        let finished = self.run_in_view().await;
        // What it changed is in the store now; its view is not needed any more.
        let removed = tokio::task::spawn_blocking(move || views::remove(&dir)).await;
        if let Ok(Err(e)) = removed {
            tracing::warn!(error = %e, "cannot remove a step's view of the workspace");
        }
        finished
    }

    async fn run_in_view(mut self) -> Finished {
        // Its view of the workspace, written before anything of it is hashed.
        let objects = self.view.objects.clone();
        let dir = self.view.dir.clone();
        let tree = self.view.tree.take().unwrap_or_default();
        let written =
            match tokio::task::spawn_blocking(move || views::materialize(&objects, &dir, tree))
                .await
            {
                Ok(Ok(written)) => written,
                Ok(Err(e)) => {
                    return self.finish_early(StepFailure::Host(format!(
                        "cannot write the step's view of the workspace: {e}"
                    )));
                }
                Err(e) => {
                    return self.finish_early(StepFailure::Host(format!(
                        "cannot write the step's view of the workspace: {e}"
                    )));
                }
            };
        // The host's work for the step (hashing before and after it) counts against
        // its timeout, like the plugin's own.
        let deadline = self.deadline;
        let limits = flow_provenance::SnapshotLimits {
            deadline: Some(deadline),
            workspace_quota: Some(self.workspace_quota),
        };
        // A view past the run's quota (the steps it needs left too much) fails now.
        let view_bytes = written.tree.bytes();
        if view_bytes > self.workspace_quota {
            let stop = flow_provenance::SnapshotStop::Quota {
                bytes: view_bytes,
                quota: self.workspace_quota,
            };
            let failure = host_stop(stop, self.limits, self.workspace_quota, "materials");
            return self.finish_early(failure);
        }
        // Materials: what the step could read before it runs: its view, as the host
        // wrote it from the store (nothing to hash), and its granted directories,
        // hashed by the host.
        let (mut materials, mut notes) = (BTreeMap::new(), Vec::new());
        if let Some((cache, roots)) = &self.snapshot {
            materials = views::artifacts(&written.tree);
            if !roots.readable.is_empty() {
                let snapshot =
                    recorder::snapshot(cache.clone(), roots.readable.clone(), limits).await;
                if let Some(stop) = snapshot.stopped {
                    let failure = host_stop(stop, self.limits, self.workspace_quota, "materials");
                    return self.finish_early(failure);
                }
                materials.extend(snapshot.artifacts);
                notes = snapshot.notes;
            }
        }
        let Some(caps) = self.caps.take() else {
            return self.finish_early(StepFailure::Host("the step was started twice".into()));
        };
        let step_started = std::time::SystemTime::now();
        let invocation = StepInvocation {
            run_id: &self.run_id,
            step_id: &self.step_id,
            params: &self.params,
            // What is left of the step's time after the host hashed its materials.
            limits: StepLimits {
                timeout: deadline.saturating_duration_since(Instant::now()),
                ..self.limits
            },
            cancel: &self.cancel,
            log: &self.log,
            caps,
        };
        let result = match tokio::time::timeout_at(
            (deadline + HOST_GRACE).into(),
            self.runtime.run_step(&self.plugin, invocation),
        )
        .await
        {
            // Reported against the step's whole timeout, not what was left of it.
            Ok(Err(StepFailure::TimedOut(_))) | Err(_) => {
                Err(StepFailure::TimedOut(self.limits.timeout))
            }
            Ok(result) => result,
        };
        // What it changed in its view, kept in the object store.
        let mut result = result;
        let objects = self.view.objects.clone();
        let dir = self.view.dir.clone();
        // A step that ended in time is kept within its time; one that did not still
        // gets its files kept, within the grace the host allows itself.
        let capture_limits = flow_provenance::SnapshotLimits {
            deadline: Some(if result.is_ok() {
                deadline
            } else {
                deadline.max(Instant::now() + HOST_GRACE)
            }),
            ..limits
        };
        let captured = tokio::task::spawn_blocking(move || {
            views::capture(&objects, &dir, &written, step_started, capture_limits).map(|captured| {
                let changes = written.tree.changes_to(&captured.tree);
                (changes, captured)
            })
        })
        .await;
        // The view as the step left it, as artifacts (for its products).
        let mut view_after = None;
        let changes = match captured {
            Ok(Ok((changes, captured))) => {
                notes.extend(captured.notes);
                view_after = Some(views::artifacts(&captured.tree));
                Some(changes)
            }
            Ok(Err(views::CaptureError::Stopped(stop))) => {
                // A step that failed on its own keeps its own reason, unless it filled
                // the workspace past its quota.
                if result.is_ok() || matches!(stop, flow_provenance::SnapshotStop::Quota { .. }) {
                    result = Err(host_stop(
                        stop,
                        self.limits,
                        self.workspace_quota,
                        "products",
                    ));
                }
                notes.push("its files were not kept: the host stopped reading them".into());
                None
            }
            Ok(Err(e)) => {
                let why = format!("cannot keep what the step wrote in its workspace: {e}");
                if result.is_ok() {
                    result = Err(StepFailure::Host(why));
                } else {
                    notes.push(why);
                }
                None
            }
            Err(e) => {
                let why = format!("cannot keep what the step wrote in its workspace: {e}");
                if result.is_ok() {
                    result = Err(StepFailure::Host(why));
                }
                None
            }
        };
        // Products: what it created or changed where it could write: its view, as kept
        // above, and its writable grants, hashed again.
        let mut products = BTreeMap::new();
        if let Some((cache, roots)) = &self.snapshot {
            let writable: Vec<Root> = roots.writable.clone();
            let after = if writable.is_empty() {
                recorder::StepSnapshot::default()
            } else {
                recorder::snapshot(cache.clone(), writable, limits).await
            };
            match after.stopped {
                // A step that failed on its own keeps its own reason.
                Some(stop)
                    if result.is_ok()
                        || matches!(stop, flow_provenance::SnapshotStop::Quota { .. }) =>
                {
                    result = Err(host_stop(
                        stop,
                        self.limits,
                        self.workspace_quota,
                        "products",
                    ));
                    notes.push("products not recorded: the host stopped hashing them".into());
                }
                Some(_) => {
                    notes.push("products not recorded: the host stopped hashing them".into());
                }
                None => match view_after {
                    Some(mut artifacts) => {
                        artifacts.extend(after.artifacts);
                        products = flow_provenance::products(&materials, &artifacts);
                    }
                    None => {
                        notes.push(
                            "products not recorded: the host could not keep the step's files"
                                .into(),
                        );
                    }
                },
            }
            notes.extend(after.notes);
        }
        let (log, log_bytes, log_truncated) = self.log.finish();
        let (status, reason, outputs) = match result {
            Ok(outputs) => (StepStatus::Succeeded, None, outputs),
            Err(failure) => {
                let status = match failure {
                    StepFailure::TimedOut(_) | StepFailure::HostTimedOut { .. } => {
                        StepStatus::TimedOut
                    }
                    StepFailure::Cancelled => StepStatus::Cancelled,
                    _ => StepStatus::Failed,
                };
                (status, Some(failure.to_string()), BTreeMap::new())
            }
        };
        let (dependencies, mut commands, dropped) = self.claims.take();
        notes.extend(dropped);
        // Nothing recorded carries a secret's value: outputs, the reason, the
        // commands' arguments (logs are redacted as they are written).
        let (mut outputs, mut reason) = (outputs, reason);
        if let Some(redactor) = &self.redactor {
            for value in outputs.values_mut() {
                redactor.redact_in_place(value);
            }
            if let Some(reason) = &mut reason {
                redactor.redact_in_place(reason);
            }
            for command in &mut commands {
                let mut text = command.to_string();
                if redactor.redact_in_place(&mut text) {
                    *command = serde_json::from_str(&text).unwrap_or(Value::Null);
                }
            }
        }
        let facts = StepFacts {
            params: self.params,
            plugin_sha256: self.plugin.digest.hex(),
            started_ms: Some(self.started_ms),
            materials,
            products,
            notes,
            dependencies,
            commands,
        };
        Finished {
            index: self.index,
            end: StepEnd {
                status: Some(status),
                reason,
                outputs,
                log,
                log_bytes,
                log_truncated,
                facts,
                changes,
            },
        }
    }
}
