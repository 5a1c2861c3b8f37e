//! A fixed plugin resolver shared by the integration tests.

use std::sync::Arc;

use flow_pipeline::{
    Capability, OutputSpec, ParamSpec, ParamType, PluginDescription, PluginRef, PluginResolver,
};

/// Describes a few made-up plugins:
/// - `echo`: takes any param, and every param is also an output;
/// - `typed`: `text` (string, required), `count` (integer, default 1), `verbose` (boolean),
///   `items` (list), `ratio` (number); outputs `result` and `summary`;
/// - `reader` needs to read a directory, `writer` to write one, `fetcher` the network;
/// - a `.wasm` path that exists is a lister plugin that needs to read a directory.
pub struct TestResolver;

fn param(
    name: &str,
    ty: ParamType,
    required: bool,
    default: Option<serde_json::Value>,
) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        ty,
        description: String::new(),
        required,
        default,
    }
}

fn plugin(name: &str) -> PluginDescription {
    PluginDescription {
        name: name.into(),
        version: "1.0.0".into(),
        description: String::new(),
        params: Vec::new(),
        extra_params: false,
        outputs: Vec::new(),
        outputs_from_params: false,
        capabilities: Vec::new(),
    }
}

const BUILTINS: [&str; 5] = ["echo", "typed", "reader", "writer", "fetcher"];

impl PluginResolver for TestResolver {
    fn describe(&self, uses: &PluginRef) -> Result<Arc<PluginDescription>, String> {
        let name = match uses {
            PluginRef::Builtin { name, .. } => name.as_str(),
            PluginRef::File { path, written, .. } => {
                if !path.is_file() {
                    return Err(format!("cannot read plugin `{written}`: no such file"));
                }
                let mut lister = plugin("lister");
                lister.outputs = vec![OutputSpec {
                    name: "files".into(),
                    description: String::new(),
                }];
                lister.capabilities = vec![Capability::FsRead];
                return Ok(Arc::new(lister));
            }
        };
        let mut description = plugin(name);
        match name {
            "echo" => {
                description.extra_params = true;
                description.outputs_from_params = true;
            }
            "typed" => {
                description.params = vec![
                    param("text", ParamType::String, true, None),
                    param(
                        "count",
                        ParamType::Integer,
                        true,
                        Some(serde_json::json!(1)),
                    ),
                    param("verbose", ParamType::Boolean, false, None),
                    param("items", ParamType::List, false, None),
                    param("ratio", ParamType::Number, false, None),
                ];
                description.outputs = ["result", "summary"]
                    .iter()
                    .map(|o| OutputSpec {
                        name: (*o).into(),
                        description: String::new(),
                    })
                    .collect();
            }
            "reader" => description.capabilities = vec![Capability::FsRead],
            "writer" => description.capabilities = vec![Capability::FsWrite],
            "fetcher" => description.capabilities = vec![Capability::Net],
            _ => {
                let close = BUILTINS
                    .iter()
                    .find(|b| strsim_like(b, name))
                    .map(|b| format!("; did you mean `{b}`?"))
                    .unwrap_or_default();
                return Err(format!("unknown built-in plugin `{name}`{close}"));
            }
        }
        Ok(Arc::new(description))
    }
}

/// A rough "one typo away" test (one edit, or the same letters in another order), enough
/// for the fixed names above.
fn strsim_like(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let common_prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let common_suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (mut sorted_a, mut sorted_b) = (a.clone(), b.clone());
    sorted_a.sort_unstable();
    sorted_b.sort_unstable();
    sorted_a == sorted_b || common_prefix + common_suffix + 1 >= a.len().max(b.len())
}
