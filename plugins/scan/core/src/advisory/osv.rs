//! OSV records (<https://ossf.github.io/osv-schema/>), one vulnerability per JSON file.
//!
//! Only `crates.io` and `npm` packages are kept. `SEMVER` and `ECOSYSTEM` ranges are
//! evaluated with SemVer ordering (the ordering of both ecosystems) by
//! [`crate::osv_range`]; `GIT` ranges name commits and cannot apply to a lockfile
//! version, so they are skipped.
//!
//! Severity: the first `CVSS_V3` vector of the record (or of the `affected` entry), else a
//! `CVSS_V4` vector (validated, unscored), else `database_specific.severity` (GHSA's
//! qualitative `LOW`/`MODERATE`/`HIGH`/`CRITICAL`), else `database_specific.cvss` (RustSec's
//! OSV export). RustSec's export also records `database_specific.informational`, which
//! makes the advisory informational as in the Markdown format.

use super::{Advisory, Affects, Collection, Informational};
use crate::cvss::{Cvss, Severity};
use crate::error::{Error, Result};
use crate::lockfile::Ecosystem;
use crate::osv_range::{Event, Range};
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

#[derive(Deserialize)]
struct Record {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    related: Vec<String>,
    summary: Option<String>,
    details: Option<String>,
    published: Option<String>,
    withdrawn: Option<String>,
    #[serde(default)]
    severity: Vec<SeverityEntry>,
    #[serde(default)]
    affected: Vec<AffectedEntry>,
    #[serde(default)]
    references: Vec<Reference>,
    database_specific: Option<Value>,
}

#[derive(Deserialize)]
struct SeverityEntry {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Deserialize)]
struct AffectedEntry {
    package: Option<PackageRef>,
    #[serde(default)]
    severity: Vec<SeverityEntry>,
    #[serde(default)]
    ranges: Vec<RangeEntry>,
    #[serde(default)]
    versions: Vec<String>,
    database_specific: Option<Value>,
}

#[derive(Deserialize)]
struct PackageRef {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct RangeEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
struct Reference {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: String,
}

/// Reads one OSV record; returns one [`Advisory`] per supported package it names.
pub fn read(path: &Path) -> Result<Vec<Advisory>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse(path, &text)
}

/// Parses an OSV record (see [`read`]).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Advisory>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rec: Record = serde_json::from_str(text)
        .map_err(|e| Error::parse(path, Some(e.line()), format!("invalid OSV record: {e}")))?;
    if rec.id.trim().is_empty() {
        return Err(Error::parse(path, None, "OSV record with an empty `id`"));
    }
    let at = |m: String| Error::parse(path, None, format!("{}: {m}", rec.id));
    let db_specific = |k: &str| {
        rec.database_specific
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(Value::as_str)
    };

    let record_cvss = pick_cvss(&rec.severity).map_err(at)?;
    let db_severity = db_specific("severity").and_then(Severity::parse);
    let db_cvss = match db_specific("cvss") {
        Some(v) => Some(Cvss::parse(v).map_err(at)?),
        None => None,
    };
    let informational = db_specific("informational").map(Informational::parse);
    let categories = string_list(
        rec.database_specific
            .as_ref()
            .and_then(|d| d.get("categories")),
    );
    let url = rec
        .references
        .iter()
        .find(|r| r.kind.as_deref() == Some("ADVISORY"))
        .map(|r| r.url.clone())
        .unwrap_or_else(|| format!("https://osv.dev/vulnerability/{}", rec.id));
    let title = rec
        .summary
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            rec.details
                .as_deref()
                .and_then(|d| d.lines().find(|l| !l.trim().is_empty()))
                .map(str::to_string)
        })
        .unwrap_or_else(|| rec.id.clone());

    // Merge `affected` entries per package (several entries may name the same package).
    let mut out: Vec<Advisory> = Vec::new();
    for (index, entry) in rec.affected.iter().enumerate() {
        let Some(pkg) = &entry.package else { continue };
        let Some(ecosystem) = Ecosystem::from_osv(&pkg.ecosystem) else {
            continue;
        };
        let mut ranges = Vec::new();
        let mut patched = Vec::new();
        for range in &entry.ranges {
            if range.kind == "GIT" {
                continue;
            }
            if range.kind != "SEMVER" && range.kind != "ECOSYSTEM" {
                return Err(at(format!(
                    "affected[{index}]: unknown range type `{}`",
                    range.kind
                )));
            }
            let mut events = Vec::new();
            for evt in &range.events {
                let mut fields = evt.iter();
                let (Some((kind, version)), None) = (fields.next(), fields.next()) else {
                    return Err(at(format!(
                        "affected[{index}]: an event must have exactly one field"
                    )));
                };
                let version = version
                    .as_str()
                    .ok_or_else(|| at(format!("affected[{index}]: `{kind}` is not a string")))?;
                let event = Event::parse(kind, version)
                    .map_err(|e| at(format!("affected[{index}] ({}): {e}", pkg.name)))?;
                events.push(event);
            }
            if !events.iter().any(|e| matches!(e, Event::Introduced(_))) {
                return Err(at(format!(
                    "affected[{index}]: a range needs an `introduced` event"
                )));
            }
            let r = Range::new(events);
            patched.extend(r.fixed_versions().map(|v| format!(">= {v}")));
            ranges.push(r);
        }
        let entry_cvss = pick_cvss(&entry.severity).map_err(at)?;
        let entry_info = entry
            .database_specific
            .as_ref()
            .and_then(|d| d.get("informational"))
            .and_then(Value::as_str)
            .map(Informational::parse);
        if let Some(existing) = out
            .iter_mut()
            .find(|a| a.ecosystem == ecosystem && a.package == pkg.name)
        {
            if let Affects::Osv {
                ranges: r,
                versions: v,
            } = &mut existing.affects
            {
                r.extend(ranges);
                v.extend(entry.versions.iter().cloned());
            }
            existing.patched.extend(patched);
            continue;
        }
        out.push(Advisory {
            id: rec.id.clone(),
            aliases: rec.aliases.clone(),
            related: rec.related.clone(),
            ecosystem,
            package: pkg.name.clone(),
            collection: Collection::Crates,
            title: title.clone(),
            description: rec.details.clone().unwrap_or_default(),
            date: rec.published.as_ref().map(|p| p.chars().take(10).collect()),
            url: url.clone(),
            references: rec.references.iter().map(|r| r.url.clone()).collect(),
            categories: categories.clone(),
            keywords: Vec::new(),
            informational: entry_info.or_else(|| informational.clone()),
            withdrawn: rec.withdrawn.clone(),
            cvss: entry_cvss
                .or_else(|| record_cvss.clone())
                .or_else(|| db_cvss.clone()),
            database_severity: db_severity,
            patched,
            affected_os: Vec::new(),
            affected_arch: Vec::new(),
            affected_functions: Vec::new(),
            registry: None,
            affects: Affects::Osv {
                ranges,
                versions: entry.versions.clone(),
            },
            file: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// The preferred CVSS vector of a severity list: v3 (scorable) before v4.
fn pick_cvss(entries: &[SeverityEntry]) -> Result<Option<Cvss>, String> {
    for wanted in ["CVSS_V3", "CVSS_V4"] {
        if let Some(e) = entries.iter().find(|e| e.kind == wanted) {
            return Cvss::parse(&e.score).map(Some);
        }
    }
    Ok(None)
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = r#"{
      "schema_version": "1.6.0",
      "id": "GHSA-xxxx-yyyy-zzzz",
      "modified": "2024-01-01T00:00:00Z",
      "published": "2023-05-06T07:08:09Z",
      "aliases": ["CVE-2023-0001"],
      "summary": "Prototype pollution in lodash",
      "details": "Long text",
      "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
      "affected": [
        {"package": {"ecosystem": "npm", "name": "lodash"},
         "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.12"}]},
                    {"type": "GIT", "repo": "https://github.com/lodash/lodash", "events": [{"introduced": "abc"}]}]},
        {"package": {"ecosystem": "npm", "name": "lodash"}, "versions": ["5.0.0-pre"]},
        {"package": {"ecosystem": "PyPI", "name": "lodash"}, "versions": ["1.0"]}
      ],
      "references": [{"type": "WEB", "url": "https://example.com"}, {"type": "ADVISORY", "url": "https://github.com/advisories/GHSA-xxxx-yyyy-zzzz"}],
      "database_specific": {"severity": "HIGH"}
    }"#;

    #[test]
    fn parses_record() {
        let advs = parse(Path::new("a.json"), RECORD).unwrap();
        assert_eq!(advs.len(), 1, "PyPI dropped, npm entries merged");
        let a = &advs[0];
        assert_eq!(a.package, "lodash");
        assert_eq!(a.cvss_score(), Some(9.8));
        assert_eq!(a.severity(), Some(Severity::Critical));
        assert_eq!(a.url, "https://github.com/advisories/GHSA-xxxx-yyyy-zzzz");
        assert_eq!(a.date.as_deref(), Some("2023-05-06"));
        assert_eq!(a.patched, vec![">= 4.17.12"]);
        assert!(a.affects_version("4.17.11"));
        assert!(!a.affects_version("4.17.12"));
        assert!(a.affects_version("5.0.0-pre"));
        assert!(!a.affects_version("not-a-version"));
    }

    #[test]
    fn qualitative_severity_fallback() {
        let rec = RECORD.replace(r#""severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"#, "");
        let a = &parse(Path::new("a.json"), &rec).unwrap()[0];
        assert_eq!(a.cvss_score(), None);
        assert_eq!(a.severity(), Some(Severity::High));
    }

    #[test]
    fn malformed_records() {
        let e = parse(
            Path::new("bad.json"),
            "{\n  \"id\": \"X\",\n  \"affected\": [}\n",
        )
        .unwrap_err();
        assert_eq!(e.line(), Some(3), "{e}");
        assert!(
            e.to_string().starts_with("bad.json:3: invalid OSV record"),
            "{e}"
        );
        let bad = RECORD.replace(
            r#"{"fixed": "4.17.12"}"#,
            r#"{"fixed": "4.17.12", "limit": "5"}"#,
        );
        assert!(
            parse(Path::new("a.json"), &bad)
                .unwrap_err()
                .to_string()
                .contains("exactly one")
        );
        let bad = RECORD.replace(r#"{"fixed": "4.17.12"}"#, r#"{"fixed": "four"}"#);
        assert!(parse(Path::new("a.json"), &bad).is_err());
        let bad = RECORD.replace(r#"{"introduced": "0"}, "#, "");
        assert!(
            parse(Path::new("a.json"), &bad)
                .unwrap_err()
                .to_string()
                .contains("introduced")
        );
        assert!(parse(Path::new("a.json"), "[1, 2]").is_err());
    }
}
