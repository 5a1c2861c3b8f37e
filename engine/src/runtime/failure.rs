//! Why a step did not succeed, told apart: the plugin's own error, a crash (with
//! the panic message or the trap, runaway recursion named as such), its time, its
//! memory, cancellation, or the host.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use wasmtime::Trap;

use super::limits::StepLimits;
use crate::cancel::Stop;
use crate::capabilities::log::LogSink;

/// Why a step did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepFailure {
    /// The plugin returned a `step-error`.
    Failed(String),
    /// The plugin trapped (a panic, a stack overflow, a bad memory access...).
    Crashed(String),
    /// It ran past its timeout.
    TimedOut(Duration),
    /// The host's work for it (hashing its files) ran past its timeout.
    HostTimedOut {
        /// The step's timeout.
        timeout: Duration,
        /// What the host was doing ("while the host hashed its products ...").
        doing: String,
    },
    /// It tried to use more memory than its limit.
    OutOfMemory(u64),
    /// The run was cancelled while it ran.
    Cancelled,
    /// The host could not run it (a grant that cannot be opened...).
    Host(String),
}

impl StepFailure {
    /// The kind of failure a step's `retry.on` names, if it is one a step may be
    /// retried on (never a cancellation, nor a failure of the host itself).
    pub fn class(&self) -> Option<flow_pipeline::FailureClass> {
        use flow_pipeline::FailureClass;
        match self {
            StepFailure::Failed(_) => Some(FailureClass::Failed),
            StepFailure::Crashed(_) | StepFailure::OutOfMemory(_) => Some(FailureClass::Trap),
            StepFailure::TimedOut(_) | StepFailure::HostTimedOut { .. } => {
                Some(FailureClass::Timeout)
            }
            StepFailure::Cancelled | StepFailure::Host(_) => None,
        }
    }
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepFailure::Failed(m) => write!(f, "{m}"),
            StepFailure::Crashed(m) => write!(f, "the plugin crashed: {m}"),
            StepFailure::TimedOut(d) => {
                write!(f, "timed out after {}", crate::units::format_duration(*d))
            }
            StepFailure::HostTimedOut { timeout, doing } => write!(
                f,
                "timed out after {} {doing}",
                crate::units::format_duration(*timeout)
            ),
            StepFailure::OutOfMemory(limit) => {
                write!(
                    f,
                    "exceeded its memory limit of {}",
                    crate::units::format_bytes(*limit)
                )
            }
            StepFailure::Cancelled => write!(f, "cancelled"),
            StepFailure::Host(m) => write!(f, "{m}"),
        }
    }
}

/// Why a guest that trapped stopped: what the host stopped it for, its memory,
/// its stack, or the trap itself (with a Rust guest's panic message, from its log).
pub(super) fn classify_trap(
    error: &wasmtime::Error,
    stopped: Option<Stop>,
    memory_exceeded: bool,
    log: &LogSink,
    limits: StepLimits,
) -> StepFailure {
    match stopped {
        Some(Stop::Cancelled) => return StepFailure::Cancelled,
        Some(Stop::TimedOut) => return StepFailure::TimedOut(limits.timeout),
        None => {}
    }
    if memory_exceeded {
        return StepFailure::OutOfMemory(limits.memory);
    }
    let what = match error.downcast_ref::<Trap>() {
        Some(Trap::UnreachableCodeReached) => "it panicked or reached unreachable code".to_string(),
        Some(Trap::StackOverflow) => "stack overflow".to_string(),
        // Languages that keep their own stack in linear memory (Rust, C) run off its
        // end into an out-of-bounds access when recursion is too deep: a deep, repeating
        // call stack tells that apart from a bad pointer.
        Some(Trap::MemoryOutOfBounds) => match deep_recursion(error) {
            Some(what) => return StepFailure::Crashed(what),
            None => Trap::MemoryOutOfBounds.to_string(),
        },
        Some(trap) => trap.to_string(),
        None => error_chain(error),
    };
    match panic_message(&log.last_error_lines(8)) {
        Some(panic) => StepFailure::Crashed(panic),
        None => StepFailure::Crashed(what),
    }
}

/// Frames kept in a trap's backtrace.
pub(super) const BACKTRACE_FRAMES: usize = 64;

/// "stack overflow: ..." when a trap's call stack is runaway recursion: the backtrace
/// is full (the stack was deeper than it keeps) and one function fills at least half
/// of it.
fn deep_recursion(error: &wasmtime::Error) -> Option<String> {
    let backtrace = error.downcast_ref::<wasmtime::WasmBacktrace>()?;
    let frames = backtrace.frames();
    if frames.len() < BACKTRACE_FRAMES {
        return None;
    }
    let mut counts: HashMap<u32, (usize, Option<&str>)> = HashMap::new();
    for frame in frames {
        let entry = counts
            .entry(frame.func_index())
            .or_insert((0, frame.func_name()));
        entry.0 += 1;
    }
    let (count, name) = counts.values().max_by_key(|(n, _)| *n).copied()?;
    if count * 2 < frames.len() {
        return None;
    }
    let name = match name {
        Some(name) => format!(" in `{name}`"),
        None => String::new(),
    };
    Some(format!(
        "stack overflow: runaway recursion{name} ran off the end of the plugin's stack"
    ))
}

/// A Rust guest prints `thread '..' panicked at FILE:LINE:COL:` and then the
/// message to stderr before it traps; that is the best reason to show.
fn panic_message(stderr: &[String]) -> Option<String> {
    let at = stderr.iter().rposition(|l| l.contains("panicked at "))?;
    let location = stderr[at]
        .split("panicked at ")
        .nth(1)?
        .trim_end_matches(':');
    let message: Vec<&str> = stderr[at + 1..]
        .iter()
        .map(String::as_str)
        .take_while(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    Some(format!("panicked at {location}: {}", message.join(" ")))
}

/// "outer: inner: root" for an error and its causes.
pub(super) fn error_chain(error: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_panic_message_in_stderr() {
        let stderr: Vec<String> = [
            "",
            "thread '<unnamed>' (1) panicked at src/lib.rs:46:24:",
            "told to panic",
            "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            panic_message(&stderr).as_deref(),
            Some("panicked at src/lib.rs:46:24: told to panic")
        );
        assert_eq!(panic_message(&["plain error".to_string()]), None);
    }
}
