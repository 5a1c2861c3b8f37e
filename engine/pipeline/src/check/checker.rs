//! The checker's state: the pipeline being checked, the names it declares, the file the
//! current problems point into, and the problems found so far.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::diag::{Diagnostic, SourceFile, Span, did_you_mean_help};
use crate::model::{Pipeline, StepDecl};

/// How many names `did you mean` suggestions may compare in one check, all problems
/// together. A file with thousands of steps and thousands of unknown names would otherwise
/// compare each name with every step id (quadratic); past the budget, problems are still
/// reported, without a suggestion. No file of a sensible size comes near it.
const SUGGESTION_BUDGET: usize = 2_000_000;

/// What checking a pipeline needs at hand: the pipeline, its names, and the problems found.
pub(super) struct Checker<'a> {
    /// The pipeline being checked.
    pub(super) pipeline: &'a Pipeline,
    /// The file the current diagnostics point into (steps may come from templates).
    pub(super) file: Arc<SourceFile>,
    /// The problems found so far, in the order found.
    pub(super) problems: Vec<Diagnostic>,
    /// The index of each step id (the first step with it).
    pub(super) ids: HashMap<&'a str, usize>,
    /// The declared input, secret and key names. Suggestions go through the declarations,
    /// in the order of the file.
    pub(super) inputs: HashSet<&'a str>,
    pub(super) secrets: HashSet<&'a str>,
    pub(super) keys: HashSet<&'a str>,
    /// The pipeline's directory, canonical: relative grants start there (it is trusted as
    /// it is, symbolic links above it included). `None` if it cannot be resolved.
    pub(super) base: Option<PathBuf>,
    /// What is left of [`SUGGESTION_BUDGET`].
    pub(super) suggestions_left: Cell<usize>,
}

impl<'a> Checker<'a> {
    /// A checker of `pipeline`, holding the problems found while reading it.
    pub(super) fn new(pipeline: &'a Pipeline) -> Checker<'a> {
        let mut ids = HashMap::with_capacity(pipeline.steps.len());
        for (i, step) in pipeline.steps.iter().enumerate() {
            ids.entry(step.id.as_str()).or_insert(i);
        }
        Checker {
            pipeline,
            file: Arc::clone(&pipeline.source),
            problems: pipeline.problems.clone(),
            ids,
            inputs: pipeline.inputs.iter().map(|i| i.name.as_str()).collect(),
            secrets: pipeline.secrets.iter().map(|s| s.name.as_str()).collect(),
            keys: pipeline.keys.iter().map(|k| k.name.as_str()).collect(),
            base: std::fs::canonicalize(&pipeline.base_dir).ok(),
            suggestions_left: Cell::new(SUGGESTION_BUDGET),
        }
    }

    /// Reports an error in the current file.
    pub(super) fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.problems
            .push(Diagnostic::error(&self.file, span, message));
        let last = self.problems.len() - 1;
        &mut self.problems[last]
    }

    /// `did you mean` help for `word` among `candidates`, within the suggestion budget.
    pub(super) fn suggest<'c>(
        &self,
        word: &str,
        candidates: impl IntoIterator<Item = &'c str>,
    ) -> Option<String> {
        let left = self.suggestions_left.get();
        if left == 0 {
            return None;
        }
        let mut compared = 0;
        let help = did_you_mean_help(word, candidates.into_iter().inspect(|_| compared += 1));
        self.suggestions_left.set(left.saturating_sub(compared));
        help
    }

    /// The steps of the pipeline, in file order.
    pub(super) fn steps(&self) -> &[StepDecl] {
        &self.pipeline.steps
    }
}
