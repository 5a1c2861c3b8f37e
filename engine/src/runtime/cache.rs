//! The compiled-component cache: files on disk keyed by the wasm's sha256 and
//! the engine's compatibility hash, so a second run does not recompile.
//!
//! Loading a compiled component is `unsafe` in wasmtime because the bytes are
//! trusted machine code. Only the host writes this directory (mode 0700, files
//! written to a temporary name and renamed into place); plugins never see it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginDigest;

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    compat: String,
}

/// How a component was obtained, for diagnostics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the cache.
    Hit,
    /// Compiled, and written to the cache.
    Compiled,
    /// Compiled; no cache configured, or writing it failed (logged).
    CompiledUncached,
}

impl ComponentCache {
    /// A cache in `dir` (created on first write), or none.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache {
            dir,
            compat: format!("{:016x}", hasher.finish()),
        }
    }

    fn path_for(&self, digest: &PluginDigest) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{}-{}.cwasm", digest.hex(), self.compat)))
    }

    /// The compiled component for these wasm bytes: from the cache, or
    /// compiled now (and cached).
    pub fn load(
        &self,
        engine: &Engine,
        digest: &PluginDigest,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.path_for(digest);
        if let Some(path) = &path
            && path.exists()
        {
            // Read into memory rather than `deserialize_file`: a mapped file that
            // something else truncates would kill the process with SIGBUS.
            match std::fs::read(path) {
                // SAFETY: the cache directory is written only by this host (see the
                // module docs), and the file name binds the wasm digest and the
                // engine's compatibility hash; wasmtime also checks the header.
                Ok(bytes) => match unsafe { Component::deserialize(engine, &bytes) } {
                    Ok(component) => return Ok((component, CacheOutcome::Hit)),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable cached component")
                    }
                },
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read a cached component")
                }
            }
        }
        let compiled = engine.precompile_component(wasm)?;
        // SAFETY: these bytes were produced by `precompile_component` just now.
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        let outcome = match path {
            Some(path) => match write_atomically(&path, &compiled) {
                Ok(()) => CacheOutcome::Compiled,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot write the component cache");
                    CacheOutcome::CompiledUncached
                }
            },
            None => CacheOutcome::CompiledUncached,
        };
        Ok((component, outcome))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("component"),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}
