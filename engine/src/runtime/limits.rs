//! Per-step resource limits enforced by wasmtime.

use std::time::Duration;
use wasmtime::ResourceLimiter;

/// Caps the total linear memory of one step's component instance.
///
/// `StoreLimits` counts per memory; a component can have several, so this
/// limiter keeps the sum. Exceeding it traps the guest and is remembered so
/// the failure can be reported as what it is.
#[derive(Debug)]
pub(crate) struct StepLimiter {
    memory_limit: usize,
    memory_in_use: usize,
    pub(crate) memory_exceeded: bool,
}

/// Instances, tables and memories one component may create; generous for
/// real plugins, small enough to stop a runaway.
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 16;
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

impl StepLimiter {
    pub(crate) fn new(memory_limit: u64) -> Self {
        StepLimiter {
            memory_limit: usize::try_from(memory_limit).unwrap_or(usize::MAX),
            memory_in_use: 0,
            memory_exceeded: false,
        }
    }
}

impl ResourceLimiter for StepLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .memory_in_use
            .saturating_sub(current)
            .saturating_add(desired);
        if total > self.memory_limit {
            self.memory_exceeded = true;
            return Err(wasmtime::format_err!(
                "memory limit exceeded: the step asked for {} bytes, its limit is {} bytes",
                total,
                self.memory_limit
            ));
        }
        self.memory_in_use = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// Limits for one step.
#[derive(Debug, Clone, Copy)]
pub struct StepLimits {
    /// Total linear memory, in bytes.
    pub memory: u64,
    /// Wall-clock time.
    pub timeout: Duration,
}
