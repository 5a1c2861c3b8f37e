//! The engine and its builder: loading and checking pipelines, and running them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use flow_pipeline::{Diagnostics, Plan};

use sha2::{Digest, Sha256};

use crate::error::EngineError;
use crate::executor::{self, RunSummary, StepDefaults};
use crate::options::RunOptions;
use crate::plugins::{self, PluginRegistry};
use crate::runtime::{self, LoadedPlugin, RuntimeError};
use crate::{capabilities, catalog, reach};
use flow_store::{RunRecord, Tree};

/// The engine's name and version, as recorded in runs.
pub const ENGINE_VERSION: &str = concat!("flow ", env!("CARGO_PKG_VERSION"));

/// What `flow lock` and `flow update` did.
#[derive(Debug)]
pub struct LockReport {
    /// The lock written.
    pub lock: catalog::lock::Lock,
    /// Where.
    pub path: PathBuf,
    /// The lock before, if there was one.
    pub previous: Option<catalog::lock::Lock>,
    /// The diff of the resolved pipeline (`flow show --resolved`), before and after;
    /// empty when nothing changed or there was no lock before.
    pub diff: String,
}

/// A pipeline loaded and checked, ready to run (any number of times).
#[derive(Debug, Clone)]
pub struct LoadedPipeline {
    /// The checked plan.
    pub plan: Arc<Plan>,
    /// The file it came from, as given.
    pub file: PathBuf,
    /// The sha256 of the file's bytes.
    pub sha256: String,
    /// The granted host commands, resolved, and whether they run confined.
    pub exec: Arc<capabilities::exec::ExecPlan>,
    plugins: Arc<plugins::ResolvedPlugins>,
}

/// The engine: one per process.
#[derive(Debug)]
pub struct Engine {
    pub(crate) runtime: Arc<runtime::Runtime>,
    pub(crate) registry: PluginRegistry,
    pub(crate) defaults: StepDefaults,
    pub(crate) jobs: usize,
    /// One permit per step that may run at once, shared by every run of this engine:
    /// a service running many pipelines at once queues their steps here rather than
    /// past the runtime's instance pool.
    pub(crate) step_slots: Arc<tokio::sync::Semaphore>,
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) template_configs: Vec<flow_pipeline::Config>,
}

impl Engine {
    /// A builder with the defaults.
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            cache_dir: None,
            cache_key: None,
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            pooling: true,
            defaults: StepDefaults::default(),
            registry: PluginRegistry::with_builtins(),
            template_configs: Vec::new(),
        }
    }

    /// The WebAssembly runtime.
    pub(crate) fn runtime(&self) -> &runtime::Runtime {
        &self.runtime
    }

    /// Compiles (or loads from the cache), links and describes a plugin's wasm:
    /// what `uses:` does for each plugin a pipeline names. `origin` names it in
    /// errors. Loading the same bytes again returns the same plugin.
    pub async fn load_plugin(
        &self,
        origin: &str,
        wasm: &[u8],
    ) -> Result<Arc<LoadedPlugin>, RuntimeError> {
        self.runtime.load(origin, wasm).await
    }

    /// The built-in plugins.
    pub fn registry(&self) -> &PluginRegistry {
        &self.registry
    }

    /// Read, parse and check a pipeline file, loading the plugins it uses.
    /// Every problem is reported at once, with its position in the file.
    ///
    /// A file that `extends` a template is resolved through its catalogs (and the
    /// configs given to the builder); with a `flow.lock` beside it, templates and
    /// plugins must be the locked ones.
    pub async fn load_pipeline(&self, path: &Path) -> Result<LoadedPipeline, EngineError> {
        let resolution = self.resolve_pipeline(path, &catalog::LockMode::Use)?;
        let plugins = self.load_plugins(&resolution.pipeline).await;
        if let Some(lock) = &resolution.lock {
            let problems = catalog::check_plugins(lock, resolution.pipeline.steps(), |r| {
                plugins.get(r).map(|p| p.digest.hex())
            });
            if !problems.is_empty() {
                return Err(EngineError::Invalid(problems));
            }
        }
        let plan =
            flow_pipeline::check(&resolution.pipeline, &plugins).map_err(EngineError::Invalid)?;
        self.finish_load(path, &resolution.pipeline, plan, plugins)
    }

    /// Parses and checks a pipeline given as text, loading the plugins it uses: what
    /// [`Engine::load_pipeline`] does for a file. `name` names it in messages (and in
    /// the run's records and provenance); relative paths in it (`uses:`, grants,
    /// catalogs) are resolved against `base_dir`. Text has no `flow.lock`.
    pub async fn load_pipeline_text(
        &self,
        text: &str,
        name: &str,
        base_dir: &Path,
    ) -> Result<LoadedPipeline, EngineError> {
        let resolution = catalog::resolve_text(
            text,
            name,
            base_dir,
            &self.template_configs,
            self.cache_dir.as_deref(),
        )
        .map_err(EngineError::Invalid)?;
        let plugins = self.load_plugins(&resolution.pipeline).await;
        let plan =
            flow_pipeline::check(&resolution.pipeline, &plugins).map_err(EngineError::Invalid)?;
        self.finish_load(Path::new(name), &resolution.pipeline, plan, plugins)
    }

    /// Reads a pipeline file and resolves the templates it extends, without loading
    /// plugins or checking (`flow show --resolved`).
    pub fn resolve_pipeline(
        &self,
        path: &Path,
        mode: &catalog::LockMode,
    ) -> Result<catalog::Resolution, EngineError> {
        catalog::resolve(
            path,
            &self.template_configs,
            self.cache_dir.as_deref(),
            mode,
        )
        .map_err(EngineError::Invalid)
    }

    /// Resolves, checks and writes `flow.lock` beside the pipeline file: `mode` is
    /// [`catalog::LockMode::Ignore`] for `flow lock`, `Update` for `flow update`.
    pub async fn lock_pipeline(
        &self,
        path: &Path,
        mode: &catalog::LockMode,
    ) -> Result<LockReport, EngineError> {
        let resolution = self.resolve_pipeline(path, mode)?;
        let (plan, plugins) = self.check_resolved(&resolution.pipeline).await?;
        let digests = self.plan_digests(&plan, &plugins);
        let entries: Vec<(String, String, String)> = plan
            .steps
            .iter()
            .zip(&digests)
            .map(|(s, d)| {
                (
                    catalog::plugin_name(s),
                    s.plugin_description.version.clone(),
                    d.clone(),
                )
            })
            .collect();
        let lock = catalog::lock::Lock {
            version: 1,
            templates: resolution
                .templates
                .iter()
                .map(|t| catalog::lock::LockedTemplate {
                    source: catalog::lock::portable_source(
                        resolution.lock_path.parent().unwrap_or(Path::new(".")),
                        &t.source,
                    ),
                    ..t.clone()
                })
                .collect(),
            plugins: catalog::locked_plugins(&entries),
        };
        let diff = match &resolution.lock {
            Some(_) if *mode != catalog::LockMode::Ignore => {
                match self.resolve_pipeline(path, &catalog::LockMode::UseCached) {
                    Ok(before) => catalog::diff(
                        &flow_pipeline::render_resolved(&before.pipeline),
                        &flow_pipeline::render_resolved(&resolution.pipeline),
                    ),
                    Err(_) => String::new(),
                }
            }
            _ => String::new(),
        };
        lock.write(&resolution.lock_path).map_err(|e| {
            EngineError::Invalid(Diagnostics::from(
                flow_pipeline::Diagnostic::error_without_location(e),
            ))
        })?;
        Ok(LockReport {
            lock,
            path: resolution.lock_path,
            previous: resolution.lock,
            diff,
        })
    }

    async fn load_plugins(&self, pipeline: &flow_pipeline::Pipeline) -> plugins::ResolvedPlugins {
        // Owned before the first await, so that loading is `Send` (a service runs it
        // on any task).
        let refs: Vec<flow_pipeline::PluginRef> = pipeline
            .steps()
            .iter()
            .filter_map(|s| s.uses.as_ref().map(|(r, _)| r.clone()))
            .collect();
        plugins::ResolvedPlugins::load(&self.runtime, &self.registry, &refs).await
    }

    async fn check_resolved(
        &self,
        pipeline: &flow_pipeline::Pipeline,
    ) -> Result<(Plan, plugins::ResolvedPlugins), EngineError> {
        let plugins = self.load_plugins(pipeline).await;
        let plan = flow_pipeline::check(pipeline, &plugins).map_err(EngineError::Invalid)?;
        Ok((plan, plugins))
    }

    fn plan_digests(&self, plan: &Plan, plugins: &plugins::ResolvedPlugins) -> Vec<String> {
        plan.steps
            .iter()
            .map(|s| {
                plugins
                    .get(&s.plugin)
                    .map(|p| p.digest.hex())
                    .unwrap_or_default()
            })
            .collect()
    }

    fn finish_load(
        &self,
        path: &Path,
        pipeline: &flow_pipeline::Pipeline,
        plan: Plan,
        plugins: plugins::ResolvedPlugins,
    ) -> Result<LoadedPipeline, EngineError> {
        let sha256 = hex::encode(Sha256::digest(pipeline.source().text.as_bytes()));
        let exec = capabilities::exec::ExecPlan::resolve(&plan).map_err(EngineError::Invalid)?;
        Ok(LoadedPipeline {
            plan: Arc::new(plan),
            file: path.to_path_buf(),
            sha256,
            exec: Arc::new(exec),
            plugins: Arc::new(plugins),
        })
    }

    /// The host paths no step of `pipeline` may reach when it runs with the data dir
    /// `data_dir` and `signing_key`: the key's file, the data dir, the engine's cache,
    /// and the files behind the keys and secrets the pipeline declares.
    fn protected_paths(
        &self,
        pipeline: &LoadedPipeline,
        data_dir: &Path,
        signing_key_file: Option<&Path>,
    ) -> Vec<reach::Protected> {
        let mut protected = vec![reach::Protected::new(
            data_dir,
            reach::ProtectedKind::DataDir,
        )];
        if let Some(cache) = &self.cache_dir {
            protected.push(reach::Protected::new(cache, reach::ProtectedKind::Cache));
        }
        if let Some(path) = signing_key_file {
            protected.push(reach::Protected::new(
                path,
                reach::ProtectedKind::SigningKey,
            ));
        }
        protected.extend(reach::declared_files(&pipeline.plan));
        protected
    }

    /// Refuses a pipeline whose steps could reach the signing key, the data dir, the
    /// compiled-plugin cache or a declared key or secret file (see [`reach`]); `flow
    /// check` asks this, and [`Engine::run`] always does, with the run's workspace.
    pub fn check_reach(
        &self,
        pipeline: &LoadedPipeline,
        data_dir: &Path,
        signing_key_file: Option<&Path>,
    ) -> Result<(), EngineError> {
        let protected = self.protected_paths(pipeline, data_dir, signing_key_file);
        reach::check(&pipeline.plan, &pipeline.exec, None, &protected).map_err(EngineError::Invalid)
    }

    /// Run a loaded pipeline to the end (or until cancelled) and record it.
    pub async fn run(
        &self,
        pipeline: &LoadedPipeline,
        options: RunOptions,
    ) -> Result<RunSummary, EngineError> {
        let store = options.store.clone();
        let objects = crate::run_setup::objects(&store)?;
        // A resumed run keeps its id, inputs, workspace and the steps that finished.
        let resume = match &options.resume {
            Some(id) => {
                if !options.inputs.is_empty() || options.workspace.is_some() {
                    return Err(EngineError::Invalid(flow_pipeline::Diagnostics::from(
                        flow_pipeline::Diagnostic::error_without_location(format!(
                            "run {id} resumes with the inputs and workspace it started with: give neither"
                        )),
                    )));
                }
                let keyid = options.signing_key.as_ref().map(|k| k.keyid().to_string());
                Some(crate::resume::prepare(
                    &store,
                    &objects,
                    id,
                    &pipeline.plan,
                    &pipeline.sha256,
                    keyid.as_deref(),
                )?)
            }
            None => None,
        };
        let inputs = match &resume {
            Some(resume) => resume.run.inputs.clone(),
            None => pipeline
                .plan
                .bind_inputs(&options.inputs)
                .map_err(EngineError::Invalid)?,
        };
        let secrets = Arc::new(
            capabilities::secrets::load(&pipeline.plan, &options.secrets)
                .map_err(EngineError::Invalid)?,
        );
        // The runtime's instance pool is sized for the engine's jobs: a run may not ask
        // for more steps at once than it can hold.
        let jobs = options.jobs.unwrap_or(self.jobs);
        if jobs > self.jobs {
            return Err(EngineError::Invalid(flow_pipeline::Diagnostics::from(
                flow_pipeline::Diagnostic::error_without_location(format!(
                    "this run asks for {jobs} steps at once, but the engine was built for at most {} (EngineBuilder::jobs)",
                    self.jobs
                )),
            )));
        }
        // Nothing a step can reach may expose the key, the store or the cache; checked
        // before the run is recorded, with the workspace it will have (the default is
        // a new directory in the data dir's `workspaces/`).
        let key_file = options
            .signing_key
            .as_deref()
            .and_then(|key| match key.source() {
                flow_provenance::keys::KeySource::File(path) => Some(path),
                _ => None,
            });
        let protected = self.protected_paths(pipeline, store.dir(), key_file.as_deref());
        let planned_workspace = resume
            .as_ref()
            .map(|r| r.workspace.clone())
            .or_else(|| options.workspace.clone())
            .unwrap_or_else(|| store.dir().join("workspaces").join("new"));
        reach::check(
            &pipeline.plan,
            &pipeline.exec,
            Some(&planned_workspace),
            &protected,
        )
        .map_err(EngineError::Invalid)?;
        let id = match &resume {
            Some(resume) => resume.run.id.clone(),
            None => store.new_run_id()?,
        };
        let workspace = resume
            .as_ref()
            .map(|r| r.workspace.clone())
            .or(options.workspace)
            .unwrap_or_else(|| store.dir().join("workspaces").join(id.as_str()));
        let workspace = std::fs::create_dir_all(&workspace)
            .and_then(|()| workspace.canonicalize())
            .map_err(|source| EngineError::Workspace {
                path: workspace.clone(),
                source,
            })?;
        // Every capability resolves the run's host facts (keys loaded, commands'
        // variables...); a problem in any stops the run before it is recorded.
        let caps = crate::run_setup::capabilities(
            &pipeline.plan,
            &pipeline.exec,
            &secrets,
            options.signing_key.as_deref(),
            &workspace,
        )?;
        // Steps see the workspace through views of their own, made from the object
        // store: what it holds now is where every view starts.
        crate::views::remove_dead_views(&store, &store.dir().join("views"));
        let views = store.dir().join("views").join(id.as_str());
        if resume.is_some() {
            // What the killed process left of its steps' views.
            let _ = crate::views::remove(&views);
        }
        let views = std::fs::create_dir_all(&views)
            .and_then(|()| views.canonicalize())
            .map_err(|source| EngineError::Workspace {
                path: views.clone(),
                source,
            })?;
        let (base, restored, resumed) = match resume {
            Some(resume) => {
                // The workspace as the run first saw it: what the earlier process wrote
                // there (its steps' changes, published when it ended) is undone.
                crate::views::publish(&objects, &workspace, &resume.undo)
                    .and_then(|()| {
                        crate::views::remove_leftovers(&workspace, &resume.undo, resume.run.pid)
                    })
                    .map_err(|source| EngineError::Workspace {
                        path: workspace.clone(),
                        source,
                    })?;
                (resume.base, resume.restored, Some(resume.run))
            }
            None => (Tree::default(), Vec::new(), None),
        };
        let base = if resumed.is_some() {
            base
        } else {
            crate::run_setup::capture_base(&objects, &workspace).await?
        };
        // What the workspace held is where a resumed run starts again.
        if resumed.is_none() {
            store.put_run_base(&id, &base)?;
        }
        let cache = crate::run_setup::run_cache(
            &store,
            options.no_cache,
            options.signing_key.is_some(),
            &pipeline.plan.name,
            id.as_str(),
        )?;
        let steps = pipeline.plan.steps.iter().map(|s| s.id.clone()).collect();
        let resuming = resumed.is_some();
        let run = match resumed {
            // The same run, running again in this process.
            Some(run) => {
                let mut resumed_at = run.resumed_at;
                resumed_at.push(flow_store::now_millis());
                RunRecord {
                    status: flow_store::RunStatus::Running,
                    finished_at: None,
                    failure: None,
                    pid: std::process::id(),
                    engine_version: ENGINE_VERSION.into(),
                    resumed_at,
                    ..run
                }
            }
            None => RunRecord {
                pipeline_sha256: Some(pipeline.sha256.clone()),
                inputs: inputs.clone(),
                workspace: Some(workspace.display().to_string()),
                needs: pipeline
                    .plan
                    .steps
                    .iter()
                    .map(|s| s.needs.iter().map(|&n| n as u32).collect())
                    .collect(),
                ..RunRecord::start(
                    id,
                    pipeline.plan.name.clone(),
                    pipeline.file.display().to_string(),
                    steps,
                    ENGINE_VERSION,
                )
            },
        };
        let cx = executor::RunContext {
            runtime: self.runtime.clone(),
            store,
            plugins: pipeline.plugins.clone(),
            caps: Arc::new(caps),
            redactor: secrets.redactor(),
            inputs,
            workspace,
            objects,
            views,
            base: Arc::new(base),
            spare_views: Default::default(),
            jobs,
            step_slots: self.step_slots.clone(),
            cancel: options.cancel,
            events: options.events,
            delivery: options.delivery,
            defaults: self.defaults,
            workspace_quota: options.workspace_quota,
            signing_key: options.signing_key,
            pipeline_file: pipeline.file.display().to_string(),
            pipeline_sha256: pipeline.sha256.clone(),
            cache,
        };
        if cx.signing_key.is_none() {
            tracing::warn!(run = %run.id, "no signing key given: this run records no provenance");
        }
        executor::execute(&pipeline.plan, cx, run, restored, resuming).await
    }

    /// What the step cache would do for each step of a run of `pipeline` with
    /// `options`, without running anything (`flow run --dry-run --explain`): taken from
    /// the cache, run (and why), or not known before the steps it needs run.
    pub async fn predict(
        &self,
        pipeline: &LoadedPipeline,
        options: RunOptions,
    ) -> Result<Vec<(String, crate::step_cache::predict::Prediction)>, EngineError> {
        let store = options.store.clone();
        let objects = crate::run_setup::objects(&store)?;
        let inputs = pipeline
            .plan
            .bind_inputs(&options.inputs)
            .map_err(EngineError::Invalid)?;
        let secrets = Arc::new(
            capabilities::secrets::load(&pipeline.plan, &options.secrets)
                .map_err(EngineError::Invalid)?,
        );
        // A new run's workspace starts empty unless one is given.
        let (workspace, base) = match options.workspace.as_ref().map(|w| w.canonicalize()) {
            Some(Ok(dir)) => {
                let base = crate::run_setup::capture_base(&objects, &dir).await?;
                (dir, base)
            }
            _ => (store.dir().join("workspaces").join("new"), Tree::default()),
        };
        let caps = crate::run_setup::capabilities(
            &pipeline.plan,
            &pipeline.exec,
            &secrets,
            options.signing_key.as_deref(),
            &workspace,
        )?;
        let cache = crate::run_setup::run_cache(
            &store,
            options.no_cache,
            options.signing_key.is_some(),
            &pipeline.plan.name,
            "",
        )?;
        Ok(crate::step_cache::predict::Predictor {
            plan: &pipeline.plan,
            plugins: &pipeline.plugins,
            caps: &caps,
            cache,
            objects: &objects,
            base,
            inputs,
            workspace: &workspace,
        }
        .predict())
    }

    /// Load and describe every built-in plugin.
    pub async fn builtin_plugins(
        &self,
    ) -> Vec<(String, Result<Arc<runtime::LoadedPlugin>, RuntimeError>)> {
        let mut out = Vec::new();
        let names: Vec<String> = self.registry.names().map(str::to_string).collect();
        for name in names {
            let reference = flow_pipeline::plugin::PluginRef::Builtin {
                name: name.clone(),
                pin: None,
            };
            let loaded = match self.registry.bytes(&reference) {
                Ok(bytes) => self.runtime.load(&name, &bytes).await,
                Err(reason) => Err(RuntimeError::InvalidPlugin {
                    origin: name.clone(),
                    reason,
                }),
            };
            out.push((name, loaded));
        }
        out
    }
}

/// Pipeline inputs given on a command line (`name=value`), for [`RunOptions::inputs`].
pub fn parse_input_arg(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not `name=value`")),
    }
}

/// Builds an [`Engine`]; every setting has a documented default.
#[derive(Debug)]
pub struct EngineBuilder {
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) cache_key: Option<runtime::CacheKey>,
    pub(crate) jobs: usize,
    pub(crate) pooling: bool,
    pub(crate) defaults: StepDefaults,
    pub(crate) registry: PluginRegistry,
    pub(crate) template_configs: Vec<flow_pipeline::Config>,
}

impl EngineBuilder {
    /// Add a config whose catalogs and bindings templates are resolved with, after the
    /// pipeline file's own: the user's first, then the organisation's (see
    /// `docs/templates.md`). The engine reads no config by itself.
    pub fn template_config(mut self, config: flow_pipeline::Config) -> Self {
        self.template_configs.push(config);
        self
    }

    /// Cache compiled plugins in `dir`, and a copy of every template a resolution
    /// uses in `dir/templates/<sha256>/` (for locked runs offline and for `flow
    /// verify --policy`). Default: no cache; every process compiles each plugin once.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Authenticate cached compiled plugins with `key` (HMAC-SHA256), so that a cache
    /// file swapped or edited on disk is compiled again instead of run. Default: a
    /// random key per process (the cache is then only trusted by the process that
    /// wrote it); load a lasting one with [`runtime::CacheKey::load_or_create`], kept
    /// where no step can reach.
    pub fn cache_key(mut self, key: runtime::CacheKey) -> Self {
        self.cache_key = Some(key);
        self
    }

    /// Run at most `jobs` steps at once (default: the number of CPUs), over all the
    /// runs of the engine together: the steps of concurrent runs wait their turn, in
    /// the order they became ready. A run may ask for fewer ([`RunOptions::jobs`]).
    ///
    /// [`RunOptions::jobs`]: crate::RunOptions::jobs
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Use wasmtime's pooling allocator (default: on; falls back to on-demand
    /// allocation where it cannot reserve its memory).
    pub fn pooling(mut self, pooling: bool) -> Self {
        self.pooling = pooling;
        self
    }

    /// Limits for steps that do not set their own.
    pub fn step_defaults(mut self, defaults: StepDefaults) -> Self {
        self.defaults = defaults;
        self
    }

    /// Add a built-in plugin (by name) next to the ones flow ships.
    pub fn register_plugin(mut self, name: impl Into<String>, wasm: impl Into<Arc<[u8]>>) -> Self {
        self.registry.register(name, wasm);
        self
    }

    /// Start the engine.
    pub fn build(self) -> Result<Engine, EngineError> {
        let runtime = runtime::Runtime::new(&runtime::RuntimeConfig {
            cache_dir: self.cache_dir.clone(),
            cache_key: self.cache_key.clone(),
            max_concurrent_steps: u32::try_from(self.jobs).unwrap_or(u32::MAX),
            pooling: self.pooling,
        })?;
        Ok(Engine {
            runtime: Arc::new(runtime),
            registry: self.registry,
            defaults: self.defaults,
            jobs: self.jobs,
            step_slots: Arc::new(tokio::sync::Semaphore::new(self.jobs)),
            cache_dir: self.cache_dir,
            template_configs: self.template_configs,
        })
    }
}
