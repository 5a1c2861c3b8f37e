//! Checking a [`Pipeline`] against the plugins it uses, and building the [`Plan`].
//!
//! Every problem is reported, not only the first: the problems found while reading the file,
//! then plugins, dependencies, parameters, grants and expressions.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics, SourceFile, Span, did_you_mean_help};
use crate::expr::{Expression, Reference, Template};
use crate::grant_path::{self, WalkError, Walked};
use crate::model::{FsAccess, Pipeline, StepDecl};
use crate::plan::{ExecGrant, FsGrant, Plan, PlannedParam, PlannedStep};
use crate::plugin::{Capability, ParamType, PluginDescription, PluginResolver, json_type_name};
use crate::reach::Reachability;

/// How many names `did you mean` suggestions may compare in one check, all problems
/// together. A file with thousands of steps and thousands of unknown names would otherwise
/// compare each name with every step id (quadratic); past the budget, problems are still
/// reported, without a suggestion. No file of a sensible size comes near it.
const SUGGESTION_BUDGET: usize = 2_000_000;

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
    let mut ids = HashMap::with_capacity(pipeline.steps.len());
    for (i, step) in pipeline.steps.iter().enumerate() {
        ids.entry(step.id.as_str()).or_insert(i);
    }
    let mut checker = Checker {
        pipeline,
        file: Arc::clone(&pipeline.source),
        problems: pipeline.problems.clone(),
        ids,
        inputs: pipeline.inputs.iter().map(|i| i.name.as_str()).collect(),
        secrets: pipeline.secrets.iter().map(|s| s.name.as_str()).collect(),
        keys: pipeline.keys.iter().map(|k| k.name.as_str()).collect(),
        base: std::fs::canonicalize(&pipeline.base_dir).ok(),
        suggestions_left: Cell::new(SUGGESTION_BUDGET),
    };
    let steps = &pipeline.steps;
    let plugins = checker.resolve_plugins(resolver);
    let needs = checker.resolve_needs();
    let order = checker.order(&needs);
    let mut lookup = Lookup {
        reach: Reachability::new(&needs),
        plugins: &plugins,
        outputs: HashMap::new(),
    };
    let mut fs_grants = Vec::with_capacity(steps.len());
    let mut exec_grants = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        if let Some(plugin) = &plugins[i] {
            checker.check_version(step, plugin);
            checker.check_binding(step, plugin);
            checker.check_params(step, plugin);
            checker.check_capabilities(step, plugin);
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
        fs_grants.push(checker.resolve_fs_grants(step));
        exec_grants.push(checker.resolve_exec_grants(step));
        checker.check_secret_grants(step);
        if let Some((expression, span)) = &step.condition {
            checker.file = Arc::clone(step.file_of("if"));
            checker.check_expression(i, expression, *span, &mut lookup);
        }
        for param in &step.with {
            checker.file = Arc::clone(step.file_of(&format!("with.{}", param.name)));
            for expression in param.value.expressions() {
                checker.check_expression(i, expression, param.span, &mut lookup);
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
    let dependents_of = dependents(&needs);
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

/// A host path as written in `reads`: `~/x` is under the user's home, and a
/// leading `${NAME:-fallback}` (or `${NAME}`) is the host variable's value, or the
/// fallback (itself expanded) when it is unset or empty.
pub fn expand_host_path(written: &str) -> Result<PathBuf, String> {
    let (start, rest) = host_path_parts(written)?;
    Ok(match start {
        Some(start) if rest.as_os_str().is_empty() => start,
        Some(start) => start.join(rest),
        None => rest,
    })
}

/// A host path as written in `reads`, split into what is taken as given (the home
/// directory, or a variable's value), if anything, and the rest as written, which a grant
/// checks component by component. See [`expand_host_path`].
fn host_path_parts(written: &str) -> Result<(Option<PathBuf>, PathBuf), String> {
    if let Some(rest) = written.strip_prefix("${") {
        let Some((inner, tail)) = rest.split_once('}') else {
            return Err(format!("unclosed `${{` in `{written}`"));
        };
        let (name, fallback) = match inner.split_once(":-") {
            Some((name, fallback)) => (name, Some(fallback)),
            None => (inner, None),
        };
        let tail = tail.trim_start_matches('/');
        return match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok((Some(PathBuf::from(value)), PathBuf::from(tail))),
            _ => match fallback {
                Some(fallback) => {
                    let (start, rest) = host_path_parts(fallback)?;
                    Ok(if tail.is_empty() {
                        (start, rest)
                    } else {
                        (start, rest.join(tail))
                    })
                }
                None => Err(format!("cannot expand `{written}`: `{name}` is not set")),
            },
        };
    }
    if let Some(rest) = written.strip_prefix("~/") {
        return match std::env::var_os("HOME") {
            Some(home) => Ok((Some(PathBuf::from(home)), PathBuf::from(rest))),
            None => Err(format!("cannot expand `{written}`: `HOME` is not set")),
        };
    }
    Ok((None, PathBuf::from(written)))
}

/// The steps that need each step directly, ascending.
fn dependents(needs: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); needs.len()];
    for (d, step_needs) in needs.iter().enumerate() {
        for &n in step_needs {
            out[n].push(d);
        }
    }
    out
}

struct Checker<'a> {
    pipeline: &'a Pipeline,
    /// The file the current diagnostics point into (steps may come from templates).
    file: Arc<SourceFile>,
    problems: Vec<Diagnostic>,
    /// The index of each step id (the first step with it).
    ids: HashMap<&'a str, usize>,
    /// The declared input, secret and key names. Suggestions go through the declarations,
    /// in the order of the file.
    inputs: HashSet<&'a str>,
    secrets: HashSet<&'a str>,
    keys: HashSet<&'a str>,
    /// The pipeline's directory, canonical: relative grants start there (it is trusted as
    /// it is, symbolic links above it included). `None` if it cannot be resolved.
    base: Option<PathBuf>,
    /// What is left of [`SUGGESTION_BUDGET`].
    suggestions_left: Cell<usize>,
}

/// What checking a `steps.<id>` reference looks up.
struct Lookup<'p> {
    /// Which steps each step needs, directly or not.
    reach: Reachability<'p>,
    /// The plugin of each step, if it was found.
    plugins: &'p [Option<Arc<PluginDescription>>],
    /// The output names of the steps read so far.
    outputs: HashMap<usize, HashSet<&'p str>>,
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

impl<'a> Checker<'a> {
    fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.problems
            .push(Diagnostic::error(&self.file, span, message));
        let last = self.problems.len() - 1;
        &mut self.problems[last]
    }

    /// A plugin whose version does not match the step's requirement.
    fn check_version(&mut self, step: &StepDecl, plugin: &PluginDescription) {
        let (requirement, file, span) = match (&step.binding, &step.version_req) {
            (Some(binding), _) => match &binding.version_req {
                Some(r) => (
                    r.clone(),
                    Arc::clone(&binding.binding_file),
                    binding.binding_span,
                ),
                None => return,
            },
            (None, Some((r, span))) => (r.clone(), Arc::clone(step.file_of("uses")), *span),
            (None, None) => return,
        };
        let Ok(req) = semver::VersionReq::parse(&requirement) else {
            return;
        };
        let matches = semver::Version::parse(&plugin.version).is_ok_and(|v| req.matches(&v));
        if !matches {
            self.file = file;
            self.error(
                span,
                format!(
                    "plugin `{}` is version {}, which does not match `{requirement}`",
                    plugin.name, plugin.version
                ),
            )
            .help = Some("`flow plugins` lists the versions of the built-in plugins".into());
        }
    }

    /// The plugin bound to an interface takes every param and gives every output the
    /// interface declares.
    fn check_binding(&mut self, step: &StepDecl, plugin: &PluginDescription) {
        let Some(binding) = &step.binding else {
            return;
        };
        let mut problems = Vec::new();
        for param in &binding.params {
            match plugin.param(&param.name) {
                None if !plugin.extra_params => problems.push(format!(
                    "plugin `{}` has no param `{}`, which interface `{}` declares",
                    plugin.name, param.name, binding.name
                )),
                Some(spec) if !interface_type_fits(param.ty, spec.ty) => problems.push(format!(
                    "param `{}` of plugin `{}` takes {}, but interface `{}` gives {}",
                    param.name,
                    plugin.name,
                    spec.ty.described(),
                    binding.name,
                    param.ty.described()
                )),
                _ => {}
            }
        }
        for output in &binding.outputs {
            let echoed =
                plugin.outputs_from_params && binding.params.iter().any(|p| p.name == *output);
            if !plugin.has_output(output) && !echoed {
                problems.push(format!(
                    "plugin `{}` has no output `{output}`, which interface `{}` declares",
                    plugin.name, binding.name
                ));
            }
        }
        for message in problems {
            let d = Diagnostic::error(&binding.binding_file, binding.binding_span, message)
                .with_note_at(
                    &binding.declared_in,
                    binding.span,
                    "the interface is declared here",
                )
                .with_note_at(
                    step.file_of("uses"),
                    step.uses.as_ref().map(|(_, s)| *s).unwrap_or(step.span),
                    format!("step `{}` calls it here", step.id),
                );
            self.problems.push(d);
        }
    }

    /// `did you mean` help for `word` among `candidates`, within the suggestion budget.
    fn suggest<'c>(
        &self,
        word: &str,
        candidates: impl IntoIterator<Item = &'c str>,
    ) -> Option<String> {
        let left = self.suggestions_left.get();
        if left == 0 {
            return None;
        }
        let mut compared = 0;
        let help = did_you_mean_help(word, candidates.into_iter().inspect(|_| compared += 1));
        self.suggestions_left.set(left.saturating_sub(compared));
        help
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
                    self.file = Arc::clone(step.file_of("uses"));
                    self.error(*span, message);
                    out.push(None);
                }
            }
        }
        out
    }

    /// The indices of the steps each step needs; reports unknown, repeated and self needs.
    fn resolve_needs(&mut self) -> Vec<Vec<usize>> {
        let steps = self.pipeline.steps.as_slice();
        let mut out = Vec::with_capacity(steps.len());
        let mut problems = Vec::new();
        // `listed[n] == i` once step `i` has listed step `n`.
        let mut listed = vec![usize::MAX; steps.len()];
        for (i, step) in steps.iter().enumerate() {
            let mut needs: Vec<usize> = Vec::new();
            for (need, span) in &step.needs {
                let file = step.file_of(&format!("needs.{need}"));
                match self.ids.get(need.as_str()).copied() {
                    Some(n) if n == i => problems.push(Diagnostic::error(
                        file,
                        *span,
                        format!("step `{need}` needs itself"),
                    )),
                    Some(n) if listed[n] == i => problems.push(Diagnostic::error(
                        file,
                        *span,
                        format!(
                            "step `{}` lists `{need}` more than once in `needs`",
                            step.id
                        ),
                    )),
                    Some(n) => {
                        listed[n] = i;
                        needs.push(n);
                    }
                    None => {
                        let others = steps
                            .iter()
                            .map(|s| s.id.as_str())
                            .filter(|id| *id != step.id);
                        problems.push(
                            Diagnostic::error(
                                file,
                                *span,
                                format!("step `{}` needs `{need}`, which is not a step of this pipeline", step.id),
                            )
                            .with_optional_help(self.suggest(need, others)),
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
        for cycle in cycles(needs, &remaining) {
            let steps = self.steps();
            let names: Vec<&str> = cycle.iter().map(|&i| steps[i].id.as_str()).collect();
            // The `needs` entry of each step on the cycle that names the next one.
            let entry = |from: usize, to: usize| {
                let file = steps[from].file_of(&format!("needs.{}", steps[to].id));
                let span = steps[from]
                    .needs
                    .iter()
                    .find(|(n, _)| *n == steps[to].id)
                    .map(|(_, span)| *span)
                    .unwrap_or(steps[from].span);
                (file, span)
            };
            let first = cycle[0];
            let (file, span) = entry(first, cycle[1 % cycle.len()]);
            let mut diagnostic = Diagnostic::error(
                file,
                span,
                format!("dependency cycle: {} -> {}", names.join(" -> "), names[0]),
            );
            for k in 1..cycle.len() {
                let (from, to) = (cycle[k], cycle[(k + 1) % cycle.len()]);
                let (file, span) = entry(from, to);
                diagnostic = diagnostic.with_note_at(
                    file,
                    span,
                    format!("`{}` needs `{}` here", steps[from].id, steps[to].id),
                );
            }
            diagnostic = diagnostic.with_help("remove one of these `needs` to break the cycle");
            self.problems.push(diagnostic);
        }
        order
    }

    fn check_params(&mut self, step: &StepDecl, plugin: &PluginDescription) {
        for param in &step.with {
            self.file = Arc::clone(step.file_of(&format!("with.{}", param.name)));
            let Some(spec) = plugin.param(&param.name) else {
                if !plugin.extra_params {
                    let help = self
                        .suggest(&param.name, plugin.params.iter().map(|p| p.name.as_str()))
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
            self.file = Arc::clone(step.file_of(if step.with_span.is_some() {
                "with"
            } else {
                "uses"
            }));
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
        self.file = Arc::clone(step.file_of("uses"));
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
        let pipeline = self.pipeline;
        let declared = || pipeline.secrets.iter().map(|s| s.name.as_str());
        let named = step
            .grants
            .secrets
            .iter()
            .chain(step.grants.env.iter().filter_map(|e| e.secret.as_ref()));
        let mut problems = Vec::new();
        for (name, span) in named {
            if !self.secrets.contains(name.as_str()) {
                let help = self.suggest(name, declared()).unwrap_or_else(|| {
                    format!("declare it: `secrets: {{ {name}: {{ env: VARIABLE }} }}` at the top of the file")
                });
                let kind = if step
                    .grants
                    .secrets
                    .iter()
                    .any(|(n, s)| n == name && s == span)
                {
                    "grants.secrets"
                } else {
                    "grants.env"
                };
                problems.push((
                    Arc::clone(step.file_of(kind)),
                    *span,
                    format!("unknown secret `{name}`"),
                    help,
                ));
            }
        }
        let keys = || pipeline.keys.iter().map(|k| k.name.as_str());
        for (name, span) in &step.grants.keys {
            if !self.keys.contains(name.as_str()) {
                let help = self.suggest(name, keys()).unwrap_or_else(|| {
                    format!("declare it: `keys: {{ {name}: {{ file: path/to/key.pem }} }}` at the top of the file")
                });
                problems.push((
                    Arc::clone(step.file_of("grants.keys")),
                    *span,
                    format!("unknown key `{name}`"),
                    help,
                ));
            }
        }
        for (file, span, message, help) in problems {
            self.file = file;
            self.error(span, message).help = Some(help);
        }
    }

    /// The directories each `exec` grant `reads`, made absolute (`~/` is the host
    /// user's home) and checked to exist without passing through a symbolic link below the
    /// home directory or the variable's value. The commands themselves are resolved by the
    /// engine, which knows the host's `PATH`.
    fn resolve_exec_grants(&mut self, step: &StepDecl) -> Vec<ExecGrant> {
        self.file = Arc::clone(step.file_of("grants.exec"));
        let mut out = Vec::new();
        for grant in &step.grants.exec {
            let mut reads = Vec::new();
            let mut reads_identity = Vec::new();
            for (written, span) in &grant.reads {
                let (start, rest) = match host_path_parts(written) {
                    Ok(parts) => parts,
                    Err(message) => {
                        self.error(*span, message);
                        continue;
                    }
                };
                let walked = match start {
                    Some(start) => {
                        let start = if start.is_absolute() {
                            start
                        } else {
                            self.pipeline.base_dir.join(start)
                        };
                        match std::fs::canonicalize(&start) {
                            Ok(trusted) => grant_path::walk(&trusted, &start, &rest),
                            Err(_) => Err(WalkError::Missing),
                        }
                    }
                    None => self.walk_written(&rest),
                };
                match walked {
                    Ok(walked) => {
                        reads.push(walked.path);
                        reads_identity.push(walked.identity);
                    }
                    Err(WalkError::NotDirectory) => {
                        self.error(*span, format!("`{written}` is not a directory"));
                    }
                    Err(WalkError::Missing) => {
                        self.error(*span, format!("directory `{written}` does not exist"))
                            .help = Some(
                            "paths are relative to the directory of the pipeline file; `~/` is your home, `${NAME:-fallback}` a host variable".into(),
                        );
                    }
                    Err(link) => self.link_error(*span, written, link),
                }
            }
            out.push(ExecGrant {
                command: grant.command.clone(),
                span: grant.span,
                reads,
                reads_identity,
                source: Arc::clone(&self.file),
            });
        }
        out
    }

    fn resolve_fs_grants(&mut self, step: &StepDecl) -> Vec<FsGrant> {
        self.file = Arc::clone(step.file_of("grants.fs"));
        let mut out = Vec::new();
        for grant in &step.grants.fs {
            match self.walk_written(Path::new(&grant.path)) {
                Ok(walked) => out.push(FsGrant {
                    path: walked.path,
                    written: grant.path.clone(),
                    access: grant.access,
                    hash: grant.hash,
                    span: grant.span,
                    source: Arc::clone(&self.file),
                    identity: walked.identity,
                }),
                Err(WalkError::NotDirectory) => {
                    self.error(
                        grant.span,
                        format!("granted path `{}` is not a directory", grant.path),
                    )
                    .help = Some("grant the directory that holds it".into());
                }
                Err(WalkError::Missing) => {
                    self.error(
                        grant.span,
                        format!("granted directory `{}` does not exist", grant.path),
                    )
                    .help = Some("paths are relative to the directory of the pipeline file".into());
                }
                Err(link) => self.link_error(grant.span, &grant.path, link),
            }
        }
        out
    }

    /// Walks a granted path as written: from `/` when it is absolute, from the pipeline's
    /// directory otherwise.
    fn walk_written(&self, path: &Path) -> Result<Walked, WalkError> {
        if path.is_absolute() {
            return grant_path::walk(Path::new("/"), Path::new(""), path);
        }
        match &self.base {
            Some(base) => grant_path::walk(base, Path::new(""), path),
            None => Err(WalkError::Missing),
        }
    }

    /// Refuses a grant whose path passes through a symbolic link.
    fn link_error(&mut self, span: Span, written: &str, problem: WalkError) {
        let WalkError::Link {
            link,
            target,
            parent,
            real,
        } = problem
        else {
            return;
        };
        let guard = format!(
            "a step that can write `{}` could otherwise redirect this grant",
            parent.display()
        );
        let help = match real {
            Some(real) => format!(
                "grant the real directory (`{}`) if that is what you mean; {guard}",
                real.display()
            ),
            None => format!("the link leads to no directory: grant a real one; {guard}"),
        };
        self.error(
            span,
            format!(
                "granted directory `{written}` passes through a symbolic link: `{}` -> `{}`",
                link.display(),
                target.display()
            ),
        )
        .help = Some(help);
    }

    /// Checks the names an expression of step `step` reads.
    fn check_expression<'p>(
        &mut self,
        step: usize,
        expression: &Expression,
        span: Span,
        lookup: &mut Lookup<'p>,
    ) where
        'a: 'p,
    {
        for reference in expression.references() {
            self.check_reference(step, reference, span, lookup);
        }
    }

    fn check_reference<'p>(
        &mut self,
        step: usize,
        reference: &Reference,
        span: Span,
        lookup: &mut Lookup<'p>,
    ) where
        'a: 'p,
    {
        let pipeline = self.pipeline;
        let path = &reference.path;
        let this = &pipeline.steps[step].id;
        match path.first().map(String::as_str) {
            Some("inputs") => {
                let Some(name) = path.get(1) else { return };
                let inputs = &pipeline.inputs;
                if !self.inputs.contains(name.as_str()) {
                    let help = self
                        .suggest(name, inputs.iter().map(|i| i.name.as_str()))
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
                let steps = pipeline.steps.as_slice();
                let Some(&target) = self.ids.get(id.as_str()) else {
                    let help = self.suggest(id, steps.iter().map(|s| s.id.as_str()));
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
                if !lookup.reach.reaches(step, target) {
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
                        let help = self
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
                        self.error(span, message).help = Some(help);
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

/// Whether a value of the interface's type `given` suits a plugin param of type `taken`.
fn interface_type_fits(given: ParamType, taken: ParamType) -> bool {
    given == taken
        || taken == ParamType::Any
        || (given == ParamType::Integer && taken == ParamType::Number)
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
    let dependents = dependents(needs);
    let mut missing: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut ready: BTreeSet<usize> = (0..needs.len()).filter(|&i| missing[i] == 0).collect();
    let mut order = Vec::with_capacity(needs.len());
    let mut placed = vec![false; needs.len()];
    while let Some(i) = ready.pop_first() {
        order.push(i);
        placed[i] = true;
        for &d in &dependents[i] {
            missing[d] -= 1;
            if missing[d] == 0 {
                ready.insert(d);
            }
        }
    }
    let remaining = (0..needs.len()).filter(|&i| !placed[i]).collect();
    (order, remaining)
}

/// The dependency cycles among `remaining` (the steps Kahn's algorithm left out), in the
/// order they are reported: the first cycle found by following, from the first such step in
/// the file, the first need of each step that is still left out; then the same again
/// without the steps of the cycles already found. Each cycle starts at its step that comes
/// first in the file; each of its steps needs the next, the last needs the first.
///
/// Every step left out needs another one left out, so a walk either comes back to a step
/// of its path (a cycle) or, once cycles were removed, ends at a step whose needs are all
/// gone. Such a dead end stays one, and after a cycle is removed the walk from the same
/// start goes through the same steps up to where the cycle began: the walk goes on from
/// there, and each step and each need is looked at a bounded number of times (linear).
pub(crate) fn cycles(needs: &[Vec<usize>], remaining: &BTreeSet<usize>) -> Vec<Vec<usize>> {
    const OFF_PATH: usize = usize::MAX;
    let n = needs.len();
    let mut left = vec![false; n];
    for &i in remaining {
        left[i] = true;
    }
    let mut dead = vec![false; n];
    // Where each step is on the path, if it is.
    let mut at = vec![OFF_PATH; n];
    // How many of each step's needs are known to be gone.
    let mut skipped = vec![0; n];
    let mut starts = remaining.iter().copied();
    let mut path: Vec<usize> = Vec::new();
    let mut found = Vec::new();
    loop {
        let Some(&current) = path.last() else {
            let Some(start) = starts.find(|&s| left[s] && !dead[s]) else {
                break;
            };
            at[start] = 0;
            path.push(start);
            continue;
        };
        while skipped[current] < needs[current].len() && !left[needs[current][skipped[current]]] {
            skipped[current] += 1;
        }
        let next = needs[current].get(skipped[current]).copied();
        match next {
            Some(next) if at[next] != OFF_PATH => {
                let mut cycle = path.split_off(at[next]);
                for &step in &cycle {
                    at[step] = OFF_PATH;
                    left[step] = false;
                }
                if let Some(min_at) = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| **s)
                    .map(|(k, _)| k)
                {
                    cycle.rotate_left(min_at);
                }
                found.push(cycle);
            }
            Some(next) if !dead[next] => {
                at[next] = path.len();
                path.push(next);
            }
            // A dead end, or a step whose walk leads to one: so does every step of the path.
            _ => {
                for step in path.drain(..) {
                    at[step] = OFF_PATH;
                    dead[step] = true;
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_split_where_the_trusted_part_ends() {
        let unset = "FLOW_TEST_SURELY_UNSET_VARIABLE";
        assert_eq!(host_path_parts("out/x"), Ok((None, PathBuf::from("out/x"))));
        assert_eq!(
            host_path_parts("/opt/x"),
            Ok((None, PathBuf::from("/opt/x")))
        );
        assert_eq!(
            host_path_parts(&format!("${{{unset}:-/opt/x}}/y")),
            Ok((None, PathBuf::from("/opt/x/y")))
        );
        assert!(host_path_parts(&format!("${{{unset}}}/y")).is_err());
        if let Some(path) = std::env::var_os("PATH").filter(|p| !p.is_empty()) {
            assert_eq!(
                host_path_parts("${PATH}/x"),
                Ok((Some(PathBuf::from(path)), PathBuf::from("x")))
            );
        }
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            let home = PathBuf::from(home);
            assert_eq!(
                host_path_parts("~/.rustup"),
                Ok((Some(home.clone()), PathBuf::from(".rustup")))
            );
            let written = format!("${{{unset}:-~/.rustup}}/bin");
            assert_eq!(
                host_path_parts(&written),
                Ok((Some(home.clone()), PathBuf::from(".rustup/bin")))
            );
            assert_eq!(expand_host_path(&written), Ok(home.join(".rustup/bin")));
            assert_eq!(
                expand_host_path(&format!("${{{unset}:-~/.rustup}}")),
                Ok(home.join(".rustup"))
            );
        }
    }

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
        assert_eq!(cycles(&needs, &remaining), [vec![0, 1, 2]]);
        let needs = vec![vec![], vec![3], vec![1], vec![2]];
        let (order, remaining) = topological_order(&needs);
        assert_eq!(order, [0]);
        assert_eq!(cycles(&needs, &remaining), [vec![1, 3, 2]]);
    }

    #[test]
    fn a_step_behind_a_cycle_is_not_on_it() {
        let needs = vec![vec![1], vec![2], vec![1]];
        let (_, remaining) = topological_order(&needs);
        assert_eq!(cycles(&needs, &remaining), [vec![1, 2]]);
    }

    /// The cycles as first reported: each one found by a new walk from the first step left.
    fn cycles_one_walk_at_a_time(
        needs: &[Vec<usize>],
        remaining: &BTreeSet<usize>,
    ) -> Vec<Vec<usize>> {
        let mut remaining = remaining.clone();
        let mut found = Vec::new();
        'search: loop {
            for &start in &remaining {
                let mut path = vec![start];
                let mut current = start;
                while let Some(&next) = needs[current].iter().find(|n| remaining.contains(n)) {
                    if let Some(at) = path.iter().position(|&p| p == next) {
                        let mut cycle = path.split_off(at);
                        let min_at = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
                        cycle.rotate_left(min_at);
                        for step in &cycle {
                            remaining.remove(step);
                        }
                        found.push(cycle);
                        continue 'search;
                    }
                    path.push(next);
                    current = next;
                }
            }
            return found;
        }
    }

    #[test]
    fn cycles_are_those_of_one_walk_at_a_time() {
        let mut next = crate::xorshift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..500 {
            let n = 1 + next(25);
            let needs: Vec<Vec<usize>> = (0..n)
                .map(|i| {
                    let mut mine = Vec::new();
                    for _ in 0..next(4) {
                        let candidate = next(n);
                        if candidate != i && !mine.contains(&candidate) {
                            mine.push(candidate);
                        }
                    }
                    mine
                })
                .collect();
            let (_, remaining) = topological_order(&needs);
            assert_eq!(
                cycles(&needs, &remaining),
                cycles_one_walk_at_a_time(&needs, &remaining),
                "{needs:?}"
            );
        }
    }

    #[test]
    fn a_long_tail_before_many_cycles_is_walked_once() {
        // 0 -> 1 -> ... -> k, and k needs the first step of many two-step cycles.
        let k = 50_000;
        let mut needs: Vec<Vec<usize>> = (0..k).map(|i| vec![i + 1]).collect();
        needs.push(Vec::new());
        for _ in 0..k {
            let a = needs.len();
            needs[k].push(a);
            needs.push(vec![a + 1]);
            needs.push(vec![a]);
        }
        let (order, remaining) = topological_order(&needs);
        assert!(order.is_empty());
        let found = cycles(&needs, &remaining);
        assert_eq!(found.len(), k);
        assert_eq!(found[0], [k + 1, k + 2]);
    }
}
