//! One slot of the pool: a task that keeps one worker alive. It starts the
//! worker through the pool's transport, serves the requests leased to it
//! (up to the pool's `max_concurrency` at once, matched to their answers by
//! request id), holds each to its deadline, pings the worker when idle,
//! recycles it, replaces it when it dies (with backoff when it dies young),
//! and stops it when the pool closes.

use super::config::PoolSettings;
use super::shared::Core;
use super::state::{Control, Ended, Job};
use super::transport::{Connection, Exit, Fatal, Incoming, RequestId, Transport};
use crate::{CallError, Response};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A worker that dies sooner than this after its start counts as a failed
/// start for the restart backoff: a module that crashes at once must not
/// turn into a respawn storm.
const HEALTHY_UPTIME: Duration = Duration::from_secs(5);

/// Why a worker's service ended.
#[derive(Debug)]
enum End {
    Shutdown,
    /// It ended while it held calls.
    Crashed(Exit),
    /// It broke the protocol and was killed.
    Broke,
    /// A call ran past its deadline and only the worker's end could stop it.
    TimedOut,
    DiedIdle(Exit),
    Unhealthy(String),
    Recycle(String),
}

impl End {
    fn killed_from_outside(&self) -> bool {
        match self {
            End::Crashed(exit) | End::DiedIdle(exit) => exit.is_sigkill(),
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            End::Shutdown => "the pool shut down".into(),
            End::Crashed(exit) => format!("it died during a call ({exit})"),
            End::Broke => "it broke the protocol".into(),
            End::TimedOut => "a call ran past its deadline and could not be stopped".into(),
            End::DiedIdle(exit) => format!("it died while idle ({exit})"),
            End::Unhealthy(why) => format!("it is unhealthy: {why}"),
            End::Recycle(why) => format!("recycled: it {why}"),
        }
    }
}

/// How many chunks a streamed call's worker may send ahead of its caller:
/// the bound of the buffer between them.
pub const STREAM_WINDOW: u32 = 32;

pub(crate) async fn run<T: Transport>(
    core: Arc<Core>,
    transport: Arc<T>,
    index: usize,
    (mut jobs, mut controls): super::shared::SlotInbox,
) {
    let mut closed = core.closed_signal();
    let mut failures: u32 = 0;
    while !core.is_closed() {
        core.starting(index);
        let settings = core.settings();
        let id = core.next_worker_id();
        // Read before the start: a reload during it retires this worker too.
        let generation = core.generation();
        let born = *generation.borrow();
        let started = tokio::select! {
            started = transport.start(id, &settings) => started,
            _ = until_closed(&mut closed) => break,
        };
        let mut worker = match started {
            Ok(worker) => worker,
            // A start cut short by the pool closing (its reaper gone) is
            // no failure of the worker's: nothing to report.
            Err(_) if core.is_closed() => break,
            Err(failure) => {
                failures += 1;
                tracing::warn!(
                    slot = index,
                    failures,
                    "{}",
                    failure.describe(&core.config.module)
                );
                core.start_failed(index, failure);
                if !pause(&settings, failures, &mut closed).await {
                    break;
                }
                continue;
            }
        };
        let started = Instant::now();
        let info = worker.info();
        core.ready(index, info.clone(), worker.handlers());
        let inbox = (&mut jobs, &mut controls);
        let (end, owed) = serve(
            &core,
            index,
            &mut worker,
            (started, born, generation),
            inbox,
            &mut closed,
        )
        .await;
        let counted = match &end {
            End::Shutdown => Ended::Shutdown,
            End::Recycle(_) => Ended::Recycle,
            _ => Ended::Restart,
        };
        match &end {
            End::Shutdown => {}
            End::Recycle(why) => {
                tracing::info!(
                    slot = index,
                    worker = info.id,
                    pid = info.pid,
                    "recycling worker: it {why}"
                )
            }
            other => {
                tracing::warn!(
                    slot = index,
                    worker = info.id,
                    pid = info.pid,
                    "replacing worker: {}",
                    other.describe()
                )
            }
        }
        core.ended(index, info.id, counted);
        // The callers hear of the end only once the pool's status shows it.
        for (reply, error) in owed {
            let _ = reply.send(Err(error));
        }
        // Anything still queued was sent to the worker that just ended.
        while let Ok(job) = jobs.try_recv() {
            let _ = job.reply.send(Err(CallError::WorkerCrashed {
                pid: info.pid.unwrap_or(0),
                exit_status: format!("it ended before the call reached it: {}", end.describe()),
                stderr_tail: String::new(),
            }));
        }
        let settings = core.settings();
        worker.stop(settings.kill_grace).await;
        if matches!(end, End::Shutdown) {
            break;
        }
        // Backoff is for workers that fail by themselves: one that died soon
        // after its start while nobody was calling it (its module crashes on
        // its own). A worker that crashed while serving a call was killed by
        // that call's input, and waiting would let a repeated bad request
        // empty the pool: it is replaced at once. So is one killed from
        // outside (SIGKILL it did not get from us: the OOM killer, an
        // operator, a chaos test), which did nothing wrong.
        let died_young = started.elapsed() < HEALTHY_UPTIME
            && matches!(end, End::DiedIdle(_) | End::Unhealthy(_))
            && !end.killed_from_outside();
        failures = if died_young { failures + 1 } else { 0 };
        if failures > 0 && !pause(&settings, failures, &mut closed).await {
            break;
        }
    }
    core.stopped(index);
}

/// Waits out the restart backoff; false when the pool closed meanwhile.
async fn pause(settings: &PoolSettings, failures: u32, closed: &mut watch::Receiver<bool>) -> bool {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    let delay = settings
        .restart_backoff
        .saturating_mul(factor)
        .min(settings.restart_backoff_max);
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = until_closed(closed) => false,
    }
}

/// A call (or a health ping) the worker holds.
struct InFlight {
    /// The caller's channel, until it was answered (a call past its
    /// deadline is answered at once, before the worker is done with it).
    reply: Option<Reply>,
    command: String,
    started: Instant,
    deadline: Instant,
    ping: bool,
    /// Cancelled at its deadline: the worker must answer by then, or say it
    /// cannot stop the call, or be killed.
    cancelled_until: Option<Instant>,
    /// The worker cannot stop it (a plain function on a thread).
    stuck: bool,
    /// A streamed call's chunks, until its end or until its caller went away.
    stream: Option<Streaming>,
}

/// Where a streamed call's chunks go.
struct Streaming {
    key: u64,
    chunks: mpsc::Sender<Vec<u8>>,
    /// The longest wait for a chunk, and when the last one (or the call) came.
    idle: Option<Duration>,
    last: Instant,
}

impl InFlight {
    /// When it runs out of time: its deadline, or its idle deadline.
    fn expires(&self) -> Instant {
        match &self.stream {
            Some(Streaming {
                idle: Some(idle),
                last,
                ..
            }) => self.deadline.min(*last + *idle),
            _ => self.deadline,
        }
    }

    /// When the slot must next look at it.
    fn due(&self) -> Option<Instant> {
        if self.stuck {
            None
        } else {
            Some(self.cancelled_until.unwrap_or_else(|| self.expires()))
        }
    }

    /// Why it ran out of time at `now`, as its caller is told.
    fn overran(&self, now: Instant, worker: &str) -> String {
        let command = crate::error::quoted(&self.command);
        match &self.stream {
            Some(Streaming {
                idle: Some(idle),
                last,
                ..
            }) if *last + *idle <= now && now < self.deadline => format!(
                "{command} sent no chunk for {:?} on worker {worker} (its idle deadline is {idle:?})",
                now - *last
            ),
            _ => format!(
                "{command} ran past its deadline ({:?}) on worker {worker}",
                now - self.started
            ),
        }
    }
}

/// Serves the slot's jobs until the worker must go. Returns why, and the
/// errors owed to the calls it held when it went.
async fn serve<C: Connection>(
    core: &Arc<Core>,
    index: usize,
    worker: &mut C,
    (started, born, mut generation): (Instant, u64, watch::Receiver<u64>),
    (jobs, controls): (
        &mut mpsc::Receiver<Job>,
        &mut mpsc::UnboundedReceiver<Control>,
    ),
    closed: &mut watch::Receiver<bool>,
) -> (End, Vec<Owed>) {
    let capacity = core.config.max_concurrency.max(1);
    let info = worker.info();
    let shown = info.pid.map_or(info.id.to_string(), |pid| pid.to_string());
    let mut calls: HashMap<RequestId, InFlight> = HashMap::new();
    // A stream's key in the controls, and its request.
    let mut keys: HashMap<u64, RequestId> = HashMap::new();
    let mut next_id: RequestId = 0;
    let mut served: u64 = 0;
    // Set once the worker takes no new calls: why it goes when it is done.
    let mut draining: Option<End> = None;
    let mut idle_since = Instant::now();
    // For the first thing due (a deadline, a ping).
    let mut alarm = crate::alarm::Alarm::default();
    // Made once, not at every turn of the loop: each would subscribe
    // afresh to its channel, a call's worth of work twice or thrice a call.
    let mut closing = std::pin::pin!(until_closed(closed));
    let mut reload = std::pin::pin!(reloaded(&mut generation, born));
    loop {
        let settings = core.settings();
        let grace = settings.kill_grace;
        if let Some(end) = draining.take() {
            if calls.values().all(|c| c.stuck) && jobs.is_empty() {
                if !calls.is_empty() {
                    // Only calls no one can stop are left: only the worker's end stops them.
                    worker.kill(grace).await;
                }
                return (end, owe_all(calls, |_| stopped_error(&info)));
            }
            draining = Some(end);
        }
        let ping_at = settings
            .health_interval
            .filter(|_| calls.is_empty() && draining.is_none())
            .map(|every| idle_since + every);
        let wake = calls
            .values()
            .filter_map(InFlight::due)
            .chain(ping_at)
            .min();
        if let Some(wake) = wake {
            alarm.aim(wake);
        }
        tokio::select! {
            biased;
            () = &mut closing => {
                let error = |call: &InFlight| CallError::Unavailable(format!(
                    "the host shut down while {} was running, after its grace period; the worker was stopped",
                    crate::error::quoted(&call.command)
                ));
                return (End::Shutdown, owe_all(calls, error));
            }
            // Once it has fired, `draining` is set for good: never polled again.
            () = &mut reload, if draining.is_none() => {
                // The module was reloaded: new calls go to workers on the
                // new code; this one goes once the calls it holds end.
                core.drain(index);
                draining = Some(End::Recycle("runs code from before a reload".into()));
            }
            incoming = worker.next(grace) => match incoming {
                Err(fatal) => {
                    let end = match &fatal {
                        Fatal::Broke(_) => End::Broke,
                        Fatal::Died { exit, .. } if calls.values().any(|c| !c.ping) => End::Crashed(exit.clone()),
                        Fatal::Died { .. } if !calls.is_empty() => {
                            End::Unhealthy(format!("its ping failed: {}", fatal.error()))
                        }
                        Fatal::Died { exit, .. } => End::DiedIdle(exit.clone()),
                    };
                    return (end, owe_all(calls, |_| fatal.error().clone()));
                }
                Ok(Incoming::Uncancellable { id }) => {
                    if let Some(call) = calls.get_mut(&id) {
                        call.stuck = true;
                        call.cancelled_until = None;
                        if draining.is_none() {
                            core.drain(index);
                            draining = Some(End::TimedOut);
                        }
                    }
                }
                Ok(Incoming::Chunk { id, chunk }) => {
                    let Some(call) = calls.get_mut(&id) else {
                        return broke(worker, grace, &info, calls, format!("it sent a chunk of request {id}, which it was not running")).await;
                    };
                    if let Some(stream) = &mut call.stream {
                        stream.last = Instant::now();
                        if let Err(mpsc::error::TrySendError::Full(_)) = stream.chunks.try_send(chunk) {
                            return broke(worker, grace, &info, calls, format!("request {id} sent more chunks than its credit")).await;
                        }
                    }
                }
                Ok(Incoming::Reply { id, outcome }) => {
                    let Some(call) = calls.remove(&id) else {
                        return broke(worker, grace, &info, calls, format!("it answered request {id}, which it was not running")).await;
                    };
                    if calls.is_empty() {
                        idle_since = Instant::now();
                    }
                    if let Some(stream) = &call.stream {
                        keys.remove(&stream.key);
                    }
                    if call.ping {
                        if let Err(e) = outcome {
                            return (End::Unhealthy(format!("its ping failed: {e}")), owe_all(calls, |_| stopped_error(&info)));
                        }
                        if let Some(reason) = recycle_reason(worker, served, started, &settings) {
                            return (End::Recycle(reason), owe_all(calls, |_| stopped_error(&info)));
                        }
                        core.checked(index);
                        continue;
                    }
                    served += 1;
                    // Read again: the settings may have changed while the call ran.
                    let recycle = match &draining {
                        None => recycle_reason(worker, served, started, &core.settings()),
                        Some(_) => None,
                    };
                    match recycle {
                        Some(reason) => {
                            core.drain(index);
                            draining = Some(End::Recycle(reason));
                        }
                        // Back in the room queue before the caller hears back, so
                        // that its next call (same session, or just sequential)
                        // finds this worker free.
                        None if draining.is_none() => core.job_done(index),
                        None => {}
                    }
                    if let Some(reply) = call.reply {
                        let _ = reply.send(outcome);
                    }
                }
            },
            control = controls.recv() => {
                let Some(control) = control else { continue };
                let now = Instant::now();
                let (key, credit) = match control {
                    Control::Credit { key, n } => (key, Some(n)),
                    Control::Cancel { key } => (key, None),
                };
                let Some(&id) = keys.get(&key) else { continue };
                let Some(call) = calls.get_mut(&id) else { continue };
                let sent = match credit {
                    Some(n) => worker.credit(id, n, now + grace, grace).await,
                    None => {
                        // Its caller went away: the worker closes the stream.
                        keys.remove(&key);
                        call.reply = None;
                        call.stream = None;
                        if call.cancelled_until.is_some() {
                            continue;
                        }
                        call.cancelled_until = Some(call.deadline.max(now) + grace);
                        worker.cancel(id, now + grace, grace).await
                    }
                };
                if let Err(fatal) = sent {
                    return ended_by(fatal, calls);
                }
            }
            job = jobs.recv(), if calls.len() < capacity => {
                let Some(job) = job else {
                    return (End::Shutdown, owe_all(calls, |_| stopped_error(&info)));
                };
                next_id += 1;
                let now = Instant::now();
                let credit = job.stream.as_ref().map(|_| STREAM_WINDOW);
                let stream = job.stream.map(|s| {
                    keys.insert(s.key, next_id);
                    Streaming { key: s.key, chunks: s.chunks, idle: s.idle, last: now }
                });
                calls.insert(next_id, InFlight {
                    reply: Some(job.reply),
                    command: job.command,
                    started: now,
                    deadline: job.deadline,
                    ping: false,
                    cancelled_until: None,
                    stuck: false,
                    stream,
                });
                // The worker must have taken it by the first deadline of those it holds.
                let by = calls.values().filter_map(InFlight::due).min().unwrap_or(job.deadline);
                let command = &calls[&next_id].command;
                if let Err(fatal) = worker.send(next_id, command, &job.payload, credit, by, grace).await {
                    return ended_by(fatal, calls);
                }
            }
            () = alarm.ring() => {
                let now = Instant::now();
                if wake.is_none_or(|wake| now < wake) {
                    // Set for something earlier that is no longer due.
                    continue;
                }
                if calls.is_empty() {
                    // The idle ping is due.
                    idle_since = now;
                    if draining.is_some() || !core.try_check(index, info.id) {
                        continue;
                    }
                    next_id += 1;
                    calls.insert(next_id, InFlight {
                        reply: None,
                        command: "ping".into(),
                        started: now,
                        deadline: now + settings.health_timeout,
                        ping: true,
                        cancelled_until: None,
                        stuck: false,
                        stream: None,
                    });
                    let by = now + settings.health_timeout;
                    if let Err(fatal) = worker.send(next_id, "ping", b"", None, by, grace).await {
                        let why = format!("its ping failed: {}", fatal.error());
                        return (End::Unhealthy(why), Vec::new());
                    }
                    continue;
                }
                if let Some(ping) = calls.values().find(|c| c.ping && c.deadline <= now) {
                    let why = format!(
                        "its ping was not answered within {:?} (health_timeout)",
                        now - ping.started
                    );
                    worker.kill(grace).await;
                    return (End::Unhealthy(why), owe_all(calls, |_| stopped_error(&info)));
                }
                let unanswered = calls.values().any(|c| c.cancelled_until.is_some_and(|t| t <= now));
                let late: Vec<RequestId> = calls
                    .iter()
                    .filter(|(_, c)| !c.ping && c.cancelled_until.is_none() && !c.stuck && c.expires() <= now)
                    .map(|(id, _)| *id)
                    .collect();
                // A stream stops between chunks when told; a plain call on a
                // worker of one call at a time only when its worker ends.
                let must_kill = capacity == 1 && late.iter().any(|id| calls[id].stream.is_none());
                if unanswered || must_kill {
                    // One worker, one call: Python code is stopped by ending
                    // its process. Or a cancelled call was not let go of in
                    // time. Either way the worker is killed.
                    worker.kill(grace).await;
                    let owed = owe_all(calls, |call| {
                        if call.expires() <= now {
                            CallError::Timeout(format!(
                                "{}; the worker was killed (the only way to stop Python code) and is being replaced",
                                call.overran(now, &shown)
                            ))
                        } else {
                            stopped_error(&info)
                        }
                    });
                    return (End::TimedOut, owed);
                }
                for id in late {
                    let call = calls.get_mut(&id).expect("a late call is in flight");
                    call.cancelled_until = Some(now + grace);
                    if let Some(reply) = call.reply.take() {
                        let _ = reply.send(Err(CallError::Timeout(format!(
                            "{}; it was cancelled",
                            call.overran(now, &shown)
                        ))));
                    }
                    // Its caller has its chunks so far and the timeout; no more come.
                    if let Some(stream) = call.stream.take() {
                        keys.remove(&stream.key);
                    }
                    if let Err(fatal) = worker.cancel(id, now + grace, grace).await {
                        return ended_by(fatal, calls);
                    }
                }
            }
        }
    }
}

/// A worker that broke the protocol (`message` says how): killed, and
/// every call it held told so.
async fn broke<C: Connection>(
    worker: &mut C,
    grace: Duration,
    info: &super::transport::WorkerInfo,
    calls: HashMap<RequestId, InFlight>,
    message: String,
) -> (End, Vec<Owed>) {
    worker.kill(grace).await;
    let error = CallError::WorkerCrashed {
        pid: info.pid.unwrap_or(0),
        exit_status: format!("killed for breaking the protocol ({message})"),
        stderr_tail: String::new(),
    };
    (End::Broke, owe_all(calls, |_| error.clone()))
}

/// A request, credit or cancel that could not reach the worker: its end,
/// and its error for every call it held.
fn ended_by(fatal: Fatal, calls: HashMap<RequestId, InFlight>) -> (End, Vec<Owed>) {
    let end = match &fatal {
        Fatal::Broke(_) => End::Broke,
        Fatal::Died { exit, .. } => End::Crashed(exit.clone()),
    };
    (end, owe_all(calls, |_| fatal.error().clone()))
}

/// The error every call still owed gets, made by `error`; calls already
/// answered (and pings) are owed nothing.
fn owe_all(
    calls: HashMap<RequestId, InFlight>,
    error: impl Fn(&InFlight) -> CallError,
) -> Vec<Owed> {
    calls
        .into_values()
        .filter_map(|call| {
            let error = error(&call);
            call.reply.map(|reply| (reply, error))
        })
        .collect()
}

/// What a call gets when its worker was stopped for another's sake.
fn stopped_error(info: &super::transport::WorkerInfo) -> CallError {
    CallError::WorkerCrashed {
        pid: info.pid.unwrap_or(0),
        exit_status: "it was stopped: another call on it ran past its deadline and could not be stopped, or the worker was replaced while it ran".into(),
        stderr_tail: String::new(),
    }
}

type Reply = tokio::sync::oneshot::Sender<Result<Response, CallError>>;
/// A call's reply channel and the error it is owed.
type Owed = (Reply, CallError);

fn recycle_reason<C: Connection>(
    worker: &C,
    served: u64,
    started: Instant,
    settings: &PoolSettings,
) -> Option<String> {
    if let Some(max) = settings.max_requests
        && served >= max
    {
        return Some(format!("served {served} requests (max_requests {max})"));
    }
    if let Some(max) = settings.max_age
        && started.elapsed() >= max
    {
        return Some(format!("is older than max_age {max:?}"));
    }
    if let Some(max) = settings.max_rss_bytes
        && let Some(rss) = worker.memory_bytes()
        && rss > max
    {
        return Some(format!("uses {rss} bytes of memory (max_rss_bytes {max})"));
    }
    None
}

/// Resolves once the module's generation passes `born` (a reload).
async fn reloaded(generation: &mut watch::Receiver<u64>, born: u64) {
    if generation.wait_for(|g| *g > born).await.is_err() {
        std::future::pending::<()>().await; // the core is gone: closing is how this ends
    }
}

/// Resolves when the pool closes (or its core is gone).
async fn until_closed(closed: &mut watch::Receiver<bool>) {
    let _ = closed.wait_for(|c| *c).await;
}
