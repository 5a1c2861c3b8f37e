//! A step's log: the plugin's stdout, stderr and log calls and the host's own
//! lines, capped, ordered, and redacted before anything is kept.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

pub use flow_store::{LogLevel, LogLine, LogStream as LogSource};

use super::progress::Progress;
use super::redact::Redactor;

/// A step's log, capped in bytes: past the cap, lines are dropped and the log
/// says so once. (A full in-memory pipe would trap the guest instead.)
#[derive(Debug)]
pub struct StepLog {
    lines: Vec<LogLine>,
    bytes: u64,
    limit: u64,
    truncated: bool,
    partial_stdout: Vec<u8>,
    partial_stderr: Vec<u8>,
    redactor: Option<Arc<Redactor>>,
    progress: Option<Progress>,
}

/// A shared handle to a step's log.
#[derive(Debug, Clone)]
pub struct LogSink(Arc<Mutex<StepLog>>);

/// Longest line kept; longer ones are split.
const MAX_LINE: usize = 16 * 1024;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl LogSink {
    /// An empty log that keeps at most `limit` bytes of text.
    pub fn new(limit: u64) -> Self {
        LogSink(Arc::new(Mutex::new(StepLog {
            lines: Vec::new(),
            bytes: 0,
            limit,
            truncated: false,
            partial_stdout: Vec::new(),
            partial_stderr: Vec::new(),
            redactor: None,
            progress: None,
        })))
    }

    /// The same log, with every line masked by `redactor` before it is kept.
    pub fn with_redactor(self, redactor: Option<Arc<Redactor>>) -> Self {
        self.lock().redactor = redactor.filter(|r| !r.is_empty());
        self
    }

    /// The same log, with the step's progress reports sent to `progress`.
    pub(crate) fn with_progress(self, progress: Option<Progress>) -> Self {
        self.lock().progress = progress;
        self
    }

    /// The step's progress report (dropped when nobody listens).
    pub(crate) fn progress(&self, done: u64, total: Option<u64>, unit: &str) {
        let progress = self.lock().progress.clone();
        if let Some(progress) = progress {
            progress.report(done, total, unit);
        }
    }

    fn lock(&self) -> MutexGuard<'_, StepLog> {
        // A panic while holding the lock cannot leave the log inconsistent in
        // a way that matters; keep logging.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Append a whole line.
    pub fn line(&self, source: LogSource, text: &str) {
        self.lock().push(source, text);
    }

    /// Append raw output bytes; complete lines are kept, a trailing partial
    /// line waits for the rest (or for [`LogSink::finish`]).
    pub fn write(&self, source: LogSource, bytes: &[u8]) {
        let mut log = self.lock();
        let mut buf = std::mem::take(log.partial(source));
        buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let line = String::from_utf8_lossy(&buf[start..end]);
            log.push(source, line.trim_end_matches('\r'));
            start = end + 1;
        }
        let mut rest = buf.split_off(start);
        // A long line is kept in pieces; hold back enough of its end that a
        // secret value is never cut in two (redaction works on whole pieces).
        match log.redactor.clone() {
            None => {
                while rest.len() > MAX_LINE {
                    let tail = rest.split_off(MAX_LINE);
                    log.push(source, &String::from_utf8_lossy(&rest));
                    rest = tail;
                }
            }
            Some(redactor) => {
                // Keep the last `longest` bytes back (a value may continue in the next
                // write), cut before any value spanning the cut, and mask what goes out
                // before splitting it into pieces.
                let hold = redactor.longest();
                if rest.len() > MAX_LINE + hold {
                    let cut = redactor.safe_cut(&rest, rest.len() - hold);
                    let tail = rest.split_off(cut);
                    let masked = redactor.redact(&String::from_utf8_lossy(&rest));
                    for piece in pieces(&masked, MAX_LINE) {
                        log.push(source, piece);
                    }
                    rest = tail;
                }
            }
        }
        *log.partial(source) = rest;
    }

    /// Flush partial lines and take the captured lines, and whether the log
    /// was truncated.
    pub fn finish(&self) -> (Vec<LogLine>, u64, bool) {
        let mut log = self.lock();
        for source in [LogSource::Stdout, LogSource::Stderr] {
            let rest = std::mem::take(log.partial(source));
            if !rest.is_empty() {
                log.push(source, &String::from_utf8_lossy(&rest));
            }
        }
        let lines = std::mem::take(&mut log.lines);
        (lines, log.bytes, log.truncated)
    }

    /// The last `n` lines written to stderr or at error level (for failure
    /// reports).
    pub fn last_error_lines(&self, n: usize) -> Vec<String> {
        let log = self.lock();
        let mut out: Vec<String> = log
            .lines
            .iter()
            .rev()
            .filter(|l| {
                matches!(
                    l.stream,
                    LogSource::Stderr | LogSource::Plugin(LogLevel::Error)
                )
            })
            .take(n)
            .map(|l| l.text.clone())
            .collect();
        out.reverse();
        out
    }
}

/// `text` in pieces of at most `max` bytes, cut at character boundaries.
fn pieces(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let end = if end == 0 { rest.len() } else { end };
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

impl StepLog {
    fn partial(&mut self, source: LogSource) -> &mut Vec<u8> {
        match source {
            LogSource::Stderr => &mut self.partial_stderr,
            _ => &mut self.partial_stdout,
        }
    }

    fn push(&mut self, source: LogSource, text: &str) {
        if self.truncated {
            return;
        }
        let redacted;
        let text = match &self.redactor {
            Some(redactor) => {
                redacted = redactor.redact(text);
                redacted.as_str()
            }
            None => text,
        };
        let len = text.len() as u64 + 1;
        let seq = self.lines.len() as u64;
        if self.bytes + len > self.limit {
            self.truncated = true;
            self.lines.push(LogLine {
                seq,
                at: now_ms(),
                stream: LogSource::Host,
                text: format!(
                    "log truncated: the step wrote more than {} bytes",
                    self.limit
                ),
            });
            return;
        }
        self.bytes += len;
        self.lines.push(LogLine {
            seq,
            at: now_ms(),
            stream: source,
            text: text.to_string(),
        });
    }
}

/// The plugin's stdout or stderr, written into its step log.
pub struct CapturedOutput {
    sink: LogSink,
    source: LogSource,
}

impl CapturedOutput {
    /// A stream that appends to `sink` as `source`.
    pub fn new(sink: LogSink, source: LogSource) -> Self {
        CapturedOutput { sink, source }
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LogWriter {
            sink: self.sink.clone(),
            source: self.source,
        })
    }
}

struct LogWriter {
    sink: LogSink,
    source: LogSource,
}

impl tokio::io::AsyncWrite for LogWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.sink.write(self.source, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_lines_split_across_writes_and_caps_bytes() {
        let sink = LogSink::new(20);
        sink.write(LogSource::Stdout, b"hel");
        sink.write(LogSource::Stdout, b"lo\nwor");
        sink.write(LogSource::Stderr, b"oops\n");
        sink.write(LogSource::Stdout, b"ld\nthis line is far too long\n");
        let (lines, bytes, truncated) = sink.finish();
        let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "hello",
                "oops",
                "world",
                "log truncated: the step wrote more than 20 bytes"
            ]
        );
        assert_eq!(lines[1].stream, LogSource::Stderr);
        assert_eq!(bytes, 17);
        assert!(truncated);
    }

    #[test]
    fn keeps_a_trailing_partial_line() {
        let sink = LogSink::new(100);
        sink.write(LogSource::Stderr, b"no newline");
        let (lines, _, truncated) = sink.finish();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, "no newline");
        assert!(!truncated);
    }
}
