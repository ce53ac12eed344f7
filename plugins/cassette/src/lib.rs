//! The policy of cassettes, shared by the recorder and replayer adapters:
//! which requests match (command and canonical payload, minus ignored
//! fields, plus the session if asked), which fields are secrets (written as
//! placeholders that replay matches back), how a replay claims its
//! interaction, and how a miss is explained.
//!
//! Configuration (the same for both adapters, and kept in the cassette's header):
//!
//! ```toml
//! ignore = ["timestamp", "/meta/request_id"]  # a field name at any depth, or a JSON pointer
//! filter = ["api_key"]                        # secrets: never written to disk
//! match_session = false                       # match the session id too
//! allow_repeats = false                       # replay a request's last recording again once all were played
//! pace = "at_once"                            # a stream's chunks: "at_once", or "recorded" (their recorded times apart)
//! ```
//!
//! A streamed call (its caller read a stream) is recorded with its chunks
//! and their times. Replayed to a caller that reads a stream, the chunks
//! come again, then the outcome; to one that does not, the answer is what
//! a worker gives such a caller: `{"chunks": [...], "result": ...}` (the
//! outcome alone when there were no chunks, or when it is an error).

mod diff;

use serde::Deserialize;
use serde_json::Value;
use snakepen_guest::cassette::{self, CassetteInfo, CassettePlan, ClaimedStreamed};
use snakepen_guest::{
    CallError, CassetteMiss, ConfigError, Interaction, Request, Response, StreamedInteraction,
    TimedChunk, counters, streams, timers,
};

/// Secrets shorter than this are not searched for in the rest of an
/// interaction: a short value would be "found" inside unrelated words.
const MIN_SECRET_LEN: usize = 4;

/// The configuration of the recorder and the replayer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Fields left out of matching.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Fields whose values never reach the disk.
    #[serde(default)]
    pub filter: Vec<String>,
    /// Whether the session id must match too.
    #[serde(default)]
    pub match_session: bool,
    /// Whether a request's last recording replays again once all were played.
    #[serde(default)]
    pub allow_repeats: bool,
    /// How a recorded stream's chunks are replayed.
    #[serde(default)]
    pub pace: Pace,
}

/// How a recorded stream's chunks are replayed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// As fast as the caller takes them.
    #[default]
    AtOnce,
    /// Each at least as long after the one before as when it was recorded
    /// (the adapter sees no clock: the time the caller takes adds to it).
    Recorded,
}

impl Options {
    /// Checks options that parsed: no empty field names.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (list, fields) in [("ignore", &self.ignore), ("filter", &self.filter)] {
            for (i, field) in fields.iter().enumerate() {
                if field.is_empty() || field == "/" {
                    return Err(ConfigError::field(
                        format!("{list}[{i}]"),
                        "is empty: give a field name such as \"api_key\", or a JSON pointer such as \"/auth/token\"",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The placeholder a filtered field's value is written as.
pub fn placeholder(field: &str) -> String {
    format!("<filtered {}>", field.trim_start_matches('/'))
}

/// A request as the cassette sees it: its payload parsed (when JSON) with
/// secrets replaced, and the secrets that were found.
pub struct Scrubbed {
    pub request: Request,
    pub json: Option<Value>,
    /// (secret, placeholder) pairs, longest first.
    pub secrets: Vec<(String, String)>,
}

/// Replaces the filtered fields of `request` by their placeholders, and
/// every other occurrence of their values in it.
pub fn scrub_request(options: &Options, request: &Request) -> Scrubbed {
    let mut secrets = Vec::new();
    let mut json = serde_json::from_slice::<Value>(&request.payload).ok();
    let mut payload = request.payload.clone();
    if let Some(value) = json.as_mut().filter(|_| !options.filter.is_empty()) {
        filter_fields(value, &options.filter, &mut secrets);
        secrets.sort_by_key(|(secret, _): &(String, String)| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        replace_in_strings(value, &secrets);
        payload = value.to_string().into_bytes();
    }
    Scrubbed {
        request: Request {
            command: request.command.clone(),
            session: request.session.clone(),
            deadline_ms: None,
            payload,
        },
        json,
        secrets,
    }
}

/// Keeps the request's secrets out of what the call returned.
pub fn scrub_outcome(
    options: &Options,
    outcome: &Result<Response, CallError>,
    secrets: &[(String, String)],
) -> Result<Response, CallError> {
    match outcome {
        Ok(response) => Ok(Response {
            payload: scrub_payload(options, &response.payload, secrets),
            worker_pid: None,
        }),
        Err(error) => Err(scrub_error(error, secrets)),
    }
}

/// Keeps the request's secrets out of an answer's (or a chunk's) bytes.
fn scrub_payload(options: &Options, payload: &[u8], secrets: &[(String, String)]) -> Vec<u8> {
    if options.filter.is_empty() {
        // Nothing to hide: the bytes are kept as they are.
        return payload.to_vec();
    }
    match serde_json::from_slice::<Value>(payload) {
        Ok(mut value) => {
            filter_fields(&mut value, &options.filter, &mut Vec::new());
            replace_in_strings(&mut value, secrets);
            value.to_string().into_bytes()
        }
        Err(_) => match std::str::from_utf8(payload) {
            Ok(text) => replace_secrets(text, secrets).into_bytes(),
            Err(_) => payload.to_vec(),
        },
    }
}

fn scrub_error(error: &CallError, secrets: &[(String, String)]) -> CallError {
    let s = |text: &String| replace_secrets(text, secrets);
    match error {
        CallError::Timeout(m) => CallError::Timeout(s(m)),
        CallError::PoolExhausted(p) => CallError::PoolExhausted(p.clone()),
        CallError::WorkerCrashed(w) => CallError::WorkerCrashed(snakepen_guest::WorkerCrashed {
            pid: w.pid,
            exit_status: s(&w.exit_status),
            stderr_tail: s(&w.stderr_tail),
        }),
        CallError::PythonException(p) => {
            CallError::PythonException(snakepen_guest::PythonException {
                type_name: s(&p.type_name),
                message: s(&p.message),
                traceback: s(&p.traceback),
            })
        }
        CallError::BadRequest(m) => CallError::BadRequest(s(m)),
        CallError::NoSuchCommand(m) => CallError::NoSuchCommand(s(m)),
        CallError::SessionWorkerGone(m) => CallError::SessionWorkerGone(s(m)),
        CallError::Unavailable(m) => CallError::Unavailable(s(m)),
        CallError::AdapterFault(m) => CallError::AdapterFault(s(m)),
        CallError::CassetteMiss(m) => CallError::CassetteMiss(m.clone()),
    }
}

/// Whether an outcome says something about the Python code (an answer, or
/// an error it will give again), rather than about the machinery on the
/// day it was recorded (a timeout, a crash, a busy pool). Only those are recorded.
pub fn worth_recording(outcome: &Result<Response, CallError>) -> bool {
    matches!(
        outcome,
        Ok(_)
            | Err(CallError::PythonException(_))
            | Err(CallError::BadRequest(_))
            | Err(CallError::NoSuchCommand(_))
    )
}

fn filter_fields(value: &mut Value, fields: &[String], secrets: &mut Vec<(String, String)>) {
    for field in fields {
        if field.starts_with('/') {
            if let Some(target) = value.pointer_mut(field) {
                hide(target, field, secrets);
            }
        } else {
            hide_named(value, field, secrets);
        }
    }
}

fn hide_named(value: &mut Value, name: &str, secrets: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if key == name {
                    hide(inner, name, secrets);
                } else {
                    hide_named(inner, name, secrets);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| hide_named(v, name, secrets)),
        _ => {}
    }
}

fn hide(target: &mut Value, field: &str, secrets: &mut Vec<(String, String)>) {
    let placeholder = placeholder(field);
    collect_strings(target, &mut |text| {
        if text.chars().count() >= MIN_SECRET_LEN && text != placeholder {
            secrets.push((text.to_string(), placeholder.clone()));
        }
    });
    *target = Value::String(placeholder);
}

fn collect_strings(value: &Value, found: &mut impl FnMut(&str)) {
    match value {
        Value::String(s) => found(s),
        Value::Number(n) => found(&n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, found)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, found)),
        _ => {}
    }
}

fn replace_in_strings(value: &mut Value, secrets: &[(String, String)]) {
    if secrets.is_empty() {
        return;
    }
    match value {
        Value::String(s) => *s = replace_secrets(s, secrets),
        Value::Array(items) => items.iter_mut().for_each(|v| replace_in_strings(v, secrets)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_in_strings(v, secrets)),
        _ => {}
    }
}

fn replace_secrets(text: &str, secrets: &[(String, String)]) -> String {
    let mut text = text.to_string();
    for (secret, placeholder) in secrets {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), placeholder);
        }
    }
    text
}

fn remove_ignored(value: &mut Value, fields: &[String]) {
    for field in fields {
        if let Some((parent, last)) = field.rsplit_once('/').filter(|_| field.starts_with('/')) {
            let last = last.replace("~1", "/").replace("~0", "~");
            match value.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&last);
                }
                Some(Value::Array(items)) => {
                    if let Ok(i) = last.parse::<usize>()
                        && i < items.len()
                    {
                        items[i] = Value::Null;
                    }
                }
                _ => {}
            }
        } else {
            remove_named(value, field);
        }
    }
}

fn remove_named(value: &mut Value, name: &str) {
    match value {
        Value::Object(map) => {
            map.remove(name);
            map.values_mut().for_each(|v| remove_named(v, name));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| remove_named(v, name)),
        _ => {}
    }
}

/// What a request is matched on.
pub struct Matchable {
    pub command: String,
    pub session: Option<String>,
    /// The payload with secrets replaced and ignored fields removed.
    pub payload: Payload,
}

/// A payload as matched: JSON (compared canonically) or raw bytes.
pub enum Payload {
    Json(Value),
    Bytes(Vec<u8>),
}

impl Payload {
    /// Canonical text: JSON with sorted keys and no whitespace, or hex.
    pub fn canonical(&self) -> String {
        match self {
            Payload::Json(value) => sorted(value).to_string(),
            Payload::Bytes(bytes) if bytes.is_empty() => String::new(),
            Payload::Bytes(bytes) => {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                format!("bytes:{hex}")
            }
        }
    }
}

/// `value` with the keys of every object sorted (objects keep their
/// writer's key order otherwise, so that what is recorded reads as it was sent).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

impl Matchable {
    pub fn of(options: &Options, request: &Request) -> Matchable {
        let scrubbed = scrub_request(options, request);
        let payload = match scrubbed.json {
            Some(mut value) => {
                remove_ignored(&mut value, &options.ignore);
                Payload::Json(value)
            }
            None => Payload::Bytes(request.payload.clone()),
        };
        Matchable {
            command: request.command.clone(),
            session: if options.match_session {
                request.session.clone()
            } else {
                None
            },
            payload,
        }
    }

    /// The key interactions are indexed by.
    pub fn key(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.command,
            self.session.as_deref().map_or(String::from("-"), |s| format!("={s}")),
            self.payload.canonical()
        )
    }

    /// The request as a miss report shows it.
    pub fn describe(&self) -> String {
        let mut text = self.command.clone();
        if let Some(session) = &self.session {
            text.push_str(&format!(" (session {session:?})"));
        }
        let payload = self.payload.canonical();
        if !payload.is_empty() {
            text.push(' ');
            text.push_str(&diff::shorten(&payload, 400));
        }
        text
    }
}

/// Makes sure the host holds this cassette's match keys (computed with
/// these options), computing them on the first call of a host.
pub fn ensure_index(options: &Options) {
    if cassette::indexed() {
        return;
    }
    let keys = cassette::interactions()
        .iter()
        .map(|i| Matchable::of(options, &i.request).key())
        .collect::<Vec<_>>();
    cassette::index(&keys);
}

/// The cassette, or the error an adapter without one returns.
pub fn info(adapter: &str) -> Result<CassetteInfo, CallError> {
    cassette::info().ok_or_else(|| no_cassette(adapter))
}

/// The cassette and the host's plan for it, or the error an adapter without one returns.
pub fn info_and_plan(adapter: &str) -> Result<(CassetteInfo, CassettePlan), CallError> {
    match (cassette::info(), cassette::plan()) {
        (Some(info), Some(plan)) => Ok((info, plan)),
        _ => Err(no_cassette(adapter)),
    }
}

fn no_cassette(adapter: &str) -> CallError {
    CallError::Unavailable(format!(
        "the {adapter} adapter needs a cassette, and this host has none: build the host with one (HostBuilder::cassette or Host::replaying)"
    ))
}

/// Answers `request` from the cassette: `Ok(outcome)` when a recorded
/// interaction matches, else `Err(miss)` with the report of why not.
pub fn replay(
    options: &Options,
    info: &CassetteInfo,
    request: &Request,
) -> Result<Result<Response, CallError>, CallError> {
    ensure_index(options);
    let matchable = Matchable::of(options, request);
    match cassette::claim_streamed(&matchable.key(), options.allow_repeats) {
        ClaimedStreamed::Found(found) => {
            counters::add("replayed", 1);
            let outcome = found.interaction.outcome.map(|r| Response {
                payload: r.payload,
                worker_pid: None,
            });
            Ok(match found.chunks {
                None => outcome,
                Some(chunks) => play(options.pace, chunks, outcome),
            })
        }
        ClaimedStreamed::UsedUp(n) => Err(miss(options, info, &matchable, n)),
        ClaimedStreamed::Absent => Err(miss(options, info, &matchable, 0)),
    }
}

/// A recorded stream, replayed: its chunks to a caller that reads a
/// stream, then its outcome; to one that does not, the chunks collected
/// into one answer as a worker collects them.
fn play(
    pace: Pace,
    chunks: Vec<TimedChunk>,
    outcome: Result<Response, CallError>,
) -> Result<Response, CallError> {
    if !streams::wanted() {
        return match outcome {
            Ok(response) if !chunks.is_empty() => Response::json(&serde_json::json!({
                "chunks": chunks.iter().map(|c| as_json(&c.chunk)).collect::<Vec<_>>(),
                "result": as_json(&response.payload),
            })),
            other => other,
        };
    }
    let mut slept_us = 0u64;
    for timed in chunks {
        if pace == Pace::Recorded {
            let ms = timed.offset_us.saturating_sub(slept_us) / 1000;
            if ms > 0 {
                timers::sleep(ms);
                slept_us += ms * 1000;
            }
        }
        streams::emit(&timed.chunk)?;
    }
    outcome
}

/// Bytes as a JSON value: themselves when they are JSON, else their text.
fn as_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The interaction to append for a call that ran for real.
pub fn to_record(
    options: &Options,
    request: &Request,
    outcome: &Result<Response, CallError>,
) -> Interaction {
    let scrubbed = scrub_request(options, request);
    Interaction {
        outcome: scrub_outcome(options, outcome, &scrubbed.secrets),
        request: scrubbed.request,
    }
}

/// The interaction to append for a streamed call that ran for real: the
/// request's secrets are kept out of its chunks too.
pub fn to_record_streamed(
    options: &Options,
    request: &Request,
    outcome: &Result<Response, CallError>,
    chunks: &[TimedChunk],
) -> StreamedInteraction {
    let scrubbed = scrub_request(options, request);
    let chunks = chunks
        .iter()
        .map(|timed| TimedChunk {
            offset_us: timed.offset_us,
            chunk: scrub_payload(options, &timed.chunk, &scrubbed.secrets),
        })
        .collect();
    StreamedInteraction {
        interaction: Interaction {
            outcome: scrub_outcome(options, outcome, &scrubbed.secrets),
            request: scrubbed.request,
        },
        chunks: Some(chunks),
    }
}

fn miss(options: &Options, info: &CassetteInfo, request: &Matchable, used_up: u32) -> CallError {
    counters::add("missed", 1);
    let recorded: Vec<Matchable> = if used_up > 0 {
        Vec::new()
    } else {
        cassette::interactions()
            .iter()
            .map(|i| Matchable::of(options, &i.request))
            .collect()
    };
    let closest = diff::closest(request, &recorded);
    let differences = closest
        .map(|c| diff::differences(c, request))
        .unwrap_or_default();
    let hint = if used_up > 0 {
        "replay its last recording again with allow_repeats (Cassette::allow_repeats(true), or \"allow_repeats\": true), \
         or record the extra call with SNAKEPEN_RECORD_MODE=new_episodes"
            .to_string()
    } else {
        diff::hint(request, closest, &recorded, info)
    };
    CallError::CassetteMiss(CassetteMiss {
        cassette: info.path.clone(),
        mode: info.mode.clone(),
        request: request.describe(),
        used_up,
        closest: closest.map(Matchable::describe),
        differences,
        hint,
    })
}
