//! The log capability: the plugin's `log` import and its stdout/stderr, all
//! captured into one bounded, ordered step log.

pub use super::step_log::{CapturedOutput, LogLevel, LogSink, LogSource};

use flow_pipeline::PlannedStep;
use serde_json::{Map, Value};
use wasmtime::component::{HasSelf, Linker};

use super::unit::{Capability, RunInputs, StepInputs, StoreData};
use crate::bindings::flow::plugin::log as wit_log;

/// The log capability: always granted; the step's log is made by the executor
/// (with its cap and redactor) and shared with the plugin's stdout and stderr.
pub(crate) struct Log;

impl Capability for Log {
    type Run = ();
    type Step = LogSink;

    fn resolve(_: &RunInputs<'_>) -> Result<(), flow_pipeline::Diagnostics> {
        Ok(())
    }

    fn prepare(_: &(), inputs: &StepInputs<'_>) -> LogSink {
        inputs.log.clone()
    }

    fn none(log: &LogSink) -> LogSink {
        log.clone()
    }

    fn describe(_: &(), _: &PlannedStep, _: &mut Map<String, Value>) {}

    fn link<T: StoreData>(
        linker: &mut Linker<T>,
        project: fn(&mut T) -> &mut LogSink,
    ) -> wasmtime::Result<()> {
        wit_log::add_to_linker::<T, HasSelf<LogSink>>(linker, project)
    }
}

impl wit_log::Host for LogSink {
    fn write(&mut self, level: wit_log::Level, message: String) {
        let level = match level {
            wit_log::Level::Trace => LogLevel::Trace,
            wit_log::Level::Debug => LogLevel::Debug,
            wit_log::Level::Info => LogLevel::Info,
            wit_log::Level::Warn => LogLevel::Warn,
            wit_log::Level::Error => LogLevel::Error,
        };
        for line in message.lines() {
            self.line(LogSource::Plugin(level), line);
        }
    }

    fn progress(&mut self, done: u64, total: Option<u64>, unit: String) {
        LogSink::progress(self, done, total, &unit);
    }
}
