//! The host side of each interface the contract imports into an adapter,
//! one module per interface, and the per-call state they work on.

mod counters;
mod log;
mod timers;
mod workers;

pub use counters::Counters;

use crate::Pool;
use std::sync::Arc;
use std::time::Instant;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

/// The most of an adapter's stderr kept per call (its panic message is in there).
const STDERR_CAPTURE_BYTES: usize = 16 << 10;

/// What an adapter instance may reach during one call. A fresh one is made
/// for every instance, so nothing leaks from one call to the next except
/// through the host-owned [`Counters`].
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    adapter: Arc<str>,
    counters: Arc<Counters>,
    pool: Option<Pool>,
    /// When the call this instance serves must be answered.
    deadline: Instant,
}

impl CallState {
    pub(crate) fn new(
        adapter: Arc<str>,
        counters: Arc<Counters>,
        pool: Option<Pool>,
        deadline: Instant,
    ) -> CallState {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE_BYTES);
        // No arguments, environment, preopened directories, network or stdin:
        // an adapter reaches only what the contract imports.
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        CallState {
            wasi,
            table: ResourceTable::new(),
            stderr,
            adapter,
            counters,
            pool,
            deadline,
        }
    }

    /// What the adapter wrote to stderr so far (a guest panic message lands here).
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents())
            .trim_end()
            .to_string()
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl crate::bindings::wit::Host for CallState {}
