//! SARIF 2.1.0 output.
//!
//! One run; `tool.driver.name` is `flow-scan`, `rules` holds each matched advisory once
//! (id, short and full description, help URI, tags, and `security-severity` — the CVSS
//! base score as a string — when scored). Each finding is a result whose location is the
//! lockfile (URI relative to a base directory) and the line of the package entry.
//!
//! Levels: critical/high → `error`, medium → `warning`, low/none → `note`; unscored
//! vulnerabilities use the policy's `unscored_as` severity; warnings (informational
//! advisories) → `warning`. Ignored findings carry an `accepted` external suppression
//! with the ignore's reason as justification. Stale and expired ignores are reported as
//! tool configuration notifications of the invocation.

use crate::cvss::Severity;
use crate::policy::{Evaluated, Evaluation, Status};
use crate::scan::FindingKind;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// SARIF level of an evaluated finding.
pub fn level(e: &Evaluated) -> &'static str {
    match (&e.finding.kind, e.effective_severity) {
        (FindingKind::Warning(_), _) => "warning",
        (_, Some(Severity::Critical | Severity::High)) => "error",
        (_, Some(Severity::Medium)) => "warning",
        _ => "note",
    }
}

/// Builds the SARIF log. Lockfile paths are made relative to `base` when under it.
pub fn to_sarif(eval: &Evaluation, base: &Path) -> Value {
    let mut rule_index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut rules = Vec::new();
    for e in &eval.findings {
        let f = &e.finding;
        if rule_index.contains_key(f.advisory_id.as_str()) {
            continue;
        }
        rule_index.insert(&f.advisory_id, rules.len());
        let mut tags: Vec<String> = vec!["security".into()];
        match &f.kind {
            FindingKind::Vulnerability => tags.push("vulnerability".into()),
            FindingKind::Warning(info) => tags.push(info.as_str().to_string()),
        }
        for t in &f.tags {
            // SARIF requires unique tags.
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        let mut properties = json!({ "tags": tags });
        if let Some(score) = f.cvss_score {
            properties["security-severity"] = json!(format!("{score:.1}"));
        }
        if let Some(vector) = &f.cvss_vector {
            properties["cvssVector"] = json!(vector);
        }
        if !f.aliases.is_empty() {
            properties["aliases"] = json!(f.aliases);
        }
        let full = if f.description.is_empty() {
            f.title.clone()
        } else {
            f.description.clone()
        };
        rules.push(json!({
            "id": f.advisory_id,
            "name": rule_name(&f.advisory_id),
            "shortDescription": { "text": non_empty(&f.title, &f.advisory_id) },
            "fullDescription": { "text": full, "markdown": full },
            "helpUri": f.url,
            "help": {
                "text": format!("{}\n\nSee {}", non_empty(&f.title, &f.advisory_id), f.url),
                "markdown": format!("**{}**\n\nSee <{}>", non_empty(&f.title, &f.advisory_id), f.url),
            },
            "defaultConfiguration": { "level": level(e) },
            "properties": properties,
        }));
    }

    let results: Vec<Value> = eval
        .findings
        .iter()
        .map(|e| {
            let f = &e.finding;
            let fix = if f.patched_versions.is_empty() {
                "no fixed version available".to_string()
            } else {
                format!("fixed in {}", f.patched_versions.join(" or "))
            };
            let what = match &f.kind {
                FindingKind::Vulnerability => "vulnerability".to_string(),
                FindingKind::Warning(info) => info.as_str().to_string(),
            };
            let mut result = json!({
                "ruleId": f.advisory_id,
                "ruleIndex": rule_index[f.advisory_id.as_str()],
                "level": level(e),
                "message": { "text": format!("{} {}: {} ({what}, {}; {fix})", f.package, f.version, non_empty(&f.title, &f.advisory_id), f.advisory_id) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": relative_uri(&f.lockfile, base) },
                        "region": { "startLine": f.line.max(1) },
                    },
                    "logicalLocations": [{ "name": format!("{}@{}", f.package, f.version), "kind": "package" }],
                }],
                "partialFingerprints": {
                    "flowScanFinding/v1": format!("{}:{}:{}@{}", f.advisory_id, f.ecosystem, f.package, f.version),
                },
                "properties": {
                    "kind": match &f.kind {
                        FindingKind::Vulnerability => "vulnerability",
                        FindingKind::Warning(info) => info.as_str(),
                    },
                    "package": f.package,
                    "version": f.version,
                    "ecosystem": f.ecosystem.as_str(),
                    "severity": e.effective_severity.map(Severity::as_str),
                    "scored": f.severity.is_some(),
                    "failsPolicy": e.fails,
                },
            });
            match &e.status {
                Status::Active => {}
                Status::Ignored { reason, expires } => {
                    let mut s = json!({ "kind": "external", "status": "accepted", "justification": reason });
                    if let Some(d) = expires {
                        s["properties"] = json!({ "expires": d.to_string() });
                    }
                    result["suppressions"] = json!([s]);
                }
                Status::IgnoreExpired { reason, expired } => {
                    result["properties"]["ignoreExpired"] = json!({ "reason": reason, "expired": expired.to_string() });
                }
            }
            result
        })
        .collect();

    let mut notifications = Vec::new();
    for ig in &eval.stale_ignores {
        notifications.push(json!({
            "level": "warning",
            "message": { "text": format!("ignore for {} matched no finding (stale); reason was: {}", ig.id, ig.reason) },
            "descriptor": { "id": "stale-ignore" },
        }));
    }
    for ig in &eval.expired_ignores {
        let when = ig.expires.map(|d| d.to_string()).unwrap_or_default();
        notifications.push(json!({
            "level": "warning",
            "message": { "text": format!("ignore for {} expired on {when}; the finding counts again", ig.id) },
            "descriptor": { "id": "expired-ignore" },
        }));
    }
    let mut invocation = json!({ "executionSuccessful": true });
    if !notifications.is_empty() {
        invocation["toolConfigurationNotifications"] = json!(notifications);
    }

    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "flow-scan",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://github.com/flow-engine/flow",
                    "rules": rules,
                }
            },
            "invocations": [invocation],
            "results": results,
        }]
    })
}

/// [`to_sarif`], pretty-printed.
pub fn to_sarif_string(eval: &Evaluation, base: &Path) -> String {
    serde_json::to_string_pretty(&to_sarif(eval, base)).unwrap_or_default()
}

fn non_empty<'a>(s: &'a str, fallback: &'a str) -> &'a str {
    if s.trim().is_empty() { fallback } else { s }
}

/// `RUSTSEC-2019-0009` → `Rustsec20190009`: SARIF rule names are identifier-like.
fn rule_name(id: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in id.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
            upper = false;
        } else {
            upper = true;
        }
    }
    out
}

/// The lockfile path as a URI reference: relative to `base` (forward slashes,
/// percent-encoded) when it is under `base`, else an absolute `file://` URI, else the
/// encoded path as given.
pub fn relative_uri(path: &Path, base: &Path) -> String {
    // Without `.` components, so that `./Cargo.lock` is under `.`.
    let clean = |p: &Path| {
        p.components()
            .filter(|c| *c != Component::CurDir)
            .collect::<PathBuf>()
    };
    let (path, base) = (clean(path), clean(base));
    let segments = |p: &Path| -> Vec<String> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(encode(&s.to_string_lossy())),
                Component::ParentDir => Some("..".to_string()),
                _ => None,
            })
            .collect()
    };
    match path.strip_prefix(&base) {
        Ok(rel) if path.is_absolute() == base.is_absolute() => segments(rel).join("/"),
        _ if path.is_absolute() => format!("file:///{}", segments(&path).join("/")),
        _ => segments(&path).join("/"),
    }
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
