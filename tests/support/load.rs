//! Load in one embedded engine, shared by the load test (`tests/load.rs`) and its
//! benchmark (`engine/benches/load.rs`): many release pipelines at once (checkout of
//! a git repository, a cargo build of a small crate, a scan against the RustSec
//! database), then many short runs back to back, with the process's resident memory
//! sampled as they go. Every run carries a token of its own, so that what each run
//! recorded can be told apart from every other's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../../engine/benches/common/stats.rs"]
#[allow(dead_code)]
mod stats;

use flow_engine::{Engine, LoadedPipeline, RunOptions, SigningKey, verification};
use flow_store::{RunId, RunStatus, StepStatus, Store};

/// What the load runs in: a git repository holding a small crate, the advisory
/// database, one engine and one store.
pub struct Fixture {
    _root: tempfile::TempDir,
    pub engine: Arc<Engine>,
    pub store: Store,
    pub key: Arc<SigningKey>,
    pub release: LoadedPipeline,
    pub short: LoadedPipeline,
    /// The commit the release pipeline checks out.
    pub commit: String,
}

/// One run's figures.
#[derive(Debug, Clone)]
pub struct Finished {
    pub run: RunId,
    pub token: String,
    pub latency: Duration,
}

/// A phase's figures.
#[derive(Debug, Default)]
pub struct Figures {
    pub runs: Vec<Finished>,
    pub wall: Duration,
    /// (runs finished, resident set size in bytes), sampled as the phase goes.
    pub rss: Vec<(usize, u64)>,
}

impl Figures {
    pub fn runs_per_second(&self) -> f64 {
        self.runs.len() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The `p`th percentile (0–100) of the runs' latencies.
    pub fn percentile(&self, p: f64) -> Duration {
        let all: Vec<Duration> = self.runs.iter().map(|r| r.latency).collect();
        if all.is_empty() {
            return Duration::ZERO;
        }
        stats::percentile(&all, p / 100.0)
    }
}

/// The process's resident set size, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=load", "-c", "user.email=load@localhost"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("make a directory");
    }
    std::fs::write(path, text).expect("write a file");
}

/// The project's files, seen from the engine package.
fn project(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The repository the release pipeline checks out: a crate with no dependencies
/// (built offline) and, under `audit/`, flow's own Cargo.lock to scan.
fn make_repo(dir: &Path) -> String {
    std::fs::create_dir_all(dir).expect("make the repository");
    git(dir, &["init", "-q"]);
    write(
        &dir.join("Cargo.toml"),
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    );
    write(
        &dir.join("src/main.rs"),
        "fn main() {\n    println!(\"tiny {}\", env!(\"CARGO_PKG_VERSION\"));\n}\n",
    );
    let lock = std::fs::read_to_string(project(
        "plugins/scan/core/tests/data/lockfiles/flow.Cargo.lock",
    ))
    .expect("read the lockfile to scan");
    write(&dir.join("audit/Cargo.lock"), &lock);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "tiny"]);
    git(dir, &["rev-parse", "HEAD"])
}

fn release_yaml(repo: &Path, db: &Path) -> String {
    let (repo, db) = (repo.display(), db.display());
    format!(
        r#"version: 1
name: load-release
inputs:
  token: {{ type: string }}
steps:
  checkout:
    uses: checkout
    grants:
      fs: [{{ path: "{repo}", access: read, hash: false }}]
    with: {{ path: src }}
  build:
    uses: build
    needs: [checkout]
    timeout: 10m
    grants:
      exec:
        - command: cargo
          reads: ["${{RUSTUP_HOME:-~/.rustup}}", "${{CARGO_HOME:-~/.cargo}}"]
      env: [HOME, RUSTUP_HOME, CARGO_HOME, RUSTUP_TOOLCHAIN, CARGO_TARGET_DIR]
    with:
      command: [cargo, build, --offline, --quiet]
      dir: src
      env: {{ CARGO_TARGET_DIR: target }}
      artifacts: [target/debug/tiny]
  scan:
    uses: scan
    needs: [checkout]
    grants:
      fs: [{{ path: "{db}", access: read }}]
    with: {{ db: "{db}", lockfiles: [src/audit/Cargo.lock], fail-on: none }}
  summary:
    uses: echo
    needs: [build, scan]
    with:
      token: ${{{{ inputs.token }}}}
      commit: ${{{{ steps.checkout.outputs.commit }}}}
      artifacts: ${{{{ steps.build.outputs.digests }}}}
"#
    )
}

const SHORT_YAML: &str = r#"version: 1
name: load-short
inputs:
  token: { type: string }
steps:
  greet:
    uses: echo
    with: { message: "hi ${{ inputs.token }}" }
  shout:
    uses: echo
    needs: [greet]
    with: { message: "${{ steps.greet.outputs.message }}!" }
"#;

impl Fixture {
    /// An engine of `jobs` slots, its store (keeping at most `store_cache` bytes of
    /// its pages in memory), and both pipelines loaded.
    pub async fn new(jobs: usize, store_cache: u64) -> Fixture {
        let root = tempfile::tempdir().expect("a temporary directory");
        let repo = root.path().join("repo");
        let commit = make_repo(&repo);
        let db = project("plugins/scan/core/tests/data/rustsec-advisory-db")
            .canonicalize()
            .expect("the advisory database");
        let engine = Arc::new(
            Engine::builder()
                .jobs(jobs)
                .cache_dir(root.path().join("cache"))
                .build()
                .expect("the engine starts"),
        );
        let release = engine
            .load_pipeline_text(&release_yaml(&repo, &db), "release.yaml", root.path())
            .await
            .unwrap_or_else(|e| panic!("the release pipeline loads: {e}"));
        let short = engine
            .load_pipeline_text(SHORT_YAML, "short.yaml", root.path())
            .await
            .unwrap_or_else(|e| panic!("the short pipeline loads: {e}"));
        let store =
            Store::open_with_cache(root.path().join("data"), store_cache).expect("the store opens");
        Fixture {
            _root: root,
            engine,
            store,
            key: Arc::new(SigningKey::from_seed(&[7; 32])),
            release,
            short,
            commit,
        }
    }

    fn options(&self, token: &str) -> RunOptions {
        RunOptions::new(self.store.clone())
            .inputs(vec![("token".into(), token.into())])
            .signing_key(self.key.clone())
    }

    /// What the store's database holds on disk, in bytes.
    pub fn store_bytes(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(_) => e.metadata().map_or(0, |m| m.len()),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.store.dir().join("store"))
    }

    /// `n` release runs started at once, each waited for.
    pub async fn release_batch(&self, n: usize, tag: &str) -> Result<Figures, String> {
        let started = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let token = format!("{tag}-{i}");
                let (engine, pipeline) = (self.engine.clone(), self.release.clone());
                // Every run does the work: nothing from the step cache.
                let options = self.options(&token).no_cache(true);
                tokio::spawn(async move {
                    let begun = Instant::now();
                    let summary = engine.run(&pipeline, options).await;
                    (token, begun.elapsed(), summary)
                })
            })
            .collect();
        let mut figures = Figures::default();
        for task in tasks {
            let (token, latency, summary) = task.await.map_err(|e| e.to_string())?;
            let summary = summary.map_err(|e| format!("run {token}: {e}"))?;
            if summary.run.status != RunStatus::Succeeded {
                let why: Vec<String> = summary
                    .steps
                    .iter()
                    .filter_map(|s| s.reason.as_ref().map(|r| format!("{}: {r}", s.step_id)))
                    .collect();
                return Err(format!("run {token} {}: {why:?}", summary.run.status));
            }
            figures.runs.push(Finished {
                run: summary.run.id.clone(),
                token,
                latency,
            });
        }
        figures.wall = started.elapsed();
        figures.rss.push((n, rss_bytes()));
        Ok(figures)
    }

    /// `n` short runs back to back; the resident set size sampled every `every`.
    pub async fn short_series(&self, n: usize, every: usize, tag: &str) -> Result<Figures, String> {
        let started = Instant::now();
        let mut figures = Figures {
            rss: vec![(0, rss_bytes())],
            ..Figures::default()
        };
        for i in 0..n {
            let token = format!("{tag}-{i}");
            let begun = Instant::now();
            let summary = self
                .engine
                .run(&self.short, self.options(&token))
                .await
                .map_err(|e| format!("run {token}: {e}"))?;
            if summary.run.status != RunStatus::Succeeded {
                return Err(format!("run {token}: {}", summary.run.status));
            }
            figures.runs.push(Finished {
                run: summary.run.id.clone(),
                token,
                latency: begun.elapsed(),
            });
            if (i + 1).is_multiple_of(every.max(1)) {
                figures.rss.push((i + 1, rss_bytes()));
            }
        }
        figures.wall = started.elapsed();
        Ok(figures)
    }

    /// Every run of `figures` is in the store, succeeded with all its steps, holds
    /// its own token and nobody else's, and its provenance verifies under the key.
    pub fn check_recorded(&self, figures: &Figures) -> Result<(), String> {
        let mut seen = BTreeMap::new();
        for finished in &figures.runs {
            if let Some(other) = seen.insert(finished.run.to_string(), &finished.token) {
                return Err(format!(
                    "runs {other} and {} share the id {}",
                    finished.token, finished.run
                ));
            }
            let run = self
                .store
                .run(&finished.run)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!("run {} ({}) was not recorded", finished.run, finished.token)
                })?;
            if run.status != RunStatus::Succeeded {
                return Err(format!("run {} is recorded {}", finished.token, run.status));
            }
            let token = run.inputs.get("token").and_then(|v| v.as_str());
            if token != Some(finished.token.as_str()) {
                return Err(format!(
                    "run {} was recorded with the input {token:?}",
                    finished.token
                ));
            }
            let steps = self.store.steps(&finished.run).map_err(|e| e.to_string())?;
            if let Some(step) = steps.iter().find(|s| s.status != StepStatus::Succeeded) {
                return Err(format!(
                    "run {}: step {} is {}",
                    finished.token, step.step_id, step.status
                ));
            }
            let Some(last) = steps.last() else {
                return Err(format!("run {} recorded no steps", finished.token));
            };
            let carried = last
                .outputs
                .values()
                .any(|v| v.contains(finished.token.as_str()))
                && last
                    .outputs
                    .get("commit")
                    .is_none_or(|commit| *commit == self.commit);
            if !carried {
                return Err(format!(
                    "run {}: its last step's outputs are not its own: {:?}",
                    finished.token, last.outputs
                ));
            }
            let bundle = verification::bundle(&self.store, &finished.run)
                .map_err(|e| format!("run {}: {e}", finished.token))?;
            let report = verification::verify(&bundle, Some(self.key.public_key()));
            if !report.is_ok() {
                return Err(format!(
                    "run {} does not verify: {report:?}",
                    finished.token
                ));
            }
        }
        Ok(())
    }
}

/// The figures as the benchmark prints them.
pub fn describe(name: &str, figures: &Figures) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut text = format!(
        "{name}: {} runs in {:.2} s: {:.1} runs/s, latency p50 {:.1} ms, p99 {:.1} ms\n",
        figures.runs.len(),
        figures.wall.as_secs_f64(),
        figures.runs_per_second(),
        figures.percentile(50.0).as_secs_f64() * 1e3,
        figures.percentile(99.0).as_secs_f64() * 1e3,
    );
    if figures.rss.len() > 1 {
        text.push_str("  RSS over the runs:");
        for (runs, bytes) in &figures.rss {
            text.push_str(&format!(" {runs}:{:.1}", mib(*bytes)));
        }
        text.push_str(" MiB\n");
    }
    text
}
