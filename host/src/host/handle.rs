//! [`Host`], the handle a caller holds: one adapter with its configuration,
//! counters, pool and cassette, and everything a caller may ask of it.
//! Nothing in it is shared with other hosts except, if asked, the [`crate::Runtime`].
//!
//! Invariant: a `Host` exists only whole: its adapter accepted its
//! configuration and its pool (when it has one) was started before the
//! first handle was made, and nothing in it changes after.

use super::prepared::Prepared;
use crate::adapter::ComponentInfo;
use crate::cassette::{CassetteStore, Plan, RecordMode};
use crate::defaults::ADAPTER_SLACK;
use crate::imports::{Links, Next, NextCall};
use crate::limits::Limits;
use crate::{CallError, Error, Pool, PoolStatus, Request, Response};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A host: a loaded adapter, its configuration and its counters.
///
/// Clones share the same adapter and counters; separate hosts share nothing.
/// Its calls run in adapter instances of its own, configured once and kept
/// between calls, one call at a time each (wit/adapter.wit, `interface
/// adapter`, says what they may keep).
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

/// What a host is made of; the builder makes one whole.
pub(super) struct HostInner {
    pub(super) path: PathBuf,
    pub(super) info: ComponentInfo,
    pub(super) prepared: Prepared,
    pub(super) call_timeout: Duration,
    /// What the adapter may reach: counters, pool, cassette, next adapter.
    pub(super) links: Links,
    /// The same next adapter as `links.next`, as a host (for its pool).
    pub(super) next: Option<Host>,
    /// What the host does with its cassette, when it has one.
    pub(super) plan: Option<Plan>,
}

impl Host {
    pub(super) fn from_inner(inner: HostInner) -> Host {
        Host {
            inner: Arc::new(inner),
        }
    }

    /// Runs one request through the adapter.
    ///
    /// The call ends by its request's deadline (or the host's call timeout)
    /// with [`CallError::Timeout`], whatever the adapter does. Dropping the
    /// returned future at any point cancels the call and frees its instance.
    pub async fn call(&self, request: Request) -> Result<Response, CallError> {
        self.run(request, None).await
    }

    /// Runs one request through the adapter for a caller that reads a
    /// stream: the chunks the adapter emits (a streaming Python handler's
    /// values, through python-bridge) as they come, then the outcome. A
    /// [`futures_util::Stream`]; [`CallStream::next`] reads it without one.
    ///
    /// The adapter waits while the caller has not taken the last
    /// [`crate::pool::STREAM_WINDOW`] chunks, and so does the handler.
    /// Dropping the stream cancels the call: the handler's generator is
    /// closed on its worker, which serves on. An adapter that does not
    /// stream gives its one answer as the outcome.
    pub fn call_stream(&self, request: Request) -> CallStream {
        let (emit, chunks) = tokio::sync::mpsc::channel(crate::pool::STREAM_WINDOW as usize);
        let host = self.clone();
        let outcome = tokio::spawn(async move { host.run(request, Some(emit)).await });
        CallStream {
            chunks,
            outcome: Some(outcome),
        }
    }

    async fn run(
        &self,
        request: Request,
        emit: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
    ) -> Result<Response, CallError> {
        let inner = &*self.inner;
        let deadline = request.deadline.unwrap_or(inner.call_timeout);
        let due = Instant::now() + deadline;
        let run = inner.prepared.call(&inner.links, &request, due, emit);
        match tokio::time::timeout(deadline + ADAPTER_SLACK, run).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout(format!(
                "adapter `{}` did not answer {} within {deadline:?}; give the request a longer deadline if it needs one",
                inner.links.name,
                crate::error::quoted(&request.command)
            ))),
        }
    }

    /// Waits until every Python worker passed its readiness handshake
    /// (at once for a host without a pool). Fails with the reason, and the
    /// traceback, when workers cannot start.
    pub async fn ready(&self) -> Result<(), Error> {
        match self.pool() {
            Some(pool) => pool.ready().await,
            None => Ok(()),
        }
    }

    /// The worker pool, when the host has one (a recording host's is the
    /// pool of the adapter it records).
    pub fn pool(&self) -> Option<&Pool> {
        let inner = &*self.inner;
        inner
            .links
            .pool
            .as_ref()
            .or_else(|| inner.next.as_ref().and_then(Host::pool))
    }

    /// The pool's counters (`None` for a host without a pool).
    pub fn status(&self) -> Option<PoolStatus> {
        self.pool().map(Pool::status)
    }

    /// The limits the adapter runs under, and the directories granted to it.
    pub fn limits(&self) -> &Limits {
        self.inner.prepared.limits()
    }

    /// The cassette's record mode, when the host has a cassette.
    pub fn record_mode(&self) -> Option<RecordMode> {
        self.cassette().map(CassetteStore::mode)
    }

    /// What the host does with its cassette (replay only, record, or
    /// re-record), decided at build from the record mode and the file.
    pub fn cassette_plan(&self) -> Option<Plan> {
        self.inner.plan
    }

    /// The adapter a recording host passes calls on to (the real one).
    pub fn recorded_adapter(&self) -> Option<&Host> {
        self.inner.next.as_ref()
    }

    /// Stops taking calls, lets calls in flight finish within the pool's
    /// `shutdown_grace`, then stops every worker and waits until they are
    /// gone. A recording host then saves its cassette (replacing the file
    /// atomically) and returns how many interactions it saved (0 without a
    /// recording), or why it could not save them (also said in the log).
    /// Dropping the last clone of a host kills its workers without waiting,
    /// and saves its cassette too.
    pub async fn close(&self) -> Result<usize, Error> {
        let inner = &*self.inner;
        if let Some(pool) = &inner.links.pool {
            pool.close().await;
        }
        if let Some(next) = &inner.next {
            // The adapter behind holds no cassette, so it has nothing to save
            // and nothing to fail; the cassette of this host is saved below.
            let _ = Box::pin(next.close()).await;
        }
        match self.cassette() {
            Some(cassette) => cassette.finish().inspect_err(|e| tracing::error!("{e}")),
            None => Ok(0),
        }
    }

    /// The adapter's name (its short name, or its file stem).
    pub fn adapter_name(&self) -> &str {
        &self.inner.links.name
    }

    /// The component file this host runs.
    pub fn adapter_path(&self) -> &Path {
        &self.inner.path
    }

    /// What the adapter component implements and imports.
    pub fn adapter_info(&self) -> &ComponentInfo {
        &self.inner.info
    }

    /// Every counter the adapter keeps (the mock's `calls/<command>`, …), by name.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.inner.links.counters.snapshot()
    }

    /// One counter, 0 if the adapter never touched it.
    pub fn counter(&self, name: &str) -> u64 {
        self.inner.links.counters.get(name)
    }

    fn cassette(&self) -> Option<&CassetteStore> {
        self.inner.links.cassette.as_deref()
    }
}

impl Next for Host {
    fn call(&self, request: Request) -> NextCall<'_> {
        Box::pin(Host::call(self, request))
    }

    fn call_streamed(
        &self,
        request: Request,
        emit: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> NextCall<'_> {
        Box::pin(self.run(request, Some(emit)))
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("adapter", &self.inner.links.name)
            .field("path", &self.inner.path)
            .field("call_timeout", &self.inner.call_timeout)
            .finish_non_exhaustive()
    }
}

/// A streamed call ([`Host::call_stream`]): its chunks, then its outcome.
pub struct CallStream {
    chunks: tokio::sync::mpsc::Receiver<Vec<u8>>,
    outcome: Option<tokio::task::JoinHandle<Result<Response, CallError>>>,
}

impl CallStream {
    /// The next chunk, then the end (or the error that ended the call),
    /// then `None`.
    pub async fn next(&mut self) -> Option<Result<crate::StreamItem, CallError>> {
        futures_util::StreamExt::next(self).await
    }
}

impl futures_util::Stream for CallStream {
    type Item = Result<crate::StreamItem, CallError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        match self.chunks.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => {
                return Poll::Ready(Some(Ok(crate::StreamItem::Chunk(chunk))));
            }
            Poll::Pending => return Poll::Pending,
            // Every chunk taken and the call's end of the channel gone: the outcome is next.
            Poll::Ready(None) => {}
        }
        let Some(outcome) = self.outcome.as_mut() else {
            return Poll::Ready(None);
        };
        match std::pin::Pin::new(outcome).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(ended) => {
                self.outcome = None;
                Poll::Ready(Some(match ended {
                    Ok(Ok(response)) => Ok(crate::StreamItem::End(response)),
                    Ok(Err(error)) => Err(error),
                    Err(failed) => Err(CallError::AdapterFault(format!(
                        "the streamed call's task ended without an answer: {failed}"
                    ))),
                }))
            }
        }
    }
}

impl Drop for CallStream {
    fn drop(&mut self) {
        // The caller went away: the adapter's call is dropped with its
        // instance, and with it the worker's stream, which stops.
        if let Some(outcome) = &self.outcome {
            outcome.abort();
        }
    }
}
