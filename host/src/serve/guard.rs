//! The rules every request passes before its handler runs, written once as
//! one middleware: the `Host` it names (DNS rebinding), the `Origin` it
//! comes from (a web page), the bearer token, a POST body's type (a
//! browser's cross-site "simple request" is `text/plain`) and its declared
//! size. `/healthz` and `/readyz` skip them all: a load balancer or an
//! orchestrator probes them with no token, by an address of its own, and
//! they tell nothing but "up" and "ready".
//!
//! Also here: a 405 from the router gets the API's typed body.

use super::api::ApiError;
use super::config::ServeSettings;
use super::token::Token;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashSet;
use std::sync::Arc;

/// The endpoints open to anyone who can reach the port.
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// What the rules need, resolved once from the settings.
pub(crate) struct Guard {
    token: Option<Token>,
    origins: HashSet<String>,
    /// Host names (no port), lowercase, IPv6 in brackets.
    hosts: HashSet<String>,
    max_body_bytes: usize,
}

impl Guard {
    pub(crate) fn new(settings: &ServeSettings) -> Guard {
        let mut hosts: HashSet<String> = ["localhost", "127.0.0.1", "[::1]"]
            .into_iter()
            .map(String::from)
            .collect();
        hosts.insert(match settings.listen {
            std::net::SocketAddr::V4(a) => a.ip().to_string(),
            std::net::SocketAddr::V6(a) => format!("[{}]", a.ip()),
        });
        hosts.extend(
            settings
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase()),
        );
        Guard {
            token: settings.token.clone(),
            origins: settings.allowed_origins.iter().cloned().collect(),
            hosts,
            max_body_bytes: settings.max_body_bytes,
        }
    }

    /// The refusal of `request`, if a rule refuses it.
    pub(crate) fn refusal(&self, request: &Request) -> Option<Response> {
        let headers = request.headers();
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !self.hosts.contains(&host_name(host)) {
            return Some(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "the Host header {host:?} is not this server's name (a web page may be reaching it through its own domain); call it by its address or localhost, or add the name to server.allowed_hosts"
                ),
            )
            .into_response());
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = String::from_utf8_lossy(origin.as_bytes());
            if !self.origins.contains(origin.as_ref()) {
                return Some(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "requests from web pages of {origin:?} are not allowed; add the origin to server.allowed_origins to allow them"
                    ),
                )
                .into_response());
            }
        }
        if let Some(token) = &self.token {
            let presented = headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes)
                .and_then(bearer);
            if !presented.is_some_and(|p| token.matches(p)) {
                let mut response = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this server needs its token: send the header `Authorization: Bearer TOKEN`",
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return Some(response);
            }
        }
        if request.method() == Method::POST {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let is_json = content_type.as_deref().is_some_and(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
            });
            if !is_json {
                return Some(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    format!(
                        "the body's Content-Type is {}; send it as `Content-Type: application/json`",
                        content_type.map_or("missing".into(), |t| format!("{t:?}"))
                    ),
                )
                .into_response());
            }
        }
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes as u64) {
            // Refused from the header: waiting for a body that will be refused anyway only holds the connection.
            return Some(ApiError::body_too_large(self.max_body_bytes).into_response());
        }
        None
    }
}

/// The host of a `Host` header without its port, lowercase, without a
/// trailing dot (`[::1]:80` → `[::1]`, `LocalHost.:8787` → `localhost`).
fn host_name(host: &str) -> String {
    let name = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

/// The middleware: the rules, then the handler.
pub(crate) async fn check(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    if let Some(refusal) = guard.refusal(&request) {
        return refusal;
    }
    next.run(request).await
}

/// Gives the router's bare 405 the API's typed body, naming the method
/// the endpoint takes (the router adds its `Allow` header after this).
pub(crate) async fn typed_405(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let takes = match path.as_str() {
        "/v1/call" | "/v1/batch" => "POST",
        _ => "GET",
    };
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "bad-request",
        format!("{path} takes {takes}, not {method}"),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_header_is_compared_by_its_name() {
        assert_eq!(host_name("127.0.0.1:8787"), "127.0.0.1");
        assert_eq!(host_name("[::1]:8787"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("LocalHost.:80"), "localhost");
        assert_eq!(host_name("evil.example"), "evil.example");
    }

    #[test]
    fn a_bearer_token_is_read_from_its_header() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer"), None);
    }
}
