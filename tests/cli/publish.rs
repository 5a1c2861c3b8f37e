//! The `publish` plugin: files as an OCI 1.1 artifact in an OCI image layout
//! (read back by skopeo) and in Debian's docker-registry on 127.0.0.1 (read
//! back by skopeo), with the run's attestations attached under the referrers
//! tag schema, one artifact per tag, and the network reachable only as granted.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::session::{Session, assert_reason, repo_root};

/// Whether the tools exist; in CI they must.
fn tools(programs: &[&str]) -> bool {
    let missing: Vec<&&str> = programs
        .iter()
        .filter(|p| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {p}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing:?} must be installed in CI (.ci/run installs them)"
    );
    eprintln!("NOT RUN: {missing:?} not installed");
    false
}

/// docker-registry on 127.0.0.1, with its own storage; killed on drop.
struct Registry {
    child: Child,
    host: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port, None)
    }

    /// On 127.0.0.1:`port`, with basic auth for `(user, password)` if given.
    fn start_on(port: u16, auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let mut auth_yaml = String::new();
        if let Some((user, password)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd runs");
            assert!(out.status.success());
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            auth_yaml = format!(
                "auth:\n  htpasswd:\n    realm: flow-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth_yaml}",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let registry = Registry {
            child,
            host: format!("127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(&registry.host) {
                let _ = write!(
                    stream,
                    "GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n",
                    registry.host
                );
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                // 401 when auth is on: it is up either way.
                let up = [
                    "HTTP/1.0 200",
                    "HTTP/1.1 200",
                    "HTTP/1.0 401",
                    "HTTP/1.1 401",
                ];
                if up.iter().any(|s| answer.starts_with(s)) {
                    return registry;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not answer on {}", registry.host);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo runs")
}

/// The raw manifest skopeo reads at `reference` (`docker://...` or `oci:...`),
/// and its digest.
fn skopeo_manifest(reference: &str, extra: &[&str]) -> (Value, String) {
    let mut args = vec!["inspect", "--raw"];
    if reference.starts_with("docker://") {
        args.push("--tls-verify=false");
    }
    args.extend_from_slice(extra);
    args.push(reference);
    let out = skopeo(&args);
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&out.stdout)));
    (
        serde_json::from_slice(&out.stdout).expect("a JSON manifest"),
        digest,
    )
}

/// A pipeline that makes two files, then publishes them with `with`.
fn pipeline(session: &Session, grants: &str, with: &str, content: &str) {
    session.file(
        "flow.yaml",
        format!(
            "version: 1
name: publish
steps:
  build:
    uses: build
    grants: {{ exec: [sh] }}
    with: {{ command: [sh, -c, 'mkdir -p dist && printf \"{content}\" > dist/app && echo notes > dist/NOTES'], artifacts: ['dist/*'] }}
  publish:
    uses: publish
    needs: [build]
    grants: {grants}
    with: {{ files: [dist/app, dist/NOTES], revision: 0123456789abcdef0123456789abcdef01234567{with} }}
"
        ),
    );
}

#[test]
fn publishes_to_a_registry_with_attestations_and_one_artifact_per_tag() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let registry = Registry::start();
    let session = Session::new();
    let to = format!("{}/acme/app:1.0.0", registry.host);
    let grants = format!("{{ net: ['{}'] }}", registry.host);
    pipeline(&session, &grants, &format!(", to: '{to}'"), "v1");
    let (show, _) = session.run_and_show(0);
    let outputs = &show["steps"][1]["outputs"];
    assert_eq!(outputs["outcome"], "created");
    let digest = outputs["digest"].as_str().unwrap().to_owned();

    // skopeo reads back exactly the manifest flow pushed.
    let (manifest, pushed) = skopeo_manifest(&format!("docker://{to}"), &[]);
    assert_eq!(pushed, digest);
    assert_eq!(manifest["artifactType"], "application/vnd.flow.artifact.v1");
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
    assert_eq!(titles, ["app", "NOTES"]);
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.revision"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(manifest["annotations"]["dev.flow.run"], show["run"]["id"]);

    // The attestations are a referrer under the tag schema: the build step's signed statement.
    let tag = format!(
        "{}/acme/app:sha256-{}",
        registry.host,
        digest.trim_start_matches("sha256:")
    );
    let index = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{tag}"),
    ]);
    assert!(
        index.status.success(),
        "{}",
        String::from_utf8_lossy(&index.stderr)
    );
    let index: Value = serde_json::from_slice(&index.stdout).unwrap();
    let referrer = &index["manifests"][0];
    assert_eq!(referrer["artifactType"], "application/vnd.in-toto+json");
    assert_eq!(outputs["attestations-digest"], referrer["digest"]);
    let attached = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!(
            "docker://{}/acme/app@{}",
            registry.host,
            referrer["digest"].as_str().unwrap()
        ),
    ]);
    let attached: Value = serde_json::from_slice(&attached.stdout).unwrap();
    assert_eq!(attached["subject"]["digest"], digest.as_str());
    assert_eq!(
        attached["layers"][0]["annotations"]["org.opencontainers.image.title"],
        "build.intoto.json"
    );

    // The same content again: unchanged. Other content under the same tag: refused...
    session.run_and_show(0);
    pipeline(&session, &grants, &format!(", to: '{to}'"), "v2");
    let (show, _) = session.run_and_show(1);
    let reason = show["steps"][1]["reason"].as_str().unwrap();
    assert!(
        reason.contains("1.0.0") && reason.contains(&digest),
        "{reason}"
    );
    // ...unless the step says so.
    pipeline(
        &session,
        &grants,
        &format!(", to: '{to}', overwrite: true"),
        "v2",
    );
    let (show, _) = session.run_and_show(0);
    assert_eq!(show["steps"][1]["outputs"]["outcome"], "replaced");
}

#[test]
fn a_registry_not_granted_is_not_reached() {
    if !tools(&["docker-registry"]) {
        return;
    }
    let registry = Registry::start();
    let session = Session::new();
    pipeline(
        &session,
        "{ net: ['127.0.0.1:9'] }",
        &format!(", to: '{}/acme/app:1.0.0'", registry.host),
        "v1",
    );
    let (show, _) = session.run_and_show(1);
    assert_reason(&show, 1, "HttpRequestDenied");
    let log = session.flow(["logs", "last", "publish"]).run().stdout;
    assert!(
        log.contains(&format!(
            "{} is not granted; this step may reach only 127.0.0.1:9",
            registry.host
        )),
        "{log}"
    );
}

#[test]
fn publishes_to_an_oci_layout_that_skopeo_reads() {
    let session = Session::new();
    pipeline(&session, "{}", ", to: 'oci:layout:1.0.0'", "v1");
    let (show, workspace) = session.run_and_show(0);
    let digest = show["steps"][1]["outputs"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let index: Value =
        serde_json::from_slice(&std::fs::read(workspace.join("layout/index.json")).unwrap())
            .unwrap();
    let tagged = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "1.0.0")
        .expect("the tag is in index.json");
    assert_eq!(tagged["digest"], digest.as_str());
    if !tools(&["skopeo"]) {
        return;
    }
    let layout = format!("oci:{}:1.0.0", workspace.join("layout").display());
    let raw = skopeo(&["inspect", "--raw", &layout]);
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(&raw.stdout))),
        digest
    );
    let copy = format!("oci:{}:1.0.0", session.path("copy").display());
    let copied = skopeo(&["copy", &layout, &copy]);
    assert!(
        copied.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&copied.stderr)
    );
}

/// Promotion: dev -> prod by digest, only when the attached attestations verify
/// with the trusted key.
#[test]
fn promotion_copies_by_digest_only_what_verifies() {
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let registry = Registry::start();
    let session = Session::new();
    let grants = format!("{{ net: ['{}'] }}", registry.host);
    // Published to dev with the run's attestations, and once without.
    pipeline(
        &session,
        &grants,
        &format!(", to: '{}/acme/dev/app:1.0.0'", registry.host),
        "v1",
    );
    let (show, _) = session.run_and_show(0);
    let attested = show["steps"][1]["outputs"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    pipeline(
        &session,
        &grants,
        &format!(
            ", to: '{}/acme/dev/bare:1.0.0', attestations: false",
            registry.host
        ),
        "v3",
    );
    let (show, _) = session.run_and_show(0);
    let bare = show["steps"][1]["outputs"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();

    // The public half of the provenance key: the step may verify with it, not sign.
    let owner = session
        .signing_public_key()
        .expect("the session signs")
        .display()
        .to_string();
    session
        .flow(["keys", "generate", "--out", "other"])
        .run()
        .expect_success();
    let promote = |from: &str, key: &str, to: &str| {
        session.file(
            "flow.yaml",
            format!(
                "version: 1
name: promote
keys:
  owner: {{ file: {owner} }}
  other: {{ file: other/signing-key.pem }}
steps:
  promote:
    uses: publish
    grants: {{ net: ['{host}'], keys: [{key}] }}
    with: {{ promote-from: '{host}/{from}', to: '{host}/{to}', trusted-key: {key} }}
",
                host = registry.host
            ),
        );
    };

    promote(
        &format!("acme/dev/app@{attested}"),
        "owner",
        "acme/prod/app:1.0.0",
    );
    let (show, _) = session.run_and_show(0);
    assert_eq!(show["steps"][0]["outputs"]["digest"], attested.as_str());
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{}/acme/prod/app:1.0.0", registry.host),
    ]);
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(&raw.stdout))),
        attested
    );
    // Its attestations came along.
    let tag = format!(
        "docker://{}/acme/prod/app:sha256-{}",
        registry.host,
        attested.trim_start_matches("sha256:")
    );
    assert!(
        skopeo(&["inspect", "--tls-verify=false", "--raw", &tag])
            .status
            .success()
    );

    // Signed by another key than the trusted one: refused, nothing copied.
    promote(
        &format!("acme/dev/app@{attested}"),
        "other",
        "acme/prod/other:1.0.0",
    );
    let (show, _) = session.run_and_show(1);
    let reason = show["steps"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("refusing to promote") && reason.contains("not signed by key `other`"),
        "{reason}"
    );
    // No attestations at all: refused.
    promote(
        &format!("acme/dev/bare@{bare}"),
        "owner",
        "acme/prod/bare:1.0.0",
    );
    let (show, _) = session.run_and_show(1);
    assert_reason(&show, 0, "no attestations are attached");
    for repo in ["acme/prod/other:1.0.0", "acme/prod/bare:1.0.0"] {
        let missing = skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{}/{repo}", registry.host),
        ]);
        assert!(!missing.status.success(), "{repo} must not exist");
    }
}

#[test]
fn credentials_come_from_a_granted_secret_and_never_show() {
    if !tools(&["docker-registry", "htpasswd", "skopeo"]) {
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let registry = Registry::start_on(port, Some(("ci", "s3cret-registry-pass")));
    let session = Session::new();
    let to = format!("{}/acme/app:1.0.0", registry.host);
    let yaml = |auth: &str| {
        session.file(
            "flow.yaml",
            format!(
                "version: 1
name: auth
secrets:
  registry-password: {{ env: FLOW_TEST_REGISTRY_PASSWORD }}
steps:
  publish:
    uses: publish
    grants: {{ net: ['{host}'], secrets: [registry-password] }}
    with: {{ files: [app.bin], to: '{to}'{auth} }}
",
                host = registry.host
            ),
        );
    };
    session.file("ws/app.bin", "an artifact\n");
    let workspace = session.path("ws");
    let run = |code: i32| {
        session
            .flow([
                "run",
                "--plain",
                "--workspace",
                workspace.to_str().unwrap(),
                "flow.yaml",
            ])
            .env("FLOW_TEST_REGISTRY_PASSWORD", "s3cret-registry-pass")
            .run()
            .expect_code(code);
        session.last_run()
    };
    yaml("");
    let (show, _) = run(1);
    assert!(
        show["steps"][0]["reason"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("unauthorized"),
        "{}",
        show["steps"][0]
    );
    yaml(", auth: { username: ci, password-secret: registry-password }");
    let (show, _) = run(0);
    assert_eq!(show["steps"][0]["outputs"]["outcome"], "created");
    let (_, pushed) = skopeo_manifest(
        &format!("docker://{to}"),
        &["--creds", "ci:s3cret-registry-pass"],
    );
    assert_eq!(
        pushed,
        show["steps"][0]["outputs"]["digest"].as_str().unwrap()
    );
    let logs = session.flow(["logs", "last"]).run().stdout;
    assert!(!logs.contains("s3cret-registry-pass"), "{logs}");
}

/// The release example against a registry: its publish step is granted 127.0.0.1:5000.
#[test]
fn the_release_example_publishes_to_a_local_registry() {
    let Some(root) = repo_root() else { return };
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    if TcpListener::bind("127.0.0.1:5000").is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "port 5000 must be free in CI"
        );
        eprintln!("NOT RUN: 127.0.0.1:5000 is taken");
        return;
    }
    let registry = Registry::start_on(5000, None);
    let session = Session::new();
    let to = format!("{}/acme/sample:0.1.0", registry.host);
    let example = root.join("templates/examples/release/flow.yaml");
    let out = session
        .flow([
            "run",
            "--plain",
            example.to_str().unwrap(),
            "-i",
            &format!("to={to}"),
        ])
        .with_toolchain()
        .env("FLOW_RELEASE_KEY", session.release_key())
        .run();
    out.expect_success();
    let (show, _) = session.last_run();
    let digest = show["steps"][4]["outputs"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, pushed) = skopeo_manifest(&format!("docker://{to}"), &[]);
    assert_eq!(pushed, digest);
    // skopeo copies it out, blobs and all, to a layout with the same manifest.
    let copy = format!("oci:{}:0.1.0", session.path("copied").display());
    let copied = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{to}"),
        &copy,
    ]);
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let back = skopeo(&["inspect", "--raw", &copy]);
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(&back.stdout))),
        digest
    );
}

/// The organisation catalog end to end: acme/rust-service releases the sample crate
/// to a dev repository of a registry on loopback, the release policy holds for that
/// run, and acme/release-promotion promotes the release to prod by digest once its
/// attestations verify with the key that signed the run.
#[test]
fn the_bundled_templates_release_to_dev_and_promote_to_prod() {
    let Some(root) = repo_root() else { return };
    if !tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let registry = Registry::start();
    let session = Session::new();
    let host = &registry.host;
    let root = root.display();
    let key = session.release_key().display().to_string();
    // The promotion trusts the key that signed the release run's provenance.
    let owner = session.signing_public_key().unwrap().display().to_string();
    // A repository's pipeline: a template of the bundled catalog and its parameters.
    let extending = |template: &str, with: String| {
        format!(
            "version: 1\nextends: {template}\ncatalogs: [{{ path: {root}/templates }}]\nwith:\n{with}"
        )
    };
    session.file(
        "release.yaml",
        extending(
            "acme/rust-service@^1.2",
            format!(
                "  crate: sample
  crate-dir: templates/examples/checkout-build/sample
  repo: {root}
  advisory-db: {root}/plugins/scan/core/tests/data/rustsec-advisory-db
  registry: {host}/acme/dev/sample
  registry-host: {host}
  signing-key: {key}
"
            ),
        ),
    );
    session
        .flow(["run", "release.yaml", "-i", "tag=0.1.0"])
        .with_toolchain()
        .run()
        .expect_success();
    let (show, _) = session.last_run();
    let publish = &show["steps"][5];
    assert_eq!(publish["step_id"], "publish");
    let digest = publish["outputs"]["digest"].as_str().unwrap().to_owned();
    let (_, pushed) = skopeo_manifest(&format!("docker://{host}/acme/dev/sample:0.1.0"), &[]);
    assert_eq!(pushed, digest);
    let policy = format!("{root}/templates/acme/release-policy.yaml");
    let out = session.flow(["verify", "last", "--policy", &policy]).run();
    out.expect_success();
    assert!(out.stdout.contains("passed"), "{}", out.stdout);

    session.file(
        "promote.yaml",
        extending(
            "acme/release-promotion@^1",
            format!(
                "  from: {host}/acme/dev/sample
  to: {host}/acme/prod/sample
  registry-host: {host}
  trusted-key: {owner}
"
            ),
        ),
    );
    let promote = |tag: &str| {
        let digest = format!("digest={digest}");
        let tag = format!("tag={tag}");
        session
            .flow(["run", "promote.yaml", "-i", &digest, "-i", &tag])
            .run()
    };
    promote("0.1.0").expect_success();
    let (show, _) = session.last_run();
    assert_eq!(show["steps"][0]["outputs"]["digest"], digest.as_str());
    let (_, promoted) = skopeo_manifest(&format!("docker://{host}/acme/prod/sample:0.1.0"), &[]);
    assert_eq!(promoted, digest);
    // The attestations came along, under the referrers tag schema.
    let referrers = format!(
        "docker://{host}/acme/prod/sample:sha256-{}",
        digest.trim_start_matches("sha256:")
    );
    assert!(
        skopeo(&["inspect", "--tls-verify=false", "--raw", &referrers])
            .status
            .success()
    );

    // Trusting another key: refused, and nothing reaches prod under the new tag.
    session
        .flow(["keys", "generate", "--out", "other"])
        .run()
        .expect_success();
    let other = session.path("other/signing-key.pem").display().to_string();
    session.file(
        "promote.yaml",
        std::fs::read_to_string(session.path("promote.yaml"))
            .unwrap()
            .replace(&owner, &other),
    );
    promote("0.1.1").expect_code(1);
    let (show, _) = session.last_run();
    assert_reason(&show, 0, "refusing to promote");
    let missing = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{host}/acme/prod/sample:0.1.1"),
    ]);
    assert!(!missing.status.success(), "0.1.1 must not exist in prod");
}

/// Publishing reports the bytes written of the artifact's blobs as progress.
#[test]
fn publishing_reports_its_progress_in_bytes() {
    let session = Session::new();
    pipeline(&session, "{}", ", to: 'oci:layout:1.0.0'", "v1");
    let out = session.flow(["--json", "run", "flow.yaml"]).run();
    out.expect_code(0);
    let progress: Vec<Value> = out
        .json_lines()
        .into_iter()
        .filter(|e| e["event"] == "step-progress" && e["step"] == "publish")
        .collect();
    assert!(!progress.is_empty(), "no progress from publish");
    assert!(
        progress.iter().all(|e| e["unit"] == "bytes"),
        "{progress:?}"
    );
    let last = progress.last().unwrap();
    assert_eq!(last["done"], last["total"], "{progress:?}");
    // dist/app ("v1") and dist/NOTES ("notes\n") at least.
    assert!(last["total"].as_u64().unwrap() >= 8, "{last}");
}
