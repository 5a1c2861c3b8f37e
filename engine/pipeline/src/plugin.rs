//! The checker's view of a plugin: what its `describe()` returned, and how a step names it.
//!
//! This crate knows nothing about wasm. The engine implements [`PluginResolver`] to turn the
//! `uses:` of a step into a [`PluginDescription`].

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// What a plugin says about itself (its `describe()` export).
#[derive(Debug, Clone, PartialEq)]
pub struct PluginDescription {
    /// The plugin's name, e.g. `echo`.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// One line about what the plugin does.
    pub description: String,
    /// The parameters it takes in `with:`.
    pub params: Vec<ParamSpec>,
    /// Whether it accepts parameters it does not list (e.g. `echo`).
    pub extra_params: bool,
    /// The outputs it declares.
    pub outputs: Vec<OutputSpec>,
    /// Whether every parameter given to it is also an output (e.g. `echo`).
    pub outputs_from_params: bool,
    /// What it needs beyond its own workspace; a step must grant each of these.
    pub capabilities: Vec<Capability>,
}

impl PluginDescription {
    /// The parameter named `name`, if the plugin lists it.
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Whether the plugin declares the output `name`.
    pub fn has_output(&self, name: &str) -> bool {
        self.outputs.iter().any(|o| o.name == name)
    }
}

/// One parameter of a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Its name, the key in `with:`.
    pub name: String,
    /// The type of value it takes.
    pub ty: ParamType,
    /// What it means.
    pub description: String,
    /// Whether a step must give it (a required parameter with a default never needs giving).
    pub required: bool,
    /// The value used when a step does not give it.
    pub default: Option<serde_json::Value>,
}

/// The type of a parameter value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamType {
    /// A string.
    String,
    /// A whole number (`i64`).
    Integer,
    /// Any number, integers included.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A list of any values.
    List,
    /// A mapping with string keys.
    Object,
    /// Anything.
    Any,
}

impl ParamType {
    /// "a string", "an integer"... for messages.
    pub fn described(&self) -> &'static str {
        match self {
            ParamType::String => "a string",
            ParamType::Integer => "an integer",
            ParamType::Number => "a number",
            ParamType::Boolean => "a boolean",
            ParamType::List => "a list",
            ParamType::Object => "a mapping",
            ParamType::Any => "any value",
        }
    }

    /// Whether `value` is of this type.
    pub fn accepts(&self, value: &serde_json::Value) -> bool {
        use serde_json::Value;
        match self {
            ParamType::String => value.is_string(),
            ParamType::Integer => value.is_i64() || value.is_u64(),
            ParamType::Number => value.is_number(),
            ParamType::Boolean => value.is_boolean(),
            ParamType::List => value.is_array(),
            ParamType::Object => matches!(value, Value::Object(_)),
            ParamType::Any => true,
        }
    }
}

/// "a string", "an integer"... for a JSON value, in messages.
pub(crate) fn json_type_name(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// One output a plugin declares.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSpec {
    /// Its name, read as `steps.<id>.outputs.<name>`.
    pub name: String,
    /// What it holds.
    pub description: String,
}

/// Something a plugin needs beyond its own workspace. A step must grant each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// Read files in a directory granted with `grants.fs` (`access: read` or `write`).
    FsRead,
    /// Write files in a directory granted with `grants.fs` (`access: write`).
    FsWrite,
    /// Read environment variables (`grants.env`).
    Env,
    /// Connect to hosts (`grants.net`).
    Net,
    /// Run host commands (`grants.exec`).
    Exec,
    /// Use secrets (`grants.secrets`).
    Secrets,
}

impl Capability {
    /// The `grants` key that grants this capability.
    pub fn grant_key(&self) -> &'static str {
        match self {
            Capability::FsRead | Capability::FsWrite => "fs",
            Capability::Env => "env",
            Capability::Net => "net",
            Capability::Exec => "exec",
            Capability::Secrets => "secrets",
        }
    }
}

/// How a step names its plugin (`uses:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginRef {
    /// A plugin built into flow, e.g. `echo` or `echo@sha256:<hex>`.
    Builtin {
        /// The plugin's name.
        name: String,
        /// The sha256 the plugin must have (64 lowercase hex digits), if pinned.
        pin: Option<String>,
    },
    /// A `.wasm` file, e.g. `./plugins/lister.wasm`.
    File {
        /// The absolute path, resolved against the pipeline file's directory.
        path: PathBuf,
        /// The path as written in the file.
        written: String,
        /// The sha256 the file must have (64 lowercase hex digits), if pinned.
        pin: Option<String>,
    },
}

impl PluginRef {
    /// The pinned digest, if any.
    pub fn pin(&self) -> Option<&str> {
        match self {
            PluginRef::Builtin { pin, .. } | PluginRef::File { pin, .. } => pin.as_deref(),
        }
    }
}

impl fmt::Display for PluginRef {
    /// The reference as the user wrote it (with `@sha256:` if pinned).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, pin) = match self {
            PluginRef::Builtin { name, pin } => (name, pin),
            PluginRef::File { written, pin, .. } => (written, pin),
        };
        match pin {
            Some(pin) => write!(f, "{what}@sha256:{pin}"),
            None => f.write_str(what),
        }
    }
}

/// Turns a `uses:` into the plugin's description. Implemented by the engine (which loads and
/// describes the wasm), and by tests.
pub trait PluginResolver {
    /// Describes the plugin `uses` names. The error is shown to the user at the `uses:` value,
    /// as is: say what is wrong and, where possible, what to do (e.g. "did you mean `echo`?").
    fn describe(&self, uses: &PluginRef) -> Result<Arc<PluginDescription>, String>;
}
