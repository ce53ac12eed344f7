//! [`HostBuilder`]: what a host is built from, and building it: the chain
//! of adapters its cassette plan asks for (the replayer alone, or the
//! recorder in front of the real adapter), each adapter loaded, checked,
//! configured and given its workers before its host exists.

use super::handle::{Host, HostInner};
use super::prepared::Prepared;
use crate::adapter::{self, Adapter};
use crate::cassette::{Cassette, CassetteStore, Plan};
use crate::defaults::DEFAULT_CALL_TIMEOUT;
use crate::imports::{Counters, Links, Next};
use crate::limits::{Grant, LimitRange};
use crate::{AdapterConfig, Error, Pool, PoolConfig, Runtime};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// The limits and grants a builder was given (the rest come from the runtime).
#[derive(Default, Clone)]
struct SandboxOptions {
    max_memory_bytes: Option<usize>,
    max_table_elements: Option<usize>,
    max_response_bytes: Option<usize>,
    grants: Vec<Grant>,
}

impl SandboxOptions {
    /// A runtime of the default settings that allows this host's limits
    /// and holds an adapter instance for each of `calls` calls at once.
    fn own_runtime(&self, calls: usize) -> Result<Runtime, Error> {
        let mut builder = Runtime::builder().room_for_calls(calls);
        let defaults = builder.clone();
        if let Some(bytes) = self.max_memory_bytes {
            builder = builder.max_memory_bytes(bytes.max(defaults.max_memory_bytes));
        }
        if let Some(n) = self.max_table_elements {
            builder = builder.max_table_elements(n.max(defaults.max_table_elements));
        }
        builder.build()
    }

    /// Each limit in its range, and none above what `runtime` allows.
    fn check(&self, runtime: &Runtime) -> Result<(), Error> {
        let allowed = runtime.default_limits();
        let asked = [
            (
                LimitRange::MEMORY,
                self.max_memory_bytes,
                allowed.max_memory_bytes,
            ),
            (
                LimitRange::TABLE,
                self.max_table_elements,
                allowed.max_table_elements,
            ),
            (LimitRange::RESPONSE, self.max_response_bytes, usize::MAX),
        ];
        for (range, value, allowed) in asked {
            let Some(value) = value else { continue };
            range.check(value as u64)?;
            if value > allowed {
                return Err(Error::OverRuntime {
                    key: range.key,
                    value: range.show(value as u64),
                    allowed: range.show(allowed as u64),
                });
            }
        }
        Ok(())
    }
}

/// Everything one adapter of a chain is built from.
struct Parts {
    runtime: Runtime,
    adapter: Adapter,
    config: String,
    dirs: Vec<PathBuf>,
    call_timeout: Duration,
    pool: Option<PoolConfig>,
    cassette: Option<(Arc<CassetteStore>, Plan)>,
    next: Option<Host>,
    sandbox: SandboxOptions,
}

impl Host {
    /// Starts building a host.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// A host that replays the cassette at `path` and nothing else: no
    /// Python, whatever the environment says (mode `none`). A request the
    /// cassette lacks fails with [`crate::CallError::CassetteMiss`].
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

    /// The most linear memory one instance of this host's adapter may have
    /// (default: its runtime's, 64 MiB unless the runtime says otherwise;
    /// at most 4 GiB). An adapter that wants more fails its call with an
    /// `adapter-fault` that says so; the host goes on.
    ///
    /// A host given no runtime makes one that allows this much. On a shared
    /// runtime it cannot be more than the runtime's `max_memory_bytes`:
    /// `build` fails with [`Error::OverRuntime`] rather than lower it.
    pub fn max_memory_bytes(mut self, bytes: usize) -> Self {
        self.sandbox.max_memory_bytes = Some(bytes);
        self
    }

    /// The most elements one table of this host's adapter may have (default:
    /// its runtime's, 20 000). As with [`HostBuilder::max_memory_bytes`], a
    /// host with no runtime makes one that allows it, and a shared runtime
    /// that allows less makes `build` fail.
    pub fn max_table_elements(mut self, n: usize) -> Self {
        self.sandbox.max_table_elements = Some(n);
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

    /// Records calls to, or replays them from, a cassette. The cassette's
    /// [`Plan`] (from its record mode and what the file holds, see
    /// [`Cassette`]) decides: replay only runs the replayer alone, with no
    /// Python started even if a pool is configured; recording runs the
    /// recorder in front of the adapter given here (python-bridge by default).
    pub fn cassette(mut self, cassette: Cassette) -> Self {
        self.cassette = Some(cassette);
        self
    }

    /// Loads, checks and compiles the adapter, and has it accept its
    /// configuration once, so that a bad adapter or configuration fails here
    /// and not at the first call.
    pub async fn build(self) -> Result<Host, Error> {
        // Each call the pool can hold waits in an adapter instance (two when
        // a recorder wraps the adapter).
        let chain = if self.cassette.is_some() { 2 } else { 1 };
        let calls = self.pool.as_ref().map_or(0, |p| p.size * p.max_concurrency) * chain;
        let runtime = match self.runtime {
            Some(runtime) => {
                let instances = runtime.inner().settings.instances() as usize;
                if calls > instances {
                    tracing::warn!(
                        instances,
                        calls,
                        "the runtime holds {instances} adapter instances at once and this host's pool can hold {calls} calls: calls past {instances} wait for an instance; build the runtime with Runtime::builder().max_instances({})",
                        calls + 8
                    );
                }
                runtime
            }
            None => self.sandbox.own_runtime(calls)?,
        };
        let call_timeout = self.call_timeout.unwrap_or(DEFAULT_CALL_TIMEOUT);
        let timeout_ms = u64::try_from(call_timeout.as_millis()).unwrap_or(u64::MAX);
        LimitRange::CALL_TIMEOUT.check(timeout_ms)?;
        self.sandbox.check(&runtime)?;
        let mut dirs = self.plugin_dirs;
        dirs.extend(adapter::default_plugin_dirs());
        let config = self.config.to_json_text()?;
        let parts = |adapter, config, pool, cassette, next| Parts {
            runtime: runtime.clone(),
            adapter,
            config,
            dirs: dirs.clone(),
            call_timeout,
            pool,
            cassette,
            next,
            sandbox: self.sandbox.clone(),
        };
        let Some(cassette) = self.cassette else {
            let adapter = self.adapter.ok_or(Error::NoAdapter)?;
            return assemble(parts(adapter, config, self.pool, None, None)).await;
        };

        let store = CassetteStore::open(&cassette)?;
        let (plan, mode) = (store.plan(), store.mode());
        let options = store.options().to_string();
        let path = cassette.path().display().to_string();
        let why = store.why().to_string();
        let store = Some((Arc::new(store), plan));
        if !plan.records() {
            if self.pool.is_some() {
                tracing::info!(cassette = %path, %mode, "replaying: the Python workers are not started");
            }
            let replayer = Adapter::Named("replayer".into());
            return assemble(parts(replayer, options, None, store, None)).await;
        }
        if self.pool.is_none() && self.adapter.is_none() {
            return Err(Error::NothingToRecord {
                path: cassette.path().to_path_buf(),
                mode: mode.to_string(),
                why,
            });
        }
        tracing::info!(cassette = %path, %mode, %plan, "recording{why}");
        let real = self
            .adapter
            .unwrap_or_else(|| Adapter::Named("python-bridge".into()));
        let real = assemble(parts(real, config, self.pool, None, None)).await?;
        let recorder = Adapter::Named("recorder".into());
        assemble(parts(recorder, options, None, store, Some(real))).await
    }
}

/// Loads, checks and compiles one adapter, has it accept its configuration,
/// and only then starts its workers: the host is made whole, at the end.
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
        if let Err(source) = std::fs::read_dir(&grant.host_path) {
            return Err(Error::GrantedDir {
                path: grant.host_path.clone(),
                guest_path: grant.guest_path.clone(),
                message: source.to_string(),
                source,
            });
        }
    }
    let mut limits = runtime.default_limits();
    if let Some(max) = sandbox.max_memory_bytes {
        limits.max_memory_bytes = max;
    }
    if let Some(max) = sandbox.max_table_elements {
        limits.max_table_elements = max;
    }
    if let Some(max) = sandbox.max_response_bytes {
        limits.max_response_bytes = max;
    }
    limits.call_timeout_ms = u64::try_from(call_timeout.as_millis()).unwrap_or(u64::MAX);
    limits.granted_dirs = sandbox.grants;
    let name: Arc<str> = adapter.display_name().into();

    let component = adapter::compile(&runtime, &path)?;
    let info = adapter::check_component(&path, &runtime.inner().engine, &component)?;
    let prepared = Prepared::link(runtime, &path, &name, &component, config, limits)?;
    let (cassette, plan) = cassette.unzip();
    let mut links = Links {
        name,
        counters: Arc::new(Counters::default()),
        pool: None,
        cassette,
        next: next.clone().map(|host| Arc::new(host) as Arc<dyn Next>),
    };
    prepared
        .check_config(&links, Instant::now() + call_timeout)
        .await?;
    // Workers start only for an adapter that accepted its configuration.
    links.pool = pool.map(Pool::start).transpose()?;
    Ok(Host::from_inner(HostInner {
        path,
        info,
        prepared,
        call_timeout,
        links,
        next,
        plan,
    }))
}
