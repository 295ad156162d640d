//! The facade's FHIR R4 `CapabilityStatement` (`GET /fhir/metadata`): one resource,
//! `DocumentReference`, with the `search-type` interaction and the search parameters
//! [`super::search`] takes; OAuth bearer tokens from this frontend's token service.

use kartotek_auth::scopes;
use serde_json::{Value, json};

use super::search::{CATEGORY_SYSTEM, DOCUMENT_REFERENCES_MAX, H_NUMBER_SYSTEM};
use crate::audit::balp::{D_NUMBER_SYSTEM, NATIONAL_ID_SYSTEM, ORG_NUMBER_SYSTEM};

/// The FHIR version served.
pub const FHIR_VERSION: &str = "4.0.1";

/// The CapabilityStatement of the frontend at `base` (its public base URL), dated `now`.
pub fn capability_statement(base: &str, now: &str) -> Value {
    let search_params = json!([
        { "name": "patient.identifier", "type": "token",
          "documentation": format!("Required. The patient: {NATIONAL_ID_SYSTEM}|<fødselsnummer>, {D_NUMBER_SYSTEM}|<D-number> or {H_NUMBER_SYSTEM}|<H-number>. One patient per search. Prefer POST {base}/fhir/DocumentReference/_search (form body) to keep the id out of URLs.") },
        { "name": "custodian.identifier", "type": "token",
          "documentation": format!("Only pointers held by this organisation: {ORG_NUMBER_SYSTEM}|<org number>.") },
        { "name": "category", "type": "token",
          "documentation": format!("Only pointers with one of these data categories (comma-separated; code system {CATEGORY_SYSTEM}).") },
        { "name": "status", "type": "token",
          "documentation": "current (default: active locator entries), superseded (retired ones), or both." },
        { "name": "_count", "type": "number",
          "documentation": format!("At most this many pointers (1 to {DOCUMENT_REFERENCES_MAX}, the default); Bundle.total counts all.") },
    ]);
    json!({
        "resourceType": "CapabilityStatement",
        "id": "kartotek-locator",
        "url": format!("{base}/fhir/metadata"),
        "version": env!("CARGO_PKG_VERSION"),
        "name": "KartotekLocatorFacade",
        "title": "Kartotek patient information locator, FHIR facade",
        "status": "active",
        "experimental": false,
        "date": now,
        "publisher": "Kartotek",
        "description": "Read-only NRL/MHD-style search of the patient information locator: which organisations and systems hold records about a patient, as DocumentReference pointers to the API catalog's endpoints. Every search is audited in the registry's hash-chained audit log like a gRPC lookup.",
        "kind": "instance",
        "software": { "name": "Kartotek", "version": env!("CARGO_PKG_VERSION") },
        "implementation": {
            "description": "Kartotek frontend: FHIR facade of the locator",
            "url": format!("{base}/fhir"),
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Errors are OperationOutcome resources (400 invalid parameter, 401 no or bad token, 403 not allowed).",
            "security": {
                "cors": false,
                "service": [{
                    "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "OAuth",
                        "display": "OAuth",
                    }],
                }],
                "description": format!("Authorization: Bearer <access token> from {base}/connect/token (client_credentials with private_key_jwt), scope {}. The registry is called with the caller's own token.", scopes::LOCATOR_READ),
            },
            "resource": [{
                "type": "DocumentReference",
                "documentation": "Pointers: custodian = the organisation, author = the source system, category = the data categories, content.attachment.url = the endpoint from the API catalog.",
                "interaction": [{
                    "code": "search-type",
                    "documentation": "GET [base]/DocumentReference?patient.identifier=… or POST [base]/DocumentReference/_search with an application/x-www-form-urlencoded body.",
                }],
                "searchParam": search_params,
            }],
        }],
    })
}
