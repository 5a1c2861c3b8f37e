//! An ed25519 public key (SubjectPublicKeyInfo PEM, what `in-toto-verify
//! --verification-keys` loads) and its securesystemslib key id; the PEM and DER
//! pieces the private key shares.

use std::fmt;

use ed25519_dalek::Verifier;
use ed25519_dalek::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};

use super::error::KeyError;

/// An ed25519 public key and its securesystemslib key id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: ed25519_dalek::VerifyingKey,
    pub(super) keyid: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("keyid", &self.keyid)
            .finish()
    }
}

impl PublicKey {
    pub(super) fn from_dalek(inner: ed25519_dalek::VerifyingKey) -> Self {
        let keyid = hex::encode(Sha256::digest(keyid_json(&hex::encode(inner.as_bytes()))));
        Self { inner, keyid }
    }

    /// The key from its raw 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(Self::from_dalek)
            .map_err(|e| KeyError::PublicKeyFormat(e.to_string()))
    }

    /// Reads a SubjectPublicKeyInfo PEM public key (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
            .map(Self::from_dalek)
            .map_err(|e| KeyError::PublicKeyFormat(e.to_string()))
    }

    /// The key as SubjectPublicKeyInfo PEM, the format `in-toto-verify --verification-keys`
    /// reads.
    pub fn to_pem(&self) -> String {
        let mut der = Vec::with_capacity(SPKI_PREFIX.len() + 32);
        der.extend_from_slice(&SPKI_PREFIX);
        der.extend_from_slice(self.as_bytes());
        pem_encode("PUBLIC KEY", &der)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.inner.as_bytes()
    }

    /// The securesystemslib key id (64 lowercase hex digits).
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// The key object as it appears in a layout's `keys` map:
    /// `{"keyid", "keytype":"ed25519", "scheme":"ed25519", "keyval":{"public":"<hex>"}}`.
    ///
    /// in-toto 3.1 requires the `keyid` member inside the object (it builds its key from
    /// it) and does not need `keyid_hash_algorithms`, so that legacy member is left out.
    pub fn to_securesystemslib_json(&self) -> serde_json::Value {
        serde_json::json!({
            "keyid": self.keyid,
            "keytype": "ed25519",
            "scheme": "ed25519",
            "keyval": { "public": hex::encode(self.as_bytes()) },
        })
    }

    /// Whether `signature` is this key's valid ed25519 signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.inner.verify(message, &sig).is_ok()
    }
}

/// DER of an ed25519 PKCS#8 v1 `PrivateKeyInfo` up to the 32-byte seed (RFC 8410).
pub(super) const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER of an ed25519 `SubjectPublicKeyInfo` up to the 32-byte key (RFC 8410).
pub(super) const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

pub(super) fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// The canonical JSON whose sha256 is the key id (already canonical: sorted, compact).
pub(super) fn keyid_json(public_hex: &str) -> String {
    format!(r#"{{"keytype":"ed25519","keyval":{{"public":"{public_hex}"}},"scheme":"ed25519"}}"#)
}
