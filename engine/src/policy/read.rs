//! Reading a policy file, with every problem at its place.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use flow_pipeline::yaml::{self, Entry, Node, NodeKind, Scalar};
use flow_pipeline::{Diagnostic, Diagnostics, Position, SourceFile, Span};

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
