//! [`StoreError`]: everything that can go wrong in the store, worded for the person who
//! has to fix it (each message names the data dir and says what to do).

use std::path::PathBuf;

use crate::run_id::RunId;

/// How many ambiguous matches [`StoreError::Ambiguous`] lists by name.
pub(crate) const AMBIGUOUS_LISTED: usize = 5;

/// An error from the run store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data dir could not be created.
    #[error("cannot create the data dir {}: {source}; check the path and its permissions", .dir.display())]
    CreateDir {
        /// The data dir.
        dir: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },

    /// Another live flow process has the data dir open.
    #[error(
        "the data dir {} is in use by another flow process (pid {pid}); wait for it to \
         finish, or use another data dir",
        .dir.display()
    )]
    InUse {
        /// The data dir.
        dir: PathBuf,
        /// The process holding it.
        pid: u32,
    },

    /// Another process (which left no pid) has the data dir open.
    #[error(
        "the data dir {} is in use by another process; wait for it to finish, or use \
         another data dir",
        .dir.display()
    )]
    Locked {
        /// The data dir.
        dir: PathBuf,
    },

    /// This process already has the data dir open.
    #[error(
        "the data dir {} is already open in this process; clone the open Store instead \
         of opening the dir again",
        .dir.display()
    )]
    AlreadyOpen {
        /// The data dir.
        dir: PathBuf,
    },

    /// The data dir was written by a newer flow.
    #[error(
        "the data dir {} holds store schema version {found}, but this flow reads at most \
         version {supported}; upgrade flow, or use another data dir",
        .dir.display()
    )]
    NewerSchema {
        /// The data dir.
        dir: PathBuf,
        /// The version found in the data dir.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },

    /// A stored record could not be read.
    #[error(
        "corrupt record `{key}` in the `{tree}` tree of the data dir {}: {reason}; move \
         the data dir aside to start afresh",
        .dir.display()
    )]
    Corrupt {
        /// The data dir.
        dir: PathBuf,
        /// The tree holding the record.
        tree: &'static str,
        /// The record's key, readable (`RUN/INDEX/SEQ` for step and log keys).
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// [`Store::resolve`](crate::Store::resolve) on a store without runs.
    #[error("no runs yet in {}", .dir.display())]
    NoRuns {
        /// The data dir.
        dir: PathBuf,
    },

    /// [`Store::resolve`](crate::Store::resolve) found no run with that id or prefix.
    #[error("no run `{query}` in {}", .dir.display())]
    NoSuchRun {
        /// The data dir.
        dir: PathBuf,
        /// What was asked for.
        query: String,
    },

    /// [`Store::resolve`](crate::Store::resolve) found several runs with that prefix.
    #[error(
        "`{query}` matches {count} runs in {}: {}; give more of the id",
        .dir.display(),
        list_matches(.matches, *.count)
    )]
    Ambiguous {
        /// The data dir.
        dir: PathBuf,
        /// What was asked for.
        query: String,
        /// How many runs match.
        count: usize,
        /// The newest few of them, newest first.
        matches: Vec<RunId>,
    },

    /// [`Store::begin_run`](crate::Store::begin_run) with an id already in the store.
    #[error(
        "run {id} already exists in {}; take a fresh id from Store::new_run_id",
        .dir.display()
    )]
    RunExists {
        /// The data dir.
        dir: PathBuf,
        /// The id.
        id: RunId,
    },

    /// A step or the end of a run was recorded for a run that was never begun.
    #[error("run {id} is not in {}; call begin_run first", .dir.display())]
    UnknownRun {
        /// The data dir.
        dir: PathBuf,
        /// The id.
        id: RunId,
    },

    /// [`Store::logs`](crate::Store::logs) for a step the run does not have.
    #[error("run {run} in {} has no step `{step}`", .dir.display())]
    UnknownStep {
        /// The data dir.
        dir: PathBuf,
        /// The run.
        run: RunId,
        /// The step id asked for.
        step: String,
    },

    /// Every id for this second is taken (65,536 runs in one second).
    #[error("no free run id is left for {second} in {}; try again in a second", .dir.display())]
    IdsExhausted {
        /// The data dir.
        dir: PathBuf,
        /// The `YYYYMMDD-HHMMSS` second.
        second: String,
    },

    /// A record could not be encoded as JSON (not expected to happen).
    #[error("cannot encode a {what} for the data dir {}: {source}", .dir.display())]
    Encode {
        /// The data dir.
        dir: PathBuf,
        /// The kind of record.
        what: &'static str,
        /// The encoder's error.
        source: serde_json::Error,
    },

    /// The database failed underneath (a full disk among other causes, said so).
    #[error("{}", storage_message(.dir, .source))]
    Storage {
        /// The data dir.
        dir: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
}

/// A full disk said in words; anything else with what to check.
fn storage_message(dir: &std::path::Path, source: &sled::Error) -> String {
    match source {
        sled::Error::Io(e) if is_no_space(e) => format!(
            "no space left on {} (the data dir): free some space and run again; what \
             was recorded before is kept",
            dir.display()
        ),
        _ => format!(
            "storage error in the data dir {}: {source}; check free disk space and \
             permissions",
            dir.display()
        ),
    }
}

/// Whether `e` says the file system is full (or the user's quota is).
pub fn is_no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || e.raw_os_error() == Some(28)
}

fn list_matches(matches: &[RunId], count: usize) -> String {
    let mut text = matches
        .iter()
        .map(RunId::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if count > matches.len() {
        text.push_str(&format!(" and {} more", count - matches.len()));
    }
    text
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
