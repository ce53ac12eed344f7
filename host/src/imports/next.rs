//! `snakepen:adapter/next`: the adapter a wrapping adapter passes calls on to.
//!
//! The next adapter runs as a host of its own (with the pool) and gets what
//! is left of this call's deadline, or less if the request asks for less.

use super::call_state::CallState;
use crate::Request;
use crate::bindings::snakepen::adapter::next::Host;
use crate::bindings::wit;
use std::time::Instant;

impl Host for CallState {
    async fn call(&mut self, request: wit::Request) -> Result<wit::Response, wit::CallError> {
        let Some(next) = self.links.next.clone() else {
            return Err(wit::CallError::Unavailable(format!(
                "adapter `{}` passes calls on to another adapter, but this host has none behind it: \
                 build the host with a cassette (HostBuilder::cassette), which puts the recorder in front of the real adapter",
                self.links.name
            )));
        };
        let mut request = Request::from(request);
        let left = self.deadline.saturating_duration_since(Instant::now());
        request.deadline = Some(request.deadline.map_or(left, |d| d.min(left)));
        let started = Instant::now();
        let result = next.call(request).await;
        self.next_elapsed = Some(started.elapsed());
        result.map(Into::into).map_err(Into::into)
    }
}
