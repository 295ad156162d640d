//! The one request layer every route (and the fallback) passes through.
//!
//! In order, for each request:
//! 1. request id: `x-request-id` taken when valid (1 to [`REQUEST_ID_LEN_MAX`] bytes of
//!    `A-Z a-z 0-9 - _ . : + / =`), else a new UUID v4; put into the request's extensions
//!    as [`RequestId`] and echoed in the response header;
//! 2. a tracing span `http_request` carrying the request id, method and route (the route
//!    pattern, never the path: paths will carry national ids, which stay out of logs);
//! 3. body size limit: a `content-length` above `http.request_body_bytes_max` is answered
//!    413 at once, and the body is wrapped so that reading past the limit fails (413 too);
//! 4. a concurrency limit (`http.concurrent_requests_max` slots; `/healthz` and `/metrics`
//!    take none, so that probes and scrapes still answer under load);
//! 5. a timeout (`http.request_timeout_ms`, the wait for a slot included): 503;
//! 6. error answers become problem documents (except those marked [`OwnErrorFormat`], the
//!    token endpoint's RFC 6749 errors): a [`Problem`] set by a handler gets its
//!    `instance` and `request_id` filled in, and error answers axum makes itself (405, a
//!    rejected body) are rewritten as problem documents;
//! 7. metrics: count, duration and in-flight gauge (see [`crate::metrics`]).

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::Limited;
use tracing::Instrument;

use crate::AppState;
use crate::metrics::UNMATCHED_ROUTE;
use crate::problem::{DETAIL_LEN_MAX, HttpError, PROBLEM_JSON, Problem};

/// The request id header, read from requests and set on every response.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a client, in bytes.
pub const REQUEST_ID_LEN_MAX: usize = 128;

/// Marks an error answer that has its own documented format (the token endpoint's RFC 6749
/// §5.2 JSON): the layer does not turn it into a problem document.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnErrorFormat;

/// The request's id, in the request extensions for handlers (e.g. to pass on to the cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Routes that do not take a concurrency slot.
const SLOT_FREE_ROUTES: [&str; 2] = ["/healthz", "/metrics"];

/// Routes logged at debug level (probes and scrapes come every few seconds).
const QUIET_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The client's `x-request-id` if it is acceptable.
pub fn valid_request_id(headers: &HeaderMap) -> Option<&str> {
    let id = headers.get(&X_REQUEST_ID)?.to_str().ok()?;
    let ok = !id.is_empty()
        && id.len() <= REQUEST_ID_LEN_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=".contains(&b));
    ok.then_some(id)
}

/// The request layer; installed with `axum::middleware::from_fn_with_state`.
pub(crate) async fn request_layer(
    State(s): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = match valid_request_id(req.headers()) {
        Some(id) => id.to_owned(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let span = tracing::info_span!(
        "http_request",
        request_id = %request_id,
        method = %method,
        route = %route,
    );
    async move {
        let in_flight = s.metrics.in_flight();
        let response = limited(&s, &route, req, next).await;
        let mut response = as_problem(
            response,
            &path,
            &request_id,
            s.config.http.request_body_bytes_max,
        )
        .await;
        drop(in_flight);
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(X_REQUEST_ID, v);
        }
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        s.metrics
            .observe(&route, method_label(&method), status, elapsed.as_secs_f64());
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        if QUIET_ROUTES.contains(&route.as_str()) {
            tracing::debug!(status, duration_ms, "request");
        } else {
            tracing::info!(status, duration_ms, "request");
        }
        response
    }
    .instrument(span)
    .await
}

/// Steps 3 to 5: body limit, concurrency limit, timeout.
async fn limited(s: &AppState, route: &str, req: Request, next: Next) -> Response {
    let limit = s.config.http.request_body_bytes_max;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return HttpError::BodyTooLarge { limit_bytes: limit }.into_response();
    }
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    let req = req.map(|body| Body::new(Limited::new(body, limit_usize)));
    let needs_slot = !SLOT_FREE_ROUTES.contains(&route);
    let slots = s.slots.clone();
    let work = async move {
        let _permit = if needs_slot {
            match slots.acquire_owned().await {
                Ok(permit) => Some(permit),
                Err(_) => {
                    return HttpError::Internal("request slots closed".into()).into_response();
                }
            }
        } else {
            None
        };
        next.run(req).await
    };
    match tokio::time::timeout(s.config.request_timeout(), work).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                timeout_ms = s.config.http.request_timeout_ms,
                "request timed out"
            );
            HttpError::Timeout {
                timeout_ms: s.config.http.request_timeout_ms,
            }
            .into_response()
        }
    }
}

/// Step 6: every error answer as a problem document with `instance` and `request_id`.
async fn as_problem(
    response: Response,
    path: &str,
    request_id: &str,
    limit_bytes: u64,
) -> Response {
    let status = response.status();
    if response.extensions().get::<OwnErrorFormat>().is_some() {
        return response;
    }
    let problem = match response.extensions().get::<Problem>() {
        Some(p) => p.clone(),
        None if status.is_client_error() || status.is_server_error() => {
            let is_problem = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
            if is_problem {
                return response;
            }
            let (parts, body) = response.into_parts();
            // axum's own rejections are short plain text; anything longer is dropped.
            let detail = axum::body::to_bytes(body, 4 * DETAIL_LEN_MAX)
                .await
                .ok()
                .and_then(|b| String::from_utf8(b.to_vec()).ok())
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty());
            let p = match (status, detail) {
                // The body was cut while a handler read it.
                (StatusCode::PAYLOAD_TOO_LARGE, _) => {
                    HttpError::BodyTooLarge { limit_bytes }.problem()
                }
                (_, Some(detail)) => Problem::from_status(status).with_detail(detail),
                (_, None) => Problem::from_status(status),
            };
            return finish(p, parts.headers, path, request_id);
        }
        None => return response,
    };
    let (parts, _) = response.into_parts();
    finish(problem, parts.headers, path, request_id)
}

/// Renders `p` with `instance` and `request_id` set, keeping the other headers (`allow`,
/// `retry-after`, ...) of the original answer.
fn finish(mut p: Problem, headers: HeaderMap, path: &str, request_id: &str) -> Response {
    if p.instance.is_none() {
        p.instance = Some(path.to_owned());
    }
    p.request_id = Some(request_id.to_owned());
    let mut response = p.into_response();
    for (name, value) in &headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

/// The `method` label: standard methods by name, anything else `other` (bounded values).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_str(id).unwrap());
        h
    }

    #[test]
    fn request_ids_are_checked() {
        for good in [
            "abc",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "a.b:c_d+e/f=",
        ] {
            assert_eq!(valid_request_id(&headers(good)), Some(good));
        }
        for bad in [
            "",
            "has space",
            "semi;colon",
            &"x".repeat(REQUEST_ID_LEN_MAX + 1),
        ] {
            assert_eq!(valid_request_id(&headers(bad)), None, "{bad:?}");
        }
        assert_eq!(valid_request_id(&HeaderMap::new()), None);
    }

    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
