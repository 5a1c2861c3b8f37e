//! User and organisation configs, and what a pipeline file says beside its steps: where
//! catalogs are (`catalogs:`) and which plugin each interface is bound to (`bindings:`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics, SourceFile, Span};
use crate::host_path::expand_host_path;
use crate::model::{Reader, StepMode};
use crate::yaml::{Node, NodeKind, Scalar};

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

/// A user or organisation config: where catalogs are, interface bindings, and where
/// `flow run` sends the runs' CDEvents.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Its catalogs, in order.
    pub catalogs: Vec<CatalogDecl>,
    /// Its bindings.
    pub bindings: Vec<BindingDecl>,
    /// `events-to:`: where every run sends its CDEvents (`http://…`, `file:PATH`,
    /// `nats://HOST:PORT/SUBJECT`), as written; the CLI checks them.
    pub events_to: Vec<String>,
}

/// Reads a config file (`catalogs:`, `bindings:`, `events-to:`); relative paths are resolved against
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
        let mut reader = Reader::new(&file, base, StepMode::Pipeline);
        if let Some(entries) = reader.mapping(&root, "a config file") {
            reader.unknown_keys(
                entries,
                &["catalogs", "bindings", "events-to"],
                "in the config",
            );
            for entry in entries {
                match entry.key_text() {
                    "catalogs" => config.catalogs = read_catalogs(&mut reader, &entry.value),
                    "bindings" => config.bindings = read_bindings(&mut reader, &entry.value),
                    "events-to" => {
                        config.events_to = reader
                            .strings(&entry.value, "`events-to`", true)
                            .into_iter()
                            .map(|(url, _)| url)
                            .collect()
                    }
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

/// `catalogs:`: a list of `{ path }` or `{ git, ref }`, with signature requirements.
pub(super) fn read_catalogs(reader: &mut Reader, node: &Node) -> Vec<CatalogDecl> {
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
            let expanded = expand_host_path(written).unwrap_or_else(|_| PathBuf::from(written));
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

/// `bindings:`: interface names to plugins, as `uses:` takes them.
pub(super) fn read_bindings(reader: &mut Reader, node: &Node) -> Vec<BindingDecl> {
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
