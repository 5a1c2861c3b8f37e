//! A step's signed documents, made from its one internal record ([`StepEvidence`]).

use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::error::ProvenanceError;
use crate::keys::SigningKey;
use crate::{link, statement};

pub use crate::evidence::{
    Dependency, Outcome, StepEvidence, TEMPLATE_URI_SCHEME, TemplateOrigin, TemplateRef,
};

/// A step's two signed documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepAttestation {
    /// The step's id.
    pub step_id: String,
    /// The in-toto Statement v1 (SLSA Provenance v1) envelope: `<step>.intoto.json`.
    pub statement: Envelope,
    /// The in-toto v0.9 link envelope.
    pub link: Envelope,
    /// The link's file name in an export: `<step>.<keyid[:8]>.link`.
    pub link_file_name: String,
}

/// Builds and signs the step's link and statement. Cheap (tens of microseconds for a
/// step with few files): call it on the engine's thread when the step ends, and store
/// the result with the step's completion. With a key held by an ssh-agent each of the
/// two signatures is a blocking round trip to the agent (at most 10 s; usually well
/// under a millisecond), and an agent that fails makes this fail ([`ProvenanceError::Sign`]).
pub fn attest_step(
    evidence: &StepEvidence,
    key: &SigningKey,
) -> Result<StepAttestation, ProvenanceError> {
    let link_payload = link::link_payload(evidence)?;
    let statement_payload = statement::statement_payload(evidence, &link_payload)?;
    Ok(StepAttestation {
        step_id: evidence.step_id.clone(),
        link_file_name: link::link_file_name(&evidence.step_id, key.keyid()),
        statement: Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement_payload, key)?,
        link: Envelope::sign(IN_TOTO_PAYLOAD_TYPE, link_payload, key)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::collections::BTreeMap;

    fn evidence() -> StepEvidence {
        StepEvidence {
            run_id: "r1".into(),
            step_id: "build".into(),
            pipeline_name: "ci".into(),
            pipeline_file: "flow.yaml".into(),
            pipeline_sha256: "11".repeat(32),
            plugin: "https://plugins.flow.dev/cargo@1".into(),
            plugin_sha256: "22".repeat(32),
            params: serde_json::json!({"profile": "release", "token": "${secrets.TOKEN}", "jobs": 4}),
            grants: serde_json::json!({"read": ["/srv/assets"]}),
            started_unix_ms: 1_700_000_000_000,
            finished_unix_ms: 1_700_000_001_500,
            outcome: Outcome::Failed,
            failure_reason: Some("exit 1".into()),
            engine_name: "flow".into(),
            engine_version: "0.1.0".into(),
            materials: [("src/main.rs".to_owned(), "33".repeat(32))]
                .into_iter()
                .collect(),
            products: BTreeMap::new(),
            needs: vec!["checkout".into()],
            notes: vec!["/w/sock: not a regular file, directory or symlink".into()],
            dependencies: vec![Dependency {
                claimed_by: None,
                uri: "git+file:///src/app@refs/heads/main".into(),
                name: Some("app".into()),
                digest: [("gitCommit".to_owned(), "a".repeat(40))]
                    .into_iter()
                    .collect(),
            }],
            commands: vec![serde_json::json!({"name": "cargo", "args": ["build"], "exitCode": 0})],
            template: None,
        }
    }

    #[test]
    fn payloads_are_canonical_json() {
        let key = SigningKey::from_seed(&[5; 32]);
        let a = attest_step(&evidence(), &key).expect("attest");
        for payload in [&a.statement.payload, &a.link.payload] {
            let value: serde_json::Value = serde_json::from_slice(payload).expect("json");
            assert_eq!(&crate::cjson::to_vec(&value).expect("canonical"), payload);
        }
        assert_eq!(
            a.link_file_name,
            format!("build.{}.link", &key.keyid()[..8])
        );
    }

    #[test]
    fn a_step_without_products_is_its_own_subject() {
        let e = evidence();
        let link = crate::link::link_payload(&e).expect("link");
        let statement = crate::statement::statement_json(&e, &link);
        assert_eq!(
            statement["subject"],
            serde_json::json!([{"name": "flow-step:r1/build", "digest": {"sha256": hex::encode(Sha256::digest(&link))}}])
        );
        let predicate = &statement["predicate"];
        assert_eq!(
            predicate["runDetails"]["metadata"]["startedOn"],
            "2023-11-14T22:13:20.000Z"
        );
        assert_eq!(
            predicate["runDetails"]["metadata"]["invocationId"],
            "r1/build"
        );
        assert_eq!(
            predicate["runDetails"]["byproducts"][0]["annotations"]["failureReason"],
            "exit 1"
        );
        assert_eq!(
            predicate["buildDefinition"]["resolvedDependencies"][0],
            serde_json::json!({"uri": "https://plugins.flow.dev/cargo@1", "digest": {"sha256": "22".repeat(32)}})
        );
        assert_eq!(
            predicate["buildDefinition"]["resolvedDependencies"][1],
            serde_json::json!({"uri": "git+file:///src/app@refs/heads/main", "name": "app", "digest": {"gitCommit": "a".repeat(40)}})
        );
        assert_eq!(
            predicate["runDetails"]["byproducts"][0]["annotations"]["commands"],
            serde_json::json!([{"name": "cargo", "args": ["build"], "exitCode": 0}])
        );
        let link: serde_json::Value = serde_json::from_slice(&link).expect("json");
        assert_eq!(
            link["byproducts"],
            serde_json::json!({"outcome": "failed", "failure-reason": "exit 1"})
        );
        assert_eq!(link["command"], serde_json::json!([]));
        assert_eq!(link["environment"], serde_json::json!({}));
    }

    #[test]
    fn the_template_chain_is_in_internal_parameters() {
        let plain = crate::statement::statement_json(&evidence(), b"link");
        assert!(
            plain["predicate"]["buildDefinition"]["internalParameters"]
                .get("template")
                .is_none()
        );
        let mut e = evidence();
        let chain = vec![
            TemplateRef {
                id: "acme/rust-service".into(),
                version: "1.2.0".into(),
                sha256: "44".repeat(32),
            },
            TemplateRef {
                id: "acme/base".into(),
                version: "2.0.1".into(),
                sha256: "55".repeat(32),
            },
        ];
        e.dependencies
            .extend(chain.iter().map(TemplateRef::dependency));
        e.template = Some(TemplateOrigin {
            chain,
            declared_by: Some("acme/base@2.0.1".into()),
            interface: None,
            sealed: true,
            slot: None,
        });
        let key = SigningKey::from_seed(&[5; 32]);
        let a = attest_step(&e, &key).expect("attest");
        let value: serde_json::Value = serde_json::from_slice(&a.statement.payload).expect("json");
        assert_eq!(
            crate::cjson::to_vec(&value).expect("canonical"),
            a.statement.payload
        );
        let build = &value["predicate"]["buildDefinition"];
        assert_eq!(
            build["internalParameters"]["template"],
            serde_json::json!({
                "chain": [
                    {"id": "acme/rust-service", "version": "1.2.0", "sha256": "44".repeat(32)},
                    {"id": "acme/base", "version": "2.0.1", "sha256": "55".repeat(32)},
                ],
                "declaredBy": "acme/base@2.0.1",
                "sealed": true,
                "slot": null,
                "interface": null,
            })
        );
        assert_eq!(
            build["resolvedDependencies"][2],
            serde_json::json!({"uri": "flow-template:acme/rust-service@1.2.0", "name": "acme/rust-service", "digest": {"sha256": "44".repeat(32)}})
        );
        let back: TemplateOrigin =
            serde_json::from_value(build["internalParameters"]["template"].clone()).expect("parse");
        assert_eq!(Some(back), e.template);
    }

    #[test]
    fn evidence_round_trips_through_json() {
        let e = evidence();
        let back: StepEvidence =
            serde_json::from_value(serde_json::to_value(&e).expect("json")).expect("parse");
        assert_eq!(back, e);
        assert_eq!(
            serde_json::to_value(Outcome::TimedOut).expect("json"),
            "timed out"
        );
    }
}
