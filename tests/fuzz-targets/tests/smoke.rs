//! A short run of every fuzz target in the test suite: its seed corpus (the
//! project's own test data and files made here with the real tools), then a few
//! thousand inputs mutated from it (byte flips, cuts, repeats, splices, tokens of
//! the format), with a fixed seed so that a failure repeats. A panic fails the test
//! and keeps the input under the target dir's `tmp/fuzz-crashes/`. Long runs use
//! the same targets through cargo-fuzz (`tests/fuzz/`, see docs/robustness.md).
//!
//! `FLOW_FUZZ_SMOKE_RUNS` sets the mutated inputs per target (default 3000);
//! `FLOW_FUZZ_CORPUS_OUT=DIR` also writes the seeds to `DIR/TARGET/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use flow_fuzz_targets::TARGETS;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files_under(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<Vec<u8>>, most: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if out.len() >= most {
            return;
        }
        if path.is_dir() {
            files_under(&path, keep, out, most);
        } else if keep(&path)
            && let Ok(bytes) = std::fs::read(&path)
        {
            out.push(bytes);
        }
    }
}

fn ends(ext: &'static str) -> impl Fn(&Path) -> bool {
    move |p: &Path| p.to_string_lossy().ends_with(ext)
}

fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Fuzz")
        .env("GIT_AUTHOR_EMAIL", "fuzz@flow.invalid")
        .env("GIT_COMMITTER_NAME", "Fuzz")
        .env("GIT_COMMITTER_EMAIL", "fuzz@flow.invalid")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A small repository packed by git itself (with deltas between two versions of a
/// file), as the `git_pack` target reads it; and its commit and tree objects.
fn git_seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q", "-b", "main"]);
    let text: String = (0..200).map(|i| format!("line {i}\n")).collect();
    std::fs::create_dir_all(repo.join("src")).unwrap();
    std::fs::write(repo.join("src/a.txt"), &text).unwrap();
    std::os::unix::fs::symlink("src/a.txt", repo.join("link")).unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "one"]);
    std::fs::write(repo.join("src/a.txt"), format!("{text}one more\n")).unwrap();
    git(repo, &["commit", "-q", "-am", "two"]);
    git(repo, &["tag", "-a", "-m", "v1", "v1"]);
    git(repo, &["gc", "-q", "--aggressive"]);
    let head = String::from_utf8(git(repo, &["rev-parse", "HEAD"])).unwrap();
    let commit: Vec<u8> = (0..20)
        .map(|i| u8::from_str_radix(&head.trim()[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let mut packs = Vec::new();
    for entry in std::fs::read_dir(repo.join(".git/objects/pack")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "idx") {
            let idx = std::fs::read(&path).unwrap();
            let pack = std::fs::read(path.with_extension("pack")).unwrap();
            let mut seed = commit.clone();
            seed.extend_from_slice(&(idx.len() as u32).to_be_bytes());
            seed.extend_from_slice(&idx);
            seed.extend_from_slice(&pack);
            packs.push(seed);
        }
    }
    let objects = ["HEAD", "HEAD^{tree}", "v1"]
        .iter()
        .map(|rev| {
            let kind = String::from_utf8(git(repo, &["cat-file", "-t", rev])).unwrap();
            git(repo, &["cat-file", kind.trim(), rev])
        })
        .collect();
    (packs, objects)
}

/// Signed provenance made by the library, as `dsse` and `export_dir` read it.
fn provenance_seeds() -> Vec<Vec<u8>> {
    let key = flow_provenance::SigningKey::generate().unwrap();
    let evidence = flow_provenance::StepEvidence {
        run_id: "20260101-000000-0000".into(),
        step_id: "build".into(),
        pipeline_name: "fuzz".into(),
        pipeline_file: "flow.yaml".into(),
        pipeline_sha256: "ab".repeat(32),
        plugin: "echo".into(),
        plugin_sha256: "cd".repeat(32),
        params: serde_json::json!({ "message": "hi" }),
        grants: serde_json::json!({ "fs": [] }),
        started_unix_ms: 1,
        finished_unix_ms: 2,
        outcome: flow_provenance::Outcome::Succeeded,
        failure_reason: None,
        engine_name: "flow".into(),
        engine_version: "0.1.0".into(),
        materials: BTreeMap::new(),
        products: BTreeMap::new(),
        needs: Vec::new(),
        notes: Vec::new(),
        dependencies: Vec::new(),
        commands: Vec::new(),
        template: None,
    };
    let signed = flow_provenance::attest_step(&evidence, &key).unwrap();
    let link = signed.link.to_json();
    let statement = signed.statement.to_json();
    let mut export = b"{}\n--\n{}\n--\n".to_vec();
    export.extend_from_slice(key.public_key().to_pem().as_bytes());
    export.extend_from_slice(b"\n--\n");
    export.extend_from_slice(&link);
    vec![link, statement, export]
}

/// Each target's seeds.
fn corpus() -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let root = root();
    let scan = root.join("plugins/scan/core/tests/data");
    let mut corpus: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
    let mut yaml = Vec::new();
    files_under(&root.join("templates"), &ends(".yaml"), &mut yaml, 200);
    files_under(
        &root.join("engine/pipeline/tests"),
        &ends(".yaml"),
        &mut yaml,
        400,
    );
    let mut expressions: Vec<Vec<u8>> = Vec::new();
    for file in &yaml {
        let text = String::from_utf8_lossy(file);
        for piece in text.split("${{").skip(1) {
            if let Some(end) = piece.find("}}") {
                expressions.push(piece[..end].trim().as_bytes().to_vec());
            }
        }
    }
    expressions.extend(
        [
            "steps.a.outputs.b == 'x' && inputs.n > 2",
            "size(inputs.list) + 1",
            "!(a || b)",
        ]
        .map(|e| e.as_bytes().to_vec()),
    );
    corpus.insert("pipeline", yaml.clone());
    corpus.insert("template", yaml);
    corpus.insert("expression", expressions);
    let mut cargo = vec![std::fs::read(root.join("Cargo.lock")).unwrap()];
    files_under(&scan.join("lockfiles"), &ends(".lock"), &mut cargo, 50);
    corpus.insert("cargo_lock", cargo);
    let mut npm = Vec::new();
    files_under(&scan.join("lockfiles"), &ends(".json"), &mut npm, 50);
    corpus.insert("package_lock", npm);
    let mut rustsec = Vec::new();
    files_under(
        &scan.join("rustsec-advisory-db"),
        &ends(".md"),
        &mut rustsec,
        60,
    );
    corpus.insert("rustsec", rustsec);
    let mut osv = Vec::new();
    files_under(&scan.join("osv-db"), &ends(".json"), &mut osv, 60);
    corpus.insert("osv", osv);
    let (packs, objects) = git_seeds();
    corpus.insert("git_pack", packs);
    corpus.insert("git_object", objects);
    let manifest = flow_oci::ArtifactBuilder::new()
        .artifact_type("application/vnd.flow.fuzz")
        .bytes("a.txt", "text/plain", b"hello".to_vec())
        .and_then(|b| b.build())
        .unwrap();
    let mut index = flow_oci::ImageIndex::new();
    index.manifests.push(manifest.descriptor());
    corpus.insert(
        "oci_manifest",
        vec![manifest.manifest_bytes.clone(), index.to_bytes()],
    );
    let provenance = provenance_seeds();
    corpus.insert("dsse", provenance[..2].to_vec());
    corpus.insert("export_dir", provenance[2..].to_vec());
    corpus
}

/// A small, fixed-seed generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const TOKENS: &[&[u8]] = &[
    b"\0",
    b"\xff",
    b"{",
    "}".as_bytes(),
    b"[",
    b"]",
    b"\"",
    b"${{",
    b"}}",
    b"\n",
    b"- ",
    b": ",
    b"&a",
    b"*a",
    b"!!binary",
    b"\\u0000",
    b"-1",
    b"99999999999999999999",
    b"1e999",
    b"null",
    b"\t",
    b"version: 1\n",
    b"needs: [",
    b"extends: ",
];

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            2 => {
                let end = (at + rng.below(64)).min(out.len());
                out.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(64)).min(out.len());
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece);
            }
            4 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            5 => out.truncate(at),
            _ if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + rng.below(256)).min(other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_fuzz_target_survives_its_corpus_and_mutations_of_it() {
    let runs: usize = std::env::var("FLOW_FUZZ_SMOKE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let corpus = corpus();
    // The seeds, for cargo-fuzz to start from (tests/fuzz/corpus/TARGET).
    if let Some(out) = std::env::var_os("FLOW_FUZZ_CORPUS_OUT") {
        for (name, seeds) in &corpus {
            let dir = Path::new(&out).join(name);
            std::fs::create_dir_all(&dir).unwrap();
            for (i, seed) in seeds.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
            }
        }
    }
    let crashes = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
    let mut failed = Vec::new();
    // A panic's message goes to the test's output once per target, not per input.
    std::panic::set_hook(Box::new(|_| {}));
    for (name, target) in TARGETS {
        let seeds = corpus.get(name).cloned().unwrap_or_default();
        assert!(!seeds.is_empty(), "no seeds for target {name}");
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
        let mut inputs = seeds.clone();
        for _ in 0..runs {
            let a = &seeds[rng.below(seeds.len())];
            let b = &seeds[rng.below(seeds.len())];
            inputs.push(mutate(&mut rng, a, b));
        }
        for (i, input) in inputs.iter().enumerate() {
            if std::panic::catch_unwind(|| target(input)).is_err() {
                std::fs::create_dir_all(&crashes).unwrap();
                let file = crashes.join(format!("{name}-{i}"));
                std::fs::write(&file, input).unwrap();
                failed.push(format!(
                    "{name}: input {i} panicked (kept in {})",
                    file.display()
                ));
                break;
            }
        }
        println!("{name}: {} inputs ({} seeds)", inputs.len(), seeds.len());
    }
    let _ = std::panic::take_hook();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
