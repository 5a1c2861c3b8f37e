//! What a run (or a dry run) sets up before its steps: the workspace as it starts,
//! taken into the object store, and the step cache it uses.

use std::path::Path;
use std::sync::Arc;

use flow_store::{Objects, Store, Tree};

use crate::EngineError;
use crate::step_cache::RunCache;

/// The data dir's object store.
pub(crate) fn objects(store: &Store) -> Result<Objects, EngineError> {
    let dir = store.dir().join("objects");
    Objects::open(&dir).map_err(|source| EngineError::Workspace { path: dir, source })
}

/// Every capability's run-level facts for a run of `plan` in `workspace` (keys
/// loaded, commands' variables...); a problem in any is reported at its place.
pub(crate) fn capabilities(
    plan: &flow_pipeline::Plan,
    exec: &Arc<crate::capabilities::exec::ExecPlan>,
    secrets: &std::sync::Arc<crate::capabilities::secret_values::SecretValues>,
    owner: Option<&flow_provenance::SigningKey>,
    workspace: &Path,
) -> Result<crate::capabilities::RunCapabilities, EngineError> {
    crate::capabilities::RunCapabilities::resolve(&crate::capabilities::RunInputs {
        plan,
        exec,
        secrets,
        owner,
        workspace,
    })
    .map_err(EngineError::Invalid)
}

/// What `workspace` holds, its files taken (copied) into `objects`.
pub(crate) async fn capture_base(objects: &Objects, workspace: &Path) -> Result<Tree, EngineError> {
    let (objects, dir) = (objects.clone(), workspace.to_path_buf());
    tokio::task::spawn_blocking(move || {
        crate::views::capture(
            &objects,
            &dir,
            &crate::views::Written::default(),
            std::time::SystemTime::now(),
            flow_provenance::SnapshotLimits::default(),
            crate::views::Take::Copy,
        )
        .map_err(|e| match e {
            crate::views::CaptureError::Io(e) => e,
            other => std::io::Error::other(other.to_string()),
        })
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r)
    .map(|captured| captured.tree)
    .map_err(|source| EngineError::Workspace {
        path: workspace.to_path_buf(),
        source,
    })
}

/// The step cache for run `run` of `pipeline`, or why the run does without it.
pub(crate) fn run_cache(
    store: &Store,
    no_cache: bool,
    signed: bool,
    pipeline: &str,
    run: &str,
) -> Result<Result<Arc<RunCache>, String>, EngineError> {
    if no_cache {
        return Ok(Err(
            "the run does without the cache (`--no-cache`)".to_owned()
        ));
    }
    if !signed {
        return Ok(Err(
            "the run records no provenance (no signing key), which the cache keeps with each result"
                .to_owned(),
        ));
    }
    let cache = flow_store::StepCache::open(store)?;
    let mut fresh = [0u8; 32];
    if let Err(e) = getrandom::getrandom(&mut fresh) {
        return Ok(Err(format!("no randomness for the cache's secret: {e}")));
    }
    let secret = cache.secret(|| fresh)?;
    Ok(Ok(Arc::new(RunCache {
        cache,
        secret,
        pipeline: pipeline.to_owned(),
        run: run.to_owned(),
    })))
}
