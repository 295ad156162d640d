//! The FHIR facade of the locator, end to end: a real cluster and a `kartotek frontend`
//! process. Locator entries (and the API catalog entries they point to) are created in the
//! cluster; `GET /fhir/DocumentReference?patient.identifier=…` and `POST
//! /fhir/DocumentReference/_search` answer them as a searchset `Bundle` of
//! `DocumentReference`s with custodian, source system, categories and the catalog endpoint;
//! a patient with none gets an empty searchset; a bad identifier is a 400
//! `OperationOutcome`, no token a 401, a token without the locator scope a 403; the search
//! is in the audit log with the request id as its correlation id; every answer validates
//! against the FHIR R4 JSON schema (`frontend/tests/fhir-schema/`). Also measures the
//! latency of a search (printed; `--nocapture`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use std::net::SocketAddr;
use std::time::Instant;

use common::{TestCluster, free_port, org, patient};
use kartotek_auth::scopes;
use kartotek_proto::v1::{
    Audience, CatalogEntryRequest, CatalogLifecycle, QueryAuditRequest, RegisterLocatorRequest,
    SetCatalogLifecycleRequest,
};
use serde_json::Value;

use super::token_service::{
    frontend_token, http_with, registered_client, start_frontend, urlencode, wait_listening,
};

const FNR: &str = "urn:oid:2.16.578.1.12.4.1.4.1";
const ORGNR: &str = "urn:oid:2.16.578.1.12.4.1.4.101";
const FHIR_JSON: &str = "application/fhir+json";

/// The FHIR R4 JSON schema subset (`frontend/tests/fhir-schema/`), compiled.
pub(crate) struct FhirSchema {
    root: jsonschema::Validator,
    schema: Value,
}

pub(crate) fn validator() -> FhirSchema {
    let schema: Value = serde_json::from_str(include_str!(
        "../../../frontend/tests/fhir-schema/fhir-r4-subset.schema.json"
    ))
    .unwrap();
    let root = jsonschema::validator_for(&schema).unwrap();
    FhirSchema { root, schema }
}

/// Panics with every schema error of `resource`, found against its own resource type's
/// definition (the root's `oneOf` only says that none matched).
pub(crate) fn assert_valid(v: &FhirSchema, resource: &Value) {
    if v.root.is_valid(resource) {
        return;
    }
    let kind = resource["resourceType"].as_str().unwrap_or_default();
    let mut one = v.schema.clone();
    one["oneOf"] = serde_json::json!([{ "$ref": format!("#/definitions/{kind}") }]);
    let errors: Vec<String> = jsonschema::validator_for(&one)
        .unwrap()
        .iter_errors(resource)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    panic!("not valid FHIR R4: {errors:#?}\nin {resource:#}");
}

/// An answer: status, lower-cased head, JSON body.
struct Answer {
    status: u16,
    head: String,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::trim)
        })
    }
}

async fn fhir(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    form: Option<&str>,
    request_id: Option<&str>,
) -> Answer {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("accept", FHIR_JSON)];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    if let Some(id) = request_id {
        headers.push(("x-request-id", id));
    }
    let (status, head, body) = http_with(
        addr,
        method,
        path,
        &headers,
        form.map(|f| ("application/x-www-form-urlencoded", f)),
    )
    .await;
    let body = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    Answer { status, head, body }
}

fn identifier(system: &str, value: &str) -> String {
    urlencode(&format!("{system}|{value}"))
}

/// The DocumentReferences of a searchset, by custodian org number.
fn by_custodian(bundle: &Value) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = bundle["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| {
            let r = e["resource"].clone();
            (
                r["custodian"]["identifier"]["value"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                r,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_document_reference_search_through_the_frontend() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let (org_a, org_b) = (org(61), org(62));
    let key = registered_client(&cluster, "ehr-fhir", &org_a, &[scopes::LOCATOR_READ]).await;
    let other_key =
        registered_client(&cluster, "ehr-no-locator", &org_a, &[scopes::AUDIT_READ]).await;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _frontend = start_frontend(cluster.dir.path(), addr, cluster.addrs());
    wait_listening(addr).await;
    let token = frontend_token(addr, &key, "ehr-fhir", &[scopes::LOCATOR_READ]).await;
    let v = validator();

    // The catalog: org A's API published, org B's still a draft (its URL is not shown).
    let admin = cluster.client();
    for (id, owner, publish) in [("fhir.a", &org_a, true), ("fhir.b", &org_b, false)] {
        admin
            .register_catalog_entry(CatalogEntryRequest {
                id: id.into(),
                owner: owner.clone(),
                title: format!("FHIR API {id}"),
                base_url: format!("https://{id}.example/fhir"),
                audience: Audience::Personnel as i32,
                ..Default::default()
            })
            .await
            .unwrap();
        if publish {
            admin
                .set_catalog_lifecycle(SetCatalogLifecycleRequest {
                    id: id.into(),
                    lifecycle: CatalogLifecycle::Published as i32,
                    owner: owner.clone(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    }
    let p = patient(61);
    let nobody = patient(62);
    for (o, system, categories, endpoint) in [
        (
            &org_a,
            "dips-arena",
            vec!["Observation", "epikrise"],
            "fhir.a",
        ),
        (&org_b, "cosdoc", vec!["Condition"], "fhir.b"),
    ] {
        admin
            .register_locator(RegisterLocatorRequest {
                patient: p.clone(),
                org: o.clone(),
                system: system.into(),
                categories: categories.into_iter().map(str::to_owned).collect(),
                endpoint_ref: endpoint.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    // GET: both pointers, custodian, system, categories and endpoint right.
    let path = format!(
        "/fhir/DocumentReference?patient.identifier={}",
        identifier(FNR, &p)
    );
    let got = fhir(addr, "GET", &path, Some(&token), None, None).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("content-type"), Some(FHIR_JSON));
    assert_valid(&v, &got.body);
    assert_eq!(got.body["resourceType"], "Bundle");
    assert_eq!(got.body["type"], "searchset");
    assert_eq!(got.body["total"], 2);
    let pointers = by_custodian(&got.body);
    assert_eq!(
        pointers.iter().map(|(o, _)| o.as_str()).collect::<Vec<_>>(),
        [org_a.as_str(), org_b.as_str()]
    );
    let a = &pointers[0].1;
    assert_eq!(a["resourceType"], "DocumentReference");
    assert_eq!(a["status"], "current");
    assert_eq!(a["custodian"]["identifier"]["system"], ORGNR);
    assert_eq!(a["subject"]["identifier"]["system"], FNR);
    assert_eq!(a["subject"]["identifier"]["value"], p.as_str());
    assert_eq!(a["author"][0]["identifier"]["value"], "dips-arena");
    let codes: Vec<&str> = a["category"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["coding"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["Observation", "epikrise"]);
    assert_eq!(
        a["content"][0]["attachment"]["url"],
        "https://fhir.a.example/fhir"
    );
    assert_eq!(a["context"]["related"][0]["identifier"]["value"], "fhir.a");
    assert_eq!(
        a["extension"][0]["valueUrl"],
        format!("http://{addr}/api/v1/catalog/fhir.a")
    );
    let b = &pointers[1].1;
    assert_eq!(b["author"][0]["identifier"]["value"], "cosdoc");
    assert!(
        b["content"][0]["attachment"].get("url").is_none(),
        "a draft's URL is not shown: {b}"
    );
    assert_eq!(b["context"]["related"][0]["identifier"]["value"], "fhir.b");
    assert!(
        !got.body["link"].to_string().contains(p.as_str()),
        "the national id is not echoed into links"
    );

    // POST _search (the national id in the body only), narrowed to org A; then by category.
    let form = format!(
        "patient.identifier={}&custodian.identifier={}",
        identifier(FNR, &p),
        identifier(ORGNR, &org_a)
    );
    let posted = fhir(
        addr,
        "POST",
        "/fhir/DocumentReference/_search",
        Some(&token),
        Some(&form),
        Some("fhir-it-search-1"),
    )
    .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    assert_eq!(posted.header("content-type"), Some(FHIR_JSON));
    assert_eq!(posted.header("x-request-id"), Some("fhir-it-search-1"));
    assert_valid(&v, &posted.body);
    assert_eq!(posted.body["total"], 1);
    let only_a = by_custodian(&posted.body);
    assert_eq!(only_a.len(), 1);
    assert_eq!(only_a[0].1["id"], a["id"], "the same pointer, the same id");
    let by_category = fhir(
        addr,
        "POST",
        "/fhir/DocumentReference/_search",
        Some(&token),
        Some(&format!(
            "patient.identifier={}&category=Condition",
            identifier(FNR, &p)
        )),
        None,
    )
    .await;
    assert_eq!(by_category.status, 200, "{}", by_category.body);
    assert_eq!(by_custodian(&by_category.body)[0].0, org_b);
    assert_eq!(by_category.body["total"], 1);

    // A patient with none: an empty searchset.
    let empty = fhir(
        addr,
        "POST",
        "/fhir/DocumentReference/_search",
        Some(&token),
        Some(&format!("patient.identifier={}", identifier(FNR, &nobody))),
        None,
    )
    .await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_valid(&v, &empty.body);
    assert_eq!(empty.body["type"], "searchset");
    assert_eq!(empty.body["total"], 0);
    assert!(empty.body.get("entry").is_none(), "{}", empty.body);

    // A bad identifier (check digits, system): 400 OperationOutcome naming the parameter.
    let mut bad_id = p.clone();
    let last = bad_id.pop().unwrap();
    bad_id.push(if last == '0' { '1' } else { '0' });
    for bad in [identifier(FNR, &bad_id), identifier("urn:oid:1.2.3", &p)] {
        let refused = fhir(
            addr,
            "GET",
            &format!("/fhir/DocumentReference?patient.identifier={bad}"),
            Some(&token),
            None,
            None,
        )
        .await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert_eq!(refused.header("content-type"), Some(FHIR_JSON));
        assert_valid(&v, &refused.body);
        assert_eq!(refused.body["resourceType"], "OperationOutcome");
        assert_eq!(refused.body["issue"][0]["code"], "invalid");
        assert_eq!(
            refused.body["issue"][0]["expression"][0],
            "patient.identifier"
        );
    }
    let missing = fhir(
        addr,
        "GET",
        "/fhir/DocumentReference",
        Some(&token),
        None,
        None,
    )
    .await;
    assert_eq!(missing.status, 400, "{}", missing.body);

    // No token: 401; a token without the locator scope: 403 (the cluster's refusal).
    let anonymous = fhir(addr, "GET", &path, None, None, None).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(anonymous.header("content-type"), Some(FHIR_JSON));
    assert!(anonymous.header("www-authenticate").is_some());
    assert_valid(&v, &anonymous.body);
    assert_eq!(anonymous.body["issue"][0]["code"], "login");
    let other = frontend_token(addr, &other_key, "ehr-no-locator", &[scopes::AUDIT_READ]).await;
    let forbidden = fhir(addr, "GET", &path, Some(&other), None, None).await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    assert_valid(&v, &forbidden.body);
    assert_eq!(forbidden.body["issue"][0]["code"], "forbidden");

    // The CapabilityStatement, without a token.
    let meta = fhir(addr, "GET", "/fhir/metadata", None, None, None).await;
    assert_eq!(meta.status, 200, "{}", meta.body);
    assert_valid(&v, &meta.body);
    assert_eq!(meta.body["resourceType"], "CapabilityStatement");
    assert_eq!(meta.body["fhirVersion"], "4.0.1");
    let params: Vec<&str> = meta.body["rest"][0]["resource"][0]["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(params.contains(&"patient.identifier"), "{params:?}");

    // Each search is audited like a gRPC lookup: the caller's client and organisation, the
    // request id as correlation id.
    let audit = admin
        .query_audit(QueryAuditRequest {
            patient: p.clone(),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let lookups: Vec<_> = audit
        .events
        .iter()
        .filter(|e| e.action == "locator.lookup")
        .collect();
    let e = lookups
        .iter()
        .find(|e| e.correlation_id == "fhir-it-search-1")
        .unwrap_or_else(|| panic!("no audited lookup with the request id in {lookups:#?}"));
    assert_eq!(e.actor, "client:ehr-fhir");
    assert_eq!(e.org, org_a);
    assert_eq!(e.patient, p);
    // GET, POST, POST by category, and the forbidden one (refused before the read: not).
    assert!(lookups.len() >= 3, "{lookups:#?}");
    let nobody_audit = admin
        .query_audit(QueryAuditRequest {
            patient: nobody.clone(),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        nobody_audit
            .events
            .iter()
            .any(|e| e.action == "locator.lookup"),
        "an empty answer is audited too"
    );

    // Latency of a search (POST, one pointer-rich patient, fresh connection each).
    let mut latencies = Vec::new();
    let form = format!("patient.identifier={}", identifier(FNR, &p));
    for _ in 0..200 {
        let t = Instant::now();
        let answer = fhir(
            addr,
            "POST",
            "/fhir/DocumentReference/_search",
            Some(&token),
            Some(&form),
            None,
        )
        .await;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    latencies.sort_by(f64::total_cmp);
    eprintln!(
        "FHIR DocumentReference search (POST _search, 2 pointers, 1-node cluster, sequential, fresh connection): p50 {:.2} ms, p99 {:.2} ms (n = {})",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.len()
    );
}
