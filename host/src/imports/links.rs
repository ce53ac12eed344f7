//! What a host grants its adapter's instances, shared by all of them:
//! the counters (the only state that outlives an instance), the pool, the
//! cassette and the adapter behind this one in a chain.

use crate::cassette::CassetteStore;
use crate::{CallError, Pool, Request, Response};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// What a host grants its adapter: every instance gets a clone.
#[derive(Clone)]
pub(crate) struct Links {
    /// The adapter's name, for messages.
    pub(crate) name: Arc<str>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) pool: Option<Pool>,
    pub(crate) cassette: Option<Arc<CassetteStore>>,
    /// The adapter behind this one in a chain (the recorder's real adapter).
    pub(crate) next: Option<Arc<dyn Next>>,
}

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

/// The adapter behind a wrapping one, as the `next` import reaches it. The
/// host implements it; this module names only what it needs, so that the
/// imports never depend on the host that links them.
pub(crate) trait Next: Send + Sync {
    /// Runs `request` through the next adapter, under the request's deadline.
    fn call(&self, request: Request) -> NextCall<'_>;

    /// [`Next::call`] for a caller that reads a stream: the chunks the next
    /// adapter emits go to `emit`.
    fn call_streamed(
        &self,
        request: Request,
        emit: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> NextCall<'_>;
}

/// A call in flight to the next adapter. Boxed: a host call that runs a host
/// call would otherwise be a future of infinite size.
pub(crate) type NextCall<'a> =
    Pin<Box<dyn Future<Output = Result<Response, CallError>> + Send + 'a>>;
