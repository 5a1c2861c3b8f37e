//! What a run's signed statements record about its steps and templates.

use flow_provenance::{Outcome, TemplateOrigin};

/// What a run's statements record about one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFact {
    /// The step's id.
    pub id: String,
    /// The plugin reference as recorded (`scan`, `scan@sha256:<hex>`, `./plugins/x.wasm`).
    pub plugin: String,
    /// The hex sha256 of the plugin that ran (or would have run).
    pub plugin_sha256: String,
    /// How it ended.
    pub outcome: Outcome,
    /// When it started, unix milliseconds (its end, when it did not run).
    pub started_ms: u64,
    /// When it ended, unix milliseconds.
    pub finished_ms: u64,
    /// The steps it needs (directly).
    pub needs: Vec<String>,
    /// Where it came from, when the pipeline was resolved from templates.
    pub template: Option<TemplateOrigin>,
}

impl StepFact {
    /// The plugin's name: the recorded reference without `@version` or `@sha256:` pin;
    /// for a `.wasm` file, its file name without `.wasm`.
    pub fn plugin_name(&self) -> &str {
        let reference = self.plugin.as_str();
        let is_file = reference.contains('/') || reference.contains(".wasm");
        if is_file {
            let path = reference
                .rsplit_once("@sha256:")
                .map_or(reference, |(path, _)| path);
            let file = path.rsplit('/').next().unwrap_or(path);
            file.strip_suffix(".wasm").unwrap_or(file)
        } else {
            reference
                .split_once('@')
                .map_or(reference, |(name, _)| name)
        }
    }

    /// Whether the policy's plugin name `name` names this step: its plugin's name or the
    /// interface it implements.
    pub fn is_named(&self, name: &str) -> bool {
        self.plugin_name() == name
            || self.template.as_ref().and_then(|t| t.interface.as_deref()) == Some(name)
    }

    pub(super) fn describe(&self) -> String {
        format!(
            "`{}` (plugin {} sha256:{})",
            self.id, self.plugin, self.plugin_sha256
        )
    }
}

/// What a run's statements record, as [`evaluate`] reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFacts {
    /// The run's id.
    pub run_id: String,
    /// Its steps, in the order given.
    pub steps: Vec<StepFact>,
}

impl RunFacts {
    /// Reads the run from its steps' statements (step id, payload), which the caller
    /// verified. Errors name the step whose statement lacks something.
    pub fn from_statements<'a>(
        statements: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<RunFacts, String> {
        let mut facts = RunFacts::default();
        for (step, payload) in statements {
            let fail = |what: &str| format!("the statement of step `{step}` {what}");
            let statement: serde_json::Value =
                serde_json::from_slice(payload).map_err(|e| fail(&format!("is not JSON: {e}")))?;
            let build = &statement["predicate"]["buildDefinition"];
            let details = &statement["predicate"]["runDetails"];
            let internal = &build["internalParameters"];
            let text = |v: &serde_json::Value, what: &str| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| fail(&format!("records no {what}")))
            };
            let id = text(&build["externalParameters"]["step"], "step id")?;
            if id != step {
                return Err(fail(&format!("is about step `{id}`")));
            }
            let run_id = text(&internal["runId"], "run id")?;
            if facts.steps.is_empty() {
                facts.run_id = run_id;
            } else if run_id != facts.run_id {
                return Err(fail(&format!(
                    "belongs to run {run_id}, not {}",
                    facts.run_id
                )));
            }
            // The plugin is the first resolved dependency.
            let plugin = &build["resolvedDependencies"][0];
            let outcome = details["byproducts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|b| b["name"] == "outcome")
                .map(|b| b["annotations"]["outcome"].clone())
                .ok_or_else(|| fail("records no outcome"))?;
            let outcome: Outcome = serde_json::from_value(outcome)
                .map_err(|e| fail(&format!("records an unknown outcome: {e}")))?;
            let time = |key: &str| {
                details["metadata"][key]
                    .as_str()
                    .and_then(flow_provenance::parse_rfc3339_millis)
                    .ok_or_else(|| fail(&format!("records no valid {key}")))
            };
            let needs = internal["needs"]
                .as_array()
                .ok_or_else(|| fail("records no needs"))?
                .iter()
                .map(|n| text(n, "needs"))
                .collect::<Result<Vec<_>, _>>()?;
            let template = match internal.get("template") {
                None => None,
                Some(value) => Some(
                    serde_json::from_value::<TemplateOrigin>(value.clone())
                        .map_err(|e| fail(&format!("records an invalid template origin: {e}")))?,
                ),
            };
            facts.steps.push(StepFact {
                id,
                plugin: text(&plugin["uri"], "plugin")?,
                plugin_sha256: text(&plugin["digest"]["sha256"], "plugin digest")?,
                outcome,
                started_ms: time("startedOn")?,
                finished_ms: time("finishedOn")?,
                needs,
                template,
            });
        }
        Ok(facts)
    }
}
