//! The frames on a worker's socket (see `host/python/snakepen_worker.py`):
//! `u32` header length, `u32` body length (both big-endian), a JSON header
//! and the body bytes. Payloads travel as the body, so the host never
//! parses or re-encodes them.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The worker closed its end (it exited, or is exiting).
    Closed,
    /// The worker sent something that is not a frame of this protocol.
    Invalid(String),
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => FrameError::Closed,
            _ => FrameError::Invalid(e.to_string()),
        }
    }
}

/// A request frame: the header, then the payload as the body. A streamed
/// request (`credit`) may be answered in chunks, that many before the
/// host gives more credit.
pub(crate) fn encode_request(
    id: u64,
    command: &str,
    payload: &[u8],
    credit: Option<u32>,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Header<'a> {
        id: u64,
        command: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        stream: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        credit: Option<u32>,
    }
    let header = Header {
        id,
        command,
        stream: credit.is_some(),
        credit,
    };
    frame(
        &serde_json::to_vec(&header).expect("the header serializes"),
        payload,
    )
}

/// A credit frame: streamed request `id` may send `n` chunks more.
pub(crate) fn encode_credit(id: u64, n: u32) -> Vec<u8> {
    frame(format!("{{\"id\":{id},\"credit\":{n}}}").as_bytes(), b"")
}

/// A frame of `header` (JSON text) and `body`.
pub(crate) fn frame(header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + header.len() + body.len());
    frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(header);
    frame.extend_from_slice(body);
    frame
}

/// A frame as read: its header (JSON text) and its body.
pub(crate) type Frame = (Vec<u8>, Vec<u8>);

/// A cancel frame: the worker is asked to stop request `id`.
pub(crate) fn encode_cancel(id: u64) -> Vec<u8> {
    frame(format!("{{\"cancel\":{id}}}").as_bytes(), b"")
}

/// The frames a worker sends, as they arrive: a read that is cancelled
/// loses nothing, since what was read stays here.
pub(crate) struct Frames {
    buf: Vec<u8>,
    max_bytes: usize,
}

impl Frames {
    pub(crate) fn new(max_bytes: usize) -> Frames {
        Frames {
            buf: Vec::with_capacity(64 << 10),
            max_bytes,
        }
    }

    /// The next frame: one already here, or one read from `reader`.
    /// Cancel-safe.
    pub(crate) async fn next<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<Frame, FrameError> {
        loop {
            if let Some(frame) = self.take()? {
                return Ok(frame);
            }
            if reader.read_buf(&mut self.buf).await? == 0 {
                return Err(FrameError::Closed);
            }
        }
    }

    /// The first whole frame in the buffer, if one has arrived; makes room
    /// for the rest of a frame that has not.
    fn take(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < 8 {
            self.buf.reserve(64 << 10);
            return Ok(None);
        }
        let header_len = u32::from_be_bytes(self.buf[..4].try_into().unwrap()) as usize;
        let body_len = u32::from_be_bytes(self.buf[4..8].try_into().unwrap()) as usize;
        if header_len.saturating_add(body_len) > self.max_bytes {
            return Err(FrameError::Invalid(format!(
                "the worker sent a frame of {} bytes, over the limit of {} (max_frame_bytes)",
                header_len + body_len,
                self.max_bytes
            )));
        }
        let end = 8 + header_len + body_len;
        if self.buf.len() < end {
            self.buf.reserve(end - self.buf.len());
            return Ok(None);
        }
        let header = self.buf[8..8 + header_len].to_vec();
        let body = self.buf[8 + header_len..end].to_vec();
        self.buf.drain(..end);
        Ok(Some((header, body)))
    }
}

/// Reads one frame, refusing one larger than `max_bytes` before reading it.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<(Vec<u8>, Vec<u8>), FrameError> {
    let mut lengths = [0u8; 8];
    reader.read_exact(&mut lengths).await?;
    let header_len = u32::from_be_bytes(lengths[..4].try_into().unwrap()) as usize;
    let body_len = u32::from_be_bytes(lengths[4..].try_into().unwrap()) as usize;
    if header_len.saturating_add(body_len) > max_bytes {
        return Err(FrameError::Invalid(format!(
            "the worker sent a frame of {} bytes, over the limit of {max_bytes} (max_frame_bytes)",
            header_len + body_len
        )));
    }
    let mut header = vec![0; header_len];
    reader.read_exact(&mut header).await?;
    let mut body = vec![0; body_len];
    reader.read_exact(&mut body).await?;
    Ok((header, body))
}

/// A worker's message after its handshake, from its frame: a reply, a
/// chunk or a notice. `Err`: the header is not the protocol's.
pub(crate) fn incoming(
    header: &[u8],
    body: Vec<u8>,
    pid: Option<u32>,
) -> Result<crate::pool::transport::Incoming, String> {
    use crate::pool::transport::Incoming;
    use crate::{CallError, Response};
    let header: ReplyHeader = serde_json::from_slice(header)
        .map_err(|e| format!("its reply header is not valid: {e}"))?;
    if header.kind.as_deref() == Some("uncancellable") {
        return Ok(Incoming::Uncancellable { id: header.id });
    }
    if header.chunk {
        return Ok(Incoming::Chunk {
            id: header.id,
            chunk: body,
        });
    }
    let outcome = match (header.ok, header.error) {
        (true, _) => Ok(Response {
            payload: body,
            worker_pid: pid,
        }),
        (false, Some(error)) => Err(error.into_call_error()),
        (false, None) => Err(CallError::AdapterFault(format!(
            "worker {} reported a failure without saying what it was",
            pid.map_or("?".to_string(), |p| p.to_string())
        ))),
    };
    Ok(Incoming::Reply {
        id: header.id,
        outcome,
    })
}

/// Splits one whole frame (its 8-byte lengths included) into its header
/// and body. `None`: it is not one whole frame.
pub(crate) fn split(frame: &[u8]) -> Option<(&[u8], &[u8])> {
    let lengths = frame.get(..8)?;
    let header_len = u32::from_be_bytes(lengths[..4].try_into().ok()?) as usize;
    let body_len = u32::from_be_bytes(lengths[4..].try_into().ok()?) as usize;
    if frame.len() != 8usize.checked_add(header_len)?.checked_add(body_len)? {
        return None;
    }
    Some((&frame[8..8 + header_len], &frame[8 + header_len..]))
}

/// The worker's first frame.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Handshake {
    Ready(Hello),
    Failed { error: ErrorBody },
}

/// What a worker says about itself once its module is imported (it sends
/// more, such as its functions, which `info` returns to anyone who asks).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Hello {
    /// The Python version, such as `3.11.7`.
    pub python: String,
    /// The module's name.
    pub module: String,
    /// Module functions hidden by the built-ins `ping` and `info`.
    #[serde(default)]
    pub shadowed: Vec<String>,
    /// Each of the module's commands (without the built-ins) described:
    /// parameters, docstring, payload schema.
    #[serde(default)]
    pub handlers: Vec<crate::pool::Handler>,
}

/// The header of a worker's message: a reply (`ok`, and `error` when it
/// is not), or a notice (`kind`: `uncancellable`, for a request asked to
/// stop that cannot).
#[derive(Debug, Deserialize)]
pub(crate) struct ReplyHeader {
    pub id: u64,
    #[serde(default)]
    pub ok: bool,
    #[serde(default)]
    pub error: Option<ErrorBody>,
    #[serde(default)]
    pub kind: Option<String>,
    /// A chunk of a streamed answer, not its end.
    #[serde(default)]
    pub chunk: bool,
}

/// An error as the worker reports it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ErrorBody {
    pub kind: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub type_name: Option<String>,
    #[serde(default)]
    pub traceback: Option<String>,
}

impl ErrorBody {
    pub(crate) fn into_call_error(self) -> crate::CallError {
        use crate::CallError;
        match self.kind.as_str() {
            "python-exception" => CallError::PythonException {
                type_name: self.type_name.unwrap_or_else(|| "Exception".into()),
                message: self.message,
                traceback: self.traceback.unwrap_or_default(),
            },
            "bad-request" => CallError::BadRequest(self.message),
            "timeout" => CallError::Timeout(self.message),
            "no-such-command" => CallError::NoSuchCommand(self.message),
            other => CallError::AdapterFault(format!(
                "the worker answered with an error of unknown kind `{other}`: {}",
                self.message
            )),
        }
    }
}
