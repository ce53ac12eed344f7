//! `snakepen:adapter/timers`: an adapter's sleep is a tokio timer, so it
//! never blocks a thread and ends with the call's deadline.

use super::call_state::CallState;
use crate::bindings::snakepen::adapter::timers::Host;
use std::time::Duration;

impl Host for CallState {
    async fn sleep(&mut self, duration_ms: u64) {
        // The call as a whole runs under its deadline; a sleep past it is cut there.
        tokio::time::sleep(Duration::from_millis(duration_ms)).await;
    }
}
