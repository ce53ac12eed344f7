//! `[server]`: where and how the HTTP API listens, resolved into
//! [`ServeSettings`] with its defaults, and the one rule about exposure (no
//! address beyond loopback without a token).

use super::file::{ConfigError, ServiceConfig};
use crate::serve::token::Token;
use std::net::SocketAddr;
use std::time::Duration;

/// The address `snakepen serve` listens on unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

/// The server's own settings, resolved from `[server]` and defaults.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ServeSettings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// How long a client may take to send its request body.
    pub body_timeout: Duration,
    /// How long in-flight calls may take to finish once a shutdown began.
    pub drain_grace: Duration,
    /// The most requests one batch may carry.
    pub max_batch: usize,
    /// The bearer token requests must carry, if any.
    pub token: Option<Token>,
    /// Whether a non-loopback address may be served without a token.
    pub insecure_no_auth: bool,
    /// Origins a browser may call from.
    pub allowed_origins: Vec<String>,
    /// Host names requests may name besides the listen address and loopback.
    pub allowed_hosts: Vec<String>,
    /// How long a request's headers may take once their first byte came.
    pub header_timeout: Duration,
    /// How long a connection may sit without a request.
    pub idle_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
    /// Whether error bodies leave out internals (logged instead).
    pub hide_internals: bool,
    /// Development: serve each pool's module anew when it (or a `.py`
    /// file beside it) changes (`snakepen serve --reload`).
    pub reload: bool,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            listen: DEFAULT_LISTEN.parse().expect("the default address parses"),
            max_body_bytes: 16 << 20,
            body_timeout: Duration::from_secs(30),
            drain_grace: Duration::from_secs(10),
            max_batch: 1000,
            token: None,
            insecure_no_auth: false,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            // Any real client sends its headers in one go; 10 s is plenty
            // even over a slow link, and bounds a slowloris connection.
            header_timeout: Duration::from_secs(10),
            // Longer than clients' usual pause between calls, shorter than
            // load balancers' idle timeouts (60 s and up) would make sense to exceed.
            idle_timeout: Duration::from_secs(60),
            // Half the usual default descriptor limit (1024), leaving room
            // for the workers' pipes, sockets and the adapters' files.
            max_connections: 512,
            hide_internals: false,
            reload: false,
        }
    }
}

/// Why a server may not start with its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExposureError {
    /// A non-loopback address without a token.
    #[error(
        "{listen} is reachable from other machines, and no token is set: anyone who can reach it could run the service's code"
    )]
    Unguarded {
        /// The address.
        listen: SocketAddr,
    },
}

impl ServeSettings {
    /// Refuses a non-loopback listen address without a token, unless
    /// `insecure_no_auth` says something else guards it.
    pub fn check_exposure(&self) -> Result<(), ExposureError> {
        if self.token.is_none() && !self.insecure_no_auth && !self.listen.ip().is_loopback() {
            return Err(ExposureError::Unguarded {
                listen: self.listen,
            });
        }
        Ok(())
    }
}

/// Parses a listen address: `IP:PORT`, or `localhost:PORT` for `127.0.0.1:PORT`.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Some(port) = text.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|e| format!("{port:?} is not a port ({e})"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse()
        .map_err(|e: std::net::AddrParseError| e.to_string())
}

impl ServiceConfig {
    /// `[server]` with its defaults (the token file is read and checked).
    pub fn serve_settings(&self) -> Result<ServeSettings, ConfigError> {
        let defaults = ServeSettings::default();
        let server = &self.server;
        let listen = match &server.listen {
            None => defaults.listen,
            Some(listen) => parse_listen(listen.get_ref()).map_err(|e| {
                self.error_at(
                    listen,
                    format!(
                        "`server.listen` = {:?} is not an address ({e}); write it as \"127.0.0.1:8787\" or \"localhost:8787\"",
                        listen.get_ref()
                    ),
                )
            })?,
        };
        let token = match &server.token_file {
            None => None,
            Some(file) => Some(
                Token::from_file(&self.path(file.get_ref()))
                    .map_err(|e| self.error_at(file, format!("`server.token_file`: {e}")))?,
            ),
        };
        let ms = Duration::from_millis;
        Ok(ServeSettings {
            listen,
            max_body_bytes: self
                .positive("server.max_body_bytes", &server.max_body_bytes)?
                .unwrap_or(defaults.max_body_bytes),
            body_timeout: self
                .positive("server.body_timeout_ms", &server.body_timeout_ms)?
                .map_or(defaults.body_timeout, ms),
            drain_grace: server.drain_grace_ms.map_or(defaults.drain_grace, ms),
            max_batch: self
                .positive("server.max_batch", &server.max_batch)?
                .unwrap_or(defaults.max_batch),
            token,
            insecure_no_auth: server.insecure_no_auth,
            allowed_origins: server.allowed_origins.clone(),
            allowed_hosts: server.allowed_hosts.clone(),
            header_timeout: self
                .positive("server.header_timeout_ms", &server.header_timeout_ms)?
                .map_or(defaults.header_timeout, ms),
            idle_timeout: self
                .positive("server.idle_timeout_ms", &server.idle_timeout_ms)?
                .map_or(defaults.idle_timeout, ms),
            max_connections: self
                .positive("server.max_connections", &server.max_connections)?
                .unwrap_or(defaults.max_connections),
            hide_internals: server.hide_internals,
            reload: false,
        })
    }
}
