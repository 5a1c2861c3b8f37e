//! The [`Reader`]: the file being read, its problems, and the primitives every part of the
//! reading uses (mappings, strings, lists of strings, unknown keys).
//!
//! Reading is strict (an unknown key is an error) but does not stop at the first problem:
//! each problem is kept and reading goes on with the next field.

use std::path::Path;
use std::sync::Arc;

use crate::diag::{Diagnostic, SourceFile, Span, did_you_mean_help};
use crate::yaml::{Entry, Node, NodeKind, Scalar};

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
    /// A reader of `file`, whose relative paths are resolved against `base_dir`.
    pub(crate) fn new(
        file: &'a Arc<SourceFile>,
        base_dir: &'a Path,
        step_mode: StepMode,
    ) -> Reader<'a> {
        Reader {
            file,
            base_dir,
            problems: Vec::new(),
            step_mode,
        }
    }

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
}
