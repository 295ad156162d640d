//! The API catalog through the frontend, end to end: a real cluster and a `kartotek frontend`
//! process. Two organisations' clients get tokens from the frontend's token service; A
//! registers an API over REST (made with A's own token: the frontend's identity cannot write
//! the catalog) and publishes it; B is refused changing it (a problem document says why, and
//! nothing changed), also when B claims to be the owner; anyone finds it by a word of its
//! description (REST, the HTML page, and the page in headless Chromium, screenshot under the
//! target dir); the DCAT export parses as Turtle with every mandatory property; the OpenAPI
//! document lists exactly the router's routes. The node's own check (the token's org must be
//! the owner) is also tried directly over gRPC.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use common::{TestCluster, free_port, org};
use kartotek_auth::{SigningKey, scopes};
use kartotek_proto::v1::CatalogEntryRequest;
use serde_json::{Value, json};

use super::token_service::{
    frontend_token, http_with, registered_client, start_frontend, wait_listening,
};

/// The unusual word the test searches for.
const WORD: &str = "blodbankvaktliste";

/// The scopes of this test's clients.
const SCOPES: [&str; 2] = [scopes::RECORDS_READ, scopes::RECORDS_WRITE];

async fn client_of(cluster: &TestCluster, client_id: &str, owner: &str) -> SigningKey {
    registered_client(cluster, client_id, owner, &SCOPES).await
}

async fn token_for(addr: SocketAddr, key: &SigningKey, client_id: &str) -> String {
    frontend_token(addr, key, client_id, &SCOPES).await
}

/// A JSON request with `token` (if any); (status, head, JSON body or the text as a string).
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, String, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    let text = body.map(Value::to_string);
    let (status, head, body) = http_with(
        addr,
        method,
        path,
        &headers,
        text.as_deref().map(|t| ("application/json", t)),
    )
    .await;
    let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, head, json)
}

fn entry(id: &str) -> Value {
    json!({
        "id": id,
        "title": "Vaktlister for blodbanker",
        "description": format!("Hvem har vakt i blodbanken nå ({WORD}), for sykehusene."),
        "base_url": "https://blodbank.example/api",
        "spec_url": "https://blodbank.example/openapi.json",
        "scopes": ["blodbank:vakt.read"],
        "audience": "personnel",
        "requires_consent": false,
        "version": "1.0",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_through_the_frontend() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let (org_a, org_b) = (org(31), org(32));
    let key_a = client_of(&cluster, "catalog-a", &org_a).await;
    let key_b = client_of(&cluster, "catalog-b", &org_b).await;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _frontend = start_frontend(cluster.dir.path(), addr, cluster.addrs());
    wait_listening(addr).await;
    let token_a = token_for(addr, &key_a, "catalog-a").await;
    let token_b = token_for(addr, &key_b, "catalog-b").await;
    let id = "blodbank.vakt";
    let path = format!("/api/v1/catalog/{id}");

    // Writes need a token.
    let (status, head, p) = call(addr, "POST", "/api/v1/catalog", None, Some(&entry(id))).await;
    assert_eq!(status, 401, "{p}");
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    assert_eq!(p["type"], "urn:kartotek:problem:unauthenticated");

    // A registers (owner: the token's org) and publishes.
    let (status, head, e) = call(
        addr,
        "POST",
        "/api/v1/catalog",
        Some(&token_a),
        Some(&entry(id)),
    )
    .await;
    assert_eq!(status, 201, "{e}");
    assert!(head.contains(&format!("location: {path}")), "{head}");
    assert_eq!(e["owner"], org_a.as_str());
    assert_eq!(e["lifecycle"], "draft");
    // A draft is its owner's only.
    let (status, _, _) = call(addr, "GET", &path, None, None).await;
    assert_eq!(status, 404);
    let (status, _, e) = call(addr, "GET", &path, Some(&token_a), None).await;
    assert_eq!(status, 200, "{e}");
    let lifecycle = json!({"lifecycle": "published"});
    let (status, _, e) = call(
        addr,
        "PUT",
        &format!("{path}/lifecycle"),
        Some(&token_a),
        Some(&lifecycle),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["lifecycle"], "published");
    let revision = e["revision"].clone();

    // B may not change it: as itself (the entry is A's)...
    let mut changed = entry(id);
    changed["title"] = json!("Kapret av B");
    let (status, _, p) = call(addr, "PUT", &path, Some(&token_b), Some(&changed)).await;
    assert_eq!(status, 403, "{p}");
    assert_eq!(p["type"], "urn:kartotek:problem:forbidden");
    let detail = p["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("owned by organisation") && detail.contains(&org_a),
        "{p}"
    );
    // ...nor by naming A as the owner: the node holds B's token to B's organisation.
    changed["owner"] = json!(org_a);
    let (status, _, p) = call(addr, "PUT", &path, Some(&token_b), Some(&changed)).await;
    assert_eq!(status, 403, "{p}");
    let detail = p["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("not the caller's organisation") && detail.contains(&org_b),
        "{p}"
    );
    let retire = json!({"lifecycle": "retired", "owner": org_a});
    let (status, _, p) = call(
        addr,
        "PUT",
        &format!("{path}/lifecycle"),
        Some(&token_b),
        Some(&retire),
    )
    .await;
    assert_eq!(status, 403, "{p}");
    // Nothing changed.
    let (status, _, e) = call(addr, "GET", &path, None, None).await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["title"], "Vaktlister for blodbanker");
    assert_eq!(e["lifecycle"], "published");
    assert_eq!(e["revision"], revision);

    // Bad input is a problem document naming the field, and writes nothing.
    let mut bad = entry("blodbank.bad");
    bad["base_url"] = json!("ftp://nope");
    let (status, _, p) = call(addr, "POST", "/api/v1/catalog", Some(&token_a), Some(&bad)).await;
    assert_eq!(status, 400, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("base_url"),
        "{p}"
    );
    let (status, _, p) = call(addr, "GET", "/api/v1/catalog?page_size=0", None, None).await;
    assert_eq!(status, 400, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("page_size"),
        "{p}"
    );

    // Anyone finds it by a word of its description.
    let (status, _, found) = call(
        addr,
        "GET",
        &format!("/api/v1/catalog?q={WORD}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{found}");
    let ids: Vec<&str> = found["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, [id], "{found}");
    let (status, _, none) = call(addr, "GET", "/api/v1/catalog?q=finnesikke", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(none["entries"], json!([]));
    let (status, head, page) =
        http_with(addr, "GET", &format!("/catalog?q={WORD}"), &[], None).await;
    assert_eq!(status, 200, "{page}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        page.contains("Vaktlister for blodbanker") && page.contains(&org_a),
        "{page}"
    );
    assert!(page.contains("<label for=\"q\">"), "{page}");

    // The DCAT export.
    let (status, head, ttl) = http_with(addr, "GET", "/catalog.ttl", &[], None).await;
    assert_eq!(status, 200, "{ttl}");
    assert!(head.contains("content-type: text/turtle"), "{head}");
    let summary = kartotek_frontend::catalog::dcat::check_export(ttl.as_bytes())
        .unwrap_or_else(|e| panic!("{e}\n{ttl}"));
    assert_eq!(summary.services, [id]);

    // The OpenAPI document lists exactly the router's routes.
    let (status, _, doc) = call(addr, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    let mut listed: Vec<(String, String)> = Vec::new();
    for (p, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            listed.push((method.to_ascii_uppercase(), p.clone()));
        }
    }
    listed.sort();
    let routes: Vec<(String, String)> = kartotek_frontend::route_table()
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    assert_eq!(listed, routes);
    let (status, _, index) = http_with(addr, "GET", "/", &[], None).await;
    assert_eq!(status, 200);
    assert!(index.contains("href=\"/catalog\"") && index.contains("href=\"/openapi.json\""));

    // The page in a real browser.
    chromium_finds(addr, "Vaktlister for blodbanker");

    // The node's own rule, over gRPC: a token of B's organisation registering for A.
    let mut claims = common::issuer().claims("catalog-b", &[scopes::RECORDS_WRITE]);
    claims.org_parent = Some(org_b.clone());
    let refused = cluster
        .client_as(claims)
        .register_catalog_entry(CatalogEntryRequest {
            id: "blodbank.falsk".into(),
            owner: org_a.clone(),
            title: "Falsk".into(),
            base_url: "https://falsk.example".into(),
            audience: kartotek_proto::v1::Audience::Personnel as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");
}

/// The target dir (`CARGO_TARGET_DIR`, else the workspace's `target/`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Loads `/catalog?q=WORD` in headless Chromium: the rendered DOM has `title`; a screenshot
/// goes to `<target>/screenshots/catalog.png`. Skipped (said so) only where Chromium is
/// missing and `CI` is unset.
fn chromium_finds(addr: SocketAddr, title: &str) {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let Some(chromium) = chromium else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but chromium is not installed (.ci/run installs it)"
        );
        eprintln!(
            "SKIPPED the Chromium page test: no /usr/bin/chromium (apt-get install chromium)"
        );
        return;
    };
    let url = format!("http://{addr}/catalog?q={WORD}");
    let profile = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = run(&["--dump-dom"]);
    assert!(dom.contains(title), "{dom}");
    assert!(dom.contains("role=\"search\""), "{dom}");
    let dir = target_dir().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("catalog.png");
    let _ = std::fs::remove_file(&shot);
    run(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,900",
        "--hide-scrollbars",
    ]);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{}",
        shot.display()
    );
    eprintln!("screenshot: {}", shot.display());
}
