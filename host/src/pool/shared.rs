//! What the slot tasks, the leases and the pool handle share: the slot
//! table under one mutex (held for microseconds, never across an
//! `.await`), what slot tasks report into it, the settings, and the
//! pool's change and close signals; and the lease, the right to send one
//! request to one worker, which gives its worker back however its holder
//! ends. How callers wait for a lease is `checkout`. Nothing here knows
//! what a worker is (`transport`).

use super::config::{PoolConfig, PoolSettings};
use super::state::{Control, Ended, Job, Phase, Slot};
use super::status::PoolStatus;
use super::transport::{StartFailure, WorkerId, WorkerInfo};
use crate::CallError;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What a slot task receives: its jobs, and what its streams' callers say.
pub(crate) type SlotInbox = (mpsc::Receiver<Job>, mpsc::UnboundedReceiver<Control>);

/// The slot table as the core holds it: its waiters are sent leases.
pub(crate) type State = super::state::State<Lease>;

/// What the slot tasks, the leases and the pool handle share.
pub(crate) struct Core {
    pub config: PoolConfig,
    /// Read at each use; the transport watches it too.
    settings: watch::Sender<PoolSettings>,
    state: Mutex<State>,
    /// Bumped on every change a `ready()` or a progress display waits for.
    changes: watch::Sender<u64>,
    /// The module's generation: a reload raises it, and workers started
    /// before it retire once their calls end.
    generation: watch::Sender<u64>,
    /// Set when the workers must stop now (after any drain).
    closed: watch::Sender<bool>,
    next_worker: AtomicU64,
    /// Names streams in their slot's controls.
    next_stream: AtomicU64,
    /// The commands the latest ready worker reported: read on every call
    /// (for the metrics' labels), so apart from the state's mutex and
    /// shared without a copy.
    functions: RwLock<Arc<[String]>>,
    handlers: RwLock<Arc<[super::Handler]>>,
    /// How long checkouts waited.
    pub(crate) waits: super::waits::WaitHistogram,
}

impl Core {
    pub(crate) fn new(config: PoolConfig) -> (Arc<Core>, Vec<SlotInbox>) {
        let mut receivers = Vec::with_capacity(config.size);
        let capacity = config.max_concurrency.max(1);
        let slots = (0..config.size)
            .map(|_| {
                // A slot gets a job only through a lease, and holds at most
                // `capacity` leases.
                let (tx, rx) = mpsc::channel(capacity);
                let (controls, control_rx) = mpsc::unbounded_channel();
                receivers.push((rx, control_rx));
                Slot {
                    controls,
                    phase: Phase::Starting,
                    worker: None,
                    load: 0,
                    draining: false,
                    failing: false,
                    jobs: tx,
                }
            })
            .collect();
        let core = Core {
            settings: watch::channel(config.settings.clone()).0,
            config,
            state: Mutex::new(super::state::State {
                slots,
                room: VecDeque::new(),
                capacity,
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
            generation: watch::channel(0).0,
            closed: watch::channel(false).0,
            next_worker: AtomicU64::new(1),
            next_stream: AtomicU64::new(1),
            functions: RwLock::new(Arc::from([])),
            handlers: RwLock::new(Arc::from([])),
            waits: super::waits::WaitHistogram::new(),
        };
        (Arc::new(core), receivers)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; recover rather than cascade if it ever does.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn settings(&self) -> PoolSettings {
        self.settings.borrow().clone()
    }

    /// The settings as they change.
    pub(crate) fn watch_settings(&self) -> watch::Receiver<PoolSettings> {
        self.settings.subscribe()
    }

    pub(crate) fn update_settings(&self, f: impl FnOnce(&mut PoolSettings)) {
        self.settings.send_modify(f);
        self.changed();
    }

    pub(crate) fn next_worker_id(&self) -> u64 {
        self.next_worker.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn next_stream_key(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// The channel through which a stream's caller reaches `slot`.
    pub(crate) fn controls(&self, slot: usize) -> mpsc::UnboundedSender<Control> {
        self.lock().slots[slot].controls.clone()
    }

    /// Tells those watching the pool's state that it changed. Most of the
    /// time no one watches (a caller of `ready`, a drain, a test do), and a
    /// call changes it twice: waking no one then costs nothing. One who
    /// subscribes later reads the state after subscribing, so misses nothing.
    pub(super) fn changed(&self) {
        if self.changes.receiver_count() > 0 {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
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

    // --- what slot tasks report --------------------------------------------

    pub(crate) fn starting(&self, slot: usize) {
        let mut st = self.lock();
        let s = &mut st.slots[slot];
        s.phase = Phase::Starting;
        s.worker = None;
        s.load = 0;
        s.draining = false;
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
        worker: WorkerInfo,
        handlers: &[super::Handler],
    ) {
        if **self.handlers.read().unwrap_or_else(|p| p.into_inner()) != *handlers {
            *self.handlers.write().unwrap_or_else(|p| p.into_inner()) = handlers.into();
            // The command names, apart: the metrics read them at every call.
            let names: Vec<String> = handlers.iter().map(|h| h.name.clone()).collect();
            *self.functions.write().unwrap_or_else(|p| p.into_inner()) = names.into();
        }
        let mut st = self.lock();
        let s = &mut st.slots[slot];
        s.worker = Some(worker);
        s.phase = Phase::Ready;
        s.load = 0;
        s.draining = false;
        s.failing = false;
        st.start_failure = None;
        self.make_room(&mut st, slot);
        drop(st);
        self.changed();
    }

    /// The commands the latest ready worker reported.
    pub(crate) fn functions(&self) -> Arc<[String]> {
        Arc::clone(&self.functions.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The handlers the latest ready worker described.
    pub(crate) fn handlers(&self) -> Arc<[super::Handler]> {
        Arc::clone(&self.handlers.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// One call the slot's worker held has ended: its room goes to a
    /// waiter, or back to the room queue.
    pub(crate) fn job_done(self: &Arc<Self>, slot: usize) {
        let mut st = self.lock();
        let s = &mut st.slots[slot];
        s.load = s.load.saturating_sub(1);
        self.make_room(&mut st, slot);
        drop(st);
        self.changed();
    }

    /// Takes a worker that holds no call out of the room queue for a health check.
    pub(crate) fn try_check(&self, slot: usize, worker: WorkerId) -> bool {
        let mut st = self.lock();
        let s = &st.slots[slot];
        if s.phase != Phase::Ready || s.load > 0 || s.draining || s.worker_id() != Some(worker) {
            return false;
        }
        st.room.retain(|&i| i != slot);
        st.slots[slot].phase = Phase::Checking;
        true
    }

    /// Its health check passed: it takes calls again.
    pub(crate) fn checked(self: &Arc<Self>, slot: usize) {
        let mut st = self.lock();
        st.slots[slot].phase = Phase::Ready;
        self.make_room(&mut st, slot);
        drop(st);
        self.changed();
    }

    /// Workers started from now on run the module as it is now; those
    /// started before retire once their calls end.
    pub(crate) fn next_generation(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// The module's generation, to watch.
    pub(crate) fn generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The slot's worker takes no more calls; it goes once those it holds end.
    pub(crate) fn drain(&self, slot: usize) {
        let mut st = self.lock();
        st.slots[slot].draining = true;
        st.room.retain(|&i| i != slot);
        drop(st);
        self.changed();
    }

    /// The slot's worker is gone (crashed, killed, recycled or stopped).
    pub(crate) fn ended(&self, slot: usize, worker: WorkerId, counted: Ended) {
        let mut st = self.lock();
        st.room.retain(|&i| i != slot);
        let closing = st.closing;
        let s = &mut st.slots[slot];
        s.load = 0;
        s.draining = false;
        s.phase = if closing {
            Phase::Stopped
        } else {
            Phase::Starting
        };
        s.worker = None;
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
            status.in_flight += slot.load;
            match slot.phase {
                Phase::Ready if slot.load == 0 => status.idle += 1,
                Phase::Ready | Phase::Checking => status.busy += 1,
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

    /// The workers the slots hold now.
    pub(crate) fn workers(&self) -> Vec<WorkerInfo> {
        self.lock()
            .slots
            .iter()
            .filter_map(|s| s.worker.clone())
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

    fn release(self: &Arc<Self>, slot: usize, worker: WorkerId) {
        let mut st = self.lock();
        let s = &mut st.slots[slot];
        if s.phase == Phase::Ready && s.worker_id() == Some(worker) {
            s.load = s.load.saturating_sub(1);
            self.make_room(&mut st, slot);
            drop(st);
            self.changed();
        }
    }

    /// A lease on `slot`, whose `load` already counts it.
    pub(super) fn lease(self: &Arc<Self>, st: &mut State, slot: usize) -> Lease {
        Lease {
            core: Arc::clone(self),
            slot,
            worker: st.slots[slot]
                .worker_id()
                .expect("only a slot with a ready worker is leased"),
            armed: true,
        }
    }

    /// Gives the room the slot's worker has to the first waiters that want
    /// it, and queues what room is left.
    pub(super) fn make_room(self: &Arc<Self>, st: &mut State, slot: usize) {
        let s = &st.slots[slot];
        if s.phase != Phase::Ready || s.draining {
            return;
        }
        let worker = s.worker_id();
        while st.slots[slot].load < st.capacity
            && let Some(pos) = st
                .waiters
                .iter()
                .position(|w| w.only.is_none_or(|only| Some(only) == worker))
        {
            let waiter = st.waiters.remove(pos).expect("the position is in range");
            st.slots[slot].load += 1;
            let lease = self.lease(st, slot);
            if let Err(Ok(mut lease)) = waiter.tx.send(Ok(lease)) {
                // That caller is gone: the lease comes back unsent; try the next.
                lease.armed = false;
                st.slots[slot].load -= 1;
            }
        }
        if st.slots[slot].load < st.capacity && !st.room.contains(&slot) {
            st.room.push_back(slot);
        }
    }

    /// Hands the request to the leased worker. Gives the job back when the
    /// worker died between checkout and now, so the caller can check out again.
    pub(crate) fn dispatch(&self, mut lease: Lease, job: Job) -> Result<(), Job> {
        let mut st = self.lock();
        lease.armed = false;
        let slot = &mut st.slots[lease.slot];
        if slot.phase != Phase::Ready || slot.worker_id() != Some(lease.worker) {
            return Err(job);
        }
        match slot.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                // The slot's task is gone (the pool shut down): so is the slot.
                slot.phase = Phase::Stopped;
                Err(e.into_inner())
            }
        }
    }
}

/// The right to send one request to one worker. Dropping it unused (the
/// caller went away) puts the worker back in the idle queue.
pub(crate) struct Lease {
    core: Arc<Core>,
    slot: usize,
    pub(crate) worker: WorkerId,
    armed: bool,
}

impl Lease {
    /// The slot whose worker it lends.
    pub(crate) fn slot(&self) -> usize {
        self.slot
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.armed {
            self.core.release(self.slot, self.worker);
        }
    }
}

pub(super) fn shutting_down() -> CallError {
    CallError::Unavailable(
        "the host is shutting down and takes no new calls; build a new host".into(),
    )
}
