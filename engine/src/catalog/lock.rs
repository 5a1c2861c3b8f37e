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
    /// Where it was found (informational: never checked). In a written lock, a
    /// catalog directory is given relative to the lock's directory, so that the lock
    /// holds no machine path; git catalogs keep their `git+file://` URL.
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

/// `source` as a lock beside `lock_dir` records it: a path relative to `lock_dir` when
/// `source` is an absolute path, as is otherwise.
pub fn portable_source(lock_dir: &Path, source: &str) -> String {
    let target = Path::new(source);
    if !target.is_absolute() {
        return source.to_owned();
    }
    let lock_dir = if lock_dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        lock_dir
    };
    let base = lock_dir
        .canonicalize()
        .unwrap_or_else(|_| lock_dir.to_path_buf());
    let (from, to): (Vec<_>, Vec<_>) = (base.components().collect(), target.components().collect());
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    // Nothing in common but the root: the absolute path says more.
    if common <= 1 {
        return source.to_owned();
    }
    let mut relative = PathBuf::new();
    for _ in common..from.len() {
        relative.push("..");
    }
    for part in &to[common..] {
        relative.push(part);
    }
    if relative.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        relative.display().to_string()
    }
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
    fn catalog_directories_are_recorded_relative_to_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let repo = root.join("repo/app");
        std::fs::create_dir_all(&repo).unwrap();
        let template = root.join("catalog/acme/base");
        let source = template.display().to_string();
        assert_eq!(portable_source(&repo, &source), "../../catalog/acme/base");
        assert_eq!(portable_source(&root, &source), "catalog/acme/base");
        assert_eq!(portable_source(&template, &source), ".");
        let git = "git+file:///srv/catalog.git@abc:acme/base";
        assert_eq!(portable_source(&repo, git), git);
    }

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
