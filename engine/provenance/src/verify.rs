//! Export and verification of a run's provenance.
//!
//! An export directory holds:
//!
//! | file                    | what                                                  |
//! |-------------------------|-------------------------------------------------------|
//! | `root.layout`           | the layout envelope, signed by the owner               |
//! | `<step>.<keyid8>.link`  | each step's in-toto link envelope                      |
//! | `<step>.intoto.json`    | each step's Statement (SLSA Provenance) envelope       |
//! | `run.json`              | the run record envelope ([`crate::chain`])             |
//! | `owner.pub`             | the owner's public key, SubjectPublicKeyInfo PEM       |
//!
//! so that `in-toto-verify --layout root.layout --verification-keys owner.pub
//! --link-dir DIR` works on it unchanged. [`verify`] checks the same things in-toto does
//! for flow's layouts (signatures, thresholds, the materials -> products chain, the
//! product rules) and what in-toto cannot (statements against links, the run chain), and
//! reports every failure rather than stopping at the first.

mod artifact_rules;
mod bundle;
mod layout_steps;
mod options;
mod report;
mod run_chain;
mod signatures;
mod statements;

use std::collections::{BTreeMap, BTreeSet};

use crate::dsse::IN_TOTO_PAYLOAD_TYPE;
use crate::keys::PublicKey;
use crate::link::{LinkPayload, link_file_name};

use artifact_rules::check_rules;
pub use bundle::{
    Bundle, ExportError, LAYOUT_FILE, OWNER_KEY_FILE, RUN_FILE, STATEMENT_SUFFIX, export,
};
use layout_steps::check_layout;
pub use options::VerifyOptions;
pub use report::{Failure, Report, StepSummary};
use run_chain::check_run;
use signatures::check_envelope;
use statements::check_statement;

/// Verifies `bundle`; see the module documentation for what is checked.
pub fn verify(bundle: &Bundle, options: &VerifyOptions) -> Report {
    let mut report = Report::default();
    let failures = &mut report.failures;
    for (file, reason) in &bundle.unreadable {
        failures.push(Failure::Malformed {
            file: file.clone(),
            reason: reason.clone(),
        });
    }

    // 1. The owner and the layout.
    let owner = match &options.trusted_owner {
        Some(trusted) if trusted != &bundle.owner => {
            failures.push(Failure::UntrustedOwner {
                expected: trusted.keyid().into(),
                found: bundle.owner.keyid().into(),
            });
            trusted.clone()
        }
        Some(trusted) => trusted.clone(),
        None => bundle.owner.clone(),
    };
    let Some((keys, steps)) = check_layout(bundle, &owner, options, failures) else {
        return report;
    };

    // 2. Links: signatures and thresholds.
    let mut links: BTreeMap<&str, (String, LinkPayload)> = BTreeMap::new();
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    for step in &steps {
        let mut valid = Vec::new();
        let mut looked_for = Vec::new();
        for keyid in &step.pubkeys {
            let file = link_file_name(&step.name, keyid);
            let Some((name, env)) = bundle.links.iter().find(|(name, _)| *name == file) else {
                looked_for.push(file);
                continue;
            };
            claimed.insert(name.as_str());
            let allowed: Vec<PublicKey> = keys
                .iter()
                .filter(|k| step.pubkeys.iter().any(|p| p == k.keyid()))
                .cloned()
                .collect();
            if check_envelope(&file, env, &allowed, IN_TOTO_PAYLOAD_TYPE, failures).is_some() {
                match LinkPayload::parse(&env.payload) {
                    Ok(payload) if payload.type_ == "link" && payload.name == step.name => {
                        valid.push((file, payload))
                    }
                    Ok(payload) => failures.push(Failure::Malformed {
                        file,
                        reason: format!(
                            "a {:?} document named {:?}, expected the link of step {:?}",
                            payload.type_, payload.name, step.name
                        ),
                    }),
                    Err(e) => failures.push(Failure::Malformed {
                        file,
                        reason: format!("not an in-toto link: {e}"),
                    }),
                }
            }
        }
        if valid.len() < step.threshold {
            failures.push(Failure::MissingLink {
                step: step.name.clone(),
                file: if looked_for.is_empty() {
                    format!("{} valid link(s)", step.threshold)
                } else {
                    looked_for.join(", ")
                },
            });
        }
        if let Some(first) = valid.into_iter().next() {
            links.insert(step.name.as_str(), first);
        }
    }
    for (file, _) in &bundle.links {
        if !claimed.contains(file.as_str()) {
            failures.push(Failure::ExtraFile { file: file.clone() });
        }
    }

    // 3. Artifact rules: the materials -> products chain.
    for step in &steps {
        let Some((file, link)) = links.get(step.name.as_str()) else {
            continue;
        };
        check_rules(step, file, link, &links, failures);
        report.steps.push(StepSummary {
            step: step.name.clone(),
            outcome: link.outcome().map(str::to_owned),
            materials: link.materials.len(),
            products: link.products.len(),
        });
    }

    // 4. The run record.
    let run = check_run(bundle, &owner, &keys, &steps, failures);

    // 5. Statements against links and the run.
    let run_id = run.as_ref().map(|r| r.run_id.as_str());
    for (step_id, env) in &bundle.statements {
        let file = format!("{step_id}{STATEMENT_SUFFIX}");
        let Some(step) = steps.iter().find(|s| &s.name == step_id) else {
            failures.push(Failure::ExtraFile { file });
            continue;
        };
        let allowed: Vec<PublicKey> = keys
            .iter()
            .filter(|k| step.pubkeys.iter().any(|p| p == k.keyid()))
            .cloned()
            .collect();
        if check_envelope(&file, env, &allowed, IN_TOTO_PAYLOAD_TYPE, failures).is_none() {
            continue;
        }
        if let Some((link_file, link)) = links.get(step_id.as_str()) {
            let link_env = bundle
                .links
                .iter()
                .find(|(n, _)| n == link_file)
                .map(|(_, e)| e);
            check_statement(step_id, &file, env, link, link_env, run_id, failures);
        }
    }
    for step in links.keys() {
        if !bundle.statements.iter().any(|(s, _)| s == step) {
            failures.push(Failure::MissingStatement {
                step: (*step).to_owned(),
                file: format!("{step}{STATEMENT_SUFFIX}"),
            });
        }
    }
    report
}
