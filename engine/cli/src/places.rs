//! Where `flow` keeps things by default: per user, outside every repository, so
//! that no step granted a repository's directory can reach them.
//!
//! - runs: `$XDG_DATA_HOME/flow/projects/<name>-<hash>/` (default
//!   `~/.local/share/flow/...`), one data dir per pipeline directory;
//! - the signing key: `$XDG_DATA_HOME/flow/keys/signing-key.pem` (0600, in a 0700
//!   directory), with the key that authenticates the compiled-plugin cache;
//! - compiled plugins and templates: `$XDG_CACHE_HOME/flow/components`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// `$XDG_DATA_HOME` (when absolute) or `~/.local/share`.
fn data_home() -> Option<PathBuf> {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local").join("share"))
        })
}

/// `~/.local/share/flow` (or under `$XDG_DATA_HOME`).
pub(crate) fn flow_home() -> Option<PathBuf> {
    data_home().map(|d| d.join("flow"))
}

/// Where the user's keys live: the provenance signing key and the cache key.
pub(crate) fn key_dir() -> Option<PathBuf> {
    flow_home().map(|h| h.join("keys"))
}

/// The data dir of the pipelines in `dir`: `<flow home>/projects/<name>-<hash>`,
/// where the hash is of the directory's real path (so two checkouts never share
/// runs, and the name says which one it is).
pub(crate) fn project_data_dir(dir: &Path) -> Option<PathBuf> {
    let real = dir
        .canonicalize()
        .ok()
        .or_else(|| std::env::current_dir().ok().map(|cwd| cwd.join(dir)))?;
    let name: String = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let hash = hex::encode(Sha256::digest(real.as_os_str().as_encoded_bytes()));
    Some(
        flow_home()?
            .join("projects")
            .join(format!("{name}-{}", &hash[..16])),
    )
}

/// Creates `dir` and its missing parents, readable by the user alone.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The data dir flow used before runs moved out of repositories: `.flow` beside the
/// pipeline file.
pub(crate) fn legacy_data_dir(pipeline_dir: &Path) -> PathBuf {
    pipeline_dir.join(".flow")
}
