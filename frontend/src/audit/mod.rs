//! Audit forwarding: health services POST the audit events of their own systems (IHE BALP
//! `AuditEvent`s, FHIR R4 JSON) to `POST /api/v1/audit-events`, and they land in the
//! cluster's hash-chained audit log next to Kartotek's own events; `GET
//! /api/v1/audit-events?patient=…` exports that log for one patient in the same FHIR shape.
//!
//! # Module map
//!
//! - this module: the two handlers, identity, batching and idempotency.
//! - [`balp`]: the BALP shape, validation with field paths, and the export mapping.
//!
//! # Identity
//!
//! The caller needs an access token of this frontend's token service with scope
//! `kartotek:audit.write` (POST) or whatever `AuditService.Query` takes (GET:
//! `kartotek:audit.read`, or a citizen's token for their own log); the cluster is called
//! **with the caller's token** ([`crate::caller`]), never the frontend's identity. The
//! events' organisation is the token's: an agent naming another organisation is refused
//! (403, the field named) here, and the node refuses it again (`AuditService.Record` takes
//! events only in the caller token's organisation's name, unless the token is an admin's).
//! A token without an organisation cannot forward.
//!
//! # All or nothing, batched
//!
//! Every event of a POST is validated before anything is sent; the first bad field refuses
//! the whole request (400 or 403, [`balp::BalpError`]) and nothing is written. A valid POST
//! (1 to [`balp::AUDIT_EVENTS_PER_POST_MAX`] events) is **one** `AuditService.Record`, which
//! the cluster commits as one log entry (majority, fsynced) before the 201 answer.
//!
//! # Idempotent by event id
//!
//! The Record's `request_id` is derived from the caller's organisation and the **sorted set
//! of FHIR event ids** (`balp-` + 48 hex digits of SHA-256), and the events are sent sorted by
//! id. So a POST resent after a lost answer or a timeout, in any entry order, is the same
//! Record, and the cluster answers it from its deduplication table with the first answer:
//! the events are recorded once. The node scopes every request id to the calling client,
//! its organisation and the method before it is used ([`kartotek_domain::RequestId::scoped`]),
//! so one caller can never claim (block, or be answered with) another caller's ids, whatever
//! ids it sends. The node also fingerprints the request: the same ids sent again with other
//! content are refused (409), not silently dropped.
//!
//! Limits of the scheme (chosen over one Record per event, which would cost a log entry
//! each): idempotency covers a resend of the same set of events; an event id sent again
//! inside a *different* set is recorded again. It lasts as long as the cluster keeps request
//! ids (its deduplication window), and is per client: two clients of one organisation
//! sending the same id are two records.

pub mod balp;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kartotek_client::proto as v1;
use kartotek_domain::locator::{parse_national_id, parse_org_number};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::caller::{Authenticated, HttpCaller};
use crate::problem::{HttpError, Problem};

/// The route of both handlers.
pub const AUDIT_EVENTS_PATH: &str = "/api/v1/audit-events";
/// Media type of FHIR JSON (answers; requests may also say `application/json`).
pub const FHIR_JSON: &str = "application/fhir+json";
/// Events per export page when `_count` is absent.
pub const EXPORT_PAGE_DEFAULT: u32 = 100;
/// Most events per export page (the cluster's query maximum).
pub const EXPORT_PAGE_MAX: u32 = kartotek_domain::limits::AUDIT_QUERY_LIMIT_MAX as u32;

/// What a POST answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Recorded {
    /// How many events were recorded.
    pub recorded: usize,
    /// The chain seq of the first (events are chained in the order of `ids`).
    pub first_seq: u64,
    /// The chain seq of the last.
    pub last_seq: u64,
    /// The FHIR ids of the events, sorted (the order they were chained in).
    pub ids: Vec<String>,
}

/// The parameters of an export.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// The patient: a national id, or `urn:oid:2.16.578.1.12.4.1.4.1|<national id>`.
    pub patient: String,
    /// Only events with chain seq at least this (the `next` link gives it).
    #[serde(default)]
    pub from_seq: Option<u64>,
    /// Events per page (1 to 1000; default 100).
    #[serde(default, rename = "_count")]
    pub count: Option<u32>,
}

/// The Record `request_id` of a POST by `org` of events `ids` (sorted): see the module docs.
pub fn request_id_of(org: &str, sorted_ids: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"kartotek balp forward v1\0");
    h.update(org.as_bytes());
    for id in sorted_ids {
        h.update(b"\0");
        h.update(id.as_bytes());
    }
    format!("balp-{}", &hex::encode(h.finalize())[..48])
}

fn refused(e: balp::BalpError) -> HttpError {
    match e {
        balp::BalpError::Invalid { field, reason } => HttpError::bad_request(field, reason),
        balp::BalpError::OtherOrganisation { field, named, own } => HttpError::Forbidden {
            field,
            message: format!(
                "organisation {named} is not the caller's ({own}): events are logged only in \
                 the token's organisation's name"
            ),
        },
    }
}

/// The Record request of a POST body by `caller`: validated, sorted by id.
pub(crate) fn record_request(
    caller: &HttpCaller,
    body: &[u8],
) -> Result<(v1::RecordAuditEventsRequest, Vec<String>), HttpError> {
    let org = caller.org().ok_or_else(|| HttpError::Forbidden {
        field: "authorization".into(),
        message: "the access token names no organisation: events are logged in the token's \
                  organisation's name"
            .into(),
    })?;
    let org =
        parse_org_number("org", org).map_err(|e| HttpError::Internal(format!("token org: {e}")))?;
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| HttpError::bad_request("body", format!("is not JSON: {e}")))?;
    let mut events = balp::parse_post(&body, &org).map_err(refused)?;
    events.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let request = v1::RecordAuditEventsRequest {
        request_id: request_id_of(org.as_str(), &id_refs),
        events: events.into_iter().map(|e| e.event).collect(),
    };
    Ok((request, ids))
}

/// Forwards BALP audit events into the cluster's audit chain.
///
/// The body is one FHIR R4 `AuditEvent` or a `Bundle` (`batch`, `transaction` or
/// `collection`) of up to 500; each is validated (the problem document names the first bad
/// field's JSON path) and one bad event refuses the request with nothing written. The
/// events' organisation is the token's. Resending the same events records them once.
#[utoipa::path(
    post,
    path = "/api/v1/audit-events",
    tag = "audit",
    request_body(content = Object, description = "A FHIR R4 AuditEvent (IHE BALP) or a Bundle of them", content_type = "application/fhir+json"),
    responses(
        (status = 201, description = "Recorded in the hash-chained audit log (majority, fsynced); also the answer to a resend", body = Recorded),
        (status = 400, description = "A field is invalid (named); nothing written", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "An event names another organisation than the token's, or the token lacks kartotek:audit.write", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "These event ids were sent before with other content", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn record(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<Response, HttpError> {
    let (request, ids) = record_request(&caller, &body).inspect_err(|_| {
        s.metrics.audit_events("refused", 1);
    })?;
    let answer = caller.client(&s)?.record_audit(request).await?;
    s.metrics.audit_events("recorded", ids.len() as u64);
    let recorded = Recorded {
        recorded: ids.len(),
        first_seq: answer.first_seq,
        last_seq: answer.last_seq,
        ids,
    };
    Ok((StatusCode::CREATED, Json(recorded)).into_response())
}

/// The patient of an export's `patient` parameter.
fn export_patient(p: &str) -> Result<String, HttpError> {
    let value = match p.split_once('|') {
        Some((system, value))
            if system == balp::NATIONAL_ID_SYSTEM || system == balp::D_NUMBER_SYSTEM =>
        {
            value
        }
        Some(_) => {
            return Err(HttpError::bad_request(
                "patient",
                format!("the identifier system must be {}", balp::NATIONAL_ID_SYSTEM),
            ));
        }
        None => p,
    };
    parse_national_id("patient", value)
        .map(|id| id.as_str().to_owned())
        .map_err(|e| HttpError::bad_request(e.field, e.reason))
}

/// Exports the audit log of one patient as a FHIR `Bundle` (searchset) of BALP `AuditEvent`s.
///
/// Kartotek's own events (the serving node as the server agent) and forwarded ones, oldest
/// first, one page at a time (`next` link). Answered with the caller's token: who may read
/// is what `AuditService.Query` allows that token (the audit-read scope, or a citizen for
/// their own log). The export is itself audited.
#[utoipa::path(
    get,
    path = "/api/v1/audit-events",
    tag = "audit",
    params(ExportQuery),
    responses(
        (status = 200, description = "A FHIR searchset Bundle of AuditEvents", content_type = "application/fhir+json"),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not read this patient's audit log", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn export(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(q): Query<ExportQuery>,
) -> Result<Response, HttpError> {
    let patient = export_patient(&q.patient)?;
    let count = q.count.unwrap_or(EXPORT_PAGE_DEFAULT);
    if !(1..=EXPORT_PAGE_MAX).contains(&count) {
        return Err(HttpError::bad_request(
            "_count",
            format!("must be 1 to {EXPORT_PAGE_MAX}"),
        ));
    }
    let answer = caller
        .client(&s)?
        .query_audit(v1::QueryAuditRequest {
            patient: patient.clone(),
            from_seq: q.from_seq.unwrap_or(0),
            limit: count,
            ..Default::default()
        })
        .await?;
    let base = format!(
        "{}{AUDIT_EVENTS_PATH}",
        s.config.public_base_url.trim_end_matches('/')
    );
    let mut links = vec![json!({ "relation": "self", "url": format!(
        "{base}?patient={patient}&from_seq={}&_count={count}", q.from_seq.unwrap_or(0)) })];
    if answer.next_seq != 0 {
        links.push(json!({ "relation": "next", "url": format!(
            "{base}?patient={patient}&from_seq={}&_count={count}", answer.next_seq) }));
    }
    let entries: Vec<Value> = answer
        .events
        .iter()
        .map(|e| {
            json!({
                "fullUrl": format!("urn:kartotek:audit:{}", e.seq),
                "resource": balp::to_fhir(e),
                "search": { "mode": "match" },
            })
        })
        .collect();
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": entries,
    });
    let mut response = Json(bundle).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(FHIR_JSON),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_deterministic_valid_and_tied_to_org_and_ids() {
        let a = request_id_of("974760673", &["a", "b"]);
        assert_eq!(a, request_id_of("974760673", &["a", "b"]));
        assert_ne!(a, request_id_of("981275721", &["a", "b"]));
        assert_ne!(a, request_id_of("974760673", &["a"]));
        // Framed: moving a separator changes it.
        assert_ne!(
            request_id_of("974760673", &["ab"]),
            request_id_of("974760673", &["a", "b"])
        );
        kartotek_domain::RequestId::parse(&a).unwrap();
    }

    #[test]
    fn export_patients_take_the_identifier_token_form() {
        assert_eq!(
            export_patient("urn:oid:2.16.578.1.12.4.1.4.1|15076500565").unwrap(),
            "15076500565"
        );
        assert_eq!(export_patient("15076500565").unwrap(), "15076500565");
        match export_patient("urn:other|15076500565") {
            Err(HttpError::BadRequest { field, .. }) => assert_eq!(field, "patient"),
            other => panic!("{other:?}"),
        }
        assert!(export_patient("15076500566").is_err());
    }
}
