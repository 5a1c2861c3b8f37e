//! Where plugins come from: the built-ins shipped inside the binary (and any
//! an embedding service registers), and `.wasm` files named by path. Resolves
//! a step's `uses:` to bytes, checks a pin, and loads them into the runtime.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use flow_pipeline::plugin::{PluginDescription, PluginRef, PluginResolver};

use crate::runtime::{LoadedPlugin, PluginDigest, Runtime};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
}

/// Built-in plugins by name.
#[derive(Debug, Clone)]
pub struct PluginRegistry {
    builtins: BTreeMap<String, Arc<[u8]>>,
}

impl Default for PluginRegistry {
    fn default() -> Self {
        Self::with_builtins()
    }
}

impl PluginRegistry {
    /// The plugins shipped inside flow.
    pub fn with_builtins() -> Self {
        let builtins = embedded::BUILTIN_PLUGINS
            .iter()
            .map(|(name, bytes)| ((*name).to_string(), Arc::from(*bytes)))
            .collect();
        PluginRegistry { builtins }
    }

    /// Add (or replace) a built-in plugin, e.g. one an embedding service ships.
    pub fn register(&mut self, name: impl Into<String>, wasm: impl Into<Arc<[u8]>>) {
        self.builtins.insert(name.into(), wasm.into());
    }

    /// The built-in names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.builtins.keys().map(String::as_str)
    }

    /// The wasm bytes a `uses:` names, with the pin checked.
    pub fn bytes(&self, uses: &PluginRef) -> Result<Cow<'_, [u8]>, String> {
        let bytes: Cow<'_, [u8]> = match uses {
            PluginRef::Builtin { name, .. } => match self.builtins.get(name) {
                Some(bytes) => Cow::Borrowed(&bytes[..]),
                None => return Err(self.unknown(name)),
            },
            PluginRef::File { path, written, .. } => match read_plugin_file(path) {
                Ok(bytes) => Cow::Owned(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(format!(
                        "plugin file `{written}` does not exist ({})",
                        path.display()
                    ));
                }
                Err(e) => return Err(format!("cannot read plugin file `{written}`: {e}")),
            },
        };
        if let Some(pin) = uses.pin() {
            let actual = PluginDigest::of(&bytes);
            if actual.hex() != pin {
                return Err(format!(
                    "plugin `{}` is pinned to sha256:{pin} but its content has {actual}",
                    uses_name(uses)
                ));
            }
        }
        Ok(bytes)
    }

    fn unknown(&self, name: &str) -> String {
        let names: Vec<&str> = self.names().collect();
        let closest = names
            .iter()
            .map(|n| (strsim::jaro_winkler(name, n), *n))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let mut message = format!("unknown plugin `{name}`");
        if let Some((_, suggestion)) = closest {
            message.push_str(&format!("; did you mean `{suggestion}`?"));
        }
        message.push_str(&format!(
            " (built-in plugins: {}; a plugin file is a path such as `./plugins/my-step.wasm`)",
            names.join(", ")
        ));
        message
    }
}

/// The largest plugin file flow reads (a Python component with its interpreter is
/// about 40 MiB).
pub const MAX_PLUGIN_FILE: u64 = 256 << 20;

/// Reads a plugin file: a regular file of at most [`MAX_PLUGIN_FILE`] bytes. Opening
/// does not block (a FIFO named by `uses:` would otherwise hang the engine), and
/// reading stops at the limit (`/dev/zero` would otherwise fill memory).
fn read_plugin_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(std::io::Error::other(format!(
            "it is {what}; a plugin is a `.wasm` file"
        )));
    }
    if meta.len() > MAX_PLUGIN_FILE {
        return Err(std::io::Error::other(format!(
            "it is {} bytes, more than the {} MiB a plugin may be",
            meta.len(),
            MAX_PLUGIN_FILE >> 20
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_PLUGIN_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_PLUGIN_FILE {
        return Err(std::io::Error::other(format!(
            "it grew past the {} MiB a plugin may be while it was read",
            MAX_PLUGIN_FILE >> 20
        )));
    }
    Ok(bytes)
}

fn uses_name(uses: &PluginRef) -> &str {
    match uses {
        PluginRef::Builtin { name, .. } => name,
        PluginRef::File { written, .. } => written,
    }
}

/// The plugins of one pipeline, loaded before checking: `flow_pipeline`'s
/// checker asks for descriptions synchronously, loading is async.
#[derive(Debug, Default)]
pub struct ResolvedPlugins {
    by_ref: HashMap<PluginRef, Result<Arc<LoadedPlugin>, String>>,
}

impl ResolvedPlugins {
    /// Load every distinct plugin in `refs`; failures are kept and reported
    /// by the checker at each `uses:` that names them.
    pub async fn load<'a>(
        runtime: &Runtime,
        registry: &PluginRegistry,
        refs: impl IntoIterator<Item = &'a PluginRef>,
    ) -> Self {
        let mut by_ref = HashMap::new();
        for uses in refs {
            if by_ref.contains_key(uses) {
                continue;
            }
            let loaded = match registry.bytes(uses) {
                Ok(bytes) => runtime
                    .load(&uses.to_string(), &bytes)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            by_ref.insert(uses.clone(), loaded);
        }
        ResolvedPlugins { by_ref }
    }

    /// The loaded plugin for a `uses:`, if it loaded.
    pub fn get(&self, uses: &PluginRef) -> Option<&Arc<LoadedPlugin>> {
        self.by_ref.get(uses).and_then(|r| r.as_ref().ok())
    }
}

impl PluginResolver for ResolvedPlugins {
    fn describe(&self, uses: &PluginRef) -> Result<Arc<PluginDescription>, String> {
        match self.by_ref.get(uses) {
            Some(Ok(plugin)) => Ok(plugin.description.clone()),
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!("plugin `{uses}` was not loaded")),
        }
    }
}
