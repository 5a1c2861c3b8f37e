//! A signing key, held in memory or by an ssh-agent, and where it came from.

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::Signer;
use ed25519_dalek::pkcs8::DecodePrivateKey;

use super::error::KeyError;
use super::public::{PKCS8_PREFIX, PublicKey, pem_encode};
use crate::agent::{self, Agent, AgentError};

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
    pub(super) source: KeySource,
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
    /// key's [`source`](Self::source) is [`KeySource::Memory`]: [`load_signing_key`](super::load_signing_key)
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
    /// writes); keep it private (see [`write_key_pair`](super::write_key_pair)). A key held by an ssh-agent has
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
