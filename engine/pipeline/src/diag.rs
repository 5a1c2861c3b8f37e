//! Diagnostics: problems found in a pipeline file, each pointing at the place in the file,
//! rendered the way a compiler does (`file:line:column: error: ...` and a snippet).
//!
//! A [`Diagnostic`] carries the source text it points into (through an [`Arc<SourceFile>`]),
//! so [`Diagnostic::render`] needs nothing else. The engine uses the same type for problems
//! found while running (an expression that fails to evaluate, a parameter of the wrong type).

use std::fmt;
use std::sync::Arc;

/// A position in a source file. Both numbers are 1-based; `column` counts characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column number in characters, starting at 1.
    pub column: usize,
}

/// A range in a source file: `start` is inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    /// First character of the range.
    pub start: Position,
    /// Just after the last character of the range.
    pub end: Position,
}

impl Span {
    /// A span from `start` to `end`.
    pub fn new(start: Position, end: Position) -> Span {
        Span { start, end }
    }
}

/// The text of a pipeline file and the path to show for it (as the user gave it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path shown in diagnostics, e.g. `flow.yaml` or `ci/flow.yaml`.
    pub name: String,
    /// The whole text of the file.
    pub text: String,
}

impl SourceFile {
    /// A source file named `name` (as shown to the user) holding `text`.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            name: name.into(),
            text: text.into(),
        })
    }

    /// The text of line `line` (1-based), without its line break.
    pub fn line(&self, line: usize) -> Option<&str> {
        let index = line.checked_sub(1)?;
        self.text
            .split('\n')
            .nth(index)
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
    }
}

/// A place in a source file: the file and a span in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: Arc<SourceFile>,
    /// The range in the file.
    pub span: Span,
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The pipeline cannot run (or a step cannot run) until this is fixed.
    Error,
    /// Worth the user's attention; does not stop anything.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A secondary message of a diagnostic, optionally with its own place in a file
/// (e.g. "first defined here").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Where the note points, if anywhere.
    pub location: Option<Location>,
    /// The text of the note.
    pub message: String,
}

/// One problem, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, in one line.
    pub message: String,
    /// Where it is wrong. `None` for problems outside any file (e.g. `--input` values).
    pub primary: Option<Location>,
    /// What to do about it, if there is something to say.
    pub help: Option<String>,
    /// Further explanations, optionally pointing at other places.
    pub notes: Vec<Note>,
}

impl Diagnostic {
    /// An error at `span` of `file`.
    pub fn error(file: &Arc<SourceFile>, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            primary: Some(Location {
                file: Arc::clone(file),
                span,
            }),
            help: None,
            notes: Vec::new(),
        }
    }

    /// An error that has no place in a file.
    pub fn error_without_location(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            primary: None,
            help: None,
            notes: Vec::new(),
        }
    }

    /// Adds (or replaces) the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds the help line if there is one.
    pub fn with_optional_help(mut self, help: Option<String>) -> Diagnostic {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Adds a note without a position.
    pub fn with_note(mut self, message: impl Into<String>) -> Diagnostic {
        self.notes.push(Note {
            location: None,
            message: message.into(),
        });
        self
    }

    /// Adds a note pointing at `span` of `file`.
    pub fn with_note_at(
        mut self,
        file: &Arc<SourceFile>,
        span: Span,
        message: impl Into<String>,
    ) -> Diagnostic {
        self.notes.push(Note {
            location: Some(Location {
                file: Arc::clone(file),
                span,
            }),
            message: message.into(),
        });
        self
    }

    /// Renders the diagnostic as plain text, ending with a line break:
    ///
    /// ```text
    /// flow.yaml:9:5: error: unknown key `nedds` in step `shout`
    ///     |
    ///   9 |     nedds: [greet]
    ///     |     ^^^^^
    ///     = help: did you mean `needs`?
    /// ```
    pub fn render(&self) -> String {
        self.render_with(&mut Lines::default())
    }

    /// [`Diagnostic::render`], finding lines through `lines`.
    fn render_with(&self, lines: &mut Lines) -> String {
        let mut out = String::new();
        let gutter = self
            .primary
            .as_ref()
            .map(|l| gutter_width(l.span.start.line))
            .unwrap_or(4);
        render_block(
            &mut out,
            lines,
            self.primary.as_ref(),
            &self.severity.to_string(),
            &self.message,
        );
        for note in self.notes.iter().filter(|n| n.location.is_none()) {
            out.push_str(&format!("{}= note: {}\n", " ".repeat(gutter), note.message));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("{}= help: {}\n", " ".repeat(gutter), help));
        }
        for note in &self.notes {
            if let Some(location) = &note.location {
                render_block(&mut out, lines, Some(location), "note", &note.message);
            }
        }
        out
    }
}

/// Spaces before the `|` of a snippet: the width of the line number plus three.
fn gutter_width(line: usize) -> usize {
    line.to_string().len() + 3
}

/// Where the lines of the files rendered so far start, so that rendering many diagnostics
/// of a large file reads it once rather than once per diagnostic.
#[derive(Default)]
struct Lines {
    /// Each file (by address: every file is kept alive by the diagnostics being rendered)
    /// and the byte offset of each of its lines.
    files: Vec<(*const SourceFile, Vec<usize>)>,
}

impl Lines {
    /// The text of line `line` (1-based) of `file`, as [`SourceFile::line`] gives it.
    fn line<'f>(&mut self, file: &'f SourceFile, line: usize) -> Option<&'f str> {
        let index = line.checked_sub(1)?;
        let key: *const SourceFile = file;
        let at = match self.files.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                let starts = std::iter::once(0)
                    .chain(file.text.match_indices('\n').map(|(i, _)| i + 1))
                    .collect();
                self.files.push((key, starts));
                self.files.len() - 1
            }
        };
        let start = *self.files[at].1.get(index)?;
        let rest = &file.text[start..];
        let text = rest.find('\n').map_or(rest, |end| &rest[..end]);
        Some(text.strip_suffix('\r').unwrap_or(text))
    }
}

/// One `file:line:col: kind: message` header and its snippet.
fn render_block(
    out: &mut String,
    lines: &mut Lines,
    location: Option<&Location>,
    kind: &str,
    message: &str,
) {
    let Some(location) = location else {
        out.push_str(&format!("{kind}: {message}\n"));
        return;
    };
    let start = location.span.start;
    out.push_str(&format!(
        "{}:{}:{}: {kind}: {message}\n",
        location.file.name, start.line, start.column
    ));
    let Some(text) = lines.line(&location.file, start.line) else {
        return;
    };
    let width = gutter_width(start.line);
    let blank = " ".repeat(width);
    out.push_str(&format!("{blank}|\n"));
    out.push_str(&format!("{:>w$} | {}\n", start.line, text, w = width - 1));
    // Underline from the start column to the end of the span, or to the end of the line
    // when the span continues below. Tabs are copied so the carets line up.
    let chars: Vec<char> = text.chars().collect();
    let first = start.column.saturating_sub(1).min(chars.len());
    let last = if location.span.end.line == start.line {
        location.span.end.column.saturating_sub(1).min(chars.len())
    } else {
        chars.len()
    };
    let count = last.saturating_sub(first).max(1);
    let pad: String = chars[..first]
        .iter()
        .map(|c| if *c == '\t' { '\t' } else { ' ' })
        .collect();
    out.push_str(&format!("{blank}| {pad}{}\n", "^".repeat(count)));
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.render().trim_end())
    }
}

impl std::error::Error for Diagnostic {}

/// Every problem found in a pipeline, in the order of the file where possible.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Renders every diagnostic, separated by blank lines.
    pub fn render(&self) -> String {
        let mut lines = Lines::default();
        self.0
            .iter()
            .map(|d| d.render_with(&mut lines))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether there is no diagnostic at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of diagnostics.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    /// The diagnostics.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics(vec![d])
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.render().trim_end())
    }
}

impl std::error::Error for Diagnostics {}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    let length = word.chars().count();
    for candidate in candidates {
        let candidate_length = candidate.chars().count();
        let allowed = (candidate_length.max(length) / 3).max(1);
        // Every edit changes the length by one at most: skip the candidates whose length
        // alone puts them too far, or no closer than the best so far.
        let at_least = candidate_length.abs_diff(length);
        if at_least > allowed || best.is_some_and(|(d, _)| at_least >= d) {
            continue;
        }
        let distance = strsim::damerau_levenshtein(word, candidate);
        if distance <= allowed && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `Some("did you mean `x`?")` when a candidate is close to `word`.
pub(crate) fn did_you_mean_help<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    did_you_mean(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize, end_column: usize) -> Span {
        Span::new(
            Position { line, column },
            Position {
                line,
                column: end_column,
            },
        )
    }

    #[test]
    fn renders_the_snippet_with_carets_under_the_span() {
        let text = "a\nb\nc\nd\ne\nf\ng\nh\n    nedds: [greet]\n";
        let file = SourceFile::new("flow.yaml", text);
        let d = Diagnostic::error(&file, at(9, 5, 10), "unknown key `nedds` in step `shout`")
            .with_help("did you mean `needs`?");
        assert_eq!(
            d.render(),
            "flow.yaml:9:5: error: unknown key `nedds` in step `shout`\n    |\n  9 |     nedds: [greet]\n    |     ^^^^^\n    = help: did you mean `needs`?\n"
        );
    }

    #[test]
    fn the_gutter_grows_with_the_line_number_and_notes_get_their_own_block() {
        let text = format!("{}key: 1\n", "x: 0\n".repeat(11));
        let file = SourceFile::new("f.yaml", text);
        let d = Diagnostic::error(&file, at(12, 1, 4), "duplicate key `key`")
            .with_note_at(&file, at(1, 1, 2), "first defined here")
            .with_note("keys must be unique");
        assert_eq!(
            d.render(),
            "f.yaml:12:1: error: duplicate key `key`\n     |\n  12 | key: 1\n     | ^^^\n     = note: keys must be unique\nf.yaml:1:1: note: first defined here\n    |\n  1 | x: 0\n    | ^\n"
        );
    }

    #[test]
    fn a_diagnostic_without_location_is_one_line_plus_help() {
        let d = Diagnostic::error_without_location("missing required input `count`")
            .with_help("give it with `--input count=<integer>`");
        assert_eq!(
            d.render(),
            "error: missing required input `count`\n    = help: give it with `--input count=<integer>`\n"
        );
    }

    #[test]
    fn lines_are_found_as_source_files_find_them() {
        let file = SourceFile::new("f.yaml", "a: 1\r\n\nb: 2\nlast");
        let mut lines = Lines::default();
        for line in 0..7 {
            assert_eq!(lines.line(&file, line), file.line(line), "line {line}");
        }
        let empty = SourceFile::new("e.yaml", "");
        assert_eq!(lines.line(&empty, 1), empty.line(1));
        assert_eq!(lines.line(&empty, 2), empty.line(2));
    }

    #[test]
    fn suggestions_pick_close_words_only() {
        assert_eq!(
            did_you_mean("nedds", ["uses", "needs", "with"]),
            Some("needs")
        );
        assert_eq!(did_you_mean("zzz", ["uses", "needs"]), None);
    }
}
