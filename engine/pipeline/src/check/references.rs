//! The names the expressions of a step read (`inputs.<name>`, `steps.<id>.outputs.<name>`):
//! each declared, and each step read one the step needs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::diag::{Span, did_you_mean_help};
use crate::expr::{Expression, Reference};
use crate::model::StepDecl;
use crate::plugin::PluginDescription;
use crate::reach::Reachability;

use super::checker::Checker;

/// CEL type names an expression may mention (`type(x) == int`).
const CEL_TYPE_NAMES: [&str; 11] = [
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
];

/// What checking a `steps.<id>` reference looks up.
pub(super) struct Lookup<'p> {
    /// Which steps each step needs, directly or not.
    pub(super) reach: Reachability<'p>,
    /// The plugin of each step, if it was found.
    pub(super) plugins: &'p [Option<Arc<PluginDescription>>],
    /// The output names of the steps read so far.
    pub(super) outputs: HashMap<usize, HashSet<&'p str>>,
}

impl<'p> Lookup<'p> {
    /// Whether step `target` (whose plugin is `plugin`) has an output named `name`.
    fn has_output(
        &mut self,
        target: usize,
        step: &'p StepDecl,
        plugin: &'p PluginDescription,
        name: &str,
    ) -> bool {
        self.outputs
            .entry(target)
            .or_insert_with(|| {
                let mut names: HashSet<&str> =
                    plugin.outputs.iter().map(|o| o.name.as_str()).collect();
                if plugin.outputs_from_params {
                    names.extend(step.with.iter().map(|p| p.name.as_str()));
                    names.extend(plugin.params.iter().map(|p| p.name.as_str()));
                }
                names
            })
            .contains(name)
    }
}

/// Checks the names an expression of step `step` reads.
pub(super) fn check_expression<'a: 'p, 'p>(
    checker: &mut Checker<'a>,
    step: usize,
    expression: &Expression,
    span: Span,
    lookup: &mut Lookup<'p>,
) {
    for reference in expression.references() {
        check_reference(checker, step, reference, span, lookup);
    }
}

/// Checks one name an expression of step `step` reads.
fn check_reference<'a: 'p, 'p>(
    checker: &mut Checker<'a>,
    step: usize,
    reference: &Reference,
    span: Span,
    lookup: &mut Lookup<'p>,
) {
    let pipeline = checker.pipeline;
    let path = &reference.path;
    let this = &pipeline.steps[step].id;
    match path.first().map(String::as_str) {
        Some("inputs") => {
            let Some(name) = path.get(1) else { return };
            let inputs = &pipeline.inputs;
            if !checker.inputs.contains(name.as_str()) {
                let help = checker
                    .suggest(name, inputs.iter().map(|i| i.name.as_str()))
                    .unwrap_or_else(|| "declare it under `inputs:`".into());
                checker
                    .error(
                        span,
                        format!("unknown input `{name}` in expression `{}`", reference),
                    )
                    .help = Some(help);
            }
        }
        Some("steps") => {
            let Some(id) = path.get(1) else { return };
            let steps = pipeline.steps.as_slice();
            let Some(&target) = checker.ids.get(id.as_str()) else {
                let help = checker.suggest(id, steps.iter().map(|s| s.id.as_str()));
                checker
                    .error(
                        span,
                        format!("unknown step `{id}` in expression `{reference}`"),
                    )
                    .help = help;
                return;
            };
            if target == step {
                checker
                    .error(
                        span,
                        format!("step `{this}` reads `steps.{id}`, its own results"),
                    )
                    .help = Some("a step can read only the steps it needs".into());
                return;
            }
            if !lookup.reach.reaches(step, target) {
                checker
                    .error(
                        span,
                        format!("step `{this}` reads `steps.{id}` but does not need it"),
                    )
                    .help = Some(format!("add `{id}` to its `needs`"));
                return;
            }
            match path.get(2).map(String::as_str) {
                None | Some("outcome") => {}
                Some("outputs") => {
                    let Some(output) = path.get(3) else { return };
                    let Some(plugin) = &lookup.plugins[target] else {
                        return;
                    };
                    let target_step = &steps[target];
                    if lookup.has_output(target, target_step, plugin, output) {
                        return;
                    }
                    let mut outputs: Vec<&str> =
                        plugin.outputs.iter().map(|o| o.name.as_str()).collect();
                    if plugin.outputs_from_params {
                        outputs.extend(target_step.with.iter().map(|p| p.name.as_str()));
                        outputs.extend(plugin.params.iter().map(|p| p.name.as_str()));
                    }
                    let help = checker
                        .suggest(output, outputs.iter().copied())
                        .unwrap_or_else(|| {
                            if outputs.is_empty() {
                                format!("plugin `{}` declares no outputs", plugin.name)
                            } else {
                                let list: Vec<String> =
                                    outputs.iter().map(|o| format!("`{o}`")).collect();
                                format!("the outputs of step `{id}` are {}", list.join(", "))
                            }
                        });
                    let message = format!(
                        "step `{id}` (plugin `{}`) has no output `{output}`",
                        plugin.name
                    );
                    checker.error(span, message).help = Some(help);
                }
                Some(other) => {
                    checker
                        .error(span, format!("`steps.{id}.{other}` does not exist"))
                        .help = Some(format!(
                        "a step has `outputs` (`steps.{id}.outputs.<name>`) and `outcome`"
                    ));
                }
            }
        }
        Some(name) if CEL_TYPE_NAMES.contains(&name) => {}
        Some(name) => {
            let help = did_you_mean_help(name, ["inputs", "steps"]).unwrap_or_else(|| {
                "expressions read `inputs.<name>` and `steps.<id>.outputs.<name>`".into()
            });
            checker
                .error(span, format!("unknown name `{name}` in expression"))
                .help = Some(help);
        }
        None => {}
    }
}
