//! Writing a snakepen adapter in Rust.
//!
//! The bindings of the `snakepen:adapter` contract are generated here once,
//! so an adapter crate depends on this crate, implements [`Guest`] and calls
//! [`export_adapter!`]. The helpers below cover what every adapter repeats:
//! reading its configuration with field-precise errors.

wit_bindgen::generate!({
    world: "plugin",
    path: "../../wit",
    pub_export_macro: true,
    export_macro_name: "export_adapter",
    default_bindings_module: "snakepen_guest",
});

pub use exports::snakepen::adapter::adapter::Guest;
pub use snakepen::adapter::types::{
    CallError, CassetteMiss, ConfigError, Interaction, Level, PoolExhausted, PythonException,
    Request, Response, WorkerCrashed,
};
pub use snakepen::adapter::{cassette, counters, log, next, timers, workers};

/// Parses an adapter's JSON configuration into `T`, reporting the path of the
/// offending field (such as `responses[1].command`) when it does not fit.
///
/// Give `T` `#[serde(deny_unknown_fields)]` so that a misspelt field is
/// refused instead of ignored.
pub fn parse_config<T: serde::de::DeserializeOwned>(config: &str) -> Result<T, ConfigError> {
    // serde would read an array into a struct field by field; a configuration
    // is a table of named fields, so refuse anything else as a whole.
    if !config.trim_start().starts_with('{') {
        return Err(ConfigError {
            field: None,
            message:
                "the configuration must be a table of fields (a TOML document or a JSON object)"
                    .into(),
        });
    }
    // Adapters may parse their configuration on every fresh instance: take
    // the fast path, and track field paths only to explain a failure.
    if let Ok(parsed) = serde_json::from_str(config) {
        return Ok(parsed);
    }
    let mut de = serde_json::Deserializer::from_str(config);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        // The host may have converted TOML to this JSON: a JSON line and
        // column would point the user at text they never wrote.
        let message = e.into_inner().to_string();
        let message = match message.rfind(" at line ") {
            Some(at) => message[..at].to_string(),
            None => message,
        };
        ConfigError { field, message }
    })
}

/// Writes a line to the host's log at `level`.
pub fn log(level: Level, message: &str) {
    log::log(level, message);
}
