//! # flow-scan
//!
//! The engine of flow's `scan` step: reads lockfiles, matches their packages against an
//! advisory database (RustSec and/or OSV), applies a pass/fail policy and renders SARIF
//! 2.1.0 and a text summary. Pure `std::fs`, no threads, processes or network: it runs
//! inside the wasm32-wasip2 plugin as well as natively.
//!
//! ```no_run
//! use flow_scan::{Database, Lockfile, Policy, Date, scan, evaluate, sarif, report};
//! use std::path::Path;
//!
//! let db = Database::open(Path::new("advisory-db"))?;
//! let lock = Lockfile::read(Path::new("Cargo.lock"))?;
//! let findings = scan(&db, &[lock])?;
//! let eval = evaluate(&Policy::default(), findings, Date::parse("2026-08-21").unwrap())?;
//! println!("{}", report::text_summary(&eval));
//! let sarif = sarif::to_sarif_string(&eval, Path::new("."));
//! # let _ = sarif;
//! # Ok::<(), flow_scan::Error>(())
//! ```
//!
//! Matching reproduces `cargo-audit` (see [`scan()`] and [`advisory::rustsec`]).

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod advisory;
pub mod cvss;
mod error;
pub mod lockfile;
pub mod osv_range;
pub mod policy;
pub mod report;
pub mod sarif;
mod scan;
pub mod semver;

pub use advisory::{Advisory, Database, Informational};
pub use cvss::{Cvss, Severity};
pub use error::{Error, Result};
pub use lockfile::{Ecosystem, Lockfile, Package, Source};
pub use policy::{Date, Evaluation, FailOn, Ignore, Policy, evaluate};
pub use scan::{Finding, FindingKind, scan, scan_observed};

use std::path::Path;

/// Convenience: opens the database, reads the lockfiles, and scans them.
pub fn scan_paths(db_dir: &Path, lockfiles: &[&Path]) -> Result<Vec<Finding>> {
    let db = Database::open(db_dir)?;
    let locks = lockfiles
        .iter()
        .map(|p| Lockfile::read(p))
        .collect::<Result<Vec<_>>>()?;
    scan(&db, &locks)
}
