//! Locator entries as FHIR R4 `DocumentReference` pointers (NRL / IHE MHD style), and the
//! searchset `Bundle` that carries them. Pure: no I/O.
//!
//! | `DocumentReference` | from the locator entry |
//! |---|---|
//! | `id` | a UUID derived (SHA-256) from `(patient, org, system)`: stable, and carries no national id |
//! | `meta.versionId`, `meta.lastUpdated` | `mod_revision`, `last_updated` |
//! | `status` | `current` (active) or `superseded` (retired) |
//! | `category[]` | `categories` (code system [`CATEGORY_SYSTEM`]) |
//! | `subject.identifier` | the patient (fødselsnummer, D- or H-number system by the id's kind) |
//! | `date` | `last_updated` |
//! | `author[0]` (a `Device`) | the source system (`urn:kartotek:source-system`) |
//! | `custodian.identifier` | the organisation (org number, `urn:oid:2.16.578.1.12.4.1.4.101`) |
//! | `content[0].attachment.url`, `.title` | the API catalog entry `endpoint_ref` names: its `base_url` and title (when published or deprecated) |
//! | `context.related[0].identifier` | `endpoint_ref` (`urn:kartotek:api-catalog`), and the extension [`CATALOG_ENTRY_EXTENSION`] its catalog URL on this frontend |
//! | `context.period.start` | `first_registered` |
//!
//! Empty strings are never written (FHIR forbids them): a field the entry lacks is left out.

use kartotek_client::proto as v1;
use kartotek_domain::NationalId;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::search::{CATEGORY_SYSTEM, system_of};
use crate::audit::balp::ORG_NUMBER_SYSTEM;
use crate::catalog::ApiEntry;

/// Identifier system of a locator entry's source system (`DocumentReference.author`).
pub const SOURCE_SYSTEM_SYSTEM: &str = "urn:kartotek:source-system";
/// Identifier system of API catalog ids (`context.related`).
pub const CATALOG_ID_SYSTEM: &str = "urn:kartotek:api-catalog";
/// Extension: the URL of the pointer's API catalog entry on this frontend.
pub const CATALOG_ENTRY_EXTENSION: &str = "urn:kartotek:catalog-entry";

/// The FHIR id of the pointer to `(patient, org, system)`: a UUID (version 8) from SHA-256.
pub fn pointer_id(patient: &str, org: &str, system: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"kartotek fhir DocumentReference v1\0");
    for part in [patient, org, system] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn put(m: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        m.insert(key.to_owned(), Value::String(value.to_owned()));
    }
}

/// One locator entry of `patient` as a `DocumentReference`; `catalog` is the entry its
/// `endpoint_ref` names, when found; `base` the frontend's public base URL.
pub fn document_reference(
    e: &v1::LocatorEntry,
    patient: &NationalId,
    catalog: Option<&ApiEntry>,
    base: &str,
) -> Value {
    let mut d = Map::new();
    d.insert("resourceType".into(), json!("DocumentReference"));
    d.insert(
        "id".into(),
        json!(pointer_id(patient.as_str(), &e.org, &e.system)),
    );
    let mut meta = Map::new();
    if e.mod_revision != 0 {
        meta.insert("versionId".into(), json!(e.mod_revision.to_string()));
    }
    put(&mut meta, "lastUpdated", &e.last_updated);
    if !meta.is_empty() {
        d.insert("meta".into(), Value::Object(meta));
    }
    if !e.endpoint_ref.is_empty() {
        d.insert(
            "extension".into(),
            json!([{
                "url": CATALOG_ENTRY_EXTENSION,
                "valueUrl": format!("{base}{}", crate::catalog::rest::entry_path(&e.endpoint_ref)),
            }]),
        );
    }
    let retired = e.status == v1::LocatorStatus::Retired as i32;
    d.insert(
        "status".into(),
        json!(if retired { "superseded" } else { "current" }),
    );
    let categories: Vec<Value> = e
        .categories
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| json!({ "coding": [{ "system": CATEGORY_SYSTEM, "code": c }], "text": c }))
        .collect();
    if !categories.is_empty() {
        d.insert("category".into(), Value::Array(categories));
    }
    d.insert(
        "subject".into(),
        json!({
            "type": "Patient",
            "identifier": { "system": system_of(patient.kind()), "value": patient.as_str() },
        }),
    );
    put(&mut d, "date", &e.last_updated);
    if !e.system.is_empty() {
        d.insert(
            "author".into(),
            json!([{
                "type": "Device",
                "identifier": { "system": SOURCE_SYSTEM_SYSTEM, "value": e.system },
                "display": e.system,
            }]),
        );
    }
    if !e.org.is_empty() {
        d.insert(
            "custodian".into(),
            json!({
                "type": "Organization",
                "identifier": { "system": ORG_NUMBER_SYSTEM, "value": e.org },
            }),
        );
    }
    if !e.org.is_empty() && !e.system.is_empty() {
        d.insert(
            "description".into(),
            json!(format!(
                "Records held by organisation {} in system {}",
                e.org, e.system
            )),
        );
    }
    let mut attachment = Map::new();
    match catalog {
        Some(api) => {
            put(&mut attachment, "url", &api.base_url);
            put(&mut attachment, "title", &api.title);
        }
        None => put(&mut attachment, "title", &e.endpoint_ref),
    }
    d.insert("content".into(), json!([{ "attachment": attachment }]));
    let mut context = Map::new();
    if !e.endpoint_ref.is_empty() {
        let mut related = Map::new();
        related.insert(
            "identifier".into(),
            json!({ "system": CATALOG_ID_SYSTEM, "value": e.endpoint_ref }),
        );
        if let Some(api) = catalog {
            put(&mut related, "display", &api.title);
        }
        context.insert("related".into(), json!([related]));
    }
    if !e.first_registered.is_empty() {
        context.insert("period".into(), json!({ "start": e.first_registered }));
    }
    if !context.is_empty() {
        d.insert("context".into(), Value::Object(context));
    }
    Value::Object(d)
}

/// A searchset `Bundle` of `resources` (each a `match`), of `total` matches; a `truncated`
/// note (an `OperationOutcome` entry, `outcome` mode) when fewer than all are carried.
/// `self_url` is the link the bundle names itself by (never with a national id in it).
pub fn searchset(resources: Vec<Value>, total: usize, self_url: &str, now: &str) -> Value {
    let carried = resources.len();
    let mut entries: Vec<Value> = resources
        .into_iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap_or_default().to_owned();
            json!({
                "fullUrl": format!("urn:uuid:{id}"),
                "resource": r,
                "search": { "mode": "match" },
            })
        })
        .collect();
    if carried < total {
        entries.push(json!({
            "resource": super::outcome::warning(&format!(
                "{carried} of {total} pointers answered (_count, at most {})",
                super::search::DOCUMENT_REFERENCES_MAX
            )),
            "search": { "mode": "outcome" },
        }));
    }
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": { "lastUpdated": now },
        "type": "searchset",
        "total": total,
        "link": [{ "relation": "self", "url": self_url }],
    });
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

#[cfg(test)]
mod tests {
    use kartotek_domain::locator::parse_national_id;

    use super::*;

    fn entry() -> v1::LocatorEntry {
        v1::LocatorEntry {
            patient: "15076500565".into(),
            org: "974760673".into(),
            system: "dips-arena".into(),
            categories: vec!["Observation".into(), "DocumentReference".into()],
            endpoint_ref: "nhn.test".into(),
            status: v1::LocatorStatus::Active as i32,
            first_registered: "2026-12-01T10:00:00.000Z".into(),
            last_updated: "2026-12-02T10:00:00.000Z".into(),
            create_revision: 3,
            mod_revision: 4,
        }
    }

    #[test]
    fn a_pointer_names_custodian_system_categories_and_endpoint() {
        let patient = parse_national_id("p", "15076500565").unwrap();
        let api = crate::catalog::sample_entry("nhn.test");
        let d = document_reference(&entry(), &patient, Some(&api), "http://f.example");
        assert_eq!(d["custodian"]["identifier"]["system"], ORG_NUMBER_SYSTEM);
        assert_eq!(d["custodian"]["identifier"]["value"], "974760673");
        assert_eq!(d["author"][0]["identifier"]["value"], "dips-arena");
        assert_eq!(d["category"][1]["coding"][0]["code"], "DocumentReference");
        assert_eq!(
            d["content"][0]["attachment"]["url"],
            "https://rf.example/api"
        );
        assert_eq!(
            d["context"]["related"][0]["identifier"]["value"],
            "nhn.test"
        );
        assert_eq!(
            d["extension"][0]["valueUrl"],
            "http://f.example/api/v1/catalog/nhn.test"
        );
        assert_eq!(d["status"], "current");
        assert_eq!(d["meta"]["versionId"], "4");
        // The id is stable, a FHIR id, and carries no national id.
        let id = d["id"].as_str().unwrap();
        assert_eq!(id, pointer_id("15076500565", "974760673", "dips-arena"));
        assert_ne!(id, pointer_id("15076500565", "974760673", "other"));
        assert!(id.len() <= 64 && !id.contains("15076500565"), "{id}");
        // Without a catalog entry: the id only, no empty strings anywhere.
        let mut bare = entry();
        bare.endpoint_ref.clear();
        bare.categories.clear();
        bare.status = v1::LocatorStatus::Retired as i32;
        let d = document_reference(&bare, &patient, None, "http://f.example");
        assert_eq!(d["status"], "superseded");
        assert!(d.get("category").is_none() && d.get("extension").is_none());
        assert!(!d.to_string().contains("\"\""), "{d}");
    }

    #[test]
    fn a_truncated_searchset_says_so() {
        let b = searchset(
            vec![json!({"resourceType": "DocumentReference", "id": "a"})],
            3,
            "http://x",
            "2026-12-01T10:00:00.000Z",
        );
        assert_eq!(b["total"], 3);
        assert_eq!(b["entry"][0]["fullUrl"], "urn:uuid:a");
        assert_eq!(b["entry"][1]["search"]["mode"], "outcome");
        assert_eq!(
            b["entry"][1]["resource"]["resourceType"],
            "OperationOutcome"
        );
        let empty = searchset(Vec::new(), 0, "http://x", "2026-12-01T10:00:00.000Z");
        assert!(empty.get("entry").is_none());
        assert_eq!(empty["total"], 0);
    }
}
