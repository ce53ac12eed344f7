//! `snakepen.toml`: the one specification of a host (server, adapter,
//! pool, limits, cassette) that `snakepen call`, `run` and `serve` share;
//! their flags are laid over the file before it is read. Validated when
//! read, with errors that name the file, the line and the key. See
//! `snakepen.example.toml` for every key, annotated.
//!
//! `sections` is the file's schema and `file` the file as read, with the
//! helpers that place an error on its line; `server`, `pool` and `limits`
//! each lower one section into what the host takes; this module checks
//! the whole and builds the host from it.

mod file;
mod limits;
mod pool;
mod pools;
mod sections;
mod server;
#[cfg(test)]
mod tests;

pub use file::{ConfigError, ServiceConfig};
pub use pools::{DEFAULT_POOL, NamedPool};
pub use server::{DEFAULT_LISTEN, ExposureError, ServeSettings, parse_listen};

use crate::{
    Adapter, AdapterConfig, Cassette, HostBuilder, PoolConfig, RecordMode, RuntimeBuilder,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

impl ServiceConfig {
    /// Reads and parses `path`; unknown keys and wrong types are refused
    /// with their line. Relative paths in it are taken from its directory.
    pub fn load(path: impl AsRef<Path>) -> Result<ServiceConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path, None, format!("cannot read it ({e})")))?;
        ServiceConfig::parse(path, &text)
    }

    /// Parses `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<ServiceConfig, ConfigError> {
        let config = ServiceConfig::read(path, text)?;
        config.serve_settings()?;
        config.pool_config()?;
        let pools = config.pools()?;
        config.check_ray_is_used()?;
        if pools.len() > 1 && config.cassette.is_some() {
            return Err(config.error(
                "`[cassette]` with several pools: a cassette records one pool's calls; keep one pool, or serve the others from a server of their own".into(),
            ));
        }
        config.limits()?;
        config.cassette()?;
        Ok(config)
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

    /// Whether the file has a `[cassette]`.
    pub fn has_cassette(&self) -> bool {
        self.cassette.is_some()
    }

    /// The adapter to run: `[adapter] name`, else `python-bridge` when
    /// there is a pool, else none (a cassette alone replays).
    pub fn adapter_name(&self) -> Option<String> {
        match &self.adapter {
            Some(adapter) => Some(adapter.name.clone()),
            None if self.pool.is_some() || !self.pools.is_empty() => Some("python-bridge".into()),
            None => None,
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

    /// A host builder with everything the file says, with its default pool.
    pub fn host_builder(&self) -> Result<HostBuilder, ConfigError> {
        let pool = self.pools()?.into_iter().next().map(|p| p.config);
        self.host_builder_for(pool)
    }

    /// A host builder with everything the file says, with `pool` (one of
    /// [`ServiceConfig::pools`]) as its pool.
    pub fn host_builder_for(&self, pool: Option<PoolConfig>) -> Result<HostBuilder, ConfigError> {
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
                return Err(self.error(
                    "`adapter.config` and `adapter.config_file` are both set: keep one".into(),
                ));
            }
            (Some(table), None) => {
                let json = serde_json::to_value(table).map_err(|e| {
                    self.error(format!("`adapter.config` cannot be turned into JSON: {e}"))
                })?;
                builder = builder.config(AdapterConfig::Json(json));
            }
            (None, Some(file)) => builder = builder.config(AdapterConfig::file(file)),
            (None, None) => {}
        }
        if let Some(pool) = pool {
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
        match limits.max_instances {
            Some(n) => builder = builder.max_instances(n as u32),
            // An instance for every call the pool can hold at once (a call
            // waits for its worker inside its adapter's instance).
            None => {
                let chain = if self.cassette.is_some() { 2 } else { 1 };
                let calls: usize = self
                    .pools()?
                    .iter()
                    .map(|p| p.config.size * p.config.max_concurrency)
                    .sum();
                if calls > 0 {
                    builder = builder.room_for_calls(calls * chain);
                }
            }
        }
        Ok(builder)
    }
}
