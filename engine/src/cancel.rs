//! Stopping steps: the run's cancellation signal, and why the host stopped one.

use std::sync::Arc;

/// A cancellation signal shared by a run and its steps. Cloning shares it.
#[derive(Debug, Clone)]
pub struct CancelFlag(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for CancelFlag {
    fn default() -> Self {
        CancelFlag(Arc::new(tokio::sync::watch::Sender::new(false)))
    }
}

impl CancelFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask everything watching this flag to stop.
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once cancellation is asked for.
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|set| *set).await;
    }
}

/// Why the store stopped a guest (set by the epoch callback, or by a host
/// call that was interrupted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// It ran past its timeout.
    TimedOut,
    /// The run was cancelled.
    Cancelled,
}
