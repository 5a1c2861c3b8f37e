//! Helpers for common param shapes.

use std::path::{Component, Path};

use serde_json::Value;

use crate::StepError;

/// A param holding one path or a list of paths inside the workspace
/// (relative, without `..`): `files: dist/app` or `files: [dist/app, dist/lib.so]`.
/// At least one is required; `name` is the param's name, for messages.
pub fn workspace_paths(value: &Value, name: &str) -> Result<Vec<String>, StepError> {
    let paths: Vec<String> = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| StepError::new(format!("`{name}` must hold paths, found {v}")))
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(StepError::new(format!(
                "`{name}` must be a list of paths, found {other}"
            )));
        }
    };
    if paths.is_empty() {
        return Err(StepError::new(format!("`{name}` is empty")));
    }
    for path in &paths {
        let p = Path::new(path);
        if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(StepError::new(format!(
                "`{path}` in `{name}` must be a path inside the workspace, without `..`"
            )));
        }
    }
    Ok(paths)
}
