//! The instances one host keeps warm between its calls: configured once,
//! reused by its later calls, the most recently used first (its memory is
//! the most likely to be in the caches). Each holds a slot of the runtime,
//! which the runtime takes back, longest idle first, when another call
//! needs it.
//!
//! Invariant: only sound instances of this host are kept (see
//! `Instance::is_sound`).

use super::instance::Instance;
use crate::slots::{Idle, Slots};
use std::sync::Mutex;

/// The idle instances of one host.
#[derive(Default)]
pub(super) struct Warm {
    idle: Mutex<Vec<Instance>>,
}

impl Warm {
    /// The most recently used idle instance, if any.
    pub(super) fn take(&self) -> Option<Instance> {
        self.lock().pop()
    }

    /// Keeps `instance`, done with its call, for the next one; gives its
    /// slot back at once when a call of any host waits for one.
    pub(super) fn keep(&self, instance: Instance, slots: &Slots) {
        self.lock().push(instance);
        if slots.wanted() {
            self.release_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Instance>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Idle for Warm {
    fn release_one(&self) -> bool {
        let oldest = {
            let mut idle = self.lock();
            if idle.is_empty() {
                return false;
            }
            idle.remove(0)
        };
        // Dropped outside the lock: a store takes a moment to tear down.
        drop(oldest);
        true
    }
}
