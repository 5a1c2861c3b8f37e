//! Shared templates: catalogs, `extends`, sealed steps, slots, interfaces, the lock,
//! signatures, and the organisation catalog in `templates/`.

use std::path::Path;
use std::process::Command;

use crate::session::{Session, repo_root};

/// An organisation's base template: a sealed first step, a required slot, a step
/// calling an interface, typed parameters.
fn base(version: &str) -> String {
    format!(
        r#"template: 1
id: acme/base
version: {version}
description: the organisation's base
parameters:
  who: {{ type: string, pattern: "[a-z]+" }}
  times: {{ type: integer, default: 2 }}
name: base-pipeline
exec-confinement: preferred
sealed: [exec-confinement]
interfaces:
  greet:
    params:
      message: {{ type: string }}
    outputs: [message]
bindings: {{ greet: echo }}
slots:
  middle:
    required: true
    needs: [first]
steps:
  first:
    sealed: true
    uses: echo
    with: {{ message: "hello ${{{{ params.who }}}} {version}", count: "${{{{ params.times }}}}" }}
  last:
    sealed: [uses]
    uses: interface:greet
    needs: [middle]
    with: {{ message: "bye" }}
"#
    )
}

const REPO: &str = r#"version: 1
extends: acme/base@^1
catalogs: [{ path: catalog }]
with: { who: world }
fill:
  middle:
    mid:
      uses: echo
      with: { message: "${{ steps.first.outputs.message }} again" }
steps:
  last:
    with: { message: changed }
"#;

fn session_with_base(version: &str) -> Session {
    let session = Session::new();
    session.file("catalog/acme/base/template.yaml", base(version));
    session.file("flow.yaml", REPO);
    session
}

/// `flow check` fails with exit 2 and prints exactly `stderr`.
#[track_caller]
fn rejects(session: &Session, stderr: &str) {
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    assert_eq!(session.normalize(&out.stderr), stderr);
}

/// `flow run flow.yaml` succeeds and its step `first` logs `greeting`.
#[track_caller]
fn runs_and_greets(session: &Session, greeting: &str) {
    // The step must run (its log says which template it came from), not be taken from
    // the step cache.
    session
        .flow(["run", "--no-cache", "flow.yaml"])
        .run()
        .expect_success();
    let logs = session.flow(["logs", "last", "first"]).run();
    assert!(logs.stdout.contains(greeting), "{}", logs.stdout);
}

/// `flow <args>` fails with exit 2 and its stderr holds each of `expected`.
#[track_caller]
fn refuses(session: &Session, args: &[&str], expected: &[&str]) {
    let out = session.flow(args.iter().copied()).run();
    out.expect_code(2);
    let text = session.normalize(&out.stderr);
    for line in expected {
        assert!(text.contains(line), "`{line}` is not in:\n{text}");
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_repository_extends_a_template_fills_its_slot_and_runs() {
    let session = session_with_base("1.0.0");
    let out = session.flow(["run", "flow.yaml"]).run();
    out.expect_success();
    let (show, _) = session.last_run();
    let ids: Vec<&str> = show["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["first", "mid", "last"]);
    let logs = session.flow(["logs", "last"]).run();
    logs.expect_success();
    // The parameter reached the sealed step; the slot step read its output; the
    // repository changed the unsealed param of `last`.
    assert!(logs.stdout.contains("hello world 1.0.0"), "{}", logs.stdout);
    assert!(
        logs.stdout.contains("hello world 1.0.0 again"),
        "{}",
        logs.stdout
    );
    assert!(logs.stdout.contains("changed"), "{}", logs.stdout);
    assert!(!logs.stdout.contains("bye"), "{}", logs.stdout);
}

#[test]
fn show_resolved_says_where_every_step_and_key_came_from() {
    let session = session_with_base("1.0.0");
    let out = session.flow(["show", "--resolved", "flow.yaml"]).run();
    out.expect_success();
    let text = session.normalize(&out.stdout);
    let template = "TMP/catalog/acme/base/template.yaml";
    for expected in [
        "name: \"base-pipeline\"".to_owned(),
        "#   acme/base@1.0.0 sha256:".to_owned(),
        format!("exec-confinement: preferred                       # {template}:9"),
        format!(
            "  first:                                          # acme/base@1.0.0 {template}:22 (sealed)"
        ),
        format!("      message: \"hello world 1.0.0\"                # {template}:25"),
        format!(
            "    uses: echo                                    # interface:greet at {template}:28, bound at {template}:16"
        ),
        "      message: \"changed\"                          # flow.yaml:12".to_owned(),
        "  mid:                                            # flow.yaml:7 (slot middle)".to_owned(),
        format!("      - first                                     # {template}:20"),
        format!("      - mid                                       # {template}:29"),
    ] {
        assert!(text.contains(&expected), "`{expected}` is not in:\n{text}");
    }
}

#[test]
fn the_highest_matching_version_is_used_and_a_missing_one_is_named() {
    let session = Session::new();
    for version in ["1.0.0", "1.3.0", "2.0.0"] {
        session.file(
            &format!("catalog/acme/base/{version}/template.yaml"),
            base(version),
        );
    }
    session.file("flow.yaml", REPO);
    let out = session.flow(["show", "--resolved", "flow.yaml"]).run();
    out.expect_success();
    assert!(out.stdout.contains("hello world 1.3.0"), "{}", out.stdout);
    session.file("flow.yaml", REPO.replace("acme/base@^1", "acme/base@^3"));
    rejects(
        &session,
        "flow.yaml:2:10: error: no version of acme/base matches `^3` in catalog TMP/catalog (it has 2.0.0, 1.3.0, 1.0.0)\n    |\n  2 | extends: acme/base@^3\n    |          ^^^^^^^^^^^^\n",
    );
    session.file("flow.yaml", REPO.replace("acme/base@^1", "acme/nothing@^1"));
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    assert!(
        session
            .normalize(&out.stderr)
            .contains("error: template acme/nothing is in none of the catalogs (TMP/catalog)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_sealed_step_cannot_be_changed_or_removed_and_both_positions_are_shown() {
    let session = session_with_base("1.0.0");
    session.file(
        "flow.yaml",
        REPO.replace(
            "  last:\n    with: { message: changed }\n",
            "  first:\n    with: { message: mine }\n",
        ),
    );
    rejects(
        &session,
        "flow.yaml:12:13: error: step `first` is sealed by acme/base@1.0.0: `with.message` cannot be changed
     |
  12 |     with: { message: mine }
     |             ^^^^^^^
TMP/catalog/acme/base/template.yaml:23:5: note: sealed by acme/base@1.0.0 here
     |
  23 |     sealed: true
     |     ^^^^^^
",
    );
    session.file(
        "flow.yaml",
        REPO.replace(
            "  last:\n    with: { message: changed }\n",
            "  last:\n    remove: true\n",
        ),
    );
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    let text = session.normalize(&out.stderr);
    assert!(
        text.contains(
            "flow.yaml:12:5: error: step `last` is sealed by acme/base@1.0.0: it cannot be removed"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "TMP/catalog/acme/base/template.yaml:27:14: note: sealed by acme/base@1.0.0 here"
        ),
        "{text}"
    );
    // `last` seals only `uses`: the repository may not rebind its interface either.
    session.file(
        "flow.yaml",
        REPO.replace(
            "  last:\n    with: { message: changed }\n",
            "  last:\n    uses: echo\n",
        ),
    );
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    assert!(session.normalize(&out.stderr).contains(
        "flow.yaml:12:5: error: step `last` is sealed by acme/base@1.0.0: `uses` cannot be changed"
    ));
}

#[test]
fn bad_children_get_clear_errors_and_nothing_runs() {
    let session = session_with_base("1.0.0");
    let cases: [(&str, String, &str); 7] = [
        (
            "a new step outside the slots",
            REPO.replace("steps:\n", "steps:\n  extra:\n    uses: echo\n"),
            "flow.yaml:11:3: error: `extra` is not a step of acme/base@1.0.0: new steps go in its slots",
        ),
        (
            "an unknown slot",
            REPO.replace("  middle:\n", "  midle:\n"),
            "flow.yaml:6:3: error: unknown slot `midle`",
        ),
        (
            "a parameter of the wrong type",
            REPO.replace("with: { who: world }", "with: { who: world, times: many }"),
            "flow.yaml:4:28: error: parameter `times` of acme/base@1.0.0: expected an integer, found a string",
        ),
        (
            "a value the pattern refuses",
            REPO.replace("with: { who: world }", "with: { who: World }"),
            "flow.yaml:4:14: error: parameter `who` of acme/base@1.0.0: `World` does not match the pattern `[a-z]+`",
        ),
        (
            "a missing parameter",
            REPO.replace("with: { who: world }", "with: {}"),
            "flow.yaml:2:10: error: missing parameter `who` of acme/base@1.0.0",
        ),
        (
            "an unknown parameter",
            REPO.replace("with: { who: world }", "with: { who: world, whom: x }"),
            "flow.yaml:4:21: error: unknown parameter `whom`",
        ),
        (
            "a required slot left empty",
            REPO.replace("fill:\n  middle:\n    mid:\n      uses: echo\n      with: { message: \"${{ steps.first.outputs.message }} again\" }\n", ""),
            "flow.yaml:2:10: error: slot `middle` of acme/base@1.0.0 must be filled",
        ),
    ];
    for (what, text, expected) in cases {
        session.file("flow.yaml", &text);
        let out = session.flow(["run", "flow.yaml"]).run();
        out.expect_code(2);
        let stderr = session.normalize(&out.stderr);
        assert!(
            stderr.contains(expected),
            "{what}: `{expected}` is not in:\n{stderr}"
        );
    }
    // The parameter's declaration is shown beside the wrong value.
    session.file(
        "flow.yaml",
        REPO.replace("with: { who: world }", "with: { who: World }"),
    );
    let out = session.flow(["check", "flow.yaml"]).run();
    assert!(
        session
            .normalize(&out.stderr)
            .contains("TMP/catalog/acme/base/template.yaml:6:3: note: declared here")
    );
    // Nothing ran.
    assert!(
        !session.data_dir().join("runs").exists()
            || session.flow(["runs"]).run().stdout.trim().is_empty()
    );
}

#[test]
fn a_cycle_in_extends_is_reported_with_each_link() {
    let session = Session::new();
    session.file(
        "catalog/a/template.yaml",
        "template: 1\nid: acme/a\nversion: 1.0.0\nextends: acme/b@1\nsteps: {}\n",
    );
    session.file(
        "catalog/b/template.yaml",
        "template: 1\nid: acme/b\nversion: 1.0.0\nextends: acme/a@1\nsteps: {}\n",
    );
    session.file(
        "flow.yaml",
        "version: 1\nextends: acme/a@1\ncatalogs: [{ path: catalog }]\n",
    );
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    let text = session.normalize(&out.stderr);
    assert!(text.contains("TMP/catalog/b/template.yaml:4:10: error: cycle in `extends`: acme/a -> acme/b -> acme/a"), "{text}");
    assert!(
        text.contains("TMP/catalog/a/template.yaml:4:10: note: acme/a@1.0.0 extends `acme/b` here"),
        "{text}"
    );
}

#[test]
fn the_lock_pins_templates_refuses_changes_and_works_offline_from_the_cache() {
    let session = session_with_base("1.0.0");
    let out = session.flow(["lock", "flow.yaml"]).run();
    out.expect_success();
    assert!(
        out.stdout.contains("template acme/base@1.0.0 sha256:"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("plugin echo "), "{}", out.stdout);
    let lock = std::fs::read_to_string(session.path("flow.lock")).unwrap();
    assert!(
        lock.contains("id = \"acme/base\"") && lock.contains("[[plugin]]"),
        "{lock}"
    );
    // No machine path: the catalog directory is relative to the lock.
    assert!(lock.contains("source = \"catalog/acme/base\""), "{lock}");

    // A newer version appears: the lock keeps the pinned one.
    session.file("catalog/acme/base-1.4/template.yaml", base("1.4.0"));
    runs_and_greets(&session, "hello world 1.0.0");

    // The pinned template is changed in place: refused, by name.
    session.file(
        "catalog/acme/base/template.yaml",
        base("1.0.0").replace("bye", "ciao"),
    );
    refuses(
        &session,
        &["run", "flow.yaml"],
        &[
            "error: template acme/base@1.0.0 differs from flow.lock: locked sha256:",
            "help: review the change, then accept it with `flow update acme/base`",
        ],
    );

    // `flow update` moves the pin and shows what changed in the resolved pipeline.
    let out = session
        .flow(["update", "acme/base", "--file", "flow.yaml"])
        .run();
    out.expect_success();
    assert!(
        out.stdout.contains("template acme/base@1.4.0 sha256:"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("(was 1.0.0 sha256:"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("-       message: \"hello world 1.0.0\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("+       message: \"hello world 1.4.0\""),
        "{}",
        out.stdout
    );
    session.flow(["run", "flow.yaml"]).run().expect_success();

    // Offline: the catalog is gone, the run takes the locked template from the cache.
    std::fs::rename(session.path("catalog"), session.path("catalog-away")).unwrap();
    runs_and_greets(&session, "hello world 1.4.0");
    // Without the cache either, the error says exactly what is missing.
    std::fs::remove_dir_all(session.cache_dir().join("templates")).unwrap();
    refuses(
        &session,
        &["run", "flow.yaml"],
        &[
            "error: template acme/base@1.4.0 (sha256:",
            "is locked but cannot be read: catalog TMP/catalog is not a directory; nor is it in the cache (SESSION/",
        ],
    );
}

#[test]
fn a_plugin_that_differs_from_the_lock_is_refused() {
    let session = Session::new();
    session.plugin("misbehave");
    session.file(
        "flow.yaml",
        "version: 1\nname: p\nsteps:\n  a:\n    uses: ./misbehave.wasm\n    with: { mode: fail }\n    continue-on-error: true\n",
    );
    session.flow(["lock", "flow.yaml"]).run().expect_success();
    session.flow(["check", "flow.yaml"]).run().expect_success();
    // Another plugin under the same name.
    session.plugin("fs_probe");
    std::fs::rename(
        session.path("fs_probe.wasm"),
        session.path("misbehave.wasm"),
    )
    .unwrap();
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    let text = session.normalize(&out.stderr);
    assert!(text.contains("flow.yaml:5:11: error: plugin `./misbehave.wasm` differs from flow.lock: locked sha256:"), "{text}");
}

#[test]
fn a_catalog_that_requires_signatures_refuses_unsigned_and_wrongly_signed_templates() {
    let session = session_with_base("1.0.0");
    for name in ["trusted", "other"] {
        session
            .flow(["keys", "generate", "--out", name])
            .run()
            .expect_success();
    }
    session.file(
        "flow.yaml",
        REPO.replace(
            "catalogs: [{ path: catalog }]",
            "catalogs: [{ path: catalog, require-signatures: true, trusted-keys: [trusted/signing-key.pub] }]",
        ),
    );
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    assert!(
        out.stderr.contains(
            "error: template acme/base@1.0.0 is not signed, and its catalog requires signatures"
        ),
        "{}",
        out.stderr
    );

    let sign = |key: &str| {
        session
            .flow(["template", "sign", "catalog/acme/base", "--key", key])
            .run()
    };
    sign("other/signing-key.pem").expect_success();
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    assert!(
        out.stderr.contains("is not signed by a trusted key"),
        "{}",
        out.stderr
    );

    let signed = sign("trusted/signing-key.pem");
    signed.expect_success();
    assert!(
        signed.stdout.starts_with("signed acme/base@1.0.0 sha256:"),
        "{}",
        signed.stdout
    );
    session.flow(["check", "flow.yaml"]).run().expect_success();

    // A change after signing is refused.
    session.file("catalog/acme/base/notes.txt", "added later");
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("template acme/base@1.0.0 changed since it was signed"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_git_repository_is_a_catalog() {
    let session = Session::new();
    session.file("catalog-src/acme/base/template.yaml", base("1.2.0"));
    let src = session.path("catalog-src");
    git(&src, &["init", "-q"]);
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "templates"]);
    git(
        session.root(),
        &["clone", "-q", "--bare", "catalog-src", "catalog.git"],
    );
    session.file(
        "flow.yaml",
        REPO.replace(
            "catalogs: [{ path: catalog }]",
            "catalogs: [{ git: catalog.git, ref: main }]",
        ),
    );
    let out = session.flow(["show", "--resolved", "flow.yaml"]).run();
    out.expect_success();
    let text = session.normalize(&out.stdout);
    assert!(text.contains("hello world 1.2.0"), "{text}");
    assert!(text.contains("(git+file://TMP/catalog.git@"), "{text}");
    session.flow(["run", "flow.yaml"]).run().expect_success();
}

#[test]
fn the_organisation_config_binds_interfaces_and_the_repository_may_override_unsealed_ones() {
    let session = session_with_base("1.0.0");
    // The template seals `uses` of `last`; a second, unsealed interface step shows overriding.
    let template = base("1.0.0").replace(
        "    needs: [middle]\n    with: { message: \"bye\" }\n",
        "    needs: [middle]\n    with: { message: \"bye\" }\n  extra:\n    uses: interface:greet\n    needs: [first]\n    with: { message: x }\n",
    );
    session.file("catalog/acme/base/template.yaml", template);
    session.file("org.yaml", "bindings:\n  greet: echo@^9\n");
    let out = session
        .flow(["check", "flow.yaml"])
        .env("FLOW_ORG_CONFIG", session.path("org.yaml"))
        .run();
    out.expect_code(2);
    let text = session.normalize(&out.stderr);
    assert!(
        text.contains("TMP/org.yaml:2:10: error: plugin `echo` is version"),
        "{text}"
    );
    assert!(text.contains("which does not match `^9`"), "{text}");
    session.file("org.yaml", "bindings:\n  greet: echo\n");
    session
        .flow(["check", "flow.yaml"])
        .env("FLOW_ORG_CONFIG", session.path("org.yaml"))
        .run()
        .expect_success();
}

#[test]
fn the_bundled_rust_service_template_runs_and_its_provenance_verifies() {
    let Some(root) = repo_root() else {
        eprintln!("skipped: not in a git clone of flow");
        return;
    };
    let session = Session::new();
    let file = root.join("templates/examples/rust-service/flow.yaml");
    let file = file.to_str().unwrap();
    let key = session.release_key();
    let data = session.data_dir();
    let out = session
        .flow(["run", file])
        .with_toolchain()
        .env("FLOW_RELEASE_KEY", &key)
        .env("FLOW_DATA_DIR", &data)
        .run();
    out.expect_success();
    let (show, _) = session.last_run();
    let ids: Vec<&str> = show["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "checkout",
            "compile",
            "unit-tests",
            "scan",
            "sign",
            "publish"
        ]
    );
    session.flow(["verify", "last"]).run().expect_success();
    // The organisation's release policy holds for it: every sealed step of
    // acme/secure-release ran, sealed, and publish came after scan and sign.
    let policy = root.join("templates/acme/release-policy.yaml");
    let out = session
        .flow(["verify", "last", "--policy", policy.to_str().unwrap()])
        .run();
    out.expect_success();
    for line in [
        "  ok    declared  template acme/secure-release@1.1.0 (sha256 ",
        ") seals steps: checkout, scan, sign, publish",
        "  ok    required  `scan` ran in sealed step `scan` (plugin scan sha256:",
        "  ok    required  `sign` ran in sealed step `sign` (plugin sign sha256:",
        "  ok    before    step `publish` (plugin publish sha256:",
    ] {
        assert!(
            out.stdout.contains(line),
            "`{line}` is not in:\n{}",
            out.stdout
        );
    }
    let minimal = root.join("templates/examples/minimal/flow.yaml");
    session
        .flow(["run", minimal.to_str().unwrap()])
        .with_toolchain()
        .run()
        .expect_success();
}

/// A gate template: a sealed `check` (interface `check`) before the open slot
/// `work`, then a `ship` step (interface `ship`) after it. Both interfaces are
/// bound to `echo`; the policy tells steps apart by interface.
const GATE: &str = r#"template: 1
id: acme/gate
version: 1.0.0
name: gated
interfaces:
  check: { params: { message: { type: string } }, outputs: [message] }
  ship: { params: { message: { type: string } }, outputs: [message] }
bindings: { check: echo, ship: echo }
slots:
  work: { needs: [check] }
steps:
  check:
    sealed: true
    uses: interface:check
    with: { message: checked }
  ship:
    sealed: [uses, needs]
    uses: interface:ship
    needs: [work]
    with: { message: shipped }
"#;

/// A later version that no longer seals `check`, so a repository may remove it.
const GATE_1_1: &str = r#"template: 1
id: acme/gate
version: 1.1.0
name: gated
interfaces:
  check: { params: { message: { type: string } }, outputs: [message] }
  ship: { params: { message: { type: string } }, outputs: [message] }
bindings: { check: echo, ship: echo }
steps:
  check:
    uses: interface:check
    with: { message: checked }
  ship:
    sealed: [uses]
    uses: interface:ship
    with: { message: shipped }
"#;

const GATE_POLICY: &str =
    "policy: 1\ntemplate: acme/gate\nversions: ^1\nrequire: [check]\nbefore: [ship]\n";

/// `flow verify last --policy <policy> [extra]` fails with exit 1, printing each of `expected`.
#[track_caller]
fn policy_fails(session: &Session, policy: &str, extra: &[&str], expected: &[&str]) {
    let mut args = vec!["verify", "last", "--policy", policy];
    args.extend_from_slice(extra);
    let out = session.flow(args).run();
    out.expect_code(1);
    let text = session.normalize(&out.stdout);
    for line in expected {
        assert!(text.contains(line), "`{line}` is not in:\n{text}");
    }
    assert!(text.contains(&format!("policy {policy}: FAILED")), "{text}");
}

#[test]
fn verify_policy_checks_the_template_its_sealed_steps_and_their_order() {
    let session = Session::new();
    session.file("catalog/gate-1.0/template.yaml", GATE);
    session.file("catalog/gate-1.1/template.yaml", GATE_1_1);
    session.file(
        "flow.yaml",
        "version: 1\nextends: acme/gate@=1.0.0\ncatalogs: [{ path: catalog }]\nfill:\n  work:\n    build: { uses: echo, with: { message: built } }\n",
    );
    session.file("policy.yaml", GATE_POLICY);
    session.flow(["run", "flow.yaml"]).run().expect_success();

    // Each step's statement records the chain and where the step came from.
    let sha = |dir: &str| {
        let out = session.flow(["template", "digest", dir]).run();
        out.expect_success();
        // `acme/gate@1.0.0 sha256:<hex>`
        let (_, hex) = out.stdout.trim().split_once(" sha256:").unwrap();
        hex.to_owned()
    };
    let gate = sha("catalog/gate-1.0");
    let check = session.statement("check");
    let build = &check["predicate"]["buildDefinition"];
    assert_eq!(
        build["internalParameters"]["template"],
        serde_json::json!({
            "chain": [{ "id": "acme/gate", "version": "1.0.0", "sha256": gate }],
            "declaredBy": "acme/gate@1.0.0",
            "sealed": true,
            "slot": null,
            "interface": "check",
        })
    );
    assert!(
        build["resolvedDependencies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["uri"] == "flow-template:acme/gate@1.0.0" && d["digest"]["sha256"] == gate),
        "{build:#}"
    );
    let shown = session.flow(["attest", "show", "last", "build"]).run();
    shown.expect_success();
    assert!(
        shown.stdout.contains(&format!(
            "  template   fills slot `work`, from the pipeline file; chain acme/gate@1.0.0 (sha256 {gate})"
        )),
        "{}",
        shown.stdout
    );

    // The conforming run passes, every check shown.
    let out = session
        .flow(["verify", "last", "--policy", "policy.yaml"])
        .run();
    out.expect_success();
    let text = session.normalize(&out.stdout);
    for line in [
        format!(
            "  ok    template  run RUN was resolved from template acme/gate@1.0.0 (sha256 {gate})"
        ),
        format!(
            "  ok    declared  template acme/gate@1.0.0 (sha256 {gate}) seals steps: check, ship"
        ),
        "  ok    required  `check` ran in sealed step `check` (plugin echo sha256:".into(),
        "policy policy.yaml: passed (6 checks)".into(),
    ] {
        assert!(text.contains(&line), "`{line}` is not in:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("  ok    before    step `ship`")),
        "{text}"
    );

    // A plugin digest the policy does not approve.
    let zeros = "0".repeat(64);
    session.file(
        "pinned.yaml",
        format!("{GATE_POLICY}approved-plugins: {{ check: [sha256:{zeros}] }}\n"),
    );
    policy_fails(
        &session,
        "pinned.yaml",
        &[],
        &[
            "  FAIL  approved  sealed step `check` (plugin echo sha256:",
            &format!("runs a `check` that is not approved (approved: sha256:{zeros})"),
        ],
    );

    // The template is read from the cache by digest; without it, from a directory
    // given with --template-dir whose digest is the recorded one.
    std::fs::remove_dir_all(session.cache_dir().join("templates")).unwrap();
    policy_fails(
        &session,
        "policy.yaml",
        &[],
        &[&format!(
            "  FAIL  declared  template acme/gate@1.0.0 (sha256 {gate}) is missing: it is not in the template cache (SESSION/cache/templates/{gate})"
        )],
    );
    policy_fails(
        &session,
        "policy.yaml",
        &["--template-dir", "catalog/gate-1.1"],
        &["no --template-dir of the 1 given has it"],
    );
    session
        .flow([
            "verify",
            "last",
            "--policy",
            "policy.yaml",
            "--template-dir",
            "catalog/gate-1.0",
        ])
        .run()
        .expect_success();

    // A later version that no longer seals the gate: the repository removed it, and
    // the policy's `require` catches what the template no longer says.
    session.file(
        "rogue.yaml",
        "version: 1\nextends: acme/gate@=1.1.0\ncatalogs: [{ path: catalog }]\nsteps:\n  check: { remove: true }\n",
    );
    session.flow(["run", "rogue.yaml"]).run().expect_success();
    policy_fails(
        &session,
        "policy.yaml",
        &[],
        &[
            "  FAIL  required  `check` is required, but no sealed step of acme/gate@1.1.0 runs it in run RUN",
        ],
    );

    // A run not resolved from the template at all.
    session.file(
        "plain.yaml",
        "version: 1\nname: plain\nsteps:\n  ship: { uses: echo, with: { message: shipped } }\n",
    );
    session.flow(["run", "plain.yaml"]).run().expect_success();
    policy_fails(
        &session,
        "policy.yaml",
        &[],
        &[
            "  FAIL  template  run RUN was not resolved from template acme/gate: its steps record no template chain",
        ],
    );

    // A policy with a mistake is invalid input, at its line.
    session.file(
        "typo.yaml",
        "policy: 1\ntemplate: acme/gate\nbefor: [ship]\n",
    );
    let out = session
        .flow(["verify", "last", "--policy", "typo.yaml"])
        .run();
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("typo.yaml:3:1: error: unknown key `befor` in the policy"),
        "{}",
        out.stderr
    );
}

#[test]
fn sealed_keys_cannot_be_granted_by_the_levels_below() {
    let session = Session::new();
    session.file(
        "catalog/signer/template.yaml",
        r#"template: 1
id: acme/signer
version: 1.0.0
name: signer
keys: { release: { file: release.pem } }
sealed: [keys]
slots:
  work: {}
steps:
  sign:
    sealed: [uses]
    uses: sign
    needs: [work]
    grants: { keys: [release] }
    with: { files: out.txt, key: release }
"#,
    );
    // A repository step of its own, and the inherited step granted again.
    session.file(
        "flow.yaml",
        r#"version: 1
extends: acme/signer@1
catalogs: [{ path: catalog }]
fill:
  work:
    mine:
      uses: sign
      grants: { keys: [release] }
      with: { files: other.txt, key: release }
steps:
  sign:
    grants: { keys: [release] }
"#,
    );
    refuses(
        &session,
        &["check", "flow.yaml"],
        &[
            "flow.yaml:8:24: error: step `mine` cannot be granted key `release`: the keys are sealed by acme/signer@1.0.0",
            "flow.yaml:12:22: error: step `sign` cannot be granted key `release`: the keys are sealed by acme/signer@1.0.0",
            "TMP/catalog/signer/template.yaml:6:10: note: sealed by acme/signer@1.0.0 here",
        ],
    );
    // Without those grants the same repository is fine.
    session.file(
        "flow.yaml",
        "version: 1\nextends: acme/signer@1\ncatalogs: [{ path: catalog }]\nfill:\n  work:\n    mine: { uses: echo, with: { message: hi } }\n",
    );
    let out = session.flow(["show", "--resolved", "flow.yaml"]).run();
    out.expect_success();
}

const RETRYING: &str = r#"template: 1
id: acme/retrying
version: 1.0.0
name: retrying
steps:
  fetch:
    sealed: [retry]
    uses: echo
    retry: { attempts: 3, backoff: 2s, on: [timeout] }
    with: { message: fetch }
  deploy:
    uses: echo
    retry: 2
    with: { message: deploy }
"#;

#[test]
fn a_template_s_retries_are_kept_changed_where_allowed_and_sealed_where_not() {
    let session = Session::new();
    session.file("catalog/acme/retrying/template.yaml", RETRYING);
    session.file(
        "flow.yaml",
        "version: 1\nextends: acme/retrying@^1\ncatalogs: [{ path: catalog }]\nsteps:\n  deploy:\n    retry: { attempts: 5, backoff: 0s }\n",
    );
    let out = session.flow(["show", "--resolved", "flow.yaml"]).run();
    out.expect_success();
    let text = session.normalize(&out.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("retry:")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("    retry: { attempts: 3, backoff: <dur>, on: [timeout] }")
            && lines[0].ends_with("# TMP/catalog/acme/retrying/template.yaml:9"),
        "{text}"
    );
    assert!(
        lines[1]
            .starts_with("    retry: { attempts: 5, backoff: <dur>, on: [failed, trap, timeout] }")
            && lines[1].ends_with("# flow.yaml:6"),
        "{text}"
    );
    session.flow(["run", "flow.yaml"]).run().expect_success();

    session.file(
        "flow.yaml",
        "version: 1\nextends: acme/retrying@^1\ncatalogs: [{ path: catalog }]\nsteps:\n  fetch:\n    retry: 1\n",
    );
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    assert!(
        session.normalize(&out.stderr).contains(
            "flow.yaml:6:5: error: step `fetch` is sealed by acme/retrying@1.0.0: `retry` cannot be changed"
        ),
        "{}",
        out.stderr
    );
}
