//! Typed parameters: a template's `parameters:` and an interface's `params:`, read from
//! their declarations, and values checked against them.

use std::sync::Arc;

use serde_json::Value;

use crate::diag::did_you_mean_help;
use crate::interface::TypedParam;
use crate::model::{Reader, is_identifier};
use crate::plugin::{ParamType, json_type_name};
use crate::yaml::Entry;

/// `name: { type, default, pattern, description }`.
pub(super) fn read_typed_param(
    reader: &mut Reader,
    entry: &Entry,
    what: &str,
) -> Option<TypedParam> {
    let name = entry.key_text().to_owned();
    if !is_identifier(&name, true) {
        reader.error(entry.key.span, format!("invalid {what} name `{name}`"));
        return None;
    }
    let place = format!("{what} `{name}`");
    let fields = reader.mapping(&entry.value, &format!("`{place}`"))?;
    reader.unknown_keys(
        fields,
        &["type", "default", "pattern", "description"],
        &format!("in {place}"),
    );
    let find = |k: &str| fields.iter().find(|e| e.key_text() == k);
    const TYPES: [(&str, ParamType); 7] = [
        ("string", ParamType::String),
        ("integer", ParamType::Integer),
        ("number", ParamType::Number),
        ("boolean", ParamType::Boolean),
        ("list", ParamType::List),
        ("object", ParamType::Object),
        ("any", ParamType::Any),
    ];
    let ty = match find("type").and_then(|t| t.value.as_str().map(|s| (s, t.value.span))) {
        Some((name, span)) => match TYPES.iter().find(|(n, _)| *n == name) {
            Some((_, ty)) => *ty,
            None => {
                reader.error(span, format!("unknown type `{name}`")).help =
                    did_you_mean_help(name, TYPES.iter().map(|(n, _)| *n)).or(Some(
                        "types are `string`, `integer`, `number`, `boolean`, `list`, `object` and `any`".into(),
                    ));
                return None;
            }
        },
        None => {
            reader
                .error(entry.key.span, format!("{place} has no `type`"))
                .help = Some("add `type: string` (or `integer`, `number`, `boolean`)".into());
            return None;
        }
    };
    let description = find("description").and_then(|d| reader.string(&d.value, "`description`"));
    let pattern = match find("pattern") {
        Some(p) => {
            let text = reader.string(&p.value, "`pattern`")?;
            if ty != ParamType::String {
                reader.error(p.key.span, "`pattern` is for strings");
                return None;
            }
            if let Err(e) = regex::Regex::new(&format!("^(?:{text})$")) {
                reader.error(p.value.span, format!("invalid pattern: {e}"));
                return None;
            }
            Some((text, p.value.span))
        }
        None => None,
    };
    let mut param = TypedParam {
        name,
        span: entry.key.span,
        ty,
        default: None,
        pattern,
        description,
        declared_in: Arc::clone(reader.file),
    };
    if let Some(d) = find("default") {
        let value = d.value.to_json();
        if let Some(message) = check_typed_value(&param, &value) {
            reader.error(d.value.span, format!("the default of {place}: {message}"));
            return None;
        }
        param.default = Some(value);
    }
    Some(param)
}

/// Why `value` does not fit `param`, if it does not.
pub(super) fn check_typed_value(param: &TypedParam, value: &Value) -> Option<String> {
    if !param.ty.accepts(value) {
        return Some(format!(
            "expected {}, found {}",
            param.ty.described(),
            json_type_name(value)
        ));
    }
    if let (Some((pattern, _)), Value::String(s)) = (&param.pattern, value) {
        let matches = regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(s));
        if !matches {
            return Some(format!("`{s}` does not match the pattern `{pattern}`"));
        }
    }
    None
}
