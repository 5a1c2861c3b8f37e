//! The run record: its signature, the layout it names, and the chain of the steps'
//! envelope digests, their order and their needs.

use std::collections::{BTreeMap, BTreeSet};

use crate::chain::{RUN_PAYLOAD_TYPE, RUN_RECORD_TYPE, RunChain};
use crate::keys::PublicKey;
use crate::link::link_file_name;

use super::bundle::{Bundle, RUN_FILE, STATEMENT_SUFFIX};
use super::layout_steps::Step;
use super::report::Failure;
use super::signatures::check_envelope;

/// Verifies the run record and compares it with the bundle.
pub(super) fn check_run(
    bundle: &Bundle,
    owner: &PublicKey,
    keys: &[PublicKey],
    steps: &[Step],
    failures: &mut Vec<Failure>,
) -> Option<RunChain> {
    let mut signers = vec![owner.clone()];
    signers.extend(keys.iter().filter(|k| *k != owner).cloned());
    check_envelope(RUN_FILE, &bundle.run, &signers, RUN_PAYLOAD_TYPE, failures)?;
    let record = match RunChain::parse(&bundle.run.payload) {
        Ok(r) if r.type_ == RUN_RECORD_TYPE => r,
        Ok(r) => {
            failures.push(Failure::Malformed {
                file: RUN_FILE.into(),
                reason: format!("_type is {:?}", r.type_),
            });
            return None;
        }
        Err(e) => {
            failures.push(Failure::Malformed {
                file: RUN_FILE.into(),
                reason: e.to_string(),
            });
            return None;
        }
    };
    let layout_sha = bundle.layout.sha256();
    if record.layout_sha256 != layout_sha {
        failures.push(Failure::LayoutChanged {
            expected: record.layout_sha256.clone(),
            found: layout_sha,
        });
    }
    let mut seen = BTreeSet::new();
    for entry in &record.steps {
        if !seen.insert(entry.step.as_str()) {
            failures.push(Failure::Malformed {
                file: RUN_FILE.into(),
                reason: format!("step {} listed twice", entry.step),
            });
            continue;
        }
        let statement = bundle.statements.iter().find(|(s, _)| *s == entry.step);
        let link = steps
            .iter()
            .find(|s| s.name == entry.step)
            .into_iter()
            .flat_map(|s| s.pubkeys.iter().map(|k| link_file_name(&s.name, k)))
            .find_map(|file| bundle.links.iter().find(|(n, _)| *n == file));
        let (Some((_, statement)), Some((link_file, link))) = (statement, link) else {
            failures.push(Failure::StepRemoved {
                step: entry.step.clone(),
            });
            continue;
        };
        for (file, env, expected) in [
            (
                format!("{}{STATEMENT_SUFFIX}", entry.step),
                statement,
                &entry.statement_sha256,
            ),
            (link_file.clone(), link, &entry.link_sha256),
        ] {
            let found = env.sha256();
            if &found != expected {
                failures.push(Failure::EnvelopeChanged {
                    step: entry.step.clone(),
                    file,
                    expected: expected.clone(),
                    found,
                });
            }
        }
    }
    // Every step with documents must be chained.
    let documented: BTreeSet<&str> = bundle.statements.iter().map(|(s, _)| s.as_str()).collect();
    for step in &documented {
        if !seen.contains(step) {
            failures.push(Failure::StepNotInRun {
                step: (*step).to_owned(),
            });
        }
    }
    // Execution order respects needs (as the layout's MATCH rules state them).
    let position: BTreeMap<&str, usize> = record
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.step.as_str(), i))
        .collect();
    for step in steps {
        let Some(&at) = position.get(step.name.as_str()) else {
            continue;
        };
        for rule in &step.materials {
            if let [m, _, w, _, f, need] = rule.as_slice()
                && m == "MATCH"
                && w == "WITH"
                && f == "FROM"
                && position.get(need.as_str()).is_none_or(|&p| p > at)
            {
                failures.push(Failure::OrderViolatesNeeds {
                    step: step.name.clone(),
                    needs: need.clone(),
                });
            }
        }
    }
    // The store's order must be the record's.
    if bundle.ordered {
        let stored: Vec<&str> = bundle
            .statements
            .iter()
            .map(|(s, _)| s.as_str())
            .filter(|s| position.contains_key(s))
            .collect();
        let recorded: Vec<&str> = record
            .steps
            .iter()
            .map(|s| s.step.as_str())
            .filter(|s| documented.contains(s))
            .collect();
        for (found_position, step) in stored.iter().enumerate() {
            if let Some(expected_position) = recorded.iter().position(|s| s == step)
                && expected_position != found_position
            {
                failures.push(Failure::Reordered {
                    step: (*step).to_owned(),
                    expected_position,
                    found_position,
                });
            }
        }
    }
    Some(record)
}
