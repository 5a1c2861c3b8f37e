//! Substitution: `${{ params.NAME }}` replaced by the template parameter's value, before a
//! level is merged.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::diag::{Diagnostic, SourceFile, did_you_mean_help};
use crate::model::is_identifier;
use crate::yaml::{Entry, Node, NodeKind, Scalar};

/// A level's file (`root`, whose parameters have `values`) with `${{ params.NAME }}` replaced, without `parameters:` (whose
/// defaults are plain values).
pub(super) fn substitute_document(
    root: &Node,
    values: &BTreeMap<String, Value>,
    file: &Arc<SourceFile>,
    problems: &mut Vec<Diagnostic>,
) -> Node {
    let NodeKind::Mapping(entries) = &root.kind else {
        return root.clone();
    };
    let entries = entries
        .iter()
        .map(|e| {
            if matches!(e.key_text(), "parameters" | "with" | "interfaces") {
                e.clone()
            } else {
                Entry {
                    key: e.key.clone(),
                    value: substitute(&e.value, values, file, problems),
                }
            }
        })
        .collect();
    Node {
        kind: NodeKind::Mapping(entries),
        span: root.span,
    }
}

/// `node` with every `${{ params.NAME }}` replaced by the parameter's value.
pub(super) fn substitute(
    node: &Node,
    values: &BTreeMap<String, Value>,
    file: &Arc<SourceFile>,
    problems: &mut Vec<Diagnostic>,
) -> Node {
    let kind = match &node.kind {
        NodeKind::Scalar {
            value: Scalar::String(text),
            ..
        } if text.contains("${{") => match substitute_text(text, values) {
            Ok(None) => return node.clone(),
            Ok(Some(Value::String(s))) => NodeKind::Scalar {
                value: Scalar::String(s.clone()),
                text: s,
            },
            Ok(Some(value)) => {
                let text = value.to_string();
                let scalar = match &value {
                    Value::Bool(b) => Scalar::Bool(*b),
                    Value::Number(n) => match n.as_i64() {
                        Some(i) => Scalar::Int(i),
                        None => Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    Value::Null => Scalar::Null,
                    _ => Scalar::String(text.clone()),
                };
                NodeKind::Scalar {
                    value: scalar,
                    text,
                }
            }
            Err((message, help)) => {
                problems.push(Diagnostic::error(file, node.span, message).with_help(help));
                return node.clone();
            }
        },
        NodeKind::Scalar { .. } => return node.clone(),
        NodeKind::Sequence(items) => NodeKind::Sequence(
            items
                .iter()
                .map(|i| substitute(i, values, file, problems))
                .collect(),
        ),
        NodeKind::Mapping(entries) => NodeKind::Mapping(
            entries
                .iter()
                .map(|e| Entry {
                    key: e.key.clone(),
                    value: substitute(&e.value, values, file, problems),
                })
                .collect(),
        ),
    };
    Node {
        kind,
        span: node.span,
    }
}

/// Replaces the `${{ params.NAME }}` of a string. `Ok(None)`: it names no parameter.
/// A string that is exactly one such expression gives the value with its type.
fn substitute_text(
    text: &str,
    values: &BTreeMap<String, Value>,
) -> Result<Option<Value>, (String, String)> {
    let mut out = String::new();
    let mut rest = text;
    let mut replaced = 0;
    let mut whole: Option<Value> = None;
    while let Some(start) = rest.find("${{") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end].trim();
        out.push_str(&rest[..start]);
        let mentions = inner
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| word == "params");
        if !mentions {
            out.push_str(&rest[start..start + 3 + end + 2]);
            rest = &after[end + 2..];
            continue;
        }
        let Some(name) = inner
            .strip_prefix("params.")
            .filter(|n| is_identifier(n, true))
        else {
            return Err((
                format!(
                    "`${{{{ {inner} }}}}`: template parameters are replaced only as `${{{{ params.NAME }}}}`"
                ),
                "compute with run-time values (`inputs`, `steps`) in a separate expression".into(),
            ));
        };
        let Some(value) = values.get(name) else {
            let help = did_you_mean_help(name, values.keys().map(String::as_str)).unwrap_or_else(|| {
                if values.is_empty() {
                    "this file takes no parameters (a pipeline file reads run-time values as `inputs`)".into()
                } else {
                    let list: Vec<String> = values.keys().map(|k| format!("`{k}`")).collect();
                    format!("the parameters are {}", list.join(", "))
                }
            });
            return Err((format!("unknown parameter `{name}`"), help));
        };
        replaced += 1;
        if start == 0 && after[end + 2..].is_empty() && replaced == 1 && out.is_empty() {
            whole = Some(value.clone());
        }
        match value {
            Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if replaced == 0 {
        return Ok(None);
    }
    Ok(Some(whole.unwrap_or(Value::String(out))))
}
