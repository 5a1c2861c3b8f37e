//! Hostile steps, pipelines and host commands: each test is one attack from
//! `docs/security.md`, tried the way an attacker would, with the test plugins
//! `hostile` (built on the SDK) and `hostile_raw` (the WIT imports alone). Each
//! attempt must be refused with a clear message, and nothing it aimed at may change.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::provenance::{export, in_toto_verify, venv};
use crate::session::Session;

/// `flow show --json last`.
fn last(session: &Session) -> Value {
    let show = session.flow(["--json", "show", "last"]).run();
    show.expect_success();
    show.json()
}

/// The `results` output of step `index` of the last run, one attempt per line.
fn results(show: &Value, index: usize) -> Vec<String> {
    show["steps"][index]["outputs"]["results"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Every file below `dir`, as (path, bytes).
fn files_below(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => todo.push(path),
                Ok(t) if t.is_file() => {
                    if let Ok(bytes) = std::fs::read(&path) {
                        out.push((path, bytes));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The body of a PEM key (its base64 lines), what a leak would carry.
fn pem_body(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

#[test]
fn a_step_granted_the_repository_cannot_reach_the_signing_key() {
    // Like a user's first run: the key is created in the user's own directory.
    let session = Session::without_signing_key();
    session
        .plugin("hostile")
        .dir("src")
        .file("src/main.rs", "fn main() {}\n");
    session.file(
        "flow.yaml",
        "version: 1\nname: hunt\nsteps:\n  first:\n    uses: ./hostile.wasm\n    with: { attack: read, paths: [] }\n",
    );
    session.flow(["run", "flow.yaml"]).run().expect_code(0);
    let key = session.user_key_dir().join("signing-key.pem");
    assert!(key.exists(), "the first run created the user's key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(key.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let before = std::fs::read(&key).unwrap();
    let key_text = key.display().to_string();
    // What a thief looks for: the key's own bytes.
    let needle = pem_body(&key)[..48].to_owned();
    let public = session
        .user_key_dir()
        .join("signing-key.pub")
        .display()
        .to_string();
    // The repository, read and written; then the key by its path, and the data dir.
    let data = session.data_dir().display().to_string();
    session.file(
        "flow.yaml",
        format!(
            "version: 1\nname: hunt\ninputs: {{ needle: {{ type: string }} }}\nsteps:\n  hunt:\n    uses: ./hostile.wasm\n    grants: {{ fs: [{{ path: ., access: write }}] }}\n    with: {{ attack: hunt, needle: \"${{{{ inputs.needle }}}}\" }}\n  read:\n    uses: ./hostile.wasm\n    grants: {{ fs: [{{ path: ., access: write }}] }}\n    with: {{ attack: read, paths: [{key_text}, {data}/store/db] }}\n  replace:\n    uses: ./hostile.wasm\n    grants: {{ fs: [{{ path: ., access: write }}] }}\n    with: {{ attack: write, paths: [{key_text}, {public}] }}\n"
        ),
    );
    // The needle comes on the command line, so that no file in reach holds it.
    let input = format!("needle={needle}");
    session
        .flow(["run", "flow.yaml", "-i", &input])
        .run()
        .expect_code(0);
    let show = last(&session);
    assert_eq!(show["steps"][0]["outputs"]["found"], "", "no key in reach");
    for (index, attempts) in [(1, 2), (2, 2)] {
        let lines = results(&show, index);
        assert_eq!(lines.len(), attempts, "{lines:?}");
        for line in &lines {
            assert!(line.contains(": refused: "), "{line}");
        }
    }
    assert_eq!(std::fs::read(&key).unwrap(), before, "the key is unchanged");
    // The key's bytes are in nothing a step could see or a run records.
    let body = pem_body(&key);
    let logs = session.flow(["logs", "last"]).run();
    assert!(!logs.stdout.contains(&body));
    assert!(!show.to_string().contains(&body));
    for (path, bytes) in files_below(session.root())
        .into_iter()
        .chain(files_below(&session.data_dir().join("workspaces")))
    {
        assert!(!contains(&bytes, body.as_bytes()), "{}", path.display());
    }
    // The runs still verify, with the key the user signs with.
    session.flow(["verify", "last"]).run().expect_success();
}

#[test]
fn grants_that_reach_the_key_the_store_or_the_cache_are_refused_at_their_line() {
    let session = Session::new();
    session.plugin("hostile");
    // `..` holds the session's data dir, cache and signing key.
    session.file(
        "flow.yaml",
        "version: 1\nname: reach\nsteps:\n  hunt:\n    uses: ./hostile.wasm\n    grants: { fs: [{ path: .., access: read }] }\n    with: { attack: hunt, needle: PRIVATE KEY }\n",
    );
    let check = session.flow(["check", "flow.yaml"]).run();
    check.expect_code(2);
    let stderr = session.normalize(&check.stderr);
    for what in [
        "which holds the provenance signing key (SESSION/keys/signing-key.pem): the step could read it and sign forged provenance that verifies",
        "which holds flow's data dir (SESSION/data): the step could read or rewrite recorded runs",
        "which holds flow's compiled-plugin cache (SESSION/cache): the step could replace the native code",
    ] {
        assert!(stderr.contains(what), "{what}\n{stderr}");
    }
    assert!(
        stderr.contains("flow.yaml:6:"),
        "points at the grant: {stderr}"
    );
    // `flow run` refuses the same way, and runs nothing.
    let run = session.flow(["run", "flow.yaml"]).run();
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("which holds the provenance signing key")
    );
    assert!(!session.data_dir().join("workspaces").exists());
}

#[test]
fn a_key_a_data_dir_or_a_declared_file_inside_a_grant_is_refused() {
    let session = Session::without_signing_key();
    session.plugin("hostile");
    let key = flow_provenance::SigningKey::generate().unwrap();
    flow_provenance::keys::write_key_pair(&session.path("repo-keys"), &key).unwrap();
    session.file("token.txt", "s3cret\n");
    session.file(
        "flow.yaml",
        "version: 1\nname: inside\nkeys:\n  release: { file: repo-keys/signing-key.pem }\nsecrets:\n  token: { file: token.txt }\nsteps:\n  hunt:\n    uses: ./hostile.wasm\n    grants: { fs: [{ path: ., access: read }] }\n    with: { attack: hunt, needle: PRIVATE KEY }\n",
    );
    // An external signing key in the repository, and a data dir in it.
    let out = session
        .flow(["--data-dir", ".flow", "run", "flow.yaml"])
        .env(
            "FLOW_SIGNING_KEY",
            session.path("repo-keys/signing-key.pem"),
        )
        .run();
    out.expect_code(2);
    let stderr = session.normalize(&out.stderr);
    for what in [
        "which holds the provenance signing key (TMP/repo-keys/signing-key.pem)",
        "which holds flow's data dir (TMP/.flow)",
        "which holds the file of key `release` (TMP/repo-keys/signing-key.pem): the step could read the key, which steps may only use through `grants.keys`",
        "which holds the file of secret `token` (TMP/token.txt)",
    ] {
        assert!(stderr.contains(what), "{what}\n{stderr}");
    }
}

#[test]
fn a_data_dir_that_keeps_a_signing_key_is_refused_with_instructions() {
    let session = Session::without_signing_key();
    let key = flow_provenance::SigningKey::generate().unwrap();
    flow_provenance::keys::write_key_pair(&session.data_dir().join("keys"), &key).unwrap();
    session.file(
        "flow.yaml",
        "version: 1\nname: old\nsteps:\n  greet:\n    uses: echo\n    with: { message: hi }\n",
    );
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_code(2);
    let stderr = session.normalize(&out.stderr);
    assert!(
        stderr.starts_with("error: the data dir SESSION/data keeps a signing key (SESSION/data/keys/signing-key.pem)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("mkdir -p -m 700 SESSION/home/.local/share/flow/keys && mv SESSION/data/keys/signing-key.pem SESSION/data/keys/signing-key.pub SESSION/home/.local/share/flow/keys/"),
        "{stderr}"
    );
    assert!(
        stderr.contains("flow verify RUN --key SESSION/data/keys/signing-key.pub"),
        "{stderr}"
    );
    assert!(
        !session.user_key_dir().join("signing-key.pem").exists(),
        "no key was made in its place"
    );
}

#[test]
fn the_provenance_key_cannot_be_granted_through_keys() {
    let session = Session::new();
    let owner = session.signing_key().unwrap().display().to_string();
    session.plugin("hostile").file(
        "flow.yaml",
        format!(
            "version: 1\nname: owner\nkeys:\n  owner: {{ file: {owner} }}\nsteps:\n  forge:\n    uses: ./hostile.wasm\n    grants: {{ keys: [owner] }}\n    with: {{ attack: sign, key: owner }}\n"
        ),
    );
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("key `owner` is the key that signs this run's provenance"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("flow.yaml:4:"), "{}", out.stderr);
}

#[test]
fn a_grant_through_a_symbolic_link_is_refused() {
    let session = Session::new();
    session.plugin("hostile").dir("victim").dir("out");
    let victim = session.path("victim").display().to_string();
    // Run 1: a step that may write `out` plants a link in it.
    session.file(
        "flow.yaml",
        format!(
            "version: 1\nname: plant\nsteps:\n  plant:\n    uses: ./hostile.wasm\n    grants: {{ fs: [{{ path: out, access: write }}] }}\n    with: {{ attack: symlink, link: {}/cache, target: {victim} }}\n",
            session.path("out").display()
        ),
    );
    session.flow(["run", "flow.yaml"]).run().expect_code(0);
    assert!(session.path("out/cache").is_symlink());
    // Run 2: a grant of `out/cache` would be a grant of the victim.
    session.file(
        "flow.yaml",
        "version: 1\nname: use\nsteps:\n  use:\n    uses: ./hostile.wasm\n    grants: { fs: [{ path: out/cache, access: write }] }\n    with: { attack: fill, size: 1 }\n",
    );
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    let stderr = session.normalize(&out.stderr);
    assert!(
        stderr.contains("passes through a symbolic link"),
        "{stderr}"
    );
    assert!(
        stderr.contains("TMP/victim"),
        "shows where it points: {stderr}"
    );
    assert!(stderr.contains("flow.yaml:6:"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(session.path("victim")).unwrap().count(),
        0
    );
}

#[test]
fn a_directory_swapped_for_a_link_during_a_run_is_not_granted() {
    let session = Session::new();
    session.plugin("hostile").dir("victim").dir("out/cache");
    let victim = session.path("victim").display().to_string();
    let cache = session.path("out/cache").display().to_string();
    // `swap` may write the repository, and replaces `out/cache` by a link to the
    // victim before `use`, granted `out/cache`, starts.
    session.file(
        "flow.yaml",
        format!(
            "version: 1\nname: swap\nsteps:\n  swap:\n    uses: ./hostile.wasm\n    grants: {{ fs: [{{ path: ., access: write }}] }}\n    with: {{ attack: swap, link: {cache}, target: {victim} }}\n  use:\n    uses: ./hostile.wasm\n    needs: [swap]\n    grants: {{ fs: [{{ path: out/cache, access: write }}] }}\n    with: {{ attack: write, paths: [{cache}/pwned] }}\n"
        ),
    );
    session.flow(["run", "flow.yaml"]).run().expect_code(1);
    let show = last(&session);
    assert_eq!(show["steps"][0]["status"], "succeeded");
    assert_eq!(show["steps"][1]["status"], "failed");
    let reason = session.normalize(show["steps"][1]["reason"].as_str().unwrap());
    assert!(
        reason.contains("TMP/out/cache is now a symbolic link"),
        "{reason}"
    );
    assert_eq!(
        std::fs::read_dir(session.path("victim")).unwrap().count(),
        0
    );
}

/// A shell script of exactly `len` bytes that prints `word`.
fn script(word: &str, len: usize) -> String {
    let mut text = format!("#!/bin/sh\necho {word}\n#");
    while text.len() < len - 1 {
        text.push('x');
    }
    text.push('\n');
    text
}

#[test]
fn a_command_rewritten_in_place_does_not_run_under_its_old_digest() {
    let session = Session::new();
    session.plugin("hostile").dir("signals");
    let tools = session.home().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let tool = tools.join("tool");
    std::fs::write(&tool, script("honest", 64)).unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let go = session.path("signals/go");
    session.file(
        "flow.yaml",
        format!(
            "version: 1\nname: rewrite\nsteps:\n  run:\n    uses: ./hostile.wasm\n    grants: {{ exec: [{}], fs: [{{ path: signals, access: read }}] }}\n    with: {{ attack: exec, command: tool, wait_for: {} }}\n",
            tool.display(),
            go.display()
        ),
    );
    let running = session.flow(["run", "flow.yaml"]).spawn();
    // Wait until the step is running (it writes `ready` in its view of the workspace).
    let start = Instant::now();
    let ready = loop {
        let found = std::fs::read_dir(session.data_dir().join("views"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
            .map(|e| e.path().join("0").join("ready"))
            .filter(|p| p.exists());
        if let Some(found) = found {
            break found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the step never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(ready.exists());
    // Rewrite the command in place: same size, same inode, the old mtime restored.
    let reference = session.home().join("reference");
    std::fs::write(&reference, "").unwrap();
    assert!(
        std::process::Command::new("touch")
            .arg("-r")
            .arg(&tool)
            .arg(&reference)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(&tool, script("evil", 64)).unwrap();
    assert!(
        std::process::Command::new("touch")
            .arg("-r")
            .arg(&reference)
            .arg(&tool)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(&go, "").unwrap();
    let mut running = running;
    running.wait(Duration::from_secs(60)).expect_code(0);
    let show = last(&session);
    let lines = results(&show, 0);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("refused") && lines[0].contains("changed on disk"),
        "{lines:?}"
    );
    let logs = session.flow(["logs", "last"]).run();
    assert!(!logs.stdout.contains("evil"), "{}", logs.stdout);
}

#[test]
fn a_swapped_compiled_component_is_compiled_again_not_run() {
    let session = Session::new();
    session.plugin("hostile").file(
        "flow.yaml",
        "version: 1\nname: cache\nsteps:\n  greet:\n    uses: echo\n    with: { message: genuine }\n  other:\n    uses: ./hostile.wasm\n    with: { attack: read, paths: [] }\n",
    );
    session.flow(["run", "flow.yaml"]).run().expect_code(0);
    // Each plugin's compiled file; echo's is the one whose source is the built-in.
    let mut compiled: Vec<PathBuf> = std::fs::read_dir(session.cache_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    compiled.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    assert_eq!(compiled.len(), 2, "{compiled:?}");
    // Put the other component's native code where echo's is, as a step with write
    // access to the cache would (none can be granted it).
    let echo_digest = {
        let out = session.flow(["--json", "plugins"]).run();
        out.expect_success();
        out.json_lines()
            .into_iter()
            .find(|p| p["name"] == "echo")
            .and_then(|p| p["digest"].as_str().map(str::to_owned))
            .expect("echo's digest")
    };
    let (echo, other): (Vec<&PathBuf>, Vec<&PathBuf>) = compiled.iter().partition(|p| {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(echo_digest.trim_start_matches("sha256:"))
    });
    assert_eq!((echo.len(), other.len()), (1, 1), "{compiled:?}");
    std::fs::copy(other[0], echo[0]).unwrap();
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_code(0);
    assert!(
        out.stderr.contains("fails its authentication"),
        "{}",
        out.stderr
    );
    let show = last(&session);
    assert_eq!(show["steps"][0]["outputs"]["message"], "genuine");
    // Compiled again and written back: the next run loads it without a word.
    session.flow(["run", "flow.yaml"]).run().expect_success();
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let session = Session::new();
    session.file(
        "flow.yaml",
        "version: 1\nname: pipe\nsteps:\n  a:\n    uses: echo\n    with: { message: a }\n  b:\n    uses: echo\n    with: { message: b }\n",
    );
    // `flow run | head -1`: the run goes on to the end and is recorded.
    let mut running = session
        .flow(["run", "flow.yaml"])
        .spawn_with_closed_stdout_after_first_line();
    let out = running.wait(Duration::from_secs(60));
    assert_eq!(out.stderr, "");
    assert_eq!(out.code(), Some(0));
    assert_eq!(last(&session)["run"]["status"], "succeeded");
    for args in [
        vec!["show", "last"],
        vec!["attest", "show", "last"],
        vec!["runs"],
        vec!["logs", "last"],
    ] {
        let mut running = session
            .flow(args.iter().copied())
            .spawn_with_closed_stdout_after_first_line();
        let out = running.wait(Duration::from_secs(30));
        assert_eq!(out.stderr, "", "{args:?}: no panic, no error");
        assert_eq!(out.code(), Some(0), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn uses_reads_only_regular_files_of_bounded_size() {
    let session = Session::new();
    let check = |uses: &str| {
        session.file(
            "flow.yaml",
            format!("version: 1\nname: uses\nsteps:\n  s:\n    uses: {uses}\n"),
        );
        let start = Instant::now();
        let out = session.flow(["check", "flow.yaml"]).run();
        out.expect_code(2);
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{uses} answered at once"
        );
        out.stderr
    };
    assert!(check("/dev/zero").contains("it is a device; a plugin is a `.wasm` file"));
    let fifo = session.path("plugin.wasm");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    assert!(check("./plugin.wasm").contains("it is a FIFO"));
    std::fs::remove_file(&fifo).unwrap();
    let big = std::fs::File::create(&fifo).unwrap();
    big.set_len(300 << 20).unwrap();
    assert!(check("./plugin.wasm").contains("more than the 256 MiB a plugin may be"));
}

#[test]
fn hashing_a_step_s_products_counts_against_its_timeout() {
    let session = Session::new();
    session.plugin("hostile").file(
        "flow.yaml",
        "version: 1\nname: sparse\nsteps:\n  sparse:\n    uses: ./hostile.wasm\n    timeout: 3s\n    with: { attack: sparse, size: 32212254720 }\n",
    );
    let out = session
        .flow(["run", "--workspace-quota", "64GiB", "flow.yaml"])
        .run();
    out.expect_code(1);
    let show = last(&session);
    assert_eq!(show["steps"][0]["status"], "timed_out");
    let reason = show["steps"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("timed out after 3s while the host hashed its products"),
        "{reason}"
    );
}

#[test]
fn a_step_that_leaves_more_than_the_workspace_quota_fails() {
    let session = Session::new();
    session.plugin("hostile").file(
        "flow.yaml",
        "version: 1\nname: quota\nsteps:\n  fill:\n    uses: ./hostile.wasm\n    with: { attack: fill, size: 3145728 }\n  after:\n    uses: echo\n    needs: [fill]\n    with: { message: never }\n",
    );
    session
        .flow(["run", "--workspace-quota", "1MiB", "flow.yaml"])
        .run()
        .expect_code(1);
    let show = last(&session);
    assert_eq!(show["steps"][0]["status"], "failed");
    let reason = show["steps"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("its workspace holds more than the run's quota of 1 MiB"),
        "{reason}"
    );
    assert!(reason.contains("`flow run --workspace-quota`"), "{reason}");
    assert_eq!(show["steps"][1]["status"], "skipped");
    // A sparse file counts at its full length: that is what hashing reads.
    session.file(
        "flow.yaml",
        "version: 1\nname: quota\nsteps:\n  sparse:\n    uses: ./hostile.wasm\n    with: { attack: sparse, size: 1073741824 }\n",
    );
    session
        .flow(["run", "--workspace-quota", "512MiB", "flow.yaml"])
        .run()
        .expect_code(1);
    assert!(
        last(&session)["steps"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("its workspace holds more than the run's quota of 512 MiB")
    );
}

#[test]
fn plugin_claims_are_labelled_checked_and_never_stand_for_the_host() {
    let session = Session::new();
    let commit = "c0ffee".repeat(7)[..40].to_owned();
    let fake = "f".repeat(64);
    session.plugin("hostile_raw").file(
        "flow.yaml",
        format!(
            "version: 1\nname: claims\nsteps:\n  claim:\n    uses: ./hostile_raw.wasm\n    with:\n      attack: claim\n      claims:\n        - {{ uri: 'git+https://example.com/app', name: app, digest: {{ gitCommit: {commit} }} }}\n        - {{ uri: ./hostile_raw.wasm, digest: {{ sha256: {fake} }} }}\n        - {{ uri: 'file:///usr/bin/short', digest: {{ sha256: ab }} }}\n        - {{ uri: 'file:///usr/bin/odd', digest: {{ crc32: abcd1234 }} }}\n        - {{ uri: 'flow-template:acme/x@1.0.0', digest: {{ sha256: {fake} }} }}\n"
        ),
    );
    session.flow(["run", "flow.yaml"]).run().expect_code(0);
    let statement = session.statement("claim");
    let dependencies = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap()
        .clone();
    // The plugin itself first, observed by the host, with its real digest.
    assert_eq!(dependencies[0]["uri"], "./hostile_raw.wasm");
    assert_ne!(dependencies[0]["digest"]["sha256"], fake.as_str());
    assert!(dependencies[0].get("annotations").is_none());
    let claimed: Vec<&Value> = dependencies
        .iter()
        .filter(|d| d.get("annotations").is_some())
        .collect();
    assert_eq!(
        claimed,
        vec![&serde_json::json!({
            "uri": "git+https://example.com/app",
            "name": "app",
            "digest": {"gitCommit": commit},
            "annotations": {"claimedBy": "plugin"},
        })]
    );
    let notes =
        statement["predicate"]["runDetails"]["byproducts"][0]["annotations"]["notes"].to_string();
    assert!(
        notes.contains("ignored the plugin's claim for `./hostile_raw.wasm`: the host records that dependency itself"),
        "{notes}"
    );
    let logs = session.flow(["logs", "last"]).run().stdout;
    assert!(
        logs.contains("ignored the plugin's provenance claim for `file:///usr/bin/short`: a `sha256` digest is 64 hex characters, not `ab`"),
        "{logs}"
    );
    assert!(
        logs.contains("`crc32` is not a digest algorithm in-toto knows"),
        "{logs}"
    );
    // `attest show` tells claims from what the host saw.
    let shown = session.flow(["attest", "show", "last", "claim"]).run();
    shown.expect_success();
    assert!(
        shown
            .stdout
            .contains("claimed by the plugin: git+https://example.com/app"),
        "{}",
        shown.stdout
    );
    session.flow(["verify", "last"]).run().expect_success();
}

#[test]
fn pipeline_fixed_variables_cannot_be_changed_by_the_plugin() {
    let session = Session::new();
    session.plugin("hostile_raw").file(
        "flow.yaml",
        "version: 1\nname: env\nexec-confinement: off\nsteps:\n  sdk:\n    uses: ./hostile_raw.wasm\n    grants:\n      exec: [env]\n      env: { RUSTFLAGS: '-D warnings', FREE: null }\n    with:\n      attack: exec\n      command: env\n      env: { RUSTFLAGS: '-C link-arg=-Wl,--evil' }\n  free:\n    uses: ./hostile_raw.wasm\n    grants:\n      exec: [env]\n      env: { RUSTFLAGS: '-D warnings', FREE: null }\n    with:\n      attack: exec\n      command: env\n      env: { FREE: chosen }\n",
    );
    session.flow(["run", "flow.yaml"]).run().expect_code(0);
    let show = last(&session);
    assert_eq!(
        results(&show, 0),
        vec![
            "refused: variable `RUSTFLAGS` is fixed by the pipeline (`grants.env`): the plugin cannot change it"
        ]
    );
    assert_eq!(results(&show, 1), vec!["ran: code Some(0)"]);
    let logs = session.flow(["logs", "last", "free"]).run().stdout;
    assert!(logs.contains("FREE=chosen"), "{logs}");
    assert!(logs.contains("RUSTFLAGS=-D warnings"), "{logs}");
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| contains(&c, marker.as_bytes()))
        })
        .collect()
}

#[test]
fn unconfined_commands_leave_no_process_behind() {
    let session = Session::new();
    let marker = format!("flow-orphan-{}", std::process::id());
    session.plugin("hostile").file(
        "flow.yaml",
        format!(
            "version: 1\nname: orphans\nexec-confinement: off\nsteps:\n  daemon:\n    uses: ./hostile.wasm\n    grants: {{ exec: [sh] }}\n    with:\n      attack: exec\n      command: sh\n      args: ['-c', 'setsid sh -c \"sleep 300; echo {marker}\" >/dev/null 2>&1 & (sh -c \"sleep 300; echo {marker}\" &) ; exit 0']\n"
        ),
    );
    session.flow(["run", "flow.yaml"]).run().expect_code(0);
    let show = last(&session);
    assert_eq!(results(&show, 0), vec!["ran sh: exit code 0"]);
    // The kernel reaps a PID namespace when its first process ends; give it a moment.
    let start = Instant::now();
    while !processes_with(&marker).is_empty() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = processes_with(&marker);
    for pid in &left {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[test]
fn the_host_checks_what_the_sdk_would_check() {
    let session = Session::new();
    session.plugin("hostile_raw").file(
        "flow.yaml",
        "version: 1\nname: raw\nsteps:\n  escape:\n    uses: ./hostile_raw.wasm\n    with: { attack: escape }\n  cwd:\n    uses: ./hostile_raw.wasm\n    grants: { exec: ['true'] }\n    with: { attack: exec, command: 'true', cwd: /etc }\n  ungranted:\n    uses: ./hostile_raw.wasm\n    with: { attack: exec, command: sh, args: ['-c', 'id'] }\n",
    );
    session.flow(["run", "flow.yaml"]).run().expect_code(0);
    let show = last(&session);
    let escape = results(&show, 0);
    assert_eq!(escape.len(), 5, "{escape:?}");
    for line in &escape {
        assert!(line.contains(": refused: "), "{line}");
    }
    assert_eq!(
        results(&show, 1),
        vec![
            "refused: the working directory `/etc` is outside the workspace and the granted directories"
        ]
    );
    assert_eq!(
        results(&show, 2),
        vec!["refused: `sh` is not granted: this step may run no host commands (`grants.exec`)"]
    );
}

#[test]
fn deep_recursion_is_named_a_stack_overflow() {
    let session = Session::new();
    session.plugin("misbehave").file(
        "flow.yaml",
        "version: 1\nname: deep\nsteps:\n  deep:\n    uses: ./misbehave.wasm\n    with: { mode: stack }\n",
    );
    session.flow(["run", "flow.yaml"]).run().expect_code(1);
    let reason = last(&session)["steps"][0]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.starts_with("the plugin crashed: stack overflow"),
        "{reason}"
    );
}

#[test]
fn an_export_forged_with_any_key_a_step_could_have_read_fails_both_verifiers() {
    let session = Session::new();
    let needle = pem_body(session.signing_key().unwrap())[..48].to_owned();
    session.plugin("hostile").file(
        "flow.yaml",
        "version: 1\nname: forge\ninputs: { needle: { type: string } }\nsteps:\n  hunt:\n    uses: ./hostile.wasm\n    grants: { fs: [{ path: ., access: write }] }\n    with: { attack: hunt, needle: \"${{ inputs.needle }}\" }\n",
    );
    let input = format!("needle={needle}");
    session
        .flow(["run", "flow.yaml", "-i", &input])
        .run()
        .expect_code(0);
    // The hunt found no key: the only keys an attacker has are their own.
    assert_eq!(last(&session)["steps"][0]["outputs"]["found"], "");
    let proof = export(&session, "proof");
    let owner = proof.join("owner.pub");
    let trusted = std::fs::read(&owner).unwrap();
    let attacker = flow_provenance::SigningKey::generate().unwrap();
    // Edit the statement (claim a product that was never made) and sign it anew.
    let statement_file = proof.join("hunt.intoto.json");
    let envelope =
        flow_provenance::Envelope::from_json(&std::fs::read(&statement_file).unwrap()).unwrap();
    let mut payload: Value = serde_json::from_slice(&envelope.payload).unwrap();
    payload["subject"] =
        serde_json::json!([{"name": "release.tar", "digest": {"sha256": "0".repeat(64)}}]);
    let forged = flow_provenance::Envelope::sign(
        envelope.payload_type.clone(),
        serde_json::to_vec(&payload).unwrap(),
        &attacker,
    )
    .unwrap();
    std::fs::write(&statement_file, forged.to_json()).unwrap();
    // The link too, as in-toto-verify reads links: the step "made" the release.
    let link_file = std::fs::read_dir(&proof)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("hunt.") && name.ends_with(".link")
        })
        .expect("the step's link");
    let link = flow_provenance::Envelope::from_json(&std::fs::read(&link_file).unwrap()).unwrap();
    let mut link_payload: Value = serde_json::from_slice(&link.payload).unwrap();
    link_payload["products"] = serde_json::json!({"release.tar": {"sha256": "0".repeat(64)}});
    let forged_link = flow_provenance::Envelope::sign(
        link.payload_type.clone(),
        serde_json::to_vec(&link_payload).unwrap(),
        &attacker,
    )
    .unwrap();
    std::fs::write(&link_file, forged_link.to_json()).unwrap();
    assert_eq!(std::fs::read(&owner).unwrap(), trusted);
    let verify = session
        .flow([
            "verify",
            "--dir",
            proof.to_str().unwrap(),
            "--key",
            owner.to_str().unwrap(),
        ])
        .run();
    verify.expect_code(1);
    assert!(
        verify.stdout.contains("verification FAILED"),
        "{}",
        verify.stdout
    );
    if let Some(venv) = venv("in-toto-verify on a forged export") {
        let run = in_toto_verify(&venv, &proof, &owner);
        assert!(!run.ok, "in-toto-verify accepted a forged export");
    }
}

/// Steps with no path between them leave a link and a directory at the same path: the
/// view of a step that needs both, and the workspace at the end, never write through
/// the link.
#[test]
fn a_link_left_in_a_view_never_leads_a_later_write_outside() {
    for (first, second) in [("plant", "maker"), ("maker", "plant")] {
        let session = Session::new();
        session.plugin("hostile").plugin("fs_probe").dir("victim");
        let victim = session.path("victim").canonicalize().unwrap();
        let step = |name: &str| {
            match name {
            "plant" => format!(
                "  plant:\n    uses: ./hostile.wasm\n    with: {{ attack: symlink, link: out, target: {} }}\n",
                victim.display()
            ),
            _ => "  maker:\n    uses: ./hostile.wasm\n    with: { attack: symlink, link: out/x, target: y }\n"
                .to_owned(),
        }
        };
        session.file(
            "flow.yaml",
            format!(
                "version: 1\nname: links\nsteps:\n{}{}  reader:\n    uses: ./fs_probe.wasm\n    needs: [plant, maker]\n    with: {{ write: out/z, content: inside }}\n",
                step(first),
                step(second)
            ),
        );
        let out = session.flow(["run", "flow.yaml"]).run();
        let (show, workspace) = session.last_run();
        assert_eq!(
            std::fs::read_dir(&victim).unwrap().count(),
            0,
            "{first} then {second}: something was written through the link\n{}",
            out.stdout
        );
        if first == "plant" {
            // The later step's directory wins: the reader writes inside its own view,
            // and the workspace ends with a directory, not the link.
            out.expect_success();
            assert_eq!(show["steps"][2]["status"], "succeeded", "{show}");
            let meta = std::fs::symlink_metadata(workspace.join("out")).unwrap();
            assert!(meta.is_dir(), "{show}");
            assert_eq!(
                std::fs::read_to_string(workspace.join("out/z")).unwrap(),
                "inside"
            );
        } else {
            // The link wins; the reader cannot write through it.
            assert_eq!(show["steps"][2]["status"], "failed", "{show}");
            assert!(
                std::fs::symlink_metadata(workspace.join("out"))
                    .unwrap()
                    .is_symlink()
            );
        }
    }
}

/// A host command links a granted file into the step's view: keeping the view's files
/// must not move the granted file into the store, nor tie the stored copy to it.
#[test]
fn a_hard_link_to_a_granted_file_is_copied_into_the_store_not_taken() {
    let session = Session::new();
    session
        .plugin("hostile")
        .file("shared/data.txt", "original\n");
    let shared = session.path("shared").canonicalize().unwrap();
    session.file(
        "flow.yaml",
        format!(
            "version: 1\nname: link\nexec-confinement: off\nsteps:\n  link:\n    uses: ./hostile.wasm\n    grants: {{ exec: [ln], fs: [{{ path: shared, access: read }}] }}\n    with: {{ attack: exec, command: ln, args: [{}, linked.txt] }}\n",
            shared.join("data.txt").display()
        ),
    );
    session.flow(["run", "flow.yaml"]).run().expect_success();
    let (show, workspace) = session.last_run();
    assert!(
        show["steps"][0]["outputs"]
            .to_string()
            .contains("ran ln: exit code 0"),
        "{show}"
    );
    // The granted file is where it was, and the run's copy is a copy.
    assert_eq!(
        std::fs::read_to_string(shared.join("data.txt")).unwrap(),
        "original\n"
    );
    assert_eq!(
        std::fs::read_to_string(workspace.join("linked.txt")).unwrap(),
        "original\n"
    );
    std::fs::write(shared.join("data.txt"), "changed afterwards\n").unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"original\n"));
    let object = session
        .data_dir()
        .join("objects/sha256")
        .join(&digest[..2])
        .join(&digest[2..]);
    assert_eq!(std::fs::read_to_string(object).unwrap(), "original\n");
}
