//! Data-driven cases: every directory under `tests/cases/` holds a `flow.yaml` and an
//! `expected.txt` with the exact diagnostics `check` renders for it (or `ok`).
//!
//! Run with `cargo test -p flow-pipeline --test cases`; set `UPDATE_EXPECT=1` to rewrite the
//! expected files (then review every change: they are the messages users read).

mod common;

use std::path::{Path, PathBuf};

/// Parses and checks one case, rendering the outcome as the expected file holds it.
fn run_case(dir: &Path) -> String {
    let source = match std::fs::read_to_string(dir.join("flow.yaml")) {
        Ok(s) => s,
        Err(e) => return format!("cannot read flow.yaml: {e}\n"),
    };
    let outcome = flow_pipeline::parse(&source, "flow.yaml", dir)
        .and_then(|pipeline| flow_pipeline::check(&pipeline, &common::TestResolver));
    match outcome {
        Ok(_) => "ok\n".to_owned(),
        Err(diagnostics) => diagnostics.render(),
    }
}

/// A line-by-line comparison, marking lines only in the expected text with `-` and lines
/// only in the actual text with `+`.
fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    // Longest common subsequence, enough for files of a few dozen lines.
    let mut lcs = vec![vec![0usize; a.len() + 1]; e.len() + 1];
    for i in (0..e.len()).rev() {
        for j in (0..a.len()).rev() {
            lcs[i][j] = if e[i] == a[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < e.len() || j < a.len() {
        if i < e.len() && j < a.len() && e[i] == a[j] {
            out.push_str(&format!("  {}\n", e[i]));
            i += 1;
            j += 1;
        } else if j < a.len() && (i == e.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", a[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", e[i]));
            i += 1;
        }
    }
    out
}

#[test]
fn every_case_renders_its_expected_diagnostics() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/cases exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("flow.yaml").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 10,
        "expected the case directories under {}",
        root.display()
    );
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let actual = run_case(dir);
        let expected_path = dir.join("expected.txt");
        if update {
            std::fs::write(&expected_path, &actual).expect("write expected.txt");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!("case `{name}`:\n{}", diff(&expected, &actual)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ (UPDATE_EXPECT=1 rewrites them):\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}
