//! The HTTP API's bodies, and how a call's outcome becomes a status code.
//!
//! | outcome | status |
//! |---|---|
//! | an answer | 200 |
//! | `bad-request`, a body that is not the JSON asked for | 400 |
//! | `no-such-command`, `cassette-miss` | 404 |
//! | `session-worker-gone` | 409 (the session's state is lost: rebuild it) |
//! | a body slower than the body timeout | 408 |
//! | a body over the size limit, declared or sent | 413 |
//! | no token, or a wrong one (`unauthorized`) | 401 with `WWW-Authenticate: Bearer` |
//! | a `Host` or an `Origin` not allowed (`forbidden`) | 403 |
//! | a wrong method | 405 with `Allow` |
//! | a POST body that is not `application/json` (`unsupported-media-type`) | 415 |
//! | more connections than `max_connections` | 503, and the connection closes |
//! | `python-exception`, `adapter-fault` | 500 (the service's code failed; retrying the same request will not help) |
//! | `worker-crashed` | 502 (its worker died; safe to retry an idempotent call) |
//! | `pool-exhausted`, `unavailable`, the server draining | 503 with `Retry-After` |
//! | `timeout` | 504 |

use crate::{CallError, Request, Response};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::time::Duration;

/// `POST /v1/call`, and one element of a batch.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallBody {
    /// The handler to run (`ping` and `info` are built in).
    pub command: String,
    /// Its arguments: an object is keyword arguments, an array positional
    /// ones, another value the one argument; none, no arguments.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Box<RawValue>>,
    /// Calls of one session go to one worker (its state stays there).
    #[serde(default)]
    pub session: Option<String>,
    /// Give up after this many milliseconds (the server's default otherwise).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub deadline_ms: Option<u64>,
    /// The pool to run it on (default: the server's default pool).
    #[serde(default)]
    pub pool: Option<String>,
}

impl CallBody {
    pub(crate) fn into_request(self) -> Request {
        let payload = self
            .payload
            .map(|raw| raw.get().as_bytes().to_vec())
            .unwrap_or_default();
        let mut request = Request::new(self.command, payload);
        request.session = self.session;
        request.deadline = self.deadline_ms.map(Duration::from_millis);
        request
    }
}

/// `POST /v1/batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchBody {
    pub requests: Vec<CallBody>,
    #[serde(default)]
    pub order: Order,
}

/// How a batch is answered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Order {
    /// One JSON document once every call finished, results in request order.
    #[default]
    Request,
    /// JSON Lines, one per call as it finishes, each with its `index`.
    Completion,
}

/// An error of the API itself, or of a call, as JSON with a fitting status.
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

impl ApiError {
    /// An error the API raises itself, with the contract's `kind`.
    pub(crate) fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: serde_json::json!({"error": {"kind": kind, "message": message.into()}}),
        }
    }

    pub(crate) fn bad_body(what: &str, e: &serde_json::Error) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!(
                "the body is not {what}: {e}. Send JSON such as {{\"command\": \"ping\", \"payload\": {{}}}}"
            ),
        )
    }

    pub(crate) fn body_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad-request",
            format!(
                "the body is over the server's limit of {limit} bytes; send less, or raise server.max_body_bytes"
            ),
        )
    }

    /// The error of request `index` of a batch: its message says which.
    pub(crate) fn in_request(mut self, index: usize) -> ApiError {
        if let Some(message) = self.body["error"]["message"].as_str() {
            self.body["error"]["message"] =
                format!("request {index} of the batch: {message}").into();
        }
        self
    }

    pub(crate) fn draining() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the server is shutting down and takes no new calls; send it to another instance",
        )
    }
}

/// A call's error as its caller gets it: the error, or, when the server
/// hides internals, a version without them and the id of the log line
/// that has them all.
#[derive(Debug)]
pub(crate) struct CallFailure {
    pub error: CallError,
    pub request_id: Option<String>,
}

impl From<&CallFailure> for ApiError {
    fn from(failure: &CallFailure) -> ApiError {
        ApiError {
            status: status_of(&failure.error),
            body: serde_json::json!({ "error": failure_json(failure) }),
        }
    }
}

/// What is left of `error` for a caller who must not see the service's
/// internals: the kind, the fields a caller acts on (a timeout, the pool's
/// counts, a bad request's reason, an exception's type and message), and
/// no traceback, stderr, exit status, path or list of functions.
pub(crate) fn without_internals(error: &CallError, command: &str) -> CallError {
    const SEE_LOG: &str = "(hidden by the server; its log has it under the request id)";
    match error {
        CallError::Timeout(_) | CallError::PoolExhausted { .. } | CallError::BadRequest(_) => {
            error.clone()
        }
        CallError::WorkerCrashed { pid, .. } => CallError::WorkerCrashed {
            pid: *pid,
            exit_status: SEE_LOG.into(),
            stderr_tail: String::new(),
        },
        CallError::PythonException {
            type_name, message, ..
        } => CallError::PythonException {
            type_name: type_name.clone(),
            message: message.clone(),
            traceback: SEE_LOG.into(),
        },
        CallError::NoSuchCommand(_) => {
            CallError::NoSuchCommand(format!("{} {SEE_LOG}", crate::error::quoted(command)))
        }
        CallError::SessionWorkerGone(_) => CallError::SessionWorkerGone(format!(
            "the session's worker is gone; start the session again {SEE_LOG}"
        )),
        CallError::Unavailable(_) => {
            CallError::Unavailable(format!("the service cannot serve this now {SEE_LOG}"))
        }
        CallError::AdapterFault(_) => {
            CallError::AdapterFault(format!("the service failed {SEE_LOG}"))
        }
        CallError::CassetteMiss(miss) => CallError::CassetteMiss(Box::new(crate::CassetteMiss {
            cassette: String::new(),
            mode: miss.mode.clone(),
            request: String::new(),
            used_up: miss.used_up,
            closest: None,
            differences: Vec::new(),
            hint: SEE_LOG.into(),
        })),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The status code a call's error maps to (see the module's table).
pub(crate) fn status_of(error: &CallError) -> StatusCode {
    match error {
        CallError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        CallError::PoolExhausted { .. } | CallError::Unavailable(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        CallError::WorkerCrashed { .. } => StatusCode::BAD_GATEWAY,
        CallError::PythonException { .. } | CallError::AdapterFault(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        CallError::BadRequest(_) => StatusCode::BAD_REQUEST,
        CallError::NoSuchCommand(_) | CallError::CassetteMiss(_) => StatusCode::NOT_FOUND,
        CallError::SessionWorkerGone(_) => StatusCode::CONFLICT,
    }
}

/// [`error_json`], with the request id when there is one.
pub(crate) fn failure_json(failure: &CallFailure) -> serde_json::Value {
    let mut value = error_json(&failure.error);
    if let (Some(object), Some(id)) = (value.as_object_mut(), &failure.request_id) {
        object.insert("request_id".into(), id.clone().into());
    }
    value
}

/// `{"kind": …, "message": …, "detail": …}`: the contract's case, a
/// sentence, and the case's fields.
pub(crate) fn error_json(error: &CallError) -> serde_json::Value {
    let mut value =
        serde_json::to_value(error).unwrap_or_else(|_| serde_json::json!({ "kind": error.kind() }));
    if let Some(object) = value.as_object_mut() {
        object.insert("message".into(), error.to_string().into());
    }
    value
}

/// One call's result as the API writes it: `{"payload": …, "worker_pid": …}`
/// for an answer (a payload that is not JSON comes as `payload_base64`,
/// and an empty one not at all), `{"error": …}` for an error. In a batch
/// each also has its `status` and, answered by completion, its `index`.
#[derive(Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Outcome<'a> {
    /// In a batch answered by completion: the request's place in the batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// In a batch: the status the call alone would have had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The answer, when it is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<&'a RawValue>,
    /// The answer, base64, when it is not JSON (a handler that returned bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// The pid of the worker that served it, on this machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_pid: Option<u32>,
    /// The call's error, when it failed (in a batch or a stream's `error` event).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ErrorObject>)]
    pub error: Option<serde_json::Value>,
}

impl<'a> Outcome<'a> {
    /// The outcome of one call (the payload is borrowed, not parsed again).
    pub(crate) fn of(result: &'a Result<Response, CallFailure>) -> Outcome<'a> {
        let mut outcome = Outcome::default();
        match result {
            Ok(response) => {
                outcome.worker_pid = response.worker_pid;
                if !response.payload.is_empty() {
                    match serde_json::from_slice::<&RawValue>(&response.payload) {
                        Ok(raw) => outcome.payload = Some(raw),
                        Err(_) => {
                            use base64::Engine;
                            let engine = base64::engine::general_purpose::STANDARD;
                            outcome.payload_base64 = Some(engine.encode(&response.payload));
                        }
                    }
                }
            }
            Err(failure) => outcome.error = Some(failure_json(failure)),
        }
        outcome
    }

    /// Serialized, with a newline when `line` (JSON Lines).
    pub(crate) fn to_bytes(&self, line: bool) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).expect("an outcome serializes");
        if line {
            bytes.push(b'\n');
        }
        bytes
    }
}

// What the OpenAPI document (`openapi`) describes besides the bodies
// above: types that are never built, only shown.

/// An error answer: `{"error": {...}}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorAnswer {
    pub error: ErrorObject,
}

/// What went wrong: the contract's kind, a sentence that says what to do,
/// the case's fields, and (when the server hides internals) the id of the
/// log line that has them.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorObject {
    pub kind: ErrorKind,
    pub message: String,
    /// The case's fields: `type_name`, `message` and `traceback` of a
    /// `python-exception`; `busy`, `starting`, `dead` and `waited_ms` of
    /// `pool-exhausted`; `pid`, `exit_status` and `stderr_tail` of
    /// `worker-crashed`; a sentence for most others.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    pub request_id: Option<String>,
}

/// Every kind of error, with the status it comes with. (Never built: the
/// server writes kinds as text; a test checks this list against them.)
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ErrorKind {
    /// 400 (408 for a body too slow, 413 for one too large): the request cannot be served as it stands.
    BadRequest,
    /// 401: no bearer token, or a wrong one.
    Unauthorized,
    /// 403: a `Host` or `Origin` the server does not allow.
    Forbidden,
    /// 404: no handler of that name.
    NoSuchCommand,
    /// 404: no pool of that name.
    NoSuchPool,
    /// 404: a replaying server's cassette has no answer for the request.
    CassetteMiss,
    /// 409: the session's worker is gone, and its state with it.
    SessionWorkerGone,
    /// 415: a POST body that is not `application/json`.
    UnsupportedMediaType,
    /// 500: the handler raised.
    PythonException,
    /// 500: the adapter failed.
    AdapterFault,
    /// 502: the worker serving the call died; safe to retry an idempotent call.
    WorkerCrashed,
    /// 503 (with `Retry-After`): no worker free in time.
    PoolExhausted,
    /// 503 (with `Retry-After`): the server cannot serve this now (draining, a missing capability).
    Unavailable,
    /// 504: the call's deadline passed.
    Timeout,
}

/// The answers a call can get besides its own.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description of responses, never built
pub(crate) enum CallErrors {
    /// The request cannot be served as it stands (`bad-request`).
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorAnswer),
    /// No bearer token, or a wrong one.
    #[response(status = 401)]
    Unauthorized(#[to_schema] ErrorAnswer),
    /// No such command or pool, or a cassette miss.
    #[response(status = 404)]
    NotFound(#[to_schema] ErrorAnswer),
    /// The body did not arrive within the body timeout.
    #[response(status = 408)]
    BodyTimeout(#[to_schema] ErrorAnswer),
    /// The session's worker is gone.
    #[response(status = 409)]
    SessionWorkerGone(#[to_schema] ErrorAnswer),
    /// The body is over the size limit.
    #[response(status = 413)]
    TooLarge(#[to_schema] ErrorAnswer),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(#[to_schema] ErrorAnswer),
    /// The handler raised (`python-exception`) or the adapter failed.
    #[response(status = 500)]
    Failed(#[to_schema] ErrorAnswer),
    /// The worker died serving the call.
    #[response(status = 502)]
    WorkerCrashed(#[to_schema] ErrorAnswer),
    /// No worker free in time, or the server is draining.
    #[response(status = 503)]
    Unavailable(#[to_schema] ErrorAnswer),
    /// The call's deadline passed.
    #[response(status = 504)]
    Timeout(#[to_schema] ErrorAnswer),
}

/// `{"results": [...]}`: a batch's outcomes in request order.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct BatchAnswer<'a> {
    pub results: Vec<Outcome<'a>>,
}

/// `GET /v1/functions`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct FunctionsAnswer {
    /// The pool they are of.
    pub pool: String,
    pub functions: Vec<crate::Handler>,
}
