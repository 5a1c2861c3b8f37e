//! The model's types: the pipeline file as written, each field with its position.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::diag::{Diagnostic, SourceFile, Span};
use crate::expr::{Expression, Template};
use crate::grants::{ExecConfinement, FsAccess};
use crate::interface::BoundInterface;
use crate::origin::{StepOrigin, TemplateInfo};
use crate::plugin::PluginRef;

/// A pipeline file, read but not checked. Get one from [`crate::load`] or [`crate::parse`];
/// turn it into a [`crate::Plan`] with [`crate::check()`].
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub(crate) source: Arc<SourceFile>,
    pub(crate) base_dir: PathBuf,
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) inputs: Vec<InputDecl>,
    pub(crate) steps: Vec<StepDecl>,
    pub(crate) exec_confinement: Option<(ExecConfinement, Span)>,
    pub(crate) secrets: Vec<SecretDecl>,
    pub(crate) keys: Vec<KeyDecl>,
    pub(crate) problems: Vec<Diagnostic>,
    pub(crate) templates: Vec<TemplateInfo>,
    /// The file `exec-confinement` was written in, when not the pipeline file.
    pub(crate) exec_confinement_file: Option<Arc<SourceFile>>,
}

impl Pipeline {
    /// The declared signing keys.
    pub fn keys(&self) -> &[KeyDecl] {
        &self.keys
    }

    /// The declared secrets (names and sources, never values).
    pub fn secrets(&self) -> &[SecretDecl] {
        &self.secrets
    }

    /// The `exec-confinement` policy, with where it was written.
    pub fn exec_confinement(&self) -> Option<(ExecConfinement, Span)> {
        self.exec_confinement
    }

    /// The file's text and the path shown for it.
    pub fn source(&self) -> &Arc<SourceFile> {
        &self.source
    }

    /// The directory relative paths in the file are resolved against.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The pipeline's `name`, if it has a valid one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The declared inputs, in file order.
    pub fn inputs(&self) -> &[InputDecl] {
        &self.inputs
    }

    /// The steps, in file order.
    pub fn steps(&self) -> &[StepDecl] {
        &self.steps
    }

    /// The templates the pipeline was resolved from, nearest first (empty when it
    /// extends none).
    pub fn templates(&self) -> &[TemplateInfo] {
        &self.templates
    }

    /// Problems found while reading the file (unknown keys, values of the wrong type...).
    /// [`crate::check()`] reports them with the rest; a file with problems never becomes a plan.
    pub fn problems(&self) -> &[Diagnostic] {
        &self.problems
    }
}

/// The type of a pipeline input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputType {
    /// Any text.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
}

impl InputType {
    /// The name used in the file: `string`, `integer`, `number`, `boolean`.
    pub fn name(&self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Integer => "integer",
            InputType::Number => "number",
            InputType::Boolean => "boolean",
        }
    }

    /// "a string", "an integer"... for messages.
    pub fn described(&self) -> &'static str {
        match self {
            InputType::String => "a string",
            InputType::Integer => "an integer",
            InputType::Number => "a number",
            InputType::Boolean => "a boolean",
        }
    }

    /// Reads a value given as text (`--input name=value`).
    pub fn parse_text(&self, text: &str) -> Option<Value> {
        match self {
            InputType::String => Some(Value::String(text.to_owned())),
            InputType::Integer => text.trim().parse::<i64>().ok().map(Value::from),
            InputType::Number => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            InputType::Boolean => match text.trim() {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
        }
    }

    /// Whether a value from the file (a default) is of this type.
    pub fn accepts(&self, value: &Value) -> bool {
        match self {
            InputType::String => value.is_string(),
            InputType::Integer => value.is_i64() || value.is_u64(),
            InputType::Number => value.is_number(),
            InputType::Boolean => value.is_boolean(),
        }
    }
}

/// One declared pipeline input.
#[derive(Debug, Clone, PartialEq)]
pub struct InputDecl {
    /// Its name, read as `inputs.<name>`.
    pub name: String,
    /// Where the name was written.
    pub span: Span,
    /// Its type.
    pub ty: InputType,
    /// The value used when none is given; an input without a default is required.
    pub default: Option<Value>,
    /// What it means.
    pub description: Option<String>,
    /// The file it was declared in (the pipeline file or a template).
    pub declared_in: Arc<SourceFile>,
}

/// One `grants.fs` entry as written.
#[derive(Debug, Clone, PartialEq)]
pub struct FsGrantDecl {
    /// The path as written (relative to the pipeline file's directory, or absolute).
    pub path: String,
    /// Where the path was written.
    pub span: Span,
    /// The access granted.
    pub access: FsAccess,
    /// Whether its files are hashed into the step's provenance as materials
    /// (`hash: false` when the step identifies what it read itself, e.g. a
    /// checkout by its commit).
    pub hash: bool,
}

/// One `grants.exec` entry as written: a host command the step may run.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecGrantDecl {
    /// The command: a bare name looked up on `PATH`, or an absolute path.
    pub command: String,
    /// Where the command was written.
    pub span: Span,
    /// Host directories the command may read when confined (its toolchain, e.g.
    /// `~/.rustup`), as written, with their positions. Not visible to the plugin.
    pub reads: Vec<(String, Span)>,
}

/// One `grants.env` entry: a variable a step's commands get.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvGrantDecl {
    /// The variable's name.
    pub name: String,
    /// Where the name was written.
    pub span: Span,
    /// The value given in the file, or `None` to pass the host's value through
    /// (or to take a secret's, see `secret`).
    pub value: Option<String>,
    /// The secret whose value the variable gets (`NAME: { secret: token }`).
    pub secret: Option<(String, Span)>,
}

/// Where a secret's value comes from. Values never appear in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of the `flow` process.
    Env(String),
    /// A file (relative to the pipeline file; `~/` and `${NAME:-fallback}` expand).
    File(String),
}

/// One entry of the top-level `keys:`: a signing key held by the host. A step
/// granted it may sign with it; its bytes never reach the plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDecl {
    /// Its name, granted with `grants.keys` and given to `sign` as `key:`.
    pub name: String,
    /// Where the name was written.
    pub span: Span,
    /// The private key file (ed25519, PKCS#8 PEM, as `flow keys generate` writes),
    /// as written.
    pub file: String,
    /// Where the file was written.
    pub file_span: Span,
    /// The file it was declared in (the pipeline file or a template).
    pub declared_in: Arc<SourceFile>,
}

/// One entry of the top-level `secrets:`.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretDecl {
    /// Its name, granted with `grants.secrets`.
    pub name: String,
    /// Where the name was written.
    pub span: Span,
    /// Where its value comes from.
    pub source: SecretSource,
    /// Where the source was written.
    pub source_span: Span,
    /// The file it was declared in (the pipeline file or a template).
    pub declared_in: Arc<SourceFile>,
}

/// A step's `grants`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GrantsDecl {
    /// Directories the step may read or write.
    pub fs: Vec<FsGrantDecl>,
    /// Host commands the step may run.
    pub exec: Vec<ExecGrantDecl>,
    /// Environment variables for the step's commands (and the plugin itself).
    pub env: Vec<EnvGrantDecl>,
    /// Secrets the step may read, with where each name was written.
    pub secrets: Vec<(String, Span)>,
    /// Signing keys the step may sign with.
    pub keys: Vec<(String, Span)>,
    /// Authorities (`host:port`) the step may reach over HTTP(S).
    pub net: Vec<(crate::grants::NetGrant, Span)>,
    /// Where the `exec` key was written, if it was.
    pub exec_span: Option<Span>,
}

/// One `with:` entry of a step.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDecl {
    /// The parameter name.
    pub name: String,
    /// Where the name was written.
    pub name_span: Span,
    /// The value, which may hold expressions.
    pub value: Template,
    /// Where the value was written.
    pub span: Span,
}

/// One step as written.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDecl {
    /// The step id (its key under `steps:`).
    pub id: String,
    /// Where the id was written.
    pub span: Span,
    /// The display name.
    pub name: Option<String>,
    /// What the step does.
    pub description: Option<String>,
    /// The plugin, and where `uses:`'s value was written. `None` if missing or invalid.
    pub uses: Option<(PluginRef, Span)>,
    /// The steps it needs, each with where it was written.
    pub needs: Vec<(String, Span)>,
    /// Its condition (`if:`), with where it was written.
    pub condition: Option<(Expression, Span)>,
    /// Its parameters, in file order.
    pub with: Vec<ParamDecl>,
    /// Where the `with` key was written, if present.
    pub with_span: Option<Span>,
    /// Its time limit.
    pub timeout: Option<Duration>,
    /// Its memory limit in bytes.
    pub memory: Option<u64>,
    /// Whether the pipeline carries on when this step fails.
    pub continue_on_error: bool,
    /// How it is retried (`retry:`), with where it was written.
    pub retry: Option<(crate::retry::RetryPolicy, Span)>,
    /// Whether its result may be taken from the step cache (`cache:`), with where it
    /// was written; `None` leaves it to the engine (see [`crate::plan::PlannedStep::cache`]).
    pub cache: Option<(bool, Span)>,
    /// What it may touch beyond its workspace.
    pub grants: GrantsDecl,
    /// The plugin's version requirement (`uses: scan@^1`), as written, with where.
    pub version_req: Option<(String, Span)>,
    /// The interface it calls (`uses: interface:scan`), as written, with where;
    /// a resolved pipeline has replaced it by the bound plugin (see `binding`).
    pub interface: Option<(String, Span)>,
    /// The interface it calls and the plugin bound to it, once resolved.
    pub binding: Option<Arc<BoundInterface>>,
    /// The file the step was declared in (the pipeline file or a template).
    pub declared_in: Arc<SourceFile>,
    /// Keys (`uses`, `with.<param>`, `grants.<kind>`...) changed by a file other
    /// than `declared_in`, with that file.
    pub changed_in: Vec<(String, Arc<SourceFile>)>,
    /// Where it came from when the pipeline extends templates.
    pub origin: StepOrigin,
}

impl StepDecl {
    /// The file a key of the step was written in: `with.<param>` and
    /// `grants.<kind>` may come from a different file than the step.
    pub fn file_of(&self, key: &str) -> &Arc<SourceFile> {
        let parent = key.split_once('.').map(|(p, _)| p);
        self.changed_in
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .or_else(|| parent.and_then(|p| self.changed_in.iter().rev().find(|(k, _)| k == p)))
            .map(|(_, f)| f)
            .unwrap_or(&self.declared_in)
    }
}
