//! What the dashboard knows of the data dir: its runs and their steps, read in one go
//! through [`Store::open_reader`] (which holds the data dir only while it copies it)
//! and kept in memory, read again when the store's files change or every
//! [`REREAD`]; and the runs in progress, from their live files, while a run holds the
//! store.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use flow_store::{RunRecord, StepRecord, Store, StoreError, now_millis};

use super::live::{self, LiveRun};

/// How often the data is read again even when the store's files look unchanged.
pub(crate) const REREAD: Duration = Duration::from_secs(10);

/// A run and its steps.
#[derive(Debug, Clone)]
pub(crate) struct RunEntry {
    pub run: RunRecord,
    pub steps: Vec<StepRecord>,
}

/// The runs as read at one time.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Newest first.
    pub runs: Vec<RunEntry>,
    /// When they were read (unix ms); none before the first read.
    pub read_at: Option<u64>,
    /// The reader's copy of the store they were read from (for run pages).
    pub store: Option<Store>,
}

impl Snapshot {
    /// The run with this id.
    pub(crate) fn run(&self, id: &str) -> Option<&RunEntry> {
        self.runs.iter().find(|e| e.run.id.as_str() == id)
    }
}

/// Whether the last attempt to read the store worked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Access {
    /// Read.
    Read,
    /// The data dir has no store yet.
    NoStore,
    /// A live process holds the store (a run in progress): its pid.
    HeldBy(u32),
    /// Something holds the store that named no live process (another reader).
    Held,
    /// Reading failed.
    Failed(String),
}

/// What a page is made from: consistent, and cheap to share.
#[derive(Debug)]
pub(crate) struct View {
    pub snapshot: Arc<Snapshot>,
    pub access: Access,
    /// Runs in progress (or just ended and not yet readable), newest first.
    pub live: Vec<LiveRun>,
}

impl View {
    /// The run in progress with this id, unless the store has it as ended.
    pub(crate) fn live_run(&self, id: &str) -> Option<&LiveRun> {
        let recorded = self
            .snapshot
            .run(id)
            .is_some_and(|e| e.run.status.is_terminal());
        self.live.iter().find(|r| r.id == id).filter(|_| !recorded)
    }
}

/// The store's files as `stat` sees them: when they differ, the store changed.
type Signature = Vec<(String, u64, Option<SystemTime>)>;

struct State {
    view: Arc<View>,
    signature: Option<Signature>,
    read: Option<Instant>,
}

/// The data dir's runs, read again as needed.
pub(crate) struct Data {
    dir: PathBuf,
    state: Mutex<State>,
}

impl Data {
    pub(crate) fn new(dir: PathBuf) -> Data {
        Data {
            dir,
            state: Mutex::new(State {
                view: Arc::new(View {
                    snapshot: Arc::new(Snapshot::default()),
                    access: Access::Held,
                    live: Vec::new(),
                }),
                signature: None,
                read: None,
            }),
        }
    }

    /// The latest view.
    pub(crate) fn view(&self) -> Arc<View> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .view
            .clone()
    }

    /// Reads the store again if its files changed or [`REREAD`] passed (and the live
    /// files always); blocks while it reads.
    pub(crate) fn refresh(&self) {
        let signature = signature(&self.dir);
        let (previous, due) = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let due = state.signature.as_ref() != Some(&signature)
                || state.read.is_none_or(|at| at.elapsed() >= REREAD);
            (state.view.clone(), due)
        };
        let mut snapshot = previous.snapshot.clone();
        let mut access = previous.access.clone();
        let mut read = false;
        if due {
            match read_store(&self.dir) {
                Ok(s) => {
                    snapshot = Arc::new(s);
                    access = Access::Read;
                    read = true;
                }
                Err(StoreError::NoRuns { .. }) => {
                    snapshot = Arc::new(Snapshot {
                        read_at: Some(now_millis()),
                        ..Snapshot::default()
                    });
                    access = Access::NoStore;
                    read = true;
                }
                Err(StoreError::InUse { pid, .. }) if flow_store::process_alive(pid) => {
                    access = Access::HeldBy(pid);
                }
                Err(
                    StoreError::InUse { .. }
                    | StoreError::Locked { .. }
                    | StoreError::AlreadyOpen { .. },
                ) => access = Access::Held,
                Err(e) => access = Access::Failed(e.to_string()),
            }
        }
        // Live files count only while a run holds the store: one a killed run left is
        // stale (the next `flow run` removes it).
        let live = match &access {
            Access::HeldBy(_) | Access::Held => {
                let mut live = live::read_all(&self.dir);
                // A run that ended has removed its file, but stays unreadable until
                // its process lets go of the store: keep what was seen of it.
                for before in &previous.live {
                    if !live.iter().any(|r| r.id == before.id) {
                        live.push(before.clone());
                    }
                }
                live.sort_by_key(|r| std::cmp::Reverse(r.started_at));
                live
            }
            _ => Vec::new(),
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if read {
            state.signature = Some(signature);
            state.read = Some(Instant::now());
        }
        state.view = Arc::new(View {
            snapshot,
            access,
            live,
        });
    }
}

/// Every run and its steps, through a reader's copy of the store.
fn read_store(dir: &Path) -> Result<Snapshot, StoreError> {
    let store = Store::open_reader(dir)?;
    let mut runs = Vec::new();
    for run in store.runs(None)? {
        let steps = store.steps(&run.id)?;
        runs.push(RunEntry { run, steps });
    }
    Ok(Snapshot {
        runs,
        read_at: Some(now_millis()),
        store: Some(store),
    })
}

fn signature(dir: &Path) -> Signature {
    let mut out: Signature = std::fs::read_dir(dir.join("store"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let meta = e.metadata().ok()?;
                    Some((
                        e.file_name().to_string_lossy().into_owned(),
                        meta.len(),
                        meta.modified().ok(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
