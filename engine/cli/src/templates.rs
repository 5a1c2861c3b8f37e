//! `flow show --resolved`, `flow lock`, `flow update`, `flow template sign|digest`, and
//! the user and organisation configs.

use std::path::{Path, PathBuf};

use flow_engine::catalog::{LockMode, TEMPLATE_FILE, digest, signature, sources};

use crate::{Failure, Global, exit};

/// The user config: `$FLOW_CONFIG`, else `$XDG_CONFIG_HOME/flow/config.yaml`, else
/// `~/.config/flow/config.yaml`.
fn user_config() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FLOW_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("flow").join("config.yaml"))
}

/// The organisation config: `$FLOW_ORG_CONFIG`, else `/etc/flow/config.yaml`.
fn org_config() -> PathBuf {
    std::env::var_os("FLOW_ORG_CONFIG")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/flow/config.yaml"))
}

/// The configs that exist, user first. A config named by a variable must exist.
pub(crate) fn configs() -> Result<Vec<flow_pipeline::Config>, Failure> {
    Ok(configs_with_paths()?.into_iter().map(|(_, c)| c).collect())
}

/// The configs that exist, user first, each with its file.
pub(crate) fn configs_with_paths() -> Result<Vec<(PathBuf, flow_pipeline::Config)>, Failure> {
    let mut out = Vec::new();
    let named = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    for (path, required) in [
        (user_config(), named("FLOW_CONFIG")),
        (Some(org_config()), named("FLOW_ORG_CONFIG")),
    ] {
        let Some(path) = path else { continue };
        if !path.exists() {
            if required {
                return Err(Failure::Invalid(format!(
                    "error: config file {} does not exist\n",
                    path.display()
                )));
            }
            continue;
        }
        let config = flow_pipeline::read_config(&path).map_err(|d| Failure::Invalid(d.render()))?;
        out.push((path, config));
    }
    Ok(out)
}

pub(crate) fn show_resolved(global: &Global, file: &Path) -> Result<u8, Failure> {
    let engine = super::engine(global, None)?;
    let resolution = engine.resolve_pipeline(file, &LockMode::Use)?;
    out!("{}", flow_pipeline::render_resolved(&resolution.pipeline));
    Ok(exit::SUCCESS)
}

pub(crate) async fn lock(global: &Global, file: &Path, mode: LockMode) -> Result<u8, Failure> {
    let engine = super::engine(global, None)?;
    let report = engine.lock_pipeline(file, &mode).await?;
    if global.json {
        let templates: Vec<serde_json::Value> = report
            .lock
            .templates
            .iter()
            .map(|t| serde_json::json!({"id": t.id, "version": t.version, "sha256": t.sha256}))
            .collect();
        let plugins: Vec<serde_json::Value> = report
            .lock
            .plugins
            .iter()
            .map(|p| serde_json::json!({"name": p.name, "version": p.version, "sha256": p.sha256}))
            .collect();
        outln!(
            "{}",
            serde_json::json!({"lock": report.path.display().to_string(), "templates": templates, "plugins": plugins, "diff": report.diff})
        );
        return Ok(exit::SUCCESS);
    }
    let previous = report.previous.as_ref();
    for t in &report.lock.templates {
        let before = previous
            .and_then(|p| p.template(&t.id))
            .filter(|b| b.version != t.version || b.sha256 != t.sha256)
            .map(|b| format!(" (was {} sha256:{})", b.version, short(&b.sha256)))
            .unwrap_or_default();
        outln!(
            "template {}@{} sha256:{}{before}",
            t.id,
            t.version,
            short(&t.sha256)
        );
    }
    for p in &report.lock.plugins {
        let before = previous
            .and_then(|l| l.plugin(&p.name))
            .filter(|b| b.sha256 != p.sha256)
            .map(|b| format!(" (was sha256:{})", short(&b.sha256)))
            .unwrap_or_default();
        outln!(
            "plugin {} {} sha256:{}{before}",
            p.name,
            p.version,
            short(&p.sha256)
        );
    }
    outln!("wrote {}", report.path.display());
    if matches!(mode, LockMode::Update(_)) {
        if report.diff.is_empty() {
            outln!("the resolved pipeline did not change");
        } else {
            outln!("changes to the resolved pipeline:");
            out!("{}", report.diff);
        }
    }
    Ok(exit::SUCCESS)
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The `id` and `version` of the template in `dir`.
fn identity(dir: &Path) -> Result<(String, String), Failure> {
    sources::template_identity(&dir.join(TEMPLATE_FILE))
        .map(|(id, version)| (id, version.to_string()))
        .map_err(Failure::Invalid)
}

pub(crate) fn sign(dir: &Path, key: &Path) -> Result<u8, Failure> {
    let (id, version) = identity(dir)?;
    let key = flow_provenance::keys::load_signing_key(key)
        .map_err(|e| Failure::Invalid(format!("error: cannot read {}: {e}\n", key.display())))?;
    let (path, sha256) = signature::sign(dir, &id, &version, &key)
        .map_err(|e| Failure::Invalid(format!("error: {e}\n")))?;
    outln!(
        "signed {id}@{version} sha256:{sha256} with key {} -> {}",
        key.keyid(),
        path.display()
    );
    Ok(exit::SUCCESS)
}

pub(crate) fn digest(dir: &Path) -> Result<u8, Failure> {
    let (id, version) = identity(dir)?;
    let sha256 =
        digest::template_digest(dir).map_err(|e| Failure::Invalid(format!("error: {e}\n")))?;
    outln!("{id}@{version} sha256:{sha256}");
    Ok(exit::SUCCESS)
}
