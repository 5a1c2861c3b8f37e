//! Shared templates: a pipeline file that `extends` a template of a catalog, templates
//! that extend templates, and the rules that merge them (see `docs/templates.md`).
//!
//! ```text
//! read_document(flow.yaml) -> Document --resolve(&dyn TemplateSource, bindings)--> Pipeline
//! ```
//!
//! This module merges; it does not look for templates. The engine implements
//! [`TemplateSource`] (catalog directories, git catalogs, the lock, the cache,
//! signatures) and gives the bindings of the user and organisation configs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::diag::{Diagnostic, Diagnostics, Position, SourceFile, Span, did_you_mean_help};
use crate::model::{
    ExecConfinement, InputDecl, KeyDecl, Pipeline, Reader, SecretDecl, StepDecl, StepMode, Uses,
    is_identifier, parse_uses_spec,
};
use crate::plan::{StepOrigin, TemplateInfo};
use crate::plugin::{ParamType, PluginRef};
use crate::yaml::{Entry, Node, NodeKind, Scalar};

/// The most templates a chain may hold (a longer chain is surely a mistake).
const MAX_CHAIN: usize = 16;

/// A typed value a template takes (`parameters:`), or a param of an interface.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedParam {
    /// Its name.
    pub name: String,
    /// Where the name was written.
    pub span: Span,
    /// Its type.
    pub ty: ParamType,
    /// The value used when none is given; without one it must be given.
    pub default: Option<Value>,
    /// A regular expression string values must match whole, as written, with where.
    pub pattern: Option<(String, Span)>,
    /// What it means.
    pub description: Option<String>,
    /// The file it was declared in.
    pub declared_in: Arc<SourceFile>,
}

/// An interface a step calls, and the plugin bound to it.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundInterface {
    /// The interface's name.
    pub name: String,
    /// Its typed params.
    pub params: Vec<TypedParam>,
    /// The outputs callers may read.
    pub outputs: Vec<String>,
    /// Where it was declared.
    pub declared_in: Arc<SourceFile>,
    /// Where its name was written.
    pub span: Span,
    /// The binding as written (`scan@1`).
    pub binding: String,
    /// The version requirement of the binding, if any.
    pub version_req: Option<String>,
    /// The file holding the binding.
    pub binding_file: Arc<SourceFile>,
    /// Where the binding was written.
    pub binding_span: Span,
}

/// Where a catalog is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogLocation {
    /// A directory tree holding templates.
    Dir(PathBuf),
    /// A git repository (work tree or bare), read at a ref (`None`: `HEAD`).
    Git {
        /// The repository.
        repo: PathBuf,
        /// The ref to read.
        reference: Option<String>,
    },
}

/// One entry of `catalogs:`.
#[derive(Debug, Clone)]
pub struct CatalogDecl {
    /// Where it is (relative paths made absolute against the declaring file).
    pub location: CatalogLocation,
    /// Refuse templates that are not signed by one of `trusted_keys`.
    pub require_signatures: bool,
    /// Public keys (files) whose signatures are trusted, with where each was written.
    pub trusted_keys: Vec<(PathBuf, Span)>,
    /// Where the entry was written.
    pub span: Span,
    /// The file it was written in.
    pub declared_in: Arc<SourceFile>,
}

impl CatalogDecl {
    /// The location as text, for messages and the lock.
    pub fn describe(&self) -> String {
        match &self.location {
            CatalogLocation::Dir(path) => path.display().to_string(),
            CatalogLocation::Git { repo, reference } => format!(
                "git+file://{}{}",
                repo.display(),
                reference
                    .as_ref()
                    .map(|r| format!("@{r}"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// One entry of `bindings:`: an interface bound to a plugin.
#[derive(Debug, Clone)]
pub struct BindingDecl {
    /// The interface.
    pub interface: String,
    /// The plugin, as `uses:` takes it, optionally with `@<version requirement>`.
    pub value: String,
    /// Where the value was written.
    pub span: Span,
    /// The file it was written in.
    pub declared_in: Arc<SourceFile>,
    /// The directory relative plugin paths are resolved against.
    pub base_dir: PathBuf,
}

/// A user or organisation config: where catalogs are, and interface bindings.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Its catalogs, in order.
    pub catalogs: Vec<CatalogDecl>,
    /// Its bindings.
    pub bindings: Vec<BindingDecl>,
}

/// Reads a config file (`catalogs:`, `bindings:`); relative paths are resolved against
/// its directory.
pub fn read_config(path: &Path) -> Result<Config, Diagnostics> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics::from(Diagnostic::error_without_location(format!(
            "cannot read config file `{display}`: {e}"
        )))
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let file = SourceFile::new(display, text);
    let (root, mut problems) = crate::yaml::parse(&file).map_err(Diagnostics::from)?;
    let mut config = Config::default();
    if let Some(root) = root {
        let mut reader = new_reader(&file, base, StepMode::Pipeline);
        if let Some(entries) = reader.mapping(&root, "a config file") {
            reader.unknown_keys(entries, &["catalogs", "bindings"], "in the config");
            for entry in entries {
                match entry.key_text() {
                    "catalogs" => config.catalogs = read_catalogs(&mut reader, &entry.value),
                    "bindings" => config.bindings = read_bindings(&mut reader, &entry.value),
                    _ => {}
                }
            }
        }
        problems.append(&mut reader.problems);
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(Diagnostics(problems))
    }
}

/// A template found in a catalog.
#[derive(Debug, Clone)]
pub struct FoundTemplate {
    /// The text of its `template.yaml`.
    pub text: String,
    /// The path shown for it in messages.
    pub display_path: String,
    /// Its directory (relative `uses:` paths of its steps are resolved against it).
    pub dir: PathBuf,
    /// Its identity and digest.
    pub info: TemplateInfo,
}

/// Finds templates: the engine's catalogs, lock and cache.
pub trait TemplateSource {
    /// The template `id` at the version matching `requirement` (written as
    /// `requirement_text`), or why there is none, in one message (help after a
    /// line break, if any).
    fn find(
        &self,
        id: &str,
        requirement: &semver::VersionReq,
        requirement_text: &str,
    ) -> Result<FoundTemplate, String>;
}

/// What a document extends: `id@requirement`.
#[derive(Debug, Clone)]
pub struct Extends {
    /// The template id.
    pub id: String,
    /// The version requirement.
    pub requirement: semver::VersionReq,
    /// The requirement as written (`*` when none was).
    pub requirement_text: String,
    /// Where `extends:`'s value was written.
    pub span: Span,
}

/// A pipeline file read but not resolved: it may extend a template.
#[derive(Debug, Clone)]
pub struct Document {
    file: Arc<SourceFile>,
    root: Node,
    base_dir: PathBuf,
    extends: Option<Extends>,
    catalogs: Vec<CatalogDecl>,
    bindings: Vec<BindingDecl>,
    problems: Vec<Diagnostic>,
}

impl Document {
    /// What it extends, if it does.
    pub fn extends(&self) -> Option<&Extends> {
        self.extends.as_ref()
    }

    /// The catalogs it lists.
    pub fn catalogs(&self) -> &[CatalogDecl] {
        &self.catalogs
    }

    /// The interface bindings it gives.
    pub fn bindings(&self) -> &[BindingDecl] {
        &self.bindings
    }

    /// Its text and the path shown for it.
    pub fn source(&self) -> &Arc<SourceFile> {
        &self.file
    }

    /// The directory relative paths are resolved against.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }
}

/// Reads the pipeline file at `path` (shown as given). See [`parse_document`].
pub fn read_document(path: &Path) -> Result<Document, Diagnostics> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics::from(Diagnostic::error_without_location(format!(
            "cannot read pipeline file `{display}`: {e}"
        )))
    })?;
    let base_dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    parse_document(&text, &display, base_dir)
}

/// Parses a pipeline file far enough to know what it extends and where to look.
pub fn parse_document(
    text: &str,
    display_path: &str,
    base_dir: &Path,
) -> Result<Document, Diagnostics> {
    let file = SourceFile::new(display_path, text);
    let (root, problems) = crate::yaml::parse(&file).map_err(Diagnostics::from)?;
    let Some(root) = root else {
        let start = Position { line: 1, column: 1 };
        return Err(Diagnostic::error(
            &file,
            Span::new(start, start),
            "the pipeline file is empty",
        )
        .with_help("a pipeline needs at least `version: 1`, `name` and `steps`")
        .into());
    };
    let mut reader = new_reader(&file, base_dir, StepMode::Pipeline);
    let (mut extends, mut catalogs, mut bindings) = (None, Vec::new(), Vec::new());
    if let Some(entries) = root.as_mapping() {
        for entry in entries {
            match entry.key_text() {
                "extends" => extends = read_extends(&mut reader, &entry.value),
                "catalogs" => catalogs = read_catalogs(&mut reader, &entry.value),
                "bindings" => bindings = read_bindings(&mut reader, &entry.value),
                _ => {}
            }
        }
    }
    let mut document = Document {
        file: Arc::clone(&file),
        root,
        base_dir: base_dir.to_path_buf(),
        extends,
        catalogs,
        bindings,
        problems,
    };
    document.problems.append(&mut reader.problems);
    Ok(document)
}

fn new_reader<'a>(file: &'a Arc<SourceFile>, base_dir: &'a Path, mode: StepMode) -> Reader<'a> {
    Reader {
        file,
        base_dir,
        problems: Vec::new(),
        step_mode: mode,
    }
}

fn read_extends(reader: &mut Reader, node: &Node) -> Option<Extends> {
    let text = reader.string(node, "`extends`")?;
    let (id, req) = match text.split_once('@') {
        Some((id, req)) => (id.trim(), req.trim()),
        None => (text.trim(), "*"),
    };
    if !is_template_id(id) {
        reader.error(node.span, format!("invalid template id `{id}`")).help = Some(
            "a template id is `<namespace>/<name>` in lowercase letters, digits and `-`, e.g. `acme/rust-service@^1.2`".into(),
        );
        return None;
    }
    match semver::VersionReq::parse(req) {
        Ok(requirement) => Some(Extends {
            id: id.to_owned(),
            requirement,
            requirement_text: req.to_owned(),
            span: node.span,
        }),
        Err(e) => {
            reader
                .error(
                    node.span,
                    format!("invalid version requirement `{req}`: {e}"),
                )
                .help = Some("write e.g. `@1.2.3`, `@^1.2`, `@~1.2` or `@>=1.2, <2`".into());
            None
        }
    }
}

/// `namespace/name`, each part lowercase letters, digits and `-`.
pub fn is_template_id(id: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    matches!(id.split_once('/'), Some((ns, name)) if part(ns) && part(name))
}

fn read_catalogs(reader: &mut Reader, node: &Node) -> Vec<CatalogDecl> {
    let NodeKind::Sequence(items) = &node.kind else {
        reader.error(
            node.span,
            format!("`catalogs` must be a list, found {}", node.type_name()),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Some(fields) = reader.mapping(item, "each entry of `catalogs`") else {
            continue;
        };
        reader.unknown_keys(
            fields,
            &["path", "git", "ref", "require-signatures", "trusted-keys"],
            "in a catalog",
        );
        let find = |k: &str| fields.iter().find(|e| e.key_text() == k);
        let absolute = |reader: &Reader, written: &str| {
            let expanded =
                crate::check::expand_host_path(written).unwrap_or_else(|_| PathBuf::from(written));
            let joined = if expanded.is_absolute() {
                expanded
            } else {
                reader.base_dir.join(expanded)
            };
            std::path::absolute(&joined).unwrap_or(joined)
        };
        let location = match (find("path"), find("git")) {
            (Some(p), None) => reader
                .string(&p.value, "`path`")
                .map(|p| CatalogLocation::Dir(absolute(reader, &p))),
            (None, Some(g)) => {
                let reference = match find("ref") {
                    Some(r) => reader.string(&r.value, "`ref`"),
                    None => None,
                };
                reader
                    .string(&g.value, "`git`")
                    .map(|g| CatalogLocation::Git {
                        repo: absolute(reader, g.strip_prefix("file://").unwrap_or(&g)),
                        reference,
                    })
            }
            _ => {
                reader
                    .error(item.span, "a catalog needs exactly one of `path` and `git`")
                    .help = Some(
                    "write `{ path: ../templates }` or `{ git: /srv/git/templates.git, ref: main }`"
                        .into(),
                );
                None
            }
        };
        if find("ref").is_some() && find("git").is_none() {
            reader.error(item.span, "`ref` is for `git` catalogs");
        }
        let require_signatures = match find("require-signatures") {
            None => false,
            Some(e) => match &e.value.kind {
                NodeKind::Scalar {
                    value: Scalar::Bool(b),
                    ..
                } => *b,
                _ => {
                    reader.error(
                        e.value.span,
                        "`require-signatures` must be `true` or `false`",
                    );
                    false
                }
            },
        };
        let trusted_keys: Vec<(PathBuf, Span)> = match find("trusted-keys") {
            None => Vec::new(),
            Some(e) => reader
                .strings(&e.value, "`trusted-keys`", true)
                .into_iter()
                .map(|(k, span)| (absolute(reader, &k), span))
                .collect(),
        };
        if require_signatures && trusted_keys.is_empty() {
            reader
                .error(
                    item.span,
                    "a catalog that requires signatures needs `trusted-keys`",
                )
                .help = Some("list the public keys whose signatures it accepts".into());
        }
        if let Some(location) = location {
            out.push(CatalogDecl {
                location,
                require_signatures,
                trusted_keys,
                span: item.span,
                declared_in: Arc::clone(reader.file),
            });
        }
    }
    out
}

fn read_bindings(reader: &mut Reader, node: &Node) -> Vec<BindingDecl> {
    let Some(entries) = reader.mapping(node, "`bindings`") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries {
        let Some(value) = reader.string(&entry.value, "a binding") else {
            continue;
        };
        out.push(BindingDecl {
            interface: entry.key_text().to_owned(),
            value,
            span: entry.value.span,
            declared_in: Arc::clone(reader.file),
            base_dir: reader.base_dir.to_path_buf(),
        });
    }
    out
}

/// One document of the chain: the pipeline file (level 0) or a template.
struct Level {
    file: Arc<SourceFile>,
    root: Node,
    /// Relative `uses:` paths are resolved against it.
    dir: PathBuf,
    info: Option<TemplateInfo>,
    extends: Option<Extends>,
    params: Vec<TypedParam>,
    values: BTreeMap<String, Value>,
}

impl Level {
    fn entry(&self, key: &str) -> Option<&Entry> {
        self.root
            .as_mapping()
            .and_then(|entries| entries.iter().find(|e| e.key_text() == key))
    }

    fn name(&self) -> String {
        match &self.info {
            Some(info) => info.name(),
            None => format!("the pipeline file `{}`", self.file.name),
        }
    }
}

/// The keys of a template file.
const TEMPLATE_KEYS: [&str; 18] = [
    "template",
    "id",
    "version",
    "description",
    "extends",
    "with",
    "parameters",
    "name",
    "exec-confinement",
    "inputs",
    "secrets",
    "keys",
    "sealed",
    "interfaces",
    "bindings",
    "slots",
    "steps",
    "fill",
];

/// The keys of a pipeline file that extends a template.
const CHILD_KEYS: [&str; 13] = [
    "version",
    "extends",
    "with",
    "catalogs",
    "bindings",
    "name",
    "description",
    "exec-confinement",
    "inputs",
    "secrets",
    "keys",
    "steps",
    "fill",
];

/// Top-level keys a template may seal.
const SEALABLE: [&str; 6] = [
    "name",
    "description",
    "exec-confinement",
    "inputs",
    "secrets",
    "keys",
];

/// Step keys a template may seal (`with.<param>` and `grants.<kind>` too).
const SEALABLE_STEP_KEYS: [&str; 10] = [
    "uses",
    "with",
    "needs",
    "if",
    "grants",
    "timeout",
    "memory",
    "continue-on-error",
    "name",
    "description",
];

const GRANT_KINDS: [&str; 6] = ["fs", "exec", "env", "secrets", "keys", "net"];

/// A rule, with where it was written.
#[derive(Debug, Clone)]
struct Rule {
    file: Arc<SourceFile>,
    span: Span,
    by: String,
}

struct MergedStep {
    decl: StepDecl,
    level: usize,
    sealed_all: Option<Rule>,
    sealed_keys: Vec<(String, Rule)>,
    removed: Option<(Arc<SourceFile>, Span)>,
}

impl MergedStep {
    /// The rule that forbids changing `key` (`with.x`, `grants.fs`, `uses`...).
    fn seal_of(&self, key: &str) -> Option<&Rule> {
        if let Some(rule) = &self.sealed_all {
            return Some(rule);
        }
        let parent = key.split_once('.').map(|(p, _)| p);
        self.sealed_keys
            .iter()
            .find(|(k, _)| k == key || Some(k.as_str()) == parent)
            .map(|(_, r)| r)
    }

    fn any_seal(&self) -> Option<&Rule> {
        self.sealed_all
            .as_ref()
            .or_else(|| self.sealed_keys.first().map(|(_, r)| r))
    }
}

struct Slot {
    name: String,
    file: Arc<SourceFile>,
    span: Span,
    level: usize,
    by: String,
    required: bool,
    needs: Vec<(String, Span)>,
    filled: Option<(usize, Arc<SourceFile>, Span)>,
    steps: Vec<String>,
}

struct Interface {
    name: String,
    params: Vec<TypedParam>,
    outputs: Vec<String>,
    file: Arc<SourceFile>,
    span: Span,
}

/// A top-level value with where it was set.
struct Setting<T> {
    value: T,
    span: Span,
    file: Option<Arc<SourceFile>>,
}

#[derive(Default)]
struct Merged {
    steps: Vec<MergedStep>,
    slots: Vec<Slot>,
    interfaces: Vec<Interface>,
    template_bindings: Vec<(usize, BindingDecl)>,
    name: Option<Setting<String>>,
    description: Option<Setting<String>>,
    exec_confinement: Option<Setting<ExecConfinement>>,
    inputs: Vec<InputDecl>,
    secrets: Vec<SecretDecl>,
    keys: Vec<KeyDecl>,
    sealed: Vec<(String, Rule)>,
}

struct Resolver<'a> {
    problems: Vec<Diagnostic>,
    source: &'a dyn TemplateSource,
}

impl Resolver<'_> {
    fn error(&mut self, file: &Arc<SourceFile>, span: Span, message: impl Into<String>) -> usize {
        self.problems.push(Diagnostic::error(file, span, message));
        self.problems.len() - 1
    }

    fn note(
        &mut self,
        index: usize,
        file: &Arc<SourceFile>,
        span: Span,
        message: impl Into<String>,
    ) {
        let d = std::mem::replace(
            &mut self.problems[index],
            Diagnostic::error_without_location(""),
        );
        self.problems[index] = d.with_note_at(file, span, message);
    }

    fn help(&mut self, index: usize, help: impl Into<String>) {
        self.problems[index].help = Some(help.into());
    }

    /// Loads the chain: the document, then each template it (transitively) extends.
    fn load_chain(&mut self, document: Document) -> Vec<Level> {
        let mut chain = vec![Level {
            file: Arc::clone(&document.file),
            root: document.root,
            dir: document.base_dir,
            info: None,
            extends: document.extends,
            params: Vec::new(),
            values: BTreeMap::new(),
        }];
        loop {
            let last = chain.len() - 1;
            let Some(extends) = chain[last].extends.clone() else {
                break;
            };
            let child_file = Arc::clone(&chain[last].file);
            if let Some(first) = chain
                .iter()
                .position(|l| l.info.as_ref().is_some_and(|i| i.id == extends.id))
            {
                let names: Vec<String> = chain[first..]
                    .iter()
                    .filter_map(|l| l.info.as_ref().map(|i| i.id.clone()))
                    .collect();
                let d = self.error(
                    &child_file,
                    extends.span,
                    format!(
                        "cycle in `extends`: {} -> {}",
                        names.join(" -> "),
                        extends.id
                    ),
                );
                for level in &chain[first..last] {
                    if let Some(e) = &level.extends {
                        self.note(
                            d,
                            &level.file,
                            e.span,
                            format!("{} extends `{}` here", level.name(), e.id),
                        );
                    }
                }
                self.help(
                    d,
                    "a template cannot extend itself, directly or through others",
                );
                break;
            }
            if chain.len() > MAX_CHAIN {
                self.error(
                    &child_file,
                    extends.span,
                    format!("more than {MAX_CHAIN} templates extend one another"),
                );
                break;
            }
            let found =
                match self
                    .source
                    .find(&extends.id, &extends.requirement, &extends.requirement_text)
                {
                    Ok(found) => found,
                    Err(message) => {
                        let (message, help) = match message.split_once('\n') {
                            Some((m, h)) => (m.to_owned(), Some(h.to_owned())),
                            None => (message, None),
                        };
                        let d = self.error(&child_file, extends.span, message);
                        if let Some(help) = help {
                            self.help(d, help);
                        }
                        break;
                    }
                };
            let file = SourceFile::new(found.display_path.clone(), found.text.clone());
            let root = match crate::yaml::parse(&file) {
                Ok((Some(root), mut problems)) => {
                    self.problems.append(&mut problems);
                    root
                }
                Ok((None, _)) => {
                    let start = Position { line: 1, column: 1 };
                    self.error(&file, Span::new(start, start), "the template file is empty");
                    break;
                }
                Err(d) => {
                    self.problems.push(d);
                    break;
                }
            };
            let mut level = Level {
                file,
                root,
                dir: found.dir.clone(),
                info: Some(found.info.clone()),
                extends: None,
                params: Vec::new(),
                values: BTreeMap::new(),
            };
            if !self.read_template_header(&mut level, &found, &extends, &child_file) {
                break;
            }
            chain.push(level);
        }
        chain
    }

    /// Checks `template:`, `id`, `version`; reads `extends` and `parameters`.
    fn read_template_header(
        &mut self,
        level: &mut Level,
        found: &FoundTemplate,
        wanted: &Extends,
        child: &Arc<SourceFile>,
    ) -> bool {
        let file = Arc::clone(&level.file);
        let top = Span::new(level.root.span.start, level.root.span.start);
        let Some(entries) = level.root.as_mapping() else {
            self.error(
                &file,
                level.root.span,
                format!(
                    "a template must be a mapping, found {}",
                    level.root.type_name()
                ),
            );
            return false;
        };
        let mut reader = new_reader(&file, &found.dir, StepMode::Template);
        reader.unknown_keys(entries, &TEMPLATE_KEYS, "in a template");
        let find = |k: &str| entries.iter().find(|e| e.key_text() == k);
        match find("template") {
            Some(e)
                if matches!(
                    e.value.kind,
                    NodeKind::Scalar {
                        value: Scalar::Int(1),
                        ..
                    }
                ) => {}
            Some(e) => {
                reader.error(e.value.span, "this flow reads `template: 1`");
            }
            None => {
                reader.error(top, "missing `template: 1` at the top of the template");
            }
        }
        match find("id").and_then(|e| e.value.as_str().map(|s| (s, e.value.span))) {
            Some((id, _)) if id == wanted.id => {}
            Some((id, span)) => {
                let d = Diagnostic::error(
                    &file,
                    span,
                    format!(
                        "the catalog gave this template for `{}`, but its id is `{id}`",
                        wanted.id
                    ),
                )
                .with_note_at(child, wanted.span, "asked for here");
                reader.problems.push(d);
            }
            None => {
                reader.error(top, "missing `id` of the template");
            }
        }
        match find("version").map(|e| (e.value.to_json(), e.value.span)) {
            Some((Value::String(v), span)) => {
                if semver::Version::parse(&v).is_err() {
                    reader.error(
                        span,
                        format!("`version: {v}` is not a semver version such as `1.2.0`"),
                    );
                }
            }
            Some((_, span)) => {
                reader.error(
                    span,
                    "`version` must be a semver version such as `1.2.0`, quoted or not",
                );
            }
            None => {
                reader.error(top, "missing `version` of the template");
            }
        }
        if let Some(e) = find("extends") {
            level.extends = read_extends(&mut reader, &e.value);
        }
        if let Some(e) = find("parameters")
            && let Some(params) = reader.mapping(&e.value, "`parameters`")
        {
            level.params = params
                .iter()
                .filter_map(|p| read_typed_param(&mut reader, p, "parameter"))
                .collect();
        }
        let ok = reader.problems.is_empty();
        self.problems.append(&mut reader.problems);
        ok
    }

    /// Gives every template its parameters' values from the `with:` of the levels below.
    fn bind_parameters(&mut self, chain: &mut [Level]) {
        // Which parameter each level's `with:` gives, checked to exist above it.
        for k in 1..chain.len() {
            let mut values = BTreeMap::new();
            for param in chain[k].params.clone() {
                let mut given: Vec<(usize, Node, Span)> = Vec::new();
                for (j, level) in chain.iter().enumerate().take(k) {
                    if let Some(with) = level.entry("with").and_then(|e| e.value.as_mapping())
                        && let Some(entry) = with.iter().find(|e| e.key_text() == param.name)
                    {
                        given.push((j, entry.value.clone(), entry.key.span));
                    }
                }
                // Nearest to the template first.
                given.sort_by_key(|(j, _, _)| std::cmp::Reverse(*j));
                if given.len() > 1 {
                    let (j1, _, s1) = &given[0];
                    let (j2, _, s2) = &given[1];
                    let (f1, f2) = (Arc::clone(&chain[*j1].file), Arc::clone(&chain[*j2].file));
                    let by = chain[*j1].name();
                    let d = self.error(
                        &f2,
                        *s2,
                        format!(
                            "parameter `{}` of {} is already given by {by}",
                            param.name,
                            chain[k].name()
                        ),
                    );
                    self.note(d, &f1, *s1, "given here");
                    self.help(
                        d,
                        format!("a parameter is given once; {by} fixes it for the levels below"),
                    );
                }
                let value = match given.first() {
                    Some((j, node, _)) => {
                        let node = substitute(
                            node,
                            &chain[*j].values,
                            &chain[*j].file,
                            &mut self.problems,
                        );
                        Some((node.to_json(), node.span, Arc::clone(&chain[*j].file)))
                    }
                    None => None,
                };
                match value {
                    Some((value, span, file)) => {
                        if value.to_string().contains("${{") {
                            let d = self.error(
                                &file,
                                span,
                                format!(
                                    "parameter `{}` of {}: a parameter value cannot hold `${{{{`",
                                    param.name,
                                    chain[k].name()
                                ),
                            );
                            self.help(d, "parameters are fixed when the pipeline is resolved; run-time values are `inputs`");
                        } else if let Some(message) = check_typed_value(&param, &value) {
                            let d = self.error(
                                &file,
                                span,
                                format!(
                                    "parameter `{}` of {}: {message}",
                                    param.name,
                                    chain[k].name()
                                ),
                            );
                            self.note(d, &param.declared_in, param.span, "declared here");
                        }
                        values.insert(param.name.clone(), value);
                    }
                    None => match &param.default {
                        Some(default) => {
                            values.insert(param.name.clone(), default.clone());
                        }
                        None => {
                            let child = &chain[k - 1];
                            let (file, span) = match &child.extends {
                                Some(e) => (Arc::clone(&child.file), e.span),
                                None => (Arc::clone(&child.file), child.root.span),
                            };
                            let d = self.error(
                                &file,
                                span,
                                format!(
                                    "missing parameter `{}` of {}",
                                    param.name,
                                    chain[k].name()
                                ),
                            );
                            self.note(d, &param.declared_in, param.span, "declared here");
                            self.help(
                                d,
                                format!(
                                    "give it: `with: {{ {}: <{}> }}`",
                                    param.name,
                                    param.ty.described()
                                ),
                            );
                        }
                    },
                }
            }
            chain[k].values = values;
        }
        // `with:` entries that no template above takes.
        for j in 0..chain.len() {
            let Some(with) = chain[j].entry("with").map(|e| e.value.clone()) else {
                continue;
            };
            let file = Arc::clone(&chain[j].file);
            let Some(entries) = with.as_mapping() else {
                self.error(
                    &file,
                    with.span,
                    format!("`with` must be a mapping, found {}", with.type_name()),
                );
                continue;
            };
            if chain.len() == j + 1 {
                let d = self.error(
                    &file,
                    with.span,
                    "`with` gives parameters, but this file extends no template",
                );
                self.help(d, "add `extends: <namespace>/<template>@<version>`");
                continue;
            }
            let above: Vec<&TypedParam> = chain[j + 1..]
                .iter()
                .flat_map(|l| l.params.iter())
                .collect();
            for entry in entries {
                let key = entry.key_text();
                if !above.iter().any(|p| p.name == key) {
                    let help = did_you_mean_help(key, above.iter().map(|p| p.name.as_str()))
                        .unwrap_or_else(|| {
                            if above.is_empty() {
                                "the templates above take no parameters".to_owned()
                            } else {
                                let list: Vec<String> =
                                    above.iter().map(|p| format!("`{}`", p.name)).collect();
                                format!("the parameters are {}", list.join(", "))
                            }
                        });
                    let d = self.error(&file, entry.key.span, format!("unknown parameter `{key}`"));
                    self.help(d, help);
                }
            }
        }
    }

    /// Merges the chain, from the template at the top down to the pipeline file.
    fn merge(&mut self, chain: &[Level]) -> Merged {
        let mut merged = Merged::default();
        for k in (0..chain.len()).rev() {
            let level = &chain[k];
            let body = substitute_document(level, &mut self.problems);
            self.merge_level(&mut merged, chain, k, &body);
        }
        merged
    }

    fn merge_level(&mut self, merged: &mut Merged, chain: &[Level], k: usize, body: &Node) {
        let level = &chain[k];
        let file = Arc::clone(&level.file);
        let by = level.name();
        let is_top = k == chain.len() - 1;
        let Some(entries) = body.as_mapping() else {
            return;
        };
        let mut reader = new_reader(&file, &level.dir, StepMode::Template);
        if k == 0 {
            reader.unknown_keys(
                entries,
                &CHILD_KEYS,
                "in a pipeline that extends a template",
            );
        }
        let find = |key: &str| entries.iter().find(|e| e.key_text() == key);
        // A template's own `sealed:` applies to the levels below it, not to itself.
        let mut sealed_here: Vec<(String, Rule)> = Vec::new();
        if k > 0
            && let Some(e) = find("sealed")
        {
            for (key, span) in reader.strings(&e.value, "`sealed`", true) {
                if SEALABLE.contains(&key.as_str()) {
                    sealed_here.push((
                        key,
                        Rule {
                            file: Arc::clone(&file),
                            span,
                            by: by.clone(),
                        },
                    ));
                } else {
                    let help = did_you_mean_help(&key, SEALABLE).unwrap_or_else(|| {
                        format!("top-level keys that can be sealed: {}", SEALABLE.join(", "))
                    });
                    reader.error(span, format!("`{key}` cannot be sealed")).help = Some(help);
                }
            }
        }
        let sealed_rule = |merged: &Merged, key: &str| {
            merged
                .sealed
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, r)| r.clone())
        };
        let mut violations: Vec<(Span, String, Rule)> = Vec::new();
        // name, description, exec-confinement: the lowest level wins.
        for key in ["name", "description"] {
            if let Some(e) = find(key)
                && let Some(value) = reader.string(&e.value, &format!("`{key}`"))
            {
                if let Some(rule) = sealed_rule(merged, key) {
                    violations.push((
                        e.key.span,
                        format!("`{key}` is sealed by {}", rule.by),
                        rule,
                    ));
                    continue;
                }
                let setting = Some(Setting {
                    value,
                    span: e.value.span,
                    file: None,
                });
                if key == "name" {
                    merged.name = setting;
                } else {
                    merged.description = setting;
                }
            }
        }
        if let Some(e) = find("exec-confinement")
            && let Some((value, span)) = reader.read_exec_confinement(&e.value)
        {
            match sealed_rule(merged, "exec-confinement") {
                Some(rule) => violations.push((
                    e.key.span,
                    format!("`exec-confinement` is sealed by {}", rule.by),
                    rule,
                )),
                None => {
                    merged.exec_confinement = Some(Setting {
                        value,
                        span,
                        file: Some(Arc::clone(&file)),
                    })
                }
            }
        }
        // inputs, secrets, keys: merged by name.
        let sealed_inputs = sealed_rule(merged, "inputs");
        let sealed_secrets = sealed_rule(merged, "secrets");
        let sealed_keys = sealed_rule(merged, "keys");
        let mut by_name = MergeByName {
            reader: &mut reader,
            violations: &mut violations,
        };
        by_name.merge(
            find("inputs"),
            "inputs",
            sealed_inputs,
            &mut merged.inputs,
            |r, e| r.read_input(e),
            |d| (&d.name, d.span),
        );
        by_name.merge(
            find("secrets"),
            "secrets",
            sealed_secrets,
            &mut merged.secrets,
            |r, e| r.read_secret(e),
            |d| (&d.name, d.span),
        );
        by_name.merge(
            find("keys"),
            "keys",
            sealed_keys,
            &mut merged.keys,
            |r, e| r.read_key(e),
            |d| (&d.name, d.span),
        );
        // Interfaces and template bindings.
        if k > 0 {
            if let Some(e) = find("interfaces")
                && let Some(items) = reader.mapping(&e.value, "`interfaces`")
            {
                for item in items {
                    if let Some(interface) = read_interface(&mut reader, item) {
                        if let Some(other) =
                            merged.interfaces.iter().find(|i| i.name == interface.name)
                        {
                            let d = Diagnostic::error(
                                &file,
                                interface.span,
                                format!("interface `{}` is already declared", interface.name),
                            )
                            .with_note_at(
                                &other.file,
                                other.span,
                                "declared here",
                            );
                            reader.problems.push(d);
                            continue;
                        }
                        merged.interfaces.push(interface);
                    }
                }
            }
            if let Some(e) = find("bindings") {
                for binding in read_bindings(&mut reader, &e.value) {
                    merged.template_bindings.push((k, binding));
                }
            }
        }
        // Steps: new ones at the top, changes below.
        if let Some(e) = find("steps")
            && let Some(items) = reader.mapping(&e.value, "`steps`")
        {
            for item in items {
                let id = item.key_text();
                match merged
                    .steps
                    .iter()
                    .position(|s| s.decl.id == id && s.removed.is_none())
                {
                    Some(index) => {
                        self.change_step(&mut reader, merged, index, item, &by);
                    }
                    None if is_top => {
                        reader.step_mode = StepMode::Template;
                        if let Some(step) = self.new_step(&mut reader, merged, item, k, &by, None) {
                            merged.steps.push(step);
                        }
                    }
                    None => {
                        let open: Vec<String> = merged
                            .slots
                            .iter()
                            .filter(|s| s.filled.is_none())
                            .map(|s| format!("`{}`", s.name))
                            .collect();
                        let parent = chain[k + 1].name();
                        let help = if open.is_empty() {
                            format!("{parent} leaves no slot open for new steps")
                        } else {
                            format!(
                                "add it to a slot: `fill: {{ <slot>: {{ {id}: ... }} }}`; the open slots are {}",
                                open.join(", ")
                            )
                        };
                        let suggestion =
                            did_you_mean_help(id, merged.steps.iter().map(|s| s.decl.id.as_str()));
                        reader
                            .error(
                                item.key.span,
                                format!(
                                    "`{id}` is not a step of {parent}: new steps go in its slots"
                                ),
                            )
                            .help =
                            Some(suggestion.map(|s| format!("{s} ({help})")).unwrap_or(help));
                    }
                }
            }
        }
        // Slots declared here, for the levels below.
        if let Some(e) = find("slots") {
            if k == 0 {
                reader.error(
                    e.key.span,
                    "a pipeline file cannot declare slots: nothing extends it",
                );
            } else if let Some(items) = reader.mapping(&e.value, "`slots`") {
                for item in items {
                    if let Some(slot) = self.read_slot(&mut reader, merged, item, k, &by) {
                        merged.slots.push(slot);
                    }
                }
            }
        }
        // Fills of the slots above.
        if let Some(e) = find("fill")
            && let Some(items) = reader.mapping(&e.value, "`fill`")
        {
            for item in items {
                self.fill_slot(&mut reader, merged, item, k, &by);
            }
        }
        // Sealed `keys`: only steps the sealing template (or one above it) grants them
        // to may sign with them; a level below cannot grant them to its own steps.
        if let Some(rule) = sealed_rule(merged, "keys") {
            for step in &merged.steps {
                if !Arc::ptr_eq(step.decl.file_of("grants.keys"), &file) {
                    continue;
                }
                for (key, span) in &step.decl.grants.keys {
                    violations.push((
                        *span,
                        format!(
                            "step `{}` cannot be granted key `{key}`: the keys are sealed by {}",
                            step.decl.id, rule.by
                        ),
                        rule.clone(),
                    ));
                }
            }
        }
        for (span, message, rule) in violations {
            let d = Diagnostic::error(&file, span, message).with_note_at(
                &rule.file,
                rule.span,
                format!("sealed by {} here", rule.by),
            );
            reader.problems.push(d);
        }
        merged.sealed.extend(sealed_here);
        self.problems.append(&mut reader.problems);
    }

    fn new_step(
        &mut self,
        reader: &mut Reader,
        merged: &Merged,
        item: &Entry,
        k: usize,
        by: &str,
        slot: Option<&str>,
    ) -> Option<MergedStep> {
        let id = item.key_text();
        if let Some(other) = merged.steps.iter().find(|s| s.decl.id == id) {
            let d = Diagnostic::error(
                reader.file,
                item.key.span,
                format!("step `{id}` is already a step of the pipeline"),
            )
            .with_note_at(&other.decl.declared_in, other.decl.span, "declared here")
            .with_help("step ids are unique across the template chain");
            reader.problems.push(d);
            return None;
        }
        if let Some(other) = merged.slots.iter().find(|s| s.name == id) {
            let d = Diagnostic::error(
                reader.file,
                item.key.span,
                format!("`{id}` is already the name of a slot"),
            )
            .with_note_at(&other.file, other.span, "declared here");
            reader.problems.push(d);
            return None;
        }
        let mut decl = reader.read_step(item)?;
        let (sealed_all, sealed_keys) = read_sealing(reader, item, by);
        decl.origin = StepOrigin {
            template: k.checked_sub(1),
            sealed: false,
            slot: slot.map(str::to_owned),
            interface: decl.interface.as_ref().map(|(n, _)| n.clone()),
        };
        Some(MergedStep {
            decl,
            level: k,
            sealed_all,
            sealed_keys,
            removed: None,
        })
    }

    fn change_step(
        &mut self,
        reader: &mut Reader,
        merged: &mut Merged,
        index: usize,
        item: &Entry,
        by: &str,
    ) {
        let id = item.key_text().to_owned();
        let Some(fields) = reader.mapping(&item.value, &format!("the change to step `{id}`"))
        else {
            return;
        };
        let file = Arc::clone(reader.file);
        let mut violations: Vec<(Span, String, Rule)> = Vec::new();
        let step = &merged.steps[index];
        // What the change touches, as sealable keys.
        let mut touched: Vec<(String, Span)> = Vec::new();
        let mut remove = None;
        for field in fields {
            match field.key_text() {
                "sealed" => {}
                "remove" => match &field.value.kind {
                    NodeKind::Scalar {
                        value: Scalar::Bool(true),
                        ..
                    } => remove = Some(field.key.span),
                    NodeKind::Scalar {
                        value: Scalar::Bool(false),
                        ..
                    } => {}
                    _ => {
                        reader.error(field.value.span, "`remove` must be `true` or `false`");
                    }
                },
                "with" => {
                    for param in field.value.as_mapping().unwrap_or(&[]) {
                        touched.push((format!("with.{}", param.key_text()), param.key.span));
                    }
                }
                "grants" => {
                    for kind in field.value.as_mapping().unwrap_or(&[]) {
                        touched.push((format!("grants.{}", kind.key_text()), kind.key.span));
                    }
                }
                other => touched.push((other.to_owned(), field.key.span)),
            }
        }
        if let Some(span) = remove {
            if let Some(rule) = step.any_seal() {
                violations.push((
                    span,
                    format!("step `{id}` is sealed by {}: it cannot be removed", rule.by),
                    rule.clone(),
                ));
            } else if fields.len() > 1 {
                reader.error(
                    span,
                    format!("step `{id}` is removed: nothing else can be changed in it"),
                );
            }
        }
        for (key, span) in &touched {
            if let Some(rule) = step.seal_of(key) {
                violations.push((
                    *span,
                    format!(
                        "step `{id}` is sealed by {}: `{key}` cannot be changed",
                        rule.by
                    ),
                    rule.clone(),
                ));
            }
        }
        let sealing = read_sealing(reader, item, by);
        if !violations.is_empty() {
            for (span, message, rule) in violations {
                let d = Diagnostic::error(&file, span, message).with_note_at(
                    &rule.file,
                    rule.span,
                    format!("sealed by {} here", rule.by),
                );
                reader.problems.push(d);
            }
            return;
        }
        let step = &mut merged.steps[index];
        if let Some(span) = remove {
            step.removed = Some((Arc::clone(&file), span));
            return;
        }
        reader.step_mode = StepMode::Change;
        let change = reader.read_step(item);
        reader.step_mode = StepMode::Template;
        let Some(change) = change else { return };
        let decl = &mut step.decl;
        let changed = |decl: &mut StepDecl, key: String| {
            decl.changed_in.push((key, Arc::clone(&file)));
        };
        for (key, _) in &touched {
            match key.as_str() {
                "uses" => {
                    decl.uses = change.uses.clone();
                    decl.version_req = change.version_req.clone();
                    decl.interface = change.interface.clone();
                    decl.origin.interface = change.interface.as_ref().map(|(n, _)| n.clone());
                }
                "needs" => decl.needs = change.needs.clone(),
                "if" => decl.condition = change.condition.clone(),
                "timeout" => decl.timeout = change.timeout,
                "memory" => decl.memory = change.memory,
                "continue-on-error" => decl.continue_on_error = change.continue_on_error,
                "name" => decl.name = change.name.clone(),
                "description" => decl.description = change.description.clone(),
                k if k.starts_with("with.") => {
                    let name = &k["with.".len()..];
                    decl.with.retain(|p| p.name != name);
                    if let Some(param) = change.with.iter().find(|p| p.name == name)
                        && param.value != crate::expr::Template::Literal(Value::Null)
                    {
                        decl.with.push(param.clone());
                    }
                    if decl.with_span.is_none() {
                        decl.with_span = change.with_span;
                    }
                }
                "grants.fs" => decl.grants.fs = change.grants.fs.clone(),
                "grants.exec" => {
                    decl.grants.exec = change.grants.exec.clone();
                    decl.grants.exec_span = change.grants.exec_span;
                }
                "grants.env" => decl.grants.env = change.grants.env.clone(),
                "grants.secrets" => decl.grants.secrets = change.grants.secrets.clone(),
                "grants.keys" => decl.grants.keys = change.grants.keys.clone(),
                "grants.net" => decl.grants.net = change.grants.net.clone(),
                _ => continue,
            }
            changed(decl, key.clone());
        }
        // A level may seal more of what it inherits.
        if let Some(rule) = sealing.0 {
            step.sealed_all.get_or_insert(rule);
        }
        step.sealed_keys.extend(sealing.1);
    }

    fn read_slot(
        &mut self,
        reader: &mut Reader,
        merged: &Merged,
        item: &Entry,
        k: usize,
        by: &str,
    ) -> Option<Slot> {
        let name = item.key_text().to_owned();
        if !is_identifier(&name, true) {
            reader.error(item.key.span, format!("invalid slot name `{name}`"));
            return None;
        }
        if let Some(step) = merged.steps.iter().find(|s| s.decl.id == name) {
            let d = Diagnostic::error(
                reader.file,
                item.key.span,
                format!("slot `{name}` has the id of a step"),
            )
            .with_note_at(
                &step.decl.declared_in,
                step.decl.span,
                "the step is declared here",
            );
            reader.problems.push(d);
            return None;
        }
        if let Some(other) = merged.slots.iter().find(|s| s.name == name) {
            let d = Diagnostic::error(
                reader.file,
                item.key.span,
                format!("slot `{name}` is already declared"),
            )
            .with_note_at(&other.file, other.span, "declared here");
            reader.problems.push(d);
            return None;
        }
        let mut slot = Slot {
            name: name.clone(),
            file: Arc::clone(reader.file),
            span: item.key.span,
            level: k,
            by: by.to_owned(),
            required: false,
            needs: Vec::new(),
            filled: None,
            steps: Vec::new(),
        };
        if matches!(
            item.value.kind,
            NodeKind::Scalar {
                value: Scalar::Null,
                ..
            }
        ) {
            return Some(slot);
        }
        let fields = reader.mapping(&item.value, &format!("slot `{name}`"))?;
        reader.unknown_keys(
            fields,
            &["description", "required", "needs"],
            &format!("in slot `{name}`"),
        );
        for field in fields {
            match field.key_text() {
                "description" => {
                    reader.string(&field.value, "`description`");
                }
                "required" => match &field.value.kind {
                    NodeKind::Scalar {
                        value: Scalar::Bool(b),
                        ..
                    } => slot.required = *b,
                    _ => {
                        reader.error(field.value.span, "`required` must be `true` or `false`");
                    }
                },
                "needs" => slot.needs = reader.strings(&field.value, "`needs`", true),
                _ => {}
            }
        }
        Some(slot)
    }

    fn fill_slot(
        &mut self,
        reader: &mut Reader,
        merged: &mut Merged,
        item: &Entry,
        k: usize,
        by: &str,
    ) {
        let name = item.key_text();
        let Some(index) = merged.slots.iter().position(|s| s.name == name) else {
            let open: Vec<&str> = merged
                .slots
                .iter()
                .filter(|s| s.filled.is_none() && s.level > k)
                .map(|s| s.name.as_str())
                .collect();
            let help = did_you_mean_help(name, open.iter().copied()).unwrap_or_else(|| {
                if open.is_empty() {
                    "the templates above leave no slot open".into()
                } else {
                    format!(
                        "the open slots are {}",
                        open.iter()
                            .map(|s| format!("`{s}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            });
            reader
                .error(item.key.span, format!("unknown slot `{name}`"))
                .help = Some(help);
            return;
        };
        let slot = &merged.slots[index];
        if slot.level <= k {
            reader.error(
                item.key.span,
                format!("slot `{name}` is declared by this file: only the levels below fill it"),
            );
            return;
        }
        if let Some((_, file, span)) = &slot.filled {
            let d = Diagnostic::error(
                reader.file,
                item.key.span,
                format!("slot `{name}` of {} is already filled", slot.by),
            )
            .with_note_at(file, *span, "filled here");
            reader.problems.push(d);
            return;
        }
        let slot_needs = slot.needs.clone();
        let Some(steps) = reader.mapping(&item.value, &format!("the steps of slot `{name}`"))
        else {
            return;
        };
        if steps.is_empty() {
            reader.error(
                item.key.span,
                format!("the fill of slot `{name}` has no steps"),
            );
            return;
        }
        reader.step_mode = StepMode::Template;
        let mut ids = Vec::new();
        for step in steps {
            if let Some(mut new) = self.new_step(reader, merged, step, k, by, Some(name)) {
                for (need, span) in &slot_needs {
                    if !new.decl.needs.iter().any(|(n, _)| n == need) {
                        // The slot's needs are written in the template that declared it.
                        new.decl.needs.push((need.clone(), *span));
                        new.decl.changed_in.push((
                            format!("needs.{need}"),
                            Arc::clone(&merged.slots[index].file),
                        ));
                    }
                }
                ids.push(new.decl.id.clone());
                merged.steps.push(new);
            }
        }
        let slot = &mut merged.slots[index];
        slot.filled = Some((k, Arc::clone(reader.file), item.key.span));
        slot.steps = ids;
    }
}

/// Merges `inputs`, `secrets` or `keys` of a level into what the levels above declared:
/// new names are added, known ones replaced, unless a level above sealed the key.
struct MergeByName<'r, 'a> {
    reader: &'r mut Reader<'a>,
    violations: &'r mut Vec<(Span, String, Rule)>,
}

impl<'a> MergeByName<'_, 'a> {
    fn merge<T>(
        &mut self,
        entry: Option<&Entry>,
        key: &str,
        sealed: Option<Rule>,
        into: &mut Vec<T>,
        read: impl Fn(&mut Reader<'a>, &Entry) -> Option<T>,
        name: fn(&T) -> (&String, Span),
    ) {
        let Some(items) = entry.and_then(|e| self.reader.mapping(&e.value, &format!("`{key}`")))
        else {
            return;
        };
        for item in items {
            let Some(decl) = read(self.reader, item) else {
                continue;
            };
            let (decl_name, span) = name(&decl);
            if let Some(rule) = &sealed {
                self.violations.push((
                    span,
                    format!("`{key}` are sealed by {}", rule.by),
                    rule.clone(),
                ));
                continue;
            }
            let decl_name = decl_name.clone();
            into.retain(|d| *name(d).0 != decl_name);
            into.push(decl);
        }
    }
}

/// What a template file says of itself: its identity, and the steps it seals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateDeclaration {
    /// Its `id`.
    pub id: String,
    /// Its `version`.
    pub version: semver::Version,
    /// The ids of the steps it seals (`sealed: true` or a list of keys), in the order of
    /// the file: its own steps, steps it changes, and steps it adds to slots (`fill:`).
    pub sealed_steps: Vec<String>,
}

/// Reads a template file's identity and sealed steps, as the merge reads them, without
/// resolving it (`flow verify --policy` reads the templates a run recorded). Any problem
/// with what it reads is an error.
pub fn read_template_declaration(
    file: &Arc<SourceFile>,
) -> Result<TemplateDeclaration, Diagnostics> {
    let (root, mut problems) = crate::yaml::parse(file).map_err(Diagnostics::from)?;
    let start = Position { line: 1, column: 1 };
    let top = Span::new(start, start);
    let Some(root) = root else {
        return Err(Diagnostic::error(file, top, "the template file is empty").into());
    };
    let mut reader = new_reader(file, Path::new("."), StepMode::Template);
    let Some(entries) = reader.mapping(&root, "a template") else {
        return Err(Diagnostics(reader.problems));
    };
    let find = |k: &str| entries.iter().find(|e| e.key_text() == k);
    let id = match find("id") {
        Some(e) => reader.string(&e.value, "`id`"),
        None => {
            reader.error(top, "missing `id` of the template");
            None
        }
    };
    let version = match find("version") {
        Some(e) => match &e.value.kind {
            NodeKind::Scalar { text, .. } => match semver::Version::parse(text) {
                Ok(version) => Some(version),
                Err(_) => {
                    reader.error(
                        e.value.span,
                        format!("`version: {text}` is not a semver version such as `1.2.0`"),
                    );
                    None
                }
            },
            _ => {
                reader.error(
                    e.value.span,
                    "`version` must be a semver version such as `1.2.0`",
                );
                None
            }
        },
        None => {
            reader.error(top, "missing `version` of the template");
            None
        }
    };
    let mut steps: Vec<&Entry> = Vec::new();
    if let Some(e) = find("steps") {
        steps.extend(reader.mapping(&e.value, "`steps`").unwrap_or(&[]));
    }
    if let Some(e) = find("fill") {
        for slot in reader.mapping(&e.value, "`fill`").unwrap_or(&[]) {
            let what = format!("slot `{}`", slot.key_text());
            steps.extend(reader.mapping(&slot.value, &what).unwrap_or(&[]));
        }
    }
    let mut sealed_steps = Vec::new();
    for step in steps {
        if reader
            .mapping(&step.value, &format!("step `{}`", step.key_text()))
            .is_none()
        {
            continue;
        }
        let (all, keys) = read_sealing(&mut reader, step, "");
        if all.is_some() || !keys.is_empty() {
            sealed_steps.push(step.key_text().to_owned());
        }
    }
    problems.append(&mut reader.problems);
    match (id, version) {
        (Some(id), Some(version)) if problems.is_empty() => Ok(TemplateDeclaration {
            id,
            version,
            sealed_steps,
        }),
        _ => Err(Diagnostics(problems)),
    }
}

/// `sealed: true` or `sealed: [keys]` of a step entry.
fn read_sealing(
    reader: &mut Reader,
    item: &Entry,
    by: &str,
) -> (Option<Rule>, Vec<(String, Rule)>) {
    let Some(field) = item
        .value
        .as_mapping()
        .and_then(|f| f.iter().find(|e| e.key_text() == "sealed"))
    else {
        return (None, Vec::new());
    };
    let rule = |span: Span| Rule {
        file: Arc::clone(reader.file),
        span,
        by: by.to_owned(),
    };
    match &field.value.kind {
        NodeKind::Scalar {
            value: Scalar::Bool(true),
            ..
        } => (Some(rule(field.key.span)), Vec::new()),
        NodeKind::Scalar {
            value: Scalar::Bool(false),
            ..
        } => (None, Vec::new()),
        _ => {
            let mut keys = Vec::new();
            for (key, span) in reader.strings(&field.value, "`sealed`", true) {
                let base = key.split_once('.').map(|(b, _)| b).unwrap_or(&key);
                let valid = match key.split_once('.') {
                    Some(("with", param)) => !param.is_empty(),
                    Some(("grants", kind)) => GRANT_KINDS.contains(&kind),
                    Some(_) => false,
                    None => SEALABLE_STEP_KEYS.contains(&base),
                };
                if valid {
                    keys.push((key, rule(span)));
                } else {
                    let help = did_you_mean_help(&key, SEALABLE_STEP_KEYS).unwrap_or_else(|| {
                        format!(
                            "`sealed` is `true` or a list of {}, `with.<param>`, `grants.<kind>`",
                            SEALABLE_STEP_KEYS.join(", ")
                        )
                    });
                    reader
                        .error(
                            span,
                            format!("`{key}` is not a key of a step that can be sealed"),
                        )
                        .help = Some(help);
                }
            }
            (None, keys)
        }
    }
}

/// `name: { type, default, pattern, description }`.
fn read_typed_param(reader: &mut Reader, entry: &Entry, what: &str) -> Option<TypedParam> {
    let name = entry.key_text().to_owned();
    if !is_identifier(&name, true) {
        reader.error(entry.key.span, format!("invalid {what} name `{name}`"));
        return None;
    }
    let place = format!("{what} `{name}`");
    let fields = reader.mapping(&entry.value, &format!("`{place}`"))?;
    reader.unknown_keys(
        fields,
        &["type", "default", "pattern", "description"],
        &format!("in {place}"),
    );
    let find = |k: &str| fields.iter().find(|e| e.key_text() == k);
    const TYPES: [(&str, ParamType); 7] = [
        ("string", ParamType::String),
        ("integer", ParamType::Integer),
        ("number", ParamType::Number),
        ("boolean", ParamType::Boolean),
        ("list", ParamType::List),
        ("object", ParamType::Object),
        ("any", ParamType::Any),
    ];
    let ty = match find("type").and_then(|t| t.value.as_str().map(|s| (s, t.value.span))) {
        Some((name, span)) => match TYPES.iter().find(|(n, _)| *n == name) {
            Some((_, ty)) => *ty,
            None => {
                reader.error(span, format!("unknown type `{name}`")).help =
                    did_you_mean_help(name, TYPES.iter().map(|(n, _)| *n)).or(Some(
                        "types are `string`, `integer`, `number`, `boolean`, `list`, `object` and `any`".into(),
                    ));
                return None;
            }
        },
        None => {
            reader
                .error(entry.key.span, format!("{place} has no `type`"))
                .help = Some("add `type: string` (or `integer`, `number`, `boolean`)".into());
            return None;
        }
    };
    let description = find("description").and_then(|d| reader.string(&d.value, "`description`"));
    let pattern = match find("pattern") {
        Some(p) => {
            let text = reader.string(&p.value, "`pattern`")?;
            if ty != ParamType::String {
                reader.error(p.key.span, "`pattern` is for strings");
                return None;
            }
            if let Err(e) = regex::Regex::new(&format!("^(?:{text})$")) {
                reader.error(p.value.span, format!("invalid pattern: {e}"));
                return None;
            }
            Some((text, p.value.span))
        }
        None => None,
    };
    let mut param = TypedParam {
        name,
        span: entry.key.span,
        ty,
        default: None,
        pattern,
        description,
        declared_in: Arc::clone(reader.file),
    };
    if let Some(d) = find("default") {
        let value = d.value.to_json();
        if let Some(message) = check_typed_value(&param, &value) {
            reader.error(d.value.span, format!("the default of {place}: {message}"));
            return None;
        }
        param.default = Some(value);
    }
    Some(param)
}

/// Why `value` does not fit `param`, if it does not.
fn check_typed_value(param: &TypedParam, value: &Value) -> Option<String> {
    if !param.ty.accepts(value) {
        return Some(format!(
            "expected {}, found {}",
            param.ty.described(),
            crate::plugin::json_type_name(value)
        ));
    }
    if let (Some((pattern, _)), Value::String(s)) = (&param.pattern, value) {
        let matches = regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(s));
        if !matches {
            return Some(format!("`{s}` does not match the pattern `{pattern}`"));
        }
    }
    None
}

fn read_interface(reader: &mut Reader, entry: &Entry) -> Option<Interface> {
    let name = entry.key_text().to_owned();
    if !is_identifier(&name, true) {
        reader.error(entry.key.span, format!("invalid interface name `{name}`"));
        return None;
    }
    let fields = reader.mapping(&entry.value, &format!("interface `{name}`"))?;
    reader.unknown_keys(
        fields,
        &["description", "params", "outputs"],
        &format!("in interface `{name}`"),
    );
    let mut interface = Interface {
        name,
        params: Vec::new(),
        outputs: Vec::new(),
        file: Arc::clone(reader.file),
        span: entry.key.span,
    };
    for field in fields {
        match field.key_text() {
            "description" => {
                reader.string(&field.value, "`description`");
            }
            "params" => {
                if let Some(params) = reader.mapping(&field.value, "`params`") {
                    interface.params = params
                        .iter()
                        .filter_map(|p| read_typed_param(reader, p, "param"))
                        .collect();
                }
            }
            "outputs" => {
                interface.outputs = reader
                    .strings(&field.value, "`outputs`", false)
                    .into_iter()
                    .map(|(o, _)| o)
                    .collect();
            }
            _ => {}
        }
    }
    Some(interface)
}

/// The level's file with `${{ params.NAME }}` replaced, without `parameters:` (whose
/// defaults are plain values).
fn substitute_document(level: &Level, problems: &mut Vec<Diagnostic>) -> Node {
    let NodeKind::Mapping(entries) = &level.root.kind else {
        return level.root.clone();
    };
    let entries = entries
        .iter()
        .map(|e| {
            if matches!(e.key_text(), "parameters" | "with" | "interfaces") {
                e.clone()
            } else {
                Entry {
                    key: e.key.clone(),
                    value: substitute(&e.value, &level.values, &level.file, problems),
                }
            }
        })
        .collect();
    Node {
        kind: NodeKind::Mapping(entries),
        span: level.root.span,
    }
}

/// `node` with every `${{ params.NAME }}` replaced by the parameter's value.
fn substitute(
    node: &Node,
    values: &BTreeMap<String, Value>,
    file: &Arc<SourceFile>,
    problems: &mut Vec<Diagnostic>,
) -> Node {
    let kind = match &node.kind {
        NodeKind::Scalar {
            value: Scalar::String(text),
            ..
        } if text.contains("${{") => match substitute_text(text, values) {
            Ok(None) => return node.clone(),
            Ok(Some(Value::String(s))) => NodeKind::Scalar {
                value: Scalar::String(s.clone()),
                text: s,
            },
            Ok(Some(value)) => {
                let text = value.to_string();
                let scalar = match &value {
                    Value::Bool(b) => Scalar::Bool(*b),
                    Value::Number(n) => match n.as_i64() {
                        Some(i) => Scalar::Int(i),
                        None => Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    Value::Null => Scalar::Null,
                    _ => Scalar::String(text.clone()),
                };
                NodeKind::Scalar {
                    value: scalar,
                    text,
                }
            }
            Err((message, help)) => {
                problems.push(Diagnostic::error(file, node.span, message).with_help(help));
                return node.clone();
            }
        },
        NodeKind::Scalar { .. } => return node.clone(),
        NodeKind::Sequence(items) => NodeKind::Sequence(
            items
                .iter()
                .map(|i| substitute(i, values, file, problems))
                .collect(),
        ),
        NodeKind::Mapping(entries) => NodeKind::Mapping(
            entries
                .iter()
                .map(|e| Entry {
                    key: e.key.clone(),
                    value: substitute(&e.value, values, file, problems),
                })
                .collect(),
        ),
    };
    Node {
        kind,
        span: node.span,
    }
}

/// Replaces the `${{ params.NAME }}` of a string. `Ok(None)`: it names no parameter.
/// A string that is exactly one such expression gives the value with its type.
fn substitute_text(
    text: &str,
    values: &BTreeMap<String, Value>,
) -> Result<Option<Value>, (String, String)> {
    let mut out = String::new();
    let mut rest = text;
    let mut replaced = 0;
    let mut whole: Option<Value> = None;
    while let Some(start) = rest.find("${{") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end].trim();
        out.push_str(&rest[..start]);
        let mentions = inner
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| word == "params");
        if !mentions {
            out.push_str(&rest[start..start + 3 + end + 2]);
            rest = &after[end + 2..];
            continue;
        }
        let Some(name) = inner
            .strip_prefix("params.")
            .filter(|n| is_identifier(n, true))
        else {
            return Err((
                format!(
                    "`${{{{ {inner} }}}}`: template parameters are replaced only as `${{{{ params.NAME }}}}`"
                ),
                "compute with run-time values (`inputs`, `steps`) in a separate expression".into(),
            ));
        };
        let Some(value) = values.get(name) else {
            let help = did_you_mean_help(name, values.keys().map(String::as_str)).unwrap_or_else(|| {
                if values.is_empty() {
                    "this file takes no parameters (a pipeline file reads run-time values as `inputs`)".into()
                } else {
                    let list: Vec<String> = values.keys().map(|k| format!("`{k}`")).collect();
                    format!("the parameters are {}", list.join(", "))
                }
            });
            return Err((format!("unknown parameter `{name}`"), help));
        };
        replaced += 1;
        if start == 0 && after[end + 2..].is_empty() && replaced == 1 && out.is_empty() {
            whole = Some(value.clone());
        }
        match value {
            Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if replaced == 0 {
        return Ok(None);
    }
    Ok(Some(whole.unwrap_or(Value::String(out))))
}

/// Resolves a document into a pipeline: loads the templates it extends from `source`,
/// gives them their parameters, merges them under the rules of `docs/templates.md` and
/// binds interfaces (`config_bindings`: the user's, then the organisation's).
///
/// A document that extends nothing is read as a plain pipeline file.
pub fn resolve(
    document: Document,
    source: &dyn TemplateSource,
    config_bindings: &[BindingDecl],
) -> Result<Pipeline, Diagnostics> {
    if document.extends.is_none() {
        let has_own = document.root.as_mapping().is_some_and(|entries| {
            entries
                .iter()
                .any(|e| matches!(e.key_text(), "catalogs" | "bindings" | "with" | "fill"))
        });
        if !has_own {
            let mut reader = new_reader(&document.file, &document.base_dir, StepMode::Pipeline);
            let mut pipeline = reader.read_pipeline(&document.root);
            let mut problems = document.problems;
            problems.append(&mut reader.problems);
            pipeline.problems = problems;
            return Ok(pipeline);
        }
    }
    let root_file = Arc::clone(&document.file);
    let root_dir = document.base_dir.clone();
    let root_bindings = document.bindings.clone();
    let mut resolver = Resolver {
        problems: document.problems.clone(),
        source,
    };
    if let Some(entries) = document.root.as_mapping() {
        let mut reader = new_reader(&root_file, &root_dir, StepMode::Pipeline);
        if document.extends.is_none() {
            let top = Span::new(document.root.span.start, document.root.span.start);
            reader.error(top, "`with`, `fill`, `catalogs` and `bindings` are for a pipeline that `extends` a template");
        }
        match entries.iter().find(|e| e.key_text() == "version") {
            Some(e)
                if matches!(
                    e.value.kind,
                    NodeKind::Scalar {
                        value: Scalar::Int(1),
                        ..
                    }
                ) => {}
            Some(e) => {
                reader.error(e.value.span, "`version` must be 1");
            }
            None => {
                let top = Span::new(document.root.span.start, document.root.span.start);
                reader.error(top, "missing `version: 1` at the top of the pipeline");
            }
        }
        resolver.problems.append(&mut reader.problems);
    }
    let mut chain = resolver.load_chain(document);
    if resolver
        .problems
        .iter()
        .any(|d| d.severity == crate::diag::Severity::Error)
    {
        return Err(sorted(resolver.problems));
    }
    resolver.bind_parameters(&mut chain);
    let merged = resolver.merge(&chain);
    let pipeline = resolver.finish(merged, &chain, &root_bindings, config_bindings, &root_dir);
    if resolver.problems.is_empty() {
        Ok(pipeline)
    } else {
        Err(sorted(resolver.problems))
    }
}

fn sorted(mut problems: Vec<Diagnostic>) -> Diagnostics {
    problems.sort_by(|a, b| {
        let key = |d: &Diagnostic| {
            d.primary
                .as_ref()
                .map(|l| (l.file.name.clone(), l.span.start))
        };
        key(a).cmp(&key(b))
    });
    Diagnostics(problems)
}

impl Resolver<'_> {
    /// Checks what only the whole chain shows, binds interfaces, and builds the pipeline.
    fn finish(
        &mut self,
        merged: Merged,
        chain: &[Level],
        root_bindings: &[BindingDecl],
        config_bindings: &[BindingDecl],
        root_dir: &Path,
    ) -> Pipeline {
        let root = &chain[0];
        let root_span = root
            .extends
            .as_ref()
            .map(|e| e.span)
            .unwrap_or(root.root.span);
        // Required slots.
        for slot in &merged.slots {
            if slot.required && slot.filled.is_none() {
                let d = self.error(
                    &root.file,
                    root_span,
                    format!("slot `{}` of {} must be filled", slot.name, slot.by),
                );
                self.note(d, &slot.file, slot.span, "the slot is declared here");
                self.help(
                    d,
                    format!(
                        "add `fill: {{ {}: {{ <step id>: {{ uses: ... }} }} }}`",
                        slot.name
                    ),
                );
            }
        }
        // Removed steps that others need.
        let removed: BTreeMap<&str, (Arc<SourceFile>, Span)> = merged
            .steps
            .iter()
            .filter_map(|s| s.removed.clone().map(|r| (s.decl.id.as_str(), r)))
            .collect();
        let mut steps: Vec<&MergedStep> = merged
            .steps
            .iter()
            .filter(|s| s.removed.is_none())
            .collect();
        for step in &steps {
            for (need, span) in &step.decl.needs {
                if let Some((file, at)) = removed.get(need.as_str()) {
                    let d = self.error(
                        file,
                        *at,
                        format!(
                            "step `{need}` cannot be removed: step `{}` needs it",
                            step.decl.id
                        ),
                    );
                    self.note(d, step.decl.file_of("needs"), *span, "needed here");
                }
            }
        }
        // Needs naming slots: the slot's steps, or its own needs when empty.
        let expand = |name: &str| -> Option<Vec<String>> {
            merged.slots.iter().find(|s| s.name == name)?;
            let mut out = Vec::new();
            let mut todo = vec![name.to_owned()];
            let mut seen = BTreeSet::new();
            while let Some(n) = todo.pop() {
                if !seen.insert(n.clone()) {
                    continue;
                }
                match merged.slots.iter().find(|s| s.name == n) {
                    Some(slot) if slot.filled.is_some() => out.extend(slot.steps.iter().cloned()),
                    Some(slot) => todo.extend(slot.needs.iter().map(|(n, _)| n.clone())),
                    None => out.push(n),
                }
            }
            out.sort();
            out.dedup();
            Some(out)
        };
        let mut decls: Vec<StepDecl> = Vec::new();
        for step in steps.drain(..) {
            let mut decl = step.decl.clone();
            let mut needs: Vec<(String, Span)> = Vec::new();
            let mut files: Vec<(String, Arc<SourceFile>)> = Vec::new();
            for (need, span) in &decl.needs {
                let file = decl.file_of(&format!("needs.{need}")).clone();
                match expand(need) {
                    Some(expanded) => {
                        for n in expanded {
                            if n != decl.id && !needs.iter().any(|(x, _)| *x == n) {
                                files.push((format!("needs.{n}"), Arc::clone(&file)));
                                needs.push((n, *span));
                            }
                        }
                    }
                    None => {
                        if !needs.iter().any(|(x, _)| x == need) {
                            files.push((format!("needs.{need}"), Arc::clone(&file)));
                            needs.push((need.clone(), *span));
                        }
                    }
                }
            }
            decl.needs = needs;
            decl.changed_in.retain(|(k, _)| !k.starts_with("needs."));
            decl.changed_in.extend(files);
            decl.origin.sealed = step.sealed_all.is_some() || !step.sealed_keys.is_empty();
            decl.origin.template = step.level.checked_sub(1);
            let sealed_uses = step.seal_of("uses").is_some();
            self.bind_interface(
                &mut decl,
                sealed_uses,
                &merged,
                chain,
                root_bindings,
                config_bindings,
            );
            decls.push(decl);
        }
        let name = match &merged.name {
            Some(setting) => Some(setting.value.clone()),
            None => {
                let d = self.error(&root.file, root_span, "the pipeline has no `name`");
                self.help(d, "add `name:` to the pipeline file (or to the template)");
                None
            }
        };
        if decls.is_empty() {
            self.error(&root.file, root_span, "the resolved pipeline has no steps");
        }
        Pipeline {
            source: Arc::clone(&root.file),
            base_dir: root_dir.to_path_buf(),
            name,
            description: merged.description.map(|d| d.value),
            inputs: merged.inputs,
            steps: decls,
            exec_confinement_file: merged
                .exec_confinement
                .as_ref()
                .and_then(|s| s.file.clone()),
            exec_confinement: merged.exec_confinement.map(|s| (s.value, s.span)),
            secrets: merged.secrets,
            keys: merged.keys,
            problems: Vec::new(),
            templates: chain[1..].iter().filter_map(|l| l.info.clone()).collect(),
        }
    }

    /// Replaces `uses: interface:<name>` by the bound plugin, and checks the step's
    /// params against the interface.
    fn bind_interface(
        &mut self,
        decl: &mut StepDecl,
        sealed_uses: bool,
        merged: &Merged,
        chain: &[Level],
        root_bindings: &[BindingDecl],
        config_bindings: &[BindingDecl],
    ) {
        let Some((name, span)) = decl.interface.clone() else {
            return;
        };
        let uses_file = Arc::clone(decl.file_of("uses"));
        let Some(interface) = merged.interfaces.iter().find(|i| i.name == name) else {
            let d = self.error(&uses_file, span, format!("unknown interface `{name}`"));
            let help = did_you_mean_help(&name, merged.interfaces.iter().map(|i| i.name.as_str()))
                .unwrap_or_else(|| {
                    "interfaces are declared by templates, under `interfaces:`".into()
                });
            self.help(d, help);
            return;
        };
        // The step's params against the interface's.
        for param in &decl.with {
            let file = decl.file_of(&format!("with.{}", param.name));
            match interface.params.iter().find(|p| p.name == param.name) {
                None => {
                    let d = self.error(
                        file,
                        param.name_span,
                        format!("interface `{name}` has no param `{}`", param.name),
                    );
                    self.note(
                        d,
                        &interface.file,
                        interface.span,
                        "the interface is declared here",
                    );
                    if let Some(help) = did_you_mean_help(
                        &param.name,
                        interface.params.iter().map(|p| p.name.as_str()),
                    ) {
                        self.help(d, help);
                    }
                }
                Some(spec) => {
                    if let crate::expr::Template::Literal(value) = &param.value
                        && let Some(message) = check_typed_value(spec, value)
                    {
                        let d = self.error(
                            file,
                            param.span,
                            format!("param `{}` of interface `{name}`: {message}", param.name),
                        );
                        self.note(d, &spec.declared_in, spec.span, "declared here");
                    }
                }
            }
        }
        let missing: Vec<&TypedParam> = interface
            .params
            .iter()
            .filter(|p| p.default.is_none() && !decl.with.iter().any(|w| w.name == p.name))
            .collect();
        for param in missing {
            let d = self.error(
                &uses_file,
                span,
                format!(
                    "step `{}` is missing param `{}` of interface `{name}`",
                    decl.id, param.name
                ),
            );
            self.note(d, &param.declared_in, param.span, "declared here");
        }
        // Interface params with defaults the step does not give: the plugin gets the default.
        for param in &interface.params {
            if let Some(default) = &param.default
                && !decl.with.iter().any(|w| w.name == param.name)
            {
                decl.with.push(crate::model::ParamDecl {
                    name: param.name.clone(),
                    name_span: param.span,
                    value: crate::expr::Template::Literal(default.clone()),
                    span: param.span,
                });
                decl.changed_in.push((
                    format!("with.{}", param.name),
                    Arc::clone(&param.declared_in),
                ));
            }
        }
        // A step whose `uses` is sealed keeps the binding of the configs or templates:
        // the repository cannot swap its tool.
        let repository: &[BindingDecl] = if sealed_uses { &[] } else { root_bindings };
        let mut bindings = repository
            .iter()
            .chain(config_bindings.iter())
            .cloned()
            .collect::<Vec<_>>();
        let mut template_bindings: Vec<&(usize, BindingDecl)> =
            merged.template_bindings.iter().collect();
        template_bindings.sort_by_key(|(level, _)| *level);
        bindings.extend(template_bindings.into_iter().map(|(_, b)| b.clone()));
        let Some(binding) = bindings.iter().find(|b| b.interface == name) else {
            let d = self.error(
                &uses_file,
                span,
                format!("interface `{name}` is not bound to a plugin"),
            );
            self.help(
                d,
                format!("bind it in flow.yaml or the organisation config: `bindings: {{ {name}: <plugin>@<version> }}`"),
            );
            return;
        };
        let _ = chain;
        match parse_uses_spec(&binding.value, &binding.base_dir) {
            Ok(Uses::Plugin(plugin, req)) => {
                decl.uses = Some((plugin, span));
                decl.version_req = None;
                decl.binding = Some(Arc::new(BoundInterface {
                    name: name.clone(),
                    params: interface.params.clone(),
                    outputs: interface.outputs.clone(),
                    declared_in: Arc::clone(&interface.file),
                    span: interface.span,
                    binding: binding.value.clone(),
                    version_req: req,
                    binding_file: Arc::clone(&binding.declared_in),
                    binding_span: binding.span,
                }));
            }
            Ok(Uses::Interface(_)) => {
                self.error(
                    &binding.declared_in,
                    binding.span,
                    "an interface is bound to a plugin, not to another interface",
                );
            }
            Err(message) => {
                self.error(&binding.declared_in, binding.span, message);
            }
        }
    }
}

/// Renders a resolved pipeline as YAML, each step and key followed by the file and line
/// it came from (`flow show --resolved`).
pub fn render_resolved(pipeline: &Pipeline) -> String {
    let mut out = String::new();
    let at = |file: &Arc<SourceFile>, span: Span| format!("{}:{}", file.name, span.start.line);
    let pad = |line: &str, origin: &str| {
        let width = 48usize;
        if line.len() >= width {
            format!("{line}  # {origin}\n")
        } else {
            format!("{line}{}  # {origin}\n", " ".repeat(width - line.len()))
        }
    };
    out.push_str("version: 1\n");
    if let Some(name) = &pipeline.name {
        out.push_str(&format!("name: {}\n", json(&Value::String(name.clone()))));
    }
    if !pipeline.templates.is_empty() {
        out.push_str("# templates (nearest first):\n");
        for t in &pipeline.templates {
            out.push_str(&format!(
                "#   {} sha256:{} ({})\n",
                t.name(),
                t.sha256,
                t.source
            ));
        }
    }
    if let Some((value, span)) = &pipeline.exec_confinement {
        let text = match value {
            ExecConfinement::Required => "required",
            ExecConfinement::Preferred => "preferred",
            ExecConfinement::Off => "off",
        };
        let file = pipeline
            .exec_confinement_file
            .as_ref()
            .unwrap_or(&pipeline.source);
        out.push_str(&pad(&format!("exec-confinement: {text}"), &at(file, *span)));
    }
    if !pipeline.inputs.is_empty() {
        out.push_str("inputs:\n");
        for i in &pipeline.inputs {
            let mut line = format!("  {}: {{ type: {}", i.name, i.ty.name());
            if let Some(d) = &i.default {
                line.push_str(&format!(", default: {}", json(d)));
            }
            line.push_str(" }");
            out.push_str(&pad(&line, &at(&i.declared_in, i.span)));
        }
    }
    if !pipeline.secrets.is_empty() {
        out.push_str("secrets:\n");
        for s in &pipeline.secrets {
            let source = match &s.source {
                crate::model::SecretSource::Env(v) => format!("{{ env: {v} }}"),
                crate::model::SecretSource::File(f) => {
                    format!("{{ file: {} }}", json(&Value::String(f.clone())))
                }
            };
            out.push_str(&pad(
                &format!("  {}: {source}", s.name),
                &at(&s.declared_in, s.span),
            ));
        }
    }
    if !pipeline.keys.is_empty() {
        out.push_str("keys:\n");
        for k in &pipeline.keys {
            let line = format!(
                "  {}: {{ file: {} }}",
                k.name,
                json(&Value::String(k.file.clone()))
            );
            out.push_str(&pad(&line, &at(&k.declared_in, k.span)));
        }
    }
    out.push_str("steps:\n");
    for step in &pipeline.steps {
        let mut origin = at(&step.declared_in, step.span);
        if let Some(t) = step.origin.template.and_then(|i| pipeline.templates.get(i)) {
            origin = format!("{} {origin}", t.name());
        }
        if step.origin.sealed {
            origin.push_str(" (sealed)");
        }
        if let Some(slot) = &step.origin.slot {
            origin.push_str(&format!(" (slot {slot})"));
        }
        out.push_str(&pad(&format!("  {}:", step.id), &origin));
        if let Some((plugin, span)) = &step.uses {
            let text = match &step.binding {
                Some(b) => format!("    uses: {}", b.binding),
                None => format!(
                    "    uses: {}",
                    plugin_text(plugin, step.version_req.as_ref().map(|(r, _)| r.as_str()))
                ),
            };
            let origin = match &step.binding {
                Some(b) => format!(
                    "interface:{} at {}, bound at {}",
                    b.name,
                    at(step.file_of("uses"), *span),
                    at(&b.binding_file, b.binding_span)
                ),
                None => at(step.file_of("uses"), *span),
            };
            out.push_str(&pad(&text, &origin));
        }
        if let Some(name) = &step.name {
            out.push_str(&format!(
                "    name: {}\n",
                json(&Value::String(name.clone()))
            ));
        }
        if !step.needs.is_empty() {
            out.push_str("    needs:\n");
            for (need, span) in &step.needs {
                let file = step.file_of(&format!("needs.{need}"));
                out.push_str(&pad(&format!("      - {need}"), &at(file, *span)));
            }
        }
        if let Some((condition, span)) = &step.condition {
            out.push_str(&pad(
                &format!(
                    "    if: {}",
                    json(&Value::String(format!("${{{{ {} }}}}", condition.source())))
                ),
                &at(step.file_of("if"), *span),
            ));
        }
        if !step.with.is_empty() {
            out.push_str("    with:\n");
            for param in &step.with {
                let file = step.file_of(&format!("with.{}", param.name));
                out.push_str(&pad(
                    &format!("      {}: {}", param.name, template_text(&param.value)),
                    &at(file, param.span),
                ));
            }
        }
        if let Some(t) = step.timeout {
            out.push_str(&format!("    timeout: {}ms\n", t.as_millis()));
        }
        if let Some(m) = step.memory {
            out.push_str(&format!("    memory: {m}\n"));
        }
        if step.continue_on_error {
            out.push_str("    continue-on-error: true\n");
        }
        let g = &step.grants;
        let kinds: [(&str, Vec<(String, Span)>); 6] = [
            (
                "fs",
                g.fs.iter()
                    .map(|f| {
                        (
                            format!(
                                "{{ path: {}, access: {} }}",
                                json(&Value::String(f.path.clone())),
                                match f.access {
                                    crate::model::FsAccess::Read => "read",
                                    crate::model::FsAccess::Write => "write",
                                }
                            ),
                            f.span,
                        )
                    })
                    .collect(),
            ),
            (
                "exec",
                g.exec.iter().map(|e| (e.command.clone(), e.span)).collect(),
            ),
            (
                "env",
                g.env.iter().map(|e| (e.name.clone(), e.span)).collect(),
            ),
            ("secrets", g.secrets.clone()),
            ("keys", g.keys.clone()),
            ("net", g.net.clone()),
        ];
        if kinds.iter().any(|(_, v)| !v.is_empty()) {
            out.push_str("    grants:\n");
            for (kind, items) in kinds {
                if items.is_empty() {
                    continue;
                }
                out.push_str(&format!("      {kind}:\n"));
                let file = step.file_of(&format!("grants.{kind}"));
                for (text, span) in items {
                    out.push_str(&pad(&format!("        - {text}"), &at(file, span)));
                }
            }
        }
    }
    out
}

fn json(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn plugin_text(plugin: &PluginRef, req: Option<&str>) -> String {
    let base = match plugin {
        PluginRef::Builtin { name, .. } => name.clone(),
        PluginRef::File { written, .. } => written.clone(),
    };
    let pin = plugin
        .pin()
        .map(|p| format!("@sha256:{p}"))
        .unwrap_or_default();
    match req {
        Some(r) => format!("{base}@{r}"),
        None => format!("{base}{pin}"),
    }
}

fn template_text(template: &crate::expr::Template) -> String {
    use crate::expr::{Segment, Template};
    match template {
        Template::Literal(v) => json(v),
        Template::Expr(e) => json(&Value::String(format!("${{{{ {} }}}}", e.source()))),
        Template::Interpolated(segments) => {
            let mut s = String::new();
            for segment in segments {
                match segment {
                    Segment::Text(t) => s.push_str(t),
                    Segment::Expr(e) => s.push_str(&format!("${{{{ {} }}}}", e.source())),
                }
            }
            json(&Value::String(s))
        }
        Template::List(items) => {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(template_text)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Template::Map(entries) => format!(
            "{{ {} }}",
            entries
                .iter()
                .map(|(k, t)| format!("{}: {}", json(&Value::String(k.clone())), template_text(t)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declaration(text: &str) -> Result<TemplateDeclaration, Diagnostics> {
        read_template_declaration(&SourceFile::new("template.yaml", text))
    }

    #[test]
    fn a_declaration_lists_the_steps_the_template_seals() {
        let d = declaration(
            "template: 1\nid: acme/secure-release\nversion: 1.2.0\nsteps:\n  checkout: { sealed: true, uses: checkout }\n  build: { uses: build }\n  scan:\n    sealed: [uses, with.fail-on]\n    uses: interface:scan\n  lint: { sealed: [], uses: lint }\n  test: { sealed: false, uses: build }\nfill:\n  middle:\n    compile: { sealed: [grants], uses: build }\n    docs: { uses: build }\n",
        )
        .expect("valid");
        assert_eq!(d.id, "acme/secure-release");
        assert_eq!(d.version, semver::Version::new(1, 2, 0));
        assert_eq!(d.sealed_steps, ["checkout", "scan", "compile"]);
    }

    #[test]
    fn a_declaration_that_does_not_read_is_an_error_at_its_place() {
        let bad = declaration("id: a/b\nversion: 1.0.0\nsteps:\n  scan: { sealed: [nope] }\n")
            .expect_err("invalid")
            .render();
        assert!(
            bad.contains(
                "template.yaml:4:20: error: `nope` is not a key of a step that can be sealed"
            ),
            "{bad}"
        );
        let missing = declaration("steps: {}\n")
            .expect_err("no identity")
            .render();
        assert!(missing.contains("missing `id`"), "{missing}");
        assert!(missing.contains("missing `version`"), "{missing}");
        let version = declaration("id: a/b\nversion: one\n")
            .expect_err("not semver")
            .render();
        assert!(
            version.contains("`version: one` is not a semver version"),
            "{version}"
        );
        assert!(declaration("id: a/b\nversion: 1.0.0\nsteps: [a]\n").is_err());
        assert!(declaration("").is_err());
    }
}
