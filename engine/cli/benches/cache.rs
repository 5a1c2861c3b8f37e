//! The step cache on a real pipeline; prints figures. Run with:
//!
//!     cargo bench -p flow-cli --bench cache
//!
//! A repository of its own (the sample crate of the checkout-build example, in a new
//! git repository) released by the acme/rust-service template (checkout, compile,
//! unit-tests, scan, sign, publish), as the `flow` command, compiled plugins cached:
//!
//! - cold: the first run in a fresh data dir (cargo builds from nothing);
//! - re-run, nothing changed: what the cache stands in for, and the time;
//! - re-run after one source file changed (a new commit), and which steps ran.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../../benches/common/stats.rs"]
#[allow(dead_code)]
mod stats;
use stats::{median, ms};

const FLOW: &str = env!("CARGO_BIN_EXE_flow");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn git(repo: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.invalid",
        ])
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?}");
}

struct Bench {
    tmp: tempfile::TempDir,
}

impl Bench {
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn flow(&self, data: &str, args: &[&str]) -> (Duration, String) {
        let start = Instant::now();
        let out = Command::new(FLOW)
            .args(["--plain", "--data-dir"])
            .arg(self.path(data))
            .args(args)
            .current_dir(self.path("repo"))
            .env("FLOW_CACHE_DIR", self.path("cache"))
            .env("FLOW_SIGNING_KEY", self.path("keys/signing-key.pem"))
            .env("FLOW_RELEASE_KEY", self.path("release/signing-key.pem"))
            .output()
            .expect("run flow");
        let took = start.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "flow {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (took, stdout)
    }
}

/// The steps a run's output says ran (rather than being taken from the cache).
fn ran(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_suffix("  started").map(|s| s.trim().to_owned()))
        .filter(|step| {
            !stdout
                .lines()
                .any(|l| l.starts_with(step.as_str()) && l.contains(", cached (from "))
        })
        .collect()
}

fn main() {
    let bench = Bench {
        tmp: tempfile::tempdir().expect("temp dir"),
    };
    let repo = bench.path("repo");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    let sample = root().join("templates/examples/checkout-build/sample");
    for file in ["Cargo.toml", "Cargo.lock", "src/main.rs"] {
        std::fs::copy(sample.join(file), repo.join(file)).unwrap();
    }
    std::fs::write(
        repo.join("flow.yaml"),
        format!(
            "version: 1\nextends: acme/rust-service@^1.2\ncatalogs:\n  - path: {}\nwith:\n  crate: sample\n  repo: .\n  advisory-db: {}\n",
            root().join("templates").display(),
            root()
                .join("plugins/scan/core/tests/data/rustsec-advisory-db")
                .display()
        ),
    )
    .unwrap();
    std::fs::write(repo.join(".gitignore"), "target/\n").unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "sample"]);
    for dir in ["keys", "release"] {
        let out = bench.path(dir);
        let status = Command::new(FLOW)
            .args(["keys", "generate", "--out"])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("flow keys generate");
        assert!(status.success());
    }
    // Plugins compiled once, outside the figures.
    bench.flow("warm-up", &["run", "--no-cache"]);

    let mut cold = Vec::new();
    let mut cached = Vec::new();
    let mut last = String::new();
    for round in 0..3 {
        let data = format!("data-{round}");
        cold.push(bench.flow(&data, &["run"]).0);
        for _ in 0..3 {
            let (took, stdout) = bench.flow(&data, &["run"]);
            cached.push(took);
            last = stdout;
        }
    }
    let cold_median = median(cold.clone());
    let cached_median = median(cached.clone());
    println!(
        "rust-service, cold (cargo from nothing), {} runs: median {}",
        cold.len(),
        ms(cold_median)
    );
    println!(
        "rust-service, re-run with nothing changed, {} runs: median {} ({:.1}x faster); ran: {}",
        cached.len(),
        ms(cached_median),
        cold_median.as_secs_f64() / cached_median.as_secs_f64(),
        ran(&last).join(", ")
    );

    // One source file changes, in a new commit.
    let main_rs = repo.join("src/main.rs");
    let mut text = std::fs::read_to_string(&main_rs).unwrap();
    text.push_str("\n// changed\n");
    std::fs::write(&main_rs, text).unwrap();
    git(&repo, &["commit", "-q", "-am", "change"]);
    let (changed, stdout) = bench.flow("data-0", &["run", "--explain"]);
    println!(
        "rust-service, re-run after one source file changed: {} ({:.1}x faster than cold); ran: {}",
        ms(changed),
        cold_median.as_secs_f64() / changed.as_secs_f64(),
        ran(&stdout).join(", ")
    );
    let (again, stdout) = bench.flow("data-0", &["run"]);
    println!(
        "rust-service, the same again: {}; ran: {}",
        ms(again),
        ran(&stdout).join(", ")
    );
}
