//! The `flow` command: arguments, dispatch, and the one place that maps outcomes
//! to exit codes. Everything it does goes through the `flow_engine` library.

#[macro_use]
mod output;
mod attest;
mod cache;
mod cdevents;
mod live;
mod places;
mod progress;
mod report;
mod serve;
mod stats;
mod templates;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use flow_engine::{CancelFlag, Engine, EngineError, RunOptions};
use flow_store::{RunStatus, Store, StoreError};

/// Exit codes, documented in `docs/cli.md`.
pub mod exit {
    /// The command did what was asked (for `run`: every step succeeded).
    pub const SUCCESS: u8 = 0;
    /// The run failed: a step failed, timed out, or the run was cancelled.
    pub const RUN_FAILED: u8 = 1;
    /// Invalid input: the pipeline file, its inputs, or the arguments.
    pub const INVALID: u8 = 2;
    /// The data dir could not be used (in use, unreadable, full disk...).
    pub const STORE: u8 = 3;
    /// flow itself failed (the WebAssembly runtime could not start...).
    pub const INTERNAL: u8 = 4;
}

/// flow runs pipelines whose steps are sandboxed WebAssembly plugins, and
/// records what ran.
#[derive(Debug, Parser)]
#[command(name = "flow", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// Run as if flow was started in DIR
    #[arg(short = 'C', global = true, value_name = "DIR")]
    directory: Option<PathBuf>,
    /// Where runs are recorded [default: one directory per pipeline directory under
    /// $XDG_DATA_HOME/flow/projects or ~/.local/share/flow/projects, outside the repository]
    #[arg(long, global = true, env = "FLOW_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Where compiled plugins and the templates used are cached
    /// [default: $XDG_CACHE_HOME/flow/components or ~/.cache/flow/components]
    #[arg(long, global = true, env = "FLOW_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// One line per event, even on a terminal
    #[arg(long, global = true, conflicts_with = "json")]
    plain: bool,
    /// One JSON object per line
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline
    Run(RunArgs),
    /// Check a pipeline without running it; report every problem
    Check {
        /// The pipeline file
        #[arg(default_value = "flow.yaml")]
        file: PathBuf,
    },
    /// List recorded runs, newest first
    Runs {
        /// Show at most this many
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
        /// Figures instead of a list: per pipeline and step, runs, failures, retries,
        /// cache hits, success rate and durations; the slowest and flakiest steps
        #[arg(long)]
        stats: bool,
        /// With --stats, only runs started within this long (`7d`, `12h`)
        #[arg(long, value_name = "AGE", value_parser = cache::parse_age, requires = "stats")]
        since: Option<std::time::Duration>,
    },
    /// Show a run and its steps; with --resolved, a pipeline resolved through its templates
    Show {
        /// A run id, a unique prefix of one, or `last`; with --resolved, the pipeline file [default: flow.yaml]
        #[arg(required_unless_present = "resolved")]
        run: Option<String>,
        /// Print the pipeline file resolved through its templates, each step and key with the file and line it came from
        #[arg(long)]
        resolved: bool,
    },
    /// Resolve the pipeline's templates and plugins and pin them in flow.lock (beside the file)
    Lock {
        /// The pipeline file
        #[arg(default_value = "flow.yaml")]
        file: PathBuf,
    },
    /// Move the pins of flow.lock to the newest matching versions and show what changed
    Update {
        /// Only this template (an id such as `acme/rust-service`) [default: every template and plugin]
        name: Option<String>,
        /// The pipeline file
        #[arg(long, default_value = "flow.yaml")]
        file: PathBuf,
    },
    /// Sign templates and print their digests
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Write one self-contained HTML page about a run: its DAG, timeline, steps, logs
    /// and provenance (with `flow verify`'s result and, with --policy, each check)
    Report {
        /// A run id, a unique prefix of one, or `last`
        run: String,
        /// The HTML file to write
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The owner public key to trust [default: the key `flow run` signs with]
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        #[command(flatten)]
        policy: PolicyOptions,
    },
    /// Say what the step cache did for a step of a run, and why it missed
    Explain {
        /// A run id, a unique prefix of one, or `last`
        run: String,
        /// The step
        step: String,
    },
    /// Manage the step cache
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Serve a read-only web dashboard of the data dir's runs: figures, charts, failures,
    /// each run's report, runs in progress. No authentication: it listens on loopback
    /// only, unless --allow-remote
    Serve {
        /// Where to listen (`IP:PORT`; port 0 picks a free one)
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "IP:PORT")]
        addr: std::net::SocketAddr,
        /// Listen on an address other than loopback: anyone who can reach it reads every
        /// run's logs, inputs and outputs (there is no authentication)
        #[arg(long)]
        allow_remote: bool,
    },
    /// Print a run's logs
    Logs {
        /// A run id, a unique prefix of one, or `last`
        run: String,
        /// Only this step
        step: Option<String>,
    },
    /// List the built-in plugins and what they take
    Plugins,
    /// Manage signing keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Export or show a run's signed provenance
    #[command(subcommand)]
    Attest(AttestCommand),
    /// Verify a run's provenance: every signature, the materials -> products
    /// chain between steps, and the run chain
    Verify {
        /// A run id, a unique prefix of one, or `last`
        #[arg(required_unless_present = "dir", conflicts_with = "dir")]
        run: Option<String>,
        /// Verify an export directory instead (`flow attest export`)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The owner public key to trust [default: the data dir's key, for a RUN; the export's owner.pub, for --dir]
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        #[command(flatten)]
        policy: PolicyOptions,
    },
}

/// `--policy` and where its templates are, for `flow verify` and `flow report`.
#[derive(clap::Args, Debug)]
struct PolicyOptions {
    /// Also check the run against this policy: the template it came from, its sealed
    /// steps, approved plugins and order (see docs/templates.md)
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// A template's directory, used when its digest is one the run recorded
    /// (repeatable) [default: the template cache, CACHE_DIR/templates/<sha256>]
    #[arg(long = "template-dir", value_name = "DIR", requires = "policy")]
    template_dirs: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum TemplateCommand {
    /// Sign the template in DIR: writes DIR/template.sig
    Sign {
        /// The template's directory (holding template.yaml)
        dir: PathBuf,
        /// The ed25519 private key (PKCS#8 PEM, as `flow keys generate` writes)
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Print the template's id, version and sha256
    Digest {
        /// The template's directory (holding template.yaml)
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Drop cached step results by age and by size, and the stored files nothing needs
    /// any more; prints what it freed
    Gc {
        /// Drop results not used for this long (`7d`, `12h`, `30m`)
        #[arg(long, value_name = "AGE", value_parser = cache::parse_age)]
        older_than: Option<std::time::Duration>,
        /// Then drop the least recently used results until the rest weigh at most SIZE
        /// (`512MiB`, `20GiB`)
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Generate an ed25519 key pair: a PKCS#8 PEM private key (mode 0600) and its public key
    Generate {
        /// Where to write signing-key.pem and signing-key.pub (created 0700)
        /// [default: ~/.local/share/flow/keys, the key `flow run` signs with]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AttestCommand {
    /// Write root.layout, owner.pub, run.json, <step>.<keyid>.link and <step>.intoto.json files
    Export {
        /// A run id, a unique prefix of one, or `last`
        run: String,
        /// A new or empty directory
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Summarise a run's provenance (`--json`: the raw envelopes)
    Show {
        /// A run id, a unique prefix of one, or `last`
        run: String,
        /// Only this step
        step: Option<String>,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The pipeline file
    #[arg(default_value = "flow.yaml")]
    file: PathBuf,
    /// Run at most N steps at once [default: the number of CPUs]
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    jobs: Option<u32>,
    /// A pipeline input, `name=value` (repeatable)
    #[arg(short = 'i', long = "input", value_name = "NAME=VALUE", value_parser = flow_engine::parse_input_arg)]
    inputs: Vec<(String, String)>,
    /// The run's workspace [default: DATA_DIR/workspaces/RUN]
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// The key that signs the run's provenance: a PKCS#8 PEM file (mode 0600), or
    /// `ssh-agent:[COMMENT|SHA256:FINGERPRINT]` for an ed25519 key held by the agent at
    /// $SSH_AUTH_SOCK [default: ~/.local/share/flow/keys/signing-key.pem, created if missing]
    #[arg(long, env = "FLOW_SIGNING_KEY", value_name = "KEY")]
    signing_key: Option<PathBuf>,
    /// Most bytes the run's workspace may hold; a step that leaves more fails
    /// (`64MiB`, `20GiB`...) [default: 32GiB]
    #[arg(long, env = "FLOW_WORKSPACE_QUOTA", value_name = "SIZE", value_parser = parse_size)]
    workspace_quota: Option<u64>,
    /// Run every step: take no result from the step cache, and keep none
    #[arg(long)]
    no_cache: bool,
    /// Say why each step that ran missed the cache (always in --json events)
    #[arg(long)]
    explain: bool,
    /// Continue a run that failed, was cancelled or was killed (a run id, a unique
    /// prefix of one, or `last`): steps that succeeded are kept, the rest run again
    #[arg(long, value_name = "RUN", conflicts_with_all = ["inputs", "workspace"])]
    resume: Option<String>,
    /// Run nothing: say which steps the cache would stand in for (with --explain, why
    /// the others would run)
    #[arg(long, conflicts_with = "resume")]
    dry_run: bool,
    /// Also send the run's CDEvents to URL: `http://HOST[:PORT]/PATH` (CloudEvents,
    /// binary mode), `file:PATH` (JSON lines) or `nats://HOST[:PORT]/SUBJECT`
    /// (repeatable; added to the config's `events-to`). Waits at most 2s for them at
    /// the end, and never changes the run's outcome
    #[arg(long = "events-to", value_name = "URL")]
    events_to: Vec<String>,
}

fn parse_size(text: &str) -> Result<u64, String> {
    flow_pipeline::model::parse_size(text)
        .ok_or_else(|| format!("`{text}` is not a size such as `512MiB` or `20GiB`"))
}

/// How to print events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Live,
    Plain,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    if let Some(dir) = &cli.global.directory
        && let Err(e) = std::env::set_current_dir(dir)
    {
        eprintln!("error: cannot change to {}: {e}", dir.display());
        return ExitCode::from(exit::INVALID);
    }
    let style = if cli.global.json {
        Style::Json
    } else if cli.global.plain || !std::io::stdout().is_terminal() {
        Style::Plain
    } else {
        Style::Live
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let code = runtime.block_on(dispatch(cli, style));
    // Steps that ignore cancellation must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    ExitCode::from(code)
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    // sled's own warnings (such as the blobs it drops when it recovers from a
    // killed process) mean nothing to a user; the store reports what matters.
    let filter =
        EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("warn,sled=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

async fn dispatch(cli: Cli, style: Style) -> u8 {
    let result = match cli.command {
        Command::Run(args) => run(&cli.global, args, style).await,
        Command::Check { file } => check(&cli.global, &file).await,
        Command::Runs {
            limit,
            stats,
            since,
        } => match read_store_if_any(&cli.global) {
            Ok(Some(store)) if stats => stats::print(&store, since, style),
            Ok(Some(store)) => report::runs(&store, limit, style),
            Ok(None) => data_dir(&cli.global, None).map(|dir| {
                report::no_runs(&dir, style);
                exit::SUCCESS
            }),
            Err(e) => Err(e),
        },
        Command::Show {
            run,
            resolved: true,
        } => {
            let file = PathBuf::from(run.unwrap_or_else(|| flow_pipeline::DEFAULT_FILE.into()));
            templates::show_resolved(&cli.global, &file)
        }
        Command::Show { run, .. } => read_store(&cli.global)
            .and_then(|s| report::show(&s, run.as_deref().unwrap_or("last"), style)),
        Command::Lock { file } => {
            templates::lock(&cli.global, &file, flow_engine::catalog::LockMode::Ignore).await
        }
        Command::Update { name, file } => {
            templates::lock(
                &cli.global,
                &file,
                flow_engine::catalog::LockMode::Update(name),
            )
            .await
        }
        Command::Template(TemplateCommand::Sign { dir, key }) => templates::sign(&dir, &key),
        Command::Template(TemplateCommand::Digest { dir }) => templates::digest(&dir),
        Command::Report {
            run,
            out,
            key,
            policy,
        } => match policy_of(&cli.global, &policy) {
            Err(e) => Err(e),
            Ok(policy) => read_store(&cli.global)
                .and_then(|s| attest::report(&s, &run, &out, key.as_deref(), policy.as_ref())),
        },
        Command::Explain { run, step } => {
            read_store(&cli.global).and_then(|s| cache::explain(&s, &run, &step, style))
        }
        Command::Cache(CacheCommand::Gc {
            older_than,
            max_size,
        }) => read_store(&cli.global).and_then(|s| cache::gc(&s, older_than, max_size, style)),
        Command::Logs { run, step } => {
            read_store(&cli.global).and_then(|s| report::logs(&s, &run, step.as_deref(), style))
        }
        Command::Serve { addr, allow_remote } => {
            serve_dashboard(&cli.global, addr, allow_remote).await
        }
        Command::Plugins => plugins(&cli.global, style).await,
        Command::Keys(KeysCommand::Generate { out }) => match out.or_else(places::key_dir) {
            Some(out) => attest::generate(&out),
            None => Err(no_home()),
        },
        Command::Attest(AttestCommand::Export { run, out }) => {
            read_store(&cli.global).and_then(|s| attest::export(&s, &run, &out))
        }
        Command::Attest(AttestCommand::Show { run, step }) => {
            read_store(&cli.global).and_then(|s| attest::show(&s, &run, step.as_deref(), style))
        }
        Command::Verify {
            run,
            dir,
            key,
            policy,
        } => {
            // A bad policy is the user's input: say so before opening anything.
            match policy_of(&cli.global, &policy) {
                Err(e) => Err(e),
                Ok(policy) => {
                    let store = match &run {
                        Some(_) => Some(read_store(&cli.global)),
                        None => None,
                    };
                    match store.transpose() {
                        Ok(store) => attest::verify_run(
                            store.as_ref(),
                            run.as_deref(),
                            dir.as_deref(),
                            key.as_deref(),
                            policy.as_ref(),
                        ),
                        Err(e) => Err(e),
                    }
                }
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(failure) => failure.report(),
    }
}

/// Why a command could not do its job, and its exit code.
pub(crate) enum Failure {
    Invalid(String),
    Store(StoreError),
    Io(String),
    Internal(String),
}

impl Failure {
    fn report(self) -> u8 {
        match self {
            Failure::Invalid(text) => {
                eprint!("{text}");
                if !text.ends_with('\n') {
                    eprintln!();
                }
                exit::INVALID
            }
            Failure::Store(e) => {
                eprintln!("error: {e}");
                exit::STORE
            }
            Failure::Io(text) => {
                eprintln!("error: {text}");
                exit::STORE
            }
            Failure::Internal(text) => {
                eprintln!("error: {text}");
                exit::INTERNAL
            }
        }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(diagnostics) => Failure::Invalid(diagnostics.render()),
            EngineError::Store(e) => Failure::from(e),
            e @ EngineError::Workspace { .. } => Failure::Io(e.to_string()),
            other => Failure::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            // A run or step the user named that is not there is their input, not the store's fault.
            StoreError::NoRuns { .. }
            | StoreError::NoSuchRun { .. }
            | StoreError::Ambiguous { .. }
            | StoreError::UnknownStep { .. } => Failure::Invalid(format!("error: {e}")),
            e => Failure::Store(e),
        }
    }
}

/// The data dir: `--data-dir`/`FLOW_DATA_DIR`, else the per-user directory of the
/// pipeline file's directory (or of the working directory), outside the repository.
fn data_dir(global: &Global, pipeline: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(dir) = &global.data_dir {
        return Ok(dir.clone());
    }
    places::project_data_dir(pipeline_dir(pipeline)).ok_or_else(no_home)
}

/// The directory a pipeline file is in (`.` for a bare file name or none).
fn pipeline_dir(pipeline: Option<&Path>) -> &Path {
    pipeline
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn no_home() -> Failure {
    Failure::Invalid(
        "error: neither HOME nor XDG_DATA_HOME is set, so flow has no place of its own for runs and keys: \
         set one, or give --data-dir and --signing-key"
            .into(),
    )
}

/// Where compiled plugins and the templates used are cached: `--cache-dir`/
/// `FLOW_CACHE_DIR` itself, else `$XDG_CACHE_HOME/flow/components` or
/// `~/.cache/flow/components`. The template cache is its `templates` directory.
fn cache_dir(global: &Global) -> Option<PathBuf> {
    if let Some(dir) = &global.cache_dir {
        return Some(dir.clone());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("flow").join("components"))
}

/// Opens the data dir to record a run in (creating it, private, when it is flow's own).
fn open_store(global: &Global, pipeline: Option<&Path>) -> Result<Store, Failure> {
    let dir = data_dir(global, pipeline)?;
    if global.data_dir.is_none() {
        places::create_private_dir(&dir).map_err(|e| {
            Failure::Io(format!("cannot create the data dir {}: {e}", dir.display()))
        })?;
        note_legacy_runs(pipeline_dir(pipeline), &dir);
    }
    let store = Store::open(&dir)?;
    for run in store.recovered() {
        eprintln!("note: run {run} was interrupted (its flow process ended while it ran)");
    }
    Ok(store)
}

/// Opens the data dir to read runs from, if it has any; one that does not exist
/// is not created.
fn read_store_if_any(global: &Global) -> Result<Option<Store>, Failure> {
    let dir = data_dir(global, None)?;
    if !dir.join("store").exists() {
        return Ok(None);
    }
    read_store(global).map(Some)
}

/// The policy file given with `--policy`, read and ready to check (none without one).
fn policy_of(
    global: &Global,
    options: &PolicyOptions,
) -> Result<Option<attest::LoadedPolicy>, Failure> {
    options
        .policy
        .as_deref()
        .map(|file| {
            attest::load_policy(attest::PolicyArgs {
                file,
                template_dirs: &options.template_dirs,
                cache_dir: cache_dir(global),
            })
        })
        .transpose()
}

/// Opens the data dir to read runs from; one that does not exist is not created.
fn read_store(global: &Global) -> Result<Store, Failure> {
    let dir = data_dir(global, None)?;
    if !dir.join("store").exists() {
        let mut message = format!("error: no runs yet in {}", dir.display());
        let legacy = places::legacy_data_dir(Path::new("."));
        if global.data_dir.is_none() && legacy.join("store").exists() {
            message.push_str(&format!(
                "\nhelp: runs recorded by earlier versions of flow are in {0}: read them with `--data-dir {0}`",
                legacy.display()
            ));
        } else if global.data_dir.is_none() {
            message.push_str(
                "\nhelp: runs are recorded per pipeline directory: run this where the pipeline file is, or with `-C DIR`",
            );
        }
        return Err(Failure::Invalid(message));
    }
    let store = Store::open(&dir)?;
    for run in store.recovered() {
        eprintln!("note: run {run} was interrupted (its flow process ended while it ran)");
    }
    Ok(store)
}

/// Says where older runs are, the first time a pipeline directory that still has
/// them records a run in its new data dir.
fn note_legacy_runs(pipeline_dir: &Path, data_dir: &Path) {
    let legacy = places::legacy_data_dir(pipeline_dir);
    if legacy.join("store").exists() && !data_dir.join("store").exists() {
        eprintln!(
            "note: runs are now recorded in {} (outside the repository, out of every step's reach); \
             those recorded earlier stay in {} (read them with `--data-dir {}`)",
            data_dir.display(),
            legacy.display(),
            legacy.display()
        );
    }
}

fn engine(global: &Global, jobs: Option<u32>) -> Result<Engine, Failure> {
    let mut builder = Engine::builder();
    for config in templates::configs()? {
        builder = builder.template_config(config);
    }
    if let Some(dir) = cache_dir(global) {
        builder = builder.cache_dir(dir);
        // The cache's key lives with the user's keys, out of every step's reach.
        if let Some(keys) = places::key_dir() {
            let path = keys.join("cache.key");
            let key = flow_engine::CacheKey::load_or_create(&path).map_err(|e| {
                Failure::Io(format!("cannot use the cache key {}: {e}", path.display()))
            })?;
            builder = builder.cache_key(key);
        }
    }
    if let Some(jobs) = jobs {
        builder = builder.jobs(jobs as usize);
    }
    builder.build().map_err(Failure::from)
}

async fn check(global: &Global, file: &Path) -> Result<u8, Failure> {
    let engine = engine(global, None)?;
    let pipeline = engine.load_pipeline(file).await?;
    // What `flow run` would protect: its data dir, its signing key, the cache.
    let data_dir = data_dir(global, Some(file))?;
    let key_file = attest::signing_key_file(
        std::env::var_os("FLOW_SIGNING_KEY")
            .as_deref()
            .map(Path::new),
    );
    engine.check_reach(&pipeline, &data_dir, key_file.as_deref())?;
    // (step id, command), in plan order.
    let commands = || {
        pipeline
            .plan
            .steps
            .iter()
            .zip(&pipeline.exec.steps)
            .flat_map(|(step, commands)| commands.iter().map(move |c| (step.id.as_str(), c)))
    };
    if global.json {
        let mut out = serde_json::json!({"file": file.display().to_string(), "ok": true, "steps": pipeline.plan.steps.len()});
        if let Some(summary) = &pipeline.exec.summary {
            let commands: Vec<serde_json::Value> = commands()
                .map(|(step, c)| {
                    let mut json = c.to_json();
                    json["step"] = step.into();
                    json
                })
                .collect();
            out["exec"] = serde_json::json!({"confined": pipeline.exec.confine, "summary": summary, "commands": commands});
        }
        outln!("{out}");
    } else {
        outln!(
            "{}: ok ({} steps)",
            file.display(),
            pipeline.plan.steps.len()
        );
        if let Some(summary) = &pipeline.exec.summary {
            outln!("{summary}");
            for (step, c) in commands() {
                outln!("  {step}: {}", c.describe());
            }
        }
    }
    Ok(exit::SUCCESS)
}

async fn run(global: &Global, args: RunArgs, style: Style) -> Result<u8, Failure> {
    // A bad target is the user's input: say so before anything runs.
    let delivery = if args.dry_run {
        None
    } else {
        cdevents::start(&args.events_to, &templates::configs_with_paths()?)
            .map_err(Failure::Invalid)?
    };
    let engine = engine(global, args.jobs)?;
    let pipeline = engine.load_pipeline(&args.file).await?;
    let store = open_store(global, Some(&args.file))?;
    let resume = args
        .resume
        .as_deref()
        .map(|q| store.resolve(q))
        .transpose()?;
    if args.dry_run {
        let key = attest::signing_key(args.signing_key.as_deref(), store.dir())?;
        let mut options = RunOptions::new(store.clone())
            .inputs(args.inputs)
            .signing_key(key)
            .no_cache(args.no_cache);
        if let Some(dir) = args.workspace {
            options = options.workspace(dir);
        }
        let predictions = engine.predict(&pipeline, options).await?;
        cache::print_predictions(&pipeline.plan.name, &predictions, args.explain, style);
        return Ok(exit::SUCCESS);
    }
    let key = attest::signing_key(args.signing_key.as_deref(), store.dir())?;
    let cancel = CancelFlag::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if stop_signal().await {
            eprintln!("\ncancelling: stopping running steps (press Ctrl-C again to quit at once)");
            on_signal.cancel();
            if stop_signal().await {
                std::process::exit(130);
            }
        }
    });
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    // Runs in progress show in `flow serve` through their live file.
    live::clear_stale(store.dir());
    let (rx, live_file) = live::tee(rx, store.dir().to_path_buf());
    let printer = tokio::spawn(progress::render(
        rx,
        style,
        pipeline.plan.steps.iter().map(|s| s.id.clone()).collect(),
        args.explain,
    ));
    let mut options = RunOptions::new(store.clone())
        .inputs(args.inputs)
        .cancel(cancel)
        .events(tx)
        .signing_key(key)
        .no_cache(args.no_cache);
    if let Some(id) = resume {
        options = options.resume(id);
    }
    if let Some(dir) = args.workspace {
        options = options.workspace(dir);
    }
    if let Some(jobs) = args.jobs {
        options = options.jobs(jobs as usize);
    }
    if let Some(quota) = args.workspace_quota {
        options = options.workspace_quota(quota);
    }
    if let Some(delivery) = &delivery {
        options = options.deliver_events(delivery.clone());
    }
    let result = engine.run(&pipeline, options).await;
    let _ = live_file.await;
    let _ = printer.await;
    if let Some(delivery) = delivery {
        cdevents::finish(&delivery, style == Style::Json).await;
    }
    let summary = result?;
    if style != Style::Json {
        report::summary(&store, &summary);
    }
    Ok(match summary.run.status {
        RunStatus::Succeeded => exit::SUCCESS,
        _ => exit::RUN_FAILED,
    })
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM, which CI services and process managers send
/// to stop a job; false if neither can be listened for.
async fn stop_signal() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                interrupted = tokio::signal::ctrl_c() => interrupted.is_ok(),
                terminated = term.recv() => terminated.is_some(),
            },
            Err(_) => tokio::signal::ctrl_c().await.is_ok(),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

async fn serve_dashboard(
    global: &Global,
    addr: std::net::SocketAddr,
    allow_remote: bool,
) -> Result<u8, Failure> {
    let dir = data_dir(global, None)?;
    let verify: serve::Verify = std::sync::Arc::new(|store: &Store, run: &flow_store::RunId| {
        attest::verdict(store, run, None, None)
    });
    match serve::serve(dir, serve::Options { addr, allow_remote }, verify).await {
        Ok(()) => Ok(exit::SUCCESS),
        Err(serve::ServeError::Invalid(text)) => Err(Failure::Invalid(format!("error: {text}"))),
        Err(serve::ServeError::Io(text)) => Err(Failure::Io(text)),
    }
}

async fn plugins(global: &Global, style: Style) -> Result<u8, Failure> {
    let engine = engine(global, None)?;
    let plugins = engine.builtin_plugins().await;
    report::plugins(&plugins, style)
}
