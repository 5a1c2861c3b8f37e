//! The resolver: a [`Document`] into a [`Pipeline`], through the chain of templates it
//! extends (load, parameters, merge, assembly), every problem reported at once.

use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics, Severity, Span};
use crate::model::{Pipeline, Reader, StepMode, read_pipeline};

use super::assemble::assemble;
use super::chain::{bind_parameters, load_chain};
use super::config::BindingDecl;
use super::document::Document;
use super::merge::merge;
use super::problems::Problems;
use super::source::TemplateSource;

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
            let mut reader = Reader::new(&document.file, &document.base_dir, StepMode::Pipeline);
            let mut pipeline = read_pipeline(&mut reader, &document.root);
            let mut problems = document.problems;
            problems.append(&mut reader.problems);
            pipeline.problems = problems;
            return Ok(pipeline);
        }
    }
    let root_file = Arc::clone(&document.file);
    let root_dir = document.base_dir.clone();
    let root_bindings = document.bindings.clone();
    let mut problems = Problems {
        list: document.problems.clone(),
    };
    if let Some(entries) = document.root.as_mapping() {
        let mut reader = Reader::new(&root_file, &root_dir, StepMode::Pipeline);
        if document.extends.is_none() {
            let top = Span::new(document.root.span.start, document.root.span.start);
            reader.error(top, "`with`, `fill`, `catalogs` and `bindings` are for a pipeline that `extends` a template");
        }
        match entries.iter().find(|e| e.key_text() == "version") {
            Some(e) if e.value.is_int(1) => {}
            Some(e) => {
                reader.error(e.value.span, "`version` must be 1");
            }
            None => {
                let top = Span::new(document.root.span.start, document.root.span.start);
                reader.error(top, "missing `version: 1` at the top of the pipeline");
            }
        }
        problems.list.append(&mut reader.problems);
    }
    let mut chain = load_chain(&mut problems, source, document);
    if problems.list.iter().any(|d| d.severity == Severity::Error) {
        return Err(sorted(problems.list));
    }
    bind_parameters(&mut problems, &mut chain);
    let merged = merge(&mut problems, &chain);
    let pipeline = assemble(
        &mut problems,
        merged,
        &chain,
        &root_bindings,
        config_bindings,
        &root_dir,
    );
    if problems.list.is_empty() {
        Ok(pipeline)
    } else {
        Err(sorted(problems.list))
    }
}

/// The problems by file, then position (a stable sort: same place, order found).
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
