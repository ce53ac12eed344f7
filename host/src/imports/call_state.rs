//! What an adapter instance may reach during one call: its WASI context
//! (no files but the granted ones), its captured stderr, its deadline and
//! the host's links. Each interface's module implements its part on it.

use super::links::Links;
use crate::limits::Grant;
use crate::sandbox::{self, Guard};
use std::time::{Duration, Instant};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

/// What each call may write to stderr and have kept (its panic message is
/// in there). An instance captures four times that over its life, and is
/// not reused once fewer than this many bytes are left.
const STDERR_PER_CALL_BYTES: usize = 16 << 10;
const STDERR_CAPTURE_BYTES: usize = 4 * STDERR_PER_CALL_BYTES;

/// What an adapter instance may reach during its calls. One is made for
/// every instance and lives as long as it does: an instance serves the
/// calls of one host only, so nothing reaches another host's calls but
/// through what the runtime shares (nothing a guest can touch).
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    /// How much of `stderr` earlier calls (and `configure`) wrote, as
    /// counted when the last call ended: reading the pipe copies it.
    stderr_before: usize,
    pub(super) links: Links,
    /// When the call this instance serves must be answered.
    pub(super) deadline: Instant,
    /// How long the last call to the next adapter took (recorded with it).
    pub(super) next_elapsed: Option<Duration>,
    /// The instance's memory and table caps.
    pub(crate) guard: Guard,
    /// Set when the instance was stopped for running past its deadline.
    pub(crate) overran: bool,
    created: Instant,
    /// Where this call's chunks go, when its caller reads a stream.
    pub(super) emit: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
    /// The streamed worker calls this call started, by handle.
    pub(super) streams: std::collections::HashMap<u64, crate::PoolStream>,
    pub(super) next_stream: u64,
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
            stderr_before: 0,
            links,
            deadline,
            next_elapsed: None,
            guard,
            overran: false,
            created: Instant::now(),
            emit: None,
            streams: std::collections::HashMap::new(),
            next_stream: 0,
        })
    }

    /// Starts a call that began at `started` (its instance may have been
    /// made and configured since) and is due at `deadline`: what is said of
    /// the call (its stderr, its time, whether it overran) is of this call
    /// alone.
    pub(crate) fn begin(
        &mut self,
        started: Instant,
        deadline: Instant,
        emit: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
    ) {
        self.deadline = deadline;
        self.next_elapsed = None;
        self.overran = false;
        self.created = started;
        self.emit = emit;
    }

    /// Ends the call: its caller's stream closes, and the worker streams it
    /// left open are stopped.
    pub(crate) fn end(&mut self) {
        self.emit = None;
        self.streams.clear();
    }

    /// Ends this call's share of stderr (what it wrote is before the next
    /// call's), and says whether the next call could not write its own
    /// share: then the instance is not reused.
    pub(crate) fn end_stderr_share(&mut self) -> bool {
        self.stderr_before = self.stderr.contents().len();
        self.stderr_before > STDERR_CAPTURE_BYTES - STDERR_PER_CALL_BYTES
    }

    /// How many WASI resources (streams, open files, …) the instance holds.
    pub(crate) fn resources(&mut self) -> usize {
        self.table.iter_mut().count()
    }

    /// When the call this instance serves must be answered.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// How long this call has run, in milliseconds (for messages).
    pub(crate) fn running_ms(&self) -> u128 {
        self.created.elapsed().as_millis()
    }

    /// What the adapter wrote to stderr during this call (a guest panic
    /// message lands here).
    pub(crate) fn stderr(&self) -> String {
        let contents = self.stderr.contents();
        let this_call = contents.get(self.stderr_before..).unwrap_or_default();
        String::from_utf8_lossy(this_call).trim_end().to_string()
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
