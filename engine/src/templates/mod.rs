//! Shared pipeline templates (`docs/templates.md`): the digest that identifies a
//! template, where the template cache keeps templates, and the policies `flow verify
//! --policy` checks runs against.

use std::path::{Path, PathBuf};

pub mod digest;
pub mod policy;

pub use digest::template_digest;

/// The template cache's directory under a cache root (`--cache-dir`, `FLOW_CACHE_DIR`).
pub const CACHE_SUBDIR: &str = "templates";

/// Where the template cache under `cache_root` keeps the template whose digest is
/// `sha256`: `<cache_root>/templates/<sha256>` (a copy of the template's directory).
pub fn cached_template_dir(cache_root: &Path, sha256: &str) -> PathBuf {
    cache_root.join(CACHE_SUBDIR).join(sha256)
}

/// The file that declares a template, in its directory.
pub const TEMPLATE_FILE: &str = "template.yaml";
