//! The store's writes that must not meet inside sled: see [`write_gate`].

/// One flush or transaction at a time, in the whole process. In sled 0.34 both go
/// through one process-wide lock: a flush holds it shared while it waits for the log
/// to reach the disk, a transaction waits for it exclusively (and from then on new
/// readers wait behind it), and `flush_async` waits on sled's few IO threads, which the
/// writes it waits for need too. Fifty runs starting at once in one engine (each
/// flushing) while others completed steps (each a transaction) hung every run of the
/// process (`tests/load.rs`). flow's flushes run one at a time, outside sled's
/// threads, never beside one of its transactions.
static WRITE_GATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn write_gate() -> std::sync::MutexGuard<'static, ()> {
    // Nothing is left half-done under the gate: a panic elsewhere does not poison it.
    WRITE_GATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
