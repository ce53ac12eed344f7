//! The Python bridge: every request goes to the host's worker pool as it is.
//!
//! It takes no configuration yet (`{}`); policy such as retries belongs
//! here as it arrives, never in the host.

use serde::Deserialize;
use snakepen_guest::{CallError, ConfigError, Guest, Request, Response, parse_config, workers};

/// No fields yet: anything else is refused by name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {}

struct PythonBridge;

impl Guest for PythonBridge {
    fn configure(config: String) -> Result<(), ConfigError> {
        parse_config::<Config>(&config).map(|_| ())
    }

    fn call(request: Request) -> Result<Response, CallError> {
        workers::call(&request)
    }
}

snakepen_guest::export_adapter!(PythonBridge);
