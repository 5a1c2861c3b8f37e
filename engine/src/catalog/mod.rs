//! Where templates come from, on the engine's side (`docs/templates.md`): catalogs
//! (directories and git repositories, [`sources`]), the lock ([`lock`]), the cache of
//! templates used, template digests and signatures. The merge itself is
//! `flow_pipeline::template`; the policies `flow verify --policy` checks runs against
//! are [`crate::policy`].

pub mod digest;
pub mod lock;
pub mod signature;
pub mod sources;

pub use digest::{TEMPLATE_FILE, template_digest};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use flow_pipeline::template::Config;
use flow_pipeline::{Diagnostic, Diagnostics, Pipeline, PlannedStep, StepDecl};

use lock::{Lock, LockedPlugin, LockedTemplate};
use sources::Catalogs;

pub use digest::{CACHE_SUBDIR, cached_template_dir};

/// How a resolution uses `flow.lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockMode {
    /// Use the locked versions when there is a lock (`flow run`, `flow check`).
    Use,
    /// The locked versions, taken from the cache first: what the lock resolved to,
    /// even if a catalog changed since (the "before" of `flow update`).
    UseCached,
    /// Ignore the lock: the newest matching versions (`flow lock`).
    Ignore,
    /// Keep the lock but resolve this template afresh (`None`: every template).
    Update(Option<String>),
}

/// A pipeline file resolved through its templates.
#[derive(Debug)]
pub struct Resolution {
    /// The merged pipeline, not checked yet.
    pub pipeline: Pipeline,
    /// The templates used, nearest first.
    pub templates: Vec<LockedTemplate>,
    /// The lock beside the file, if there is one.
    pub lock: Option<Lock>,
    /// Where the lock is (or would be).
    pub lock_path: PathBuf,
}

/// Reads `path` and resolves the templates it extends through the catalogs of the file
/// and of `configs` (user, then organisation), using the lock as `mode` says.
pub fn resolve(
    path: &Path,
    configs: &[Config],
    cache_dir: Option<&Path>,
    mode: &LockMode,
) -> Result<Resolution, Diagnostics> {
    let document = flow_pipeline::read_document(path)?;
    let lock_path = Lock::path_for(path);
    let lock = Lock::read(&lock_path).map_err(|e| lock_error(&e))?;
    resolve_document(document, lock, lock_path, configs, cache_dir, mode)
}

/// A pipeline given as text (named `name` in messages, its relative paths resolved
/// against `base_dir`), resolved through its templates. Text has no `flow.lock`.
pub fn resolve_text(
    text: &str,
    name: &str,
    base_dir: &Path,
    configs: &[Config],
    cache_dir: Option<&Path>,
) -> Result<Resolution, Diagnostics> {
    let document = flow_pipeline::parse_document(text, name, base_dir)?;
    let lock_path = base_dir.join(lock::LOCK_FILE);
    resolve_document(
        document,
        None,
        lock_path,
        configs,
        cache_dir,
        &LockMode::Ignore,
    )
}

fn resolve_document(
    document: flow_pipeline::Document,
    lock: Option<Lock>,
    lock_path: PathBuf,
    configs: &[Config],
    cache_dir: Option<&Path>,
    mode: &LockMode,
) -> Result<Resolution, Diagnostics> {
    let mut catalogs: Vec<_> = document.catalogs().to_vec();
    catalogs.extend(configs.iter().flat_map(|c| c.catalogs.iter().cloned()));
    let bindings: Vec<_> = configs
        .iter()
        .flat_map(|c| c.bindings.iter().cloned())
        .collect();
    let (active, unlocked) = match mode {
        LockMode::Use | LockMode::UseCached => (lock.clone(), None),
        LockMode::Ignore => (None, None),
        LockMode::Update(None) => (None, None),
        LockMode::Update(Some(name)) => {
            if lock.as_ref().is_some_and(|l| l.template(name).is_none()) {
                return Err(Diagnostic::error_without_location(format!(
                    "template {name} is not in {}",
                    lock_path.display()
                ))
                .with_help("`flow update` without a name resolves every template again")
                .into());
            }
            (lock.clone(), Some(BTreeSet::from([name.clone()])))
        }
    };
    let source = Catalogs::new(catalogs, cache_dir)
        .with_lock(active, unlocked)
        .prefer_cache(*mode == LockMode::UseCached);
    let pipeline = flow_pipeline::resolve(document, &source, &bindings)?;
    Ok(Resolution {
        pipeline,
        templates: source.used(),
        lock,
        lock_path,
    })
}

fn lock_error(message: &str) -> Diagnostics {
    let (message, help) = match message.split_once('\n') {
        Some((m, h)) => (m.to_owned(), Some(h.to_owned())),
        None => (message.to_owned(), None),
    };
    Diagnostic::error_without_location(message)
        .with_optional_help(help)
        .into()
}

/// The plugin name a lock uses for a step's `uses:`.
pub fn plugin_name(step: &PlannedStep) -> String {
    ref_name(&step.plugin)
}

fn ref_name(plugin: &flow_pipeline::PluginRef) -> String {
    match plugin {
        flow_pipeline::PluginRef::Builtin { name, .. } => name.clone(),
        flow_pipeline::PluginRef::File { written, .. } => written.clone(),
    }
}

/// The plugins of a checked plan as the lock records them: each distinct one once.
pub fn locked_plugins(steps: &[(String, String, String)]) -> Vec<LockedPlugin> {
    let mut out: Vec<LockedPlugin> = Vec::new();
    for (name, version, sha256) in steps {
        if !out.iter().any(|p| p.name == *name && p.sha256 == *sha256) {
            out.push(LockedPlugin {
                name: name.clone(),
                version: version.clone(),
                sha256: sha256.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Refuses plugins whose content differs from the lock, or that it does not hold,
/// each at the first `uses:` naming it. `digest`: the sha256 of a loaded plugin.
pub fn check_plugins(
    lock: &Lock,
    steps: &[StepDecl],
    digest: impl Fn(&flow_pipeline::PluginRef) -> Option<String>,
) -> Diagnostics {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for step in steps {
        let Some((plugin, span)) = &step.uses else {
            continue;
        };
        // A plugin that did not load is reported by the checker.
        let Some(digest) = digest(plugin) else {
            continue;
        };
        let name = ref_name(plugin);
        if !seen.insert(name.clone()) {
            continue;
        }
        let message = match lock.plugin(&name) {
            Some(locked) if locked.sha256 == digest => continue,
            Some(locked) => format!(
                "plugin `{name}` differs from flow.lock: locked sha256:{}, now sha256:{digest}",
                locked.sha256
            ),
            None => format!("plugin `{name}` is not in flow.lock"),
        };
        let help = if lock.plugin(&name).is_some() {
            "review the change, then accept it with `flow update`"
        } else {
            "run `flow lock` to add it"
        };
        problems.push(Diagnostic::error(step.file_of("uses"), *span, message).with_help(help));
    }
    Diagnostics(problems)
}

/// A line diff of two texts, `-`/`+`/` ` prefixed; empty when they are equal.
pub fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a == b {
        return String::new();
    }
    // Longest common subsequence, by dynamic programming (resolved pipelines are small).
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_lines() {
        assert_eq!(diff("a\nb\n", "a\nb\n"), "");
        assert_eq!(diff("a\nb\nc\n", "a\nx\nc\n"), "  a\n- b\n+ x\n  c\n");
        assert_eq!(diff("", "a\n"), "+ a\n");
    }
}
