//! Findings must equal `cargo-audit`'s on the same database and lockfile.
//!
//! Always: compare against golden files recorded from `cargo-audit` 0.22.2
//! (`tests/data/expected/*.cargo-audit.txt`, one `kind id package version` per line).
//! When `FLOW_CARGO_AUDIT` names a `cargo-audit` binary, it is also run live:
//! `cargo-audit audit --db DB --no-fetch --no-yanked --file LOCK --json`
//! (with `FLOW_UPDATE_GOLDEN=1` the golden files are rewritten from it).
//! Without the binary the live part prints `NOT RUN` (and fails when `CI` is set).

use flow_scan::{Database, FindingKind, Lockfile, scan};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

const LOCKFILES: &[&str] = &[
    "flow.Cargo.lock",
    "synth-500.Cargo.lock",
    "v1.Cargo.lock",
    "v2.Cargo.lock",
    "v3.Cargo.lock",
    "v4.Cargo.lock",
];

fn ours(db: &Database, lockfile: &str) -> BTreeSet<String> {
    let lock = Lockfile::read(&data().join("lockfiles").join(lockfile)).unwrap();
    scan(db, &[lock])
        .unwrap()
        .into_iter()
        .map(|f| {
            let kind = match &f.kind {
                FindingKind::Vulnerability => "vulnerability".to_string(),
                FindingKind::Warning(info) => info.as_str().to_string(),
            };
            format!("{kind} {} {} {}", f.advisory_id, f.package, f.version)
        })
        .collect()
}

fn golden_path(lockfile: &str) -> PathBuf {
    data()
        .join("expected")
        .join(format!("{lockfile}.cargo-audit.txt"))
}

fn golden(lockfile: &str) -> BTreeSet<String> {
    std::fs::read_to_string(golden_path(lockfile))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn diff(a: &BTreeSet<String>, b: &BTreeSet<String>) -> String {
    let only_a: Vec<_> = a.difference(b).collect();
    let only_b: Vec<_> = b.difference(a).collect();
    format!("only flow-scan: {only_a:#?}\nonly cargo-audit: {only_b:#?}")
}

#[test]
fn matches_recorded_cargo_audit_output() {
    let db = Database::open(&data().join("rustsec-advisory-db")).unwrap();
    for lockfile in LOCKFILES {
        let (o, g) = (ours(&db, lockfile), golden(lockfile));
        assert!(o == g, "{lockfile}: {}", diff(&o, &g));
    }
}

/// `cargo-audit`'s JSON report as `kind id package version` lines.
fn run_cargo_audit(bin: &str, lockfile: &Path, db: &Path) -> BTreeSet<String> {
    // Run from an empty directory so no `.cargo/audit.toml` changes the settings.
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(bin)
        .current_dir(cwd.path())
        .args(["audit", "--db"])
        .arg(db)
        .args(["--no-fetch", "--no-yanked", "--json", "--file"])
        .arg(lockfile)
        .output()
        .expect("run cargo-audit");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cargo-audit output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut set = BTreeSet::new();
    for v in json["vulnerabilities"]["list"].as_array().unwrap() {
        set.insert(format!(
            "vulnerability {} {} {}",
            v["advisory"]["id"].as_str().unwrap(),
            v["package"]["name"].as_str().unwrap(),
            v["package"]["version"].as_str().unwrap()
        ));
    }
    for (kind, list) in json["warnings"].as_object().unwrap() {
        for w in list.as_array().unwrap() {
            set.insert(format!(
                "{kind} {} {} {}",
                w["advisory"]["id"].as_str().unwrap_or("-"),
                w["package"]["name"].as_str().unwrap(),
                w["package"]["version"].as_str().unwrap()
            ));
        }
    }
    set
}

#[test]
fn matches_live_cargo_audit() {
    // cargo-audit takes minutes to build; CI runs it live when its cache has it
    // (`.ci/run` with FLOW_CI_CARGO_AUDIT=1 builds it). The recorded output
    // (`matches_recorded_cargo_audit_output`) is compared on every run.
    let Ok(bin) = std::env::var("FLOW_CARGO_AUDIT") else {
        println!(
            "NOT RUN: set FLOW_CARGO_AUDIT to a cargo-audit binary to compare live (the recorded cargo-audit 0.22.2 output was compared)"
        );
        return;
    };
    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .expect("cargo-audit --version");
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    println!("comparing against {version}");
    let db_dir = data().join("rustsec-advisory-db");
    let db = Database::open(&db_dir).unwrap();
    for lockfile in LOCKFILES {
        let theirs = run_cargo_audit(&bin, &data().join("lockfiles").join(lockfile), &db_dir);
        if std::env::var_os("FLOW_UPDATE_GOLDEN").is_some() {
            let mut text =
                format!("# {version} on tests/data/rustsec-advisory-db, lockfiles/{lockfile}\n");
            for line in &theirs {
                text.push_str(line);
                text.push('\n');
            }
            std::fs::write(golden_path(lockfile), text).unwrap();
        }
        let o = ours(&db, lockfile);
        assert!(
            o == theirs,
            "{lockfile} vs {version}: {}",
            diff(&o, &theirs)
        );
        println!("{lockfile}: {} findings identical", o.len());
    }
}
