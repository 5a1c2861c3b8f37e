//! The pipeline file as written: [`Pipeline`] and its steps, read from the YAML tree with
//! every field's position, before any plugin is looked at.
//!
//! Reading is strict (an unknown key is an error) but does not stop at the first problem:
//! problems are kept in the [`Pipeline`] and reported by [`crate::check()`] together with the
//! problems only the checker can see, so the user gets every problem in one go.
//!
//! - `types.rs`: the model's types, from [`Pipeline`] down to a step's grants;
//! - `values.rs`: the scalar values the file writes (durations, sizes, `uses:`, names);
//! - `reader.rs`: the `Reader`, which turns the YAML tree into those types
//!   through `read_pipeline.rs` (the file's top level), `read_step.rs` (one step) and
//!   `read_grants.rs` (a step's `grants:`).

mod read_grants;
mod read_pipeline;
mod read_step;
mod reader;
mod types;
mod values;

pub use crate::grants::{ExecConfinement, FsAccess};
pub(crate) use read_pipeline::{
    read_exec_confinement, read_input, read_key, read_pipeline, read_secret,
};
pub(crate) use read_step::read_step;
pub(crate) use reader::{Reader, StepMode};
pub use types::{
    EnvGrantDecl, ExecGrantDecl, FsGrantDecl, GrantsDecl, InputDecl, InputType, KeyDecl, ParamDecl,
    Pipeline, SecretDecl, SecretSource, StepDecl,
};
pub(crate) use values::is_identifier;
pub use values::{MAX_MEMORY, parse_duration, parse_size};
pub(crate) use values::{Uses, parse_uses_spec};
