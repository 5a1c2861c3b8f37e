//! The records the store keeps: one [`RunRecord`] per run, one [`StepRecord`] per step,
//! and the [`LogLine`]s a step printed. All are stored as JSON; times are unix
//! milliseconds (see [`crate::format_rfc3339`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::run_id::RunId;
use crate::timestamp::now_millis;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The run is in progress (or its process died; see [`RunStatus::Interrupted`]).
    Running,
    /// Every step succeeded or was skipped.
    Succeeded,
    /// A step failed, or the run could not go on.
    Failed,
    /// Someone cancelled the run.
    Cancelled,
    /// The flow process ended while the run was in progress; found and marked when the
    /// store was next opened.
    Interrupted,
}

impl RunStatus {
    /// True once the run can no longer change: everything but [`RunStatus::Running`].
    pub fn is_terminal(self) -> bool {
        self != RunStatus::Running
    }

    /// The status in lowercase words, as [`fmt::Display`] prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Planned, not started.
    Pending,
    /// Started, not finished.
    Running,
    /// Finished and succeeded.
    Succeeded,
    /// Finished with an error (the reason says which).
    Failed,
    /// Stopped because it ran past its time limit.
    TimedOut,
    /// Stopped or never started because the run was cancelled or interrupted.
    Cancelled,
    /// Not run: a condition was false, or a step it needs did not succeed.
    Skipped,
}

impl StepStatus {
    /// True once the step can no longer change: everything but
    /// [`StepStatus::Pending`] and [`StepStatus::Running`].
    pub fn is_terminal(self) -> bool {
        !matches!(self, StepStatus::Pending | StepStatus::Running)
    }

    /// The status in lowercase words (`timed out`), as [`fmt::Display`] prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::TimedOut => "timed out",
            StepStatus::Cancelled => "cancelled",
            StepStatus::Skipped => "skipped",
        }
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id; also its key in the store.
    pub id: RunId,
    /// The pipeline's name.
    pub pipeline_name: String,
    /// The pipeline file the run was started from, as given.
    pub pipeline_file: String,
    /// Where the run stands.
    pub status: RunStatus,
    /// When the run started (unix milliseconds).
    pub started_at: u64,
    /// When the run ended (unix milliseconds); `None` while running, and for runs found
    /// [`RunStatus::Interrupted`] (the end was not seen).
    pub finished_at: Option<u64>,
    /// The step ids, in plan order.
    pub steps: Vec<String>,
    /// Why the run failed, was cancelled or was interrupted.
    pub failure: Option<String>,
    /// The version of the flow engine that ran it.
    pub engine_version: String,
    /// The id of the process that ran it.
    pub pid: u32,
    /// The sha256 of the pipeline file's text (what `--resume` checks it runs again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_sha256: Option<String>,
    /// The pipeline's inputs, as bound.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// The run's workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// When the run was resumed (`flow run --resume`), oldest first (unix milliseconds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed_at: Vec<u64>,
    /// What each step (in plan order) needs, by plan index: the run's DAG.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<Vec<u32>>,
}

impl RunRecord {
    /// A run starting now in this process: status [`RunStatus::Running`], `started_at`
    /// now, `pid` this process.
    pub fn start(
        id: RunId,
        pipeline_name: impl Into<String>,
        pipeline_file: impl Into<String>,
        steps: Vec<String>,
        engine_version: impl Into<String>,
    ) -> RunRecord {
        RunRecord {
            id,
            pipeline_name: pipeline_name.into(),
            pipeline_file: pipeline_file.into(),
            status: RunStatus::Running,
            started_at: now_millis(),
            finished_at: None,
            steps,
            failure: None,
            engine_version: engine_version.into(),
            pid: std::process::id(),
            pipeline_sha256: None,
            inputs: BTreeMap::new(),
            workspace: None,
            resumed_at: Vec::new(),
            needs: Vec::new(),
        }
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's id in the pipeline.
    pub step_id: String,
    /// The step's position in plan order (0-based); its key in the store.
    pub index: u32,
    /// The plugin, as written in the step's `uses:`.
    pub plugin: String,
    /// The sha256 of the plugin that ran, once known.
    pub plugin_digest: Option<String>,
    /// Where the step stands.
    pub status: StepStatus,
    /// When the step started (unix milliseconds).
    pub started_at: Option<u64>,
    /// When the step ended (unix milliseconds).
    pub finished_at: Option<u64>,
    /// Why the step failed, timed out, was cancelled or skipped.
    pub reason: Option<String>,
    /// The outputs the step set.
    pub outputs: BTreeMap<String, String>,
    /// Bytes of log the step printed, including any that were not kept.
    pub log_bytes: u64,
    /// True if the log was cut short (the kept lines are the first ones).
    pub log_truncated: bool,
    /// The attempts before the last, when the step was retried (`retry:`), oldest
    /// first; the record's own fields are the last attempt's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptRecord>,
    /// What the step cache did for it (none for a step that never got that far).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheUse>,
}

/// What the step cache did for a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CacheUse {
    /// Its result was taken from the cache: it did not run.
    Hit {
        /// The run whose step produced the result.
        run: String,
        /// That step's id.
        step: String,
    },
    /// Nothing was kept under its key, so it ran; why, one line per cause.
    Miss {
        /// The causes, in plain words.
        why: Vec<String>,
    },
    /// It ran without the cache being asked.
    Off {
        /// Why (`cache: false`, `--no-cache`, it reaches the network...).
        why: String,
    },
}

impl std::fmt::Display for CacheUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheUse::Hit { run, step } => write!(f, "cached (from {run}/{step})"),
            CacheUse::Miss { why } if why.is_empty() => f.write_str("not cached"),
            CacheUse::Miss { why } => write!(f, "not cached: {}", why.join("; ")),
            CacheUse::Off { why } => write!(f, "cache off: {why}"),
        }
    }
}

/// An attempt of a step that was retried, as it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Its number (1 for the first).
    pub attempt: u32,
    /// How it ended.
    pub status: StepStatus,
    /// Why it did not succeed.
    pub reason: Option<String>,
    /// When it started and ended (unix milliseconds).
    pub started_at: Option<u64>,
    /// When it ended.
    pub finished_at: u64,
    /// The wait before the next attempt, in milliseconds.
    pub retried_after_ms: u64,
}

impl StepRecord {
    /// A step that has not started yet.
    pub fn pending(step_id: impl Into<String>, index: u32, plugin: impl Into<String>) -> Self {
        StepRecord {
            step_id: step_id.into(),
            index,
            plugin: plugin.into(),
            plugin_digest: None,
            status: StepStatus::Pending,
            started_at: None,
            finished_at: None,
            reason: None,
            outputs: BTreeMap::new(),
            log_bytes: 0,
            log_truncated: false,
            cache: None,
            attempts: Vec::new(),
        }
    }
}

/// The severity of a line a plugin logged through the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something looks wrong but the step goes on.
    Warn,
    /// Something failed.
    Error,
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        })
    }
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// The plugin's standard output.
    Stdout,
    /// The plugin's standard error.
    Stderr,
    /// The plugin's structured log (the `log` host capability), at a level.
    Plugin(LogLevel),
    /// The host, about the step (for example, that its log was truncated).
    Host,
}

/// One line a step printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// The line's position in the step's log (0-based, increasing); its key in the store.
    pub seq: u64,
    /// When it was printed (unix milliseconds).
    pub at: u64,
    /// Where it came from.
    pub stream: LogStream,
    /// The text, without the line ending, already redacted.
    pub text: String,
}

/// A [`LogLine`] with the step that printed it, as [`Store::logs`](crate::Store::logs)
/// returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepLogLine {
    /// The printing step's index in plan order.
    pub step_index: u32,
    /// The printing step's id.
    pub step_id: String,
    /// The line.
    pub line: LogLine,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_display_in_lowercase_words() {
        assert_eq!(StepStatus::TimedOut.to_string(), "timed out");
        assert_eq!(StepStatus::Succeeded.to_string(), "succeeded");
        assert_eq!(RunStatus::Interrupted.to_string(), "interrupted");
    }

    #[test]
    fn terminal_statuses() {
        use StepStatus::*;
        for s in [Pending, Running] {
            assert!(!s.is_terminal(), "{s}");
        }
        for s in [Succeeded, Failed, TimedOut, Cancelled, Skipped] {
            assert!(s.is_terminal(), "{s}");
        }
        assert!(!RunStatus::Running.is_terminal());
        assert!(RunStatus::Failed.is_terminal());
    }

    #[test]
    fn json_shape_is_stable() {
        let line = LogLine {
            seq: 3,
            at: 7,
            stream: LogStream::Plugin(LogLevel::Warn),
            text: "careful".into(),
        };
        assert_eq!(
            serde_json::to_string(&line).ok().as_deref(),
            Some(r#"{"seq":3,"at":7,"stream":{"plugin":"warn"},"text":"careful"}"#)
        );
        assert_eq!(
            serde_json::to_string(&StepStatus::TimedOut).ok().as_deref(),
            Some(r#""timed_out""#)
        );
        assert_eq!(
            serde_json::to_string(&LogStream::Stderr).ok().as_deref(),
            Some(r#""stderr""#)
        );
    }
}

/// A step's signed provenance, stored with the step in one transaction (see
/// [`Store::finish_step_attested`](crate::Store::finish_step_attested)). Each field
/// is a DSSE envelope as JSON text, kept byte for byte as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepAttestation {
    /// The step's place in the order steps completed (0-based): the order of the run
    /// chain, which verification checks.
    pub position: u32,
    /// The link's file name in an export (`<step>.<keyid[:8]>.link`).
    pub link_file_name: String,
    /// The in-toto Statement v1 with the SLSA Provenance v1 predicate.
    pub statement: String,
    /// The in-toto v0.9 link.
    pub link: String,
    /// The key id that signed both.
    pub keyid: String,
}

/// A run's signed provenance, stored when the run finishes (see
/// [`Store::finish_run_attested`](crate::Store::finish_run_attested)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAttestation {
    /// The in-toto v0.9 layout generated from the pipeline, as a DSSE envelope.
    pub layout: String,
    /// The run chain: the digests of the step envelopes in execution order, as a
    /// DSSE envelope.
    pub chain: String,
    /// The owner's public key (PEM) that signed the layout.
    pub owner_public_key: String,
}

/// What completes a step besides its record ([`Store::complete_step`](crate::Store::complete_step)):
/// its log lines, its signed provenance and what it changed in its view of the workspace.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepCompletion<'a> {
    /// Its log lines.
    pub lines: &'a [LogLine],
    /// Its signed provenance, when the run is recorded with a key.
    pub attestation: Option<&'a StepAttestation>,
    /// What it changed in its view, when it ran and its files were kept.
    pub changes: Option<&'a crate::tree::Changes>,
}
