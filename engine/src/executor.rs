//! The executor: runs a checked plan's steps as their needs complete, up to
//! `jobs` at once, recording every state change in the store and reporting
//! events. A failed step stops the run (no new step starts) unless it says
//! `continue-on-error`; its dependents do not run. Cancellation stops the
//! running steps within one epoch tick and records the run as cancelled.
//! With a signing key, every step (run, failed or skipped) gets signed
//! provenance, stored in the same write that completes it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flow_pipeline::{EvalContext, Plan, StepOutcome};
use flow_provenance::SigningKey;
use flow_store::{
    Changes, LogLine, Objects, RunRecord, RunStatus, StepRecord, StepStatus, Store, Tree,
    now_millis,
};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::EngineError;
use crate::cancel::CancelFlag;
use crate::capabilities::claims::{Claims, RunAttestations};
use crate::capabilities::log::LogSink;
use crate::capabilities::progress::Progress;
use crate::capabilities::secrets::Redactor;
use crate::capabilities::{RunCapabilities, StepInputs};
use crate::events::Event;
use crate::plugins::ResolvedPlugins;
use crate::recorder::{Recorder, RunIdentity};
use crate::resume::Restored;
use crate::runtime::{Runtime, StepLimits};
use crate::step_cache::{self, Lookup, Manifest, Producer, RunCache};
use crate::step_task::{Finished, StepEnd, StepTask, StepView};
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

/// Waiting for one of the engine's step slots.
type SlotWait = dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send;

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
    /// Views left empty by the steps that used them, ready for the next (making and
    /// removing a directory per step costs more than the rest of a small step's view).
    pub spare_views: views::SpareViews,
    pub jobs: usize,
    /// The engine's step slots, shared with its other runs: a step starts once it
    /// holds one, and gives it back when its task ends.
    pub step_slots: Arc<Semaphore>,
    pub cancel: CancelFlag,
    pub events: Option<UnboundedSender<Event>>,
    pub delivery: Option<crate::event_delivery::EventDelivery>,
    pub defaults: StepDefaults,
    pub workspace_quota: u64,
    pub signing_key: Option<Arc<SigningKey>>,
    pub pipeline_file: String,
    pub pipeline_sha256: String,
    /// The step cache, unless the run does without it (then why).
    pub cache: Result<Arc<RunCache>, String>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run as recorded.
    pub run: RunRecord,
    /// Its steps as recorded, in plan order.
    pub steps: Vec<StepRecord>,
}

/// What a task of the run reports when it ends.
enum Done {
    /// A step's attempt ended; its slot is given back once its end is recorded.
    Step(Box<Finished>, OwnedSemaphorePermit),
    /// The wait before a step's next attempt is over (or the run was cancelled).
    Retry(usize),
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
    /// For a step waiting for its next attempt: how its last attempt ended (what
    /// is recorded if the run stops before the next one).
    deferred: Vec<Option<StepEnd>>,
    /// The log lines of a retried step's earlier attempts.
    earlier_logs: Vec<Vec<LogLine>>,
    /// For each step that started: the steps it needs, directly or through others,
    /// that produced something (changes to their view or files in granted
    /// directories), in plan order — all its view and its materials can come from.
    producing_ancestors: Vec<Option<Arc<Vec<usize>>>>,
    /// Whether each settled step produced something.
    produced: Vec<bool>,
    /// Whether each settled step was taken from the step cache (it did not run).
    from_cache: Vec<bool>,
    /// Steps whose next attempt is due after a wait: (index, wait).
    retries: Vec<(usize, Duration)>,
    /// Set once the run stops starting steps, to end the waits for next attempts.
    stopping: CancelFlag,
    /// The steps a resumed run keeps, until they are taken.
    restored: Vec<Option<Restored>>,
}

/// Runs `plan`; `restored` holds, by plan index, the steps a resumed run keeps
/// (`resuming`: the run is recorded already and runs again).
pub(crate) async fn execute(
    plan: &Plan,
    cx: RunContext,
    run: RunRecord,
    mut restored: Vec<Option<Restored>>,
    resuming: bool,
) -> Result<RunSummary, EngineError> {
    let steps = &plan.steps;
    restored.resize_with(steps.len(), || None);
    let records = steps
        .iter()
        .enumerate()
        .map(|(i, s)| match &restored[i] {
            Some(kept) => kept.record.clone(),
            None => StepRecord::pending(s.id.clone(), i as u32, s.plugin.to_string()),
        })
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
        deferred: (0..steps.len()).map(|_| None).collect(),
        earlier_logs: vec![Vec::new(); steps.len()],
        producing_ancestors: vec![None; steps.len()],
        produced: vec![false; steps.len()],
        from_cache: vec![false; steps.len()],
        retries: Vec::new(),
        stopping: CancelFlag::new(),
        restored,
    };
    if resuming {
        cx.store.finish_run(&ex.run)?;
    } else {
        cx.store.begin_run(&ex.run)?;
    }
    // Record every step as pending and make the run durable before anything
    // runs, so that a killed process leaves the whole run behind, marked
    // interrupted, rather than losing its last half second of records.
    for (record, kept) in ex.records.iter().zip(&ex.restored) {
        if kept.is_none() {
            cx.store.put_step(&ex.run.id, record)?;
        }
    }
    cx.store.flush_async().await?;
    ex.emit(Event::RunStarted {
        run: ex.run.id.to_string(),
        pipeline: ex.run.pipeline_name.clone(),
        steps: steps.iter().map(|s| s.id.clone()).collect(),
        workspace: cx.workspace.display().to_string(),
        at: ex.run.started_at,
    });

    let mut running: JoinSet<Done> = JoinSet::new();
    // A slot taken for the next ready step, and the wait for one while every slot of
    // the engine is held (by this run's steps or by other runs'). The wait is kept
    // across turns of the loop so that the run keeps its place in the queue.
    let mut slot: Option<OwnedSemaphorePermit> = None;
    let mut slot_wait: Option<Pin<Box<SlotWait>>> = None;
    loop {
        let may_start = |ex: &Execution, running: &JoinSet<Done>| {
            ex.halted.is_none()
                && !cx.cancel.is_cancelled()
                && running.len() < cx.jobs.max(1)
                && !ex.ready.is_empty()
        };
        while may_start(&ex, &running) {
            let permit = match slot.take() {
                Some(permit) => permit,
                None => match cx.step_slots.clone().try_acquire_owned() {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let Some(index) = ex.ready.pop_first() else {
                break;
            };
            ex.start(index, &mut running, permit)?;
        }
        let wants_slot = may_start(&ex, &running);
        if !wants_slot {
            // Not needed now: another run may use it.
            (slot, slot_wait) = (None, None);
            if running.is_empty() {
                break;
            }
        } else if slot_wait.is_none() {
            slot_wait = Some(Box::pin(cx.step_slots.clone().acquire_owned()));
        }
        tokio::select! {
            permit = async {
                match slot_wait.as_mut() {
                    Some(wait) => wait.await,
                    None => std::future::pending().await,
                }
            } => {
                slot_wait = None;
                match permit {
                    Ok(permit) => slot = Some(permit),
                    // The engine's slots are never closed while it runs.
                    Err(_) => {
                        ex.halted.get_or_insert_with(|| "internal error: the engine's step slots were closed".into());
                    }
                }
            }
            joined = running.join_next(), if !running.is_empty() => match joined {
                Some(Ok(Done::Step(finished, slot))) => {
                    let Finished { index, end } = *finished;
                    ex.settle(index, end)?;
                    drop(slot);
                }
                Some(Ok(Done::Retry(index))) => ex.next_attempt(index)?,
                Some(Err(e)) => {
                    // A step task panicked or was aborted: a host bug, not the plugin's.
                    tracing::error!(error = %e, "a step task ended abnormally");
                    ex.halted.get_or_insert_with(|| "internal error: a step task ended abnormally".into());
                }
                None => {}
            },
            _ = cx.cancel.cancelled(), if !cx.cancel.is_cancelled() => {}
        }
        // Waits before steps' next attempts, each on a task of its own.
        if ex.halted.is_some() {
            ex.stopping.cancel();
        }
        for (index, wait) in std::mem::take(&mut ex.retries) {
            let (cancel, stopping) = (cx.cancel.clone(), ex.stopping.clone());
            running.spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancel.cancelled() => {}
                    _ = stopping.cancelled() => {}
                }
                Done::Retry(index)
            });
        }
    }
    ex.close()
}

impl Execution<'_> {
    fn emit(&self, event: Event) {
        if let Some(delivery) = &self.cx.delivery {
            delivery.send(&event);
        }
        if let Some(tx) = &self.cx.events {
            let _ = tx.send(event);
        }
    }

    fn run_id(&self) -> String {
        self.run.id.to_string()
    }

    /// Decide whether a ready step runs; if so, start it.
    /// `slot` is the engine's permit for the step: held by its task while it runs,
    /// given back at once when the step does not run.
    fn start(
        &mut self,
        index: usize,
        running: &mut JoinSet<Done>,
        slot: OwnedSemaphorePermit,
    ) -> Result<(), EngineError> {
        self.deferred[index] = None;
        if let Some(kept) = self.restored[index].take() {
            return self.restore(index, kept);
        }
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
        let sources = self.producing_ancestors(index);
        // A spare view was found empty when its step ended, and nothing else can reach it.
        let spare = self.cx.spare_views.lock().ok().and_then(|mut s| s.pop());
        let view = spare
            .clone()
            .unwrap_or_else(|| views::view_dir(&self.cx.views, index));
        if spare.is_none()
            && let Err(e) = views::create_or_reuse(&view)
        {
            let reason = format!(
                "cannot make the step's view of the workspace in {}: {e}",
                view.display()
            );
            return self.settle(index, StepEnd::not_run(StepStatus::Failed, reason));
        }
        let mut view_tree = (*self.cx.base).clone();
        for &a in sources.iter() {
            if let Some(changes) = &self.changes[a] {
                view_tree.apply(changes);
            }
        }

        let started_ms = now_millis();
        let record = &mut self.records[index];
        record.status = StepStatus::Running;
        record.started_at.get_or_insert(started_ms);
        record.plugin_digest = Some(plugin.digest.to_string());
        self.cx.store.put_step(&self.run.id, record)?;
        self.started[index].get_or_insert_with(Instant::now);
        let snapshot = self.recorder.as_ref().map(|r| (r.cache(), r.roots(step)));
        if let Some(recorder) = &mut self.recorder {
            recorder.step_started(step, sources.to_vec());
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
        let progress = self.cx.events.clone().map(|events| {
            Progress::new(
                events,
                self.run_id(),
                step.id.clone(),
                self.cx.redactor.clone(),
            )
        });
        let log = LogSink::new(self.cx.defaults.log_limit)
            .with_redactor(self.cx.redactor.clone())
            .with_progress(progress);
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
        let (lookup, cache_off) = self.lookup(step, &params, &plugin.digest.hex(), &caps, &sources);
        self.records[index].cache = cache_off.map(|why| flow_store::CacheUse::Off { why });
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
                // A step that runs no host command cannot change its view's directory
                // beyond its contents: left empty, it serves the next step.
                spare: step
                    .exec_grants
                    .is_empty()
                    .then(|| self.cx.spare_views.clone()),
            },
            lookup,
            workspace_quota: self.cx.workspace_quota,
            started_ms,
        };
        tracing::debug!(run = %self.run.id, step = %step.id, memory = limits.memory, timeout = ?limits.timeout, "step starting");
        running.spawn(async move { Done::Step(Box::new(task.run().await), slot) });
        Ok(())
    }

    /// Record a step's final state (with its provenance), then release or skip
    /// its dependents.
    fn settle(&mut self, index: usize, end: StepEnd) -> Result<(), EngineError> {
        if let Some(wait) = self.retry_wait(index, &end) {
            return self.defer(index, end, wait);
        }
        let mut end = end;
        // A retried step's log holds every attempt's lines, oldest first.
        let mut earlier = std::mem::take(&mut self.earlier_logs[index]);
        if !earlier.is_empty() {
            append_log(&mut earlier, std::mem::take(&mut end.log));
            end.log = earlier;
        }
        let attempts = &self.records[index].attempts;
        if !attempts.is_empty() {
            let total = attempts.len() + 1;
            end.facts.notes.push(format!(
                "attempt {total} of {total}; earlier: {}",
                attempts
                    .iter()
                    .map(|a| format!(
                        "attempt {} {}: {}",
                        a.attempt,
                        a.status,
                        a.reason.as_deref().unwrap_or("no reason given")
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        let steps = &self.plan.steps;
        let step = &steps[index];
        let status = end.status.unwrap_or(StepStatus::Failed);
        let now = now_millis();
        let mut facts = end.facts;
        // What the cache keeps of a step that ran and succeeded, taken before the
        // evidence is signed away.
        let looked = end.cache.take();
        let kept = match &looked {
            Some(looked)
                if looked.hit.is_none() && looked.storable && status == StepStatus::Succeeded =>
            {
                end.changes.clone().map(|changes| {
                    (
                        end.outputs.clone(),
                        changes,
                        step_cache::Evidence {
                            products: facts.products.clone(),
                            notes: facts.notes.clone(),
                            dependencies: facts.dependencies.clone(),
                            commands: facts.commands.clone(),
                        },
                    )
                })
            }
            _ => None,
        };
        let changes = end.changes.filter(|c| !c.is_empty()).map(Arc::new);
        self.produced[index] = changes.is_some() || !facts.products.is_empty();
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
        if let Some(looked) = &looked {
            record.cache = Some(looked.use_());
        }
        self.from_cache[index] = looked.as_ref().is_some_and(|l| l.hit.is_some());
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
        if let Some(looked) = looked {
            let redactor = self.cx.redactor.clone();
            looked.remember(
                kept,
                |text| redactor.as_ref().is_some_and(|r| r.redact_in_place(text)),
                now,
            );
        }
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
            cache: self.records[index].cache.clone(),
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
        self.release_dependents(index)
    }

    /// A step kept from before the run was resumed: it is what it was, and its
    /// dependents go on from it.
    fn restore(&mut self, index: usize, kept: Restored) -> Result<(), EngineError> {
        let step = &self.plan.steps[index];
        let sources = self.producing_ancestors(index);
        let mut products = false;
        if let Some(recorder) = &mut self.recorder {
            recorder.step_started(step, sources.to_vec());
            if let Some(attestation) = &kept.attestation {
                let (adopted, has_products) = recorder.adopt(step, attestation)?;
                products = has_products;
                if adopted.position != attestation.position {
                    self.cx
                        .store
                        .put_step_attestation(&self.run.id, index as u32, &adopted)?;
                }
            }
        }
        let changes = kept.changes.filter(|c| !c.is_empty()).map(Arc::new);
        self.produced[index] = changes.is_some() || products;
        self.changes[index] = changes;
        self.from_cache[index] = true;
        let outputs = kept.record.outputs.clone();
        self.emit(Event::StepFinished {
            run: self.run_id(),
            step: step.id.clone(),
            status: kept.record.status,
            reason: None,
            duration_ms: 0,
            outputs: outputs.clone(),
            cache: Some(flow_store::CacheUse::Hit {
                run: self.run_id(),
                step: step.id.clone(),
            }),
            at: now_millis(),
        });
        self.eval
            .record_step(step.id.clone(), StepOutcome::Succeeded, outputs);
        self.release_dependents(index)
    }

    /// Releases (or skips) the dependents of a settled step.
    fn release_dependents(&mut self, index: usize) -> Result<(), EngineError> {
        let step = &self.plan.steps[index];
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

    /// How long to wait before trying a step again, when its attempt failed in a way
    /// its `retry:` names and it has attempts left, and the run goes on.
    fn retry_wait(&self, index: usize, end: &StepEnd) -> Option<Duration> {
        let policy = self.plan.steps[index].retry.as_ref()?;
        let class = end.class?;
        if self.cx.cancel.is_cancelled() || self.closing || self.halted.is_some() {
            return None;
        }
        let done = self.records[index].attempts.len() as u32 + 1;
        policy
            .retries(done, class)
            .then(|| policy.delay_after(done))
    }

    /// Records a failed attempt and schedules the next one after `wait`.
    fn defer(&mut self, index: usize, mut end: StepEnd, wait: Duration) -> Result<(), EngineError> {
        let step = &self.plan.steps[index];
        let attempts = step.retry.as_ref().map_or(1, |p| p.attempts);
        let status = end.status.unwrap_or(StepStatus::Failed);
        let now = now_millis();
        let record = &mut self.records[index];
        let attempt = record.attempts.len() as u32 + 1;
        let reason = end
            .reason
            .clone()
            .unwrap_or_else(|| "no reason given".into());
        record.attempts.push(flow_store::AttemptRecord {
            attempt,
            status,
            reason: end.reason.clone(),
            started_at: end.facts.started_ms,
            finished_at: now,
            retried_after_ms: wait.as_millis() as u64,
        });
        self.cx.store.put_step(&self.run.id, record)?;
        // Its lines stay in the step's log, with the host's word on what comes next.
        let mut lines = std::mem::take(&mut self.earlier_logs[index]);
        let next_seq = append_log(&mut lines, std::mem::take(&mut end.log));
        lines.push(LogLine {
            seq: next_seq,
            at: now,
            stream: flow_store::LogStream::Host,
            text: format!(
                "attempt {attempt} of {attempts} {status}: {}; attempt {} starts in {}",
                crate::units::first_line(&reason),
                attempt + 1,
                crate::units::format_duration(wait)
            ),
        });
        self.earlier_logs[index] = lines;
        tracing::debug!(run = %self.run.id, step = %step.id, attempt, %status, "step attempt failed; retrying");
        self.emit(Event::StepRetrying {
            run: self.run_id(),
            step: step.id.clone(),
            attempt,
            attempts,
            status,
            reason,
            delay_ms: wait.as_millis() as u64,
            at: now,
        });
        self.deferred[index] = Some(end);
        self.retries.push((index, wait));
        Ok(())
    }

    /// A step's wait is over: its next attempt starts, unless the run is stopping
    /// (then its last attempt is what is recorded).
    fn next_attempt(&mut self, index: usize) -> Result<(), EngineError> {
        let Some(end) = self.deferred[index].take() else {
            return Ok(());
        };
        if self.cx.cancel.is_cancelled() || self.halted.is_some() {
            let mut end = end;
            end.class = None;
            return self.settle(index, end);
        }
        // The next attempt waits for a slot like any ready step; until it starts,
        // its last attempt is what the run records if it stops.
        self.deferred[index] = Some(end);
        self.ready.insert(index);
        Ok(())
    }

    /// How to look a step up in the cache, or why it runs without asking.
    fn lookup(
        &self,
        step: &flow_pipeline::PlannedStep,
        params: &serde_json::Map<String, Value>,
        plugin_sha256: &str,
        caps: &crate::capabilities::StepCapabilities,
        sources: &[usize],
    ) -> (Option<Lookup>, Option<String>) {
        let run = match &self.cx.cache {
            Ok(run) => run,
            Err(why) => return (None, Some(why.clone())),
        };
        if let Some(why) = step_cache::off_reason(step) {
            return (None, Some(why));
        }
        let manifest = Manifest::of_step(
            step,
            params,
            plugin_sha256,
            &self.cx.caps,
            caps.exec.plugin_env(),
            &run.secret,
        );
        let producers = sources
            .iter()
            .filter_map(|&a| {
                Some(Producer {
                    step: self.plan.steps[a].id.clone(),
                    ran: !self.from_cache[a],
                    changes: self.changes[a].clone()?,
                })
            })
            .collect();
        let lookup = Lookup {
            run: run.clone(),
            step: step.id.clone(),
            manifest,
            producers,
            keep_anyway: step.cache == Some(true),
        };
        (Some(lookup), None)
    }

    /// The steps `index` needs, directly or through others, that produced something,
    /// in plan order; built from its needs' own lists (they all started before it),
    /// so it costs what the producing steps number, not the whole pipeline.
    fn producing_ancestors(&mut self, index: usize) -> Arc<Vec<usize>> {
        let needs = &self.plan.steps[index].needs;
        let list_of = |n: usize| self.producing_ancestors[n].clone().unwrap_or_default();
        let list = match needs.as_slice() {
            [] => Arc::default(),
            [n] if !self.produced[*n] => list_of(*n),
            _ => {
                let mut all: Vec<usize> = Vec::new();
                for &n in needs {
                    all.extend(list_of(n).iter());
                    if self.produced[n] {
                        all.push(n);
                    }
                }
                all.sort_unstable();
                all.dedup();
                Arc::new(all)
            }
        };
        self.producing_ancestors[index] = Some(list.clone());
        list
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
            let end = if let Some(mut last) = self.deferred[index].take() {
                // Waiting for its next attempt when the run stopped.
                last.class = None;
                last
            } else if cancelled {
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
                "cannot write the steps' results into the workspace: {}",
                crate::units::io_words(&e, &self.cx.workspace)
            );
            tracing::error!(run = %self.run.id, "{why}");
            // Half a workspace on a full disk only keeps the next run from starting;
            // what the steps made is kept in the objects (`--resume` writes it again).
            // Only flow's own (the data dir's, for this run) is removed, never one the
            // user named.
            let own = self
                .cx
                .store
                .dir()
                .join("workspaces")
                .join(self.run.id.as_str());
            let why = if flow_store::is_no_space(&e)
                && self.cx.workspace == own
                && views::remove(&self.cx.workspace).is_ok()
            {
                format!("{why}; the workspace was removed to free the space")
            } else {
                why
            };
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

/// Appends an attempt's lines to the earlier attempts' lines, numbered after them;
/// returns the number the next line gets.
fn append_log(lines: &mut Vec<LogLine>, more: Vec<LogLine>) -> u64 {
    let offset = lines.last().map_or(0, |l| l.seq + 1);
    lines.extend(more.into_iter().map(|mut l| {
        l.seq += offset;
        l
    }));
    lines.last().map_or(0, |l| l.seq + 1)
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
