//! One slot of the pool: a task that keeps one worker alive. It starts the
//! worker through the pool's transport, serves the requests leased to it,
//! pings it when idle, recycles it, replaces it when it dies (with backoff
//! when it dies young), and stops it when the pool closes.

use super::config::PoolSettings;
use super::shared::Core;
use super::state::{Ended, Job};
use super::transport::{Connection, Exit, Fatal, Transport};
use crate::{CallError, Response};
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
    /// It ended during a call.
    Crashed(Exit),
    /// It broke the protocol during a call and was killed.
    Broke,
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
            End::Broke => "it broke the protocol during a call".into(),
            End::TimedOut => "a call ran past its deadline".into(),
            End::DiedIdle(exit) => format!("it died while idle ({exit})"),
            End::Unhealthy(why) => format!("it is unhealthy: {why}"),
            End::Recycle(why) => format!("recycled: it {why}"),
        }
    }
}

pub(crate) async fn run<T: Transport>(
    core: Arc<Core>,
    transport: Arc<T>,
    index: usize,
    mut jobs: mpsc::Receiver<Job>,
) {
    let mut closed = core.closed_signal();
    let mut failures: u32 = 0;
    while !core.is_closed() {
        core.starting(index);
        let settings = core.settings();
        let id = core.next_worker_id();
        let started = tokio::select! {
            started = transport.start(id, &settings) => started,
            _ = until_closed(&mut closed) => break,
        };
        let mut worker = match started {
            Ok(worker) => worker,
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
        core.ready(index, info, worker.functions());
        let (end, owed) = serve(&core, index, &mut worker, started, &mut jobs, &mut closed).await;
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
        // The caller hears of the end only once the pool's status shows it.
        if let Some((reply, error)) = owed {
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

/// Serves the slot's jobs until the worker must go. Returns why, and the
/// error owed to the call the worker was serving when it ended, if any.
async fn serve<C: Connection>(
    core: &Arc<Core>,
    index: usize,
    worker: &mut C,
    started: Instant,
    jobs: &mut mpsc::Receiver<Job>,
    closed: &mut watch::Receiver<bool>,
) -> (End, Option<Owed>) {
    loop {
        let settings = core.settings();
        let idle_for = settings.health_interval.unwrap_or(Duration::MAX);
        tokio::select! {
            biased;
            _ = until_closed(closed) => return (End::Shutdown, None),
            job = jobs.recv() => {
                let Some(job) = job else { return (End::Shutdown, None) };
                let (reply, answer) = match run_job(worker, job, &settings, closed).await {
                    Ok(done) => done,
                    Err((end, owed)) => return (end, Some(owed)),
                };
                // Back in the queue before the caller hears back, so that its
                // next call (same session, or just sequential) finds this worker idle.
                // Read again: the settings may have changed while the call ran.
                let recycle = recycle_reason(worker, started, &core.settings());
                if recycle.is_none() {
                    core.job_done(index);
                }
                let _ = reply.send(answer);
                if let Some(reason) = recycle {
                    return (End::Recycle(reason), None);
                }
            }
            exit = worker.ended() => return (End::DiedIdle(exit), None),
            _ = tokio::time::sleep(idle_for) => {
                if !core.try_check(index, worker.info().id) {
                    continue;
                }
                let deadline = Instant::now() + settings.health_timeout;
                match worker.ping(deadline, settings.kill_grace).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return (End::Unhealthy(format!("its ping failed: {e}")), None),
                    Err(fatal) => {
                        let e = fatal.into_error();
                        return (End::Unhealthy(format!("its ping failed: {e}")), None);
                    }
                }
                if let Some(reason) = recycle_reason(worker, started, &settings) {
                    return (End::Recycle(reason), None);
                }
                core.job_done(index);
            }
        }
    }
}

/// Runs one request. Returns the answer with its reply channel, or how the
/// worker ended with the error owed to the caller.
async fn run_job<C: Connection>(
    worker: &mut C,
    job: Job,
    settings: &PoolSettings,
    closed: &mut watch::Receiver<bool>,
) -> Result<(Reply, Result<Response, CallError>), (End, Owed)> {
    let outcome = tokio::select! {
        outcome = worker.call(&job.command, &job.payload, job.deadline, settings.kill_grace) => outcome,
        _ = until_closed(closed) => {
            let error = CallError::Unavailable(format!(
                "the host shut down while {} was running, after its grace period; the worker was stopped",
                crate::error::quoted(&job.command)
            ));
            return Err((End::Shutdown, (job.reply, error)));
        }
    };
    // A caller that went away has dropped its receiver; the reply is drained all the same.
    match outcome {
        Ok(answer) => Ok((job.reply, answer)),
        Err(Fatal::Died { exit, error }) => Err((End::Crashed(exit), (job.reply, error))),
        Err(Fatal::Broke(error)) => Err((End::Broke, (job.reply, error))),
        Err(Fatal::TimedOut(error)) => Err((End::TimedOut, (job.reply, error))),
    }
}

type Reply = tokio::sync::oneshot::Sender<Result<Response, CallError>>;
/// A call's reply channel and the error it is owed.
type Owed = (Reply, CallError);

fn recycle_reason<C: Connection>(
    worker: &C,
    started: Instant,
    settings: &PoolSettings,
) -> Option<String> {
    if let Some(max) = settings.max_requests
        && worker.calls() >= max
    {
        return Some(format!(
            "served {} requests (max_requests {max})",
            worker.calls()
        ));
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

/// Resolves when the pool closes (or its core is gone).
async fn until_closed(closed: &mut watch::Receiver<bool>) {
    let _ = closed.wait_for(|c| *c).await;
}
