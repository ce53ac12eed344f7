//! What a caller hands the host and what it gets back.

use std::time::Duration;

/// One call into the adapter: a command, an optional session, an optional
/// deadline and an opaque payload (JSON by convention). Made with
/// [`Request::new`] or [`Request::json`] (it may gain fields).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Request {
    /// The function to run, such as `predict`.
    pub command: String,
    /// Calls of one session prefer (or require) one worker.
    pub session: Option<String>,
    /// How long the caller is willing to wait; `None` takes the host's `call_timeout`.
    pub deadline: Option<Duration>,
    /// The arguments, as bytes; the host never parses them.
    pub payload: Vec<u8>,
}

impl Request {
    /// A request for `command` with `payload` as its bytes.
    pub fn new(command: impl Into<String>, payload: impl Into<Vec<u8>>) -> Request {
        Request {
            command: command.into(),
            session: None,
            deadline: None,
            payload: payload.into(),
        }
    }

    /// A request whose payload is `value` serialized as JSON.
    pub fn json(command: impl Into<String>, value: &serde_json::Value) -> Request {
        Request::new(
            command,
            serde_json::to_vec(value).expect("a JSON value always serializes"),
        )
    }

    /// Sets the session this call belongs to.
    pub fn session(mut self, session: impl Into<String>) -> Request {
        self.session = Some(session.into());
        self
    }

    /// Sets how long the caller will wait for this call.
    pub fn deadline(mut self, deadline: Duration) -> Request {
        self.deadline = Some(deadline);
        self
    }
}

/// A successful answer. Made with [`Response::new`] (it may gain fields).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The result, as bytes (JSON by convention).
    pub payload: Vec<u8>,
    /// The Python worker that served the call, when one did.
    pub worker_pid: Option<u32>,
}

impl Response {
    /// An answer of `payload`, served by no Python worker.
    pub fn new(payload: impl Into<Vec<u8>>) -> Response {
        Response {
            payload: payload.into(),
            worker_pid: None,
        }
    }

    /// Sets the Python worker that served the call.
    pub fn worker_pid(mut self, pid: u32) -> Response {
        self.worker_pid = Some(pid);
        self
    }

    /// The payload parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}
