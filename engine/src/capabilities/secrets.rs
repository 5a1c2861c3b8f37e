//! The secrets capability: values a pipeline names (`secrets:`) and a step is
//! granted (`grants.secrets`), read by the plugin through the `secrets` import
//! or passed to its commands through `grants.env`.
//!
//! Values are loaded by the host when a run starts, from an environment
//! variable or a file, and never appear in the pipeline file. Everything a run
//! records goes through the [`Redactor`] first: log lines (also when a value is
//! split across writes, and in base64 form), outputs, failure reasons and the
//! commands a step ran. Provenance names secrets, never their values.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;

use flow_pipeline::{Diagnostic, Diagnostics, Plan, SecretSource};

use crate::runtime::bindings::flow::plugin::secrets as wit_secrets;

/// What a redacted value is replaced with.
pub const MASK: &str = "***";
/// Shorter values cannot be redacted without masking ordinary text.
pub const MIN_SECRET_LEN: usize = 4;
/// Shortest base64 fragment that is masked (shorter ones match ordinary text).
const MIN_ENCODED_LEN: usize = 6;

/// Replaces every secret value, and its base64 encodings, with [`MASK`].
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Longest first, so that a value containing another is masked whole.
    patterns: Vec<String>,
}

impl Redactor {
    /// A redactor for these values (values shorter than [`MIN_SECRET_LEN`] are
    /// refused earlier, when secrets are loaded).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut patterns = Vec::new();
        for value in values {
            if value.len() < MIN_SECRET_LEN {
                continue;
            }
            patterns.push(value.to_owned());
            // A multi-line value (a key file) is also masked line by line, since
            // logs are kept line by line.
            let trimmed = value.trim_end_matches(['\n', '\r']);
            if trimmed.contains('\n') {
                patterns.extend(
                    trimmed
                        .lines()
                        .map(str::trim)
                        .filter(|l| l.len() >= MIN_SECRET_LEN)
                        .map(str::to_owned),
                );
            } else if trimmed.len() >= MIN_SECRET_LEN && trimmed != value {
                patterns.push(trimmed.to_owned());
            }
            patterns.extend(encoded_forms(trimmed.as_bytes()));
        }
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        patterns.dedup();
        Redactor { patterns }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The longest pattern, in bytes: a writer that holds back this many bytes
    /// minus one never flushes half of a value.
    pub fn longest(&self) -> usize {
        self.patterns.first().map_or(0, String::len)
    }

    /// A cut at or before `at` in `bytes` that does not fall inside an occurrence
    /// of a value.
    pub fn safe_cut(&self, bytes: &[u8], at: usize) -> usize {
        let mut cut = at.min(bytes.len());
        loop {
            let before = cut;
            for pattern in &self.patterns {
                let p = pattern.as_bytes();
                let from = cut.saturating_sub(p.len() - 1);
                let until = cut.min(bytes.len().saturating_sub(p.len() - 1));
                if let Some(i) =
                    (from..until).find(|&i| bytes[i..].starts_with(p) && i + p.len() > cut)
                {
                    cut = i;
                }
            }
            if cut == before {
                return cut;
            }
        }
    }

    /// `text` with every value masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for pattern in &self.patterns {
            if out.contains(pattern.as_str()) {
                out = out.replace(pattern.as_str(), MASK);
            }
        }
        out
    }

    /// Redact in place; returns whether anything changed.
    pub fn redact_in_place(&self, text: &mut String) -> bool {
        if self.patterns.iter().any(|p| text.contains(p.as_str())) {
            *text = self.redact(text);
            true
        } else {
            false
        }
    }
}

/// The base64 forms of `value` as it appears inside a longer encoded text: its
/// encoding depends on its offset modulo 3 in that text, so take each of the
/// three alignments and keep the characters that depend on `value` alone.
fn encoded_forms(value: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for offset in 0..3usize {
        let mut padded = vec![0u8; offset];
        padded.extend_from_slice(value);
        for engine in [
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let encoded = engine.encode(&padded);
            // Leading characters mix in the padding bytes; trailing ones the
            // bytes after the value.
            let skip = (offset * 8).div_ceil(6);
            let keep_bits = (offset + value.len()) * 8;
            let full = keep_bits / 6;
            if full > skip && full - skip >= MIN_ENCODED_LEN {
                out.push(encoded[skip..full].to_owned());
            }
        }
    }
    out
}

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

impl wit_secrets::Host for crate::runtime::StepState {
    fn get(&mut self, name: String) -> Result<String, String> {
        match self.secrets.as_ref().and_then(|s| s.granted.get(&name)) {
            Some(value) => Ok(value.clone()),
            None => {
                let granted: Vec<&str> = self
                    .secrets
                    .as_ref()
                    .map(|s| s.granted.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                Err(if granted.is_empty() {
                    format!(
                        "secret `{name}` is not granted: this step is granted no secrets (`grants.secrets`)"
                    )
                } else {
                    format!(
                        "secret `{name}` is not granted: this step may read only {}",
                        granted.join(", ")
                    )
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_values_lines_and_base64_forms() {
        let r = Redactor::new([
            "hunter2-secret",
            "-----BEGIN KEY-----\nAAAABBBBCCCC\n-----END KEY-----\n",
        ]);
        assert_eq!(r.redact("token=hunter2-secret;"), "token=***;");
        assert_eq!(r.redact("line AAAABBBBCCCC here"), "line *** here");
        let basic = base64::engine::general_purpose::STANDARD.encode("user:hunter2-secret");
        let masked = r.redact(&format!("Authorization: Basic {basic}"));
        assert!(!masked.contains(&basic[8..20]), "{masked}");
        assert!(masked.contains(MASK), "{masked}");
        for prefix in ["", "a", "ab", "abc"] {
            let encoded = base64::engine::general_purpose::STANDARD
                .encode(format!("{prefix}hunter2-secret!"));
            assert!(r.redact(&encoded).contains(MASK), "{prefix}: {encoded}");
            let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!("{prefix}hunter2-secret!"));
            assert!(r.redact(&url).contains(MASK), "{prefix}: {url}");
        }
        assert_eq!(r.redact("nothing to see"), "nothing to see");
        assert!(r.longest() >= "hunter2-secret".len());
    }

    #[test]
    fn short_values_are_not_patterns() {
        assert!(Redactor::new(["abc"]).is_empty());
    }
}
