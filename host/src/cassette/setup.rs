//! [`Cassette`]: the cassette a host is given, its options, and the record
//! mode it resolves to (from the environment, the mode given, or CI).

use super::mode::{MODE_VARIABLE, RecordMode};
use crate::Error;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How a recorded stream's chunks are replayed ([`Cassette::pace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Pace {
    /// As fast as the caller takes them.
    #[default]
    AtOnce,
    /// Each at least as long after the one before as when it was recorded.
    Recorded,
}

/// The cassette a host records to or replays from, and how.
///
/// ```ignore
/// let cassette = Cassette::new("tests/cassettes/predict.jsonl")
///     .mode(RecordMode::Once)
///     .filter("api_key")        // never written to disk
///     .ignore("request_id");    // changes every run: not matched
/// let host = Host::builder().cassette(cassette).pool(pool).build().await?;
/// ```
///
/// The mode is, in order: the `SNAKEPEN_RECORD_MODE` environment variable;
/// the mode given here; `none` when the `CI` variable is set; else `once`.
#[derive(Debug, Clone)]
pub struct Cassette {
    pub(crate) path: PathBuf,
    mode: Option<RecordMode>,
    options: Option<Map<String, Value>>,
    /// `None`: the process's environment.
    environment: Option<BTreeMap<String, String>>,
}

impl Cassette {
    /// The cassette at `path` (JSON Lines; `.jsonl` by convention).
    pub fn new(path: impl Into<PathBuf>) -> Cassette {
        Cassette {
            path: path.into(),
            mode: None,
            options: None,
            environment: None,
        }
    }

    /// Replay only, whatever the environment says: mode `none`.
    pub fn replay(path: impl Into<PathBuf>) -> Cassette {
        Cassette::new(path)
            .mode(RecordMode::None)
            .environment(std::iter::empty::<(String, String)>())
    }

    /// The record mode, unless `SNAKEPEN_RECORD_MODE` overrides it.
    pub fn mode(mut self, mode: RecordMode) -> Cassette {
        self.mode = Some(mode);
        self
    }

    /// Read `SNAKEPEN_RECORD_MODE` and `CI` from `vars` instead of the
    /// process's environment (an empty list: ignore the environment).
    pub fn environment<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Cassette {
        self.environment = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Leave a payload field out of matching: a field name (at any depth)
    /// or a JSON pointer such as `/meta/request_id`.
    pub fn ignore(self, field: impl Into<String>) -> Cassette {
        self.push("ignore", field.into())
    }

    /// Keep a payload field's value off the disk: it is written as a
    /// placeholder (and wherever its value appears in the outcome), and
    /// replay matches the placeholder back. A field name or a JSON pointer.
    pub fn filter(self, field: impl Into<String>) -> Cassette {
        self.push("filter", field.into())
    }

    /// Match the session id too (by default only command and payload count).
    pub fn match_session(self, yes: bool) -> Cassette {
        self.set("match_session", Value::Bool(yes))
    }

    /// Replay the last recording of a request again once all of its
    /// recordings were played (by default each plays once).
    pub fn allow_repeats(self, yes: bool) -> Cassette {
        self.set("allow_repeats", Value::Bool(yes))
    }

    /// How a recorded stream's chunks are replayed to a caller that reads
    /// a stream: at once (the default), or at least their recorded times
    /// apart ([`Pace::Recorded`]).
    pub fn pace(self, pace: Pace) -> Cassette {
        let name = match pace {
            Pace::AtOnce => "at_once",
            Pace::Recorded => "recorded",
        };
        self.set("pace", Value::String(name.into()))
    }

    /// The recorder's and replayer's configuration as a JSON object
    /// (`ignore`, `filter`, `match_session`, `allow_repeats`, `pace`). A cassette
    /// replays with the options it was recorded with; each option given here
    /// (or with the methods above) replaces the recorded one of that name.
    pub fn options(mut self, options: Map<String, Value>) -> Cassette {
        self.options = Some(options);
        self
    }

    /// The cassette's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn push(mut self, key: &str, value: String) -> Cassette {
        let options = self.options.get_or_insert_with(Map::new);
        match options.get_mut(key) {
            Some(Value::Array(items)) => items.push(Value::String(value)),
            _ => {
                options.insert(key.into(), Value::Array(vec![Value::String(value)]));
            }
        }
        self
    }

    fn set(mut self, key: &str, value: Value) -> Cassette {
        self.options
            .get_or_insert_with(Map::new)
            .insert(key.into(), value);
        self
    }

    fn var(&self, name: &str) -> Option<String> {
        let value = match &self.environment {
            Some(vars) => vars.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// The mode this cassette runs in, and why (for messages): the
    /// environment variable, then the mode given, then CI, then `once`.
    pub fn resolve_mode(&self) -> Result<(RecordMode, String), Error> {
        if let Some(value) = self.var(MODE_VARIABLE) {
            let mode = value.parse().map_err(|_| Error::RecordMode {
                value: value.clone(),
                origin: format!("the environment variable {MODE_VARIABLE}"),
            })?;
            return Ok((mode, format!(" (from {MODE_VARIABLE})")));
        }
        if let Some(mode) = self.mode {
            return Ok((mode, String::new()));
        }
        let ci = self
            .var("CI")
            .is_some_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "false"));
        if ci {
            return Ok((
                RecordMode::None,
                " (CI is set and no mode was given, so nothing is recorded)".into(),
            ));
        }
        Ok((RecordMode::Once, " (the default)".into()))
    }

    /// The options given, if any.
    pub(crate) fn given_options(&self) -> Option<Value> {
        self.options.clone().map(Value::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_overrides_the_mode_and_ci_means_none() {
        let at = |vars: &[(&str, &str)], mode: Option<RecordMode>| {
            let mut c = Cassette::new("x.jsonl").environment(vars.iter().copied());
            if let Some(mode) = mode {
                c = c.mode(mode);
            }
            c.resolve_mode().map(|(m, _)| m)
        };
        assert_eq!(at(&[], None).unwrap(), RecordMode::Once);
        assert_eq!(at(&[("CI", "true")], None).unwrap(), RecordMode::None);
        assert_eq!(at(&[("CI", "false")], None).unwrap(), RecordMode::Once);
        assert_eq!(
            at(&[("CI", "1")], Some(RecordMode::All)).unwrap(),
            RecordMode::All
        );
        assert_eq!(
            at(&[(MODE_VARIABLE, "new_episodes")], Some(RecordMode::None)).unwrap(),
            RecordMode::NewEpisodes
        );
        let err = at(&[(MODE_VARIABLE, "sometimes")], None).unwrap_err();
        assert!(err.to_string().contains("`sometimes`"), "{err}");
        assert!(err.to_string().contains(MODE_VARIABLE), "{err}");
    }
}
