//! The SSH wire encoding (RFC 4251) shared by the ssh-agent protocol ([`crate::agent`])
//! and SSH signatures ([`crate::sshsig`]): strings, and an ed25519 public key's blob and
//! OpenSSH fingerprint, from the key's raw 32 bytes.

use base64::Engine as _;
use sha2::Digest as _;

/// The key type (and signature type) of plain ed25519 keys.
pub(crate) const ED25519: &str = "ssh-ed25519";

/// Appends an SSH string: `uint32` length, then the bytes. Callers never pass more than
/// a `u32` can count (an agent request is at most [`crate::agent::MAX_MESSAGE`] bytes,
/// longer ones are refused whole).
pub(crate) fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The OpenSSH wire form of the ed25519 public key whose raw bytes are `key`:
/// `string("ssh-ed25519") ‖ string(key)`.
pub(crate) fn public_key_blob(key: &[u8; 32]) -> Vec<u8> {
    let mut blob = Vec::new();
    put_string(&mut blob, ED25519.as_bytes());
    put_string(&mut blob, key);
    blob
}

/// The key's OpenSSH fingerprint, exactly as `ssh-keygen -l` and `ssh-add -l` print it:
/// `SHA256:` and the unpadded standard base64 of the sha256 of the key's wire form.
pub(crate) fn fingerprint(key: &[u8; 32]) -> String {
    let digest = sha2::Sha256::digest(public_key_blob(key));
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}
