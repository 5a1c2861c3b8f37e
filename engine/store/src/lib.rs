//! flow's run store: runs, steps and their logs in an embedded [sled] database.
//!
//! The engine opens one [`Store`] per data dir, records a run as it goes
//! ([`Store::begin_run`], [`Store::put_step`], [`Store::finish_step`],
//! [`Store::finish_run`], [`Store::flush`]) and the CLI reads it back ([`Store::runs`],
//! [`Store::resolve`], [`Store::steps`], [`Store::logs`]).
//!
//! ```
//! use flow_store::{LogLine, LogStream, RunRecord, RunStatus, StepRecord, StepStatus, Store};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! let store = Store::open(tmp.path())?;
//! let mut run = RunRecord::start(store.new_run_id()?, "ci", "flow.yaml", vec!["build".into()], "0.1.0");
//! store.begin_run(&run)?;
//! let mut step = StepRecord::pending("build", 0, "builtin:build@1");
//! step.status = StepStatus::Succeeded;
//! let line = LogLine { seq: 0, at: 0, stream: LogStream::Stdout, text: "ok".into() };
//! store.finish_step(&run.id, &step, &[line])?;
//! run.status = RunStatus::Succeeded;
//! store.finish_run(&run)?;
//! store.flush()?;
//! assert_eq!(store.resolve("last")?, run.id);
//! # Ok(()) }
//! ```
//!
//! # On disk
//!
//! The data dir `DIR` holds `DIR/store/`: sled's files and `flow.pid`, the id of the
//! process that has it open (only used to word the "in use" error). Only one process
//! can open a data dir at a time (sled locks it).
//!
//! Beside it, `DIR/objects/` is the content-addressed store of the files steps
//! produce ([`Objects`]): each content once, under its sha256, never modified. A
//! step's products are recorded as [`Changes`] to the [`Tree`] it was shown.
//!
//! Values are JSON. Keys are laid out so that listing runs, and a run's steps or logs,
//! are prefix scans in the right order. `RUN` is the run id's bytes (ASCII, never a 0
//! byte), numbers are big-endian so they sort numerically:
//!
//! | tree    | key                                          | value                      |
//! |---------|----------------------------------------------|----------------------------|
//! | `runs`  | `RUN`                                        | [`RunRecord`]              |
//! | `steps` | `RUN 0x00 index:u32`                         | [`StepRecord`]             |
//! | `logs`  | `RUN 0x00 index:u32 first_seq:u64`           | `[`[`LogLine`]`, ...]`     |
//! | `meta`  | `schema_version`                             | [`SCHEMA_VERSION`] as u32  |
//! | `meta`  | `active/RUN`                                 | empty: the run is running  |
//! | `attestations` | `RUN 0x00 index:u32`                  | [`StepAttestation`]        |
//! | `run_attestations` | `RUN`                             | [`RunAttestation`]         |
//! | `changes` | `RUN 0x00 index:u32`                       | [`Changes`]                |
//!
//! A step's log lines are stored in chunks (JSON arrays of up to [`LOG_CHUNK_BYTES`]),
//! keyed by the `seq` of the chunk's first line: sled spends a few microseconds per key
//! written, and a step's whole record must be written in well under its time budget.
//!
//! Generated run ids start with the UTC time, so `runs` is in creation order to the
//! second. The `active/` markers let [`Store::open`] find runs orphaned by a crash
//! without reading every run.
//!
//! Trees added later follow the same pattern: per-step data (attestations) keyed
//! `RUN 0x00 index:u32` and written in the [`Store::finish_step`] transaction, other
//! indexes (the cache) in trees of their own. A layout change that old builds cannot
//! read bumps [`SCHEMA_VERSION`]; a build refuses to open a data dir with a newer one.
#![deny(missing_docs)]

pub mod cache;
mod error;
mod gate;
mod keys;
pub mod objects;
mod oneshot;
mod reader;
pub use reader::process_alive;
mod records;
mod recover;
mod run_id;
mod store;
mod timestamp;
pub mod tree;

pub use cache::{CacheEntry, LastKey, StepCache};
pub use error::{Result, StoreError, is_no_space};
pub use objects::{Objects, Stored};
pub use records::{
    AttemptRecord, CacheUse, LogLevel, LogLine, LogStream, RunAttestation, RunRecord, RunStatus,
    StepAttestation, StepCompletion, StepLogLine, StepRecord, StepStatus,
};
pub use run_id::{InvalidRunId, MAX_RUN_ID_LEN, RunId};
pub use store::{
    DEFAULT_CACHE_BYTES, LOG_CHUNK_BYTES, RUN_INTERRUPTED, SCHEMA_VERSION, STEP_INTERRUPTED,
    STEP_NEVER_STARTED, Store,
};
pub use timestamp::{format_rfc3339, now_millis};
pub use tree::{Change, Changes, Entry, Tree};
