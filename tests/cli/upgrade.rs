//! Data dirs written by earlier versions of flow open with this one: every run
//! is listed and shown as it was, its provenance verifies, its logs and report
//! read, and a new run records beside the old ones. Each directory under
//! `tests/data/stores/` is such a data dir, written with `tests/data/stores/generate`
//! by the version its `VERSION` file names, with what that version printed.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::session::{Session, repo_root};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn json_lines(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn fixtures(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("tests/data/stores"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("data").is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// What of a step must read the same in every version.
fn step_facts(show: &Value) -> Vec<Value> {
    show["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            serde_json::json!([
                s["step_id"],
                s["status"],
                s["outputs"],
                s["reason"],
                s["plugin_digest"]
            ])
        })
        .collect()
}

#[test]
fn data_dirs_written_by_earlier_versions_open_and_verify() {
    let Some(root) = repo_root() else { return };
    let fixtures = fixtures(root);
    assert!(!fixtures.is_empty(), "no data dir under tests/data/stores");
    for fixture in fixtures {
        let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
        let session = Session::new();
        let data = session.path("data");
        copy_dir(&fixture.join("data"), &data);
        let data_dir = data.to_str().unwrap();
        let flow = |args: &[&str]| session.flow(args.to_vec()).env("FLOW_DATA_DIR", data_dir);

        let then = json_lines(&fixture.join("runs.json"));
        let now = flow(&["--json", "runs"]).run();
        now.expect_success();
        let now = now.json_lines();
        let brief = |runs: &[Value]| -> Vec<Value> {
            runs.iter()
                .map(|r| serde_json::json!([r["id"], r["status"], r["pipeline_name"], r["steps"]]))
                .collect()
        };
        assert_eq!(brief(&now), brief(&then), "{name}: the runs listed");

        let owner = fixture.join("owner.pub");
        for (i, run) in then.iter().enumerate() {
            let id = run["id"].as_str().unwrap();
            let shown_then: Value = serde_json::from_str(
                &std::fs::read_to_string(fixture.join(format!("show-{i}.json"))).unwrap(),
            )
            .unwrap();
            let shown = flow(&["--json", "show", id]).run();
            shown.expect_success();
            assert_eq!(
                step_facts(&shown.json()),
                step_facts(&shown_then),
                "{name}: run {id} as shown"
            );
            let verified = flow(&["verify", id, "--key", owner.to_str().unwrap()]).run();
            assert_eq!(
                verified.code(),
                Some(0),
                "{name}: run {id} does not verify:\n{}{}",
                verified.stdout,
                verified.stderr
            );
            flow(&["logs", id]).run().expect_success();
            let page = session.path(&format!("report-{i}.html"));
            flow(&[
                "report",
                id,
                "--out",
                page.to_str().unwrap(),
                "--key",
                owner.to_str().unwrap(),
            ])
            .run()
            .expect_success();
            let html = std::fs::read_to_string(&page).unwrap();
            assert!(
                html.contains("flow verify: verified"),
                "{name}: report of {id}"
            );
        }
        let stats = flow(&["--json", "runs", "--stats"]).run();
        stats.expect_success();

        // A new run records beside the old ones and verifies.
        std::fs::copy(
            root.join("templates/examples/hello/flow.yaml"),
            session.path("hello.yaml"),
        )
        .unwrap();
        flow(&["run", "hello.yaml", "-i", "who=fixture"])
            .run()
            .expect_code(0);
        flow(&["verify", "last"]).run().expect_code(0);
        let listed = flow(&["--json", "runs"]).run().json_lines();
        assert_eq!(listed.len(), then.len() + 1, "{name}");
    }
}
