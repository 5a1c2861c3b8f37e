//! Lockfile parsing: formats, sources, lines, malformed input.

use flow_scan::lockfile::LockfileKind;
use flow_scan::{Ecosystem, Error, Lockfile, Source};
use std::path::{Path, PathBuf};

fn lock(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/lockfiles")
        .join(name)
}

fn summary(l: &Lockfile) -> Vec<(String, String, bool, usize)> {
    l.packages
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.version.clone(),
                p.is_registry_package(),
                p.line,
            )
        })
        .collect()
}

#[test]
fn cargo_lock_versions_1_to_4() {
    let v1 = Lockfile::read(&lock("v1.Cargo.lock")).unwrap();
    assert_eq!(v1.kind, LockfileKind::Cargo { version: 1 });
    assert_eq!(
        summary(&v1),
        [
            ("app".into(), "0.1.0".into(), false, 2),
            ("smallvec".into(), "0.6.9".into(), true, 9)
        ]
    );

    let v2 = Lockfile::read(&lock("v2.Cargo.lock")).unwrap();
    assert_eq!(v2.kind, LockfileKind::Cargo { version: 2 });
    assert_eq!(
        summary(&v2)[1],
        ("smallvec".into(), "0.6.9".into(), true, 11)
    );

    let v3 = Lockfile::read(&lock("v3.Cargo.lock")).unwrap();
    assert_eq!(v3.kind, LockfileKind::Cargo { version: 3 });
    assert_eq!(
        summary(&v3)[1],
        ("smallvec".into(), "0.6.9".into(), true, 13)
    );

    let v4 = Lockfile::read(&lock("v4.Cargo.lock")).unwrap();
    assert_eq!(v4.kind, LockfileKind::Cargo { version: 4 });
    let s = summary(&v4);
    assert_eq!(s.len(), 5);
    assert_eq!(s[1], ("local-util".into(), "0.1.0".into(), false, 16));
    assert_eq!(
        s[3],
        ("smallvec".into(), "1.13.2".into(), true, 26),
        "sparse crates.io is crates.io"
    );
    assert!(!s[4].2, "git packages are not registry packages");
    assert!(matches!(v4.packages[4].source, Source::Git { .. }));
    assert!(
        v4.packages
            .iter()
            .all(|p| p.ecosystem == Ecosystem::CratesIo)
    );
}

#[test]
fn real_lockfile() {
    let l = Lockfile::read(&lock("flow.Cargo.lock")).unwrap();
    assert_eq!(l.kind, LockfileKind::Cargo { version: 4 });
    assert!(l.packages.len() > 300);
    let text = std::fs::read_to_string(lock("flow.Cargo.lock")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for p in &l.packages {
        assert_eq!(lines[p.line - 1], format!("name = \"{}\"", p.name));
    }
}

#[test]
fn package_lock_v3() {
    let l = Lockfile::read(&lock("package-lock.json")).unwrap();
    assert_eq!(l.kind, LockfileKind::Npm { version: 3 });
    let s = summary(&l);
    assert_eq!(
        s,
        [
            ("lodash".into(), "4.17.11".into(), true, 13),
            ("mkdirp".into(), "0.5.1".into(), true, 18),
            ("minimist".into(), "0.0.8".into(), true, 22),
            ("lodash".into(), "4.17.4".into(), true, 26),
            ("forked".into(), "4.17.11".into(), false, 31),
            ("ui".into(), "0.1.0".into(), false, 39),
        ]
    );
    assert!(l.packages.iter().all(|p| p.ecosystem == Ecosystem::Npm));
}

#[test]
fn package_lock_v1() {
    let l = Lockfile::read(&lock("v1.package-lock.json")).unwrap();
    assert_eq!(l.kind, LockfileKind::Npm { version: 1 });
    assert_eq!(
        summary(&l),
        [
            ("lodash".into(), "4.17.11".into(), true, 7),
            ("mkdirp".into(), "0.5.1".into(), true, 11),
            ("minimist".into(), "0.0.8".into(), true, 16),
            ("lodash".into(), "4.17.4".into(), true, 22),
            ("local".into(), "file:../local".into(), false, 26),
        ]
    );
}

fn parse_err(name: &str, text: &str) -> Error {
    Lockfile::parse(Path::new(name), text).unwrap_err()
}

#[test]
fn malformed_lockfiles_name_file_and_line() {
    let e = parse_err(
        "Cargo.lock",
        "version = 3\n\n[[package]]\nname = \"a\"\nversion = 1.0.0\n",
    );
    assert_eq!(e.line(), Some(5), "{e}");
    assert!(
        e.to_string()
            .starts_with("Cargo.lock:5: not a valid Cargo.lock"),
        "{e}"
    );

    let e = parse_err(
        "Cargo.lock",
        "[[package]]\nname = \"a\"\nversion = \"one\"\n",
    );
    assert_eq!(e.line(), Some(2), "{e}");
    assert!(e.to_string().contains("invalid version"), "{e}");

    let e = parse_err("Cargo.lock", "[[package]]\nname = \"a\"\n");
    assert!(e.to_string().contains("version"), "{e}");

    let e = parse_err("Cargo.lock", "[server]\nport = 8080\n");
    assert!(e.to_string().contains("not a Cargo.lock"), "{e}");

    let e = parse_err("Cargo.lock", "version = 9\n");
    assert!(
        e.to_string().contains("unsupported Cargo.lock version"),
        "{e}"
    );

    let e = parse_err(
        "Cargo.lock",
        "[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"svn+x\"\n",
    );
    assert_eq!(e.line(), Some(2), "{e}");

    let e = parse_err(
        "package-lock.json",
        "{\n  \"lockfileVersion\": 3,\n  \"packages\": {\n    \"a\": \n  }\n}",
    );
    assert_eq!(e.line(), Some(5), "{e}");
    assert!(
        e.to_string()
            .starts_with("package-lock.json:5: not a valid package-lock.json"),
        "{e}"
    );

    let e = parse_err("package.json", "{\"name\": \"x\", \"dependencies\": {}}");
    assert!(e.to_string().contains("lockfileVersion"), "{e}");

    let e = parse_err("package-lock.json", "[]");
    assert!(e.to_string().contains("not an object"), "{e}");

    let e = parse_err(
        "package-lock.json",
        "{\"lockfileVersion\": 3, \"packages\": {\"node_modules/a\": 5}}",
    );
    assert!(e.to_string().contains("node_modules/a"), "{e}");

    // Neither format: a README handed in as a lockfile.
    let e = parse_err("README", "# Hello\n\nThis is not a lockfile.\n");
    assert!(
        e.to_string()
            .starts_with("README:3: not a valid Cargo.lock"),
        "{e}"
    );

    let e = Lockfile::read(Path::new("/nonexistent/Cargo.lock")).unwrap_err();
    assert!(e.to_string().starts_with("/nonexistent/Cargo.lock:"), "{e}");
}

#[test]
fn garbage_never_panics() {
    let samples = [
        "",
        "\u{feff}",
        "{",
        "}",
        "[[package]]",
        "\"",
        "{\"lockfileVersion\": 2, \"packages\": {\"\": {}}}",
        "{\"lockfileVersion\": 1, \"dependencies\": {\"a\": {\"version\": \"npm:@\"}}}",
        "{\"lockfileVersion\": 1, \"dependencies\": {\"a\": {\"version\": \"npm:\"}}}",
        "{\"lockfileVersion\": 1, \"dependencies\": []}",
        "[[package]]\nname = \"\u{e9}\"\nversion = \"1.0.0\"\n",
        "{\"lockfileVersion\": 3, \"packages\": {\"node_modules/\\\"é\\\\\": {\"version\": \"1\"}}}",
    ];
    for s in samples {
        for name in ["Cargo.lock", "package-lock.json", "x"] {
            let _ = Lockfile::parse(Path::new(name), s);
        }
    }
}
