//! The configuration file's TOML with the command line's flags laid over
//! it: the one place a flag becomes a key of `snakepen.toml`, so that a
//! file and flags are read by one parser and checked by one set of rules.

use crate::Failure;
use snakepen::serve::ServiceConfig;
use std::path::{Path, PathBuf};

/// The configuration file's TOML with flags laid over it, remembering which
/// key each flag set, so that an error about a key a flag set names the flag.
pub(crate) struct Overlay {
    /// The file (or `(command line)` in the current directory).
    path: PathBuf,
    text: String,
    doc: toml::Table,
    before: toml::Table,
    pub(crate) cwd: PathBuf,
    flags: Vec<(String, &'static str)>,
}

impl Overlay {
    /// The file `config` names, parsed as written (its errors name its own
    /// lines), or an empty one.
    pub(crate) fn read(config: Option<&Path>) -> Result<Overlay, Failure> {
        let cwd = std::env::current_dir().unwrap_or_default();
        let (path, text) = match config {
            Some(file) => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    Failure::Usage(format!(
                        "cannot read the configuration file {} ({e}); check the path given to --config",
                        file.display()
                    ))
                })?;
                ServiceConfig::parse(file, &text)?;
                (file.to_path_buf(), text)
            }
            None => (cwd.join("(command line)"), String::new()),
        };
        let doc: toml::Table = toml::from_str(&text).unwrap_or_default();
        Ok(Overlay {
            path,
            text,
            before: doc.clone(),
            doc,
            cwd,
            flags: Vec::new(),
        })
    }

    /// Sets `section.key` to `value`, as `flag` asked.
    pub(crate) fn set(
        &mut self,
        section: &str,
        key: &str,
        flag: &'static str,
        value: impl Into<toml::Value>,
    ) {
        self.flags.push((format!("{section}.{key}"), flag));
        let table = self
            .doc
            .entry(section)
            .or_insert_with(|| toml::Value::Table(Default::default()));
        if let Some(table) = table.as_table_mut() {
            table.insert(key.into(), value.into());
        }
    }

    /// Appends `items` to the list `section.key`.
    pub(crate) fn extend(
        &mut self,
        section: &str,
        key: &str,
        flag: &'static str,
        items: Vec<String>,
    ) {
        if items.is_empty() {
            return;
        }
        let mut list = self
            .doc
            .get(section)
            .and_then(|s| s.get(key))
            .and_then(toml::Value::as_array)
            .cloned()
            .unwrap_or_default();
        list.extend(items.into_iter().map(toml::Value::from));
        self.set(section, key, flag, toml::Value::Array(list));
    }

    /// A number as TOML has it (flags' values past i64 are refused by the
    /// key's own check, as the largest integer TOML holds).
    pub(crate) fn number(value: u64) -> toml::Value {
        toml::Value::Integer(i64::try_from(value).unwrap_or(i64::MAX))
    }

    /// `path` taken from the current directory, as a flag's path is.
    pub(crate) fn absolute(&self, path: &Path) -> String {
        self.cwd.join(path).display().to_string()
    }

    /// Whether the file or a flag gave the section.
    pub(crate) fn has(&self, section: &str) -> bool {
        self.doc.contains_key(section)
    }

    /// Refuses `flag`, a setting of `section`, when nothing gave the
    /// section, naming the flag that would.
    pub(crate) fn needs(&self, section: &str, flag: &str) -> Result<(), Failure> {
        if self.has(section) {
            return Ok(());
        }
        let (what, how) = match section {
            "pool" => ("the pool", "give the handlers with --module"),
            "cassette" => ("the cassette", "give one with --cassette FILE"),
            _ => (section, "set it"),
        };
        Err(Failure::Usage(format!(
            "{flag} is a setting of {what}: {how} (or [{section}] in the configuration file)"
        )))
    }

    /// The whole, checked: an error about a key a flag set names the flag.
    pub(crate) fn parse(self) -> Result<ServiceConfig, Failure> {
        let text = if self.doc == self.before {
            self.text
        } else {
            toml::to_string(&self.doc).expect("a TOML table serializes")
        };
        ServiceConfig::parse(&self.path, &text).map_err(|e| {
            // A flag's value is the flag's to fix, not a line of a file the user never wrote.
            match self
                .flags
                .iter()
                .find(|(key, _)| e.message.contains(&format!("`{key}`")))
            {
                Some((key, flag)) => {
                    Failure::Usage(e.message.replace(&format!("`{key}`"), &format!("`{flag}`")))
                }
                None => Failure::Usage(format!("{e} (with the command line's flags applied)")),
            }
        })
    }
}
