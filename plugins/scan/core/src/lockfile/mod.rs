//! Lockfiles: the packages a project resolved, with where each one is declared.
//!
//! Supported: `Cargo.lock` (v1 with `[metadata]` checksums, v2, v3, v4) and npm's
//! `package-lock.json` / `npm-shrinkwrap.json` (v2 and v3 through the `packages` map,
//! v1 through the nested `dependencies` tree).

mod cargo;
mod npm;

use crate::error::{Error, Result};
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// A package ecosystem, named as OSV names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Ecosystem {
    /// Rust crates (`crates.io`).
    #[serde(rename = "crates.io")]
    CratesIo,
    /// npm packages (`npm`).
    #[serde(rename = "npm")]
    Npm,
}

impl Ecosystem {
    /// The OSV ecosystem name.
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::Npm => "npm",
        }
    }

    /// Parses an OSV ecosystem name (`crates.io`, `npm`); other ecosystems give `None`.
    pub fn from_osv(s: &str) -> Option<Self> {
        match s {
            "crates.io" => Some(Ecosystem::CratesIo),
            "npm" => Some(Ecosystem::Npm),
            _ => None,
        }
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a package comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// A package registry. `default` is true for the ecosystem's public registry
    /// (crates.io, registry.npmjs.org).
    Registry { url: String, default: bool },
    /// A git repository.
    Git { url: String },
    /// A local path: workspace members, path dependencies, `file:` and linked packages.
    Path { path: String },
}

/// One resolved package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub version: String,
    pub source: Source,
    /// 1-based line of the package's entry in the lockfile.
    pub line: usize,
}

impl Package {
    /// Whether registry advisories apply to this package.
    ///
    /// * crates: only packages from crates.io (as `cargo-audit` does; git and path
    ///   packages may have the same name as a published crate but are different code);
    /// * npm: any registry tarball (npm mirrors and proxies such as Artifactory serve the
    ///   public packages under other URLs) and entries without `resolved` inside
    ///   `node_modules` (npm omits it for bundled dependencies); never git or local
    ///   packages.
    pub fn is_registry_package(&self) -> bool {
        match (&self.source, self.ecosystem) {
            (Source::Registry { default, .. }, Ecosystem::CratesIo) => *default,
            (Source::Registry { .. }, Ecosystem::Npm) => true,
            _ => false,
        }
    }
}

/// The lockfile formats understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LockfileKind {
    /// `Cargo.lock`, with its format version (1 to 4; 1 also covers the unversioned v2).
    Cargo { version: u32 },
    /// `package-lock.json`, with its `lockfileVersion`.
    Npm { version: u32 },
}

/// A parsed lockfile.
#[derive(Debug, Clone, Serialize)]
pub struct Lockfile {
    /// The path it was read from (as given).
    pub path: PathBuf,
    pub kind: LockfileKind,
    pub packages: Vec<Package>,
}

impl Lockfile {
    /// Reads and parses a lockfile; the format is chosen from the file name, then content.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| Error::parse(path, None, format!("not UTF-8 text: {e}")))?;
        Self::parse(path, &text)
    }

    /// Parses lockfile text; `path` names the file in errors and findings.
    ///
    /// `*.json` files are read as npm lockfiles, `*.lock` / `*.toml` files as Cargo
    /// lockfiles; for other names the content decides (`{` starts an npm lockfile).
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let is_json = if name.ends_with(".json") {
            true
        } else if name.ends_with(".lock") || name.ends_with(".toml") {
            false
        } else {
            text.trim_start().starts_with('{')
        };
        if is_json {
            npm::parse(path, text)
        } else {
            cargo::parse(path, text)
        }
    }
}
