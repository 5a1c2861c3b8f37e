//! The live file of a run in progress: `DATA_DIR/live/RUN.jsonl`, each of the run's
//! events as one JSON line (as `--json` prints them), appended as they come and
//! removed once the run has ended and is recorded. `flow serve` reads it to show
//! runs in progress while `flow run` holds the store; it never touches the store.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use flow_engine::Event;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::task::JoinHandle;

/// The directory of live files, in the data dir.
pub(crate) const LIVE_DIR: &str = "live";

/// The live file of run `run` in `data_dir`.
pub(crate) fn live_file(data_dir: &Path, run: &str) -> PathBuf {
    data_dir.join(LIVE_DIR).join(format!("{run}.jsonl"))
}

/// Passes `events` on (the returned receiver) and appends each to the run's live
/// file. The task ends, and removes the file, when the events end: the engine drops
/// its sender once the run is recorded.
pub(crate) fn tee(
    mut events: UnboundedReceiver<Event>,
    data_dir: PathBuf,
) -> (UnboundedReceiver<Event>, JoinHandle<()>) {
    let (tx, rx) = unbounded_channel();
    let task = tokio::spawn(async move {
        let mut file: Option<(PathBuf, File)> = None;
        while let Some(event) = events.recv().await {
            if let Event::RunStarted { run, .. } = &event
                && file.is_none()
            {
                file = open(&data_dir, run);
            }
            if let Some((_, f)) = &mut file
                && let Ok(mut line) = serde_json::to_vec(&event)
            {
                line.push(b'\n');
                // One write per line, so a reader sees whole lines (or a last partial
                // one it skips). The dashboard is a convenience: failing to write is
                // no reason to stop the run.
                let _ = f.write_all(&line);
            }
            // Should the printer be gone, keep draining so the file stays complete.
            let _ = tx.send(event);
        }
        if let Some((path, f)) = file {
            drop(f);
            let _ = fs::remove_file(&path);
            // The directory goes too once no run is live (another run's file keeps it).
            if let Some(dir) = path.parent() {
                let _ = fs::remove_dir(dir);
            }
        }
    });
    (rx, task)
}

/// Removes the live files of runs whose process was killed. Only for a process that
/// holds the store: then no other run of this data dir is in progress.
pub(crate) fn clear_stale(data_dir: &Path) {
    let Ok(entries) = fs::read_dir(data_dir.join(LIVE_DIR)) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(".jsonl"))
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn open(data_dir: &Path, run: &str) -> Option<(PathBuf, File)> {
    // A run id is plain ASCII (no separators), but check rather than write outside
    // the directory.
    flow_store::RunId::parse(run).ok()?;
    let path = live_file(data_dir, run);
    fs::create_dir_all(path.parent()?).ok()?;
    // A resumed run starts its file afresh.
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .ok()?;
    Some((path, file))
}
