//! One step's store: its WASI context and resource table, memory limiter,
//! deadline and cancellation, and every capability's part ([`StepCapabilities`]).

use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::limits::StepLimiter;
use crate::cancel::{CancelFlag, Stop};
use crate::capabilities::{CapabilityHost, StepCapabilities};

/// The per-step store data. Each step gets a fresh one.
pub(crate) struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: StepLimiter,
    deadline: Instant,
    cancel: CancelFlag,
    /// Why the epoch callback stopped the guest, if it did.
    pub(super) stop: Option<Stop>,
    http: WasiHttpCtx,
    /// Every capability's part: what their host calls work on.
    pub(crate) caps: StepCapabilities,
}

impl StepState {
    /// Why the host stopped the step: the epoch callback, or a host call that was
    /// interrupted (a command killed at the deadline).
    pub(super) fn stopped(&self) -> Option<Stop> {
        self.stop.or(self.caps.exec.stopped())
    }
}

impl crate::bindings::flow::plugin::types::Host for StepState {}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StepState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.caps.net,
        }
    }
}

impl CapabilityHost for StepState {
    fn capabilities(&mut self) -> &mut StepCapabilities {
        &mut self.caps
    }
}

/// A fresh store for one step (or one `describe()` call), with its memory limit,
/// its deadline checked on every epoch tick, and cancellation.
pub(super) fn new_store(
    engine: &Engine,
    wasi: WasiCtx,
    caps: StepCapabilities,
    memory: u64,
    deadline: Instant,
    cancel: CancelFlag,
) -> Store<StepState> {
    let state = StepState {
        wasi,
        table: ResourceTable::new(),
        limiter: StepLimiter::new(memory),
        deadline,
        cancel,
        stop: None,
        http: WasiHttpCtx::new(),
        caps,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    // A new store's deadline has already passed: set it before any call.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let state = ctx.data_mut();
        if state.cancel.is_cancelled() {
            state.stop = Some(Stop::Cancelled);
            return Err(wasmtime::format_err!("the step was cancelled"));
        }
        if Instant::now() >= state.deadline {
            state.stop = Some(Stop::TimedOut);
            return Err(wasmtime::format_err!("the step ran past its timeout"));
        }
        // Yield so that one busy guest does not hold a worker thread.
        Ok(UpdateDeadline::Yield(1))
    });
    store
}
