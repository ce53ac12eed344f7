//! The Python bridge: each request goes to the host's pool of Python
//! workers, under the per-command policy of its configuration:
//!
//! ```toml
//! timeout_ms = 30000            # the most a worker gets for one attempt (the caller's deadline still rules)
//!
//! [commands.predict]
//! timeout_ms = 500              # this command's own limit
//! idempotent = true             # safe to run twice: retried when its worker crashes
//! retries = 2                   # attempts after the first (default 1 for idempotent commands)
//! ```
//!
//! Only a crashed worker is retried, and only for idempotent commands: a
//! timeout means the command is slow (a retry would be as slow), and a
//! Python exception would be raised again.

use serde::Deserialize;
use snakepen_guest::{Adapter, CallError, ConfigError, Request, Response, StreamItem, host};
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Default limit of one attempt, in milliseconds.
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// Policy by command name.
    #[serde(default)]
    commands: BTreeMap<String, CommandPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandPolicy {
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    idempotent: bool,
    #[serde(default)]
    retries: Option<u32>,
}

struct PythonBridge;

impl Adapter for PythonBridge {
    type Config = Config;

    fn check(config: &Config) -> Result<(), ConfigError> {
        for (name, policy) in &config.commands {
            if policy.retries.is_some_and(|r| r > 0) && !policy.idempotent {
                return Err(ConfigError::field(
                    format!("commands.{name}.retries"),
                    format!(
                        "`{name}` is retried but not marked idempotent; a retry after a crash may run it twice, so set `idempotent = true` if that is safe, or drop `retries`"
                    ),
                ));
            }
            if policy.timeout_ms == Some(0) {
                return Err(ConfigError::field(
                    format!("commands.{name}.timeout_ms"),
                    "must be at least 1 (milliseconds)",
                ));
            }
        }
        if config.timeout_ms == Some(0) {
            return Err(ConfigError::field("timeout_ms", "must be at least 1 (milliseconds)"));
        }
        Ok(())
    }

    fn call(config: &Config, mut request: Request) -> Result<Response, CallError> {
        let policy = config.commands.get(&request.command);
        let limit = policy.and_then(|p| p.timeout_ms).or(config.timeout_ms);
        if let Some(limit) = limit {
            request.deadline_ms = Some(request.deadline_ms.map_or(limit, |d| d.min(limit)));
        }
        let retries = match policy {
            Some(p) if p.idempotent => p.retries.unwrap_or(1),
            _ => 0,
        };
        if host::stream_wanted() {
            return stream(&request);
        }
        let mut attempt = 0;
        loop {
            match host::workers(&request) {
                Err(CallError::WorkerCrashed(crash)) if attempt < retries => {
                    attempt += 1;
                    host::warn(&format!(
                        "worker {} crashed ({}) serving idempotent `{}`; retrying ({attempt} of {retries})",
                        crash.pid, crash.exit_status, request.command
                    ));
                }
                other => return other,
            }
        }
    }
}

/// Serves a caller that reads a stream: the worker's chunks passed on as
/// they come, then its outcome. Not retried: chunks already went out. A
/// caller that went away stops the worker's stream (dropping it closes it).
fn stream(request: &Request) -> Result<Response, CallError> {
    let mut stream = host::workers_stream(request)?;
    loop {
        match stream.next()? {
            StreamItem::Chunk(chunk) => host::emit(&chunk)?,
            StreamItem::End(response) => return Ok(response),
        }
    }
}

snakepen_guest::adapter!(PythonBridge);

snakepen_guest::config_schema!(
    r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "python-bridge",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "timeout_ms": {"type": "integer", "minimum": 1, "description": "the most one attempt may take, in ms"},
    "commands": {
      "type": "object",
      "description": "policy by command name",
      "additionalProperties": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "timeout_ms": {"type": "integer", "minimum": 1},
          "idempotent": {"type": "boolean", "description": "retried when its worker crashes"},
          "retries": {"type": "integer", "minimum": 0, "description": "attempts after the first (needs idempotent)"}
        }
      }
    }
  }
}"#
);
