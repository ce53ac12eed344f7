//! `[pool]`: the Python workers, lowered into a [`PoolConfig`] and checked
//! as the pool itself would check it at start.

use super::file::{ConfigError, ServiceConfig};
use super::sections::PoolSection;
use crate::{Affinity, PoolConfig};
use std::path::Path;
use std::time::Duration;

impl ServiceConfig {
    /// `[pool]` as a [`PoolConfig`], if there is one.
    pub fn pool_config(&self) -> Result<Option<PoolConfig>, ConfigError> {
        self.pool
            .as_ref()
            .map(|section| self.pool_config_of("pool", section))
            .transpose()
    }

    /// One pool's section (`[pool]`, or `[pools.NAME]` under the `key`
    /// `pools.NAME`) as a [`PoolConfig`].
    pub(super) fn pool_config_of(
        &self,
        key: &str,
        section: &PoolSection,
    ) -> Result<PoolConfig, ConfigError> {
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
                    format!("`{key}.size` is 0: a pool needs at least one worker"),
                ));
            }
            pool.size = *size.get_ref();
        }
        if let Some(n) = &section.max_concurrency {
            pool.max_concurrency = *n.get_ref();
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
                        "`{key}.affinity` = {:?}: write \"hint\" or \"strict\"",
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
        if let Some(v) = self.positive(
            &format!("{key}.start_timeout_ms"),
            &section.start_timeout_ms,
        )? {
            s.start_timeout = ms(v);
        }
        // 0 would recycle every worker as soon as it starts, forever.
        if let Some(v) = self.positive(&format!("{key}.max_requests"), &section.max_requests)? {
            s.max_requests = Some(v);
        }
        if let Some(v) = self.positive(&format!("{key}.max_age_ms"), &section.max_age_ms)? {
            s.max_age = Some(ms(v));
        }
        if let Some(v) = self.positive(&format!("{key}.max_rss_bytes"), &section.max_rss_bytes)? {
            s.max_rss_bytes = Some(v);
        }
        if let Some(v) = section.health_interval_ms {
            s.health_interval = (v > 0).then(|| ms(v));
        }
        if let Some(v) = section.shutdown_grace_ms {
            s.shutdown_grace = ms(v);
        }
        if let Some(v) =
            self.positive(&format!("{key}.max_frame_bytes"), &section.max_frame_bytes)?
        {
            s.max_frame_bytes = v;
        }
        if let Some(v) = self.positive(&format!("{key}.max_sessions"), &section.max_sessions)? {
            s.max_sessions = v;
        }
        if let Some(v) = self.positive(
            &format!("{key}.max_session_id_bytes"),
            &section.max_session_id_bytes,
        )? {
            s.max_session_id_bytes = v;
        }
        pool.ray = self.ray_config(key, section)?;
        // What the pool itself would refuse at start (its size against the
        // ceiling and this process's descriptor limit), refused here too.
        if let Err((field, message)) = pool.check() {
            let message = format!("`{key}.{field}` {message}");
            return Err(match (field, &section.size, &section.max_concurrency) {
                ("size", Some(size), _) => self.error_at(size, message),
                ("max_concurrency", _, Some(n)) => self.error_at(n, message),
                _ => self.error_at(&section.module, message),
            });
        }
        if let Some(file) = file {
            if file.is_dir() {
                return Err(self.error_at(
                    &section.module,
                    format!(
                        "`{key}.module`: {} is a directory, not a module: name a .py file in it, or its package as a dotted name with its parent in `{key}.python_path`",
                        file.display()
                    ),
                ));
            }
            if !file.is_file() {
                return Err(self.error_at(
                    &section.module,
                    format!(
                        "`{key}.module`: no such file {} (relative paths are taken from the configuration file's folder)",
                        file.display()
                    ),
                ));
            }
        }
        Ok(pool)
    }
}

impl ServiceConfig {
    /// `[ray]` given while no pool runs on Ray: a mistake, said so.
    pub(super) fn check_ray_is_used(&self) -> Result<(), ConfigError> {
        let Some(ray) = &self.ray else { return Ok(()) };
        let on_ray = self.pool_sections().any(|(_, section)| {
            section
                .transport
                .as_ref()
                .is_some_and(|t| t.get_ref() == "ray")
        });
        if on_ray {
            return Ok(());
        }
        Err(self.error_at(
            &ray.address,
            "`[ray]` is given, but every pool's workers run on this machine: set `transport = \"ray\"` in the pool (`[pool]` or `[pools.NAME]`) that should run on the cluster, or remove `[ray]`".into(),
        ))
    }

    /// `pool.transport` and `[ray]`: the cluster the workers run on, if any.
    fn ray_config(
        &self,
        key: &str,
        section: &PoolSection,
    ) -> Result<Option<crate::RayConfig>, ConfigError> {
        let transport = section.transport.as_ref();
        match transport.map(|t| t.get_ref().as_str()) {
            None | Some("local") => Ok(None),
            Some("ray") => {
                let Some(ray) = &self.ray else {
                    return Err(self.error_at(
                        transport.expect("matched"),
                        format!("`{key}.transport` is \"ray\", but there is no `[ray]` section: add one with the cluster's `address` (such as \"127.0.0.1:6379\"), or give --ray ADDRESS"),
                    ));
                };
                let address = ray.address.get_ref().trim();
                if address.is_empty() {
                    return Err(self.error_at(
                        &ray.address,
                        "`ray.address` is empty: give the cluster's GCS address, such as \"127.0.0.1:6379\", or \"auto\"".into(),
                    ));
                }
                let json = |table: &Option<toml::Table>| match table {
                    Some(table) => match serde_json::to_value(table) {
                        Ok(serde_json::Value::Object(map)) => map,
                        _ => serde_json::Map::new(),
                    },
                    None => serde_json::Map::new(),
                };
                let mut config = crate::RayConfig::new(address);
                config.actor_options = json(&ray.actor_options);
                config.runtime_env = json(&ray.runtime_env);
                if let Some(frames) = &ray.frames {
                    config.frames = match frames.get_ref().as_str() {
                        "direct" => crate::RayFrames::Direct,
                        "driver" => crate::RayFrames::Driver,
                        other => {
                            return Err(self.error_at(
                                frames,
                                format!("`ray.frames` = {other:?}: write \"direct\" (each worker's actor connects to this host) or \"driver\" (frames relayed through Ray calls, when the cluster cannot reach this host)"),
                            ));
                        }
                    };
                }
                Ok(Some(config))
            }
            Some(other) => Err(self.error_at(
                transport.expect("matched"),
                format!("`{key}.transport` = {other:?}: write \"local\" (processes on this machine) or \"ray\" (actors of the cluster in `[ray]`)"),
            )),
        }
    }
}
