//! Interfaces: declared by templates (`interfaces:`), called by steps
//! (`uses: interface:<name>`), and bound to a plugin by the repository, the configs or the
//! templates (`bindings:`).

use std::sync::Arc;

use crate::diag::{SourceFile, Span, did_you_mean_help};
use crate::expr::Template;
use crate::interface::{BoundInterface, TypedParam};
use crate::model::{ParamDecl, Reader, StepDecl, Uses, is_identifier, parse_uses_spec};
use crate::yaml::Entry;

use super::config::BindingDecl;
use super::params::{check_typed_value, read_typed_param};
use super::problems::Problems;

/// An interface a template declares (`interfaces:`).
pub(super) struct Interface {
    pub(super) name: String,
    pub(super) params: Vec<TypedParam>,
    pub(super) outputs: Vec<String>,
    pub(super) file: Arc<SourceFile>,
    pub(super) span: Span,
}

/// `name: { description, params, outputs }` of `interfaces:`.
pub(super) fn read_interface(reader: &mut Reader, entry: &Entry) -> Option<Interface> {
    let name = entry.key_text().to_owned();
    if !is_identifier(&name, true) {
        reader.error(entry.key.span, format!("invalid interface name `{name}`"));
        return None;
    }
    let fields = reader.mapping(&entry.value, &format!("interface `{name}`"))?;
    reader.unknown_keys(
        fields,
        &["description", "params", "outputs"],
        &format!("in interface `{name}`"),
    );
    let mut interface = Interface {
        name,
        params: Vec::new(),
        outputs: Vec::new(),
        file: Arc::clone(reader.file),
        span: entry.key.span,
    };
    for field in fields {
        match field.key_text() {
            "description" => {
                reader.string(&field.value, "`description`");
            }
            "params" => {
                if let Some(params) = reader.mapping(&field.value, "`params`") {
                    interface.params = params
                        .iter()
                        .filter_map(|p| read_typed_param(reader, p, "param"))
                        .collect();
                }
            }
            "outputs" => {
                interface.outputs = reader
                    .strings(&field.value, "`outputs`", false)
                    .into_iter()
                    .map(|(o, _)| o)
                    .collect();
            }
            _ => {}
        }
    }
    Some(interface)
}

/// Replaces `uses: interface:<name>` by the bound plugin, and checks the step's
/// params against the interface.
pub(super) fn bind_interface(
    problems: &mut Problems,
    decl: &mut StepDecl,
    sealed_uses: bool,
    interfaces: &[Interface],
    template_bindings: &[(usize, BindingDecl)],
    root_bindings: &[BindingDecl],
    config_bindings: &[BindingDecl],
) {
    let Some((name, span)) = decl.interface.clone() else {
        return;
    };
    let uses_file = Arc::clone(decl.file_of("uses"));
    let Some(interface) = interfaces.iter().find(|i| i.name == name) else {
        let d = problems.error(&uses_file, span, format!("unknown interface `{name}`"));
        let help = did_you_mean_help(&name, interfaces.iter().map(|i| i.name.as_str()))
            .unwrap_or_else(|| "interfaces are declared by templates, under `interfaces:`".into());
        problems.help(d, help);
        return;
    };
    // The step's params against the interface's.
    for param in &decl.with {
        let file = decl.file_of(&format!("with.{}", param.name));
        match interface.params.iter().find(|p| p.name == param.name) {
            None => {
                let d = problems.error(
                    file,
                    param.name_span,
                    format!("interface `{name}` has no param `{}`", param.name),
                );
                problems.note(
                    d,
                    &interface.file,
                    interface.span,
                    "the interface is declared here",
                );
                if let Some(help) = did_you_mean_help(
                    &param.name,
                    interface.params.iter().map(|p| p.name.as_str()),
                ) {
                    problems.help(d, help);
                }
            }
            Some(spec) => {
                if let Template::Literal(value) = &param.value
                    && let Some(message) = check_typed_value(spec, value)
                {
                    let d = problems.error(
                        file,
                        param.span,
                        format!("param `{}` of interface `{name}`: {message}", param.name),
                    );
                    problems.note(d, &spec.declared_in, spec.span, "declared here");
                }
            }
        }
    }
    let missing: Vec<&TypedParam> = interface
        .params
        .iter()
        .filter(|p| p.default.is_none() && !decl.with.iter().any(|w| w.name == p.name))
        .collect();
    for param in missing {
        let d = problems.error(
            &uses_file,
            span,
            format!(
                "step `{}` is missing param `{}` of interface `{name}`",
                decl.id, param.name
            ),
        );
        problems.note(d, &param.declared_in, param.span, "declared here");
    }
    // Interface params with defaults the step does not give: the plugin gets the default.
    for param in &interface.params {
        if let Some(default) = &param.default
            && !decl.with.iter().any(|w| w.name == param.name)
        {
            decl.with.push(ParamDecl {
                name: param.name.clone(),
                name_span: param.span,
                value: Template::Literal(default.clone()),
                span: param.span,
            });
            decl.changed_in.push((
                format!("with.{}", param.name),
                Arc::clone(&param.declared_in),
            ));
        }
    }
    // A step whose `uses` is sealed keeps the binding of the configs or templates:
    // the repository cannot swap its tool.
    let repository: &[BindingDecl] = if sealed_uses { &[] } else { root_bindings };
    let mut bindings = repository
        .iter()
        .chain(config_bindings.iter())
        .cloned()
        .collect::<Vec<_>>();
    let mut template_bindings: Vec<&(usize, BindingDecl)> = template_bindings.iter().collect();
    template_bindings.sort_by_key(|(level, _)| *level);
    bindings.extend(template_bindings.into_iter().map(|(_, b)| b.clone()));
    let Some(binding) = bindings.iter().find(|b| b.interface == name) else {
        let d = problems.error(
            &uses_file,
            span,
            format!("interface `{name}` is not bound to a plugin"),
        );
        problems.help(
            d,
            format!("bind it in flow.yaml or the organisation config: `bindings: {{ {name}: <plugin>@<version> }}`"),
        );
        return;
    };
    match parse_uses_spec(&binding.value, &binding.base_dir) {
        Ok(Uses::Plugin(plugin, req)) => {
            decl.uses = Some((plugin, span));
            decl.version_req = None;
            decl.binding = Some(Arc::new(BoundInterface {
                name: name.clone(),
                params: interface.params.clone(),
                outputs: interface.outputs.clone(),
                declared_in: Arc::clone(&interface.file),
                span: interface.span,
                binding: binding.value.clone(),
                version_req: req,
                binding_file: Arc::clone(&binding.declared_in),
                binding_span: binding.span,
            }));
        }
        Ok(Uses::Interface(_)) => {
            problems.error(
                &binding.declared_in,
                binding.span,
                "an interface is bound to a plugin, not to another interface",
            );
        }
        Err(message) => {
            problems.error(&binding.declared_in, binding.span, message);
        }
    }
}
