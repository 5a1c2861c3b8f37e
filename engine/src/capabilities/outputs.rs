//! The outputs capability: `outputs.set` from the plugin.

use crate::runtime::bindings::flow::plugin::outputs as wit_outputs;

/// Most outputs one step may set, and the longest value; past these the
/// step fails rather than growing the run record without bound.
pub(crate) const MAX_OUTPUTS: usize = 1_000;
pub(crate) const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

impl wit_outputs::Host for crate::runtime::StepState {
    fn set(&mut self, name: String, value: String) {
        if self.outputs.len() >= MAX_OUTPUTS && !self.outputs.contains_key(&name) {
            self.output_error
                .get_or_insert_with(|| format!("the step set more than {MAX_OUTPUTS} outputs"));
            return;
        }
        if value.len() > MAX_OUTPUT_BYTES {
            self.output_error.get_or_insert_with(|| {
                format!("output `{name}` is longer than {MAX_OUTPUT_BYTES} bytes")
            });
            return;
        }
        self.outputs.insert(name, value);
    }
}
