//! Policies that `flow verify RUN --policy FILE` checks a run against
//! (`docs/templates.md`, "Provenance and policy"):
//!
//! ```yaml
//! policy: 1
//! template: acme/secure-release      # the run must come from this template...
//! versions: ^1                       # ...at one of these versions
//! approved-plugins:                  # plugin name -> digests allowed
//!   scan: [sha256:<64 hex>]
//! require: [scan, sign]              # plugins sealed steps of the template must run
//! before: [publish]                  # plugins that must come after every sealed step
//! ```
//!
//! Three parts, so that the decision is a pure function:
//! - [`Policy::parse`] reads the policy file, reporting problems at `file:line:column`;
//! - [`RunFacts::from_statements`] reads what the run's signed (and verified) statements
//!   record; [`TemplateLocator`] finds the templates of the recorded chain by digest and
//!   [`flow_pipeline::read_template_declaration`] reads their sealed steps;
//! - [`evaluate`] decides, one [`Check`] per rule and step.
//!
//! A plugin name of the policy names a step when it is the name of the step's plugin
//! (the recorded reference without `@version` or `@sha256:` pin; for a `.wasm` file, its
//! file name without `.wasm`), or the interface the step implements.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flow_pipeline::yaml::{self, Entry, Node, NodeKind, Scalar};
use flow_pipeline::{
    Diagnostic, Diagnostics, Position, SourceFile, Span, TemplateDeclaration,
    read_template_declaration,
};
use flow_provenance::{Outcome, TemplateOrigin, TemplateRef};

use super::digest::template_digest;
use super::{TEMPLATE_FILE, cached_template_dir};

/// The keys of a policy file.
const POLICY_KEYS: &[&str] = &[
    "policy",
    "template",
    "versions",
    "approved-plugins",
    "require",
    "before",
];

/// A policy file, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The template the run must have been resolved from (`namespace/name`).
    pub template: String,
    /// The versions of it that are accepted (any, when `None`).
    pub versions: Option<semver::VersionReq>,
    /// Plugin name -> the hex sha256 digests (lower case, without `sha256:`) a sealed step
    /// running it may have.
    pub approved_plugins: BTreeMap<String, Vec<String>>,
    /// Plugin (or interface) names that sealed steps of the template must have run, and
    /// succeeded: what a run may not go without, even with a template version that no
    /// longer seals it.
    pub require: Vec<String>,
    /// Plugin names whose steps must start after every sealed step finished.
    pub before: Vec<String>,
}

impl Policy {
    /// Reads and checks the policy file at `path` (shown in messages as given).
    pub fn load(path: &Path) -> Result<Policy, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics::from(Diagnostic::error_without_location(format!(
                "cannot read the policy file `{}`: {e}",
                path.display()
            )))
        })?;
        Policy::parse(&SourceFile::new(path.display().to_string(), text))
    }

    /// Checks the text of a policy file; every problem is reported, each at its place.
    pub fn parse(file: &Arc<SourceFile>) -> Result<Policy, Diagnostics> {
        let (root, mut problems) = yaml::parse(file).map_err(Diagnostics::from)?;
        let Some(root) = root else {
            return Err(
                Diagnostic::error(file, start_span(), "the policy file is empty")
                    .with_help(
                        "a policy needs at least `policy: 1` and `template: <namespace>/<name>`",
                    )
                    .into(),
            );
        };
        let mut reader = Reader {
            file,
            problems: Vec::new(),
        };
        let policy = reader.policy(&root);
        problems.append(&mut reader.problems);
        match policy {
            Some(policy) if problems.is_empty() => Ok(policy),
            _ => Err(Diagnostics(problems)),
        }
    }
}

fn start_span() -> Span {
    let start = Position { line: 1, column: 1 };
    Span::new(start, start)
}

/// Reads a policy file's tree, collecting problems.
struct Reader<'f> {
    file: &'f Arc<SourceFile>,
    problems: Vec<Diagnostic>,
}

impl Reader<'_> {
    fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.problems
            .push(Diagnostic::error(self.file, span, message));
        let last = self.problems.len() - 1;
        &mut self.problems[last]
    }

    fn policy(&mut self, root: &Node) -> Option<Policy> {
        let Some(entries) = root.as_mapping() else {
            self.error(
                root.span,
                format!("a policy must be a mapping, found {}", root.type_name()),
            );
            return None;
        };
        let mut format = None;
        let mut template = None;
        let mut versions = None;
        let mut approved_plugins = BTreeMap::new();
        let mut require = Vec::new();
        let mut before = Vec::new();
        for entry in entries {
            let value = &entry.value;
            match entry.key_text() {
                "policy" => format = self.format(value),
                "template" => template = self.template(value),
                "versions" => versions = self.versions(value),
                "approved-plugins" => approved_plugins = self.approved_plugins(value),
                "require" => require = self.plugin_names(value, "`require`"),
                "before" => before = self.plugin_names(value, "`before`"),
                key => {
                    let help = did_you_mean(key, POLICY_KEYS).unwrap_or_else(|| {
                        let keys: Vec<String> =
                            POLICY_KEYS.iter().map(|k| format!("`{k}`")).collect();
                        format!("the keys of a policy are {}", keys.join(", "))
                    });
                    self.error(entry.key.span, format!("unknown key `{key}` in the policy"))
                        .help = Some(help);
                }
            }
        }
        let has = |key: &str| entries.iter().any(|e| e.key_text() == key);
        if !has("policy") {
            self.error(root.span, "the policy has no `policy` key").help =
                Some("start the file with `policy: 1`".into());
        }
        if !has("template") {
            self.error(root.span, "the policy has no `template` key")
                .help = Some(
                "name the template runs must come from: `template: <namespace>/<name>`".into(),
            );
        }
        format?;
        Some(Policy {
            template: template?,
            versions,
            approved_plugins,
            require,
            before,
        })
    }

    fn format(&mut self, node: &Node) -> Option<u32> {
        match scalar(node) {
            Some((Scalar::Int(1), _)) => Some(1),
            Some((Scalar::Int(n), _)) => {
                self.error(
                    node.span,
                    format!("policy format {n} is not supported: this flow reads `policy: 1`"),
                );
                None
            }
            _ => {
                self.error(
                    node.span,
                    format!("`policy` must be the integer 1, found {}", node.type_name()),
                );
                None
            }
        }
    }

    fn template(&mut self, node: &Node) -> Option<String> {
        let Some(id) = node.as_str() else {
            self.error(
                node.span,
                format!(
                    "`template` must be a template id (a string), found {}",
                    node.type_name()
                ),
            );
            return None;
        };
        if !valid_template_id(id) {
            self.error(node.span, format!("`{id}` is not a template id"))
                .help = Some(
                "a template id is `<namespace>/<name>`, each of lowercase letters, digits and `-`, e.g. `acme/secure-release`"
                    .into(),
            );
            return None;
        }
        Some(id.to_owned())
    }

    fn versions(&mut self, node: &Node) -> Option<semver::VersionReq> {
        // `versions: 1` and `versions: 1.2` are numbers to YAML: take the text as written.
        let text = match scalar(node) {
            Some((Scalar::String(_) | Scalar::Int(_) | Scalar::Float(_), text)) => text,
            _ => {
                self.error(
                    node.span,
                    format!(
                        "`versions` must be a semver requirement (a string), found {}",
                        node.type_name()
                    ),
                );
                return None;
            }
        };
        match semver::VersionReq::parse(text.trim()) {
            Ok(req) => Some(req),
            Err(e) => {
                self.error(
                    node.span,
                    format!("`{text}` is not a semver requirement: {e}"),
                )
                .help = Some(
                    "for example `1.2.3` (= `^1.2.3`), `^1`, `~1.2`, `>=1.2, <2`, `=1.2.3` or `*`"
                        .into(),
                );
                None
            }
        }
    }

    fn approved_plugins(&mut self, node: &Node) -> BTreeMap<String, Vec<String>> {
        let mut approved = BTreeMap::new();
        let Some(entries) = node.as_mapping() else {
            self.error(
                node.span,
                format!(
                    "`approved-plugins` must be a mapping of plugin names to lists of digests, found {}",
                    node.type_name()
                ),
            );
            return approved;
        };
        for Entry { key, value } in entries {
            let Some(name) = self.plugin_name(key) else {
                continue;
            };
            let NodeKind::Sequence(items) = &value.kind else {
                self.error(
                    value.span,
                    format!(
                        "the digests approved for `{name}` must be a list (`[sha256:<64 hex digits>, ...]`), found {}",
                        value.type_name()
                    ),
                );
                continue;
            };
            if items.is_empty() {
                self.error(value.span, format!("no digest is approved for `{name}`"))
                    .help =
                    Some("list the digests allowed, or remove the entry to allow any".into());
                continue;
            }
            let mut digests = Vec::new();
            for item in items {
                match item.as_str().map(|text| (text, normalize_digest(text))) {
                    Some((_, Some(digest))) => digests.push(digest),
                    Some((text, None)) => {
                        self.error(item.span, format!("`{text}` is not a sha256 digest"))
                            .help = Some(
                            "write `sha256:` (optional) followed by 64 hexadecimal digits".into(),
                        );
                    }
                    None => {
                        self.error(
                            item.span,
                            format!("a digest must be a string, found {}", item.type_name()),
                        );
                    }
                }
            }
            approved.insert(name, digests);
        }
        approved
    }

    fn plugin_names(&mut self, node: &Node, what: &str) -> Vec<String> {
        let NodeKind::Sequence(items) = &node.kind else {
            self.error(
                node.span,
                format!(
                    "{what} must be a list of plugin names, found {}",
                    node.type_name()
                ),
            );
            return Vec::new();
        };
        items.iter().filter_map(|n| self.plugin_name(n)).collect()
    }

    fn plugin_name(&mut self, node: &Node) -> Option<String> {
        match &node.kind {
            NodeKind::Scalar {
                value: Scalar::String(name),
                ..
            } if valid_plugin_name(name) => Some(name.clone()),
            NodeKind::Scalar {
                value: Scalar::String(name),
                ..
            } => {
                self.error(node.span, format!("`{name}` is not a plugin name"))
                    .help = Some(
                    "a plugin name as `uses:` gives it, without version or digest (`scan`, not `scan@1`), or an interface name"
                        .into(),
                );
                None
            }
            _ => {
                self.error(
                    node.span,
                    format!("a plugin name must be a string, found {}", node.type_name()),
                );
                None
            }
        }
    }
}

/// The value and text of a scalar node.
fn scalar(node: &Node) -> Option<(&Scalar, &str)> {
    match &node.kind {
        NodeKind::Scalar { value, text } => Some((value, text)),
        _ => None,
    }
}

fn did_you_mean(word: &str, candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// `<namespace>/<name>`, each of lowercase ASCII letters, digits and `-`.
fn valid_template_id(id: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    matches!(id.split_once('/'), Some((ns, name)) if part(ns) && part(name))
}

fn valid_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('@')
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `sha256:<64 hex>` or `<64 hex>` -> the lower-case hex.
fn normalize_digest(text: &str) -> Option<String> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// What a run's statements record about one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// The step's id.
    pub id: String,
    /// The plugin reference as recorded (`scan`, `scan@sha256:<hex>`, `./plugins/x.wasm`).
    pub plugin: String,
    /// The hex sha256 of the plugin that ran (or would have run).
    pub plugin_sha256: String,
    /// How it ended.
    pub outcome: Outcome,
    /// When it started, unix milliseconds (its end, when it did not run).
    pub started_ms: u64,
    /// When it ended, unix milliseconds.
    pub finished_ms: u64,
    /// The steps it needs (directly).
    pub needs: Vec<String>,
    /// Where it came from, when the pipeline was resolved from templates.
    pub template: Option<TemplateOrigin>,
}

impl StepRecord {
    /// The plugin's name: the recorded reference without `@version` or `@sha256:` pin;
    /// for a `.wasm` file, its file name without `.wasm`.
    pub fn plugin_name(&self) -> &str {
        let reference = self.plugin.as_str();
        let is_file = reference.contains('/') || reference.contains(".wasm");
        if is_file {
            let path = reference
                .rsplit_once("@sha256:")
                .map_or(reference, |(path, _)| path);
            let file = path.rsplit('/').next().unwrap_or(path);
            file.strip_suffix(".wasm").unwrap_or(file)
        } else {
            reference
                .split_once('@')
                .map_or(reference, |(name, _)| name)
        }
    }

    /// Whether the policy's plugin name `name` names this step: its plugin's name or the
    /// interface it implements.
    pub fn is_named(&self, name: &str) -> bool {
        self.plugin_name() == name
            || self.template.as_ref().and_then(|t| t.interface.as_deref()) == Some(name)
    }

    fn describe(&self) -> String {
        format!(
            "`{}` (plugin {} sha256:{})",
            self.id, self.plugin, self.plugin_sha256
        )
    }
}

/// What a run's statements record, as [`evaluate`] reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFacts {
    /// The run's id.
    pub run_id: String,
    /// Its steps, in the order given.
    pub steps: Vec<StepRecord>,
}

impl RunFacts {
    /// Reads the run from its steps' statements (step id, payload), which the caller
    /// verified. Errors name the step whose statement lacks something.
    pub fn from_statements<'a>(
        statements: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<RunFacts, String> {
        let mut facts = RunFacts::default();
        for (step, payload) in statements {
            let fail = |what: &str| format!("the statement of step `{step}` {what}");
            let statement: serde_json::Value =
                serde_json::from_slice(payload).map_err(|e| fail(&format!("is not JSON: {e}")))?;
            let build = &statement["predicate"]["buildDefinition"];
            let details = &statement["predicate"]["runDetails"];
            let internal = &build["internalParameters"];
            let text = |v: &serde_json::Value, what: &str| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| fail(&format!("records no {what}")))
            };
            let id = text(&build["externalParameters"]["step"], "step id")?;
            if id != step {
                return Err(fail(&format!("is about step `{id}`")));
            }
            let run_id = text(&internal["runId"], "run id")?;
            if facts.steps.is_empty() {
                facts.run_id = run_id;
            } else if run_id != facts.run_id {
                return Err(fail(&format!(
                    "belongs to run {run_id}, not {}",
                    facts.run_id
                )));
            }
            // The plugin is the first resolved dependency.
            let plugin = &build["resolvedDependencies"][0];
            let outcome = details["byproducts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|b| b["name"] == "outcome")
                .map(|b| b["annotations"]["outcome"].clone())
                .ok_or_else(|| fail("records no outcome"))?;
            let outcome: Outcome = serde_json::from_value(outcome)
                .map_err(|e| fail(&format!("records an unknown outcome: {e}")))?;
            let time = |key: &str| {
                details["metadata"][key]
                    .as_str()
                    .and_then(flow_provenance::parse_rfc3339_millis)
                    .ok_or_else(|| fail(&format!("records no valid {key}")))
            };
            let needs = internal["needs"]
                .as_array()
                .ok_or_else(|| fail("records no needs"))?
                .iter()
                .map(|n| text(n, "needs"))
                .collect::<Result<Vec<_>, _>>()?;
            let template = match internal.get("template") {
                None => None,
                Some(value) => Some(
                    serde_json::from_value::<TemplateOrigin>(value.clone())
                        .map_err(|e| fail(&format!("records an invalid template origin: {e}")))?,
                ),
            };
            facts.steps.push(StepRecord {
                id,
                plugin: text(&plugin["uri"], "plugin")?,
                plugin_sha256: text(&plugin["digest"]["sha256"], "plugin digest")?,
                outcome,
                started_ms: time("startedOn")?,
                finished_ms: time("finishedOn")?,
                needs,
                template,
            });
        }
        Ok(facts)
    }
}

/// Finds templates by digest: in the directories given (`--template-dir`), else in the
/// template cache. Every directory's content is hashed, so a template is only ever read
/// from a directory whose digest is the one the run recorded.
#[derive(Debug, Clone, Default)]
pub struct TemplateLocator {
    cache_dir: Option<PathBuf>,
    dirs: Vec<(PathBuf, String)>,
}

impl TemplateLocator {
    /// A locator over the template cache under `cache_dir` (`<cache_dir>/templates/
    /// <sha256>/`) and the template directories `dirs`, whose digests are computed now
    /// (an error names a directory that cannot be hashed).
    pub fn new(cache_dir: Option<PathBuf>, dirs: &[PathBuf]) -> Result<Self, String> {
        let mut hashed = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let digest = template_digest(dir)
                .map_err(|e| format!("cannot use the template directory {}: {e}", dir.display()))?;
            hashed.push((dir.clone(), digest));
        }
        Ok(TemplateLocator {
            cache_dir,
            dirs: hashed,
        })
    }

    /// The directory holding `template` (with its digest checked) and its declaration.
    pub fn find(&self, template: &TemplateRef) -> Result<(PathBuf, TemplateDeclaration), String> {
        let name = template.name();
        let sha256 = &template.sha256;
        if sha256.len() != 64
            || !sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "template {name}: the recorded digest `{sha256}` is not a sha256"
            ));
        }
        let dir = match self.dirs.iter().find(|(_, d)| d == sha256) {
            Some((dir, _)) => dir.clone(),
            None => {
                let cached = self
                    .cache_dir
                    .as_deref()
                    .map(|root| cached_template_dir(root, sha256));
                let Some(cached) = cached.filter(|dir| dir.exists()) else {
                    let looked = match &self.cache_dir {
                        Some(root) => format!(
                            "it is not in the template cache ({})",
                            cached_template_dir(root, sha256).display()
                        ),
                        None => "there is no template cache (no --cache-dir, FLOW_CACHE_DIR or home directory)".into(),
                    };
                    let dirs = if self.dirs.is_empty() {
                        "no --template-dir was given".to_owned()
                    } else {
                        format!("no --template-dir of the {} given has it", self.dirs.len())
                    };
                    return Err(format!(
                        "template {name} (sha256 {sha256}) is missing: {looked} and {dirs}; give its directory with --template-dir"
                    ));
                };
                let found = template_digest(&cached)
                    .map_err(|e| format!("template {name}: the cached copy: {e}"))?;
                if &found != sha256 {
                    return Err(format!(
                        "template {name}: the cached copy {} has sha256 {found}, not the recorded {sha256} (the cache was changed); give the template with --template-dir",
                        cached.display()
                    ));
                }
                cached
            }
        };
        let path = dir.join(TEMPLATE_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("template {name}: {}: {e}", path.display()))?;
        let declaration =
            read_template_declaration(&SourceFile::new(path.display().to_string(), text))
                .map_err(|d| format!("template {name}: {}", d.render().trim_end()))?;
        if declaration.id != template.id || declaration.version.to_string() != template.version {
            return Err(format!(
                "template {name}: {} declares {}@{}, not {name}",
                path.display(),
                declaration.id,
                declaration.version,
            ));
        }
        Ok((dir, declaration))
    }
}

/// The rule a [`Check`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The run was resolved from the policy's template, at an accepted version.
    Template,
    /// The declaration of a template of the chain was found, with its digest.
    Declaration,
    /// A sealed step is recorded as such and succeeded.
    Sealed,
    /// A sealed step ran an approved plugin digest.
    Approved,
    /// A required plugin ran in a sealed step that succeeded.
    Required,
    /// A `before` step started after the sealed steps finished.
    Before,
}

impl Rule {
    /// A word for the rule: `template`, `declared`, `sealed`, `approved`, `required`,
    /// `before`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Template => "template",
            Rule::Declaration => "declared",
            Rule::Sealed => "sealed",
            Rule::Approved => "approved",
            Rule::Required => "required",
            Rule::Before => "before",
        }
    }
}

/// One rule checked for one step (or for the run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Whether it holds.
    pub ok: bool,
    /// The rule.
    pub rule: Rule,
    /// The step concerned, if any.
    pub step: Option<String>,
    /// What holds or not, naming the step, plugin and digest.
    pub message: String,
}

/// `ok    sealed    ...` or `FAIL  sealed    ...`.
impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.ok { "ok" } else { "FAIL" };
        write!(f, "{mark:<5} {:<9} {}", self.rule.as_str(), self.message)
    }
}

/// The result of [`evaluate`]: the policy holds when no check failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Every check, in the order made.
    pub checks: Vec<Check>,
}

impl Evaluation {
    /// Whether the policy holds.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// How many checks failed.
    pub fn failures(&self) -> usize {
        self.checks.iter().filter(|c| !c.ok).count()
    }

    fn push(&mut self, ok: bool, rule: Rule, step: Option<&str>, message: String) {
        self.checks.push(Check {
            ok,
            rule,
            step: step.map(str::to_owned),
            message,
        });
    }
}

/// Checks `run` against `policy`. `sealed_steps` gives the ids of the steps a template of
/// the run's chain declares sealed, read from the template itself (see
/// [`TemplateLocator`]), or why they cannot be known.
///
/// The policy holds when the run's steps all record the same template chain, holding
/// `policy.template` at a version `policy.versions` accepts; every sealed step of that
/// template and of the templates above it has a record, recorded as declared by one of
/// these templates and sealed, that succeeded, with one of the digests `approved-plugins` lists
/// for its plugin; every plugin of `require` was run by such a sealed step that succeeded;
/// and every step of a `before` plugin that ran started after each sealed
/// step (that is not itself of a `before` plugin) finished: at a later millisecond, or at
/// the same one when it needs that step, directly or not.
pub fn evaluate(
    policy: &Policy,
    run: &RunFacts,
    sealed_steps: &mut dyn FnMut(&TemplateRef) -> Result<Vec<String>, String>,
) -> Evaluation {
    let mut eval = Evaluation::default();
    let Some((chain, index)) = check_template(policy, run, &mut eval) else {
        return eval;
    };

    // The sealed steps of the policy's template and of every template above it.
    let mut sealed: Vec<(String, &TemplateRef)> = Vec::new();
    for template in &chain[index..] {
        match sealed_steps(template) {
            Ok(ids) => {
                let list = if ids.is_empty() {
                    "none".to_owned()
                } else {
                    ids.join(", ")
                };
                eval.push(
                    true,
                    Rule::Declaration,
                    None,
                    format!(
                        "template {} (sha256 {}) seals steps: {list}",
                        template.name(),
                        template.sha256
                    ),
                );
                for id in ids {
                    if !sealed.iter().any(|(s, _)| *s == id) {
                        sealed.push((id, template));
                    }
                }
            }
            Err(reason) => eval.push(false, Rule::Declaration, None, reason),
        }
    }

    let above: Vec<String> = chain[index..].iter().map(TemplateRef::name).collect();
    let by_id: HashMap<&str, &StepRecord> = run.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut recorded: Vec<&StepRecord> = Vec::new();
    for (id, template) in &sealed {
        let template_name = template.name();
        let Some(step) = by_id.get(id.as_str()).copied() else {
            eval.push(
                false,
                Rule::Sealed,
                Some(id),
                format!(
                    "sealed step `{id}` of {template_name} has no record in run {}",
                    run.run_id
                ),
            );
            continue;
        };
        recorded.push(step);
        let origin = step.template.as_ref();
        let declared_by = origin.and_then(|o| o.declared_by.as_deref());
        // Declared by a template at or above the policy's: a template may seal a step it
        // inherits.
        let from_above = declared_by.is_some_and(|by| above.iter().any(|t| *t == by));
        if !from_above || !origin.is_some_and(|o| o.sealed) {
            let recorded_as = match declared_by {
                Some(by) => format!("declared by {by}"),
                None => "declared by the pipeline file".to_owned(),
            };
            let sealed_word = if origin.is_some_and(|o| o.sealed) {
                "sealed"
            } else {
                "not sealed"
            };
            eval.push(
                false,
                Rule::Sealed,
                Some(id),
                format!(
                    "step {} is recorded as {recorded_as} and {sealed_word}, but {template_name} declares it sealed",
                    step.describe()
                ),
            );
        } else if step.outcome == Outcome::Succeeded {
            eval.push(
                true,
                Rule::Sealed,
                Some(id),
                format!(
                    "sealed step {} of {template_name} succeeded",
                    step.describe()
                ),
            );
        } else {
            eval.push(
                false,
                Rule::Sealed,
                Some(id),
                format!(
                    "sealed step {} of {template_name} did not succeed: {}",
                    step.describe(),
                    step.outcome
                ),
            );
        }
        for (name, digests) in &policy.approved_plugins {
            if !step.is_named(name) {
                continue;
            }
            let ok = digests.contains(&step.plugin_sha256);
            let message = if ok {
                format!("sealed step {} runs an approved `{name}`", step.describe())
            } else {
                let list: Vec<String> = digests.iter().map(|d| format!("sha256:{d}")).collect();
                format!(
                    "sealed step {} runs a `{name}` that is not approved (approved: {})",
                    step.describe(),
                    list.join(", ")
                )
            };
            eval.push(ok, Rule::Approved, Some(id), message);
        }
    }

    // Required plugins: run by a sealed step that is recorded as such and succeeded.
    for name in &policy.require {
        let runs: Vec<&StepRecord> = recorded
            .iter()
            .copied()
            .filter(|s| s.is_named(name))
            .collect();
        let good = runs.iter().find(|s| {
            s.outcome == Outcome::Succeeded && s.template.as_ref().is_some_and(|o| o.sealed)
        });
        let (ok, message) = match (good, runs.first()) {
            (Some(step), _) => (
                true,
                format!("`{name}` ran in sealed step {}", step.describe()),
            ),
            (None, Some(step)) => (
                false,
                format!(
                    "`{name}` is required, but sealed step {} did not run it to success",
                    step.describe()
                ),
            ),
            (None, None) => (
                false,
                format!(
                    "`{name}` is required, but no sealed step of {} runs it in run {}",
                    chain[index].name(),
                    run.run_id
                ),
            ),
        };
        eval.push(
            ok,
            Rule::Required,
            good.or(runs.first()).map(|s| s.id.as_str()),
            message,
        );
    }

    // Steps of `before` plugins start after every sealed step (that is not one of them).
    let is_before = |s: &StepRecord| policy.before.iter().any(|name| s.is_named(name));
    let gates: Vec<&StepRecord> = recorded.iter().copied().filter(|s| !is_before(s)).collect();
    let needs: HashMap<&str, &[String]> = run
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.needs.as_slice()))
        .collect();
    let mut any = false;
    for step in run.steps.iter().filter(|s| is_before(s)) {
        any = true;
        if step.outcome == Outcome::Skipped {
            eval.push(
                true,
                Rule::Before,
                Some(&step.id),
                format!("step {} did not run", step.describe()),
            );
            continue;
        }
        let mut held = true;
        for gate in &gates {
            let needed = needs_transitively(&needs, &step.id, &gate.id);
            let problem = if step.started_ms > gate.finished_ms {
                None
            } else if step.started_ms == gate.finished_ms {
                (!needed).then(|| {
                    format!(
                        "step {} started in the millisecond sealed step `{}` finished ({}) and does not need it: its order cannot be proven",
                        step.describe(),
                        gate.id,
                        gate.finished_ms
                    )
                })
            } else {
                Some(format!(
                    "step {} started at {}, before sealed step `{}` finished at {}",
                    step.describe(),
                    step.started_ms,
                    gate.id,
                    gate.finished_ms
                ))
            };
            if let Some(problem) = problem {
                held = false;
                eval.push(false, Rule::Before, Some(&step.id), problem);
            }
        }
        if held {
            eval.push(
                true,
                Rule::Before,
                Some(&step.id),
                format!(
                    "step {} started after the {} sealed step(s) before it finished",
                    step.describe(),
                    gates.len()
                ),
            );
        }
    }
    if !any && !policy.before.is_empty() {
        eval.push(
            true,
            Rule::Before,
            None,
            format!(
                "no step of run {} runs {}",
                run.run_id,
                policy
                    .before
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    eval
}

/// The run's template chain and the index of the policy's template in it, after checking
/// that every step records that chain and that the template's version is accepted.
fn check_template<'r>(
    policy: &Policy,
    run: &'r RunFacts,
    eval: &mut Evaluation,
) -> Option<(&'r [TemplateRef], usize)> {
    let not_resolved = |detail: String| {
        format!(
            "run {} was not resolved from template {}{detail}",
            run.run_id, policy.template
        )
    };
    let mut chain: Option<(&str, &[TemplateRef])> = None;
    let mut without = Vec::new();
    for step in &run.steps {
        let Some(origin) = &step.template else {
            without.push(format!("`{}`", step.id));
            continue;
        };
        match chain {
            None => chain = Some((&step.id, &origin.chain)),
            Some((first, theirs)) if theirs != origin.chain.as_slice() => {
                eval.push(
                    false,
                    Rule::Template,
                    Some(&step.id),
                    format!(
                        "steps `{first}` and `{}` of run {} record different template chains ({} and {})",
                        step.id,
                        run.run_id,
                        chain_names(theirs),
                        chain_names(&origin.chain)
                    ),
                );
                return None;
            }
            Some(_) => {}
        }
    }
    let Some((_, chain)) = chain.filter(|(_, c)| !c.is_empty()) else {
        eval.push(
            false,
            Rule::Template,
            None,
            not_resolved(": its steps record no template chain".into()),
        );
        return None;
    };
    if !without.is_empty() {
        eval.push(
            false,
            Rule::Template,
            None,
            not_resolved(format!(
                " alone: steps {} record no template chain",
                without.join(", ")
            )),
        );
        return None;
    }
    let Some(index) = chain.iter().position(|t| t.id == policy.template) else {
        eval.push(
            false,
            Rule::Template,
            None,
            not_resolved(format!(": its template chain is {}", chain_names(chain))),
        );
        return None;
    };
    let template = &chain[index];
    if let Some(req) = &policy.versions {
        let accepted = match semver::Version::parse(&template.version) {
            Ok(version) => req.matches(&version),
            Err(e) => {
                eval.push(
                    false,
                    Rule::Template,
                    None,
                    format!(
                        "run {} records template {} at version `{}`, which is not semver: {e}",
                        run.run_id, template.id, template.version
                    ),
                );
                return None;
            }
        };
        if !accepted {
            eval.push(
                false,
                Rule::Template,
                None,
                not_resolved(format!(
                    " at versions {req}: it was resolved from {} (sha256 {})",
                    template.name(),
                    template.sha256
                )),
            );
            return None;
        }
    }
    eval.push(
        true,
        Rule::Template,
        None,
        format!(
            "run {} was resolved from template {} (sha256 {})",
            run.run_id,
            template.name(),
            template.sha256
        ),
    );
    Some((chain, index))
}

fn chain_names(chain: &[TemplateRef]) -> String {
    chain
        .iter()
        .map(TemplateRef::name)
        .collect::<Vec<_>>()
        .join(" extends ")
}

/// Whether step `from` needs step `to`, directly or through other steps.
fn needs_transitively(needs: &HashMap<&str, &[String]>, from: &str, to: &str) -> bool {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stack = vec![from];
    while let Some(step) = stack.pop() {
        for needed in needs.get(step).copied().unwrap_or_default() {
            if needed == to {
                return true;
            }
            if seen.insert(needed.as_str()) {
                stack.push(needed.as_str());
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCAN: &str = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c";
    const OTHER: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f";

    fn parse(text: &str) -> Result<Policy, Diagnostics> {
        Policy::parse(&SourceFile::new("policy.yaml", text))
    }

    fn errors(text: &str) -> String {
        parse(text).expect_err("invalid").render()
    }

    #[test]
    fn reads_a_policy() {
        let policy = parse(&format!(
            "policy: 1\ntemplate: acme/secure-release\nversions: ^1\napproved-plugins:\n  scan: [sha256:{SCAN}, {}]\nrequire: [scan, sign]\nbefore: [publish, upload]\n",
            OTHER.to_ascii_uppercase()
        ))
        .expect("valid");
        assert_eq!(policy.template, "acme/secure-release");
        assert_eq!(
            policy.versions,
            Some(semver::VersionReq::parse("^1").expect("req"))
        );
        assert_eq!(
            policy.approved_plugins,
            [("scan".to_owned(), vec![SCAN.to_owned(), OTHER.to_owned()])]
                .into_iter()
                .collect()
        );
        assert_eq!(policy.require, ["scan", "sign"]);
        assert_eq!(policy.before, ["publish", "upload"]);

        let minimal = parse("policy: 1\ntemplate: acme/x\n").expect("valid");
        assert_eq!(minimal.versions, None);
        assert!(
            minimal.approved_plugins.is_empty()
                && minimal.require.is_empty()
                && minimal.before.is_empty()
        );
        // A bare number is a requirement, as written.
        let numeric = parse("policy: 1\ntemplate: acme/x\nversions: 1.2\n").expect("valid");
        assert_eq!(
            numeric.versions,
            Some(semver::VersionReq::parse("1.2").expect("req"))
        );
    }

    #[test]
    fn reports_every_problem_at_its_place() {
        let text = errors(
            "policy: 2\ntemplate: Acme/x\nversions: \">>1\"\naproved-plugins: {}\napproved-plugins:\n  scan: [sha256:abc, 12]\n  \"scan@1\": [x]\n  sign: []\nbefore: publish\n",
        );
        for expected in [
            "policy.yaml:1:9: error: policy format 2 is not supported",
            "policy.yaml:2:11: error: `Acme/x` is not a template id",
            "policy.yaml:3:11: error: `>>1` is not a semver requirement",
            "policy.yaml:4:1: error: unknown key `aproved-plugins` in the policy",
            "did you mean `approved-plugins`?",
            "policy.yaml:6:10: error: `sha256:abc` is not a sha256 digest",
            "policy.yaml:6:22: error: a digest must be a string, found an integer",
            "policy.yaml:7:3: error: `scan@1` is not a plugin name",
            "policy.yaml:8:9: error: no digest is approved for `sign`",
            "policy.yaml:9:9: error: `before` must be a list of plugin names, found a string",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn truncated_and_mangled_policies_never_panic() {
        let text = format!(
            "policy: 1\ntemplate: acme/secure-release\nversions: \"^1, <3\"\napproved-plugins:\n  scan: [sha256:{SCAN}]\nrequire: [scan, sign]\nbefore: [publish]\n"
        );
        let cuts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        for &cut in &cuts {
            let _ = parse(&text[..cut]).map_err(|d| d.render());
            for fragment in ["[", "{", ":", "- ", "\"", "\t", "&a ", "*a", "é", "\n  "] {
                let mangled = format!("{}{fragment}{}", &text[..cut], &text[cut..]);
                let _ = parse(&mangled).map_err(|d| d.render());
            }
        }
    }

    #[test]
    fn refuses_files_that_are_not_policies() {
        assert!(errors("").contains("policy.yaml:1:1: error: the policy file is empty"));
        assert!(errors("- a\n").contains("a policy must be a mapping, found a list"));
        let missing = errors("versions: ^1\n");
        assert!(missing.contains("the policy has no `policy` key"));
        assert!(missing.contains("the policy has no `template` key"));
        assert!(
            errors("policy: one\ntemplate: acme/x\n").contains("`policy` must be the integer 1")
        );
        assert!(errors("policy: 1\ntemplate: [acme/x]\n").contains("policy.yaml:2:11"));
        assert!(
            errors("policy: 1\ntemplate: acme/x\nversions: true\n").contains("policy.yaml:3:11")
        );
        assert!(
            errors("policy: 1\ntemplate: acme/x\napproved-plugins: [scan]\n")
                .contains("policy.yaml:3:19")
        );
        assert!(
            errors("policy: 1\ntemplate: acme/x\napproved-plugins: { scan: x }\n")
                .contains("must be a list")
        );
        // Duplicate keys, from the YAML reader.
        assert!(
            errors("policy: 1\ntemplate: acme/x\ntemplate: acme/y\n").contains("policy.yaml:3:1")
        );
        // YAML syntax.
        assert!(errors("policy: [1\n").contains("policy.yaml:"));
    }

    fn chain() -> Vec<TemplateRef> {
        vec![
            TemplateRef {
                id: "acme/secure-release".into(),
                version: "1.2.0".into(),
                sha256: "aa".repeat(32),
            },
            TemplateRef {
                id: "acme/base".into(),
                version: "2.0.0".into(),
                sha256: "bb".repeat(32),
            },
        ]
    }

    fn step(
        id: &str,
        plugin: &str,
        declared_by: Option<&str>,
        sealed: bool,
        times: (u64, u64),
        needs: &[&str],
    ) -> StepRecord {
        StepRecord {
            id: id.into(),
            plugin: plugin.into(),
            plugin_sha256: if plugin == "scan" {
                SCAN.into()
            } else {
                OTHER.into()
            },
            outcome: Outcome::Succeeded,
            started_ms: times.0,
            finished_ms: times.1,
            needs: needs.iter().map(|n| (*n).to_owned()).collect(),
            template: Some(TemplateOrigin {
                chain: chain(),
                declared_by: declared_by.map(str::to_owned),
                interface: None,
                sealed,
                slot: None,
            }),
        }
    }

    /// checkout (sealed by acme/base) -> build (the repository's) -> scan, sign (sealed by
    /// acme/secure-release) -> publish.
    fn run() -> RunFacts {
        let release = Some("acme/secure-release@1.2.0");
        RunFacts {
            run_id: "r1".into(),
            steps: vec![
                step(
                    "checkout",
                    "checkout",
                    Some("acme/base@2.0.0"),
                    true,
                    (0, 10),
                    &[],
                ),
                step("build", "build", None, false, (10, 20), &["checkout"]),
                step("scan", "scan", release, true, (20, 30), &["build"]),
                step("sign", "sign", release, true, (30, 40), &["scan"]),
                step("publish", "publish", release, false, (41, 50), &["sign"]),
            ],
        }
    }

    fn policy() -> Policy {
        parse(&format!(
            "policy: 1\ntemplate: acme/secure-release\nversions: ^1\napproved-plugins: {{ scan: [sha256:{SCAN}] }}\nbefore: [publish]\n"
        ))
        .expect("valid")
    }

    fn sealed(template: &TemplateRef) -> Result<Vec<String>, String> {
        match template.id.as_str() {
            "acme/secure-release" => Ok(vec!["scan".into(), "sign".into()]),
            "acme/base" => Ok(vec!["checkout".into()]),
            other => Err(format!("unexpected template {other}")),
        }
    }

    fn failures(evaluation: &Evaluation) -> Vec<String> {
        evaluation
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.message.clone())
            .collect()
    }

    #[test]
    fn a_conforming_run_passes_every_check() {
        let evaluation = evaluate(&policy(), &run(), &mut sealed);
        assert!(evaluation.passed(), "{:#?}", evaluation.checks);
        let rules: Vec<(Rule, Option<&str>)> = evaluation
            .checks
            .iter()
            .map(|c| (c.rule, c.step.as_deref()))
            .collect();
        assert_eq!(
            rules,
            [
                (Rule::Template, None),
                (Rule::Declaration, None),
                (Rule::Declaration, None),
                (Rule::Sealed, Some("scan")),
                (Rule::Approved, Some("scan")),
                (Rule::Sealed, Some("sign")),
                (Rule::Sealed, Some("checkout")),
                (Rule::Before, Some("publish")),
            ]
        );
        let shown = evaluation.checks[4].to_string();
        assert!(shown.starts_with("ok    approved  "), "{shown}");
        assert!(shown.contains(&format!("sha256:{SCAN}")), "{shown}");
    }

    #[test]
    fn the_run_must_come_from_the_template_at_an_accepted_version() {
        let mut other = policy();
        other.template = "acme/other".into();
        let evaluation = evaluate(&other, &run(), &mut sealed);
        assert_eq!(
            failures(&evaluation),
            [
                "run r1 was not resolved from template acme/other: its template chain is acme/secure-release@1.2.0 extends acme/base@2.0.0"
            ]
        );

        let mut newer = policy();
        newer.versions = Some(semver::VersionReq::parse("^2").expect("req"));
        let failed = failures(&evaluate(&newer, &run(), &mut sealed));
        assert_eq!(failed.len(), 1);
        assert!(failed[0].starts_with("run r1 was not resolved from template acme/secure-release at versions ^2: it was resolved from acme/secure-release@1.2.0"), "{failed:?}");

        // A parent template of the chain is a template the run came from.
        let mut base = policy();
        base.template = "acme/base".into();
        base.versions = None;
        let evaluation = evaluate(&base, &run(), &mut sealed);
        assert!(evaluation.passed(), "{:#?}", evaluation.checks);
        // ...whose sealed steps are its own only.
        assert_eq!(
            evaluation
                .checks
                .iter()
                .filter(|c| c.rule == Rule::Sealed)
                .count(),
            1
        );

        let mut plain = run();
        for step in &mut plain.steps {
            step.template = None;
        }
        assert_eq!(
            failures(&evaluate(&policy(), &plain, &mut sealed)),
            [
                "run r1 was not resolved from template acme/secure-release: its steps record no template chain"
            ]
        );
        let mut mixed = run();
        mixed.steps[1].template = None;
        assert_eq!(
            failures(&evaluate(&policy(), &mixed, &mut sealed)),
            [
                "run r1 was not resolved from template acme/secure-release alone: steps `build` record no template chain"
            ]
        );
        let mut differing = run();
        if let Some(t) = &mut differing.steps[3].template {
            t.chain[0].sha256 = "cc".repeat(32);
        }
        let failed = failures(&evaluate(&policy(), &differing, &mut sealed));
        assert_eq!(failed.len(), 1);
        assert!(
            failed[0].contains("record different template chains"),
            "{failed:?}"
        );
        assert!(
            failures(&evaluate(&policy(), &RunFacts::default(), &mut sealed))[0]
                .contains("record no template chain")
        );
    }

    #[test]
    fn sealed_steps_must_be_recorded_as_such_and_succeed() {
        let mut failed = run();
        failed.steps[3].outcome = Outcome::Failed;
        assert_eq!(
            failures(&evaluate(&policy(), &failed, &mut sealed)),
            [format!(
                "sealed step `sign` (plugin sign sha256:{OTHER}) of acme/secure-release@1.2.0 did not succeed: failed"
            )]
        );

        let mut missing = run();
        missing.steps.remove(0);
        assert_eq!(
            failures(&evaluate(&policy(), &missing, &mut sealed)),
            ["sealed step `checkout` of acme/base@2.0.0 has no record in run r1"]
        );

        let mut unsealed = run();
        if let Some(t) = &mut unsealed.steps[2].template {
            t.sealed = false;
            t.declared_by = None;
        }
        assert_eq!(
            failures(&evaluate(&policy(), &unsealed, &mut sealed)),
            [format!(
                "step `scan` (plugin scan sha256:{SCAN}) is recorded as declared by the pipeline file and not sealed, but acme/secure-release@1.2.0 declares it sealed"
            )]
        );
    }

    #[test]
    fn required_plugins_must_run_in_sealed_steps_that_succeed() {
        let mut strict = policy();
        strict.require = vec!["scan".into(), "sign".into()];
        let evaluation = evaluate(&strict, &run(), &mut sealed);
        assert!(evaluation.passed(), "{:#?}", evaluation.checks);
        let required: Vec<&str> = evaluation
            .checks
            .iter()
            .filter(|c| c.rule == Rule::Required)
            .map(|c| c.message.as_str())
            .collect();
        assert_eq!(
            required,
            [
                format!("`scan` ran in sealed step `scan` (plugin scan sha256:{SCAN})"),
                format!("`sign` ran in sealed step `sign` (plugin sign sha256:{OTHER})"),
            ]
        );

        // A template version that no longer seals `scan`: the run may skip it, and the
        // policy's own list still catches it.
        let unsealing = |t: &TemplateRef| match t.id.as_str() {
            "acme/secure-release" => Ok(vec!["sign".into()]),
            _ => sealed(t),
        };
        assert_eq!(
            failures(&evaluate(&strict, &run(), &mut { unsealing })),
            [
                "`scan` is required, but no sealed step of acme/secure-release@1.2.0 runs it in run r1"
            ]
        );

        let mut failed = run();
        failed.steps[3].outcome = Outcome::Failed;
        let failed = failures(&evaluate(&strict, &failed, &mut sealed));
        assert!(
            failed.contains(&format!(
                "`sign` is required, but sealed step `sign` (plugin sign sha256:{OTHER}) did not run it to success"
            )),
            "{failed:?}"
        );
    }

    #[test]
    fn sealed_steps_must_run_approved_plugins() {
        let mut swapped = run();
        swapped.steps[2].plugin_sha256 = OTHER.into();
        assert_eq!(
            failures(&evaluate(&policy(), &swapped, &mut sealed)),
            [format!(
                "sealed step `scan` (plugin scan sha256:{OTHER}) runs a `scan` that is not approved (approved: sha256:{SCAN})"
            )]
        );

        // By the plugin's name however it is referenced, or by the interface it implements.
        for (plugin, interface) in [
            (format!("scan@sha256:{OTHER}"), None),
            ("./plugins/scan.wasm".to_owned(), None),
            ("grype".to_owned(), Some("scan")),
        ] {
            let mut run = swapped.clone();
            run.steps[2].plugin = plugin.clone();
            if let Some(t) = &mut run.steps[2].template {
                t.interface = interface.map(str::to_owned);
            }
            let evaluation = evaluate(&policy(), &run, &mut sealed);
            assert_eq!(
                evaluation.failures(),
                1,
                "{plugin}: {:#?}",
                evaluation.checks
            );
            assert!(
                evaluation
                    .checks
                    .iter()
                    .any(|c| c.rule == Rule::Approved && !c.ok)
            );
        }
        // A plugin the policy does not list may have any digest.
        let mut unlisted = run();
        unlisted.steps[2].plugin = "grype".into();
        unlisted.steps[2].plugin_sha256 = OTHER.into();
        assert!(evaluate(&policy(), &unlisted, &mut sealed).passed());
    }

    #[test]
    fn before_steps_start_after_every_sealed_step_finished() {
        let mut early = run();
        early.steps[4].started_ms = 35;
        early.steps[4].needs = vec!["scan".into()];
        assert_eq!(
            failures(&evaluate(&policy(), &early, &mut sealed)),
            [format!(
                "step `publish` (plugin publish sha256:{OTHER}) started at 35, before sealed step `sign` finished at 40"
            )]
        );

        // The same millisecond proves nothing, unless it needs the step (here through sign).
        let mut same = run();
        same.steps[4].started_ms = 40;
        assert!(evaluate(&policy(), &same, &mut sealed).passed());
        same.steps[4].started_ms = 30;
        same.steps[3].finished_ms = 29;
        assert!(evaluate(&policy(), &same, &mut sealed).passed());
        same.steps[4].needs = vec!["build".into()];
        assert_eq!(
            failures(&evaluate(&policy(), &same, &mut sealed)),
            [format!(
                "step `publish` (plugin publish sha256:{OTHER}) started in the millisecond sealed step `scan` finished (30) and does not need it: its order cannot be proven"
            )]
        );

        // A step that did not run published nothing.
        let mut skipped = early.clone();
        skipped.steps[4].outcome = Outcome::Skipped;
        let evaluation = evaluate(&policy(), &skipped, &mut sealed);
        assert!(evaluation.passed(), "{:#?}", evaluation.checks);
        assert!(
            evaluation
                .checks
                .last()
                .is_some_and(|c| c.message.ends_with("did not run"))
        );

        // Every step of the plugin counts, wherever it came from.
        let mut extra = run();
        let mut upload = step("upload", "publish", None, false, (15, 16), &["build"]);
        upload.template = extra.steps[0].template.clone();
        if let Some(t) = &mut upload.template {
            t.declared_by = None;
            t.sealed = false;
        }
        extra.steps.push(upload);
        let failed = failures(&evaluate(&policy(), &extra, &mut sealed));
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert!(failed.iter().all(|f| f.starts_with("step `upload`")));
    }

    #[test]
    fn sealed_before_steps_need_not_precede_before_steps() {
        let mut sealed_publish = run();
        if let Some(t) = &mut sealed_publish.steps[4].template {
            t.sealed = true;
        }
        sealed_publish
            .steps
            .push(step("mirror", "publish", None, false, (45, 49), &["sign"]));
        if let Some(t) = &mut sealed_publish.steps[5].template {
            t.declared_by = None;
        }
        let mut with_publish = |t: &TemplateRef| {
            sealed(t).map(|mut ids| {
                if t.id == "acme/secure-release" {
                    ids.push("publish".into());
                }
                ids
            })
        };
        let evaluation = evaluate(&policy(), &sealed_publish, &mut with_publish);
        assert!(evaluation.passed(), "{:#?}", evaluation.checks);
        // It must still succeed and follow the other sealed steps.
        sealed_publish.steps[4].started_ms = 39;
        assert_eq!(
            failures(&evaluate(&policy(), &sealed_publish, &mut with_publish)).len(),
            1
        );
    }

    #[test]
    fn a_template_that_cannot_be_read_fails() {
        let mut missing = |t: &TemplateRef| {
            if t.id == "acme/base" {
                Err(format!(
                    "template {} (sha256 {}) is missing",
                    t.name(),
                    t.sha256
                ))
            } else {
                sealed(t)
            }
        };
        let evaluation = evaluate(&policy(), &run(), &mut missing);
        assert_eq!(
            failures(&evaluation),
            [format!(
                "template acme/base@2.0.0 (sha256 {}) is missing",
                "bb".repeat(32)
            )]
        );
    }

    #[test]
    fn plugin_names() {
        let mut s = step("x", "scan", None, false, (0, 0), &[]);
        for (reference, name) in [
            ("scan", "scan"),
            ("scan@1", "scan"),
            ("scan@sha256:abcd", "scan"),
            ("./plugins/grype.wasm", "grype"),
            ("plugins/v@2/grype.wasm@sha256:abcd", "grype"),
            ("/abs/thing", "thing"),
        ] {
            s.plugin = reference.into();
            assert_eq!(s.plugin_name(), name, "{reference}");
        }
    }

    #[test]
    fn reads_the_run_from_signed_statements() {
        let key = flow_provenance::SigningKey::from_seed(&[7; 32]);
        let origin = TemplateOrigin {
            chain: chain(),
            declared_by: Some("acme/secure-release@1.2.0".into()),
            interface: Some("scan".into()),
            sealed: true,
            slot: None,
        };
        let evidence = flow_provenance::StepEvidence {
            run_id: "r9".into(),
            step_id: "scan".into(),
            pipeline_name: "release".into(),
            pipeline_file: "flow.yaml".into(),
            pipeline_sha256: "11".repeat(32),
            plugin: "grype@1".into(),
            plugin_sha256: SCAN.into(),
            params: serde_json::json!({}),
            grants: serde_json::json!({}),
            started_unix_ms: 1_700_000_000_123,
            finished_unix_ms: 1_700_000_001_456,
            outcome: Outcome::Succeeded,
            failure_reason: None,
            engine_name: "flow".into(),
            engine_version: "0.1.0".into(),
            materials: BTreeMap::new(),
            products: BTreeMap::new(),
            needs: vec!["build".into()],
            notes: vec![],
            dependencies: chain().iter().map(TemplateRef::dependency).collect(),
            commands: vec![],
            template: Some(origin.clone()),
        };
        let signed = flow_provenance::attest_step(&evidence, &key).expect("attest");
        let mut plain = evidence.clone();
        plain.step_id = "build".into();
        plain.template = None;
        plain.dependencies.clear();
        let plain = flow_provenance::attest_step(&plain, &key).expect("attest");
        let facts = RunFacts::from_statements([
            ("scan", signed.statement.payload.as_slice()),
            ("build", plain.statement.payload.as_slice()),
        ])
        .expect("facts");
        assert_eq!(facts.run_id, "r9");
        assert_eq!(
            facts.steps[0],
            StepRecord {
                id: "scan".into(),
                plugin: "grype@1".into(),
                plugin_sha256: SCAN.into(),
                outcome: Outcome::Succeeded,
                started_ms: 1_700_000_000_123,
                finished_ms: 1_700_000_001_456,
                needs: vec!["build".into()],
                template: Some(origin),
            }
        );
        assert!(facts.steps[0].is_named("scan") && facts.steps[0].is_named("grype"));
        assert_eq!(facts.steps[1].template, None);

        let mismatch = RunFacts::from_statements([("sign", signed.statement.payload.as_slice())]);
        assert_eq!(
            mismatch,
            Err("the statement of step `sign` is about step `scan`".into())
        );
        assert!(RunFacts::from_statements([("scan", b"{}".as_slice())]).is_err());
    }

    fn write_template(dir: &Path, id: &str, version: &str) {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(
            dir.join(TEMPLATE_FILE),
            format!("template: 1\nid: {id}\nversion: {version}\nsteps:\n  scan: {{ sealed: true, uses: scan }}\n"),
        )
        .expect("write");
    }

    #[test]
    fn finds_templates_by_digest() {
        let root = tempfile::tempdir().expect("tempdir");
        let given = root.path().join("given");
        write_template(&given, "acme/secure-release", "1.2.0");
        let sha256 = template_digest(&given).expect("digest");
        let template = TemplateRef {
            id: "acme/secure-release".into(),
            version: "1.2.0".into(),
            sha256: sha256.clone(),
        };

        let locator = TemplateLocator::new(None, std::slice::from_ref(&given)).expect("locator");
        let (dir, found) = locator.find(&template).expect("found");
        assert_eq!(dir, given);
        assert_eq!(found.sealed_steps, ["scan"]);

        // Missing: the error names the template, its digest and where it was looked for.
        let cache = root.path().join("cache");
        let error = TemplateLocator::new(Some(cache.clone()), &[])
            .expect("locator")
            .find(&template)
            .expect_err("missing");
        assert!(
            error.contains(&format!(
                "template acme/secure-release@1.2.0 (sha256 {sha256}) is missing"
            )),
            "{error}"
        );
        assert!(
            error.contains(&cached_template_dir(&cache, &sha256).display().to_string()),
            "{error}"
        );

        // In the cache.
        let cached = cached_template_dir(&cache, &sha256);
        write_template(&cached, "acme/secure-release", "1.2.0");
        let locator = TemplateLocator::new(Some(cache.clone()), &[]).expect("locator");
        assert_eq!(locator.find(&template).expect("cached").0, cached);
        // A cached copy that changed is refused.
        std::fs::write(cached.join("extra"), "x").expect("write");
        assert!(
            locator
                .find(&template)
                .expect_err("changed")
                .contains("the cache was changed")
        );

        // A directory whose digest matches but which declares another template.
        let liar = root.path().join("liar");
        write_template(&liar, "acme/other", "1.2.0");
        let liar_ref = TemplateRef {
            sha256: template_digest(&liar).expect("digest"),
            ..template.clone()
        };
        let error = TemplateLocator::new(None, &[liar])
            .expect("locator")
            .find(&liar_ref)
            .expect_err("another template");
        assert!(error.contains("declares acme/other@1.2.0"), "{error}");

        // A recorded digest is never used as a path unless it is one.
        let traversal = TemplateRef {
            sha256: "../../etc".into(),
            ..template
        };
        assert!(
            locator
                .find(&traversal)
                .expect_err("bad")
                .contains("is not a sha256")
        );
        assert!(TemplateLocator::new(None, &[root.path().join("nothing")]).is_err());
    }
}
