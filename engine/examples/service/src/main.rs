//! `flow-service`: an HTTP service that embeds the flow engine. Clients post
//! pipelines, follow each run's events as they happen, and fetch and verify the
//! run's signed in-toto provenance. See the README beside this crate.
//!
//! One process holds one [`flow_engine::Engine`] and one [`flow_engine::Store`]
//! (the store's data dir is locked to it), and runs any number of pipelines at
//! once on them.

mod api;
mod policy;
mod runs;
mod service;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use flow_engine::{CacheKey, Engine, SigningKey, Store};
use flow_provenance::keys::{KeyPairPaths, load_signing_key, write_key_pair};

use crate::runs::Runs;
use crate::service::Service;

/// Runs flow pipelines posted over HTTP; streams their events; serves and
/// verifies their provenance.
#[derive(Debug, Parser)]
#[command(name = "flow-service", version)]
struct Args {
    /// The address to listen on (port 0: any free port; the address taken is
    /// printed on standard output)
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Listen on an address other than a loopback one. The service runs whatever
    /// pipelines it is sent: only allow clients you trust to reach it
    #[arg(long)]
    allow_remote: bool,
    /// Where runs are recorded (created if missing; one process per data dir)
    #[arg(long)]
    data_dir: PathBuf,
    /// Where compiled plugins are cached
    /// [default: $XDG_CACHE_HOME/flow-service/components or ~/.cache/flow-service/components]
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Where the service keeps its keys: the plugin cache's key and, unless
    /// --signing-key is given, the signing key, made at first start (0600 files in a
    /// 0700 directory, outside the data dir) [default: DATA_DIR/../flow-service-keys]
    #[arg(long)]
    key_dir: Option<PathBuf>,
    /// The PKCS#8 PEM private key (ed25519, mode 0600) that signs every run's
    /// provenance [default: KEY_DIR/signing-key.pem, made at first start]
    #[arg(long)]
    signing_key: Option<PathBuf>,
    /// Run pipelines that reach the host (directories, commands, environment,
    /// network, secrets, keys, plugin files, templates); refused by default
    #[arg(long)]
    allow_host_access: bool,
    /// The most steps run at once, over all runs [default: the number of CPUs]
    #[arg(long)]
    jobs: Option<usize>,
    /// How long to wait, on shutdown, for cancelled runs to be recorded and for
    /// clients to finish reading, in seconds
    #[arg(long, default_value_t = 30)]
    shutdown_timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLOW_SERVICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve(args));
    // Whatever is still busy (a step past the shutdown timeout) is not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the service, serves until Ctrl-C or SIGTERM, then shuts down: stops
/// accepting connections, cancels the runs under way, waits for them to be recorded.
async fn serve(args: Args) -> anyhow::Result<()> {
    if !args.addr.ip().is_loopback() && !args.allow_remote {
        bail!(
            "refusing to listen on {}, which is not a loopback address: anyone who reaches \
             this service runs pipelines on this machine. Listen on 127.0.0.1 (the default), \
             or give --allow-remote if only trusted clients can reach {}",
            args.addr,
            args.addr.ip()
        );
    }
    let service = Arc::new(start(&args)?);
    warm_up(&service.engine).await;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let local = listener
        .local_addr()
        .context("cannot read the bound address")?;
    tracing::info!(
        data_dir = %service.store.dir().display(),
        key = service.signing_key.keyid(),
        "serving on http://{local}"
    );
    // For scripts and tests that asked for port 0.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "flow-service listening on http://{local}")
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")?;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, api::router(service.clone()))
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        })
        .into_future();
    let server = tokio::spawn(server);

    shutdown_signal().await?;
    let cancelled = service.runs.shut_down();
    tracing::info!(
        cancelled,
        "shutting down: no new runs; cancelling the runs under way"
    );
    let _ = stop.send(());
    let grace = Duration::from_secs(args.shutdown_timeout);
    let finished = tokio::time::timeout(grace, async {
        service.runs.tasks().wait().await;
        server.await
    })
    .await;
    match finished {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => return Err(error).context("the server failed"),
        Ok(Err(panic)) => bail!("the server's task failed: {panic}"),
        Err(_) => tracing::warn!(
            "runs or clients still busy after {}s: exiting anyway",
            grace.as_secs()
        ),
    }
    service
        .store
        .flush()
        .context("cannot flush the run store")?;
    tracing::info!("stopped");
    Ok(())
}

/// Loads every built-in plugin once before serving: the engine compiles a plugin
/// (or reads it from the cache) at its first use, and does not share a compilation
/// under way, so a burst of first runs would each compile the same plugin.
async fn warm_up(engine: &Engine) {
    let started = std::time::Instant::now();
    for (name, loaded) in engine.builtin_plugins().await {
        match loaded {
            Ok(plugin) => tracing::debug!(plugin = name, cache = ?plugin.cache, "plugin ready"),
            Err(error) => tracing::warn!(plugin = name, %error, "a built-in plugin does not load"),
        }
    }
    tracing::info!("built-in plugins ready in {:?}", started.elapsed());
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot watch for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

/// Opens the store, loads or makes the keys, and builds the engine.
fn start(args: &Args) -> anyhow::Result<Service> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data dir {}", args.data_dir.display()))?;
    let data_dir = args
        .data_dir
        .canonicalize()
        .with_context(|| format!("cannot read the data dir {}", args.data_dir.display()))?;
    let key_dir = match &args.key_dir {
        Some(dir) => absolute(dir)?,
        None => data_dir
            .parent()
            .map(|parent| parent.join("flow-service-keys"))
            .context("the data dir has no parent directory for the keys: give --key-dir")?,
    };
    if key_dir.starts_with(&data_dir) {
        bail!(
            "the key dir {} is inside the data dir {}, where runs' workspaces are: keep keys \
             outside it (--key-dir)",
            key_dir.display(),
            data_dir.display()
        );
    }
    let signing_key = match &args.signing_key {
        Some(file) => load_signing_key(file)
            .with_context(|| format!("cannot load the signing key {}", file.display()))?,
        None => service_signing_key(&key_dir)?,
    };
    let cache_key_file = key_dir.join("cache.key");
    let cache_key = CacheKey::load_or_create(&cache_key_file)
        .with_context(|| format!("cannot load the cache key {}", cache_key_file.display()))?;
    let mut builder = Engine::builder().cache_key(cache_key);
    match args.cache_dir.clone().or_else(default_cache_dir) {
        Some(dir) => builder = builder.cache_dir(dir),
        None => tracing::warn!(
            "neither HOME nor XDG_CACHE_HOME is set and no --cache-dir was given: \
             plugins are compiled again at every start"
        ),
    }
    if let Some(jobs) = args.jobs {
        builder = builder.jobs(jobs);
    }
    let engine = builder.build().context("cannot start the engine")?;
    let store = Store::open(&data_dir)
        .with_context(|| format!("cannot open the run store {}", data_dir.display()))?;
    for run in store.recovered() {
        tracing::warn!(run = %run, "a run of an earlier process did not end: recorded as interrupted");
    }
    let public_key = signing_key.public_key().clone();
    Ok(Service {
        engine,
        store,
        signing_key: Arc::new(signing_key),
        public_key,
        allow_host_access: args.allow_host_access,
        runs: Runs::default(),
    })
}

/// The service's own signing key in `dir`: made (0600) at first start, loaded after.
fn service_signing_key(dir: &Path) -> anyhow::Result<SigningKey> {
    let paths = KeyPairPaths::in_dir(dir);
    if !paths.private_key.exists() {
        let key = SigningKey::generate().context("cannot generate a signing key")?;
        let written = write_key_pair(dir, &key).context("cannot save the new signing key")?;
        tracing::info!(
            key = key.keyid(),
            "made the service's signing key {}",
            written.private_key.display()
        );
    }
    load_signing_key(&paths.private_key).with_context(|| {
        format!(
            "cannot load the signing key {}",
            paths.private_key.display()
        )
    })
}

/// `$XDG_CACHE_HOME/flow-service/components` or `~/.cache/flow-service/components`.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("flow-service").join("components"))
}

/// `path`, absolute (against the working directory).
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}
