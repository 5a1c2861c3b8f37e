//! Policy evaluation, SARIF output (validated with `sarif-multitool` when
//! `FLOW_SARIF_MULTITOOL` names it) and the text summary.

use flow_scan::policy::Status;
use flow_scan::{
    Database, Date, Error, FailOn, Finding, Ignore, Lockfile, Policy, Severity, evaluate, report,
    sarif, scan,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

/// Findings: lodash 4.17.11 & 4.17.4 (FLOW-TEST-0001, high, alias CVE-2099-0001),
/// minimist (FLOW-TEST-0002, medium), smallvec 0.6.9 (RUSTSEC-2019-0009, critical),
/// smallvec 1.13.2 (FLOW-TEST-0004, unscored).
fn findings() -> Vec<Finding> {
    let db = Database::open(&data("osv-db")).unwrap();
    let locks = [
        Lockfile::read(&data("lockfiles/package-lock.json")).unwrap(),
        Lockfile::read(&data("lockfiles/v4.Cargo.lock")).unwrap(),
    ];
    scan(&db, &locks).unwrap()
}

fn date(s: &str) -> Date {
    Date::parse(s).unwrap()
}

fn policy(fail_on: FailOn) -> Policy {
    Policy {
        fail_on,
        ..Policy::default()
    }
}

fn failing_ids(p: &Policy) -> Vec<String> {
    let e = evaluate(p, findings(), date("2026-08-21")).unwrap();
    assert_eq!(e.failed, e.failing() > 0);
    e.findings
        .iter()
        .filter(|f| f.fails)
        .map(|f| f.finding.advisory_id.clone())
        .collect()
}

#[test]
fn thresholds() {
    assert_eq!(Policy::default().fail_on, FailOn::High);
    assert_eq!(Policy::default().unscored_as, Severity::High);
    assert_eq!(
        failing_ids(&policy(FailOn::Critical)),
        ["RUSTSEC-2019-0009"]
    );
    assert_eq!(
        failing_ids(&policy(FailOn::High)),
        [
            "FLOW-TEST-0001",
            "FLOW-TEST-0001",
            "RUSTSEC-2019-0009",
            "FLOW-TEST-0004"
        ]
    );
    assert_eq!(failing_ids(&policy(FailOn::Medium)).len(), 5);
    assert_eq!(failing_ids(&policy(FailOn::Low)).len(), 5);
    assert_eq!(failing_ids(&policy(FailOn::Any)).len(), 5);
    assert!(failing_ids(&policy(FailOn::None)).is_empty());
    let lenient = Policy {
        fail_on: FailOn::High,
        unscored_as: Severity::Low,
        ignore: vec![],
    };
    assert_eq!(
        failing_ids(&lenient),
        ["FLOW-TEST-0001", "FLOW-TEST-0001", "RUSTSEC-2019-0009"]
    );
    assert!(FailOn::Any.fails(Severity::None));
    assert!(!FailOn::Low.fails(Severity::None));
}

#[test]
fn warnings_never_fail() {
    let db = Database::open(&data("rustsec-advisory-db")).unwrap();
    let lock = Lockfile::read(&data("lockfiles/flow.Cargo.lock")).unwrap();
    let e = evaluate(
        &policy(FailOn::Any),
        scan(&db, &[lock]).unwrap(),
        date("2026-08-21"),
    )
    .unwrap();
    assert!(e.active_warnings() > 0);
    assert!(!e.failed);
    assert!(e.findings.iter().all(|f| f.effective_severity.is_none()));
}

fn ignore(id: &str, expires: Option<&str>) -> Ignore {
    Ignore {
        id: id.into(),
        reason: format!("reviewed {id}"),
        expires: expires.map(date),
    }
}

#[test]
fn ignores_expiry_and_staleness() {
    let p = Policy {
        fail_on: FailOn::High,
        unscored_as: Severity::High,
        ignore: vec![
            ignore("CVE-2099-0001", Some("2026-08-21")), // alias of FLOW-TEST-0001, valid through today
            ignore("RUSTSEC-2019-0009", Some("2026-08-20")), // expired yesterday
            ignore("flow-test-0004", None),              // ids compare case-insensitively
            ignore("RUSTSEC-1999-0001", None),           // matches nothing
        ],
    };
    let e = evaluate(&p, findings(), date("2026-08-21")).unwrap();
    let status = |id: &str| {
        e.findings
            .iter()
            .find(|f| f.finding.advisory_id == id)
            .unwrap()
            .status
            .clone()
    };
    assert_eq!(
        status("FLOW-TEST-0001"),
        Status::Ignored {
            reason: "reviewed CVE-2099-0001".into(),
            expires: Some(date("2026-08-21"))
        }
    );
    assert_eq!(
        status("RUSTSEC-2019-0009"),
        Status::IgnoreExpired {
            reason: "reviewed RUSTSEC-2019-0009".into(),
            expired: date("2026-08-20")
        }
    );
    assert!(matches!(status("FLOW-TEST-0004"), Status::Ignored { .. }));
    assert_eq!(status("FLOW-TEST-0002"), Status::Active);
    assert_eq!(e.ignored(), 3);
    assert_eq!(e.expired_ignores, [p.ignore[1].clone()]);
    assert_eq!(e.stale_ignores, [p.ignore[3].clone()]);
    assert!(e.failed, "the expired ignore counts again (critical)");
    assert_eq!(e.failing(), 1);

    // The next day, the alias ignore has expired too.
    let e = evaluate(&p, findings(), date("2026-08-22")).unwrap();
    assert_eq!(e.failing(), 3);
    assert_eq!(e.expired_ignores.len(), 2);
}

#[test]
fn policy_validation_and_parsing() {
    let mut p = Policy::default();
    p.ignore.push(Ignore {
        id: "X".into(),
        reason: "  ".into(),
        expires: None,
    });
    let e = evaluate(&p, vec![], date("2026-01-01")).unwrap_err();
    assert!(matches!(e, Error::Policy(_)));
    assert!(e.to_string().contains("reason"), "{e}");

    let p: Policy = serde_json::from_str(
        r#"{"fail_on": "critical", "ignore": [{"id": "RUSTSEC-2019-0009", "reason": "not reachable", "expires": "2026-12-31"}]}"#,
    )
    .unwrap();
    assert_eq!(p.fail_on, FailOn::Critical);
    assert_eq!(p.unscored_as, Severity::High);
    assert_eq!(p.ignore[0].expires, Some(date("2026-12-31")));
    let p: Policy = toml::from_str("fail_on = \"none\"\nunscored_as = \"medium\"\n").unwrap();
    assert_eq!((p.fail_on, p.unscored_as), (FailOn::None, Severity::Medium));

    for bad in [
        r#"{"ignore": [{"id": "X"}]}"#,
        r#"{"ignore": [{"id": "X", "reason": "r", "expires": "2026-02-30"}]}"#,
        r#"{"ignore": [{"id": "X", "reason": "r", "expires": "31/12/2026"}]}"#,
        r#"{"fail_on": "severe"}"#,
        r#"{"fail-on": "high"}"#,
    ] {
        assert!(serde_json::from_str::<Policy>(bad).is_err(), "{bad}");
    }
    assert_eq!(date("2024-02-29").to_string(), "2024-02-29");
    for bad in [
        "2023-02-29",
        "2026-13-01",
        "2026-00-10",
        "2026-1-1",
        "",
        "abcd-ef-gh",
        "2026-01-32",
    ] {
        assert!(Date::parse(bad).is_err(), "{bad}");
    }
    assert!(date("2026-01-31") < date("2026-02-01"));
    assert_eq!(FailOn::parse("HIGH"), Some(FailOn::High));
}

fn sample_evaluation() -> flow_scan::Evaluation {
    let p = Policy {
        fail_on: FailOn::High,
        unscored_as: Severity::High,
        ignore: vec![
            ignore("CVE-2099-0001", Some("2026-12-31")),
            ignore("FLOW-TEST-0002", Some("2026-01-01")),
            ignore("RUSTSEC-1999-0001", None),
        ],
    };
    let mut all = findings();
    // Add warnings and real advisories from the RustSec database.
    let db = Database::open(&data("rustsec-advisory-db")).unwrap();
    let lock = Lockfile::read(&data("lockfiles/synth-500.Cargo.lock")).unwrap();
    all.extend(scan(&db, &[lock]).unwrap().into_iter().take(60));
    evaluate(&p, all, date("2026-08-21")).unwrap()
}

#[test]
fn sarif_structure() {
    let eval = sample_evaluation();
    let base = data("");
    let log = sarif::to_sarif(&eval, &base);
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "flow-scan");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), eval.findings.len());
    let rule = |id: &str| rules.iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(
        rule("RUSTSEC-2019-0009")["properties"]["security-severity"],
        "9.8"
    );
    assert_eq!(
        rule("RUSTSEC-2019-0009")["helpUri"],
        "https://rustsec.org/advisories/RUSTSEC-2019-0009.html"
    );
    assert!(
        rule("FLOW-TEST-0004")["properties"]
            .get("security-severity")
            .is_none()
    );
    let ids: std::collections::BTreeSet<&str> =
        rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), rules.len(), "one rule per advisory");

    let result = |id: &str, version: &str| {
        results
            .iter()
            .find(|r| r["ruleId"] == id && r["properties"]["version"] == version)
            .unwrap()
    };
    let lodash = result("FLOW-TEST-0001", "4.17.11");
    assert_eq!(lodash["level"], "error");
    assert_eq!(
        lodash["suppressions"][0]["justification"],
        "reviewed CVE-2099-0001"
    );
    let loc = &lodash["locations"][0]["physicalLocation"];
    assert_eq!(
        loc["artifactLocation"]["uri"],
        "lockfiles/package-lock.json"
    );
    assert_eq!(loc["region"]["startLine"], 13);
    let minimist = result("FLOW-TEST-0002", "0.0.8");
    assert_eq!(minimist["level"], "warning");
    assert!(
        minimist.get("suppressions").is_none(),
        "expired ignore: not suppressed"
    );
    assert_eq!(
        minimist["properties"]["ignoreExpired"]["expired"],
        "2026-01-01"
    );
    assert_eq!(result("RUSTSEC-2019-0009", "0.6.9")["level"], "error");
    assert!(
        results
            .iter()
            .any(|r| r["level"] == "note" || r["level"] == "warning")
    );
    let notes = run["invocations"][0]["toolConfigurationNotifications"]
        .as_array()
        .unwrap();
    assert_eq!(notes.len(), 2, "one stale, one expired");
    for r in results {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], r["ruleId"]);
        assert!(
            r["locations"][0]["physicalLocation"]["region"]["startLine"]
                .as_u64()
                .unwrap()
                >= 1
        );
    }
    assert_eq!(
        sarif::relative_uri(Path::new("./a b/Cargo.lock"), Path::new(".")),
        "a%20b/Cargo.lock"
    );
    assert_eq!(
        sarif::relative_uri(Path::new("/x/Cargo.lock"), Path::new("/y")),
        "file:///x/Cargo.lock"
    );
}

/// `tool` without network where bubblewrap works: the validator looks up the
/// hosts of the rules' help URIs and, on a machine without DNS, waits a minute
/// for each before carrying on.
fn offline_command(tool: &str) -> Command {
    let bwrap_works = Command::new("bwrap")
        .args(["--dev-bind", "/", "/", "--unshare-net", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if bwrap_works {
        let mut command = Command::new("bwrap");
        command.args(["--dev-bind", "/", "/", "--unshare-net", tool]);
        command
    } else {
        Command::new(tool)
    }
}

#[test]
fn sarif_validates_with_multitool() {
    let sarif_text = sarif::to_sarif_string(&sample_evaluation(), &data(""));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.sarif");
    std::fs::write(&out, &sarif_text).unwrap();
    let Ok(tool) = std::env::var("FLOW_SARIF_MULTITOOL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "FLOW_SARIF_MULTITOOL must be set in CI"
        );
        println!(
            "NOT RUN: set FLOW_SARIF_MULTITOOL to the sarif-multitool binary to validate SARIF"
        );
        return;
    };
    let report = dir.path().join("report.sarif");
    let status = offline_command(&tool)
        .arg("validate")
        .arg(&out)
        .arg("--output")
        .arg(&report)
        .env("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
        .output()
        .expect("run sarif-multitool");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap_or_else(|e| {
            panic!(
                "no report ({e}): {}{}",
                String::from_utf8_lossy(&status.stdout),
                String::from_utf8_lossy(&status.stderr)
            )
        }))
        .unwrap();
    let problems: Vec<String> = report["runs"][0]["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["level"] == "error" || r["level"].is_null())
        .map(|r| format!("{}: {}", r["ruleId"], r["message"]))
        .collect();
    let warnings = report["runs"][0]["results"]
        .as_array()
        .map_or(0, |r| r.len())
        - problems.len();
    println!(
        "sarif-multitool: {} errors, {warnings} warnings/notes",
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "SARIF validation errors: {problems:#?}"
    );
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
}

#[test]
fn text_summary() {
    let text = report::text_summary(&sample_evaluation());
    println!("{text}");
    let line = text
        .lines()
        .find(|l| l.contains("RUSTSEC-2019-0009"))
        .unwrap();
    assert!(line.starts_with("CRITICAL"), "{line}");
    assert!(
        line.contains("smallvec@0.6.9") && line.contains("fix: >= 0.6.10"),
        "{line}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("HIGH?") && l.contains("FLOW-TEST-0004")),
        "unscored marked with ?"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("ignored:high") && l.contains("lodash@4.17.11"))
    );
    assert!(text.contains("note: ignore for RUSTSEC-1999-0001 matched nothing (stale)"));
    assert!(text.contains("note: ignore for FLOW-TEST-0002 expired on 2026-01-01"));
    assert!(text.trim_end().ends_with("FAIL"));
}
