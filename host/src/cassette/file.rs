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
/// The cassette format version this snakepen reads and writes.
pub const VERSION: u64 = 1;

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
}

/// A cassette read from disk.
#[derive(Debug, Clone)]
pub struct CassetteFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The matching options it was recorded with (the recorder's configuration).
    pub options: Value,
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

/// The header line (with its newline) of a cassette recorded with `options`.
pub(crate) fn header_line(options: &Value) -> String {
    let header = Header {
        format: FORMAT,
        version: VERSION,
        options,
        recorded_by: concat!("snakepen ", env!("CARGO_PKG_VERSION")),
    };
    let mut line = serde_json::to_string(&header).expect("a header always serializes");
    line.push('\n');
    line
}

/// One interaction as a line of the file (with its newline).
pub(crate) fn interaction_line(
    request: &Request,
    outcome: &Result<Response, CallError>,
    elapsed: Option<Duration>,
) -> String {
    let (request_json, request_base64) = encode(&request.payload);
    let (response, response_base64, error) = match outcome {
        Ok(response) => {
            let (json, base64) = encode(&response.payload);
            (json, base64, None)
        }
        Err(error) => (None, None, Some(RecordedError::from(error))),
    };
    let line = Line {
        command: request.command.clone(),
        session: request.session.clone(),
        request: request_json,
        request_base64,
        response,
        response_base64,
        error,
        // Microsecond precision is plenty, and keeps the line short.
        elapsed_ms: elapsed.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
    };
    let mut text = serde_json::to_string(&line).expect("an interaction always serializes");
    text.push('\n');
    text
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
            header_line(&Value::Object(Default::default())).trim_end()
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
    match version.and_then(Value::as_u64) {
        Some(VERSION) => {}
        _ if version.is_some_and(Value::is_number) => {
            let other = version.map(Value::to_string).unwrap_or_default();
            return Err(fail(
                Some(1),
                format!(
                    "it is cassette format version {other}, but this snakepen reads version {VERSION}: \
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
                format!("{found}; a cassette of this snakepen says \"version\":{VERSION}"),
            ));
        }
    }
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
        interactions.push(recorded(line).map_err(|m| fail(Some(n), format!("line {n} {m}")))?);
        kept.push(text.to_string());
    }
    Ok(CassetteFile {
        path: path.to_path_buf(),
        options,
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
        elapsed: line
            .elapsed_ms
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| Duration::from_secs_f64(ms / 1e3)),
    })
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
        let mut text = header_line(&serde_json::json!({"ignore": ["ts"]}));
        for outcome in &outcomes {
            text.push_str(&interaction_line(&request, outcome, None));
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
}
