//! Each step against its plugin: the plugin described (once per `uses:`), its version,
//! the interface it is bound through, the params the step gives, and the capabilities the
//! plugin needs.

use std::collections::HashMap;
use std::sync::Arc;

use crate::diag::Diagnostic;
use crate::expr::Template;
use crate::grants::FsAccess;
use crate::model::StepDecl;
use crate::plugin::{Capability, ParamType, PluginDescription, PluginResolver, json_type_name};

use super::checker::Checker;

/// Describes each step's plugin, asking the resolver once per distinct `uses:`.
pub(super) fn resolve_plugins(
    checker: &mut Checker,
    resolver: &dyn PluginResolver,
) -> Vec<Option<Arc<PluginDescription>>> {
    let mut cache = HashMap::new();
    let mut out = Vec::new();
    for step in &checker.pipeline.steps {
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
                checker.file = Arc::clone(step.file_of("uses"));
                checker.error(*span, message);
                out.push(None);
            }
        }
    }
    out
}

/// A plugin whose version does not match the step's requirement.
pub(super) fn check_version(checker: &mut Checker, step: &StepDecl, plugin: &PluginDescription) {
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
        checker.file = file;
        checker
            .error(
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
pub(super) fn check_binding(checker: &mut Checker, step: &StepDecl, plugin: &PluginDescription) {
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
        let echoed = plugin.outputs_from_params && binding.params.iter().any(|p| p.name == *output);
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
        checker.problems.push(d);
    }
}

/// The params a step gives against those its plugin takes.
pub(super) fn check_params(checker: &mut Checker, step: &StepDecl, plugin: &PluginDescription) {
    for param in &step.with {
        checker.file = Arc::clone(step.file_of(&format!("with.{}", param.name)));
        let Some(spec) = plugin.param(&param.name) else {
            if !plugin.extra_params {
                let help = checker
                    .suggest(&param.name, plugin.params.iter().map(|p| p.name.as_str()))
                    .unwrap_or_else(|| param_list(plugin));
                checker
                    .error(
                        param.name_span,
                        format!("plugin `{}` has no param `{}`", plugin.name, param.name),
                    )
                    .help = Some(help);
            }
            continue;
        };
        if let Some(found) = literal_type_mismatch(spec.ty, &param.value) {
            checker.error(
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
        checker.file = Arc::clone(step.file_of(if step.with_span.is_some() {
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
        checker
            .error(
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

/// Every capability the plugin needs is granted by the step.
pub(super) fn check_capabilities(
    checker: &mut Checker,
    step: &StepDecl,
    plugin: &PluginDescription,
) {
    checker.file = Arc::clone(step.file_of("uses"));
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
            checker
                .error(
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
