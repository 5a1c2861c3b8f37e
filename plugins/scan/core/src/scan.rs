//! Matching lockfile packages against advisories.

use crate::advisory::{Advisory, Collection, Database, Informational};
use crate::cvss::Severity;
use crate::error::Result;
use crate::lockfile::{Ecosystem, Lockfile};
use serde::Serialize;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

/// What a finding is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "informational")]
pub enum FindingKind {
    /// A security vulnerability.
    Vulnerability,
    /// An informational advisory (unmaintained, unsound, notice): reported, never fails
    /// the policy (as `cargo-audit` lists them under "warnings").
    Warning(Informational),
}

/// One advisory affecting one package of one lockfile.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub advisory_id: String,
    pub aliases: Vec<String>,
    pub package: String,
    pub version: String,
    pub ecosystem: Ecosystem,
    /// From the CVSS base score (or the database's rating); `None` when unscored and for
    /// warnings.
    pub severity: Option<Severity>,
    pub cvss_score: Option<f64>,
    pub cvss_vector: Option<String>,
    pub title: String,
    pub description: String,
    /// Advisory page.
    pub url: String,
    /// Requirements/versions that fix it (empty: no fix available).
    pub patched_versions: Vec<String>,
    pub kind: FindingKind,
    /// Advisory categories and keywords (SARIF tags).
    pub tags: Vec<String>,
    /// The lockfile, as given to the scan.
    pub lockfile: PathBuf,
    /// 1-based line of the package entry in the lockfile.
    pub line: usize,
}

impl Finding {
    fn new(adv: &Advisory, lockfile: &Lockfile, pkg_index: usize, kind: FindingKind) -> Self {
        let pkg = &lockfile.packages[pkg_index];
        let mut tags: Vec<String> = Vec::new();
        for t in adv.categories.iter().chain(&adv.keywords) {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        Finding {
            advisory_id: adv.id.clone(),
            aliases: adv.aliases.clone(),
            package: pkg.name.clone(),
            version: pkg.version.clone(),
            ecosystem: pkg.ecosystem,
            severity: adv.severity(),
            cvss_score: if adv.informational.is_some() {
                None
            } else {
                adv.cvss_score()
            },
            cvss_vector: adv.cvss.as_ref().map(|c| c.vector.clone()),
            title: adv.title.clone(),
            description: adv.description.clone(),
            url: adv.url.clone(),
            patched_versions: adv.patched.clone(),
            kind,
            tags,
            lockfile: lockfile.path.clone(),
            line: pkg.line,
        }
    }

    /// `true` for vulnerabilities, `false` for warnings.
    pub fn is_vulnerability(&self) -> bool {
        self.kind == FindingKind::Vulnerability
    }
}

/// Matches every registry package of the lockfiles against the database.
///
/// Rules (those of `cargo-audit`): only registry packages are matched (crates: crates.io
/// only; see [`crate::lockfile::Package::is_registry_package`]); withdrawn advisories and
/// RustSec `rust/` advisories never match; informational advisories of kind
/// unmaintained / unsound / notice become warnings, other informational kinds are dropped.
/// Platform (`os`/`arch`) and function restrictions are not applied.
///
/// A package matched by the same advisory through several databases (same id, or one
/// advisory's id listed among the other's aliases) is reported once, RustSec first.
/// Findings are ordered by lockfile, then line, then advisory id.
pub fn scan(db: &Database, lockfiles: &[Lockfile]) -> Result<Vec<Finding>> {
    scan_observed(db, lockfiles, &mut |_, _| {})
}

/// [`scan`], telling `progress` how many packages of all the lockfiles' have been
/// checked, after each one.
pub fn scan_observed(
    db: &Database,
    lockfiles: &[Lockfile],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<Finding>> {
    let mut cache: HashMap<(Ecosystem, &str), Vec<Arc<Advisory>>> = HashMap::new();
    let mut findings = Vec::new();
    let total: u64 = lockfiles.iter().map(|l| l.packages.len() as u64).sum();
    let mut done = 0;
    for lockfile in lockfiles {
        for (index, pkg) in lockfile.packages.iter().enumerate() {
            done += 1;
            progress(done, total);
            if !pkg.is_registry_package() {
                continue;
            }
            let key = (pkg.ecosystem, pkg.name.as_str());
            if let Entry::Vacant(slot) = cache.entry(key) {
                slot.insert(db.advisories_for(pkg.ecosystem, &pkg.name)?);
            }
            let mut seen_ids: HashSet<&str> = HashSet::new();
            let mut seen_aliases: HashSet<&str> = HashSet::new();
            let mut matched: Vec<Finding> = Vec::new();
            for adv in cache.get(&key).into_iter().flatten() {
                if adv.withdrawn.is_some()
                    || adv.collection == Collection::Rust
                    || adv.registry.is_some()
                    || !adv.affects_version(&pkg.version)
                {
                    continue;
                }
                let kind = match &adv.informational {
                    None => FindingKind::Vulnerability,
                    Some(Informational::Other(_)) => continue,
                    Some(info) => FindingKind::Warning(info.clone()),
                };
                // Same advisory from another database: its id is an id or alias already
                // reported, or it names a reported id as alias. (Distinct advisories that
                // merely share an alias, e.g. one GHSA split into several RUSTSEC ids, are
                // all reported, as cargo-audit does.)
                if seen_ids.contains(adv.id.as_str())
                    || seen_aliases.contains(adv.id.as_str())
                    || adv.aliases.iter().any(|a| seen_ids.contains(a.as_str()))
                {
                    continue;
                }
                seen_ids.insert(&adv.id);
                seen_aliases.extend(adv.aliases.iter().map(String::as_str));
                matched.push(Finding::new(adv, lockfile, index, kind));
            }
            matched.sort_by(|a, b| a.advisory_id.cmp(&b.advisory_id));
            findings.extend(matched);
        }
    }
    findings.sort_by(|a, b| {
        a.lockfile
            .cmp(&b.lockfile)
            .then(a.line.cmp(&b.line))
            .then_with(|| a.advisory_id.cmp(&b.advisory_id))
    });
    Ok(findings)
}
