//! `POST /connect/token`, `GET /.well-known/jwks.json`,
//! `GET /.well-known/oauth-authorization-server`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{OAuthError, no_store};
use crate::AppState;

/// Seconds since the epoch, from the system clock.
pub(crate) fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `POST /connect/token`: an `application/x-www-form-urlencoded` body of at most
/// `token.request_bytes_max` bytes.
pub(crate) async fn token(State(s): State<AppState>, req: Request) -> Response {
    let limit = s.config.token.request_bytes_max;
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        s.metrics.token_error("invalid_request");
        let mut e = OAuthError::invalid_request(format!("request body larger than {limit} bytes"));
        e.status = StatusCode::PAYLOAD_TOO_LARGE;
        e.into_response()
    };
    if declared.is_some_and(|n| n > limit) {
        return too_large();
    }
    if !is_form {
        s.metrics.token_error("invalid_request");
        return OAuthError::invalid_request(
            "content-type must be application/x-www-form-urlencoded",
        )
        .into_response();
    }
    let headers = req.headers().clone();
    let body: Body = req.into_body();
    let bytes = match axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX)).await
    {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    let params: Vec<(String, String)> = match serde_urlencoded::from_bytes(&bytes) {
        Ok(p) => p,
        Err(_) => {
            s.metrics.token_error("invalid_request");
            return OAuthError::invalid_request("body is not a URL-encoded form").into_response();
        }
    };
    let dpop = match dpop_header(&headers) {
        Ok(d) => d,
        Err(e) => {
            s.metrics.token_error(e.error);
            return e.into_response();
        }
    };
    match s
        .token
        .token_with_proof(&params, dpop.as_deref(), now_s())
        .await
    {
        Ok(t) => {
            let mut response = axum::Json(t).into_response();
            no_store(&mut response);
            response
        }
        Err(e) => e.into_response(),
    }
}

/// The request's one `DPoP` header (RFC 9449), if it has one.
fn dpop_header(headers: &axum::http::HeaderMap) -> Result<Option<String>, OAuthError> {
    let mut values = headers.get_all("dpop").iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(OAuthError::invalid_dpop_proof("more than one DPoP header"));
    }
    first
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| OAuthError::invalid_dpop_proof("DPoP header is not ASCII"))
        })
        .transpose()
}

/// `GET /.well-known/jwks.json`: the published keys (cacheable for a minute; new keys are
/// published before they sign).
pub(crate) async fn jwks(State(s): State<AppState>) -> Response {
    let mut response = axum::Json(s.token.jwks(now_s())).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub(crate) async fn metadata(State(s): State<AppState>) -> Response {
    axum::Json(s.token.metadata()).into_response()
}
