//! flow pipeline files: read a `flow.yaml` with positions, check it against the plugins it
//! uses, and turn it into an immutable [`Plan`].
//!
//! ```text
//! load / parse  ->  Pipeline  ->  check(&pipeline, &resolver)  ->  Plan
//! ```
//!
//! Every problem is reported as a [`Diagnostic`] pointing at `file:line:column`, and all of
//! them at once. This crate knows nothing about wasm, the CLI or storage: the engine describes
//! plugins through [`PluginResolver`], and evaluates expressions (`${{ ... }}`, written in CEL)
//! through [`EvalContext`], [`Template`] and [`PlannedStep`] while running.
//!
//! # Module map
//!
//! In the order data flows; each module uses only those above it (a test,
//! `no_import_cycles_between_modules`, keeps it so).
//!
//! | module | its job |
//! | --- | --- |
//! | `diag.rs` | diagnostics: positions, spans, source files, rendering |
//! | `yaml.rs` | the YAML tree with every node's position |
//! | `expr.rs` | CEL expressions and `${{ }}` templates; evaluation |
//! | `plugin.rs` | the checker's view of a plugin ([`PluginResolver`]) |
//! | `grants.rs`, `origin.rs`, `interface.rs` | shared vocabulary: grants ([`FsAccess`], [`ExecConfinement`], [`DirIdentity`]), where a step came from ([`StepOrigin`], [`TemplateInfo`]), interfaces as a step carries them |
//! | `host_path.rs` | `~/` and `${NAME:-fallback}` in host paths ([`expand_host_path`]) |
//! | `model/` | the file as written: `types.rs` (the types), `values.rs` (durations, sizes, `uses:`), `reader.rs` with `read_pipeline.rs`, `read_step.rs`, `read_grants.rs` (the YAML reader) |
//! | `template/` | resolution of `extends`: `document.rs`, `config.rs`, `source.rs` (inputs); `resolve.rs` driving `chain.rs`, `params.rs`, `substitute.rs`, `merge.rs` (with `merged.rs`, `steps.rs`, `slots.rs`, `interfaces.rs`, `seal.rs`), `assemble.rs`; `declaration.rs` and `render.rs` (the `--resolved` printer) |
//! | `grant_path.rs`, `reach.rs` | walking granted paths without links; which steps reach which |
//! | `check/` | [`check()`]: `mod.rs` drives `plugins.rs`, `needs.rs` (with `order.rs`), `grants.rs`, `references.rs` over the state in `checker.rs` |
//! | `plan.rs` | the [`Plan`] the engine runs: inputs bound, params rendered |
//!
//! ```
//! use std::sync::Arc;
//! use flow_pipeline::{PluginDescription, PluginRef, PluginResolver};
//!
//! struct Echo;
//! impl PluginResolver for Echo {
//!     fn describe(&self, uses: &PluginRef) -> Result<Arc<PluginDescription>, String> {
//!         Ok(Arc::new(PluginDescription {
//!             name: "echo".into(), version: "1.0.0".into(), description: String::new(),
//!             params: vec![], extra_params: true, outputs: vec![], outputs_from_params: true,
//!             capabilities: vec![],
//!         }))
//!     }
//! }
//!
//! let source = "version: 1\nname: hello\nsteps:\n  greet:\n    uses: echo\n    with: { message: hi }\n";
//! let pipeline = flow_pipeline::parse(source, "flow.yaml", std::path::Path::new(".")).unwrap();
//! let plan = flow_pipeline::check(&pipeline, &Echo).unwrap();
//! assert_eq!(plan.steps[0].id, "greet");
//! ```

#![deny(missing_docs)]

pub mod check;
pub mod diag;
pub mod expr;
mod grant_path;
mod grants;
mod host_path;
mod interface;
pub mod model;
mod origin;
pub mod plan;
pub mod plugin;
mod reach;
pub mod retry;
pub mod template;
#[cfg(test)]
mod testing;
pub mod yaml;

use std::path::Path;

pub use check::{check, expand_host_path};
pub use diag::{Diagnostic, Diagnostics, Location, Note, Position, Severity, SourceFile, Span};
pub use expr::{EvalContext, EvalError, Expression, Reference, StepOutcome, Template};
pub use grants::NetGrant;
pub use model::{
    EnvGrantDecl, ExecConfinement, ExecGrantDecl, FsAccess, InputDecl, InputType, KeyDecl,
    Pipeline, SecretDecl, SecretSource, StepDecl,
};
pub use plan::{
    DirIdentity, ExecGrant, FsGrant, Plan, PlannedParam, PlannedStep, StepOrigin, TemplateInfo,
};
pub use plugin::{
    Capability, OutputSpec, ParamSpec, ParamType, PluginDescription, PluginRef, PluginResolver,
};
pub use retry::{FailureClass, RetryPolicy};
pub use template::{
    BindingDecl, CatalogDecl, CatalogLocation, Config, Document, FoundTemplate,
    TemplateDeclaration, TemplateSource, parse_document, read_config, read_document,
    read_template_declaration, render_resolved, resolve,
};

/// The file `flow run` reads when given none.
pub const DEFAULT_FILE: &str = "flow.yaml";

/// Reads the pipeline file at `path` (shown in messages as given) and parses it; relative
/// paths in the file are resolved against the file's directory. See [`parse`].
pub fn load(path: impl AsRef<Path>) -> Result<Pipeline, Diagnostics> {
    resolve(read_document(path.as_ref())?, &NoCatalogs, &[])
}

/// Parses the text of a pipeline file. `display_path` is the path shown in messages;
/// `base_dir` is the directory relative paths in the file (`uses:`, `grants.fs`) are resolved
/// against. A file that `extends` a template needs catalogs: use [`parse_document`] and
/// [`resolve`] with a [`TemplateSource`].
///
/// Returns `Err` only when the text is not valid YAML or holds no document. Other problems
/// (unknown keys, values of the wrong type, invalid expressions...) are kept in the
/// [`Pipeline`] ([`Pipeline::problems`]) and reported by [`check()`] together with the problems
/// only it can see, so that the user sees every problem in one go.
pub fn parse(source: &str, display_path: &str, base_dir: &Path) -> Result<Pipeline, Diagnostics> {
    resolve(
        parse_document(source, display_path, base_dir)?,
        &NoCatalogs,
        &[],
    )
}

/// A template source without catalogs, for [`load`] and [`parse`].
struct NoCatalogs;

impl TemplateSource for NoCatalogs {
    fn find(&self, id: &str, _: &semver::VersionReq, _: &str) -> Result<FoundTemplate, String> {
        Err(format!(
            "cannot resolve template {id}: this reader has no catalogs\nresolve templates through the engine (`flow`), which reads the catalogs"
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plans_can_be_shared_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<super::Plan>();
        send_sync::<super::Pipeline>();
        send_sync::<super::Diagnostics>();
    }
}
