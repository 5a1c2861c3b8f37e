//! What a template file says of itself, read without resolving it: its identity and the
//! steps it seals (`flow verify --policy`).

use std::path::Path;
use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics, Position, SourceFile, Span};
use crate::model::{Reader, StepMode};
use crate::yaml::{Entry, NodeKind};

use super::seal::read_sealing;

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
    let mut reader = Reader::new(file, Path::new("."), StepMode::Template);
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
