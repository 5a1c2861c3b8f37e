//! What a pipeline posted to the service may not do, unless the service was started
//! with `--allow-host-access`: reach the host it runs on.
//!
//! The engine confines every step to its run's workspace, except for what the
//! pipeline grants it: host directories, host commands and their environment, the
//! network, secrets read from the service's environment or files, signing keys held
//! by the host, and plugins read from host files. A pipeline written by whoever
//! can reach the service must grant none of these.

use flow_pipeline::{Plan, PluginRef, SourceFile, Span};

/// Why the plan may not run here: one rendered line per grant, with its place
/// (`file:line:column: error: ...`), in file order; empty when it reaches nothing.
pub fn host_access(plan: &Plan) -> Vec<String> {
    let mut problems = Vec::new();
    let mut refuse = |source: &SourceFile, span: Span, what: String| {
        problems.push((
            (source.name.clone(), span.start.line, span.start.column),
            what,
        ));
    };
    for secret in &plan.secrets {
        refuse(
            &secret.declared_in,
            secret.span,
            format!(
                "secret `{}` would be read from the service's environment or files",
                secret.name
            ),
        );
    }
    for key in &plan.keys {
        refuse(
            &key.declared_in,
            key.span,
            format!(
                "signing key `{}` would be read from the service's files",
                key.name
            ),
        );
    }
    for step in &plan.steps {
        let id = &step.id;
        if let PluginRef::File { written, .. } = &step.plugin {
            refuse(
                &step.source,
                step.uses_span,
                format!("step `{id}` uses a plugin file from the service's host: `{written}`"),
            );
        }
        for grant in &step.fs_grants {
            refuse(
                &grant.source,
                grant.span,
                format!(
                    "step `{id}` is granted a host directory: `{}`",
                    grant.written
                ),
            );
        }
        for grant in &step.exec_grants {
            refuse(
                &grant.source,
                grant.span,
                format!("step `{id}` is granted a host command: `{}`", grant.command),
            );
        }
        for grant in &step.env_grants {
            refuse(
                &step.source,
                grant.span,
                format!(
                    "step `{id}` is granted the environment variable `{}`",
                    grant.name
                ),
            );
        }
        if !step.net_grants.is_empty() {
            refuse(
                &step.source,
                step.span,
                format!(
                    "step `{id}` is granted the network: {}",
                    step.net_grants
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    problems.sort();
    let mut lines: Vec<String> = problems
        .into_iter()
        .map(|((file, line, column), what)| format!("{file}:{line}:{column}: error: {what}"))
        .collect();
    if !plan.templates.is_empty() {
        let names: Vec<String> = plan.templates.iter().map(|t| t.name()).collect();
        lines.push(format!(
            "{}: error: the pipeline extends templates ({}), which the service does not run",
            plan.source.name,
            names.join(", ")
        ));
    }
    if !lines.is_empty() {
        lines.push(
            "this service runs pipelines confined to their workspace; start it with \
             --allow-host-access to run pipelines that reach its host"
                .to_owned(),
        );
    }
    lines
}
