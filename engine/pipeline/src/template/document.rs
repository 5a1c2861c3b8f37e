//! Reading a pipeline file far enough to know what it extends (`extends:`) and where to
//! look for it (`catalogs:`, `bindings:`): a [`Document`], resolved later.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics, Position, SourceFile, Span};
use crate::model::{Reader, StepMode};
use crate::yaml::Node;

use super::config::{BindingDecl, CatalogDecl, read_bindings, read_catalogs};

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
    pub(super) file: Arc<SourceFile>,
    pub(super) root: Node,
    pub(super) base_dir: PathBuf,
    pub(super) extends: Option<Extends>,
    pub(super) catalogs: Vec<CatalogDecl>,
    pub(super) bindings: Vec<BindingDecl>,
    pub(super) problems: Vec<Diagnostic>,
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
    let mut reader = Reader::new(&file, base_dir, StepMode::Pipeline);
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

/// `extends: <namespace>/<name>@<version requirement>`.
pub(super) fn read_extends(reader: &mut Reader, node: &Node) -> Option<Extends> {
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
fn is_template_id(id: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    matches!(id.split_once('/'), Some((ns, name)) if part(ns) && part(name))
}
