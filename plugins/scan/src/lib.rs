//! `scan`: matches the lockfiles in the workspace (`Cargo.lock`,
//! `package-lock.json` v1-v3) against an advisory database directory (RustSec
//! format and OSV JSON records), writes SARIF 2.1.0 and a readable summary,
//! and fails the step when a finding reaches `fail-on`.
//!
//! ```yaml
//! scan:
//!   uses: scan
//!   grants: { fs: [{ path: advisory-db, access: read }] }
//!   with:
//!     db: advisory-db
//!     fail-on: high
//!     ignore:
//!       - { id: RUSTSEC-2023-0071, reason: "no RSA decryption here", expires: 2027-01-31 }
//! ```

use std::path::{Component, Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use flow_plugin_sdk::{
    Capability, Context, Description, Param, ParamType, Plugin, StepError, export_plugin,
};
use flow_scan::{Database, Date, Lockfile, Policy, evaluate, report, sarif};
use serde::Deserialize;
use serde_json::{Value, json};

struct Scan;

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Params {
    db: Option<String>,
    lockfiles: Vec<String>,
    fail_on: String,
    unscored_as: String,
    ignore: Vec<Value>,
    sarif: String,
    today: Option<String>,
}

/// Directories never searched for lockfiles.
const SKIP_DIRS: &[&str] = &[".git", "target", "node_modules", ".flow"];
/// Lockfile names found in the workspace.
const LOCKFILES: &[&str] = &["Cargo.lock", "package-lock.json"];

fn find_lockfiles(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), StepError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StepError::new(format!("cannot list {}: {e}", dir.display())))?;
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && !SKIP_DIRS.contains(&name.as_str()) {
            find_lockfiles(&entry.path(), out)?;
        } else if kind.is_file() && LOCKFILES.contains(&name.as_str()) {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// A path inside the workspace: relative, without `..`.
fn in_workspace(workspace: &Path, path: &str, what: &str) -> Result<PathBuf, StepError> {
    let rel = Path::new(path);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(StepError::new(format!(
            "`{what}: {path}` must be a path inside the workspace, without `..`"
        )));
    }
    Ok(workspace.join(rel))
}

/// Today's date (UTC) from the clock.
fn today() -> Date {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Days to civil date (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u16;
    Date { year, month, day }
}

impl Plugin for Scan {
    type Params = Params;

    fn describe() -> Description {
        Description::new(
            "scan",
            env!("CARGO_PKG_VERSION"),
            "Matches lockfiles against an advisory database (RustSec, OSV), writes SARIF 2.1.0, and fails on a severity threshold",
        )
        .param(Param::string(
            "db",
            "the advisory database directory (RustSec layout and/or OSV JSON), granted read-only (default: the one directory the step is granted)",
        ))
        .param(Param::list("lockfiles", "lockfiles to scan, relative to the workspace (default: every Cargo.lock and package-lock.json in it)").default(json!([])))
        .param(Param::string("fail-on", "fail when a vulnerability reaches: critical | high | medium | low | any | none").default("high"))
        .param(Param::string("unscored-as", "the severity of a vulnerability without a CVSS v3 score").default("high"))
        .param(Param::new("ignore", ParamType::List, "findings to ignore: [{id, reason, expires: YYYY-MM-DD}]; an expired one counts again").default(json!([])))
        .param(Param::string("sarif", "where to write the SARIF report, relative to the workspace").default("scan.sarif"))
        .param(Param::string("today", "the date ignores expire against (default: today, UTC)"))
        .output("vulnerabilities", "active vulnerabilities found")
        .output("warnings", "active warnings (unmaintained, unsound, notices)")
        .output("failing", "vulnerabilities at or above `fail-on`")
        .output("sarif", "the SARIF report's path in the workspace")
        .output("summary", "the readable summary")
        .needs(Capability::FsRead)
    }

    fn run(params: Params, ctx: &mut Context) -> Result<(), StepError> {
        let started = Instant::now();
        let workspace = PathBuf::from(ctx.workspace());
        let fail_on = flow_scan::FailOn::parse(&params.fail_on).ok_or_else(|| {
            StepError::new(format!(
                "`fail-on: {}` must be critical, high, medium, low, any or none",
                params.fail_on
            ))
        })?;
        let policy: Policy = serde_json::from_value(json!({
            "fail_on": fail_on,
            "unscored_as": params.unscored_as.to_ascii_lowercase(),
            "ignore": params.ignore,
        }))
        .map_err(|e| StepError::new(format!("invalid `unscored-as` or `ignore`: {e}")))?;
        policy.validate()?;
        let today = match &params.today {
            Some(text) => Date::parse(text).map_err(|e| StepError::new(format!("`today`: {e}")))?,
            None => today(),
        };

        let db_path = match (&params.db, ctx.granted_dirs()) {
            (Some(db), _) if Path::new(db).is_absolute() => PathBuf::from(db),
            (Some(db), _) => workspace.join(db),
            (None, [one]) => PathBuf::from(&one.path),
            (None, []) => {
                return Err(StepError::new(
                    "no advisory database: grant it with `grants: { fs: [{ path: <db>, access: read }] }`",
                ));
            }
            (None, _) => {
                return Err(StepError::new(
                    "the step is granted several directories; say which is the database with `db:`",
                ));
            }
        };
        let db = Database::open(&db_path)?;
        let mut paths = Vec::new();
        if params.lockfiles.is_empty() {
            find_lockfiles(&workspace, &mut paths)?;
            if paths.is_empty() {
                return Err(StepError::new(
                    "no Cargo.lock or package-lock.json in the workspace; name them with `lockfiles:`",
                ));
            }
        } else {
            for path in &params.lockfiles {
                paths.push(in_workspace(&workspace, path, "lockfiles")?);
            }
        }
        let lockfiles = paths
            .iter()
            .map(|p| Lockfile::read(p))
            .collect::<Result<Vec<_>, _>>()?;
        let packages: usize = lockfiles.iter().map(|l| l.packages.len()).sum();
        let findings = flow_scan::scan_observed(&db, &lockfiles, &mut |done, total| {
            ctx.progress(done, Some(total), "packages")
        })?;
        let evaluation = evaluate(&policy, findings, today)?;

        let sarif_path = in_workspace(&workspace, &params.sarif, "sarif")?;
        if let Some(parent) = sarif_path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StepError::new(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&sarif_path, sarif::to_sarif_string(&evaluation, &workspace))
            .map_err(|e| StepError::new(format!("cannot write {}: {e}", sarif_path.display())))?;
        let summary = report::text_summary(&evaluation);
        for line in summary.lines() {
            ctx.info(line);
        }
        ctx.info(&format!(
            "scanned {packages} packages in {} lockfiles against {} in {} ms",
            lockfiles.len(),
            db_path.display(),
            started.elapsed().as_millis()
        ));
        ctx.set_output(
            "vulnerabilities",
            &evaluation.active_vulnerabilities().to_string(),
        );
        ctx.set_output("warnings", &evaluation.active_warnings().to_string());
        ctx.set_output("failing", &evaluation.failing().to_string());
        ctx.set_output("sarif", &params.sarif);
        ctx.set_output("summary", &summary);
        if evaluation.failed {
            return Err(StepError::new(format!(
                "{} vulnerabilities at or above `fail-on: {}` (see {})",
                evaluation.failing(),
                params.fail_on,
                params.sarif
            )));
        }
        Ok(())
    }
}

export_plugin!(Scan);

#[cfg(test)]
mod tests {
    #[test]
    fn today_is_a_real_date() {
        let d = super::today();
        assert!(d.year >= 2024 && (1..=12).contains(&d.month) && (1..=31).contains(&d.day));
    }
}
