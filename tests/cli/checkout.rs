//! The `checkout` plugin, through `flow run`: real repositories made with the
//! `git` CLI (packed, with tags, symlinks, executables, a submodule and an LFS
//! pointer), checked out inside WebAssembly and compared with git itself.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::session::{Session, assert_reason, repo_root};

/// `git` with no user or system configuration, a fixed identity and dates.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Flow Test")
        .env("GIT_AUTHOR_EMAIL", "test@flow.invalid")
        .env("GIT_COMMITTER_NAME", "Flow Test")
        .env("GIT_COMMITTER_EMAIL", "test@flow.invalid")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The git tree hash of a directory's contents, computed by git itself
/// (everything, ignored files included).
fn tree_hash_of(dir: &Path, scratch: &Path) -> String {
    let git_dir = scratch.join("hash.git");
    let _ = std::fs::remove_dir_all(&git_dir);
    git(
        scratch,
        &["init", "-q", "--bare", git_dir.to_str().unwrap()],
    );
    let args = [
        "--git-dir",
        git_dir.to_str().unwrap(),
        "--work-tree",
        dir.to_str().unwrap(),
    ];
    git(dir, &[&args[..], &["add", "-A", "-f", "."]].concat());
    git(dir, &[&args[..], &["write-tree"]].concat())
}

/// A repository with history, packed, with what a checkout must get right.
fn sample_repo(root: &Path) -> PathBuf {
    let sub = root.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    git(&sub, &["init", "-q", "-b", "main"]);
    std::fs::write(sub.join("lib.txt"), "a submodule\n").unwrap();
    git(&sub, &["add", "."]);
    git(&sub, &["commit", "-q", "-m", "sub"]);

    let repo = root.join("app");
    std::fs::create_dir_all(repo.join("src/nested/deeper")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let big: String = (0..40_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(repo.join("src/big.txt"), &big).unwrap();
    std::fs::write(repo.join("README.md"), "# app\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    git(&repo, &["tag", "-a", "v1.0.0", "-m", "release 1.0.0"]);
    // History, so the pack holds deltas.
    for i in 0..5 {
        std::fs::write(repo.join("src/big.txt"), format!("{big}edit {i}\n")).unwrap();
        std::fs::write(
            repo.join(format!("src/nested/file{i}.rs")),
            format!("// {i}\n"),
        )
        .unwrap();
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", &format!("edit {i}")]);
    }
    std::fs::write(repo.join("run.sh"), "#!/bin/sh\necho run\n").unwrap();
    std::fs::set_permissions(repo.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("src/nested", repo.join("link-to-dir")).unwrap();
    std::os::unix::fs::symlink("README.md", repo.join("link-to-file")).unwrap();
    std::os::unix::fs::symlink("../nowhere", repo.join("src/dangling")).unwrap();
    std::fs::write(repo.join("src/nested/deeper/empty"), "").unwrap();
    std::fs::write(
        repo.join("src/binary.bin"),
        (0..=255u8).cycle().take(70_000).collect::<Vec<u8>>(),
    )
    .unwrap();
    std::fs::write(repo.join("naïve café.txt"), "unicode\n").unwrap();
    std::fs::write(
        repo.join("asset.psd"),
        "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n",
    )
    .unwrap();
    git(
        &repo,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            sub.to_str().unwrap(),
            "vendor/sub",
        ],
    );
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "everything"]);
    git(&repo, &["tag", "light"]);
    git(&repo, &["gc", "-q", "--aggressive"]);
    // One more commit on top, left loose.
    std::fs::write(repo.join("README.md"), "# app\n\nloose\n").unwrap();
    git(&repo, &["commit", "-q", "-am", "loose"]);
    repo
}

fn checkout_pipeline(session: &Session, repo: &Path, with: &str) {
    session.file(
        "flow.yaml",
        format!(
            "version: 1\nname: checkout\nsteps:\n  checkout:\n    uses: checkout\n    grants: {{ fs: [{{ path: {}, access: read, hash: false }}] }}\n    with: {with}\n",
            repo.display()
        ),
    );
}

/// Files, modes and symlink targets under `dir`, sorted, `.git` excluded.
fn listing(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == ".git" || rel.ends_with("/.git") {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                todo.push(path.clone());
                "dir".to_owned()
            } else {
                format!(
                    "file x={} {}",
                    meta.permissions().mode() & 0o100 != 0,
                    meta.len()
                )
            };
            out.push((rel, what));
        }
    }
    out.sort();
    out
}

#[test]
fn checks_out_like_git_does() {
    let session = Session::new();
    let repo = sample_repo(session.root());
    checkout_pipeline(&session, &repo, "{ path: src }");
    let out = session.flow(["run", "--plain", "flow.yaml"]).run();
    out.expect_success();
    let (show, workspace) = session.last_run();
    let outputs = &show["steps"][0]["outputs"];
    let head = git(&repo, &["rev-parse", "HEAD"]);
    assert_eq!(outputs["commit"], head);
    assert_eq!(outputs["tree"], git(&repo, &["rev-parse", "HEAD^{tree}"]));
    assert_eq!(outputs["ref"], "refs/heads/main");

    // The written tree hashes like the commit's tree, once the submodule's
    // gitlink (an empty directory in a checkout) is put back.
    let written = workspace.join("src");
    let scratch = session.path("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let expected_without_sub = {
        let reference = session.path("reference");
        git(
            session.root(),
            &[
                "clone",
                "-q",
                "--no-checkout",
                repo.to_str().unwrap(),
                reference.to_str().unwrap(),
            ],
        );
        git(&reference, &["checkout", "-q", &head]);
        assert_eq!(
            listing(&written),
            listing(&reference),
            "the same files, modes and symlinks as `git checkout`"
        );
        std::fs::remove_dir_all(reference.join("vendor/sub")).unwrap();
        std::fs::remove_dir_all(reference.join(".git")).unwrap();
        tree_hash_of(&reference, &scratch)
    };
    std::fs::remove_dir(written.join("vendor/sub")).expect("the submodule is an empty directory");
    assert_eq!(tree_hash_of(&written, &scratch), expected_without_sub);

    let log = session.flow(["logs", "last"]).run().stdout;
    assert!(log.contains("submodule `vendor/sub` at "), "{log}");
    assert!(
        log.contains("1 Git LFS pointer files are left as they are (e.g. asset.psd)"),
        "{log}"
    );

    // Provenance names the repository and the commit.
    let attest = session
        .flow(["--json", "attest", "show", "last", "checkout"])
        .run();
    attest.expect_success();
    let envelope = &attest.json_lines()[0]["statement"];
    let envelope = flow_provenance::Envelope::from_json(envelope.to_string().as_bytes()).unwrap();
    let statement: Value = serde_json::from_slice(&envelope.payload).unwrap();
    let dependencies = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap()
        .clone();
    let source = dependencies
        .iter()
        .find(|d| d["digest"]["gitCommit"].is_string())
        .expect("a gitCommit dependency");
    assert_eq!(
        source["uri"],
        format!("git+file://{}@refs/heads/main", repo.display())
    );
    assert_eq!(source["digest"]["gitCommit"], head);
    assert_eq!(source["name"], "app");
}

#[test]
fn checks_out_tags_short_shas_and_bare_repositories() {
    let session = Session::new();
    let repo = sample_repo(session.root());
    let bare = session.path("app.git");
    git(
        session.root(),
        &[
            "clone",
            "-q",
            "--bare",
            repo.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let first = git(&repo, &["rev-parse", "v1.0.0^{commit}"]);
    for (target, reference, commit) in [
        (&repo, "v1.0.0", first.clone()),
        (&repo, &first[..10], first.clone()),
        (&bare, "light", git(&repo, &["rev-parse", "light"])),
        (&bare, "HEAD", git(&repo, &["rev-parse", "HEAD"])),
    ] {
        checkout_pipeline(&session, target, &format!("{{ ref: '{reference}' }}"));
        session
            .flow(["run", "--plain", "flow.yaml"])
            .run()
            .expect_success();
        let (show, workspace) = session.last_run();
        assert_eq!(show["steps"][0]["outputs"]["commit"], commit, "{reference}");
        let tree = git(&repo, &["rev-parse", &format!("{commit}^{{tree}}")]);
        assert_eq!(show["steps"][0]["outputs"]["tree"], tree);
        let scratch = session.path("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        if reference == "v1.0.0" || reference.len() == 10 {
            // No submodule in the first commit: the hash of what was written is the tree's.
            assert_eq!(tree_hash_of(&workspace, &scratch), tree, "{reference}");
        }
    }
}

#[test]
fn this_projects_own_repository_checks_out_identically() {
    let Some(root) = repo_root() else { return };
    let session = Session::new();
    checkout_pipeline(&session, root, "{ ref: HEAD, path: flow }");
    let (show, workspace) = session.run_and_show(0);
    let head = git(root, &["rev-parse", "HEAD"]);
    assert_eq!(show["steps"][0]["outputs"]["commit"], head);
    let scratch = session.path("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    assert_eq!(
        tree_hash_of(&workspace.join("flow"), &scratch),
        git(root, &["rev-parse", "HEAD^{tree}"])
    );
}

#[test]
fn bad_requests_fail_with_clear_errors_and_write_nothing() {
    let session = Session::new();
    let repo = sample_repo(session.root());
    let cases = [
        ("{ ref: no-such-branch }", "no-such-branch"),
        (
            "{ repo: 'https://github.com/flow-engine/flow.git' }",
            "needs the network capability",
        ),
        (
            "{ repo: 'git@github.com:flow-engine/flow.git' }",
            "needs the network capability",
        ),
        (
            "{ path: ../outside }",
            "must be a directory inside the workspace",
        ),
    ];
    for (with, expected) in cases {
        checkout_pipeline(&session, &repo, with);
        session
            .flow(["run", "--plain", "flow.yaml"])
            .run()
            .expect_code(1);
        let (show, workspace) = session.last_run();
        let reason = show["steps"][0]["reason"].as_str().unwrap();
        assert!(reason.contains(expected), "{with}: {reason}");
        assert_eq!(
            std::fs::read_dir(&workspace).unwrap().count(),
            0,
            "{with}: nothing written"
        );
    }
    // A destination that is not empty is refused, and left as it was.
    session.file(
        "flow.yaml",
        format!(
            "version: 1\nname: checkout\nsteps:\n  first:\n    uses: checkout\n    grants: {{ fs: [{{ path: {repo}, access: read, hash: false }}] }}\n  again:\n    uses: checkout\n    needs: [first]\n    grants: {{ fs: [{{ path: {repo}, access: read, hash: false }}] }}\n",
            repo = repo.display()
        ),
    );
    let (show, workspace) = session.run_and_show(1);
    assert_eq!(show["steps"][0]["status"], "succeeded");
    assert_reason(&show, 1, "is not empty");
    assert_eq!(
        std::fs::read_to_string(workspace.join("README.md")).unwrap(),
        "# app\n\nloose\n"
    );
    // A repository the step is not granted cannot be read.
    session.file(
        "flow.yaml",
        format!("version: 1\nname: checkout\nsteps:\n  sneaky:\n    uses: checkout\n    grants: {{ fs: [{{ path: {}, access: read }}] }}\n    with: {{ repo: {} }}\n", session.path("scratch-granted").display(), repo.display()),
    );
    std::fs::create_dir_all(session.path("scratch-granted")).unwrap();
    let (show, _) = session.run_and_show(1);
    assert!(
        show["steps"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a git repository")
            || show["steps"][0]["reason"]
                .as_str()
                .unwrap()
                .contains(&repo.display().to_string()),
        "{}",
        show["steps"][0]
    );
}

#[test]
fn the_checkout_build_example_runs_and_its_provenance_verifies() {
    let Some(root) = repo_root() else { return };
    let example = root.join("templates/examples/checkout-build/flow.yaml");
    let session = Session::new();
    // The session's HOME is its temp dir: point at the real toolchain.
    let out = session
        .flow(["run", "--plain", example.to_str().unwrap()])
        .with_toolchain()
        .run();
    out.expect_success();
    let (show, workspace) = session.last_run();
    let built = workspace.join("src/target/release/sample");
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(&built).unwrap(),
    ));
    assert_eq!(
        show["steps"][2]["outputs"]["artifacts"],
        format!("{sha}  src/target/release/sample\n")
    );
    assert_eq!(
        show["steps"][2]["outputs"]["commit"],
        git(root, &["rev-parse", "HEAD"])
    );
    let ran = Command::new(&built).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "hello from a crate flow checked out and built\n"
    );

    session.flow(["verify", "last"]).run().expect_success();
    let dir = crate::provenance::export(&session, "export");
    let Some(venv) = crate::provenance::venv("the checkout-build example's export") else {
        return;
    };
    let checked = crate::provenance::in_toto_verify(&venv, &dir, &dir.join("owner.pub"));
    assert!(
        checked.ok,
        "in-toto-verify rejected the example's export:\n{}",
        checked.text
    );
    let statements = crate::provenance::statements_in(&dir);
    let checked = crate::provenance::check_statements(&venv, &dir.join("owner.pub"), &statements);
    assert!(checked.ok, "{}", checked.text);
}

#[test]
fn the_release_example_publishes_a_signed_artifact_offline() {
    let Some(root) = repo_root() else { return };
    let example = root.join("templates/examples/release/flow.yaml");
    let session = Session::new();
    // The release key: not the provenance key (flow refuses to grant that one).
    let key = session.release_key();
    let out = session
        .flow(["run", "--plain", example.to_str().unwrap()])
        .with_toolchain()
        .env("FLOW_RELEASE_KEY", &key)
        .run();
    out.expect_success();
    let (show, workspace) = session.last_run();
    let steps: Vec<&str> = show["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["succeeded"; 5]);
    let digest = show["steps"][4]["outputs"]["digest"].as_str().unwrap();

    // The signature verifies with ssh-keygen, against the binary that was built.
    let public = show["steps"][3]["outputs"]["public-key"].as_str().unwrap();
    std::fs::write(
        session.path("allowed_signers"),
        format!("release {public}\n"),
    )
    .unwrap();
    let bin = workspace.join("src/target/release");
    let verified = Command::new("ssh-keygen")
        .current_dir(&bin)
        .args(["-Y", "verify", "-f"])
        .arg(session.path("allowed_signers"))
        .args(["-I", "release", "-n", "file", "-s", "sample.sig"])
        .stdin(std::fs::File::open(bin.join("sample")).unwrap())
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    // The layout holds the artifact; skopeo reads it when installed.
    let index: Value =
        serde_json::from_slice(&std::fs::read(workspace.join("release/index.json")).unwrap())
            .unwrap();
    assert!(
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["digest"] == digest)
    );
    if Command::new("skopeo").arg("--version").output().is_ok() {
        let layout = format!("oci:{}:0.1.0", workspace.join("release").display());
        let raw = Command::new("skopeo")
            .args(["inspect", "--raw", &layout])
            .output()
            .unwrap();
        assert!(
            raw.status.success(),
            "{}",
            String::from_utf8_lossy(&raw.stderr)
        );
        let manifest: Value = serde_json::from_slice(&raw.stdout).unwrap();
        let titles: Vec<&str> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                l["annotations"]["org.opencontainers.image.title"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(titles, ["sample", "sample.sig", "sample.intoto.json"]);
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.revision"],
            git(root, &["rev-parse", "HEAD"])
        );
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "skopeo must be installed in CI"
        );
    }

    // The run's provenance verifies, with flow and with in-toto-verify.
    session.flow(["verify", "last"]).run().expect_success();
    let dir = crate::provenance::export(&session, "export");
    let Some(venv) = crate::provenance::venv("the release example's export") else {
        return;
    };
    let checked = crate::provenance::in_toto_verify(&venv, &dir, &dir.join("owner.pub"));
    assert!(
        checked.ok,
        "in-toto-verify rejected the release example's export:\n{}",
        checked.text
    );
}

/// Checking out reports the files written as progress, up to the total.
#[test]
fn checkout_reports_its_progress_in_files() {
    let Some(root) = repo_root() else { return };
    let session = Session::new();
    checkout_pipeline(&session, root, "{ ref: HEAD, path: flow }");
    let out = session.flow(["--json", "run", "flow.yaml"]).run();
    out.expect_code(0);
    let events = out.json_lines();
    let progress: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "step-progress")
        .collect();
    assert!(!progress.is_empty(), "no progress events");
    assert!(progress.iter().all(|e| e["unit"] == "files"));
    let last = progress.last().unwrap();
    assert_eq!(last["done"], last["total"]);
    let files: u64 = events
        .iter()
        .find(|e| e["event"] == "step-finished")
        .and_then(|e| e["outputs"]["files"].as_str())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        last["done"].as_u64().unwrap() >= files,
        "{last} of {files} files"
    );
}
