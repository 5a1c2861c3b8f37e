//! Checking a [`Pipeline`] against the plugins it uses, and building the [`Plan`].
//!
//! Every problem is reported, not only the first: the problems found while reading the file,
//! then plugins, dependencies, parameters, grants and expressions.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics, SourceFile, Span, did_you_mean_help};
use crate::expr::{Expression, Reference, Template};
use crate::model::{FsAccess, Pipeline, StepDecl};
use crate::plan::{ExecGrant, FsGrant, Plan, PlannedParam, PlannedStep};
use crate::plugin::{Capability, ParamType, PluginDescription, PluginResolver, json_type_name};

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

/// Checks `pipeline` and builds its [`Plan`], or reports every problem found.
pub fn check(pipeline: &Pipeline, resolver: &dyn PluginResolver) -> Result<Plan, Diagnostics> {
    let mut checker = Checker {
        pipeline,
        file: &pipeline.source,
        problems: pipeline.problems.clone(),
    };
    let steps = &pipeline.steps;
    let plugins = checker.resolve_plugins(resolver);
    let needs = checker.resolve_needs();
    let order = checker.order(&needs);
    let ancestors: Vec<BTreeSet<usize>> = (0..steps.len()).map(|i| ancestors(i, &needs)).collect();
    let mut fs_grants = Vec::with_capacity(steps.len());
    let mut exec_grants = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        if let Some(plugin) = &plugins[i] {
            checker.check_params(step, plugin);
            checker.check_capabilities(step, plugin);
        }
        fs_grants.push(checker.resolve_fs_grants(step));
        exec_grants.push(checker.resolve_exec_grants(step));
        checker.check_secret_grants(step);
        if let Some((expression, span)) = &step.condition {
            checker.check_expression(i, expression, *span, &ancestors[i], &plugins);
        }
        for param in &step.with {
            for expression in param.value.expressions() {
                checker.check_expression(i, expression, param.span, &ancestors[i], &plugins);
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
    let mut planned = Vec::with_capacity(steps.len());
    for (pos, &i) in order.iter().enumerate() {
        let step = &steps[i];
        let (Some(plugin), Some((plugin_ref, uses_span))) = (&plugins[i], &step.uses) else {
            return Err(Diagnostics(vec![Diagnostic::error(
                &pipeline.source,
                step.span,
                format!("step `{}` could not be planned", step.id),
            )]));
        };
        let mut step_needs: Vec<usize> = needs[i].iter().map(|&n| position[n]).collect();
        step_needs.sort_unstable();
        let mut dependents: Vec<usize> = (0..steps.len())
            .filter(|&d| needs[d].contains(&i))
            .map(|d| position[d])
            .collect();
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
                })
                .collect(),
            condition: step.condition.clone(),
            timeout: step.timeout,
            memory: step.memory,
            continue_on_error: step.continue_on_error,
            fs_grants: fs_grants[i].clone(),
            exec_grants: exec_grants[i].clone(),
            env_grants: step.grants.env.clone(),
            secret_grants: step.grants.secrets.iter().map(|(n, _)| n.clone()).collect(),
            key_grants: step.grants.keys.iter().map(|(n, _)| n.clone()).collect(),
            net_grants: step.grants.net.iter().map(|(n, _)| n.clone()).collect(),
            span: step.span,
            uses_span: *uses_span,
            with_span: step.with_span,
            source: Arc::clone(&pipeline.source),
            origin: Default::default(),
        });
    }
    Ok(Plan {
        name: pipeline.name.clone().unwrap_or_default(),
        description: pipeline.description.clone(),
        source: Arc::clone(&pipeline.source),
        base_dir: pipeline.base_dir.clone(),
        inputs: pipeline.inputs.clone(),
        exec_confinement: pipeline.exec_confinement,
        secrets: pipeline.secrets.clone(),
        keys: pipeline.keys.clone(),
        templates: Vec::new(),
        steps: planned,
    })
}

/// A host path as written in `reads`: `~/x` is under the user's home, and a
/// leading `${NAME:-fallback}` (or `${NAME}`) is the host variable's value, or the
/// fallback (itself expanded) when it is unset or empty.
pub fn expand_host_path(written: &str) -> Result<PathBuf, String> {
    if let Some(rest) = written.strip_prefix("${") {
        let Some((inner, tail)) = rest.split_once('}') else {
            return Err(format!("unclosed `${{` in `{written}`"));
        };
        let (name, fallback) = match inner.split_once(":-") {
            Some((name, fallback)) => (name, Some(fallback)),
            None => (inner, None),
        };
        let base = match std::env::var(name) {
            Ok(value) if !value.is_empty() => PathBuf::from(value),
            _ => match fallback {
                Some(fallback) => expand_host_path(fallback)?,
                None => return Err(format!("cannot expand `{written}`: `{name}` is not set")),
            },
        };
        let tail = tail.trim_start_matches('/');
        return Ok(if tail.is_empty() {
            base
        } else {
            base.join(tail)
        });
    }
    if let Some(rest) = written.strip_prefix("~/") {
        return match std::env::var_os("HOME") {
            Some(home) => Ok(Path::new(&home).join(rest)),
            None => Err(format!("cannot expand `{written}`: `HOME` is not set")),
        };
    }
    Ok(PathBuf::from(written))
}

/// Every step `i` needs, directly or not (cycles included, without looping).
fn ancestors(i: usize, needs: &[Vec<usize>]) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<usize> = needs[i].clone();
    while let Some(n) = todo.pop() {
        if seen.insert(n) {
            todo.extend(needs[n].iter().copied());
        }
    }
    seen
}

struct Checker<'a> {
    pipeline: &'a Pipeline,
    file: &'a Arc<SourceFile>,
    problems: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.problems
            .push(Diagnostic::error(self.file, span, message));
        let last = self.problems.len() - 1;
        &mut self.problems[last]
    }

    fn steps(&self) -> &[StepDecl] {
        &self.pipeline.steps
    }

    /// Describes each step's plugin, asking the resolver once per distinct `uses:`.
    fn resolve_plugins(
        &mut self,
        resolver: &dyn PluginResolver,
    ) -> Vec<Option<Arc<PluginDescription>>> {
        let mut cache = HashMap::new();
        let mut out = Vec::new();
        for step in &self.pipeline.steps {
            let Some((plugin, span)) = &step.uses else {
                out.push(None);
                continue;
            };
            let result = cache
                .entry(plugin.clone())
                .or_insert_with(|| resolver.describe(plugin))
                .clone();
            match result {
                Ok(description) => out.push(Some(description)),
                Err(message) => {
                    self.error(*span, message);
                    out.push(None);
                }
            }
        }
        out
    }

    /// The indices of the steps each step needs; reports unknown, repeated and self needs.
    fn resolve_needs(&mut self) -> Vec<Vec<usize>> {
        let ids: Vec<&str> = self.steps().iter().map(|s| s.id.as_str()).collect();
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for (i, step) in self.steps().iter().enumerate() {
            let mut needs: Vec<usize> = Vec::new();
            for (need, span) in &step.needs {
                match ids.iter().position(|id| id == need) {
                    Some(n) if n == i => problems.push(Diagnostic::error(
                        self.file,
                        *span,
                        format!("step `{need}` needs itself"),
                    )),
                    Some(n) if needs.contains(&n) => problems.push(Diagnostic::error(
                        self.file,
                        *span,
                        format!(
                            "step `{}` lists `{need}` more than once in `needs`",
                            step.id
                        ),
                    )),
                    Some(n) => needs.push(n),
                    None => {
                        let others = ids.iter().copied().filter(|id| *id != step.id);
                        problems.push(
                            Diagnostic::error(
                                self.file,
                                *span,
                                format!("step `{}` needs `{need}`, which is not a step of this pipeline", step.id),
                            )
                            .with_optional_help(did_you_mean_help(need, others)),
                        );
                    }
                }
            }
            out.push(needs);
        }
        self.problems.append(&mut problems);
        out
    }

    /// A topological order (ties broken by file order); reports each dependency cycle.
    fn order(&mut self, needs: &[Vec<usize>]) -> Vec<usize> {
        let (order, remaining) = topological_order(needs);
        let mut remaining = remaining;
        while let Some(cycle) = find_cycle(needs, &remaining) {
            let steps = self.steps();
            let names: Vec<&str> = cycle.iter().map(|&i| steps[i].id.as_str()).collect();
            // The `needs` entry of each step on the cycle that names the next one.
            let entry = |from: usize, to: usize| {
                steps[from]
                    .needs
                    .iter()
                    .find(|(n, _)| *n == steps[to].id)
                    .map(|(_, span)| *span)
                    .unwrap_or(steps[from].span)
            };
            let first = cycle[0];
            let mut diagnostic = Diagnostic::error(
                self.file,
                entry(first, cycle[1 % cycle.len()]),
                format!("dependency cycle: {} -> {}", names.join(" -> "), names[0]),
            );
            for k in 1..cycle.len() {
                let (from, to) = (cycle[k], cycle[(k + 1) % cycle.len()]);
                diagnostic = diagnostic.with_note_at(
                    self.file,
                    entry(from, to),
                    format!("`{}` needs `{}` here", steps[from].id, steps[to].id),
                );
            }
            diagnostic = diagnostic.with_help("remove one of these `needs` to break the cycle");
            self.problems.push(diagnostic);
            for i in cycle {
                remaining.remove(&i);
            }
        }
        order
    }

    fn check_params(&mut self, step: &StepDecl, plugin: &PluginDescription) {
        for param in &step.with {
            let Some(spec) = plugin.param(&param.name) else {
                if !plugin.extra_params {
                    let help = did_you_mean_help(
                        &param.name,
                        plugin.params.iter().map(|p| p.name.as_str()),
                    )
                    .unwrap_or_else(|| param_list(plugin));
                    self.error(
                        param.name_span,
                        format!("plugin `{}` has no param `{}`", plugin.name, param.name),
                    )
                    .help = Some(help);
                }
                continue;
            };
            if let Some(found) = literal_type_mismatch(spec.ty, &param.value) {
                self.error(
                    param.span,
                    format!(
                        "param `{}` of plugin `{}` expects {}, found {found}",
                        param.name,
                        plugin.name,
                        spec.ty.described()
                    ),
                );
            }
        }
        let missing: Vec<&str> = plugin
            .params
            .iter()
            .filter(|p| p.required && p.default.is_none())
            .filter(|p| !step.with.iter().any(|w| w.name == p.name))
            .map(|p| p.name.as_str())
            .collect();
        if !missing.is_empty() {
            let span = step
                .with_span
                .or(step.uses.as_ref().map(|(_, s)| *s))
                .unwrap_or(step.span);
            let list: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
            let (noun, list) = if missing.len() == 1 {
                ("param", list.join(""))
            } else {
                ("params", list.join(", "))
            };
            self.error(
                span,
                format!(
                    "step `{}` is missing required {noun} {list} of plugin `{}`",
                    step.id, plugin.name
                ),
            )
            .help = Some(format!(
                "add {} under `with:`",
                missing
                    .iter()
                    .map(|m| format!("`{m}: ...`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }

    fn check_capabilities(&mut self, step: &StepDecl, plugin: &PluginDescription) {
        let span = step.uses.as_ref().map(|(_, s)| *s).unwrap_or(step.span);
        let mut capabilities = plugin.capabilities.clone();
        capabilities.sort();
        capabilities.dedup();
        for capability in capabilities {
            let (granted, message, help) = match capability {
                Capability::FsRead => (
                    !step.grants.fs.is_empty(),
                    "read access to a directory",
                    "add `grants: { fs: [{ path: <dir>, access: read }] }`".to_owned(),
                ),
                Capability::FsWrite => (
                    step.grants.fs.iter().any(|g| g.access == FsAccess::Write),
                    "write access to a directory",
                    "add `grants: { fs: [{ path: <dir>, access: write }] }`".to_owned(),
                ),
                Capability::Exec => (
                    !step.grants.exec.is_empty(),
                    "to run host commands",
                    "add `grants: { exec: [<command>] }` naming the commands it may run".to_owned(),
                ),
                Capability::Env => (
                    !step.grants.env.is_empty(),
                    "environment variables",
                    "add `grants: { env: [<NAME>] }` naming the variables it may read".to_owned(),
                ),
                Capability::Secrets => (
                    !step.grants.secrets.is_empty() || !step.grants.keys.is_empty(),
                    "secrets or signing keys",
                    "declare them under the top-level `secrets:` or `keys:` and grant them: `grants: { secrets: [<name>] }` or `grants: { keys: [<name>] }`"
                        .to_owned(),
                ),
                Capability::Net => (
                    !step.grants.net.is_empty(),
                    "network access",
                    "add `grants: { net: [<host>:<port>] }` naming what it may reach".to_owned(),
                ),
            };
            if !granted {
                self.error(
                    span,
                    format!(
                        "plugin `{}` needs {message}, but step `{}` does not grant it",
                        plugin.name, step.id
                    ),
                )
                .help = Some(help);
            }
        }
    }

    /// Every secret a step names (in `grants.secrets` or an env grant) is declared.
    fn check_secret_grants(&mut self, step: &StepDecl) {
        let declared: Vec<&str> = self
            .pipeline
            .secrets
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let named = step
            .grants
            .secrets
            .iter()
            .chain(step.grants.env.iter().filter_map(|e| e.secret.as_ref()));
        let mut problems = Vec::new();
        for (name, span) in named {
            if !declared.contains(&name.as_str()) {
                let help = did_you_mean_help(name, declared.iter().copied()).unwrap_or_else(|| {
                    format!("declare it: `secrets: {{ {name}: {{ env: VARIABLE }} }}` at the top of the file")
                });
                problems.push((*span, format!("unknown secret `{name}`"), help));
            }
        }
        let keys: Vec<&str> = self.pipeline.keys.iter().map(|k| k.name.as_str()).collect();
        for (name, span) in &step.grants.keys {
            if !keys.contains(&name.as_str()) {
                let help = did_you_mean_help(name, keys.iter().copied()).unwrap_or_else(|| {
                    format!("declare it: `keys: {{ {name}: {{ file: path/to/key.pem }} }}` at the top of the file")
                });
                problems.push((*span, format!("unknown key `{name}`"), help));
            }
        }
        for (span, message, help) in problems {
            self.error(span, message).help = Some(help);
        }
    }

    /// The directories each `exec` grant `reads`, made absolute (`~/` is the host
    /// user's home) and checked to exist. The commands themselves are resolved by
    /// the engine, which knows the host's `PATH`.
    fn resolve_exec_grants(&mut self, step: &StepDecl) -> Vec<ExecGrant> {
        let mut out = Vec::new();
        for grant in &step.grants.exec {
            let mut reads = Vec::new();
            for (written, span) in &grant.reads {
                let expanded = match expand_host_path(written) {
                    Ok(expanded) => expanded,
                    Err(message) => {
                        self.error(*span, message);
                        continue;
                    }
                };
                let joined = if expanded.is_absolute() {
                    expanded
                } else {
                    self.pipeline.base_dir.join(expanded)
                };
                match std::fs::canonicalize(&joined) {
                    Ok(canonical) if canonical.is_dir() => reads.push(canonical),
                    Ok(_) => {
                        self.error(*span, format!("`{written}` is not a directory"));
                    }
                    Err(_) => {
                        self.error(*span, format!("directory `{written}` does not exist"))
                            .help = Some(
                            "paths are relative to the directory of the pipeline file; `~/` is your home, `${NAME:-fallback}` a host variable".into(),
                        );
                    }
                }
            }
            out.push(ExecGrant {
                command: grant.command.clone(),
                span: grant.span,
                reads,
            });
        }
        out
    }

    fn resolve_fs_grants(&mut self, step: &StepDecl) -> Vec<FsGrant> {
        let mut out = Vec::new();
        for grant in &step.grants.fs {
            let path = Path::new(&grant.path);
            let joined = if path.is_absolute() {
                path.to_path_buf()
            } else {
                self.pipeline.base_dir.join(path)
            };
            match std::fs::canonicalize(&joined) {
                Ok(canonical) if canonical.is_dir() => out.push(FsGrant {
                    path: canonical,
                    written: grant.path.clone(),
                    access: grant.access,
                    hash: grant.hash,
                }),
                Ok(_) => {
                    self.error(
                        grant.span,
                        format!("granted path `{}` is not a directory", grant.path),
                    )
                    .help = Some("grant the directory that holds it".into());
                }
                Err(_) => {
                    self.error(
                        grant.span,
                        format!("granted directory `{}` does not exist", grant.path),
                    )
                    .help = Some("paths are relative to the directory of the pipeline file".into());
                }
            }
        }
        out
    }

    /// Checks the names an expression of step `step` reads.
    fn check_expression(
        &mut self,
        step: usize,
        expression: &Expression,
        span: Span,
        needed: &BTreeSet<usize>,
        plugins: &[Option<Arc<PluginDescription>>],
    ) {
        for reference in expression.references() {
            self.check_reference(step, reference, span, needed, plugins);
        }
    }

    fn check_reference(
        &mut self,
        step: usize,
        reference: &Reference,
        span: Span,
        needed: &BTreeSet<usize>,
        plugins: &[Option<Arc<PluginDescription>>],
    ) {
        let path = &reference.path;
        let this = &self.pipeline.steps[step].id;
        match path.first().map(String::as_str) {
            Some("inputs") => {
                let Some(name) = path.get(1) else { return };
                let inputs = &self.pipeline.inputs;
                if !inputs.iter().any(|i| &i.name == name) {
                    let help = did_you_mean_help(name, inputs.iter().map(|i| i.name.as_str()))
                        .unwrap_or_else(|| "declare it under `inputs:`".into());
                    self.error(
                        span,
                        format!("unknown input `{name}` in expression `{}`", reference),
                    )
                    .help = Some(help);
                }
            }
            Some("steps") => {
                let Some(id) = path.get(1) else { return };
                let steps = self.steps();
                let Some(target) = steps.iter().position(|s| &s.id == id) else {
                    let help = did_you_mean_help(id, steps.iter().map(|s| s.id.as_str()));
                    self.error(
                        span,
                        format!("unknown step `{id}` in expression `{reference}`"),
                    )
                    .help = help;
                    return;
                };
                if target == step {
                    self.error(
                        span,
                        format!("step `{this}` reads `steps.{id}`, its own results"),
                    )
                    .help = Some("a step can read only the steps it needs".into());
                    return;
                }
                if !needed.contains(&target) {
                    let this = this.clone();
                    self.error(
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
                        let Some(plugin) = &plugins[target] else {
                            return;
                        };
                        let target_step = &steps[target];
                        let mut outputs: Vec<&str> =
                            plugin.outputs.iter().map(|o| o.name.as_str()).collect();
                        if plugin.outputs_from_params {
                            outputs.extend(target_step.with.iter().map(|p| p.name.as_str()));
                            outputs.extend(plugin.params.iter().map(|p| p.name.as_str()));
                        }
                        if !outputs.contains(&output.as_str()) {
                            let help = did_you_mean_help(output, outputs.iter().copied())
                                .unwrap_or_else(|| {
                                    if outputs.is_empty() {
                                        format!("plugin `{}` declares no outputs", plugin.name)
                                    } else {
                                        let list: Vec<String> =
                                            outputs.iter().map(|o| format!("`{o}`")).collect();
                                        format!(
                                            "the outputs of step `{id}` are {}",
                                            list.join(", ")
                                        )
                                    }
                                });
                            let message = format!(
                                "step `{id}` (plugin `{}`) has no output `{output}`",
                                plugin.name
                            );
                            self.error(span, message).help = Some(help);
                        }
                    }
                    Some(other) => {
                        self.error(span, format!("`steps.{id}.{other}` does not exist"))
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
                self.error(span, format!("unknown name `{name}` in expression"))
                    .help = Some(help);
            }
            None => {}
        }
    }
}

/// "the params of `x` are ..." for a help line.
fn param_list(plugin: &PluginDescription) -> String {
    if plugin.params.is_empty() {
        return format!("plugin `{}` takes no params", plugin.name);
    }
    let list: Vec<String> = plugin
        .params
        .iter()
        .map(|p| format!("`{}`", p.name))
        .collect();
    format!(
        "the params of plugin `{}` are {}",
        plugin.name,
        list.join(", ")
    )
}

/// The type of a value written in the file when it cannot be of type `ty` ("a string"...).
/// Values computed by expressions are checked when the step runs.
fn literal_type_mismatch(ty: ParamType, value: &Template) -> Option<&'static str> {
    let found = match value {
        Template::Literal(v) => {
            return (!ty.accepts(v)).then(|| json_type_name(v));
        }
        Template::Expr(_) => return None,
        Template::Interpolated(_) => "a string",
        Template::List(_) => "a list",
        Template::Map(_) => "a mapping",
    };
    let fits = match ty {
        ParamType::Any => true,
        ParamType::String => found == "a string",
        ParamType::List => found == "a list",
        ParamType::Object => found == "a mapping",
        _ => false,
    };
    (!fits).then_some(found)
}

/// Kahn's algorithm, always taking the ready step that comes first in the file. Returns the
/// order and the steps left out (those on or behind a cycle).
pub(crate) fn topological_order(needs: &[Vec<usize>]) -> (Vec<usize>, BTreeSet<usize>) {
    let mut missing: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut ready: BTreeSet<usize> = (0..needs.len()).filter(|&i| missing[i] == 0).collect();
    let mut order = Vec::with_capacity(needs.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for (d, step_needs) in needs.iter().enumerate() {
            if step_needs.contains(&i) {
                missing[d] -= 1;
                if missing[d] == 0 {
                    ready.insert(d);
                }
            }
        }
    }
    let remaining = (0..needs.len()).filter(|i| !order.contains(i)).collect();
    (order, remaining)
}

/// A cycle among `remaining` (each step of the cycle needs the next, the last needs the
/// first), starting from the first such step in the file.
pub(crate) fn find_cycle(needs: &[Vec<usize>], remaining: &BTreeSet<usize>) -> Option<Vec<usize>> {
    for &start in remaining {
        // Follow needs inside `remaining` until a step repeats. Every step left out by Kahn's
        // algorithm needs another one left out; once a cycle is removed from `remaining`, a
        // walk from a step behind it may end, and the next start is tried.
        let mut path = vec![start];
        let mut current = start;
        while let Some(&next) = needs[current].iter().find(|n| remaining.contains(n)) {
            if let Some(at) = path.iter().position(|&p| p == next) {
                let mut cycle = path.split_off(at);
                // Start the cycle at its step that comes first in the file.
                if let Some(min_at) = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| **s)
                    .map(|(k, _)| k)
                {
                    cycle.rotate_left(min_at);
                }
                return Some(cycle);
            }
            path.push(next);
            current = next;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keeps_file_order_between_independent_steps() {
        // 0 needs 2, 1 needs nothing, 2 needs nothing, 3 needs 0 and 1.
        let needs = vec![vec![2], vec![], vec![], vec![0, 1]];
        let (order, remaining) = topological_order(&needs);
        assert_eq!(order, [1, 2, 0, 3]);
        assert!(remaining.is_empty());
    }

    #[test]
    fn cycles_are_found_and_named_in_order() {
        // 0 -> 1 -> 2 -> 0, and 3 needs 0 (behind the cycle, not on it).
        let needs = vec![vec![1], vec![2], vec![0], vec![0]];
        let (order, remaining) = topological_order(&needs);
        assert!(order.is_empty());
        assert_eq!(find_cycle(&needs, &remaining), Some(vec![0, 1, 2]));
        let needs = vec![vec![], vec![3], vec![1], vec![2]];
        let (order, remaining) = topological_order(&needs);
        assert_eq!(order, [0]);
        assert_eq!(find_cycle(&needs, &remaining), Some(vec![1, 3, 2]));
    }

    #[test]
    fn a_step_behind_a_cycle_is_not_on_it() {
        let needs = vec![vec![1], vec![2], vec![1]];
        let (_, remaining) = topological_order(&needs);
        assert_eq!(find_cycle(&needs, &remaining), Some(vec![1, 2]));
    }
}
