//! A step's view of the workspace, on a tree the size of a real repository: keeping
//! a tree's files in the object store the first time, writing a view of it, keeping
//! the view again after a step that changed nothing and after one that changed a
//! file, against `cp -a` and `cp -al` of the same tree. Prints figures:
//!
//!     cargo bench -p flow-engine --bench views [-- DIR]
//!
//! DIR defaults to a generated tree of 4,625 files in 310 directories (the file count
//! of a rust-clippy checkout; sizes spread from 100 bytes to 64 KiB, about 28 MB in
//! all). `FLOW_BENCH_RUNS` sets the number of runs (default 7). Run it on the
//! filesystem the data dir lives on: on tmpfs copies cost memory bandwidth only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use flow_engine::bench::{keep_tree, write_view};
use flow_store::Objects;

mod common;
use common::{median, ms};

/// A deterministic tree of `files` files: sizes from a small generator, so every run
/// and machine writes the same bytes.
fn generate(dir: &Path, files: usize) -> u64 {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut total = 0u64;
    for i in 0..files {
        let sub = dir
            .join(format!("crate{}", i % 31))
            .join(format!("mod{}", i % 10));
        std::fs::create_dir_all(&sub).unwrap();
        // Mostly small source files, a few larger ones.
        let size = match next() % 100 {
            0..=69 => 100 + next() % 4_000,
            70..=94 => 4_000 + next() % 12_000,
            _ => 16_000 + next() % 48_000,
        } as usize;
        let line = format!("// file {i}: generated for the views benchmark\n");
        let content: String = line.repeat(size / line.len() + 1)[..size].to_owned();
        std::fs::write(sub.join(format!("file{i}.rs")), content).unwrap();
        total += size as u64;
    }
    total
}

fn count_files(dir: &Path) -> (usize, u64) {
    let mut files = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            let (f, b) = count_files(&entry.path());
            files += f;
            bytes += b;
        } else if meta.is_file() {
            files += 1;
            bytes += meta.len();
        }
    }
    (files, bytes)
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn cp(args: &[&str], from: &Path, to: &Path) -> Duration {
    timed(|| {
        let status = Command::new("cp")
            .args(args)
            .arg(from)
            .arg(to)
            .status()
            .expect("cp runs");
        assert!(status.success());
    })
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs: usize = std::env::var("FLOW_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let scratch = tempfile::tempdir().unwrap();
    let source = match args.first() {
        Some(dir) => PathBuf::from(dir),
        None => {
            let dir = scratch.path().join("tree");
            generate(&dir, 4_625);
            dir
        }
    };
    let (files, bytes) = count_files(&source);
    println!(
        "tree: {} ({files} files, {:.1} MB)",
        source.display(),
        bytes as f64 / 1e6
    );

    let (mut first_keep, mut view, mut keep_same, mut keep_one, mut cp_a, mut cp_al) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        let round = scratch.path().join(format!("run{run}"));
        std::fs::create_dir_all(&round).unwrap();
        // A fresh object store each run: the first keep reads and writes every file.
        let objects = Objects::open(round.join("objects")).unwrap();
        let mut tree = None;
        first_keep.push(timed(|| {
            tree = Some(keep_tree(&objects, &source, None, SystemTime::now()).unwrap());
        }));
        let tree = tree.unwrap();

        let dir = round.join("view");
        std::fs::create_dir(&dir).unwrap();
        let mut shown = None;
        view.push(timed(|| {
            shown = Some(write_view(&objects, &dir, tree.clone()).unwrap());
        }));
        let shown = shown.unwrap();
        // A step that started well after its view was written and changed nothing:
        // no file is read again.
        let later = SystemTime::now() + Duration::from_secs(5);
        keep_same.push(timed(|| {
            let after = keep_tree(&objects, &dir, Some(&shown), later).unwrap();
            assert_eq!(after.len(), tree.len());
        }));
        // One file changed.
        let changed = dir.join("crate0/mod0/file0.rs");
        std::fs::write(&changed, "// changed\n").unwrap();
        keep_one.push(timed(|| {
            keep_tree(&objects, &dir, Some(&shown), later).unwrap();
        }));

        cp_a.push(cp(&["-a"], &source, &round.join("cp-a")));
        cp_al.push(cp(&["-al"], &source, &round.join("cp-al")));
        std::fs::remove_dir_all(&round).unwrap();
    }
    let line = |what: &str, times: &[Duration]| {
        let m = median(times.to_vec());
        println!(
            "{what:<58} median {:>9}  ({:.2}x cp -a)",
            ms(m),
            m.as_secs_f64() / median(cp_a.clone()).as_secs_f64()
        );
    };
    println!("{runs} runs:");
    line(
        "keep the tree in a new object store (read, hash, write)",
        &first_keep,
    );
    line("write a step's view of it from the store", &view);
    line(
        "keep the view after a step that changed nothing",
        &keep_same,
    );
    line(
        "keep the view after a step that changed one file",
        &keep_one,
    );
    line("cp -a of the tree", &cp_a);
    line("cp -al of the tree (hard links)", &cp_al);
}
