//! ed25519 keys in the formats the in-toto tools read.
//!
//! The private key is stored as PKCS#8 PEM (what `in-toto-run --signing-key` loads), the
//! public key as SubjectPublicKeyInfo PEM (what `in-toto-verify --verification-keys`
//! loads). A key's id is the securesystemslib default key id: the hex sha256 of the
//! canonical JSON `{"keytype":"ed25519","keyval":{"public":"<hex>"},"scheme":"ed25519"}`.
//! The standard verifiers match signatures to keys by that id and silently skip any
//! signature whose id differs, so no other id scheme will do.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};

/// File name of the private key written by [`write_key_pair`].
pub const PRIVATE_KEY_FILE: &str = "signing-key.pem";
/// File name of the public key written by [`write_key_pair`].
pub const PUBLIC_KEY_FILE: &str = "signing-key.pub";

/// Errors reading, writing or generating keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random source failed.
    #[error("cannot generate a key: the system random source failed: {0}")]
    Random(String),
    /// The text is not an ed25519 PKCS#8 private key in PEM.
    #[error("not an ed25519 PKCS#8 PEM private key: {0}")]
    PrivateKeyFormat(String),
    /// The text is not an ed25519 SubjectPublicKeyInfo public key in PEM.
    #[error("not an ed25519 SubjectPublicKeyInfo PEM public key: {0}")]
    PublicKeyFormat(String),
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
}

/// An ed25519 private key, with its public half and key id computed once.
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("keyid", &self.public.keyid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        let key = Self::from_seed(&seed);
        seed.fill(0);
        Ok(key)
    }

    /// The key whose 32-byte ed25519 secret is `seed` (for tests and fixtures).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::from_dalek(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    fn from_dalek(inner: ed25519_dalek::SigningKey) -> Self {
        let public = PublicKey::from_dalek(inner.verifying_key());
        Self { inner, public }
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`), unencrypted.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(Self::from_dalek)
            .map_err(|e| KeyError::PrivateKeyFormat(e.to_string()))
    }

    /// The key as unencrypted PKCS#8 v1 PEM (the form `openssl genpkey -algorithm ed25519`
    /// writes); keep it private (see [`write_key_pair`]).
    pub fn to_pkcs8_pem(&self) -> String {
        let mut der = Vec::with_capacity(PKCS8_PREFIX.len() + 32);
        der.extend_from_slice(&PKCS8_PREFIX);
        der.extend_from_slice(self.inner.as_bytes());
        let pem = pem_encode("PRIVATE KEY", &der);
        der.fill(0);
        pem
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The securesystemslib key id of the public half.
    pub fn keyid(&self) -> &str {
        &self.public.keyid
    }

    /// Signs `message` (for DSSE: its PAE) and returns the 64-byte signature.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.inner.sign(message).to_bytes()
    }
}

/// An ed25519 public key and its securesystemslib key id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: ed25519_dalek::VerifyingKey,
    keyid: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("keyid", &self.keyid)
            .finish()
    }
}

impl PublicKey {
    fn from_dalek(inner: ed25519_dalek::VerifyingKey) -> Self {
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
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER of an ed25519 `SubjectPublicKeyInfo` up to the 32-byte key (RFC 8410).
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn pem_encode(label: &str, der: &[u8]) -> String {
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
fn keyid_json(public_hex: &str) -> String {
    format!(r#"{{"keytype":"ed25519","keyval":{{"public":"{public_hex}"}},"scheme":"ed25519"}}"#)
}

/// Where [`write_key_pair`] put the two halves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairPaths {
    /// The PKCS#8 PEM private key, mode 0600 on Unix.
    pub private_key: PathBuf,
    /// The SubjectPublicKeyInfo PEM public key.
    pub public_key: PathBuf,
}

impl KeyPairPaths {
    /// The paths [`write_key_pair`] uses in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            private_key: dir.join(PRIVATE_KEY_FILE),
            public_key: dir.join(PUBLIC_KEY_FILE),
        }
    }
}

/// Writes `key` to `dir` as [`PRIVATE_KEY_FILE`] (created with mode 0600 on Unix, never
/// widened) and [`PUBLIC_KEY_FILE`], creating `dir` if needed. Refuses to overwrite an
/// existing private key (the error's source is `AlreadyExists`): replacing a signing key
/// must be a deliberate act.
pub fn write_key_pair(dir: &Path, key: &SigningKey) -> Result<KeyPairPaths, KeyError> {
    let paths = KeyPairPaths::in_dir(dir);
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let pem = key.to_pkcs8_pem();
    let io = |source| KeyError::Io {
        path: paths.private_key.clone(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&paths.private_key).map_err(io)?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    std::fs::write(&paths.public_key, key.public_key().to_pem()).map_err(|source| {
        KeyError::Io {
            path: paths.public_key.clone(),
            source,
        }
    })?;
    Ok(paths)
}

/// Reads a PKCS#8 PEM private key file.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    SigningKey::from_pkcs8_pem(&pem)
}

/// Reads a SubjectPublicKeyInfo PEM public key file.
pub fn load_public_key(path: &Path) -> Result<PublicKey, KeyError> {
    let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    PublicKey::from_pem(&pem)
}

/// Reads the private key [`write_key_pair`] wrote to `dir`.
pub fn load_key_pair(dir: &Path) -> Result<SigningKey, KeyError> {
    load_signing_key(&KeyPairPaths::in_dir(dir).private_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};

    #[test]
    fn pem_round_trips() {
        let key = SigningKey::from_seed(&[7; 32]);
        let pem = key.to_pkcs8_pem();
        let dalek = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let reference = dalek.to_pkcs8_pem(LineEnding::LF).expect("dalek encodes");
        let public_reference = dalek
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("dalek encodes");
        assert_eq!(key.public_key().to_pem(), public_reference);
        // dalek writes PKCS#8 v2 (with the public key); both must decode to the same key.
        assert_eq!(
            SigningKey::from_pkcs8_pem(&reference).expect("v2").keyid(),
            key.keyid()
        );
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = SigningKey::from_pkcs8_pem(&pem).expect("decode");
        assert_eq!(back.public_key(), key.public_key());
        let public = key.public_key().to_pem();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(
            &PublicKey::from_pem(&public).expect("decode"),
            key.public_key()
        );
    }

    // Reference values from securesystemslib 1.6.0 (`SSlibKey.from_crypto(...).keyid`) and
    // pyca/cryptography 50 (PEM encodings) for the key whose seed is 32 bytes of 7.
    const SEED7_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH\n-----END PRIVATE KEY-----\n";
    const SEED7_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=\n-----END PUBLIC KEY-----\n";
    const SEED7_KEYID: &str = "bfe1a83869e5bf574e3ff3acbb83f840de84a990d10059f3096f0bf4f2b90c10";

    #[test]
    fn keyids_match_securesystemslib() {
        let key = SigningKey::from_pkcs8_pem(SEED7_PRIVATE_PEM).expect("cryptography's PEM");
        assert_eq!(key.keyid(), SEED7_KEYID);
        assert_eq!(key.to_pkcs8_pem(), SEED7_PRIVATE_PEM);
        assert_eq!(key.public_key().to_pem(), SEED7_PUBLIC_PEM);
        assert_eq!(
            PublicKey::from_pem(SEED7_PUBLIC_PEM).expect("pem").keyid(),
            SEED7_KEYID
        );
        assert_eq!(
            SigningKey::from_seed(&[1; 32]).keyid(),
            "7ab6b86cb2c9684b0ddc10896153aa2595decf4d4327a5ff1a8ab7422c828b12"
        );
        let json = key.public_key().to_securesystemslib_json();
        assert_eq!(
            json["keyval"]["public"],
            "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
        );
        assert_eq!(json["keyid"], SEED7_KEYID);
    }

    #[test]
    fn bad_pem_is_an_error_not_a_panic() {
        assert!(SigningKey::from_pkcs8_pem("nope").is_err());
        assert!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .is_err()
        );
    }

    #[test]
    fn keyid_json_is_canonical() {
        let key = SigningKey::from_seed(&[1; 32]);
        let value = serde_json::json!({
            "keytype": "ed25519", "scheme": "ed25519",
            "keyval": {"public": hex::encode(key.public_key().as_bytes())},
        });
        let canonical = crate::cjson::to_string(&value).expect("canonical");
        assert_eq!(
            canonical,
            keyid_json(&hex::encode(key.public_key().as_bytes()))
        );
    }

    #[test]
    fn generated_keys_differ_and_sign() {
        let a = SigningKey::generate().expect("random");
        let b = SigningKey::generate().expect("random");
        assert_ne!(a.keyid(), b.keyid());
        let sig = a.sign(b"m");
        assert!(a.public_key().verify(b"m", &sig));
        assert!(!b.public_key().verify(b"m", &sig));
        assert!(!a.public_key().verify(b"m", &sig[..63]));
    }

    #[cfg(unix)]
    #[test]
    fn key_pair_files_are_private_and_not_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::from_seed(&[3; 32]);
        let paths = write_key_pair(dir.path(), &key).expect("write");
        let mode = std::fs::metadata(&paths.private_key)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            load_key_pair(dir.path()).expect("load").keyid(),
            key.keyid()
        );
        assert_eq!(
            load_public_key(&paths.public_key).expect("load").keyid(),
            key.keyid()
        );
        let again = write_key_pair(dir.path(), &SigningKey::from_seed(&[4; 32]));
        assert!(
            matches!(again, Err(KeyError::Io { ref source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists)
        );
    }
}
