//! The secrets capability: values a pipeline names (`secrets:`) and a step is
//! granted (`grants.secrets`), read by the plugin through the `secrets` import
//! or passed to its commands through `grants.env`.
//!
//! Values are loaded by the host when a run starts, from an environment
//! variable or a file, and never appear in the pipeline file. Everything a run
//! records goes through the [`Redactor`] first: log lines (also when a value is
//! split across writes, and in base64 form), outputs, failure reasons and the
//! commands a step ran. Provenance names secrets, never their values.

use std::sync::Arc;

use flow_pipeline::Diagnostics;

use flow_pipeline::PlannedStep;
use serde_json::{Map, Value};
use wasmtime::component::{HasSelf, Linker};

pub use super::redact::Redactor;
pub use super::secret_values::{SecretValues, StepSecrets, load};
use super::step_log::LogSink;
use super::unit::{Capability, RunInputs, StepInputs, StoreData};
use crate::bindings::flow::plugin::secrets as wit_secrets;

/// The secrets capability (`grants.secrets`). Values are loaded before the other
/// capabilities resolve (commands' variables and the redactor use them).
pub(crate) struct Secrets;

/// The secrets one step is granted (none: the step reads none).
#[derive(Debug, Default)]
pub(crate) struct SecretsStep(Option<Arc<StepSecrets>>);

impl Capability for Secrets {
    type Run = Arc<SecretValues>;
    type Step = SecretsStep;

    fn resolve(inputs: &RunInputs<'_>) -> Result<Arc<SecretValues>, Diagnostics> {
        Ok(inputs.secrets.clone())
    }

    fn prepare(run: &Arc<SecretValues>, inputs: &StepInputs<'_>) -> SecretsStep {
        SecretsStep(StepSecrets::for_step(run, &inputs.step.secret_grants))
    }

    fn none(_: &LogSink) -> SecretsStep {
        SecretsStep(None)
    }

    fn describe(_: &Arc<SecretValues>, step: &PlannedStep, grants: &mut Map<String, Value>) {
        if !step.secret_grants.is_empty() {
            // Names only, never values.
            grants.insert("secrets".into(), step.secret_grants.clone().into());
        }
    }

    fn link<T: StoreData>(
        linker: &mut Linker<T>,
        project: fn(&mut T) -> &mut SecretsStep,
    ) -> wasmtime::Result<()> {
        wit_secrets::add_to_linker::<T, HasSelf<SecretsStep>>(linker, project)
    }
}

impl wit_secrets::Host for SecretsStep {
    fn get(&mut self, name: String) -> Result<String, String> {
        match self.0.as_ref().and_then(|s| s.granted.get(&name)) {
            Some(value) => Ok(value.clone()),
            None => {
                let granted: Vec<&str> = self
                    .0
                    .as_ref()
                    .map(|s| s.granted.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                Err(if granted.is_empty() {
                    format!(
                        "secret `{name}` is not granted: this step is granted no secrets (`grants.secrets`)"
                    )
                } else {
                    format!(
                        "secret `{name}` is not granted: this step may read only {}",
                        granted.join(", ")
                    )
                })
            }
        }
    }
}
