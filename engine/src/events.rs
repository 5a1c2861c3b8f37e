//! What a run reports as it goes. The CLI renders these; an embedding service
//! can forward them, or send them as CDEvents ([`crate::cdevents`],
//! [`crate::event_delivery`]).

use std::collections::BTreeMap;

use flow_store::{CacheUse, RunStatus, StepStatus};
use serde::Serialize;

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Event {
    /// The run was recorded and its first steps are about to start.
    RunStarted {
        /// The run's id.
        run: String,
        /// The pipeline's name.
        pipeline: String,
        /// The step ids in plan order.
        steps: Vec<String>,
        /// The run's workspace.
        workspace: String,
        /// Unix milliseconds.
        at: u64,
    },
    /// A step's plugin is being instantiated.
    StepStarted {
        /// The run's id.
        run: String,
        /// The step's id.
        step: String,
        /// Unix milliseconds.
        at: u64,
    },
    /// A step reached a final state (including skipped and cancelled).
    StepFinished {
        /// The run's id.
        run: String,
        /// The step's id.
        step: String,
        /// Its final state.
        status: StepStatus,
        /// Why it did not succeed.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// How long it ran, in milliseconds (0 if it never started).
        duration_ms: u64,
        /// The outputs it set.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        outputs: BTreeMap<String, String>,
        /// What the step cache did: taken from it (the step did not run), missed (and
        /// why), or not asked (and why); none for a step that never got that far.
        #[serde(skip_serializing_if = "Option::is_none")]
        cache: Option<CacheUse>,
        /// Unix milliseconds.
        at: u64,
    },
    /// A running step said how far its work has got (at most one per 250 ms per step,
    /// and one more when it reaches its total).
    StepProgress {
        /// The run's id.
        run: String,
        /// The step's id.
        step: String,
        /// How much is done.
        done: u64,
        /// Out of how much, when the step knows.
        #[serde(skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
        /// What is counted ("files", "bytes", ...), as the plugin says it: printable
        /// characters only, at most 32.
        unit: String,
        /// Unix milliseconds.
        at: u64,
    },
    /// An attempt of a step failed and the step will be tried again (`retry:`).
    StepRetrying {
        /// The run's id.
        run: String,
        /// The step's id.
        step: String,
        /// The attempt that failed (1 for the first).
        attempt: u32,
        /// Attempts the step may have in all.
        attempts: u32,
        /// How the attempt ended.
        status: StepStatus,
        /// Why.
        reason: String,
        /// The wait before the next attempt, in milliseconds.
        delay_ms: u64,
        /// Unix milliseconds.
        at: u64,
    },
    /// The run ended.
    RunFinished {
        /// The run's id.
        run: String,
        /// Its final state.
        status: RunStatus,
        /// Why it failed or was cancelled.
        #[serde(skip_serializing_if = "Option::is_none")]
        failure: Option<String>,
        /// How long it took, in milliseconds.
        duration_ms: u64,
        /// Unix milliseconds.
        at: u64,
    },
}
