//! `POST /connect/token`, `POST /connect/revoke` (RFC 7009), `POST /connect/introspect`
//! (RFC 7662), `GET /.well-known/jwks.json`, `GET /.well-known/oauth-authorization-server`.
//! The three POST endpoints take the same bounded form body ([`read_form`]).

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

/// The form of a POST to the token service: an `application/x-www-form-urlencoded` body of at
/// most `token.request_bytes_max` bytes, and the request's headers; or the error answer.
async fn read_form(
    s: &AppState,
    req: Request,
) -> Result<(Vec<(String, String)>, axum::http::HeaderMap), OAuthError> {
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
        let mut e = OAuthError::invalid_request(format!("request body larger than {limit} bytes"));
        e.status = StatusCode::PAYLOAD_TOO_LARGE;
        e
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    if !is_form {
        return Err(OAuthError::invalid_request(
            "content-type must be application/x-www-form-urlencoded",
        ));
    }
    let headers = req.headers().clone();
    let body: Body = req.into_body();
    let bytes = axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|_| too_large())?;
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| OAuthError::invalid_request("body is not a URL-encoded form"))?;
    Ok((params, headers))
}

/// `POST /connect/token`.
#[utoipa::path(
    post,
    path = "/connect/token",
    tag = "token",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "grant_type=client_credentials or the RFC 8693 token exchange; client_assertion (private_key_jwt); scope; optionally a DPoP header"),
    responses(
        (status = 200, description = "The access token (RFC 6749 §5.1)", content_type = "application/json"),
        (status = 400, description = "RFC 6749 error answer (`error`, `error_description`)", content_type = "application/json"),
        (status = 401, description = "`invalid_client`: client authentication failed", content_type = "application/json"),
    )
)]
pub(crate) async fn token(State(s): State<AppState>, req: Request) -> Response {
    let (params, headers) = match read_form(&s, req).await {
        Ok(f) => f,
        Err(e) => {
            s.metrics.token_error(e.error);
            return e.into_response();
        }
    };
    let dpop = match dpop_header(&headers) {
        Ok(d) => d,
        Err(e) => {
            s.metrics.token_error(e.error);
            return e.into_response();
        }
    };
    let now_s = now_s();
    let mut response = match s
        .token
        .token_with_proof(&params, dpop.as_deref(), now_s)
        .await
    {
        Ok(t) => {
            let mut response = axum::Json(t).into_response();
            no_store(&mut response);
            response
        }
        Err(e) => e.into_response(),
    };
    // RFC 9449 §8: the nonce to use next (and, after `use_dpop_nonce`, the one to retry with).
    if dpop.is_some()
        && let Some(nonce) = s.token.dpop_nonce(now_s)
        && let Ok(value) = axum::http::HeaderValue::from_str(&nonce)
    {
        response.headers_mut().insert(DPOP_NONCE_HEADER, value);
    }
    response
}

/// The header a DPoP server nonce comes in (RFC 9449 §8.1).
pub const DPOP_NONCE_HEADER: &str = "dpop-nonce";

/// `POST /connect/revoke` (RFC 7009): 200 with an empty body whether or not the token was
/// valid; an error only for a bad request or a failed client authentication.
#[utoipa::path(
    post,
    path = "/connect/revoke",
    tag = "token",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "token, and the client's private_key_jwt authentication"),
    responses(
        (status = 200, description = "Revoked (or the token was not valid)", content_type = "application/json"),
        (status = 400, description = "RFC 6749 error answer (`error`, `error_description`)", content_type = "application/json"),
        (status = 401, description = "`invalid_client`: client authentication failed", content_type = "application/json"),
    )
)]
pub(crate) async fn revoke(State(s): State<AppState>, req: Request) -> Response {
    let result = match read_form(&s, req).await {
        Ok((params, _)) => s.token.revoke(&params, now_s()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            no_store(&mut response);
            response
        }
        Err(e) => {
            s.metrics.token_error(e.error);
            e.into_response()
        }
    }
}

/// `POST /connect/introspect` (RFC 7662): `{"active": ...}` and, when active, the claims.
#[utoipa::path(
    post,
    path = "/connect/introspect",
    tag = "token",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "token, and the client's private_key_jwt authentication"),
    responses(
        (status = 200, description = "`{\"active\": ...}` and, when active, the claims", content_type = "application/json"),
        (status = 400, description = "RFC 6749 error answer (`error`, `error_description`)", content_type = "application/json"),
        (status = 401, description = "`invalid_client`: client authentication failed", content_type = "application/json"),
    )
)]
pub(crate) async fn introspect(State(s): State<AppState>, req: Request) -> Response {
    let result = match read_form(&s, req).await {
        Ok((params, _)) => s.token.introspect(&params, now_s()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(body) => {
            let mut response = axum::Json(body).into_response();
            no_store(&mut response);
            response
        }
        Err(e) => {
            s.metrics.token_error(e.error);
            e.into_response()
        }
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
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "token",
    responses((status = 200, description = "The token signing keys (JWK Set)", content_type = "application/json"))
)]
pub(crate) async fn jwks(State(s): State<AppState>) -> Response {
    let mut response = axum::Json(s.token.jwks(now_s())).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = "token",
    responses((status = 200, description = "RFC 8414 authorization server metadata", content_type = "application/json"))
)]
pub(crate) async fn metadata(State(s): State<AppState>) -> Response {
    axum::Json(s.token.metadata()).into_response()
}
