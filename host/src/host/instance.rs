//! One adapter's instances: the component compiled and linked once, and for
//! every call a fresh instance in a fresh store that is made, configured,
//! called and dropped. A trap that ends an instance is explained here, as
//! the typed error its caller gets.
//!
//! Invariant: an instance lives for one call (or one configuration check)
//! and holds one of the runtime's instance slots until it is dropped.

use crate::bindings::{Plugin, PluginPre, wit};
use crate::defaults::GUEST_SLACK;
use crate::imports::{CallState, Links};
use crate::limits::Limits;
use crate::sandbox::{self, Guard};
use crate::{CallError, Error, Request, Response, Runtime};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::Component;
use wasmtime::{Store, Trap, UpdateDeadline};

/// An adapter compiled and linked against the host's imports, with the
/// configuration every instance of it is given.
pub(super) struct Prepared {
    runtime: Runtime,
    pre: PluginPre<CallState>,
    config: String,
    limits: Limits,
}

impl Prepared {
    /// Links `component` (already checked to be an adapter of a supported
    /// contract) to the host's imports.
    pub(super) fn link(
        runtime: Runtime,
        path: &Path,
        name: &str,
        component: &Component,
        config: String,
        limits: Limits,
    ) -> Result<Prepared, Error> {
        let instance_pre = runtime
            .inner()
            .linker
            .instantiate_pre(component)
            .map_err(|source| Error::UnsupportedImport {
                path: path.to_path_buf(),
                message: format!("{source:#}"),
                source,
            })?;
        let pre = PluginPre::new(instance_pre).map_err(|source| Error::Instantiate {
            adapter: name.to_string(),
            message: format!("its exports do not match the contract: {source:#}"),
            source,
        })?;
        Ok(Prepared {
            runtime,
            pre,
            config,
            limits,
        })
    }

    /// The limits every instance runs under.
    pub(super) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Has one instance accept the configuration, so that a configuration
    /// the adapter refuses fails the build rather than the first call.
    pub(super) async fn check_config(&self, links: &Links, due: Instant) -> Result<(), Error> {
        let instance_error = |source: wasmtime::Error| Error::Instantiate {
            adapter: links.name.to_string(),
            message: format!("{source:#}"),
            source,
        };
        let mut instance = self.instantiate(links, due).await.map_err(instance_error)?;
        let refusal = instance
            .configure(&self.config)
            .await
            .map_err(instance_error)?;
        refusal.map_err(|e| Error::AdapterConfig {
            adapter: links.name.to_string(),
            field: e.field,
            message: e.message,
        })
    }

    /// Runs `request` in a fresh instance that reaches `links`.
    pub(super) async fn call(
        &self,
        links: &Links,
        request: &Request,
        due: Instant,
    ) -> Result<Response, CallError> {
        let name = &links.name;
        let mut instance = self
            .instantiate(links, due)
            .await
            .map_err(|e| fault(name, e, None))?;
        match instance.configure(&self.config).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(CallError::AdapterFault(format!(
                    "adapter `{name}` refused at call time the configuration it accepted at start: {}",
                    e.message
                )));
            }
            Err(e) => return Err(fault(name, e, Some(&instance.store))),
        }
        let request = wit::Request::from(request);
        let result = instance
            .plugin
            .snakepen_adapter_adapter()
            .call_call(&mut instance.store, &request)
            .await;
        let max = self.limits.max_response_bytes;
        match result {
            Ok(Ok(response)) if response.payload.len() > max => {
                Err(CallError::AdapterFault(format!(
                    "adapter `{name}` answered `{}` with {}, over its limit of {} (HostBuilder::max_response_bytes)",
                    request.command,
                    crate::limits::bytes(response.payload.len()),
                    crate::limits::bytes(max)
                )))
            }
            Ok(Ok(response)) => Ok(response.into()),
            Ok(Err(error)) => Err(error.into()),
            Err(trap) => Err(fault(name, trap, Some(&instance.store))),
        }
    }

    /// A fresh instance in a fresh store, holding one of the runtime's instance slots.
    async fn instantiate(&self, links: &Links, due: Instant) -> wasmtime::Result<Instance> {
        let inner = self.runtime.inner();
        let slot = Arc::clone(&inner.instance_slots)
            .acquire_owned()
            .await
            .expect("the instance semaphore is never closed");
        let limits = &self.limits;
        let guard = Guard::new(limits.max_memory_bytes, limits.max_table_elements);
        let state = CallState::new(links.clone(), due, guard, &limits.granted_dirs)?;
        let mut store = Store::new(&inner.engine, state);
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
        let plugin = self.pre.instantiate_async(&mut store).await?;
        Ok(Instance {
            store,
            plugin,
            _slot: slot,
        })
    }
}

/// One live adapter instance; dropping it frees its slot.
struct Instance {
    store: Store<CallState>,
    plugin: Plugin,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Instance {
    async fn configure(&mut self, config: &str) -> wasmtime::Result<Result<(), wit::ConfigError>> {
        self.plugin
            .snakepen_adapter_adapter()
            .call_configure(&mut self.store, config)
            .await
    }
}

/// What the caller of adapter `name` is told when its instance failed with
/// `error` (and, when the instance was made, what its store recorded).
fn fault(name: &str, error: wasmtime::Error, store: Option<&Store<CallState>>) -> CallError {
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
