//! Just enough of the ssh-agent protocol (draft-miller-ssh-agent) to list an agent's
//! identities and to have it sign with one of them.
//!
//! Every message is a `uint32` length followed by that many bytes, the first of which is
//! the message type; strings are a `uint32` length and the bytes. One connection per
//! request, so a [`crate::SigningKey`] shared between threads needs no lock and survives
//! an agent restarted behind the same socket.
//!
//! The agent is not trusted with our memory or our time: an answer may not announce more
//! than [`MAX_MESSAGE`] bytes (OpenSSH's own limit), every count inside an answer is
//! checked against the bytes actually there before anything is allocated, and a request
//! that gets no complete answer within the timeout (10 s by default) fails.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::ssh_wire::{ED25519, put_string};

/// The largest message sent to or accepted from an agent: 256 KiB, the limit OpenSSH's
/// `ssh-agent` applies to what it reads (it drops the connection on a longer request).
pub(crate) const MAX_MESSAGE: usize = 256 * 1024;
/// How long one request may take, connection to complete answer.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

const SSH_AGENT_FAILURE: u8 = 5;
const SSH2_AGENTC_REQUEST_IDENTITIES: u8 = 11;
pub(crate) const SSH2_AGENT_IDENTITIES_ANSWER: u8 = 12;
const SSH2_AGENTC_SIGN_REQUEST: u8 = 13;
pub(crate) const SSH2_AGENT_SIGN_RESPONSE: u8 = 14;

/// What went wrong talking to an agent; the caller adds which agent.
#[derive(Debug)]
pub(crate) enum AgentError {
    /// The socket could not be connected to.
    Connect(io::Error),
    /// Writing the request or reading the answer failed, or took too long.
    Io(io::Error),
    /// The answer is not what the protocol allows.
    Protocol(String),
    /// The agent answered `SSH_AGENT_FAILURE`.
    Failure,
    /// The request is longer than the agent would accept.
    RequestTooLarge(usize),
}

/// One identity the agent offers: its public key blob (SSH wire form) and comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The public key in SSH wire form (`string type ‖ key-specific fields`).
    pub blob: Vec<u8>,
    /// The comment (usually what `ssh-add` was given, or the key file's comment).
    pub comment: String,
}

impl Identity {
    /// The raw ed25519 public key, if this is a plain `ssh-ed25519` key.
    pub fn ed25519(&self) -> Option<[u8; 32]> {
        let mut reader = Reader::new(&self.blob);
        if reader.string().ok()? != ED25519.as_bytes() {
            return None;
        }
        let key = reader.string().ok()?.try_into().ok()?;
        reader.is_empty().then_some(key)
    }
}

/// An agent reached through a Unix socket.
#[derive(Debug, Clone)]
pub(crate) struct Agent {
    socket: PathBuf,
    timeout: Duration,
}

impl Agent {
    /// The agent listening on `socket`, with the default [`TIMEOUT`].
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_owned(),
            timeout: TIMEOUT,
        }
    }

    /// The same agent with another timeout per request.
    #[cfg(test)]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The identities the agent holds, of every type, in its order.
    pub fn identities(&self) -> Result<Vec<Identity>, AgentError> {
        let answer = self.request(&[SSH2_AGENTC_REQUEST_IDENTITIES])?;
        let mut reader = Reader::new(&answer);
        match reader.byte()? {
            SSH2_AGENT_IDENTITIES_ANSWER => {}
            SSH_AGENT_FAILURE => return Err(AgentError::Failure),
            other => return Err(unexpected(other, "the identities answer (12)")),
        }
        let count = reader.u32()?;
        // Each identity takes at least two empty strings: 8 bytes. Checking the count
        // first keeps a lying count from costing anything.
        if u64::from(count) * 8 > reader.remaining() as u64 {
            return Err(AgentError::Protocol(format!(
                "the identities answer announces {count} keys in {} bytes",
                reader.remaining()
            )));
        }
        let mut identities = Vec::new();
        for _ in 0..count {
            let blob = reader.string()?.to_vec();
            let comment = String::from_utf8_lossy(reader.string()?).into_owned();
            identities.push(Identity { blob, comment });
        }
        Ok(identities)
    }

    /// Has the agent sign `data` with the key whose wire form is `blob`; returns the
    /// signature bytes of an `ssh-ed25519` signature (unverified: the caller checks
    /// them against the key).
    pub fn sign_ed25519(&self, blob: &[u8], data: &[u8]) -> Result<Vec<u8>, AgentError> {
        let mut request = vec![SSH2_AGENTC_SIGN_REQUEST];
        put_string(&mut request, blob);
        put_string(&mut request, data);
        request.extend_from_slice(&0u32.to_be_bytes());
        let answer = self.request(&request)?;
        let mut reader = Reader::new(&answer);
        match reader.byte()? {
            SSH2_AGENT_SIGN_RESPONSE => {}
            SSH_AGENT_FAILURE => return Err(AgentError::Failure),
            other => return Err(unexpected(other, "a signature (14)")),
        }
        let mut signature = Reader::new(reader.string()?);
        let kind = signature.string()?;
        if kind != ED25519.as_bytes() {
            return Err(AgentError::Protocol(format!(
                "asked for an ed25519 signature, got one of type {:?}",
                String::from_utf8_lossy(kind)
            )));
        }
        Ok(signature.string()?.to_vec())
    }

    /// Sends one message and reads the answer, within the timeout.
    fn request(&self, body: &[u8]) -> Result<Vec<u8>, AgentError> {
        if body.len() > MAX_MESSAGE {
            return Err(AgentError::RequestTooLarge(body.len()));
        }
        let deadline = Instant::now() + self.timeout;
        let mut stream = connect(&self.socket, self.timeout).map_err(AgentError::Connect)?;
        let mut message = Vec::with_capacity(4 + body.len());
        message.extend_from_slice(&(body.len() as u32).to_be_bytes());
        message.extend_from_slice(body);
        stream
            .write_all(&message)
            .and_then(|()| stream.flush())
            .map_err(|e| self.io_error(e))?;
        let mut header = [0u8; 4];
        self.read_full(&mut stream, &mut header, deadline)?;
        let length = u32::from_be_bytes(header) as usize;
        if length == 0 {
            return Err(AgentError::Protocol("an empty answer".into()));
        }
        if length > MAX_MESSAGE {
            return Err(AgentError::Protocol(format!(
                "the answer announces {length} bytes, more than the {} KiB limit",
                MAX_MESSAGE / 1024
            )));
        }
        let mut answer = vec![0u8; length];
        self.read_full(&mut stream, &mut answer, deadline)?;
        Ok(answer)
    }

    /// Fills `buf`, failing once `deadline` has passed: each read may wait only for what
    /// is left of the request's time.
    fn read_full(
        &self,
        stream: &mut Stream,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<(), AgentError> {
        let mut filled = 0;
        while filled < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.io_error(io::ErrorKind::TimedOut.into()));
            }
            stream
                .set_read_timeout(Some(left))
                .map_err(|e| self.io_error(e))?;
            match stream.read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(AgentError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the agent closed the connection before answering in full",
                    )));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
        Ok(())
    }

    /// A socket timeout reads as `WouldBlock` ("resource temporarily unavailable"); say
    /// what it means.
    fn io_error(&self, error: io::Error) -> AgentError {
        match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => AgentError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {} s", self.timeout.as_secs_f64()),
            )),
            _ => AgentError::Io(error),
        }
    }
}

#[cfg(unix)]
type Stream = std::os::unix::net::UnixStream;

#[cfg(unix)]
fn connect(socket: &Path, timeout: Duration) -> io::Result<Stream> {
    let stream = Stream::connect(socket)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// Where there are no Unix sockets, the stream cannot exist.
#[cfg(not(unix))]
enum Stream {}

#[cfg(not(unix))]
fn connect(_socket: &Path, _timeout: Duration) -> io::Result<Stream> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "ssh-agent sockets are Unix sockets, which this platform lacks",
    ))
}

#[cfg(not(unix))]
impl Stream {
    fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        match *self {}
    }
}

#[cfg(not(unix))]
impl Read for Stream {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        match *self {}
    }
}

#[cfg(not(unix))]
impl Write for Stream {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        match *self {}
    }
    fn flush(&mut self) -> io::Result<()> {
        match *self {}
    }
}

fn unexpected(kind: u8, expected: &str) -> AgentError {
    AgentError::Protocol(format!(
        "answered with message type {kind} instead of {expected}"
    ))
}

fn truncated(wanted: usize, left: usize) -> AgentError {
    AgentError::Protocol(format!(
        "a field of {wanted} bytes where only {left} remain"
    ))
}

/// Reads SSH wire fields from a byte slice, never past its end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn remaining(&self) -> usize {
        self.rest.len()
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], AgentError> {
        let (field, rest) = self
            .rest
            .split_at_checked(n)
            .ok_or_else(|| truncated(n, self.rest.len()))?;
        self.rest = rest;
        Ok(field)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], AgentError> {
        let (field, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or_else(|| truncated(N, self.rest.len()))?;
        self.rest = rest;
        Ok(*field)
    }

    fn byte(&mut self) -> Result<u8, AgentError> {
        let [byte] = self.array()?;
        Ok(byte)
    }

    fn u32(&mut self) -> Result<u32, AgentError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<&'a [u8], AgentError> {
        let length = self.u32()? as usize;
        self.take(length)
    }
}

#[cfg(all(test, unix))]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A fake agent on a socket in a fresh directory: each accepted connection gets the
    /// next of `answers` (raw bytes, length prefix included) after its request is read.
    pub(crate) fn fake_agent(answers: Vec<Vec<u8>>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            for answer in answers {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                let mut header = [0u8; 4];
                if stream.read_exact(&mut header).is_err() {
                    return;
                }
                let mut request = vec![0u8; u32::from_be_bytes(header) as usize];
                if stream.read_exact(&mut request).is_err() {
                    return;
                }
                let _ = stream.write_all(&answer);
                // Keep the connection open a moment, as a slow agent would.
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        (dir, socket)
    }

    pub(crate) fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn parses_identities_and_keeps_their_order() {
        let mut body = vec![SSH2_AGENT_IDENTITIES_ANSWER];
        body.extend_from_slice(&2u32.to_be_bytes());
        let mut blob = Vec::new();
        put_string(&mut blob, ED25519.as_bytes());
        put_string(&mut blob, &[7; 32]);
        put_string(&mut body, &blob);
        put_string(&mut body, b"first");
        put_string(&mut body, b"\0\0\0\x07ssh-rsa");
        put_string(&mut body, b"second");
        let (_dir, socket) = fake_agent(vec![framed(&body)]);
        let identities = Agent::new(&socket).identities().unwrap();
        assert_eq!(identities.len(), 2);
        assert_eq!(identities[0].comment, "first");
        assert_eq!(identities[0].ed25519(), Some([7; 32]));
        assert_eq!(identities[1].comment, "second");
        assert_eq!(identities[1].ed25519(), None);
    }

    #[test]
    fn a_huge_announced_length_is_refused_before_allocating() {
        let (_dir, socket) = fake_agent(vec![u32::MAX.to_be_bytes().to_vec()]);
        let Err(AgentError::Protocol(message)) = Agent::new(&socket).identities() else {
            panic!("a 4 GiB answer was accepted");
        };
        assert!(message.contains("256 KiB"), "{message}");
    }

    #[test]
    fn a_lying_key_count_is_a_protocol_error() {
        let mut body = vec![SSH2_AGENT_IDENTITIES_ANSWER];
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        let (_dir, socket) = fake_agent(vec![framed(&body)]);
        assert!(matches!(
            Agent::new(&socket).identities(),
            Err(AgentError::Protocol(_))
        ));
    }

    #[test]
    fn truncated_fields_and_answers_are_errors() {
        let mut body = vec![SSH2_AGENT_IDENTITIES_ANSWER];
        body.extend_from_slice(&1u32.to_be_bytes());
        body.extend_from_slice(&1000u32.to_be_bytes());
        body.extend_from_slice(&[0; 4]);
        // The second answer announces 100 bytes and sends 3 before closing.
        let mut short = 100u32.to_be_bytes().to_vec();
        short.extend_from_slice(&[12, 0, 0]);
        let (_dir, socket) = fake_agent(vec![framed(&body), short]);
        let agent = Agent::new(&socket);
        assert!(matches!(agent.identities(), Err(AgentError::Protocol(_))));
        assert!(matches!(agent.identities(), Err(AgentError::Io(_))));
    }

    #[test]
    fn failure_and_unexpected_answers_are_named() {
        let (_dir, socket) = fake_agent(vec![framed(&[SSH_AGENT_FAILURE]), framed(&[99])]);
        let agent = Agent::new(&socket);
        assert!(matches!(
            agent.sign_ed25519(b"blob", b"data"),
            Err(AgentError::Failure)
        ));
        let Err(AgentError::Protocol(message)) = agent.sign_ed25519(b"blob", b"data") else {
            panic!("type 99 accepted");
        };
        assert!(message.contains("type 99"), "{message}");
    }

    #[test]
    fn a_silent_agent_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        // Accepts (the kernel does, into the backlog) and never answers.
        let _listener = UnixListener::bind(&socket).unwrap();
        let start = Instant::now();
        let result = Agent::new(&socket)
            .with_timeout(Duration::from_millis(300))
            .identities();
        let Err(AgentError::Io(error)) = result else {
            panic!("a silent agent answered: {result:?}");
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        assert!(error.to_string().contains("no answer within"), "{error}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn an_oversized_request_is_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let agent = Agent::new(&dir.path().join("none.sock"));
        assert!(matches!(
            agent.sign_ed25519(b"blob", &vec![0; MAX_MESSAGE]),
            Err(AgentError::RequestTooLarge(n)) if n > MAX_MESSAGE
        ));
    }
}
