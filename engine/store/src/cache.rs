//! The step cache's records: results of steps by key ([`CacheEntry`]), the key each
//! step of each pipeline last had with what went into it ([`LastKey`]), and the secret
//! the keys are made with. The engine decides what a key covers; this module keeps
//! what it is given, in two sled trees of the data dir's store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::store::Store;
use crate::tree::{Change, Changes, Entry};

const ENTRIES: &str = "cache";
const LAST: &str = "cache_last";
const SECRET: &[u8] = b"step-cache-secret";

/// A step's result, kept under its key: what a later step with the same key gets
/// instead of running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The run and step that produced it.
    pub run: String,
    /// The step's id.
    pub step: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// When it was stored, and last used (unix milliseconds).
    pub created_at: u64,
    /// When a step last took it.
    pub used_at: u64,
    /// How many steps took it.
    #[serde(default)]
    pub hits: u64,
    /// The step's outputs.
    pub outputs: BTreeMap<String, String>,
    /// What the step changed in its view (files in the object store).
    pub changes: Changes,
    /// The step's evidence as the engine records it (its products, dependencies...).
    pub evidence: Value,
    /// What went into the key, as the engine describes it.
    pub manifest: Value,
}

impl CacheEntry {
    /// The objects its files are kept in, with their sizes.
    pub fn objects(&self) -> impl Iterator<Item = (&str, u64)> {
        self.changes.values().filter_map(|change| match change {
            Change::Put {
                entry: Entry::File { sha256, size, .. },
            } => Some((sha256.as_str(), *size)),
            _ => None,
        })
    }
}

/// The key a step of a pipeline had the last time it ran, and what went into it: what
/// a miss is explained against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastKey {
    /// The run it was computed in.
    pub run: String,
    /// The key.
    pub key: String,
    /// What went into it, as the engine describes it.
    pub manifest: Value,
}

/// The step cache of a data dir: a cheap handle (clones share the store).
#[derive(Debug, Clone)]
pub struct StepCache {
    store: Store,
    entries: sled::Tree,
    last: sled::Tree,
}

impl StepCache {
    /// Opens the cache's trees in `store`.
    pub fn open(store: &Store) -> Result<StepCache> {
        let open = |name: &str| store.db().open_tree(name).map_err(|e| store.storage(e));
        Ok(StepCache {
            store: store.clone(),
            entries: open(ENTRIES)?,
            last: open(LAST)?,
        })
    }

    /// The secret keys are made with (32 bytes), kept in the store: `fresh` makes it the
    /// first time. Values no one may learn (secrets) enter keys only through it.
    pub fn secret(&self, fresh: impl FnOnce() -> [u8; 32]) -> Result<[u8; 32]> {
        let meta = self
            .store
            .db()
            .open_tree("meta")
            .map_err(|e| self.store.storage(e))?;
        let candidate = fresh();
        let stored = meta
            .compare_and_swap(SECRET, None::<&[u8]>, Some(&candidate[..]))
            .map_err(|e| self.store.storage(e))?;
        let bytes = match stored {
            Ok(()) => return Ok(candidate),
            Err(current) => current.current.unwrap_or_default(),
        };
        <[u8; 32]>::try_from(bytes.as_ref())
            .map_err(|_| self.store.corrupt("meta", SECRET, "not 32 bytes".into()))
    }

    /// The result kept under `key`.
    pub fn get(&self, key: &str) -> Result<Option<CacheEntry>> {
        match self
            .entries
            .get(key.as_bytes())
            .map_err(|e| self.store.storage(e))?
        {
            Some(value) => Ok(Some(self.store.decode(ENTRIES, key.as_bytes(), &value)?)),
            None => Ok(None),
        }
    }

    /// Keeps `entry` under `key` (replacing what was there).
    pub fn put(&self, key: &str, entry: &CacheEntry) -> Result<()> {
        let value = self.store.encode("cache entry", entry)?;
        self.entries
            .insert(key.as_bytes(), value)
            .map_err(|e| self.store.storage(e))?;
        Ok(())
    }

    /// Removes the result under `key`; whether there was one.
    pub fn remove(&self, key: &str) -> Result<bool> {
        Ok(self
            .entries
            .remove(key.as_bytes())
            .map_err(|e| self.store.storage(e))?
            .is_some())
    }

    /// Every kept result, by key.
    pub fn entries(&self) -> Result<Vec<(String, CacheEntry)>> {
        let mut out = Vec::new();
        for item in self.entries.iter() {
            let (key, value) = item.map_err(|e| self.store.storage(e))?;
            let entry = self.store.decode(ENTRIES, &key, &value)?;
            out.push((String::from_utf8_lossy(&key).into_owned(), entry));
        }
        Ok(out)
    }

    /// The key `step` of `pipeline` had last.
    pub fn last(&self, pipeline: &str, step: &str) -> Result<Option<LastKey>> {
        let key = last_key(pipeline, step);
        match self.last.get(&key).map_err(|e| self.store.storage(e))? {
            Some(value) => Ok(Some(self.store.decode(LAST, &key, &value)?)),
            None => Ok(None),
        }
    }

    /// Remembers the key `step` of `pipeline` has now.
    pub fn set_last(&self, pipeline: &str, step: &str, last: &LastKey) -> Result<()> {
        let value = self.store.encode("last cache key", last)?;
        self.last
            .insert(last_key(pipeline, step), value)
            .map_err(|e| self.store.storage(e))?;
        Ok(())
    }
}

fn last_key(pipeline: &str, step: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(pipeline.len() + step.len() + 1);
    key.extend_from_slice(pipeline.as_bytes());
    key.push(0);
    key.extend_from_slice(step.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(run: &str) -> CacheEntry {
        let mut changes = Changes::new();
        changes.insert(
            "out.txt".into(),
            Change::Put {
                entry: Entry::File {
                    sha256: "ab".repeat(32),
                    size: 5,
                    executable: false,
                    modified_ns: None,
                },
            },
        );
        CacheEntry {
            run: run.into(),
            step: "build".into(),
            pipeline: "p".into(),
            created_at: 1,
            used_at: 1,
            hits: 0,
            outputs: BTreeMap::new(),
            changes,
            evidence: Value::Null,
            manifest: Value::Null,
        }
    }

    #[test]
    fn entries_and_last_keys_round_trip_and_the_secret_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = StepCache::open(&store).unwrap();
        assert_eq!(cache.get("k").unwrap(), None);
        cache.put("k", &entry("r1")).unwrap();
        assert_eq!(cache.get("k").unwrap().unwrap().run, "r1");
        assert_eq!(
            cache
                .get("k")
                .unwrap()
                .unwrap()
                .objects()
                .collect::<Vec<_>>(),
            vec![(
                "abababababababababababababababababababababababababababababababab",
                5
            )]
        );
        assert_eq!(cache.entries().unwrap().len(), 1);
        assert!(cache.remove("k").unwrap());
        assert!(!cache.remove("k").unwrap());

        assert_eq!(cache.last("p", "build").unwrap(), None);
        let last = LastKey {
            run: "r1".into(),
            key: "k".into(),
            manifest: serde_json::json!({"params": {"a": 1}}),
        };
        cache.set_last("p", "build", &last).unwrap();
        assert_eq!(cache.last("p", "build").unwrap(), Some(last));
        assert_eq!(cache.last("p", "buil").unwrap(), None);

        let first = cache.secret(|| [7; 32]).unwrap();
        assert_eq!(first, [7; 32]);
        assert_eq!(cache.secret(|| [9; 32]).unwrap(), [7; 32], "made once");
    }
}
