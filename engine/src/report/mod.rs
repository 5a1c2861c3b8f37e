//! `flow report RUN --out FILE.html`: one self-contained HTML page about a run (styles
//! and scripts inline, nothing loaded from anywhere): its DAG with each step's status,
//! a timeline of when each step waited and ran, each step's outputs, log (folded,
//! searchable), failure, retries and cache use, and its provenance at a glance, with
//! the verification result and policy checks when given.

mod html;
mod layout;
mod page;

pub use html::escape;
pub use page::Verdict;
use page::{Glance, Page};

use std::collections::BTreeMap;

use flow_provenance::Envelope;
use flow_store::{RunId, StepLogLine, Store, StoreError};
use serde_json::Value;

/// The page of run `id` of `store`, with `verdict` on its provenance.
pub fn render(store: &Store, id: &RunId, verdict: Verdict) -> Result<String, StoreError> {
    let run = store.run(id)?.ok_or_else(|| StoreError::NoSuchRun {
        dir: store.dir().to_path_buf(),
        query: id.to_string(),
    })?;
    let steps = store.steps(id)?;
    let mut logs: BTreeMap<u32, Vec<StepLogLine>> = BTreeMap::new();
    for line in store.logs(id, None)? {
        logs.entry(line.step_index).or_default().push(line);
    }
    let mut glances = BTreeMap::new();
    for (index, attestation) in store.step_attestations(id)? {
        glances.insert(
            index,
            glance(
                &attestation.keyid,
                &attestation.statement,
                &attestation.link,
            ),
        );
    }
    Ok(html::page(&Page {
        run,
        steps,
        logs,
        glances,
        verdict,
    }))
}

/// Reads what the page shows of a step's statement and link (what cannot be read is
/// left out: the verification line says whether they hold).
fn glance(keyid: &str, statement: &str, link: &str) -> Glance {
    let payload = |text: &str| -> Value {
        Envelope::from_json(text.as_bytes())
            .ok()
            .and_then(|e| serde_json::from_slice(&e.payload).ok())
            .unwrap_or(Value::Null)
    };
    let (statement, link) = (payload(statement), payload(link));
    let count = |v: &Value| v.as_object().map_or(0, |m| m.len());
    let internal = &statement["predicate"]["buildDefinition"]["internalParameters"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let templates = internal["template"]["chain"]
        .as_array()
        .map(|chain| {
            chain
                .iter()
                .map(|t| {
                    format!(
                        "{}@{}",
                        t["id"].as_str().unwrap_or("?"),
                        t["version"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Glance {
        keyid: keyid.to_owned(),
        materials: count(&link["materials"]),
        products: count(&link["products"]),
        templates,
        needs: strings(&internal["needs"]),
    }
}
