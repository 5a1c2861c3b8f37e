//! DSSE envelopes (Dead Simple Signing Envelope v1) with ed25519 signatures.
//!
//! The signature covers the pre-authentication encoding [`pae`] of the payload type and
//! the payload bytes, never a re-serialization, so the payload is stored exactly as
//! signed. The JSON form is the standard one: `{"payload","payloadType","signatures":
//! [{"keyid","sig"}]}` with `payload` and `sig` in standard base64 with padding.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::keys::{KeyError, PublicKey, SigningKey};

/// Payload type of in-toto documents (links, layouts, Statements) in an envelope.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The DSSE pre-authentication encoding:
/// `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths in ASCII decimal bytes.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// A signed payload.
///
/// Fields are serialized in sorted order and compactly, so [`Envelope::to_json`] is also
/// the envelope's canonical JSON and [`Envelope::sha256`] is stable across round trips.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The payload bytes, exactly as signed.
    #[serde(with = "base64_bytes")]
    pub payload: Vec<u8>,
    /// What the payload is, e.g. [`IN_TOTO_PAYLOAD_TYPE`].
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Signatures over [`pae`]`(payload_type, payload)`.
    pub signatures: Vec<Signature>,
}

/// One signature in an [`Envelope`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// securesystemslib key id of the signing key; verifiers pick the key by it.
    pub keyid: String,
    /// The raw signature bytes.
    #[serde(with = "base64_bytes")]
    pub sig: Vec<u8>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("payload_type", &self.payload_type)
            .field("payload", &String::from_utf8_lossy(&self.payload))
            .field("signatures", &self.signatures)
            .finish()
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signature")
            .field("keyid", &self.keyid)
            .field("sig", &hex::encode(&self.sig))
            .finish()
    }
}

/// Why an envelope did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    /// The envelope carries no signature at all.
    #[error("the envelope has no signatures")]
    Unsigned,
    /// No signature names a trusted key id.
    #[error("signed by key(s) {found:?}, none of which is trusted (trusted: {trusted:?})")]
    UntrustedKey {
        /// Key ids in the envelope.
        found: Vec<String>,
        /// Key ids that were trusted.
        trusted: Vec<String>,
    },
    /// A signature names a trusted key but does not verify with it: the payload, its type
    /// or the signature was changed.
    #[error(
        "the signature by key {keyid} does not match the payload (payload, type or signature changed)"
    )]
    BadSignature {
        /// The key id whose signature failed.
        keyid: String,
    },
    /// The envelope is not valid DSSE JSON.
    #[error("not a DSSE envelope: {0}")]
    Format(String),
}

impl Envelope {
    /// Signs `payload` as `payload_type` with `key`; fails only if the key is held by
    /// an ssh-agent that cannot sign (see [`SigningKey::sign`]).
    pub fn sign(
        payload_type: impl Into<String>,
        payload: Vec<u8>,
        key: &SigningKey,
    ) -> Result<Self, KeyError> {
        let payload_type = payload_type.into();
        let sig = key.sign(&pae(&payload_type, &payload))?.to_vec();
        Ok(Self {
            payload,
            payload_type,
            signatures: vec![Signature {
                keyid: key.keyid().to_owned(),
                sig,
            }],
        })
    }

    /// Checks that at least one signature is valid for a key in `trusted`, matched by key
    /// id as securesystemslib does, and returns that key. A signature by a trusted key id
    /// that fails to verify is an error even if another one verifies: it means tampering.
    pub fn verify<'k>(&self, trusted: &'k [PublicKey]) -> Result<&'k PublicKey, DsseError> {
        if self.signatures.is_empty() {
            return Err(DsseError::Unsigned);
        }
        let message = pae(&self.payload_type, &self.payload);
        let mut good = None;
        for signature in &self.signatures {
            let Some(key) = trusted.iter().find(|k| k.keyid() == signature.keyid) else {
                continue;
            };
            if !key.verify(&message, &signature.sig) {
                return Err(DsseError::BadSignature {
                    keyid: signature.keyid.clone(),
                });
            }
            good.get_or_insert(key);
        }
        good.ok_or_else(|| DsseError::UntrustedKey {
            found: self.signatures.iter().map(|s| s.keyid.clone()).collect(),
            trusted: trusted.iter().map(|k| k.keyid().to_owned()).collect(),
        })
    }

    /// The envelope as compact JSON with sorted keys (its canonical JSON).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing strings and byte vectors into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads an envelope from JSON; unknown members are ignored, as DSSE allows.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DsseError> {
        serde_json::from_slice(bytes).map_err(|e| DsseError::Format(e.to_string()))
    }

    /// Hex sha256 of [`Envelope::to_json`]: what the run record chains.
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(self.to_json()))
    }

    /// Key ids of the signatures, in order.
    pub fn keyids(&self) -> impl Iterator<Item = &str> {
        self.signatures.iter().map(|s| s.keyid.as_str())
    }
}

/// Standard base64 with padding on output; standard or URL-safe, padded or not, on input
/// (the DSSE spec asks readers to accept both).
mod base64_bytes {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(&text).ok())
            .ok_or_else(|| serde::de::Error::custom("invalid base64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec_vector() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn sign_verify_and_json_round_trip() {
        let key = SigningKey::from_seed(&[9; 32]);
        let env = Envelope::sign(
            "http://example.com/HelloWorld",
            b"hello world".to_vec(),
            &key,
        )
        .expect("sign");
        let json = env.to_json();
        let text = String::from_utf8(json.clone()).expect("utf8");
        assert!(text.starts_with(r#"{"payload":"aGVsbG8gd29ybGQ=","payloadType":"http://example.com/HelloWorld","signatures":[{"keyid":""#), "{text}");
        let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(crate::cjson::to_vec(&value).expect("canonical"), json);
        let back = Envelope::from_json(&json).expect("parse");
        assert_eq!(back, env);
        assert_eq!(back.sha256(), env.sha256());
        assert_eq!(
            back.verify(std::slice::from_ref(key.public_key()))
                .expect("verifies")
                .keyid(),
            key.keyid()
        );
    }

    #[test]
    fn verify_names_what_failed() {
        let key = SigningKey::from_seed(&[9; 32]);
        let other = SigningKey::from_seed(&[10; 32]);
        let env = Envelope::sign("t", b"body".to_vec(), &key).expect("sign");
        let trusted = std::slice::from_ref(key.public_key());

        let mut changed = env.clone();
        changed.payload = b"Body".to_vec();
        assert_eq!(
            changed.verify(trusted),
            Err(DsseError::BadSignature {
                keyid: key.keyid().into()
            })
        );

        let mut retyped = env.clone();
        retyped.payload_type = "u".into();
        assert!(matches!(
            retyped.verify(trusted),
            Err(DsseError::BadSignature { .. })
        ));

        let mut bad_sig = env.clone();
        bad_sig.signatures[0].sig[0] ^= 1;
        assert!(matches!(
            bad_sig.verify(trusted),
            Err(DsseError::BadSignature { .. })
        ));

        assert!(matches!(
            env.verify(std::slice::from_ref(other.public_key())),
            Err(DsseError::UntrustedKey { .. })
        ));

        let mut unsigned = env.clone();
        unsigned.signatures.clear();
        assert_eq!(unsigned.verify(trusted), Err(DsseError::Unsigned));
    }

    #[test]
    fn accepts_url_safe_and_unpadded_base64() {
        let json = br#"{"payload":"aGVsbG8gd29ybGQ","payloadType":"t","signatures":[{"keyid":"k","sig":"-_8"}]}"#;
        let env = Envelope::from_json(json).expect("parse");
        assert_eq!(env.payload, b"hello world");
        assert_eq!(env.signatures[0].sig, vec![0xfb, 0xff]);
        assert!(
            Envelope::from_json(br#"{"payload":"%%","payloadType":"t","signatures":[]}"#).is_err()
        );
    }
}
