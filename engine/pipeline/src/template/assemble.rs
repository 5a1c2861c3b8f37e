//! The resolved pipeline, assembled from the merged chain: what only the whole chain
//! shows (required slots, removed steps that others need, `needs` that name slots) is
//! checked, and interfaces are bound.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use crate::diag::{SourceFile, Span};
use crate::model::{Pipeline, StepDecl};

use super::chain::Level;
use super::config::BindingDecl;
use super::interfaces::bind_interface;
use super::merged::{Merged, MergedStep};
use super::problems::Problems;

/// Checks what only the whole chain shows, binds interfaces, and builds the pipeline.
pub(super) fn assemble(
    problems: &mut Problems,
    merged: Merged,
    chain: &[Level],
    root_bindings: &[BindingDecl],
    config_bindings: &[BindingDecl],
    root_dir: &Path,
) -> Pipeline {
    let root = &chain[0];
    let root_span = root
        .extends
        .as_ref()
        .map(|e| e.span)
        .unwrap_or(root.root.span);
    // Required slots.
    for slot in &merged.slots {
        if slot.required && slot.filled.is_none() {
            let d = problems.error(
                &root.file,
                root_span,
                format!("slot `{}` of {} must be filled", slot.name, slot.by),
            );
            problems.note(d, &slot.file, slot.span, "the slot is declared here");
            problems.help(
                d,
                format!(
                    "add `fill: {{ {}: {{ <step id>: {{ uses: ... }} }} }}`",
                    slot.name
                ),
            );
        }
    }
    // Removed steps that others need.
    let removed: BTreeMap<&str, (Arc<SourceFile>, Span)> = merged
        .steps
        .iter()
        .filter_map(|s| s.removed.clone().map(|r| (s.decl.id.as_str(), r)))
        .collect();
    let mut steps: Vec<&MergedStep> = merged
        .steps
        .iter()
        .filter(|s| s.removed.is_none())
        .collect();
    for step in &steps {
        for (need, span) in &step.decl.needs {
            if let Some((file, at)) = removed.get(need.as_str()) {
                let d = problems.error(
                    file,
                    *at,
                    format!(
                        "step `{need}` cannot be removed: step `{}` needs it",
                        step.decl.id
                    ),
                );
                problems.note(d, step.decl.file_of("needs"), *span, "needed here");
            }
        }
    }
    // Needs naming slots: the slot's steps, or its own needs when empty.
    let expand = |name: &str| -> Option<Vec<String>> {
        merged.slots.iter().find(|s| s.name == name)?;
        let mut out = Vec::new();
        let mut todo = vec![name.to_owned()];
        let mut seen = BTreeSet::new();
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            match merged.slots.iter().find(|s| s.name == n) {
                Some(slot) if slot.filled.is_some() => out.extend(slot.steps.iter().cloned()),
                Some(slot) => todo.extend(slot.needs.iter().map(|(n, _)| n.clone())),
                None => out.push(n),
            }
        }
        out.sort();
        out.dedup();
        Some(out)
    };
    let mut decls: Vec<StepDecl> = Vec::new();
    for step in steps.drain(..) {
        let mut decl = step.decl.clone();
        let mut needs: Vec<(String, Span)> = Vec::new();
        let mut files: Vec<(String, Arc<SourceFile>)> = Vec::new();
        for (need, span) in &decl.needs {
            let file = decl.file_of(&format!("needs.{need}")).clone();
            match expand(need) {
                Some(expanded) => {
                    for n in expanded {
                        if n != decl.id && !needs.iter().any(|(x, _)| *x == n) {
                            files.push((format!("needs.{n}"), Arc::clone(&file)));
                            needs.push((n, *span));
                        }
                    }
                }
                None => {
                    if !needs.iter().any(|(x, _)| x == need) {
                        files.push((format!("needs.{need}"), Arc::clone(&file)));
                        needs.push((need.clone(), *span));
                    }
                }
            }
        }
        decl.needs = needs;
        decl.changed_in.retain(|(k, _)| !k.starts_with("needs."));
        decl.changed_in.extend(files);
        decl.origin.sealed = step.sealed_all.is_some() || !step.sealed_keys.is_empty();
        decl.origin.template = step.level.checked_sub(1);
        let sealed_uses = step.seal_of("uses").is_some();
        bind_interface(
            problems,
            &mut decl,
            sealed_uses,
            &merged.interfaces,
            &merged.template_bindings,
            root_bindings,
            config_bindings,
        );
        decls.push(decl);
    }
    let name = match &merged.name {
        Some(setting) => Some(setting.value.clone()),
        None => {
            let d = problems.error(&root.file, root_span, "the pipeline has no `name`");
            problems.help(d, "add `name:` to the pipeline file (or to the template)");
            None
        }
    };
    if decls.is_empty() {
        problems.error(&root.file, root_span, "the resolved pipeline has no steps");
    }
    Pipeline {
        source: Arc::clone(&root.file),
        base_dir: root_dir.to_path_buf(),
        name,
        description: merged.description.map(|d| d.value),
        inputs: merged.inputs,
        steps: decls,
        exec_confinement_file: merged
            .exec_confinement
            .as_ref()
            .and_then(|s| s.file.clone()),
        exec_confinement: merged.exec_confinement.map(|s| (s.value, s.span)),
        secrets: merged.secrets,
        keys: merged.keys,
        problems: Vec::new(),
        templates: chain[1..].iter().filter_map(|l| l.info.clone()).collect(),
    }
}
