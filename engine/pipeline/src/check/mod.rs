//! Checking a [`Pipeline`] against the plugins it uses, and building the [`Plan`].
//!
//! Every problem is reported, not only the first: the problems found while reading the file,
//! then plugins, dependencies, parameters, grants and expressions.
//!
//! [`check`] (here) runs the checks and builds the plan; `checker.rs` holds what they
//! share; `plugins.rs` checks each step against its plugin, `needs.rs` its `needs` (through
//! the graph algorithms of `order.rs`), `grants.rs` its grants and `references.rs` the names
//! its expressions read.

mod checker;
mod grants;
mod needs;
mod order;
mod plugins;
mod references;

use std::collections::HashMap;
use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics};
pub use crate::host_path::expand_host_path;
use crate::model::Pipeline;
use crate::plan::{Plan, PlannedParam, PlannedStep};
use crate::plugin::PluginResolver;
use crate::reach::Reachability;

use checker::Checker;
use references::Lookup;

/// Checks `pipeline` and builds its [`Plan`], or reports every problem found.
pub fn check(pipeline: &Pipeline, resolver: &dyn PluginResolver) -> Result<Plan, Diagnostics> {
    let mut checker = Checker::new(pipeline);
    let steps = &pipeline.steps;
    let plugins = plugins::resolve_plugins(&mut checker, resolver);
    let needs = needs::resolve_needs(&mut checker);
    let order = needs::order_steps(&mut checker, &needs);
    let mut lookup = Lookup {
        reach: Reachability::new(&needs),
        plugins: &plugins,
        outputs: HashMap::new(),
    };
    let mut fs_grants = Vec::with_capacity(steps.len());
    let mut exec_grants = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        if let Some(plugin) = &plugins[i] {
            plugins::check_version(&mut checker, step, plugin);
            plugins::check_binding(&mut checker, step, plugin);
            plugins::check_params(&mut checker, step, plugin);
            plugins::check_capabilities(&mut checker, step, plugin);
        } else if let Some((name, span)) = &step.interface
            && step.binding.is_none()
        {
            checker.file = Arc::clone(step.file_of("uses"));
            checker
                .error(
                    *span,
                    format!(
                        "step `{}` calls interface `{name}`, which nothing binds",
                        step.id
                    ),
                )
                .help = Some(
                "interfaces are declared and bound through templates: see docs/templates.md".into(),
            );
        }
        fs_grants.push(grants::resolve_fs_grants(&mut checker, step));
        exec_grants.push(grants::resolve_exec_grants(&mut checker, step));
        grants::check_secret_grants(&mut checker, step);
        if let Some((expression, span)) = &step.condition {
            checker.file = Arc::clone(step.file_of("if"));
            references::check_expression(&mut checker, i, expression, *span, &mut lookup);
        }
        for param in &step.with {
            checker.file = Arc::clone(step.file_of(&format!("with.{}", param.name)));
            for expression in param.value.expressions() {
                references::check_expression(&mut checker, i, expression, param.span, &mut lookup);
            }
        }
    }
    let mut problems = checker.problems;
    if !problems.is_empty() {
        problems.sort_by_key(|d| d.primary.as_ref().map(|l| l.span.start));
        return Err(Diagnostics(problems));
    }
    // Without problems every step has a plugin, a `uses:` and a place in the order.
    let mut position = vec![0; steps.len()];
    for (pos, &i) in order.iter().enumerate() {
        position[i] = pos;
    }
    let dependents_of = order::dependents(&needs);
    let mut planned = Vec::with_capacity(steps.len());
    for (pos, &i) in order.iter().enumerate() {
        let step = &steps[i];
        let (Some(plugin), Some((plugin_ref, uses_span))) = (&plugins[i], &step.uses) else {
            return Err(Diagnostics(vec![Diagnostic::error(
                &step.declared_in,
                step.span,
                format!("step `{}` could not be planned", step.id),
            )]));
        };
        let mut step_needs: Vec<usize> = needs[i].iter().map(|&n| position[n]).collect();
        step_needs.sort_unstable();
        let mut dependents: Vec<usize> = dependents_of[i].iter().map(|&d| position[d]).collect();
        dependents.sort_unstable();
        planned.push(PlannedStep {
            id: step.id.clone(),
            index: pos,
            name: step.name.clone(),
            description: step.description.clone(),
            needs: step_needs,
            dependents,
            plugin: plugin_ref.clone(),
            plugin_description: Arc::clone(plugin),
            params: step
                .with
                .iter()
                .map(|p| PlannedParam {
                    name: p.name.clone(),
                    value: p.value.clone(),
                    span: p.span,
                    source: Arc::clone(step.file_of(&format!("with.{}", p.name))),
                })
                .collect(),
            condition: step.condition.clone(),
            timeout: step.timeout,
            memory: step.memory,
            continue_on_error: step.continue_on_error,
            retry: step.retry.as_ref().map(|(p, _)| p.clone()),
            cache: step.cache.map(|(c, _)| c),
            fs_grants: fs_grants[i].clone(),
            exec_grants: exec_grants[i].clone(),
            env_grants: step.grants.env.clone(),
            secret_grants: step.grants.secrets.iter().map(|(n, _)| n.clone()).collect(),
            key_grants: step.grants.keys.iter().map(|(n, _)| n.clone()).collect(),
            net_grants: step.grants.net.iter().map(|(n, _)| n.clone()).collect(),
            span: step.span,
            uses_span: *uses_span,
            with_span: step.with_span,
            source: Arc::clone(&step.declared_in),
            origin: step.origin.clone(),
        });
    }
    Ok(Plan {
        name: pipeline.name.clone().unwrap_or_default(),
        description: pipeline.description.clone(),
        source: Arc::clone(&pipeline.source),
        base_dir: pipeline.base_dir.clone(),
        inputs: pipeline.inputs.clone(),
        exec_confinement: pipeline.exec_confinement,
        exec_confinement_source: pipeline
            .exec_confinement_file
            .clone()
            .unwrap_or_else(|| Arc::clone(&pipeline.source)),
        secrets: pipeline.secrets.clone(),
        keys: pipeline.keys.clone(),
        templates: pipeline.templates.clone(),
        steps: planned,
    })
}
