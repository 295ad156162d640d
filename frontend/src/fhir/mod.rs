//! The FHIR R4 facade of the patient information locator, for health services that speak
//! FHIR: a read-only NRL / IHE MHD-style search answering a searchset `Bundle` of
//! `DocumentReference` pointers ("organisation X, system Y holds records about this patient;
//! fetch them at the endpoint the API catalog names").
//!
//! # Module map
//!
//! - this module: the handlers `GET /fhir/DocumentReference`, `POST
//!   /fhir/DocumentReference/_search` (form body: the national id stays out of URLs and
//!   access logs) and `GET /fhir/metadata`, identity, and the cluster calls.
//! - [`search`]: the search parameters (`patient.identifier`, `custodian.identifier`,
//!   `category`, `status`, `_count`, `_format`), parsed and checked, each with a named
//!   maximum.
//! - [`document`]: locator entries as `DocumentReference`s, and the `Bundle`.
//! - [`capability`]: the `CapabilityStatement`.
//! - [`outcome`]: errors as `OperationOutcome`s ([`outcome::FhirError`]).
//!
//! # Identity and audit
//!
//! A search needs `Authorization: Bearer` with an access token of this frontend's token
//! service ([`crate::caller`]); the lookup goes to the cluster **with the caller's token**
//! (`LocatorService.Lookup`, scope `kartotek:locator.read` or a citizen's own), so the nodes
//! check the scope and write the lookup's audit event exactly as for a gRPC lookup: actor,
//! organisation and purpose from the token, and the frontend's request id (`x-request-id`,
//! echoed in the answer) as its correlation id. The API catalog entries the pointers name
//! are read with the frontend's own identity (the catalog is public; drafts are not shown).
//! `GET /fhir/metadata` needs no token.
//!
//! Every answer is `application/fhir+json`; errors are `OperationOutcome`s with the status a
//! problem document would have (400 bad parameter, 401 no or bad token, 403 refused by the
//! cluster, 503 cluster unavailable).

pub mod capability;
pub mod document;
pub mod outcome;
pub mod search;

use std::collections::BTreeMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kartotek_client::proto as v1;
use kartotek_domain::Timestamp;
use serde_json::Value;

use self::outcome::FhirError;
use self::search::Search;
use crate::AppState;
use crate::caller::HttpCaller;
use crate::catalog::{ApiEntry, Lifecycle};
use crate::layer::RequestId;
use crate::problem::HttpError;

pub use crate::audit::FHIR_JSON;

/// The route of the type-level search (`GET`).
pub const DOCUMENT_REFERENCE_PATH: &str = "/fhir/DocumentReference";
/// The route of the form search (`POST`).
pub const SEARCH_PATH: &str = "/fhir/DocumentReference/_search";
/// The route of the CapabilityStatement.
pub const METADATA_PATH: &str = "/fhir/metadata";
/// Most distinct API catalog entries one search reads (the pointers' endpoints); pointers
/// to further ones carry the catalog id without the URL.
pub const CATALOG_LOOKUPS_MAX: usize = 32;
/// How stale a catalog entry read for a pointer may be: catalog entries change rarely and
/// are not patient data, so they are read from the nearest node (bounded staleness) rather
/// than through the leader; a node further behind answers FAILED_PRECONDITION and the read
/// is made linearizable instead.
pub const CATALOG_STALENESS_MS_MAX: u64 = 5_000;

/// `body` as FHIR JSON with `status`.
pub(crate) fn fhir_json(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = (status, bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

/// The verified caller of a FHIR request (401 without one).
fn caller_of(s: &AppState, headers: &HeaderMap) -> Result<HttpCaller, FhirError> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        HttpError::Unauthenticated(
            "this needs an access token: `Authorization: Bearer <token>` from POST \
             /connect/token"
                .into(),
        )
    })?;
    let value = value
        .to_str()
        .map_err(|_| HttpError::Unauthenticated("authorization is not visible ASCII".into()))?;
    Ok(HttpCaller::verify(s, value)?)
}

/// Searches the patient information locator: a searchset Bundle of DocumentReference pointers.
///
/// `patient.identifier` (required): `urn:oid:2.16.578.1.12.4.1.4.1|<national id>` (D-number
/// `…4.2`, H-number `…4.3`). Each pointer: custodian = the organisation, author = the
/// source system, category = the data categories, content.attachment.url = the endpoint
/// from the API catalog. The lookup is made with the caller's token and audited like the
/// gRPC lookup. Prefer `POST /fhir/DocumentReference/_search`, which keeps the national id
/// out of the URL.
#[utoipa::path(
    get,
    path = "/fhir/DocumentReference",
    tag = "fhir",
    params(search::SearchParams),
    responses(
        (status = 200, description = "A FHIR R4 searchset Bundle of DocumentReference (empty when the patient has none)", content_type = "application/fhir+json"),
        (status = 400, description = "A parameter is invalid (OperationOutcome naming it)", content_type = "application/fhir+json"),
        (status = 401, description = "No valid access token (OperationOutcome)", content_type = "application/fhir+json"),
        (status = 403, description = "The token may not look up this patient (OperationOutcome)", content_type = "application/fhir+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn search_get(
    State(s): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    let caller = caller_of(&s, &headers)?;
    let search = search::parse(query.as_deref().unwrap_or_default())?;
    answer(&s, &caller, &request_id, &search).await
}

/// The same search with the parameters in a form body (FHIR `_search`), so that the national id stays out of URLs and access logs.
///
/// The body is `application/x-www-form-urlencoded` with the parameters of `GET
/// /fhir/DocumentReference` (parameters in the query string are added to them).
#[utoipa::path(
    post,
    path = "/fhir/DocumentReference/_search",
    tag = "fhir",
    request_body(content = search::SearchParams, content_type = "application/x-www-form-urlencoded", description = "The search parameters"),
    responses(
        (status = 200, description = "A FHIR R4 searchset Bundle of DocumentReference (empty when the patient has none)", content_type = "application/fhir+json"),
        (status = 400, description = "A parameter is invalid (OperationOutcome naming it)", content_type = "application/fhir+json"),
        (status = 401, description = "No valid access token (OperationOutcome)", content_type = "application/fhir+json"),
        (status = 403, description = "The token may not look up this patient (OperationOutcome)", content_type = "application/fhir+json"),
        (status = 415, description = "The body is not a form (OperationOutcome)", content_type = "application/fhir+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn search_post(
    State(s): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, FhirError> {
    let caller = caller_of(&s, &headers)?;
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form && !body.is_empty() {
        return Ok(unsupported_media_type());
    }
    let body =
        std::str::from_utf8(&body).map_err(|_| HttpError::bad_request("body", "is not UTF-8"))?;
    let input = match query.as_deref().filter(|q| !q.is_empty()) {
        Some(q) if !body.is_empty() => format!("{q}&{body}"),
        Some(q) => q.to_owned(),
        None => body.to_owned(),
    };
    let search = search::parse(&input)?;
    answer(&s, &caller, &request_id, &search).await
}

fn unsupported_media_type() -> Response {
    let body = outcome::outcome(
        "error",
        "not-supported",
        "the body must be application/x-www-form-urlencoded search parameters",
        None,
    );
    let mut response = fhir_json(StatusCode::UNSUPPORTED_MEDIA_TYPE, &body);
    response
        .extensions_mut()
        .insert(crate::layer::OwnErrorFormat);
    response
}

/// Looks the patient up with the caller's token and answers the Bundle.
async fn answer(
    s: &AppState,
    caller: &HttpCaller,
    request_id: &RequestId,
    search: &Search,
) -> Result<Response, FhirError> {
    let request = v1::LookupLocatorRequest {
        patient: search.patient.as_str().to_owned(),
        org: search
            .custodian
            .as_ref()
            .map(|o| o.as_str().to_owned())
            .unwrap_or_default(),
        include_retired: search.superseded,
        read: None,
    };
    // The request id travels as x-request-id: the node's audit event's correlation id.
    let found = kartotek_client::correlated(
        request_id.0.clone(),
        caller.client(s)?.lookup_locator(request),
    )
    .await?;
    let retired = v1::LocatorStatus::Retired as i32;
    let matching: Vec<v1::LocatorEntry> = found
        .entries
        .into_iter()
        .filter(|e| {
            if e.status == retired {
                search.superseded
            } else {
                search.current
            }
        })
        .filter(|e| {
            search.categories.is_empty()
                || e.categories.iter().any(|c| search.categories.contains(c))
        })
        .collect();
    let total = matching.len();
    let carried: Vec<v1::LocatorEntry> = matching.into_iter().take(search.count).collect();
    let catalog = catalog_entries(s, &carried).await;
    let base = s.config.public_base_url.trim_end_matches('/');
    let resources = carried
        .iter()
        .map(|e| {
            document::document_reference(e, &search.patient, catalog.get(&e.endpoint_ref), base)
        })
        .collect();
    let bundle = document::searchset(
        resources,
        total,
        &format!("{base}{SEARCH_PATH}"),
        &Timestamp::now().to_rfc3339(),
    );
    Ok(fhir_json(StatusCode::OK, &bundle))
}

/// The published (or deprecated) catalog entries the pointers name, by id (at most
/// [`CATALOG_LOOKUPS_MAX`] distinct ones, read at once). An entry that cannot be read is
/// left out: the pointer still names its catalog id.
async fn catalog_entries(s: &AppState, entries: &[v1::LocatorEntry]) -> BTreeMap<String, ApiEntry> {
    let mut ids: Vec<&str> = entries
        .iter()
        .map(|e| e.endpoint_ref.as_str())
        .filter(|r| !r.is_empty())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(CATALOG_LOOKUPS_MAX);
    let reads = ids.iter().map(|id| catalog_entry(s, id));
    futures::future::join_all(reads)
        .await
        .into_iter()
        .filter_map(|answer| match answer {
            Ok(a) => a.entry.and_then(ApiEntry::from_proto),
            Err(e) => {
                if !matches!(e, kartotek_client::ClientError::NotFound(_)) {
                    tracing::warn!(error = %e, "catalog read for a FHIR pointer failed");
                }
                None
            }
        })
        .filter(|e| matches!(e.lifecycle, Lifecycle::Published | Lifecycle::Deprecated))
        .map(|e| (e.id.clone(), e))
        .collect()
}

/// One catalog entry, read with bounded staleness ([`CATALOG_STALENESS_MS_MAX`]), else
/// linearizably.
async fn catalog_entry(
    s: &AppState,
    id: &str,
) -> Result<v1::CatalogEntryResponse, kartotek_client::ClientError> {
    let bounded = v1::ReadOptions {
        consistency: v1::Consistency::BoundedStaleness as i32,
        max_staleness_ms: CATALOG_STALENESS_MS_MAX,
    };
    let request = |read| v1::GetCatalogEntryRequest {
        id: id.to_owned(),
        read,
    };
    match s.client.get_catalog_entry(request(Some(bounded))).await {
        Err(kartotek_client::ClientError::FailedPrecondition(_)) => {
            s.client.get_catalog_entry(request(None)).await
        }
        answer => answer,
    }
}

/// The CapabilityStatement of the FHIR facade.
///
/// FHIR R4 (4.0.1): DocumentReference with the search-type interaction and the search parameters taken. No token needed.
#[utoipa::path(
    get,
    path = "/fhir/metadata",
    tag = "fhir",
    responses((status = 200, description = "A FHIR R4 CapabilityStatement", content_type = "application/fhir+json"))
)]
pub(crate) async fn metadata(State(s): State<AppState>) -> Response {
    let base = s.config.public_base_url.trim_end_matches('/');
    fhir_json(
        StatusCode::OK,
        &capability::capability_statement(base, &Timestamp::now().to_rfc3339()),
    )
}

/// The FHIR R4 JSON schema subset the tests validate with (`frontend/tests/fhir-schema/`).
#[cfg(test)]
pub(crate) fn schema_validator() -> FhirSchema {
    let schema: Value = serde_json::from_str(include_str!(
        "../../tests/fhir-schema/fhir-r4-subset.schema.json"
    ))
    .expect("the vendored schema is JSON");
    let root = jsonschema::validator_for(&schema).expect("the vendored schema compiles");
    FhirSchema { root, schema }
}

/// The schema, compiled.
#[cfg(test)]
pub(crate) struct FhirSchema {
    root: jsonschema::Validator,
    schema: Value,
}

#[cfg(test)]
impl FhirSchema {
    pub(crate) fn is_valid(&self, resource: &Value) -> bool {
        self.root.is_valid(resource)
    }

    /// The errors of `resource`: against its own resource type's definition, so that they
    /// say which element is wrong (the root's `oneOf` only says "none matched").
    pub(crate) fn errors(&self, resource: &Value) -> Vec<String> {
        if self.root.is_valid(resource) {
            return Vec::new();
        }
        let kind = resource["resourceType"].as_str().unwrap_or_default();
        let mut one = self.schema.clone();
        one["oneOf"] = serde_json::json!([{ "$ref": format!("#/definitions/{kind}") }]);
        let errors: Vec<String> = jsonschema::validator_for(&one)
            .expect("the vendored schema compiles")
            .iter_errors(resource)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            vec![format!("not a {kind} of the schema's resources")]
        } else {
            errors
        }
    }
}

/// Panics with every schema error of `resource`.
#[cfg(test)]
pub(crate) fn assert_valid_fhir(v: &FhirSchema, resource: &Value) {
    let errors = v.errors(resource);
    assert!(errors.is_empty(), "{errors:#?}\nin {resource:#}");
}

#[cfg(test)]
mod tests {
    use kartotek_domain::locator::parse_national_id;
    use serde_json::json;

    use super::*;

    #[test]
    fn the_schema_refuses_what_fhir_refuses() {
        let v = schema_validator();
        // An empty string, an unknown element, a bad code: each refused.
        for bad in [
            json!({ "resourceType": "OperationOutcome", "issue": [{ "severity": "error", "code": "invalid", "diagnostics": "" }] }),
            json!({ "resourceType": "OperationOutcome", "issue": [], "extra": 1 }),
            json!({ "resourceType": "Bundle", "type": "list" }),
            json!({ "resourceType": "DocumentReference", "status": "current" }),
            json!({ "resourceType": "Patient" }),
        ] {
            assert!(!v.is_valid(&bad), "{bad}");
        }
    }

    #[test]
    fn every_answer_shape_is_valid_fhir_r4() {
        let v = schema_validator();
        let patient = parse_national_id("p", "15076500565").unwrap();
        let api = crate::catalog::sample_entry("nhn.test");
        let entry = v1::LocatorEntry {
            patient: patient.as_str().into(),
            org: "974760673".into(),
            system: "dips-arena".into(),
            categories: vec!["Observation".into(), "epikrise".into()],
            endpoint_ref: "nhn.test".into(),
            status: v1::LocatorStatus::Active as i32,
            first_registered: "2026-12-01T10:00:00.000Z".into(),
            last_updated: "2026-12-02T10:00:00.000Z".into(),
            create_revision: 3,
            mod_revision: 4,
        };
        let with_api = document::document_reference(&entry, &patient, Some(&api), "http://f");
        let bare = document::document_reference(
            &v1::LocatorEntry {
                endpoint_ref: String::new(),
                categories: Vec::new(),
                first_registered: String::new(),
                ..entry.clone()
            },
            &patient,
            None,
            "http://f",
        );
        assert_valid_fhir(&v, &with_api);
        assert_valid_fhir(&v, &bare);
        let now = Timestamp::now().to_rfc3339();
        let bundle = document::searchset(vec![with_api, bare], 3, "http://f/fhir/x", &now);
        assert_valid_fhir(&v, &bundle);
        assert_valid_fhir(
            &v,
            &document::searchset(Vec::new(), 0, "http://f/fhir/x", &now),
        );
        assert_valid_fhir(&v, &capability::capability_statement("http://f", &now));
        for e in [
            HttpError::bad_request("patient.identifier", "bad"),
            HttpError::Unauthenticated("no".into()),
            HttpError::Internal("x".into()),
        ] {
            assert_valid_fhir(&v, &outcome::FhirError(e).outcome().1);
        }
        // The audit export's AuditEvents (crate::audit::balp) too.
        let stored = v1::AuditEvent {
            seq: 7,
            time: "2026-12-01T10:00:00.000Z".into(),
            actor: "personnel:1234567".into(),
            org: "974760673".into(),
            patient: patient.as_str().into(),
            action: "locator.lookup".into(),
            resource: "locator".into(),
            purpose: "treatment".into(),
            correlation_id: "req-1".into(),
            hash: "ab".into(),
            prev_hash: "cd".into(),
            served_by: Some(2),
            served_journal_id: 0xabc,
            served_journal_seq: 41,
            ..Default::default()
        };
        assert_valid_fhir(&v, &crate::audit::balp::to_fhir(&stored));
    }
}
