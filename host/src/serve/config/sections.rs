//! The file's schema: one struct per section, as serde reads it, each
//! value kept with its place in the file so that an error can name its
//! line. Nothing here checks a value; the sibling modules do, as they
//! lower a section into the type the host takes.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use toml::Spanned;

/// `[server]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerSection {
    /// `listen = "127.0.0.1:8787"` (`localhost:P` means `127.0.0.1:P`).
    pub(crate) listen: Option<Spanned<String>>,
    /// The largest request body accepted, in bytes (default 16 MiB); larger is 413.
    pub(crate) max_body_bytes: Option<Spanned<usize>>,
    /// How long a client may take to send its request body, in ms (default 30 000); slower is 408.
    pub(crate) body_timeout_ms: Option<Spanned<u64>>,
    /// How long in-flight calls may take to finish after SIGTERM/SIGINT, in ms (default 10 000).
    pub(crate) drain_grace_ms: Option<u64>,
    /// The most requests one `/v1/batch` may carry (default 1000).
    pub(crate) max_batch: Option<Spanned<usize>>,
    /// A file holding the bearer token every request but `/healthz` and
    /// `/readyz` must carry; it must be readable by its owner only.
    pub(crate) token_file: Option<Spanned<PathBuf>>,
    /// Serve a non-loopback address without a token (something else guards it).
    #[serde(default)]
    pub(crate) insecure_no_auth: bool,
    /// Origins (such as `http://localhost:3000`) a browser may call from;
    /// a request with any other `Origin` header gets 403.
    #[serde(default)]
    pub(crate) allowed_origins: Vec<String>,
    /// Host names, besides the listen address and loopback, that requests
    /// may name in their `Host` header; any other gets 403.
    #[serde(default)]
    pub(crate) allowed_hosts: Vec<String>,
    /// How long a client may take to send a request's headers once it began, in ms (default 10 000).
    pub(crate) header_timeout_ms: Option<Spanned<u64>>,
    /// How long a connection may sit with no request before it is closed, in ms (default 60 000).
    pub(crate) idle_timeout_ms: Option<Spanned<u64>>,
    /// The most connections open at once (default 512); more get 503 and are closed.
    pub(crate) max_connections: Option<Spanned<usize>>,
    /// Keep tracebacks, stderr tails, exit details, paths and the module's
    /// functions out of error bodies (they are logged, with the request id
    /// the body carries).
    #[serde(default)]
    pub(crate) hide_internals: bool,
}

/// `[adapter]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdapterSection {
    /// A short name (`mock`, `python-bridge`) or a path to a `.wasm` component.
    pub(crate) name: String,
    /// The adapter's configuration, inline.
    pub(crate) config: Option<toml::Table>,
    /// The adapter's configuration, in a TOML or JSON file.
    pub(crate) config_file: Option<PathBuf>,
    /// Extra directories to find adapters by short name in.
    #[serde(default)]
    pub(crate) plugin_dirs: Vec<PathBuf>,
}

/// `[pool]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolSection {
    /// The handlers: a file (`handlers.py`) or a dotted module name.
    pub(crate) module: Spanned<String>,
    /// How many workers (default 1).
    pub(crate) size: Option<Spanned<usize>>,
    /// How many calls one worker holds at once (default 1).
    pub(crate) max_concurrency: Option<Spanned<usize>>,
    /// The interpreter (default `python3`).
    pub(crate) python: Option<PathBuf>,
    /// Directories put first on the workers' `sys.path`.
    #[serde(default)]
    pub(crate) python_path: Vec<PathBuf>,
    /// Modules imported before the handlers (once, by the fork server).
    #[serde(default)]
    pub(crate) preload: Vec<String>,
    /// Names served as commands besides the module's own functions.
    #[serde(default)]
    pub(crate) expose: Vec<String>,
    /// Environment variables for the workers.
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    /// `hint` (default) or `strict`.
    pub(crate) affinity: Option<Spanned<String>>,
    /// How long a session stays bound after its last call, in ms.
    pub(crate) session_ttl_ms: Option<u64>,
    /// The most sessions bound at once (default 100 000).
    pub(crate) max_sessions: Option<Spanned<usize>>,
    /// The longest session id, in bytes (default 256).
    pub(crate) max_session_id_bytes: Option<Spanned<usize>>,
    /// Fork workers from a fork server (default true).
    pub(crate) fork_server: Option<bool>,
    /// How long a worker may take to start, in ms.
    pub(crate) start_timeout_ms: Option<Spanned<u64>>,
    /// Recycle a worker after this many requests.
    pub(crate) max_requests: Option<Spanned<u64>>,
    /// Recycle a worker after this age, in ms.
    pub(crate) max_age_ms: Option<Spanned<u64>>,
    /// Recycle a worker whose resident memory passes this, in bytes.
    pub(crate) max_rss_bytes: Option<Spanned<u64>>,
    /// Ping idle workers this often, in ms (0: never).
    pub(crate) health_interval_ms: Option<u64>,
    /// On shutdown, how long calls in flight may take, in ms.
    pub(crate) shutdown_grace_ms: Option<u64>,
    /// The largest frame a worker may send, in bytes.
    pub(crate) max_frame_bytes: Option<Spanned<usize>>,
    /// Where the workers run: `local` (default) or `ray` (see `[ray]`).
    pub(crate) transport: Option<Spanned<String>>,
    /// In `[pools.NAME]`: the pool a request that names none goes to.
    pub(crate) default: Option<Spanned<bool>>,
}

/// `[ray]`: the cluster of a pool whose `transport` is `ray`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RaySection {
    /// The cluster's address (`host:port` of its GCS, or `auto`).
    pub(crate) address: Spanned<String>,
    /// Actor options, passed to Ray as they are (`num_cpus`, `num_gpus`,
    /// `resources`, `scheduling_strategy`, …).
    pub(crate) actor_options: Option<toml::Table>,
    /// The job's runtime environment (`pip`, `env_vars`, `working_dir`, …).
    pub(crate) runtime_env: Option<toml::Table>,
    /// The path of the workers' frames: `"direct"` (the default) or `"driver"`.
    pub(crate) frames: Option<Spanned<String>>,
}

/// `[limits]`: each in its [`crate::LimitRange`], refused outside it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsSection {
    /// The deadline of a call that names none, in ms (default 30 000).
    pub(crate) call_timeout_ms: Option<Spanned<u64>>,
    /// Linear memory of one adapter instance, in bytes (default 64 MiB).
    pub(crate) max_memory_bytes: Option<Spanned<u64>>,
    /// Elements of one table of an adapter instance (default 20 000).
    pub(crate) max_table_elements: Option<Spanned<u64>>,
    /// WebAssembly stack of one call, in bytes (default 512 KiB).
    pub(crate) max_stack_bytes: Option<Spanned<u64>>,
    /// The largest answer an adapter may return, in bytes (default 64 MiB).
    pub(crate) max_response_bytes: Option<Spanned<u64>>,
    /// Adapter instances alive at once (default 64; more calls wait).
    pub(crate) max_instances: Option<Spanned<u64>>,
}

/// `[cassette]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CassetteSection {
    /// The cassette file (JSON Lines).
    pub(crate) path: PathBuf,
    /// `once` (default), `new_episodes`, `none` or `all`.
    pub(crate) mode: Option<Spanned<String>>,
    /// Payload fields never written to the cassette.
    #[serde(default)]
    pub(crate) filter: Vec<String>,
    /// Payload fields left out of matching.
    #[serde(default)]
    pub(crate) ignore: Vec<String>,
    /// Match the session id too.
    #[serde(default)]
    pub(crate) match_session: bool,
    /// Replay a request's last recording again once all were played.
    #[serde(default)]
    pub(crate) allow_repeats: bool,
}
