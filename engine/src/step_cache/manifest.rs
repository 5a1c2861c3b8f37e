//! What goes into a step's cache key: its [`Manifest`], and the key made of it.

use std::collections::BTreeMap;

use flow_pipeline::PlannedStep;
use flow_store::{Entry, Tree};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::capabilities::RunCapabilities;
use crate::mac::hmac_sha256;

/// The engine as keys name it (another version of flow makes other keys).
pub(crate) const ENGINE: &str = concat!("flow ", env!("CARGO_PKG_VERSION"));

/// Everything a step's result depends on, as far as the host can know it. Values no one
/// may read back (secrets, and the variables a step is given, which may carry them)
/// enter only as keyed hashes, under the store's cache secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// The engine's name and version.
    pub engine: String,
    /// The plugin, as `uses:` names it, and its digest.
    pub plugin: String,
    pub plugin_sha256: String,
    /// The step's parameters, resolved.
    pub params: Map<String, Value>,
    /// What it was granted, as its provenance records it.
    pub grants: Value,
    /// Its granted host commands' digests, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub commands: BTreeMap<String, String>,
    /// The variables it is given: name → keyed hash of the value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The secrets it is granted: name → keyed hash of the value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// Its view of the workspace: path → what it holds (`sha256`, `sha256 x` for an
    /// executable, `-> target` for a link, `/` for a directory).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// The files of its granted directories the host hashed: path → sha256.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub granted: BTreeMap<String, String>,
}

impl Manifest {
    /// What `step` is run with, but its files: its plugin, params, grants, host
    /// commands, the variables it is given (`env`) and its secrets, keyed by `secret`.
    pub fn of_step(
        step: &PlannedStep,
        params: &Map<String, Value>,
        plugin_sha256: &str,
        caps: &RunCapabilities,
        env: &[(String, String)],
        secret: &[u8; 32],
    ) -> Manifest {
        let mut grants = caps.describe(step);
        // Where the run's workspace is changes every run and is not what the step reads
        // (its view is, listed with its files).
        if let Some(grants) = grants.as_object_mut() {
            grants.remove("workspace");
        }
        Manifest {
            engine: ENGINE.into(),
            plugin: step.plugin.to_string(),
            plugin_sha256: plugin_sha256.to_owned(),
            params: params.clone(),
            grants,
            commands: caps
                .exec
                .plan()
                .steps
                .get(step.index)
                .into_iter()
                .flatten()
                .map(|c| (c.name.clone(), c.resolved.sha256.clone()))
                .collect(),
            env: env
                .iter()
                .map(|(name, value)| (name.clone(), Self::keyed(secret, "env", name, value)))
                .collect(),
            secrets: step
                .secret_grants
                .iter()
                .filter_map(|name| {
                    let value = caps.secrets.0.get(name)?;
                    Some((name.clone(), Self::keyed(secret, "secret", name, value)))
                })
                .collect(),
            ..Manifest::default()
        }
    }

    /// A keyed hash of a value no one may read back, as it is listed.
    pub fn keyed(secret: &[u8; 32], kind: &str, name: &str, value: &str) -> String {
        let mac = hmac_sha256(
            secret,
            &[
                kind.as_bytes(),
                b"\0",
                name.as_bytes(),
                b"\0",
                value.as_bytes(),
            ],
        );
        hex::encode(&mac[..16])
    }

    /// Lists `tree` as the step's inputs.
    pub fn set_inputs(&mut self, tree: &Tree) {
        self.inputs = tree
            .entries()
            .map(|(path, entry)| {
                let what = match entry {
                    Entry::File {
                        sha256, executable, ..
                    } => {
                        if *executable {
                            format!("{sha256} x")
                        } else {
                            sha256.clone()
                        }
                    }
                    Entry::Symlink { target } => format!("-> {target}"),
                    Entry::Dir => "/".to_owned(),
                };
                (path.to_owned(), what)
            })
            .collect();
    }

    /// The key: a keyed hash of everything listed (hex).
    pub fn key(&self, secret: &[u8; 32]) -> String {
        // Serialized maps are in key order (serde_json's map is sorted), so equal
        // manifests give equal bytes.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(hmac_sha256(secret, &[b"flow step cache v1\0", &bytes]))
    }

    /// The manifest as it is stored: parameters with the run's secret values hidden.
    pub fn to_stored(&self, redact: impl Fn(&mut String) -> bool) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(params) = value.get_mut("params") {
            let mut text = params.to_string();
            if redact(&mut text) {
                *params = serde_json::from_str(&text).unwrap_or(Value::Null);
            }
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_manifests_have_equal_keys_and_any_change_changes_the_key() {
        let secret = [1u8; 32];
        let mut a = Manifest {
            engine: "flow 1".into(),
            plugin: "echo".into(),
            plugin_sha256: "00".repeat(32),
            ..Manifest::default()
        };
        a.params.insert("message".into(), "hi".into());
        let b = a.clone();
        assert_eq!(a.key(&secret), b.key(&secret));
        assert_ne!(a.key(&secret), a.key(&[2u8; 32]), "keyed by the secret");
        let mut c = a.clone();
        c.params.insert("message".into(), "ho".into());
        assert_ne!(a.key(&secret), c.key(&secret));
        let mut d = a.clone();
        d.secrets.insert(
            "token".into(),
            Manifest::keyed(&secret, "secret", "token", "s3cr3t"),
        );
        assert_ne!(a.key(&secret), d.key(&secret));
        assert!(!serde_json::to_string(&d).unwrap().contains("s3cr3t"));
    }

    #[test]
    fn inputs_list_files_links_and_directories() {
        let mut tree = Tree::new();
        tree.put(
            "bin/run",
            Entry::File {
                sha256: "ab".repeat(32),
                size: 1,
                executable: true,
                modified_ns: Some(5),
            },
        );
        tree.put(
            "link",
            Entry::Symlink {
                target: "bin/run".into(),
            },
        );
        let mut m = Manifest::default();
        m.set_inputs(&tree);
        assert_eq!(m.inputs["bin"], "/");
        assert_eq!(m.inputs["bin/run"], format!("{} x", "ab".repeat(32)));
        assert_eq!(m.inputs["link"], "-> bin/run");
        // Times are not part of a key: a checkout writes new ones every run.
        let mut later = tree.clone();
        later.put(
            "bin/run",
            Entry::File {
                sha256: "ab".repeat(32),
                size: 1,
                executable: true,
                modified_ns: Some(6),
            },
        );
        let mut n = Manifest::default();
        n.set_inputs(&later);
        assert_eq!(m.key(&[0; 32]), n.key(&[0; 32]));
    }
}
