//! The mock's configuration and its validation.

use serde::Deserialize;
use serde_json::Value;
use snakepen_guest::ConfigError;

/// The whole configuration document. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Canned answers, looked up by command and optionally exact payload.
    #[serde(default)]
    pub responses: Vec<Canned>,
    /// Injected failures; the first rule that fires decides the error.
    #[serde(default)]
    pub failures: Vec<FailureRule>,
    /// Latency added to every call, in milliseconds, unless a canned entry sets its own.
    #[serde(default)]
    pub latency_ms: u64,
}

/// One canned answer: exactly one of `response` and `error`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canned {
    pub command: String,
    /// When given, the entry answers only this payload (compared as JSON values).
    #[serde(default)]
    pub payload: Option<Value>,
    #[serde(default)]
    pub response: Option<Value>,
    #[serde(default)]
    pub error: Option<ErrorSpec>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Answer as a stream: these chunks, then `response` (or `error`).
    #[serde(default)]
    pub chunks: Option<Vec<Value>>,
    /// Milliseconds between one chunk and the next.
    #[serde(default)]
    pub chunk_delay_ms: Option<u64>,
    /// With `error`: the stream fails after this many chunks (default: all).
    #[serde(default)]
    pub fail_after: Option<usize>,
}

/// An injected failure: fires when every condition it names holds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureRule {
    /// Only calls of this command (and they are the ones counted for `every` and `rate`).
    #[serde(default)]
    pub command: Option<String>,
    /// Every Nth call: the Nth, 2Nth, …
    #[serde(default)]
    pub every: Option<u64>,
    /// This fraction of calls, chosen by `seed` and the call number.
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub seed: u64,
    pub error: ErrorSpec,
}

/// An error case of the contract, as configured. Omitted texts get defaults.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ErrorSpec {
    Timeout {
        message: Option<String>,
    },
    PoolExhausted {
        #[serde(default)]
        busy: u32,
        #[serde(default)]
        starting: u32,
        #[serde(default)]
        dead: u32,
        #[serde(default)]
        waited_ms: u64,
    },
    WorkerCrashed {
        #[serde(default)]
        pid: u32,
        exit_status: Option<String>,
        stderr_tail: Option<String>,
    },
    PythonException {
        #[serde(rename = "type")]
        type_name: Option<String>,
        message: Option<String>,
        traceback: Option<String>,
    },
    BadRequest {
        message: Option<String>,
    },
    NoSuchCommand {
        message: Option<String>,
    },
    SessionWorkerGone {
        message: Option<String>,
    },
    Unavailable {
        message: Option<String>,
    },
    AdapterFault {
        message: Option<String>,
    },
}

impl Config {
    /// Checks a document that parsed; every refusal names its field.
    pub fn check(&self) -> Result<(), ConfigError> {
        let config = self;
        for (i, canned) in config.responses.iter().enumerate() {
            let chunks = canned.chunks.as_ref().map(Vec::len);
            // A stream may end with neither: its end is then `null`.
            let both = canned.response.is_some() && canned.error.is_some();
            if both || (chunks.is_none() && canned.response.is_none() && canned.error.is_none()) {
                return Err(refuse(
                    format!("responses[{i}]"),
                    "give exactly one of `response` (the JSON to answer) and `error` (the error to return)",
                ));
            }
            if chunks.is_none() && (canned.chunk_delay_ms.is_some() || canned.fail_after.is_some()) {
                return Err(refuse(
                    format!("responses[{i}]"),
                    "`chunk_delay_ms` and `fail_after` belong to a stream: give its `chunks` too",
                ));
            }
            if let (Some(after), Some(n)) = (canned.fail_after, chunks) {
                if canned.error.is_none() {
                    return Err(refuse(
                        format!("responses[{i}].fail_after"),
                        "says when the stream fails: give the `error` it fails with",
                    ));
                }
                if after > n {
                    return Err(refuse(
                        format!("responses[{i}].fail_after"),
                        &format!("is {after}, but the stream has {n} chunks"),
                    ));
                }
            }
        }
        for (i, rule) in config.failures.iter().enumerate() {
            if rule.every == Some(0) {
                return Err(refuse(
                    format!("failures[{i}].every"),
                    "must be 1 or more (1 fails every call)",
                ));
            }
            if let Some(rate) = rule.rate
                && !(0.0..=1.0).contains(&rate)
            {
                return Err(refuse(
                    format!("failures[{i}].rate"),
                    &format!("is {rate}, but must be between 0 and 1 (a fraction of calls)"),
                ));
            }
            if rule.command.is_none() && rule.every.is_none() && rule.rate.is_none() {
                return Err(refuse(
                    format!("failures[{i}]"),
                    "names no condition: give `command`, `every` or `rate` (to fail every call, say every = 1)",
                ));
            }
        }
        Ok(())
    }
}

fn refuse(field: String, message: &str) -> ConfigError {
    ConfigError::field(field, message)
}
