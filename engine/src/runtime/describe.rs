//! What a plugin says about itself (`describe()`), in the checker's terms.

use flow_pipeline::plugin::{Capability, OutputSpec, ParamSpec, ParamType, PluginDescription};

use crate::bindings::types as wit;

pub(super) fn description_from_wit(info: wit::PluginInfo) -> Result<PluginDescription, String> {
    let mut params = Vec::with_capacity(info.params.len());
    for p in info.params {
        let default = match p.default {
            Some(text) => Some(
                serde_json::from_str(&text)
                    .map_err(|e| format!("the default of param `{}` is not JSON: {e}", p.name))?,
            ),
            None => None,
        };
        params.push(ParamSpec {
            name: p.name,
            ty: match p.type_ {
                wit::ParamType::String => ParamType::String,
                wit::ParamType::Integer => ParamType::Integer,
                wit::ParamType::Number => ParamType::Number,
                wit::ParamType::Boolean => ParamType::Boolean,
                wit::ParamType::List => ParamType::List,
                wit::ParamType::Object => ParamType::Object,
                wit::ParamType::Any => ParamType::Any,
            },
            description: p.description,
            required: p.required,
            default,
        });
    }
    Ok(PluginDescription {
        name: info.name,
        version: info.version,
        description: info.description,
        params,
        extra_params: info.extra_params,
        outputs: info
            .outputs
            .into_iter()
            .map(|o| OutputSpec {
                name: o.name,
                description: o.description,
            })
            .collect(),
        outputs_from_params: info.outputs_from_params,
        capabilities: info
            .capabilities
            .into_iter()
            .map(|c| match c {
                wit::Capability::FsRead => Capability::FsRead,
                wit::Capability::FsWrite => Capability::FsWrite,
                wit::Capability::Env => Capability::Env,
                wit::Capability::Net => Capability::Net,
                wit::Capability::Exec => Capability::Exec,
                wit::Capability::Secrets => Capability::Secrets,
            })
            .collect(),
    })
}
