//! SSH signatures (`SSHSIG`, as `ssh-keygen -Y sign` makes them) with an
//! ed25519 key, so that a file signed by flow verifies with
//! `ssh-keygen -Y verify` and no flow code.
//!
//! The signed data is `"SSHSIG" ‖ string(namespace) ‖ string("") ‖
//! string("sha512") ‖ string(sha512(message))`; the signature blob is
//! `"SSHSIG" ‖ uint32(1) ‖ string(public key) ‖ string(namespace) ‖ string("")
//! ‖ string("sha512") ‖ string(signature)`, armored as `SSH SIGNATURE`.

use base64::Engine as _;

use crate::keys::{KeyError, PublicKey, SigningKey};
use crate::ssh_wire::{ED25519, public_key_blob, put_string};

const MAGIC: &[u8] = b"SSHSIG";
const HASH: &str = "sha512";

/// The key's OpenSSH fingerprint, exactly as `ssh-keygen -l` and `ssh-add -l` print it:
/// `SHA256:` and the unpadded standard base64 of the sha256 of the key's wire form.
pub fn fingerprint(key: &PublicKey) -> String {
    crate::ssh_wire::fingerprint(key.as_bytes())
}

/// `ssh-ed25519 AAAA… comment`: a line for `authorized_keys` or, prefixed with
/// an identity, for `ssh-keygen`'s allowed-signers file.
pub fn ssh_public_key(key: &PublicKey, comment: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(public_key_blob(key.as_bytes()));
    if comment.is_empty() {
        format!("{ED25519} {encoded}")
    } else {
        format!("{ED25519} {encoded} {comment}")
    }
}

/// An armored SSH signature of a message whose SHA-512 is `sha512`, in
/// `namespace` (`ssh-keygen -Y verify -n <namespace>`; `file` for files).
///
/// Fails only if `key` is held by an ssh-agent that cannot sign (see
/// [`SigningKey::sign`]).
pub fn sign(key: &SigningKey, namespace: &str, sha512: &[u8; 64]) -> Result<String, KeyError> {
    let mut signed = MAGIC.to_vec();
    put_string(&mut signed, namespace.as_bytes());
    put_string(&mut signed, b"");
    put_string(&mut signed, HASH.as_bytes());
    put_string(&mut signed, sha512);
    let signature = key.sign(&signed)?;

    let mut sig_blob = Vec::new();
    put_string(&mut sig_blob, ED25519.as_bytes());
    put_string(&mut sig_blob, &signature);

    let mut blob = MAGIC.to_vec();
    blob.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut blob, &public_key_blob(key.public_key().as_bytes()));
    put_string(&mut blob, namespace.as_bytes());
    put_string(&mut blob, b"");
    put_string(&mut blob, HASH.as_bytes());
    put_string(&mut blob, &sig_blob);

    let encoded = base64::engine::general_purpose::STANDARD.encode(blob);
    let mut armored = String::from("-----BEGIN SSH SIGNATURE-----\n");
    for line in encoded.as_bytes().chunks(70) {
        armored.push_str(std::str::from_utf8(line).unwrap_or_default());
        armored.push('\n');
    }
    armored.push_str("-----END SSH SIGNATURE-----\n");
    Ok(armored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha512};

    #[test]
    fn ssh_keygen_verifies_the_signature_and_rejects_a_changed_file() {
        let key = SigningKey::from_seed(&[7; 32]);
        let dir = tempfile::tempdir().unwrap();
        let message = b"release artifact\n";
        let sha: [u8; 64] = Sha512::digest(message).into();
        std::fs::write(
            dir.path().join("file.sig"),
            sign(&key, "file", &sha).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("file"), message).unwrap();
        std::fs::write(dir.path().join("changed"), b"release artifact!\n").unwrap();
        std::fs::write(
            dir.path().join("allowed_signers"),
            format!("release@flow {}\n", ssh_public_key(key.public_key(), "")),
        )
        .unwrap();
        let verify = |file: &str| {
            std::process::Command::new("ssh-keygen")
                .current_dir(dir.path())
                .args([
                    "-Y",
                    "verify",
                    "-f",
                    "allowed_signers",
                    "-I",
                    "release@flow",
                    "-n",
                    "file",
                    "-s",
                    "file.sig",
                ])
                .stdin(std::fs::File::open(dir.path().join(file)).unwrap())
                .output()
        };
        match verify("file") {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(
                    !verify("changed").unwrap().status.success(),
                    "a changed file must not verify"
                );
            }
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "ssh-keygen must exist in CI: {e}"
                );
                eprintln!("NOT RUN: ssh-keygen: {e}");
            }
        }
    }
}
