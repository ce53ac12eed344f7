//! `snakepen:adapter/workers`: the pool of Python workers.
//!
//! This host has no worker pool yet, so every call is answered with
//! `unavailable` and a sentence that says so.

use super::CallState;
use crate::bindings::snakepen::adapter::workers::Host;
use crate::bindings::wit;

impl Host for CallState {
    async fn call(&mut self, request: wit::Request) -> Result<wit::Response, wit::CallError> {
        Err(wit::CallError::Unavailable(format!(
            "adapter `{}` asked the worker pool to run `{}`, but this host has no worker pool: \
             use an adapter that does not need Python (such as mock), or a snakepen with a pool",
            self.adapter, request.command
        )))
    }
}
