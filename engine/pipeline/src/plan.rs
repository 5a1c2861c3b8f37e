//! The checked, immutable result of [`crate::check()`]: what the engine runs.
//!
//! A [`Plan`] is `Send + Sync`; wrap it in an `Arc` and share it between tasks. Steps are in
//! a topological order (a step comes after every step it needs; ties keep the file order) and
//! refer to each other by their index in [`Plan::steps`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::diag::{Diagnostic, Diagnostics, SourceFile, Span, did_you_mean_help};
use crate::expr::{EvalContext, Expression, Template};
pub use crate::grants::DirIdentity;
use crate::grants::{ExecConfinement, FsAccess};
use crate::model::{EnvGrantDecl, InputDecl, KeyDecl, SecretDecl};
pub use crate::origin::{StepOrigin, TemplateInfo};
use crate::plugin::{ParamType, PluginDescription, PluginRef, json_type_name};

/// A checked pipeline, ready to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Plan {
    /// The pipeline's `name`.
    pub name: String,
    /// The pipeline's `description`.
    pub description: Option<String>,
    /// The pipeline file: its text and the path shown for it. Use it to point runtime
    /// diagnostics at the file (see [`PlannedStep::error`]).
    pub source: Arc<SourceFile>,
    /// The directory relative paths in the file were resolved against.
    pub base_dir: PathBuf,
    /// The declared inputs, in file order.
    pub inputs: Vec<InputDecl>,
    /// The steps, in topological order; `steps[i].index == i`.
    pub steps: Vec<PlannedStep>,
    /// The `exec-confinement` policy as written, if it was.
    pub exec_confinement: Option<(ExecConfinement, Span)>,
    /// The file `exec-confinement` was written in (the pipeline file or a template).
    pub exec_confinement_source: Arc<SourceFile>,
    /// The declared secrets (names and sources; values are loaded when a run starts).
    pub secrets: Vec<SecretDecl>,
    /// The declared signing keys (loaded when a run starts).
    pub keys: Vec<KeyDecl>,
    /// The templates the pipeline was resolved from, nearest first (the one the
    /// pipeline file extends, then the one that extends, ...); empty for a
    /// pipeline that extends none.
    pub templates: Vec<TemplateInfo>,
}

/// A directory a step may use, resolved and checked to exist. The path as written never
/// passes through a symbolic link (see `docs/pipeline.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsGrant {
    /// The canonical absolute path of the directory.
    pub path: PathBuf,
    /// The path as written in the file, for messages and attestations.
    pub written: String,
    /// What the step may do there.
    pub access: FsAccess,
    /// Whether its files are hashed as materials of the step's provenance.
    pub hash: bool,
    /// Where it was written.
    pub span: Span,
    /// The file it was written in (the pipeline file or a template).
    pub source: Arc<SourceFile>,
    /// Which directory `path` was when the pipeline was checked.
    pub identity: DirIdentity,
}

/// One `grants.exec` entry, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecGrant {
    /// The command as written: a bare name or an absolute path.
    pub command: String,
    /// Where it was written.
    pub span: Span,
    /// Absolute, canonical directories the command may read when confined. None of them
    /// was reached through a symbolic link below its trusted start (the pipeline's
    /// directory, `/`, the home directory or a variable's value).
    pub reads: Vec<PathBuf>,
    /// Which directory each of `reads` was when the pipeline was checked, in the same order.
    pub reads_identity: Vec<DirIdentity>,
    /// The file it was written in (the pipeline file or a template).
    pub source: Arc<SourceFile>,
}

/// One `with:` entry of a planned step.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedParam {
    /// The parameter name.
    pub name: String,
    /// The value: a literal, or a template evaluated when the step runs.
    pub value: Template,
    /// Where the value was written.
    pub span: Span,
    /// The file it was written in (the pipeline file or a template).
    pub source: Arc<SourceFile>,
}

/// One step of a [`Plan`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PlannedStep {
    /// The step id.
    pub id: String,
    /// Its position in [`Plan::steps`].
    pub index: usize,
    /// Its display name (`name:`), if any.
    pub name: Option<String>,
    /// Its `description:`, if any.
    pub description: Option<String>,
    /// The indices of the steps it needs directly, ascending.
    pub needs: Vec<usize>,
    /// The indices of the steps that need it directly, ascending.
    pub dependents: Vec<usize>,
    /// The plugin it runs.
    pub plugin: PluginRef,
    /// What the plugin said about itself.
    pub plugin_description: Arc<PluginDescription>,
    /// Its parameters as written, in file order (plugin defaults are applied by
    /// [`PlannedStep::resolve_params`]).
    pub params: Vec<PlannedParam>,
    /// Its condition (`if:`) and where it was written.
    pub condition: Option<(Expression, Span)>,
    /// Its time limit; `None` means the engine's default.
    pub timeout: Option<Duration>,
    /// Its memory limit in bytes; `None` means the engine's default.
    pub memory: Option<u64>,
    /// Whether the pipeline carries on when this step fails.
    pub continue_on_error: bool,
    /// How it is retried when it fails (`None`: one attempt).
    pub retry: Option<crate::retry::RetryPolicy>,
    /// `cache:` as written: `Some(false)` always runs the step, `Some(true)` lets the
    /// engine cache a step it would not by default (one that reaches the network or
    /// runs unconfined commands); `None` caches what is safe to.
    pub cache: Option<bool>,
    /// The directories it may use.
    pub fs_grants: Vec<FsGrant>,
    /// Host commands it may run (resolved to files by the engine).
    pub exec_grants: Vec<ExecGrant>,
    /// Environment variables granted to its commands.
    pub env_grants: Vec<EnvGrantDecl>,
    /// The secrets it may read.
    pub secret_grants: Vec<String>,
    /// The signing keys it may sign with.
    pub key_grants: Vec<String>,
    /// The authorities (`host:port`) it may reach over HTTP(S).
    pub net_grants: Vec<crate::grants::NetGrant>,
    /// Where the step id was written.
    pub span: Span,
    /// Where its `uses:` value was written.
    pub uses_span: Span,
    /// Where its `with:` key was written, if present.
    pub with_span: Option<Span>,
    /// The file the step was written in (the pipeline file or a template), for
    /// diagnostics.
    pub source: Arc<SourceFile>,
    /// Where it came from when the pipeline extends templates.
    pub origin: StepOrigin,
}

impl Plan {
    /// The step with id `id`.
    pub fn step(&self, id: &str) -> Option<&PlannedStep> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The path of the pipeline file, as the user gave it.
    pub fn path(&self) -> &str {
        &self.source.name
    }

    /// The directory relative paths in the file were resolved against.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Binds the values given on the command line (`--input name=value`, as `(name, value)`
    /// pairs) to the declared inputs: parses each per its type and applies defaults. Reports
    /// every unknown, repeated, missing or ill-typed input.
    pub fn bind_inputs(
        &self,
        given: &[(String, String)],
    ) -> Result<BTreeMap<String, Value>, Diagnostics> {
        let mut problems = Vec::new();
        let mut bound = BTreeMap::new();
        for (name, text) in given {
            let Some(input) = self.inputs.iter().find(|i| &i.name == name) else {
                let help = did_you_mean_help(name, self.inputs.iter().map(|i| i.name.as_str()))
                    .unwrap_or_else(|| {
                        if self.inputs.is_empty() {
                            format!("pipeline `{}` declares no inputs", self.name)
                        } else {
                            let names: Vec<String> = self
                                .inputs
                                .iter()
                                .map(|i| format!("`{}`", i.name))
                                .collect();
                            format!(
                                "the inputs of pipeline `{}` are {}",
                                self.name,
                                names.join(", ")
                            )
                        }
                    });
                problems.push(
                    Diagnostic::error_without_location(format!(
                        "unknown input `{name}` (given with `--input {name}=...`)"
                    ))
                    .with_help(help),
                );
                continue;
            };
            if bound.contains_key(name) {
                problems.push(Diagnostic::error_without_location(format!(
                    "input `{name}` is given more than once"
                )));
                continue;
            }
            match input.ty.parse_text(text) {
                Some(value) => {
                    bound.insert(name.clone(), value);
                }
                None => problems.push(
                    Diagnostic::error_without_location(format!(
                        "input `{name}` must be {}, found `{text}`",
                        input.ty.described()
                    ))
                    .with_help(format!("give it as `--input {name}=<{}>`", input.ty.name())),
                ),
            }
        }
        for input in &self.inputs {
            if bound.contains_key(&input.name) || given.iter().any(|(n, _)| n == &input.name) {
                continue;
            }
            match &input.default {
                Some(default) => {
                    bound.insert(input.name.clone(), default.clone());
                }
                None => problems.push(
                    Diagnostic::error_without_location(format!(
                        "missing required input `{}`",
                        input.name
                    ))
                    .with_help(format!(
                        "give it with `--input {}=<{}>`",
                        input.name,
                        input.ty.name()
                    )),
                ),
            }
        }
        if problems.is_empty() {
            Ok(bound)
        } else {
            Err(Diagnostics(problems))
        }
    }
}

impl PlannedStep {
    /// An error about this step (e.g. its plugin failed), pointing at its id in the file.
    pub fn error(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(&self.source, self.span, message)
    }

    /// Evaluates the condition (`if:`); `true` when there is none. The error points at the
    /// `if:` value.
    pub fn evaluate_condition(&self, ctx: &EvalContext) -> Result<bool, Diagnostic> {
        match &self.condition {
            None => Ok(true),
            Some((expression, span)) => expression.eval_bool(ctx).map_err(|e| {
                Diagnostic::error(
                    &self.source,
                    *span,
                    format!(
                        "the condition of step `{}` cannot be evaluated: {e}",
                        self.id
                    ),
                )
            }),
        }
    }

    /// The parameters to pass to the plugin: every template rendered against `ctx`, plugin
    /// defaults applied, and each value checked against the plugin's declared type. A string
    /// computed by an expression is converted when the parameter wants an integer, number or
    /// boolean and the text is one (step outputs are always strings). The error points at the
    /// `with:` entry.
    pub fn resolve_params(
        &self,
        ctx: &EvalContext,
    ) -> Result<serde_json::Map<String, Value>, Diagnostic> {
        let plugin = &self.plugin_description;
        let mut out = serde_json::Map::new();
        for param in &self.params {
            let mut value = param.value.render(ctx).map_err(|e| {
                Diagnostic::error(
                    &self.source,
                    param.span,
                    format!(
                        "param `{}` of step `{}` cannot be evaluated: {e}",
                        param.name, self.id
                    ),
                )
            })?;
            if let Some(spec) = plugin.param(&param.name) {
                if !param.value.is_literal() {
                    value = coerce(spec.ty, value);
                }
                if !spec.ty.accepts(&value) {
                    return Err(Diagnostic::error(
                        &self.source,
                        param.span,
                        format!(
                            "param `{}` of plugin `{}` expects {}, but the value is {}: {}",
                            param.name,
                            plugin.name,
                            spec.ty.described(),
                            json_type_name(&value),
                            value
                        ),
                    ));
                }
            }
            out.insert(param.name.clone(), value);
        }
        for spec in &plugin.params {
            if let (false, Some(default)) = (out.contains_key(&spec.name), &spec.default) {
                out.insert(spec.name.clone(), default.clone());
            }
        }
        Ok(out)
    }
}

/// Converts a computed string to the scalar type a parameter wants, when it reads as one.
fn coerce(ty: ParamType, value: Value) -> Value {
    let Value::String(text) = &value else {
        return value;
    };
    let converted = match ty {
        ParamType::Integer => text.trim().parse::<i64>().ok().map(Value::from),
        ParamType::Number => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        ParamType::Boolean => match text.trim() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        _ => None,
    };
    converted.unwrap_or(value)
}
