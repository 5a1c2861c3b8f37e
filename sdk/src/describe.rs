//! Builders for what a plugin's `describe()` returns.

use crate::bindings::flow::plugin::types;

/// The type of a param under a step's `with:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A string.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A YAML sequence.
    List,
    /// A YAML mapping.
    Object,
    /// Anything.
    Any,
}

/// What a plugin needs beyond its workspace; the pipeline must grant it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Read granted host directories.
    FsRead,
    /// Write granted host directories.
    FsWrite,
    /// Environment variables.
    Env,
    /// Network hosts.
    Net,
    /// Host commands.
    Exec,
    /// Secrets.
    Secrets,
}

/// One param a plugin accepts.
#[derive(Debug, Clone)]
pub struct Param {
    name: String,
    ty: ParamType,
    description: String,
    required: bool,
    default: Option<serde_json::Value>,
}

impl Param {
    /// A param of any type.
    pub fn new(name: &str, ty: ParamType, description: &str) -> Self {
        Param {
            name: name.into(),
            ty,
            description: description.into(),
            required: false,
            default: None,
        }
    }

    /// A string param.
    pub fn string(name: &str, description: &str) -> Self {
        Self::new(name, ParamType::String, description)
    }

    /// An integer param.
    pub fn integer(name: &str, description: &str) -> Self {
        Self::new(name, ParamType::Integer, description)
    }

    /// A boolean param.
    pub fn boolean(name: &str, description: &str) -> Self {
        Self::new(name, ParamType::Boolean, description)
    }

    /// A list param.
    pub fn list(name: &str, description: &str) -> Self {
        Self::new(name, ParamType::List, description)
    }

    /// The step must give this param.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// The value used when the step does not give one.
    pub fn default(mut self, value: impl Into<serde_json::Value>) -> Self {
        self.default = Some(value.into());
        self
    }
}

/// What `describe()` returns: built with chained calls.
#[derive(Debug, Clone)]
pub struct Description {
    name: String,
    version: String,
    description: String,
    params: Vec<Param>,
    extra_params: bool,
    outputs: Vec<(String, String)>,
    outputs_from_params: bool,
    capabilities: Vec<Capability>,
}

impl Description {
    /// A plugin with this name, version and one-line description.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Description {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            params: Vec::new(),
            extra_params: false,
            outputs: Vec::new(),
            outputs_from_params: false,
            capabilities: Vec::new(),
        }
    }

    /// Add a param.
    pub fn param(mut self, param: Param) -> Self {
        self.params.push(param);
        self
    }

    /// Accept params not listed (of any type).
    pub fn extra_params(mut self) -> Self {
        self.extra_params = true;
        self
    }

    /// Declare an output.
    pub fn output(mut self, name: &str, description: &str) -> Self {
        self.outputs.push((name.into(), description.into()));
        self
    }

    /// Every param given is also an output of the same name.
    pub fn outputs_from_params(mut self) -> Self {
        self.outputs_from_params = true;
        self
    }

    /// Declare a capability the pipeline must grant.
    pub fn needs(mut self, capability: Capability) -> Self {
        self.capabilities.push(capability);
        self
    }

    pub(crate) fn into_wit(self) -> types::PluginInfo {
        types::PluginInfo {
            name: self.name,
            version: self.version,
            description: self.description,
            params: self
                .params
                .into_iter()
                .map(|p| types::ParamSpec {
                    name: p.name,
                    type_: match p.ty {
                        ParamType::String => types::ParamType::String,
                        ParamType::Integer => types::ParamType::Integer,
                        ParamType::Number => types::ParamType::Number,
                        ParamType::Boolean => types::ParamType::Boolean,
                        ParamType::List => types::ParamType::List,
                        ParamType::Object => types::ParamType::Object,
                        ParamType::Any => types::ParamType::Any,
                    },
                    description: p.description,
                    required: p.required,
                    default: p.default.map(|v| v.to_string()),
                })
                .collect(),
            extra_params: self.extra_params,
            outputs: self
                .outputs
                .into_iter()
                .map(|(name, description)| types::OutputSpec { name, description })
                .collect(),
            outputs_from_params: self.outputs_from_params,
            capabilities: self
                .capabilities
                .into_iter()
                .map(|c| match c {
                    Capability::FsRead => types::Capability::FsRead,
                    Capability::FsWrite => types::Capability::FsWrite,
                    Capability::Env => types::Capability::Env,
                    Capability::Net => types::Capability::Net,
                    Capability::Exec => types::Capability::Exec,
                    Capability::Secrets => types::Capability::Secrets,
                })
                .collect(),
        }
    }
}
