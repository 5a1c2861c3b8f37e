//! ed25519 keys in the formats the in-toto tools read, held in memory or by an ssh-agent.
//!
//! A [`SigningKey`] has one of two backings:
//!
//! - **In memory**: the private key was read from a PKCS#8 PEM file
//!   ([`load_signing_key`], what `in-toto-run --signing-key` loads), generated
//!   ([`SigningKey::generate`]) or derived from a seed. [`load_signing_key`] refuses, as ssh
//!   does, a file that group or others may access (`chmod 600` it) and anything that is
//!   not a regular file of at most 64 KiB.
//! - **In an ssh-agent** ([`SigningKey::from_agent`]): an ed25519 key that an `ssh-agent`
//!   holds, reached through its Unix socket. flow never sees the private key; each
//!   signature is one request to the agent, with a timeout, and is checked against the
//!   public key before it is used. Keeping the key in an agent whose socket the pipeline's
//!   steps cannot reach means a hostile step cannot copy it, whatever files it reads.
//!
//! Signing is therefore fallible ([`SigningKey::sign`] returns a `Result`), though only
//! an agent key ever fails: its agent can be gone, slow, locked or refuse, and ssh-agent
//! takes at most 256 KiB per request, so a longer message (ed25519 signs the whole of it)
//! cannot be signed through an agent. [`SigningKey::source`] says where a key came from,
//! so the engine can check that no step is granted access to it.
//!
//! The public key is stored as SubjectPublicKeyInfo PEM (what `in-toto-verify
//! --verification-keys` loads). A key's id is the securesystemslib default key id: the
//! hex sha256 of the canonical JSON
//! `{"keytype":"ed25519","keyval":{"public":"<hex>"},"scheme":"ed25519"}`, the same for
//! both backings. The standard verifiers match signatures to keys by that id and silently
//! skip any signature whose id differs, so no other id scheme will do.

mod error;
mod files;
mod public;
mod signing;

pub use error::{KeyError, MAX_KEY_FILE};
pub use files::{
    KeyPairPaths, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, load_key_pair, load_public_key,
    load_signing_key, write_key_pair,
};
pub use public::PublicKey;
pub use signing::{KeySource, SigningKey};

#[cfg(test)]
mod tests {
    use super::public::keyid_json;
    use super::*;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
    use std::path::Path;

    #[test]
    fn pem_round_trips() {
        let key = SigningKey::from_seed(&[7; 32]);
        let pem = key.to_pkcs8_pem().expect("in memory");
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
        assert_eq!(key.to_pkcs8_pem().expect("in memory"), SEED7_PRIVATE_PEM);
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
        let sig = a.sign(b"m").expect("in memory");
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

    #[test]
    fn signing_keys_of_both_backings_can_be_shared_between_threads() {
        // The engine signs from several threads through an `Arc<SigningKey>`.
        fn shared<T: Send + Sync>() {}
        shared::<SigningKey>();
    }

    #[cfg(unix)]
    #[test]
    fn the_key_directory_is_created_private_and_an_existing_one_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        let keys = dir.path().join("data/keys");
        write_key_pair(&keys, &SigningKey::from_seed(&[3; 32])).expect("write");
        assert_eq!(mode(&keys), 0o700);

        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).expect("mkdir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        write_key_pair(&shared, &SigningKey::from_seed(&[3; 32])).expect("write");
        assert_eq!(mode(&shared), 0o755);
        let source = load_key_pair(&shared).expect("load").source();
        assert_eq!(
            source,
            KeySource::File(
                std::fs::canonicalize(shared.join(PRIVATE_KEY_FILE)).expect("canonical")
            )
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_private_key_others_can_access_is_refused_with_the_chmod_hint() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::from_seed(&[5; 32]);
        let paths = write_key_pair(dir.path(), &key).expect("write");
        let set = |mode| {
            std::fs::set_permissions(&paths.private_key, std::fs::Permissions::from_mode(mode))
                .expect("chmod")
        };
        for mode in [0o644, 0o640, 0o604, 0o660, 0o601, 0o620] {
            set(mode);
            let error = load_signing_key(&paths.private_key).expect_err("refused");
            assert!(
                matches!(error, KeyError::InsecurePermissions { mode: m, .. } if m == mode),
                "{mode:o}: {error:?}"
            );
            let message = error.to_string();
            assert!(
                message.contains(&format!("chmod 600 {}", paths.private_key.display())),
                "{message}"
            );
            assert!(message.contains(&format!("{mode:04o}")), "{message}");
        }
        for mode in [0o600, 0o400] {
            set(mode);
            let loaded = load_signing_key(&paths.private_key).expect("private enough");
            assert_eq!(loaded.keyid(), key.keyid());
        }
        // Not a private key at all (here, the public key, mode 0644): said so, no chmod hint.
        std::fs::set_permissions(&paths.public_key, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let error = load_signing_key(&paths.public_key).expect_err("a public key");
        assert!(matches!(error, KeyError::PrivateKeyFormat(_)), "{error:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_to_a_key_is_followed_and_the_target_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = write_key_pair(&dir.path().join("real"), &SigningKey::from_seed(&[6; 32]))
            .expect("write");
        let link = dir.path().join("link.pem");
        std::os::unix::fs::symlink(&paths.private_key, &link).expect("symlink");
        let key = load_signing_key(&link).expect("followed");
        assert_eq!(
            key.source(),
            KeySource::File(std::fs::canonicalize(&paths.private_key).expect("canonical"))
        );
        assert_eq!(SigningKey::from_seed(&[6; 32]).source(), KeySource::Memory);
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_directory_or_huge_file_is_refused_without_hanging() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("key.pem");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a valid NUL-terminated path; mkfifo only reads it.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
        // Nobody ever opens the FIFO for writing: a blocking open would never return.
        let (send, receive) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let _ = send.send(load_signing_key(&path).map(|k| k.keyid().to_owned()));
        });
        let result = receive
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("loading a FIFO hung");
        assert!(
            matches!(result, Err(KeyError::NotAFile { kind: "FIFO", .. })),
            "{result:?}"
        );

        let error = load_signing_key(dir.path()).expect_err("a directory");
        assert!(
            matches!(
                error,
                KeyError::NotAFile {
                    kind: "directory",
                    ..
                }
            ),
            "{error:?}"
        );

        let huge = dir.path().join("huge.pem");
        std::fs::write(&huge, vec![b'A'; MAX_KEY_FILE as usize + 1]).expect("write");
        std::fs::set_permissions(&huge, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let error = load_signing_key(&huge).expect_err("too large");
        assert!(matches!(error, KeyError::TooLarge { .. }), "{error:?}");

        let missing = load_signing_key(&dir.path().join("missing.pem")).expect_err("missing");
        assert!(
            matches!(missing, KeyError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound)
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_signature_that_does_not_verify_is_an_error_not_an_envelope() {
        use crate::agent::tests::{fake_agent, framed};
        use crate::agent::{SSH2_AGENT_IDENTITIES_ANSWER, SSH2_AGENT_SIGN_RESPONSE};
        use crate::keys::KeyError;
        use crate::ssh_wire::{ED25519, put_string};
        let real = crate::SigningKey::from_seed(&[7; 32]);
        let blob = crate::ssh_wire::public_key_blob(real.public_key().as_bytes());
        let mut identities = vec![SSH2_AGENT_IDENTITIES_ANSWER];
        identities.extend_from_slice(&1u32.to_be_bytes());
        put_string(&mut identities, &blob);
        put_string(&mut identities, b"fake");
        let signature = |kind: &str, bytes: &[u8]| {
            let mut inner = Vec::new();
            put_string(&mut inner, kind.as_bytes());
            put_string(&mut inner, bytes);
            let mut body = vec![SSH2_AGENT_SIGN_RESPONSE];
            put_string(&mut body, &inner);
            framed(&body)
        };
        let good = real.sign(b"m").unwrap();
        let (_dir, socket) = fake_agent(vec![
            framed(&identities),
            signature(ED25519, &good),
            signature(ED25519, &[0; 64]),
            signature(ED25519, &good[..63]),
            signature("ssh-rsa", &good),
        ]);
        let key = crate::SigningKey::from_agent(&socket, "fake").unwrap();
        assert_eq!(key.keyid(), real.keyid());
        assert_eq!(key.sign(b"m").unwrap(), good);
        for _ in 0..2 {
            let error = key.sign(b"m").unwrap_err();
            assert!(
                matches!(error, KeyError::AgentBadSignature { .. }),
                "{error:?}"
            );
        }
        let error = key.sign(b"m").unwrap_err();
        assert!(matches!(error, KeyError::AgentProtocol { .. }), "{error:?}");
    }
}
