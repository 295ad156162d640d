//! Errors of the FHIR routes as FHIR `OperationOutcome`s (`application/fhir+json`), with the
//! HTTP status the frontend's problem documents would have: [`FhirError`] wraps the
//! frontend's [`HttpError`] and renders it the FHIR way. The answer is marked
//! [`OwnErrorFormat`] so the request layer leaves it as it is (not a problem document).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kartotek_client::ClientError;
use serde_json::{Value, json};

use super::fhir_json;
use crate::layer::OwnErrorFormat;
use crate::problem::HttpError;

/// A failed FHIR request; answered as an `OperationOutcome`.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct FhirError(#[from] pub HttpError);

impl From<ClientError> for FhirError {
    fn from(e: ClientError) -> Self {
        FhirError(HttpError::Cluster(e))
    }
}

/// The FHIR `issue-type` code of an HTTP error status.
pub fn issue_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid",
        401 => "login",
        403 => "forbidden",
        404 => "not-found",
        409 => "conflict",
        413 => "too-long",
        429 => "throttled",
        503 => "transient",
        504 => "timeout",
        _ => "exception",
    }
}

/// An `OperationOutcome` of one issue.
pub fn outcome(severity: &str, code: &str, diagnostics: &str, expression: Option<&str>) -> Value {
    let mut issue = json!({ "severity": severity, "code": code });
    if !diagnostics.is_empty() {
        issue["diagnostics"] = json!(diagnostics);
    }
    if let Some(e) = expression.filter(|e| !e.is_empty()) {
        issue["expression"] = json!([e]);
    }
    json!({ "resourceType": "OperationOutcome", "issue": [issue] })
}

/// An `OperationOutcome` of one warning (`informational`).
pub fn warning(diagnostics: &str) -> Value {
    outcome("warning", "informational", diagnostics, None)
}

impl FhirError {
    /// The status and `OperationOutcome` of this error.
    pub fn outcome(&self) -> (StatusCode, Value) {
        let problem = self.0.problem();
        let status = problem.status_code();
        let diagnostics = problem.detail.as_deref().unwrap_or(&problem.title);
        let expression = match &self.0 {
            HttpError::BadRequest { field, .. } | HttpError::Forbidden { field, .. } => {
                Some(field.as_str())
            }
            _ => None,
        };
        let severity = if status.is_server_error() {
            "fatal"
        } else {
            "error"
        };
        (
            status,
            outcome(severity, issue_code(status), diagnostics, expression),
        )
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        match &self.0 {
            HttpError::Internal(detail) => tracing::error!(error = %detail, "internal error"),
            HttpError::Cluster(e) => tracing::warn!(error = %e, "cluster call failed"),
            _ => {}
        }
        let (status, body) = self.outcome();
        let mut response = fhir_json(status, &body);
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: how to authenticate.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"kartotek\""),
            );
        }
        response.extensions_mut().insert(OwnErrorFormat);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_status_and_name_the_field() {
        let (status, o) = FhirError(HttpError::bad_request("patient.identifier", "bad")).outcome();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(o["issue"][0]["code"], "invalid");
        assert_eq!(o["issue"][0]["expression"][0], "patient.identifier");
        assert_eq!(o["issue"][0]["diagnostics"], "patient.identifier: bad");
        let (status, o) = FhirError(HttpError::Unauthenticated("no token".into())).outcome();
        assert_eq!(
            (status.as_u16(), o["issue"][0]["code"].as_str()),
            (401, Some("login"))
        );
        let (status, o) = FhirError(HttpError::Internal("secret".into())).outcome();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!o.to_string().contains("secret"));
        assert_eq!(o["issue"][0]["severity"], "fatal");
    }
}
