//! Write flow pipeline steps as WebAssembly components.
//!
//! A plugin is a type implementing [`Plugin`] plus one [`export_plugin!`] line.
//! Build it for `wasm32-wasip2` as a `cdylib`:
//!
//! ```ignore
//! use flow_plugin_sdk::{export_plugin, Context, Description, Param, Plugin, StepError};
//!
//! #[derive(serde::Deserialize)]
//! struct Params { name: String }
//!
//! struct Greeter;
//!
//! impl Plugin for Greeter {
//!     type Params = Params;
//!     fn describe() -> Description {
//!         Description::new("greeter", env!("CARGO_PKG_VERSION"), "Greets someone")
//!             .param(Param::string("name", "who to greet").required())
//!             .output("greeting", "the greeting")
//!     }
//!     fn run(params: Params, ctx: &mut Context) -> Result<(), StepError> {
//!         ctx.info(&format!("greeting {}", params.name));
//!         ctx.set_output("greeting", &format!("hello, {}", params.name));
//!         Ok(())
//!     }
//! }
//!
//! export_plugin!(Greeter);
//! ```
//!
//! The host type-checks params against [`Plugin::describe`] before `run` is
//! called, applies defaults, and sets the plugin's working directory to the
//! run's workspace. A returned [`StepError`] fails the step with its message;
//! a panic traps the component and fails the step as a crash.
#![deny(missing_docs)]

extern crate self as flow_plugin_sdk;

mod describe;
mod host;
pub mod params;

pub use describe::{Capability, Description, Param, ParamType};
pub use host::{exec, fs, provenance, secrets, signing};
pub use serde;
pub use serde_json;

/// Guest bindings generated from `wit/plugin.wit`. Plugins rarely need these
/// directly; they are public for the export macro and for advanced use.
#[allow(missing_docs, clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "flow:plugin/step",
        pub_export_macro: true,
        export_macro_name: "export_step",
        default_bindings_module: "flow_plugin_sdk::bindings",
        runtime_path: "flow_plugin_sdk::__private::wit_bindgen::rt",
    });
}

use bindings::flow::plugin::{log, outputs, types};

/// A pipeline step implemented as a WebAssembly component.
pub trait Plugin {
    /// The step's `with:` params. Deserialized from the JSON object the host
    /// sends, after the host applied defaults and checked types.
    type Params: serde::de::DeserializeOwned;

    /// Who the plugin is and what it takes. Called by `flow check` and
    /// `flow plugins`; must not have side effects.
    fn describe() -> Description;

    /// Do the step's work.
    fn run(params: Self::Params, ctx: &mut Context) -> Result<(), StepError>;
}

/// A failure the plugin reports: the step fails with this message.
///
/// Anything that displays converts into it, so `?` works on I/O errors,
/// strings and most error types.
#[derive(Debug)]
pub struct StepError {
    message: String,
}

impl StepError {
    /// A step error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
        }
    }

    /// The message the user sees.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: std::fmt::Display> From<E> for StepError {
    fn from(error: E) -> Self {
        StepError::new(error.to_string())
    }
}

/// A host directory granted to the step beyond its workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedDir {
    /// Absolute path, the same in the plugin as on the host.
    pub path: String,
    /// Whether the grant allows writing.
    pub writable: bool,
}

/// What a running step can see and do besides its params.
pub struct Context {
    run_id: String,
    step_id: String,
    workspace: String,
    dirs: Vec<GrantedDir>,
}

impl Context {
    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The step's id in the pipeline.
    pub fn step_id(&self) -> &str {
        &self.step_id
    }

    /// The step's view of the run's workspace (absolute; the step's own directory,
    /// holding what the steps it needs made); also the working directory.
    pub fn workspace(&self) -> &str {
        &self.workspace
    }

    /// Host directories granted beyond the workspace.
    pub fn granted_dirs(&self) -> &[GrantedDir] {
        &self.dirs
    }

    /// Set (or replace) an output, readable by later steps as
    /// `steps.<id>.outputs.<name>`.
    pub fn set_output(&mut self, name: &str, value: &str) {
        outputs::set(name, value);
    }

    /// Log a line at debug level.
    pub fn debug(&self, message: &str) {
        log::write(log::Level::Debug, message);
    }

    /// Log a line at info level.
    pub fn info(&self, message: &str) {
        log::write(log::Level::Info, message);
    }

    /// Log a line at warn level.
    pub fn warn(&self, message: &str) {
        log::write(log::Level::Warn, message);
    }

    /// Log a line at error level.
    pub fn error(&self, message: &str) {
        log::write(log::Level::Error, message);
    }

    /// Say how far long work has got: `done` of `total` (`None`: not known)
    /// `unit`s ("files", "bytes", ...). Shown on the terminal, the dashboard and
    /// in the run's events; the host keeps the rate down, so call it freely.
    pub fn progress(&self, done: u64, total: Option<u64>, unit: &str) {
        log::progress(done, total, unit);
    }
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    use super::*;

    pub fn describe<P: Plugin>() -> types::PluginInfo {
        P::describe().into_wit()
    }

    pub fn run<P: Plugin>(
        request: types::RunRequest,
    ) -> Result<types::RunResponse, types::StepError> {
        // Relative paths in the plugin mean the same as in the workspace.
        if let Err(e) = std::env::set_current_dir(&request.workspace) {
            return Err(types::StepError {
                message: format!("cannot enter the workspace {}: {e}", request.workspace),
            });
        }
        let params: P::Params =
            serde_json::from_str(&request.params).map_err(|e| types::StepError {
                message: format!("invalid params: {e}"),
            })?;
        let mut ctx = Context {
            run_id: request.run_id,
            step_id: request.step_id,
            workspace: request.workspace,
            dirs: request
                .dirs
                .into_iter()
                .map(|d| GrantedDir {
                    path: d.path,
                    writable: d.writable,
                })
                .collect(),
        };
        match P::run(params, &mut ctx) {
            Ok(()) => Ok(types::RunResponse {
                outputs: Vec::new(),
            }),
            Err(e) => Err(types::StepError { message: e.message }),
        }
    }
}

/// Export a [`Plugin`] implementation as the component's `describe` and `run`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        struct __FlowPluginExport;

        impl $crate::bindings::Guest for __FlowPluginExport {
            fn describe() -> $crate::bindings::flow::plugin::types::PluginInfo {
                $crate::__private::describe::<$plugin>()
            }

            fn run(
                request: $crate::bindings::flow::plugin::types::RunRequest,
            ) -> ::core::result::Result<
                $crate::bindings::flow::plugin::types::RunResponse,
                $crate::bindings::flow::plugin::types::StepError,
            > {
                $crate::__private::run::<$plugin>(request)
            }
        }

        $crate::bindings::export_step!(__FlowPluginExport with_types_in $crate::bindings);
    };
}
