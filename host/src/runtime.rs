//! The long-lived part of the sandbox: one wasmtime [`Engine`] with its
//! epoch ticker, its instance limit and its on-disk cache of compiled
//! adapters. It holds no per-host state, so any number of hosts may share
//! one [`Runtime`]; each host still gets its own adapter instances.

use crate::Error;
use crate::bindings::Plugin;
use crate::imports::CallState;
use crate::limits::LimitRange;
use crate::slots::Slots;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A spinning adapter yields to the executor
/// once per tick, so this bounds how long it can hold a thread.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

const KEEP_RESIDENT_BYTES: usize = 2 << 20;

/// The shared WebAssembly engine. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    pub(crate) cache_dir: Option<PathBuf>,
    /// One slot per adapter instance alive at once (serving or kept warm by
    /// its host), so a burst of calls waits for a slot instead of failing in
    /// the pooling allocator.
    pub(crate) slots: Slots,
    pub(crate) pooled: bool,
    /// The limits every instance of this runtime runs under.
    pub(crate) settings: RuntimeBuilder,
    /// The contract's imports and WASI, wired once for every host.
    pub(crate) linker: Linker<CallState>,
    /// Dropping this stops the epoch ticker thread.
    _ticker: mpsc::Sender<()>,
}

/// Settings of a [`Runtime`]. Every limit has a default safe for production.
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    cache_dir: Option<PathBuf>,
    pub(crate) max_instances: u32,
    pub(crate) max_memory_bytes: usize,
    pub(crate) max_table_elements: usize,
    pub(crate) max_stack_bytes: usize,
    pooling: bool,
    pub(crate) epochs: bool,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            cache_dir: dirs::cache_dir().map(|d| d.join("snakepen").join("compiled")),
            max_instances: 64,
            max_memory_bytes: 64 << 20,
            max_table_elements: 20_000,
            max_stack_bytes: 512 << 10,
            pooling: true,
            epochs: true,
        }
    }
}

impl RuntimeBuilder {
    /// Where compiled adapters are kept between runs (default: the user's
    /// cache directory, `~/.cache/snakepen/compiled` on Linux).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Compile adapters on every start instead of caching them on disk.
    pub fn no_cache(mut self) -> Self {
        self.cache_dir = None;
        self
    }

    /// How many adapter instances may be alive at once across all hosts of
    /// this runtime (default 64). Further calls wait for a free slot.
    ///
    /// This also bounds the memory the instances keep once a burst is over:
    /// every slot that ran an instance keeps the first 2 MiB of its linear
    /// memory resident (resetting it is cheaper than faulting it in again)
    /// and its call stack, about 2.5 MiB per slot at most, so 160 MiB at
    /// the default. A call waiting for a Python worker holds its instance,
    /// so this is also how many calls can wait in the pool's queue at once.
    /// At least 1, at most [`LimitRange::INSTANCES`]'s maximum; `build`
    /// refuses other values.
    pub fn max_instances(mut self, n: u32) -> Self {
        self.max_instances = n;
        self
    }

    /// At least room for `calls` adapter instances running at once (and a
    /// few to spare), within the most a runtime may hold: a call holds its
    /// instance while it waits for its worker, so a pool that holds that
    /// many calls needs that many instances.
    pub(crate) fn room_for_calls(mut self, calls: usize) -> Self {
        let needed = calls
            .saturating_add(8)
            .min(LimitRange::INSTANCES.max as usize) as u32;
        self.max_instances = self.max_instances.max(needed);
        self
    }

    /// How many adapter instances it holds at once.
    pub(crate) fn instances(&self) -> u32 {
        self.max_instances
    }

    /// The most linear memory one adapter instance may have (default 64 MiB,
    /// at most 4 GiB: [`LimitRange::MEMORY`]).
    pub fn max_memory_bytes(mut self, bytes: usize) -> Self {
        self.max_memory_bytes = bytes;
        self
    }

    /// The most elements one table of an adapter instance may have (default
    /// 20 000, at most [`LimitRange::TABLE`]'s maximum).
    pub fn max_table_elements(mut self, n: usize) -> Self {
        self.max_table_elements = n;
        self
    }

    /// The most WebAssembly stack one call may use (default 512 KiB); deeper
    /// recursion is stopped with an `adapter-fault` that says so. From
    /// 64 KiB to 16 MiB ([`LimitRange::STACK`]); `build` refuses others.
    pub fn max_stack_bytes(mut self, bytes: usize) -> Self {
        self.max_stack_bytes = bytes;
        self
    }

    /// Whether running adapters are interrupted at every epoch tick (the
    /// default, and the only way to stop an adapter stuck in a loop at its
    /// deadline, or to let other calls run beside it). Turning it off only
    /// serves to measure what the checks cost (`just bench`).
    pub fn epoch_interruption(mut self, on: bool) -> Self {
        self.epochs = on;
        self
    }

    /// Use on-demand instance allocation instead of the pooling allocator
    /// (for machines that limit address space).
    pub fn without_pooling(mut self) -> Self {
        self.pooling = false;
        self
    }

    /// Creates the engine and starts its epoch ticker.
    ///
    /// Fails with [`Error::Limit`] when a limit is outside its
    /// [`LimitRange`], and otherwise only if wasmtime rejects the
    /// configuration. When the pooling allocator cannot reserve its address
    /// space, the runtime falls back to on-demand allocation and logs why.
    pub fn build(self) -> Result<Runtime, Error> {
        LimitRange::MEMORY.check(self.max_memory_bytes as u64)?;
        LimitRange::TABLE.check(self.max_table_elements as u64)?;
        LimitRange::STACK.check(self.max_stack_bytes as u64)?;
        LimitRange::INSTANCES.check(u64::from(self.max_instances))?;
        let (engine, pooled) = if self.pooling {
            match Engine::new(&self.config(true)) {
                Ok(engine) => (engine, true),
                Err(e) => {
                    tracing::warn!(error = %e, "the pooling allocator is unavailable here; allocating adapter instances on demand");
                    (self.engine(false)?, false)
                }
            }
        } else {
            (self.engine(false)?, false)
        };
        let linker = link(&engine).map_err(|e| Error::Engine {
            message: format!("{e:#}"),
            source: e,
        })?;
        let ticker = spawn_epoch_ticker(&engine);
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                cache_dir: self.cache_dir.clone(),
                slots: Slots::new(self.max_instances as usize),
                pooled,
                settings: self,
                _ticker: ticker,
            }),
        })
    }

    fn engine(&self, pooling: bool) -> Result<Engine, Error> {
        Engine::new(&self.config(pooling)).map_err(|e| Error::Engine {
            message: e.to_string(),
            source: e,
        })
    }

    fn config(&self, pooling: bool) -> Config {
        let mut config = Config::new();
        config.epoch_interruption(self.epochs);
        config.max_wasm_stack(self.max_stack_bytes);
        // The fiber a call runs on must hold the wasm stack and the host's frames above it.
        config.async_stack_size(self.max_stack_bytes + (1 << 20));
        // Adapters do not use component-model async; without it a call costs less.
        config.concurrency_support(false);
        if pooling {
            let mut pool = PoolingAllocationConfig::default();
            let n = self.max_instances;
            // A Rust wasip2 component holds a few core instances, memories and tables.
            pool.total_component_instances(n)
                .total_core_instances(n * 8)
                .total_memories(n * 2)
                .total_tables(n * 4)
                .table_elements(self.max_table_elements)
                .max_memory_size(self.max_memory_bytes)
                .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
                .table_keep_resident(KEEP_RESIDENT_BYTES);
            config.memory_init_cow(false);
            config.memory_reservation(self.max_memory_bytes as u64);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        config
    }
}

impl Runtime {
    /// A runtime with the default settings.
    pub fn new() -> Result<Runtime, Error> {
        RuntimeBuilder::default().build()
    }

    /// Settings for a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The limits a host built on this runtime runs its adapter under,
    /// before the host's own settings (`HostBuilder::max_memory_bytes`, …).
    pub fn default_limits(&self) -> crate::Limits {
        let settings = &self.inner.settings;
        crate::Limits {
            max_memory_bytes: settings.max_memory_bytes,
            max_table_elements: settings.max_table_elements,
            max_stack_bytes: settings.max_stack_bytes,
            max_response_bytes: crate::defaults::DEFAULT_MAX_RESPONSE_BYTES,
            call_timeout_ms: crate::defaults::DEFAULT_CALL_TIMEOUT.as_millis() as u64,
            deadline_slack_ms: (crate::defaults::GUEST_SLACK + EPOCH_TICK).as_millis() as u64,
            max_instances: settings.max_instances,
            granted_dirs: Vec::new(),
        }
    }

    /// Whether instances come from the pooling allocator (false after a fallback).
    pub fn is_pooled(&self) -> bool {
        self.inner.pooled
    }

    pub(crate) fn inner(&self) -> &RuntimeInner {
        &self.inner
    }
}

fn link(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Plugin::add_to_linker::<_, HasSelf<CallState>>(&mut linker, |state| state)?;
    Ok(linker)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the runtime is
/// dropped (the sender side of the channel goes away).
fn spawn_epoch_ticker(engine: &Engine) -> mpsc::Sender<()> {
    let (stop, stopped) = mpsc::channel::<()>();
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("snakepen-epoch".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .expect("the OS refused to start the epoch ticker thread");
    stop
}
