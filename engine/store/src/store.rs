//! [`Store`]: the handle through which the engine records runs and the CLI reads them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::error::{AMBIGUOUS_LISTED, Result, StoreError};
use crate::gate::write_gate;
use crate::keys;
use crate::reader;
use crate::records::{
    LogLine, RunAttestation, RunRecord, RunStatus, StepAttestation, StepCompletion, StepLogLine,
    StepRecord, StepStatus,
};
use crate::run_id::RunId;
use crate::timestamp::now_millis;
use crate::tree::{Changes, Tree};

/// The most JSON [`Store::finish_step`] puts in one `logs` value (a chunk of lines).
pub const LOG_CHUNK_BYTES: usize = 32 * 1024;

/// The store schema version this build writes, and the newest it reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The folder inside the data dir that holds the sled database.
const DB_DIR: &str = "store";
/// The file (inside [`DB_DIR`]) naming the process that has the database open.
const PID_FILE: &str = "flow.pid";

/// The reason given to a step that was running when its process died.
pub const STEP_INTERRUPTED: &str = "flow process ended while the step was running";
/// The reason given to a step that had not started when its process died.
pub const STEP_NEVER_STARTED: &str = "flow process ended before the step started";
/// The failure given to a run whose process died.
pub const RUN_INTERRUPTED: &str = "flow process ended while the run was in progress";

const RUNS: &str = "runs";
const STEPS: &str = "steps";
const LOGS: &str = "logs";
const META: &str = "meta";
const ATTESTATIONS: &str = "attestations";
const RUN_ATTESTATIONS: &str = "run_attestations";
const CHANGES: &str = "changes";
const BASES: &str = "bases";

/// An open run store: a cheap, clonable handle (clones share one database).
///
/// Writes do not wait for the disk: sled flushes in the background (every 500 ms), and
/// [`Store::flush`] waits until everything written so far is durable. Call it when a run
/// ends. A crash loses at most the last half second of records, never half of a
/// [`Store::finish_step`].
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    db: sled::Db,
    runs: sled::Tree,
    steps: sled::Tree,
    logs: sled::Tree,
    meta: sled::Tree,
    attestations: sled::Tree,
    run_attestations: sled::Tree,
    changes: sled::Tree,
    bases: sled::Tree,
    recovered: Vec<RunId>,
    /// sled failed writing (a full disk): see [`Store::storage`].
    broken: std::sync::atomic::AtomicBool,
    /// The private copy a reader's database is in (last: removed after sled is done).
    _copy: Option<reader::DbCopy>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .field("recovered", &self.inner.recovered)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store in the data dir `dir`.
    ///
    /// Only one process can have a data dir open; a second gets
    /// [`StoreError::InUse`] naming the first one's pid. Runs left
    /// [`RunStatus::Running`] by a process that died are marked
    /// [`RunStatus::Interrupted`] (their unfinished steps [`StepStatus::Cancelled`]);
    /// [`Store::recovered`] lists them.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Store::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`], keeping at most `cache_bytes` of the database's pages in memory
    /// (default 64 MiB): what an embedding service bounds the store's memory with.
    pub fn open_with_cache(dir: impl AsRef<Path>, cache_bytes: u64) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
            dir: dir.clone(),
            source,
        })?;
        let db_dir = dir.join(DB_DIR);
        let db = open_db(&dir, &db_dir, cache_bytes)?;
        // The pid file only improves the "in use" message; failing to write it must not
        // stop the run.
        let _ = fs::write(db_dir.join(PID_FILE), std::process::id().to_string());

        let mut store = Store::with_db(dir, db, None)?;
        store.check_schema()?;
        let recovered = store.recover()?;
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            inner.recovered = recovered;
        }
        Ok(store)
    }

    /// Opens the store of the data dir `dir` for reading, as it is now: for a reader
    /// that must never keep a writer waiting (a dashboard).
    ///
    /// Writes nothing in the data dir: no pid file, no recovery of runs left running
    /// (they read as [`RunStatus::Running`]). sled's lock is held only while its files
    /// are copied into a private directory in the temp dir, which the returned store
    /// reads (and removes when its last clone is dropped); later runs are not seen.
    /// While a writer has the data dir open this fails at once with
    /// [`StoreError::InUse`] (or [`StoreError::Locked`] if no pid names it); a data dir
    /// with no store yet is [`StoreError::NoRuns`]. Writers' [`Store::open`] waits a
    /// little for a reader's hold to end.
    pub fn open_reader(dir: impl AsRef<Path>) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        let db_dir = dir.join(DB_DIR);
        if !db_dir.join("db").is_file() {
            return Err(StoreError::NoRuns { dir });
        }
        let copy = match reader::copy_locked(&dir, &db_dir, PID_FILE) {
            Ok(copy) => copy,
            Err(reader::Held::By(Some(pid))) if pid == std::process::id() => {
                return Err(StoreError::AlreadyOpen { dir });
            }
            Err(reader::Held::By(Some(pid))) => return Err(StoreError::InUse { dir, pid }),
            Err(reader::Held::By(None)) => return Err(StoreError::Locked { dir }),
            Err(reader::Held::Failed(e)) => return Err(e),
        };
        let db = sled::Config::new()
            .cache_capacity(DEFAULT_CACHE_BYTES)
            .path(copy.path())
            .open()
            .map_err(|source| StoreError::Storage {
                dir: dir.clone(),
                source,
            })?;
        let store = Store::with_db(dir, db, Some(copy))?;
        store.check_schema()?;
        Ok(store)
    }

    fn with_db(dir: PathBuf, db: sled::Db, copy: Option<reader::DbCopy>) -> Result<Store> {
        let storage = |source| {
            abandon_on_io_error(&db, &source);
            StoreError::Storage {
                dir: dir.clone(),
                source,
            }
        };
        let runs = db.open_tree(RUNS).map_err(storage)?;
        let steps = db.open_tree(STEPS).map_err(storage)?;
        let logs = db.open_tree(LOGS).map_err(storage)?;
        let meta = db.open_tree(META).map_err(storage)?;
        let attestations = db.open_tree(ATTESTATIONS).map_err(storage)?;
        let run_attestations = db.open_tree(RUN_ATTESTATIONS).map_err(storage)?;
        let changes = db.open_tree(CHANGES).map_err(storage)?;
        let bases = db.open_tree(BASES).map_err(storage)?;
        Ok(Store {
            inner: Arc::new(Inner {
                dir,
                db,
                runs,
                steps,
                logs,
                meta,
                attestations,
                run_attestations,
                changes,
                bases,
                recovered: Vec::new(),
                broken: std::sync::atomic::AtomicBool::new(false),
                _copy: copy,
            }),
        })
    }

    /// The data dir this store was opened in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The runs that [`Store::open`] found left running by a dead process and marked
    /// [`RunStatus::Interrupted`], oldest first.
    pub fn recovered(&self) -> &[RunId] {
        &self.inner.recovered
    }

    /// A new run id, unique in this store: made from the current time, its random
    /// suffix bumped past any id already stored.
    pub fn new_run_id(&self) -> Result<RunId> {
        let first = RunId::generate(now_millis());
        let mut id = first.clone();
        for _ in 0..=u16::MAX {
            if !self
                .inner
                .runs
                .contains_key(keys::run(&id))
                .map_err(|e| self.storage(e))?
            {
                return Ok(id);
            }
            match id.bumped() {
                Some(next) => id = next,
                None => break,
            }
        }
        Err(StoreError::IdsExhausted {
            dir: self.inner.dir.clone(),
            second: first.time_part().unwrap_or(first.as_str()).to_owned(),
        })
    }

    /// Records a new run. Fails with [`StoreError::RunExists`] if its id is taken.
    pub fn begin_run(&self, run: &RunRecord) -> Result<()> {
        let key = keys::run(&run.id);
        let value = self.encode("run record", run)?;
        let active = keys::active(&run.id);
        let running = run.status == RunStatus::Running;
        let i = &self.inner;
        let _gate = write_gate();
        (&i.runs, &i.meta)
            .transaction(|(runs, meta)| {
                if runs.get(key)?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::RunExists {
                        dir: i.dir.clone(),
                        id: run.id.clone(),
                    }));
                }
                runs.insert(key, value.as_slice())?;
                if running {
                    meta.insert(active.as_slice(), &[][..])?;
                }
                Ok(())
            })
            .map_err(|e| self.transaction_error(e))
    }

    /// Records a run's final state (or any later state of it). The run must have been
    /// begun.
    pub fn finish_run(&self, run: &RunRecord) -> Result<()> {
        self.finish_run_attested(run, None)
    }

    /// [`Store::finish_run`], with the run's signed provenance (layout and step chain)
    /// written in the same transaction.
    pub fn finish_run_attested(
        &self,
        run: &RunRecord,
        attestation: Option<&RunAttestation>,
    ) -> Result<()> {
        let key = keys::run(&run.id);
        let value = self.encode("run record", run)?;
        let attestation_value = match attestation {
            Some(a) => Some(self.encode("run attestation", a)?),
            None => None,
        };
        let active = keys::active(&run.id);
        let running = run.status == RunStatus::Running;
        let i = &self.inner;
        let _gate = write_gate();
        (&i.runs, &i.meta, &i.run_attestations)
            .transaction(|(runs, meta, run_attestations)| {
                if runs.get(key)?.is_none() {
                    return Err(ConflictableTransactionError::Abort(
                        self.unknown_run(&run.id),
                    ));
                }
                runs.insert(key, value.as_slice())?;
                if let Some(value) = &attestation_value {
                    run_attestations.insert(key, value.as_slice())?;
                }
                if running {
                    meta.insert(active.as_slice(), &[][..])?;
                } else {
                    meta.remove(active.as_slice())?;
                }
                Ok(())
            })
            .map_err(|e| self.transaction_error(e))
    }

    /// Records a step's state while it is not finished (pending, running). Keyed by
    /// the step's index: a later write for the same index replaces this one.
    pub fn put_step(&self, run: &RunId, step: &StepRecord) -> Result<()> {
        let value = self.encode("step record", step)?;
        let i = &self.inner;
        if !i
            .runs
            .contains_key(keys::run(run))
            .map_err(|e| self.storage(e))?
        {
            return Err(self.unknown_run(run));
        }
        i.steps
            .insert(keys::step(run, step.index), value)
            .map_err(|e| self.storage(e))?;
        Ok(())
    }

    /// Records a finished step and its whole log in one transaction: a reader sees both
    /// or neither. The lines replace any lines stored before for this step; give them in
    /// `seq` order (they are sorted by `seq` if not).
    ///
    /// Lines are stored in chunks of up to [`LOG_CHUNK_BYTES`] of JSON, one key per
    /// chunk: a sled write costs a few microseconds per key, so a key per line would
    /// take most of a step's time budget.
    pub fn finish_step(&self, run: &RunId, step: &StepRecord, lines: &[LogLine]) -> Result<()> {
        self.finish_step_attested(run, step, lines, None)
    }

    /// [`Store::finish_step`], with the step's signed provenance written in the same
    /// transaction: a step is never complete without it, nor it without the step.
    pub fn finish_step_attested(
        &self,
        run: &RunId,
        step: &StepRecord,
        lines: &[LogLine],
        attestation: Option<&StepAttestation>,
    ) -> Result<()> {
        self.complete_step(
            run,
            step,
            StepCompletion {
                lines,
                attestation,
                changes: None,
            },
        )
    }

    /// [`Store::finish_step_attested`], with what the step changed in its view of the
    /// workspace (its files are in the data dir's object store) in the same transaction.
    pub fn complete_step(
        &self,
        run: &RunId,
        step: &StepRecord,
        completion: StepCompletion<'_>,
    ) -> Result<()> {
        let StepCompletion {
            lines,
            attestation,
            changes,
        } = completion;
        let step_key = keys::step(run, step.index);
        let attestation_value = match attestation {
            Some(a) => Some(self.encode("step attestation", a)?),
            None => None,
        };
        // Nothing is written for a step that changed nothing (most steps of a long
        // pipeline): [`Store::step_changes`] reads that back as none.
        let changes_value = match changes {
            Some(c) if !c.is_empty() => Some(self.encode("step changes", c)?),
            _ => None,
        };
        let step_value = self.encode("step record", step)?;
        let chunks = self.log_chunks(run, step.index, lines)?;
        // Chunks from an earlier write for this step that the new ones do not overwrite.
        // Only this process writes the store, so reading them outside the transaction
        // is safe as long as the engine does not finish one step twice at once.
        let mut stale = Vec::new();
        for item in self.inner.logs.scan_prefix(&step_key).keys() {
            let key = item.map_err(|e| self.storage(e))?;
            if !chunks.iter().any(|(k, _)| k.as_slice() == key.as_ref()) {
                stale.push(key);
            }
        }
        let run_key = keys::run(run);
        let i = &self.inner;
        let _gate = write_gate();
        (&i.runs, &i.steps, &i.logs, &i.attestations, &i.changes)
            .transaction(|(runs, steps, logs, attestations, changes)| {
                if runs.get(run_key)?.is_none() {
                    return Err(ConflictableTransactionError::Abort(self.unknown_run(run)));
                }
                steps.insert(step_key.as_slice(), step_value.as_slice())?;
                if let Some(value) = &attestation_value {
                    attestations.insert(step_key.as_slice(), value.as_slice())?;
                }
                match &changes_value {
                    Some(value) => {
                        changes.insert(step_key.as_slice(), value.as_slice())?;
                    }
                    // An earlier attempt's (before `--resume`) must not stand for this one.
                    None => {
                        changes.remove(step_key.as_slice())?;
                    }
                }
                for key in &stale {
                    logs.remove(key)?;
                }
                for (key, value) in &chunks {
                    logs.insert(key.as_slice(), value.as_slice())?;
                }
                Ok(())
            })
            .map_err(|e| self.transaction_error(e))
    }

    /// Encodes a step's lines as `logs` entries: JSON arrays of at most
    /// [`LOG_CHUNK_BYTES`] (or one line, if longer), keyed by their first line's `seq`.
    fn log_chunks(
        &self,
        run: &RunId,
        index: u32,
        lines: &[LogLine],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut sorted;
        let lines = if lines.is_sorted_by_key(|l| l.seq) {
            lines
        } else {
            sorted = lines.to_vec();
            sorted.sort_by_key(|l| l.seq);
            &sorted
        };
        let mut chunks = Vec::new();
        let mut chunk: Vec<u8> = Vec::new();
        let mut first_seq = 0;
        for line in lines {
            if chunk.len() >= LOG_CHUNK_BYTES {
                chunk.push(b']');
                chunks.push((keys::log(run, index, first_seq), std::mem::take(&mut chunk)));
            }
            if chunk.is_empty() {
                first_seq = line.seq;
                chunk.push(b'[');
            } else {
                chunk.push(b',');
            }
            serde_json::to_writer(&mut chunk, line).map_err(|source| StoreError::Encode {
                dir: self.inner.dir.clone(),
                what: "log line",
                source,
            })?;
        }
        if !chunk.is_empty() {
            chunk.push(b']');
            chunks.push((keys::log(run, index, first_seq), chunk));
        }
        Ok(chunks)
    }

    /// Waits until everything written so far is on disk.
    pub fn flush(&self) -> Result<()> {
        let _gate = write_gate();
        self.inner.db.flush().map(drop).map_err(|e| self.storage(e))
    }

    /// [`Store::flush`] without blocking the calling thread: on a thread of its own,
    /// not on sled's (see [`write_gate`](crate::gate::write_gate)); any executor can wait for it.
    pub async fn flush_async(&self) -> Result<()> {
        let db = self.inner.db.clone();
        let flushed = crate::oneshot::run_on_thread("flow-store-flush", move || {
            let _gate = write_gate();
            db.flush()
        })
        .await;
        match flushed {
            Some(result) => result.map(drop).map_err(|e| self.storage(e)),
            None => Err(self.storage(sled::Error::ReportableBug(
                "the flush's thread ended without an answer".into(),
            ))),
        }
    }

    /// Runs, newest first; at most `limit` of them if given.
    pub fn runs(&self, limit: Option<usize>) -> Result<Vec<RunRecord>> {
        let mut out: Vec<RunRecord> = Vec::new();
        if limit == Some(0) {
            return Ok(out);
        }
        for item in self.inner.runs.iter().rev() {
            let (key, value) = item.map_err(|e| self.storage(e))?;
            let run: RunRecord = self.decode(RUNS, &key, &value)?;
            if let (Some(limit), Some(last)) = (limit, out.last())
                && out.len() >= limit
            {
                // Ids sort by time only to the second; keep reading while in the same
                // second as the last one kept, then order by the exact start time.
                let same_second =
                    last.id.time_part().is_some() && last.id.time_part() == run.id.time_part();
                if !same_second {
                    break;
                }
            }
            out.push(run);
        }
        out.sort_by(|a, b| {
            b.started_at
                .cmp(&a.started_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        if let Some(limit) = limit {
            out.truncate(limit);
        }
        Ok(out)
    }

    /// The run with this id, if stored.
    pub fn run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        let key = keys::run(id);
        match self.inner.runs.get(key).map_err(|e| self.storage(e))? {
            Some(value) => self.decode(RUNS, key, &value).map(Some),
            None => Ok(None),
        }
    }

    /// Finds the run a person means: `last` (the newest run), a full id, or a prefix
    /// of exactly one id.
    pub fn resolve(&self, query: &str) -> Result<RunId> {
        let dir = || self.inner.dir.clone();
        if self.inner.runs.is_empty() {
            return Err(StoreError::NoRuns { dir: dir() });
        }
        if query == "last" {
            return self
                .runs(Some(1))?
                .into_iter()
                .next()
                .map(|run| run.id)
                .ok_or_else(|| StoreError::NoRuns { dir: dir() });
        }
        let no_such_run = || StoreError::NoSuchRun {
            dir: dir(),
            query: query.to_owned(),
        };
        if query.is_empty() {
            return Err(no_such_run());
        }
        if self
            .inner
            .runs
            .contains_key(query)
            .map_err(|e| self.storage(e))?
        {
            return RunId::parse(query).map_err(|_| no_such_run());
        }
        let mut count = 0;
        let mut matches = Vec::new();
        for item in self.inner.runs.scan_prefix(query).keys().rev() {
            let key = item.map_err(|e| self.storage(e))?;
            count += 1;
            if matches.len() < AMBIGUOUS_LISTED {
                matches.push(self.decode_run_id(RUNS, &key)?);
            }
        }
        match count {
            0 => Err(no_such_run()),
            1 => matches.pop().ok_or_else(no_such_run),
            _ => Err(StoreError::Ambiguous {
                dir: dir(),
                query: query.to_owned(),
                count,
                matches,
            }),
        }
    }

    /// A run's steps in plan order (those recorded so far).
    pub fn steps(&self, run: &RunId) -> Result<Vec<StepRecord>> {
        let mut out = Vec::new();
        for item in self.inner.steps.scan_prefix(keys::run_prefix(run)) {
            let (key, value) = item.map_err(|e| self.storage(e))?;
            out.push(self.decode(STEPS, &key, &value)?);
        }
        Ok(out)
    }

    /// A run's log lines, step by step in plan order and in printing order within a
    /// step; only those of the step with id `step` if given.
    pub fn logs(&self, run: &RunId, step: Option<&str>) -> Result<Vec<StepLogLine>> {
        let steps = self.steps(run)?;
        let (prefix, steps) = match step {
            Some(wanted) => {
                let Some(found) = steps.into_iter().find(|s| s.step_id == wanted) else {
                    return Err(StoreError::UnknownStep {
                        dir: self.inner.dir.clone(),
                        run: run.clone(),
                        step: wanted.to_owned(),
                    });
                };
                (keys::step(run, found.index), vec![found])
            }
            None => (keys::run_prefix(run), steps),
        };
        let mut out = Vec::new();
        for item in self.inner.logs.scan_prefix(&prefix) {
            let (key, value) = item.map_err(|e| self.storage(e))?;
            let lines: Vec<LogLine> = self.decode(LOGS, &key, &value)?;
            let index = keys::split_log(&key)
                .map(|(index, _)| index)
                .ok_or_else(|| self.corrupt(LOGS, &key, "the key is too short".into()))?;
            // Lines are written with their step, so the step is found; the index stands
            // in for its id should the step record ever be missing.
            let step_id = steps
                .iter()
                .find(|s| s.index == index)
                .map(|s| s.step_id.clone())
                .unwrap_or_else(|| format!("#{index}"));
            out.extend(lines.into_iter().map(|line| StepLogLine {
                step_index: index,
                step_id: step_id.clone(),
                line,
            }));
        }
        Ok(out)
    }

    fn check_schema(&self) -> Result<()> {
        let meta = &self.inner.meta;
        match meta
            .get(keys::SCHEMA_VERSION)
            .map_err(|e| self.storage(e))?
        {
            None => {
                meta.insert(keys::SCHEMA_VERSION, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(|e| self.storage(e))?;
                Ok(())
            }
            Some(value) => {
                let bytes: [u8; 4] = value.as_ref().try_into().map_err(|_| {
                    self.corrupt(
                        META,
                        keys::SCHEMA_VERSION,
                        format!("expected a 4-byte version, found {} bytes", value.len()),
                    )
                })?;
                let found = u32::from_be_bytes(bytes);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema {
                        dir: self.inner.dir.clone(),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                // Version 1 is the first; migrations from older versions go here.
                Ok(())
            }
        }
    }

    /// Marks the runs a dead process left running as interrupted. Only one process can
    /// open the database, so every run still marked running at open time is orphaned.
    fn recover(&self) -> Result<Vec<RunId>> {
        let i = &self.inner;
        let mut recovered = Vec::new();
        let markers: Vec<sled::IVec> = i
            .meta
            .scan_prefix(keys::ACTIVE_PREFIX)
            .keys()
            .collect::<Result<_, _>>()
            .map_err(|e| self.storage(e))?;
        for marker in markers {
            let id_bytes = marker.get(keys::ACTIVE_PREFIX.len()..).unwrap_or_default();
            let id = self.decode_run_id(META, id_bytes)?;
            let run = match self.run(&id)? {
                Some(run) if run.status == RunStatus::Running => run,
                // A stale marker (the run ended, or was never written): drop it.
                _ => {
                    i.meta.remove(&marker).map_err(|e| self.storage(e))?;
                    continue;
                }
            };
            let run_value = self.encode(
                "run record",
                &RunRecord {
                    status: RunStatus::Interrupted,
                    failure: run.failure.clone().or_else(|| Some(RUN_INTERRUPTED.into())),
                    ..run
                },
            )?;
            let mut step_writes = Vec::new();
            for step in self.steps(&id)? {
                let reason = match step.status {
                    StepStatus::Running => STEP_INTERRUPTED,
                    StepStatus::Pending => STEP_NEVER_STARTED,
                    _ => continue,
                };
                let step = StepRecord {
                    status: StepStatus::Cancelled,
                    reason: Some(reason.into()),
                    ..step
                };
                step_writes.push((
                    keys::step(&id, step.index),
                    self.encode("step record", &step)?,
                ));
            }
            let _gate = write_gate();
            (&i.runs, &i.steps, &i.meta)
                .transaction(|(runs, steps, meta)| {
                    runs.insert(keys::run(&id), run_value.as_slice())?;
                    for (key, value) in &step_writes {
                        steps.insert(key.as_slice(), value.as_slice())?;
                    }
                    meta.remove(&marker)?;
                    Ok::<_, ConflictableTransactionError<StoreError>>(())
                })
                .map_err(|e| self.transaction_error(e))?;
            recovered.push(id);
        }
        if !recovered.is_empty() {
            self.flush()?;
        }
        Ok(recovered)
    }

    /// The signed provenance of a run's steps, in index order: `(index, attestation)`.
    pub fn step_attestations(&self, run: &RunId) -> Result<Vec<(u32, StepAttestation)>> {
        let mut out = Vec::new();
        for item in self.inner.attestations.scan_prefix(keys::run_prefix(run)) {
            let (key, value) = item.map_err(|e| self.storage(e))?;
            let index = keys::step_index(&key).ok_or_else(|| {
                self.corrupt(ATTESTATIONS, &key, "the key holds no step index".into())
            })?;
            out.push((index, self.decode(ATTESTATIONS, &key, &value)?));
        }
        Ok(out)
    }

    /// Replaces one step's signed provenance (a resumed run keeps a finished step's
    /// envelopes and gives it its place in the new chain).
    pub fn put_step_attestation(
        &self,
        run: &RunId,
        index: u32,
        attestation: &StepAttestation,
    ) -> Result<()> {
        let value = self.encode("step attestation", attestation)?;
        self.inner
            .attestations
            .insert(keys::step(run, index), value)
            .map_err(|e| self.storage(e))?;
        Ok(())
    }

    /// Deletes one step's signed provenance, leaving the step's record. Only for tests
    /// that tamper with a store to prove verification notices (the engine never removes
    /// an attestation); returns whether there was one.
    #[doc(hidden)]
    pub fn remove_step_attestation(&self, run: &RunId, index: u32) -> Result<bool> {
        let removed = self
            .inner
            .attestations
            .remove(keys::step(run, index))
            .map_err(|e| self.storage(e))?;
        Ok(removed.is_some())
    }

    /// What a step changed in its view of the workspace, when it ran, its files were
    /// kept and it changed something (a step that succeeded always had its files
    /// kept: `None` then means it changed nothing).
    pub fn step_changes(&self, run: &RunId, index: u32) -> Result<Option<Changes>> {
        let key = keys::step(run, index);
        match self.inner.changes.get(&key).map_err(|e| self.storage(e))? {
            Some(value) => Ok(Some(self.decode(CHANGES, &key, &value)?)),
            None => Ok(None),
        }
    }

    /// What every step of a run changed that changed something: `(index, changes)`.
    pub fn run_changes(&self, run: &RunId) -> Result<Vec<(u32, Changes)>> {
        let mut out = Vec::new();
        for item in self.inner.changes.scan_prefix(keys::run_prefix(run)) {
            let (key, value) = item.map_err(|e| self.storage(e))?;
            let index = keys::step_index(&key)
                .ok_or_else(|| self.corrupt(CHANGES, &key, "the key holds no step index".into()))?;
            out.push((index, self.decode(CHANGES, &key, &value)?));
        }
        Ok(out)
    }

    /// Records what the run's workspace held when it started (its files are in the
    /// object store): where every step's view starts, and what `--resume` starts from.
    pub fn put_run_base(&self, run: &RunId, base: &Tree) -> Result<()> {
        let value = self.encode("run base", base)?;
        self.inner
            .bases
            .insert(keys::run(run), value)
            .map_err(|e| self.storage(e))?;
        Ok(())
    }

    /// What the run's workspace held when it started, if recorded.
    pub fn run_base(&self, run: &RunId) -> Result<Option<Tree>> {
        let key = keys::run(run);
        match self.inner.bases.get(key).map_err(|e| self.storage(e))? {
            Some(value) => Ok(Some(self.decode(BASES, key, &value)?)),
            None => Ok(None),
        }
    }

    /// The signed provenance of a run as a whole, once it finished.
    pub fn run_attestation(&self, run: &RunId) -> Result<Option<RunAttestation>> {
        let key = keys::run(run);
        match self
            .inner
            .run_attestations
            .get(key)
            .map_err(|e| self.storage(e))?
        {
            Some(value) => Ok(Some(self.decode(RUN_ATTESTATIONS, key, &value)?)),
            None => Ok(None),
        }
    }

    /// The sled database (for the trees other modules of this crate keep).
    pub(crate) fn db(&self) -> &sled::Db {
        &self.inner.db
    }

    pub(crate) fn encode<T: Serialize>(&self, what: &'static str, value: &T) -> Result<Vec<u8>> {
        serde_json::to_vec(value).map_err(|source| StoreError::Encode {
            dir: self.inner.dir.clone(),
            what,
            source,
        })
    }

    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        tree: &'static str,
        key: &[u8],
        value: &[u8],
    ) -> Result<T> {
        serde_json::from_slice(value).map_err(|e| self.corrupt(tree, key, e.to_string()))
    }

    fn decode_run_id(&self, tree: &'static str, bytes: &[u8]) -> Result<RunId> {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| RunId::parse(text).ok())
            .ok_or_else(|| self.corrupt(tree, bytes, "the key is not a run id".into()))
    }

    pub(crate) fn corrupt(&self, tree: &'static str, key: &[u8], reason: String) -> StoreError {
        StoreError::Corrupt {
            dir: self.inner.dir.clone(),
            tree,
            key: keys::describe(key),
            reason,
        }
    }

    fn unknown_run(&self, id: &RunId) -> StoreError {
        StoreError::UnknownRun {
            dir: self.inner.dir.clone(),
            id: id.clone(),
        }
    }

    /// A sled error as ours. One that failed writing leaves sled unable to flush:
    /// its handle is then never dropped (sled 0.34 flushes on drop and would wait
    /// forever), so that the process can still report the error and end.
    pub(crate) fn storage(&self, source: sled::Error) -> StoreError {
        if matches!(source, sled::Error::Io(_))
            && !self
                .inner
                .broken
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            abandon_on_io_error(&self.inner.db, &source);
        }
        StoreError::Storage {
            dir: self.inner.dir.clone(),
            source,
        }
    }

    fn transaction_error(&self, error: TransactionError<StoreError>) -> StoreError {
        match error {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => self.storage(e),
        }
    }
}

/// Keeps the database from ever being dropped once `error` says a write failed
/// (see [`Store::storage`]); what was flushed before stays on disk.
fn abandon_on_io_error(db: &sled::Db, error: &sled::Error) {
    if matches!(error, sled::Error::Io(_)) {
        std::mem::forget(db.clone());
    }
}

/// Rewords sled's lock failure as "in use", naming the holder when its pid file says.
fn open_error(dir: &Path, db_dir: &Path, source: sled::Error) -> StoreError {
    let locked = matches!(&source, sled::Error::Io(e)
        if e.kind() == io::ErrorKind::Other && e.to_string().contains("could not acquire lock"));
    if !locked {
        return StoreError::Storage {
            dir: dir.to_path_buf(),
            source,
        };
    }
    let dir = dir.to_path_buf();
    let holder = fs::read_to_string(db_dir.join(PID_FILE))
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok());
    match holder {
        Some(pid) if pid == std::process::id() => StoreError::AlreadyOpen { dir },
        Some(pid) => StoreError::InUse { dir, pid },
        None => StoreError::Locked { dir },
    }
}

/// The most the database keeps of its pages in memory by default (sled's own is 1 GiB): a
/// service that embeds the engine keeps a store open for months of runs, and its
/// memory must not grow with them.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// How long [`open_db`] waits for a hold that should end soon.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the sled database. Two holds end soon, so it waits for them (up to
/// [`LOCK_GRACE`]) before reporting the data dir as in use: a handle this process just
/// dropped (sled's background flusher can keep it, and its file lock, a little
/// longer), and a reader's ([`Store::open_reader`] holds the lock while it copies the
/// files; it writes no pid file, so the pid file then names no live process, or none).
/// A live process named by the pid file is a writer: that fails at once.
fn open_db(dir: &Path, db_dir: &Path, cache_bytes: u64) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_GRACE;
    let mut cleared = false;
    loop {
        match sled::Config::new()
            .cache_capacity(cache_bytes)
            .path(db_dir)
            .open()
        {
            Ok(db) => return Ok(db),
            // A snapshot cut short (the disk filled while sled wrote it) is read as
            // the newest and fails the open; it is only ever a partial copy of what
            // the log holds, so it goes, once.
            Err(sled::Error::Corruption { .. })
                if !cleared && crate::recover::clear_partial_snapshots(db_dir) =>
            {
                cleared = true;
            }
            Err(source) => {
                let error = open_error(dir, db_dir, source);
                let brief = match &error {
                    StoreError::AlreadyOpen { .. } | StoreError::Locked { .. } => true,
                    StoreError::InUse { pid, .. } => !reader::process_alive(*pid),
                    _ => false,
                };
                if !brief || std::time::Instant::now() >= deadline {
                    return Err(error);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Store;

    #[test]
    fn store_handles_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<Store>();
    }
}
