//! The mock adapter: answers every request without Python.
//!
//! What it answers, in order of precedence:
//! 1. a failure rule that matches the call (by command, every Nth call, or a
//!    seeded rate) returns its configured error;
//! 2. a canned entry for the command and this exact payload (JSON compared
//!    canonically: key order and whitespace do not matter);
//! 3. a canned entry for the command without a payload;
//! 4. a deterministic default derived from the request (its payload
//!    reflected as it came).
//!
//! Instances are fresh for every call, so the call counts that drive the
//! failure rules live in the host's counters (`calls`, `calls/<command>`,
//! `failures`, `failures/<command>`), where a test can read them back.

mod config;

use config::{Canned, Config, ErrorSpec, FailureRule};
use serde_json::Value;
use serde_json::value::RawValue;
use snakepen_guest::{Adapter, CallError, ConfigError, Request, Response, host};

struct Mock;

impl Adapter for Mock {
    type Config = Config;

    fn check(config: &Config) -> Result<(), ConfigError> {
        config.check()
    }

    fn call(config: &Config, request: Request) -> Result<Response, CallError> {
        serve(config, &request)
    }
}

snakepen_guest::adapter!(Mock);

fn serve(config: &Config, request: &Request) -> Result<Response, CallError> {
    let total = host::count("calls", 1);
    let per_command = host::count(&format!("calls/{}", request.command), 1);
    // Parsed only when an entry for this command names a payload to match.
    let payload: Option<Value> = config
        .responses
        .iter()
        .any(|c| c.command == request.command && c.payload.is_some())
        .then(|| serde_json::from_slice(&request.payload).ok())
        .flatten();
    let canned = find_canned(&config.responses, &request.command, payload.as_ref());

    let latency = canned
        .and_then(|c| c.latency_ms)
        .unwrap_or(config.latency_ms);
    if latency > 0 {
        host::sleep_ms(latency);
    }

    if let Some(rule) = config
        .failures
        .iter()
        .find(|rule| rule_fires(rule, &request.command, total, per_command))
    {
        host::count("failures", 1);
        host::count(&format!("failures/{}", request.command), 1);
        return Err(rule.error.to_call_error(&request.command));
    }

    if let Some(canned @ Canned {
        chunks: Some(chunks),
        ..
    }) = canned
    {
        return stream(canned, chunks, &request.command);
    }
    match canned {
        Some(Canned {
            error: Some(error), ..
        }) => Err(error.to_call_error(&request.command)),
        Some(Canned {
            response: Some(response),
            ..
        }) => Response::json(response),
        _ => Response::json(&Reflected::of(request)),
    }
}

/// A canned stream: its chunks (emitted one by one to a caller that reads
/// a stream, `chunk_delay_ms` apart; collected for one that does not), then
/// its `response`, or its `error` (after `fail_after` chunks, if given).
fn stream(canned: &Canned, chunks: &[Value], command: &str) -> Result<Response, CallError> {
    let sent = canned.fail_after.unwrap_or(chunks.len());
    let end = || match &canned.error {
        Some(error) => Err(error.to_call_error(command)),
        None => Ok(canned.response.clone().unwrap_or(Value::Null)),
    };
    if !host::stream_wanted() {
        let result = end()?;
        return Response::json(&serde_json::json!({ "chunks": &chunks[..sent], "result": result }));
    }
    for (i, chunk) in chunks[..sent].iter().enumerate() {
        if i > 0
            && let Some(ms) = canned.chunk_delay_ms
        {
            host::sleep_ms(ms);
        }
        let bytes = serde_json::to_vec(chunk).expect("a JSON value serializes");
        host::emit(&bytes)?;
    }
    Response::json(&end()?)
}

/// The entry for this command and exactly this payload, else the entry for
/// this command with no payload given.
fn find_canned<'a>(
    canned: &'a [Canned],
    command: &str,
    payload: Option<&Value>,
) -> Option<&'a Canned> {
    let for_command = || canned.iter().filter(move |c| c.command == command);
    for_command()
        .find(|c| c.payload.is_some() && c.payload.as_ref() == payload)
        .or_else(|| for_command().find(|c| c.payload.is_none()))
}

/// A rule fires when every condition it names holds for this call.
fn rule_fires(rule: &FailureRule, command: &str, total: u64, per_command: u64) -> bool {
    // A rule restricted to a command counts that command's calls only.
    let n = match &rule.command {
        Some(c) if c != command => return false,
        Some(_) => per_command,
        None => total,
    };
    let every = rule.every.is_none_or(|every| n % every == 0);
    let rate = rule
        .rate
        .is_none_or(|rate| unit_interval(rule.seed, n) < rate);
    every && rate
}

/// A number in [0, 1) determined by `seed` and the call number `n`
/// (splitmix64), so a seeded failure rate fails the same calls every run.
fn unit_interval(seed: u64, n: u64) -> f64 {
    let mut z = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// What the mock answers when nothing is canned: the request, reflected,
/// its payload as it came when it is JSON (neither parsed into values nor
/// written again), else its length and hash.
#[derive(serde::Serialize)]
struct Reflected<'a> {
    mock: bool,
    command: &'a str,
    session: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_len: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_fnv1a: Option<String>,
}

impl<'a> Reflected<'a> {
    fn of(request: &'a Request) -> Reflected<'a> {
        let payload = serde_json::from_slice::<&RawValue>(&request.payload).ok();
        let binary = payload.is_none();
        Reflected {
            mock: true,
            command: &request.command,
            session: &request.session,
            payload,
            payload_len: binary.then_some(request.payload.len()),
            payload_fnv1a: binary.then(|| format!("{:016x}", fnv1a(&request.payload))),
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl ErrorSpec {
    fn to_call_error(&self, command: &str) -> CallError {
        let text =
            |m: &Option<String>, default: &str| m.clone().unwrap_or_else(|| default.to_string());
        match self {
            ErrorSpec::Timeout { message } => {
                CallError::Timeout(text(message, "mock: injected timeout"))
            }
            ErrorSpec::PoolExhausted {
                busy,
                starting,
                dead,
                waited_ms,
            } => CallError::PoolExhausted(snakepen_guest::PoolExhausted {
                busy: *busy,
                starting: *starting,
                dead: *dead,
                waited_ms: *waited_ms,
            }),
            ErrorSpec::WorkerCrashed {
                pid,
                exit_status,
                stderr_tail,
            } => CallError::WorkerCrashed(snakepen_guest::WorkerCrashed {
                pid: *pid,
                exit_status: text(exit_status, "signal 9 (SIGKILL)"),
                stderr_tail: stderr_tail.clone().unwrap_or_default(),
            }),
            ErrorSpec::PythonException {
                type_name,
                message,
                traceback,
            } => CallError::PythonException(snakepen_guest::PythonException {
                type_name: text(type_name, "Exception"),
                message: text(message, "mock: injected exception"),
                traceback: traceback.clone().unwrap_or_default(),
            }),
            ErrorSpec::BadRequest { message } => {
                CallError::BadRequest(text(message, "mock: injected bad request"))
            }
            ErrorSpec::NoSuchCommand { message } => {
                CallError::NoSuchCommand(text(message, command))
            }
            ErrorSpec::SessionWorkerGone { message } => {
                CallError::SessionWorkerGone(text(message, "mock: injected session loss"))
            }
            ErrorSpec::Unavailable { message } => {
                CallError::Unavailable(text(message, "mock: injected unavailability"))
            }
            ErrorSpec::AdapterFault { message } => {
                CallError::AdapterFault(text(message, "mock: injected fault"))
            }
        }
    }
}
