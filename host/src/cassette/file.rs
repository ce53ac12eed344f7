//! The cassette file format: JSON Lines. The first line is a header that
//! names the format, its version and the matching options the cassette was
//! recorded with; every further line is one interaction. Keys come in a
//! fixed order and JSON objects with sorted keys, so a re-recording diffs
//! line by line.
//!
//! ```text
//! {"format":"snakepen-cassette","version":1,"options":{"filter":["api_key"]}}
//! {"command":"word_stats","request":{"text":"a b a"},"response":{"words":3},"elapsed_ms":0.41}
//! {"command":"describe","request":{"values":[]},"error":{"kind":"python-exception","detail":{…}},"elapsed_ms":0.52}
//! ```
//!
//! Version 2 adds the chunks of a streamed answer, each with its time from
//! the start of the call, before the outcome that ended the stream:
//!
//! ```text
//! {"command":"count","request":{"n":2},"chunks":[{"at_ms":0.2,"chunk":0},{"at_ms":5.1,"chunk":1}],"response":"done","elapsed_ms":5.3}
//! ```
//!
//! A snakepen reads every version up to its own. A recording is written as
//! version 1 while it holds no stream, so that a cassette without streams
//! stays readable by a snakepen of version 1; the first stream recorded
//! makes it version 2.

use super::recorded_error::RecordedError;
use crate::{CallError, Error, Request, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The value of the header's `format` field.
pub const FORMAT: &str = "snakepen-cassette";
/// The newest cassette format version, which this snakepen reads and
/// writes (it reads every earlier one too).
pub const VERSION: u64 = 2;
/// The version a recording without streams is written as.
pub(crate) const VERSION_WITHOUT_STREAMS: u64 = 1;
/// The first version with streamed answers (`chunks`).
pub(crate) const VERSION_WITH_STREAMS: u64 = 2;

/// A chunk of a streamed answer and when it came, as a cassette keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedChunk {
    /// The time from the start of the call to the chunk.
    pub offset: Duration,
    /// The chunk's bytes (JSON by convention).
    pub chunk: Vec<u8>,
}

/// One recorded call, as read from a cassette.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Recorded {
    /// The request (secrets already replaced by placeholders; no deadline).
    pub request: Request,
    /// What the caller got.
    pub outcome: Result<Response, CallError>,
    /// How long the call took when it was recorded.
    pub elapsed: Option<Duration>,
    /// The chunks its caller read before the outcome, when the call was
    /// streamed (`Host::call_stream`); `None` for a call answered at once.
    pub chunks: Option<Vec<TimedChunk>>,
}

/// A cassette read from disk.
#[derive(Debug, Clone)]
pub struct CassetteFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The matching options it was recorded with (the recorder's configuration).
    pub options: Value,
    /// Its format version (1 or 2).
    pub version: u64,
    /// Its interactions, in file order.
    pub interactions: Vec<Recorded>,
    /// The interaction lines as they are in the file, to copy them unchanged.
    pub(crate) lines: Vec<String>,
}

impl CassetteFile {
    /// Reads and checks the cassette at `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<CassetteFile, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Cassette {
            path: path.to_path_buf(),
            line: None,
            message: format!("it cannot be read ({e}); check the path"),
            source: Some(e),
        })?;
        parse(path, &text)
    }
}

#[derive(Serialize)]
struct Header<'a> {
    format: &'a str,
    version: u64,
    options: &'a Value,
    recorded_by: &'a str,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    request: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunks: Option<Vec<ChunkLine>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    response: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    response_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<RecordedError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    elapsed_ms: Option<f64>,
}

/// One chunk of `chunks`: its time in milliseconds (to the microsecond)
/// and its bytes, as JSON or in base64 like the payloads.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChunkLine {
    at_ms: f64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    chunk: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunk_base64: Option<String>,
}

/// A time as the file keeps it: milliseconds, to the microsecond.
fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// A time read from the file; `None` when it is not a time at all.
fn duration_of(ms: f64) -> Option<Duration> {
    (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1e3))
}

/// A field that is present is `Some`, even when its value is `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Payload bytes as the file keeps them: JSON as JSON, anything else in base64.
fn encode(bytes: &[u8]) -> (Option<Value>, Option<String>) {
    if bytes.is_empty() {
        return (None, None);
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => (Some(value), None),
        Err(_) => (None, Some(BASE64.encode(bytes))),
    }
}

fn decode(json: Option<Value>, base64: Option<String>, field: &str) -> Result<Vec<u8>, String> {
    match (json, base64) {
        (Some(_), Some(_)) => Err(format!("has both `{field}` and `{field}_base64`; keep one")),
        (Some(value), None) => Ok(value.to_string().into_bytes()),
        (None, Some(text)) => BASE64
            .decode(text.as_bytes())
            .map_err(|e| format!("has a `{field}_base64` that is not valid base64 ({e})")),
        (None, None) => Ok(Vec::new()),
    }
}

/// The header line (with its newline) of a cassette of format `version`
/// recorded with `options`.
pub(crate) fn header_line(options: &Value, version: u64) -> String {
    let header = Header {
        format: FORMAT,
        version,
        options,
        recorded_by: concat!("snakepen ", env!("CARGO_PKG_VERSION")),
    };
    let mut line = serde_json::to_string(&header).expect("a header always serializes");
    line.push('\n');
    line
}

/// Where the digit of the version is in [`header_line`]'s text: the
/// version a recording's header says can change in place when its first
/// stream is recorded.
pub(crate) fn version_digit_at(header: &str) -> usize {
    const KEY: &str = "\"version\":";
    header.find(KEY).expect("a header names its version") + KEY.len()
}

/// One interaction as a line of the file (with its newline).
pub(crate) fn interaction_line(
    request: &Request,
    outcome: &Result<Response, CallError>,
    elapsed: Option<Duration>,
    chunks: Option<&[TimedChunk]>,
) -> String {
    let (request_json, request_base64) = encode(&request.payload);
    let (response, response_base64, error) = match outcome {
        Ok(response) => {
            let (json, base64) = encode(&response.payload);
            (json, base64, None)
        }
        Err(error) => (None, None, Some(RecordedError::from(error))),
    };
    let chunks = chunks.map(|chunks| {
        chunks
            .iter()
            .map(|timed| {
                let (chunk, chunk_base64) = encode_chunk(&timed.chunk);
                ChunkLine {
                    at_ms: millis(timed.offset),
                    chunk,
                    chunk_base64,
                }
            })
            .collect()
    });
    let line = Line {
        command: request.command.clone(),
        session: request.session.clone(),
        request: request_json,
        request_base64,
        chunks,
        response,
        response_base64,
        error,
        // Microsecond precision is plenty, and keeps the line short.
        elapsed_ms: elapsed.map(millis),
    };
    let mut text = serde_json::to_string(&line).expect("an interaction always serializes");
    text.push('\n');
    text
}

/// A chunk's bytes as the file keeps them: an empty chunk is the empty
/// string in base64, so that it reads back as no bytes, not as `null`.
fn encode_chunk(bytes: &[u8]) -> (Option<Value>, Option<String>) {
    match encode(bytes) {
        (None, None) => (None, Some(String::new())),
        kept => kept,
    }
}

/// Whether a cassette's text holds nothing at all (not even a header).
pub(crate) fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

/// The refusal of a blank file where a cassette must be replayed.
pub(crate) fn blank(path: &Path) -> Error {
    Error::Cassette {
        path: path.to_path_buf(),
        line: None,
        message: format!(
            "it is empty, but a cassette starts with a header line such as {}. Delete the file, or record it (record mode `once` records over an empty file)",
            header_line(&Value::Object(Default::default()), VERSION_WITHOUT_STREAMS).trim_end()
        ),
        source: None,
    }
}

/// Parses a cassette's text, refusing anything that is not a whole cassette
/// of a version this snakepen reads.
pub(crate) fn parse(path: &Path, text: &str) -> Result<CassetteFile, Error> {
    let fail = |line: Option<usize>, message: String| Error::Cassette {
        path: path.to_path_buf(),
        line,
        message,
        source: None,
    };
    if is_blank(text) {
        return Err(blank(path));
    }
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    if !text.ends_with('\n') {
        let n = lines.len();
        return Err(fail(
            Some(n),
            format!(
                "line {n} is cut off: the file ends in the middle of it, so a write to it was interrupted or the file was truncated. \
                 Delete line {n} to keep the {} interactions before it, or record the cassette again (SNAKEPEN_RECORD_MODE=all)",
                n.saturating_sub(2)
            ),
        ));
    }

    let header: Value = serde_json::from_str(lines[0]).map_err(|e| {
        fail(
            Some(1),
            format!("it is not a snakepen cassette: its first line is not JSON ({e})"),
        )
    })?;
    if header.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(fail(
            Some(1),
            format!(
                "it is not a snakepen cassette: its first line should be a header with \"format\":\"{FORMAT}\""
            ),
        ));
    }
    let version = header.get("version");
    let version = match version.and_then(Value::as_u64) {
        Some(known @ 1..=VERSION) => known,
        _ if version.is_some_and(Value::is_number) => {
            let other = version.map(Value::to_string).unwrap_or_default();
            return Err(fail(
                Some(1),
                format!(
                    "it is cassette format version {other}, but this snakepen reads versions 1 to {VERSION}: \
                     use the snakepen that recorded it, or record it again with this one (SNAKEPEN_RECORD_MODE=all)"
                ),
            ));
        }
        _ => {
            let found = match version {
                Some(value) => format!("its `version` is {value}, not a number"),
                None => "its header has no `version`".into(),
            };
            return Err(fail(
                Some(1),
                format!(
                    "{found}; a cassette of this snakepen says \"version\":{VERSION_WITHOUT_STREAMS} (or {VERSION} when it holds streams)"
                ),
            ));
        }
    };
    let options = header
        .get("options")
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));

    let mut interactions = Vec::new();
    let mut kept = Vec::new();
    for (i, text) in lines.iter().enumerate().skip(1) {
        if text.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        let line: Line = serde_json::from_str(text).map_err(|e| {
            fail(
                Some(n),
                format!("line {n} is not a recorded interaction: {e}"),
            )
        })?;
        if line.chunks.is_some() && version < VERSION_WITH_STREAMS {
            return Err(fail(
                Some(n),
                format!(
                    "line {n} has the `chunks` of a stream, which format version {VERSION_WITH_STREAMS} brought, but the header says version {version}: \
                     set \"version\":{VERSION_WITH_STREAMS} in the header, or record the cassette again (SNAKEPEN_RECORD_MODE=all)"
                ),
            ));
        }
        interactions.push(recorded(line).map_err(|m| fail(Some(n), format!("line {n} {m}")))?);
        kept.push(text.to_string());
    }
    Ok(CassetteFile {
        path: path.to_path_buf(),
        options,
        version,
        interactions,
        lines: kept,
    })
}

fn recorded(line: Line) -> Result<Recorded, String> {
    let payload = decode(line.request, line.request_base64, "request")?;
    let outcome = match line.error {
        Some(_) if line.response.is_some() || line.response_base64.is_some() => {
            return Err("has both a `response` and an `error`; keep the one that happened".into());
        }
        Some(error) => Err(error.into()),
        None => Ok(Response {
            payload: decode(line.response, line.response_base64, "response")?,
            worker_pid: None,
        }),
    };
    Ok(Recorded {
        request: Request {
            command: line.command,
            session: line.session,
            deadline: None,
            payload,
        },
        outcome,
        elapsed: line.elapsed_ms.and_then(duration_of),
        chunks: line.chunks.map(chunks_of).transpose()?,
    })
}

fn chunks_of(lines: Vec<ChunkLine>) -> Result<Vec<TimedChunk>, String> {
    let mut chunks = Vec::with_capacity(lines.len());
    let mut last = Duration::ZERO;
    for (i, line) in lines.into_iter().enumerate() {
        let offset = duration_of(line.at_ms).ok_or_else(|| {
            format!(
                "has chunk {i} at {} ms, not a time: give `at_ms` as milliseconds from the start of the call",
                line.at_ms
            )
        })?;
        if offset < last {
            return Err(format!(
                "has chunk {i} at {} ms, before the chunk ahead of it: chunks are kept in the order they came",
                line.at_ms
            ));
        }
        last = offset;
        let chunk = decode(line.chunk, line.chunk_base64, "chunk")
            .map_err(|m| format!("has chunk {i} that {m}"))?;
        chunks.push(TimedChunk { offset, chunk });
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interaction_survives_the_file_with_every_kind_of_payload() {
        let request = Request::new("f", b"\xff\x00 not json".to_vec()).session("s");
        let outcomes = [
            Ok(Response {
                payload: br#"{"b":1,"a":null}"#.to_vec(),
                worker_pid: None,
            }),
            Ok(Response {
                payload: b"null".to_vec(),
                worker_pid: None,
            }),
            Ok(Response {
                payload: Vec::new(),
                worker_pid: None,
            }),
            Err(CallError::PythonException {
                type_name: "ValueError".into(),
                message: "no".into(),
                traceback: "Traceback…".into(),
            }),
            Err(CallError::Timeout("slow".into())),
        ];
        let mut text = header_line(&serde_json::json!({"ignore": ["ts"]}), 1);
        for outcome in &outcomes {
            text.push_str(&interaction_line(&request, outcome, None, None));
        }
        let file = parse(Path::new("x.jsonl"), &text).unwrap();
        assert_eq!(file.options["ignore"][0], "ts");
        let got: Vec<_> = file
            .interactions
            .iter()
            .map(|r| r.outcome.clone())
            .collect();
        // JSON is kept as JSON, its keys in their order: compact JSON comes back byte for byte.
        assert_eq!(got, outcomes.to_vec());
        assert!(file.interactions.iter().all(|r| r.request == request));
    }

    #[test]
    fn a_streamed_interaction_keeps_its_chunks_their_times_and_its_end() {
        let request = Request::new("count", br#"{"n":3}"#.to_vec());
        let chunks = [
            (0.2, b"0".to_vec()),
            (1.5, b"\"text\"".to_vec()),
            (1.5, Vec::new()),
            (9.0, b"\xff not json".to_vec()),
        ]
        .map(|(ms, chunk)| TimedChunk {
            offset: Duration::from_secs_f64(ms / 1e3),
            chunk,
        });
        let outcome = Err(CallError::PythonException {
            type_name: "ValueError".into(),
            message: "after the chunks".into(),
            traceback: String::new(),
        });
        let mut text = header_line(&Value::Object(Default::default()), 2);
        text.push_str(&interaction_line(&request, &outcome, None, Some(&chunks)));
        text.push_str(&interaction_line(&request, &outcome, None, Some(&[])));
        let file = parse(Path::new("x.jsonl"), &text).unwrap();
        assert_eq!(file.version, 2);
        assert_eq!(file.interactions[0].chunks.as_deref(), Some(&chunks[..]));
        assert_eq!(file.interactions[0].outcome, outcome);
        assert_eq!(file.interactions[1].chunks.as_deref(), Some(&[][..]));
        // JSON chunks stay JSON in the file; others are base64.
        assert!(text.contains(r#"{"at_ms":1.5,"chunk":"text"}"#), "{text}");
        assert!(
            text.contains(r#"{"at_ms":1.5,"chunk_base64":""}"#),
            "{text}"
        );
    }

    #[test]
    fn chunks_need_version_2_and_times_in_order() {
        let line = r#"{"command":"c","chunks":[{"at_ms":2,"chunk":1},{"at_ms":1,"chunk":2}],"response":null}"#;
        let refused = |version: u64, line: &str| {
            let text = format!("{}{line}\n", header_line(&Value::Null, version));
            parse(Path::new("x.jsonl"), &text).unwrap_err().to_string()
        };
        let v1 = refused(1, line);
        assert!(
            v1.contains("line 2") && v1.contains("\"version\":2"),
            "{v1}"
        );
        let order = refused(2, line);
        assert!(
            order.contains("chunk 1") && order.contains("order"),
            "{order}"
        );
        let later = refused(3, "");
        assert!(later.contains("versions 1 to 2"), "{later}");
        let bad_time = refused(2, &line.replace("\"at_ms\":2", "\"at_ms\":-1"));
        assert!(bad_time.contains("not a time"), "{bad_time}");
    }
}
