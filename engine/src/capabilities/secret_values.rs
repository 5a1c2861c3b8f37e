//! A run's secret values: loaded when it starts, from an environment variable or a
//! file, never from the pipeline file; and the ones each step is granted.

use std::collections::BTreeMap;
use std::sync::Arc;

use flow_pipeline::{Diagnostic, Diagnostics, Plan, SecretSource};

use super::redact::{MIN_SECRET_LEN, Redactor};

/// The secrets of one run: name -> value, loaded when it started.
#[derive(Default, Clone)]
pub struct SecretValues(pub BTreeMap<String, String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only.
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl SecretValues {
    /// A redactor for every value, or `None` when there are none.
    pub fn redactor(&self) -> Option<Arc<Redactor>> {
        let redactor = Redactor::new(self.0.values().map(String::as_str));
        (!redactor.is_empty()).then(|| Arc::new(redactor))
    }
}

/// Load the values of the secrets some step uses (granted, or given to a
/// command through `grants.env`), from `given` or their source. Every problem
/// is reported at once, at the secret's declaration.
pub fn load(plan: &Plan, given: &BTreeMap<String, String>) -> Result<SecretValues, Diagnostics> {
    let used: std::collections::BTreeSet<&str> = plan
        .steps
        .iter()
        .flat_map(|s| {
            s.secret_grants.iter().map(String::as_str).chain(
                s.env_grants
                    .iter()
                    .filter_map(|e| e.secret.as_ref().map(|(n, _)| n.as_str())),
            )
        })
        .collect();
    let mut values = BTreeMap::new();
    let mut problems = Vec::new();
    for decl in plan
        .secrets
        .iter()
        .filter(|d| used.contains(d.name.as_str()))
    {
        let value = match given.get(&decl.name) {
            Some(value) => Ok(value.clone()),
            None => read_source(&decl.source, &plan.base_dir),
        };
        match value {
            Ok(value) if value.len() < MIN_SECRET_LEN => problems.push(Diagnostic::error(
                &decl.declared_in,
                decl.source_span,
                format!(
                    "secret `{}` is shorter than {MIN_SECRET_LEN} characters: it could not be told apart from ordinary text to redact it",
                    decl.name
                ),
            )),
            Ok(value) => {
                values.insert(decl.name.clone(), value);
            }
            Err(message) => problems.push(
                Diagnostic::error(&decl.declared_in, decl.source_span, format!("secret `{}`: {message}", decl.name))
                    .with_help("secrets are read when a run starts; nothing ran"),
            ),
        }
    }
    if problems.is_empty() {
        Ok(SecretValues(values))
    } else {
        Err(Diagnostics(problems))
    }
}

fn read_source(source: &SecretSource, base_dir: &std::path::Path) -> Result<String, String> {
    match source {
        SecretSource::Env(name) => match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok(value),
            Ok(_) => Err(format!("the environment variable `{name}` is empty")),
            Err(std::env::VarError::NotPresent) => {
                Err(format!("the environment variable `{name}` is not set"))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("the environment variable `{name}` is not UTF-8"))
            }
        },
        SecretSource::File(written) => {
            let path = flow_pipeline::expand_host_path(written)?;
            let path = if path.is_absolute() {
                path
            } else {
                base_dir.join(path)
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            // One trailing newline is the file's, not the secret's.
            let text = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            if text.is_empty() {
                return Err(format!("{} is empty", path.display()));
            }
            Ok(text.to_owned())
        }
    }
}

/// What one step may read.
#[derive(Debug, Default, Clone)]
pub struct StepSecrets {
    /// Granted name -> value.
    pub granted: BTreeMap<String, String>,
}

impl StepSecrets {
    /// The values of `names`, from the run's secrets.
    pub fn for_step(all: &SecretValues, names: &[String]) -> Option<Arc<StepSecrets>> {
        if names.is_empty() {
            return None;
        }
        let granted = names
            .iter()
            .filter_map(|n| all.0.get(n).map(|v| (n.clone(), v.clone())))
            .collect();
        Some(Arc::new(StepSecrets { granted }))
    }
}
