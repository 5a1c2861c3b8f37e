//! Pages checked in a real browser: headless Chromium driven by Playwright
//! (`playwright-core` from npm, Debian's `chromium`). A check is a script in
//! `tests/browser/` that opens a page, acts on it as a user would, keeps
//! screenshots, and prints what it saw as one JSON object; the tests assert on
//! that. `.ci/run` installs both tools; outside CI a missing one skips the check
//! with a line saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::session::repo_root;

/// Where `node` finds `playwright-core`, and the browser it starts.
struct Tools {
    modules: PathBuf,
    chromium: PathBuf,
}

fn tools(what: &str) -> Option<Tools> {
    let modules = std::env::var_os("FLOW_PLAYWRIGHT").map(PathBuf::from);
    let chromium = std::env::var_os("FLOW_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    match modules {
        Some(modules) if modules.join("playwright-core").is_dir() && chromium.is_file() => {
            Some(Tools { modules, chromium })
        }
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "FLOW_PLAYWRIGHT (the node_modules holding playwright-core) and chromium \
                 ({}) must be there in CI (.ci/run installs them)",
                chromium.display()
            );
            eprintln!("NOT RUN: FLOW_PLAYWRIGHT or chromium is missing ({what})");
            None
        }
    }
}

/// Where the screenshots of test `name` go: kept after the test, under the
/// target dir, for CI to collect.
pub fn shots(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("browser")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `tests/browser/SCRIPT` with `args` and returns what it printed (none when
/// the tools are missing outside CI). A script that fails fails the test with its
/// output.
pub fn check(script: &str, args: &[&str]) -> Option<Value> {
    let tools = tools(script)?;
    let root = repo_root().expect("the browser checks run from the repository");
    let out = Command::new("node")
        .arg(root.join("tests/browser").join(script))
        .args(args)
        .env("FLOW_PLAYWRIGHT", &tools.modules)
        .env("FLOW_CHROMIUM", &tools.chromium)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{script}: {e}: {stdout}")))
}
