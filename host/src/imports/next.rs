//! `snakepen:adapter/next`: the adapter a wrapping adapter passes calls on to.
//!
//! The next adapter runs as a host of its own (with the pool) and gets what
//! is left of this call's deadline, or less if the request asks for less.

use super::call_state::CallState;
use super::links::Next;
use crate::Request;
use crate::bindings::snakepen::adapter::next::{Host, StreamedOutcome};
use crate::bindings::snakepen::adapter::streams::TimedChunk;
use crate::bindings::wit;
use std::sync::Arc;
use std::time::Instant;

impl Host for CallState {
    async fn call(&mut self, request: wit::Request) -> Result<wit::Response, wit::CallError> {
        let (next, request) = self
            .for_next(request)
            .map_err(wit::CallError::Unavailable)?;
        let started = Instant::now();
        let result = next.call(request).await;
        self.next_elapsed = Some(started.elapsed());
        result.map(Into::into).map_err(Into::into)
    }

    async fn call_streamed(&mut self, request: wit::Request) -> StreamedOutcome {
        let Some(emit) = self.emit.clone() else {
            let outcome = Host::call(self, request).await;
            return StreamedOutcome {
                chunks: Vec::new(),
                outcome,
            };
        };
        let (next, request) = match self.for_next(request) {
            Ok(found) => found,
            Err(unavailable) => {
                return StreamedOutcome {
                    chunks: Vec::new(),
                    outcome: Err(wit::CallError::Unavailable(unavailable)),
                };
            }
        };
        let (inner, mut emitted) = tokio::sync::mpsc::channel(crate::pool::STREAM_WINDOW as usize);
        let started = Instant::now();
        let run = next.call_streamed(request, inner);
        tokio::pin!(run);
        let mut chunks = Vec::new();
        // Each chunk is kept, then passed on; while the caller has not taken
        // it, the next adapter is not polled, so it waits as its caller does.
        let pass_on = async |chunk: Vec<u8>, chunks: &mut Vec<TimedChunk>| {
            let offset_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            chunks.push(TimedChunk {
                offset_us,
                chunk: chunk.clone(),
            });
            emit.send(chunk).await.is_ok()
        };
        let mut open = true;
        let outcome = loop {
            tokio::select! {
                biased;
                chunk = emitted.recv(), if open => match chunk {
                    Some(chunk) => {
                        if !pass_on(chunk, &mut chunks).await {
                            // The caller went away: the next adapter's `emit` says so now.
                            emitted.close();
                        }
                    }
                    None => open = false,
                },
                outcome = &mut run => {
                    while let Ok(chunk) = emitted.try_recv() {
                        if !pass_on(chunk, &mut chunks).await {
                            break;
                        }
                    }
                    break outcome;
                }
            }
        };
        self.next_elapsed = Some(started.elapsed());
        StreamedOutcome {
            chunks,
            outcome: outcome.map(Into::into).map_err(Into::into),
        }
    }
}

impl CallState {
    /// The next adapter, and `request` with what is left of this call's
    /// deadline; or why there is none.
    fn for_next(&self, request: wit::Request) -> Result<(Arc<dyn Next>, Request), String> {
        let Some(next) = self.links.next.clone() else {
            return Err(format!(
                "adapter `{}` passes calls on to another adapter, but this host has none behind it: \
                 build the host with a cassette (HostBuilder::cassette), which puts the recorder in front of the real adapter",
                self.links.name
            ));
        };
        let mut request = Request::from(request);
        let left = self.deadline.saturating_duration_since(Instant::now());
        request.deadline = Some(request.deadline.map_or(left, |d| d.min(left)));
        Ok((next, request))
    }
}
