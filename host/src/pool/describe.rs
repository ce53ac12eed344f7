//! A module's handlers read without starting a pool: the worker program
//! run once with `--describe`, which imports the module as a worker
//! would, prints the handshake it would send, and exits
//! (`snakepen inspect --module`).

use super::handlers::Handler;
use super::process::protocol::ErrorBody;
use super::process::spawn::{WORKER_SOURCE, worker_args, worker_env};
use super::transport::StartFailure;
use crate::{Error, PoolConfig};
use serde::{Deserialize, Serialize};
use std::process::Stdio;

/// What a module serves, as its worker would describe it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModuleDescription {
    /// The module's name.
    pub module: String,
    /// Its file, when it has one.
    #[serde(default)]
    pub file: Option<String>,
    /// The interpreter's version, such as `3.11.7`.
    pub python: String,
    /// The interpreter that imported it.
    #[serde(default)]
    pub executable: Option<String>,
    /// Its handlers, by name.
    pub handlers: Vec<Handler>,
    /// Its functions hidden by the built-ins `ping` and `info`.
    #[serde(default)]
    pub shadowed: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Answer {
    Ready(ModuleDescription),
    Failed { error: ErrorBody },
}

/// Imports `config`'s module in its interpreter, as a worker of that pool
/// would (same interpreter, paths, environment, preloads and exposed
/// names), and returns its description. Errors: the interpreter cannot be
/// run, the module does not import (with its traceback), or the import
/// takes longer than the pool's start timeout.
pub async fn describe_module(config: &PoolConfig) -> Result<ModuleDescription, Error> {
    let failed = |message: String| Error::WorkerStart {
        module: config.module.clone(),
        message,
    };
    let mut command = tokio::process::Command::new(&config.python);
    command
        .args(["-I", "-u", "-c", WORKER_SOURCE])
        .args(worker_args(config, false))
        .arg("--describe")
        .env_clear()
        .envs(worker_env(config))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(cwd) = &config.cwd {
        command.current_dir(cwd);
    }
    let python = config.python.display();
    let child = command.spawn().map_err(|e| {
        let failure = StartFailure::Spawn {
            python: python.to_string(),
            message: e.to_string(),
        };
        failed(failure.describe(&config.module))
    })?;
    let within = config.settings.start_timeout;
    let output = match tokio::time::timeout(within, child.wait_with_output()).await {
        Ok(output) => output.map_err(|e| failed(format!("reading `{python}`'s answer: {e}")))?,
        Err(_) => {
            return Err(failed(format!(
                "importing `{}` took longer than the start timeout ({within:?}); raise the pool's start_timeout_ms, or make the import lighter",
                config.module
            )));
        }
    };
    let last_line = output
        .stdout
        .split(|&b| b == b'\n')
        .rfind(|line| !line.is_empty())
        .unwrap_or_default();
    match serde_json::from_slice::<Answer>(last_line) {
        Ok(Answer::Ready(description)) => Ok(description),
        Ok(Answer::Failed { error }) => Err(failed(format!(
            "the module `{}` could not be imported: {}: {}\n{}",
            config.module,
            error.type_name.as_deref().unwrap_or("Exception"),
            error.message,
            error.traceback.as_deref().unwrap_or("")
        ))),
        Err(_) => Err(failed(format!(
            "`{python}` did not describe the module ({}); its stderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}
