//! `snakepen serve`: a [`Host`] as a long-running HTTP service (axum), so
//! that any language can call Python workers through it.
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /v1/call` | one call: `{"command", "payload", "session", "deadline_ms"}` |
//! | `POST /v1/batch` | `{"requests": [...], "order": "request"}` → `{"results": [...]}` in request order; `"order": "completion"` → JSON Lines, one per call as it finishes, each with its `index` |
//! | `GET /v1/status` | the adapter, the pool's counters, calls in flight |
//! | `GET /healthz` | 200 while the process serves |
//! | `GET /readyz` | 200 when every worker is ready and the server is not draining, else 503 |
//! | `GET /metrics` | Prometheus text |
//!
//! Status codes are in [`api`]'s table. On shutdown ([`Server::run`]'s
//! signal) the server drains: new calls get 503, calls in flight have
//! `drain_grace` to finish, then the listener closes and the host shuts down
//! (a call still running then fails, and its client gets the error).
//! A client that goes away cancels its call: the host's calls are
//! cancellation-safe, so its worker is freed whatever the client does.

mod api;
pub mod config;
mod metrics;

pub use config::{ConfigError, DEFAULT_LISTEN, ServeSettings, ServiceConfig};

use crate::{CallError, Host, Request, Response};
use api::{ApiError, BatchBody, CallBody, Order, Outcome};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use metrics::Metrics;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A host served over HTTP.
pub struct Server {
    app: Arc<App>,
}

struct App {
    host: Host,
    settings: ServeSettings,
    metrics: Metrics,
    draining: AtomicBool,
    /// Calls (and batches) being served.
    in_flight: watch::Sender<usize>,
}

/// Counts one call in flight for as long as it lives.
struct InFlight(Arc<App>);

impl InFlight {
    fn enter(app: &Arc<App>) -> Result<InFlight, ApiError> {
        if app.draining.load(Ordering::Acquire) {
            return Err(ApiError::draining());
        }
        app.in_flight.send_modify(|n| *n += 1);
        Ok(InFlight(Arc::clone(app)))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.send_modify(|n| *n -= 1);
    }
}

impl Server {
    /// Serves `host` with `settings`.
    pub fn new(host: Host, settings: ServeSettings) -> Server {
        let metrics = Metrics::new(&host);
        Server {
            app: Arc::new(App {
                host,
                settings,
                metrics,
                draining: AtomicBool::new(false),
                in_flight: watch::channel(0).0,
            }),
        }
    }

    /// The routes, for embedding in a larger axum application.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/call", post(call))
            .route("/v1/batch", post(batch))
            .route("/v1/status", get(status))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .fallback(not_found)
            .with_state(Arc::clone(&self.app))
    }

    /// Serves on `listener` until `shutdown` resolves, then drains: new
    /// calls get 503 while calls in flight have `drain_grace` to finish;
    /// then the listener closes and the host shuts down. Fails only if
    /// the listener does.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = Arc::clone(&self.app);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = axum::serve(listener, self.router())
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future();
        let mut serving = tokio::spawn(serving);
        tokio::select! {
            result = &mut serving => {
                return result.unwrap_or_else(|e| Err(std::io::Error::other(e)));
            }
            () = shutdown => {}
        }
        app.draining.store(true, Ordering::Release);
        let grace = app.settings.drain_grace;
        let in_flight = *app.in_flight.borrow();
        tracing::info!(
            in_flight,
            ?grace,
            "draining: new calls get 503, calls in flight may finish"
        );
        let mut count = app.in_flight.subscribe();
        let drained = tokio::time::timeout(grace, count.wait_for(|n| *n == 0))
            .await
            .is_ok();
        if !drained {
            let left = *app.in_flight.borrow();
            tracing::warn!(
                left,
                "calls still running after the drain grace; stopping them"
            );
            if let Some(pool) = app.host.pool() {
                pool.update_settings(|s| s.shutdown_grace = Duration::ZERO);
            }
        }
        let _ = stop.send(());
        if let Err(e) = app.host.close().await {
            tracing::error!("{e}");
        }
        match serving.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Runs one call, counting it and logging it.
async fn run_call(app: &App, request: Request) -> Result<Response, CallError> {
    let started = Instant::now();
    let command = request.command.clone();
    let session = request.session.clone();
    let result = app.host.call(request).await;
    let elapsed = started.elapsed();
    app.metrics
        .observe(&command, result.as_ref().map(|_| ()), elapsed);
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    };
    let worker = result.as_ref().ok().and_then(|r| r.worker_pid);
    tracing::debug!(
        target: "snakepen::serve",
        command = %command,
        session = session.as_deref().unwrap_or(""),
        worker,
        outcome,
        latency_ms = elapsed.as_secs_f64() * 1e3,
        "call"
    );
    result
}

/// Reads the whole body, up to `max_body_bytes` and within `body_timeout`:
/// a client that sends too much gets 413, one that sends too slowly 408.
/// (No worker is held meanwhile: the call starts once the body is here.)
async fn body_of(app: &App, body: Body) -> Result<Bytes, ApiError> {
    let (limit, within) = (app.settings.max_body_bytes, app.settings.body_timeout);
    match tokio::time::timeout(within, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if is_over_limit(&e) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad-request",
            format!(
                "the body is over the server's limit of {limit} bytes; send less, or raise server.max_body_bytes"
            ),
        )),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("the body could not be read: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "bad-request",
            format!(
                "the body did not arrive within {within:?}; send it whole, or raise server.body_timeout_ms"
            ),
        )),
    }
}

/// Whether reading a body failed on the size limit (http-body-util's
/// `LengthLimitError`, somewhere in the error's chain).
fn is_over_limit(error: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

fn json_response(status: StatusCode, bytes: Vec<u8>) -> axum::response::Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(bytes),
    )
        .into_response()
}

async fn call(
    State(app): State<Arc<App>>,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    let body = body_of(&app, body).await?;
    let call: CallBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_body("a call", &e))?;
    let _in_flight = InFlight::enter(&app)?;
    let result = run_call(&app, call.into_request()).await;
    if let Err(e) = &result {
        return Err(ApiError::from(e));
    }
    Ok(json_response(
        StatusCode::OK,
        Outcome::of(&result).to_bytes(false),
    ))
}

async fn batch(
    State(app): State<Arc<App>>,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    let body = body_of(&app, body).await?;
    let batch: BatchBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_body("a batch", &e))?;
    if batch.requests.len() > app.settings.max_batch {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!(
                "the batch has {} requests, over the server's limit of {}; split it, or raise server.max_batch",
                batch.requests.len(),
                app.settings.max_batch
            ),
        ));
    }
    let in_flight = InFlight::enter(&app)?;
    let calls: FuturesUnordered<_> = batch
        .requests
        .into_iter()
        .enumerate()
        .map(|(index, call)| {
            let app = Arc::clone(&app);
            async move { (index, run_call(&app, call.into_request()).await) }
        })
        .collect();
    let status = |result: &Result<Response, CallError>| match result {
        Ok(_) => 200,
        Err(e) => api::status_of(e).as_u16(),
    };
    match batch.order {
        Order::Request => {
            let mut results: Vec<_> = calls.collect().await;
            results.sort_by_key(|(index, _)| *index);
            let outcomes: Vec<Outcome> = results
                .iter()
                .map(|(_, result)| Outcome {
                    status: Some(status(result)),
                    ..Outcome::of(result)
                })
                .collect();
            let bytes = serde_json::to_vec(&serde_json::json!({ "results": outcomes }))
                .expect("outcomes serialize");
            drop(in_flight);
            Ok(json_response(StatusCode::OK, bytes))
        }
        Order::Completion => {
            // The guard goes with the stream: the batch is in flight until its last line.
            let lines = calls.map(move |(index, result)| {
                let _ = &in_flight;
                let outcome = Outcome {
                    index: Some(index),
                    status: Some(status(&result)),
                    ..Outcome::of(&result)
                };
                Ok::<_, std::convert::Infallible>(outcome.to_bytes(true))
            });
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-ndjson")],
                Body::from_stream(lines),
            )
                .into_response())
        }
    }
}

async fn status(State(app): State<Arc<App>>) -> axum::response::Response {
    let host = &app.host;
    let body = serde_json::json!({
        "adapter": {
            "name": host.adapter_name(),
            "path": host.adapter_path(),
            "contract": host.adapter_info().contract.as_ref().map(|v| format!("snakepen:adapter@{v}")),
            "counters": host.counters(),
        },
        "pool": host.pool().map(|pool| serde_json::json!({
            "module": pool.module(),
            "status": pool.status(),
            "worker_pids": pool.worker_pids(),
            "fork_server_pid": pool.fork_server_pid(),
        })),
        "cassette_mode": host.record_mode().map(|m| m.as_str()),
        "in_flight": *app.in_flight.borrow(),
        "draining": app.draining.load(Ordering::Acquire),
    });
    axum::Json(body).into_response()
}

async fn healthz() -> axum::response::Response {
    axum::Json(serde_json::json!({ "status": "live" })).into_response()
}

async fn readyz(State(app): State<Arc<App>>) -> Result<axum::response::Response, ApiError> {
    if app.draining.load(Ordering::Acquire) {
        return Err(ApiError::draining());
    }
    if let Some(status) = app.host.status()
        && !status.all_ready()
    {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "not every worker is ready: {} of {} ({} starting, {} dead)",
                status.idle + status.busy,
                status.size,
                status.starting,
                status.dead
            ),
        ));
    }
    Ok(axum::Json(serde_json::json!({ "status": "ready" })).into_response())
}

async fn metrics(State(app): State<Arc<App>>) -> axum::response::Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "bad-request",
        format!(
            "no endpoint {}; the API has POST /v1/call, POST /v1/batch, GET /v1/status, /healthz, /readyz and /metrics",
            uri.path()
        ),
    )
}
