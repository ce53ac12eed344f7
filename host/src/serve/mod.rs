//! `snakepen serve`: a [`Host`] as a long-running HTTP service (axum), so
//! that any language can call Python workers through it.
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /v1/call` | one call: `{"command", "payload", "session", "deadline_ms"}` |
//! | `POST /v1/stream` | the same call, answered as Server-Sent Events: `chunk`s, then `end` or `error` |
//! | `POST /v1/batch` | `{"requests": [...], "order": "request"}` → `{"results": [...]}` in request order; `"order": "completion"` → JSON Lines, one per call as it finishes, each with its `index` |
//! | `GET /v1/status` | the adapter, the pool's counters, calls in flight |
//! | `GET /v1/functions` | each handler: parameters, docstring, kind, payload schema |
//! | `GET /openapi.json` | the API as OpenAPI 3.1, with a request schema per handler |
//! | `POST /v1/pools/{pool}/call`, `…/stream`, `…/batch`, `GET …/functions` | the same, on a named pool (a body's `"pool"` does as well) |
//! | `GET /healthz` | 200 while the process serves |
//! | `GET /readyz` | 200 when every worker is ready and the server is not draining, else 503 |
//! | `GET /metrics` | Prometheus text |
//!
//! Every request but `/healthz` and `/readyz` passes [`guard`]'s rules
//! first (Host, Origin, token, Content-Type, declared size), and every
//! connection [`connections`]' limits. A batch runs the calls of one
//! session one after another, in request order, and everything else at
//! once. With `hide_internals`, a failed call's body leaves out what only
//! an operator should see and carries a request id instead, under which
//! the whole error is logged at `warn`.
//!
//! Status codes are in [`api`]'s table. On shutdown ([`Server::run`]'s
//! signal) the server drains: new calls get 503, calls in flight have
//! `drain_grace` to finish, then the listener closes and the host shuts down
//! (a call still running then fails, and its client gets the error).
//! A client that goes away cancels its call: the host's calls are
//! cancellation-safe, so its worker is freed whatever the client does.

mod api;
mod app;
pub mod config;
mod connections;
mod endpoints;
mod guard;
mod metrics;
mod openapi;
mod reload;
mod token;

pub use config::{
    ConfigError, DEFAULT_LISTEN, DEFAULT_POOL, ExposureError, NamedPool, ServeSettings,
    ServiceConfig, parse_listen,
};
pub use token::{Token, TokenError};

use crate::Host;
use app::App;
use axum::Router;
use axum::routing::{get, post};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A host served over HTTP.
pub struct Server {
    app: Arc<App>,
}

impl Server {
    /// Serves `host` with `settings`, as the pool named `default`.
    pub fn new(host: Host, settings: ServeSettings) -> Server {
        Server::with_pools(vec![(config::DEFAULT_POOL.to_string(), host)], settings)
    }

    /// Serves several pools, each a host, by name; the first is the
    /// default (a request that names no pool goes to it).
    ///
    /// # Panics
    /// If `pools` is empty.
    pub fn with_pools(pools: Vec<(String, Host)>, settings: ServeSettings) -> Server {
        assert!(!pools.is_empty(), "a server serves at least one pool");
        let pools = pools
            .into_iter()
            .map(|(name, host)| app::Served { name, host })
            .collect();
        Server {
            app: Arc::new(App::new(pools, settings)),
        }
    }

    /// The routes with their guard (Host, Origin, token, Content-Type,
    /// declared size) and typed 405s, for embedding in a larger axum
    /// application (the connection limits are [`Server::run`]'s).
    pub fn router(&self) -> Router {
        self.routes(Arc::new(guard::Guard::new(&self.app.settings)))
    }

    fn routes(&self, guard: Arc<guard::Guard>) -> Router {
        Router::new()
            .route("/v1/call", post(endpoints::call))
            .route("/v1/stream", post(endpoints::stream))
            .route("/v1/batch", post(endpoints::batch))
            .route("/v1/status", get(endpoints::status))
            .route("/v1/functions", get(endpoints::functions))
            .route("/openapi.json", get(openapi::document))
            .route("/v1/pools/{pool}/call", post(endpoints::call_in))
            .route("/v1/pools/{pool}/stream", post(endpoints::stream_in))
            .route("/v1/pools/{pool}/batch", post(endpoints::batch_in))
            .route("/v1/pools/{pool}/functions", get(endpoints::functions_in))
            .route("/healthz", get(endpoints::healthz))
            .route("/readyz", get(endpoints::readyz))
            .route("/metrics", get(endpoints::metrics))
            .fallback(endpoints::not_found)
            .layer(axum::middleware::from_fn(guard::typed_405))
            .layer(axum::middleware::from_fn_with_state(guard, guard::check))
            .with_state(Arc::clone(&self.app))
    }

    /// Serves on `listener` until `shutdown` resolves, within the
    /// settings' connection limits, then drains: new calls get 503 while
    /// calls in flight have `drain_grace` to finish; then the listener
    /// closes and the host shuts down. Fails only if the serving task does.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = Arc::clone(&self.app);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = connections::Limits {
            header_timeout: app.settings.header_timeout,
            idle_timeout: app.settings.idle_timeout,
            max_connections: app.settings.max_connections,
        };
        let guard = Arc::new(guard::Guard::new(&app.settings));
        let dispatch = Dispatch {
            app: Arc::clone(&app),
            router: self.routes(Arc::clone(&guard)),
            guard,
        };
        let serving = connections::serve(listener, dispatch, limits, async {
            let _ = stopped.await;
        });
        let mut serving = tokio::spawn(serving);
        let watching = app.settings.reload.then(|| {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                if let Err(e) = reload::watch(app).await {
                    tracing::error!("--reload: {e}; the server goes on without reloading");
                }
            })
        });
        tokio::select! {
            result = &mut serving => {
                if let Some(watching) = &watching {
                    watching.abort();
                }
                return result.map_err(std::io::Error::other);
            }
            () = shutdown => {}
        }
        if let Some(watching) = watching {
            watching.abort();
        }
        let grace = app.settings.drain_grace;
        tracing::info!(
            in_flight = app.in_flight(),
            ?grace,
            "draining: new calls get 503, calls in flight may finish"
        );
        if !app.drain(grace).await {
            let left = app.in_flight();
            tracing::warn!(
                left,
                "calls still running after the drain grace; stopping them"
            );
            for served in &app.pools {
                if let Some(pool) = served.host.pool() {
                    pool.update_settings(|s| s.shutdown_grace = Duration::ZERO);
                }
            }
        }
        let _ = stop.send(());
        let closing = app.pools.iter().map(|served| served.host.close());
        for result in futures_util::future::join_all(closing).await {
            if let Err(e) = result {
                tracing::error!("{e}");
            }
        }
        serving.await.map_err(std::io::Error::other)
    }
}

/// What a connection does with each request: `POST /v1/call`, the call
/// every client makes, goes past the guard's rules straight to its
/// endpoint; every other request through the router (with the same rules).
/// The router's layers cost a call some twenty allocations and boxed
/// futures (a fifth of the host's instructions per HTTP call on the mock
/// adapter, measured with callgrind), for nothing this path needs.
#[derive(Clone)]
pub(crate) struct Dispatch {
    app: Arc<App>,
    guard: Arc<guard::Guard>,
    router: Router,
}

impl Dispatch {
    pub(crate) async fn serve(self, request: axum::extract::Request) -> axum::response::Response {
        use axum::response::IntoResponse;
        use tower::ServiceExt;
        if request.method() == axum::http::Method::POST && request.uri().path() == "/v1/call" {
            if let Some(refusal) = self.guard.refusal(&request) {
                return refusal;
            }
            return endpoints::call_at(&self.app, None, request.into_body())
                .await
                .into_response();
        }
        match self.router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}
