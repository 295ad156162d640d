//! Audit forwarding through the frontend, end to end: a real cluster and a `kartotek
//! frontend` process. A health service's client POSTs a BALP `AuditEvent`; it is in the
//! chain (found by patient, through `GET /api/v1/audit-events` as a FHIR Bundle and through
//! `AuditService.Query`) and the chain verifies. A resend is recorded once; a bundle with a
//! missing patient, with another organisation's agent, or over the maximum is refused with
//! the field named and writes nothing. Also measures events/s of batched bundles and the
//! latency of single POSTs (printed; run with `--nocapture` to see them).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use std::net::SocketAddr;
use std::time::Instant;

use common::{TestCluster, free_port, org, patient};
use kartotek_auth::{SigningKey, scopes};
use kartotek_domain::audit::{GENESIS_PREV_HASH, verify_chain};
use kartotek_proto::v1::QueryAuditRequest;
use serde_json::{Value, json};

use super::token_service::{
    frontend_token, http_with, registered_client, start_frontend, wait_listening,
};

const HPR: &str = "urn:oid:2.16.578.1.12.4.1.4.4";
const FNR: &str = "urn:oid:2.16.578.1.12.4.1.4.1";
const ORGNR: &str = "urn:oid:2.16.578.1.12.4.1.4.101";

/// A BALP patient-read event `id` of organisation `org` about `patient`.
fn balp_event(id: &str, org: &str, patient: &str) -> Value {
    json!({
        "resourceType": "AuditEvent",
        "id": id,
        "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest" },
        "subtype": [{ "system": "http://hl7.org/fhir/restful-interaction", "code": "read" }],
        "action": "R",
        "recorded": "2026-12-01T10:00:00Z",
        "outcome": "0",
        "agent": [
            { "type": { "coding": [{ "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153" }] },
              "who": { "identifier": { "system": ORGNR, "value": org } }, "requestor": false },
            { "type": { "coding": [{ "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110152" }] },
              "who": { "display": "https://ehr.example/fhir" }, "requestor": false },
            { "who": { "identifier": { "system": HPR, "value": "1234567" } }, "requestor": true,
              "purposeOfUse": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT" }] }] }
        ],
        "source": { "observer": { "display": "ehr.example" } },
        "entity": [
            { "what": { "identifier": { "system": FNR, "value": patient } },
              "role": { "system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1" } },
            { "what": { "reference": "DocumentReference/epikrise-1" } },
            { "what": { "identifier": { "value": format!("req-{id}") } },
              "type": { "system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType", "code": "XrequestId" } }
        ]
    })
}

fn bundle(events: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": events.into_iter().map(|e| json!({ "resource": e })).collect::<Vec<_>>(),
    })
}

/// The scopes of this test's clients.
const SCOPES: [&str; 2] = [scopes::AUDIT_WRITE, scopes::AUDIT_READ];

async fn client_of(cluster: &TestCluster, client_id: &str, owner: &str) -> SigningKey {
    registered_client(cluster, client_id, owner, &SCOPES).await
}

async fn token_for(addr: SocketAddr, key: &SigningKey, client_id: &str) -> String {
    frontend_token(addr, key, client_id, &SCOPES).await
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let text = body.map(Value::to_string);
    let (status, _, body) = http_with(
        addr,
        method,
        path,
        &[("authorization", &auth)],
        text.as_deref().map(|t| ("application/fhir+json", t)),
    )
    .await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// The forwarded (`patient.read`) events of `patient` in the chain, by AuditService.Query.
async fn forwarded_of(cluster: &TestCluster, patient: &str) -> Vec<kartotek_proto::v1::AuditEvent> {
    let answer = cluster
        .client()
        .query_audit(QueryAuditRequest {
            patient: patient.into(),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    answer
        .events
        .into_iter()
        .filter(|e| e.action == "patient.read")
        .collect()
}

/// Every event of the chain, recomputed from Query pages.
async fn verify_whole_chain(cluster: &TestCluster) -> usize {
    let client = cluster.client();
    let mut from_seq = 0;
    let mut chained = Vec::new();
    loop {
        let page = client
            .query_audit(QueryAuditRequest {
                from_seq,
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        for m in &page.events {
            chained.push(kartotek_client::audit::chained_from_message(m).unwrap());
        }
        if page.next_seq == 0 {
            break;
        }
        from_seq = page.next_seq;
    }
    verify_chain(GENESIS_PREV_HASH, &chained).unwrap();
    chained.len()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balp_events_through_the_frontend_into_the_chain() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let (org_a, org_b) = (org(51), org(52));
    let key_a = client_of(&cluster, "ehr-a", &org_a).await;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _frontend = start_frontend(cluster.dir.path(), addr, cluster.addrs());
    wait_listening(addr).await;
    // Ready against a healthy cluster with its own (self-issued, non-admin) token.
    let (status, _, body) = http_with(addr, "GET", "/readyz", &[], None).await;
    assert_eq!((status, body.as_str()), (200, "ready"), "/readyz");
    let token = token_for(addr, &key_a, "ehr-a").await;
    let p = patient(51);
    let path = "/api/v1/audit-events";

    // Refused requests write nothing: a missing patient, another organisation's agent, an
    // oversized bundle; each names the field.
    let mut no_patient = balp_event("ev-2", &org_a, &p);
    no_patient["entity"].as_array_mut().unwrap().remove(0);
    let (status, problem) = call(
        addr,
        "POST",
        path,
        &token,
        Some(&bundle(vec![balp_event("ev-1", &org_a, &p), no_patient])),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "urn:kartotek:problem:invalid-argument");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("entry[1].resource.entity:"),
        "{problem}"
    );
    let (status, problem) = call(
        addr,
        "POST",
        path,
        &token,
        Some(&bundle(vec![
            balp_event("ev-1", &org_a, &p),
            balp_event("ev-3", &org_b, &p),
        ])),
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("entry[1].resource.agent[0].who.identifier.value:"),
        "{problem}"
    );
    assert_eq!(
        problem["detail"]
            .as_str()
            .unwrap()
            .matches("agent[0]")
            .count(),
        1,
        "the field is named once: {problem}"
    );
    let many: Vec<Value> = (0..501)
        .map(|i| balp_event(&format!("big-{i}"), &org_a, &p))
        .collect();
    let (status, problem) = call(addr, "POST", path, &token, Some(&bundle(many))).await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().starts_with("entry:"),
        "{problem}"
    );
    assert!(
        forwarded_of(&cluster, &p).await.is_empty(),
        "refused requests wrote nothing"
    );

    // A valid event is recorded; a resend is recorded once.
    let event = balp_event("ev-1", &org_a, &p);
    let (status, first) = call(addr, "POST", path, &token, Some(&event)).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["recorded"], 1);
    let (status, again) = call(addr, "POST", path, &token, Some(&event)).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["first_seq"], first["first_seq"], "{again}");
    // The same id with other content is refused, not dropped (nor recorded twice).
    let mut changed = event.clone();
    changed["recorded"] = json!("2026-12-01T11:00:00Z");
    let (status, problem) = call(addr, "POST", path, &token, Some(&changed)).await;
    assert_eq!(status, 409, "{problem}");
    let found = forwarded_of(&cluster, &p).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let e = &found[0];
    assert_eq!(e.actor, "personnel:1234567");
    assert_eq!(e.org, org_a);
    assert_eq!(e.purpose, "treatment");
    assert_eq!(e.correlation_id, "req-ev-1");
    assert_eq!(e.resource, "DocumentReference/epikrise-1");
    assert_eq!(e.time, "2026-12-01T10:00:00.000Z");

    // The export: a FHIR searchset of BALP AuditEvents, Kartotek's own among them (the
    // serving node as the server agent).
    let (status, bundle_out) =
        call(addr, "GET", &format!("{path}?patient={p}"), &token, None).await;
    assert_eq!(status, 200, "{bundle_out}");
    assert_eq!(bundle_out["resourceType"], "Bundle");
    assert_eq!(bundle_out["type"], "searchset");
    let resources: Vec<&Value> = bundle_out["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    let forwarded: Vec<_> = resources
        .iter()
        .filter(|r| r["subtype"][0]["code"] == "patient.read")
        .collect();
    assert_eq!(forwarded.len(), 1, "{bundle_out}");
    assert_eq!(
        forwarded[0]["agent"][0]["who"]["identifier"]["value"],
        "1234567"
    );
    assert_eq!(
        forwarded[0]["entity"][0]["what"]["identifier"]["value"],
        p.as_str()
    );
    // Export again: now Kartotek's own audit.query event of the first export is there.
    let (_, bundle_out) = call(addr, "GET", &format!("{path}?patient={p}"), &token, None).await;
    let own = bundle_out["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["subtype"][0]["code"] == "audit.query")
        .cloned()
        .unwrap_or_else(|| panic!("no audit.query event in {bundle_out}"));
    let server = own["agent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"]["coding"][0]["code"] == "110152")
        .unwrap_or_else(|| panic!("no server agent in {own}"));
    assert!(
        server["who"]["identifier"]["value"]
            .as_str()
            .unwrap()
            .starts_with("node/1/journal/"),
        "{server}"
    );

    // The chain verifies.
    assert!(verify_whole_chain(&cluster).await >= 3);

    // Numbers: batched bundles, then single POSTs.
    let batches = 10;
    let per_batch = 500;
    let started = Instant::now();
    for b in 0..batches {
        let events = (0..per_batch)
            .map(|i| balp_event(&format!("load-{b}-{i}"), &org_a, &patient(52)))
            .collect();
        let (status, answer) = call(addr, "POST", path, &token, Some(&bundle(events))).await;
        assert_eq!(status, 201, "{answer}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = f64::from(batches * per_batch) / elapsed;
    let mut latencies = Vec::new();
    for i in 0..200 {
        let event = balp_event(&format!("single-{i}"), &org_a, &patient(53));
        let t = Instant::now();
        let (status, answer) = call(addr, "POST", path, &token, Some(&event)).await;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 201, "{answer}");
    }
    latencies.sort_by(f64::total_cmp);
    eprintln!(
        "audit forwarding: {rate:.0} events/s in bundles of {per_batch} ({} events in {elapsed:.2} s, one client, sequential); single POST p50 {:.2} ms, p99 {:.2} ms (n = {})",
        batches * per_batch,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.len()
    );
    assert!(verify_whole_chain(&cluster).await >= 5_200);
    let (_, _, metrics) = http_with(addr, "GET", "/metrics", &[], None).await;
    assert!(
        metrics.contains("kartotek_frontend_audit_events_total{outcome=\"refused\"} 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kartotek_frontend_audit_events_total{outcome=\"recorded\"}"),
        "{metrics}"
    );
}
