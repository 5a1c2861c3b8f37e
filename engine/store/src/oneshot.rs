//! Blocking work on a thread of its own, awaited from any executor (the store does
//! not depend on one).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// The answer, once there is one, and who waits for it.
struct Slot<T> {
    value: Option<T>,
    done: bool,
    waker: Option<Waker>,
}

/// Resolves to what `work` returned, or `None` if its thread could not start or
/// ended without returning (a panic).
pub(crate) struct Answer<T>(Arc<Mutex<Slot<T>>>);

fn lock<T>(slot: &Mutex<Slot<T>>) -> std::sync::MutexGuard<'_, Slot<T>> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Marks the slot done when the thread ends, answered or not.
struct Finish<T>(Arc<Mutex<Slot<T>>>);

impl<T> Drop for Finish<T> {
    fn drop(&mut self) {
        let mut slot = lock(&self.0);
        slot.done = true;
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
    }
}

/// Runs `work` on a new thread named `name`.
pub(crate) fn run_on_thread<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Answer<T> {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        done: false,
        waker: None,
    }));
    let finish = Finish(slot.clone());
    let started = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let value = work();
            lock(&finish.0).value = Some(value);
            drop(finish);
        });
    if started.is_err() {
        lock(&slot).done = true;
    }
    Answer(slot)
}

impl<T> Future for Answer<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = lock(&self.0);
        if slot.done {
            return Poll::Ready(slot.value.take());
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
