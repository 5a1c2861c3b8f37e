//! Larger real repositories: this project's own, and one generated from registry sources.

mod common;

use std::path::Path;

use common::*;

#[test]
fn own_repository_head() {
    // This crate lives in engine/git: the repository is two levels up.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git_dir = root.join(".git");
    if !git_dir.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs from a clone, with its .git"
        );
        eprintln!("NOT RUN: {} does not exist", git_dir.display());
        return;
    }
    let report = check_against_git(&root, &git_dir, "HEAD");
    assert!(report.files > 10);
}

#[test]
fn registry_sources_with_history() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("reg");
    if !generate_registry_repo(&dir, 3000) {
        eprintln!("skipped: no cargo registry sources");
        return;
    }
    let types = {
        let idx = std::fs::read_dir(dir.join(".git/objects/pack"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "idx"))
            .unwrap();
        git(&dir, &["verify-pack", "-v", idx.to_str().unwrap()])
    };
    assert!(
        types.lines().any(|l| l.split_whitespace().count() >= 7),
        "expected deltas"
    );
    let report = check_against_git(&dir, &dir.join(".git"), "HEAD");
    assert!(report.files >= 2500, "{report:?}");
    check_against_git(&dir, &dir.join(".git"), "HEAD~2");
}
