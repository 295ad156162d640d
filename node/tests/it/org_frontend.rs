//! The organisation view through the frontend, end to end: a real cluster and a `kartotek
//! frontend` process. Clinicians of organisation A look patients up (one with an emergency
//! override), a clinician of B too; A's compliance officer (a client of A with
//! `kartotek:audit.read`) sees A's accesses only, overrides first, filtered by purpose and
//! period, on the page, as CSV and as a FHIR Bundle of AuditEvents (valid FHIR R4); asking
//! for B's is refused (403), as is a client of A without the audit scope, and no token (401).
//! The page is also loaded in headless Chromium (screenshot `<target>/screenshots/org.png`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use std::net::SocketAddr;

use common::{TestCluster, block, clinician, free_port, org, patient};
use kartotek_auth::scopes;
use kartotek_proto::v1::{AccessDecisionRequest, BlockLevel, LookupLocatorRequest};
use serde_json::Value;

use super::token_service::{
    frontend_token, http_with, registered_client, start_frontend, wait_listening,
};

async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    http_with(addr, "GET", path, &headers, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_reviews_its_personnels_accesses() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let (org_a, org_b) = (org(71), org(72));
    let officer_key = registered_client(&cluster, "officer-a", &org_a, &[scopes::AUDIT_READ]).await;
    let plain_key = registered_client(&cluster, "ehr-a", &org_a, &[scopes::LOCATOR_READ]).await;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _frontend = start_frontend(cluster.dir.path(), addr, cluster.addrs());
    wait_listening(addr).await;
    let officer = frontend_token(addr, &officer_key, "officer-a", &[scopes::AUDIT_READ]).await;

    // Accesses: A's clinician looks up two patients and overrides a block on a third; B's
    // clinician looks up a fourth.
    let (p1, p2, p3, p4) = (patient(71), patient(72), patient(73), patient(74));
    let a_doc = cluster.client_as(clinician("7100001", &org_a));
    for p in [&p1, &p2] {
        a_doc
            .lookup_locator(LookupLocatorRequest {
                patient: p.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    cluster
        .client()
        .add_block(block(&p3, "7100001", BlockLevel::Overridable))
        .await
        .unwrap();
    let decided = a_doc
        .decide_access(AccessDecisionRequest {
            patient: p3.clone(),
            personnel: "7100001".into(),
            org: org_a.clone(),
            service: "kjernejournal".into(),
            purpose: "emergency".into(),
            emergency_override: true,
            justification: "unconscious patient".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        decided.notification_id > 0,
        "a permit by override: {decided:?}"
    );
    cluster
        .client_as(clinician("7200001", &org_b))
        .lookup_locator(LookupLocatorRequest {
            patient: p4.clone(),
            ..Default::default()
        })
        .await
        .unwrap();

    // The FHIR export: A's accesses only, the override first, valid FHIR R4.
    let (status, head, body) = get(addr, "/org/accesses", Some(&officer)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        head.contains("content-type: application/fhir+json"),
        "{head}"
    );
    let bundle: Value = serde_json::from_str(&body).unwrap();
    super::fhir_frontend::assert_valid(&super::fhir_frontend::validator(), &bundle);
    let resources: Vec<&Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    let patients: Vec<&str> = resources
        .iter()
        .filter_map(|r| r["entity"][0]["what"]["identifier"]["value"].as_str())
        .collect();
    assert_eq!(
        patients.first(),
        Some(&p3.as_str()),
        "override first: {patients:?}"
    );
    assert!(
        patients.contains(&p1.as_str()) && patients.contains(&p2.as_str()),
        "{patients:?}"
    );
    assert!(
        !patients.contains(&p4.as_str()),
        "another organisation's access: {patients:?}"
    );
    assert!(
        resources[0]["extension"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["url"] == "urn:kartotek:emergency-override"),
        "{}",
        resources[0]
    );

    // CSV, by purpose: only the override (purpose emergency).
    let (status, head, csv) =
        get(addr, "/org/accesses.csv?purpose=emergency", Some(&officer)).await;
    assert_eq!(status, 200, "{csv}");
    assert!(head.contains("content-type: text/csv"), "{head}");
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("seq,time,actor,org,patient,"), "{csv}");
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(
        rows[1].contains(&p3) && rows[1].contains(",true,unconscious patient,"),
        "{csv}"
    );
    // By period: everything was today; a past period has nothing.
    let (status, _, csv) = get(
        addr,
        "/org/accesses.csv?from=2020-01-01&to=2020-12-31",
        Some(&officer),
    )
    .await;
    assert_eq!(status, 200, "{csv}");
    assert_eq!(csv.lines().count(), 1, "header only: {csv}");

    // The page: the override marked, first.
    let (status, _, html) = get(addr, "/org?purpose=", Some(&officer)).await;
    assert_eq!(status, 200, "{html}");
    let (first_override, first_p1) = (html.find(&p3).unwrap(), html.find(&p1).unwrap());
    assert!(first_override < first_p1, "override first on the page");
    assert!(html.contains("Nødtilgang"), "{html}");
    assert!(html.contains("/org/accesses.csv"), "{html}");
    // The same page in headless Chromium (the officer's token sent as a header).
    if let Some(browser) = super::innsyn_frontend::Browser::start().await {
        browser
            .send_headers(&serde_json::json!({ "Authorization": format!("Bearer {officer}") }))
            .await;
        browser.goto(&format!("http://{addr}/org?purpose=")).await;
        let page = browser.wait_for("Nødtilgang").await;
        assert!(page.contains(&p3), "{page}");
        assert!(
            browser.count("a[href*='/org/accesses.csv']").await >= 1,
            "{page}"
        );
        browser.screenshot("org").await;
    }

    // Refusals: another organisation (403), no audit scope (403, the cluster's), no token
    // (401), a bad period (400).
    let (status, _, body) = get(addr, &format!("/org/accesses?org={org_b}"), Some(&officer)).await;
    assert_eq!(status, 403, "{body}");
    let plain = frontend_token(addr, &plain_key, "ehr-a", &[scopes::LOCATOR_READ]).await;
    let (status, _, body) = get(addr, "/org/accesses", Some(&plain)).await;
    assert_eq!(status, 403, "{body}");
    let (status, head, body) = get(addr, "/org", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        head.contains("content-type: text/html"),
        "a page says how: {head}"
    );
    assert!(body.contains("kartotek:audit.read"), "{body}");
    let (status, _, body) = get(addr, "/org/accesses.csv", None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = get(addr, "/org/accesses.csv?from=yesterday", Some(&officer)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("from"), "{body}");
}
