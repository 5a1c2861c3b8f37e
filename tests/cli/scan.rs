//! The `scan` plugin through `flow run`: a 500-package Cargo.lock against the
//! whole RustSec database (vendored in plugins/scan/core/tests/data), findings
//! equal to cargo-audit's recorded output, SARIF validated by
//! `@microsoft/sarif-multitool` when CI installed it, thresholds and ignores.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::session::{Session, assert_reason};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/scan/core/tests/data")
        .join(rel)
}

/// A pipeline that copies `lockfile` into the workspace, then scans it.
fn scan_pipeline(session: &Session, lockfile: &str, with: &str) {
    let db = data("rustsec-advisory-db").canonicalize().unwrap();
    std::fs::copy(
        data(&format!("lockfiles/{lockfile}")),
        session.path("Cargo.lock"),
    )
    .unwrap();
    session.file(
        "flow.yaml",
        format!(
            "version: 1\nname: scan\nsteps:\n  copy:\n    uses: build\n    grants: {{ exec: [cp], fs: [{{ path: ., access: read, hash: false }}] }}\n    with: {{ command: [cp, {lock}, Cargo.lock], allow-no-artifacts: true }}\n  scan:\n    uses: scan\n    needs: [copy]\n    grants: {{ fs: [{{ path: {db}, access: read }}] }}\n    with: {{ db: {db}{with} }}\n",
            lock = session.path("Cargo.lock").canonicalize().unwrap().display(),
            db = db.display(),
        ),
    );
}

/// (kind, id, package, version) from the SARIF results, in cargo-audit's words.
fn sarif_findings(sarif: &Value) -> BTreeSet<String> {
    sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["properties"]["kind"].as_str().unwrap(),
                r["ruleId"].as_str().unwrap(),
                r["properties"]["package"].as_str().unwrap(),
                r["properties"]["version"].as_str().unwrap()
            )
        })
        .collect()
}

fn cargo_audit_findings(lockfile: &str) -> BTreeSet<String> {
    std::fs::read_to_string(data(&format!("expected/{lockfile}.cargo-audit.txt")))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn findings_equal_cargo_audit_and_the_sarif_validates() {
    let session = Session::new();
    scan_pipeline(&session, "synth-500.Cargo.lock", ", fail-on: critical");
    let out = session.flow(["run", "--plain", "flow.yaml"]).run();
    out.expect_code(1);
    let (show, workspace) = session.last_run();
    let scan = &show["steps"][1];
    // A failed step keeps no outputs: the verdict is in its reason and log.
    assert_eq!(scan["status"], "failed");
    let reason = scan["reason"].as_str().unwrap();
    assert!(
        reason.ends_with(" vulnerabilities at or above `fail-on: critical` (see scan.sarif)"),
        "{reason}"
    );

    let sarif_path = workspace.join("scan.sarif");
    let sarif: Value =
        serde_json::from_str(&std::fs::read_to_string(&sarif_path).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let ours = sarif_findings(&sarif);
    let theirs = cargo_audit_findings("synth-500.Cargo.lock");
    assert_eq!(ours.len(), 361);
    assert_eq!(
        ours.symmetric_difference(&theirs).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "flow's findings differ from cargo-audit 0.22.2's"
    );
    let log = session.flow(["logs", "last", "scan"]).run().stdout;
    assert!(
        log.contains("263 vulnerabilities, 98 warnings, 0 ignored;"),
        "{log}"
    );
    let critical = ours
        .iter()
        .filter(|f| f.starts_with("vulnerability "))
        .count();
    assert_eq!(critical, 263);

    match std::env::var("FLOW_SARIF_MULTITOOL") {
        Ok(tool) => {
            let problems = sarif_multitool_errors(&tool, &sarif_path);
            assert!(
                problems.is_empty(),
                "sarif-multitool found errors in scan.sarif:\n{}",
                problems.join("\n")
            );
        }
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "FLOW_SARIF_MULTITOOL must be set in CI (.ci/run installs it)"
            );
            eprintln!("NOT RUN: FLOW_SARIF_MULTITOOL is not set (SARIF validation)");
        }
    }
}

#[test]
fn thresholds_and_ignores_decide_the_step() {
    let session = Session::new();
    // The project's own lockfile has only warnings: passes the default threshold.
    scan_pipeline(&session, "flow.Cargo.lock", "");
    let (show, _) = session.run_and_show(0);
    assert_eq!(show["steps"][1]["outputs"]["vulnerabilities"], "0");

    // smallvec 0.6.9 has a critical double free (RUSTSEC-2019-0009).
    scan_pipeline(&session, "v3.Cargo.lock", ", fail-on: critical");
    let (show, _) = session.run_and_show(1);
    assert_reason(&show, 1, "at or above `fail-on: critical`");

    // Ignored with a reason until a date: passes before it, fails again after.
    let ignores: Vec<String> = cargo_audit_findings("v3.Cargo.lock")
        .iter()
        .filter(|l| l.starts_with("vulnerability "))
        .map(|l| {
            format!(
                "{{ id: {}, reason: reviewed, expires: 2030-01-31 }}",
                l.split(' ').nth(1).unwrap()
            )
        })
        .collect();
    let ignore = format!(", fail-on: any, ignore: [{}]", ignores.join(", "));
    scan_pipeline(
        &session,
        "v3.Cargo.lock",
        &format!("{ignore}, today: 2030-01-31"),
    );
    session
        .flow(["run", "--plain", "flow.yaml"])
        .run()
        .expect_success();
    scan_pipeline(
        &session,
        "v3.Cargo.lock",
        &format!("{ignore}, today: 2030-02-01"),
    );
    session
        .flow(["run", "--plain", "flow.yaml"])
        .run()
        .expect_code(1);
    let log = session.flow(["logs", "last", "scan"]).run().stdout;
    assert!(log.contains("expired"), "{log}");

    // Report only.
    scan_pipeline(&session, "synth-500.Cargo.lock", ", fail-on: none");
    let (show, _) = session.run_and_show(0);
    assert_eq!(show["steps"][1]["outputs"]["vulnerabilities"], "263");
    assert_eq!(show["steps"][1]["outputs"]["warnings"], "98");

    // A bad threshold and an ignore without a reason are the step's errors.
    scan_pipeline(&session, "v3.Cargo.lock", ", fail-on: severe");
    let (show, _) = session.run_and_show(1);
    assert_reason(&show, 1, "`fail-on: severe`");
    scan_pipeline(
        &session,
        "v3.Cargo.lock",
        ", ignore: [{ id: RUSTSEC-2019-0009 }]",
    );
    session
        .flow(["run", "--plain", "flow.yaml"])
        .run()
        .expect_code(1);
}

/// The errors `sarif-multitool validate` reports for `file` (its exit status
/// does not say). Run without network where bubblewrap works: the validator
/// looks up the hosts of help URIs, which costs a minute each on a machine
/// without DNS.
fn sarif_multitool_errors(tool: &str, file: &Path) -> Vec<String> {
    let report = file.with_extension("validation.sarif");
    let _ = std::fs::remove_file(&report);
    let offline = std::process::Command::new("bwrap")
        .args(["--dev-bind", "/", "/", "--unshare-net", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let mut command = if offline {
        let mut c = std::process::Command::new("bwrap");
        c.args(["--dev-bind", "/", "/", "--unshare-net", tool]);
        c
    } else {
        std::process::Command::new(tool)
    };
    let out = command
        .arg("validate")
        .arg(file)
        .arg("--output")
        .arg(&report)
        .env("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
        .output()
        .expect("sarif-multitool runs");
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!(
            "sarif-multitool wrote no report ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let report: Value = serde_json::from_str(&text).expect("the report is JSON");
    report["runs"][0]["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["level"] == "error" || r["level"].is_null())
        .map(|r| format!("{}: {}", r["ruleId"], r["message"]))
        .collect()
}

#[test]
fn the_sarif_validator_catches_an_invalid_file() {
    let Ok(tool) = std::env::var("FLOW_SARIF_MULTITOOL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "FLOW_SARIF_MULTITOOL must be set in CI (.ci/run installs it)"
        );
        eprintln!("NOT RUN: FLOW_SARIF_MULTITOOL is not set (SARIF validation)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.sarif");
    std::fs::write(
        &bad,
        r#"{"version":"2.1.0","runs":[{"tool":{"driver":{}},"results":[{"message":{}}]}]}"#,
    )
    .unwrap();
    assert!(
        !sarif_multitool_errors(&tool, &bad).is_empty(),
        "a SARIF file without a driver name must not validate"
    );
}

/// The scan reports the packages it has checked as progress, up to all of them.
#[test]
fn the_scan_reports_its_progress_in_packages() {
    let session = Session::new();
    scan_pipeline(&session, "flow.Cargo.lock", "");
    let out = session.flow(["--json", "run", "flow.yaml"]).run();
    out.expect_code(0);
    let progress: Vec<serde_json::Value> = out
        .json_lines()
        .into_iter()
        .filter(|e| e["event"] == "step-progress" && e["step"] == "scan")
        .collect();
    assert!(!progress.is_empty(), "no progress from the scan");
    assert!(progress.iter().all(|e| e["unit"] == "packages"));
    let last = progress.last().unwrap();
    assert_eq!(last["done"], last["total"]);
    assert!(last["total"].as_u64().unwrap() > 100, "{last}");
}
