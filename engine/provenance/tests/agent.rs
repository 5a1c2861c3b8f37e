//! Keys held by a real `ssh-agent` (OpenSSH): selection, signing, what the signatures
//! verify with, and every way the agent can fail.
//!
//! Each test starts its own agent on a socket in a fresh directory and kills it when it
//! ends, panics included. Without `ssh-agent`, `ssh-add` and `ssh-keygen` on the `PATH`
//! the tests print `NOT RUN` and pass, except when `CI` is set: then they fail.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flow_provenance::keys::{KeyError, KeySource, write_key_pair};
use flow_provenance::{Envelope, PublicKey, SigningKey, sshsig};

const TOOLS: [&str; 3] = ["ssh-agent", "ssh-add", "ssh-keygen"];

/// Whether the OpenSSH tools are there; if not, fails in CI and says so otherwise.
fn tools(test: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = TOOLS
        .into_iter()
        .filter(|tool| !std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "agent::{test}: {} missing from PATH, and CI is set",
        missing.join(", ")
    );
    // Straight to the stderr handle: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "agent::{test}: NOT RUN: {} not on PATH (install openssh-client)",
        missing.join(", ")
    );
    false
}

/// A private `ssh-agent -D`, killed on drop.
struct Agent {
    child: Child,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Agent {
    fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut agent = Agent { child, socket, dir };
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&agent.socket).is_err() {
            if let Some(status) = agent.child.try_wait().unwrap() {
                panic!("ssh-agent exited: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "ssh-agent did not listen"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        agent
    }

    /// A new key pair in the agent's directory: `ssh-keygen -t <kind>`, no passphrase.
    fn keygen(&self, name: &str, kind: &[&str], comment: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-C", comment, "-f"])
            .arg(&path)
            .args(kind)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-keygen: {out:?}");
        path
    }

    fn ed25519(&self, name: &str, comment: &str) -> PathBuf {
        self.keygen(name, &["-t", "ed25519"], comment)
    }

    /// `ssh-add` (or `ssh-add <extra>`) with this agent's socket, for that child only.
    fn ssh_add(&self, extra: &[&str], key: &Path) {
        let out = Command::new("ssh-add")
            .args(extra)
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-add {extra:?}: {out:?}");
    }

    fn add(&self, key: &Path) {
        self.ssh_add(&[], key);
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The fingerprint `ssh-keygen -l` prints for a key file.
fn ssh_keygen_fingerprint(key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen -l: {out:?}");
    // "256 SHA256:… comment (ED25519)"
    let text = String::from_utf8(out.stdout).unwrap();
    let fingerprint = text.split_whitespace().nth(1).unwrap().to_owned();
    assert!(fingerprint.starts_with("SHA256:"), "{text}");
    fingerprint
}

/// The ed25519 public key of an OpenSSH `.pub` file, read without flow's agent code.
fn public_key_file(key: &Path) -> PublicKey {
    use base64::Engine as _;
    let text = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let mut fields = text.split_whitespace();
    assert_eq!(fields.next(), Some("ssh-ed25519"));
    let blob = base64::engine::general_purpose::STANDARD
        .decode(fields.next().unwrap())
        .unwrap();
    // string "ssh-ed25519" (4 + 11 bytes), then string key (4 + 32 bytes).
    assert_eq!(blob.len(), 51);
    assert_eq!(&blob[..15], b"\0\0\0\x0bssh-ed25519");
    assert_eq!(&blob[15..19], &[0, 0, 0, 32]);
    PublicKey::from_bytes(&blob[19..].try_into().unwrap()).unwrap()
}

#[test]
fn selects_the_agent_key_by_comment_fingerprint_or_alone() {
    if !tools("selects_the_agent_key_by_comment_fingerprint_or_alone") {
        return;
    }
    let agent = Agent::start();
    let id = agent.ed25519("id", "flow-test");
    agent.add(&id);
    let fingerprint = ssh_keygen_fingerprint(&id);
    let expected = public_key_file(&id);

    for selector in ["flow-test", fingerprint.as_str(), ""] {
        let key = SigningKey::from_agent(&agent.socket, selector)
            .unwrap_or_else(|e| panic!("selector {selector:?}: {e}"));
        assert_eq!(key.public_key(), &expected, "selector {selector:?}");
        assert_eq!(key.keyid(), expected.keyid());
        assert_eq!(
            key.source(),
            KeySource::Agent {
                socket: std::fs::canonicalize(&agent.socket).unwrap(),
                fingerprint: fingerprint.clone(),
            }
        );
    }
    assert_eq!(sshsig::fingerprint(&expected), fingerprint);
}

#[test]
fn an_envelope_signed_through_the_agent_verifies_with_the_same_key_id() {
    if !tools("an_envelope_signed_through_the_agent_verifies_with_the_same_key_id") {
        return;
    }
    let agent = Agent::start();
    let id = agent.ed25519("id", "flow-test");
    agent.add(&id);
    let key = SigningKey::from_agent(&agent.socket, "flow-test").unwrap();
    let from_file = public_key_file(&id);
    assert_eq!(key.keyid(), from_file.keyid());

    let envelope = Envelope::sign(
        flow_provenance::IN_TOTO_PAYLOAD_TYPE,
        br#"{"_type":"https://in-toto.io/Statement/v1"}"#.to_vec(),
        &key,
    )
    .unwrap();
    assert_eq!(envelope.signatures[0].keyid, from_file.keyid());
    let verified = envelope.verify(std::slice::from_ref(&from_file)).unwrap();
    assert_eq!(verified.keyid(), from_file.keyid());

    // The run's other documents sign through the agent too.
    let layout = flow_provenance::sign_layout(
        &flow_provenance::LayoutSpec::new(
            vec![flow_provenance::LayoutStep::new("a", Vec::<String>::new())],
            vec![from_file.clone()],
        ),
        &key,
    )
    .unwrap();
    layout.verify(std::slice::from_ref(&from_file)).unwrap();
    let record = flow_provenance::RunChain::new("run", "ci", &layout)
        .sign(&key)
        .unwrap();
    record.verify(std::slice::from_ref(&from_file)).unwrap();

    // No private key to export.
    assert!(matches!(
        key.to_pkcs8_pem(),
        Err(KeyError::NotExportable { .. })
    ));
    let out = agent.dir.path().join("keys");
    assert!(matches!(
        write_key_pair(&out, &key),
        Err(KeyError::NotExportable { .. })
    ));
    assert!(!out.exists(), "nothing is written for an agent key");
}

#[test]
fn an_ssh_signature_made_through_the_agent_verifies_with_ssh_keygen() {
    use sha2::{Digest, Sha512};
    if !tools("an_ssh_signature_made_through_the_agent_verifies_with_ssh_keygen") {
        return;
    }
    let agent = Agent::start();
    let id = agent.ed25519("id", "flow-test");
    agent.add(&id);
    let key = SigningKey::from_agent(&agent.socket, "").unwrap();
    let dir = agent.dir.path();
    let message = b"release artifact\n";
    let sha: [u8; 64] = Sha512::digest(message).into();
    std::fs::write(
        dir.join("file.sig"),
        sshsig::sign(&key, "file", &sha).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("file"), message).unwrap();
    std::fs::write(dir.join("changed"), b"release artifact!\n").unwrap();
    // The allowed signer is the key file's own public line, not one flow wrote.
    let public_line = std::fs::read_to_string(id.with_extension("pub")).unwrap();
    std::fs::write(
        dir.join("allowed_signers"),
        format!("release@flow {public_line}"),
    )
    .unwrap();
    let verify = |file: &str| {
        Command::new("ssh-keygen")
            .current_dir(dir)
            .args([
                "-Y",
                "verify",
                "-f",
                "allowed_signers",
                "-I",
                "release@flow",
            ])
            .args(["-n", "file", "-s", "file.sig"])
            .stdin(std::fs::File::open(dir.join(file)).unwrap())
            .output()
            .unwrap()
    };
    let out = verify("file");
    assert!(out.status.success(), "ssh-keygen -Y verify: {out:?}");
    assert!(
        !verify("changed").status.success(),
        "a changed file must not verify"
    );
}

#[test]
fn an_unreachable_socket_is_named_with_the_os_error() {
    // Needs no OpenSSH tool: nothing listens.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("no-agent.sock");
    let error = SigningKey::from_agent(&socket, "").unwrap_err();
    assert!(
        matches!(&error, KeyError::AgentUnreachable { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&socket.display().to_string()), "{message}");
    assert!(message.contains("No such file or directory"), "{message}");

    // A regular file where the socket should be: connection refused, also named.
    std::fs::write(&socket, b"").unwrap();
    let error = SigningKey::from_agent(&socket, "").unwrap_err();
    assert!(
        matches!(error, KeyError::AgentUnreachable { .. }),
        "{error:?}"
    );
}

#[test]
fn an_agent_with_only_an_rsa_key_has_no_ed25519_key() {
    if !tools("an_agent_with_only_an_rsa_key_has_no_ed25519_key") {
        return;
    }
    let agent = Agent::start();
    let empty = SigningKey::from_agent(&agent.socket, "").unwrap_err();
    assert!(
        matches!(empty, KeyError::AgentNoEd25519Key { others: 0, .. }),
        "{empty:?}"
    );
    let rsa = agent.keygen("rsa", &["-t", "rsa", "-b", "2048"], "flow-test");
    agent.add(&rsa);
    let error = SigningKey::from_agent(&agent.socket, "flow-test").unwrap_err();
    assert!(
        matches!(error, KeyError::AgentNoEd25519Key { others: 1, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("holds no ed25519 key"), "{message}");
    assert!(
        message.contains(&agent.socket.display().to_string()),
        "{message}"
    );
}

#[test]
fn a_selector_that_matches_nothing_lists_the_agent_keys() {
    if !tools("a_selector_that_matches_nothing_lists_the_agent_keys") {
        return;
    }
    let agent = Agent::start();
    let first = agent.ed25519("first", "flow-test");
    let second = agent.ed25519("second", "other");
    let rsa = agent.keygen("rsa", &["-t", "rsa", "-b", "2048"], "rsa-key");
    for key in [&first, &second, &rsa] {
        agent.add(key);
    }
    let (first_fp, second_fp) = (
        ssh_keygen_fingerprint(&first),
        ssh_keygen_fingerprint(&second),
    );

    let error = SigningKey::from_agent(&agent.socket, "nope").unwrap_err();
    assert!(
        matches!(&error, KeyError::AgentNoMatch { available, .. } if available.len() == 2),
        "{error:?}"
    );
    let message = error.to_string();
    for expected in [
        "\"nope\"",
        &format!("{first_fp} flow-test"),
        &format!("{second_fp} other"),
    ] {
        assert!(message.contains(expected), "{expected} in {message}");
    }
    assert!(!message.contains("rsa-key"), "{message}");

    // Two ed25519 keys and no selector: which one is not guessed.
    let error = SigningKey::from_agent(&agent.socket, "").unwrap_err();
    assert!(
        matches!(error, KeyError::AgentAmbiguous { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&first_fp) && message.contains(&second_fp),
        "{message}"
    );

    // Each is still found by its own comment or fingerprint.
    let key = SigningKey::from_agent(&agent.socket, &second_fp).unwrap();
    assert_eq!(key.public_key(), &public_key_file(&second));
    let key = SigningKey::from_agent(&agent.socket, "flow-test").unwrap();
    assert_eq!(key.public_key(), &public_key_file(&first));
}

#[test]
fn a_killed_agent_makes_signing_fail_without_hanging() {
    if !tools("a_killed_agent_makes_signing_fail_without_hanging") {
        return;
    }
    let mut agent = Agent::start();
    let id = agent.ed25519("id", "flow-test");
    agent.add(&id);
    let key = SigningKey::from_agent(&agent.socket, "flow-test").unwrap();
    let signature = key.sign(b"before").unwrap();
    assert!(key.public_key().verify(b"before", &signature));
    agent.kill();

    let (send, receive) = std::sync::mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let _ = send.send(key.sign(b"after"));
    });
    let result = receive
        .recv_timeout(Duration::from_secs(30))
        .expect("signing hung on a dead agent");
    assert!(start.elapsed() < Duration::from_secs(10));
    let error = result.expect_err("a dead agent signed");
    assert!(
        matches!(error, KeyError::AgentUnreachable { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&agent.socket.display().to_string()),
        "{error}"
    );
}

#[test]
fn a_key_removed_from_the_agent_is_refused() {
    if !tools("a_key_removed_from_the_agent_is_refused") {
        return;
    }
    let agent = Agent::start();
    let id = agent.ed25519("id", "flow-test");
    agent.add(&id);
    let key = SigningKey::from_agent(&agent.socket, "flow-test").unwrap();
    agent.ssh_add(&["-d"], &id);
    let error = key.sign(b"message").unwrap_err();
    assert!(matches!(error, KeyError::AgentRefused { .. }), "{error:?}");
    let error = flow_provenance::RunChain::new(
        "run",
        "ci",
        &Envelope::sign("t", vec![], &SigningKey::from_seed(&[1; 32])).unwrap(),
    )
    .sign(&key)
    .unwrap_err();
    assert!(
        matches!(
            error,
            flow_provenance::ProvenanceError::Sign(KeyError::AgentRefused { .. })
        ),
        "{error:?}"
    );
}

#[test]
fn a_message_over_the_agent_limit_is_refused_before_sending() {
    if !tools("a_message_over_the_agent_limit_is_refused_before_sending") {
        return;
    }
    let agent = Agent::start();
    let id = agent.ed25519("id", "flow-test");
    agent.add(&id);
    let key = SigningKey::from_agent(&agent.socket, "").unwrap();
    // ssh-agent reads requests of up to 256 KiB: 200 KiB signs.
    let big = vec![b'x'; 200 * 1024];
    let signature = key.sign(&big).unwrap();
    assert!(key.public_key().verify(&big, &signature));
    let huge = vec![b'x'; 300 * 1024];
    let error = key.sign(&huge).unwrap_err();
    assert!(
        matches!(error, KeyError::AgentMessageTooLarge { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("at most 262144 bytes"),
        "{error}"
    );
    // The agent is still fine afterwards.
    key.sign(b"small").unwrap();
}
