//! The rules that lend workers to callers: FIFO checkout with a deadline,
//! session affinity (hint or strict) with a TTL, and leases that return
//! their worker however the caller ends. Each runs under the core's mutex
//! and never across an `.await`; the one wait (a queued caller) is
//! cancel-safe through `QueuedGuard`.

use super::config::Affinity;
use super::shared::{Core, Lease, shutting_down};
use super::state::Waiter;
use crate::CallError;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::time::Instant;

impl Core {
    /// Takes a worker for one request: the session's worker first (per the
    /// affinity mode), else the first idle one, else a place in the FIFO
    /// queue until `deadline`.
    pub(crate) async fn checkout(
        self: &Arc<Self>,
        session: Option<&str>,
        deadline: Instant,
    ) -> Result<Lease, CallError> {
        let started = Instant::now();
        let settings = self.settings();
        if let Some(session) = session
            && session.len() > settings.max_session_id_bytes
        {
            return Err(CallError::BadRequest(format!(
                "the session id is {} bytes long, over the pool's limit of {} (max_session_id_bytes); use a shorter id, such as a UUID",
                session.len(),
                settings.max_session_id_bytes
            )));
        }
        let (rx, id) = {
            let mut st = self.lock();
            if st.closing {
                return Err(shutting_down());
            }
            if let Some(session) = session {
                st.make_room_for(session, started, &settings)?;
            }
            let mut only = None;
            let mut prefer = None;
            if let Some(session) = session {
                match st.sessions.get(session) {
                    Some(b) if b.expires <= started => {
                        st.sessions.remove(session);
                    }
                    Some(b) if b.gone => {
                        st.sessions.remove(session);
                        if settings.affinity == Affinity::Strict {
                            return Err(worker_gone(session));
                        }
                    }
                    Some(b) => match settings.affinity {
                        Affinity::Strict => only = Some(b.worker),
                        Affinity::Hint => prefer = Some(b.worker),
                    },
                    None => {}
                }
            }
            if let Some(slot) = st.take_room(only.or(prefer), only.is_some()) {
                let lease = self.lease(&mut st, slot);
                st.bind(session, lease.worker, started + settings.session_ttl);
                drop(st);
                self.changed();
                return Ok(lease);
            }
            if only.is_none()
                && let Some(failure) = st.hopeless()
            {
                return Err(failure.to_call_error(&self.config.module));
            }
            let (tx, rx) = oneshot::channel();
            let id = st.next_waiter;
            st.next_waiter += 1;
            st.waiters.push_back(Waiter { id, only, tx });
            (rx, id)
        };
        self.changed();
        let queued = QueuedGuard { core: self, id };
        let outcome = tokio::time::timeout_at(deadline, rx).await;
        drop(queued);
        match outcome {
            Ok(Ok(Ok(lease))) => {
                let expires = Instant::now() + self.settings().session_ttl;
                self.lock().bind(session, lease.worker, expires);
                Ok(lease)
            }
            Ok(Ok(Err(error))) => Err(error),
            Ok(Err(_)) => Err(shutting_down()),
            Err(_) => {
                let status = self.status();
                Err(CallError::PoolExhausted {
                    busy: status.busy as u32,
                    starting: status.starting as u32,
                    dead: status.dead as u32,
                    waited_ms: started.elapsed().as_millis() as u64,
                })
            }
        }
    }
}

/// Takes a caller out of the queue however its wait ends.
struct QueuedGuard<'a> {
    core: &'a Core,
    id: u64,
}

impl Drop for QueuedGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.core.lock();
        if let Some(pos) = st.waiters.iter().position(|w| w.id == self.id) {
            // Dropped under the lock: its sender holds no lease (leases are
            // sent only while the waiter is removed from the queue).
            st.waiters.remove(pos);
            drop(st);
            self.core.changed();
        }
    }
}

fn worker_gone(session: &str) -> CallError {
    CallError::SessionWorkerGone(format!(
        "the worker that held session `{session}` is gone (it crashed, timed out or was recycled); rebuild the session's state and call again"
    ))
}
