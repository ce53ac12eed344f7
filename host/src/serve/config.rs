//! `snakepen.toml`: everything a long-running `snakepen serve` needs in one
//! file (server, adapter, pool, limits, cassette), validated at start with
//! errors that name the file, the line and the key. See
//! `snakepen.example.toml` for every key, annotated.

use super::token::Token;
use crate::{
    Adapter, AdapterConfig, Affinity, Cassette, HostBuilder, LimitRange, PoolConfig, RecordMode,
    RuntimeBuilder,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The address `snakepen serve` listens on unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

/// A configuration file that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file.
    file: PathBuf,
    /// The line the problem is on, when it is on one.
    pub line: Option<usize>,
    /// What is wrong and how to fix it, naming the key.
    pub message: String,
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// `[server]`: where and how the HTTP API listens.
    #[serde(default)]
    pub server: ServerSection,
    /// `[adapter]`: which adapter runs, and its configuration.
    pub adapter: Option<AdapterSection>,
    /// `[pool]`: the Python workers.
    pub pool: Option<PoolSection>,
    /// `[limits]`: call timeout and the adapter's sandbox.
    #[serde(default)]
    pub limits: LimitsSection,
    /// `[cassette]`: record calls to, or replay them from, a cassette (the
    /// recorder or the replayer goes in front of the adapter).
    pub cassette: Option<CassetteSection>,
    /// The directory relative paths are taken from (the file's own).
    #[serde(skip)]
    base: PathBuf,
    /// The file it came from, for error messages.
    #[serde(skip)]
    file: PathBuf,
    #[serde(skip)]
    text: String,
}

/// `[server]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// `listen = "127.0.0.1:8787"` (`localhost:P` means `127.0.0.1:P`).
    pub listen: Option<Spanned<String>>,
    /// The largest request body accepted, in bytes (default 16 MiB); larger is 413.
    pub max_body_bytes: Option<Spanned<usize>>,
    /// How long a client may take to send its request body, in ms (default 30 000); slower is 408.
    pub body_timeout_ms: Option<Spanned<u64>>,
    /// How long in-flight calls may take to finish after SIGTERM/SIGINT, in ms (default 10 000).
    pub drain_grace_ms: Option<u64>,
    /// The most requests one `/v1/batch` may carry (default 1000).
    pub max_batch: Option<Spanned<usize>>,
    /// A file holding the bearer token every request but `/healthz` and
    /// `/readyz` must carry; it must be readable by its owner only.
    pub token_file: Option<Spanned<PathBuf>>,
    /// Serve a non-loopback address without a token (something else guards it).
    #[serde(default)]
    pub insecure_no_auth: bool,
    /// Origins (such as `http://localhost:3000`) a browser may call from;
    /// a request with any other `Origin` header gets 403.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Host names, besides the listen address and loopback, that requests
    /// may name in their `Host` header; any other gets 403.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// How long a client may take to send a request's headers once it began, in ms (default 10 000).
    pub header_timeout_ms: Option<Spanned<u64>>,
    /// How long a connection may sit with no request before it is closed, in ms (default 60 000).
    pub idle_timeout_ms: Option<Spanned<u64>>,
    /// The most connections open at once (default 512); more get 503 and are closed.
    pub max_connections: Option<Spanned<usize>>,
    /// Keep tracebacks, stderr tails, exit details, paths and the module's
    /// functions out of error bodies (they are logged, with the request id
    /// the body carries).
    #[serde(default)]
    pub hide_internals: bool,
}

/// `[adapter]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterSection {
    /// A short name (`mock`, `python-bridge`) or a path to a `.wasm` component.
    pub name: String,
    /// The adapter's configuration, inline.
    pub config: Option<toml::Table>,
    /// The adapter's configuration, in a TOML or JSON file.
    pub config_file: Option<PathBuf>,
    /// Extra directories to find adapters by short name in.
    #[serde(default)]
    pub plugin_dirs: Vec<PathBuf>,
}

/// `[pool]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSection {
    /// The handlers: a file (`handlers.py`) or a dotted module name.
    pub module: Spanned<String>,
    /// How many workers (default 1).
    pub size: Option<Spanned<usize>>,
    /// The interpreter (default `python3`).
    pub python: Option<PathBuf>,
    /// Directories put first on the workers' `sys.path`.
    #[serde(default)]
    pub python_path: Vec<PathBuf>,
    /// Modules imported before the handlers (once, by the fork server).
    #[serde(default)]
    pub preload: Vec<String>,
    /// Names served as commands besides the module's own functions.
    #[serde(default)]
    pub expose: Vec<String>,
    /// Environment variables for the workers.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `hint` (default) or `strict`.
    pub affinity: Option<Spanned<String>>,
    /// How long a session stays bound after its last call, in ms.
    pub session_ttl_ms: Option<u64>,
    /// The most sessions bound at once (default 100 000).
    pub max_sessions: Option<Spanned<usize>>,
    /// The longest session id, in bytes (default 256).
    pub max_session_id_bytes: Option<Spanned<usize>>,
    /// Fork workers from a fork server (default true).
    pub fork_server: Option<bool>,
    /// How long a worker may take to start, in ms.
    pub start_timeout_ms: Option<Spanned<u64>>,
    /// Recycle a worker after this many requests.
    pub max_requests: Option<Spanned<u64>>,
    /// Recycle a worker after this age, in ms.
    pub max_age_ms: Option<Spanned<u64>>,
    /// Recycle a worker whose resident memory passes this, in bytes.
    pub max_rss_bytes: Option<Spanned<u64>>,
    /// Ping idle workers this often, in ms (0: never).
    pub health_interval_ms: Option<u64>,
    /// On shutdown, how long calls in flight may take, in ms.
    pub shutdown_grace_ms: Option<u64>,
    /// The largest frame a worker may send, in bytes.
    pub max_frame_bytes: Option<Spanned<usize>>,
}

/// `[limits]`: each in its [`LimitRange`], refused outside it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// The deadline of a call that names none, in ms (default 30 000).
    pub call_timeout_ms: Option<Spanned<u64>>,
    /// Linear memory of one adapter instance, in bytes (default 64 MiB).
    pub max_memory_bytes: Option<Spanned<u64>>,
    /// Elements of one table of an adapter instance (default 20 000).
    pub max_table_elements: Option<Spanned<u64>>,
    /// WebAssembly stack of one call, in bytes (default 512 KiB).
    pub max_stack_bytes: Option<Spanned<u64>>,
    /// The largest answer an adapter may return, in bytes (default 64 MiB).
    pub max_response_bytes: Option<Spanned<u64>>,
    /// Adapter instances alive at once (default 64; more calls wait).
    pub max_instances: Option<Spanned<u64>>,
}

/// `[cassette]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CassetteSection {
    /// The cassette file (JSON Lines).
    pub path: PathBuf,
    /// `once` (default), `new_episodes`, `none` or `all`.
    pub mode: Option<Spanned<String>>,
    /// Payload fields never written to the cassette.
    #[serde(default)]
    pub filter: Vec<String>,
    /// Payload fields left out of matching.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Match the session id too.
    #[serde(default)]
    pub match_session: bool,
    /// Replay a request's last recording again once all were played.
    #[serde(default)]
    pub allow_repeats: bool,
}

/// The server's own settings, resolved from `[server]` and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeSettings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// How long a client may take to send its request body.
    pub body_timeout: Duration,
    /// How long in-flight calls may take to finish once a shutdown began.
    pub drain_grace: Duration,
    /// The most requests one batch may carry.
    pub max_batch: usize,
    /// The bearer token requests must carry, if any.
    pub token: Option<Token>,
    /// Whether a non-loopback address may be served without a token.
    pub insecure_no_auth: bool,
    /// Origins a browser may call from.
    pub allowed_origins: Vec<String>,
    /// Host names requests may name besides the listen address and loopback.
    pub allowed_hosts: Vec<String>,
    /// How long a request's headers may take once their first byte came.
    pub header_timeout: Duration,
    /// How long a connection may sit without a request.
    pub idle_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
    /// Whether error bodies leave out internals (logged instead).
    pub hide_internals: bool,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            listen: DEFAULT_LISTEN.parse().expect("the default address parses"),
            max_body_bytes: 16 << 20,
            body_timeout: Duration::from_secs(30),
            drain_grace: Duration::from_secs(10),
            max_batch: 1000,
            token: None,
            insecure_no_auth: false,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            // Any real client sends its headers in one go; 10 s is plenty
            // even over a slow link, and bounds a slowloris connection.
            header_timeout: Duration::from_secs(10),
            // Longer than clients' usual pause between calls, shorter than
            // load balancers' idle timeouts (60 s and up) would make sense to exceed.
            idle_timeout: Duration::from_secs(60),
            // Half the usual default descriptor limit (1024), leaving room
            // for the workers' pipes, sockets and the adapters' files.
            max_connections: 512,
            hide_internals: false,
        }
    }
}

/// Why a server may not start with its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExposureError {
    /// A non-loopback address without a token.
    #[error(
        "{listen} is reachable from other machines, and no token is set: anyone who can reach it could run the service's code"
    )]
    Unguarded {
        /// The address.
        listen: SocketAddr,
    },
}

impl ServeSettings {
    /// Refuses a non-loopback listen address without a token, unless
    /// `insecure_no_auth` says something else guards it.
    pub fn check_exposure(&self) -> Result<(), ExposureError> {
        if self.token.is_none() && !self.insecure_no_auth && !self.listen.ip().is_loopback() {
            return Err(ExposureError::Unguarded {
                listen: self.listen,
            });
        }
        Ok(())
    }
}

/// Parses a listen address: `IP:PORT`, or `localhost:PORT` for `127.0.0.1:PORT`.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Some(port) = text.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|e| format!("{port:?} is not a port ({e})"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse()
        .map_err(|e: std::net::AddrParseError| e.to_string())
}

impl ServiceConfig {
    /// Reads and parses `path`; unknown keys and wrong types are refused
    /// with their line. Relative paths in it are taken from its directory.
    pub fn load(path: impl AsRef<Path>) -> Result<ServiceConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            message: format!("cannot read it ({e}); check the path given to --config"),
        })?;
        ServiceConfig::parse(path, &text)
    }

    /// Parses `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<ServiceConfig, ConfigError> {
        let mut config: ServiceConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: e.span().map(|span| line_of(text, span.start)),
            message: e.message().trim_end().to_string(),
        })?;
        config.base = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        config.file = path.to_path_buf();
        config.text = text.to_string();
        config.serve_settings()?;
        config.pool_config()?;
        config.limits()?;
        config.cassette()?;
        Ok(config)
    }

    fn error_at<T>(&self, spanned: &Spanned<T>, message: String) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: Some(line_of(&self.text, spanned.span().start)),
            message,
        }
    }

    fn path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }

    /// A value that must not be 0, or the error naming its key and line.
    fn positive<T: Copy + Default + PartialEq>(
        &self,
        key: &str,
        value: &Option<Spanned<T>>,
    ) -> Result<Option<T>, ConfigError> {
        match value {
            Some(v) if *v.get_ref() == T::default() => Err(self.error_at(
                v,
                format!("`{key}` is 0, which nothing can meet: give it at least 1, or leave it out for the default"),
            )),
            Some(v) => Ok(Some(*v.get_ref())),
            None => Ok(None),
        }
    }

    /// `[server]` with its defaults (the token file is read and checked).
    pub fn serve_settings(&self) -> Result<ServeSettings, ConfigError> {
        let defaults = ServeSettings::default();
        let server = &self.server;
        let listen = match &server.listen {
            None => defaults.listen,
            Some(listen) => parse_listen(listen.get_ref()).map_err(|e| {
                self.error_at(
                    listen,
                    format!(
                        "`server.listen` = {:?} is not an address ({e}); write it as \"127.0.0.1:8787\" or \"localhost:8787\"",
                        listen.get_ref()
                    ),
                )
            })?,
        };
        let token = match &server.token_file {
            None => None,
            Some(file) => Some(
                Token::from_file(&self.path(file.get_ref()))
                    .map_err(|e| self.error_at(file, format!("`server.token_file`: {e}")))?,
            ),
        };
        let ms = Duration::from_millis;
        Ok(ServeSettings {
            listen,
            max_body_bytes: self
                .positive("server.max_body_bytes", &server.max_body_bytes)?
                .unwrap_or(defaults.max_body_bytes),
            body_timeout: self
                .positive("server.body_timeout_ms", &server.body_timeout_ms)?
                .map_or(defaults.body_timeout, ms),
            drain_grace: server.drain_grace_ms.map_or(defaults.drain_grace, ms),
            max_batch: self
                .positive("server.max_batch", &server.max_batch)?
                .unwrap_or(defaults.max_batch),
            token,
            insecure_no_auth: server.insecure_no_auth,
            allowed_origins: server.allowed_origins.clone(),
            allowed_hosts: server.allowed_hosts.clone(),
            header_timeout: self
                .positive("server.header_timeout_ms", &server.header_timeout_ms)?
                .map_or(defaults.header_timeout, ms),
            idle_timeout: self
                .positive("server.idle_timeout_ms", &server.idle_timeout_ms)?
                .map_or(defaults.idle_timeout, ms),
            max_connections: self
                .positive("server.max_connections", &server.max_connections)?
                .unwrap_or(defaults.max_connections),
            hide_internals: server.hide_internals,
        })
    }

    /// `[pool]` as a [`PoolConfig`], if there is one.
    pub fn pool_config(&self) -> Result<Option<PoolConfig>, ConfigError> {
        let Some(section) = &self.pool else {
            return Ok(None);
        };
        let module = section.module.get_ref();
        let file = crate::pool::is_module_file(module).then(|| self.path(Path::new(module)));
        let module = match &file {
            Some(file) => file.display().to_string(),
            None => module.clone(),
        };
        let mut pool = PoolConfig::new(module);
        if let Some(size) = &section.size {
            if *size.get_ref() == 0 {
                return Err(self.error_at(
                    size,
                    "`pool.size` is 0: a pool needs at least one worker".into(),
                ));
            }
            pool.size = *size.get_ref();
        }
        if let Some(python) = &section.python {
            pool.python = python.clone();
        }
        pool.python_path
            .extend(section.python_path.iter().map(|p| self.path(p)));
        pool.env
            .extend(section.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        pool.preload.extend(section.preload.iter().cloned());
        pool.expose.extend(section.expose.iter().cloned());
        let s = &mut pool.settings;
        if let Some(affinity) = &section.affinity {
            s.affinity = affinity.get_ref().parse::<Affinity>().map_err(|_| {
                self.error_at(
                    affinity,
                    format!(
                        "`pool.affinity` = {:?}: write \"hint\" or \"strict\"",
                        affinity.get_ref()
                    ),
                )
            })?;
        }
        let ms = Duration::from_millis;
        if let Some(v) = section.session_ttl_ms {
            s.session_ttl = ms(v);
        }
        if let Some(v) = section.fork_server {
            s.fork_server = v;
        }
        if let Some(v) = self.positive("pool.start_timeout_ms", &section.start_timeout_ms)? {
            s.start_timeout = ms(v);
        }
        // 0 would recycle every worker as soon as it starts, forever.
        if let Some(v) = self.positive("pool.max_requests", &section.max_requests)? {
            s.max_requests = Some(v);
        }
        if let Some(v) = self.positive("pool.max_age_ms", &section.max_age_ms)? {
            s.max_age = Some(ms(v));
        }
        if let Some(v) = self.positive("pool.max_rss_bytes", &section.max_rss_bytes)? {
            s.max_rss_bytes = Some(v);
        }
        if let Some(v) = section.health_interval_ms {
            s.health_interval = (v > 0).then(|| ms(v));
        }
        if let Some(v) = section.shutdown_grace_ms {
            s.shutdown_grace = ms(v);
        }
        if let Some(v) = self.positive("pool.max_frame_bytes", &section.max_frame_bytes)? {
            s.max_frame_bytes = v;
        }
        if let Some(v) = self.positive("pool.max_sessions", &section.max_sessions)? {
            s.max_sessions = v;
        }
        if let Some(v) =
            self.positive("pool.max_session_id_bytes", &section.max_session_id_bytes)?
        {
            s.max_session_id_bytes = v;
        }
        // What the pool itself would refuse at start (its size against the
        // ceiling and this process's descriptor limit), refused here too.
        if let Err((field, message)) = pool.check() {
            let message = format!("`pool.{field}` {message}");
            return Err(match (field, &section.size) {
                ("size", Some(size)) => self.error_at(size, message),
                _ => self.error_at(&section.module, message),
            });
        }
        if let Some(file) = file {
            if file.is_dir() {
                return Err(self.error_at(
                    &section.module,
                    format!(
                        "`pool.module`: {} is a directory, not a module: name a .py file in it, or its package as a dotted name with its parent in `pool.python_path`",
                        file.display()
                    ),
                ));
            }
            if !file.is_file() {
                return Err(self.error_at(
                    &section.module,
                    format!(
                        "`pool.module`: no such file {} (relative paths are taken from the configuration file's folder)",
                        file.display()
                    ),
                ));
            }
        }
        Ok(Some(pool))
    }

    /// `[cassette]` as a [`Cassette`], if there is one.
    pub fn cassette(&self) -> Result<Option<Cassette>, ConfigError> {
        let Some(section) = &self.cassette else {
            return Ok(None);
        };
        let mut cassette = Cassette::new(self.path(&section.path));
        if let Some(mode) = &section.mode {
            let parsed = mode.get_ref().parse::<RecordMode>().map_err(|_| {
                self.error_at(
                    mode,
                    format!(
                        "`cassette.mode` = {:?}: write \"once\", \"new_episodes\", \"none\" or \"all\"",
                        mode.get_ref()
                    ),
                )
            })?;
            cassette = cassette.mode(parsed);
        }
        for field in &section.filter {
            cassette = cassette.filter(field);
        }
        for field in &section.ignore {
            cassette = cassette.ignore(field);
        }
        Ok(Some(
            cassette
                .match_session(section.match_session)
                .allow_repeats(section.allow_repeats),
        ))
    }

    /// The adapter to run: `[adapter] name`, else `python-bridge` when
    /// there is a pool, else none (a cassette alone replays).
    pub fn adapter_name(&self) -> Option<String> {
        match (&self.adapter, &self.pool) {
            (Some(adapter), _) => Some(adapter.name.clone()),
            (None, Some(_)) => Some("python-bridge".into()),
            (None, None) => None,
        }
    }

    /// The adapter to run, a path in the file taken from the file's folder.
    pub fn adapter(&self) -> Option<Adapter> {
        Some(match Adapter::parse(&self.adapter_name()?) {
            Adapter::Path(path) => Adapter::Path(self.path(&path)),
            named => named,
        })
    }

    /// `adapter.plugin_dirs`, taken from the file's folder.
    pub fn plugin_dirs(&self) -> Vec<PathBuf> {
        self.adapter
            .iter()
            .flat_map(|a| &a.plugin_dirs)
            .map(|d| self.path(d))
            .collect()
    }

    /// `adapter.config_file`, taken from the file's folder.
    pub fn adapter_config_file(&self) -> Option<PathBuf> {
        let file = self.adapter.as_ref()?.config_file.as_ref()?;
        Some(self.path(file))
    }

    /// A host builder with everything the file says.
    pub fn host_builder(&self) -> Result<HostBuilder, ConfigError> {
        let mut builder = crate::Host::builder();
        if let Some(adapter) = self.adapter() {
            builder = builder.adapter(adapter);
        }
        for dir in self.plugin_dirs() {
            builder = builder.plugin_dir(dir);
        }
        let inline = self.adapter.as_ref().and_then(|a| a.config.as_ref());
        match (inline, self.adapter_config_file()) {
            (Some(_), Some(_)) => {
                return Err(ConfigError {
                    file: self.file.clone(),
                    line: None,
                    message: "`adapter.config` and `adapter.config_file` are both set: keep one"
                        .into(),
                });
            }
            (Some(table), None) => {
                let json = serde_json::to_value(table).map_err(|e| ConfigError {
                    file: self.file.clone(),
                    line: None,
                    message: format!("`adapter.config` cannot be turned into JSON: {e}"),
                })?;
                builder = builder.config(AdapterConfig::Json(json));
            }
            (None, Some(file)) => builder = builder.config(AdapterConfig::file(file)),
            (None, None) => {}
        }
        if let Some(pool) = self.pool_config()? {
            builder = builder.pool(pool);
        }
        if let Some(cassette) = self.cassette()? {
            builder = builder.cassette(cassette);
        }
        let limits = self.limits()?;
        if let Some(ms) = limits.call_timeout_ms {
            builder = builder.call_timeout(Duration::from_millis(ms));
        }
        if let Some(bytes) = limits.max_memory_bytes {
            builder = builder.max_memory_bytes(bytes as usize);
        }
        if let Some(n) = limits.max_table_elements {
            builder = builder.max_table_elements(n as usize);
        }
        if let Some(bytes) = limits.max_response_bytes {
            builder = builder.max_response_bytes(bytes as usize);
        }
        Ok(builder)
    }

    /// `base` with the runtime's share of `[limits]` (memory, tables, stack,
    /// instances): the runtime the host of [`ServiceConfig::host_builder`]
    /// is built on, so that the limits the file raises are honoured.
    pub fn runtime_builder(&self, base: RuntimeBuilder) -> Result<RuntimeBuilder, ConfigError> {
        let limits = self.limits()?;
        let mut builder = base;
        if let Some(bytes) = limits.max_memory_bytes {
            builder = builder.max_memory_bytes(bytes as usize);
        }
        if let Some(n) = limits.max_table_elements {
            builder = builder.max_table_elements(n as usize);
        }
        if let Some(bytes) = limits.max_stack_bytes {
            builder = builder.max_stack_bytes(bytes as usize);
        }
        if let Some(n) = limits.max_instances {
            builder = builder.max_instances(n as u32);
        }
        Ok(builder)
    }

    /// `[limits]`, each checked against its range.
    fn limits(&self) -> Result<Limits, ConfigError> {
        let section = &self.limits;
        let check = |range: LimitRange, value: &Option<Spanned<u64>>| match value {
            None => Ok(None),
            Some(v) => range
                .check(*v.get_ref())
                .map(Some)
                .map_err(|e| self.error_at(v, format!("`limits.{}` {}", range.key, e.reason()))),
        };
        Ok(Limits {
            call_timeout_ms: check(LimitRange::CALL_TIMEOUT, &section.call_timeout_ms)?,
            max_memory_bytes: check(LimitRange::MEMORY, &section.max_memory_bytes)?,
            max_table_elements: check(LimitRange::TABLE, &section.max_table_elements)?,
            max_stack_bytes: check(LimitRange::STACK, &section.max_stack_bytes)?,
            max_response_bytes: check(LimitRange::RESPONSE, &section.max_response_bytes)?,
            max_instances: check(LimitRange::INSTANCES, &section.max_instances)?,
        })
    }
}

/// `[limits]`'s values, checked.
struct Limits {
    call_timeout_ms: Option<u64>,
    max_memory_bytes: Option<u64>,
    max_table_elements: Option<u64>,
    max_stack_bytes: Option<u64>,
    max_response_bytes: Option<u64>,
    max_instances: Option<u64>,
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServiceConfig, ConfigError> {
        ServiceConfig::parse(Path::new("/srv/snakepen.toml"), text)
    }

    #[test]
    fn a_misspelt_key_is_refused_with_its_line() {
        let err =
            parse("[server]\nlisten = \"127.0.0.1:1\"\n\n[pool]\nmodul = \"x\"\n").unwrap_err();
        assert_eq!(err.line, Some(5), "{err}");
        assert!(
            err.to_string().starts_with("/srv/snakepen.toml:5: "),
            "{err}"
        );
        assert!(err.message.contains("unknown field `modul`"), "{err}");
    }

    #[test]
    fn a_bad_address_names_the_key_and_line() {
        let err = parse("[server]\n\nlisten = \"localhost\"\n").unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("server.listen"), "{err}");
    }

    #[test]
    fn a_wrong_type_and_a_bad_value_are_refused_where_they_are() {
        let err = parse("[pool]\nmodule = \"app.handlers\"\nsize = \"four\"\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        let err = parse("[pool]\nmodule = \"app.handlers\"\nsize = 0\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        assert!(err.message.contains("pool.size"), "{err}");
        let err = parse("[pool]\nmodule = \"app.handlers\"\naffinity = \"sticky\"\n").unwrap_err();
        assert!(err.message.contains("\"hint\" or \"strict\""), "{err}");
        let err = parse("[cassette]\npath = \"c.jsonl\"\nmode = \"sometimes\"\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
    }

    #[test]
    fn a_module_file_that_is_not_there_is_named() {
        let err = parse("[pool]\nmodule = \"nowhere/handlers.py\"\n").unwrap_err();
        assert!(err.message.contains("/srv/nowhere/handlers.py"), "{err}");
    }

    #[test]
    fn a_pool_the_machine_cannot_hold_is_refused_where_its_size_is() {
        let err = parse("[pool]\nmodule = \"app.handlers\"\n\nsize = 100000\n").unwrap_err();
        assert_eq!(err.line, Some(4), "{err}");
        assert!(err.message.contains("ceiling of 1024 workers"), "{err}");
    }

    #[test]
    fn a_directory_given_as_the_module_is_named_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snakepen.toml");
        std::fs::create_dir(dir.path().join("handlers.py")).unwrap();
        let err = ServiceConfig::parse(&file, "[pool]\nmodule = \"handlers.py\"\n").unwrap_err();
        assert!(
            err.message.contains("is a directory, not a module"),
            "{err}"
        );
    }

    #[test]
    fn a_limit_the_runtime_cannot_honour_is_refused_naming_its_key_and_most() {
        let err = parse("[limits]\n\nmax_memory_bytes = 8589934592\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        assert!(
            err.message.starts_with("`limits.max_memory_bytes` = 8589934592 (8 GiB) is over the most the runtime can honour, 4294967296 (4 GiB)"),
            "{err}"
        );
        let err = parse("[limits]\nmax_stack_bytes = 1024\n").unwrap_err();
        assert!(err.message.contains("`limits.max_stack_bytes` = 1024 (1 KiB) is under the least that works, 65536 (64 KiB)"), "{err}");
        for key in [
            "call_timeout_ms",
            "max_table_elements",
            "max_response_bytes",
            "max_instances",
        ] {
            let err = parse(&format!("[limits]\n{key} = 0\n")).unwrap_err();
            assert!(
                err.message.contains(&format!("`limits.{key}` = 0")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_raised_memory_limit_reaches_the_runtime_and_the_host() {
        let config = parse("[limits]\nmax_memory_bytes = 268435456\nmax_instances = 8\n").unwrap();
        let runtime = config
            .runtime_builder(crate::Runtime::builder().no_cache())
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(runtime.default_limits().max_memory_bytes, 256 << 20);
        assert_eq!(runtime.default_limits().max_instances, 8);
    }

    #[test]
    fn an_empty_file_means_every_default() {
        let config = parse("").unwrap();
        assert_eq!(config.serve_settings().unwrap(), ServeSettings::default());
        assert_eq!(config.adapter_name(), None);
    }
}
