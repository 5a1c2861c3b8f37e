//! The problems found while resolving, in the order they were found; each may get notes
//! and help after it was reported.

use std::sync::Arc;

use crate::diag::{Diagnostic, SourceFile, Span};

/// The problems of one resolution.
pub(super) struct Problems {
    /// The problems, in the order they were found.
    pub(super) list: Vec<Diagnostic>,
}

impl Problems {
    /// Reports an error; returns its index, for [`Problems::note`] and [`Problems::help`].
    pub(super) fn error(
        &mut self,
        file: &Arc<SourceFile>,
        span: Span,
        message: impl Into<String>,
    ) -> usize {
        self.list.push(Diagnostic::error(file, span, message));
        self.list.len() - 1
    }

    /// Adds a note, pointing at `file` and `span`, to problem `index`.
    pub(super) fn note(
        &mut self,
        index: usize,
        file: &Arc<SourceFile>,
        span: Span,
        message: impl Into<String>,
    ) {
        let d = std::mem::replace(
            &mut self.list[index],
            Diagnostic::error_without_location(""),
        );
        self.list[index] = d.with_note_at(file, span, message);
    }

    /// Sets the help line of problem `index`.
    pub(super) fn help(&mut self, index: usize, help: impl Into<String>) {
        self.list[index].help = Some(help.into());
    }
}
