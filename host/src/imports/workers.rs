//! `snakepen:adapter/workers`: the host's pool of Python workers.
//!
//! A request's own deadline counts only within the call's: an adapter can
//! shorten the time a worker gets, never extend it.

use super::call_state::CallState;
use crate::bindings::snakepen::adapter::workers::Host;
use crate::bindings::wit;
use std::time::{Duration, Instant};

impl Host for CallState {
    async fn call(&mut self, request: wit::Request) -> Result<wit::Response, wit::CallError> {
        let (pool, deadline) = self.pool_for(&request, "run")?;
        pool.call(
            &request.command,
            request.session.as_deref(),
            request.payload,
            deadline,
        )
        .await
        .map(Into::into)
        .map_err(Into::into)
    }
}

impl CallState {
    /// The pool that runs (`verb`) `request` for an adapter, and the
    /// request's deadline within the call's; `unavailable` for a host
    /// without a pool.
    // The contract's error, which the imports return as it is.
    #[allow(clippy::result_large_err)]
    pub(super) fn pool_for(
        &self,
        request: &wit::Request,
        verb: &str,
    ) -> Result<(&crate::Pool, Instant), wit::CallError> {
        let Some(pool) = &self.links.pool else {
            return Err(wit::CallError::Unavailable(format!(
                "adapter `{}` asked the worker pool to {verb} {}, but this host has no worker pool: \
                 build the host with a Python module (HostBuilder::pool)",
                self.links.name,
                crate::error::quoted(&request.command)
            )));
        };
        let deadline = match request.deadline_ms {
            Some(ms) => self
                .deadline
                .min(Instant::now() + Duration::from_millis(ms)),
            None => self.deadline,
        };
        Ok((pool, deadline))
    }
}
