//! `snakepen:adapter/streams` (since 0.1.3): streamed worker calls an
//! adapter starts and pulls by handle, and the chunks it emits to its own
//! caller. The handles live in the call's state: a stream left open when
//! its call ends is dropped with it, which stops it on the worker.

use super::call_state::CallState;
use crate::bindings::snakepen::adapter::streams::{Host, StreamItem};
use crate::bindings::wit;

impl Host for CallState {
    fn wanted(&mut self) -> bool {
        self.emit.is_some()
    }

    async fn start(&mut self, request: wit::Request) -> Result<u64, wit::CallError> {
        let (pool, deadline) = self.pool_for(&request, "stream")?;
        let stream = pool
            .call_stream(
                &request.command,
                request.session.as_deref(),
                request.payload,
                deadline,
                None,
            )
            .await
            .map_err(wit::CallError::from)?;
        self.next_stream += 1;
        self.streams.insert(self.next_stream, stream);
        Ok(self.next_stream)
    }

    async fn next(&mut self, handle: u64) -> Result<StreamItem, wit::CallError> {
        let Some(stream) = self.streams.get_mut(&handle) else {
            return Err(wit::CallError::Unavailable(format!(
                "adapter `{}` asked for the next item of stream {handle}, which is not open: it ended, was stopped, or was never started",
                self.links.name
            )));
        };
        let item = match stream.next().await {
            Some(Ok(crate::StreamItem::Chunk(chunk))) => return Ok(StreamItem::Chunk(chunk)),
            Some(Ok(crate::StreamItem::End(response))) => Ok(StreamItem::End(response.into())),
            Some(Err(error)) => Err(error.into()),
            None => Err(wit::CallError::Unavailable(format!(
                "stream {handle} of adapter `{}` has ended",
                self.links.name
            ))),
        };
        self.streams.remove(&handle);
        item
    }

    fn stop(&mut self, handle: u64) {
        self.streams.remove(&handle);
    }

    async fn emit(&mut self, chunk: Vec<u8>) -> Result<(), wit::CallError> {
        let Some(emit) = &self.emit else {
            return Err(wit::CallError::Unavailable(
                "this call's caller reads no stream (streams.wanted() is false): return the answer from `call`".into(),
            ));
        };
        emit.send(chunk).await.map_err(|_| {
            wit::CallError::Unavailable(
                "this call's caller went away: stop streaming and return".into(),
            )
        })
    }
}
