//! cargo bench -p flow-provenance --bench provenance
//!
//! Prints medians for: recording a no-op step (statement + link, both signed), and
//! snapshotting a generated 1,300-file source tree as materials and products with a cold
//! digest cache. With `FLOW_INTOTO_VENV` set (see tests/python_tools.rs), also times
//! `in-toto-run` recording the same tree with an ed25519 key and prints the ratio.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use flow_provenance::{
    DigestCache, Outcome, Root, RunChain, SigningKey, StepEvidence, attest_step, products,
};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn percentile(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p) as usize]
}

fn noop_evidence() -> StepEvidence {
    StepEvidence {
        run_id: "01J9Z7Q4W8Y2XK3M5N6P7R8S9T".into(),
        step_id: "lint".into(),
        pipeline_name: "ci".into(),
        pipeline_file: "flow.yaml".into(),
        pipeline_sha256: "1f".repeat(32),
        plugin: "https://plugins.flow.dev/echo@1.0.0".into(),
        plugin_sha256: "ab".repeat(32),
        params: serde_json::json!({"message": "hello", "token": "${secrets.TOKEN}"}),
        grants: serde_json::json!({"read": ["workspace"], "write": []}),
        started_unix_ms: 1_760_000_000_000,
        finished_unix_ms: 1_760_000_000_004,
        outcome: Outcome::Succeeded,
        failure_reason: None,
        engine_name: "flow".into(),
        engine_version: "0.1.0".into(),
        materials: BTreeMap::new(),
        products: BTreeMap::new(),
        needs: vec!["checkout".into()],
        notes: vec![],
        dependencies: vec![],
        commands: vec![],
        template: None,
    }
}

fn bench_noop_step() {
    let key = SigningKey::generate().expect("key");
    let evidence = noop_evidence();
    let layout = flow_provenance::Envelope::sign("t", vec![], &key).expect("sign");
    let mut record = RunChain::new("run", "ci", &layout);
    for _ in 0..500 {
        std::hint::black_box(attest_step(&evidence, &key).expect("attest"));
    }
    let (mut attest, mut chain) = (Vec::new(), Vec::new());
    for _ in 0..5000 {
        let start = Instant::now();
        let attestation = attest_step(std::hint::black_box(&evidence), &key).expect("attest");
        attest.push(start.elapsed());
        let start = Instant::now();
        record.push(Outcome::Succeeded, &attestation);
        std::hint::black_box(record.sign(&key).expect("sign"));
        chain.push(start.elapsed());
        record.steps.pop();
    }
    let mut build = Vec::new();
    for _ in 0..5000 {
        let start = Instant::now();
        let link =
            flow_provenance::link::link_payload(std::hint::black_box(&evidence)).expect("link");
        std::hint::black_box(
            flow_provenance::statement::statement_payload(&evidence, &link).expect("statement"),
        );
        build.push(start.elapsed());
    }
    let mut sign = Vec::new();
    for _ in 0..5000 {
        let start = Instant::now();
        std::hint::black_box(
            key.sign(std::hint::black_box(
                b"DSSEv1 28 application/vnd.in-toto+json 600 ...",
            ))
            .expect("sign"),
        );
        sign.push(start.elapsed());
    }
    println!(
        "no-op step: statement + link built and signed: median {:?}, p90 {:?} (building both payloads {:?}; one ed25519 signature {:?})",
        median(attest.clone()),
        percentile(attest, 0.9),
        median(build),
        median(sign)
    );
    println!(
        "            run record updated and re-signed after the step: median {:?}",
        median(chain)
    );
}

/// A deterministic source tree: 1,300 files of 1-50 KB in nested directories.
fn generate_tree(root: &Path, files: usize) -> u64 {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut total = 0;
    for i in 0..files {
        let dir = root.join(format!(
            "crate{}/src/mod{}/sub{}",
            i % 13,
            (i / 13) % 10,
            (i / 130) % 4
        ));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let size = 1024 + (next() % (49 * 1024)) as usize;
        let bytes: Vec<u8> = (0..size).map(|_| (next() % 95 + 32) as u8).collect();
        let path = dir.join(format!("file{i}.rs"));
        std::fs::write(&path, &bytes).expect("write");
        total += size as u64;
    }
    total
}

/// Sets every file's mtime an hour back: a tree checked out before the run.
fn backdate(root: &Path) {
    let old = SystemTime::now() - Duration::from_secs(3600);
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(old))
                    .expect("mtime");
            }
        }
    }
}

fn record_both_sides(tree: &Path) -> (Duration, usize) {
    let start = Instant::now();
    let cache = DigestCache::new();
    let roots = [Root::workspace(tree)];
    let materials = cache.snapshot(&roots);
    let after = cache.snapshot(&roots);
    let produced = products(&materials.artifacts, &after.artifacts);
    let elapsed = start.elapsed();
    assert!(produced.is_empty() && materials.skipped.is_empty());
    (elapsed, materials.artifacts.len())
}

fn bench_snapshot(tree: &Path, bytes: u64) -> Duration {
    let (_, files) = record_both_sides(tree); // warm the page cache, as a checkout would
    let samples: Vec<Duration> = (0..15).map(|_| record_both_sides(tree).0).collect();
    let both = median(samples);
    let materials_only: Vec<Duration> = (0..15)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(DigestCache::new().snapshot(&[Root::workspace(tree)]));
            start.elapsed()
        })
        .collect();
    println!(
        "snapshot, {files} files ({:.1} MB), cold cache, materials + products: median {:?} (materials alone {:?}, {} hashing threads)",
        bytes as f64 / 1e6,
        both,
        median(materials_only),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8)
    );
    both
}

fn bench_in_toto_run(tree: &Path, ours: Duration) {
    let Some(venv) = std::env::var_os("FLOW_INTOTO_VENV") else {
        println!("in-toto-run: NOT RUN: FLOW_INTOTO_VENV is not set (see tests/python_tools.rs)");
        return;
    };
    let tool = Path::new(&venv).join("bin/in-toto-run");
    let keys = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate().expect("key");
    let paths = flow_provenance::keys::write_key_pair(keys.path(), &key).expect("keys");
    let out = tempfile::tempdir().expect("tempdir");
    let empty = tempfile::tempdir().expect("tempdir");
    let run = |dir: &Path| {
        let start = Instant::now();
        let status = Command::new(&tool)
            .args(["--step-name", "x", "--signing-key"])
            .arg(&paths.private_key)
            .args([
                "--use-dsse",
                "--materials",
                ".",
                "--products",
                ".",
                "--metadata-directory",
            ])
            .arg(out.path())
            .args(["--", "true"])
            .current_dir(dir)
            .status()
            .expect("run in-toto-run");
        assert!(status.success(), "in-toto-run failed");
        start.elapsed()
    };
    let full = median((0..5).map(|_| run(tree)).collect());
    let startup = median((0..5).map(|_| run(empty.path())).collect());
    println!(
        "in-toto-run on the same tree (ed25519, DSSE): median {full:?}; on an empty dir {startup:?}; \
         ratio {:.0}x overall, {:.0}x without interpreter start-up",
        full.as_secs_f64() / ours.as_secs_f64(),
        full.saturating_sub(startup).as_secs_f64() / ours.as_secs_f64()
    );
}

fn main() {
    bench_noop_step();
    let tree = tempfile::tempdir().expect("tempdir");
    let bytes = generate_tree(tree.path(), 1300);
    let (fresh, _) = record_both_sides(tree.path());
    println!(
        "snapshot of a tree written just now (racy window: products side re-hashes): {fresh:?}"
    );
    backdate(tree.path());
    let ours = bench_snapshot(tree.path(), bytes);
    bench_in_toto_run(tree.path(), ours);
}
