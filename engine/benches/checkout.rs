//! The `checkout` plugin (inside WebAssembly) against `git`, side by side, on
//! the same repository and commit, each into an empty directory. Prints figures:
//!
//!     cargo bench -p flow-engine --bench checkout [-- REPO [REV]]
//!
//! REPO defaults to this project's own clone; `FLOW_BENCH_RUNS` sets the number
//! of runs (default 7). For `git`, two ways of writing a commit into an empty
//! directory: `git checkout` with a throw-away index (what `git clone` does after
//! fetching), and `git archive | tar -x`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use flow_engine::Engine;
use flow_engine::bench::DirGrant;

mod common;
use common::{median, ms};

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let repo = args.first().map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    });
    let repo = repo.canonicalize().expect("the repository exists");
    let rev = args.get(1).cloned().unwrap_or_else(|| "HEAD".into());
    let runs: usize = std::env::var("FLOW_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let commit = git(&repo, &["rev-parse", &format!("{rev}^{{commit}}")]);
    let files = git(&repo, &["ls-tree", "-r", "--name-only", &commit])
        .lines()
        .count();
    let git_dir = PathBuf::from(git(&repo, &["rev-parse", "--absolute-git-dir"]));
    println!("repository {} at {commit}: {files} files", repo.display());

    let tmp = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let mut flow_samples = Vec::new();
    rt.block_on(async {
        let engine = Engine::builder()
            .cache_dir(tmp.path().join("cache"))
            .jobs(1)
            .build()
            .expect("engine");
        let plugin = common::builtin(&engine, "checkout").await;
        let mut params = serde_json::Map::new();
        params.insert("repo".into(), repo.display().to_string().into());
        params.insert("ref".into(), commit.clone().into());
        params.insert("path".into(), ".".into());
        let dirs = [DirGrant {
            path: repo.clone(),
            writable: false,
            identity: None,
        }];
        for i in 0..runs + 1 {
            let workspace = tmp.path().join(format!("flow-{i}"));
            std::fs::create_dir_all(&workspace).unwrap();
            let workspace = workspace.canonicalize().unwrap();
            let (outputs, took) =
                common::run_once(&engine, &plugin, &params, &workspace, &dirs, 2 << 30).await;
            assert_eq!(outputs["commit"], commit);
            if i > 0 {
                flow_samples.push(took); // the first run warms the page cache
            }
            std::fs::remove_dir_all(&workspace).ok();
        }
    });

    let mut checkout_samples = Vec::new();
    let mut archive_samples = Vec::new();
    for i in 0..runs + 1 {
        let out = tmp.path().join(format!("git-{i}"));
        std::fs::create_dir_all(&out).unwrap();
        let start = Instant::now();
        let status = Command::new("git")
            .arg("--git-dir")
            .arg(&git_dir)
            .arg("--work-tree")
            .arg(&out)
            .args(["checkout", "-q", "-f", &commit, "--", "."])
            .env("GIT_INDEX_FILE", tmp.path().join(format!("index-{i}")))
            .status()
            .expect("git checkout");
        let took = start.elapsed();
        assert!(status.success());
        if i > 0 {
            checkout_samples.push(took);
        }
        std::fs::remove_dir_all(&out).ok();

        let out = tmp.path().join(format!("tar-{i}"));
        std::fs::create_dir_all(&out).unwrap();
        let start = Instant::now();
        let mut archive = Command::new("git")
            .arg("--git-dir")
            .arg(&git_dir)
            .args(["archive", &commit])
            .stdout(Stdio::piped())
            .spawn()
            .expect("git archive");
        let status = Command::new("tar")
            .arg("-x")
            .arg("-C")
            .arg(&out)
            .stdin(archive.stdout.take().unwrap())
            .status()
            .expect("tar");
        assert!(status.success() && archive.wait().unwrap().success());
        if i > 0 {
            archive_samples.push(Instant::now().duration_since(start));
        }
        std::fs::remove_dir_all(&out).ok();
    }
    let (flow, checkout, archive) = (
        median(flow_samples),
        median(checkout_samples),
        median(archive_samples),
    );
    println!("median of {runs} runs, each into an empty directory:");
    println!("  flow checkout plugin (wasm, whole step): {}", ms(flow));
    println!(
        "  git checkout (temporary index):           {}",
        ms(checkout)
    );
    println!(
        "  git archive | tar -x:                     {}",
        ms(archive)
    );
    println!(
        "  ratio flow / git checkout: {:.2}x   (target: within 2x)",
        flow.as_secs_f64() / checkout.as_secs_f64()
    );
}
