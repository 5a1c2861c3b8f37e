//! What can go wrong reading, writing, generating or using a key.

use std::path::PathBuf;

use crate::agent;

/// The largest private key file [`load_signing_key`](super::load_signing_key) reads (a PEM
/// key is about 120 bytes).
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
