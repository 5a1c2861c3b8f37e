//! Governance: what a template may seal (top-level keys, steps, step keys), and the rule a
//! seal leaves, with where it was written.

use std::sync::Arc;

use crate::diag::{SourceFile, Span, did_you_mean_help};
use crate::model::Reader;
use crate::yaml::{Entry, NodeKind, Scalar};

/// Top-level keys a template may seal.
pub(super) const SEALABLE: [&str; 6] = [
    "name",
    "description",
    "exec-confinement",
    "inputs",
    "secrets",
    "keys",
];

/// Step keys a template may seal (`with.<param>` and `grants.<kind>` too).
const SEALABLE_STEP_KEYS: [&str; 12] = [
    "uses",
    "with",
    "needs",
    "if",
    "grants",
    "timeout",
    "memory",
    "continue-on-error",
    "retry",
    "cache",
    "name",
    "description",
];

/// The kinds of grants (`grants.<kind>`), each sealable on its own.
const GRANT_KINDS: [&str; 6] = ["fs", "exec", "env", "secrets", "keys", "net"];

/// A rule, with where it was written.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    /// The file it was written in.
    pub(super) file: Arc<SourceFile>,
    /// Where it was written.
    pub(super) span: Span,
    /// The template that wrote it (`acme/base@1.0.0`), for messages.
    pub(super) by: String,
}

/// `sealed: true` or `sealed: [keys]` of a step entry.
pub(super) fn read_sealing(
    reader: &mut Reader,
    item: &Entry,
    by: &str,
) -> (Option<Rule>, Vec<(String, Rule)>) {
    let Some(field) = item
        .value
        .as_mapping()
        .and_then(|f| f.iter().find(|e| e.key_text() == "sealed"))
    else {
        return (None, Vec::new());
    };
    let rule = |span: Span| Rule {
        file: Arc::clone(reader.file),
        span,
        by: by.to_owned(),
    };
    match &field.value.kind {
        NodeKind::Scalar {
            value: Scalar::Bool(true),
            ..
        } => (Some(rule(field.key.span)), Vec::new()),
        NodeKind::Scalar {
            value: Scalar::Bool(false),
            ..
        } => (None, Vec::new()),
        _ => {
            let mut keys = Vec::new();
            for (key, span) in reader.strings(&field.value, "`sealed`", true) {
                let base = key.split_once('.').map(|(b, _)| b).unwrap_or(&key);
                let valid = match key.split_once('.') {
                    Some(("with", param)) => !param.is_empty(),
                    Some(("grants", kind)) => GRANT_KINDS.contains(&kind),
                    Some(_) => false,
                    None => SEALABLE_STEP_KEYS.contains(&base),
                };
                if valid {
                    keys.push((key, rule(span)));
                } else {
                    let help = did_you_mean_help(&key, SEALABLE_STEP_KEYS).unwrap_or_else(|| {
                        format!(
                            "`sealed` is `true` or a list of {}, `with.<param>`, `grants.<kind>`",
                            SEALABLE_STEP_KEYS.join(", ")
                        )
                    });
                    reader
                        .error(
                            span,
                            format!("`{key}` is not a key of a step that can be sealed"),
                        )
                        .help = Some(help);
                }
            }
            (None, keys)
        }
    }
}
