//! `echo`: its outputs are its `with:` params. Used by examples and tests.

use flow_plugin_sdk::{Context, Description, Plugin, StepError, export_plugin};
use serde_json::{Map, Value};

struct Echo;

impl Plugin for Echo {
    type Params = Map<String, Value>;

    fn describe() -> Description {
        Description::new(
            "echo",
            env!("CARGO_PKG_VERSION"),
            "Sets one output per `with:` param, with the param's value (strings as they are, other values as JSON)",
        )
        .extra_params()
        .outputs_from_params()
    }

    fn run(params: Self::Params, ctx: &mut Context) -> Result<(), StepError> {
        for (name, value) in &params {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            ctx.info(&format!("{name} = {text}"));
            ctx.set_output(name, &text);
        }
        Ok(())
    }
}

export_plugin!(Echo);
