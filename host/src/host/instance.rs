//! One live adapter instance: made in a store of its own, configured once,
//! then called, one call at a time, for as long as it stays sound. A trap
//! that ends an instance is explained here, as the typed error its caller
//! gets.
//!
//! Invariant: an instance holds one of the runtime's slots for its whole
//! life, and serves the calls of one host only.

use crate::bindings::{Plugin, PluginPre, wit};
use crate::defaults::GUEST_SLACK;
use crate::imports::{CallState, Links};
use crate::limits::Limits;
use crate::runtime::RuntimeInner;
use crate::sandbox::{self, Guard};
use crate::slots::Slot;
use crate::{CallError, Request};
use std::time::Instant;
use wasmtime::{Store, Trap, UpdateDeadline};

/// How far an instance's linear memory may grow past what it held once
/// configured and still be kept for another call: an instance that grew
/// further gives its memory back by being dropped.
const KEEP_GROWTH_BYTES: usize = 32 << 20;

/// How many more WASI resources than it held once configured an instance
/// may hold and still be kept: a guest's own streams (stdout, stderr) are
/// made on first use; more is something it opened and never closed (a file
/// in a granted directory holds a descriptor of the host's).
const KEEP_MORE_RESOURCES: usize = 8;

/// One live adapter instance; dropping it frees its slot.
pub(super) struct Instance {
    store: Store<CallState>,
    plugin: Plugin,
    /// Its linear memory once configured.
    configured_bytes: usize,
    /// The WASI resources it held once configured.
    configured_resources: usize,
    _slot: Slot,
}

impl Instance {
    /// A new instance reaching `links`, in a store of its own, holding one
    /// of the runtime's slots (waiting for one if need be).
    pub(super) async fn new(
        runtime: &RuntimeInner,
        pre: &PluginPre<CallState>,
        links: &Links,
        limits: &Limits,
        due: Instant,
    ) -> wasmtime::Result<Instance> {
        let slot = runtime.slots.acquire().await;
        let guard = Guard::new(limits.max_memory_bytes, limits.max_table_elements);
        let state = CallState::new(links.clone(), due, guard, &limits.granted_dirs)?;
        let mut store = Store::new(&runtime.engine, state);
        store.limiter(|state| &mut state.guard);
        // At every epoch tick a running adapter yields to the executor (so it
        // never holds a thread for long), and past its deadline it is stopped.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut store| {
            if Instant::now() >= store.data().deadline() + GUEST_SLACK {
                store.data_mut().overran = true;
                return Err(Trap::Interrupt.into());
            }
            Ok(UpdateDeadline::Yield(1))
        });
        let plugin = pre.instantiate_async(&mut store).await?;
        Ok(Instance {
            store,
            plugin,
            configured_bytes: 0,
            configured_resources: 0,
            _slot: slot,
        })
    }

    /// Hands the instance its configuration (once, before any call).
    pub(super) async fn configure(
        &mut self,
        config: &str,
    ) -> wasmtime::Result<Result<(), wit::ConfigError>> {
        let result = self
            .plugin
            .snakepen_adapter_adapter()
            .call_configure(&mut self.store, config)
            .await;
        self.configured_bytes = self.store.data().guard.memory_bytes();
        self.configured_resources = self.store.data_mut().resources();
        result
    }

    /// Serves `request`, which began at `started` and is due at `due`.
    /// `Err` is a trap: the instance must not be entered again.
    pub(super) async fn call(
        &mut self,
        request: &Request,
        started: Instant,
        due: Instant,
        emit: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
    ) -> wasmtime::Result<Result<wit::Response, wit::CallError>> {
        self.store.data_mut().begin(started, due, emit);
        self.store.set_epoch_deadline(1);
        let answer = self
            .plugin
            .snakepen_adapter_adapter()
            .call_call(&mut self.store, &wit::Request::from(request))
            .await;
        self.store.data_mut().end();
        answer
    }

    /// Whether the instance may serve another call: its last call ended
    /// without a refusal of the sandbox, its memory and its WASI resources
    /// stayed near what it held once configured, and its stderr capture
    /// has a call's share left. (A trap or a call dropped midway never gets
    /// here: the instance is dropped with it.)
    pub(super) fn is_sound(&mut self) -> bool {
        let configured = (self.configured_bytes, self.configured_resources);
        let state = self.store.data_mut();
        state.guard.refused.is_none()
            && !state.overran
            && !state.end_stderr_share()
            && state.guard.memory_bytes() <= configured.0 + KEEP_GROWTH_BYTES
            && state.resources() <= configured.1 + KEEP_MORE_RESOURCES
    }

    /// What the caller of adapter `name` is told when this instance failed
    /// with `error`.
    pub(super) fn fault(&self, name: &str, error: wasmtime::Error) -> CallError {
        fault(name, error, Some(&self.store))
    }
}

/// What the caller of adapter `name` is told when its instance failed with
/// `error` (and, when the instance was made, what its store recorded).
pub(super) fn fault(
    name: &str,
    error: wasmtime::Error,
    store: Option<&Store<CallState>>,
) -> CallError {
    if let Some(state) = store.map(Store::data) {
        if state.overran {
            return CallError::Timeout(format!(
                "adapter `{name}` was still running at its call's deadline and was stopped after {} ms: \
                 an endless loop, or more work than the deadline allows",
                state.running_ms()
            ));
        }
        if let Some(refused) = &state.guard.refused {
            return CallError::AdapterFault(format!("adapter `{name}` {refused}"));
        }
    }
    // The only interrupt is the epoch callback's at the deadline, also
    // when it lands while the instance is still being made (whose store
    // the caller no longer has).
    if let Some(Trap::Interrupt) = error.downcast_ref::<Trap>() {
        return CallError::Timeout(format!(
            "adapter `{name}` was stopped at its call's deadline, before it answered; give the request a longer deadline if it needs one"
        ));
    }
    let stderr = store.map(|s| s.data().stderr()).unwrap_or_default();
    let text = format!("{error:#}");
    let panic = sandbox::panic_message(&stderr);
    let mut message = if let Some(panic) = &panic {
        format!("adapter `{name}` panicked: {panic}")
    } else if let Some(meaning) = sandbox::explain_trap(&error) {
        format!("adapter `{name}` {meaning}")
    } else if error.is::<std::str::Utf8Error>() {
        format!(
            "adapter `{name}` returned text that is not valid UTF-8 ({text}): a bug in the adapter"
        )
    } else {
        format!("adapter `{name}` failed: {text}")
    };
    if !stderr.is_empty() && panic.is_none() {
        message.push_str("\nadapter stderr:\n");
        message.push_str(&stderr);
    }
    CallError::AdapterFault(message)
}
