//! The pool's rules against the fake transport: no Python, no processes,
//! tokio's paused clock wherever time matters (so a backoff of seconds
//! takes microseconds and is measured exactly). This file holds the
//! helpers; each file beside it, one group of rules.

mod affinity;
mod checkout;
mod concurrency;
mod failures;
mod recycling;
mod shutdown;

use super::fake::{Fake, Plan};
use super::transport::{Exit, StartFailure};
use super::{Affinity, Pool, PoolConfig, PoolSettings, PoolStatus};
use crate::{CallError, Error, Response};
use std::time::Duration;
use tokio::time::Instant;

/// A pool of `size` fake workers with `settings` changed by `tune`.
fn fake_pool(size: usize, tune: impl FnOnce(&mut PoolSettings)) -> (Pool, Fake) {
    fake_pool_of(size, 1, tune)
}

/// A pool of `size` fake workers that hold `max_concurrency` calls each.
fn fake_pool_of(
    size: usize,
    max_concurrency: usize,
    tune: impl FnOnce(&mut PoolSettings),
) -> (Pool, Fake) {
    let fake = Fake::default();
    let mut config = PoolConfig::new("handlers.py");
    config.size = size;
    config.max_concurrency = max_concurrency;
    config.settings.health_interval = None;
    tune(&mut config.settings);
    let pool = Pool::with_transport(config, fake.clone()).expect("the pool starts");
    (pool, fake)
}

/// A deadline `d` from now on the pool's (tokio's) clock.
fn within(d: Duration) -> std::time::Instant {
    (Instant::now() + d).into_std()
}

async fn call(pool: &Pool, command: &str, session: Option<&str>) -> Result<Response, CallError> {
    let payload = b"{}".to_vec();
    pool.call(command, session, payload, within(Duration::from_secs(30)))
        .await
}

/// [`call`] on a task of its own, so that the test goes on while it runs.
fn spawn_call(
    pool: &Pool,
    command: &'static str,
    session: Option<&'static str>,
) -> tokio::task::JoinHandle<Result<Response, CallError>> {
    let pool = pool.clone();
    tokio::spawn(async move { call(&pool, command, session).await })
}

/// Waits until the pool's status satisfies `test` (a minute of the
/// paused clock at most, so a broken rule fails instead of hanging).
async fn until(pool: &Pool, test: impl Fn(&PoolStatus) -> bool) -> PoolStatus {
    let mut changes = pool.subscribe();
    let wait = async {
        loop {
            changes.borrow_and_update();
            let status = pool.status();
            if test(&status) {
                return status;
            }
            changes.changed().await.expect("the pool is alive");
        }
    };
    match tokio::time::timeout(Duration::from_secs(60), wait).await {
        Ok(status) => status,
        Err(_) => panic!("the pool never got there: {}", pool.status()),
    }
}

/// Waits until the fake saw `test` come true.
async fn until_fake(fake: &Fake, test: impl Fn(&Fake) -> bool) {
    let mut events = fake.events();
    let wait = async {
        loop {
            events.borrow_and_update();
            if test(fake) {
                return;
            }
            events.changed().await.expect("the fake is alive");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("the fake never saw it");
}

/// Polls `future` once, so that it takes its place (a checkout, a queue).
async fn poll_once<F: Future + Unpin>(future: &mut F) {
    tokio::select! {
        biased;
        _ = future => panic!("it finished at once"),
        _ = std::future::ready(()) => {}
    }
}

fn import_error() -> StartFailure {
    StartFailure::Import {
        type_name: Some("ModuleNotFoundError".into()),
        message: "No module named 'numpyy'".into(),
        traceback: Some("Traceback (most recent call last):\n".into()),
    }
}
