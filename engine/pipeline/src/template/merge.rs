//! The merge of one level into the chain merged so far: its top-level settings, `inputs`,
//! `secrets` and `keys` by name, interfaces, bindings, steps, slots and fills, each
//! checked against what the levels above seal.

use std::sync::Arc;

use crate::diag::{Diagnostic, Span, did_you_mean_help};
use crate::model::{Reader, StepMode, read_exec_confinement, read_input, read_key, read_secret};
use crate::yaml::{Entry, Node};

use super::chain::Level;
use super::config::read_bindings;
use super::interfaces::read_interface;
use super::merged::{Merged, Setting};
use super::problems::Problems;
use super::seal::{Rule, SEALABLE};
use super::slots::{fill_slot, read_slot};
use super::steps::{change_step, new_step};
use super::substitute::substitute_document;

/// The keys of a pipeline file that extends a template.
const CHILD_KEYS: [&str; 13] = [
    "version",
    "extends",
    "with",
    "catalogs",
    "bindings",
    "name",
    "description",
    "exec-confinement",
    "inputs",
    "secrets",
    "keys",
    "steps",
    "fill",
];

/// Merges the chain, from the template at the top down to the pipeline file.
pub(super) fn merge(problems: &mut Problems, chain: &[Level]) -> Merged {
    let mut merged = Merged::default();
    for k in (0..chain.len()).rev() {
        let level = &chain[k];
        let body = substitute_document(&level.root, &level.values, &level.file, &mut problems.list);
        merge_level(problems, &mut merged, chain, k, &body);
    }
    merged
}

/// Merges level `k` (its file substituted: `body`) into what the levels above made.
fn merge_level(
    problems: &mut Problems,
    merged: &mut Merged,
    chain: &[Level],
    k: usize,
    body: &Node,
) {
    let level = &chain[k];
    let file = Arc::clone(&level.file);
    let by = level.name();
    let is_top = k == chain.len() - 1;
    let Some(entries) = body.as_mapping() else {
        return;
    };
    let mut reader = Reader::new(&file, &level.dir, StepMode::Template);
    if k == 0 {
        reader.unknown_keys(
            entries,
            &CHILD_KEYS,
            "in a pipeline that extends a template",
        );
    }
    let find = |key: &str| entries.iter().find(|e| e.key_text() == key);
    // A template's own `sealed:` applies to the levels below it, not to itself.
    let mut sealed_here: Vec<(String, Rule)> = Vec::new();
    if k > 0
        && let Some(e) = find("sealed")
    {
        for (key, span) in reader.strings(&e.value, "`sealed`", true) {
            if SEALABLE.contains(&key.as_str()) {
                sealed_here.push((
                    key,
                    Rule {
                        file: Arc::clone(&file),
                        span,
                        by: by.clone(),
                    },
                ));
            } else {
                let help = did_you_mean_help(&key, SEALABLE).unwrap_or_else(|| {
                    format!("top-level keys that can be sealed: {}", SEALABLE.join(", "))
                });
                reader.error(span, format!("`{key}` cannot be sealed")).help = Some(help);
            }
        }
    }
    let sealed_rule = |merged: &Merged, key: &str| {
        merged
            .sealed
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, r)| r.clone())
    };
    let mut violations: Vec<(Span, String, Rule)> = Vec::new();
    // name, description, exec-confinement: the lowest level wins.
    for key in ["name", "description"] {
        if let Some(e) = find(key)
            && let Some(value) = reader.string(&e.value, &format!("`{key}`"))
        {
            if let Some(rule) = sealed_rule(merged, key) {
                violations.push((
                    e.key.span,
                    format!("`{key}` is sealed by {}", rule.by),
                    rule,
                ));
                continue;
            }
            let setting = Some(Setting {
                value,
                span: e.value.span,
                file: None,
            });
            if key == "name" {
                merged.name = setting;
            } else {
                merged.description = setting;
            }
        }
    }
    if let Some(e) = find("exec-confinement")
        && let Some((value, span)) = read_exec_confinement(&mut reader, &e.value)
    {
        match sealed_rule(merged, "exec-confinement") {
            Some(rule) => violations.push((
                e.key.span,
                format!("`exec-confinement` is sealed by {}", rule.by),
                rule,
            )),
            None => {
                merged.exec_confinement = Some(Setting {
                    value,
                    span,
                    file: Some(Arc::clone(&file)),
                })
            }
        }
    }
    // inputs, secrets, keys: merged by name.
    let sealed_inputs = sealed_rule(merged, "inputs");
    let sealed_secrets = sealed_rule(merged, "secrets");
    let sealed_keys = sealed_rule(merged, "keys");
    let mut by_name = MergeByName {
        reader: &mut reader,
        violations: &mut violations,
    };
    by_name.merge(
        find("inputs"),
        "inputs",
        sealed_inputs,
        &mut merged.inputs,
        |r, e| read_input(r, e),
        |d| (&d.name, d.span),
    );
    by_name.merge(
        find("secrets"),
        "secrets",
        sealed_secrets,
        &mut merged.secrets,
        |r, e| read_secret(r, e),
        |d| (&d.name, d.span),
    );
    by_name.merge(
        find("keys"),
        "keys",
        sealed_keys,
        &mut merged.keys,
        |r, e| read_key(r, e),
        |d| (&d.name, d.span),
    );
    // Interfaces and template bindings.
    if k > 0 {
        if let Some(e) = find("interfaces")
            && let Some(items) = reader.mapping(&e.value, "`interfaces`")
        {
            for item in items {
                if let Some(interface) = read_interface(&mut reader, item) {
                    if let Some(other) = merged.interfaces.iter().find(|i| i.name == interface.name)
                    {
                        let d = Diagnostic::error(
                            &file,
                            interface.span,
                            format!("interface `{}` is already declared", interface.name),
                        )
                        .with_note_at(
                            &other.file,
                            other.span,
                            "declared here",
                        );
                        reader.problems.push(d);
                        continue;
                    }
                    merged.interfaces.push(interface);
                }
            }
        }
        if let Some(e) = find("bindings") {
            for binding in read_bindings(&mut reader, &e.value) {
                merged.template_bindings.push((k, binding));
            }
        }
    }
    // Steps: new ones at the top, changes below.
    if let Some(e) = find("steps")
        && let Some(items) = reader.mapping(&e.value, "`steps`")
    {
        for item in items {
            let id = item.key_text();
            match merged
                .steps
                .iter()
                .position(|s| s.decl.id == id && s.removed.is_none())
            {
                Some(index) => {
                    change_step(&mut reader, merged, index, item, &by);
                }
                None if is_top => {
                    reader.step_mode = StepMode::Template;
                    if let Some(step) = new_step(&mut reader, merged, item, k, &by, None) {
                        merged.steps.push(step);
                    }
                }
                None => {
                    let open: Vec<String> = merged
                        .slots
                        .iter()
                        .filter(|s| s.filled.is_none())
                        .map(|s| format!("`{}`", s.name))
                        .collect();
                    let parent = chain[k + 1].name();
                    let help = if open.is_empty() {
                        format!("{parent} leaves no slot open for new steps")
                    } else {
                        format!(
                            "add it to a slot: `fill: {{ <slot>: {{ {id}: ... }} }}`; the open slots are {}",
                            open.join(", ")
                        )
                    };
                    let suggestion =
                        did_you_mean_help(id, merged.steps.iter().map(|s| s.decl.id.as_str()));
                    reader
                        .error(
                            item.key.span,
                            format!("`{id}` is not a step of {parent}: new steps go in its slots"),
                        )
                        .help = Some(suggestion.map(|s| format!("{s} ({help})")).unwrap_or(help));
                }
            }
        }
    }
    // Slots declared here, for the levels below.
    if let Some(e) = find("slots") {
        if k == 0 {
            reader.error(
                e.key.span,
                "a pipeline file cannot declare slots: nothing extends it",
            );
        } else if let Some(items) = reader.mapping(&e.value, "`slots`") {
            for item in items {
                if let Some(slot) = read_slot(&mut reader, merged, item, k, &by) {
                    merged.slots.push(slot);
                }
            }
        }
    }
    // Fills of the slots above.
    if let Some(e) = find("fill")
        && let Some(items) = reader.mapping(&e.value, "`fill`")
    {
        for item in items {
            fill_slot(&mut reader, merged, item, k, &by);
        }
    }
    // Sealed `keys`: only steps the sealing template (or one above it) grants them
    // to may sign with them; a level below cannot grant them to its own steps.
    if let Some(rule) = sealed_rule(merged, "keys") {
        for step in &merged.steps {
            if !Arc::ptr_eq(step.decl.file_of("grants.keys"), &file) {
                continue;
            }
            for (key, span) in &step.decl.grants.keys {
                violations.push((
                    *span,
                    format!(
                        "step `{}` cannot be granted key `{key}`: the keys are sealed by {}",
                        step.decl.id, rule.by
                    ),
                    rule.clone(),
                ));
            }
        }
    }
    for (span, message, rule) in violations {
        let d = Diagnostic::error(&file, span, message).with_note_at(
            &rule.file,
            rule.span,
            format!("sealed by {} here", rule.by),
        );
        reader.problems.push(d);
    }
    merged.sealed.extend(sealed_here);
    problems.list.append(&mut reader.problems);
}

/// Merges `inputs`, `secrets` or `keys` of a level into what the levels above declared:
/// new names are added, known ones replaced, unless a level above sealed the key.
struct MergeByName<'r, 'a> {
    reader: &'r mut Reader<'a>,
    violations: &'r mut Vec<(Span, String, Rule)>,
}

impl<'a> MergeByName<'_, 'a> {
    /// Merges the entries of `entry` (`key:`), read with `read`, into `into`.
    fn merge<T>(
        &mut self,
        entry: Option<&Entry>,
        key: &str,
        sealed: Option<Rule>,
        into: &mut Vec<T>,
        read: impl Fn(&mut Reader<'a>, &Entry) -> Option<T>,
        name: fn(&T) -> (&String, Span),
    ) {
        let Some(items) = entry.and_then(|e| self.reader.mapping(&e.value, &format!("`{key}`")))
        else {
            return;
        };
        for item in items {
            let Some(decl) = read(self.reader, item) else {
                continue;
            };
            let (decl_name, span) = name(&decl);
            if let Some(rule) = &sealed {
                self.violations.push((
                    span,
                    format!("`{key}` are sealed by {}", rule.by),
                    rule.clone(),
                ));
                continue;
            }
            let decl_name = decl_name.clone();
            into.retain(|d| *name(d).0 != decl_name);
            into.push(decl);
        }
    }
}
