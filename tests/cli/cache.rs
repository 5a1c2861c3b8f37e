//! The step cache: a step whose key matches a kept result does not run, its files and
//! outputs are restored, and its provenance says so and still verifies; every kind of
//! miss says why; secrets never enter a key, a manifest or a log; `flow cache gc`
//! frees what it says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::provenance::verify_last_with_both_tools;
use crate::session::{Output, Session, files_below};

/// `seed` writes a file that `a` reads; `c` reads what `a` wrote; `b` never caches.
const CHAIN: &str = r#"version: 1
name: chain
inputs:
  msg: { type: string, default: hi }
steps:
  seed:
    uses: ./fs_probe.wasm
    with: { write: seed.txt, content: "${{ inputs.msg }}" }
  a:
    uses: ./fs_probe.wasm
    needs: [seed]
    with: { read: seed.txt, write: a-out.txt, content: from-a }
  b:
    uses: ./fs_probe.wasm
    needs: [seed]
    cache: false
    with: { write: b.txt }
  c:
    uses: ./fs_probe.wasm
    needs: [a]
    with: { read: a-out.txt }
"#;

fn chain() -> Session {
    let session = Session::new();
    session.plugin("fs_probe").file("flow.yaml", CHAIN);
    session
}

/// `flow run --json` with `args`: the run's `step-finished` events by step, and its
/// workspace.
fn run_json(session: &Session, args: &[&str]) -> (BTreeMap<String, serde_json::Value>, PathBuf) {
    let mut all = vec!["--json", "run", "flow.yaml"];
    all.extend_from_slice(args);
    let out = session.flow(all).run();
    out.expect_code(0);
    let events = out.json_lines();
    let workspace = events
        .iter()
        .find(|e| e["event"] == "run-started")
        .and_then(|e| e["workspace"].as_str())
        .map(PathBuf::from)
        .expect("a run-started event");
    let finished = events
        .into_iter()
        .filter(|e| e["event"] == "step-finished")
        .map(|e| (e["step"].as_str().unwrap().to_owned(), e))
        .collect();
    (finished, workspace)
}

/// Why `step` missed in `events`, one cause per entry.
fn why(events: &BTreeMap<String, serde_json::Value>, step: &str) -> Vec<String> {
    let cache = &events[step]["cache"];
    assert_eq!(cache["status"], "miss", "{step}: {cache}");
    cache["why"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(name, std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    out
}

#[test]
fn a_second_run_takes_its_steps_from_the_cache_and_still_verifies() {
    let session = chain();
    let (first, first_workspace) = run_json(&session, &[]);
    for step in ["seed", "a", "c"] {
        assert_eq!(
            why(&first, step),
            [format!(
                "no earlier run of step `{step}` in pipeline `chain`"
            )]
        );
    }
    let first_run = session.last_run().0["run"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (second, second_workspace) = run_json(&session, &[]);
    for step in ["seed", "a", "c"] {
        assert_eq!(
            second[step]["cache"],
            serde_json::json!({"status": "hit", "run": first_run, "step": step}),
            "{step}"
        );
        assert_eq!(second[step]["outputs"], first[step]["outputs"], "{step}");
    }
    assert_eq!(
        second["b"]["cache"],
        serde_json::json!({"status": "off", "why": "`cache: false`"})
    );
    // What the steps left in the workspace is the same, though three did not run.
    assert_eq!(files(&first_workspace), files(&second_workspace));
    assert_eq!(files(&second_workspace)["a-out.txt"], "from-a");
    assert_eq!(second["c"]["outputs"]["content"], "from-a");

    // `flow show` and `flow explain` say where the result came from.
    let show = session.flow(["show", "last"]).run();
    show.expect_success();
    assert!(
        show.stdout
            .contains(&format!("cached (from {first_run}/a)")),
        "{}",
        show.stdout
    );
    let explain = session.flow(["explain", "last", "a"]).run();
    explain.expect_success();
    assert!(
        explain.stdout.contains(&format!(
            "its result is that of step `a` in run {first_run}"
        )),
        "{}",
        explain.stdout
    );
    let logs = session.flow(["logs", "last", "a"]).run().stdout;
    assert!(logs.contains("not run: taken from the cache"), "{logs}");

    // Its provenance says so, and the run verifies with flow and in-toto-verify.
    let statement = session.statement("a");
    let notes =
        statement["predicate"]["runDetails"]["byproducts"][0]["annotations"]["notes"].to_string();
    assert!(notes.contains("cached: not run"), "{notes}");
    verify_last_with_both_tools(&session, "a cached run");
}

#[test]
fn each_kind_of_miss_says_why() {
    let session = chain();
    run_json(&session, &[]);
    let first_run = session.last_run().0["run"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A param changes; the steps whose inputs it changed say which step ran.
    let (events, _) = run_json(&session, &["-i", "msg=ho"]);
    assert_eq!(
        why(&events, "seed"),
        [r#"param `content` changed: "hi" → "ho""#]
    );
    assert_eq!(
        why(&events, "a"),
        ["`seed` ran (not taken from the cache) and changed 1 of its inputs: `seed.txt`"]
    );
    // `c` reads what `a` wrote, which is the same: only `seed.txt` differs in its view.
    assert_eq!(
        why(&events, "c"),
        ["`seed` ran (not taken from the cache) and changed 1 of its inputs: `seed.txt`"]
    );

    // Another build of the plugin (the same code, one more custom section).
    let wasm = session.path("fs_probe.wasm");
    let mut bytes = std::fs::read(&wasm).unwrap();
    bytes.extend_from_slice(&[0, 5, 4, b'f', b'l', b'o', b'w']);
    std::fs::write(&wasm, bytes).unwrap();
    let (events, _) = run_json(&session, &["-i", "msg=ho"]);
    assert_eq!(
        why(&events, "seed"),
        ["the plugin `./fs_probe.wasm` changed (another build of it)"]
    );

    // `--no-cache` asks nothing and keeps nothing.
    let (events, _) = run_json(&session, &["-i", "msg=ho", "--no-cache"]);
    assert_eq!(
        events["seed"]["cache"],
        serde_json::json!({"status": "off", "why": "the run does without the cache (`--no-cache`)"})
    );

    // A result dropped by `flow cache gc`: the key matches, the result is gone.
    let (events, _) = run_json(&session, &["-i", "msg=ho"]);
    assert_eq!(events["seed"]["cache"]["status"], "hit");
    let gc = session.flow(["cache", "gc", "--max-size", "0"]).run();
    gc.expect_success();
    assert!(
        gc.stdout.contains("cached results dropped"),
        "{}",
        gc.stdout
    );
    let (events, _) = run_json(&session, &["-i", "msg=ho"]);
    let evicted = why(&events, "seed");
    assert_eq!(evicted.len(), 1);
    assert!(
        evicted[0].starts_with("its key is run ")
            && evicted[0].ends_with(", but that result is no longer kept (evicted by `flow cache gc`, or that step failed)"),
        "{evicted:?}"
    );
    // `--explain` prints the same causes under the step's line.
    std::fs::write(&wasm, std::fs::read(session.path("fs_probe.wasm")).unwrap()).unwrap();
    let out = session
        .flow(["run", "flow.yaml", "--explain", "-i", "msg=hey"])
        .run();
    out.expect_code(0);
    assert!(
        out.stdout
            .contains(r#"not cached: param `content` changed: "ho" → "hey""#),
        "{}",
        out.stdout
    );
    assert!(!first_run.is_empty());
}

#[test]
fn a_changed_workspace_file_is_named() {
    let session = Session::new();
    session.plugin("fs_probe").file(
        "flow.yaml",
        "version: 1\nname: reads\nsteps:\n  read:\n    uses: ./fs_probe.wasm\n    with: { read: in.txt }\n",
    );
    session.file("ws/in.txt", "one");
    session.file("ws/other.txt", "same");
    let ws = session.path("ws");
    let ws = ws.to_str().unwrap();
    run_json(&session, &["--workspace", ws]);
    let (events, _) = run_json(&session, &["--workspace", ws]);
    assert_eq!(events["read"]["cache"]["status"], "hit");
    assert_eq!(events["read"]["outputs"]["content"], "one");
    session.file("ws/in.txt", "two");
    let (events, _) = run_json(&session, &["--workspace", ws]);
    assert_eq!(
        why(&events, "read"),
        ["1 input changed from the workspace: `in.txt`"]
    );
    assert_eq!(events["read"]["outputs"]["content"], "two");
}

const SECRET: &str = "cache-s3cr3t-4711";

#[test]
fn secrets_enter_keys_only_keyed_and_a_changed_secret_misses() {
    let session = Session::new();
    session.plugin("misbehave").file(
        "flow.yaml",
        "version: 1\nname: secret\nsecrets:\n  token: { env: FLOW_TEST_TOKEN }\nsteps:\n  leak:\n    uses: ./misbehave.wasm\n    grants: { secrets: [token] }\n    with: { mode: leak, secret: token }\n",
    );
    let run = |value: &str| -> Output {
        let out = session
            .flow(["--json", "run", "flow.yaml"])
            .env("FLOW_TEST_TOKEN", value)
            .run();
        out.expect_code(0);
        out
    };
    let status = |out: &Output| {
        out.json_lines()
            .into_iter()
            .find(|e| e["event"] == "step-finished")
            .map(|e| e["cache"].clone())
            .unwrap()
    };
    run(SECRET);
    assert_eq!(status(&run(SECRET))["status"], "hit");
    let changed = status(&run("another-value-0815"));
    assert_eq!(
        changed["why"],
        serde_json::json!(["secret `token` changed"])
    );

    // Nothing in the data dir holds the value, nor its plain sha256.
    let plain = hex_sha256(SECRET.as_bytes());
    for file in files_below(&session.data_dir()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for leaked in [SECRET, &plain, &plain[..32]] {
            assert!(
                !text.contains(leaked),
                "{} holds `{leaked}`",
                file.display()
            );
        }
    }
}

#[test]
fn a_step_that_reached_the_network_keeps_no_result_unless_it_says_so() {
    let session = Session::new();
    let pipeline = |cache: &str, url: &str| {
        format!(
            "version: 1\nname: net\nsteps:\n  get:\n    uses: ./net_probe.wasm\n{cache}    grants: {{ net: ['127.0.0.1:9'] }}\n    with: {{ url: '{url}' }}\n"
        )
    };
    session
        .plugin("net_probe")
        .file("flow.yaml", pipeline("", "http://127.0.0.1:9/"));
    session.flow(["run", "flow.yaml"]).run().expect_code(1);
    let show = session.last_run().0;
    assert_eq!(
        show["steps"][0]["cache"]["why"],
        serde_json::json!([
            "no earlier run of step `get` in pipeline `net`",
            "its result is not kept: it reached the network (127.0.0.1:9); `cache: true` keeps it anyway"
        ])
    );
    // With `cache: true` the request is the step's own business.
    session.file(
        "flow.yaml",
        pipeline("    cache: true\n", "http://127.0.0.1:9/"),
    );
    session.flow(["run", "flow.yaml"]).run().expect_code(1);
    let show = session.last_run().0;
    let why = show["steps"][0]["cache"]["why"].to_string();
    assert!(!why.contains("not kept"), "{why}");
    // A failed step keeps no result either way: the next run misses, and says why.
    session.flow(["run", "flow.yaml"]).run().expect_code(1);
    let show = session.last_run().0;
    let why = show["steps"][0]["cache"]["why"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(why.contains("but that result is no longer kept"), "{why}");
}

#[test]
fn cache_gc_frees_by_age_and_by_size_and_says_how_much() {
    let session = chain();
    run_json(&session, &[]);
    run_json(&session, &["-i", "msg=other"]);
    let gc = session
        .flow(["--json", "cache", "gc", "--older-than", "1d"])
        .run();
    gc.expect_success();
    let report = gc.json();
    assert_eq!(report["entries_removed"], 0, "{report}");
    assert_eq!(report["entries_kept"], 6, "{report}");
    let kept = report["bytes_kept"].as_u64().unwrap();
    assert!(kept > 0, "{report}");

    let gc = session
        .flow(["--json", "cache", "gc", "--max-size", "0"])
        .run();
    gc.expect_success();
    let report = gc.json();
    assert_eq!(report["entries_removed"], 6, "{report}");
    assert_eq!(report["entries_kept"], 0, "{report}");
    assert_eq!(report["bytes_freed"].as_u64().unwrap(), kept, "{report}");
    assert_eq!(report["bytes_kept"], 0, "{report}");
    assert!(files(&session.data_dir().join("objects/sha256")).is_empty());

    let gc = session.flow(["cache", "gc"]).run();
    gc.expect_success();
    assert!(
        gc.stdout
            .starts_with("freed 0 B (0 files of the object store; 0 cached results dropped)"),
        "{}",
        gc.stdout
    );
    let bad = session.flow(["cache", "gc", "--older-than", "soon"]).run();
    bad.expect_code(2);
    assert!(
        bad.stderr.contains("`soon` is not an age such as `7d`"),
        "{}",
        bad.stderr
    );
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn a_dry_run_predicts_hits_and_misses_and_records_nothing() {
    let session = chain();
    let first = session
        .flow(["run", "flow.yaml", "--dry-run", "--explain"])
        .run();
    first.expect_success();
    assert!(
        first.stdout.contains("seed  would run\n      not cached: no earlier run of step `seed` in pipeline `chain`\na     not known: `seed` would run first"),
        "{}",
        first.stdout
    );
    run_json(&session, &[]);
    let id = session.last_run().0["run"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let same = session.flow(["run", "flow.yaml", "--dry-run"]).run();
    same.expect_success();
    for step in ["seed", "a", "c"] {
        assert!(
            same.stdout
                .contains(&format!("{step:<4}  cached (from {id}/{step})")),
            "{}",
            same.stdout
        );
    }
    assert!(
        same.stdout
            .contains("b     would run (cache not asked: `cache: false`)"),
        "{}",
        same.stdout
    );
    assert!(
        same.stdout
            .ends_with("3 of 4 steps would be taken from the cache\n")
    );
    let changed = session
        .flow(["--json", "run", "flow.yaml", "--dry-run", "-i", "msg=ho"])
        .run();
    changed.expect_success();
    let lines = changed.json_lines();
    assert_eq!(
        lines[0],
        serde_json::json!({"step": "seed", "prediction": {"status": "miss", "why": [r#"param `content` changed: "hi" → "ho""#]}})
    );
    assert_eq!(lines[1]["prediction"]["status"], "unknown");
    // Nothing ran: one run is recorded, and the next real run still hits.
    assert_eq!(session.flow(["--json", "runs"]).run().json_lines().len(), 1);
    let (events, _) = run_json(&session, &[]);
    assert_eq!(events["a"]["cache"]["status"], "hit");
}

#[test]
fn a_changed_host_command_or_variable_is_named() {
    let session = Session::new();
    session.file(
        "tools/run.sh",
        "#!/bin/sh\necho \"length ${#FLOW_TEST_VAR}\" > out.txt\n",
    );
    let script = session.path("tools/run.sh");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = script.canonicalize().unwrap();
    let script = script.display();
    session.file(
        "flow.yaml",
        format!("version: 1\nname: cmd\nexec-confinement: required\nsteps:\n  make:\n    uses: build\n    grants:\n      exec: [{script}]\n      env: [FLOW_TEST_VAR]\n    with: {{ command: [run.sh], artifacts: [out.txt] }}\n"),
    );
    let run = |value: &str| {
        let out = session
            .flow(["--json", "run", "flow.yaml"])
            .env("FLOW_TEST_VAR", value)
            .run();
        out.expect_code(0);
        out.json_lines()
            .into_iter()
            .find(|e| e["event"] == "step-finished")
            .map(|e| e["cache"].clone())
            .unwrap()
    };
    assert_eq!(run("one")["status"], "miss");
    assert_eq!(run("one")["status"], "hit");
    assert_eq!(
        run("two")["why"],
        serde_json::json!(["variable `FLOW_TEST_VAR` changed"])
    );
    // The value is never kept (the command writes only its length): only a keyed hash.
    for file in files_below(&session.data_dir().join("store")) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()).into_owned();
        assert!(!text.contains(&hex_sha256(b"two")), "{}", file.display());
    }
    session.file(
        "tools/run.sh",
        "#!/bin/sh\necho \"length: ${#FLOW_TEST_VAR}\" > out.txt\n",
    );
    assert_eq!(
        run("two")["why"],
        serde_json::json!(["host command `run.sh` changed (its file's digest)"])
    );
}
