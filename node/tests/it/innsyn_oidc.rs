//! The citizen page's production login, end to end: a `kartotek frontend` process with the
//! dev login **off** and `innsyn.oidc` pointing at a mock OpenID provider that plays
//! ID-porten (discovery, JWK Set, an authorisation page, a token endpoint that checks the
//! client secret, the redirect URI and the PKCE verifier, single-use codes, an end-session
//! endpoint; ID tokens with `pid`, `acr` and `nonce`, RS256 at ID-porten, ES256 here).
//! The provider is at `http://localhost:<port>` and the frontend at `http://127.0.0.1:<port>`,
//! so the login is a cross-site round trip, as in production, and the cookies' `SameSite`
//! settings are tested by a real browser.
//!
//! In headless Chromium: "Log in with ID-porten" → the provider's page → the national id →
//! back at `/innsyn`, logged in as that citizen with a lookup on them shown; logout ends the
//! provider's session too. Over plain HTTP: a callback without the flow cookie, with another
//! `state`, with another `iss`, with an ID token of another `nonce`, or with a code spent
//! already is refused, and sets no session.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use common::{TestCluster, free_port, org, person_born};
use kartotek_auth::{SigningKey, scopes};
use kartotek_proto::v1;
use kartotek_testkit::NodeSpec;
use serde_json::json;
use sha2::Digest;

use super::innsyn_frontend::{Browser, client_file, frontend_keys, trust_frontend_at};
use super::token_service::{Frontend, http_raw, registered_client, wait_listening};

/// The frontend's address and public JWK Set file, known before the cluster starts.
static FRONTEND: OnceLock<(SocketAddr, PathBuf)> = OnceLock::new();

fn trust_frontend(spec: &mut NodeSpec) {
    let (addr, jwks) = FRONTEND.get().expect("frontend set before the cluster");
    trust_frontend_at(spec, addr, jwks);
}

/// The page's client id at the provider (not its client id in Kartotek's directory: the
/// provider's ID tokens are for this one, `citizen_login.providers.audience`).
const PROVIDER_CLIENT_ID: &str = "innsyn-at-idporten";
const CLIENT_SECRET: &str = "s3cret-of-the-page-at-the-provider";

/// One authorisation the mock provider handed out, until its code is redeemed.
#[derive(Clone, Debug)]
struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: String,
    pid: String,
}

/// The mock provider.
struct Idp {
    issuer: String,
    key: SigningKey,
    grants: Mutex<HashMap<String, Grant>>,
    /// Every authorisation request's query, in order.
    authorize_seen: Mutex<Vec<BTreeMap<String, String>>>,
    /// Every end-session request's query.
    end_session_seen: Mutex<Vec<BTreeMap<String, String>>>,
    /// Refusals of the token endpoint (why), for the test's messages.
    token_refusals: Mutex<Vec<String>>,
    /// Test switch: sign the next ID token with another nonce.
    wrong_nonce: Mutex<bool>,
}

type Shared = Arc<Idp>;

async fn discovery(State(idp): State<Shared>) -> Response {
    let i = &idp.issuer;
    axum::Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "end_session_endpoint": format!("{i}/endsession"),
        "jwks_uri": format!("{i}/jwks.json"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

async fn jwks(State(idp): State<Shared>) -> Response {
    axum::Json(json!({ "keys": [idp.key.public_key().jwk()] })).into_response()
}

/// The provider's login page: the authorisation request's parameters carried in a form.
async fn authorize(
    State(idp): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    idp.authorize_seen.lock().unwrap().push(q.clone());
    let hidden: String = q
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(k),
                esc(v)
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><html><body><h1>Mock ID-porten</h1>\
         <form method=\"post\" action=\"/authorize/login\">{hidden}\
         <label for=\"pid\">Fødselsnummer</label><input id=\"pid\" name=\"pid\">\
         <button id=\"go\" type=\"submit\">Logg inn</button></form></body></html>"
    ))
    .into_response()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

/// The citizen "logged in": a code, and back to the client.
async fn authorize_login(
    State(idp): State<Shared>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Response {
    let code = format!("code-{}", uuid::Uuid::new_v4());
    let grant = Grant {
        client_id: f.get("client_id").cloned().unwrap_or_default(),
        redirect_uri: f.get("redirect_uri").cloned().unwrap_or_default(),
        challenge: f.get("code_challenge").cloned().unwrap_or_default(),
        nonce: f.get("nonce").cloned().unwrap_or_default(),
        pid: f.get("pid").cloned().unwrap_or_default(),
    };
    let to = format!(
        "{}?code={code}&state={}&iss={}",
        grant.redirect_uri,
        f.get("state").cloned().unwrap_or_default(),
        idp.issuer
    );
    idp.grants.lock().unwrap().insert(code, grant);
    Redirect::to(&to).into_response()
}

fn token_error(idp: &Idp, why: &str) -> Response {
    idp.token_refusals.lock().unwrap().push(why.to_owned());
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": "invalid_grant", "error_description": why })),
    )
        .into_response()
}

/// The token endpoint: a code once, for its client, redirect URI and PKCE verifier.
async fn token(State(idp): State<Shared>, Form(f): Form<BTreeMap<String, String>>) -> Response {
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return token_error(&idp, "grant_type");
    }
    if get("client_id") != PROVIDER_CLIENT_ID || get("client_secret") != CLIENT_SECRET {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    let Some(grant) = idp.grants.lock().unwrap().remove(get("code")) else {
        return token_error(&idp, "unknown or spent code");
    };
    if grant.client_id != PROVIDER_CLIENT_ID || grant.redirect_uri != get("redirect_uri") {
        return token_error(&idp, "client or redirect_uri");
    }
    let challenge = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        sha2::Sha256::digest(get("code_verifier").as_bytes()),
    );
    if challenge != grant.challenge {
        return token_error(&idp, "PKCE verifier");
    }
    let nonce = if std::mem::take(&mut *idp.wrong_nonce.lock().unwrap()) {
        "another-login".to_owned()
    } else {
        grant.nonce
    };
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": idp.issuer,
        "aud": PROVIDER_CLIENT_ID,
        "sub": "pairwise-sub-of-the-citizen",
        "pid": grant.pid,
        "acr": "idporten-loa-substantial",
        "amr": ["TestID"],
        "nonce": nonce,
        "iat": now,
        "exp": now + 120,
        "sid": "sso-session-1",
    });
    let id_token = idp.key.sign_jwt("JWT", &claims).unwrap();
    axum::Json(json!({
        "id_token": id_token,
        "access_token": "opaque-access-token-of-the-provider",
        "token_type": "Bearer",
        "expires_in": 120,
    }))
    .into_response()
}

async fn end_session(
    State(idp): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    idp.end_session_seen.lock().unwrap().push(q);
    Html("<!doctype html><html><body><h1>Logget ut av mock ID-porten</h1></body></html>")
        .into_response()
}

/// Starts the mock provider at `http://localhost:<port>`.
async fn start_idp() -> Shared {
    let port = free_port();
    let idp = Arc::new(Idp {
        issuer: format!("http://localhost:{port}"),
        key: SigningKey::generate_es256().unwrap(),
        grants: Mutex::default(),
        authorize_seen: Mutex::default(),
        end_session_seen: Mutex::default(),
        token_refusals: Mutex::default(),
        wrong_nonce: Mutex::new(false),
    });
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(discovery),
        )
        .route("/jwks.json", axum::routing::get(jwks))
        .route("/authorize", axum::routing::get(authorize))
        .route("/authorize/login", axum::routing::post(authorize_login))
        .route("/token", axum::routing::post(token))
        .route("/endsession", axum::routing::get(end_session))
        .with_state(idp.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    idp
}

/// A frontend at `addr` with only the provider login (no dev login).
fn start_frontend(
    dir: &Path,
    addr: SocketAddr,
    keys: PathBuf,
    endpoints: Vec<String>,
    app_file: &Path,
    idp: &Idp,
) -> Frontend {
    let secret = dir.join("idporten-client-secret");
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).unwrap();
    let config = kartotek_frontend::FrontendConfig {
        listen_addr: addr,
        public_base_url: format!("http://{addr}"),
        cluster: kartotek_frontend::ClusterSettings {
            endpoints,
            ..kartotek_frontend::ClusterSettings::default()
        },
        token: kartotek_frontend::TokenSettings {
            signing_keys_file: Some(keys),
            ..kartotek_frontend::TokenSettings::default()
        },
        citizen_login: kartotek_frontend::CitizenLoginSettings {
            providers: vec![kartotek_frontend::LoginProviderSettings {
                issuer: idp.issuer.clone(),
                audience: PROVIDER_CLIENT_ID.into(),
                jwks_file: None,
                jwks_uri: Some(format!("{}/jwks.json", idp.issuer)),
                acr_allowed: vec![
                    "idporten-loa-substantial".into(),
                    "idporten-loa-high".into(),
                ],
            }],
            dev_login: false,
            ..kartotek_frontend::CitizenLoginSettings::default()
        },
        innsyn: kartotek_frontend::InnsynSettings {
            client_file: Some(app_file.to_path_buf()),
            oidc: Some(kartotek_frontend::OidcLoginSettings {
                issuer: idp.issuer.clone(),
                client_id: PROVIDER_CLIENT_ID.into(),
                client_auth: kartotek_frontend::OidcClientAuth::ClientSecretPost,
                client_secret_file: Some(secret),
                client_key_file: None,
                authorization_endpoint: String::new(),
                token_endpoint: String::new(),
                end_session_endpoint: String::new(),
                scope: "openid profile".into(),
                acr_values: "idporten-loa-substantial".into(),
                flow_timeout_s: 600,
            }),
            ..kartotek_frontend::InnsynSettings::default()
        },
        ..kartotek_frontend::FrontendConfig::default()
    };
    Frontend::spawn(&config, dir)
}

/// The value of cookie `name` set in `head` (a response head as sent).
fn set_cookie(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("set-cookie").then(|| v.trim())
        })
        .find_map(|v| v.strip_prefix(&format!("{name}="))?.split(';').next())
        .map(str::to_owned)
        .filter(|v| !v.is_empty())
}

/// The `Location` of `head`.
fn location(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_owned())
        })
        .expect("a Location header")
}

fn query_of(url: &str) -> BTreeMap<String, String> {
    serde_urlencoded::from_str(url.split_once('?').map_or("", |(_, q)| q)).unwrap()
}

/// A login started over plain HTTP: (flow cookie, the authorisation request's query).
async fn started(addr: SocketAddr) -> (String, BTreeMap<String, String>) {
    let (status, head, body) =
        http_raw(addr, "GET", "/innsyn/login/idporten?lang=en", &[], None).await;
    assert_eq!(status, 303, "{head}\n{body}");
    let flow = set_cookie(&head, "innsyn_oidc").expect("the flow cookie");
    assert!(
        head.lines().any(|l| l
            .to_ascii_lowercase()
            .starts_with("set-cookie: innsyn_oidc=")
            && l.contains("HttpOnly")
            && l.contains("SameSite=Lax")),
        "{head}"
    );
    (flow, query_of(&location(&head)))
}

/// The provider's login of `pid` for an authorisation request: its redirect back.
async fn provider_login(idp: &Idp, request: &BTreeMap<String, String>, pid: &str) -> String {
    let idp_addr: SocketAddr = idp
        .issuer
        .replace("http://localhost", "127.0.0.1")
        .parse()
        .unwrap();
    let mut form = request.clone();
    form.insert("pid".into(), pid.into());
    let body = serde_urlencoded::to_string(&form).unwrap();
    let (status, head, _) = http_raw(
        idp_addr,
        "POST",
        "/authorize/login",
        &[],
        Some(("application/x-www-form-urlencoded", &body)),
    )
    .await;
    assert_eq!(status, 303, "{head}");
    location(&head)
}

/// The callback `url` (absolute) with the flow cookie: (status, head, body).
async fn callback(addr: SocketAddr, url: &str, flow: Option<&str>) -> (u16, String, String) {
    let path = url
        .strip_prefix(&format!("http://{addr}"))
        .unwrap_or(url)
        .to_owned();
    let cookie = flow.map(|f| format!("innsyn_oidc={f}"));
    let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("cookie", c.as_str())).collect();
    http_raw(addr, "GET", &path, &headers, None).await
}

fn refused_without_session(what: &str, (status, head, body): (u16, String, String), says: &str) {
    assert_eq!(status, 403, "{what}: {head}\n{body}");
    assert!(body.contains(says), "{what}: {body}");
    assert!(
        set_cookie(&head, "innsyn_session").is_none(),
        "{what}: no session: {head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citizens_log_in_at_the_provider_with_pkce_state_and_nonce() {
    let idp = start_idp().await;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let key_dir = tempfile::tempdir().unwrap();
    let (keys, jwks) = frontend_keys(key_dir.path());
    FRONTEND.set((addr, jwks)).unwrap();
    let cluster = TestCluster::start(1, trust_frontend).await;
    let app_key =
        registered_client(&cluster, "innsyn-oidc-app", &org(80), &[scopes::CITIZEN]).await;
    let app = client_file(cluster.dir.path(), addr, "innsyn-oidc-app", &app_key);
    let _frontend = start_frontend(cluster.dir.path(), addr, keys, cluster.addrs(), &app, &idp);
    wait_listening(addr).await;
    let me = person_born(1975, 11);
    let hospital = org(81);
    cluster
        .client_as(common::clinician("3456789", &hospital))
        .lookup_locator(v1::LookupLocatorRequest {
            patient: me.clone(),
            ..Default::default()
        })
        .await
        .unwrap();

    // The frontend fetches the provider's keys at start; wait until a login gets through.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (flow, request) = loop {
        let (flow, request) = started(addr).await;
        let back = provider_login(&idp, &request, &me).await;
        let answer = callback(addr, &back, Some(&flow)).await;
        if answer.0 == 200 {
            // The plain-HTTP login works: session cookies, Strict, and the flow cookie gone.
            let (_, head, body) = &answer;
            assert!(set_cookie(head, "innsyn_session").is_some(), "{head}");
            assert!(set_cookie(head, "innsyn_login").is_some(), "{head}");
            assert!(
                head.lines()
                    .any(|l| l.starts_with("set-cookie: innsyn_oidc=;")
                        || l.starts_with("Set-Cookie: innsyn_oidc=;")
                        || (l
                            .to_ascii_lowercase()
                            .starts_with("set-cookie: innsyn_oidc=")
                            && l.contains("Max-Age=0"))),
                "the flow cookie is cleared: {head}"
            );
            assert!(body.contains("http-equiv=\"refresh\""), "{body}");
            break (flow, request);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no login got through: {answer:?}; provider refusals {:?}",
            idp.token_refusals.lock().unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    // The authorisation request asked for what ID-porten needs, and PKCE S256.
    assert_eq!(request["response_type"], "code");
    assert_eq!(request["client_id"], PROVIDER_CLIENT_ID);
    assert_eq!(
        request["redirect_uri"],
        format!("http://{addr}/innsyn/callback")
    );
    assert_eq!(request["code_challenge_method"], "S256");
    assert_eq!(request["acr_values"], "idporten-loa-substantial");
    assert_eq!(request["ui_locales"], "en");
    assert_eq!(request["scope"], "openid profile");
    assert!(
        !request.values().any(|v| v.contains(&me)),
        "no national id in the URL"
    );

    // The same callback again: the code is spent at the provider.
    let back_again = format!(
        "http://{addr}/innsyn/callback?code=replayed&state={}&iss={}",
        request["state"], idp.issuer
    );
    refused_without_session(
        "a spent code",
        callback(addr, &back_again, Some(&flow)).await,
        "refused the code",
    );
    // No flow cookie: nothing is redeemed.
    let (_, request) = started(addr).await;
    let back = provider_login(&idp, &request, &me).await;
    refused_without_session(
        "no flow cookie",
        callback(addr, &back, None).await,
        "no login was started",
    );
    assert!(
        !idp.token_refusals
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains("PKCE")),
        "the page never sent a wrong verifier"
    );
    // Another browser's state.
    let (flow, _) = started(addr).await;
    refused_without_session(
        "another state",
        callback(addr, &back, Some(&flow)).await,
        "state",
    );
    // Another issuer in the answer (RFC 9207 mix-up defence).
    let (flow, request) = started(addr).await;
    let back = provider_login(&idp, &request, &me).await;
    let mixed = back.replace(&format!("iss={}", idp.issuer), "iss=https://evil.example");
    refused_without_session(
        "another iss",
        callback(addr, &mixed, Some(&flow)).await,
        "another login provider",
    );
    // An ID token of another login (nonce).
    let (flow, request) = started(addr).await;
    let back = provider_login(&idp, &request, &me).await;
    *idp.wrong_nonce.lock().unwrap() = true;
    refused_without_session(
        "another nonce",
        callback(addr, &back, Some(&flow)).await,
        "nonce",
    );
    // The citizen cancelled at the provider.
    let (flow, request) = started(addr).await;
    let cancelled = format!(
        "http://{addr}/innsyn/callback?error=access_denied&error_description=cancelled&state={}",
        request["state"]
    );
    refused_without_session(
        "cancelled",
        callback(addr, &cancelled, Some(&flow)).await,
        "access_denied",
    );

    // In the browser, across sites.
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser.goto(&format!("http://{addr}/innsyn?lang=en")).await;
    let page = browser.source().await;
    assert!(page.contains("Log in with ID-porten"), "{page}");
    assert!(!page.contains("id=\"pid\""), "no dev login: {page}");
    browser.click("#idporten-login").await;
    browser.wait_for("Mock ID-porten").await;
    assert!(
        browser
            .url()
            .await
            .starts_with(&format!("{}/authorize?", idp.issuer))
    );
    browser.type_into("#pid", &me).await;
    browser.click("#go").await;
    let page = browser.wait_for("Logged in as").await;
    assert!(
        browser
            .url()
            .await
            .starts_with(&format!("http://{addr}/innsyn"))
    );
    assert!(
        page.contains(&format!("Organisation number {hospital}")),
        "{page}"
    );
    browser.screenshot("innsyn-idporten").await;
    // Logout here and at the provider.
    browser.click("form[action='/innsyn/logout'] button").await;
    browser.wait_for("Logget ut av mock ID-porten").await;
    let ended = idp.end_session_seen.lock().unwrap().clone();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(ended[0]["id_token_hint"].starts_with("ey"), "{ended:?}");
    assert_eq!(
        ended[0]["post_logout_redirect_uri"],
        format!("http://{addr}/innsyn")
    );
    browser.goto(&format!("http://{addr}/innsyn?lang=en")).await;
    assert!(browser.source().await.contains("Log in with ID-porten"));
}
