//! A transport whose workers are not processes, for the pool's unit tests:
//! every rule in front of the seam (checkout, leases, affinity, backoff,
//! recycling, shutdown) runs against it in microseconds, under tokio's
//! paused clock where time matters.
//!
//! A worker answers by the command it is given, as a test module would:
//! `echo` answers with its payload, `who` with its worker id, `fail`
//! with a Python exception,
//! `crash` dies during the call (SIGSEGV), `break` breaks the protocol,
//! `hang` never answers and cannot be cancelled (a plain function stuck on
//! a thread), `hang-async` never answers until it is cancelled (an async
//! handler), `stream` answers in three chunks (`1`, `2`, `3`) and ends
//! with `"done"`, and `wait` answers once the test opens the gate
//! ([`Fake::open_gate`]) (`wait-who` then says its worker id). Starts
//! follow the plans the test queued ([`Fake::plan`]), and succeed at once
//! when none is left.

use super::config::PoolSettings;
use super::transport::{
    Connection, Exit, Fatal, Incoming, RequestId, StartFailure, Transport, WorkerId, WorkerInfo,
};
use crate::{CallError, Response};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What one start does.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    /// The worker becomes ready.
    Ready,
    /// The start fails so.
    Fail(StartFailure),
    /// No handshake ever comes (the start is dropped or the pool closes).
    Hang,
}

/// The test's handle on the transport (the pool holds a clone).
#[derive(Clone, Default)]
pub(crate) struct Fake {
    inner: Arc<Inner>,
}

struct Inner {
    plans: Mutex<VecDeque<Plan>>,
    /// Every start asked for: the worker id and the (tokio) time it was asked.
    starts: Mutex<Vec<(WorkerId, Instant)>>,
    /// The live workers' ends, by id: the test ends one by sending an exit.
    live: Mutex<HashMap<WorkerId, Arc<Life>>>,
    /// Calls that wait for the test (`wait`) take a permit each.
    gate: Semaphore,
    /// Workers stopped by the pool, in order.
    stopped: Mutex<Vec<WorkerId>>,
    /// Workers killed by the pool (a call past its deadline), in order.
    killed: Mutex<Vec<WorkerId>>,
    /// Requests the pool asked to cancel.
    cancels: Mutex<usize>,
    /// What `abort` was given, once it was called.
    aborted: Mutex<Option<Vec<WorkerInfo>>>,
    closed: Mutex<bool>,
    /// Health pings answered.
    pings: Mutex<u64>,
    /// Times the pool asked a worker for its memory.
    memory_reads: Mutex<u64>,
    /// Bumped on every event above, for tests that await one.
    events: watch::Sender<u64>,
}

impl Default for Inner {
    fn default() -> Inner {
        Inner {
            plans: Mutex::default(),
            starts: Mutex::default(),
            live: Mutex::default(),
            gate: Semaphore::new(0),
            stopped: Mutex::default(),
            killed: Mutex::default(),
            cancels: Mutex::default(),
            aborted: Mutex::default(),
            closed: Mutex::default(),
            pings: Mutex::default(),
            memory_reads: Mutex::default(),
            events: watch::channel(0).0,
        }
    }
}

/// One fake worker's fate, shared by its connection and the test.
struct Life {
    exit: watch::Sender<Option<Exit>>,
    memory: Mutex<Option<u64>>,
    /// Pings fail from now on.
    sick: Mutex<bool>,
}

impl Fake {
    /// Queues what the next starts do, in order.
    pub(crate) fn plan(&self, plans: impl IntoIterator<Item = Plan>) {
        lock(&self.inner.plans).extend(plans);
    }

    /// When each start was asked for, in order.
    pub(crate) fn start_times(&self) -> Vec<Instant> {
        lock(&self.inner.starts).iter().map(|(_, t)| *t).collect()
    }

    /// How many starts were asked for.
    pub(crate) fn starts(&self) -> usize {
        lock(&self.inner.starts).len()
    }

    /// Lets `n` waiting (`wait`) calls answer.
    pub(crate) fn open_gate(&self, n: usize) {
        self.inner.gate.add_permits(n);
    }

    /// Ends worker `id` by itself, as its process would (it is idle).
    pub(crate) fn end(&self, id: WorkerId, exit: Exit) {
        if let Some(life) = lock(&self.inner.live).get(&id) {
            life.exit.send_replace(Some(exit));
        }
    }

    /// Sets what worker `id` reports as its memory.
    pub(crate) fn set_memory(&self, id: WorkerId, bytes: u64) {
        if let Some(life) = lock(&self.inner.live).get(&id) {
            *lock(&life.memory) = Some(bytes);
        }
    }

    /// Makes worker `id`'s health pings fail.
    pub(crate) fn make_sick(&self, id: WorkerId) {
        if let Some(life) = lock(&self.inner.live).get(&id) {
            *lock(&life.sick) = true;
        }
    }

    /// The workers the pool stopped, in order.
    pub(crate) fn stopped(&self) -> Vec<WorkerId> {
        lock(&self.inner.stopped).clone()
    }

    /// The workers the pool killed, in order.
    pub(crate) fn killed(&self) -> Vec<WorkerId> {
        lock(&self.inner.killed).clone()
    }

    /// How many requests the pool asked a worker to cancel.
    pub(crate) fn cancels(&self) -> usize {
        *lock(&self.inner.cancels)
    }

    /// What the pool's drop handed to `abort`, if it was called.
    pub(crate) fn aborted(&self) -> Option<Vec<WorkerInfo>> {
        lock(&self.inner.aborted).clone()
    }

    /// Whether the pool closed the transport.
    pub(crate) fn closed(&self) -> bool {
        *lock(&self.inner.closed)
    }

    /// How many pings the workers answered.
    pub(crate) fn pings(&self) -> u64 {
        *lock(&self.inner.pings)
    }

    /// How many times the pool asked a worker for its memory.
    pub(crate) fn memory_reads(&self) -> u64 {
        *lock(&self.inner.memory_reads)
    }

    /// A receiver that sees every event of the fake.
    pub(crate) fn events(&self) -> watch::Receiver<u64> {
        self.inner.events.subscribe()
    }

    fn event(&self) {
        self.inner.events.send_modify(|n| *n += 1);
    }
}

impl Transport for Fake {
    type Connection = FakeWorker;

    async fn start(
        &self,
        id: WorkerId,
        _settings: &PoolSettings,
    ) -> Result<FakeWorker, StartFailure> {
        lock(&self.inner.starts).push((id, Instant::now()));
        let plan = lock(&self.inner.plans).pop_front().unwrap_or(Plan::Ready);
        self.event();
        match plan {
            Plan::Ready => {}
            Plan::Fail(failure) => return Err(failure),
            Plan::Hang => std::future::pending::<()>().await,
        }
        let life = Arc::new(Life {
            exit: watch::channel(None).0,
            memory: Mutex::new(None),
            sick: Mutex::new(false),
        });
        lock(&self.inner.live).insert(id, Arc::clone(&life));
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(FakeWorker {
            id,
            fake: self.clone(),
            life,
            handlers: vec![super::Handler {
                name: "echo".into(),
                kind: super::HandlerKind::Plain,
                doc: None,
                parameters: Vec::new(),
                takes_bytes: false,
                returns: None,
                schema: serde_json::json!({}),
                unreadable: None,
            }],
            tx,
            rx,
            waiting: JoinSet::new(),
            hanging: HashMap::new(),
        })
    }

    #[allow(clippy::manual_async_fn)] // the future must not borrow `self`
    fn run(
        &self,
        mut closed: watch::Receiver<bool>,
        _settings: watch::Receiver<PoolSettings>,
    ) -> impl Future<Output = ()> + Send + 'static {
        async move {
            let _ = closed.wait_for(|c| *c).await;
        }
    }

    fn abort(&self, workers: &[WorkerInfo]) {
        *lock(&self.inner.aborted) = Some(workers.to_vec());
        self.event();
    }

    async fn close(&self, _grace: Duration) {
        *lock(&self.inner.closed) = true;
        self.event();
    }
}

/// A fake worker's connection.
pub(crate) struct FakeWorker {
    id: WorkerId,
    fake: Fake,
    life: Arc<Life>,
    handlers: Vec<super::Handler>,
    /// The worker's messages, in the order it sends them.
    tx: mpsc::UnboundedSender<Result<Incoming, Fatal>>,
    rx: mpsc::UnboundedReceiver<Result<Incoming, Fatal>>,
    /// Calls waiting at the gate.
    waiting: JoinSet<()>,
    /// Calls that never answer by themselves: whether a cancel stops them.
    hanging: HashMap<RequestId, bool>,
}

impl FakeWorker {
    fn crashed(&self) -> CallError {
        CallError::WorkerCrashed {
            pid: 0,
            exit_status: Exit::Signal(libc::SIGSEGV).to_string(),
            stderr_tail: String::new(),
        }
    }

    fn reply(&self, id: RequestId, outcome: Result<Response, CallError>) {
        let _ = self.tx.send(Ok(Incoming::Reply { id, outcome }));
    }
}

fn answer(payload: Vec<u8>) -> Result<Response, CallError> {
    Ok(Response {
        payload,
        worker_pid: None,
    })
}

impl Connection for FakeWorker {
    fn info(&self) -> WorkerInfo {
        WorkerInfo::new(self.id, None)
    }

    fn handlers(&self) -> &[super::Handler] {
        &self.handlers
    }

    async fn send(
        &mut self,
        id: RequestId,
        command: &str,
        payload: &[u8],
        _credit: Option<u32>,
        _deadline: Instant,
        _grace: Duration,
    ) -> Result<(), Fatal> {
        match command {
            "stream" => {
                for n in 1..=3u8 {
                    let chunk = vec![b'0' + n];
                    let _ = self.tx.send(Ok(Incoming::Chunk { id, chunk }));
                }
                self.reply(id, answer(b"\"done\"".to_vec()));
            }
            "ping" => {
                *lock(&self.fake.inner.pings) += 1;
                self.fake.event();
                if *lock(&self.life.sick) {
                    self.reply(
                        id,
                        Err(CallError::Timeout("the ping was not answered".into())),
                    );
                } else {
                    self.reply(id, answer(b"\"pong\"".to_vec()));
                }
            }
            "echo" => self.reply(id, answer(payload.to_vec())),
            "who" => self.reply(id, answer(self.id.to_string().into_bytes())),
            "fail" => self.reply(
                id,
                Err(CallError::PythonException {
                    type_name: "ValueError".into(),
                    message: "asked to fail".into(),
                    traceback: String::new(),
                }),
            ),
            "crash" => {
                let error = self.crashed();
                let _ = self.tx.send(Err(Fatal::Died {
                    exit: Exit::Signal(libc::SIGSEGV),
                    error,
                }));
            }
            "break" => {
                let _ = self.tx.send(Err(Fatal::Broke(CallError::WorkerCrashed {
                    pid: 0,
                    exit_status: "killed for breaking the protocol".into(),
                    stderr_tail: String::new(),
                })));
            }
            "hang" => {
                self.hanging.insert(id, false);
            }
            "hang-async" => {
                self.hanging.insert(id, true);
            }
            "wait" | "wait-who" => {
                let (fake, tx) = (self.fake.clone(), self.tx.clone());
                let body = match command {
                    "wait" => payload.to_vec(),
                    _ => self.id.to_string().into_bytes(),
                };
                self.waiting.spawn(async move {
                    let permit = fake.inner.gate.acquire().await;
                    permit.expect("the gate is never closed").forget();
                    let _ = tx.send(Ok(Incoming::Reply {
                        id,
                        outcome: answer(body),
                    }));
                });
            }
            other => self.reply(id, Err(CallError::NoSuchCommand(other.to_string()))),
        }
        Ok(())
    }

    async fn credit(
        &mut self,
        _id: RequestId,
        _n: u32,
        _deadline: Instant,
        _grace: Duration,
    ) -> Result<(), Fatal> {
        Ok(())
    }

    async fn cancel(
        &mut self,
        id: RequestId,
        _deadline: Instant,
        _grace: Duration,
    ) -> Result<(), Fatal> {
        *lock(&self.fake.inner.cancels) += 1;
        self.fake.event();
        match self.hanging.get(&id) {
            Some(true) => {
                self.hanging.remove(&id);
                self.reply(id, Err(CallError::Timeout("cancelled".into())));
            }
            Some(false) => {
                let _ = self.tx.send(Ok(Incoming::Uncancellable { id }));
            }
            None => {}
        }
        Ok(())
    }

    async fn next(&mut self, _grace: Duration) -> Result<Incoming, Fatal> {
        let mut exit = self.life.exit.subscribe();
        tokio::select! {
            biased;
            message = self.rx.recv() => message.expect("the worker holds a sender"),
            ended = exit.wait_for(Option::is_some) => {
                let exit = ended.ok().and_then(|e| e.clone()).unwrap_or(Exit::Lost("gone".into()));
                let error = CallError::WorkerCrashed {
                    pid: 0,
                    exit_status: exit.to_string(),
                    stderr_tail: String::new(),
                };
                Err(Fatal::Died { exit, error })
            }
        }
    }

    async fn kill(&mut self, _grace: Duration) -> Exit {
        lock(&self.fake.inner.killed).push(self.id);
        self.fake.event();
        Exit::Signal(libc::SIGKILL)
    }

    async fn stop(&mut self, _grace: Duration) {
        lock(&self.fake.inner.stopped).push(self.id);
        self.fake.event();
    }

    fn memory_bytes(&self) -> Option<u64> {
        *lock(&self.fake.inner.memory_reads) += 1;
        *lock(&self.life.memory)
    }
}

impl Drop for FakeWorker {
    fn drop(&mut self) {
        lock(&self.fake.inner.live).remove(&self.id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
