//! `flow.lock`: the templates and plugins a pipeline resolved to, by version and sha256.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The lock file's name, beside the pipeline file.
pub const LOCK_FILE: &str = "flow.lock";

/// The lock of one pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// The format (1).
    pub version: u32,
    /// Every template of the chain, nearest first.
    #[serde(default, rename = "template")]
    pub templates: Vec<LockedTemplate>,
    /// Every plugin the pipeline runs.
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<LockedPlugin>,
}

/// One template of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedTemplate {
    /// Its id.
    pub id: String,
    /// The version resolved.
    pub version: String,
    /// The requirement it was resolved from.
    pub requirement: String,
    /// The digest of its directory.
    pub sha256: String,
    /// Where it was found.
    pub source: String,
}

/// One plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPlugin {
    /// The plugin as `uses:` names it (a built-in name or a path as written).
    pub name: String,
    /// The version it describes itself as.
    pub version: String,
    /// The sha256 of its wasm.
    pub sha256: String,
}

impl Lock {
    /// The lock path for a pipeline file.
    pub fn path_for(pipeline: &Path) -> PathBuf {
        match pipeline.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(LOCK_FILE),
            _ => PathBuf::from(LOCK_FILE),
        }
    }

    /// Reads the lock at `path`; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<Lock>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let lock: Lock = toml::from_str(&text).map_err(|e| {
            format!(
                "{} is not a valid lock file: {e}\nwrite it again with `flow lock`",
                path.display()
            )
        })?;
        if lock.version != 1 {
            return Err(format!(
                "{}: unsupported lock version {}; this flow writes version 1",
                path.display(),
                lock.version
            ));
        }
        Ok(Some(lock))
    }

    /// Writes the lock to `path` atomically (a temporary file, then a rename).
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let body = toml::to_string_pretty(self).map_err(|e| e.to_string())?;
        let text = format!(
            "# Written by `flow lock`: the templates and plugins this pipeline resolves to.\n# `flow run` refuses any whose content differs; `flow update` moves them.\n\n{body}"
        );
        let temporary = path.with_extension("lock.tmp");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&temporary);
                format!("cannot write {}: {e}", path.display())
            })
    }

    /// The locked template `id`.
    pub fn template(&self, id: &str) -> Option<&LockedTemplate> {
        self.templates.iter().find(|t| t.id == id)
    }

    /// The locked plugin `name`.
    pub fn plugin(&self, name: &str) -> Option<&LockedPlugin> {
        self.plugins.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        let lock = Lock {
            version: 1,
            templates: vec![LockedTemplate {
                id: "acme/x".into(),
                version: "1.2.0".into(),
                requirement: "^1".into(),
                sha256: "ab".repeat(32),
                source: "catalog".into(),
            }],
            plugins: vec![LockedPlugin {
                name: "echo".into(),
                version: "0.1.0".into(),
                sha256: "cd".repeat(32),
            }],
        };
        lock.write(&path).unwrap();
        assert_eq!(Lock::read(&path).unwrap(), Some(lock));
        assert_eq!(Lock::read(&dir.path().join("none")).unwrap(), None);
        std::fs::write(&path, "version = 1\n[[template]]\nid = 3\n").unwrap();
        assert!(
            Lock::read(&path)
                .unwrap_err()
                .contains("not a valid lock file")
        );
    }
}
