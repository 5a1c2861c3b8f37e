//! `flow run --resume RUN`: what a run that failed, was cancelled or was killed
//! keeps. Steps that succeeded are taken from the store — their files checked against
//! their digests, their signed envelopes as they were — when every step they need is
//! kept too; the others run again in the same run, whose provenance then verifies as
//! one run.

use std::path::PathBuf;

use flow_pipeline::{Diagnostic, Diagnostics, Plan};
use flow_store::{
    Change, Changes, Entry, Objects, RunId, RunRecord, RunStatus, StepAttestation, StepRecord,
    StepStatus, Store, Tree,
};

use crate::EngineError;

/// A step kept from before the run was resumed.
pub(crate) struct Restored {
    pub record: StepRecord,
    pub changes: Option<Changes>,
    pub attestation: Option<StepAttestation>,
}

/// A run to resume, as recorded.
pub(crate) struct Resume {
    pub run: RunRecord,
    pub workspace: PathBuf,
    pub base: Tree,
    /// By plan index: the steps kept.
    pub restored: Vec<Option<Restored>>,
    /// What puts the workspace back as the run first saw it, undoing whatever the
    /// earlier process wrote there (every path its steps changed, and nothing else).
    pub undo: Changes,
}

fn refuse(message: String) -> EngineError {
    EngineError::Invalid(Diagnostics::from(Diagnostic::error_without_location(
        message,
    )))
}

/// Reads run `id` back for resuming with `plan` (from a file whose sha256 is
/// `pipeline_sha256`), signed by the key `keyid` (none: no provenance).
pub(crate) fn prepare(
    store: &Store,
    objects: &Objects,
    id: &RunId,
    plan: &Plan,
    pipeline_sha256: &str,
    keyid: Option<&str>,
) -> Result<Resume, EngineError> {
    let Some(run) = store.run(id)? else {
        return Err(refuse(format!("no run {id} in {}", store.dir().display())));
    };
    match run.status {
        RunStatus::Succeeded => {
            return Err(refuse(format!(
                "run {id} succeeded: there is nothing to resume"
            )));
        }
        RunStatus::Running => {
            return Err(refuse(format!(
                "run {id} is still running (its process {} holds the data dir)",
                run.pid
            )));
        }
        _ => {}
    }
    if run.pipeline_sha256.as_deref() != Some(pipeline_sha256) {
        return Err(refuse(format!(
            "run {id} was started from another version of {} (or by an older flow): a run \
             resumes with the pipeline it started with; start a new run instead",
            run.pipeline_file
        )));
    }
    let (Some(workspace), Some(base)) = (run.workspace.clone(), store.run_base(id)?) else {
        return Err(refuse(format!(
            "run {id} was recorded by an older flow, which kept too little to resume it"
        )));
    };
    if let Some((path, _)) = base.files().find(|(_, sha)| !objects.contains(sha)) {
        return Err(refuse(format!(
            "run {id} cannot be resumed: `{path}`, which its workspace held, is no longer in the object store"
        )));
    }
    let records = store.steps(id)?;
    let mut attestations: Vec<Option<StepAttestation>> = vec![None; plan.steps.len()];
    for (index, attestation) in store.step_attestations(id)? {
        if let Some(slot) = attestations.get_mut(index as usize) {
            *slot = Some(attestation);
        }
    }
    let mut restored: Vec<Option<Restored>> = Vec::with_capacity(plan.steps.len());
    for (index, step) in plan.steps.iter().enumerate() {
        let record = records.iter().find(|r| r.index as usize == index);
        let kept = match record {
            Some(record)
                if record.step_id == step.id
                    && record.status == StepStatus::Succeeded
                    && step.needs.iter().all(|&n| restored[n].is_some()) =>
            {
                let attestation = attestations[index].take();
                // Its envelopes must be signed by this run's key to verify as one run.
                let signed = match (keyid, &attestation) {
                    (None, _) => true,
                    (Some(keyid), Some(a)) => a.keyid == keyid,
                    (Some(_), None) => false,
                };
                let changes = store.step_changes(id, index as u32)?;
                (signed && files_intact(objects, changes.as_ref())).then(|| Restored {
                    record: record.clone(),
                    changes,
                    attestation,
                })
            }
            _ => None,
        };
        restored.push(kept);
    }
    let mut undo = Changes::new();
    for (_, changes) in store.run_changes(id)? {
        for path in changes.keys() {
            let back = match base.get(path) {
                Some(entry) => Change::Put {
                    entry: entry.clone(),
                },
                None => Change::Removed,
            };
            undo.insert(path.clone(), back);
        }
    }
    Ok(Resume {
        run,
        workspace: PathBuf::from(workspace),
        base,
        restored,
        undo,
    })
}

/// Whether every file `changes` wrote is in the object store with its digest.
fn files_intact(objects: &Objects, changes: Option<&Changes>) -> bool {
    changes
        .into_iter()
        .flatten()
        .all(|(_, change)| match change {
            Change::Put {
                entry: Entry::File { sha256, .. },
            } => objects.verify(sha256).unwrap_or(false),
            _ => true,
        })
}
