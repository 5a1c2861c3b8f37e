//! `flow explain` (what the step cache did for a step, and why) and `flow cache gc`.

use std::time::Duration;

use flow_engine::step_cache::gc::{self, GcLimits};
use flow_engine::step_cache::predict::Prediction;
use flow_engine::units::format_bytes;
use flow_store::{CacheUse, Objects, Store, StoreError, now_millis};

use crate::{Failure, Style, exit};

/// `flow explain RUN STEP`.
pub(crate) fn explain(store: &Store, query: &str, step: &str, style: Style) -> Result<u8, Failure> {
    let id = store.resolve(query)?;
    let record = store
        .steps(&id)?
        .into_iter()
        .find(|s| s.step_id == step)
        .ok_or_else(|| StoreError::UnknownStep {
            dir: store.dir().to_path_buf(),
            run: id.clone(),
            step: step.to_owned(),
        })?;
    if style == Style::Json {
        let value = serde_json::json!({
            "run": id.to_string(), "step": step, "status": record.status, "cache": record.cache,
        });
        outln!("{value}");
        return Ok(exit::SUCCESS);
    }
    match &record.cache {
        Some(CacheUse::Hit { run, step: from }) => {
            outln!("{step} in run {id} was not run: it was taken from the cache.");
            outln!("  its result is that of step `{from}` in run {run}, which had the same key");
            outln!("  (plugin, params, grants, host commands, variables, secrets and input files)");
        }
        Some(CacheUse::Miss { why }) => {
            outln!("{step} in run {id} ran: nothing was kept under its key.");
            for cause in why {
                outln!("  - {cause}");
            }
        }
        Some(CacheUse::Off { why }) => {
            outln!("{step} in run {id} ran without asking the cache: {why}");
        }
        Some(other) => outln!("{step} in run {id}: {other}"),
        None => outln!(
            "{step} in run {id} never got as far as the cache ({})",
            record.status
        ),
    }
    Ok(exit::SUCCESS)
}

/// `flow run --dry-run`: what the cache would do for each step.
pub(crate) fn print_predictions(
    pipeline: &str,
    predictions: &[(String, Prediction)],
    explain: bool,
    style: Style,
) {
    if style == Style::Json {
        for (step, prediction) in predictions {
            outln!(
                "{}",
                serde_json::json!({ "step": step, "prediction": prediction })
            );
        }
        return;
    }
    let width = predictions.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
    let pad = " ".repeat(width + 2);
    outln!(
        "dry run of {pipeline} ({} step{}): nothing runs",
        predictions.len(),
        crate::progress::plural(predictions.len())
    );
    let mut hits = 0;
    for (step, prediction) in predictions {
        match prediction {
            Prediction::Hit { run, step: from } => {
                hits += 1;
                outln!("{step:<width$}  cached (from {run}/{from})");
            }
            Prediction::Miss { why } => {
                outln!("{step:<width$}  would run");
                if explain {
                    for cause in why {
                        outln!("{pad}not cached: {cause}");
                    }
                }
            }
            Prediction::Off { why } => outln!("{step:<width$}  would run (cache not asked: {why})"),
            Prediction::Skip { why } => outln!("{step:<width$}  would be skipped: {why}"),
            Prediction::Unknown { why } => outln!("{step:<width$}  not known: {why}"),
            other => outln!("{step:<width$}  {other:?}"),
        }
    }
    outln!(
        "{hits} of {} step{} would be taken from the cache",
        predictions.len(),
        crate::progress::plural(predictions.len())
    );
}

/// `flow cache gc`.
pub(crate) fn gc(
    store: &Store,
    older_than: Option<Duration>,
    max_bytes: Option<u64>,
    style: Style,
) -> Result<u8, Failure> {
    let objects_dir = store.dir().join("objects");
    let objects = Objects::open(&objects_dir)
        .map_err(|e| Failure::Io(format!("cannot open {}: {e}", objects_dir.display())))?;
    let report = gc::collect(
        store,
        &objects,
        GcLimits {
            older_than,
            max_bytes,
        },
        now_millis(),
    )?;
    if style == Style::Json {
        let value = serde_json::json!({
            "entries_removed": report.entries_removed,
            "entries_kept": report.entries_kept,
            "objects_removed": report.objects_removed,
            "bytes_freed": report.bytes_freed,
            "bytes_kept": report.bytes_kept,
        });
        outln!("{value}");
    } else {
        outln!(
            "freed {} ({} file{} of the object store; {} cached result{} dropped)",
            format_bytes(report.bytes_freed),
            report.objects_removed,
            crate::progress::plural(report.objects_removed),
            report.entries_removed,
            crate::progress::plural(report.entries_removed),
        );
        outln!(
            "kept {} ({} cached result{}, and the files of runs that may be resumed)",
            format_bytes(report.bytes_kept),
            report.entries_kept,
            crate::progress::plural(report.entries_kept),
        );
    }
    Ok(exit::SUCCESS)
}

/// An age such as `7d`, `12h` or `30m`.
pub(crate) fn parse_age(text: &str) -> Result<Duration, String> {
    if let Some(days) = text.strip_suffix('d')
        && let Ok(days) = days.parse::<u64>()
    {
        return Ok(Duration::from_secs(days * 86_400));
    }
    flow_pipeline::model::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not an age such as `7d`, `12h` or `30m`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_take_days_hours_and_minutes() {
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert!(parse_age("soon").is_err());
    }
}
