//! [`CallError`]: why one call failed, as the contract's error cases, and
//! the messages of a cassette miss.

/// A name from a request (a command, a session), quoted for a message and
/// cut to a readable length: a megabyte of name is not echoed back.
pub(crate) fn quoted(name: &str) -> String {
    const SHOWN: usize = 80;
    if name.len() <= SHOWN {
        return format!("`{name}`");
    }
    let mut end = SHOWN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("`{}...` ({} bytes)", &name[..end], name.len())
}

/// Why one call failed: the contract's error cases, as Rust values.
///
/// The HTTP API writes these as `{"kind": "python-exception", "detail": …}`
/// (a cassette has a format of its own, which reads the same today).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CallError {
    /// The call's deadline passed.
    #[error("timeout: {0}")]
    Timeout(String),
    /// No worker could be checked out in time.
    #[error(
        "pool exhausted: no worker free after {waited_ms} ms ({busy} busy, {starting} starting, {dead} dead). Raise pool_size or the call's deadline"
    )]
    PoolExhausted {
        busy: u32,
        starting: u32,
        dead: u32,
        waited_ms: u64,
    },
    /// The worker serving the call died.
    #[error(
        "worker {pid} crashed ({exit_status}) while serving the call; it is being replaced. Its last stderr lines:\n{stderr_tail}"
    )]
    WorkerCrashed {
        pid: u32,
        exit_status: String,
        stderr_tail: String,
    },
    /// The Python code raised.
    #[error("python raised {type_name}: {message}\n{traceback}")]
    PythonException {
        type_name: String,
        message: String,
        traceback: String,
    },
    /// The request cannot be served as it stands.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// No handler has this command name.
    #[error("no such command: {0}")]
    NoSuchCommand(String),
    /// The strict-mode session's worker is gone.
    #[error("session worker gone: {0}")]
    SessionWorkerGone(String),
    /// The host lacks what the adapter asked for.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The adapter failed: a bug, a trap, a broken invariant.
    #[error("adapter fault: {0}")]
    AdapterFault(String),
    /// A replaying adapter's cassette has no answer for the request.
    #[error("{0}")]
    CassetteMiss(Box<CassetteMiss>),
}

/// What a cassette miss reports: the request, the closest recording, how
/// they differ, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct CassetteMiss {
    /// The cassette's path.
    pub cassette: String,
    /// The record mode the host ran in.
    pub mode: String,
    /// The request as matched: command, session (when matched) and canonical payload.
    pub request: String,
    /// How many recordings of this request were all replayed already (0: none matched).
    pub used_up: u32,
    /// The closest recorded request of the same command, if any.
    pub closest: Option<String>,
    /// How the request differs from `closest`, field by field.
    pub differences: Vec<String>,
    /// What to do about it.
    pub hint: String,
}

impl std::fmt::Display for CassetteMiss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&display_miss(
            &self.cassette,
            &self.mode,
            &self.request,
            self.used_up,
            self.closest.as_deref(),
            &self.differences,
            &self.hint,
        ))
    }
}

fn display_miss(
    cassette: &str,
    mode: &str,
    request: &str,
    used_up: u32,
    closest: Option<&str>,
    differences: &[String],
    hint: &str,
) -> String {
    let mut text =
        format!("cassette miss: {cassette} (mode `{mode}`) has no answer for\n    {request}\n");
    if used_up > 0 {
        let times = if used_up == 1 { "once" } else { "times" };
        let count = if used_up == 1 {
            String::new()
        } else {
            format!("{used_up} ")
        };
        text.push_str(&format!(
            "  it was recorded {count}{times}, and every recording of it was already replayed\n"
        ));
    } else {
        match closest {
            Some(closest) => {
                text.push_str(&format!("  closest recorded request:\n    {closest}\n"));
                if !differences.is_empty() {
                    text.push_str("  differences (recorded -> now):\n");
                    for difference in differences {
                        text.push_str(&format!("    {difference}\n"));
                    }
                }
            }
            None => text.push_str("  nothing recorded in it has this command\n"),
        }
    }
    text.push_str(&format!("  to fix: {hint}"));
    text
}

impl CallError {
    /// The contract's name for this case, such as `pool-exhausted`.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Timeout(_) => "timeout",
            CallError::PoolExhausted { .. } => "pool-exhausted",
            CallError::WorkerCrashed { .. } => "worker-crashed",
            CallError::PythonException { .. } => "python-exception",
            CallError::BadRequest(_) => "bad-request",
            CallError::NoSuchCommand(_) => "no-such-command",
            CallError::SessionWorkerGone(_) => "session-worker-gone",
            CallError::Unavailable(_) => "unavailable",
            CallError::AdapterFault(_) => "adapter-fault",
            CallError::CassetteMiss(_) => "cassette-miss",
        }
    }
}
