//! Slots: the places a template leaves open for new steps (`slots:`), and the levels below
//! that fill them (`fill:`).

use std::sync::Arc;

use crate::diag::{Diagnostic, did_you_mean_help};
use crate::model::{Reader, StepMode, is_identifier};
use crate::yaml::{Entry, NodeKind, Scalar};

use super::merged::{Merged, Slot};
use super::steps::new_step;

/// A slot level `k` declares for the levels below (`slots:`).
pub(super) fn read_slot(
    reader: &mut Reader,
    merged: &Merged,
    item: &Entry,
    k: usize,
    by: &str,
) -> Option<Slot> {
    let name = item.key_text().to_owned();
    if !is_identifier(&name, true) {
        reader.error(item.key.span, format!("invalid slot name `{name}`"));
        return None;
    }
    if let Some(step) = merged.steps.iter().find(|s| s.decl.id == name) {
        let d = Diagnostic::error(
            reader.file,
            item.key.span,
            format!("slot `{name}` has the id of a step"),
        )
        .with_note_at(
            &step.decl.declared_in,
            step.decl.span,
            "the step is declared here",
        );
        reader.problems.push(d);
        return None;
    }
    if let Some(other) = merged.slots.iter().find(|s| s.name == name) {
        let d = Diagnostic::error(
            reader.file,
            item.key.span,
            format!("slot `{name}` is already declared"),
        )
        .with_note_at(&other.file, other.span, "declared here");
        reader.problems.push(d);
        return None;
    }
    let mut slot = Slot {
        name: name.clone(),
        file: Arc::clone(reader.file),
        span: item.key.span,
        level: k,
        by: by.to_owned(),
        required: false,
        needs: Vec::new(),
        filled: None,
        steps: Vec::new(),
    };
    if matches!(
        item.value.kind,
        NodeKind::Scalar {
            value: Scalar::Null,
            ..
        }
    ) {
        return Some(slot);
    }
    let fields = reader.mapping(&item.value, &format!("slot `{name}`"))?;
    reader.unknown_keys(
        fields,
        &["description", "required", "needs"],
        &format!("in slot `{name}`"),
    );
    for field in fields {
        match field.key_text() {
            "description" => {
                reader.string(&field.value, "`description`");
            }
            "required" => match &field.value.kind {
                NodeKind::Scalar {
                    value: Scalar::Bool(b),
                    ..
                } => slot.required = *b,
                _ => {
                    reader.error(field.value.span, "`required` must be `true` or `false`");
                }
            },
            "needs" => slot.needs = reader.strings(&field.value, "`needs`", true),
            _ => {}
        }
    }
    Some(slot)
}

/// Level `k` fills a slot of a level above with new steps (`fill:`).
pub(super) fn fill_slot(
    reader: &mut Reader,
    merged: &mut Merged,
    item: &Entry,
    k: usize,
    by: &str,
) {
    let name = item.key_text();
    let Some(index) = merged.slots.iter().position(|s| s.name == name) else {
        let open: Vec<&str> = merged
            .slots
            .iter()
            .filter(|s| s.filled.is_none() && s.level > k)
            .map(|s| s.name.as_str())
            .collect();
        let help = did_you_mean_help(name, open.iter().copied()).unwrap_or_else(|| {
            if open.is_empty() {
                "the templates above leave no slot open".into()
            } else {
                format!(
                    "the open slots are {}",
                    open.iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        });
        reader
            .error(item.key.span, format!("unknown slot `{name}`"))
            .help = Some(help);
        return;
    };
    let slot = &merged.slots[index];
    if slot.level <= k {
        reader.error(
            item.key.span,
            format!("slot `{name}` is declared by this file: only the levels below fill it"),
        );
        return;
    }
    if let Some((_, file, span)) = &slot.filled {
        let d = Diagnostic::error(
            reader.file,
            item.key.span,
            format!("slot `{name}` of {} is already filled", slot.by),
        )
        .with_note_at(file, *span, "filled here");
        reader.problems.push(d);
        return;
    }
    let slot_needs = slot.needs.clone();
    let Some(steps) = reader.mapping(&item.value, &format!("the steps of slot `{name}`")) else {
        return;
    };
    if steps.is_empty() {
        reader.error(
            item.key.span,
            format!("the fill of slot `{name}` has no steps"),
        );
        return;
    }
    reader.step_mode = StepMode::Template;
    let mut ids = Vec::new();
    for step in steps {
        if let Some(mut new) = new_step(reader, merged, step, k, by, Some(name)) {
            for (need, span) in &slot_needs {
                if !new.decl.needs.iter().any(|(n, _)| n == need) {
                    // The slot's needs are written in the template that declared it.
                    new.decl.needs.push((need.clone(), *span));
                    new.decl.changed_in.push((
                        format!("needs.{need}"),
                        Arc::clone(&merged.slots[index].file),
                    ));
                }
            }
            ids.push(new.decl.id.clone());
            merged.steps.push(new);
        }
    }
    let slot = &mut merged.slots[index];
    slot.filled = Some((k, Arc::clone(reader.file), item.key.span));
    slot.steps = ids;
}
