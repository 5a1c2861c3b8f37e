//! Reading a pipeline file's top level: its identity, `exec-confinement`, `inputs`, `keys`,
//! `secrets` and `steps` (each read by [`read_step`]).

use std::collections::HashSet;
use std::sync::Arc;

use crate::diag::{Span, did_you_mean_help};
use crate::grants::ExecConfinement;
use crate::plugin::json_type_name;
use crate::yaml::{Entry, Node, NodeKind, Scalar};

use super::read_step::read_step;
use super::reader::Reader;
use super::types::{InputDecl, InputType, KeyDecl, Pipeline, SecretDecl, SecretSource};
use super::values::{is_env_name, is_identifier};

pub(crate) fn read_pipeline(reader: &mut Reader, root: &Node) -> Pipeline {
    let mut pipeline = Pipeline {
        source: Arc::clone(reader.file),
        base_dir: reader.base_dir.to_path_buf(),
        name: None,
        description: None,
        inputs: Vec::new(),
        steps: Vec::new(),
        exec_confinement: None,
        secrets: Vec::new(),
        keys: Vec::new(),
        problems: Vec::new(),
        templates: Vec::new(),
        exec_confinement_file: None,
    };
    // Keys missing from the whole file are reported at its first character.
    let top = Span::new(root.span.start, root.span.start);
    let Some(entries) = reader.mapping(root, "a pipeline file") else {
        return pipeline;
    };
    reader.unknown_keys(
        entries,
        &[
            "version",
            "name",
            "description",
            "inputs",
            "exec-confinement",
            "secrets",
            "keys",
            "steps",
        ],
        "in the pipeline",
    );
    let find = |key: &str| entries.iter().find(|e| e.key_text() == key);
    match find("version") {
        None => {
            reader.error(top, "missing `version: 1` at the top of the pipeline");
        }
        Some(entry) => match &entry.value.kind {
            NodeKind::Scalar {
                value: Scalar::Int(1),
                ..
            } => {}
            NodeKind::Scalar {
                value: Scalar::Int(_),
                text,
            } => {
                reader.error(
                    entry.value.span,
                    format!("unsupported `version: {text}`; this flow reads version 1"),
                );
            }
            _ => {
                reader.error(
                    entry.value.span,
                    format!("`version` must be 1, found {}", entry.value.type_name()),
                );
            }
        },
    }
    match find("name") {
        None => {
            reader.error(top, "missing `name` of the pipeline");
        }
        Some(entry) => pipeline.name = reader.string(&entry.value, "`name`"),
    }
    if let Some(entry) = find("description") {
        pipeline.description = reader.string(&entry.value, "`description`");
    }
    if let Some(entry) = find("exec-confinement") {
        pipeline.exec_confinement = read_exec_confinement(reader, &entry.value);
    }
    if let Some(entry) = find("keys")
        && let Some(keys) = reader.mapping(&entry.value, "`keys`")
    {
        pipeline.keys = keys.iter().filter_map(|e| read_key(reader, e)).collect();
    }
    if let Some(entry) = find("secrets")
        && let Some(secrets) = reader.mapping(&entry.value, "`secrets`")
    {
        pipeline.secrets = secrets
            .iter()
            .filter_map(|e| read_secret(reader, e))
            .collect();
    }
    if let Some(entry) = find("inputs")
        && let Some(inputs) = reader.mapping(&entry.value, "`inputs`")
    {
        pipeline.inputs = inputs
            .iter()
            .filter_map(|e| read_input(reader, e))
            .collect();
    }
    match find("steps") {
        None => {
            reader.error(top, "missing `steps` of the pipeline");
        }
        Some(entry) => {
            if let Some(steps) = reader.mapping(&entry.value, "`steps`") {
                if steps.is_empty() {
                    reader.error(entry.key.span, "the pipeline has no steps");
                }
                let mut seen: HashSet<&str> = HashSet::with_capacity(steps.len());
                for step in steps {
                    // A duplicate id is already reported by the YAML reader.
                    if !seen.insert(step.key_text()) {
                        continue;
                    }
                    if let Some(step) = read_step(reader, step) {
                        pipeline.steps.push(step);
                    }
                }
            }
        }
    }
    pipeline
}

/// `exec-confinement: required | preferred | off`.
pub(crate) fn read_exec_confinement(
    reader: &mut Reader,
    node: &Node,
) -> Option<(ExecConfinement, Span)> {
    match node.as_str() {
        Some("required") => Some((ExecConfinement::Required, node.span)),
        Some("preferred") => Some((ExecConfinement::Preferred, node.span)),
        Some("off") => Some((ExecConfinement::Off, node.span)),
        _ => {
            reader
                .error(
                    node.span,
                    "`exec-confinement` must be `required`, `preferred` or `off`",
                )
                .help = Some("`required` refuses to run host commands without bubblewrap".into());
            None
        }
    }
}

pub(crate) fn read_input(reader: &mut Reader, entry: &Entry) -> Option<InputDecl> {
    let name = entry.key_text().to_owned();
    if !is_identifier(&name, false) {
        reader.error(
            entry.key.span,
            format!("invalid input name `{name}`: use letters, digits and `_`, not starting with a digit"),
        );
        return None;
    }
    let place = format!("input `{name}`");
    let fields = reader.mapping(&entry.value, &format!("`{place}`"))?;
    reader.unknown_keys(
        fields,
        &["type", "default", "description"],
        &format!("in {place}"),
    );
    let find = |key: &str| fields.iter().find(|e| e.key_text() == key);
    let ty = match find("type") {
        None => {
            reader
                .error(entry.key.span, format!("{place} has no `type`"))
                .help = Some("add `type: string` (or `integer`, `number`, `boolean`)".into());
            None
        }
        Some(t) => match t.value.as_str() {
            Some("string") => Some(InputType::String),
            Some("integer") => Some(InputType::Integer),
            Some("number") => Some(InputType::Number),
            Some("boolean") => Some(InputType::Boolean),
            _ => {
                let found = t.value.as_str().unwrap_or("");
                let help = did_you_mean_help(found, ["string", "integer", "number", "boolean"]);
                reader.error(
                    t.value.span,
                    format!("the `type` of {place} must be `string`, `integer`, `number` or `boolean`"),
                )
                .help = help;
                None
            }
        },
    };
    let description = match find("description") {
        Some(d) => reader.string(&d.value, &format!("the `description` of {place}")),
        None => None,
    };
    let default = find("default").map(|d| (d.value.to_json(), d.value.span));
    let ty = ty?;
    if let Some((value, span)) = &default
        && !ty.accepts(value)
    {
        reader.error(
            *span,
            format!(
                "the default of {place} must be {}, found {}",
                ty.described(),
                json_type_name(value)
            ),
        );
    }
    Some(InputDecl {
        name,
        span: entry.key.span,
        ty,
        default: default.map(|(v, _)| v),
        description,
        declared_in: Arc::clone(reader.file),
    })
}

/// `name: { file: PATH }`.
pub(crate) fn read_key(reader: &mut Reader, entry: &Entry) -> Option<KeyDecl> {
    let name = entry.key_text().to_owned();
    if !is_identifier(&name, true) {
        reader.error(
            entry.key.span,
            format!("invalid key name `{name}`: use letters, digits, `_` and `-`"),
        );
        return None;
    }
    let NodeKind::Mapping(fields) = &entry.value.kind else {
        reader.error(
            entry.value.span,
            format!("key `{name}` must name its file: `{{ file: path/to/key.pem }}`"),
        );
        return None;
    };
    reader.unknown_keys(
        fields,
        &["file", "description"],
        &format!("in key `{name}`"),
    );
    let Some(file) = fields.iter().find(|f| f.key_text() == "file") else {
        reader
            .error(entry.value.span, format!("key `{name}` needs a `file`"))
            .help =
            Some("an ed25519 private key in PKCS#8 PEM, as `flow keys generate` writes".into());
        return None;
    };
    let path = reader.string(&file.value, "`file`")?;
    Some(KeyDecl {
        name,
        span: entry.key.span,
        file: path,
        file_span: file.value.span,
        declared_in: Arc::clone(reader.file),
    })
}

/// `name: { env: VAR }` or `name: { file: PATH }`.
pub(crate) fn read_secret(reader: &mut Reader, entry: &Entry) -> Option<SecretDecl> {
    let name = entry.key_text().to_owned();
    if !is_identifier(&name, true) {
        reader.error(
            entry.key.span,
            format!("invalid secret name `{name}`: use letters, digits, `_` and `-`"),
        );
        return None;
    }
    let help = "write `{ env: VARIABLE }` or `{ file: path/to/file }`; a value never goes in the pipeline file";
    let NodeKind::Mapping(fields) = &entry.value.kind else {
        reader
            .error(
                entry.value.span,
                format!("secret `{name}` must say where its value comes from"),
            )
            .help = Some(help.into());
        return None;
    };
    reader.unknown_keys(
        fields,
        &["env", "file", "description"],
        &format!("in secret `{name}`"),
    );
    let sources: Vec<&Entry> = fields
        .iter()
        .filter(|f| matches!(f.key_text(), "env" | "file"))
        .collect();
    let [source] = sources.as_slice() else {
        reader
            .error(
                entry.value.span,
                format!("secret `{name}` needs exactly one of `env` and `file`"),
            )
            .help = Some(help.into());
        return None;
    };
    let text = reader.string(&source.value, &format!("`{}`", source.key_text()))?;
    let source_decl = if source.key_text() == "env" {
        if !is_env_name(&text) {
            reader.error(source.value.span, format!("invalid variable name `{text}`"));
            return None;
        }
        SecretSource::Env(text)
    } else {
        SecretSource::File(text)
    };
    Some(SecretDecl {
        name,
        span: entry.key.span,
        source: source_decl,
        source_span: source.value.span,
        declared_in: Arc::clone(reader.file),
    })
}
