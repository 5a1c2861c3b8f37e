//! The steps of the chain: new steps of a template or a slot, and the changes (or removal)
//! a level below makes to inherited steps, within what the levels above seal.

use std::sync::Arc;

use serde_json::Value;

use crate::diag::{Diagnostic, Span};
use crate::expr::Template;
use crate::model::{Reader, StepDecl, StepMode, read_step};
use crate::origin::StepOrigin;
use crate::yaml::{Entry, NodeKind, Scalar};

use super::merged::{Merged, MergedStep};
use super::seal::{Rule, read_sealing};

/// A new step of level `k` (a template, or a fill of a slot), unless its id is taken.
pub(super) fn new_step(
    reader: &mut Reader,
    merged: &Merged,
    item: &Entry,
    k: usize,
    by: &str,
    slot: Option<&str>,
) -> Option<MergedStep> {
    let id = item.key_text();
    if let Some(other) = merged.steps.iter().find(|s| s.decl.id == id) {
        let d = Diagnostic::error(
            reader.file,
            item.key.span,
            format!("step `{id}` is already a step of the pipeline"),
        )
        .with_note_at(&other.decl.declared_in, other.decl.span, "declared here")
        .with_help("step ids are unique across the template chain");
        reader.problems.push(d);
        return None;
    }
    if let Some(other) = merged.slots.iter().find(|s| s.name == id) {
        let d = Diagnostic::error(
            reader.file,
            item.key.span,
            format!("`{id}` is already the name of a slot"),
        )
        .with_note_at(&other.file, other.span, "declared here");
        reader.problems.push(d);
        return None;
    }
    let mut decl = read_step(reader, item)?;
    let (sealed_all, sealed_keys) = read_sealing(reader, item, by);
    decl.origin = StepOrigin {
        template: k.checked_sub(1),
        sealed: false,
        slot: slot.map(str::to_owned),
        interface: decl.interface.as_ref().map(|(n, _)| n.clone()),
    };
    Some(MergedStep {
        decl,
        level: k,
        sealed_all,
        sealed_keys,
        removed: None,
    })
}

/// Level `by` changes (or removes) step `index` of the levels above, unless they seal it.
pub(super) fn change_step(
    reader: &mut Reader,
    merged: &mut Merged,
    index: usize,
    item: &Entry,
    by: &str,
) {
    let id = item.key_text().to_owned();
    let Some(fields) = reader.mapping(&item.value, &format!("the change to step `{id}`")) else {
        return;
    };
    let file = Arc::clone(reader.file);
    let mut violations: Vec<(Span, String, Rule)> = Vec::new();
    let step = &merged.steps[index];
    // What the change touches, as sealable keys.
    let mut touched: Vec<(String, Span)> = Vec::new();
    let mut remove = None;
    for field in fields {
        match field.key_text() {
            "sealed" => {}
            "remove" => match &field.value.kind {
                NodeKind::Scalar {
                    value: Scalar::Bool(true),
                    ..
                } => remove = Some(field.key.span),
                NodeKind::Scalar {
                    value: Scalar::Bool(false),
                    ..
                } => {}
                _ => {
                    reader.error(field.value.span, "`remove` must be `true` or `false`");
                }
            },
            "with" => {
                for param in field.value.as_mapping().unwrap_or(&[]) {
                    touched.push((format!("with.{}", param.key_text()), param.key.span));
                }
            }
            "grants" => {
                for kind in field.value.as_mapping().unwrap_or(&[]) {
                    touched.push((format!("grants.{}", kind.key_text()), kind.key.span));
                }
            }
            other => touched.push((other.to_owned(), field.key.span)),
        }
    }
    if let Some(span) = remove {
        if let Some(rule) = step.any_seal() {
            violations.push((
                span,
                format!("step `{id}` is sealed by {}: it cannot be removed", rule.by),
                rule.clone(),
            ));
        } else if fields.len() > 1 {
            reader.error(
                span,
                format!("step `{id}` is removed: nothing else can be changed in it"),
            );
        }
    }
    for (key, span) in &touched {
        if let Some(rule) = step.seal_of(key) {
            violations.push((
                *span,
                format!(
                    "step `{id}` is sealed by {}: `{key}` cannot be changed",
                    rule.by
                ),
                rule.clone(),
            ));
        }
    }
    let sealing = read_sealing(reader, item, by);
    if !violations.is_empty() {
        for (span, message, rule) in violations {
            let d = Diagnostic::error(&file, span, message).with_note_at(
                &rule.file,
                rule.span,
                format!("sealed by {} here", rule.by),
            );
            reader.problems.push(d);
        }
        return;
    }
    let step = &mut merged.steps[index];
    if let Some(span) = remove {
        step.removed = Some((Arc::clone(&file), span));
        return;
    }
    reader.step_mode = StepMode::Change;
    let change = read_step(reader, item);
    reader.step_mode = StepMode::Template;
    let Some(change) = change else { return };
    let decl = &mut step.decl;
    let changed = |decl: &mut StepDecl, key: String| {
        decl.changed_in.push((key, Arc::clone(&file)));
    };
    for (key, _) in &touched {
        match key.as_str() {
            "uses" => {
                decl.uses = change.uses.clone();
                decl.version_req = change.version_req.clone();
                decl.interface = change.interface.clone();
                decl.origin.interface = change.interface.as_ref().map(|(n, _)| n.clone());
            }
            "needs" => decl.needs = change.needs.clone(),
            "if" => decl.condition = change.condition.clone(),
            "timeout" => decl.timeout = change.timeout,
            "memory" => decl.memory = change.memory,
            "continue-on-error" => decl.continue_on_error = change.continue_on_error,
            "retry" => decl.retry = change.retry.clone(),
            "cache" => decl.cache = change.cache,
            "name" => decl.name = change.name.clone(),
            "description" => decl.description = change.description.clone(),
            k if k.starts_with("with.") => {
                let name = &k["with.".len()..];
                decl.with.retain(|p| p.name != name);
                if let Some(param) = change.with.iter().find(|p| p.name == name)
                    && param.value != Template::Literal(Value::Null)
                {
                    decl.with.push(param.clone());
                }
                if decl.with_span.is_none() {
                    decl.with_span = change.with_span;
                }
            }
            "grants.fs" => decl.grants.fs = change.grants.fs.clone(),
            "grants.exec" => {
                decl.grants.exec = change.grants.exec.clone();
                decl.grants.exec_span = change.grants.exec_span;
            }
            "grants.env" => decl.grants.env = change.grants.env.clone(),
            "grants.secrets" => decl.grants.secrets = change.grants.secrets.clone(),
            "grants.keys" => decl.grants.keys = change.grants.keys.clone(),
            "grants.net" => decl.grants.net = change.grants.net.clone(),
            _ => continue,
        }
        changed(decl, key.clone());
    }
    // A level may seal more of what it inherits.
    if let Some(rule) = sealing.0 {
        step.sealed_all.get_or_insert(rule);
    }
    step.sealed_keys.extend(sealing.1);
}
