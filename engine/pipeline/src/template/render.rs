//! The `--resolved` printer: a resolved pipeline as YAML, each step and key followed by the
//! file and line it came from (`flow show --resolved`).

use std::sync::Arc;

use serde_json::Value;

use crate::diag::{SourceFile, Span};
use crate::expr::{Segment, Template};
use crate::grants::{ExecConfinement, FsAccess};
use crate::model::{Pipeline, SecretSource};
use crate::plugin::PluginRef;

/// Renders a resolved pipeline as YAML, each step and key followed by the file and line
/// it came from (`flow show --resolved`).
pub fn render_resolved(pipeline: &Pipeline) -> String {
    let mut out = String::new();
    let at = |file: &Arc<SourceFile>, span: Span| format!("{}:{}", file.name, span.start.line);
    let pad = |line: &str, origin: &str| {
        let width = 48usize;
        if line.len() >= width {
            format!("{line}  # {origin}\n")
        } else {
            format!("{line}{}  # {origin}\n", " ".repeat(width - line.len()))
        }
    };
    out.push_str("version: 1\n");
    if let Some(name) = &pipeline.name {
        out.push_str(&format!("name: {}\n", json(&Value::String(name.clone()))));
    }
    if !pipeline.templates.is_empty() {
        out.push_str("# templates (nearest first):\n");
        for t in &pipeline.templates {
            out.push_str(&format!(
                "#   {} sha256:{} ({})\n",
                t.name(),
                t.sha256,
                t.source
            ));
        }
    }
    if let Some((value, span)) = &pipeline.exec_confinement {
        let text = match value {
            ExecConfinement::Required => "required",
            ExecConfinement::Preferred => "preferred",
            ExecConfinement::Off => "off",
        };
        let file = pipeline
            .exec_confinement_file
            .as_ref()
            .unwrap_or(&pipeline.source);
        out.push_str(&pad(&format!("exec-confinement: {text}"), &at(file, *span)));
    }
    if !pipeline.inputs.is_empty() {
        out.push_str("inputs:\n");
        for i in &pipeline.inputs {
            let mut line = format!("  {}: {{ type: {}", i.name, i.ty.name());
            if let Some(d) = &i.default {
                line.push_str(&format!(", default: {}", json(d)));
            }
            line.push_str(" }");
            out.push_str(&pad(&line, &at(&i.declared_in, i.span)));
        }
    }
    if !pipeline.secrets.is_empty() {
        out.push_str("secrets:\n");
        for s in &pipeline.secrets {
            let source = match &s.source {
                SecretSource::Env(v) => format!("{{ env: {v} }}"),
                SecretSource::File(f) => {
                    format!("{{ file: {} }}", json(&Value::String(f.clone())))
                }
            };
            out.push_str(&pad(
                &format!("  {}: {source}", s.name),
                &at(&s.declared_in, s.span),
            ));
        }
    }
    if !pipeline.keys.is_empty() {
        out.push_str("keys:\n");
        for k in &pipeline.keys {
            let line = format!(
                "  {}: {{ file: {} }}",
                k.name,
                json(&Value::String(k.file.clone()))
            );
            out.push_str(&pad(&line, &at(&k.declared_in, k.span)));
        }
    }
    out.push_str("steps:\n");
    for step in &pipeline.steps {
        let mut origin = at(&step.declared_in, step.span);
        if let Some(t) = step.origin.template.and_then(|i| pipeline.templates.get(i)) {
            origin = format!("{} {origin}", t.name());
        }
        if step.origin.sealed {
            origin.push_str(" (sealed)");
        }
        if let Some(slot) = &step.origin.slot {
            origin.push_str(&format!(" (slot {slot})"));
        }
        out.push_str(&pad(&format!("  {}:", step.id), &origin));
        if let Some((plugin, span)) = &step.uses {
            let text = match &step.binding {
                Some(b) => format!("    uses: {}", b.binding),
                None => format!(
                    "    uses: {}",
                    plugin_text(plugin, step.version_req.as_ref().map(|(r, _)| r.as_str()))
                ),
            };
            let origin = match &step.binding {
                Some(b) => format!(
                    "interface:{} at {}, bound at {}",
                    b.name,
                    at(step.file_of("uses"), *span),
                    at(&b.binding_file, b.binding_span)
                ),
                None => at(step.file_of("uses"), *span),
            };
            out.push_str(&pad(&text, &origin));
        }
        if let Some(name) = &step.name {
            out.push_str(&format!(
                "    name: {}\n",
                json(&Value::String(name.clone()))
            ));
        }
        if !step.needs.is_empty() {
            out.push_str("    needs:\n");
            for (need, span) in &step.needs {
                let file = step.file_of(&format!("needs.{need}"));
                out.push_str(&pad(&format!("      - {need}"), &at(file, *span)));
            }
        }
        if let Some((condition, span)) = &step.condition {
            out.push_str(&pad(
                &format!(
                    "    if: {}",
                    json(&Value::String(format!("${{{{ {} }}}}", condition.source())))
                ),
                &at(step.file_of("if"), *span),
            ));
        }
        if !step.with.is_empty() {
            out.push_str("    with:\n");
            for param in &step.with {
                let file = step.file_of(&format!("with.{}", param.name));
                out.push_str(&pad(
                    &format!("      {}: {}", param.name, template_text(&param.value)),
                    &at(file, param.span),
                ));
            }
        }
        if let Some(t) = step.timeout {
            out.push_str(&format!("    timeout: {}ms\n", t.as_millis()));
        }
        if let Some(m) = step.memory {
            out.push_str(&format!("    memory: {m}\n"));
        }
        if step.continue_on_error {
            out.push_str("    continue-on-error: true\n");
        }
        if let Some((policy, span)) = &step.retry {
            out.push_str(&pad(
                &format!("    retry: {}", policy.to_yaml()),
                &at(step.file_of("retry"), *span),
            ));
        }
        if let Some((cache, span)) = step.cache {
            out.push_str(&pad(
                &format!("    cache: {cache}"),
                &at(step.file_of("cache"), span),
            ));
        }
        let g = &step.grants;
        let kinds: [(&str, Vec<(String, Span)>); 6] = [
            (
                "fs",
                g.fs.iter()
                    .map(|f| {
                        (
                            format!(
                                "{{ path: {}, access: {} }}",
                                json(&Value::String(f.path.clone())),
                                match f.access {
                                    FsAccess::Read => "read",
                                    FsAccess::Write => "write",
                                }
                            ),
                            f.span,
                        )
                    })
                    .collect(),
            ),
            (
                "exec",
                g.exec.iter().map(|e| (e.command.clone(), e.span)).collect(),
            ),
            (
                "env",
                g.env.iter().map(|e| (e.name.clone(), e.span)).collect(),
            ),
            ("secrets", g.secrets.clone()),
            ("keys", g.keys.clone()),
            (
                "net",
                g.net.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
            ),
        ];
        if kinds.iter().any(|(_, v)| !v.is_empty()) {
            out.push_str("    grants:\n");
            for (kind, items) in kinds {
                if items.is_empty() {
                    continue;
                }
                out.push_str(&format!("      {kind}:\n"));
                let file = step.file_of(&format!("grants.{kind}"));
                for (text, span) in items {
                    out.push_str(&pad(&format!("        - {text}"), &at(file, span)));
                }
            }
        }
    }
    out
}

/// A value as JSON, which YAML reads as the same value.
fn json(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A `uses:` value as written: the plugin, then its version requirement or pin.
fn plugin_text(plugin: &PluginRef, req: Option<&str>) -> String {
    let base = match plugin {
        PluginRef::Builtin { name, .. } => name.clone(),
        PluginRef::File { written, .. } => written.clone(),
    };
    let pin = plugin
        .pin()
        .map(|p| format!("@sha256:{p}"))
        .unwrap_or_default();
    match req {
        Some(r) => format!("{base}@{r}"),
        None => format!("{base}{pin}"),
    }
}

/// A parameter value as written, its expressions in `${{ }}`.
fn template_text(template: &Template) -> String {
    match template {
        Template::Literal(v) => json(v),
        Template::Expr(e) => json(&Value::String(format!("${{{{ {} }}}}", e.source()))),
        Template::Interpolated(segments) => {
            let mut s = String::new();
            for segment in segments {
                match segment {
                    Segment::Text(t) => s.push_str(t),
                    Segment::Expr(e) => s.push_str(&format!("${{{{ {} }}}}", e.source())),
                }
            }
            json(&Value::String(s))
        }
        Template::List(items) => {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(template_text)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Template::Map(entries) => format!(
            "{{ {} }}",
            entries
                .iter()
                .map(|(k, t)| format!("{}: {}", json(&Value::String(k.clone())), template_text(t)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
