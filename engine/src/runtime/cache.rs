//! The compiled-component cache: files on disk keyed by the wasm's sha256 and
//! the engine's compatibility hash, so a second run does not recompile.
//!
//! Loading a compiled component is `unsafe` in wasmtime because the bytes are
//! trusted machine code. Only the host writes this directory (mode 0700, files
//! written to a temporary name and renamed into place), no step may be granted it
//! (see [`crate::reach`]), and every file carries an HMAC-SHA256, under a key the
//! host keeps elsewhere, of the wasm digest, the engine's compatibility hash and the
//! compiled bytes: a file swapped for another component's, or edited, fails the
//! check and is compiled again from the wasm instead of run.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::digest::PluginDigest;

/// What ends a cached file: the MAC, then this tag.
const TRAILER_TAG: &[u8; 8] = b"flowmac1";
/// The MAC's length.
const MAC_LEN: usize = 32;

/// The secret that authenticates cached compiled components. Keep it where no step
/// can reach (the `flow` CLI keeps it beside the user's signing key).
#[derive(Clone)]
pub struct CacheKey([u8; 32]);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(..)")
    }
}

impl CacheKey {
    /// A new random key (what an engine without a configured key uses: its cache
    /// entries are then trusted only by the process that wrote them).
    pub fn generate() -> std::io::Result<Self> {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(CacheKey(key))
    }

    /// The key stored in `path` (32 bytes, mode 0600), created there when missing.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        match std::fs::File::open(path) {
            Ok(mut file) => {
                let meta = file.metadata()?;
                if !meta.is_file() || meta.mode() & 0o077 != 0 {
                    return Err(std::io::Error::other(format!(
                        "{} must be a file readable by its owner alone (chmod 600)",
                        path.display()
                    )));
                }
                let mut key = [0u8; 32];
                let mut extra = [0u8; 1];
                file.read_exact(&mut key)?;
                if file.read(&mut extra)? != 0 {
                    return Err(std::io::Error::other(format!(
                        "{} is not a cache key (32 bytes)",
                        path.display()
                    )));
                }
                Ok(CacheKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                if let Some(dir) = path.parent() {
                    create_private_dir(dir)?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                file.write_all(&key.0)?;
                file.sync_all()?;
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }

    /// HMAC-SHA256 (RFC 2104) of the concatenated `parts`.
    fn mac(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        crate::mac::hmac_sha256(&self.0, parts)
    }
}

/// Equal without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    compat: String,
    key: CacheKey,
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
    /// A cache in `dir` (created on first write), or none, authenticated with `key`.
    pub fn new(engine: &Engine, dir: Option<PathBuf>, key: CacheKey) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache {
            dir,
            compat: format!("{:016x}", hasher.finish()),
            key,
        }
    }

    fn mac(&self, digest: &PluginDigest, compiled: &[u8]) -> [u8; MAC_LEN] {
        self.key.mac(&[
            b"flow compiled component v1\0",
            digest.hex().as_bytes(),
            b"\0",
            self.compat.as_bytes(),
            b"\0",
            compiled,
        ])
    }

    /// The compiled bytes of a cached file, when its MAC holds.
    fn authentic<'b>(&self, digest: &PluginDigest, file: &'b [u8]) -> Option<&'b [u8]> {
        let body_len = file.len().checked_sub(MAC_LEN + TRAILER_TAG.len())?;
        let (body, trailer) = file.split_at(body_len);
        let (mac, tag) = trailer.split_at(MAC_LEN);
        (tag == TRAILER_TAG && same(mac, &self.mac(digest, body))).then_some(body)
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
                Ok(bytes) => match self.authentic(digest, &bytes) {
                    // SAFETY: the bytes carry a MAC, under a key no step can reach, of
                    // this wasm digest, this engine's compatibility hash and the bytes
                    // themselves: this host compiled them from this wasm.
                    Some(compiled) => match unsafe { Component::deserialize(engine, compiled) } {
                        Ok(component) => return Ok((component, CacheOutcome::Hit)),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable cached component")
                        }
                    },
                    None => {
                        tracing::warn!(path = %path.display(), "ignoring a cached component that fails its authentication (written by another key, or changed): compiling it again")
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
        let mac = self.mac(digest, &compiled);
        let outcome = match path {
            Some(path) => match write_atomically(&path, &[&compiled, &mac, TRAILER_TAG]) {
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

fn write_atomically(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
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
        for part in parts {
            file.write_all(part)?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231, test case 2 ("Jefe"), with the key padded to 32 bytes: HMAC pads
        // a short key with zeros, so the MAC is the same.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = CacheKey(key).mac(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/cache.key");
        let first = CacheKey::load_or_create(&path).unwrap();
        let again = CacheKey::load_or_create(&path).unwrap();
        assert_eq!(first.0, again.0);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(CacheKey::load_or_create(&path).is_err());
    }
}
