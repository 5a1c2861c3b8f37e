//! The layout: its signature by the owner, its expiry, and its keys and steps (with their
//! artifact rules) as the other checks read them.

use serde_json::Value;

use crate::dsse::IN_TOTO_PAYLOAD_TYPE;
use crate::keys::PublicKey;
use crate::time::parse_rfc3339_seconds;

use super::bundle::{Bundle, LAYOUT_FILE};
use super::options::VerifyOptions;
use super::report::Failure;
use super::signatures::check_envelope;

/// A layout step as parsed.
pub(super) struct Step {
    pub(super) name: String,
    pub(super) pubkeys: Vec<String>,
    pub(super) threshold: usize,
    pub(super) materials: Vec<Vec<String>>,
    pub(super) products: Vec<Vec<String>>,
}

/// Verifies and parses the layout; `None` when nothing further can be checked.
pub(super) fn check_layout(
    bundle: &Bundle,
    owner: &PublicKey,
    options: &VerifyOptions,
    failures: &mut Vec<Failure>,
) -> Option<(Vec<PublicKey>, Vec<Step>)> {
    check_envelope(
        LAYOUT_FILE,
        &bundle.layout,
        std::slice::from_ref(owner),
        IN_TOTO_PAYLOAD_TYPE,
        failures,
    )?;
    let malformed = |reason: String| Failure::Malformed {
        file: LAYOUT_FILE.into(),
        reason,
    };
    let layout: Value = match serde_json::from_slice(&bundle.layout.payload) {
        Ok(v) => v,
        Err(e) => {
            failures.push(malformed(format!("not JSON: {e}")));
            return None;
        }
    };
    if layout["_type"] != "layout" {
        failures.push(malformed("not an in-toto layout".into()));
        return None;
    }
    match layout["expires"]
        .as_str()
        .map(|t| (t, parse_rfc3339_seconds(t)))
    {
        Some((_, Some(expires))) if expires > options.now_unix_s => {}
        Some((text, Some(_))) => failures.push(Failure::LayoutExpired {
            expires: text.to_owned(),
        }),
        _ => failures.push(malformed("expires is not YYYY-MM-DDTHH:MM:SSZ".into())),
    }
    let mut keys = Vec::new();
    for (keyid, key) in layout["keys"].as_object().into_iter().flatten() {
        let public = key["keyval"]["public"]
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        match public.map(|b| PublicKey::from_bytes(&b)) {
            Some(Ok(k))
                if k.keyid() == keyid
                    && key["keytype"] == "ed25519"
                    && key["scheme"] == "ed25519" =>
            {
                keys.push(k)
            }
            Some(Ok(k)) => failures.push(malformed(format!(
                "key {keyid} is not the ed25519 key with that id (its id is {})",
                k.keyid()
            ))),
            _ => failures.push(malformed(format!(
                "key {keyid} is not an ed25519 public key"
            ))),
        }
    }
    let rules = |v: &Value| -> Vec<Vec<String>> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                r.as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| s.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .collect()
    };
    let mut steps = Vec::new();
    for step in layout["steps"].as_array().into_iter().flatten() {
        let Some(name) = step["name"].as_str() else {
            failures.push(malformed("a step without a name".into()));
            continue;
        };
        if !crate::layout::valid_step_name(name) {
            failures.push(malformed(format!(
                "step name {name:?} is not a safe file name"
            )));
            continue;
        }
        steps.push(Step {
            name: name.to_owned(),
            pubkeys: step["pubkeys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect(),
            threshold: step["threshold"]
                .as_u64()
                .and_then(|t| usize::try_from(t).ok())
                .unwrap_or(1)
                .max(1),
            materials: rules(&step["expected_materials"]),
            products: rules(&step["expected_products"]),
        });
    }
    Some((keys, steps))
}
