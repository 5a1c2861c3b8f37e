//! A three-step pipeline's provenance over real files, shared by the `demo_export`
//! example and the integration tests.
//!
//! - `a` writes `src/gen.rs` and `data/table.bin`;
//! - `b` needs `a`, reads them and writes `target/app`, and rewrites `data/table.bin`;
//! - `c` needs `b`, reads everything and fails without producing anything (its statement's
//!   subject is then the step's own record).
//!
//! Every step can also read a granted host directory `assets/` (named by its absolute
//! path), which the layout allows with an `ALLOW <dir>/*` rule.

use std::path::{Path, PathBuf};

use flow_provenance::keys::{KeyPairPaths, write_key_pair};
use flow_provenance::{
    Bundle, DigestCache, Envelope, LayoutSpec, LayoutStep, Outcome, Root, RunChain, SigningKey,
    StepAttestation, StepEvidence, attest_step, products, sign_layout,
};

/// What [`build`] made.
#[allow(dead_code)]
pub struct Demo {
    /// The export directory.
    pub export: PathBuf,
    /// The workspace the steps wrote to.
    pub workspace: PathBuf,
    /// The owner key files.
    pub owner: KeyPairPaths,
    /// Another key's files (for wrong-key tests).
    pub other: KeyPairPaths,
    /// The bundle, in memory and in execution order.
    pub bundle: Bundle,
    /// The step attestations in execution order.
    pub steps: Vec<StepAttestation>,
    /// The layout envelope.
    pub layout: Envelope,
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)
}

/// Builds the demo under `out` (`workspace/`, `assets/`, `keys/`, `export/`).
pub fn build(out: &Path) -> anyhow::Result<Demo> {
    build_with(out, false)
}

/// Like [`build`]; with `change_between_steps`, `src/gen.rs` is rewritten after `a`
/// recorded it and before `b` reads it (an artifact changed between steps: every
/// signature stays valid, the chain does not).
pub fn build_with(out: &Path, change_between_steps: bool) -> anyhow::Result<Demo> {
    std::fs::create_dir_all(out)?;
    let out = std::fs::canonicalize(out)?;
    let workspace = out.join("workspace");
    let assets = out.join("assets");
    std::fs::create_dir_all(&workspace)?;
    write(&assets.join("logo.png"), b"\x89PNG not really")?;
    write(&assets.join("fonts/mono.ttf"), b"font")?;

    let key = SigningKey::generate()?;
    let owner = write_key_pair(&out.join("keys/owner"), &key)?;
    let other = write_key_pair(&out.join("keys/other"), &SigningKey::generate()?)?;

    let assets_root = Root::host(&assets);
    let allow_assets = format!("{}/*", assets.display());
    let pipeline = [("a", vec![]), ("b", vec!["a"]), ("c", vec!["b"])];
    let layout_steps = pipeline
        .iter()
        .map(|(name, needs)| {
            let mut step = LayoutStep::new(*name, needs.clone());
            step.allow_materials.push(allow_assets.clone());
            step
        })
        .collect();
    let layout = sign_layout(
        &LayoutSpec::new(layout_steps, vec![key.public_key().clone()]),
        &key,
    )?;
    let mut run = RunChain::new("run-0001", "demo", &layout);

    let cache = DigestCache::new();
    let readable = [Root::workspace(&workspace), assets_root.clone()];
    let writable = [Root::workspace(&workspace)];
    let mut attestations = Vec::new();
    for (name, needs) in &pipeline {
        if *name == "b" && change_between_steps {
            write(&workspace.join("src/gen.rs"), b"fn main() { evil(); }\n")?;
        }
        let started = now_ms();
        let materials = cache.snapshot(&readable);
        let before = cache.snapshot(&writable);
        let (outcome, reason) = match *name {
            "a" => {
                write(
                    &workspace.join("src/gen.rs"),
                    b"fn main() { println!(\"hi\"); }\n",
                )?;
                write(&workspace.join("data/table.bin"), &[1, 2, 3, 4])?;
                (Outcome::Succeeded, None)
            }
            "b" => {
                let source = std::fs::read(workspace.join("src/gen.rs"))?;
                write(
                    &workspace.join("target/app"),
                    &[b"ELF".as_slice(), &source].concat(),
                )?;
                write(&workspace.join("data/table.bin"), &[4, 3, 2, 1, 0])?;
                (Outcome::Succeeded, None)
            }
            _ => {
                let _ = std::fs::read(workspace.join("target/app"))?;
                (
                    Outcome::Failed,
                    Some("plugin returned error: disk quota exceeded".to_owned()),
                )
            }
        };
        let after = cache.snapshot(&writable);
        let evidence = StepEvidence {
            run_id: "run-0001".into(),
            step_id: (*name).into(),
            pipeline_name: "demo".into(),
            pipeline_file: "flow.yaml".into(),
            pipeline_sha256: "0".repeat(64),
            plugin: format!("https://plugins.flow.dev/{name}@1.0.0"),
            plugin_sha256: "ab".repeat(32),
            params: serde_json::json!({"target": "release", "token": "${secrets.TOKEN}"}),
            grants: serde_json::json!({"read": [assets.display().to_string()], "write": ["workspace"]}),
            started_unix_ms: started,
            finished_unix_ms: now_ms(),
            outcome,
            failure_reason: reason,
            engine_name: "flow".into(),
            engine_version: "0.1.0".into(),
            materials: materials.artifacts,
            products: products(&before.artifacts, &after.artifacts),
            needs: needs.iter().map(|n| (*n).to_owned()).collect(),
            notes: materials
                .skipped
                .iter()
                .map(|s| format!("{}: {}", s.path.display(), s.reason))
                .collect(),
            dependencies: Vec::new(),
            commands: Vec::new(),
            template: None,
        };
        let attestation = attest_step(&evidence, &key)?;
        run.push(outcome, &attestation);
        attestations.push(attestation);
    }
    let bundle = Bundle::new(
        layout.clone(),
        key.public_key().clone(),
        run.sign(&key)?,
        &attestations,
    );
    let export = out.join("export");
    bundle.write_dir(&export)?;
    Ok(Demo {
        export,
        workspace,
        owner,
        other,
        bundle,
        steps: attestations,
        layout,
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
