//! How a cassette file writes a failed call: `{"kind": "python-exception",
//! "detail": {…}}`. The format is the file's, and stays readable by every
//! snakepen of format version 1 whatever [`CallError`] becomes; the two are
//! converted into each other case by case.

use crate::{CallError, CassetteMiss};
use serde::{Deserialize, Serialize};

/// A failed call as a cassette line keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub(crate) enum RecordedError {
    Timeout(String),
    PoolExhausted {
        busy: u32,
        starting: u32,
        dead: u32,
        waited_ms: u64,
    },
    WorkerCrashed {
        pid: u32,
        exit_status: String,
        stderr_tail: String,
    },
    PythonException {
        type_name: String,
        message: String,
        traceback: String,
    },
    BadRequest(String),
    NoSuchCommand(String),
    SessionWorkerGone(String),
    Unavailable(String),
    AdapterFault(String),
    CassetteMiss(RecordedMiss),
}

/// A cassette miss as a cassette line keeps it (a replayer's miss recorded
/// by a recorder in front of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecordedMiss {
    cassette: String,
    mode: String,
    request: String,
    used_up: u32,
    closest: Option<String>,
    differences: Vec<String>,
    hint: String,
}

impl From<&CallError> for RecordedError {
    fn from(error: &CallError) -> Self {
        match error.clone() {
            CallError::Timeout(m) => RecordedError::Timeout(m),
            CallError::PoolExhausted {
                busy,
                starting,
                dead,
                waited_ms,
            } => RecordedError::PoolExhausted {
                busy,
                starting,
                dead,
                waited_ms,
            },
            CallError::WorkerCrashed {
                pid,
                exit_status,
                stderr_tail,
            } => RecordedError::WorkerCrashed {
                pid,
                exit_status,
                stderr_tail,
            },
            CallError::PythonException {
                type_name,
                message,
                traceback,
            } => RecordedError::PythonException {
                type_name,
                message,
                traceback,
            },
            CallError::BadRequest(m) => RecordedError::BadRequest(m),
            CallError::NoSuchCommand(m) => RecordedError::NoSuchCommand(m),
            CallError::SessionWorkerGone(m) => RecordedError::SessionWorkerGone(m),
            CallError::Unavailable(m) => RecordedError::Unavailable(m),
            CallError::AdapterFault(m) => RecordedError::AdapterFault(m),
            CallError::CassetteMiss(m) => {
                let CassetteMiss {
                    cassette,
                    mode,
                    request,
                    used_up,
                    closest,
                    differences,
                    hint,
                } = *m;
                RecordedError::CassetteMiss(RecordedMiss {
                    cassette,
                    mode,
                    request,
                    used_up,
                    closest,
                    differences,
                    hint,
                })
            }
        }
    }
}

impl From<RecordedError> for CallError {
    fn from(error: RecordedError) -> Self {
        match error {
            RecordedError::Timeout(m) => CallError::Timeout(m),
            RecordedError::PoolExhausted {
                busy,
                starting,
                dead,
                waited_ms,
            } => CallError::PoolExhausted {
                busy,
                starting,
                dead,
                waited_ms,
            },
            RecordedError::WorkerCrashed {
                pid,
                exit_status,
                stderr_tail,
            } => CallError::WorkerCrashed {
                pid,
                exit_status,
                stderr_tail,
            },
            RecordedError::PythonException {
                type_name,
                message,
                traceback,
            } => CallError::PythonException {
                type_name,
                message,
                traceback,
            },
            RecordedError::BadRequest(m) => CallError::BadRequest(m),
            RecordedError::NoSuchCommand(m) => CallError::NoSuchCommand(m),
            RecordedError::SessionWorkerGone(m) => CallError::SessionWorkerGone(m),
            RecordedError::Unavailable(m) => CallError::Unavailable(m),
            RecordedError::AdapterFault(m) => CallError::AdapterFault(m),
            RecordedError::CassetteMiss(m) => CallError::CassetteMiss(Box::new(CassetteMiss {
                cassette: m.cassette,
                mode: m.mode,
                request: m.request,
                used_up: m.used_up,
                closest: m.closest,
                differences: m.differences,
                hint: m.hint,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of every case, as format version 1 writes it.
    #[test]
    fn every_case_is_written_as_format_version_1_has_it() {
        let cases = [
            (
                CallError::Timeout("slow".into()),
                r#"{"kind":"timeout","detail":"slow"}"#,
            ),
            (
                CallError::PoolExhausted {
                    busy: 1,
                    starting: 2,
                    dead: 3,
                    waited_ms: 4,
                },
                r#"{"kind":"pool-exhausted","detail":{"busy":1,"starting":2,"dead":3,"waited_ms":4}}"#,
            ),
            (
                CallError::WorkerCrashed {
                    pid: 7,
                    exit_status: "signal 9".into(),
                    stderr_tail: "x".into(),
                },
                r#"{"kind":"worker-crashed","detail":{"pid":7,"exit_status":"signal 9","stderr_tail":"x"}}"#,
            ),
            (
                CallError::PythonException {
                    type_name: "E".into(),
                    message: "m".into(),
                    traceback: "t".into(),
                },
                r#"{"kind":"python-exception","detail":{"type_name":"E","message":"m","traceback":"t"}}"#,
            ),
            (
                CallError::BadRequest("b".into()),
                r#"{"kind":"bad-request","detail":"b"}"#,
            ),
            (
                CallError::NoSuchCommand("n".into()),
                r#"{"kind":"no-such-command","detail":"n"}"#,
            ),
            (
                CallError::SessionWorkerGone("s".into()),
                r#"{"kind":"session-worker-gone","detail":"s"}"#,
            ),
            (
                CallError::Unavailable("u".into()),
                r#"{"kind":"unavailable","detail":"u"}"#,
            ),
            (
                CallError::AdapterFault("a".into()),
                r#"{"kind":"adapter-fault","detail":"a"}"#,
            ),
            (
                CallError::CassetteMiss(Box::new(CassetteMiss {
                    cassette: "c".into(),
                    mode: "none".into(),
                    request: "r".into(),
                    used_up: 0,
                    closest: None,
                    differences: vec!["d".into()],
                    hint: "h".into(),
                })),
                r#"{"kind":"cassette-miss","detail":{"cassette":"c","mode":"none","request":"r","used_up":0,"closest":null,"differences":["d"],"hint":"h"}}"#,
            ),
        ];
        for (error, text) in cases {
            let written = serde_json::to_string(&RecordedError::from(&error)).unwrap();
            assert_eq!(written, text);
            let read: RecordedError = serde_json::from_str(text).unwrap();
            assert_eq!(CallError::from(read), error);
        }
    }
}
