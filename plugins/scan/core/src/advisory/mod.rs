//! Advisories and the advisory database.
//!
//! A database is a directory holding either or both of:
//!
//! * a RustSec advisory database: `crates/<name>/RUSTSEC-YYYY-NNNN.md` (and `rust/...`
//!   for the standard library and toolchain, which are never matched against lockfiles,
//!   as `cargo-audit` does not match them either);
//! * OSV records: `*.json` files anywhere, one vulnerability each.
//!
//! Loading is lazy where the layout allows it: [`Database::open`] lists the directory
//! tree once, parses the OSV records it finds outside `crates/<name>/` and `rust/`, and
//! leaves RustSec advisories on disk. [`Database::advisories_for`] then reads only
//! `crates/<name>/` for the packages asked about (any `*.md` and `*.json` in there).

pub mod osv;
pub mod rustsec;

use crate::cvss::{Cvss, Severity};
use crate::error::{Error, Result};
use crate::lockfile::Ecosystem;
use crate::osv_range::{self, Range};
use crate::semver::{Version, VersionInterval};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Kind of an informational (non-vulnerability) advisory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Informational {
    /// The crate is no longer maintained.
    Unmaintained,
    /// The crate's API is unsound (undefined behaviour possible from safe code).
    Unsound,
    /// A notice of other kind (e.g. a crate was renamed or deprecated).
    Notice,
    /// Any other kind; reported by neither `cargo-audit` nor this crate.
    Other(String),
}

impl Informational {
    pub(crate) fn parse(s: &str) -> Self {
        match s.trim() {
            "unmaintained" => Informational::Unmaintained,
            "unsound" => Informational::Unsound,
            "notice" => Informational::Notice,
            other => Informational::Other(other.to_string()),
        }
    }

    /// Lowercase name.
    pub fn as_str(&self) -> &str {
        match self {
            Informational::Unmaintained => "unmaintained",
            Informational::Unsound => "unsound",
            Informational::Notice => "notice",
            Informational::Other(s) => s,
        }
    }
}

impl fmt::Display for Informational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which RustSec collection an advisory belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Collection {
    /// A published package (RustSec `crates/`, or any OSV record).
    Crates,
    /// The Rust toolchain (RustSec `rust/`): never matched against lockfiles.
    Rust,
}

/// How an advisory decides which versions it affects.
#[derive(Debug, Clone)]
pub enum Affects {
    /// RustSec: affected unless inside one of these `patched`/`unaffected` intervals.
    RustSec { safe: Vec<VersionInterval> },
    /// OSV: the `ranges` (SEMVER/ECOSYSTEM) and explicit `versions` of the `affected`
    /// entries naming this package.
    Osv {
        ranges: Vec<Range>,
        versions: Vec<String>,
    },
}

/// One advisory for one package (an OSV record naming several packages yields one
/// `Advisory` per package).
#[derive(Debug, Clone)]
pub struct Advisory {
    pub id: String,
    pub aliases: Vec<String>,
    pub related: Vec<String>,
    pub ecosystem: Ecosystem,
    pub package: String,
    pub collection: Collection,
    /// One-line summary (RustSec: the first `# ` heading; OSV: `summary`).
    pub title: String,
    /// Markdown description.
    pub description: String,
    /// Publication date, `YYYY-MM-DD` (RustSec `date`, OSV `published`).
    pub date: Option<String>,
    /// Human-readable advisory page.
    pub url: String,
    /// Further links (RustSec `url` and `references`, OSV `references`).
    pub references: Vec<String>,
    pub categories: Vec<String>,
    pub keywords: Vec<String>,
    /// `Some` for informational advisories (not vulnerabilities).
    pub informational: Option<Informational>,
    /// Withdrawal date, if withdrawn: such advisories never match.
    pub withdrawn: Option<String>,
    pub cvss: Option<Cvss>,
    /// Qualitative severity given by the database without a scorable vector (e.g. GHSA's
    /// `database_specific.severity`); used only when `cvss` yields no score.
    pub database_severity: Option<Severity>,
    /// Versions that fix the issue, for display (`>= 1.2.3`, `^0.9.1`, ...).
    pub patched: Vec<String>,
    /// RustSec `[affected] os`, `arch`, `functions` (informative only: the scan matches
    /// every platform, as `cargo-audit` does by default).
    pub affected_os: Vec<String>,
    pub affected_arch: Vec<String>,
    pub affected_functions: Vec<String>,
    /// For RustSec: the advisory's `source` registry, if not crates.io.
    pub registry: Option<String>,
    pub affects: Affects,
    /// The file the advisory was read from.
    pub file: PathBuf,
}

impl Advisory {
    /// Whether `version` (a lockfile version string) is affected.
    ///
    /// Versions that are not SemVer only match an OSV `versions` entry written the same.
    pub fn affects_version(&self, version: &str) -> bool {
        let parsed = Version::parse(version).ok();
        match &self.affects {
            Affects::RustSec { safe } => {
                parsed.is_some_and(|v| !safe.iter().any(|interval| interval.contains(&v)))
            }
            Affects::Osv { ranges, versions } => {
                versions.iter().any(|listed| {
                    listed == version
                        || parsed
                            .as_ref()
                            .is_some_and(|v| Version::parse(listed).is_ok_and(|l| l == *v))
                }) || parsed.is_some_and(|v| osv_range::included_in_ranges(&v, ranges))
            }
        }
    }

    /// CVSS base score, when computable.
    pub fn cvss_score(&self) -> Option<f64> {
        self.cvss.as_ref().and_then(|c| c.score)
    }

    /// Severity: from the CVSS score, else from the database's qualitative rating.
    /// `None` for informational advisories and unscored ones.
    pub fn severity(&self) -> Option<Severity> {
        if self.informational.is_some() {
            return None;
        }
        self.cvss
            .as_ref()
            .and_then(Cvss::severity)
            .or(self.database_severity)
    }
}

/// An advisory database directory. See the module documentation.
#[derive(Debug)]
pub struct Database {
    root: PathBuf,
    /// `crates/` of a RustSec layout.
    rustsec_crates: Option<PathBuf>,
    /// OSV records found at open time, by package.
    osv: HashMap<(Ecosystem, String), Vec<Arc<Advisory>>>,
    osv_files: usize,
}

impl Database {
    /// Opens a database directory: lists it, parses the OSV records outside the lazily
    /// read RustSec `crates/<name>/` directories. Hidden entries (`.git`) are skipped.
    pub fn open(root: &Path) -> Result<Self> {
        let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
        if !meta.is_dir() {
            return Err(Error::parse(
                root,
                None,
                "the advisory database must be a directory",
            ));
        }
        let crates = root.join("crates");
        let rustsec_crates = crates.is_dir().then_some(crates);
        let mut db = Database {
            root: root.to_path_buf(),
            rustsec_crates,
            osv: HashMap::new(),
            osv_files: 0,
        };
        let mut json_files = Vec::new();
        db.walk(root, 0, &mut json_files)?;
        json_files.sort();
        for file in json_files {
            db.osv_files += 1;
            for adv in osv::read(&file)? {
                db.osv
                    .entry((adv.ecosystem, adv.package.clone()))
                    .or_default()
                    .push(Arc::new(adv));
            }
        }
        Ok(db)
    }

    fn walk(&self, dir: &Path, depth: usize, json: &mut Vec<PathBuf>) -> Result<()> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let ty = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if ty.is_dir() {
                // RustSec `crates/<name>/` are read on demand; `rust/` is never matched.
                let lazy = (depth == 1 && self.rustsec_crates.as_deref() == Some(dir))
                    || (depth == 0 && name == "rust" && self.rustsec_crates.is_some());
                if !lazy {
                    self.walk(&path, depth + 1, json)?;
                }
            } else if name.ends_with(".json") {
                json.push(path);
            }
        }
        Ok(())
    }

    /// The directory the database was opened from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Number of OSV files parsed at open time.
    pub fn osv_file_count(&self) -> usize {
        self.osv_files
    }

    /// All advisories (any collection, withdrawn included) for a package: RustSec ones
    /// read from `crates/<name>/` now, then OSV ones. Fails on a malformed advisory.
    pub fn advisories_for(&self, ecosystem: Ecosystem, name: &str) -> Result<Vec<Arc<Advisory>>> {
        let mut out = Vec::new();
        if ecosystem == Ecosystem::CratesIo
            && let Some(crates) = &self.rustsec_crates
            && is_safe_dir_name(name)
        {
            let dir = crates.join(name);
            match std::fs::read_dir(&dir) {
                Ok(entries) => {
                    let mut files = Vec::new();
                    for entry in entries {
                        let entry = entry.map_err(|e| Error::io(&dir, e))?;
                        let file_name = entry.file_name();
                        let file_name = file_name.to_string_lossy();
                        if !file_name.starts_with('.')
                            && (file_name.ends_with(".md") || file_name.ends_with(".json"))
                        {
                            files.push(entry.path());
                        }
                    }
                    files.sort();
                    for file in files {
                        if file.extension().is_some_and(|e| e == "md") {
                            let adv = rustsec::read(&file)?;
                            if adv.package == name {
                                out.push(Arc::new(adv));
                            }
                        } else {
                            out.extend(
                                osv::read(&file)?
                                    .into_iter()
                                    .filter(|a| a.ecosystem == ecosystem && a.package == name)
                                    .map(Arc::new),
                            );
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {}
                Err(e) => return Err(Error::io(&dir, e)),
            }
        }
        if let Some(osv) = self.osv.get(&(ecosystem, name.to_string())) {
            out.extend(osv.iter().cloned());
        }
        Ok(out)
    }

    /// Parses every advisory of the database (RustSec `crates/` and `rust/`, and OSV).
    /// Useful to validate a database; scanning does not need it.
    pub fn load_all(&self) -> Result<Vec<Arc<Advisory>>> {
        let mut out = Vec::new();
        if let Some(crates) = &self.rustsec_crates {
            for collection in [crates.clone(), self.root.join("rust")] {
                if !collection.is_dir() {
                    continue;
                }
                let mut dirs: Vec<PathBuf> = std::fs::read_dir(&collection)
                    .map_err(|e| Error::io(&collection, e))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir())
                    .collect();
                dirs.sort();
                for dir in dirs {
                    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                        .map_err(|e| Error::io(&dir, e))?
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|e| e == "md"))
                        .collect();
                    files.sort();
                    for f in files {
                        out.push(Arc::new(rustsec::read(&f)?));
                    }
                }
            }
        }
        let mut osv: Vec<_> = self.osv.values().flatten().cloned().collect();
        osv.sort_by(|a, b| a.file.cmp(&b.file).then_with(|| a.package.cmp(&b.package)));
        out.extend(osv);
        Ok(out)
    }
}

/// Crate names are `[A-Za-z0-9_-]+`; anything else cannot be a `crates/` directory (and
/// must not be joined to a path).
fn is_safe_dir_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
