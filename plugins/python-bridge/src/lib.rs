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
use snakepen_guest::{
    CallError, ConfigError, Guest, Level, Request, Response, log, parse_config, workers,
};
use std::cell::RefCell;
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

impl Config {
    fn check(self) -> Result<Config, ConfigError> {
        for (name, policy) in &self.commands {
            if policy.retries.is_some_and(|r| r > 0) && !policy.idempotent {
                return Err(ConfigError {
                    field: Some(format!("commands.{name}.retries")),
                    message: format!(
                        "`{name}` is retried but not marked idempotent; a retry after a crash may run it twice, so set `idempotent = true` if that is safe, or drop `retries`"
                    ),
                });
            }
            if policy.timeout_ms == Some(0) {
                return Err(ConfigError {
                    field: Some(format!("commands.{name}.timeout_ms")),
                    message: "must be at least 1 (milliseconds)".into(),
                });
            }
        }
        if self.timeout_ms == Some(0) {
            return Err(ConfigError {
                field: Some("timeout_ms".into()),
                message: "must be at least 1 (milliseconds)".into(),
            });
        }
        Ok(self)
    }
}

thread_local! {
    static CONFIG: RefCell<Config> = RefCell::new(Config::default());
}

struct PythonBridge;

impl Guest for PythonBridge {
    fn configure(config: String) -> Result<(), ConfigError> {
        let parsed = parse_config::<Config>(&config)?.check()?;
        CONFIG.with(|c| *c.borrow_mut() = parsed);
        Ok(())
    }

    fn call(request: Request) -> Result<Response, CallError> {
        CONFIG.with(|c| serve(&c.borrow(), request))
    }
}

snakepen_guest::export_adapter!(PythonBridge);

fn serve(config: &Config, mut request: Request) -> Result<Response, CallError> {
    let policy = config.commands.get(&request.command);
    let limit = policy.and_then(|p| p.timeout_ms).or(config.timeout_ms);
    if let Some(limit) = limit {
        request.deadline_ms = Some(request.deadline_ms.map_or(limit, |d| d.min(limit)));
    }
    let retries = match policy {
        Some(p) if p.idempotent => p.retries.unwrap_or(1),
        _ => 0,
    };
    let mut attempt = 0;
    loop {
        match workers::call(&request) {
            Err(CallError::WorkerCrashed(crash)) if attempt < retries => {
                attempt += 1;
                log(
                    Level::Warn,
                    &format!(
                        "worker {} crashed ({}) serving idempotent `{}`; retrying ({attempt} of {retries})",
                        crash.pid, crash.exit_status, request.command
                    ),
                );
            }
            other => return other,
        }
    }
}
