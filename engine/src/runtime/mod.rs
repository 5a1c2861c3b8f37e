//! The sandboxed runtime: one wasmtime [`Engine`](wasmtime::Engine) per
//! process, compiled components cached on disk, one pre-linked
//! `InstancePre` per plugin, and a fresh `Store` per step with its own WASI
//! context (built from the step's grants), memory limit, deadline and log.

mod cache;
mod describe;
mod digest;
mod error;
mod failure;
mod limits;
mod state;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flow_pipeline::plugin::PluginDescription;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi::WasiCtxBuilder;

pub use cache::{CacheKey, CacheOutcome, ComponentCache};
pub use digest::PluginDigest;
pub use error::RuntimeError;
pub use failure::StepFailure;
pub use limits::StepLimits;
pub(crate) use state::StepState;

use crate::bindings;
use crate::bindings::types as wit;
use crate::cancel::CancelFlag;
use crate::capabilities::StepCapabilities;
use crate::capabilities::log::{CapturedOutput, LogSink, LogSource};
use failure::{BACKTRACE_FRAMES, classify_trap, error_chain};

/// How the runtime is set up; one per process. The engine's builder is where each
/// setting's default is documented ([`crate::EngineBuilder`]).
#[derive(Debug, Clone)]
pub(crate) struct RuntimeConfig {
    /// Where compiled components are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// The key cached components are authenticated with; `None` uses a random key,
    /// so only this process trusts what it caches.
    pub cache_key: Option<CacheKey>,
    /// How many steps may run at once (sizes the pooling allocator).
    pub max_concurrent_steps: u32,
    /// Use the pooling allocator (falls back to on-demand if it cannot start).
    pub pooling: bool,
}

/// The largest memory one step may be given.
pub const MAX_STEP_MEMORY: u64 = 4 << 30;
/// Epoch tick: deadlines and cancellation are checked this often.
const TICK: Duration = Duration::from_millis(10);
/// Limits for calling `describe()`.
const DESCRIBE_MEMORY: u64 = 64 << 20;
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A plugin compiled, linked and described, ready to instantiate per step.
pub struct LoadedPlugin {
    /// The sha256 of its wasm.
    pub digest: PluginDigest,
    /// What its `describe()` returned.
    pub description: Arc<PluginDescription>,
    /// Whether compiling was needed.
    pub cache: CacheOutcome,
    pre: bindings::StepPre<StepState>,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("digest", &self.digest)
            .field("name", &self.description.name)
            .finish()
    }
}

/// What one step execution needs.
pub(crate) struct StepInvocation<'a> {
    /// The run's id.
    pub run_id: &'a str,
    /// The step's id.
    pub step_id: &'a str,
    /// The resolved params, a JSON object.
    pub params: &'a serde_json::Map<String, serde_json::Value>,
    /// Memory and time.
    pub limits: StepLimits,
    /// Set to stop the step.
    pub cancel: &'a CancelFlag,
    /// Where its output goes.
    pub log: &'a LogSink,
    /// Every capability's part of the step's store, prepared from its grants.
    pub caps: StepCapabilities,
}

/// Increments the engine's epoch every tick until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("flow-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The process-wide WebAssembly runtime.
pub struct Runtime {
    engine: Engine,
    linker: Linker<StepState>,
    cache: ComponentCache,
    loaded: Mutex<HashMap<PluginDigest, Arc<LoadedPlugin>>>,
    /// One lock per plugin being loaded: concurrent first loads of the same bytes
    /// compile them once.
    loading: Mutex<HashMap<PluginDigest, Arc<tokio::sync::Mutex<()>>>>,
    pooling: bool,
    _ticker: EpochTicker,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("cache", &self.cache)
            .field("pooling", &self.pooling)
            .finish()
    }
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Steps call the host synchronously or through WASI p2's async host
    // functions; none use the component model's own async. Without it a store's
    // drop skips the concurrent-task teardown, which built an error (and, with
    // RUST_BACKTRACE set, captured a backtrace) on every step.
    config.concurrency_support(false);
    config.epoch_interruption(true);
    // The guest stack must fit in the fiber stack, or an overflow aborts the
    // process instead of trapping.
    config.max_wasm_stack(1 << 20);
    config.async_stack_size(2 << 20);
    // Enough frames to tell runaway recursion from a bad pointer (see `deep_recursion`).
    config.wasm_backtrace_max_frames(std::num::NonZeroUsize::new(BACKTRACE_FRAMES));
    config
}

fn pooling_config(concurrent: u32) -> PoolingAllocationConfig {
    // Each running step holds one component instance; `describe` calls and a
    // little slack ride on top.
    let instances = concurrent.saturating_mul(2).saturating_add(4);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .max_memories_per_component(4)
        .total_memories(instances.saturating_mul(4))
        .max_tables_per_component(8)
        .total_tables(instances.saturating_mul(8))
        .total_stacks(instances)
        .max_memory_size(MAX_STEP_MEMORY as usize)
        // Reset the first MiB of a freed memory (and small tables) with memset
        // instead of madvise: a small step's memory fits, and dropping its
        // instance no longer costs a system call and fresh page faults on the
        // next step (an echo step went from ~180 to ~80 us here).
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(64 << 10);
    pool
}

impl Runtime {
    /// Start the runtime: the engine (pooling allocator, falling back to
    /// on-demand allocation where it cannot reserve its memory), the linker
    /// with WASI and flow's host interfaces, and the epoch ticker.
    pub fn new(config: &RuntimeConfig) -> Result<Self, RuntimeError> {
        let (engine, pooling) = if config.pooling {
            let mut pooled = base_config();
            pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(
                config.max_concurrent_steps.max(1),
            )));
            match Engine::new(&pooled) {
                Ok(engine) => {
                    tracing::debug!(
                        concurrent = config.max_concurrent_steps,
                        "pooling allocator in use"
                    );
                    (engine, true)
                }
                Err(e) => {
                    tracing::info!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                    (
                        Engine::new(&base_config())
                            .map_err(|e| RuntimeError::Engine(e.to_string()))?,
                        false,
                    )
                }
            }
        } else {
            (
                Engine::new(&base_config()).map_err(|e| RuntimeError::Engine(e.to_string()))?,
                false,
            )
        };
        let mut linker = Linker::<StepState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        bindings::flow::plugin::types::add_to_linker::<
            StepState,
            wasmtime::component::HasSelf<StepState>,
        >(&mut linker, |s| s)
        .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        crate::capabilities::link(&mut linker).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let key = match &config.cache_key {
            Some(key) => key.clone(),
            None => CacheKey::generate()
                .map_err(|e| RuntimeError::Engine(format!("cannot make a cache key: {e}")))?,
        };
        let cache = ComponentCache::new(&engine, config.cache_dir.clone(), key);
        let ticker = EpochTicker::start(engine.clone());
        Ok(Runtime {
            engine,
            linker,
            cache,
            loaded: Mutex::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
            pooling,
            _ticker: ticker,
        })
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// Compile (or load from the cache), link and describe a plugin. Loading
    /// the same bytes twice returns the same plugin.
    pub async fn load(&self, origin: &str, wasm: &[u8]) -> Result<Arc<LoadedPlugin>, RuntimeError> {
        let digest = PluginDigest::of(wasm);
        if let Some(plugin) = self.lock_loaded().get(&digest) {
            return Ok(plugin.clone());
        }
        let gate = self
            .loading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(digest)
            .or_default()
            .clone();
        let _loading = gate.lock().await;
        if let Some(plugin) = self.lock_loaded().get(&digest) {
            return Ok(plugin.clone());
        }
        let invalid = |reason: String| RuntimeError::InvalidPlugin {
            origin: origin.to_string(),
            reason,
        };
        if !wasm.starts_with(b"\0asm") {
            return Err(invalid(
                "the file is not WebAssembly (no `\\0asm` header)".into(),
            ));
        }
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let bytes = wasm.to_vec();
        let (component, outcome) =
            tokio::task::spawn_blocking(move || cache.load(&engine, &digest, &bytes))
                .await
                .map_err(|e| invalid(format!("compilation stopped: {e}")))?
                .map_err(|e| invalid(error_chain(&e)))?;
        let pre = self.pre_link(&component).map_err(|e| {
            invalid(format!(
                "it does not match the flow:plugin@0.1 contract (build it with flow-plugin-sdk): {}",
                error_chain(&e)
            ))
        })?;
        let description = self
            .describe(&pre)
            .await
            .map_err(|e| invalid(format!("describe() failed: {e}")))?;
        tracing::debug!(plugin = origin, %digest, cache = ?outcome, "plugin loaded");
        let plugin = Arc::new(LoadedPlugin {
            digest,
            description: Arc::new(description),
            cache: outcome,
            pre,
        });
        self.lock_loaded().insert(digest, plugin.clone());
        Ok(plugin)
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, HashMap<PluginDigest, Arc<LoadedPlugin>>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pre_link(&self, component: &Component) -> wasmtime::Result<bindings::StepPre<StepState>> {
        let instance_pre = self.linker.instantiate_pre(component)?;
        bindings::StepPre::new(instance_pre)
    }

    async fn describe(
        &self,
        pre: &bindings::StepPre<StepState>,
    ) -> Result<PluginDescription, String> {
        let log = LogSink::new(64 * 1024);
        let mut store = state::new_store(
            &self.engine,
            WasiCtxBuilder::new().build(),
            StepCapabilities::none(&log),
            DESCRIBE_MEMORY,
            Instant::now() + DESCRIBE_TIMEOUT,
            CancelFlag::new(),
        );
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| error_chain(&e))?;
        let info = instance.call_describe(&mut store).await.map_err(|e| {
            let stderr = log.last_error_lines(3);
            if stderr.is_empty() {
                error_chain(&e)
            } else {
                format!("{} ({})", stderr.join(" "), error_chain(&e))
            }
        })?;
        describe::description_from_wit(info)
    }

    /// Run one step of a loaded plugin to completion, failure, timeout or
    /// cancellation. Never panics on anything the plugin does.
    pub(crate) async fn run_step(
        &self,
        plugin: &LoadedPlugin,
        step: StepInvocation<'_>,
    ) -> Result<BTreeMap<String, String>, StepFailure> {
        let mut builder = WasiCtxBuilder::new();
        let workspace = step.caps.fs.workspace().to_path_buf();
        builder
            // Filesystem calls on local directories are short: doing them on this
            // thread instead of tokio's blocking pool saves a thread hand-off per call
            // (a median echo step went from ~265 to ~180 us here).
            .allow_blocking_current_thread(true)
            .stdout(CapturedOutput::new(step.log.clone(), LogSource::Stdout))
            .stderr(CapturedOutput::new(step.log.clone(), LogSource::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .env("PWD", workspace.to_string_lossy());
        for (name, value) in step.caps.exec.plugin_env() {
            builder.env(name, value);
        }
        step.caps
            .fs
            .preopen(&mut builder)
            .map_err(|e| StepFailure::Host(e.to_string()))?;
        let request = wit::RunRequest {
            run_id: step.run_id.to_string(),
            step_id: step.step_id.to_string(),
            params: serde_json::Value::Object(step.params.clone()).to_string(),
            workspace: workspace.to_string_lossy().into_owned(),
            dirs: step
                .caps
                .fs
                .granted()
                .iter()
                .map(|d| wit::GrantedDir {
                    path: d.path.to_string_lossy().into_owned(),
                    writable: d.writable,
                })
                .collect(),
        };
        let mut store = state::new_store(
            &self.engine,
            builder.build(),
            step.caps,
            step.limits.memory,
            Instant::now() + step.limits.timeout,
            step.cancel.clone(),
        );
        let result = match plugin.pre.instantiate_async(&mut store).await {
            Ok(instance) => instance.call_run(&mut store, &request).await,
            Err(e) => Err(e),
        };
        let state = store.data();
        match result {
            Ok(Ok(response)) => {
                let mut outputs = state.caps.outputs.take().map_err(StepFailure::Failed)?;
                outputs.extend(response.outputs);
                Ok(outputs)
            }
            Ok(Err(error)) => Err(StepFailure::Failed(error.message)),
            Err(e) => Err(classify_trap(
                &e,
                state.stopped(),
                state.limiter.memory_exceeded,
                step.log,
                step.limits,
            )),
        }
    }
}
