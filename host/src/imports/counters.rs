//! `snakepen:adapter/counters`: named counters owned by one host's adapter
//! (`links::Counters`), the only state that outlives an adapter instance.

use super::call_state::CallState;
use crate::bindings::snakepen::adapter::counters::Host;

impl Host for CallState {
    fn add(&mut self, name: String, delta: u64) -> u64 {
        self.links.counters.add(&name, delta)
    }

    fn get(&mut self, name: String) -> u64 {
        self.links.counters.get(&name)
    }
}
