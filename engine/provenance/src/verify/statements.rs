//! A step's statement against its link and the run: subject, resolved dependencies,
//! invocation and outcome.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::dsse::Envelope;
use crate::link::LinkPayload;
use crate::statement::{SLSA_PROVENANCE_V1, STATEMENT_TYPE, step_subject_name};

use super::artifact_rules::{Artifacts, sha256_of};
use super::report::Failure;

/// Compares a statement with its step's link and the run.
pub(super) fn check_statement(
    step: &str,
    file: &str,
    env: &Envelope,
    link: &LinkPayload,
    link_env: Option<&Envelope>,
    run_id: Option<&str>,
    failures: &mut Vec<Failure>,
) {
    let mut differs = |what: String| {
        failures.push(Failure::StatementMismatch {
            step: step.into(),
            file: file.into(),
            what,
        })
    };
    let statement: Value = match serde_json::from_slice(&env.payload) {
        Ok(v) => v,
        Err(e) => return differs(format!("not JSON: {e}")),
    };
    if statement["_type"] != STATEMENT_TYPE || statement["predicateType"] != SLSA_PROVENANCE_V1 {
        return differs("not an in-toto Statement v1 with a SLSA Provenance v1 predicate".into());
    }
    let pairs = |v: &Value, skip_uri: bool| -> BTreeMap<String, String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter(|d| !(skip_uri && d.get("uri").is_some()))
            .map(|d| {
                (
                    d["name"].as_str().unwrap_or_default().to_owned(),
                    d["digest"]["sha256"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    };
    let flat = |a: &Artifacts| -> BTreeMap<String, String> {
        a.iter()
            .map(|(k, v)| (k.clone(), sha256_of(Some(v))))
            .collect()
    };
    let subject = pairs(&statement["subject"], false);
    let expected_subject = if link.products.is_empty() {
        let run = run_id.unwrap_or_default();
        let digest = link_env
            .map(|e| hex::encode(Sha256::digest(&e.payload)))
            .unwrap_or_default();
        [(step_subject_name(run, step), digest)]
            .into_iter()
            .collect()
    } else {
        flat(&link.products)
    };
    if subject != expected_subject {
        differs(describe_difference("subject", &expected_subject, &subject));
    }
    let predicate = &statement["predicate"];
    let materials = pairs(&predicate["buildDefinition"]["resolvedDependencies"], true);
    let expected_materials = flat(&link.materials);
    if materials != expected_materials {
        differs(describe_difference(
            "resolvedDependencies",
            &expected_materials,
            &materials,
        ));
    }
    if let Some(run) = run_id {
        let expected = format!("{run}/{step}");
        let found = predicate["runDetails"]["metadata"]["invocationId"]
            .as_str()
            .unwrap_or_default();
        if found != expected {
            differs(format!("invocationId is {found:?}, expected {expected:?}"));
        }
    }
    let outcome = predicate["runDetails"]["byproducts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["name"] == "outcome")
        .and_then(|b| b["annotations"]["outcome"].as_str());
    if outcome != link.outcome() {
        differs(format!(
            "outcome is {outcome:?}, the link says {:?}",
            link.outcome()
        ));
    }
}

fn describe_difference(
    what: &str,
    expected: &BTreeMap<String, String>,
    found: &BTreeMap<String, String>,
) -> String {
    for (name, digest) in expected {
        match found.get(name) {
            None => return format!("{what} lacks {name} (sha256 {digest}) that the link records"),
            Some(f) if f != digest => {
                return format!(
                    "{what} has {name} with sha256 {f}, the link records sha256 {digest}"
                );
            }
            Some(_) => {}
        }
    }
    match found.keys().find(|k| !expected.contains_key(*k)) {
        Some(extra) => format!("{what} has {extra}, which the link does not record"),
        None => format!("{what} differs from the link"),
    }
}
