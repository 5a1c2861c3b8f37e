//! One step's attempt, on a task of its own: its view of the workspace written,
//! its materials taken, its plugin run, its files kept and its products taken,
//! all within its time; what the executor records about it comes back as a
//! [`StepEnd`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flow_provenance::{DigestCache, Root};
use flow_store::{Changes, LogLine, Objects, StepStatus, Tree};
use serde_json::Value;

use crate::cancel::CancelFlag;
use crate::capabilities::StepCapabilities;
use crate::capabilities::claims::Claims;
use crate::capabilities::log::LogSink;
use crate::capabilities::secrets::Redactor;
use crate::recorder::{self, StepFacts, StepRoots};
use crate::runtime::{LoadedPlugin, Runtime, StepFailure, StepInvocation, StepLimits};
use crate::step_cache;
use crate::views;

/// Extra time a step gets beyond its timeout before the host stops waiting
/// for it (a guest blocked in a host call does not see epoch interrupts).
pub(crate) const HOST_GRACE: Duration = Duration::from_secs(2);

/// How a step ended, with everything that is recorded about it.
#[derive(Default)]
pub(crate) struct StepEnd {
    pub(crate) status: Option<StepStatus>,
    pub(crate) reason: Option<String>,
    pub(crate) outputs: BTreeMap<String, String>,
    pub(crate) log: Vec<LogLine>,
    pub(crate) log_bytes: u64,
    pub(crate) log_truncated: bool,
    pub(crate) facts: StepFacts,
    /// What it changed in its view of the workspace (none when it did not run).
    pub(crate) changes: Option<Changes>,
    /// The kind of failure, when it is one a step may be retried on.
    pub(crate) class: Option<flow_pipeline::FailureClass>,
    /// What the step cache did, when it was asked.
    pub(crate) cache: Option<Box<step_cache::Looked>>,
}

impl StepEnd {
    /// A step that ended without its plugin running.
    pub(crate) fn not_run(status: StepStatus, reason: String) -> Self {
        StepEnd {
            status: Some(status),
            reason: Some(reason),
            ..StepEnd::default()
        }
    }
}

pub(crate) struct Finished {
    pub(crate) index: usize,
    pub(crate) end: StepEnd,
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
pub(crate) struct StepTask {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) plugin: Arc<LoadedPlugin>,
    pub(crate) index: usize,
    pub(crate) run_id: String,
    pub(crate) step_id: String,
    pub(crate) params: serde_json::Map<String, Value>,
    pub(crate) limits: StepLimits,
    /// When the step (its plugin and the host's work for it) must be done.
    pub(crate) deadline: Instant,
    pub(crate) cancel: CancelFlag,
    pub(crate) log: LogSink,
    pub(crate) claims: Claims,
    /// Every capability's part of the step's store (taken when the plugin runs).
    pub(crate) caps: Option<StepCapabilities>,
    pub(crate) redactor: Option<Arc<Redactor>>,
    pub(crate) snapshot: Option<(Arc<DigestCache>, StepRoots)>,
    pub(crate) view: StepView,
    /// How to look the step up in the step cache (none: it runs without asking).
    pub(crate) lookup: Option<step_cache::Lookup>,
    pub(crate) workspace_quota: u64,
    pub(crate) started_ms: u64,
}

/// A step's view of the workspace: its directory and what the host writes there.
pub(crate) struct StepView {
    pub(crate) dir: PathBuf,
    /// Taken when it is written.
    pub(crate) tree: Option<Tree>,
    pub(crate) objects: Objects,
    /// Where an empty view goes for the next step, when it may be reused.
    pub(crate) spare: Option<views::SpareViews>,
}

impl StepTask {
    /// The step ends before its plugin runs (the host could not prepare its evidence).
    fn finish_early(self, failure: StepFailure) -> Finished {
        let class = failure.class();
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
                class,
                ..StepEnd::default()
            },
        }
    }

    /// The step does not run: the result kept under its key stands in for it.
    fn finish_cached(
        self,
        tree: &flow_store::Tree,
        granted: BTreeMap<String, String>,
        looked: step_cache::Looked,
    ) -> Finished {
        let Some(entry) = looked.hit.as_deref().cloned() else {
            return self.finish_early(StepFailure::Host("no cached result".into()));
        };
        let evidence: step_cache::Evidence =
            serde_json::from_value(entry.evidence).unwrap_or_default();
        let mut materials = views::artifacts(tree);
        materials.extend(granted);
        let mut notes = evidence.notes;
        notes.push(format!(
            "cached: not run; its result is that of step `{}` in run {}, which had the same key \
             (plugin, params, grants, host commands, variables, secrets and materials)",
            entry.step, entry.run
        ));
        self.log.line(
            crate::capabilities::log::LogSource::Host,
            &format!(
                "not run: taken from the cache, the result of step `{}` in run {} (its log: flow logs {} {})",
                entry.step, entry.run, entry.run, entry.step
            ),
        );
        let (log, log_bytes, log_truncated) = self.log.finish();
        Finished {
            index: self.index,
            end: StepEnd {
                status: Some(StepStatus::Succeeded),
                reason: None,
                outputs: entry.outputs,
                log,
                log_bytes,
                log_truncated,
                facts: StepFacts {
                    params: self.params,
                    plugin_sha256: self.plugin.digest.hex(),
                    started_ms: Some(self.started_ms),
                    materials,
                    products: evidence.products,
                    notes,
                    dependencies: evidence.dependencies,
                    commands: evidence.commands,
                },
                changes: Some(entry.changes),
                class: None,
                cache: Some(Box::new(looked)),
            },
        }
    }

    pub(crate) async fn run(self) -> Finished {
        let dir = self.view.dir.clone();
        let (finished, handled) = self.run_in_view().await;
        // Its view is removed once its files are kept; a step that ended before that
        // leaves it behind, removed here.
        if !handled && std::fs::symlink_metadata(&dir).is_ok() {
            let removed = tokio::task::spawn_blocking(move || views::remove(&dir)).await;
            if let Ok(Err(e)) = removed {
                tracing::warn!(error = %e, "cannot remove a step's view of the workspace");
            }
        }
        finished
    }

    /// The attempt, and whether its view was dealt with (removed, or kept as a spare).
    async fn run_in_view(mut self) -> (Finished, bool) {
        let mut tree = self.view.tree.take().unwrap_or_default();
        // The host's work for the step (hashing before and after it) counts against
        // its timeout, like the plugin's own.
        let deadline = self.deadline;
        let limits = flow_provenance::SnapshotLimits {
            deadline: Some(deadline),
            workspace_quota: Some(self.workspace_quota),
        };
        // A view past the run's quota (the steps it needs left too much) fails now.
        let view_bytes = tree.bytes();
        if view_bytes > self.workspace_quota {
            let stop = flow_provenance::SnapshotStop::Quota {
                bytes: view_bytes,
                quota: self.workspace_quota,
            };
            let failure = host_stop(stop, self.limits, self.workspace_quota, "materials");
            return (self.finish_early(failure), false);
        }
        // Materials: what the step could read before it runs: its view, as the host
        // writes it from the store (nothing to hash), and its granted directories,
        // hashed by the host.
        let (mut granted, mut notes) = (BTreeMap::new(), Vec::new());
        if let Some((cache, roots)) = &self.snapshot
            && !roots.readable.is_empty()
        {
            let snapshot = recorder::snapshot(cache.clone(), roots.readable.clone(), limits).await;
            if let Some(stop) = snapshot.stopped {
                let failure = host_stop(stop, self.limits, self.workspace_quota, "materials");
                return (self.finish_early(failure), false);
            }
            granted = snapshot.artifacts;
            notes = snapshot.notes;
        }
        // With its key known, a result kept from an earlier run stands in for running it.
        let mut looked = None;
        if let Some(lookup) = self.lookup.take() {
            let objects = self.view.objects.clone();
            let (tree_now, granted_now) = (tree, granted);
            let found = tokio::task::spawn_blocking(move || {
                let looked = lookup.find(&tree_now, &granted_now, &objects);
                (looked, tree_now, granted_now)
            })
            .await;
            let Ok((found, tree_back, granted_back)) = found else {
                let why = "the step cache lookup ended abnormally".to_owned();
                return (self.finish_early(StepFailure::Host(why)), false);
            };
            (tree, granted) = (tree_back, granted_back);
            if found.hit.is_some() {
                return (self.finish_cached(&tree, granted, found), false);
            }
            // A step whose files were not all hashed leaves no result to keep.
            let mut found = found;
            found.storable = notes.is_empty();
            looked = Some(Box::new(found));
        }
        // Its view of the workspace, written before the step runs.
        let objects = self.view.objects.clone();
        let dir = self.view.dir.clone();
        let written = if tree.is_empty() {
            // Nothing to write (an empty directory is its view): no trip to a thread.
            Ok(views::Written::default())
        } else {
            tokio::task::spawn_blocking(move || views::materialize(&objects, &dir, tree))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r)
        };
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                let why = format!(
                    "cannot write the step's view of the workspace: {}",
                    crate::units::io_words(&e, &self.view.dir)
                );
                return (self.finish_early(StepFailure::Host(why)), false);
            }
        };
        let mut materials = BTreeMap::new();
        if self.snapshot.is_some() {
            materials = views::artifacts(&written.tree);
            materials.extend(granted);
        }
        let Some(caps) = self.caps.take() else {
            return (
                self.finish_early(StepFailure::Host("the step was started twice".into())),
                false,
            );
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
        let spare = self.view.spare.take();
        // A step that failed on a full disk: what it left is not kept (keeping it would
        // take the space the next run needs); its view goes with the run's.
        let full = result.is_err() && crate::units::is_full(&dir);
        let captured = if full {
            Err(views::CaptureError::Io(
                std::io::ErrorKind::StorageFull.into(),
            ))
        } else {
            tokio::task::spawn_blocking(move || {
            let captured = views::capture(
                &objects,
                &dir,
                &written,
                step_started,
                capture_limits,
                views::Take::Move,
            )
            .map(|captured| {
                let changes = written.tree.changes_to(&captured.tree);
                (changes, captured)
            });
            // Kept: the view is not needed any more. Left empty, it serves another step.
            match (&captured, spare) {
                (Ok((_, c)), Some(spare)) if c.tree.is_empty() && c.notes.is_empty() => {
                    if let Ok(mut spare) = spare.lock() {
                        spare.push(dir);
                    }
                }
                (Ok(_), _) => {
                    if let Err(e) = views::remove(&dir) {
                        tracing::warn!(error = %e, "cannot remove a step's view of the workspace");
                    }
                }
                (Err(_), _) => {}
            }
            captured
            })
            .await
            .unwrap_or_else(|e| Err(views::CaptureError::Io(std::io::Error::other(e))))
        };
        // The view as the step left it, as artifacts (for its products).
        let mut view_after = None;
        let changes = match captured {
            Ok((changes, captured)) => {
                notes.extend(captured.notes);
                view_after = Some(views::artifacts(&captured.tree));
                Some(changes)
            }
            Err(views::CaptureError::Stopped(stop)) => {
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
            Err(e) => {
                let e = match &e {
                    views::CaptureError::Io(io) => crate::units::io_words(io, &self.view.dir),
                    other => other.to_string(),
                };
                let why = format!("cannot keep what the step wrote in its workspace: {e}");
                if result.is_ok() {
                    result = Err(StepFailure::Host(why));
                } else {
                    notes.push(why);
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
        // Every file the step could read and write was hashed and kept: its result can
        // stand in for a later run of it.
        let clean = notes.is_empty();
        let (log, log_bytes, log_truncated) = self.log.finish();
        let class = result.as_ref().err().and_then(StepFailure::class);
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
                let mut reason = failure.to_string();
                // A command that failed writing says so in its log only; a full disk
                // under the step's view is the likely cause, and is said.
                if status == StepStatus::Failed
                    && !reason.contains("no space left on")
                    && crate::units::is_full(&self.view.dir)
                {
                    reason.push_str(&format!(" (no space left on {})", self.view.dir.display()));
                }
                (status, Some(reason), BTreeMap::new())
            }
        };
        let outside = self.claims.outside();
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
        // Its files were kept (and its view removed or kept as a spare) when its
        // changes are known.
        let handled = changes.is_some();
        let finished = Finished {
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
                class,
                cache: looked.map(|mut looked| {
                    looked.storable &= clean;
                    looked.outside(&outside);
                    looked
                }),
            },
        };
        (finished, handled)
    }
}
