//! Errors as RFC 9457 problem details (`application/problem+json`).
//!
//! Handlers fail with an [`HttpError`]; it answers with a [`Problem`] document (`type`,
//! `title`, `status`, `detail`, `instance`, plus the `request_id` extension member). The
//! response carries the [`Problem`] as an extension too, so that the request layer can fill in
//! `instance` (the request path) and `request_id` before the document goes out. Error answers
//! that axum produces itself (405, rejected bodies) are turned into problem documents by the
//! layer as well; see [`crate::layer`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kartotek_client::ClientError;
use serde::{Deserialize, Serialize};

/// Media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Prefix of the problem types Kartotek defines (`urn:kartotek:problem:not-found`, ...).
pub const PROBLEM_TYPE_PREFIX: &str = "urn:kartotek:problem:";

/// Longest `detail` sent, in bytes (longer ones are cut on a character boundary).
pub const DETAIL_LEN_MAX: usize = 1024;

/// An RFC 9457 problem details document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// URI reference identifying the problem type (`about:blank` when only the status
    /// matters).
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type; the same for every occurrence.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Explanation of this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// URI reference of this occurrence: the request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Extension member: the request id (also in the `x-request-id` response header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    /// A problem of Kartotek type `slug` (`urn:kartotek:problem:<slug>`).
    pub fn new(slug: &str, title: impl Into<String>, status: StatusCode) -> Self {
        Problem {
            type_uri: format!("{PROBLEM_TYPE_PREFIX}{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            instance: None,
            request_id: None,
        }
    }

    /// A problem that only says its status (`type` `about:blank`, the status's reason phrase
    /// as title), as RFC 9457 section 4.2.1 describes.
    pub fn from_status(status: StatusCode) -> Self {
        Problem {
            type_uri: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: None,
            instance: None,
            request_id: None,
        }
    }

    /// With `detail` set (cut to [`DETAIL_LEN_MAX`] bytes).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(truncate(detail.into(), DETAIL_LEN_MAX));
        self
    }

    /// The status as a [`StatusCode`] (500 if out of range).
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = match serde_json::to_vec(&self) {
            Ok(body) => body,
            // Serializing plain strings and numbers cannot fail; keep a valid document anyway.
            Err(_) => {
                br#"{"type":"about:blank","title":"Internal Server Error","status":500}"#.to_vec()
            }
        };
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response.extensions_mut().insert(self);
        response
    }
}

/// Why a request failed; answered as a [`Problem`].
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No route matches the request path.
    #[error("no resource at {path}")]
    NotFound {
        /// The request path.
        path: String,
    },
    /// The request body is larger than `http.request_body_bytes_max`.
    #[error("request body larger than {limit_bytes} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit_bytes: u64,
    },
    /// No response within `http.request_timeout_ms` (waiting for a slot included).
    #[error("no response within {timeout_ms} ms")]
    Timeout {
        /// The configured timeout.
        timeout_ms: u64,
    },
    /// The cluster does not answer (or has no leader).
    #[error("cluster unavailable: {0}")]
    ClusterUnavailable(String),
    /// A call to the cluster failed.
    #[error("cluster call failed: {0}")]
    Cluster(#[from] ClientError),
    /// The request needs a valid access token (`Authorization: Bearer`) and has none, or
    /// one that does not verify.
    #[error("{0}")]
    Unauthenticated(String),
    /// A request parameter or body field is invalid; nothing was changed.
    #[error("{field}: {message}")]
    BadRequest {
        /// The parameter or field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The caller may not do this (a field names someone it may not act for); nothing was
    /// changed.
    #[error("{field}: {message}")]
    Forbidden {
        /// The parameter or field.
        field: String,
        /// Why.
        message: String,
    },
    /// A bug or an unexpected failure; the detail is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl HttpError {
    /// A [`HttpError::BadRequest`] about `field`.
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        HttpError::BadRequest {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl HttpError {
    /// The problem document of this error.
    pub fn problem(&self) -> Problem {
        match self {
            HttpError::NotFound { .. } => {
                Problem::new("not-found", "Not found", StatusCode::NOT_FOUND)
                    .with_detail(self.to_string())
            }
            HttpError::BodyTooLarge { .. } => Problem::new(
                "body-too-large",
                "Request body too large",
                StatusCode::PAYLOAD_TOO_LARGE,
            )
            .with_detail(self.to_string()),
            HttpError::Timeout { .. } => Problem::new(
                "timeout",
                "Request timed out",
                StatusCode::SERVICE_UNAVAILABLE,
            )
            .with_detail(self.to_string()),
            HttpError::ClusterUnavailable(detail) => Problem::new(
                "cluster-unavailable",
                "Cluster unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
            )
            .with_detail(detail.clone()),
            HttpError::Cluster(e) => {
                let (slug, title, status) = cluster_problem(e);
                let problem = Problem::new(slug, title, status);
                match e {
                    // The server's answer about the request: meant for the caller.
                    ClientError::InvalidArgument { .. }
                    | ClientError::NotFound(_)
                    | ClientError::FailedPrecondition(_) => problem.with_detail(e.to_string()),
                    // The node's refusal of the caller's own request (a forwarded token):
                    // why, for the caller.
                    ClientError::Status(status)
                        if matches!(
                            status.code(),
                            tonic::Code::PermissionDenied
                                | tonic::Code::Unauthenticated
                                | tonic::Code::AlreadyExists
                        ) =>
                    {
                        problem.with_detail(status.message().to_owned())
                    }
                    // Transport failures name internal addresses: logged, not sent.
                    _ => problem,
                }
            }
            HttpError::Unauthenticated(_) => Problem::new(
                "unauthenticated",
                "Unauthenticated",
                StatusCode::UNAUTHORIZED,
            )
            .with_detail(self.to_string()),
            HttpError::BadRequest { .. } => Problem::new(
                "invalid-argument",
                "Invalid argument",
                StatusCode::BAD_REQUEST,
            )
            .with_detail(self.to_string()),
            HttpError::Forbidden { .. } => {
                Problem::new("forbidden", "Forbidden", StatusCode::FORBIDDEN)
                    .with_detail(self.to_string())
            }
            HttpError::Internal(_) => Problem::new(
                "internal",
                "Internal error",
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        }
    }
}

/// Problem type, title and HTTP status of a failed cluster call.
fn cluster_problem(e: &ClientError) -> (&'static str, &'static str, StatusCode) {
    use kartotek_client::ClientError as E;
    use tonic::Code;
    match e {
        E::InvalidArgument { .. } => (
            "invalid-argument",
            "Invalid argument",
            StatusCode::BAD_REQUEST,
        ),
        E::NotFound(_) => ("not-found", "Not found", StatusCode::NOT_FOUND),
        E::FailedPrecondition(_) => ("conflict", "Conflict", StatusCode::CONFLICT),
        E::Unavailable { .. } | E::Refused { .. } => (
            "cluster-unavailable",
            "Cluster unavailable",
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        E::DeadlineExceeded { .. } => (
            "cluster-timeout",
            "Cluster did not answer in time",
            StatusCode::GATEWAY_TIMEOUT,
        ),
        // The frontend's own credentials for the cluster failed, not the caller's.
        E::Token { .. } => (
            "cluster-credentials",
            "The frontend could not authenticate to the cluster",
            StatusCode::BAD_GATEWAY,
        ),
        E::Config(_) => (
            "internal",
            "Internal error",
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        E::Status(_) => match e.code() {
            Code::PermissionDenied => ("forbidden", "Forbidden", StatusCode::FORBIDDEN),
            Code::Unauthenticated => (
                "unauthenticated",
                "Unauthenticated",
                StatusCode::UNAUTHORIZED,
            ),
            Code::AlreadyExists | Code::Aborted => ("conflict", "Conflict", StatusCode::CONFLICT),
            Code::ResourceExhausted => (
                "too-many-requests",
                "Too many requests",
                StatusCode::TOO_MANY_REQUESTS,
            ),
            Code::OutOfRange => (
                "invalid-argument",
                "Invalid argument",
                StatusCode::BAD_REQUEST,
            ),
            _ => ("cluster-error", "Cluster error", StatusCode::BAD_GATEWAY),
        },
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        match &self {
            HttpError::Internal(detail) => tracing::error!(error = %detail, "internal error"),
            HttpError::Cluster(e) => tracing::warn!(error = %e, "cluster call failed"),
            _ => {}
        }
        let unauthenticated = matches!(self, HttpError::Unauthenticated(_))
            || matches!(&self, HttpError::Cluster(ClientError::Status(s))
                if s.code() == tonic::Code::Unauthenticated);
        let mut response = self.problem().into_response();
        if unauthenticated {
            // RFC 6750 §3: how to authenticate.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"kartotek\""),
            );
        }
        response
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
pub(crate) fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> (StatusCode, String, serde_json::Value) {
        let status = response.status();
        let ct = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, ct, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn problem_document_has_the_rfc_9457_members() {
        let mut p = HttpError::NotFound {
            path: "/nope".into(),
        }
        .problem();
        p.instance = Some("/nope".into());
        p.request_id = Some("abc".into());
        let (status, ct, json) = body_of(p.into_response()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(ct, PROBLEM_JSON);
        assert_eq!(json["type"], "urn:kartotek:problem:not-found");
        assert_eq!(json["title"], "Not found");
        assert_eq!(json["status"], 404);
        assert_eq!(json["detail"], "no resource at /nope");
        assert_eq!(json["instance"], "/nope");
        assert_eq!(json["request_id"], "abc");
    }

    #[tokio::test]
    async fn optional_members_are_left_out_and_internal_details_are_not_sent() {
        let (status, _, json) =
            body_of(HttpError::Internal("secret path /etc/x".into()).into_response()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let obj = json.as_object().unwrap();
        assert!(!obj.contains_key("detail"));
        assert!(!obj.contains_key("instance"));
        assert!(!json.to_string().contains("secret"));
    }

    #[test]
    fn status_only_problems_use_about_blank_and_the_reason_phrase() {
        let p = Problem::from_status(StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(p.type_uri, "about:blank");
        assert_eq!(p.title, "Method Not Allowed");
        assert_eq!(p.status, 405);
    }

    #[test]
    fn cluster_errors_map_to_http_statuses() {
        let cases = [
            (
                ClientError::Unavailable {
                    attempts: 3,
                    last: "refused".into(),
                },
                503,
            ),
            (
                ClientError::DeadlineExceeded {
                    attempts: 1,
                    last: "slow".into(),
                },
                504,
            ),
            (ClientError::NotFound("x".into()), 404),
            (
                ClientError::InvalidArgument {
                    field: None,
                    message: "bad".into(),
                },
                400,
            ),
        ];
        for (e, status) in cases {
            let p = HttpError::from(e).problem();
            assert_eq!(p.status, status);
            assert!(
                !p.detail.unwrap_or_default().contains("refused"),
                "transport failures are not sent"
            );
        }
    }

    #[test]
    fn details_are_bounded() {
        let p = Problem::from_status(StatusCode::BAD_REQUEST).with_detail("æ".repeat(5000));
        assert!(p.detail.unwrap().len() <= DETAIL_LEN_MAX);
    }
}
