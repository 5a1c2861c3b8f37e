//! The sandboxed runtime: one wasmtime [`Engine`](wasmtime::Engine) per
//! process, compiled components cached on disk, one pre-linked
//! `InstancePre` per plugin, and a fresh `Store` per step with its own WASI
//! context (built from the step's grants), memory limit, deadline and log.

pub(crate) mod bindings;
mod cache;
mod limits;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flow_pipeline::plugin::{Capability, OutputSpec, ParamSpec, ParamType, PluginDescription};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use cache::{CacheKey, CacheOutcome, ComponentCache};

use crate::capabilities::claims::{Claims, RunAttestations};
use crate::capabilities::exec::{ExecPolicy, ExecState};
use crate::capabilities::files::WritableRoots;
use crate::capabilities::fs::{self, DirGrant};
use crate::capabilities::log::{CapturedOutput, LogSink, LogSource};
use crate::capabilities::net::{NetHooks, NetPolicy};
use crate::capabilities::secrets::StepSecrets;
use crate::capabilities::signing::KeyRing;
use bindings::types as wit;

/// The sha256 of a plugin's wasm bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginDigest([u8; 32]);

impl PluginDigest {
    /// The digest of these bytes.
    pub fn of(bytes: &[u8]) -> Self {
        PluginDigest(Sha256::digest(bytes).into())
    }

    /// Lower-case hex, 64 characters.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for PluginDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for PluginDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PluginDigest({self})")
    }
}

/// Errors of the runtime itself (not of a step).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// wasmtime could not be configured.
    #[error("cannot start the WebAssembly runtime: {0}")]
    Engine(String),
    /// The bytes are not a component this host can run.
    #[error("{origin} is not a valid flow plugin: {reason}")]
    InvalidPlugin {
        /// Where the bytes came from (a path or a built-in name).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A granted directory could not be opened.
    #[error("cannot grant {}: {reason}", path.display())]
    Grant {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// How the runtime is set up; one per process.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
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

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            cache_key: None,
            max_concurrent_steps: 4,
            pooling: true,
        }
    }
}

/// The largest memory one step may be given.
pub const MAX_STEP_MEMORY: u64 = 4 << 30;
/// Epoch tick: deadlines and cancellation are checked this often.
const TICK: Duration = Duration::from_millis(10);
/// Limits for calling `describe()`.
const DESCRIBE_MEMORY: u64 = 64 << 20;
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A cancellation signal shared by a run and its steps. Cloning shares it.
#[derive(Debug, Clone)]
pub struct CancelFlag(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for CancelFlag {
    fn default() -> Self {
        CancelFlag(Arc::new(tokio::sync::watch::Sender::new(false)))
    }
}

impl CancelFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask everything watching this flag to stop.
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once cancellation is asked for.
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|set| *set).await;
    }
}

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

/// Limits for one step.
#[derive(Debug, Clone, Copy)]
pub struct StepLimits {
    /// Total linear memory, in bytes.
    pub memory: u64,
    /// Wall-clock time.
    pub timeout: Duration,
}

/// What one step execution needs.
#[derive(Debug)]
pub struct StepInvocation<'a> {
    /// The run's id.
    pub run_id: &'a str,
    /// The step's id.
    pub step_id: &'a str,
    /// The resolved params, a JSON object.
    pub params: &'a serde_json::Map<String, serde_json::Value>,
    /// The run's workspace (absolute): read-write, the working directory.
    pub workspace: &'a Path,
    /// The directory the workspace was when the run started.
    pub workspace_identity: Option<fs::DirIdentity>,
    /// Granted directories beyond the workspace.
    pub dirs: &'a [DirGrant],
    /// Memory and time.
    pub limits: StepLimits,
    /// Set to stop the step.
    pub cancel: &'a CancelFlag,
    /// Where its output goes.
    pub log: &'a LogSink,
    /// The host commands and variables it is granted, if any.
    pub exec: Option<Arc<ExecPolicy>>,
    /// Where it records provenance claims and the commands it ran.
    pub claims: &'a Claims,
    /// The secrets it is granted, if any.
    pub secrets: Option<Arc<StepSecrets>>,
    /// The signing keys it is granted, if any.
    pub keys: Option<Arc<KeyRing>>,
    /// The authorities it may reach over HTTP, if any.
    pub net: Option<Arc<NetPolicy>>,
    /// The run's attestations so far, for `run-attestations` (none when the run
    /// records no provenance).
    pub attestations: Option<RunAttestations>,
}

/// Why a step did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepFailure {
    /// The plugin returned a `step-error`.
    Failed(String),
    /// The plugin trapped (a panic, a stack overflow, a bad memory access...).
    Crashed(String),
    /// It ran past its timeout.
    TimedOut(Duration),
    /// The host's work for it (hashing its files) ran past its timeout.
    HostTimedOut {
        /// The step's timeout.
        timeout: Duration,
        /// What the host was doing ("while the host hashed its products ...").
        doing: String,
    },
    /// It tried to use more memory than its limit.
    OutOfMemory(u64),
    /// The run was cancelled while it ran.
    Cancelled,
    /// The host could not run it (a grant that cannot be opened...).
    Host(String),
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepFailure::Failed(m) => write!(f, "{m}"),
            StepFailure::Crashed(m) => write!(f, "the plugin crashed: {m}"),
            StepFailure::TimedOut(d) => {
                write!(f, "timed out after {}", crate::units::format_duration(*d))
            }
            StepFailure::HostTimedOut { timeout, doing } => write!(
                f,
                "timed out after {} {doing}",
                crate::units::format_duration(*timeout)
            ),
            StepFailure::OutOfMemory(limit) => {
                write!(
                    f,
                    "exceeded its memory limit of {}",
                    crate::units::format_bytes(*limit)
                )
            }
            StepFailure::Cancelled => write!(f, "cancelled"),
            StepFailure::Host(m) => write!(f, "{m}"),
        }
    }
}

/// Why the store stopped a guest (set by the epoch callback, or by a host
/// call that was interrupted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    TimedOut,
    Cancelled,
}

/// The per-step store data. Each step gets a fresh one.
pub(crate) struct StepState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    limiter: limits::StepLimiter,
    pub(crate) log: LogSink,
    pub(crate) outputs: BTreeMap<String, String>,
    pub(crate) output_error: Option<String>,
    deadline: Instant,
    cancel: CancelFlag,
    pub(crate) stop: Option<Stop>,
    pub(crate) writable: WritableRoots,
    pub(crate) exec: ExecState,
    pub(crate) claims: Claims,
    pub(crate) secrets: Option<Arc<StepSecrets>>,
    pub(crate) keys: Option<Arc<KeyRing>>,
    pub(crate) http: wasmtime_wasi_http::WasiHttpCtx,
    pub(crate) net: NetHooks,
    pub(crate) attestations: Option<RunAttestations>,
}

impl bindings::flow::plugin::types::Host for StepState {}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The grants a store's host calls enforce.
#[derive(Default)]
struct StepGrants {
    writable: WritableRoots,
    exec: Option<Arc<ExecPolicy>>,
    claims: Claims,
    secrets: Option<Arc<StepSecrets>>,
    keys: Option<Arc<KeyRing>>,
    net: Option<Arc<NetPolicy>>,
    attestations: Option<RunAttestations>,
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
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        bindings::Step::add_to_linker::<StepState, wasmtime::component::HasSelf<StepState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| RuntimeError::Engine(e.to_string()))?;
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

    fn new_store(
        &self,
        wasi: WasiCtx,
        log: LogSink,
        limits: StepLimits,
        cancel: CancelFlag,
        grants: StepGrants,
    ) -> Store<StepState> {
        let deadline = Instant::now() + limits.timeout;
        let log_for_net = log.clone();
        let state = StepState {
            wasi,
            table: ResourceTable::new(),
            limiter: limits::StepLimiter::new(limits.memory),
            log,
            outputs: BTreeMap::new(),
            output_error: None,
            deadline,
            cancel: cancel.clone(),
            stop: None,
            writable: grants.writable,
            exec: ExecState {
                policy: grants.exec,
                deadline,
                cancel,
            },
            claims: grants.claims,
            secrets: grants.secrets,
            keys: grants.keys,
            http: crate::capabilities::net::context(),
            net: NetHooks::new(grants.net, log_for_net),
            attestations: grants.attestations,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // A new store's deadline has already passed: set it before any call.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            if state.cancel.is_cancelled() {
                state.stop = Some(Stop::Cancelled);
                return Err(wasmtime::format_err!("the step was cancelled"));
            }
            if Instant::now() >= state.deadline {
                state.stop = Some(Stop::TimedOut);
                return Err(wasmtime::format_err!("the step ran past its timeout"));
            }
            // Yield so that one busy guest does not hold a worker thread.
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    async fn describe(
        &self,
        pre: &bindings::StepPre<StepState>,
    ) -> Result<PluginDescription, String> {
        let log = LogSink::new(64 * 1024);
        let limits = StepLimits {
            memory: DESCRIBE_MEMORY,
            timeout: DESCRIBE_TIMEOUT,
        };
        let mut store = self.new_store(
            WasiCtxBuilder::new().build(),
            log.clone(),
            limits,
            CancelFlag::new(),
            StepGrants::default(),
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
        description_from_wit(info)
    }

    /// Run one step of a loaded plugin to completion, failure, timeout or
    /// cancellation. Never panics on anything the plugin does.
    pub async fn run_step(
        &self,
        plugin: &LoadedPlugin,
        step: StepInvocation<'_>,
    ) -> Result<BTreeMap<String, String>, StepFailure> {
        let mut builder = WasiCtxBuilder::new();
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
            .env("PWD", step.workspace.to_string_lossy());
        if let Some(policy) = &step.exec {
            for (name, value) in &policy.env {
                builder.env(name, value);
            }
            if !policy.missing_env.is_empty() {
                step.log.line(
                    LogSource::Host,
                    &format!(
                        "granted but not set on the host: {}",
                        policy.missing_env.join(", ")
                    ),
                );
            }
        }
        let workspace = DirGrant {
            path: step.workspace.to_path_buf(),
            writable: true,
            identity: step.workspace_identity,
        };
        fs::prepare(&mut builder, &workspace, step.dirs)
            .map_err(|e| StepFailure::Host(e.to_string()))?;
        let mut writable = vec![step.workspace.to_path_buf()];
        writable.extend(
            step.dirs
                .iter()
                .filter(|d| d.writable)
                .map(|d| d.path.clone()),
        );
        let grants = StepGrants {
            writable: WritableRoots(writable),
            exec: step.exec.clone(),
            claims: step.claims.clone(),
            secrets: step.secrets.clone(),
            keys: step.keys.clone(),
            net: step.net.clone(),
            attestations: step.attestations.clone(),
        };
        let mut store = self.new_store(
            builder.build(),
            step.log.clone(),
            step.limits,
            step.cancel.clone(),
            grants,
        );

        let request = wit::RunRequest {
            run_id: step.run_id.to_string(),
            step_id: step.step_id.to_string(),
            params: serde_json::Value::Object(step.params.clone()).to_string(),
            workspace: step.workspace.to_string_lossy().into_owned(),
            dirs: step
                .dirs
                .iter()
                .map(|d| wit::GrantedDir {
                    path: d.path.to_string_lossy().into_owned(),
                    writable: d.writable,
                })
                .collect(),
        };
        let result = match plugin.pre.instantiate_async(&mut store).await {
            Ok(instance) => instance.call_run(&mut store, &request).await,
            Err(e) => Err(e),
        };
        let state = store.data();
        match result {
            Ok(Ok(response)) => {
                if let Some(error) = &state.output_error {
                    return Err(StepFailure::Failed(error.clone()));
                }
                let mut outputs = state.outputs.clone();
                outputs.extend(response.outputs);
                Ok(outputs)
            }
            Ok(Err(error)) => Err(StepFailure::Failed(error.message)),
            Err(e) => Err(classify_trap(&e, state, step.limits)),
        }
    }
}

fn classify_trap(error: &wasmtime::Error, state: &StepState, limits: StepLimits) -> StepFailure {
    match state.stop {
        Some(Stop::Cancelled) => return StepFailure::Cancelled,
        Some(Stop::TimedOut) => return StepFailure::TimedOut(limits.timeout),
        None => {}
    }
    if state.limiter.memory_exceeded {
        return StepFailure::OutOfMemory(limits.memory);
    }
    let what = match error.downcast_ref::<Trap>() {
        Some(Trap::UnreachableCodeReached) => "it panicked or reached unreachable code".to_string(),
        Some(Trap::StackOverflow) => "stack overflow".to_string(),
        // Languages that keep their own stack in linear memory (Rust, C) run off its
        // end into an out-of-bounds access when recursion is too deep: a deep, repeating
        // call stack tells that apart from a bad pointer.
        Some(Trap::MemoryOutOfBounds) => match deep_recursion(error) {
            Some(what) => return StepFailure::Crashed(what),
            None => Trap::MemoryOutOfBounds.to_string(),
        },
        Some(trap) => trap.to_string(),
        None => error_chain(error),
    };
    match panic_message(&state.log.last_error_lines(8)) {
        Some(panic) => StepFailure::Crashed(panic),
        None => StepFailure::Crashed(what),
    }
}

/// Frames kept in a trap's backtrace.
const BACKTRACE_FRAMES: usize = 64;

/// "stack overflow: ..." when a trap's call stack is runaway recursion: the backtrace
/// is full (the stack was deeper than it keeps) and one function fills at least half
/// of it.
fn deep_recursion(error: &wasmtime::Error) -> Option<String> {
    let backtrace = error.downcast_ref::<wasmtime::WasmBacktrace>()?;
    let frames = backtrace.frames();
    if frames.len() < BACKTRACE_FRAMES {
        return None;
    }
    let mut counts: HashMap<u32, (usize, Option<&str>)> = HashMap::new();
    for frame in frames {
        let entry = counts
            .entry(frame.func_index())
            .or_insert((0, frame.func_name()));
        entry.0 += 1;
    }
    let (count, name) = counts.values().max_by_key(|(n, _)| *n).copied()?;
    if count * 2 < frames.len() {
        return None;
    }
    let name = match name {
        Some(name) => format!(" in `{name}`"),
        None => String::new(),
    };
    Some(format!(
        "stack overflow: runaway recursion{name} ran off the end of the plugin's stack"
    ))
}

/// A Rust guest prints `thread '..' panicked at FILE:LINE:COL:` and then the
/// message to stderr before it traps; that is the best reason to show.
fn panic_message(stderr: &[String]) -> Option<String> {
    let at = stderr.iter().rposition(|l| l.contains("panicked at "))?;
    let location = stderr[at]
        .split("panicked at ")
        .nth(1)?
        .trim_end_matches(':');
    let message: Vec<&str> = stderr[at + 1..]
        .iter()
        .map(String::as_str)
        .take_while(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    Some(format!("panicked at {location}: {}", message.join(" ")))
}

/// "outer: inner: root" for an error and its causes.
fn error_chain(error: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn description_from_wit(info: wit::PluginInfo) -> Result<PluginDescription, String> {
    let mut params = Vec::with_capacity(info.params.len());
    for p in info.params {
        let default = match p.default {
            Some(text) => Some(
                serde_json::from_str(&text)
                    .map_err(|e| format!("the default of param `{}` is not JSON: {e}", p.name))?,
            ),
            None => None,
        };
        params.push(ParamSpec {
            name: p.name,
            ty: match p.type_ {
                wit::ParamType::String => ParamType::String,
                wit::ParamType::Integer => ParamType::Integer,
                wit::ParamType::Number => ParamType::Number,
                wit::ParamType::Boolean => ParamType::Boolean,
                wit::ParamType::List => ParamType::List,
                wit::ParamType::Object => ParamType::Object,
                wit::ParamType::Any => ParamType::Any,
            },
            description: p.description,
            required: p.required,
            default,
        });
    }
    Ok(PluginDescription {
        name: info.name,
        version: info.version,
        description: info.description,
        params,
        extra_params: info.extra_params,
        outputs: info
            .outputs
            .into_iter()
            .map(|o| OutputSpec {
                name: o.name,
                description: o.description,
            })
            .collect(),
        outputs_from_params: info.outputs_from_params,
        capabilities: info
            .capabilities
            .into_iter()
            .map(|c| match c {
                wit::Capability::FsRead => Capability::FsRead,
                wit::Capability::FsWrite => Capability::FsWrite,
                wit::Capability::Env => Capability::Env,
                wit::Capability::Net => Capability::Net,
                wit::Capability::Exec => Capability::Exec,
                wit::Capability::Secrets => Capability::Secrets,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_panic_message_in_stderr() {
        let stderr: Vec<String> = [
            "",
            "thread '<unnamed>' (1) panicked at src/lib.rs:46:24:",
            "told to panic",
            "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            panic_message(&stderr).as_deref(),
            Some("panicked at src/lib.rs:46:24: told to panic")
        );
        assert_eq!(panic_message(&["plain error".to_string()]), None);
    }
}
