//! Delivering a run's CDEvents (see [`crate::cdevents`]) to where `flow run
//! --events-to` says: CloudEvents 1.0 in HTTP binary mode to `http://` endpoints, JSON
//! lines to `file:PATH`, core NATS `PUB` to `nats://HOST:PORT/SUBJECT`.
//!
//! Delivery never slows or fails a run: [`EventDelivery::send`] maps an event and puts
//! the CDEvents in each target's bounded queue without waiting; one background task per
//! target sends them in order, trying again with exponential backoff after a connection
//! error, a timeout or a 5xx. What cannot be queued (a full queue), what was refused or
//! still failed after the last attempt, and what is still queued when
//! [`EventDelivery::finish`]'s bounded wait ends are dropped and counted.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cdevents::CdEventMapper;
use crate::events::Event;

/// Where to send CDEvents: parsed from `http://HOST[:PORT][/PATH]`, `file:PATH` or
/// `nats://HOST[:PORT]/SUBJECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTarget {
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Http {
        host: String,
        port: u16,
        path: String,
    },
    File(PathBuf),
    Nats {
        host: String,
        port: u16,
        subject: String,
    },
}

impl EventTarget {
    /// Parses a target; the error names `text` and says what is accepted.
    pub fn parse(text: &str) -> Result<EventTarget, String> {
        let kind = if let Some(rest) = text.strip_prefix("http://") {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let (host, port) = host_port(text, authority, 80)?;
            if path.chars().any(|c| c.is_control() || c == ' ') {
                return Err(format!(
                    "{text:?}: the path must not hold spaces or control characters"
                ));
            }
            Kind::Http {
                host,
                port,
                path: path.to_owned(),
            }
        } else if text.starts_with("https://") {
            return Err(format!(
                "{text:?}: https is not supported; use http:// (to a local relay), file: or nats://"
            ));
        } else if let Some(rest) = text.strip_prefix("file:") {
            let path = match rest.strip_prefix("//") {
                Some(abs) if abs.starts_with('/') => abs,
                Some(_) => {
                    return Err(format!(
                        "{text:?}: a file URL names no host: write file:PATH or file:///PATH"
                    ));
                }
                None => rest,
            };
            if path.is_empty() {
                return Err(format!("{text:?}: no file: write file:PATH"));
            }
            Kind::File(PathBuf::from(path))
        } else if let Some(rest) = text.strip_prefix("nats://") {
            let Some((authority, subject)) = rest.split_once('/') else {
                return Err(format!(
                    "{text:?}: no subject: write nats://HOST:PORT/SUBJECT"
                ));
            };
            let (host, port) = host_port(text, authority, 4222)?;
            if subject.is_empty()
                || subject
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '/')
            {
                return Err(format!(
                    "{text:?}: the subject must be one word of NATS tokens such as `flow.events`"
                ));
            }
            Kind::Nats {
                host,
                port,
                subject: subject.to_owned(),
            }
        } else {
            return Err(format!(
                "{text:?}: unsupported scheme; use http://, file: or nats://"
            ));
        };
        Ok(EventTarget {
            text: text.to_owned(),
            kind,
        })
    }
}

impl fmt::Display for EventTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for EventTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventTarget::parse(s)
    }
}

/// `HOST[:PORT]` or `[V6][:PORT]`.
fn host_port(text: &str, authority: &str, default: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("{text:?}: an IPv6 address needs its closing `]`"));
        };
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@')
    {
        return Err(format!("{text:?}: no host, or not a host name"));
    }
    let port = match port {
        None => default,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("{text:?}: `{p}` is not a port")),
        },
    };
    Ok((host.to_owned(), port))
}

/// How events are delivered: their source, each target's queue, the attempts.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    source: Option<String>,
    queue: usize,
    attempts: u32,
    backoff: Duration,
    timeout: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            source: None,
            queue: 1024,
            attempts: 4,
            backoff: Duration::from_millis(100),
            timeout: Duration::from_secs(1),
        }
    }
}

impl DeliveryOptions {
    /// The events' `context.source` (a URI reference; default `/flow/<pipeline>`).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// At most this many events wait for each target (default 1024); more are dropped.
    pub fn queue(mut self, events: usize) -> Self {
        self.queue = events.max(1);
        self
    }

    /// Attempts per event (default 4), the wait after the first failed one (default
    /// 100 ms, doubling after each), and the time one attempt may take (default 1 s).
    pub fn attempts(mut self, attempts: u32, backoff: Duration, timeout: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self.timeout = timeout;
        self
    }
}

/// What was delivered to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkReport {
    /// The target, as given.
    pub target: String,
    /// Events it took.
    pub sent: u64,
    /// Events dropped, by reason (`connection refused`, `HTTP 503`, `queue full`...).
    pub dropped: BTreeMap<String, u64>,
}

impl SinkReport {
    /// All events dropped.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

impl fmt::Display for SinkReport {
    /// `N sent to TARGET, M dropped (REASONS)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sent to {}, {} dropped",
            self.sent,
            self.target,
            self.dropped_total()
        )?;
        match self.dropped.len() {
            0 => Ok(()),
            1 => write!(
                f,
                " ({})",
                self.dropped.keys().next().unwrap_or(&String::new())
            ),
            _ => {
                let reasons: Vec<String> = self
                    .dropped
                    .iter()
                    .map(|(r, n)| format!("{n} {r}"))
                    .collect();
                write!(f, " ({})", reasons.join(", "))
            }
        }
    }
}

/// One CDEvent ready to go: its JSON and its CloudEvents attributes.
#[derive(Debug)]
struct Outgoing {
    json: String,
    id: String,
    source: String,
    kind: String,
    time: String,
}

impl Outgoing {
    fn of(event: &serde_json::Value) -> Outgoing {
        let attr = |name: &str| header_safe(event["context"][name].as_str().unwrap_or_default());
        Outgoing {
            json: event.to_string(),
            id: attr("id"),
            source: attr("source"),
            kind: attr("type"),
            time: attr("timestamp"),
        }
    }
}

/// A header value without the characters that would end it.
fn header_safe(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

#[derive(Debug, Default)]
struct Counts {
    /// Queued.
    accepted: AtomicU64,
    /// Queued, then sent or dropped.
    settled: AtomicU64,
    sent: AtomicU64,
    dropped: Mutex<BTreeMap<String, u64>>,
}

impl Counts {
    fn drop_one(&self, reason: &str) {
        if let Ok(mut dropped) = self.dropped.lock() {
            *dropped.entry(reason.to_owned()).or_default() += 1;
        }
    }
}

#[derive(Debug)]
struct Sink {
    target: EventTarget,
    tx: Mutex<Option<mpsc::Sender<Arc<Outgoing>>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    counts: Arc<Counts>,
}

#[derive(Debug)]
struct Inner {
    mapper: Mutex<CdEventMapper>,
    sinks: Vec<Sink>,
}

/// Sends one run's events, as CDEvents, to its targets in the background (see the
/// module's documentation). Give a clone to [`crate::RunOptions::deliver_events`], or
/// call [`EventDelivery::send`] with each event; then [`EventDelivery::finish`].
#[derive(Debug, Clone)]
pub struct EventDelivery {
    inner: Arc<Inner>,
}

impl EventDelivery {
    /// Starts one background task per target, on the current Tokio runtime (an error
    /// outside of one).
    pub fn start(
        targets: Vec<EventTarget>,
        options: DeliveryOptions,
    ) -> std::io::Result<EventDelivery> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| std::io::Error::other(format!("events need a Tokio runtime: {e}")))?;
        let options = Arc::new(options);
        let sinks = targets
            .into_iter()
            .map(|target| {
                let (tx, rx) = mpsc::channel(options.queue);
                let counts = Arc::new(Counts::default());
                let task = runtime.spawn(serve(
                    target.kind.clone(),
                    rx,
                    Arc::clone(&counts),
                    Arc::clone(&options),
                ));
                Sink {
                    target,
                    tx: Mutex::new(Some(tx)),
                    task: Mutex::new(Some(task)),
                    counts,
                }
            })
            .collect();
        Ok(EventDelivery {
            inner: Arc::new(Inner {
                mapper: Mutex::new(CdEventMapper::new(options.source.clone())),
                sinks,
            }),
        })
    }

    /// Maps `event` to CDEvents and queues them for every target, without waiting.
    pub fn send(&self, event: &Event) {
        let events = match self.inner.mapper.lock() {
            Ok(mut mapper) => mapper.map(event),
            Err(_) => return,
        };
        for event in events {
            let outgoing = Arc::new(Outgoing::of(&event));
            for sink in &self.inner.sinks {
                let Ok(tx) = sink.tx.lock() else { continue };
                let Some(tx) = tx.as_ref() else {
                    sink.counts.drop_one("sent after the run ended");
                    continue;
                };
                match tx.try_send(Arc::clone(&outgoing)) {
                    Ok(()) => {
                        sink.counts.accepted.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => sink.counts.drop_one("queue full"),
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        sink.counts.drop_one("delivery stopped")
                    }
                }
            }
        }
    }

    /// Stops taking events and waits at most `wait` in all for the queued ones to be
    /// delivered; what is still queued then is dropped. Reports per target.
    pub async fn finish(&self, wait: Duration) -> Vec<SinkReport> {
        let deadline = tokio::time::Instant::now() + wait;
        for sink in &self.inner.sinks {
            if let Ok(mut tx) = sink.tx.lock() {
                tx.take();
            }
        }
        for sink in &self.inner.sinks {
            let task = sink.task.lock().ok().and_then(|mut t| t.take());
            if let Some(mut task) = task
                && tokio::time::timeout_at(deadline, &mut task).await.is_err()
            {
                task.abort();
            }
        }
        let late = format!("not delivered within {}", describe(wait));
        self.inner
            .sinks
            .iter()
            .map(|sink| {
                let counts = &sink.counts;
                let pending = counts
                    .accepted
                    .load(Ordering::SeqCst)
                    .saturating_sub(counts.settled.load(Ordering::SeqCst));
                let mut dropped = counts.dropped.lock().map(|d| d.clone()).unwrap_or_default();
                if pending > 0 {
                    *dropped.entry(late.clone()).or_default() += pending;
                }
                SinkReport {
                    target: sink.target.to_string(),
                    sent: counts.sent.load(Ordering::SeqCst),
                    dropped,
                }
            })
            .collect()
    }
}

fn describe(wait: Duration) -> String {
    if wait.subsec_millis() == 0 {
        format!("{}s", wait.as_secs())
    } else {
        format!("{}ms", wait.as_millis())
    }
}

/// Why an attempt failed: worth another (`Retry`) or not.
enum Failed {
    Retry(String),
    Final(String),
}

/// A target's connection, kept between events where the protocol allows.
enum Conn {
    None,
    File(std::fs::File),
    Nats(Box<NatsConn>),
}

/// One target's task: sends what its queue holds, in order, until it is closed.
async fn serve(
    kind: Kind,
    mut rx: mpsc::Receiver<Arc<Outgoing>>,
    counts: Arc<Counts>,
    options: Arc<DeliveryOptions>,
) {
    let mut conn = Conn::None;
    // After an event failed every attempt, the next ones get one attempt each until
    // one goes through: a target that is down costs no backoff per event.
    let mut down = false;
    while let Some(event) = rx.recv().await {
        let attempts = if down { 1 } else { options.attempts };
        let mut backoff = options.backoff;
        let mut outcome = Err(String::new());
        for attempt in 1..=attempts {
            let tried =
                tokio::time::timeout(options.timeout, attempt_once(&kind, &mut conn, &event))
                    .await
                    .unwrap_or_else(|_| Err(Failed::Retry("timed out".into())));
            match tried {
                Ok(()) => {
                    outcome = Ok(());
                    break;
                }
                Err(Failed::Final(reason)) => {
                    conn = Conn::None;
                    outcome = Err(reason);
                    break;
                }
                Err(Failed::Retry(reason)) => {
                    conn = Conn::None;
                    outcome = Err(reason);
                    if attempt < attempts {
                        tokio::time::sleep(backoff).await;
                        backoff = backoff.saturating_mul(2);
                    }
                }
            }
        }
        match outcome {
            Ok(()) => {
                down = false;
                counts.sent.fetch_add(1, Ordering::SeqCst);
            }
            Err(reason) => {
                down = true;
                counts.drop_one(&reason);
            }
        }
        counts.settled.fetch_add(1, Ordering::SeqCst);
    }
}

async fn attempt_once(kind: &Kind, conn: &mut Conn, event: &Outgoing) -> Result<(), Failed> {
    match kind {
        Kind::Http { host, port, path } => post(host, *port, path, event).await,
        Kind::File(path) => {
            // A line of a local file: written at once, as one write.
            use std::io::Write;
            if !matches!(conn, Conn::File(_)) {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        Failed::Final(format!("cannot open {}: {}", path.display(), io_reason(&e)))
                    })?;
                *conn = Conn::File(file);
            }
            let Conn::File(file) = conn else {
                return Err(Failed::Final("no file".into()));
            };
            let mut line = event.json.clone();
            line.push('\n');
            file.write_all(line.as_bytes()).map_err(|e| {
                Failed::Final(format!(
                    "cannot write {}: {}",
                    path.display(),
                    io_reason(&e)
                ))
            })
        }
        Kind::Nats {
            host,
            port,
            subject,
        } => {
            if !matches!(conn, Conn::Nats(_)) {
                *conn = Conn::Nats(Box::new(NatsConn::connect(host, *port).await?));
            }
            let Conn::Nats(nats) = conn else {
                return Err(Failed::Final("no connection".into()));
            };
            nats.publish(subject, event.json.as_bytes()).await
        }
    }
}

fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::ConnectionReset => "connection reset".into(),
        ErrorKind::ConnectionAborted => "connection aborted".into(),
        ErrorKind::TimedOut => "timed out".into(),
        ErrorKind::UnexpectedEof => "connection closed".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::NotFound => "not found".into(),
        _ => e.to_string(),
    }
}

/// One CloudEvent in HTTP binary mode: the CDEvent as the body, its context as `ce-`
/// headers, sent with hyper's HTTP/1.1 client. A 2xx is delivered; a 5xx, a 408 or
/// a 429 is worth another attempt.
async fn post(host: &str, port: u16, path: &str, event: &Outgoing) -> Result<(), Failed> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let stream = TcpStream::connect(&authority)
        .await
        .map_err(|e| Failed::Retry(io_reason(&e)))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream))
            .await
            .map_err(|e| Failed::Retry(e.to_string()))?;
    let request = http::Request::post(path)
        .header(http::header::HOST, &authority)
        .header(
            http::header::USER_AGENT,
            concat!("flow/", env!("CARGO_PKG_VERSION")),
        )
        .header("ce-specversion", "1.0")
        .header("ce-id", &event.id)
        .header("ce-source", &event.source)
        .header("ce-type", &event.kind)
        .header("ce-time", &event.time)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            event.json.clone(),
        )))
        .map_err(|e| Failed::Final(format!("cannot make the request: {e}")))?;
    let response = sender.send_request(request);
    tokio::pin!(response);
    // The connection is driven while the response head comes (a receiver may answer
    // and close at once); its body is not read.
    let status = tokio::select! {
        biased;
        response = &mut response => response,
        done = connection => match done {
            Ok(()) => (&mut response).await,
            Err(e) => return Err(Failed::Retry(e.to_string())),
        },
    }
    .map_err(|e| Failed::Retry(e.to_string()))?
    .status();
    match status.as_u16() {
        _ if status.is_success() => Ok(()),
        code if code >= 500 || code == 408 || code == 429 => {
            Err(Failed::Retry(format!("HTTP {code}")))
        }
        code => Err(Failed::Final(format!("HTTP {code}"))),
    }
}

/// A core NATS connection (the text protocol: `INFO`, `CONNECT`, `PUB`, `PING`/`PONG`).
struct NatsConn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl NatsConn {
    async fn connect(host: &str, port: u16) -> Result<NatsConn, Failed> {
        let stream = TcpStream::connect((host, port))
            .await
            .map_err(|e| Failed::Retry(io_reason(&e)))?;
        let (read, writer) = stream.into_split();
        let mut conn = NatsConn {
            reader: BufReader::new(read),
            writer,
        };
        let info = conn.line().await?;
        if !info.starts_with("INFO") {
            return Err(Failed::Retry("not a NATS server".into()));
        }
        conn.write(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"flow\"}\r\n")
            .await?;
        Ok(conn)
    }

    /// Publishes, then waits for the server's `PONG`: the message was taken.
    async fn publish(&mut self, subject: &str, payload: &[u8]) -> Result<(), Failed> {
        let mut message = format!("PUB {subject} {}\r\n", payload.len()).into_bytes();
        message.extend_from_slice(payload);
        message.extend_from_slice(b"\r\nPING\r\n");
        self.write(&message).await?;
        loop {
            let line = self.line().await?;
            if line == "PONG" {
                return Ok(());
            } else if line == "PING" {
                self.write(b"PONG\r\n").await?;
            } else if let Some(error) = line.strip_prefix("-ERR") {
                return Err(Failed::Retry(format!("NATS error:{}", header_safe(error))));
            }
            // `+OK` and `INFO` need nothing.
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Failed> {
        self.writer
            .write_all(bytes)
            .await
            .map_err(|e| Failed::Retry(io_reason(&e)))
    }

    /// One protocol line, without its `\r\n` (at most 64 KiB).
    async fn line(&mut self) -> Result<String, Failed> {
        let mut line = String::new();
        let n = (&mut self.reader)
            .take(64 * 1024)
            .read_line(&mut line)
            .await
            .map_err(|e| Failed::Retry(io_reason(&e)))?;
        if n == 0 {
            return Err(Failed::Retry("connection closed".into()));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_or_say_what_is_wrong() {
        assert_eq!(
            EventTarget::parse("http://127.0.0.1:8080/hook")
                .unwrap()
                .kind,
            Kind::Http {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/hook".into()
            }
        );
        assert_eq!(
            EventTarget::parse("http://[::1]").unwrap().kind,
            Kind::Http {
                host: "::1".into(),
                port: 80,
                path: "/".into()
            }
        );
        assert_eq!(
            EventTarget::parse("file:events.jsonl").unwrap().kind,
            Kind::File("events.jsonl".into())
        );
        assert_eq!(
            EventTarget::parse("file:///tmp/e.jsonl").unwrap().kind,
            Kind::File("/tmp/e.jsonl".into())
        );
        assert_eq!(
            EventTarget::parse("nats://localhost/flow.events")
                .unwrap()
                .kind,
            Kind::Nats {
                host: "localhost".into(),
                port: 4222,
                subject: "flow.events".into()
            }
        );
        assert_eq!(
            EventTarget::parse("ftp://x").unwrap_err(),
            r#""ftp://x": unsupported scheme; use http://, file: or nats://"#
        );
        for bad in [
            "https://x",
            "http://",
            "http://h:0/",
            "http://h:99999/",
            "http://h/a b",
            "file:",
            "file://host/x",
            "nats://h:4222",
            "nats://h:4222/",
            "nats://h/a b",
            "",
        ] {
            let e = EventTarget::parse(bad).unwrap_err();
            assert!(e.starts_with(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn a_report_says_how_many_and_why() {
        let mut report = SinkReport {
            target: "http://h/".into(),
            sent: 3,
            dropped: BTreeMap::new(),
        };
        assert_eq!(report.to_string(), "3 sent to http://h/, 0 dropped");
        report.dropped.insert("connection refused".into(), 2);
        assert_eq!(
            report.to_string(),
            "3 sent to http://h/, 2 dropped (connection refused)"
        );
        report.dropped.insert("queue full".into(), 1);
        assert_eq!(
            report.to_string(),
            "3 sent to http://h/, 3 dropped (2 connection refused, 1 queue full)"
        );
    }

    fn run_started() -> Event {
        Event::RunStarted {
            run: "r1".into(),
            pipeline: "p".into(),
            steps: vec![],
            workspace: "/nonexistent".into(),
            at: 0,
        }
    }

    #[tokio::test]
    async fn a_receiver_that_is_down_costs_one_backoff_then_one_attempt_per_event() {
        // A port nothing listens on: bound, then closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let target = EventTarget::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let options = DeliveryOptions::default().attempts(
            3,
            Duration::from_millis(50),
            Duration::from_secs(1),
        );
        let delivery = EventDelivery::start(vec![target], options).unwrap();
        for _ in 0..5 {
            delivery.send(&run_started()); // two CDEvents each
        }
        let started = std::time::Instant::now();
        let reports = delivery.finish(Duration::from_secs(5)).await;
        assert_eq!(reports[0].sent, 0);
        assert_eq!(
            reports[0].dropped,
            BTreeMap::from([("connection refused".to_owned(), 10)])
        );
        // The first event: 3 attempts (50 + 100 ms apart); the others one each.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_what_is_left_at_the_deadline_is_counted() {
        // A listener that accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let target = EventTarget::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let options = DeliveryOptions::default().queue(3).attempts(
            1,
            Duration::from_millis(10),
            Duration::from_secs(30),
        );
        let delivery = EventDelivery::start(vec![target], options).unwrap();
        for _ in 0..5 {
            delivery.send(&run_started());
        }
        let reports = delivery.finish(Duration::from_millis(300)).await;
        hold.abort();
        let report = &reports[0];
        assert_eq!(report.sent, 0);
        assert_eq!(report.dropped_total(), 10);
        let full = report.dropped.get("queue full").copied().unwrap_or(0);
        let late = report
            .dropped
            .get("not delivered within 300ms")
            .copied()
            .unwrap_or(0);
        // The queue holds 3, and the task may have taken one out.
        assert!((6..=7).contains(&full), "{report:?}");
        assert_eq!(full + late, 10, "{report:?}");
        // Once finished, nothing more is queued.
        delivery.send(&run_started());
    }

    #[tokio::test]
    async fn file_targets_get_one_event_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let target = EventTarget::parse(&format!("file:{}", path.display())).unwrap();
        let delivery = EventDelivery::start(vec![target], DeliveryOptions::default()).unwrap();
        delivery.send(&run_started());
        let reports = delivery.finish(Duration::from_secs(5)).await;
        assert_eq!(reports[0].sent, 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0]["context"]["type"],
            crate::cdevents::PIPELINE_RUN_QUEUED
        );
    }
}
