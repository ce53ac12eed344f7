//! The configuration file as read: its sections, where it is, its text (so
//! that an error can name the line of the value it is about), and
//! [`ConfigError`], which names all three.

use super::sections::{
    AdapterSection, CassetteSection, LimitsSection, PoolSection, RaySection, ServerSection,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

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

/// The whole file, read and checked. What it says is reached through its
/// methods, each of which lowers one part into the type the host takes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// `[server]`: where and how the HTTP API listens.
    #[serde(default)]
    pub(super) server: ServerSection,
    /// `[adapter]`: which adapter runs, and its configuration.
    pub(super) adapter: Option<AdapterSection>,
    /// `[pool]`: the Python workers (the pool named `default` when
    /// `[pools.NAME]` name others).
    pub(super) pool: Option<PoolSection>,
    /// `[pools.NAME]`: more pools, each with its own module and settings;
    /// a request names its pool.
    #[serde(default)]
    pub(super) pools: std::collections::BTreeMap<String, PoolSection>,
    /// `[limits]`: call timeout and the adapter's sandbox.
    #[serde(default)]
    pub(super) limits: LimitsSection,
    /// `[cassette]`: record calls to, or replay them from, a cassette (the
    /// recorder or the replayer goes in front of the adapter).
    pub(super) cassette: Option<CassetteSection>,
    /// `[ray]`: the Ray cluster the pool's workers run on, with
    /// `pool.transport = "ray"`.
    pub(super) ray: Option<RaySection>,
    /// The directory relative paths are taken from (the file's own).
    #[serde(skip)]
    base: PathBuf,
    /// The file it came from, for error messages.
    #[serde(skip)]
    file: PathBuf,
    #[serde(skip)]
    text: String,
}

impl ConfigError {
    pub(super) fn new(file: &Path, line: Option<usize>, message: String) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            line,
            message,
        }
    }
}

impl ServiceConfig {
    /// `text` as TOML, with no check beyond its shape (unknown keys and
    /// wrong types are refused with their line).
    pub(super) fn read(path: &Path, text: &str) -> Result<ServiceConfig, ConfigError> {
        let mut config: ServiceConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|span| line_of(text, span.start));
            ConfigError::new(path, line, e.message().trim_end().to_string())
        })?;
        config.base = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        config.file = path.to_path_buf();
        config.text = text.to_string();
        Ok(config)
    }

    /// An error about the file as a whole.
    pub(super) fn error(&self, message: String) -> ConfigError {
        ConfigError::new(&self.file, None, message)
    }

    pub(super) fn error_at<T>(&self, spanned: &Spanned<T>, message: String) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: Some(line_of(&self.text, spanned.span().start)),
            message,
        }
    }

    pub(super) fn path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }

    /// A value that must not be 0, or the error naming its key and line.
    pub(super) fn positive<T: Copy + Default + PartialEq>(
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
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}
