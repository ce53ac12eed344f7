//! The pool's slot table: where each slot's worker is in its life, the
//! callers queued for a worker, the session bindings and the counters,
//! with the pure rules that read them. Plain data: the core holds it under
//! its mutex, and nothing here waits or knows what a worker is. A queued
//! caller is sent an `L` (the core's lease) through its waiter.

use super::config::PoolSettings;
use super::transport::{StartFailure, WorkerId, WorkerInfo};
use crate::{CallError, Response};
use std::collections::{HashMap, VecDeque};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Where a slot's worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Spawned, handshake not yet received.
    Starting,
    /// Its last start failed; waiting out the backoff.
    BackingOff,
    /// Ready: it holds `load` calls (leased or running), up to the pool's
    /// `max_concurrency`.
    Ready,
    /// Taken out of the room queue for a health ping.
    Checking,
    /// The pool is shut down.
    Stopped,
}

/// One request on its way to a slot's worker.
pub(crate) struct Job {
    pub command: String,
    pub payload: Vec<u8>,
    pub deadline: Instant,
    pub reply: oneshot::Sender<Result<Response, CallError>>,
    /// Where a streamed request's chunks go, before its end comes on `reply`.
    pub stream: Option<StreamTo>,
}

/// The caller's end of a streamed request, as its slot holds it.
pub(crate) struct StreamTo {
    /// The caller's name for the stream in the slot's controls.
    pub key: u64,
    /// Bounded by the credit the worker is given, so never full.
    pub chunks: mpsc::Sender<Vec<u8>>,
    /// The longest wait for the next chunk, if any.
    pub idle: Option<std::time::Duration>,
}

/// What a stream's caller tells its slot.
#[derive(Debug)]
pub(crate) enum Control {
    /// It took `n` chunks: the worker may send `n` more.
    Credit { key: u64, n: u32 },
    /// It went away: the worker stops the stream (its generator is closed).
    Cancel { key: u64 },
}

pub(crate) struct Slot {
    pub(super) phase: Phase,
    /// Its current worker (none while starting or backing off).
    pub(super) worker: Option<WorkerInfo>,
    /// Calls its worker holds: leased to a caller, or running.
    pub(super) load: usize,
    /// Its worker takes no more calls: it goes once those it holds end.
    pub(super) draining: bool,
    /// Its last start failed, and no worker has been ready in it since.
    pub(super) failing: bool,
    pub(super) jobs: mpsc::Sender<Job>,
    /// What its streams' callers say.
    pub(super) controls: mpsc::UnboundedSender<Control>,
}

impl Slot {
    /// Its current worker's id, if it has one.
    pub(super) fn worker_id(&self) -> Option<WorkerId> {
        self.worker.as_ref().map(|w| w.id)
    }
}

pub(crate) struct Waiter<L> {
    pub(super) id: u64,
    /// Strict affinity: only this worker will do.
    pub(super) only: Option<WorkerId>,
    pub(super) tx: oneshot::Sender<Result<L, CallError>>,
}

pub(crate) struct Binding {
    pub(super) worker: WorkerId,
    pub(super) expires: Instant,
    /// Its worker died; a strict caller is told once, then the binding goes.
    pub(super) gone: bool,
}

pub(crate) struct State<L> {
    pub(super) slots: Vec<Slot>,
    /// Ready slots with room for another call, in the order they got it.
    pub(super) room: VecDeque<usize>,
    /// Calls one worker may hold at once.
    pub(super) capacity: usize,
    pub(super) waiters: VecDeque<Waiter<L>>,
    pub(super) sessions: HashMap<String, Binding>,
    pub(super) restarts: u64,
    pub(super) recycles: u64,
    pub(super) start_failures: u64,
    pub(super) start_failure: Option<StartFailure>,
    pub(super) closing: bool,
    pub(super) next_waiter: u64,
}

impl<L> State<L> {
    /// Refuses a new session when `max_sessions` are bound and none of them
    /// has expired (expired ones are forgotten first).
    pub(super) fn make_room_for(
        &mut self,
        session: &str,
        now: Instant,
        settings: &PoolSettings,
    ) -> Result<(), CallError> {
        if self.sessions.len() < settings.max_sessions || self.sessions.contains_key(session) {
            return Ok(());
        }
        self.sessions.retain(|_, b| b.expires > now);
        if self.sessions.len() < settings.max_sessions {
            return Ok(());
        }
        Err(CallError::Unavailable(format!(
            "the pool already holds its limit of {} live sessions (max_sessions), none of them expired; end sessions sooner (a shorter session_ttl, now {:?}), send this call without a session, or raise max_sessions",
            settings.max_sessions, settings.session_ttl
        )))
    }

    /// A slot with room for one more call: `want`'s worker when it has
    /// room, else (unless `strict`) the least loaded, the one that has had
    /// room longest first.
    pub(super) fn take_room(&mut self, want: Option<WorkerId>, strict: bool) -> Option<usize> {
        let pos = want
            .and_then(|worker| {
                self.room
                    .iter()
                    .position(|&i| self.slots[i].worker_id() == Some(worker))
            })
            .or_else(|| {
                if strict {
                    return None;
                }
                let least = self.room.iter().map(|&i| self.slots[i].load).min()?;
                self.room.iter().position(|&i| self.slots[i].load == least)
            })?;
        let slot = self.room[pos];
        self.slots[slot].load += 1;
        if self.slots[slot].load >= self.capacity {
            self.room.remove(pos);
        }
        Some(slot)
    }

    /// The failure every caller gets when no slot can serve: each one's last
    /// start failed and none is up.
    pub(super) fn hopeless(&self) -> Option<&StartFailure> {
        let all_failing = self.slots.iter().all(|s| s.failing && s.worker.is_none());
        if all_failing {
            self.start_failure.as_ref()
        } else {
            None
        }
    }

    pub(super) fn bind(&mut self, session: Option<&str>, worker: WorkerId, expires: Instant) {
        if let Some(session) = session {
            self.sessions.insert(
                session.to_string(),
                Binding {
                    worker,
                    expires,
                    gone: false,
                },
            );
        }
    }
}

/// How a worker's end is counted in [`PoolStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Restart,
    Recycle,
    Shutdown,
}
