//! The host side of the `snakepen:adapter` contract, generated from `wit/`.
//! Nothing else in the crate is generated.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit/adapter.wit",
    imports: {
        // Both may wait: they run as futures so a waiting adapter never blocks the executor.
        "snakepen:adapter/timers.sleep": async,
        "snakepen:adapter/workers.call": async,
        "snakepen:adapter/next.call": async,
        "snakepen:adapter/next.call-streamed": async,
        "snakepen:adapter/streams.start": async,
        "snakepen:adapter/streams.next": async,
        "snakepen:adapter/streams.emit": async,
    },
    exports: { default: async },
});

pub use snakepen::adapter::types as wit;

use crate::{CallError, Request, Response};
use std::time::Duration;

impl From<&Request> for wit::Request {
    fn from(r: &Request) -> Self {
        wit::Request {
            command: r.command.clone(),
            session: r.session.clone(),
            deadline_ms: r
                .deadline
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            payload: r.payload.clone(),
        }
    }
}

impl From<wit::Request> for Request {
    fn from(r: wit::Request) -> Self {
        Request {
            command: r.command,
            session: r.session,
            deadline: r.deadline_ms.map(Duration::from_millis),
            payload: r.payload,
        }
    }
}

impl From<wit::Response> for Response {
    fn from(r: wit::Response) -> Self {
        Response {
            payload: r.payload,
            worker_pid: r.worker_pid,
        }
    }
}

impl From<Response> for wit::Response {
    fn from(r: Response) -> Self {
        wit::Response {
            payload: r.payload,
            worker_pid: r.worker_pid,
        }
    }
}

impl From<wit::CallError> for CallError {
    fn from(e: wit::CallError) -> Self {
        use wit::CallError as W;
        match e {
            W::Timeout(m) => CallError::Timeout(m),
            W::PoolExhausted(p) => CallError::PoolExhausted {
                busy: p.busy,
                starting: p.starting,
                dead: p.dead,
                waited_ms: p.waited_ms,
            },
            W::WorkerCrashed(w) => CallError::WorkerCrashed {
                pid: w.pid,
                exit_status: w.exit_status,
                stderr_tail: w.stderr_tail,
            },
            W::PythonException(p) => CallError::PythonException {
                type_name: p.type_name,
                message: p.message,
                traceback: p.traceback,
            },
            W::BadRequest(m) => CallError::BadRequest(m),
            W::NoSuchCommand(m) => CallError::NoSuchCommand(m),
            W::SessionWorkerGone(m) => CallError::SessionWorkerGone(m),
            W::Unavailable(m) => CallError::Unavailable(m),
            W::AdapterFault(m) => CallError::AdapterFault(m),
            W::CassetteMiss(m) => CallError::CassetteMiss(Box::new(crate::CassetteMiss {
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

impl From<CallError> for wit::CallError {
    fn from(e: CallError) -> Self {
        use wit::CallError as W;
        match e {
            CallError::Timeout(m) => W::Timeout(m),
            CallError::PoolExhausted {
                busy,
                starting,
                dead,
                waited_ms,
            } => W::PoolExhausted(wit::PoolExhausted {
                busy,
                starting,
                dead,
                waited_ms,
            }),
            CallError::WorkerCrashed {
                pid,
                exit_status,
                stderr_tail,
            } => W::WorkerCrashed(wit::WorkerCrashed {
                pid,
                exit_status,
                stderr_tail,
            }),
            CallError::PythonException {
                type_name,
                message,
                traceback,
            } => W::PythonException(wit::PythonException {
                type_name,
                message,
                traceback,
            }),
            CallError::BadRequest(m) => W::BadRequest(m),
            CallError::NoSuchCommand(m) => W::NoSuchCommand(m),
            CallError::SessionWorkerGone(m) => W::SessionWorkerGone(m),
            CallError::Unavailable(m) => W::Unavailable(m),
            CallError::AdapterFault(m) => W::AdapterFault(m),
            CallError::CassetteMiss(m) => W::CassetteMiss(wit::CassetteMiss {
                cassette: m.cassette,
                mode: m.mode,
                request: m.request,
                used_up: m.used_up,
                closest: m.closest,
                differences: m.differences,
                hint: m.hint,
            }),
        }
    }
}
