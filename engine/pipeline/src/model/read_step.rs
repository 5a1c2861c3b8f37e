//! Reading one step: its plugin (`uses:`), `needs`, condition (`if:`), parameters
//! (`with:`), limits and grants (read by `read_grants.rs`).

use std::sync::Arc;

use serde_json::Value;

use crate::diag::Span;
use crate::expr::{Expression, Template};
use crate::origin::StepOrigin;
use crate::yaml::{Entry, Node, NodeKind, Scalar};

use super::read_grants::read_grants;
use super::reader::{Reader, StepMode};
use super::types::{GrantsDecl, ParamDecl, StepDecl};
use crate::retry::{FailureClass, MAX_ATTEMPTS, RetryPolicy};

use super::values::{MAX_MEMORY, Uses, is_identifier, parse_duration, parse_size, parse_uses_spec};

pub(crate) fn read_step(reader: &mut Reader, entry: &Entry) -> Option<StepDecl> {
    let id = entry.key_text().to_owned();
    if !is_identifier(&id, true) {
        reader.error(
            entry.key.span,
            format!("invalid step id `{id}`: use letters, digits, `_` and `-`, starting with a letter or `_`"),
        );
        return None;
    }
    let place = format!("step `{id}`");
    let fields = reader.mapping(&entry.value, &format!("`{place}`"))?;
    let mut known = vec![
        "uses",
        "name",
        "description",
        "needs",
        "if",
        "with",
        "timeout",
        "memory",
        "continue-on-error",
        "retry",
        "cache",
        "grants",
    ];
    match reader.step_mode {
        StepMode::Pipeline => {}
        StepMode::Template => known.push("sealed"),
        StepMode::Change => known.extend(["sealed", "remove"]),
    }
    reader.unknown_keys(fields, &known, &format!("in {place}"));
    let mut step = StepDecl {
        id,
        span: entry.key.span,
        name: None,
        description: None,
        uses: None,
        needs: Vec::new(),
        condition: None,
        with: Vec::new(),
        with_span: None,
        timeout: None,
        memory: None,
        continue_on_error: false,
        retry: None,
        cache: None,
        grants: GrantsDecl::default(),
        version_req: None,
        interface: None,
        binding: None,
        declared_in: Arc::clone(reader.file),
        changed_in: Vec::new(),
        origin: StepOrigin::default(),
    };
    let mut has_uses = false;
    for field in fields {
        let value = &field.value;
        match field.key_text() {
            "uses" => {
                has_uses = true;
                if let Some(text) = reader.string(value, "`uses`") {
                    match parse_uses_spec(&text, reader.base_dir) {
                        Ok(Uses::Plugin(plugin, req)) => {
                            step.uses = Some((plugin, value.span));
                            step.version_req = req.map(|r| (r, value.span));
                        }
                        Ok(Uses::Interface(name)) => {
                            step.interface = Some((name, value.span));
                        }
                        Err(message) => {
                            reader.error(value.span, message);
                        }
                    }
                }
            }
            "name" => step.name = reader.string(value, "`name`"),
            "description" => step.description = reader.string(value, "`description`"),
            "needs" => step.needs = reader.strings(value, "`needs`", true),
            "if" => step.condition = read_condition(reader, value),
            "with" => {
                step.with_span = Some(field.key.span);
                if let Some(params) = reader.mapping(value, "`with`") {
                    step.with = params
                        .iter()
                        .map(|p| ParamDecl {
                            name: p.key_text().to_owned(),
                            name_span: p.key.span,
                            value: read_param_value(reader, &p.value),
                            span: p.value.span,
                        })
                        .collect();
                }
            }
            "timeout" => {
                let parsed = value.as_str().and_then(parse_duration);
                match parsed {
                    Some(d) if d.is_zero() => {
                        reader.error(value.span, "`timeout` must be longer than 0s");
                    }
                    Some(d) => step.timeout = Some(d),
                    None => {
                        let d = reader.error(
                            value.span,
                            "`timeout` must be a duration such as `30s` or `5m`",
                        );
                        if let NodeKind::Scalar {
                            value: Scalar::Int(n),
                            ..
                        } = &value.kind
                        {
                            d.help = Some(format!("write `{n}s` for {n} seconds"));
                        } else {
                            d.help = Some(
                                "units are `ms`, `s`, `m` and `h`, largest first, e.g. `1h30m`"
                                    .into(),
                            );
                        }
                    }
                }
            }
            "memory" => {
                let parsed = match &value.kind {
                    NodeKind::Scalar {
                        value: Scalar::Int(n),
                        ..
                    } => u64::try_from(*n).ok(),
                    NodeKind::Scalar {
                        value: Scalar::String(s),
                        ..
                    } => parse_size(s),
                    _ => None,
                };
                match parsed {
                    Some(0) => {
                        reader.error(value.span, "`memory` must be more than 0 bytes");
                    }
                    Some(n) if n > MAX_MEMORY => {
                        reader.error(
                            value.span,
                            "`memory` must be at most 4GiB, the most a wasm32 memory can hold",
                        );
                    }
                    Some(n) => step.memory = Some(n),
                    None => {
                        reader
                            .error(
                                value.span,
                                "`memory` must be a size such as `64MiB` or `1GiB`",
                            )
                            .help = Some(
                            "units are `KiB`, `MiB` and `GiB`; a plain number is bytes".into(),
                        );
                    }
                }
            }
            "continue-on-error" => match &value.kind {
                NodeKind::Scalar {
                    value: Scalar::Bool(b),
                    ..
                } => step.continue_on_error = *b,
                _ => {
                    reader.error(
                        value.span,
                        format!(
                            "`continue-on-error` must be `true` or `false`, found {}",
                            value.type_name()
                        ),
                    );
                }
            },
            "retry" => step.retry = read_retry(reader, value).map(|p| (p, value.span)),
            "cache" => match &value.kind {
                NodeKind::Scalar {
                    value: Scalar::Bool(b),
                    ..
                } => step.cache = Some((*b, value.span)),
                _ => {
                    reader.error(
                        value.span,
                        format!(
                            "`cache` must be `true` or `false`, found {}",
                            value.type_name()
                        ),
                    ).help = Some(
                        "`cache: false` always runs the step; `cache: true` caches a step that reaches the network or runs unconfined commands".into(),
                    );
                }
            },
            "grants" => step.grants = read_grants(reader, value, &place),
            _ => {}
        }
    }
    if !has_uses && reader.step_mode != StepMode::Change {
        reader
            .error(entry.key.span, format!("{place} has no `uses`"))
            .help = Some("name the plugin it runs, e.g. `uses: echo`".into());
    }
    Some(step)
}

/// `retry: N` or `retry: { attempts: N, backoff: 2s, on: [failed, trap, timeout] }`.
fn read_retry(reader: &mut Reader, node: &Node) -> Option<RetryPolicy> {
    let attempts_of = |reader: &mut Reader, node: &Node| -> Option<u32> {
        match &node.kind {
            NodeKind::Scalar {
                value: Scalar::Int(n),
                ..
            } if (1..=i64::from(MAX_ATTEMPTS)).contains(n) => Some(*n as u32),
            _ => {
                reader.error(
                    node.span,
                    format!(
                        "`retry.attempts` must be a whole number from 1 to {MAX_ATTEMPTS} (the first attempt included), found {}",
                        node.type_name()
                    ),
                );
                None
            }
        }
    };
    if let NodeKind::Scalar {
        value: Scalar::Int(_),
        ..
    } = &node.kind
    {
        return attempts_of(reader, node).map(RetryPolicy::attempts);
    }
    let fields = reader.mapping(node, "`retry`")?;
    reader.unknown_keys(fields, &["attempts", "backoff", "on"], "in `retry`");
    let mut policy = RetryPolicy::attempts(1);
    let mut has_attempts = false;
    let mut ok = true;
    for field in fields {
        let value = &field.value;
        match field.key_text() {
            "attempts" => {
                has_attempts = true;
                match attempts_of(reader, value) {
                    Some(n) => policy.attempts = n,
                    None => ok = false,
                }
            }
            "backoff" => match value.as_str().and_then(parse_duration) {
                Some(d) => policy.backoff = d,
                None => {
                    ok = false;
                    reader
                        .error(
                            value.span,
                            "`retry.backoff` must be a duration such as `2s` or `1m` (the wait before the second attempt; it doubles after each)",
                        )
                        .help = Some("`0s` retries at once".into());
                }
            },
            "on" => {
                let mut on = Vec::new();
                for (name, span) in reader.strings(value, "`retry.on`", true) {
                    match FailureClass::parse(&name) {
                        Some(class) if !on.contains(&class) => on.push(class),
                        Some(_) => {}
                        None => {
                            ok = false;
                            let known: Vec<&str> =
                                FailureClass::ALL.iter().map(|c| c.name()).collect();
                            reader.error(
                                span,
                                format!(
                                    "unknown failure `{name}` in `retry.on`: use {}",
                                    known.join(", ")
                                ),
                            );
                        }
                    }
                }
                if on.is_empty() && ok {
                    ok = false;
                    reader.error(
                        value.span,
                        "`retry.on` lists no failure: the step would never be retried",
                    );
                }
                policy.on = on;
            }
            _ => {}
        }
    }
    if !has_attempts {
        reader.error(node.span, "`retry` needs `attempts`").help =
            Some("e.g. `retry: { attempts: 3 }`".into());
        return None;
    }
    ok.then_some(policy)
}

fn read_condition(reader: &mut Reader, node: &Node) -> Option<(Expression, Span)> {
    let source = match &node.kind {
        NodeKind::Scalar {
            value: Scalar::Bool(b),
            ..
        } => b.to_string(),
        NodeKind::Scalar {
            value: Scalar::String(s),
            ..
        } => {
            let trimmed = s.trim();
            match trimmed
                .strip_prefix("${{")
                .and_then(|rest| rest.strip_suffix("}}"))
            {
                Some(inner) if !inner.contains("${{") => inner.to_owned(),
                _ if trimmed.contains("${{") => {
                    reader.error(
                        node.span,
                        "`if` must be one expression, such as `${{ inputs.deploy }}`",
                    );
                    return None;
                }
                _ => trimmed.to_owned(),
            }
        }
        _ => {
            reader.error(
                node.span,
                format!("`if` must be an expression, found {}", node.type_name()),
            );
            return None;
        }
    };
    match Expression::parse(&source) {
        Ok(e) => Some((e, node.span)),
        Err(message) => {
            reader.error(node.span, message);
            None
        }
    }
}

/// A parameter value: literals stay literal, strings with `${{ }}` become expressions.
fn read_param_value(reader: &mut Reader, node: &Node) -> Template {
    match &node.kind {
        NodeKind::Scalar {
            value: Scalar::String(s),
            ..
        } => match Template::parse_str(s) {
            Ok(t) => t,
            Err(message) => {
                reader.error(node.span, message);
                Template::Literal(Value::String(s.clone()))
            }
        },
        NodeKind::Scalar { .. } => Template::Literal(node.to_json()),
        NodeKind::Sequence(items) => {
            let items: Vec<Template> = items.iter().map(|i| read_param_value(reader, i)).collect();
            if items.iter().all(Template::is_literal) {
                Template::Literal(node.to_json())
            } else {
                Template::List(items)
            }
        }
        NodeKind::Mapping(entries) => {
            let entries: Vec<(String, Template)> = entries
                .iter()
                .map(|e| (e.key_text().to_owned(), read_param_value(reader, &e.value)))
                .collect();
            if entries.iter().all(|(_, t)| t.is_literal()) {
                Template::Literal(node.to_json())
            } else {
                Template::Map(entries)
            }
        }
    }
}
