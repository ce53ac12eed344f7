//! The pool's shared state and the rules that move workers between callers:
//! FIFO checkout with a deadline, leases that return their worker however the
//! caller ends, and session bindings. Everything here runs under one mutex,
//! held for microseconds and never across an `.await`.

use super::config::{Affinity, PoolConfig, PoolSettings};
use super::status::PoolStatus;
use super::worker::StartFailure;
use crate::{CallError, Response};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};

/// Where a slot's worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Spawned, handshake not yet received.
    Starting,
    /// Its last start failed; waiting out the backoff.
    BackingOff,
    /// Ready and in the idle queue.
    Idle,
    /// Handed to a caller that has not sent its request yet.
    Leased,
    /// Running a request.
    Busy,
    /// Taken out of the idle queue for a health ping.
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
}

struct Slot {
    phase: Phase,
    /// The id of its current worker (0: none).
    worker: u64,
    pid: u32,
    /// Its last start failed, and no worker has been ready in it since.
    failing: bool,
    jobs: mpsc::Sender<Job>,
}

struct Waiter {
    id: u64,
    /// Strict affinity: only this worker will do.
    only: Option<u64>,
    tx: oneshot::Sender<Result<Lease, CallError>>,
}

struct Binding {
    worker: u64,
    expires: Instant,
    /// Its worker died; a strict caller is told once, then the binding goes.
    gone: bool,
}

pub(crate) struct State {
    slots: Vec<Slot>,
    idle: VecDeque<usize>,
    waiters: VecDeque<Waiter>,
    sessions: HashMap<String, Binding>,
    restarts: u64,
    recycles: u64,
    start_failures: u64,
    start_failure: Option<StartFailure>,
    closing: bool,
    next_waiter: u64,
}

/// What the slot tasks, the leases and the pool handle share.
/// Where a pool's fork server is.
pub(crate) enum ForkState {
    Starting,
    Ready(Arc<super::forkserver::ForkServer>),
    Down,
}

pub(crate) struct Core {
    pub config: PoolConfig,
    settings: RwLock<PoolSettings>,
    state: Mutex<State>,
    /// Bumped on every change a `ready()` or a progress display waits for.
    changes: watch::Sender<u64>,
    /// Set when the workers must stop now (after any drain).
    closed: watch::Sender<bool>,
    next_worker: AtomicU64,
    /// The commands the latest ready worker reported: read on every call
    /// (for the metrics' labels), so apart from the state's mutex and
    /// shared without a copy.
    functions: RwLock<Arc<[String]>>,
    /// How the pool starts processes: the interpreter as named, under the pool's reaper.
    pub(crate) launcher: super::reaper::Launcher,
    /// The fork server new workers come from: starting, ready, or down.
    fork_server: watch::Sender<ForkState>,
    /// How long checkouts waited.
    pub(crate) waits: super::waits::WaitHistogram,
}

impl Core {
    pub(crate) fn new(config: PoolConfig) -> (Arc<Core>, Vec<mpsc::Receiver<Job>>) {
        let mut receivers = Vec::with_capacity(config.size);
        let slots = (0..config.size)
            .map(|_| {
                // One job at a time: a slot gets a job only through a lease.
                let (tx, rx) = mpsc::channel(1);
                receivers.push(rx);
                Slot {
                    phase: Phase::Starting,
                    worker: 0,
                    pid: 0,
                    failing: false,
                    jobs: tx,
                }
            })
            .collect();
        let launcher = super::reaper::Launcher::new(config.python.clone());
        let core = Core {
            settings: RwLock::new(config.settings.clone()),
            config,
            state: Mutex::new(State {
                slots,
                idle: VecDeque::new(),
                waiters: VecDeque::new(),
                sessions: HashMap::new(),
                restarts: 0,
                recycles: 0,
                start_failures: 0,
                start_failure: None,
                closing: false,
                next_waiter: 0,
            }),
            changes: watch::channel(0).0,
            closed: watch::channel(false).0,
            next_worker: AtomicU64::new(1),
            functions: RwLock::new(Arc::from([])),
            launcher,
            fork_server: watch::channel(ForkState::Starting).0,
            waits: super::waits::WaitHistogram::new(),
        };
        (Arc::new(core), receivers)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; recover rather than cascade if it ever does.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn settings(&self) -> PoolSettings {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn update_settings(&self, f: impl FnOnce(&mut PoolSettings)) {
        f(&mut self.settings.write().unwrap_or_else(|p| p.into_inner()));
        self.changed();
    }

    /// The fork server, when the pool uses one and it is ready.
    pub(crate) fn fork_server(&self) -> Option<Arc<super::forkserver::ForkServer>> {
        match &*self.fork_server.borrow() {
            ForkState::Ready(server) => Some(Arc::clone(server)),
            _ => None,
        }
    }

    pub(crate) fn set_fork_server(&self, state: ForkState) {
        self.fork_server.send_replace(state);
    }

    /// Waits (up to `limit`) while the pool's fork server is still
    /// starting, so that the first workers can be forked from it too.
    pub(crate) async fn fork_server_started(&self, limit: std::time::Duration) {
        let mut state = self.fork_server.subscribe();
        let _ = tokio::time::timeout(limit, state.wait_for(|s| !matches!(s, ForkState::Starting)))
            .await;
    }

    pub(crate) fn next_worker_id(&self) -> u64 {
        self.next_worker.fetch_add(1, Ordering::Relaxed)
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn closed_signal(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    // --- what callers do -------------------------------------------------

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
            if let Some(slot) = st.take_idle(only.or(prefer), only.is_some()) {
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
        let outcome = tokio::time::timeout_at(deadline.into(), rx).await;
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

    /// Hands the request to the leased worker. Gives the job back when the
    /// worker died between checkout and now, so the caller can check out again.
    pub(crate) fn dispatch(&self, mut lease: Lease, job: Job) -> Result<(), Job> {
        let mut st = self.lock();
        lease.armed = false;
        let slot = &mut st.slots[lease.slot];
        if slot.phase != Phase::Leased || slot.worker != lease.worker {
            return Err(job);
        }
        match slot.jobs.try_send(job) {
            Ok(()) => {
                slot.phase = Phase::Busy;
                Ok(())
            }
            Err(e) => {
                // The slot's task is gone (the pool shut down): so is the slot.
                slot.phase = Phase::Stopped;
                Err(e.into_inner())
            }
        }
    }

    fn release(self: &Arc<Self>, slot: usize, worker: u64) {
        let mut st = self.lock();
        let s = &st.slots[slot];
        if s.phase == Phase::Leased && s.worker == worker {
            self.make_idle(&mut st, slot);
            drop(st);
            self.changed();
        }
    }

    fn lease(self: &Arc<Self>, st: &mut State, slot: usize) -> Lease {
        st.slots[slot].phase = Phase::Leased;
        Lease {
            core: Arc::clone(self),
            slot,
            worker: st.slots[slot].worker,
            armed: true,
        }
    }

    /// Gives the slot's worker to the first waiter that wants it, or queues it as idle.
    fn make_idle(self: &Arc<Self>, st: &mut State, slot: usize) {
        let worker = st.slots[slot].worker;
        while let Some(pos) = st
            .waiters
            .iter()
            .position(|w| w.only.is_none_or(|only| only == worker))
        {
            let waiter = st.waiters.remove(pos).expect("the position is in range");
            let lease = self.lease(st, slot);
            match waiter.tx.send(Ok(lease)) {
                Ok(()) => return,
                // That caller is gone: the lease comes back unsent; try the next.
                Err(Ok(mut lease)) => lease.armed = false,
                Err(Err(_)) => unreachable!("a lease was sent"),
            }
        }
        st.slots[slot].phase = Phase::Idle;
        st.idle.push_back(slot);
    }

    // --- what slot tasks report --------------------------------------------

    pub(crate) fn starting(&self, slot: usize) {
        let mut st = self.lock();
        let s = &mut st.slots[slot];
        s.phase = Phase::Starting;
        s.worker = 0;
        s.pid = 0;
        drop(st);
        self.changed();
    }

    pub(crate) fn start_failed(&self, slot: usize, failure: StartFailure) {
        let mut st = self.lock();
        st.slots[slot].phase = Phase::BackingOff;
        st.slots[slot].failing = true;
        st.start_failures += 1;
        st.start_failure = Some(failure);
        if let Some(failure) = st.hopeless() {
            // No worker can serve them: tell waiters now rather than at their deadline.
            let error = failure.to_call_error(&self.config.module);
            let (hopeless, rest): (VecDeque<_>, VecDeque<_>) =
                st.waiters.drain(..).partition(|w| w.only.is_none());
            st.waiters = rest;
            drop(st);
            for waiter in hopeless {
                let _ = waiter.tx.send(Err(error.clone()));
            }
        } else {
            drop(st);
        }
        self.changed();
    }

    pub(crate) fn ready(
        self: &Arc<Self>,
        slot: usize,
        worker: u64,
        pid: u32,
        functions: &[String],
    ) {
        if **self.functions.read().unwrap_or_else(|p| p.into_inner()) != *functions {
            *self.functions.write().unwrap_or_else(|p| p.into_inner()) = functions.into();
        }
        let mut st = self.lock();
        let s = &mut st.slots[slot];
        s.worker = worker;
        s.pid = pid;
        s.failing = false;
        st.start_failure = None;
        self.make_idle(&mut st, slot);
        drop(st);
        self.changed();
    }

    /// The commands the latest ready worker reported.
    pub(crate) fn functions(&self) -> Arc<[String]> {
        Arc::clone(&self.functions.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn job_done(self: &Arc<Self>, slot: usize) {
        let mut st = self.lock();
        self.make_idle(&mut st, slot);
        drop(st);
        self.changed();
    }

    /// Takes an idle worker out of the queue for a health check.
    pub(crate) fn try_check(&self, slot: usize, worker: u64) -> bool {
        let mut st = self.lock();
        let s = &st.slots[slot];
        if s.phase != Phase::Idle || s.worker != worker {
            return false;
        }
        st.idle.retain(|&i| i != slot);
        st.slots[slot].phase = Phase::Checking;
        true
    }

    /// The slot's worker is gone (crashed, killed, recycled or stopped).
    pub(crate) fn ended(&self, slot: usize, worker: u64, counted: Ended) {
        let mut st = self.lock();
        st.idle.retain(|&i| i != slot);
        let closing = st.closing;
        let s = &mut st.slots[slot];
        s.phase = if closing {
            Phase::Stopped
        } else {
            Phase::Starting
        };
        s.worker = 0;
        s.pid = 0;
        match counted {
            Ended::Restart => st.restarts += 1,
            Ended::Recycle => st.recycles += 1,
            Ended::Shutdown => {}
        }
        for binding in st.sessions.values_mut() {
            if binding.worker == worker {
                binding.gone = true;
            }
        }
        let (orphaned, rest): (VecDeque<_>, VecDeque<_>) =
            st.waiters.drain(..).partition(|w| w.only == Some(worker));
        st.waiters = rest;
        drop(st);
        for waiter in orphaned {
            let _ = waiter.tx.send(Err(CallError::SessionWorkerGone(format!(
                "the worker this session was bound to (worker {worker}) is gone; start the session again"
            ))));
        }
        self.changed();
    }

    pub(crate) fn stopped(&self, slot: usize) {
        self.lock().slots[slot].phase = Phase::Stopped;
        self.changed();
    }

    // --- the pool as a whole -------------------------------------------------

    pub(crate) fn status(&self) -> PoolStatus {
        let st = self.lock();
        let mut status = PoolStatus {
            size: st.slots.len(),
            waiting: st.waiters.len(),
            restarts: st.restarts,
            recycles: st.recycles,
            start_failures: st.start_failures,
            sessions: st.sessions.len(),
            ..PoolStatus::default()
        };
        for slot in &st.slots {
            match slot.phase {
                Phase::Idle => status.idle += 1,
                Phase::Leased | Phase::Busy | Phase::Checking => status.busy += 1,
                Phase::Starting => status.starting += 1,
                Phase::BackingOff => status.dead += 1,
                Phase::Stopped => status.stopped += 1,
            }
        }
        status
    }

    /// The start failure that `ready()` reports, if any slot's last start failed.
    pub(crate) fn start_failure(&self) -> Option<StartFailure> {
        let st = self.lock();
        st.slots
            .iter()
            .any(|s| s.failing)
            .then(|| st.start_failure.clone())
            .flatten()
    }

    pub(crate) fn live_pids(&self) -> Vec<u32> {
        self.lock()
            .slots
            .iter()
            .filter(|s| s.pid != 0)
            .map(|s| s.pid)
            .collect()
    }

    /// Refuses new calls and tells every queued caller so.
    pub(crate) fn begin_closing(&self) {
        let mut st = self.lock();
        st.closing = true;
        let waiters: Vec<_> = st.waiters.drain(..).collect();
        drop(st);
        for waiter in waiters {
            let _ = waiter.tx.send(Err(shutting_down()));
        }
        self.changed();
    }

    /// Tells the slot tasks to stop their workers now.
    pub(crate) fn close(&self) {
        self.lock().closing = true;
        self.closed.send_replace(true);
        self.changed();
    }

    /// Forgets sessions whose TTL passed.
    pub(crate) fn sweep_sessions(&self) {
        let now = Instant::now();
        self.lock().sessions.retain(|_, b| b.expires > now);
    }
}

impl State {
    /// Refuses a new session when `max_sessions` are bound and none of them
    /// has expired (expired ones are forgotten first).
    fn make_room_for(
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

    fn take_idle(&mut self, want: Option<u64>, strict: bool) -> Option<usize> {
        if let Some(worker) = want
            && let Some(pos) = self
                .idle
                .iter()
                .position(|&i| self.slots[i].worker == worker)
        {
            return self.idle.remove(pos);
        }
        if strict { None } else { self.idle.pop_front() }
    }

    /// The failure every caller gets when no slot can serve: each one's last
    /// start failed and none is up.
    fn hopeless(&self) -> Option<&StartFailure> {
        let all_failing = self.slots.iter().all(|s| s.failing && s.worker == 0);
        if all_failing {
            self.start_failure.as_ref()
        } else {
            None
        }
    }

    fn bind(&mut self, session: Option<&str>, worker: u64, expires: Instant) {
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

/// The right to send one request to one worker. Dropping it unused (the
/// caller went away) puts the worker back in the idle queue.
pub(crate) struct Lease {
    core: Arc<Core>,
    slot: usize,
    pub(crate) worker: u64,
    armed: bool,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.armed {
            self.core.release(self.slot, self.worker);
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

fn shutting_down() -> CallError {
    CallError::Unavailable(
        "the host is shutting down and takes no new calls; build a new host".into(),
    )
}

fn worker_gone(session: &str) -> CallError {
    CallError::SessionWorkerGone(format!(
        "the worker that held session `{session}` is gone (it crashed, timed out or was recycled); rebuild the session's state and call again"
    ))
}
