//! A step's retry policy (`retry:`): how many attempts it gets, how long the host waits
//! between them, and which kinds of failure are worth another attempt.
//!
//! ```yaml
//! retry: { attempts: 3, backoff: 2s, on: [timeout, trap, failed] }
//! retry: 3          # the same as { attempts: 3 } with the defaults below
//! ```

use std::fmt;
use std::time::Duration;

/// The most attempts a step may be given.
pub const MAX_ATTEMPTS: u32 = 100;
/// The wait before the second attempt when `backoff` is not given.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two attempts, however many came before.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10 * 60);

/// A kind of failure a step can be retried on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FailureClass {
    /// The plugin returned an error (`failed`).
    Failed,
    /// The plugin trapped: a panic, a stack overflow, a bad memory access, or its
    /// memory limit (`trap`).
    Trap,
    /// It ran past its timeout, or the host's work for it did (`timeout`).
    Timeout,
}

impl FailureClass {
    /// Every class, in the order they are listed.
    pub const ALL: [FailureClass; 3] = [
        FailureClass::Failed,
        FailureClass::Trap,
        FailureClass::Timeout,
    ];

    /// Its name in a pipeline file.
    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Failed => "failed",
            FailureClass::Trap => "trap",
            FailureClass::Timeout => "timeout",
        }
    }

    /// The class named `name` in a pipeline file.
    pub fn parse(name: &str) -> Option<FailureClass> {
        FailureClass::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a step is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the second attempt; each later wait is twice the one before,
    /// up to [`MAX_BACKOFF`].
    pub backoff: Duration,
    /// The failures worth another attempt (never a cancellation, nor a failure of
    /// the host itself).
    pub on: Vec<FailureClass>,
}

impl RetryPolicy {
    /// `attempts` attempts on every class, with the default backoff.
    pub fn attempts(attempts: u32) -> Self {
        RetryPolicy {
            attempts,
            backoff: DEFAULT_BACKOFF,
            on: FailureClass::ALL.to_vec(),
        }
    }

    /// How long to wait after attempt `done` (1 for the first) failed.
    pub fn delay_after(&self, done: u32) -> Duration {
        let doublings = done.saturating_sub(1).min(20);
        self.backoff.saturating_mul(1 << doublings).min(MAX_BACKOFF)
    }

    /// Whether a step whose attempt `done` failed with `class` gets another.
    pub fn retries(&self, done: u32, class: FailureClass) -> bool {
        done < self.attempts && self.on.contains(&class)
    }

    /// The policy as a pipeline file writes it.
    pub fn to_yaml(&self) -> String {
        let on: Vec<&str> = self.on.iter().map(|c| c.name()).collect();
        format!(
            "{{ attempts: {}, backoff: {}ms, on: [{}] }}",
            self.attempts,
            self.backoff.as_millis(),
            on.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap() {
        let policy = RetryPolicy {
            attempts: 30,
            backoff: Duration::from_secs(2),
            on: vec![FailureClass::Failed],
        };
        assert_eq!(policy.delay_after(1), Duration::from_secs(2));
        assert_eq!(policy.delay_after(2), Duration::from_secs(4));
        assert_eq!(policy.delay_after(3), Duration::from_secs(8));
        assert_eq!(policy.delay_after(29), MAX_BACKOFF);
    }

    #[test]
    fn retries_only_listed_classes_while_attempts_remain() {
        let policy = RetryPolicy {
            attempts: 2,
            backoff: Duration::ZERO,
            on: vec![FailureClass::Timeout],
        };
        assert!(policy.retries(1, FailureClass::Timeout));
        assert!(!policy.retries(2, FailureClass::Timeout));
        assert!(!policy.retries(1, FailureClass::Failed));
        assert_eq!(FailureClass::parse("trap"), Some(FailureClass::Trap));
        assert_eq!(FailureClass::parse("crash"), None);
    }
}
