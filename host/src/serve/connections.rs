//! Accepting connections and holding each to its limits, with hyper
//! directly (`axum::serve` has none of these knobs):
//!
//! - at most `max_connections` at once: one more is answered 503 and
//!   closed (a client learns at once to retry; a queue would leave it
//!   hanging behind whoever holds the connections);
//! - a request's headers must arrive within `header_timeout` of their
//!   first byte (slowloris);
//! - a connection with no request in flight is closed after
//!   `idle_timeout` without a byte (an idle keep-alive, or one that never
//!   sends anything).
//!
//! hyper's own `header_read_timeout` (1.12, `proto/h1/conn.rs`) starts
//! whenever the connection is ready to read a request head, which is again
//! right after a kept-alive response: it also times the wait for the next
//! request, so it cannot tell idle from slow (and is left unset here);
//! both timeouts are kept here instead, by a watchdog per connection that
//! sees the bytes read (through [`Watched`]) and the requests in flight
//! (a request is in flight until its response body is dropped).
//!
//! Out of file descriptors, `accept` fails: the connections already open
//! are served on, the condition is logged once, and accepting resumes when
//! descriptors are free again (logged once too).

use super::api::ApiError;
use axum::body::Body;
use axum::http::StatusCode;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The connection limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Accepts on `listener` and serves each request with `dispatch` until `stop` resolves; then
/// stops accepting, lets each connection finish its request in flight
/// (an idle one closes at once) and returns once all are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    dispatch: super::Dispatch,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut stop = pin!(stop);
    let mut out_of_descriptors = false;
    let mut at_limit = false;
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                if out_of_descriptors {
                    tracing::warn!("file descriptors are free again: accepting connections again");
                    out_of_descriptors = false;
                }
                match Arc::clone(&permits).try_acquire_owned() {
                    Ok(permit) => {
                        if at_limit {
                            tracing::warn!(
                                "under server.max_connections again: serving new connections"
                            );
                            at_limit = false;
                        }
                        let (dispatch, closed) = (dispatch.clone(), closed.clone());
                        connections.spawn(connection(stream, dispatch, limits, closed, permit));
                    }
                    Err(_) => {
                        if !at_limit {
                            tracing::warn!(
                                max_connections = limits.max_connections,
                                "every connection allowed is open: new ones get 503 until some close (raise server.max_connections if this is expected load)"
                            );
                            at_limit = true;
                        }
                        connections.spawn(refuse(stream, limits.max_connections));
                    }
                }
            }
            Err(e) if is_out_of_descriptors(&e) => {
                if !out_of_descriptors {
                    tracing::warn!(
                        "out of file descriptors, cannot accept connections ({e}): serving the open ones; new ones wait in the listen queue until some close (raise the limit with `ulimit -n`, or lower server.max_connections)"
                    );
                    out_of_descriptors = true;
                }
                // No event says that a descriptor was freed: try again shortly.
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
            // A connection that went away before it was accepted, and the like: it alone failed.
            Err(e) => tracing::debug!("accepting a connection failed: {e}"),
        }
    }
    drop(listener);
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Answers a connection over the limit with 503 and closes it.
async fn refuse(mut stream: TcpStream, max_connections: usize) {
    let body = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!(
            "the server has {max_connections} connections open, its limit (server.max_connections); retry shortly"
        ),
    )
    .body
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent: closing with unread data would reset
        // the connection, and the client might lose the answer.
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// Serves one connection until it ends, times out, or the server closes.
async fn connection(
    stream: TcpStream,
    dispatch: super::Dispatch,
    limits: Limits,
    mut closing: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let requests = Arc::clone(&activity);
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let in_flight = InFlight::begin(&requests);
            let dispatch = dispatch.clone();
            async move {
                let response = dispatch.serve(request.map(Body::new)).await;
                // The request is in flight until its body is sent (or dropped).
                Ok::<_, std::convert::Infallible>(response.map(|body| Tracked {
                    body,
                    _in_flight: in_flight,
                }))
            }
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    let mut conn = pin!(conn);
    let mut watchdog = Watchdog::default();
    let mut draining = false;
    loop {
        tokio::select! {
            // The connection first: what it does while polled (bytes read,
            // a request begun or answered) is what the watchdog then sees.
            biased;
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("a connection ended: {e}");
                }
                return;
            }
            // Dropping the connection closes it.
            why = std::future::poll_fn(|cx| watchdog.poll(cx, &activity, &limits)) => {
                tracing::debug!("closing a connection: {why}");
                return;
            }
            _ = closing.wait_for(|closing| *closing), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Where a connection is: which timeout runs, or none while a request is in flight.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No request in flight and no byte of the next one, since then.
    Idle(Instant),
    /// The first bytes of a request came at this time; its headers are not all here.
    Head(Instant),
    /// This many requests in flight (more than one when pipelined).
    Busy(usize),
}

/// What the watchdog of one connection sees. Every change happens while
/// the connection's task polls it (bytes read, a request begun, a response
/// body dropped), and the watchdog is polled right after, in the same task:
/// it reads the phase then, and nothing needs to wake it.
struct Activity {
    phase: Mutex<Phase>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            phase: Mutex::new(Phase::Idle(Instant::now())),
        }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        *phase = f(*phase);
    }

    fn bytes_read(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
        }
    }
}

/// What closes a connection idle, or slow with its headers, for longer
/// than allowed: an alarm aimed at the deadline of the phase the
/// connection is in, looked at again whenever it goes off.
#[derive(Default)]
struct Watchdog {
    alarm: crate::alarm::Alarm,
}

impl Watchdog {
    /// Ready with why, once the connection's phase has lasted too long.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        activity: &Activity,
        limits: &Limits,
    ) -> Poll<&'static str> {
        loop {
            let (deadline, why) = match activity.phase() {
                Phase::Idle(since) => (
                    since + limits.idle_timeout,
                    "idle past server.idle_timeout_ms",
                ),
                Phase::Head(since) => (
                    since + limits.header_timeout,
                    "its request's headers took longer than server.header_timeout_ms",
                ),
                // A request in flight has no time limit here (an alarm that
                // goes off meanwhile is looked at when it is idle again).
                Phase::Busy(_) => return Poll::Pending,
            };
            self.alarm.aim(deadline);
            std::task::ready!(self.alarm.poll_ring(cx));
            if Instant::now() >= deadline {
                return Poll::Ready(why);
            }
        }
    }
}

/// A response's body, which holds its request in flight until it is sent
/// or dropped. It tells its size as the body does: hyper then writes a
/// `Content-Length`, not a chunked body.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// One request in flight on a connection, for as long as it lives.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> InFlight {
        activity.update(|phase| match phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
        InFlight(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|phase| match phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }
}

/// A stream that tells its connection's [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
