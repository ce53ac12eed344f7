//! The host side of each interface the contract imports into an adapter,
//! one module per interface, and the per-call state they work on.

mod cassette;
mod counters;
mod log;
mod next;
mod timers;
mod workers;

pub use counters::Counters;
pub(crate) use next::{Next, NextCall};

use crate::Pool;
use crate::cassette::CassetteStore;
use crate::sandbox::{self, Grant, Guard};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

/// The most of an adapter's stderr kept per call (its panic message is in there).
const STDERR_CAPTURE_BYTES: usize = 16 << 10;

/// What a host grants its adapter: every instance gets a clone.
#[derive(Clone)]
pub(crate) struct Links {
    /// The adapter's name, for messages.
    pub(crate) name: Arc<str>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) pool: Option<Pool>,
    pub(crate) cassette: Option<Arc<CassetteStore>>,
    /// The adapter behind this one in a chain (the recorder's real adapter).
    pub(crate) next: Option<Arc<dyn Next>>,
}

/// What an adapter instance may reach during one call. A fresh one is made
/// for every instance, so nothing leaks from one call to the next except
/// through what the host owns (counters, the cassette).
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    links: Links,
    /// When the call this instance serves must be answered.
    deadline: Instant,
    /// How long the last call to the next adapter took (recorded with it).
    next_elapsed: Option<Duration>,
    /// The instance's memory and table caps.
    pub(crate) guard: Guard,
    /// Set when the instance was stopped for running past its deadline.
    pub(crate) overran: bool,
    created: Instant,
}

impl CallState {
    pub(crate) fn new(
        links: Links,
        deadline: Instant,
        guard: Guard,
        grants: &[Grant],
    ) -> wasmtime::Result<CallState> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE_BYTES);
        // No arguments, environment, network, clock or stdin, and no files
        // but the directories granted: an adapter reaches only what the
        // contract imports.
        let wasi = sandbox::wasi(stderr.clone(), grants)?;
        Ok(CallState {
            wasi,
            table: ResourceTable::new(),
            stderr,
            links,
            deadline,
            next_elapsed: None,
            guard,
            overran: false,
            created: Instant::now(),
        })
    }

    /// When the call this instance serves must be answered.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// How long this instance has existed, in milliseconds (for messages).
    pub(crate) fn running_ms(&self) -> u128 {
        self.created.elapsed().as_millis()
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
