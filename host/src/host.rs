//! [`Host`]: one adapter with its own configuration and counters. Nothing in
//! it is shared with other hosts except, if asked, the [`Runtime`].

use crate::adapter::{self, Adapter, ComponentInfo};
use crate::bindings::{PluginPre, wit};
use crate::imports::{CallState, Counters};
use crate::{
    AdapterConfig, CallError, Error, Pool, PoolConfig, PoolStatus, Request, Response, Runtime,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Store, UpdateDeadline};

/// How long a call may take when its request sets no deadline.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How much longer than its deadline an adapter may take before the host
/// gives up on it. The pool answers at the deadline itself (with a timeout
/// that says which worker was killed); this slack lets that answer through.
const ADAPTER_SLACK: Duration = Duration::from_millis(250);

/// A host: a loaded adapter, its configuration and its counters.
///
/// Clones share the same adapter and counters; separate hosts share nothing.
/// Every call runs in a fresh, isolated adapter instance.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

struct HostInner {
    runtime: Runtime,
    name: Arc<str>,
    path: PathBuf,
    info: ComponentInfo,
    pre: PluginPre<CallState>,
    config: String,
    counters: Arc<Counters>,
    call_timeout: Duration,
    pool: Option<Pool>,
}

/// Builds a [`Host`]: `Host::builder().adapter("mock").config(…).build().await`.
#[derive(Default)]
pub struct HostBuilder {
    runtime: Option<Runtime>,
    adapter: Option<Adapter>,
    config: AdapterConfig,
    plugin_dirs: Vec<PathBuf>,
    call_timeout: Option<Duration>,
    pool: Option<PoolConfig>,
}

impl HostBuilder {
    /// The adapter to run: a short name (`"mock"`) or a path to a `.wasm` component.
    pub fn adapter(mut self, adapter: impl Into<Adapter>) -> Self {
        self.adapter = Some(adapter.into());
        self
    }

    /// The adapter's configuration (a JSON value, TOML text or a file).
    pub fn config(mut self, config: impl Into<AdapterConfig>) -> Self {
        self.config = config.into();
        self
    }

    /// Share this runtime (engine and compiled-adapter cache) with other hosts.
    /// Without it the host creates a runtime of its own.
    pub fn runtime(mut self, runtime: &Runtime) -> Self {
        self.runtime = Some(runtime.clone());
        self
    }

    /// Look up short adapter names here, before the default directories.
    pub fn plugin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.plugin_dirs.push(dir.into());
        self
    }

    /// The deadline of a call whose request sets none (default 30 s).
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = Some(timeout);
        self
    }

    /// Python workers for the adapter's `workers` import (the python-bridge
    /// adapter needs them). Without a pool, a pool call is `unavailable`.
    pub fn pool(mut self, pool: PoolConfig) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Loads, checks and compiles the adapter, and has it accept its
    /// configuration once, so that a bad adapter or configuration fails here
    /// and not at the first call.
    pub async fn build(self) -> Result<Host, Error> {
        let adapter = self.adapter.ok_or(Error::NoAdapter)?;
        let runtime = match self.runtime {
            Some(runtime) => runtime,
            None => Runtime::new()?,
        };
        let mut dirs = self.plugin_dirs;
        dirs.extend(adapter::default_plugin_dirs());
        let path = adapter.resolve(&dirs)?;
        let name: Arc<str> = adapter.display_name().into();

        let component = adapter::compile(&runtime, &path)?;
        let info = adapter::check_component(&path, &runtime.inner().engine, &component)?;
        let instance_pre = runtime
            .inner()
            .linker
            .instantiate_pre(&component)
            .map_err(|e| Error::UnsupportedImport {
                path: path.clone(),
                message: format!("{e:#}"),
            })?;
        let pre = PluginPre::new(instance_pre).map_err(|e| Error::Instantiate {
            adapter: name.to_string(),
            message: format!("its exports do not match the contract: {e:#}"),
        })?;
        let config = self.config.to_json_text()?;

        let mut host = Host {
            inner: Arc::new(HostInner {
                runtime,
                name,
                path,
                info,
                pre,
                config,
                counters: Arc::new(Counters::default()),
                call_timeout: self.call_timeout.unwrap_or(DEFAULT_CALL_TIMEOUT),
                pool: None,
            }),
        };
        host.check_config().await?;
        // Workers start only for an adapter that accepted its configuration.
        if let Some(pool) = self.pool {
            let pool = Pool::start(pool)?;
            Arc::get_mut(&mut host.inner)
                .expect("the host is not shared yet")
                .pool = Some(pool);
        }
        Ok(host)
    }
}

impl Host {
    /// Starts building a host.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// Runs one request through the adapter.
    ///
    /// The call ends by its request's deadline (or the host's call timeout)
    /// with [`CallError::Timeout`], whatever the adapter does. Dropping the
    /// returned future at any point cancels the call and frees its instance.
    pub async fn call(&self, request: Request) -> Result<Response, CallError> {
        let deadline = request.deadline.unwrap_or(self.inner.call_timeout);
        let due = Instant::now() + deadline;
        match tokio::time::timeout(deadline + ADAPTER_SLACK, self.run(&request, due)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout(format!(
                "adapter `{}` did not answer `{}` within {deadline:?}; give the request a longer deadline if it needs one",
                self.inner.name, request.command
            ))),
        }
    }

    /// Waits until every Python worker passed its readiness handshake
    /// (at once for a host without a pool). Fails with the reason, and the
    /// traceback, when workers cannot start.
    pub async fn ready(&self) -> Result<(), Error> {
        match &self.inner.pool {
            Some(pool) => pool.ready().await,
            None => Ok(()),
        }
    }

    /// The worker pool, when the host has one.
    pub fn pool(&self) -> Option<&Pool> {
        self.inner.pool.as_ref()
    }

    /// The pool's counters (`None` for a host without a pool).
    pub fn status(&self) -> Option<PoolStatus> {
        self.inner.pool.as_ref().map(Pool::status)
    }

    /// Stops taking calls, lets calls in flight finish within the pool's
    /// `shutdown_grace`, then stops every worker and waits until they are gone.
    /// (Dropping the last clone of a host kills its workers without waiting.)
    pub async fn shutdown(&self) {
        if let Some(pool) = &self.inner.pool {
            pool.shutdown().await;
        }
    }

    /// The adapter's name (its short name, or its file stem).
    pub fn adapter_name(&self) -> &str {
        &self.inner.name
    }

    /// The component file this host runs.
    pub fn adapter_path(&self) -> &std::path::Path {
        &self.inner.path
    }

    /// What the adapter component implements and imports.
    pub fn adapter_info(&self) -> &ComponentInfo {
        &self.inner.info
    }

    /// Every counter the adapter keeps (the mock's `calls/<command>`, …), by name.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.inner.counters.snapshot()
    }

    /// One counter, 0 if the adapter never touched it.
    pub fn counter(&self, name: &str) -> u64 {
        self.inner.counters.get(name)
    }

    async fn check_config(&self) -> Result<(), Error> {
        let instance_error = |e: wasmtime::Error| Error::Instantiate {
            adapter: self.inner.name.to_string(),
            message: format!("{e:#}"),
        };
        let due = Instant::now() + self.inner.call_timeout;
        let mut instance = self.instantiate(due).await.map_err(instance_error)?;
        let refusal = instance
            .configure(&self.inner.config)
            .await
            .map_err(instance_error)?;
        refusal.map_err(|e| Error::AdapterConfig {
            adapter: self.inner.name.to_string(),
            field: e.field,
            message: e.message,
        })
    }

    async fn run(&self, request: &Request, due: Instant) -> Result<Response, CallError> {
        let mut instance = self
            .instantiate(due)
            .await
            .map_err(|e| self.fault(e, None))?;
        match instance.configure(&self.inner.config).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(CallError::AdapterFault(format!(
                    "adapter `{}` refused at call time the configuration it accepted at start: {}",
                    self.inner.name, e.message
                )));
            }
            Err(e) => return Err(self.fault(e, Some(&instance.store))),
        }
        let request = wit::Request::from(request);
        let result = instance
            .plugin
            .snakepen_adapter_adapter()
            .call_call(&mut instance.store, &request)
            .await;
        match result {
            Ok(Ok(response)) => Ok(response.into()),
            Ok(Err(error)) => Err(error.into()),
            Err(trap) => Err(self.fault(trap, Some(&instance.store))),
        }
    }

    /// A fresh instance in a fresh store, holding one of the runtime's instance slots.
    async fn instantiate(&self, due: Instant) -> wasmtime::Result<Instance> {
        let inner = self.inner.runtime.inner();
        let slot = Arc::clone(&inner.instance_slots)
            .acquire_owned()
            .await
            .expect("the instance semaphore is never closed");
        let state = CallState::new(
            Arc::clone(&self.inner.name),
            Arc::clone(&self.inner.counters),
            self.inner.pool.clone(),
            due,
        );
        let mut store = Store::new(&inner.engine, state);
        // Yield to the executor at every epoch tick: a spinning adapter never
        // holds a thread for long, and the call's timeout can fire and drop it.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        let plugin = self.inner.pre.instantiate_async(&mut store).await?;
        Ok(Instance {
            store,
            plugin,
            _slot: slot,
        })
    }

    fn fault(&self, error: wasmtime::Error, store: Option<&Store<CallState>>) -> CallError {
        let stderr = store.map(|s| s.data().stderr()).unwrap_or_default();
        let mut message = format!("adapter `{}` failed: {error:#}", self.inner.name);
        if !stderr.is_empty() {
            message.push_str("\nadapter stderr:\n");
            message.push_str(&stderr);
        }
        CallError::AdapterFault(message)
    }
}

/// One live adapter instance; dropping it frees its slot.
struct Instance {
    store: Store<CallState>,
    plugin: crate::bindings::Plugin,
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

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("adapter", &self.inner.name)
            .field("path", &self.inner.path)
            .field("call_timeout", &self.inner.call_timeout)
            .finish_non_exhaustive()
    }
}
