//! The outputs capability: `outputs.set` from the plugin.

use std::collections::BTreeMap;

use flow_pipeline::PlannedStep;
use serde_json::{Map, Value};
use wasmtime::component::{HasSelf, Linker};

use super::step_log::LogSink;
use super::unit::{Capability, RunInputs, StepInputs, StoreData};
use crate::bindings::flow::plugin::outputs as wit_outputs;

/// Most outputs one step may set, and the longest value; past these the
/// step fails rather than growing the run record without bound.
pub(crate) const MAX_OUTPUTS: usize = 1_000;
pub(crate) const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// The outputs capability: always granted.
pub(crate) struct Outputs;

/// What a step set, and the first limit it passed.
#[derive(Debug, Default)]
pub(crate) struct StepOutputs {
    values: BTreeMap<String, String>,
    error: Option<String>,
}

impl StepOutputs {
    /// The outputs set, or why the step fails.
    pub(crate) fn take(&self) -> Result<BTreeMap<String, String>, String> {
        match &self.error {
            Some(error) => Err(error.clone()),
            None => Ok(self.values.clone()),
        }
    }
}

impl Capability for Outputs {
    type Run = ();
    type Step = StepOutputs;

    fn resolve(_: &RunInputs<'_>) -> Result<(), flow_pipeline::Diagnostics> {
        Ok(())
    }

    fn prepare(_: &(), _: &StepInputs<'_>) -> StepOutputs {
        StepOutputs::default()
    }

    fn none(_: &LogSink) -> StepOutputs {
        StepOutputs::default()
    }

    fn describe(_: &(), _: &PlannedStep, _: &mut Map<String, Value>) {}

    fn link<T: StoreData>(
        linker: &mut Linker<T>,
        project: fn(&mut T) -> &mut StepOutputs,
    ) -> wasmtime::Result<()> {
        wit_outputs::add_to_linker::<T, HasSelf<StepOutputs>>(linker, project)
    }
}

impl wit_outputs::Host for StepOutputs {
    fn set(&mut self, name: String, value: String) {
        if self.values.len() >= MAX_OUTPUTS && !self.values.contains_key(&name) {
            self.error
                .get_or_insert_with(|| format!("the step set more than {MAX_OUTPUTS} outputs"));
            return;
        }
        if value.len() > MAX_OUTPUT_BYTES {
            self.error.get_or_insert_with(|| {
                format!("output `{name}` is longer than {MAX_OUTPUT_BYTES} bytes")
            });
            return;
        }
        self.values.insert(name, value);
    }
}
