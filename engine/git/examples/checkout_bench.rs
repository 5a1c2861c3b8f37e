//! Times a flow-git checkout against `git checkout` and `git archive | tar -x`.
//!
//! ```text
//! cargo run --release -p flow-git --example checkout_bench -- REPO [REV] [--runs N]
//! cargo run --release -p flow-git --example checkout_bench -- --generate DIR [--files N]
//! ```
//!
//! `--generate` builds a test repository with history from the crate sources in the cargo
//! registry (`$CARGO_HOME/registry/src`), then benchmarks it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flow_git::{FsSink, Repository};

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut repo, mut rev, mut runs, mut generate, mut files) =
        (None, None, 7usize, None, 20_000usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            "--generate" => generate = args.next().map(PathBuf::from),
            "--files" => files = args.next().and_then(|n| n.parse().ok()).expect("--files N"),
            _ if repo.is_none() => repo = Some(PathBuf::from(a)),
            _ => rev = Some(a),
        }
    }
    if let Some(dir) = generate {
        generate_registry_repo(&dir, files);
        repo = Some(dir);
    }
    let repo_path =
        repo.expect("usage: checkout_bench REPO [REV] [--runs N] | --generate DIR [--files N]");
    let rev = rev.unwrap_or_else(|| "HEAD".into());
    let repo = Repository::open(&repo_path).expect("open repository");
    let resolved = repo.resolve(Some(&rev)).expect("resolve");
    let git_dir = repo.git_dir().to_owned();
    drop(repo);
    let scratch = tempfile::tempdir().expect("tempdir");

    let mut report = None;
    let ours = time_runs(runs, scratch.path(), |out| {
        // Open and resolve included: that is what the plugin does.
        let repo = Repository::open(&repo_path).unwrap();
        let r = repo.resolve(Some(&rev)).unwrap();
        report = Some(repo.checkout(r.tree, &mut FsSink::new(out)).unwrap());
    });
    // The same checkout into a sink that discards everything: the cost of reading objects.
    let decode_only = time_runs(runs, scratch.path(), |out| {
        std::fs::create_dir_all(out).unwrap();
        let repo = Repository::open(&repo_path).unwrap();
        let r = repo.resolve(Some(&rev)).unwrap();
        repo.checkout(r.tree, &mut NullSink).unwrap();
    });
    let git_checkout = time_runs(runs, scratch.path(), |out| {
        std::fs::create_dir_all(out).unwrap();
        let status = Command::new("git")
            .env("GIT_INDEX_FILE", out.with_extension("index"))
            .arg("--git-dir")
            .arg(&git_dir)
            .arg("--work-tree")
            .arg(out)
            .args(["checkout", "-q", "-f", &resolved.commit.to_hex(), "--", "."])
            .status()
            .unwrap();
        assert!(status.success());
    });
    let git_archive = time_runs(runs, scratch.path(), |out| {
        std::fs::create_dir_all(out).unwrap();
        let mut archive = Command::new("git")
            .arg("--git-dir")
            .arg(&git_dir)
            .args(["archive", &resolved.commit.to_hex()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let status = Command::new("tar")
            .arg("-x")
            .arg("-C")
            .arg(out)
            .stdin(archive.stdout.take().unwrap())
            .status()
            .unwrap();
        assert!(status.success() && archive.wait().unwrap().success());
    });

    let report = report.expect("at least one run");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "repository: {} @ {rev} ({})",
        repo_path.display(),
        resolved.commit
    );
    println!(
        "checkout: {} files ({} executable), {} symlinks, {} dirs, {:.1} MiB, {} submodules, {} LFS pointers",
        report.files,
        report.executables,
        report.symlinks,
        report.dirs,
        report.bytes as f64 / (1 << 20) as f64,
        report.submodules.len(),
        report.lfs_pointers.len()
    );
    println!("median of {runs} runs:");
    println!("  flow-git checkout      {:8.1} ms", ms(ours));
    println!(
        "  flow-git, no writes    {:8.1} ms   (object reading only)",
        ms(decode_only)
    );
    println!(
        "  git checkout -f        {:8.1} ms   (flow-git/git = {:.2})",
        ms(git_checkout),
        ms(ours) / ms(git_checkout)
    );
    println!(
        "  git archive | tar -x   {:8.1} ms   (flow-git/archive = {:.2})",
        ms(git_archive),
        ms(ours) / ms(git_archive)
    );
}

/// Discards everything.
struct NullSink;

impl flow_git::Sink for NullSink {
    fn create_dir(&mut self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn write_file(&mut self, _: &str, data: &[u8], _: bool) -> std::io::Result<()> {
        std::hint::black_box(data);
        Ok(())
    }
    fn symlink(&mut self, _: &[u8], _: &str) -> std::io::Result<()> {
        Ok(())
    }
}

/// Median duration of `runs` runs of `f`, each into a fresh directory (removed untimed).
fn time_runs(runs: usize, scratch: &Path, mut f: impl FnMut(&Path)) -> Duration {
    let mut times = Vec::new();
    for i in 0..runs.max(1) {
        let out = scratch.join(format!("run-{i}"));
        let start = Instant::now();
        f(&out);
        times.push(start.elapsed());
        std::fs::remove_dir_all(&out).unwrap();
        let _ = std::fs::remove_file(out.with_extension("index"));
    }
    times.sort();
    times[times.len() / 2]
}

/// `git` with a hermetic configuration, in `dir`.
fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?}");
}

fn copy_tree(src: &Path, dst: &Path) -> usize {
    let mut n = 0;
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let t = e.file_type().unwrap();
        if e.file_name() == ".git" {
            continue;
        }
        if t.is_dir() {
            n += copy_tree(&e.path(), &dst.join(e.file_name()));
        } else if t.is_file() {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
            n += 1;
        }
    }
    n
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_name() == ".git" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            rust_files(&e.path(), out);
        } else if e.path().extension().is_some_and(|x| x == "rs") {
            out.push(e.path());
        }
    }
}

/// Builds a repository with history from registry crate sources (about `max_files` files).
fn generate_registry_repo(dir: &Path, max_files: usize) {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap()).join(".cargo"));
    let mut crates: Vec<PathBuf> = std::fs::read_dir(home.join("registry/src"))
        .expect("cargo registry sources")
        .flatten()
        .flat_map(|i| std::fs::read_dir(i.path()).into_iter().flatten().flatten())
        .map(|c| c.path())
        .filter(|p| p.is_dir())
        .collect();
    crates.sort();
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q"]);
    let (mut files, mut next) = (0, 0);
    let add_until = |limit: usize, files: &mut usize, next: &mut usize| {
        while *files < limit && *next < crates.len() {
            let src = &crates[*next];
            *files += copy_tree(src, &dir.join("crates").join(src.file_name().unwrap()));
            *next += 1;
        }
    };
    let commit = |msg: &str| {
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", msg]);
    };
    add_until(max_files * 6 / 10, &mut files, &mut next);
    commit("add crates");
    for round in 1..=3 {
        let mut rs = Vec::new();
        rust_files(dir, &mut rs);
        rs.sort();
        for (i, p) in rs.iter().enumerate() {
            if i % 5 == round {
                let mut data = std::fs::read(p).unwrap();
                data.splice(0..0, format!("// edited in round {round}\n").into_bytes());
                let mid = data.len() / 2;
                data.splice(mid..mid, format!("\n// middle edit {round}\n").into_bytes());
                std::fs::write(p, data).unwrap();
            }
        }
        if round == 2 {
            add_until(max_files, &mut files, &mut next);
        }
        commit(&format!("round {round}"));
    }
    git(
        dir,
        &[
            "repack",
            "-q",
            "-a",
            "-d",
            "-f",
            "--depth=50",
            "--window=50",
        ],
    );
    eprintln!("generated {} with about {files} files", dir.display());
}
