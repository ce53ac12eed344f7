//! `snakepen:adapter/counters`: named counters owned by one host's adapter,
//! the only state that outlives an adapter instance.

use super::CallState;
use crate::bindings::snakepen::adapter::counters::Host;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// The counters of one adapter of one host.
#[derive(Debug, Default)]
pub struct Counters {
    values: Mutex<HashMap<String, u64>>,
}

impl Counters {
    /// Adds `delta` to `name` and returns the new value.
    pub fn add(&self, name: &str, delta: u64) -> u64 {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        let value = match values.get_mut(name) {
            Some(value) => value,
            None => values.entry(name.to_string()).or_default(),
        };
        *value = value.saturating_add(delta);
        *value
    }

    /// The value of `name`, 0 if it was never added to.
    pub fn get(&self, name: &str) -> u64 {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Every counter, sorted by name.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

impl Host for CallState {
    fn add(&mut self, name: String, delta: u64) -> u64 {
        self.links.counters.add(&name, delta)
    }

    fn get(&mut self, name: String) -> u64 {
        self.links.counters.get(&name)
    }
}
