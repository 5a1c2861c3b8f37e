//! `flow cache gc`: drops kept step results by age and by size, then the files of the
//! object store that nothing still needs.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use flow_store::{Change, Entry, Objects, RunStatus, StepCache, Store};

/// What to drop.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcLimits {
    /// Drop results not used for this long.
    pub older_than: Option<Duration>,
    /// Then drop the least recently used results until the rest (their files and
    /// their records) weigh at most this many bytes.
    pub max_bytes: Option<u64>,
}

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Results dropped.
    pub entries_removed: usize,
    /// Results kept.
    pub entries_kept: usize,
    /// Files removed from the object store.
    pub objects_removed: usize,
    /// The bytes they held.
    pub bytes_freed: u64,
    /// What the object store holds afterwards.
    pub bytes_kept: u64,
}

/// Collects the step cache of `store` (whose object store is `objects`) within
/// `limits`. Files are kept while a kept result or a run that did not succeed (one
/// `flow run --resume` may continue) needs them; everything else in the object store
/// is removed, so a collection with no limits frees what no result needs.
pub fn collect(
    store: &Store,
    objects: &Objects,
    limits: GcLimits,
    now_ms: u64,
) -> Result<GcReport, crate::EngineError> {
    let cache = StepCache::open(store)?;
    let mut entries = cache.entries()?;
    let mut report = GcReport::default();
    if let Some(age) = limits.older_than {
        let cutoff = now_ms.saturating_sub(age.as_millis() as u64);
        for (key, entry) in &entries {
            if entry.used_at < cutoff && cache.remove(key)? {
                report.entries_removed += 1;
            }
        }
        entries.retain(|(_, e)| e.used_at >= cutoff);
    }
    if let Some(max) = limits.max_bytes {
        // Newest use first: the results kept are the most recently used that fit.
        entries.sort_by_key(|(_, e)| std::cmp::Reverse(e.used_at));
        let mut counted: HashSet<String> = HashSet::new();
        let mut total = 0u64;
        let mut keep = Vec::new();
        for (key, entry) in entries {
            // Its files not already counted, and its own record.
            let record = serde_json::to_vec(&entry).map_or(0, |v| v.len() as u64);
            let extra: u64 = record
                + entry
                    .objects()
                    .filter(|(sha, _)| !counted.contains(*sha))
                    .map(|(_, size)| size)
                    .sum::<u64>();
            if total + extra > max {
                if cache.remove(&key)? {
                    report.entries_removed += 1;
                }
                continue;
            }
            total += extra;
            counted.extend(entry.objects().map(|(sha, _)| sha.to_owned()));
            keep.push((key, entry));
        }
        entries = keep;
    }
    report.entries_kept = entries.len();
    // What is still needed: the kept results' files, and those of runs that may resume.
    let mut needed: HashSet<String> = entries
        .iter()
        .flat_map(|(_, e)| e.objects().map(|(sha, _)| sha.to_owned()))
        .collect();
    for run in store.runs(None)? {
        if run.status == RunStatus::Succeeded {
            continue;
        }
        for (_, changes) in store.run_changes(&run.id)? {
            needed.extend(changes.values().filter_map(|c| match c {
                Change::Put {
                    entry: Entry::File { sha256, .. },
                } => Some(sha256.clone()),
                _ => None,
            }));
        }
        if let Some(base) = store.run_base(&run.id)? {
            needed.extend(base.files().map(|(_, sha)| sha.to_owned()));
        }
    }
    let io = |source: std::io::Error| crate::EngineError::Workspace {
        path: objects.dir().to_path_buf(),
        source,
    };
    let held: HashMap<String, u64> = objects.list().map_err(io)?.into_iter().collect();
    for (sha, size) in held {
        if needed.contains(&sha) {
            report.bytes_kept += size;
            continue;
        }
        report.bytes_freed += objects.remove(&sha).map_err(io)?;
        report.objects_removed += 1;
    }
    store.flush()?;
    Ok(report)
}
