//! The policy's reader and evaluation, on small runs built here.

use super::*;

use std::collections::BTreeMap;
use std::path::Path;

use flow_pipeline::{Diagnostics, SourceFile};
use flow_provenance::{Outcome, TemplateOrigin, TemplateRef};

use crate::catalog::{TEMPLATE_FILE, cached_template_dir, template_digest};

const SCAN: &str = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c";
const OTHER: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f";

fn parse(text: &str) -> Result<Policy, Diagnostics> {
    Policy::parse(&SourceFile::new("policy.yaml", text))
}

fn errors(text: &str) -> String {
    parse(text).expect_err("invalid").render()
}

#[test]
fn reads_a_policy() {
    let policy = parse(&format!(
        "policy: 1\ntemplate: acme/secure-release\nversions: ^1\napproved-plugins:\n  scan: [sha256:{SCAN}, {}]\nrequire: [scan, sign]\nbefore: [publish, upload]\n",
        OTHER.to_ascii_uppercase()
    ))
    .expect("valid");
    assert_eq!(policy.template, "acme/secure-release");
    assert_eq!(
        policy.versions,
        Some(semver::VersionReq::parse("^1").expect("req"))
    );
    assert_eq!(
        policy.approved_plugins,
        [("scan".to_owned(), vec![SCAN.to_owned(), OTHER.to_owned()])]
            .into_iter()
            .collect()
    );
    assert_eq!(policy.require, ["scan", "sign"]);
    assert_eq!(policy.before, ["publish", "upload"]);

    let minimal = parse("policy: 1\ntemplate: acme/x\n").expect("valid");
    assert_eq!(minimal.versions, None);
    assert!(
        minimal.approved_plugins.is_empty()
            && minimal.require.is_empty()
            && minimal.before.is_empty()
    );
    // A bare number is a requirement, as written.
    let numeric = parse("policy: 1\ntemplate: acme/x\nversions: 1.2\n").expect("valid");
    assert_eq!(
        numeric.versions,
        Some(semver::VersionReq::parse("1.2").expect("req"))
    );
}

#[test]
fn reports_every_problem_at_its_place() {
    let text = errors(
        "policy: 2\ntemplate: Acme/x\nversions: \">>1\"\naproved-plugins: {}\napproved-plugins:\n  scan: [sha256:abc, 12]\n  \"scan@1\": [x]\n  sign: []\nbefore: publish\n",
    );
    for expected in [
        "policy.yaml:1:9: error: policy format 2 is not supported",
        "policy.yaml:2:11: error: `Acme/x` is not a template id",
        "policy.yaml:3:11: error: `>>1` is not a semver requirement",
        "policy.yaml:4:1: error: unknown key `aproved-plugins` in the policy",
        "did you mean `approved-plugins`?",
        "policy.yaml:6:10: error: `sha256:abc` is not a sha256 digest",
        "policy.yaml:6:22: error: a digest must be a string, found an integer",
        "policy.yaml:7:3: error: `scan@1` is not a plugin name",
        "policy.yaml:8:9: error: no digest is approved for `sign`",
        "policy.yaml:9:9: error: `before` must be a list of plugin names, found a string",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn truncated_and_mangled_policies_never_panic() {
    let text = format!(
        "policy: 1\ntemplate: acme/secure-release\nversions: \"^1, <3\"\napproved-plugins:\n  scan: [sha256:{SCAN}]\nrequire: [scan, sign]\nbefore: [publish]\n"
    );
    let cuts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    for &cut in &cuts {
        let _ = parse(&text[..cut]).map_err(|d| d.render());
        for fragment in ["[", "{", ":", "- ", "\"", "\t", "&a ", "*a", "é", "\n  "] {
            let mangled = format!("{}{fragment}{}", &text[..cut], &text[cut..]);
            let _ = parse(&mangled).map_err(|d| d.render());
        }
    }
}

#[test]
fn refuses_files_that_are_not_policies() {
    assert!(errors("").contains("policy.yaml:1:1: error: the policy file is empty"));
    assert!(errors("- a\n").contains("a policy must be a mapping, found a list"));
    let missing = errors("versions: ^1\n");
    assert!(missing.contains("the policy has no `policy` key"));
    assert!(missing.contains("the policy has no `template` key"));
    assert!(errors("policy: one\ntemplate: acme/x\n").contains("`policy` must be the integer 1"));
    assert!(errors("policy: 1\ntemplate: [acme/x]\n").contains("policy.yaml:2:11"));
    assert!(errors("policy: 1\ntemplate: acme/x\nversions: true\n").contains("policy.yaml:3:11"));
    assert!(
        errors("policy: 1\ntemplate: acme/x\napproved-plugins: [scan]\n")
            .contains("policy.yaml:3:19")
    );
    assert!(
        errors("policy: 1\ntemplate: acme/x\napproved-plugins: { scan: x }\n")
            .contains("must be a list")
    );
    // Duplicate keys, from the YAML reader.
    assert!(errors("policy: 1\ntemplate: acme/x\ntemplate: acme/y\n").contains("policy.yaml:3:1"));
    // YAML syntax.
    assert!(errors("policy: [1\n").contains("policy.yaml:"));
}

fn chain() -> Vec<TemplateRef> {
    vec![
        TemplateRef {
            id: "acme/secure-release".into(),
            version: "1.2.0".into(),
            sha256: "aa".repeat(32),
        },
        TemplateRef {
            id: "acme/base".into(),
            version: "2.0.0".into(),
            sha256: "bb".repeat(32),
        },
    ]
}

fn step(
    id: &str,
    plugin: &str,
    declared_by: Option<&str>,
    sealed: bool,
    times: (u64, u64),
    needs: &[&str],
) -> StepFact {
    StepFact {
        id: id.into(),
        plugin: plugin.into(),
        plugin_sha256: if plugin == "scan" {
            SCAN.into()
        } else {
            OTHER.into()
        },
        outcome: Outcome::Succeeded,
        started_ms: times.0,
        finished_ms: times.1,
        needs: needs.iter().map(|n| (*n).to_owned()).collect(),
        template: Some(TemplateOrigin {
            chain: chain(),
            declared_by: declared_by.map(str::to_owned),
            interface: None,
            sealed,
            slot: None,
        }),
    }
}

/// checkout (sealed by acme/base) -> build (the repository's) -> scan, sign (sealed by
/// acme/secure-release) -> publish.
fn run() -> RunFacts {
    let release = Some("acme/secure-release@1.2.0");
    RunFacts {
        run_id: "r1".into(),
        steps: vec![
            step(
                "checkout",
                "checkout",
                Some("acme/base@2.0.0"),
                true,
                (0, 10),
                &[],
            ),
            step("build", "build", None, false, (10, 20), &["checkout"]),
            step("scan", "scan", release, true, (20, 30), &["build"]),
            step("sign", "sign", release, true, (30, 40), &["scan"]),
            step("publish", "publish", release, false, (41, 50), &["sign"]),
        ],
    }
}

fn policy() -> Policy {
    parse(&format!(
        "policy: 1\ntemplate: acme/secure-release\nversions: ^1\napproved-plugins: {{ scan: [sha256:{SCAN}] }}\nbefore: [publish]\n"
    ))
    .expect("valid")
}

fn sealed(template: &TemplateRef) -> Result<Vec<String>, String> {
    match template.id.as_str() {
        "acme/secure-release" => Ok(vec!["scan".into(), "sign".into()]),
        "acme/base" => Ok(vec!["checkout".into()]),
        other => Err(format!("unexpected template {other}")),
    }
}

fn failures(evaluation: &Evaluation) -> Vec<String> {
    evaluation
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.message.clone())
        .collect()
}

#[test]
fn a_conforming_run_passes_every_check() {
    let evaluation = evaluate(&policy(), &run(), &mut sealed);
    assert!(evaluation.passed(), "{:#?}", evaluation.checks);
    let rules: Vec<(Rule, Option<&str>)> = evaluation
        .checks
        .iter()
        .map(|c| (c.rule, c.step.as_deref()))
        .collect();
    assert_eq!(
        rules,
        [
            (Rule::Template, None),
            (Rule::Declaration, None),
            (Rule::Declaration, None),
            (Rule::Sealed, Some("scan")),
            (Rule::Approved, Some("scan")),
            (Rule::Sealed, Some("sign")),
            (Rule::Sealed, Some("checkout")),
            (Rule::Before, Some("publish")),
        ]
    );
    let shown = evaluation.checks[4].to_string();
    assert!(shown.starts_with("ok    approved  "), "{shown}");
    assert!(shown.contains(&format!("sha256:{SCAN}")), "{shown}");
}

#[test]
fn the_run_must_come_from_the_template_at_an_accepted_version() {
    let mut other = policy();
    other.template = "acme/other".into();
    let evaluation = evaluate(&other, &run(), &mut sealed);
    assert_eq!(
        failures(&evaluation),
        [
            "run r1 was not resolved from template acme/other: its template chain is acme/secure-release@1.2.0 extends acme/base@2.0.0"
        ]
    );

    let mut newer = policy();
    newer.versions = Some(semver::VersionReq::parse("^2").expect("req"));
    let failed = failures(&evaluate(&newer, &run(), &mut sealed));
    assert_eq!(failed.len(), 1);
    assert!(failed[0].starts_with("run r1 was not resolved from template acme/secure-release at versions ^2: it was resolved from acme/secure-release@1.2.0"), "{failed:?}");

    // A parent template of the chain is a template the run came from.
    let mut base = policy();
    base.template = "acme/base".into();
    base.versions = None;
    let evaluation = evaluate(&base, &run(), &mut sealed);
    assert!(evaluation.passed(), "{:#?}", evaluation.checks);
    // ...whose sealed steps are its own only.
    assert_eq!(
        evaluation
            .checks
            .iter()
            .filter(|c| c.rule == Rule::Sealed)
            .count(),
        1
    );

    let mut plain = run();
    for step in &mut plain.steps {
        step.template = None;
    }
    assert_eq!(
        failures(&evaluate(&policy(), &plain, &mut sealed)),
        [
            "run r1 was not resolved from template acme/secure-release: its steps record no template chain"
        ]
    );
    let mut mixed = run();
    mixed.steps[1].template = None;
    assert_eq!(
        failures(&evaluate(&policy(), &mixed, &mut sealed)),
        [
            "run r1 was not resolved from template acme/secure-release alone: steps `build` record no template chain"
        ]
    );
    let mut differing = run();
    if let Some(t) = &mut differing.steps[3].template {
        t.chain[0].sha256 = "cc".repeat(32);
    }
    let failed = failures(&evaluate(&policy(), &differing, &mut sealed));
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].contains("record different template chains"),
        "{failed:?}"
    );
    assert!(
        failures(&evaluate(&policy(), &RunFacts::default(), &mut sealed))[0]
            .contains("record no template chain")
    );
}

#[test]
fn sealed_steps_must_be_recorded_as_such_and_succeed() {
    let mut failed = run();
    failed.steps[3].outcome = Outcome::Failed;
    assert_eq!(
        failures(&evaluate(&policy(), &failed, &mut sealed)),
        [format!(
            "sealed step `sign` (plugin sign sha256:{OTHER}) of acme/secure-release@1.2.0 did not succeed: failed"
        )]
    );

    let mut missing = run();
    missing.steps.remove(0);
    assert_eq!(
        failures(&evaluate(&policy(), &missing, &mut sealed)),
        ["sealed step `checkout` of acme/base@2.0.0 has no record in run r1"]
    );

    let mut unsealed = run();
    if let Some(t) = &mut unsealed.steps[2].template {
        t.sealed = false;
        t.declared_by = None;
    }
    assert_eq!(
        failures(&evaluate(&policy(), &unsealed, &mut sealed)),
        [format!(
            "step `scan` (plugin scan sha256:{SCAN}) is recorded as declared by the pipeline file and not sealed, but acme/secure-release@1.2.0 declares it sealed"
        )]
    );
}

#[test]
fn required_plugins_must_run_in_sealed_steps_that_succeed() {
    let mut strict = policy();
    strict.require = vec!["scan".into(), "sign".into()];
    let evaluation = evaluate(&strict, &run(), &mut sealed);
    assert!(evaluation.passed(), "{:#?}", evaluation.checks);
    let required: Vec<&str> = evaluation
        .checks
        .iter()
        .filter(|c| c.rule == Rule::Required)
        .map(|c| c.message.as_str())
        .collect();
    assert_eq!(
        required,
        [
            format!("`scan` ran in sealed step `scan` (plugin scan sha256:{SCAN})"),
            format!("`sign` ran in sealed step `sign` (plugin sign sha256:{OTHER})"),
        ]
    );

    // A template version that no longer seals `scan`: the run may skip it, and the
    // policy's own list still catches it.
    let unsealing = |t: &TemplateRef| match t.id.as_str() {
        "acme/secure-release" => Ok(vec!["sign".into()]),
        _ => sealed(t),
    };
    assert_eq!(
        failures(&evaluate(&strict, &run(), &mut { unsealing })),
        ["`scan` is required, but no sealed step of acme/secure-release@1.2.0 runs it in run r1"]
    );

    let mut failed = run();
    failed.steps[3].outcome = Outcome::Failed;
    let failed = failures(&evaluate(&strict, &failed, &mut sealed));
    assert!(
        failed.contains(&format!(
            "`sign` is required, but sealed step `sign` (plugin sign sha256:{OTHER}) did not run it to success"
        )),
        "{failed:?}"
    );
}

#[test]
fn sealed_steps_must_run_approved_plugins() {
    let mut swapped = run();
    swapped.steps[2].plugin_sha256 = OTHER.into();
    assert_eq!(
        failures(&evaluate(&policy(), &swapped, &mut sealed)),
        [format!(
            "sealed step `scan` (plugin scan sha256:{OTHER}) runs a `scan` that is not approved (approved: sha256:{SCAN})"
        )]
    );

    // By the plugin's name however it is referenced, or by the interface it implements.
    for (plugin, interface) in [
        (format!("scan@sha256:{OTHER}"), None),
        ("./plugins/scan.wasm".to_owned(), None),
        ("grype".to_owned(), Some("scan")),
    ] {
        let mut run = swapped.clone();
        run.steps[2].plugin = plugin.clone();
        if let Some(t) = &mut run.steps[2].template {
            t.interface = interface.map(str::to_owned);
        }
        let evaluation = evaluate(&policy(), &run, &mut sealed);
        assert_eq!(
            evaluation.failures(),
            1,
            "{plugin}: {:#?}",
            evaluation.checks
        );
        assert!(
            evaluation
                .checks
                .iter()
                .any(|c| c.rule == Rule::Approved && !c.ok)
        );
    }
    // A plugin the policy does not list may have any digest.
    let mut unlisted = run();
    unlisted.steps[2].plugin = "grype".into();
    unlisted.steps[2].plugin_sha256 = OTHER.into();
    assert!(evaluate(&policy(), &unlisted, &mut sealed).passed());
}

#[test]
fn before_steps_start_after_every_sealed_step_finished() {
    let mut early = run();
    early.steps[4].started_ms = 35;
    early.steps[4].needs = vec!["scan".into()];
    assert_eq!(
        failures(&evaluate(&policy(), &early, &mut sealed)),
        [format!(
            "step `publish` (plugin publish sha256:{OTHER}) started at 35, before sealed step `sign` finished at 40"
        )]
    );

    // The same millisecond proves nothing, unless it needs the step (here through sign).
    let mut same = run();
    same.steps[4].started_ms = 40;
    assert!(evaluate(&policy(), &same, &mut sealed).passed());
    same.steps[4].started_ms = 30;
    same.steps[3].finished_ms = 29;
    assert!(evaluate(&policy(), &same, &mut sealed).passed());
    same.steps[4].needs = vec!["build".into()];
    assert_eq!(
        failures(&evaluate(&policy(), &same, &mut sealed)),
        [format!(
            "step `publish` (plugin publish sha256:{OTHER}) started in the millisecond sealed step `scan` finished (30) and does not need it: its order cannot be proven"
        )]
    );

    // A step that did not run published nothing.
    let mut skipped = early.clone();
    skipped.steps[4].outcome = Outcome::Skipped;
    let evaluation = evaluate(&policy(), &skipped, &mut sealed);
    assert!(evaluation.passed(), "{:#?}", evaluation.checks);
    assert!(
        evaluation
            .checks
            .last()
            .is_some_and(|c| c.message.ends_with("did not run"))
    );

    // Every step of the plugin counts, wherever it came from.
    let mut extra = run();
    let mut upload = step("upload", "publish", None, false, (15, 16), &["build"]);
    upload.template = extra.steps[0].template.clone();
    if let Some(t) = &mut upload.template {
        t.declared_by = None;
        t.sealed = false;
    }
    extra.steps.push(upload);
    let failed = failures(&evaluate(&policy(), &extra, &mut sealed));
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed.iter().all(|f| f.starts_with("step `upload`")));
}

#[test]
fn sealed_before_steps_need_not_precede_before_steps() {
    let mut sealed_publish = run();
    if let Some(t) = &mut sealed_publish.steps[4].template {
        t.sealed = true;
    }
    sealed_publish
        .steps
        .push(step("mirror", "publish", None, false, (45, 49), &["sign"]));
    if let Some(t) = &mut sealed_publish.steps[5].template {
        t.declared_by = None;
    }
    let mut with_publish = |t: &TemplateRef| {
        sealed(t).map(|mut ids| {
            if t.id == "acme/secure-release" {
                ids.push("publish".into());
            }
            ids
        })
    };
    let evaluation = evaluate(&policy(), &sealed_publish, &mut with_publish);
    assert!(evaluation.passed(), "{:#?}", evaluation.checks);
    // It must still succeed and follow the other sealed steps.
    sealed_publish.steps[4].started_ms = 39;
    assert_eq!(
        failures(&evaluate(&policy(), &sealed_publish, &mut with_publish)).len(),
        1
    );
}

#[test]
fn a_template_that_cannot_be_read_fails() {
    let mut missing = |t: &TemplateRef| {
        if t.id == "acme/base" {
            Err(format!(
                "template {} (sha256 {}) is missing",
                t.name(),
                t.sha256
            ))
        } else {
            sealed(t)
        }
    };
    let evaluation = evaluate(&policy(), &run(), &mut missing);
    assert_eq!(
        failures(&evaluation),
        [format!(
            "template acme/base@2.0.0 (sha256 {}) is missing",
            "bb".repeat(32)
        )]
    );
}

#[test]
fn plugin_names() {
    let mut s = step("x", "scan", None, false, (0, 0), &[]);
    for (reference, name) in [
        ("scan", "scan"),
        ("scan@1", "scan"),
        ("scan@sha256:abcd", "scan"),
        ("./plugins/grype.wasm", "grype"),
        ("plugins/v@2/grype.wasm@sha256:abcd", "grype"),
        ("/abs/thing", "thing"),
    ] {
        s.plugin = reference.into();
        assert_eq!(s.plugin_name(), name, "{reference}");
    }
}

#[test]
fn reads_the_run_from_signed_statements() {
    let key = flow_provenance::SigningKey::from_seed(&[7; 32]);
    let origin = TemplateOrigin {
        chain: chain(),
        declared_by: Some("acme/secure-release@1.2.0".into()),
        interface: Some("scan".into()),
        sealed: true,
        slot: None,
    };
    let evidence = flow_provenance::StepEvidence {
        run_id: "r9".into(),
        step_id: "scan".into(),
        pipeline_name: "release".into(),
        pipeline_file: "flow.yaml".into(),
        pipeline_sha256: "11".repeat(32),
        plugin: "grype@1".into(),
        plugin_sha256: SCAN.into(),
        params: serde_json::json!({}),
        grants: serde_json::json!({}),
        started_unix_ms: 1_700_000_000_123,
        finished_unix_ms: 1_700_000_001_456,
        outcome: Outcome::Succeeded,
        failure_reason: None,
        engine_name: "flow".into(),
        engine_version: "0.1.0".into(),
        materials: BTreeMap::new(),
        products: BTreeMap::new(),
        needs: vec!["build".into()],
        notes: vec![],
        dependencies: chain().iter().map(TemplateRef::dependency).collect(),
        commands: vec![],
        template: Some(origin.clone()),
    };
    let signed = flow_provenance::attest_step(&evidence, &key).expect("attest");
    let mut plain = evidence.clone();
    plain.step_id = "build".into();
    plain.template = None;
    plain.dependencies.clear();
    let plain = flow_provenance::attest_step(&plain, &key).expect("attest");
    let facts = RunFacts::from_statements([
        ("scan", signed.statement.payload.as_slice()),
        ("build", plain.statement.payload.as_slice()),
    ])
    .expect("facts");
    assert_eq!(facts.run_id, "r9");
    assert_eq!(
        facts.steps[0],
        StepFact {
            id: "scan".into(),
            plugin: "grype@1".into(),
            plugin_sha256: SCAN.into(),
            outcome: Outcome::Succeeded,
            started_ms: 1_700_000_000_123,
            finished_ms: 1_700_000_001_456,
            needs: vec!["build".into()],
            template: Some(origin),
        }
    );
    assert!(facts.steps[0].is_named("scan") && facts.steps[0].is_named("grype"));
    assert_eq!(facts.steps[1].template, None);

    let mismatch = RunFacts::from_statements([("sign", signed.statement.payload.as_slice())]);
    assert_eq!(
        mismatch,
        Err("the statement of step `sign` is about step `scan`".into())
    );
    assert!(RunFacts::from_statements([("scan", b"{}".as_slice())]).is_err());
}

fn write_template(dir: &Path, id: &str, version: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(
        dir.join(TEMPLATE_FILE),
        format!("template: 1\nid: {id}\nversion: {version}\nsteps:\n  scan: {{ sealed: true, uses: scan }}\n"),
    )
    .expect("write");
}

#[test]
fn finds_templates_by_digest() {
    let root = tempfile::tempdir().expect("tempdir");
    let given = root.path().join("given");
    write_template(&given, "acme/secure-release", "1.2.0");
    let sha256 = template_digest(&given).expect("digest");
    let template = TemplateRef {
        id: "acme/secure-release".into(),
        version: "1.2.0".into(),
        sha256: sha256.clone(),
    };

    let locator = TemplateLocator::new(None, std::slice::from_ref(&given)).expect("locator");
    let (dir, found) = locator.find(&template).expect("found");
    assert_eq!(dir, given);
    assert_eq!(found.sealed_steps, ["scan"]);

    // Missing: the error names the template, its digest and where it was looked for.
    let cache = root.path().join("cache");
    let error = TemplateLocator::new(Some(cache.clone()), &[])
        .expect("locator")
        .find(&template)
        .expect_err("missing");
    assert!(
        error.contains(&format!(
            "template acme/secure-release@1.2.0 (sha256 {sha256}) is missing"
        )),
        "{error}"
    );
    assert!(
        error.contains(&cached_template_dir(&cache, &sha256).display().to_string()),
        "{error}"
    );

    // In the cache.
    let cached = cached_template_dir(&cache, &sha256);
    write_template(&cached, "acme/secure-release", "1.2.0");
    let locator = TemplateLocator::new(Some(cache.clone()), &[]).expect("locator");
    assert_eq!(locator.find(&template).expect("cached").0, cached);
    // A cached copy that changed is refused.
    std::fs::write(cached.join("extra"), "x").expect("write");
    assert!(
        locator
            .find(&template)
            .expect_err("changed")
            .contains("the cache was changed")
    );

    // A directory whose digest matches but which declares another template.
    let liar = root.path().join("liar");
    write_template(&liar, "acme/other", "1.2.0");
    let liar_ref = TemplateRef {
        sha256: template_digest(&liar).expect("digest"),
        ..template.clone()
    };
    let error = TemplateLocator::new(None, &[liar])
        .expect("locator")
        .find(&liar_ref)
        .expect_err("another template");
    assert!(error.contains("declares acme/other@1.2.0"), "{error}");

    // A recorded digest is never used as a path unless it is one.
    let traversal = TemplateRef {
        sha256: "../../etc".into(),
        ..template
    };
    assert!(
        locator
            .find(&traversal)
            .expect_err("bad")
            .contains("is not a sha256")
    );
    assert!(TemplateLocator::new(None, &[root.path().join("nothing")]).is_err());
}
