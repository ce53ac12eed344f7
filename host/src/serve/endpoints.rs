//! The endpoints: each reads its request, runs its calls through the host
//! and writes its answer. The rules every request passes first are the
//! guard's; the status each error gets is `api`'s.

use super::api::{self, ApiError, BatchBody, CallBody, CallFailure, Order, Outcome};
use super::app::{App, InFlight, Served};
use crate::{Request, Response};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Runs one call, counting it and logging it; with `hide_internals`, a
/// failure is logged whole at `warn` and its caller gets it without internals.
async fn run_call(app: &App, served: &Served, request: Request) -> Result<Response, CallFailure> {
    let started = Instant::now();
    let command = request.command.clone();
    let session = request.session.clone();
    let result = served.host.call(request).await;
    let elapsed = started.elapsed();
    app.metrics
        .observe(&served.name, &command, result.as_ref().map(|_| ()), elapsed);
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    };
    let worker = result.as_ref().ok().and_then(|r| r.worker_pid);
    tracing::debug!(
        target: "snakepen::serve",
        pool = %served.name,
        command = %command,
        session = session.as_deref().unwrap_or(""),
        worker,
        outcome,
        latency_ms = elapsed.as_secs_f64() * 1e3,
        "call"
    );
    result.map_err(|error| failure(app, &command, error))
}

/// A failed call as its caller gets it: whole, or with `hide_internals`
/// without internals (logged whole at `warn`, under a request id).
fn failure(app: &App, command: &str, error: crate::CallError) -> CallFailure {
    if !app.settings.hide_internals {
        return CallFailure {
            error,
            request_id: None,
        };
    }
    let n = app.requests.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("{:x}-{n}", app.started);
    tracing::warn!(
        target: "snakepen::serve",
        request_id,
        command = %command,
        error = ?error,
        "call failed (its caller got it without internals)"
    );
    CallFailure {
        error: api::without_internals(&error, command),
        request_id: Some(request_id),
    }
}

/// A stream being answered: counted in flight and in the metrics until it
/// ends or its client leaves (whichever drops it).
struct OpenStream {
    app: Arc<App>,
    pool: String,
    command: String,
    started: Instant,
    sent: u64,
    _in_flight: InFlight,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.app
            .metrics
            .stream_closed(&self.pool, &self.command, self.sent);
    }
}

/// `POST /v1/stream`: one call whose answer comes as Server-Sent Events,
/// one `chunk` event per chunk (its JSON as the data; `chunk-base64` for
/// one that is not JSON), then `end` with the outcome as `/v1/call` writes
/// it, or `error` with the error. A client that hangs up stops the call:
/// the handler's generator is closed on its worker.
#[utoipa::path(post, path = "/v1/stream", tag = "calls", request_body = CallBody,
    responses((status = 200, description = "Server-Sent Events: an `event: chunk` per chunk (its JSON as the data; `chunk-base64` for one that is not JSON), then `event: end` with the outcome or `event: error` with the error", content_type = "text/event-stream", body = String), api::CallErrors))]
pub(super) async fn stream(
    State(app): State<Arc<App>>,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    stream_at(app, None, body).await
}

/// `POST /v1/pools/{pool}/stream`.
#[utoipa::path(post, path = "/v1/pools/{pool}/stream", tag = "calls", request_body = CallBody, params(("pool" = String, Path, description = "The pool's name: the NAME of a `[pools.NAME]`, or `default` for `[pool]`")),
    responses((status = 200, description = "Server-Sent Events: an `event: chunk` per chunk (its JSON as the data; `chunk-base64` for one that is not JSON), then `event: end` with the outcome or `event: error` with the error", content_type = "text/event-stream", body = String), api::CallErrors))]
pub(super) async fn stream_in(
    Path(pool): Path<String>,
    State(app): State<Arc<App>>,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    stream_at(app, Some(pool), body).await
}

async fn stream_at(
    app: Arc<App>,
    path_pool: Option<String>,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let call = call_of(&app, body).await?;
    let served = &app.pools[pool_of(&app, path_pool.as_deref(), call.pool.as_deref())?];
    let (pool, host) = (served.name.clone(), served.host.clone());
    let in_flight = InFlight::enter(&app)?;
    let request = call.into_request();
    let command = request.command.clone();
    let started = Instant::now();
    let calls = host.call_stream(request);
    app.metrics.stream_opened();
    let open = OpenStream {
        app,
        pool,
        command,
        started,
        sent: 0,
        _in_flight: in_flight,
    };
    let events =
        futures_util::stream::unfold((calls, Some(open)), |(mut calls, open)| async move {
            let mut open = open?;
            let (app, pool, command, started) = (
                Arc::clone(&open.app),
                open.pool.clone(),
                open.command.clone(),
                open.started,
            );
            let event = match calls.next().await {
                Some(Ok(crate::StreamItem::Chunk(chunk))) => {
                    if open.sent == 0 {
                        app.metrics.first_chunk(&pool, &command, started.elapsed());
                    }
                    open.sent += 1;
                    let event = match std::str::from_utf8(&chunk) {
                        Ok(text)
                            if serde_json::from_str::<&serde_json::value::RawValue>(text)
                                .is_ok() =>
                        {
                            Event::default().event("chunk").data(text)
                        }
                        _ => {
                            use base64::Engine;
                            let text = base64::engine::general_purpose::STANDARD.encode(&chunk);
                            Event::default().event("chunk-base64").data(text)
                        }
                    };
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (calls, Some(open)),
                    ));
                }
                Some(Ok(crate::StreamItem::End(response))) => {
                    app.metrics
                        .observe(&pool, &command, Ok(()), started.elapsed());
                    let result = Ok(response);
                    let data = Outcome::of(&result).to_bytes(false);
                    Event::default()
                        .event("end")
                        .data(String::from_utf8_lossy(&data))
                }
                Some(Err(error)) => {
                    app.metrics
                        .observe(&pool, &command, Err(&error), started.elapsed());
                    let result = Err(failure(&app, &command, error));
                    let data = Outcome::of(&result).to_bytes(false);
                    Event::default()
                        .event("error")
                        .data(String::from_utf8_lossy(&data))
                }
                None => return None,
            };
            drop(open);
            // The last event: the next poll ends the stream.
            Some((Ok(event), (calls, None)))
        });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Reads the whole body, up to `max_body_bytes` and within `body_timeout`:
/// a client that sends too much gets 413, one that sends too slowly 408.
/// (No worker is held meanwhile: the call starts once the body is here.)
async fn body_of(app: &App, body: Body) -> Result<Bytes, ApiError> {
    let (limit, within) = (app.settings.max_body_bytes, app.settings.body_timeout);
    match tokio::time::timeout(within, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if is_over_limit(&e) => Err(ApiError::body_too_large(limit)),
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

/// The body of `POST /v1/call` and `/v1/stream`: one call.
async fn call_of(app: &App, body: Body) -> Result<CallBody, ApiError> {
    let body = body_of(app, body).await?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_body("a call", &e))
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

/// The pool a call goes to: the one its path names, else the one its
/// body names, else the default; a path and a body that disagree are a 400.
fn pool_of(app: &App, path: Option<&str>, body: Option<&str>) -> Result<usize, ApiError> {
    if let (Some(path), Some(body)) = (path, body)
        && path != body
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!(
                "the path names pool {path:?} and the body pool {body:?}: name one, or the same in both"
            ),
        ));
    }
    app.pool_index(path.or(body))
}

/// `POST /v1/call`: one call, on the default pool or the one its body names.
#[utoipa::path(post, path = "/v1/call", tag = "calls", request_body = CallBody,
    responses((status = 200, description = "The handler's answer", body = Outcome), api::CallErrors))]
pub(super) async fn call(
    State(app): State<Arc<App>>,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    call_at(&app, None, body).await
}

/// `POST /v1/pools/{pool}/call`.
#[utoipa::path(post, path = "/v1/pools/{pool}/call", tag = "calls", request_body = CallBody, params(("pool" = String, Path, description = "The pool's name: the NAME of a `[pools.NAME]`, or `default` for `[pool]`")),
    responses((status = 200, description = "The handler's answer", body = Outcome), api::CallErrors))]
pub(super) async fn call_in(
    Path(pool): Path<String>,
    State(app): State<Arc<App>>,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    call_at(&app, Some(&pool), body).await
}

/// One call, on the pool the path names (if any) or the body does.
pub(super) async fn call_at(
    app: &Arc<App>,
    path_pool: Option<&str>,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    let call = call_of(app, body).await?;
    let served = &app.pools[pool_of(app, path_pool, call.pool.as_deref())?];
    let _in_flight = InFlight::enter(app)?;
    let result = run_call(app, served, call.into_request()).await;
    if let Err(e) = &result {
        return Err(ApiError::from(e));
    }
    Ok(json_response(
        StatusCode::OK,
        Outcome::of(&result).to_bytes(false),
    ))
}

/// `POST /v1/batch`: many calls; each may name its pool.
#[utoipa::path(post, path = "/v1/batch", tag = "calls", request_body = BatchBody,
    responses((status = 200, description = "`order: request`: every outcome, in request order, each with its status. `order: completion`: JSON Lines (application/x-ndjson), one outcome per call as it finishes, each with its `index`", body = api::BatchAnswer), api::CallErrors))]
pub(super) async fn batch(
    State(app): State<Arc<App>>,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    batch_at(app, None, body).await
}

/// `POST /v1/pools/{pool}/batch`.
#[utoipa::path(post, path = "/v1/pools/{pool}/batch", tag = "calls", request_body = BatchBody, params(("pool" = String, Path, description = "The pool's name: the NAME of a `[pools.NAME]`, or `default` for `[pool]`")),
    responses((status = 200, description = "As `/v1/batch`", body = api::BatchAnswer), api::CallErrors))]
pub(super) async fn batch_in(
    Path(pool): Path<String>,
    State(app): State<Arc<App>>,
    body: Body,
) -> Result<axum::response::Response, ApiError> {
    batch_at(app, Some(pool), body).await
}

async fn batch_at(
    app: Arc<App>,
    path_pool: Option<String>,
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
    let mut requests = Vec::with_capacity(batch.requests.len());
    for call in batch.requests {
        let at = pool_of(&app, path_pool.as_deref(), call.pool.as_deref())
            .map_err(|e| e.in_request(requests.len()))?;
        requests.push((at, call));
    }
    let in_flight = InFlight::enter(&app)?;
    let calls = batch_calls(&app, requests);
    let status = |result: &Result<Response, CallFailure>| match result {
        Ok(_) => 200,
        Err(e) => api::status_of(&e.error).as_u16(),
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

/// A batch's calls as they finish, each with its index: the calls of one
/// session one after another in request order (a session's state is
/// built by its earlier calls), everything else at once.
fn batch_calls(
    app: &Arc<App>,
    requests: Vec<(usize, CallBody)>,
) -> futures_util::stream::SelectAll<BoxStream<'static, (usize, Result<Response, CallFailure>)>> {
    type Queue = Vec<(usize, usize, Request)>;
    let mut sessions: Vec<Queue> = Vec::new();
    let mut session_of: std::collections::HashMap<(usize, String), usize> = Default::default();
    let mut alone = Vec::new();
    for (index, (pool, call)) in requests.into_iter().enumerate() {
        let request = call.into_request();
        match request.session.clone() {
            Some(session) => {
                let at = *session_of.entry((pool, session)).or_insert_with(|| {
                    sessions.push(Vec::new());
                    sessions.len() - 1
                });
                sessions[at].push((index, pool, request));
            }
            None => alone.push(vec![(index, pool, request)]),
        }
    }
    let streams = sessions.into_iter().chain(alone).map(|calls| {
        let app = Arc::clone(app);
        futures_util::stream::iter(calls)
            .then(move |(index, pool, request)| {
                let app = Arc::clone(&app);
                async move { (index, run_call(&app, &app.pools[pool], request).await) }
            })
            .boxed()
    });
    futures_util::stream::select_all(streams)
}

/// `GET /v1/status`: each pool's adapter, workers and counters; calls in flight.
#[utoipa::path(get, path = "/v1/status", tag = "service",
    responses((status = 200, description = "The default pool's status at the top level, every pool's under `pools`", body = Object)))]
pub(super) async fn status(State(app): State<Arc<App>>) -> axum::response::Response {
    let mut pools: Vec<serde_json::Value> = app.pools.iter().map(pool_status).collect();
    if app.settings.reload {
        for (at, status) in pools.iter_mut().enumerate() {
            status["reload"] = serde_json::to_value(app.reloads.of(at).unwrap_or_default())
                .expect("a reload state serializes");
        }
    }
    // The default pool's, at the top level too (as before there were several).
    let mut body = pools[0].clone();
    if let Some(object) = body.as_object_mut() {
        object.insert("pools".into(), pools.into());
        object.insert("in_flight".into(), app.in_flight().into());
        object.insert(
            "draining".into(),
            app.draining.load(Ordering::Acquire).into(),
        );
    }
    axum::Json(body).into_response()
}

/// One pool's part of `/v1/status`: its adapter, its workers, its cassette.
fn pool_status(served: &Served) -> serde_json::Value {
    let host = &served.host;
    serde_json::json!({
        "name": served.name,
        "adapter": {
            "name": host.adapter_name(),
            "path": host.adapter_path(),
            "contract": host.adapter_info().contract.as_ref().map(|v| format!("snakepen:adapter@{v}")),
            "counters": host.counters(),
        },
        "pool": host.pool().map(|pool| serde_json::json!({
            "module": pool.module(),
            "status": pool.status(),
            "workers": pool.workers(),
            "worker_pids": pool.worker_pids(),
            "fork_server_pid": pool.fork_server_pid(),
        })),
        "cassette_mode": host.record_mode().map(|m| m.as_str()),
    })
}

/// `GET /v1/functions`: each handler the default pool's workers serve,
/// with its parameters, docstring and payload schema (empty without a
/// pool, or until a worker is ready).
#[utoipa::path(get, path = "/v1/functions", tag = "calls",
    responses((status = 200, description = "The default pool's handlers", body = api::FunctionsAnswer)))]
pub(super) async fn functions(
    State(app): State<Arc<App>>,
) -> Result<axum::response::Response, ApiError> {
    functions_at(&app, None)
}

/// `GET /v1/pools/{pool}/functions`.
#[utoipa::path(get, path = "/v1/pools/{pool}/functions", tag = "calls", params(("pool" = String, Path, description = "The pool's name: the NAME of a `[pools.NAME]`, or `default` for `[pool]`")),
    responses((status = 200, description = "The pool's handlers", body = api::FunctionsAnswer),
              (status = 404, description = "No pool of that name", body = api::ErrorAnswer)))]
pub(super) async fn functions_in(
    Path(pool): Path<String>,
    State(app): State<Arc<App>>,
) -> Result<axum::response::Response, ApiError> {
    functions_at(&app, Some(&pool))
}

fn functions_at(app: &App, pool: Option<&str>) -> Result<axum::response::Response, ApiError> {
    let served = app.pool(pool)?;
    let handlers = served.host.pool().map(|pool| pool.handlers());
    let handlers: &[crate::Handler] = handlers.as_deref().unwrap_or_default();
    Ok(
        axum::Json(serde_json::json!({ "pool": served.name, "functions": handlers }))
            .into_response(),
    )
}

/// `GET /healthz`: the process serves.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, description = "`{\"status\": \"live\"}`", body = Object)))]
pub(super) async fn healthz() -> axum::response::Response {
    axum::Json(serde_json::json!({ "status": "live" })).into_response()
}

/// `GET /readyz`: every pool's workers are ready and the server is not draining.
#[utoipa::path(get, path = "/readyz", tag = "service", responses(
    (status = 200, description = "`{\"status\": \"ready\"}`", body = Object),
    (status = 503, description = "Not every worker is ready, or the server is draining", body = api::ErrorAnswer)))]
pub(super) async fn readyz(
    State(app): State<Arc<App>>,
) -> Result<axum::response::Response, ApiError> {
    if app.draining.load(Ordering::Acquire) {
        return Err(ApiError::draining());
    }
    for served in &app.pools {
        if let Some(status) = served.host.status()
            && !status.all_ready()
        {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "not every worker of pool {} is ready: {} of {} ({} starting, {} dead)",
                    served.name,
                    status.idle + status.busy,
                    status.size,
                    status.starting,
                    status.dead
                ),
            ));
        }
    }
    Ok(axum::Json(serde_json::json!({ "status": "ready" })).into_response())
}

/// `GET /metrics`: Prometheus (OpenMetrics) text.
#[utoipa::path(get, path = "/metrics", tag = "service", responses(
    (status = 200, description = "Calls, latency, streams and workers, each labelled with its pool", content_type = "application/openmetrics-text", body = String)))]
pub(super) async fn metrics(State(app): State<Arc<App>>) -> axum::response::Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

pub(super) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "bad-request",
        format!(
            "no endpoint {}; the API has POST /v1/call, POST /v1/stream, POST /v1/batch, GET /v1/functions, GET /v1/status, the same under /v1/pools/NAME/, /openapi.json, /healthz, /readyz and /metrics",
            uri.path()
        ),
    )
}
