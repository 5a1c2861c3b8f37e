//! What each fuzz target does with the bytes it is given: every reader of a
//! format written by someone else, called as flow calls it. A target must never
//! panic, loop or allocate without bound, whatever the bytes; anything else
//! (an error) is the right answer to bad input.
//!
//! The same functions serve the cargo-fuzz targets in `tests/fuzz/` (long runs,
//! documented in docs/robustness.md) and the short run of every target over its
//! seed corpus in this crate's tests (part of the test suite).

use std::path::Path;
use std::sync::Arc;

use flow_pipeline::{PluginDescription, PluginRef, PluginResolver};

/// A target: takes any bytes, returns without a panic.
pub type Target = fn(&[u8]);

/// Every target, by name, for the runners.
pub const TARGETS: &[(&str, Target)] = &[
    ("pipeline", pipeline),
    ("expression", expression),
    ("template", template),
    ("cargo_lock", cargo_lock),
    ("package_lock", package_lock),
    ("rustsec", rustsec),
    ("osv", osv),
    ("git_object", git_object),
    ("git_pack", git_pack),
    ("oci_manifest", oci_manifest),
    ("dsse", dsse),
    ("export_dir", export_dir),
];

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Describes every plugin as one taking any params, so that the checker goes past
/// the plugins to the needs, grants and references.
struct AnyPlugin;

impl PluginResolver for AnyPlugin {
    fn describe(&self, uses: &PluginRef) -> Result<Arc<PluginDescription>, String> {
        let name = match uses {
            PluginRef::Builtin { name, .. } => name.clone(),
            PluginRef::File { written, .. } => written.clone(),
        };
        Ok(Arc::new(PluginDescription {
            name,
            version: "1.0.0".into(),
            description: String::new(),
            params: Vec::new(),
            extra_params: true,
            outputs: Vec::new(),
            outputs_from_params: true,
            capabilities: Vec::new(),
        }))
    }
}

/// A pipeline file: YAML, the model, then the checker (without templates: a file
/// that `extends` one stops at the resolver, as it does without catalogs).
pub fn pipeline(data: &[u8]) {
    let source = text(data);
    if let Ok(pipeline) = flow_pipeline::parse(&source, "flow.yaml", Path::new("/fuzz")) {
        let _ = flow_pipeline::check(&pipeline, &AnyPlugin);
    }
}

/// An expression (`${{ ... }}`) and a template string holding expressions.
pub fn expression(data: &[u8]) {
    let source = text(data);
    let _ = flow_pipeline::Expression::parse(&source);
    let _ = flow_pipeline::Template::parse_str(&source);
}

/// A template or org config document (YAML read as a template file is).
pub fn template(data: &[u8]) {
    let source = text(data);
    let _ = flow_pipeline::parse_document(&source, "template.yaml", Path::new("/fuzz"));
}

/// A `Cargo.lock`.
pub fn cargo_lock(data: &[u8]) {
    let _ = flow_scan::lockfile::Lockfile::parse(Path::new("Cargo.lock"), &text(data));
}

/// A `package-lock.json`.
pub fn package_lock(data: &[u8]) {
    let _ = flow_scan::lockfile::Lockfile::parse(Path::new("package-lock.json"), &text(data));
}

/// A RustSec advisory (Markdown with TOML front matter).
pub fn rustsec(data: &[u8]) {
    let _ = flow_scan::advisory::rustsec::parse(Path::new("RUSTSEC-0000-0000.md"), &text(data));
}

/// An OSV record.
pub fn osv(data: &[u8]) {
    let _ = flow_scan::advisory::osv::parse(Path::new("OSV-0000.json"), &text(data));
}

/// A git object's body as a commit, a tag and a tree.
pub fn git_object(data: &[u8]) {
    let _ = flow_git::parse_commit_tree(data);
    let _ = flow_git::commit_parents(data).count();
    let _ = flow_git::parse_tag(data);
    for entry in flow_git::tree_entries(data) {
        let _ = entry;
    }
}

/// Ignores what a checkout writes.
struct Nowhere;

impl flow_git::Sink for Nowhere {
    fn create_dir(&mut self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn write_file(&mut self, _: &str, _: &[u8], _: bool) -> std::io::Result<()> {
        Ok(())
    }
    fn symlink(&mut self, _: &[u8], _: &str) -> std::io::Result<()> {
        Ok(())
    }
}

/// A pack index and a pack (with deltas): the input is a commit id (20 bytes),
/// the index's length (4 bytes, big-endian), the index, and the pack. They are laid
/// out as a bare repository whose HEAD names the commit, which is resolved and
/// checked out.
pub fn git_pack(data: &[u8]) {
    if data.len() < 24 {
        return;
    }
    let (commit, rest) = data.split_at(20);
    let idx_len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let rest = &rest[4..];
    let (idx, pack) = rest.split_at(idx_len.min(rest.len()));
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let git = dir.path();
    let hex: String = commit.iter().map(|b| format!("{b:02x}")).collect();
    let written = std::fs::create_dir_all(git.join("objects/pack"))
        .and_then(|()| std::fs::create_dir_all(git.join("refs/heads")))
        .and_then(|()| std::fs::write(git.join("HEAD"), format!("{hex}\n")))
        .and_then(|()| std::fs::write(git.join("objects/pack/pack-fuzz.idx"), idx))
        .and_then(|()| std::fs::write(git.join("objects/pack/pack-fuzz.pack"), pack));
    if written.is_err() {
        return;
    }
    let Ok(repo) = flow_git::Repository::open(git) else {
        return;
    };
    if let Ok(resolved) = repo.resolve(None) {
        let _ = repo.checkout_with_progress(resolved.tree, &mut Nowhere, &mut |_| {});
    }
}

/// An OCI image manifest and an image index.
pub fn oci_manifest(data: &[u8]) {
    let _ = flow_oci::ImageManifest::from_slice(data);
    let _ = flow_oci::ImageIndex::from_slice(data);
}

/// A DSSE envelope, and its payload as an in-toto link and as flow's run chain.
pub fn dsse(data: &[u8]) {
    let payload = match flow_provenance::Envelope::from_json(data) {
        Ok(envelope) => envelope.payload,
        Err(_) => data.to_vec(),
    };
    let _ = flow_provenance::link::LinkPayload::parse(&payload);
    let _ = flow_provenance::RunChain::parse(&payload);
}

/// An export directory as `flow verify --dir` reads it: the input is split at
/// `\n--\n` into `root.layout`, `run.json`, `owner.pub` and one step's link, and
/// the result is read and verified.
pub fn export_dir(data: &[u8]) {
    let mut parts = split(data, b"\n--\n");
    parts.resize(4, &[]);
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let names = ["root.layout", "run.json", "owner.pub", "step.0123abcd.link"];
    for (name, part) in names.iter().zip(&parts) {
        if std::fs::write(dir.path().join(name), part).is_err() {
            return;
        }
    }
    if let Ok(bundle) = flow_provenance::Bundle::read_dir(dir.path()) {
        let _ = flow_provenance::verify(&bundle, &flow_provenance::VerifyOptions::default());
    }
}

fn split<'a>(data: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(separator.len()).position(|w| w == separator) {
        parts.push(&rest[..at]);
        rest = &rest[at + separator.len()..];
    }
    parts.push(rest);
    parts
}
