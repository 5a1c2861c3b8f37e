//! The shape every capability has: its stages ([`Capability`]), what a run and a
//! step give it, and the store type it is linked against ([`CapabilityHost`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use flow_pipeline::{Diagnostics, Plan, PlannedStep};
use serde_json::{Map, Value};
use wasmtime::component::Linker;

use super::commands::ExecPlan;
use super::recorded::{Claims, RunAttestations};
use super::secret_values::SecretValues;
use super::step_log::LogSink;
use crate::cancel::CancelFlag;

/// What a capability's host functions need of the store they are linked into: the
/// WASI and `wasi:http` views the `fs` and `net` capabilities work through.
pub(crate) trait StoreData:
    wasmtime_wasi::WasiView + wasmtime_wasi_http::WasiHttpView + Send + 'static
{
}

impl<T: wasmtime_wasi::WasiView + wasmtime_wasi_http::WasiHttpView + Send + 'static> StoreData
    for T
{
}

/// What a run gives its capabilities to resolve from.
pub(crate) struct RunInputs<'a> {
    /// The checked plan.
    pub plan: &'a Plan,
    /// The host commands each step is granted, resolved when the pipeline was loaded.
    pub exec: &'a Arc<ExecPlan>,
    /// The secret values, loaded first (others use them: commands' variables, the
    /// redactor).
    pub secrets: &'a Arc<SecretValues>,
    /// The key that signs the run's provenance, never a step's.
    pub owner: Option<&'a flow_provenance::SigningKey>,
    /// The run's workspace.
    pub workspace: &'a Path,
}

/// What one step gives its capabilities to prepare from, besides the run's facts.
pub(crate) struct StepInputs<'a> {
    /// The step.
    pub step: &'a PlannedStep,
    /// The run's workspace, and the directory it was when the run started.
    pub workspace: &'a Path,
    pub workspace_identity: Option<flow_pipeline::DirIdentity>,
    /// The step's log.
    pub log: &'a LogSink,
    /// Where the step's claims and commands are recorded.
    pub claims: &'a Claims,
    /// The run's attestations so far (none when the run records no provenance).
    pub attestations: Option<&'a RunAttestations>,
    /// When the step must end, and its cancellation.
    pub deadline: Instant,
    pub cancel: &'a CancelFlag,
}

/// One host capability; see the module documentation for its stages.
pub(crate) trait Capability {
    /// What it resolves once per run, for all steps.
    type Run: Send + Sync + 'static;
    /// Its part of one step's store, which its host calls work on.
    type Step: Send + 'static;

    /// Resolves the run's host facts. Every problem is reported, at its place.
    fn resolve(inputs: &RunInputs<'_>) -> Result<Self::Run, Diagnostics>;

    /// One step's part of the store.
    fn prepare(run: &Self::Run, inputs: &StepInputs<'_>) -> Self::Step;

    /// Its part of a store that is granted nothing (a plugin's `describe()` call).
    fn none(log: &LogSink) -> Self::Step;

    /// Adds what it granted `step` to the step's provenance `grants` object (keys are
    /// the grant's names: `fs`, `exec`, ...).
    fn describe(run: &Self::Run, step: &PlannedStep, grants: &mut Map<String, Value>);

    /// Adds its host functions to the linker, serving calls on `project(state)`.
    fn link<T: StoreData>(
        linker: &mut Linker<T>,
        project: fn(&mut T) -> &mut Self::Step,
    ) -> wasmtime::Result<()>;
}
