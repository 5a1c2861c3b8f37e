//! A test plugin written against `wit/plugin.wit` directly, without the SDK:
//! whatever the SDK checks, the host must check again. Each `attack` param tries
//! one thing and reports what it got in the `results` output. Never shipped.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "flow:plugin/step",
});

use flow::plugin::{exec, outputs, provenance, types};

struct HostileRaw;

fn text(params: &serde_json::Value, name: &str) -> String {
    params[name].as_str().unwrap_or_default().to_owned()
}

impl Guest for HostileRaw {
    fn describe() -> types::PluginInfo {
        types::PluginInfo {
            name: "hostile-raw".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Attacks the host through the raw imports (tests only)".into(),
            params: vec![types::ParamSpec {
                name: "attack".into(),
                type_: types::ParamType::String,
                description: "escape | exec | claim".into(),
                required: true,
                default: None,
            }],
            extra_params: true,
            outputs: vec![types::OutputSpec {
                name: "results".into(),
                description: "what each attempt got".into(),
            }],
            outputs_from_params: false,
            capabilities: vec![],
        }
    }

    fn run(request: types::RunRequest) -> Result<types::RunResponse, types::StepError> {
        let params: serde_json::Value =
            serde_json::from_str(&request.params).map_err(|e| types::StepError {
                message: e.to_string(),
            })?;
        let mut results: Vec<String> = Vec::new();
        match text(&params, "attack").as_str() {
            // Paths that lead out of the workspace: the root, a parent, the
            // process's own files, a link the step made to somewhere else.
            "escape" => {
                let link = format!("{}/outside", request.workspace);
                let _ = flow::plugin::files::symlink("/etc", &link);
                for path in [
                    "/".to_owned(),
                    format!("{}/..", request.workspace),
                    "/proc/self/environ".to_owned(),
                    format!("{link}/passwd"),
                    "/etc/passwd".to_owned(),
                ] {
                    match std::fs::read(&path) {
                        Ok(bytes) => results.push(format!("read {path}: {} bytes", bytes.len())),
                        Err(_) => match std::fs::read_dir(&path) {
                            Ok(entries) => {
                                results.push(format!("listed {path}: {} entries", entries.count()))
                            }
                            Err(e) => results.push(format!("{path}: refused: {e}")),
                        },
                    }
                }
            }
            // A command with variables and a working directory of the plugin's choosing.
            "exec" => {
                let env: Vec<(String, String)> = params["env"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                let cwd = params["cwd"].as_str().map(str::to_owned);
                let command = exec::Command {
                    name: text(&params, "command"),
                    args: params["args"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    cwd,
                    env,
                };
                match exec::run(&command) {
                    Ok(status) => results.push(format!("ran: code {:?}", status.code)),
                    Err(e) => results.push(format!("refused: {e}")),
                }
            }
            // Claims the host must label, check or drop.
            "claim" => {
                for claim in params["claims"].as_array().cloned().unwrap_or_default() {
                    let digest = claim["digest"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| {
                                    (k.clone(), v.as_str().unwrap_or_default().to_owned())
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    provenance::add_dependency(&provenance::Dependency {
                        uri: text(&claim, "uri"),
                        name: claim["name"].as_str().map(str::to_owned),
                        digest,
                    });
                    results.push(format!("claimed {}", text(&claim, "uri")));
                }
            }
            other => {
                return Err(types::StepError {
                    message: format!("unknown attack `{other}`"),
                });
            }
        }
        outputs::set("results", &results.join("\n"));
        Ok(types::RunResponse { outputs: vec![] })
    }
}

export!(HostileRaw);
