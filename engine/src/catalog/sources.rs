//! Finding templates: catalog directories, git catalogs, the lock and the cache.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use flow_pipeline::plan::TemplateInfo;
use flow_pipeline::template::{CatalogDecl, CatalogLocation, FoundTemplate, TemplateSource};
use flow_pipeline::yaml::NodeKind;

use super::digest::template_digest;
use super::lock::{Lock, LockedTemplate};
use super::signature;

/// Directories a catalog walk does not enter.
const SKIPPED: [&str; 4] = [".git", ".flow", "target", "node_modules"];
/// How deep a catalog walk goes.
const MAX_DEPTH: usize = 8;

/// One template of a catalog's index.
#[derive(Debug, Clone)]
struct Indexed {
    id: String,
    version: semver::Version,
    dir: PathBuf,
    /// Where it is, for messages and the lock.
    source: String,
}

/// The templates a pipeline may extend: its catalogs, in order, with the lock (if
/// any) and the cache of templates already used.
pub struct Catalogs {
    catalogs: Vec<CatalogDecl>,
    /// `<cache>/templates`: a copy of every template used, by digest.
    cache: Option<PathBuf>,
    /// `<cache>/catalogs`: git catalogs checked out, by commit.
    checkouts: Option<PathBuf>,
    lock: Option<Lock>,
    /// Take locked templates from the cache before the catalogs.
    prefer_cache: bool,
    /// Template ids resolved afresh despite the lock (`flow update NAME`); `None`: none.
    unlocked: Option<BTreeSet<String>>,
    index: Mutex<BTreeMap<usize, Result<Vec<Indexed>, String>>>,
    used: Mutex<Vec<LockedTemplate>>,
}

impl Catalogs {
    /// Catalogs searched in order; `cache_dir` is flow's cache directory (templates
    /// are copied under `templates/`, git catalogs checked out under `catalogs/`).
    pub fn new(catalogs: Vec<CatalogDecl>, cache_dir: Option<&Path>) -> Self {
        Catalogs {
            catalogs,
            cache: cache_dir.map(|d| d.join(super::digest::CACHE_SUBDIR)),
            checkouts: cache_dir.map(|d| d.join("catalogs")),
            lock: None,
            prefer_cache: false,
            unlocked: None,
            index: Mutex::new(BTreeMap::new()),
            used: Mutex::new(Vec::new()),
        }
    }

    /// Resolve to the locked versions, refusing any whose content differs, except the
    /// template ids in `unlocked`, resolved afresh.
    pub fn with_lock(mut self, lock: Option<Lock>, unlocked: Option<BTreeSet<String>>) -> Self {
        self.lock = lock;
        self.unlocked = unlocked;
        self
    }

    /// Take locked templates from the cache first (when it holds them intact).
    pub fn prefer_cache(mut self, prefer: bool) -> Self {
        self.prefer_cache = prefer;
        self
    }

    /// The templates found so far, in the order they were asked for.
    pub fn used(&self) -> Vec<LockedTemplate> {
        self.used.lock().map(|u| u.clone()).unwrap_or_default()
    }

    fn locked(&self, id: &str) -> Option<&LockedTemplate> {
        if self.unlocked.as_ref().is_some_and(|u| u.contains(id)) {
            return None;
        }
        self.lock.as_ref().and_then(|l| l.template(id))
    }

    fn indexed(&self, n: usize) -> Result<Vec<Indexed>, String> {
        let mut index = self
            .index
            .lock()
            .map_err(|_| "the catalog index is unusable".to_owned())?;
        index
            .entry(n)
            .or_insert_with(|| self.build_index(&self.catalogs[n]))
            .clone()
    }

    fn build_index(&self, catalog: &CatalogDecl) -> Result<Vec<Indexed>, String> {
        let (root, prefix) = match &catalog.location {
            CatalogLocation::Dir(dir) => {
                if !dir.is_dir() {
                    return Err(format!("catalog {} is not a directory", dir.display()));
                }
                (
                    dir.canonicalize().unwrap_or_else(|_| dir.clone()),
                    String::new(),
                )
            }
            CatalogLocation::Git { repo, reference } => {
                let (dir, commit) = self.check_out(repo, reference.as_deref())?;
                (dir, format!("git+file://{}@{commit}:", repo.display()))
            }
        };
        let mut found = Vec::new();
        walk(&root, &root, 0, &mut found)?;
        let mut out: Vec<Indexed> = Vec::new();
        for dir in found {
            let Ok((id, version)) = template_identity(&dir.join(super::digest::TEMPLATE_FILE))
            else {
                continue;
            };
            let relative = dir
                .strip_prefix(&root)
                .unwrap_or(&dir)
                .display()
                .to_string();
            let source = if prefix.is_empty() {
                dir.display().to_string()
            } else {
                format!("{prefix}{relative}")
            };
            if let Some(other) = out.iter().find(|t| t.id == id && t.version == version) {
                return Err(format!(
                    "catalog {} holds {id}@{version} twice: {} and {}",
                    catalog.describe(),
                    other.source,
                    source
                ));
            }
            out.push(Indexed {
                id,
                version,
                dir,
                source,
            });
        }
        Ok(out)
    }

    /// Checks out a git catalog's ref (once per commit) and gives the directory.
    fn check_out(&self, repo: &Path, reference: Option<&str>) -> Result<(PathBuf, String), String> {
        let what = format!("git catalog {}", repo.display());
        let repository =
            flow_git::Repository::open(repo).map_err(|e| format!("cannot open {what}: {e}"))?;
        let resolved = repository.resolve(reference).map_err(|e| {
            format!(
                "{what}: cannot resolve `{}`: {e}",
                reference.unwrap_or("HEAD")
            )
        })?;
        let commit = resolved.commit.to_hex();
        let base = match &self.checkouts {
            Some(dir) => dir.clone(),
            None => std::env::temp_dir().join(format!("flow-catalogs-{}", std::process::id())),
        };
        let dest = base.join(&commit);
        if dest.is_dir() {
            return Ok((dest, commit));
        }
        std::fs::create_dir_all(&base)
            .map_err(|e| format!("cannot create {}: {e}", base.display()))?;
        let temporary = base.join(format!(".{commit}.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&temporary);
        let mut sink = flow_git::FsSink::new(&temporary);
        repository
            .checkout(resolved.tree, &mut sink)
            .map_err(|e| format!("cannot read {what} at {commit}: {e}"))?;
        if let Err(e) = std::fs::rename(&temporary, &dest) {
            let _ = std::fs::remove_dir_all(&temporary);
            if !dest.is_dir() {
                return Err(format!("cannot write {}: {e}", dest.display()));
            }
        }
        Ok((dest, commit))
    }

    /// The cached copy of a locked template (`version` is its parsed version), if it is
    /// there and intact.
    fn cached(&self, locked: &LockedTemplate, version: &semver::Version) -> Option<Indexed> {
        let dir = self.cache.as_ref()?.join(&locked.sha256);
        let digest = template_digest(&dir).ok()?;
        (digest == locked.sha256).then(|| Indexed {
            id: locked.id.clone(),
            version: version.clone(),
            source: format!("cache:{}", dir.display()),
            dir,
        })
    }

    /// Copies a template into the cache, named by its digest (once).
    fn keep(&self, dir: &Path, sha256: &str) {
        let Some(cache) = &self.cache else { return };
        let dest = cache.join(sha256);
        if dest.is_dir() {
            return;
        }
        let temporary = cache.join(format!(".{sha256}.{}", std::process::id()));
        let copied = std::fs::create_dir_all(cache)
            .and_then(|()| copy_dir(dir, &temporary))
            .and_then(|()| std::fs::rename(&temporary, &dest));
        if let Err(e) = copied {
            let _ = std::fs::remove_dir_all(&temporary);
            tracing::warn!(template = %dir.display(), "cannot cache the template: {e}");
        }
    }

    fn found(
        &self,
        at: &Indexed,
        sha256: String,
        requirement: &str,
    ) -> Result<FoundTemplate, String> {
        let path = at.dir.join(super::digest::TEMPLATE_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        self.keep(&at.dir, &sha256);
        let info = TemplateInfo {
            id: at.id.clone(),
            version: at.version.to_string(),
            sha256,
            source: at.source.clone(),
        };
        if let Ok(mut used) = self.used.lock() {
            used.push(LockedTemplate {
                id: info.id.clone(),
                version: info.version.clone(),
                requirement: requirement.to_owned(),
                sha256: info.sha256.clone(),
                source: info.source.clone(),
            });
        }
        Ok(FoundTemplate {
            text,
            display_path: path.display().to_string(),
            dir: at.dir.clone(),
            info,
        })
    }

    fn check_signature(&self, n: usize, at: &Indexed, sha256: &str) -> Result<(), String> {
        let catalog = &self.catalogs[n];
        if !catalog.require_signatures {
            return Ok(());
        }
        let mut keys = Vec::new();
        for (path, _) in &catalog.trusted_keys {
            let key = flow_provenance::keys::load_public_key(path).map_err(|e| {
                format!(
                    "cannot read trusted key {} of catalog {}: {e}",
                    path.display(),
                    catalog.describe()
                )
            })?;
            keys.push(key);
        }
        signature::verify(&at.dir, &at.id, &at.version.to_string(), sha256, &keys)
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "{e}\ncatalog {} requires signatures (`require-signatures: true`)",
                    catalog.describe()
                )
            })
    }
}

impl TemplateSource for Catalogs {
    fn find(
        &self,
        id: &str,
        requirement: &semver::VersionReq,
        requirement_text: &str,
    ) -> Result<FoundTemplate, String> {
        let locked = match self.locked(id) {
            Some(locked) => {
                let version = semver::Version::parse(&locked.version)
                    .map_err(|e| format!("flow.lock: bad version of {id}: {e}"))?;
                Some((locked.clone(), version))
            }
            None => None,
        };
        if let Some((locked, version)) = &locked {
            if !requirement.matches(version) {
                return Err(format!(
                    "flow.lock pins {id} at {}, which does not match `{requirement_text}`\nrun `flow update {id}` to resolve it again",
                    locked.version
                ));
            }
        } else if self.lock.is_some() && self.unlocked.is_none() {
            return Err(format!(
                "template {id} is not in flow.lock\nrun `flow lock` to add it"
            ));
        }
        if self.prefer_cache
            && let Some((locked, version)) = &locked
            && let Some(at) = self.cached(locked, version)
        {
            return self.found(&at, locked.sha256.clone(), &locked.requirement);
        }
        let mut unreachable = Vec::new();
        for n in 0..self.catalogs.len() {
            let index = match self.indexed(n) {
                Ok(index) => index,
                Err(e) => {
                    unreachable.push(e);
                    continue;
                }
            };
            let mut candidates: Vec<&Indexed> = index.iter().filter(|t| t.id == id).collect();
            if candidates.is_empty() {
                continue;
            }
            candidates.sort_by(|a, b| b.version.cmp(&a.version));
            let chosen = match &locked {
                Some((_, version)) => candidates.iter().find(|t| t.version == *version).copied(),
                None => candidates
                    .iter()
                    .find(|t| requirement.matches(&t.version))
                    .copied(),
            };
            let Some(chosen) = chosen else {
                if locked.is_some() {
                    break;
                }
                let versions: Vec<String> =
                    candidates.iter().map(|t| t.version.to_string()).collect();
                return Err(format!(
                    "no version of {id} matches `{requirement_text}` in catalog {} (it has {})",
                    self.catalogs[n].describe(),
                    versions.join(", ")
                ));
            };
            let sha256 = template_digest(&chosen.dir)?;
            if let Some((locked, _)) = &locked
                && locked.sha256 != sha256
            {
                return Err(format!(
                    "template {id}@{} differs from flow.lock: locked sha256:{}, {} has sha256:{sha256}\nreview the change, then accept it with `flow update {id}`",
                    locked.version, locked.sha256, chosen.source
                ));
            }
            self.check_signature(n, chosen, &sha256)?;
            return self.found(chosen, sha256, requirement_text);
        }
        if let Some((locked, version)) = &locked {
            if let Some(at) = self.cached(locked, version) {
                return self.found(&at, locked.sha256.clone(), &locked.requirement);
            }
            let cache = self
                .cache
                .as_ref()
                .map(|c| c.join(&locked.sha256).display().to_string())
                .unwrap_or_else(|| "no cache directory".into());
            let why = if unreachable.is_empty() {
                "no catalog holds it".to_owned()
            } else {
                unreachable.join("; ")
            };
            return Err(format!(
                "template {id}@{} (sha256:{}) is locked but cannot be read: {why}; nor is it in the cache ({cache})\nrun `flow lock` where the catalog is reachable",
                locked.version, locked.sha256
            ));
        }
        let listed: Vec<String> = self.catalogs.iter().map(|c| c.describe()).collect();
        let mut message = if listed.is_empty() {
            format!("template {id} not found: no catalog is configured")
        } else {
            format!(
                "template {id} is in none of the catalogs ({})",
                listed.join(", ")
            )
        };
        if !unreachable.is_empty() {
            message.push_str(&format!("; unreachable: {}", unreachable.join("; ")));
        }
        message.push_str("\nlist catalogs under `catalogs:` in flow.yaml, the user config or the organisation config (see docs/templates.md)");
        Err(message)
    }
}

/// Directories holding a `template.yaml`, not descending into them.
fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), String> {
    if dir.join(super::digest::TEMPLATE_FILE).is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| {
        if dir == root {
            format!("cannot read catalog {}: {e}", dir.display())
        } else {
            format!("cannot read {}: {e}", dir.display())
        }
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !SKIPPED.contains(&e.file_name().to_string_lossy().as_ref()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for d in dirs {
        walk(root, &d, depth + 1, out)?;
    }
    Ok(())
}

/// The `id` and `version` the template file at `path` declares, or why it does not
/// read as a template (rendered diagnostics or one line).
pub fn template_identity(path: &Path) -> Result<(String, semver::Version), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("error: cannot read {}: {e}\n", path.display()))?;
    let file = flow_pipeline::SourceFile::new(path.display().to_string(), text);
    let (root, problems) = flow_pipeline::yaml::parse(&file).map_err(|d| d.render())?;
    if let Some(first) = problems.first() {
        return Err(first.render());
    }
    let get = |key: &str| {
        root.as_ref()
            .and_then(|r| r.as_mapping())
            .and_then(|entries| entries.iter().find(|e| e.key_text() == key))
            .and_then(|e| match &e.value.kind {
                NodeKind::Scalar { text, .. } => Some(text.clone()),
                _ => None,
            })
    };
    let not_a_template = || {
        format!(
            "error: {} has no `id` and semver `version`: it is not a template\n",
            path.display()
        )
    };
    let id = get("id").ok_or_else(not_a_template)?;
    let version = get("version")
        .and_then(|v| semver::Version::parse(&v).ok())
        .ok_or_else(not_a_template)?;
    Ok((id, version))
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
