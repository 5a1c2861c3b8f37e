//! Runs in progress, as their live files tell (`DATA_DIR/live/RUN.jsonl`, which
//! `flow run` appends its events to): the store cannot be read while a run holds it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::live::LIVE_DIR;

/// A run in progress (or just ended, not yet readable in the store).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct LiveRun {
    pub id: String,
    pub pipeline: String,
    /// `running`, or how it ended.
    pub status: String,
    pub started_at: u64,
    pub finished_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// In plan order.
    pub steps: Vec<LiveStep>,
}

/// A step of a run in progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct LiveStep {
    pub step: String,
    /// `pending`, `running`, `retrying`, or how it ended.
    pub status: String,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// Failed attempts so far.
    pub retries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What it last said of its progress (`12/40 files`), while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

/// A `step-progress` event in words (`12/40 files`).
fn progress_words(event: &Value) -> Option<String> {
    let unit = event["unit"].as_str().unwrap_or_default();
    Some(flow_engine::units::format_progress(
        event["done"].as_u64()?,
        event["total"].as_u64(),
        unit,
    ))
}

/// Every run with a live file in `data_dir`, newest first.
pub(crate) fn read_all(data_dir: &Path) -> Vec<LiveRun> {
    let Ok(entries) = fs::read_dir(data_dir.join(LIVE_DIR)) else {
        return Vec::new();
    };
    let mut runs: Vec<LiveRun> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(".jsonl"))
        })
        .filter_map(|e| fs::read(e.path()).ok())
        .filter_map(|bytes| fold(&String::from_utf8_lossy(&bytes)))
        .collect();
    runs.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then_with(|| b.id.cmp(&a.id))
    });
    runs
}

/// The state the events of a live file lead to; none without a `run-started`. A line
/// that is not whole JSON (the last one, while it is being written) is skipped.
pub(crate) fn fold(text: &str) -> Option<LiveRun> {
    let mut run: Option<LiveRun> = None;
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let str_of = |key: &str| event[key].as_str().map(str::to_owned);
        let at = event["at"].as_u64();
        match event["event"].as_str().unwrap_or_default() {
            "run-started" => {
                let steps: Vec<LiveStep> = event["steps"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|s| s.as_str()).map(pending).collect())
                    .unwrap_or_default();
                index = steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.step.clone(), i))
                    .collect();
                run = Some(LiveRun {
                    id: str_of("run").unwrap_or_default(),
                    pipeline: str_of("pipeline").unwrap_or_default(),
                    status: "running".into(),
                    started_at: at.unwrap_or_default(),
                    finished_at: None,
                    failure: None,
                    steps,
                });
            }
            kind => {
                let Some(run) = run.as_mut() else { continue };
                if kind == "run-finished" {
                    run.status = status_word(&event["status"]);
                    run.finished_at = at;
                    run.failure = str_of("failure");
                    continue;
                }
                let Some(step) = str_of("step")
                    .and_then(|s| index.get(&s).copied())
                    .and_then(|i| run.steps.get_mut(i))
                else {
                    continue;
                };
                match kind {
                    "step-started" => {
                        step.status = "running".into();
                        step.started_at = step.started_at.or(at);
                    }
                    "step-retrying" => {
                        step.status = "retrying".into();
                        step.retries += 1;
                        step.reason = str_of("reason");
                    }
                    "step-finished" => {
                        step.status = status_word(&event["status"]);
                        step.finished_at = at;
                        step.reason = str_of("reason");
                        step.progress = None;
                    }
                    "step-progress" => step.progress = progress_words(&event),
                    _ => {}
                }
            }
        }
    }
    run.filter(|r| !r.id.is_empty())
}

fn pending(step: &str) -> LiveStep {
    LiveStep {
        step: step.to_owned(),
        status: "pending".into(),
        started_at: None,
        finished_at: None,
        retries: 0,
        reason: None,
        progress: None,
    }
}

/// A status as the store's words say it (`timed_out` -> `timed out`).
fn status_word(value: &Value) -> String {
    value.as_str().unwrap_or("unknown").replace('_', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_fold_into_the_runs_state_and_a_partial_line_is_skipped() {
        let text = r#"{"event":"run-started","run":"r1","pipeline":"ci","steps":["a","b"],"workspace":"w","at":10}
{"event":"step-started","run":"r1","step":"a","at":11}
{"event":"step-finished","run":"r1","step":"a","status":"succeeded","duration_ms":1,"at":12}
{"event":"step-started","run":"r1","step":"b","at":13}
{"event":"step-retrying","run":"r1","step":"b","attempt":1,"attempts":2,"status":"timed_out","reason":"slow","delay_ms":5,"at":14}
{"event":"step-progress","run":"r1","step":"b","done":3,"total":40,"unit":"files","at":15}
{"event":"step-fin"#;
        let run = fold(text).unwrap();
        assert_eq!((run.id.as_str(), run.status.as_str()), ("r1", "running"));
        assert_eq!(run.steps[0].status, "succeeded");
        assert_eq!(run.steps[0].finished_at, Some(12));
        assert_eq!(
            (run.steps[1].status.as_str(), run.steps[1].retries),
            ("retrying", 1)
        );
        assert_eq!(run.steps[1].progress.as_deref(), Some("3/40 files"));
        let done = format!(
            "{}\n{}",
            &text[..text.rfind('\n').unwrap()],
            r#"{"event":"run-finished","run":"r1","status":"failed","failure":"b timed out","duration_ms":9,"at":19}"#
        );
        let run = fold(&done).unwrap();
        assert_eq!(run.status, "failed");
        assert_eq!(fold("not json\n"), None);
    }
}
