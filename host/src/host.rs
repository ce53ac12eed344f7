//! [`Host`]: one adapter with its own configuration and counters. Nothing in
//! it is shared with other hosts except, if asked, the [`Runtime`].

use crate::adapter::{self, Adapter, ComponentInfo};
use crate::bindings::{PluginPre, wit};
use crate::cassette::{Cassette, CassetteStore, RecordMode};
use crate::imports::{CallState, Counters, Links};
use crate::sandbox::{self, Grant, Guard, Limits};
use crate::{
    AdapterConfig, CallError, Error, Pool, PoolConfig, PoolStatus, Request, Response, Runtime,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Store, Trap, UpdateDeadline};

/// How long a call may take when its request sets no deadline.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How far past its deadline an adapter that is running (not waiting on the
/// host) is stopped: the pool answers a worker's timeout at the deadline
/// itself, and this lets the adapter pass that answer on.
pub(crate) const GUEST_SLACK: Duration = Duration::from_millis(20);

/// How much longer than its deadline a call may take before the host gives
/// up on it whatever the adapter waits for (a backstop: a running adapter is
/// stopped at `GUEST_SLACK`, and every host import ends by the deadline).
const ADAPTER_SLACK: Duration = Duration::from_millis(250);

/// The largest answer an adapter may return by default.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 << 20;

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
    path: PathBuf,
    info: ComponentInfo,
    pre: PluginPre<CallState>,
    config: String,
    call_timeout: Duration,
    /// What the adapter may reach: counters, pool, cassette, next adapter.
    links: Links,
    limits: Limits,
}

/// Everything one adapter of a chain is built from.
struct Parts {
    runtime: Runtime,
    adapter: Adapter,
    config: String,
    dirs: Vec<PathBuf>,
    call_timeout: Duration,
    pool: Option<PoolConfig>,
    cassette: Option<Arc<CassetteStore>>,
    next: Option<Host>,
    sandbox: SandboxOptions,
}

/// The limits and grants a builder was given (the rest come from the runtime).
#[derive(Default, Clone)]
struct SandboxOptions {
    max_memory_bytes: Option<usize>,
    max_response_bytes: Option<usize>,
    grants: Vec<Grant>,
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
    cassette: Option<Cassette>,
    sandbox: SandboxOptions,
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

    /// The most linear memory one instance of this host's adapter may have.
    /// It cannot exceed the runtime's `max_memory_bytes` (64 MiB by default),
    /// which is used when this is not set. An adapter that wants more fails
    /// its call with an `adapter-fault` that says so; the host goes on.
    pub fn max_memory_bytes(mut self, bytes: usize) -> Self {
        self.sandbox.max_memory_bytes = Some(bytes);
        self
    }

    /// The largest answer payload the adapter may return (default 64 MiB);
    /// a larger one fails its call with an `adapter-fault`.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.sandbox.max_response_bytes = Some(bytes);
        self
    }

    /// Lets the adapter reach the host directory `host_path` as
    /// `guest_path` (such as `/data`), read-only or read-write. By default an
    /// adapter has no file system at all. The directory is opened at every
    /// call; one that cannot be opened fails `build`.
    pub fn grant_dir(
        mut self,
        host_path: impl Into<PathBuf>,
        guest_path: impl Into<String>,
        read_only: bool,
    ) -> Self {
        self.sandbox.grants.push(Grant {
            host_path: host_path.into(),
            guest_path: guest_path.into(),
            read_only,
        });
        self
    }

    /// Records calls to, or replays them from, a cassette. Depending on the
    /// cassette's record mode (see [`Cassette`]) the host runs the replayer
    /// alone, with no Python started even if a pool is configured, or the
    /// recorder in front of the adapter given here (python-bridge by default).
    pub fn cassette(mut self, cassette: Cassette) -> Self {
        self.cassette = Some(cassette);
        self
    }

    /// Loads, checks and compiles the adapter, and has it accept its
    /// configuration once, so that a bad adapter or configuration fails here
    /// and not at the first call.
    pub async fn build(self) -> Result<Host, Error> {
        let runtime = match self.runtime {
            Some(runtime) => runtime,
            None => Runtime::new()?,
        };
        let mut dirs = self.plugin_dirs;
        dirs.extend(adapter::default_plugin_dirs());
        let call_timeout = self.call_timeout.unwrap_or(DEFAULT_CALL_TIMEOUT);
        let config = self.config.to_json_text()?;
        let Some(cassette) = self.cassette else {
            let adapter = self.adapter.ok_or(Error::NoAdapter)?;
            return assemble(Parts {
                runtime,
                adapter,
                config,
                dirs,
                call_timeout,
                pool: self.pool,
                cassette: None,
                next: None,
                sandbox: self.sandbox,
            })
            .await;
        };

        let (mode, why) = cassette.resolve_mode()?;
        let mut store = CassetteStore::open(cassette.path(), mode)?;
        // The options given override, one by one, those it was recorded with.
        let mut options = match store.recorded_options() {
            Some(serde_json::Value::Object(recorded)) => recorded,
            _ => serde_json::Map::new(),
        };
        if let Some(serde_json::Value::Object(given)) = cassette.given_options() {
            options.extend(given);
        }
        let options = serde_json::Value::Object(options);
        store.set_options(options.clone());
        let replay_only = match mode {
            RecordMode::None if !store.exists() => {
                return Err(Error::CassetteNotFound {
                    path: cassette.path().to_path_buf(),
                    mode: mode.to_string(),
                    why,
                });
            }
            RecordMode::None => true,
            RecordMode::Once => store.exists(),
            RecordMode::NewEpisodes | RecordMode::All => false,
        };
        let store = Some(Arc::new(store));
        let options = options.to_string();
        if replay_only {
            if self.pool.is_some() {
                tracing::info!(cassette = %cassette.path().display(), %mode, "replaying: the Python workers are not started");
            }
            return assemble(Parts {
                runtime,
                adapter: Adapter::Named("replayer".into()),
                config: options,
                dirs,
                call_timeout,
                pool: None,
                cassette: store,
                next: None,
                sandbox: self.sandbox,
            })
            .await;
        }
        if self.pool.is_none() && self.adapter.is_none() {
            return Err(Error::NothingToRecord {
                path: cassette.path().to_path_buf(),
                mode: mode.to_string(),
                why,
            });
        }
        tracing::info!(cassette = %cassette.path().display(), %mode, "recording{why}");
        let real = assemble(Parts {
            runtime: runtime.clone(),
            adapter: self
                .adapter
                .unwrap_or_else(|| Adapter::Named("python-bridge".into())),
            config,
            dirs: dirs.clone(),
            call_timeout,
            pool: self.pool,
            cassette: None,
            next: None,
            sandbox: self.sandbox.clone(),
        })
        .await?;
        assemble(Parts {
            runtime,
            adapter: Adapter::Named("recorder".into()),
            config: options,
            dirs,
            call_timeout,
            pool: None,
            cassette: store,
            next: Some(real),
            sandbox: self.sandbox,
        })
        .await
    }
}

/// Loads, checks and compiles one adapter, has it accept its configuration,
/// and only then starts its workers.
async fn assemble(parts: Parts) -> Result<Host, Error> {
    let Parts {
        runtime,
        adapter,
        config,
        dirs,
        call_timeout,
        pool,
        cassette,
        next,
        sandbox,
    } = parts;
    let path = adapter.resolve(&dirs)?;
    for grant in &sandbox.grants {
        let opened = std::fs::read_dir(&grant.host_path).map(drop);
        if let Err(e) = opened {
            return Err(Error::GrantedDir {
                path: grant.host_path.clone(),
                guest_path: grant.guest_path.clone(),
                message: e.to_string(),
            });
        }
    }
    let mut limits = runtime.default_limits();
    if let Some(max) = sandbox.max_memory_bytes {
        limits.max_memory_bytes = max.min(limits.max_memory_bytes);
    }
    if let Some(max) = sandbox.max_response_bytes {
        limits.max_response_bytes = max;
    }
    limits.call_timeout_ms = u64::try_from(call_timeout.as_millis()).unwrap_or(u64::MAX);
    limits.granted_dirs = sandbox.grants;
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

    let links = Links {
        name,
        counters: Arc::new(Counters::default()),
        pool: None,
        cassette,
        next,
    };
    let mut host = Host {
        inner: Arc::new(HostInner {
            runtime,
            path,
            info,
            pre,
            config,
            call_timeout,
            links,
            limits,
        }),
    };
    host.check_config().await?;
    // Workers start only for an adapter that accepted its configuration.
    if let Some(pool) = pool {
        Arc::get_mut(&mut host.inner)
            .expect("the host is not shared yet")
            .links
            .pool = Some(Pool::start(pool)?);
    }
    Ok(host)
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
                "adapter `{}` did not answer {} within {deadline:?}; give the request a longer deadline if it needs one",
                self.inner.links.name,
                crate::error::quoted(&request.command)
            ))),
        }
    }

    /// A host that replays the cassette at `path` and nothing else: no
    /// Python, whatever the environment says (mode `none`). A request the
    /// cassette lacks fails with [`CallError::CassetteMiss`].
    ///
    /// ```ignore
    /// let host = Host::replaying("tests/cassettes/demo.jsonl").await?;
    /// ```
    pub async fn replaying(path: impl Into<PathBuf>) -> Result<Host, Error> {
        Host::builder()
            .cassette(Cassette::replay(path))
            .build()
            .await
    }

    /// Waits until every Python worker passed its readiness handshake
    /// (at once for a host without a pool). Fails with the reason, and the
    /// traceback, when workers cannot start.
    pub async fn ready(&self) -> Result<(), Error> {
        match self.pool() {
            Some(pool) => pool.ready().await,
            None => Ok(()),
        }
    }

    /// The worker pool, when the host has one (a recording host's is the
    /// pool of the adapter it records).
    pub fn pool(&self) -> Option<&Pool> {
        let links = &self.inner.links;
        links
            .pool
            .as_ref()
            .or_else(|| links.next.as_ref().and_then(Host::pool))
    }

    /// The pool's counters (`None` for a host without a pool).
    pub fn status(&self) -> Option<PoolStatus> {
        self.pool().map(Pool::status)
    }

    /// The limits the adapter runs under, and the directories granted to it.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The cassette's record mode, when the host has a cassette.
    pub fn record_mode(&self) -> Option<RecordMode> {
        self.inner.links.cassette.as_ref().map(|c| c.mode())
    }

    /// The adapter a recording host passes calls on to (the real one).
    pub fn recorded_adapter(&self) -> Option<&Host> {
        self.inner.links.next.as_ref()
    }

    /// Stops taking calls, lets calls in flight finish within the pool's
    /// `shutdown_grace`, then stops every worker and waits until they are
    /// gone. A recording host then saves its cassette (replacing the file
    /// atomically), and says so in the log, or why it could not.
    /// (Dropping the last clone of a host kills its workers without waiting,
    /// and saves its cassette too.)
    pub async fn shutdown(&self) {
        let _ = self.close().await;
    }

    /// [`Host::shutdown`], returning how many interactions were saved to the
    /// cassette (0 without a recording), or why the cassette could not be saved.
    pub async fn close(&self) -> Result<usize, Error> {
        let links = &self.inner.links;
        if let Some(pool) = &links.pool {
            pool.shutdown().await;
        }
        if let Some(next) = &links.next {
            Box::pin(next.shutdown()).await;
        }
        match &links.cassette {
            Some(cassette) => cassette.finish().inspect_err(|e| tracing::error!("{e}")),
            None => Ok(0),
        }
    }

    /// The adapter's name (its short name, or its file stem).
    pub fn adapter_name(&self) -> &str {
        &self.inner.links.name
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
        self.inner.links.counters.snapshot()
    }

    /// One counter, 0 if the adapter never touched it.
    pub fn counter(&self, name: &str) -> u64 {
        self.inner.links.counters.get(name)
    }

    async fn check_config(&self) -> Result<(), Error> {
        let instance_error = |e: wasmtime::Error| Error::Instantiate {
            adapter: self.inner.links.name.to_string(),
            message: format!("{e:#}"),
        };
        let due = Instant::now() + self.inner.call_timeout;
        let mut instance = self.instantiate(due).await.map_err(instance_error)?;
        let refusal = instance
            .configure(&self.inner.config)
            .await
            .map_err(instance_error)?;
        refusal.map_err(|e| Error::AdapterConfig {
            adapter: self.inner.links.name.to_string(),
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
                    self.inner.links.name, e.message
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
            Ok(Ok(response)) if response.payload.len() > self.inner.limits.max_response_bytes => {
                Err(CallError::AdapterFault(format!(
                    "adapter `{}` answered `{}` with {}, over its limit of {} (HostBuilder::max_response_bytes)",
                    self.inner.links.name,
                    request.command,
                    sandbox::bytes(response.payload.len()),
                    sandbox::bytes(self.inner.limits.max_response_bytes)
                )))
            }
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
        let limits = &self.inner.limits;
        let guard = Guard::new(limits.max_memory_bytes, limits.max_table_elements);
        let state = CallState::new(self.inner.links.clone(), due, guard, &limits.granted_dirs)?;
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
        let plugin = self.inner.pre.instantiate_async(&mut store).await?;
        Ok(Instance {
            store,
            plugin,
            _slot: slot,
        })
    }

    fn fault(&self, error: wasmtime::Error, store: Option<&Store<CallState>>) -> CallError {
        let name = &self.inner.links.name;
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
        } else if text.contains("invalid utf-8") {
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
            .field("adapter", &self.inner.links.name)
            .field("path", &self.inner.path)
            .field("call_timeout", &self.inner.call_timeout)
            .finish_non_exhaustive()
    }
}
