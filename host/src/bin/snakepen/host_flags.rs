//! The flags `call`, `run` and `serve` share: what a host runs, its
//! cassette and its limits, and `--config FILE`. They lower onto the
//! configuration file's TOML (flags override the file), so that there is one
//! path from what a user wrote to a host: [`ServiceConfig`], then
//! [`ServiceConfig::host_builder`] on a runtime of
//! [`ServiceConfig::runtime_builder`]. How a flag lands on a key is
//! [`Overlay`]'s.

use crate::overlay::Overlay;
use crate::{Failure, progress};
use clap::Args;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use snakepen::serve::ServiceConfig;
use snakepen::{Adapter, Affinity, Host, RecordMode, RuntimeBuilder};
use std::path::{Path, PathBuf};

/// What a host runs: its adapter and, when given a module, its Python workers.
#[derive(Args)]
pub(crate) struct HostFlags {
    /// A configuration file (TOML; see snakepen.example.toml) with the host's adapter, pool, limits and cassette.
    /// The flags below override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The adapter: a short name found in the plugin directories (such as `mock`) or a path to a .wasm component.
    /// Default: `python-bridge` when there is a module.
    #[arg(long, short)]
    adapter: Option<String>,

    /// The adapter's configuration: a TOML file (*.toml) or a JSON file.
    #[arg(long, value_name = "FILE")]
    adapter_config: Option<PathBuf>,

    /// The Python module the workers serve: a file (handlers.py) or a dotted name (app.handlers).
    #[arg(long, short, value_name = "MODULE")]
    module: Option<String>,

    /// How many Python workers to run (default 1).
    #[arg(long, value_name = "N")]
    pool_size: Option<usize>,

    /// How many calls one worker holds at once (default 1): above 1, async handlers run on the worker's event loop and plain functions on that many threads.
    #[arg(long, value_name = "N")]
    max_concurrency: Option<usize>,

    /// Run the workers as actors of the Ray cluster at this address (its GCS `host:port`, such as 127.0.0.1:6379, or `auto`); --python must then name an interpreter that has `ray`.
    #[arg(long, value_name = "ADDRESS")]
    ray: Option<String>,

    /// The Python interpreter for the workers (default python3).
    #[arg(long, value_name = "PATH", env = "SNAKEPEN_PYTHON")]
    python: Option<PathBuf>,

    /// How calls of one session find their worker: `hint` (the default) prefers the session's worker, `strict` requires it.
    #[arg(long, value_name = "MODE", value_parser = affinity_parser())]
    affinity: Option<Affinity>,

    /// How long a session stays bound to its worker after its last call, in milliseconds.
    #[arg(long, value_name = "MS")]
    session_ttl_ms: Option<u64>,

    /// A module to import before the handlers (with the fork server, once for every worker), such as numpy. Repeatable.
    #[arg(long, value_name = "MODULE")]
    preload: Vec<String>,

    /// Start an interpreter for each worker instead of forking workers from one process that imported the module once (for modules that start threads or open connections at import).
    #[arg(long)]
    no_fork_server: bool,

    /// Serve this name of the module as a command too. By default the commands are the functions defined in the module (or the names in its __all__); an imported function is never one unless named here. Repeatable.
    #[arg(long, value_name = "NAME")]
    expose: Vec<String>,

    /// A directory to put first on the workers' sys.path (repeatable). A dotted --module is also looked up in the current directory.
    #[arg(long, value_name = "DIR")]
    python_path: Vec<PathBuf>,

    #[command(flatten)]
    cassette: CassetteFlags,

    #[command(flatten)]
    limits: LimitFlags,
}

/// Recording and replaying calls.
#[derive(Args)]
struct CassetteFlags {
    /// Record the calls to, or replay them from, this cassette (a JSON Lines file).
    #[arg(long, value_name = "FILE")]
    cassette: Option<PathBuf>,

    /// When to record: `once` (the default: record if the cassette holds nothing yet, else replay),
    /// `new_episodes`, `none` (replay only; the default when CI is set) or `all`.
    /// The environment variable SNAKEPEN_RECORD_MODE overrides it.
    #[arg(long, value_name = "MODE", value_parser = record_mode_parser())]
    record_mode: Option<RecordMode>,

    /// A payload field whose value must never be written to the cassette (a name, or a JSON pointer such as /auth/token). Repeatable.
    #[arg(long, value_name = "FIELD")]
    filter: Vec<String>,

    /// A payload field left out of matching, such as a timestamp (a name or a JSON pointer). Repeatable.
    #[arg(long, value_name = "FIELD")]
    ignore: Vec<String>,

    /// Match the session id as well as the command and payload.
    #[arg(long)]
    match_session: bool,

    /// Replay a request's last recording again once all of its recordings were played.
    #[arg(long)]
    allow_repeats: bool,
}

/// The adapter's sandbox (`[limits]` in the configuration file). A value the
/// runtime cannot honour is refused, naming the flag and the most it takes.
#[derive(Args)]
struct LimitFlags {
    /// The deadline of a call that sets none, in milliseconds (default 30000).
    #[arg(long, value_name = "MS")]
    call_timeout_ms: Option<u64>,

    /// The most linear memory one adapter instance may have, in bytes (default 64 MiB, at most 4 GiB).
    #[arg(long, value_name = "BYTES")]
    max_memory_bytes: Option<u64>,

    /// The most elements one table of an adapter instance may have (default 20000).
    #[arg(long, value_name = "N")]
    max_table_elements: Option<u64>,

    /// The most WebAssembly stack one call may use, in bytes (default 512 KiB, from 64 KiB to 16 MiB).
    #[arg(long, value_name = "BYTES")]
    max_stack_bytes: Option<u64>,

    /// The largest answer the adapter may return, in bytes (default 64 MiB).
    #[arg(long, value_name = "BYTES")]
    max_response_bytes: Option<u64>,

    /// How many adapter instances may be alive at once (default 64); more calls wait.
    #[arg(long, value_name = "N")]
    max_instances: Option<u64>,
}

fn affinity_parser() -> impl TypedValueParser<Value = Affinity> {
    PossibleValuesParser::new(Affinity::ALL.map(Affinity::name))
        .map(|name| name.parse().expect("a listed affinity parses"))
}

fn record_mode_parser() -> impl TypedValueParser<Value = RecordMode> {
    PossibleValuesParser::new(RecordMode::ALL.map(|mode| match mode {
        RecordMode::NewEpisodes => PossibleValue::new(mode.as_str()).alias("new-episodes"),
        _ => PossibleValue::new(mode.as_str()),
    }))
    .map(|name| name.parse().expect("a listed record mode parses"))
}

impl HostFlags {
    /// The configuration file (or none) with these flags laid over it.
    pub(crate) fn overlay(&self) -> Result<Overlay, Failure> {
        let mut o = Overlay::read(self.config.as_deref())?;
        if let Some(adapter) = &self.adapter {
            let name = match Adapter::parse(adapter) {
                Adapter::Path(path) => o.absolute(&path),
                Adapter::Named(name) => name,
            };
            o.set("adapter", "name", "--adapter", name);
        }
        if let Some(file) = &self.adapter_config {
            let file = o.absolute(file);
            o.set("adapter", "config_file", "--adapter-config", file);
        }
        let mut dotted = false;
        if let Some(module) = &self.module {
            dotted = !snakepen::pool::is_module_file(module);
            let module = if dotted {
                module.clone()
            } else {
                o.absolute(Path::new(module))
            };
            o.set("pool", "module", "--module", module);
        }
        let pool = o.has("pool");
        if let Some(size) = self.pool_size {
            o.needs("pool", "--pool-size")?;
            o.set("pool", "size", "--pool-size", Overlay::number(size as u64));
        }
        if let Some(n) = self.max_concurrency {
            o.needs("pool", "--max-concurrency")?;
            o.set(
                "pool",
                "max_concurrency",
                "--max-concurrency",
                Overlay::number(n as u64),
            );
        }
        if let Some(python) = &self.python
            && pool
        {
            // SNAKEPEN_PYTHON may be set for every command; it matters only with a pool.
            o.set("pool", "python", "--python", python.display().to_string());
        }
        if let Some(address) = &self.ray {
            o.needs("pool", "--ray")?;
            o.set("pool", "transport", "--ray", "ray");
            o.set("ray", "address", "--ray", address.clone());
        }
        if let Some(affinity) = self.affinity {
            o.needs("pool", "--affinity")?;
            o.set("pool", "affinity", "--affinity", affinity.name());
        }
        if let Some(ms) = self.session_ttl_ms {
            o.needs("pool", "--session-ttl-ms")?;
            o.set(
                "pool",
                "session_ttl_ms",
                "--session-ttl-ms",
                Overlay::number(ms),
            );
        }
        if self.no_fork_server {
            o.needs("pool", "--no-fork-server")?;
            o.set("pool", "fork_server", "--no-fork-server", false);
        }
        if !self.python_path.is_empty() {
            o.needs("pool", "--python-path")?;
            let dirs = self.python_path.iter().map(|d| o.absolute(d)).collect();
            o.extend("pool", "python_path", "--python-path", dirs);
        }
        if dotted {
            // `--module app.handlers` names a package where the user stands.
            let here = vec![o.cwd.display().to_string()];
            o.extend("pool", "python_path", "--module", here);
        }
        if !self.preload.is_empty() {
            o.needs("pool", "--preload")?;
            o.extend("pool", "preload", "--preload", self.preload.clone());
        }
        if !self.expose.is_empty() {
            o.needs("pool", "--expose")?;
            o.extend("pool", "expose", "--expose", self.expose.clone());
        }
        self.cassette.lay_over(&mut o)?;
        self.limits.lay_over(&mut o);
        Ok(o)
    }

    /// How many Python workers the host these flags describe runs (none
    /// without a pool), or `None` when they cannot be read.
    pub(crate) fn pool_size(&self) -> Option<usize> {
        let config = self.overlay().ok()?.parse().ok()?;
        Some(config.pool_config().ok()?.map_or(0, |pool| pool.size))
    }

    /// The host these flags (and their file) describe, with its workers
    /// ready, its progress and its cassette's mode shown on stderr.
    pub(crate) async fn build(
        &self,
        base: RuntimeBuilder,
        plugin_dirs: &[PathBuf],
    ) -> Result<Host, Failure> {
        let config = self.overlay()?.parse()?;
        if config.adapter_name().is_none() && !config.has_cassette() {
            return Err(Failure::Usage(
                "say which adapter to run with --adapter NAME (such as mock), or give Python handlers with --module FILE (or --config FILE)".into(),
            ));
        }
        let host = start(&config, base, plugin_dirs).await?;
        if let (Some(cassette), Some(mode)) = (config.cassette()?, host.record_mode()) {
            let doing = if host.recorded_adapter().is_some() {
                "recording"
            } else {
                "replaying"
            };
            eprintln!(
                "{doing} cassette {} (mode {mode})",
                cassette.path().display()
            );
        }
        if let Some(pool) = host.pool() {
            progress::wait_ready(pool).await?;
        }
        Ok(host)
    }
}

impl CassetteFlags {
    fn lay_over(&self, o: &mut Overlay) -> Result<(), Failure> {
        if let Some(path) = &self.cassette {
            let path = o.absolute(path);
            o.set("cassette", "path", "--cassette", path);
        }
        if let Some(mode) = self.record_mode {
            o.needs("cassette", "--record-mode")?;
            o.set("cassette", "mode", "--record-mode", mode.as_str());
        }
        if !self.filter.is_empty() {
            o.needs("cassette", "--filter")?;
            o.extend("cassette", "filter", "--filter", self.filter.clone());
        }
        if !self.ignore.is_empty() {
            o.needs("cassette", "--ignore")?;
            o.extend("cassette", "ignore", "--ignore", self.ignore.clone());
        }
        if self.match_session {
            o.needs("cassette", "--match-session")?;
            o.set("cassette", "match_session", "--match-session", true);
        }
        if self.allow_repeats {
            o.needs("cassette", "--allow-repeats")?;
            o.set("cassette", "allow_repeats", "--allow-repeats", true);
        }
        Ok(())
    }
}

impl LimitFlags {
    fn lay_over(&self, o: &mut Overlay) {
        let limits = [
            ("call_timeout_ms", "--call-timeout-ms", self.call_timeout_ms),
            (
                "max_memory_bytes",
                "--max-memory-bytes",
                self.max_memory_bytes,
            ),
            (
                "max_table_elements",
                "--max-table-elements",
                self.max_table_elements,
            ),
            ("max_stack_bytes", "--max-stack-bytes", self.max_stack_bytes),
            (
                "max_response_bytes",
                "--max-response-bytes",
                self.max_response_bytes,
            ),
            ("max_instances", "--max-instances", self.max_instances),
        ];
        for (key, flag, value) in limits {
            if let Some(value) = value {
                o.set("limits", key, flag, Overlay::number(value));
            }
        }
    }
}

/// Builds a host for each pool `config` describes (one host when it has
/// at most one pool), by name, the default first, on one runtime (from
/// `base`) that honours its limits. Their workers may still be starting.
pub(crate) async fn start_pools(
    config: &ServiceConfig,
    base: RuntimeBuilder,
    plugin_dirs: &[PathBuf],
) -> Result<Vec<(String, Host)>, Failure> {
    let pools = config.pools()?;
    if pools.len() <= 1 {
        let name = pools
            .first()
            .map_or(snakepen::serve::DEFAULT_POOL.to_string(), |p| {
                p.name.clone()
            });
        return Ok(vec![(name, start(config, base, plugin_dirs).await?)]);
    }
    let runtime = config.runtime_builder(base)?.build()?;
    let mut hosts: Vec<(String, Host)> = Vec::new();
    for pool in pools {
        let mut builder = config
            .host_builder_for(Some(pool.config))?
            .runtime(&runtime);
        for dir in plugin_dirs {
            builder = builder.plugin_dir(dir);
        }
        match builder.build().await {
            Ok(host) => hosts.push((pool.name, host)),
            Err(e) => {
                for (_, host) in &hosts {
                    let _ = host.close().await;
                }
                return Err(e.into());
            }
        }
    }
    Ok(hosts)
}

/// Builds the host `config` describes, on a runtime (from `base`) that
/// honours its limits. Its workers may still be starting.
pub(crate) async fn start(
    config: &ServiceConfig,
    base: RuntimeBuilder,
    plugin_dirs: &[PathBuf],
) -> Result<Host, Failure> {
    let runtime = config.runtime_builder(base)?.build()?;
    let mut builder = config.host_builder()?.runtime(&runtime);
    for dir in plugin_dirs {
        builder = builder.plugin_dir(dir);
    }
    Ok(builder.build().await?)
}
