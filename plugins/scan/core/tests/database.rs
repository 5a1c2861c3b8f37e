//! Advisory databases (RustSec and OSV) and matching.

use flow_scan::advisory::Collection;
use flow_scan::{Database, Ecosystem, FindingKind, Informational, Lockfile, Severity, scan};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

#[test]
fn whole_rustsec_db_parses() {
    let start = Instant::now();
    let db = Database::open(&data("rustsec-advisory-db")).unwrap();
    let all = db.load_all().unwrap();
    println!("parsed {} advisories in {:?}", all.len(), start.elapsed());
    assert_eq!(all.len(), 1225);
    let ids: BTreeSet<&str> = all.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), all.len(), "ids are unique");
    assert!(
        all.iter().all(|a| !a.title.is_empty()),
        "every advisory has a title"
    );
    let rust = all
        .iter()
        .filter(|a| a.collection == Collection::Rust)
        .count();
    assert!(rust > 0 && rust < 50, "{rust} rust/ advisories");
    let withdrawn = all.iter().filter(|a| a.withdrawn.is_some()).count();
    assert!(withdrawn > 0);
    let v3 = all.iter().filter(|a| a.cvss_score().is_some()).count();
    let v4 = all
        .iter()
        .filter(|a| a.cvss.as_ref().is_some_and(|c| c.version == "4.0"))
        .count();
    assert_eq!((v3, v4), (363, 57), "CVSS v3 (crates/ and rust/), CVSS v4");
}

#[test]
fn withdrawn_and_toolchain_advisories_never_match() {
    let db = Database::open(&data("rustsec-advisory-db")).unwrap();
    for a in db.load_all().unwrap() {
        if a.withdrawn.is_none() && a.collection == Collection::Crates {
            continue;
        }
        let text = format!(
            "version = 4\n\n[[package]]\nname = \"{}\"\nversion = \"0.0.1\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n",
            a.package
        );
        let lock = Lockfile::parse(Path::new("Cargo.lock"), &text).unwrap();
        let findings = scan(&db, &[lock]).unwrap();
        assert!(
            findings.iter().all(|f| f.advisory_id != a.id),
            "{} matched",
            a.id
        );
    }
}

#[test]
fn combined_rustsec_and_osv_directory() {
    let db = Database::open(&data("osv-db")).unwrap();
    assert_eq!(db.osv_file_count(), 5);

    let npm = Lockfile::read(&data("lockfiles/package-lock.json")).unwrap();
    let cargo = Lockfile::read(&data("lockfiles/v4.Cargo.lock")).unwrap();
    let findings = scan(&db, &[npm, cargo]).unwrap();
    let got: Vec<(String, String, String, usize, Option<Severity>)> = findings
        .iter()
        .map(|f| {
            (
                f.advisory_id.clone(),
                f.package.clone(),
                f.version.clone(),
                f.line,
                f.severity,
            )
        })
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        got,
        [
            // package-lock.json (sorted by line); the withdrawn FLOW-TEST-0003 never matches,
            // nor does the git-resolved `forked` lodash.
            (
                s("FLOW-TEST-0001"),
                s("lodash"),
                s("4.17.11"),
                13,
                Some(Severity::High)
            ),
            (
                s("FLOW-TEST-0002"),
                s("minimist"),
                s("0.0.8"),
                22,
                Some(Severity::Medium)
            ),
            (
                s("FLOW-TEST-0001"),
                s("lodash"),
                s("4.17.4"),
                26,
                Some(Severity::High)
            ),
            // v4.Cargo.lock: the Markdown and OSV copies of RUSTSEC-2019-0009 give one finding.
            (
                s("RUSTSEC-2019-0009"),
                s("smallvec"),
                s("0.6.9"),
                20,
                Some(Severity::Critical)
            ),
            // CVSS v4 only: unscored.
            (s("FLOW-TEST-0004"), s("smallvec"), s("1.13.2"), 26, None),
        ]
    );
    let rustsec = &findings[3];
    assert_eq!(rustsec.cvss_score, Some(9.8));
    assert_eq!(rustsec.patched_versions, [">= 0.6.10"]);
    assert!(rustsec.title.starts_with("Double-free"));
    assert_eq!(
        rustsec.url,
        "https://rustsec.org/advisories/RUSTSEC-2019-0009.html"
    );
    assert!(rustsec.lockfile.ends_with("v4.Cargo.lock"));
    assert_eq!(findings[0].ecosystem, Ecosystem::Npm);
    assert_eq!(findings[0].patched_versions, [">= 4.17.12"]);
    assert_eq!(
        findings[4].cvss_vector.as_deref().map(|v| &v[..9]),
        Some("CVSS:4.0/")
    );
}

#[test]
fn v1_package_lock_matches_too() {
    let db = Database::open(&data("osv-db")).unwrap();
    let lock = Lockfile::read(&data("lockfiles/v1.package-lock.json")).unwrap();
    let ids: Vec<(String, String)> = scan(&db, &[lock])
        .unwrap()
        .into_iter()
        .map(|f| (f.advisory_id, f.version))
        .collect();
    assert_eq!(
        ids,
        [
            ("FLOW-TEST-0001".to_string(), "4.17.11".to_string()),
            ("FLOW-TEST-0002".to_string(), "0.0.8".to_string()),
            ("FLOW-TEST-0001".to_string(), "4.17.4".to_string()),
        ]
    );
}

#[test]
fn warnings_are_informational_advisories() {
    let db = Database::open(&data("rustsec-advisory-db")).unwrap();
    let lock = Lockfile::read(&data("lockfiles/flow.Cargo.lock")).unwrap();
    let findings = scan(&db, &[lock]).unwrap();
    assert!(!findings.is_empty());
    for f in &findings {
        assert_eq!(
            f.kind,
            FindingKind::Warning(Informational::Unmaintained),
            "{f:?}"
        );
        assert_eq!(f.severity, None);
        assert_eq!(f.cvss_score, None);
    }
}

#[test]
fn broken_advisory_is_an_error_only_when_needed() {
    let dir = tempfile::tempdir().unwrap();
    let crates = dir.path().join("crates");
    std::fs::create_dir_all(crates.join("good")).unwrap();
    std::fs::create_dir_all(crates.join("bad")).unwrap();
    std::fs::write(
        crates.join("good/RUSTSEC-0000-0001.md"),
        "```toml\n[advisory]\nid = \"RUSTSEC-0000-0001\"\npackage = \"good\"\ndate = \"2020-01-01\"\n\n[versions]\npatched = [\">= 1.0.0\"]\n```\n\n# Good\n\nText.\n",
    )
    .unwrap();
    std::fs::write(
        crates.join("bad/RUSTSEC-0000-0002.md"),
        "```toml\n[advisory]\nid = \"RUSTSEC-0000-0002\"\npackage = [\n```\n",
    )
    .unwrap();
    let db = Database::open(dir.path()).unwrap();
    let lock = |name: &str| {
        Lockfile::parse(
            Path::new("Cargo.lock"),
            &format!("version = 4\n\n[[package]]\nname = \"{name}\"\nversion = \"0.5.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n"),
        )
        .unwrap()
    };
    let findings = scan(&db, &[lock("good")]).unwrap();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].description, "Text.");
    let e = scan(&db, &[lock("bad")]).unwrap_err();
    assert!(
        e.path()
            .unwrap()
            .ends_with("crates/bad/RUSTSEC-0000-0002.md"),
        "{e}"
    );
    assert_eq!(e.line(), Some(4), "{e}");

    // A bad OSV record fails at open time, naming the file and line.
    std::fs::write(
        dir.path().join("broken.json"),
        "{\n\"id\": \"X\",\n\"affected\": 7\n}",
    )
    .unwrap();
    let e = Database::open(dir.path()).unwrap_err();
    assert!(e.to_string().contains("broken.json:3"), "{e}");

    assert!(Database::open(&dir.path().join("missing")).is_err());
    assert!(Database::open(&dir.path().join("broken.json")).is_err());
}

#[test]
fn hostile_package_names_are_not_paths() {
    let db = Database::open(&data("rustsec-advisory-db")).unwrap();
    for name in ["../rust/std", "..", "smallvec/../smallvec", ""] {
        assert!(
            db.advisories_for(Ecosystem::CratesIo, name)
                .unwrap()
                .is_empty(),
            "{name}"
        );
    }
}
