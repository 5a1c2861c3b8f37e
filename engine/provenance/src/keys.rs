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

use std::fmt;
use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};

use crate::agent::{self, Agent, AgentError};

/// File name of the private key written by [`write_key_pair`].
pub const PRIVATE_KEY_FILE: &str = "signing-key.pem";
/// File name of the public key written by [`write_key_pair`].
pub const PUBLIC_KEY_FILE: &str = "signing-key.pub";
/// The largest private key file [`load_signing_key`] reads (a PEM key is about 120 bytes).
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// Errors reading, writing, generating or using keys.
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
    /// A private key file that group or others may read or write.
    #[error(
        "{path}: the private key is accessible to others (mode {mode:04o}); run `chmod 600 {path}`"
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A private key path that is not a regular file (a directory, FIFO, device, socket).
    #[error("{path}: not a regular file (a {kind}); a private key is a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// A private key file larger than [`MAX_KEY_FILE`].
    #[error("{path}: {size} bytes is too large for a private key file (at most {max})", max = MAX_KEY_FILE)]
    TooLarge {
        /// The key file.
        path: PathBuf,
        /// Its size (or a lower bound).
        size: u64,
    },
    /// The key is held by an ssh-agent: there is no private key to export.
    #[error(
        "the key is held by the ssh-agent at {socket}: there is no private key to write (use the agent, or `flow keys generate` for a key file)"
    )]
    NotExportable {
        /// The agent's socket.
        socket: PathBuf,
    },
    /// The agent's socket could not be connected to.
    #[error("cannot reach the ssh-agent at {socket}: {source}")]
    AgentUnreachable {
        /// The socket.
        socket: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Talking to the agent failed midway, or it did not answer in time.
    #[error("the ssh-agent at {socket} did not answer: {source}")]
    AgentIo {
        /// The socket.
        socket: PathBuf,
        /// The IO error (`TimedOut` when the agent was too slow).
        source: std::io::Error,
    },
    /// The agent's answer breaks the ssh-agent protocol.
    #[error("the ssh-agent at {socket} answered nonsense: {reason}")]
    AgentProtocol {
        /// The socket.
        socket: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The agent answered `SSH_AGENT_FAILURE`: it may be locked, the key removed, or a
    /// confirmation (`ssh-add -c`) denied.
    #[error(
        "the ssh-agent at {socket} refused to {action} (is it locked, the key removed, or a confirmation denied?)"
    )]
    AgentRefused {
        /// The socket.
        socket: PathBuf,
        /// What it refused: "list its keys", "sign with SHA256:…".
        action: String,
    },
    /// A message longer than ssh-agent accepts (256 KiB): ed25519 signs the whole message,
    /// so it cannot be sent.
    #[error(
        "cannot sign {size} bytes with the ssh-agent at {socket}: ssh-agent accepts at most {max} bytes per request",
        max = agent::MAX_MESSAGE
    )]
    AgentMessageTooLarge {
        /// The socket.
        socket: PathBuf,
        /// The request's size.
        size: usize,
    },
    /// The agent returned a signature that does not verify with the key's public half.
    #[error(
        "the ssh-agent at {socket} returned an invalid signature for {fingerprint}; it was not used"
    )]
    AgentBadSignature {
        /// The socket.
        socket: PathBuf,
        /// The key it was asked to sign with.
        fingerprint: String,
    },
    /// The agent holds no plain ed25519 key.
    #[error(
        "the ssh-agent at {socket} holds no ed25519 key ({others} key(s) of other types); add one with `ssh-keygen -t ed25519` and `ssh-add`"
    )]
    AgentNoEd25519Key {
        /// The socket.
        socket: PathBuf,
        /// How many keys of other types it holds.
        others: usize,
    },
    /// No ed25519 key in the agent has the selector as comment or fingerprint.
    #[error(
        "the ssh-agent at {socket} holds no ed25519 key with comment or fingerprint {selector:?}; it has: {}",
        list(.available)
    )]
    AgentNoMatch {
        /// The socket.
        socket: PathBuf,
        /// What was asked for.
        selector: String,
        /// The agent's ed25519 keys, as `fingerprint comment`.
        available: Vec<String>,
    },
    /// Several ed25519 keys fit (no selector, or one shared comment).
    #[error(
        "the ssh-agent at {socket} holds several ed25519 keys{}: {}; choose one by fingerprint",
        with_comment(.selector),
        list(.available)
    )]
    AgentAmbiguous {
        /// The socket.
        socket: PathBuf,
        /// What was asked for (empty: nothing).
        selector: String,
        /// The fitting keys, as `fingerprint comment`.
        available: Vec<String>,
    },
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

fn with_comment(selector: &str) -> String {
    if selector.is_empty() {
        String::new()
    } else {
        format!(" with comment {selector:?}")
    }
}

/// Where a [`SigningKey`] came from, so the engine can check that no step reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// Read from a PKCS#8 PEM file: its canonical path (symlinks resolved).
    File(PathBuf),
    /// Held by an ssh-agent.
    Agent {
        /// The agent's socket, canonical (symlinks resolved) when it could be resolved,
        /// else as given.
        socket: PathBuf,
        /// The key's OpenSSH fingerprint (`SHA256:…`).
        fingerprint: String,
    },
    /// Generated or derived in memory; never read from anywhere.
    Memory,
}

/// An ed25519 signing key (in memory or in an ssh-agent), with its public half and key
/// id computed once.
pub struct SigningKey {
    backing: Backing,
    public: PublicKey,
    source: KeySource,
}

enum Backing {
    Memory(ed25519_dalek::SigningKey),
    Agent(AgentKey),
}

/// An agent's key: where to ask, and which key to ask for.
struct AgentKey {
    agent: Agent,
    /// The socket as given (connected to on each signature, so an agent restarted behind
    /// a symlink is still found).
    socket: PathBuf,
    /// The key's SSH wire form, as the agent listed it.
    blob: Vec<u8>,
    fingerprint: String,
}

impl AgentKey {
    fn error(&self, error: AgentError, action: impl FnOnce() -> String) -> KeyError {
        agent_error(&self.socket, error, action)
    }
}

fn agent_error(socket: &Path, error: AgentError, action: impl FnOnce() -> String) -> KeyError {
    let socket = socket.to_owned();
    match error {
        AgentError::Connect(source) => KeyError::AgentUnreachable { socket, source },
        AgentError::Io(source) => KeyError::AgentIo { socket, source },
        AgentError::Protocol(reason) => KeyError::AgentProtocol { socket, reason },
        AgentError::Failure => KeyError::AgentRefused {
            socket,
            action: action(),
        },
        AgentError::RequestTooLarge(size) => KeyError::AgentMessageTooLarge { socket, size },
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("keyid", &self.public.keyid)
            .field("source", &self.source)
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
        Self {
            backing: Backing::Memory(inner),
            public,
            source: KeySource::Memory,
        }
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`), unencrypted. The
    /// key's [`source`](Self::source) is [`KeySource::Memory`]: [`load_signing_key`]
    /// records the file.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(Self::from_dalek)
            .map_err(|e| KeyError::PrivateKeyFormat(e.to_string()))
    }

    /// The ed25519 key held by the ssh-agent listening on `socket` (usually
    /// `$SSH_AUTH_SOCK`) whose comment or OpenSSH fingerprint (`SHA256:…`, as `ssh-add -l`
    /// prints it) is `selector`; with an empty `selector`, the agent's only ed25519 key.
    ///
    /// Only plain `ssh-ed25519` keys count (not RSA, ECDSA, certificates or security-key
    /// `sk-` keys). The agent is asked once for its keys now and once per signature
    /// later, each time within a 10 s timeout; the private key never leaves it.
    pub fn from_agent(socket: &Path, selector: &str) -> Result<Self, KeyError> {
        let agent = Agent::new(socket);
        let identities = agent
            .identities()
            .map_err(|e| agent_error(socket, e, || "list its keys".into()))?;
        let total = identities.len();
        let mut keys = Vec::new();
        for identity in identities {
            let Some(bytes) = identity.ed25519() else {
                continue;
            };
            // A 32-byte string that is not a curve point: not a key we can verify with.
            let Ok(public) = PublicKey::from_bytes(&bytes) else {
                continue;
            };
            let fingerprint = crate::ssh_wire::fingerprint(public.as_bytes());
            keys.push((public, fingerprint, identity));
        }
        if keys.is_empty() {
            return Err(KeyError::AgentNoEd25519Key {
                socket: socket.to_owned(),
                others: total,
            });
        }
        let describe = |keys: &[&(PublicKey, String, agent::Identity)]| -> Vec<String> {
            keys.iter()
                .map(|(_, fingerprint, identity)| {
                    if identity.comment.is_empty() {
                        fingerprint.clone()
                    } else {
                        format!("{fingerprint} {}", identity.comment)
                    }
                })
                .collect()
        };
        let mut matching: Vec<_> = keys
            .iter()
            .filter(|(_, fingerprint, identity)| {
                selector.is_empty() || identity.comment == selector || fingerprint == selector
            })
            .collect();
        // The same key listed twice is one key.
        matching.dedup_by(|a, b| a.0 == b.0);
        let chosen = match matching.as_slice() {
            [] => {
                return Err(KeyError::AgentNoMatch {
                    socket: socket.to_owned(),
                    selector: selector.to_owned(),
                    available: describe(&keys.iter().collect::<Vec<_>>()),
                });
            }
            [one] => *one,
            several => {
                return Err(KeyError::AgentAmbiguous {
                    socket: socket.to_owned(),
                    selector: selector.to_owned(),
                    available: describe(several),
                });
            }
        };
        let (public, fingerprint, identity) = chosen.clone();
        let canonical = std::fs::canonicalize(socket).unwrap_or_else(|_| socket.to_owned());
        Ok(Self {
            backing: Backing::Agent(AgentKey {
                agent,
                socket: socket.to_owned(),
                blob: identity.blob,
                fingerprint: fingerprint.clone(),
            }),
            public,
            source: KeySource::Agent {
                socket: canonical,
                fingerprint,
            },
        })
    }

    /// The key as unencrypted PKCS#8 v1 PEM (the form `openssl genpkey -algorithm ed25519`
    /// writes); keep it private (see [`write_key_pair`]). A key held by an ssh-agent has
    /// no private key to write: [`KeyError::NotExportable`].
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        let inner = match &self.backing {
            Backing::Memory(inner) => inner,
            Backing::Agent(key) => {
                return Err(KeyError::NotExportable {
                    socket: key.socket.clone(),
                });
            }
        };
        let mut der = Vec::with_capacity(PKCS8_PREFIX.len() + 32);
        der.extend_from_slice(&PKCS8_PREFIX);
        der.extend_from_slice(inner.as_bytes());
        let pem = pem_encode("PRIVATE KEY", &der);
        der.fill(0);
        Ok(pem)
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The securesystemslib key id of the public half.
    pub fn keyid(&self) -> &str {
        &self.public.keyid
    }

    /// Where the key came from: its file, its agent, or memory.
    pub fn source(&self) -> KeySource {
        self.source.clone()
    }

    /// Signs `message` (for DSSE: its PAE) and returns the 64-byte signature.
    ///
    /// A key in memory always signs. A key in an ssh-agent fails if the agent cannot be
    /// reached, does not answer within 10 s, refuses, is sent more than 256 KiB (the
    /// agent's limit), or returns a signature that does not verify with the public key.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64], KeyError> {
        let key = match &self.backing {
            Backing::Memory(inner) => return Ok(inner.sign(message).to_bytes()),
            Backing::Agent(key) => key,
        };
        let signature = key
            .agent
            .sign_ed25519(&key.blob, message)
            .map_err(|e| key.error(e, || format!("sign with {}", key.fingerprint)))?;
        let bad = || KeyError::AgentBadSignature {
            socket: key.socket.clone(),
            fingerprint: key.fingerprint.clone(),
        };
        let signature: [u8; 64] = signature.as_slice().try_into().map_err(|_| bad())?;
        if !self.public.verify(message, &signature) {
            return Err(bad());
        }
        Ok(signature)
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
/// widened) and [`PUBLIC_KEY_FILE`], creating `dir` if needed (mode 0700 on Unix; an
/// existing directory keeps its mode). Refuses to overwrite an existing private key (the
/// error's source is `AlreadyExists`): replacing a signing key must be a deliberate act.
/// A key held by an ssh-agent cannot be written ([`KeyError::NotExportable`]).
pub fn write_key_pair(dir: &Path, key: &SigningKey) -> Result<KeyPairPaths, KeyError> {
    let paths = KeyPairPaths::in_dir(dir);
    let pem = key.to_pkcs8_pem()?;
    create_private_dir(dir).map_err(|source| KeyError::Io {
        path: dir.to_owned(),
        source,
    })?;
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
    if let Err(error) = file
        .write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
    {
        // We created it, so it is ours to remove: a half-written key must not stay.
        drop(file);
        let _ = std::fs::remove_file(&paths.private_key);
        return Err(io(error));
    }
    std::fs::write(&paths.public_key, key.public_key().to_pem()).map_err(|source| {
        KeyError::Io {
            path: paths.public_key.clone(),
            source,
        }
    })?;
    Ok(paths)
}

/// Creates `dir` with mode 0700 (its missing parents with the usual mode); an existing
/// directory is left as it is.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        other => other,
    }
}

/// Reads a PKCS#8 PEM private key file; the key's [`source`](SigningKey::source) is
/// [`KeySource::File`] with the file's canonical path.
///
/// Symlinks are followed, but what they lead to must be a regular file of at most
/// [`MAX_KEY_FILE`] bytes (it is opened non-blocking, so a FIFO is refused rather than
/// waited on) and, on Unix, its mode must grant nothing to group or others
/// ([`KeyError::InsecurePermissions`], fixed by `chmod 600`), as ssh requires of its keys.
/// A file that is not a private key at all is a [`KeyError::PrivateKeyFormat`] whatever
/// its mode.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(KeyError::NotAFile {
            path: path.to_owned(),
            kind: file_kind(&metadata.file_type()),
        });
    }
    if metadata.len() > MAX_KEY_FILE {
        return Err(KeyError::TooLarge {
            path: path.to_owned(),
            size: metadata.len(),
        });
    }
    // The file may grow after the check: read one byte more than allowed to notice.
    let mut pem = String::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_string(&mut pem)
        .map_err(io)?;
    if pem.len() as u64 > MAX_KEY_FILE {
        return Err(KeyError::TooLarge {
            path: path.to_owned(),
            size: pem.len() as u64,
        });
    }
    // Parsed before the mode is checked only so that a file that is no private key at
    // all (say, the public key) is named as such rather than given a chmod hint; a key
    // others can read is never used.
    let mut key = SigningKey::from_pkcs8_pem(&pem)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::InsecurePermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    key.source = KeySource::File(std::fs::canonicalize(path).map_err(io)?);
    Ok(key)
}

fn file_kind(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "FIFO";
        }
        if kind.is_socket() {
            return "socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "device";
        }
    }
    if kind.is_dir() {
        "directory"
    } else {
        "special file"
    }
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
