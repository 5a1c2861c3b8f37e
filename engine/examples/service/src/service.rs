//! The service's state and what it does with the engine: load a posted pipeline,
//! start it, read its record and provenance.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use flow_engine::verification::{self, PublicKey, VerificationError};
use flow_engine::{
    Engine, EngineError, Event, LoadedPipeline, RunId, RunOptions, RunRecord, SigningKey,
    StepRecord, Store, StoreError,
};
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot};

use crate::policy;
use crate::runs::{EventLog, Runs};

/// The name a posted pipeline is saved under, and shown as in diagnostics.
pub const PIPELINE_FILE: &str = "flow.yaml";

/// Why a request could not be served; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request itself is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// The body is not a pipeline (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The pipeline has problems, rendered with their places in the file (422).
    #[error("{0}")]
    Invalid(String),
    /// No such run (404).
    #[error("{0}")]
    NotFound(String),
    /// The run is not in the state asked for (409).
    #[error("{0}")]
    Conflict(String),
    /// The service forgot the run's events (410).
    #[error("{0}")]
    Gone(String),
    /// The service is shutting down (503).
    #[error("the service is shutting down and starts no new runs")]
    ShuttingDown,
    /// Anything else (500): logged, and told.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        ServiceError::Internal(anyhow::Error::new(error).context("the run store failed"))
    }
}

/// A run's record and its steps, as `GET /runs/<id>` answers.
#[derive(Debug, serde::Serialize)]
pub struct RunView {
    /// The run.
    pub run: RunRecord,
    /// Its steps, in plan order.
    pub steps: Vec<StepRecord>,
}

/// A run's verification, as `GET /runs/<id>/verify` answers.
#[derive(Debug, serde::Serialize)]
pub struct Verification {
    /// Whether every signature and chain verified against the service's key.
    pub verified: bool,
    /// What was checked and what failed, as text.
    pub report: String,
}

/// One engine, one store, one signing key: everything the handlers share.
#[derive(Debug)]
pub struct Service {
    /// The engine (one per process).
    pub engine: Engine,
    /// The run store (one per data dir, shared by every run).
    pub store: Store,
    /// The key every run's provenance is signed with.
    pub signing_key: Arc<SigningKey>,
    /// Its public half, which `/verify` trusts.
    pub public_key: PublicKey,
    /// Whether posted pipelines may reach the host (see [`policy`]).
    pub allow_host_access: bool,
    /// The runs started by this process.
    pub runs: Runs,
}

impl Service {
    /// Saves a posted pipeline in a private directory of its own and loads it; the
    /// directory must live as long as the run (paths in the pipeline are relative to it).
    pub async fn load(
        self: &Arc<Self>,
        text: &[u8],
    ) -> Result<(LoadedPipeline, TempDir), ServiceError> {
        let dir = tempfile::Builder::new()
            .prefix("flow-service-")
            .tempdir()
            .map_err(|e| {
                anyhow::Error::new(e).context("cannot make a directory for the pipeline")
            })?;
        let file = dir.path().join(PIPELINE_FILE);
        tokio::fs::write(&file, text)
            .await
            .map_err(|e| anyhow::Error::new(e).context("cannot save the pipeline"))?;
        // `Engine::load_pipeline`'s future is not `Send` (it holds an iterator with a
        // closure across an await), so it cannot run on a handler's task: it runs on a
        // blocking thread of its own instead.
        let service = self.clone();
        let runtime = tokio::runtime::Handle::current();
        let loaded = tokio::task::spawn_blocking(move || {
            runtime.block_on(service.engine.load_pipeline(&file))
        })
        .await
        .map_err(|e| anyhow::anyhow!("loading the pipeline failed: {e}"))?;
        let pipeline = match loaded {
            Ok(pipeline) => pipeline,
            Err(EngineError::Invalid(diagnostics)) => {
                return Err(ServiceError::Invalid(relative(
                    &diagnostics.render(),
                    dir.path(),
                )));
            }
            Err(other) => {
                return Err(anyhow::Error::new(other)
                    .context("cannot load the pipeline")
                    .into());
            }
        };
        if !self.allow_host_access {
            let problems = policy::host_access(&pipeline.plan);
            if !problems.is_empty() {
                return Err(ServiceError::Invalid(relative(
                    &problems.join("\n"),
                    dir.path(),
                )));
            }
        }
        Ok((pipeline, dir))
    }

    /// Starts a loaded pipeline on a task of its own and answers with the run's id
    /// once the engine has recorded the run (its first event, `run-started`).
    ///
    /// The run's events go to an [`EventLog`] registered under that id before this
    /// returns, so a client told the id can always read them.
    pub async fn start(
        self: &Arc<Self>,
        pipeline: LoadedPipeline,
        dir: TempDir,
        inputs: Vec<(String, String)>,
    ) -> Result<String, ServiceError> {
        let admission = self.runs.admit().ok_or(ServiceError::ShuttingDown)?;
        let (events, mut received) = mpsc::unbounded_channel();
        let options = RunOptions::new(self.store.clone())
            .inputs(inputs)
            .events(events)
            .cancel(admission.cancel)
            .signing_key(self.signing_key.clone());
        let (started, answer) = oneshot::channel::<Result<String, ServiceError>>();
        let service = self.clone();
        let ticket = admission.ticket;
        let shown = dir.path().to_owned();
        self.runs.tasks().spawn(async move {
            let engine_side = service.clone();
            let run = tokio::spawn(async move {
                let result = engine_side.engine.run(&pipeline, options).await;
                // The pipeline's directory outlives the run, no longer.
                drop(dir);
                result
            });
            let Some(first) = received.recv().await else {
                // The engine refused the run before recording it (its inputs, say).
                let error = match run.await {
                    Ok(Err(EngineError::Invalid(diagnostics))) => {
                        ServiceError::Invalid(relative(&diagnostics.render(), &shown))
                    }
                    Ok(Err(other)) => anyhow::Error::new(other)
                        .context("cannot start the run")
                        .into(),
                    Ok(Ok(_)) => anyhow::anyhow!("the run ended without reporting a thing").into(),
                    Err(panic) => anyhow::anyhow!("the run's task failed: {panic}").into(),
                };
                service.runs.finish(ticket, None);
                let _ = started.send(Err(error));
                return;
            };
            let id = run_of(&first).to_owned();
            let log = EventLog::new();
            log.push(&first);
            service.runs.register(&id, log.clone());
            // The client may have gone: the run goes on regardless.
            let _ = started.send(Ok(id.clone()));
            while let Some(event) = received.recv().await {
                log.push(&event);
            }
            match run.await {
                Ok(Ok(summary)) => {
                    tracing::info!(run = %id, status = %summary.run.status, "run finished");
                }
                Ok(Err(error)) => {
                    tracing::error!(run = %id, %error, "run failed");
                    log.push_error(&id, &error.to_string());
                }
                Err(panic) => {
                    tracing::error!(run = %id, %panic, "run's task failed");
                    log.push_error(&id, &format!("the run's task failed: {panic}"));
                }
            }
            log.close();
            service.runs.finish(ticket, Some(&id));
        });
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the run's task ended before it answered"))?
    }

    /// A run id from a URL, and the run's record.
    pub fn run_record(&self, id: &str) -> Result<(RunId, RunRecord), ServiceError> {
        let run = RunId::parse(id).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        match self.store.run(&run)? {
            Some(record) => Ok((run, record)),
            None => Err(ServiceError::NotFound(format!("no run {id}"))),
        }
    }

    /// `GET /runs/<id>`.
    pub fn view(&self, id: &str) -> Result<RunView, ServiceError> {
        let (run, record) = self.run_record(id)?;
        let steps = self.store.steps(&run)?;
        Ok(RunView { run: record, steps })
    }

    /// A finished run's provenance as the standard in-toto files, by name
    /// (`GET /runs/<id>/provenance`).
    pub fn provenance(&self, id: &str) -> Result<BTreeMap<String, String>, ServiceError> {
        let (run, record) = self.finished_run(id)?;
        let dir = tempfile::Builder::new()
            .prefix("flow-service-export-")
            .tempdir()
            .map_err(|e| anyhow::Error::new(e).context("cannot make an export directory"))?;
        verification::export(&self.store, &run, dir.path())
            .map_err(|e| provenance_error(&record, e))?;
        read_files(dir.path())
            .map_err(|e| ServiceError::Internal(e.context("cannot read the export")))
    }

    /// A finished run's provenance verified against the service's key
    /// (`GET /runs/<id>/verify`).
    pub fn verify(&self, id: &str) -> Result<Verification, ServiceError> {
        let (run, record) = self.finished_run(id)?;
        let bundle =
            verification::bundle(&self.store, &run).map_err(|e| provenance_error(&record, e))?;
        let report = verification::verify(&bundle, Some(&self.public_key));
        Ok(Verification {
            verified: report.is_ok(),
            report: report.to_string(),
        })
    }

    fn finished_run(&self, id: &str) -> Result<(RunId, RunRecord), ServiceError> {
        let (run, record) = self.run_record(id)?;
        if !record.status.is_terminal() {
            return Err(ServiceError::Conflict(format!(
                "run {id} is {}: its provenance is signed when it ends",
                record.status
            )));
        }
        Ok((run, record))
    }
}

/// The run an event is about (every event the engine sends today names its run;
/// one added later is said to be about no run here).
fn run_of(event: &Event) -> &str {
    match event {
        Event::RunStarted { run, .. }
        | Event::StepStarted { run, .. }
        | Event::StepFinished { run, .. }
        | Event::StepRetrying { run, .. }
        | Event::RunFinished { run, .. } => run,
        _ => "",
    }
}

/// A run without provenance is a conflict, not a failure of the service.
fn provenance_error(record: &RunRecord, error: VerificationError) -> ServiceError {
    match error {
        VerificationError::NoProvenance(_) => ServiceError::Conflict(format!(
            "run {} ({}) has no provenance: {error}",
            record.id, record.status
        )),
        other => {
            ServiceError::Internal(anyhow::Error::new(other).context(format!("run {}", record.id)))
        }
    }
}

/// Every file of an export directory (flat, text), by name.
fn read_files(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|name| anyhow::anyhow!("the export holds a file named {name:?}, not UTF-8"))?;
        let path = entry.path();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        files.insert(name, text);
    }
    Ok(files)
}

/// Diagnostics name the file the engine loaded, in a private directory of the
/// service's: shown to the client as plain `flow.yaml`.
fn relative(text: &str, dir: &Path) -> String {
    text.replace(&format!("{}/", dir.display()), "")
}
