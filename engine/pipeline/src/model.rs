//! The pipeline file as written: [`Pipeline`] and its steps, read from the YAML tree with
//! every field's position, before any plugin is looked at.
//!
//! Reading is strict (an unknown key is an error) but does not stop at the first problem:
//! problems are kept in the [`Pipeline`] and reported by [`crate::check`] together with the
//! problems only the checker can see, so the user gets every problem in one go.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::diag::{Diagnostic, SourceFile, Span, did_you_mean_help};
use crate::expr::{Expression, Template};
use crate::plan::{StepOrigin, TemplateInfo};
use crate::plugin::PluginRef;
use crate::yaml::{Entry, Node, NodeKind, Scalar};

/// The largest `memory` a step may ask for: a wasm32 memory cannot grow beyond 4 GiB.
pub const MAX_MEMORY: u64 = 4 << 30;

/// A pipeline file, read but not checked. Get one from [`crate::load`] or [`crate::parse`];
/// turn it into a [`crate::Plan`] with [`crate::check`].
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
    /// [`crate::check`] reports them with the rest; a file with problems never becomes a plan.
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

/// How a step may use a granted directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsAccess {
    /// Read only.
    Read,
    /// Read and write.
    Write,
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
    pub net: Vec<(String, Span)>,
    /// Where the `exec` key was written, if it was.
    pub exec_span: Option<Span>,
}

/// Whether granted host commands must run confined (top-level `exec-confinement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecConfinement {
    /// Confine them with bubblewrap; refuse the pipeline where that is not possible.
    Required,
    /// Confine them where bubblewrap works; otherwise run them with a clean
    /// environment only (the default).
    #[default]
    Preferred,
    /// Never confine them.
    Off,
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
    /// What it may touch beyond its workspace.
    pub grants: GrantsDecl,
    /// The plugin's version requirement (`uses: scan@^1`), as written, with where.
    pub version_req: Option<(String, Span)>,
    /// The interface it calls (`uses: interface:scan`), as written, with where;
    /// a resolved pipeline has replaced it by the bound plugin (see `binding`).
    pub interface: Option<(String, Span)>,
    /// The interface it calls and the plugin bound to it, once resolved.
    pub binding: Option<Arc<crate::template::BoundInterface>>,
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

/// Reads a duration: one or more `<number><unit>` with units `h`, `m`, `s`, `ms` in that
/// order, e.g. `500ms`, `30s`, `1h30m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("ms", 1), ("m", 60_000), ("s", 1000)];
    let rank = |unit: &str| match unit {
        "h" => 0,
        "m" => 1,
        "s" => 2,
        _ => 3,
    };
    let mut rest = text;
    let mut total: u64 = 0;
    let mut last_rank: Option<u8> = None;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, millis) = UNITS.iter().find(|(u, _)| rest.starts_with(u))?;
        let r = rank(unit);
        if last_rank.is_some_and(|last| r <= last) {
            return None;
        }
        last_rank = Some(r);
        total = total.checked_add(number.checked_mul(*millis)?)?;
        rest = &rest[unit.len()..];
    }
    Some(Duration::from_millis(total))
}

/// Reads a size in bytes: a plain integer, or an integer followed by `KiB`, `MiB` or `GiB`.
pub fn parse_size(text: &str) -> Option<u64> {
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let number: u64 = text[..digits].parse().ok()?;
    let factor = match &text[digits..] {
        "" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// What a `uses:` value names.
#[derive(Debug, Clone, PartialEq)]
pub enum Uses {
    /// A plugin, with a version requirement (`scan@^1`) if one was written.
    Plugin(PluginRef, Option<String>),
    /// `interface:<name>`: whatever plugin the interface is bound to.
    Interface(String),
}

/// Reads a `uses:` value: `interface:<name>`, or a plugin (see [`parse_uses`]) that may
/// also carry a semver requirement: `scan@1`, `scan@^1.2`, `./x.wasm@>=1, <2`.
pub fn parse_uses_spec(text: &str, base_dir: &Path) -> Result<Uses, String> {
    if let Some(name) = text.strip_prefix("interface:") {
        if !is_identifier(name, true) {
            return Err(format!(
                "invalid interface name `{name}`: use letters, digits, `_` and `-`"
            ));
        }
        return Ok(Uses::Interface(name.to_owned()));
    }
    if let Some((what, req)) = text.rsplit_once('@')
        && !req.starts_with("sha256:")
    {
        if let Err(e) = semver::VersionReq::parse(req) {
            return Err(format!(
                "invalid version requirement `@{req}`: {e}; write e.g. `@1`, `@^1.2` or `@sha256:<64 hex digits>`"
            ));
        }
        return Ok(Uses::Plugin(
            parse_uses(what, base_dir)?,
            Some(req.to_owned()),
        ));
    }
    Ok(Uses::Plugin(parse_uses(text, base_dir)?, None))
}

/// Reads a `uses:` value: a built-in name or a path to a `.wasm` file, optionally pinned
/// with `@sha256:<64 hex digits>`. Paths are resolved against `base_dir`.
pub fn parse_uses(text: &str, base_dir: &Path) -> Result<PluginRef, String> {
    let (what, pin) = match text.rsplit_once('@') {
        Some((what, pin)) => {
            let hex = pin.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "invalid pin `@{pin}`: a pin is `@sha256:` followed by 64 hex digits"
                ));
            }
            (what, Some(hex.to_ascii_lowercase()))
        }
        None => (text, None),
    };
    if what.is_empty() {
        return Err("`uses` names no plugin".into());
    }
    if what.ends_with(".wasm") || what.contains('/') || what.contains('\\') {
        let joined = base_dir.join(what);
        let path = std::path::absolute(&joined).unwrap_or(joined);
        return Ok(PluginRef::File {
            path,
            written: what.to_owned(),
            pin,
        });
    }
    if what
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Ok(PluginRef::Builtin {
            name: what.to_owned(),
            pin,
        });
    }
    Err(format!(
        "`uses: {text}` names neither a built-in plugin (such as `echo`) nor a `.wasm` file (such as `./plugins/lister.wasm`)"
    ))
}

/// Whether `text` is `[A-Za-z_][A-Za-z0-9_]*`, or with `-` also allowed after the first
/// character when `dashes`.
/// A POSIX environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(crate) fn is_identifier(text: &str, dashes: bool) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (dashes && c == '-'))
}

/// Reads the YAML tree into the model, recording problems as it goes.
pub(crate) struct Reader<'a> {
    pub(crate) file: &'a Arc<SourceFile>,
    pub(crate) base_dir: &'a Path,
    pub(crate) problems: Vec<Diagnostic>,
    /// Reading a step of a template (which may say `sealed:`) or a change to an
    /// inherited step (which may say `remove:`, and need not say `uses:`).
    pub(crate) step_mode: StepMode,
}

/// What a step entry may hold, by where it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepMode {
    /// A step of a pipeline file.
    Pipeline,
    /// A new step of a template (or of a slot): it may be `sealed`.
    Template,
    /// A change to an inherited step: no `uses` needed; `sealed` and `remove` allowed.
    Change,
}

impl<'a> Reader<'a> {
    pub(crate) fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.problems
            .push(Diagnostic::error(self.file, span, message));
        let last = self.problems.len() - 1;
        &mut self.problems[last]
    }

    /// Reports keys that are not in `known`, with a suggestion.
    pub(crate) fn unknown_keys(&mut self, entries: &[Entry], known: &[&str], place: &str) {
        for entry in entries {
            let key = entry.key_text();
            if known.contains(&key) {
                continue;
            }
            let help = did_you_mean_help(key, known.iter().copied()).unwrap_or_else(|| {
                let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                format!("the keys allowed here are {}", list.join(", "))
            });
            self.error(entry.key.span, format!("unknown key `{key}` {place}"))
                .help = Some(help);
        }
    }

    /// The entries of `node`, or a problem if it is not a mapping.
    pub(crate) fn mapping<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Entry]> {
        match &node.kind {
            NodeKind::Mapping(entries) => Some(entries),
            _ => {
                self.error(
                    node.span,
                    format!("{what} must be a mapping, found {}", node.type_name()),
                );
                None
            }
        }
    }

    pub(crate) fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.error(
                    node.span,
                    format!("{what} must be a string, found {}", node.type_name()),
                );
                None
            }
        }
    }

    /// A list of strings; a single string is accepted as a list of one when `single`.
    pub(crate) fn strings(&mut self, node: &Node, what: &str, single: bool) -> Vec<(String, Span)> {
        match &node.kind {
            NodeKind::Scalar {
                value: Scalar::String(s),
                ..
            } if single => vec![(s.clone(), node.span)],
            NodeKind::Sequence(items) => items
                .iter()
                .filter_map(|item| {
                    let s = self.string(item, &format!("each entry of {what}"))?;
                    Some((s, item.span))
                })
                .collect(),
            _ => {
                self.error(
                    node.span,
                    format!(
                        "{what} must be a list of strings, found {}",
                        node.type_name()
                    ),
                );
                Vec::new()
            }
        }
    }

    pub(crate) fn read_pipeline(&mut self, root: &Node) -> Pipeline {
        let mut pipeline = Pipeline {
            source: Arc::clone(self.file),
            base_dir: self.base_dir.to_path_buf(),
            name: None,
            description: None,
            inputs: Vec::new(),
            steps: Vec::new(),
            exec_confinement: None,
            secrets: Vec::new(),
            keys: Vec::new(),
            problems: Vec::new(),
            templates: Vec::new(),
            exec_confinement_file: None,
        };
        // Keys missing from the whole file are reported at its first character.
        let top = Span::new(root.span.start, root.span.start);
        let Some(entries) = self.mapping(root, "a pipeline file") else {
            return pipeline;
        };
        self.unknown_keys(
            entries,
            &[
                "version",
                "name",
                "description",
                "inputs",
                "exec-confinement",
                "secrets",
                "keys",
                "steps",
            ],
            "in the pipeline",
        );
        let find = |key: &str| entries.iter().find(|e| e.key_text() == key);
        match find("version") {
            None => {
                self.error(top, "missing `version: 1` at the top of the pipeline");
            }
            Some(entry) => match &entry.value.kind {
                NodeKind::Scalar {
                    value: Scalar::Int(1),
                    ..
                } => {}
                NodeKind::Scalar {
                    value: Scalar::Int(_),
                    text,
                } => {
                    self.error(
                        entry.value.span,
                        format!("unsupported `version: {text}`; this flow reads version 1"),
                    );
                }
                _ => {
                    self.error(
                        entry.value.span,
                        format!("`version` must be 1, found {}", entry.value.type_name()),
                    );
                }
            },
        }
        match find("name") {
            None => {
                self.error(top, "missing `name` of the pipeline");
            }
            Some(entry) => pipeline.name = self.string(&entry.value, "`name`"),
        }
        if let Some(entry) = find("description") {
            pipeline.description = self.string(&entry.value, "`description`");
        }
        if let Some(entry) = find("exec-confinement") {
            pipeline.exec_confinement = self.read_exec_confinement(&entry.value);
        }
        if let Some(entry) = find("keys")
            && let Some(keys) = self.mapping(&entry.value, "`keys`")
        {
            pipeline.keys = keys.iter().filter_map(|e| self.read_key(e)).collect();
        }
        if let Some(entry) = find("secrets")
            && let Some(secrets) = self.mapping(&entry.value, "`secrets`")
        {
            pipeline.secrets = secrets.iter().filter_map(|e| self.read_secret(e)).collect();
        }
        if let Some(entry) = find("inputs")
            && let Some(inputs) = self.mapping(&entry.value, "`inputs`")
        {
            pipeline.inputs = inputs.iter().filter_map(|e| self.read_input(e)).collect();
        }
        match find("steps") {
            None => {
                self.error(top, "missing `steps` of the pipeline");
            }
            Some(entry) => {
                if let Some(steps) = self.mapping(&entry.value, "`steps`") {
                    if steps.is_empty() {
                        self.error(entry.key.span, "the pipeline has no steps");
                    }
                    let mut seen: HashSet<&str> = HashSet::with_capacity(steps.len());
                    for step in steps {
                        // A duplicate id is already reported by the YAML reader.
                        if !seen.insert(step.key_text()) {
                            continue;
                        }
                        if let Some(step) = self.read_step(step) {
                            pipeline.steps.push(step);
                        }
                    }
                }
            }
        }
        pipeline
    }

    /// `exec-confinement: required | preferred | off`.
    pub(crate) fn read_exec_confinement(&mut self, node: &Node) -> Option<(ExecConfinement, Span)> {
        match node.as_str() {
            Some("required") => Some((ExecConfinement::Required, node.span)),
            Some("preferred") => Some((ExecConfinement::Preferred, node.span)),
            Some("off") => Some((ExecConfinement::Off, node.span)),
            _ => {
                self.error(
                    node.span,
                    "`exec-confinement` must be `required`, `preferred` or `off`",
                )
                .help = Some("`required` refuses to run host commands without bubblewrap".into());
                None
            }
        }
    }

    pub(crate) fn read_input(&mut self, entry: &Entry) -> Option<InputDecl> {
        let name = entry.key_text().to_owned();
        if !is_identifier(&name, false) {
            self.error(
                entry.key.span,
                format!("invalid input name `{name}`: use letters, digits and `_`, not starting with a digit"),
            );
            return None;
        }
        let place = format!("input `{name}`");
        let fields = self.mapping(&entry.value, &format!("`{place}`"))?;
        self.unknown_keys(
            fields,
            &["type", "default", "description"],
            &format!("in {place}"),
        );
        let find = |key: &str| fields.iter().find(|e| e.key_text() == key);
        let ty = match find("type") {
            None => {
                self.error(entry.key.span, format!("{place} has no `type`"))
                    .help = Some("add `type: string` (or `integer`, `number`, `boolean`)".into());
                None
            }
            Some(t) => match t.value.as_str() {
                Some("string") => Some(InputType::String),
                Some("integer") => Some(InputType::Integer),
                Some("number") => Some(InputType::Number),
                Some("boolean") => Some(InputType::Boolean),
                _ => {
                    let found = t.value.as_str().unwrap_or("");
                    let help = did_you_mean_help(found, ["string", "integer", "number", "boolean"]);
                    self.error(
                        t.value.span,
                        format!("the `type` of {place} must be `string`, `integer`, `number` or `boolean`"),
                    )
                    .help = help;
                    None
                }
            },
        };
        let description = match find("description") {
            Some(d) => self.string(&d.value, &format!("the `description` of {place}")),
            None => None,
        };
        let default = find("default").map(|d| (d.value.to_json(), d.value.span));
        let ty = ty?;
        if let Some((value, span)) = &default
            && !ty.accepts(value)
        {
            self.error(
                *span,
                format!(
                    "the default of {place} must be {}, found {}",
                    ty.described(),
                    crate::plugin::json_type_name(value)
                ),
            );
        }
        Some(InputDecl {
            name,
            span: entry.key.span,
            ty,
            default: default.map(|(v, _)| v),
            description,
            declared_in: Arc::clone(self.file),
        })
    }

    pub(crate) fn read_step(&mut self, entry: &Entry) -> Option<StepDecl> {
        let id = entry.key_text().to_owned();
        if !is_identifier(&id, true) {
            self.error(
                entry.key.span,
                format!("invalid step id `{id}`: use letters, digits, `_` and `-`, starting with a letter or `_`"),
            );
            return None;
        }
        let place = format!("step `{id}`");
        let fields = self.mapping(&entry.value, &format!("`{place}`"))?;
        let mut known = vec![
            "uses",
            "name",
            "description",
            "needs",
            "if",
            "with",
            "timeout",
            "memory",
            "continue-on-error",
            "grants",
        ];
        match self.step_mode {
            StepMode::Pipeline => {}
            StepMode::Template => known.push("sealed"),
            StepMode::Change => known.extend(["sealed", "remove"]),
        }
        self.unknown_keys(fields, &known, &format!("in {place}"));
        let mut step = StepDecl {
            id,
            span: entry.key.span,
            name: None,
            description: None,
            uses: None,
            needs: Vec::new(),
            condition: None,
            with: Vec::new(),
            with_span: None,
            timeout: None,
            memory: None,
            continue_on_error: false,
            grants: GrantsDecl::default(),
            version_req: None,
            interface: None,
            binding: None,
            declared_in: Arc::clone(self.file),
            changed_in: Vec::new(),
            origin: StepOrigin::default(),
        };
        let mut has_uses = false;
        for field in fields {
            let value = &field.value;
            match field.key_text() {
                "uses" => {
                    has_uses = true;
                    if let Some(text) = self.string(value, "`uses`") {
                        match parse_uses_spec(&text, self.base_dir) {
                            Ok(Uses::Plugin(plugin, req)) => {
                                step.uses = Some((plugin, value.span));
                                step.version_req = req.map(|r| (r, value.span));
                            }
                            Ok(Uses::Interface(name)) => {
                                step.interface = Some((name, value.span));
                            }
                            Err(message) => {
                                self.error(value.span, message);
                            }
                        }
                    }
                }
                "name" => step.name = self.string(value, "`name`"),
                "description" => step.description = self.string(value, "`description`"),
                "needs" => step.needs = self.strings(value, "`needs`", true),
                "if" => step.condition = self.read_condition(value),
                "with" => {
                    step.with_span = Some(field.key.span);
                    if let Some(params) = self.mapping(value, "`with`") {
                        step.with = params
                            .iter()
                            .map(|p| ParamDecl {
                                name: p.key_text().to_owned(),
                                name_span: p.key.span,
                                value: self.template(&p.value),
                                span: p.value.span,
                            })
                            .collect();
                    }
                }
                "timeout" => {
                    let parsed = value.as_str().and_then(parse_duration);
                    match parsed {
                        Some(d) if d.is_zero() => {
                            self.error(value.span, "`timeout` must be longer than 0s");
                        }
                        Some(d) => step.timeout = Some(d),
                        None => {
                            let d = self.error(
                                value.span,
                                "`timeout` must be a duration such as `30s` or `5m`",
                            );
                            if let NodeKind::Scalar {
                                value: Scalar::Int(n),
                                ..
                            } = &value.kind
                            {
                                d.help = Some(format!("write `{n}s` for {n} seconds"));
                            } else {
                                d.help = Some(
                                    "units are `ms`, `s`, `m` and `h`, largest first, e.g. `1h30m`"
                                        .into(),
                                );
                            }
                        }
                    }
                }
                "memory" => {
                    let parsed = match &value.kind {
                        NodeKind::Scalar {
                            value: Scalar::Int(n),
                            ..
                        } => u64::try_from(*n).ok(),
                        NodeKind::Scalar {
                            value: Scalar::String(s),
                            ..
                        } => parse_size(s),
                        _ => None,
                    };
                    match parsed {
                        Some(0) => {
                            self.error(value.span, "`memory` must be more than 0 bytes");
                        }
                        Some(n) if n > MAX_MEMORY => {
                            self.error(
                                value.span,
                                "`memory` must be at most 4GiB, the most a wasm32 memory can hold",
                            );
                        }
                        Some(n) => step.memory = Some(n),
                        None => {
                            self.error(
                                value.span,
                                "`memory` must be a size such as `64MiB` or `1GiB`",
                            )
                            .help = Some(
                                "units are `KiB`, `MiB` and `GiB`; a plain number is bytes".into(),
                            );
                        }
                    }
                }
                "continue-on-error" => match &value.kind {
                    NodeKind::Scalar {
                        value: Scalar::Bool(b),
                        ..
                    } => step.continue_on_error = *b,
                    _ => {
                        self.error(
                            value.span,
                            format!(
                                "`continue-on-error` must be `true` or `false`, found {}",
                                value.type_name()
                            ),
                        );
                    }
                },
                "grants" => step.grants = self.read_grants(value, &place),
                _ => {}
            }
        }
        if !has_uses && self.step_mode != StepMode::Change {
            self.error(entry.key.span, format!("{place} has no `uses`"))
                .help = Some("name the plugin it runs, e.g. `uses: echo`".into());
        }
        Some(step)
    }

    pub(crate) fn read_condition(&mut self, node: &Node) -> Option<(Expression, Span)> {
        let source = match &node.kind {
            NodeKind::Scalar {
                value: Scalar::Bool(b),
                ..
            } => b.to_string(),
            NodeKind::Scalar {
                value: Scalar::String(s),
                ..
            } => {
                let trimmed = s.trim();
                match trimmed
                    .strip_prefix("${{")
                    .and_then(|rest| rest.strip_suffix("}}"))
                {
                    Some(inner) if !inner.contains("${{") => inner.to_owned(),
                    _ if trimmed.contains("${{") => {
                        self.error(
                            node.span,
                            "`if` must be one expression, such as `${{ inputs.deploy }}`",
                        );
                        return None;
                    }
                    _ => trimmed.to_owned(),
                }
            }
            _ => {
                self.error(
                    node.span,
                    format!("`if` must be an expression, found {}", node.type_name()),
                );
                return None;
            }
        };
        match Expression::parse(&source) {
            Ok(e) => Some((e, node.span)),
            Err(message) => {
                self.error(node.span, message);
                None
            }
        }
    }

    /// A parameter value: literals stay literal, strings with `${{ }}` become expressions.
    fn template(&mut self, node: &Node) -> Template {
        match &node.kind {
            NodeKind::Scalar {
                value: Scalar::String(s),
                ..
            } => match Template::parse_str(s) {
                Ok(t) => t,
                Err(message) => {
                    self.error(node.span, message);
                    Template::Literal(Value::String(s.clone()))
                }
            },
            NodeKind::Scalar { .. } => Template::Literal(node.to_json()),
            NodeKind::Sequence(items) => {
                let items: Vec<Template> = items.iter().map(|i| self.template(i)).collect();
                if items.iter().all(Template::is_literal) {
                    Template::Literal(node.to_json())
                } else {
                    Template::List(items)
                }
            }
            NodeKind::Mapping(entries) => {
                let entries: Vec<(String, Template)> = entries
                    .iter()
                    .map(|e| (e.key_text().to_owned(), self.template(&e.value)))
                    .collect();
                if entries.iter().all(|(_, t)| t.is_literal()) {
                    Template::Literal(node.to_json())
                } else {
                    Template::Map(entries)
                }
            }
        }
    }

    fn read_grants(&mut self, node: &Node, place: &str) -> GrantsDecl {
        let mut grants = GrantsDecl::default();
        let Some(entries) = self.mapping(node, "`grants`") else {
            return grants;
        };
        self.unknown_keys(
            entries,
            &["fs", "env", "net", "exec", "secrets", "keys"],
            &format!("in the `grants` of {place}"),
        );
        for entry in entries {
            let key = entry.key_text();
            match key {
                "fs" => grants.fs = self.read_fs_grants(&entry.value, place),
                "env" => grants.env = self.read_env_grants(&entry.value),
                "exec" => {
                    grants.exec = self.read_exec_grants(&entry.value, place);
                    grants.exec_span = Some(entry.key.span);
                }
                "secrets" => {
                    grants.secrets = self.strings(&entry.value, "`grants.secrets`", false);
                }
                "keys" => {
                    grants.keys = self.strings(&entry.value, "`grants.keys`", false);
                }
                "net" => {
                    let hosts = self.strings(&entry.value, "`grants.net`", false);
                    for (host, span) in &hosts {
                        let (host, span) = (host.clone(), *span);
                        let valid = host.rsplit_once(':').is_some_and(|(h, port)| {
                            !h.is_empty()
                                && !h.contains(char::is_whitespace)
                                && port.parse::<u16>().is_ok()
                        });
                        if !valid {
                            self.error(span, format!("invalid host `{host}` in `grants.net`"))
                                .help = Some("write `host:port`, e.g. `example.com:443`".into());
                        }
                    }
                    grants.net = hosts;
                }
                _ => {}
            }
        }
        grants
    }

    /// `name: { file: PATH }`.
    pub(crate) fn read_key(&mut self, entry: &Entry) -> Option<KeyDecl> {
        let name = entry.key_text().to_owned();
        if !is_identifier(&name, true) {
            self.error(
                entry.key.span,
                format!("invalid key name `{name}`: use letters, digits, `_` and `-`"),
            );
            return None;
        }
        let NodeKind::Mapping(fields) = &entry.value.kind else {
            self.error(
                entry.value.span,
                format!("key `{name}` must name its file: `{{ file: path/to/key.pem }}`"),
            );
            return None;
        };
        self.unknown_keys(
            fields,
            &["file", "description"],
            &format!("in key `{name}`"),
        );
        let Some(file) = fields.iter().find(|f| f.key_text() == "file") else {
            self.error(entry.value.span, format!("key `{name}` needs a `file`"))
                .help =
                Some("an ed25519 private key in PKCS#8 PEM, as `flow keys generate` writes".into());
            return None;
        };
        let path = self.string(&file.value, "`file`")?;
        Some(KeyDecl {
            name,
            span: entry.key.span,
            file: path,
            file_span: file.value.span,
            declared_in: Arc::clone(self.file),
        })
    }

    /// `name: { env: VAR }` or `name: { file: PATH }`.
    pub(crate) fn read_secret(&mut self, entry: &Entry) -> Option<SecretDecl> {
        let name = entry.key_text().to_owned();
        if !is_identifier(&name, true) {
            self.error(
                entry.key.span,
                format!("invalid secret name `{name}`: use letters, digits, `_` and `-`"),
            );
            return None;
        }
        let help = "write `{ env: VARIABLE }` or `{ file: path/to/file }`; a value never goes in the pipeline file";
        let NodeKind::Mapping(fields) = &entry.value.kind else {
            self.error(
                entry.value.span,
                format!("secret `{name}` must say where its value comes from"),
            )
            .help = Some(help.into());
            return None;
        };
        self.unknown_keys(
            fields,
            &["env", "file", "description"],
            &format!("in secret `{name}`"),
        );
        let sources: Vec<&Entry> = fields
            .iter()
            .filter(|f| matches!(f.key_text(), "env" | "file"))
            .collect();
        let [source] = sources.as_slice() else {
            self.error(
                entry.value.span,
                format!("secret `{name}` needs exactly one of `env` and `file`"),
            )
            .help = Some(help.into());
            return None;
        };
        let text = self.string(&source.value, &format!("`{}`", source.key_text()))?;
        let source_decl = if source.key_text() == "env" {
            if !is_env_name(&text) {
                self.error(source.value.span, format!("invalid variable name `{text}`"));
                return None;
            }
            SecretSource::Env(text)
        } else {
            SecretSource::File(text)
        };
        Some(SecretDecl {
            name,
            span: entry.key.span,
            source: source_decl,
            source_span: source.value.span,
            declared_in: Arc::clone(self.file),
        })
    }

    /// `exec: [cargo, /usr/bin/make, { command: cargo, reads: [~/.rustup] }]`.
    fn read_exec_grants(&mut self, node: &Node, place: &str) -> Vec<ExecGrantDecl> {
        let NodeKind::Sequence(items) = &node.kind else {
            self.error(
                node.span,
                format!("`grants.exec` must be a list, found {}", node.type_name()),
            )
            .help = Some("write `exec: [cargo, make]`".into());
            return Vec::new();
        };
        let mut out: Vec<ExecGrantDecl> = Vec::new();
        // The span of the first grant of each command name (the part after the last `/`).
        let mut granted: HashMap<String, Span> = HashMap::new();
        for item in items {
            let grant = if let NodeKind::Mapping(fields) = &item.kind {
                self.unknown_keys(
                    fields,
                    &["command", "reads"],
                    &format!("in an `exec` grant of {place}"),
                );
                let find = |key: &str| fields.iter().find(|e| e.key_text() == key);
                let Some(command) = find("command") else {
                    self.error(item.span, "an `exec` grant needs a `command`");
                    continue;
                };
                let Some(name) = self.string(&command.value, "`command`") else {
                    continue;
                };
                let reads = match find("reads") {
                    Some(r) => self.strings(&r.value, "`reads`", false),
                    None => Vec::new(),
                };
                ExecGrantDecl {
                    command: name,
                    span: command.value.span,
                    reads,
                }
            } else {
                let Some(name) = self.string(item, "each `grants.exec` entry") else {
                    continue;
                };
                ExecGrantDecl {
                    command: name,
                    span: item.span,
                    reads: Vec::new(),
                }
            };
            if grant.command.is_empty() || grant.command.contains(char::is_whitespace) {
                self.error(
                    grant.span,
                    format!("invalid command `{}` in `grants.exec`", grant.command),
                )
                .help = Some("name one command, without arguments".into());
                continue;
            }
            let name = grant
                .command
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            if let Some(&first) = granted.get(&name) {
                let file = Arc::clone(self.file);
                self.error(grant.span, format!("command `{name}` is granted twice"))
                    .notes
                    .push(crate::diag::Note {
                        location: Some(crate::diag::Location { file, span: first }),
                        message: "first granted here".into(),
                    });
                continue;
            }
            granted.insert(name, grant.span);
            out.push(grant);
        }
        out
    }

    /// `env: [HOME, CARGO_HOME]` (the host's values) or `env: { RUSTFLAGS: "-Dwarnings" }`.
    fn read_env_grants(&mut self, node: &Node) -> Vec<EnvGrantDecl> {
        let mut out = Vec::new();
        if let NodeKind::Mapping(entries) = &node.kind {
            for entry in entries {
                let mut secret = None;
                let value = match &entry.value.kind {
                    NodeKind::Scalar {
                        value: Scalar::String(s),
                        ..
                    } => Some(s.clone()),
                    NodeKind::Scalar {
                        value: Scalar::Null,
                        ..
                    } => None,
                    NodeKind::Scalar { text, .. } => Some(text.clone()),
                    NodeKind::Mapping(fields)
                        if fields.len() == 1 && fields[0].key_text() == "secret" =>
                    {
                        secret = self
                            .string(&fields[0].value, "`secret`")
                            .map(|name| (name, fields[0].value.span));
                        None
                    }
                    _ => {
                        self.error(
                            entry.value.span,
                            format!(
                                "the value of `{}` must be text or `{{ secret: NAME }}`, found {}",
                                entry.key_text(),
                                entry.value.type_name()
                            ),
                        );
                        continue;
                    }
                };
                out.push(EnvGrantDecl {
                    name: entry.key_text().to_owned(),
                    span: entry.key.span,
                    value,
                    secret,
                });
            }
        } else {
            for (name, span) in self.strings(node, "`grants.env`", false) {
                out.push(EnvGrantDecl {
                    name,
                    span,
                    value: None,
                    secret: None,
                });
            }
        }
        out.retain(|grant| {
            let valid = is_env_name(&grant.name);
            if !valid {
                self.error(
                    grant.span,
                    format!("invalid variable name `{}` in `grants.env`", grant.name),
                )
                .help = Some("names are letters, digits and `_`, not starting with a digit".into());
            } else if grant.name == "PATH" && grant.value.is_some() {
                self.error(grant.span, "`PATH` cannot be set in `grants.env`")
                    .help = Some(
                    "commands run with the directories of the granted commands and the system's; grant `PATH` by name to pass the host's".into(),
                );
                return false;
            }
            valid
        });
        out
    }

    fn read_fs_grants(&mut self, node: &Node, place: &str) -> Vec<FsGrantDecl> {
        let NodeKind::Sequence(items) = &node.kind else {
            self.error(
                node.span,
                format!("`grants.fs` must be a list, found {}", node.type_name()),
            )
            .help = Some("write `fs: [{ path: ../dir, access: read }]`".into());
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let Some(fields) = self.mapping(item, "each `grants.fs` entry") else {
                continue;
            };
            self.unknown_keys(
                fields,
                &["path", "access", "hash"],
                &format!("in an `fs` grant of {place}"),
            );
            let find = |key: &str| fields.iter().find(|e| e.key_text() == key);
            let path = match find("path") {
                Some(p) => self.string(&p.value, "`path`").map(|s| (s, p.value.span)),
                None => {
                    self.error(item.span, "an `fs` grant needs a `path`");
                    None
                }
            };
            let access = match find("access") {
                Some(a) => match a.value.as_str() {
                    Some("read") => Some(FsAccess::Read),
                    Some("write") => Some(FsAccess::Write),
                    _ => {
                        self.error(a.value.span, "`access` must be `read` or `write`")
                            .help = Some("`write` allows reading too".into());
                        None
                    }
                },
                None => {
                    self.error(
                        item.span,
                        "an `fs` grant needs `access: read` or `access: write`",
                    );
                    None
                }
            };
            let hash = match find("hash") {
                Some(h) => match &h.value.kind {
                    NodeKind::Scalar {
                        value: Scalar::Bool(b),
                        ..
                    } => *b,
                    _ => {
                        self.error(h.value.span, "`hash` must be `true` or `false`");
                        true
                    }
                },
                None => true,
            };
            if let (Some((path, span)), Some(access)) = (path, access) {
                if path.is_empty() {
                    self.error(span, "`path` is empty");
                    continue;
                }
                out.push(FsGrantDecl {
                    path,
                    span,
                    access,
                    hash,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(
            parse_duration("1m30s500ms"),
            Some(Duration::from_millis(90_500))
        );
        for bad in [
            "",
            "30",
            "s",
            "30 s",
            "1m1h",
            "1s1s",
            "1.5s",
            "-1s",
            "1d",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("3KiB"), Some(3072));
        assert_eq!(parse_size("1000"), Some(1000));
        for bad in [
            "",
            "MiB",
            "64MB",
            "64 MiB",
            "1.5GiB",
            "-1",
            "99999999999999GiB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn uses_values() {
        let base = Path::new("/pipelines");
        assert_eq!(
            parse_uses("echo", base),
            Ok(PluginRef::Builtin {
                name: "echo".into(),
                pin: None
            })
        );
        let pin = "AB".repeat(32);
        assert_eq!(
            parse_uses(&format!("echo@sha256:{pin}"), base),
            Ok(PluginRef::Builtin {
                name: "echo".into(),
                pin: Some("ab".repeat(32))
            })
        );
        match parse_uses("./plugins/x.wasm", base) {
            Ok(PluginRef::File {
                path,
                written,
                pin: None,
            }) => {
                assert!(path.is_absolute());
                assert!(path.ends_with("plugins/x.wasm"));
                assert_eq!(written, "./plugins/x.wasm");
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_uses("echo@sha256:abc", base).is_err());
        assert!(parse_uses("Echo Plugin", base).is_err());
        assert!(parse_uses("", base).is_err());
    }
}
