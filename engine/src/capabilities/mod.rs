//! Host capabilities: what a step can do beyond computing, each one unit with the
//! same stages (in the spirit of Spin's factors):
//!
//! 1. **read** its grants, typed and with their positions, when the pipeline file
//!    is read (`flow-pipeline`'s grants reader; the checker refuses what no plugin
//!    could use, and [`crate::reach`] what would expose flow's own files);
//! 2. [`Capability::resolve`] the run's host facts once per run: commands hashed,
//!    secret values read, keys loaded;
//! 3. [`Capability::prepare`] its part of one step's store, from those facts and the
//!    step's grants;
//! 4. [`Capability::link`] its host functions into the linker, once per engine,
//!    serving the guest's calls on that part;
//! 5. [`Capability::describe`] what it granted a step, for provenance and `flow check`.
//!
//! The list below is the one place capabilities are registered: adding one touches
//! the WIT, its own module, one line of [`capabilities!`], the SDK wrapper, a test
//! plugin and the docs.

pub mod claims;
pub(crate) mod commands;
pub mod exec;
pub(crate) mod files;
pub mod fs;
pub(crate) mod keys;
pub mod log;
pub mod net;
pub(crate) mod outputs;
pub(crate) mod progress;
pub(crate) mod recorded;
pub(crate) mod redact;
pub(crate) mod secret_values;
pub mod secrets;
pub(crate) mod step_log;
mod unit;

pub(crate) use unit::{Capability, RunInputs, StepInputs, StoreData};

/// The store data capabilities are linked against: it holds every capability's part
/// of a step ([`StepCapabilities`]).
pub(crate) trait CapabilityHost: StoreData {
    /// Every capability's part of this step.
    fn capabilities(&mut self) -> &mut StepCapabilities;
}

use flow_pipeline::{Diagnostics, PlannedStep};
use serde_json::{Map, Value};
use wasmtime::component::Linker;

/// The one list of capabilities: generates the run's and a step's capability
/// state, and the stages over all of them, in this order.
macro_rules! capabilities {
    ($($field:ident: $unit:ty),* $(,)?) => {
        /// Every capability's run-level facts.
        pub(crate) struct RunCapabilities {
            $(pub(crate) $field: <$unit as Capability>::Run,)*
        }

        /// Every capability's part of one step's store.
        pub(crate) struct StepCapabilities {
            $(pub(crate) $field: <$unit as Capability>::Step,)*
        }

        impl StepCapabilities {
            /// Every capability's part of a store that is granted nothing.
            pub(crate) fn none(log: &log::LogSink) -> Self {
                StepCapabilities {
                    $($field: <$unit as Capability>::none(log),)*
                }
            }
        }

        impl RunCapabilities {
            /// Resolves every capability; every problem of every one is reported.
            pub(crate) fn resolve(inputs: &RunInputs<'_>) -> Result<Self, Diagnostics> {
                let mut problems = Vec::new();
                $(let $field = <$unit as Capability>::resolve(inputs)
                    .map_err(|d| problems.extend(d.0))
                    .ok();)*
                match ($($field,)*) {
                    ($(Some($field),)*) if problems.is_empty() => Ok(RunCapabilities { $($field,)* }),
                    _ => Err(Diagnostics(problems)),
                }
            }

            /// One step's part of every capability.
            pub(crate) fn prepare(&self, inputs: &StepInputs<'_>) -> StepCapabilities {
                StepCapabilities {
                    $($field: <$unit as Capability>::prepare(&self.$field, inputs),)*
                }
            }

            /// What `step` was granted, as its provenance records it.
            pub(crate) fn describe(&self, step: &PlannedStep) -> Value {
                let mut grants = Map::new();
                $(<$unit as Capability>::describe(&self.$field, step, &mut grants);)*
                Value::Object(grants)
            }
        }

        /// Adds every capability's host functions to the linker.
        pub(crate) fn link<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
            $(<$unit as Capability>::link(linker, |state| &mut state.capabilities().$field)?;)*
            Ok(())
        }
    };
}

capabilities! {
    fs: fs::Fs,
    files: files::Files,
    log: log::Log,
    outputs: outputs::Outputs,
    exec: exec::Exec,
    secrets: secrets::Secrets,
    keys: keys::Keys,
    claims: claims::Provenance,
    net: net::Net,
}
