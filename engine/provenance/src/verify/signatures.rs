//! The check every envelope gets: its signature by one of the allowed keys, and its
//! payload type.

use crate::dsse::Envelope;
use crate::keys::PublicKey;

use super::report::Failure;

/// Checks an envelope's type and signature; `Some(key)` when valid.
pub(super) fn check_envelope<'k>(
    file: &str,
    env: &Envelope,
    keys: &'k [PublicKey],
    payload_type: &str,
    failures: &mut Vec<Failure>,
) -> Option<&'k PublicKey> {
    let key = match env.verify(keys) {
        Ok(key) => key,
        Err(error) => {
            failures.push(Failure::Signature {
                file: file.to_owned(),
                error,
            });
            return None;
        }
    };
    if env.payload_type != payload_type {
        failures.push(Failure::PayloadType {
            file: file.into(),
            expected: payload_type.into(),
            found: env.payload_type.clone(),
        });
        return None;
    }
    Some(key)
}
