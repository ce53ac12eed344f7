//! `snakepen:adapter/next`: the adapter a wrapping adapter passes calls on to.
//!
//! The next adapter runs as a host of its own (with the pool) and gets what
//! is left of this call's deadline, or less if the request asks for less.

use super::CallState;
use crate::bindings::snakepen::adapter::next::Host;
use crate::bindings::wit;
use crate::{CallError, Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

/// The adapter behind a wrapping one, as the `next` import reaches it. The
/// host implements it; this module names only what it needs, so that the
/// imports never depend on the host that links them.
pub(crate) trait Next: Send + Sync {
    /// Runs `request` through the next adapter, under the request's deadline.
    fn call(&self, request: Request) -> NextCall<'_>;
}

/// A call in flight to the next adapter. Boxed: a host call that runs a host
/// call would otherwise be a future of infinite size.
pub(crate) type NextCall<'a> =
    Pin<Box<dyn Future<Output = Result<Response, CallError>> + Send + 'a>>;

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
