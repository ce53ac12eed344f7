//! `[pools.NAME]`: several pools in one server, each its own module,
//! size, interpreter and transport; a request names its pool, and one
//! without a name goes to the default pool. `[pool]` is the pool named
//! `default`.

use super::file::{ConfigError, ServiceConfig};
use super::sections::PoolSection;
use crate::PoolConfig;

/// The name `[pool]` is served under.
pub const DEFAULT_POOL: &str = "default";

/// One pool of the file, by name.
#[derive(Debug, Clone)]
pub struct NamedPool {
    /// Its name: the `NAME` of `[pools.NAME]`, or `default` for `[pool]`.
    pub name: String,
    pub config: PoolConfig,
}

impl ServiceConfig {
    /// Every pool section with its key (`pool`, `pools.NAME`) and name.
    pub(super) fn pool_sections(&self) -> impl Iterator<Item = (String, &PoolSection)> {
        let plain = self.pool.iter().map(|s| ("pool".to_string(), s));
        let named = self
            .pools
            .iter()
            .map(|(name, s)| (format!("pools.{name}"), s));
        plain.chain(named)
    }

    /// Every pool the file defines, the default first: `[pool]` (named
    /// `default`), then `[pools.NAME]` in name order. Empty without pools.
    pub fn pools(&self) -> Result<Vec<NamedPool>, ConfigError> {
        let mut pools = Vec::new();
        if let Some(section) = &self.pool {
            if let Some(flag) = &section.default {
                return Err(self.error_at(
                    flag,
                    "`pool.default`: `[pool]` is the default pool already; `default = true` belongs in one `[pools.NAME]` when there is no `[pool]`".into(),
                ));
            }
            pools.push(NamedPool {
                name: DEFAULT_POOL.into(),
                config: self.pool_config_of("pool", section)?,
            });
        }
        for (name, section) in &self.pools {
            let key = format!("pools.{name}");
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                return Err(self.error_at(
                    &section.module,
                    format!("`[{key}]`: a pool's name is 1 to 64 letters, digits, `-` or `_` (it goes in URLs such as /v1/pools/NAME/call)"),
                ));
            }
            if self.pool.is_some() && name == DEFAULT_POOL {
                return Err(self.error_at(
                    &section.module,
                    "`[pools.default]` and `[pool]` are the same pool: keep one".into(),
                ));
            }
            pools.push(NamedPool {
                name: name.clone(),
                config: self.pool_config_of(&key, section)?,
            });
        }
        let default = self.default_pool()?;
        if let Some(at) = pools.iter().position(|p| Some(&p.name) == default.as_ref()) {
            let first = pools.remove(at);
            pools.insert(0, first);
        }
        Ok(pools)
    }

    /// The name of the pool a request that names none goes to: `[pool]`'s,
    /// else the `[pools.NAME]` with `default = true`, else the only one.
    pub fn default_pool(&self) -> Result<Option<String>, ConfigError> {
        let marked: Vec<&String> = self
            .pools
            .iter()
            .filter(|(_, s)| s.default.as_ref().is_some_and(|d| *d.get_ref()))
            .map(|(name, _)| name)
            .collect();
        match (self.pool.is_some(), marked.as_slice(), self.pools.len()) {
            (true, [], _) => Ok(Some(DEFAULT_POOL.into())),
            (true, [name, ..], _) => Err(self.error_at(
                &self.pools[*name].module,
                format!("`pools.{name}.default`: `[pool]` is the default pool; remove `default = true`, or rename `[pool]` to a `[pools.NAME]`"),
            )),
            (false, [], 0) => Ok(None),
            (false, [], 1) => Ok(self.pools.keys().next().cloned()),
            (false, [], _) => Err(self.error(format!(
                "several pools ({}) and none is the default: mark the one that takes requests naming no pool with `default = true`",
                self.pools.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
            (false, [name], _) => Ok(Some((*name).clone())),
            (false, [_, second, ..], _) => Err(self.error_at(
                &self.pools[*second].module,
                format!(
                    "more than one pool has `default = true` ({}): keep it on one",
                    marked.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }
}
