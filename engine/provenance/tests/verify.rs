//! `verify` on a real export: it passes, and every tamper is named precisely.

mod common;

use common::{Tamper, copy_dir, demo, find, read_envelope, write_envelope};
use flow_provenance::DsseError;
use flow_provenance::keys::load_public_key;
use flow_provenance::verify::{Bundle, Failure, VerifyOptions, verify};

fn check_dir(dir: &std::path::Path) -> flow_provenance::Report {
    verify(
        &Bundle::read_dir(dir).expect("readable export"),
        &VerifyOptions::default(),
    )
}

#[test]
fn a_real_run_verifies_from_memory_and_from_disk() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let demo = demo::build(tmp.path()).expect("demo");
    let report = verify(&demo.bundle, &VerifyOptions::default());
    assert!(report.is_ok(), "{:#?}", report.failures);
    let outcomes: Vec<_> = report
        .steps
        .iter()
        .map(|s| (s.step.as_str(), s.outcome.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("a", Some("succeeded")),
            ("b", Some("succeeded")),
            ("c", Some("failed"))
        ]
    );
    let report = check_dir(&demo.export);
    assert!(report.is_ok(), "{:#?}", report.failures);

    let trusted = load_public_key(&demo.owner.public_key).expect("owner key");
    let options = VerifyOptions {
        trusted_owner: Some(trusted),
        ..Default::default()
    };
    assert!(verify(&demo.bundle, &options).is_ok());
}

#[test]
fn each_export_tamper_is_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let demo = demo::build(&tmp.path().join("run")).expect("demo");
    for tamper in Tamper::ALL {
        let dir = copy_dir(&demo.export, &tmp.path().join(format!("{tamper:?}")));
        tamper.apply(&dir);
        let failures = check_dir(&dir).failures;
        let first = failures
            .first()
            .unwrap_or_else(|| panic!("{tamper:?} went unnoticed"));
        match tamper {
            Tamper::LinkPayload => assert!(
                matches!(first, Failure::Signature { file, error: DsseError::BadSignature { .. } } if file.starts_with("a.")),
                "{failures:#?}"
            ),
            Tamper::LinkSignature => assert!(
                matches!(first, Failure::Signature { file, error: DsseError::BadSignature { .. } } if file.starts_with("b.")),
                "{failures:#?}"
            ),
            Tamper::DeleteLink => {
                assert!(
                    matches!(first, Failure::MissingLink { step, .. } if step == "b"),
                    "{failures:#?}"
                );
                assert!(
                    failures.contains(&Failure::StepRemoved { step: "b".into() }),
                    "{failures:#?}"
                );
            }
            Tamper::LayoutPayload => assert!(
                matches!(first, Failure::Signature { file, .. } if file == "root.layout"),
                "{failures:#?}"
            ),
        }
        // Every failure renders to a sentence that names a file or step.
        for failure in &failures {
            assert!(!failure.to_string().is_empty());
        }
    }
}

#[test]
fn a_changed_artifact_names_step_file_and_both_digests() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let demo = demo::build_with(tmp.path(), true).expect("demo");
    let failures = check_dir(&demo.export).failures;
    // b read the changed file, and so did c (which also needs a, transitively).
    assert_eq!(failures.len(), 2, "{failures:#?}");
    for (failure, expected_step) in failures.iter().zip(["b", "c"]) {
        let Failure::MaterialMismatch {
            step,
            artifact,
            producer,
            expected,
            found,
            file,
        } = failure
        else {
            panic!("{failures:#?}");
        };
        assert_eq!(
            (step.as_str(), artifact.as_str(), producer.as_str()),
            (expected_step, "src/gen.rs", "a")
        );
        assert!(file.starts_with(&format!("{expected_step}.")) && file.ends_with(".link"));
        assert_ne!(expected, found);
        let message = failure.to_string();
        assert!(
            message.contains(expected) && message.contains(found) && message.contains("src/gen.rs"),
            "{message}"
        );
    }
}

#[test]
fn the_wrong_key_is_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let demo = demo::build(tmp.path()).expect("demo");
    let other = load_public_key(&demo.other.public_key).expect("other key");
    let options = VerifyOptions {
        trusted_owner: Some(other.clone()),
        ..Default::default()
    };
    let failures = verify(&demo.bundle, &options).failures;
    assert!(
        matches!(&failures[0], Failure::UntrustedOwner { expected, .. } if expected == other.keyid()),
        "{failures:#?}"
    );
    assert!(
        matches!(&failures[1], Failure::Signature { file, error: DsseError::UntrustedKey { .. } } if file == "root.layout"),
        "{failures:#?}"
    );

    // A whole export re-signed by another key (owner.pub replaced too) verifies only
    // against itself: with the trusted key, it fails.
    let dir = copy_dir(&demo.export, &tmp.path().join("swapped"));
    std::fs::copy(&demo.other.public_key, dir.join("owner.pub")).expect("copy");
    let bundle = Bundle::read_dir(&dir).expect("read");
    let trusted = load_public_key(&demo.owner.public_key).expect("owner key");
    let failures = verify(
        &bundle,
        &VerifyOptions {
            trusted_owner: Some(trusted),
            ..Default::default()
        },
    )
    .failures;
    assert!(
        matches!(&failures[0], Failure::UntrustedOwner { .. }),
        "{failures:#?}"
    );
}

#[test]
fn steps_removed_or_reordered_in_the_store_are_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let demo = demo::build(tmp.path()).expect("demo");

    let mut removed = demo.bundle.clone();
    removed.links.retain(|(name, _)| !name.starts_with("c."));
    removed.statements.retain(|(step, _)| step != "c");
    let failures = verify(&removed, &VerifyOptions::default()).failures;
    assert!(
        failures.contains(&Failure::StepRemoved { step: "c".into() }),
        "{failures:#?}"
    );
    assert!(
        matches!(&failures[0], Failure::MissingLink { step, .. } if step == "c"),
        "{failures:#?}"
    );

    let mut reordered = demo.bundle.clone();
    reordered.links.swap(0, 1);
    reordered.statements.swap(0, 1);
    let failures = verify(&reordered, &VerifyOptions::default()).failures;
    assert_eq!(
        failures,
        [
            Failure::Reordered {
                step: "b".into(),
                expected_position: 1,
                found_position: 0
            },
            Failure::Reordered {
                step: "a".into(),
                expected_position: 0,
                found_position: 1
            },
        ]
    );

    // A statement swapped for another step's: the signature holds, the content does not.
    let mut swapped = demo.bundle.clone();
    swapped.statements[2].1 = demo.bundle.statements[1].1.clone();
    let failures = verify(&swapped, &VerifyOptions::default()).failures;
    assert!(
        failures
            .iter()
            .any(|f| matches!(f, Failure::EnvelopeChanged { step, .. } if step == "c")),
        "{failures:#?}"
    );
    assert!(
        failures
            .iter()
            .any(|f| matches!(f, Failure::StatementMismatch { step, .. } if step == "c")),
        "{failures:#?}"
    );
}

#[test]
fn a_run_record_that_drops_a_step_needs_the_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let demo = demo::build(tmp.path()).expect("demo");
    let dir = copy_dir(&demo.export, &tmp.path().join("run-edited"));
    let path = dir.join("run.json");
    let mut env = read_envelope(&path);
    let mut run: serde_json::Value = serde_json::from_slice(&env.payload).expect("json");
    run["steps"].as_array_mut().expect("steps").remove(1);
    env.payload = serde_json::to_vec(&run).expect("json");
    write_envelope(&path, &env);
    let failures = check_dir(&dir).failures;
    assert!(
        matches!(&failures[..], [Failure::Signature { file, error: DsseError::BadSignature { .. } }, ..] if file == "run.json"),
        "{failures:#?}"
    );
    // Unreadable files are reported, not fatal.
    std::fs::write(find(&dir, "a.", ".link"), b"{").expect("write");
    let failures = check_dir(&dir).failures;
    assert!(
        matches!(&failures[0], Failure::Malformed { file, .. } if file.starts_with("a.")),
        "{failures:#?}"
    );
}

#[test]
fn an_expired_layout_fails() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let demo = demo::build(tmp.path()).expect("demo");
    let options = VerifyOptions {
        now_unix_s: u64::MAX / 2,
        ..Default::default()
    };
    let failures = verify(&demo.bundle, &options).failures;
    assert!(
        matches!(&failures[..], [Failure::LayoutExpired { .. }]),
        "{failures:#?}"
    );
}

#[test]
fn exports_go_to_new_or_empty_directories() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let demo = demo::build(tmp.path()).expect("demo");
    assert!(matches!(
        demo.bundle.write_dir(&demo.export),
        Err(flow_provenance::verify::ExportError::NotEmpty(_))
    ));
}
