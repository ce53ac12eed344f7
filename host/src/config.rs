//! An adapter's per-instance configuration, as a user hands it over: a TOML
//! or JSON file, TOML text, or a JSON value. Adapters always receive JSON.

use crate::Error;
use std::path::{Path, PathBuf};

/// The configuration document of one adapter of one host.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum AdapterConfig {
    /// No configuration: the adapter receives `{}`.
    #[default]
    Empty,
    /// A JSON value.
    Json(serde_json::Value),
    /// TOML text.
    Toml(String),
    /// A file: TOML when its name ends in `.toml`, JSON otherwise.
    File(PathBuf),
}

impl AdapterConfig {
    /// A file, read when the host is built.
    pub fn file(path: impl Into<PathBuf>) -> AdapterConfig {
        AdapterConfig::File(path.into())
    }

    /// Reads and parses the document (a file that is missing or not valid
    /// TOML or JSON is an [`Error::ConfigFile`]) without building a host.
    pub fn check(&self) -> Result<(), Error> {
        self.to_json_text().map(drop)
    }

    /// The document as the JSON text handed to the adapter's `configure`.
    pub(crate) fn to_json_text(&self) -> Result<String, Error> {
        let value = match self {
            AdapterConfig::Empty => serde_json::Value::Object(Default::default()),
            AdapterConfig::Json(value) => value.clone(),
            AdapterConfig::Toml(text) => parse_toml(Path::new("<inline TOML>"), text)?,
            AdapterConfig::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
                    path: path.clone(),
                    message: format!("cannot read it ({e}); check the path"),
                    source: Some(e),
                })?;
                if path.extension().is_some_and(|e| e == "toml") {
                    parse_toml(path, &text)?
                } else {
                    serde_json::from_str(&text).map_err(|e| Error::ConfigFile {
                        path: path.clone(),
                        message: format!(
                            "is not valid JSON ({e}); name the file *.toml if it is TOML"
                        ),
                        source: None,
                    })?
                }
            }
        };
        Ok(value.to_string())
    }
}

fn parse_toml(path: &Path, text: &str) -> Result<serde_json::Value, Error> {
    toml::from_str::<serde_json::Value>(text).map_err(|e| Error::ConfigFile {
        path: path.to_path_buf(),
        message: format!("is not valid TOML: {}", e.to_string().trim_end()),
        source: None,
    })
}

impl From<serde_json::Value> for AdapterConfig {
    fn from(value: serde_json::Value) -> Self {
        AdapterConfig::Json(value)
    }
}
