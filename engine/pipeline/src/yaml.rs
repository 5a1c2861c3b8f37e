//! A small YAML tree that remembers where every node was written.
//!
//! Built from the events of `saphyr-parser`. Plain scalars are resolved to the YAML 1.2 core
//! schema (null, bool, int, float, string); quoted and block scalars are strings. Duplicate
//! mapping keys, aliases, tags and nested keys that are not scalars are refused.

use std::collections::HashMap;
use std::sync::Arc;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle};

use crate::diag::{Diagnostic, Position, SourceFile, Span};

/// Collections nested deeper than this are refused (the checker walks the tree recursively).
const MAX_DEPTH: usize = 64;

/// A resolved scalar value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// `null`, `~` or nothing at all.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer (decimal, `0x` hex or `0o` octal).
    Int(i64),
    /// A floating point number, `.inf` and `.nan` included.
    Float(f64),
    /// Anything else, and every quoted or block scalar.
    String(String),
}

impl Scalar {
    /// A word for the type, for messages: "a string", "an integer"...
    pub fn type_name(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::Int(_) => "an integer",
            Scalar::Float(_) => "a number",
            Scalar::String(_) => "a string",
        }
    }
}

/// What a node is.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar, with the text as written (without quotes) for keys and messages.
    Scalar {
        /// The resolved value.
        value: Scalar,
        /// The text of the scalar after unquoting.
        text: String,
    },
    /// A sequence (`[a, b]` or `- a`).
    Sequence(Vec<Node>),
    /// A mapping, entries in the order of the file.
    Mapping(Vec<Entry>),
}

/// One `key: value` of a mapping. Keys are always scalars.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key node.
    pub key: Node,
    /// The value node.
    pub value: Node,
}

impl Entry {
    /// The text of the key.
    pub fn key_text(&self) -> &str {
        match &self.key.kind {
            NodeKind::Scalar { text, .. } => text,
            _ => "",
        }
    }
}

/// A YAML node and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub kind: NodeKind,
    /// Where it was written.
    pub span: Span,
}

impl Node {
    /// Whether this is the integer scalar `n` (a document's `version: 1`).
    pub fn is_int(&self, n: i64) -> bool {
        matches!(
            self.kind,
            NodeKind::Scalar {
                value: Scalar::Int(v),
                ..
            } if v == n
        )
    }

    /// The string value, if this is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar {
                value: Scalar::String(s),
                ..
            } => Some(s),
            _ => None,
        }
    }

    /// The entries, if this is a mapping.
    pub fn as_mapping(&self) -> Option<&[Entry]> {
        match &self.kind {
            NodeKind::Mapping(entries) => Some(entries),
            _ => None,
        }
    }

    /// A word for the type of the node, for messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { value, .. } => value.type_name(),
            NodeKind::Sequence(_) => "a list",
            NodeKind::Mapping(_) => "a mapping",
        }
    }

    /// Converts the node into JSON (mapping keys become strings; NaN and infinities, which
    /// JSON cannot hold, become null).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Scalar { value, .. } => match value {
                Scalar::Null => Value::Null,
                Scalar::Bool(b) => Value::Bool(*b),
                Scalar::Int(i) => Value::from(*i),
                Scalar::Float(f) => serde_json::Number::from_f64(*f)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
                Scalar::String(s) => Value::String(s.clone()),
            },
            NodeKind::Sequence(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Mapping(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key_text().to_owned(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

fn position(marker: &Marker) -> Position {
    Position {
        line: marker.line(),
        column: marker.col() + 1,
    }
}

fn span_of(span: &saphyr_parser::Span) -> Span {
    Span::new(position(&span.start), position(&span.end))
}

/// Turns the character indices of saphyr's markers into byte offsets of the text. Markers
/// come in the order of the file, so the cursor mostly moves forward a little: reading a
/// file costs one pass over its text, however many scalars it holds.
struct CharCursor<'t> {
    text: &'t str,
    /// The character index of `byte`.
    char_index: usize,
    /// A byte offset of `text`, on a character boundary.
    byte: usize,
}

impl<'t> CharCursor<'t> {
    fn new(text: &'t str) -> CharCursor<'t> {
        CharCursor {
            text,
            char_index: 0,
            byte: 0,
        }
    }

    /// The text before the character at `char_index` (the whole text past its end).
    fn before(&mut self, char_index: usize) -> &'t str {
        while self.char_index < char_index {
            match self.text[self.byte..].chars().next() {
                Some(c) => {
                    self.byte += c.len_utf8();
                    self.char_index += 1;
                }
                None => break,
            }
        }
        while self.char_index > char_index {
            match self.text[..self.byte].chars().next_back() {
                Some(c) => {
                    self.byte -= c.len_utf8();
                    self.char_index -= 1;
                }
                None => break,
            }
        }
        &self.text[..self.byte]
    }
}

/// saphyr ends a quoted scalar inside a flow collection after the blanks that
/// follow it (`{ a: "x" }`); the span of a scalar ends at its closing quote.
/// `end_index` is the character index of the span's end in the file.
fn trim_quoted_end(cursor: &mut CharCursor, span: Span, end_index: usize) -> Span {
    if span.start.line != span.end.line {
        return span;
    }
    let mut end = span.end.column;
    let mut before = cursor.before(end_index).chars().rev();
    while end > span.start.column + 1
        && before
            .next()
            .is_some_and(|c| c.is_whitespace() && c != '\n' && c != '\r')
    {
        end -= 1;
    }
    Span::new(
        span.start,
        Position {
            line: span.end.line,
            column: end,
        },
    )
}

/// Resolves a plain scalar per the YAML 1.2 core schema.
pub fn resolve_plain(text: &str) -> Result<Scalar, String> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Scalar::Null),
        "true" | "True" | "TRUE" => return Ok(Scalar::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Scalar::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Ok(Scalar::Float(f64::INFINITY));
        }
        "-.inf" | "-.Inf" | "-.INF" => return Ok(Scalar::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Ok(Scalar::Float(f64::NAN)),
        _ => {}
    }
    let out_of_range = || format!("integer `{text}` is out of range");
    if let Some(hex) = text.strip_prefix("0x") {
        if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return i64::from_str_radix(hex, 16)
                .map(Scalar::Int)
                .map_err(|_| out_of_range());
        }
        return Ok(Scalar::String(text.to_owned()));
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if !oct.is_empty() && oct.chars().all(|c| ('0'..='7').contains(&c)) {
            return i64::from_str_radix(oct, 8)
                .map(Scalar::Int)
                .map_err(|_| out_of_range());
        }
        return Ok(Scalar::String(text.to_owned()));
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .map(Scalar::Int)
            .map_err(|_| out_of_range());
    }
    if is_core_float(digits)
        && let Ok(f) = text.parse::<f64>()
    {
        return Ok(Scalar::Float(f));
    }
    Ok(Scalar::String(text.to_owned()))
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` (the sign already removed).
fn is_core_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            int.chars().all(|c| c.is_ascii_digit())
                && frac.chars().all(|c| c.is_ascii_digit())
                && (!int.is_empty() || !frac.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.chars().all(|c| c.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

/// A collection being built.
enum Open {
    Sequence {
        start: Span,
        items: Vec<Node>,
    },
    Mapping {
        start: Span,
        entries: Vec<Entry>,
        pending_key: Option<Node>,
        /// The index of the first entry with each key, built once the mapping is large
        /// enough for a linear search to cost (a `steps:` of thousands of entries).
        keys: Option<HashMap<String, usize>>,
    },
}

/// Mappings with more entries than this look up duplicate keys in a hash map.
const INDEXED_MAPPING: usize = 16;

/// The first entry of `entries` whose key is `text`; indexes `entries` in `keys` once they
/// are many.
fn first_with_key<'e>(
    entries: &'e [Entry],
    keys: &mut Option<HashMap<String, usize>>,
    text: &str,
) -> Option<&'e Entry> {
    if keys.is_none() && entries.len() >= INDEXED_MAPPING {
        let mut index = HashMap::with_capacity(entries.len() * 2);
        for (i, entry) in entries.iter().enumerate() {
            index.entry(entry.key_text().to_owned()).or_insert(i);
        }
        *keys = Some(index);
    }
    match keys {
        Some(index) => index.get(text).map(|&i| &entries[i]),
        None => entries.iter().find(|e| e.key_text() == text),
    }
}

/// Parses `file` into a tree. On a YAML syntax error, returns that one error. Otherwise
/// returns the root (`None` for an empty document) and the problems found in the tree
/// (duplicate keys and the like), which do not stop the parse.
pub fn parse(file: &Arc<SourceFile>) -> Result<(Option<Node>, Vec<Diagnostic>), Diagnostic> {
    let mut problems = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut parser = Parser::new_from_str(&file.text);
    let mut cursor = CharCursor::new(&file.text);
    loop {
        let (event, raw_span) = match parser.next_event() {
            None => break,
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                let pos = position(e.marker());
                return Err(Diagnostic::error(
                    file,
                    Span::new(pos, pos),
                    format!("invalid YAML: {}", e.info()),
                ));
            }
        };
        let span = span_of(&raw_span);
        let node = match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => continue,
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(Diagnostic::error(
                        file,
                        span,
                        "a pipeline file holds one YAML document; found a second one here",
                    ));
                }
                continue;
            }
            Event::Alias(_) => {
                return Err(Diagnostic::error(
                    file,
                    span,
                    "YAML aliases (`*name`) are not supported in pipeline files",
                )
                .with_help("write the value out in full"));
            }
            Event::Scalar(text, style, _anchor, tag) => {
                if let Some(tag) = tag {
                    problems.push(
                        Diagnostic::error(
                            file,
                            span,
                            format!("YAML tags (`{tag}`) are not supported in pipeline files"),
                        )
                        .with_help("quote the value to make it a string"),
                    );
                }
                let value = if style == ScalarStyle::Plain {
                    match resolve_plain(&text) {
                        Ok(v) => v,
                        Err(message) => {
                            problems.push(Diagnostic::error(file, span, message));
                            Scalar::String(text.to_string())
                        }
                    }
                } else {
                    Scalar::String(text.to_string())
                };
                let span = if style == ScalarStyle::Plain {
                    span
                } else {
                    trim_quoted_end(&mut cursor, span, raw_span.end.index())
                };
                Node {
                    kind: NodeKind::Scalar {
                        value,
                        text: text.into_owned(),
                    },
                    span,
                }
            }
            Event::SequenceStart(_, ref tag) | Event::MappingStart(_, ref tag) => {
                if let Some(tag) = tag {
                    problems.push(Diagnostic::error(
                        file,
                        span,
                        format!("YAML tags (`{tag}`) are not supported in pipeline files"),
                    ));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(Diagnostic::error(
                        file,
                        span,
                        format!("the file nests lists and mappings more than {MAX_DEPTH} deep"),
                    ));
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Open::Sequence {
                        start: span,
                        items: Vec::new(),
                    }
                } else {
                    Open::Mapping {
                        start: span,
                        entries: Vec::new(),
                        pending_key: None,
                        keys: None,
                    }
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Open::Sequence { start, items }) => Node {
                    span: close_span(start, span, items.last().map(|n| n.span)),
                    kind: NodeKind::Sequence(items),
                },
                Some(Open::Mapping { start, entries, .. }) => Node {
                    span: close_span(start, span, entries.last().map(|e| e.value.span)),
                    kind: NodeKind::Mapping(entries),
                },
                None => continue,
            },
        };
        // Attach the finished node to its parent.
        match stack.last_mut() {
            None => root = Some(node),
            Some(Open::Sequence { items, .. }) => items.push(node),
            Some(Open::Mapping {
                entries,
                pending_key,
                keys,
                ..
            }) => match pending_key.take() {
                None => {
                    if !matches!(node.kind, NodeKind::Scalar { .. }) {
                        problems.push(Diagnostic::error(
                            file,
                            node.span,
                            "mapping keys must be plain values, not lists or mappings",
                        ));
                    }
                    *pending_key = Some(node);
                }
                Some(key) => {
                    let text = match &key.kind {
                        NodeKind::Scalar { text, .. } => Some(text.as_str()),
                        _ => None,
                    };
                    if let Some(text) = text
                        && let Some(first) = first_with_key(entries, keys, text)
                    {
                        problems.push(
                            Diagnostic::error(file, key.span, format!("duplicate key `{text}`"))
                                .with_note_at(file, first.key.span, "first defined here"),
                        );
                    }
                    let entry = Entry { key, value: node };
                    if let Some(index) = keys {
                        index
                            .entry(entry.key_text().to_owned())
                            .or_insert(entries.len());
                    }
                    entries.push(entry);
                }
            },
        }
    }
    Ok((root, problems))
}

/// The span of a collection: from its start event to its closing bracket (flow style) or to
/// the end of its last child (block style, whose end event is empty and placed further on).
fn close_span(start: Span, end: Span, last_child: Option<Span>) -> Span {
    let end_position = if end.start != end.end {
        end.end
    } else {
        last_child.map(|c| c.end).unwrap_or(start.end)
    };
    Span::new(start.start, end_position.max(start.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> (Option<Node>, Vec<Diagnostic>) {
        parse(&SourceFile::new("t.yaml", text)).expect("valid yaml")
    }

    fn scalar(node: &Node) -> &Scalar {
        match &node.kind {
            NodeKind::Scalar { value, .. } => value,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        assert_eq!(resolve_plain("~"), Ok(Scalar::Null));
        assert_eq!(resolve_plain(""), Ok(Scalar::Null));
        assert_eq!(resolve_plain("True"), Ok(Scalar::Bool(true)));
        assert_eq!(resolve_plain("yes"), Ok(Scalar::String("yes".into())));
        assert_eq!(resolve_plain("-12"), Ok(Scalar::Int(-12)));
        assert_eq!(resolve_plain("0x1F"), Ok(Scalar::Int(31)));
        assert_eq!(resolve_plain("0o17"), Ok(Scalar::Int(15)));
        assert_eq!(resolve_plain("1.5e3"), Ok(Scalar::Float(1500.0)));
        assert_eq!(resolve_plain(".5"), Ok(Scalar::Float(0.5)));
        assert_eq!(resolve_plain("1."), Ok(Scalar::Float(1.0)));
        assert_eq!(resolve_plain("1.2.3"), Ok(Scalar::String("1.2.3".into())));
        assert_eq!(resolve_plain("30s"), Ok(Scalar::String("30s".into())));
        assert_eq!(resolve_plain("."), Ok(Scalar::String(".".into())));
        assert_eq!(resolve_plain("-.inf"), Ok(Scalar::Float(f64::NEG_INFINITY)));
        assert!(resolve_plain("99999999999999999999").is_err());
    }

    #[test]
    fn quoted_scalars_are_strings() {
        let (root, problems) = tree("a: '1'\nb: \"true\"\nc: 1\n");
        assert!(problems.is_empty());
        let root = root.expect("a root");
        let entries = root.as_mapping().expect("a mapping");
        assert_eq!(scalar(&entries[0].value), &Scalar::String("1".into()));
        assert_eq!(scalar(&entries[1].value), &Scalar::String("true".into()));
        assert_eq!(scalar(&entries[2].value), &Scalar::Int(1));
    }

    #[test]
    fn nodes_know_their_positions() {
        let (root, _) = tree("steps:\n  greet:\n    uses: echo\n    needs: [a, b]\n");
        let root = root.expect("a root");
        let steps = &root.as_mapping().expect("map")[0];
        assert_eq!(steps.key.span.start, Position { line: 1, column: 1 });
        let greet = &steps.value.as_mapping().expect("map")[0];
        assert_eq!(greet.key.span.start, Position { line: 2, column: 3 });
        assert_eq!(greet.key.span.end, Position { line: 2, column: 8 });
        let fields = greet.value.as_mapping().expect("map");
        assert_eq!(
            fields[0].value.span.start,
            Position {
                line: 3,
                column: 11
            }
        );
        assert_eq!(
            fields[0].value.span.end,
            Position {
                line: 3,
                column: 15
            }
        );
        let needs = &fields[1].value;
        assert_eq!(
            needs.span.start,
            Position {
                line: 4,
                column: 12
            }
        );
        assert_eq!(
            needs.span.end,
            Position {
                line: 4,
                column: 18
            }
        );
        let NodeKind::Sequence(items) = &needs.kind else {
            panic!("not a list")
        };
        assert_eq!(
            items[1].span.start,
            Position {
                line: 4,
                column: 16
            }
        );
    }

    #[test]
    fn quoted_scalar_spans_cover_the_quotes() {
        let (root, _) = tree("a: \"x y\"\n");
        let root = root.expect("a root");
        let value = &root.as_mapping().expect("map")[0].value;
        assert_eq!(value.span.start, Position { line: 1, column: 4 });
        assert_eq!(value.span.end, Position { line: 1, column: 9 });
    }

    #[test]
    fn quoted_scalar_spans_in_flow_mappings_end_at_the_quote() {
        let (root, _) = tree("a: { b: \"x\" , c: 'y'  }\n");
        let root = root.expect("a root");
        let inner = &root.as_mapping().expect("map")[0].value;
        let fields = inner.as_mapping().expect("inner map");
        assert_eq!(
            fields[0].value.span.end,
            Position {
                line: 1,
                column: 12
            }
        );
        assert_eq!(
            fields[1].value.span.end,
            Position {
                line: 1,
                column: 21
            }
        );
    }

    #[test]
    fn quoted_scalar_spans_end_at_the_quote_after_wide_characters() {
        let (root, _) = tree("x: \"ééé\"\na: { é: \"x\"  , c: 'ü'  }\n");
        let root = root.expect("a root");
        let entries = root.as_mapping().expect("map");
        assert_eq!(entries[0].value.span.end, Position { line: 1, column: 9 });
        let fields = entries[1].value.as_mapping().expect("inner map");
        assert_eq!(
            fields[0].value.span.end,
            Position {
                line: 2,
                column: 12
            }
        );
        assert_eq!(
            fields[1].value.span.end,
            Position {
                line: 2,
                column: 22
            }
        );
    }

    #[test]
    fn duplicate_keys_are_reported_at_the_second_one() {
        let (_, problems) = tree("a: 1\nb: 2\na: 3\n");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].message, "duplicate key `a`");
        let primary = problems[0].primary.as_ref().expect("a position");
        assert_eq!(primary.span.start, Position { line: 3, column: 1 });
        assert_eq!(problems[0].notes.len(), 1);
    }

    #[test]
    fn duplicate_keys_of_large_mappings_point_at_the_first_one() {
        let mut text: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
        text.push_str("k3: again\nk39: again\nk3: thrice\n");
        let (_, problems) = tree(&text);
        let found: Vec<(&str, usize, usize)> = problems
            .iter()
            .map(|p| {
                let at = p.primary.as_ref().expect("a position").span.start.line;
                let first = p.notes[0]
                    .location
                    .as_ref()
                    .expect("a note")
                    .span
                    .start
                    .line;
                (p.message.as_str(), at, first)
            })
            .collect();
        assert_eq!(
            found,
            [
                ("duplicate key `k3`", 41, 4),
                ("duplicate key `k39`", 42, 40),
                ("duplicate key `k3`", 43, 4)
            ]
        );
    }

    #[test]
    fn syntax_errors_and_aliases_are_errors() {
        let file = SourceFile::new("t.yaml", "a: [1, 2\nb: 3\n");
        assert!(parse(&file).is_err());
        let file = SourceFile::new("t.yaml", "a: &x 1\nb: *x\n");
        let error = parse(&file).expect_err("aliases are refused");
        assert!(error.message.contains("aliases"));
    }

    #[test]
    fn an_empty_document_has_no_root() {
        assert_eq!(tree("").0, None);
        assert_eq!(tree("# just a comment\n").0, None);
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing() {
        let text = format!("{}{}", "[".repeat(500), "]".repeat(500));
        assert!(parse(&SourceFile::new("t.yaml", text)).is_err());
    }
}
