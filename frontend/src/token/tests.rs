//! The token endpoints through the whole router (request layer included) with an in-memory
//! client directory: success, and each refusal (replayed, expired, wrong audience, unknown
//! or disabled client, scope not allowed, wrong typ, oversized body, ...).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use kartotek_auth::{
    ASSERTION_TYPE, JtiReplayCache, SigningKey, SigningKeySet, TokenVerifier, TrustedIssuer,
    VerifierOptions, scopes, sign_client_assertion,
};
use kartotek_client::KartotekClient;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::TokenService;
use super::directory::{DirectoryClient, MemoryDirectory};
use super::routes::now_s;
use crate::config::FrontendConfig;
use crate::metrics::Metrics;
use crate::server::{routes, state_with};

const ISS: &str = "http://127.0.0.1:8080";

struct Fixture {
    app: Router,
    client_key: SigningKey,
    metrics: Metrics,
}

fn fixture() -> Fixture {
    let mut config = FrontendConfig::default();
    config.cluster.readiness_timeout_ms = 50;
    let client_key = SigningKey::generate_es256().unwrap();
    let directory = MemoryDirectory::new();
    for (id, active) in [("ehr-1", true), ("off-1", false)] {
        directory.insert(DirectoryClient {
            client_id: id.into(),
            org: "974760673".into(),
            active,
            public_keys: vec![client_key.public_key().jwk().to_string()],
            allowed_scopes: vec![scopes::LOCATOR_READ.into(), scopes::AUDIT_WRITE.into()],
        });
    }
    let metrics = Metrics::new();
    let token = TokenService::new(
        &config,
        SigningKeySet::single(SigningKey::generate_es256().unwrap()),
        Arc::new(directory),
        Arc::new(JtiReplayCache::default()),
        metrics.clone(),
    );
    let client = KartotekClient::new(config.client_config()).unwrap();
    let state = state_with(config, client, metrics.clone(), token);
    Fixture {
        app: routes(state, Router::new()),
        client_key,
        metrics,
    }
}

fn form(pairs: &[(&str, &str)]) -> Request<Body> {
    let body = serde_urlencoded::to_string(pairs).unwrap();
    Request::post("/connect/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn token_request(assertion: &str, scope: Option<&str>) -> Request<Body> {
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
    ];
    if let Some(s) = scope {
        pairs.push(("scope", s));
    }
    form(&pairs)
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value, axum::http::HeaderMap) {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json, headers)
}

fn assertion(f: &Fixture, client: &str) -> String {
    sign_client_assertion(&f.client_key, client, ISS, now_s(), 30).unwrap()
}

/// An assertion with custom claims (and `typ`).
fn custom_assertion(f: &Fixture, typ: &str, claims: &Value) -> String {
    f.client_key.sign_jwt(typ, claims).unwrap()
}

fn claims(client: &str, aud: &str, exp_in_s: i64) -> Value {
    let now = now_s();
    json!({"iss": client, "sub": client, "aud": aud, "iat": now, "exp": now + exp_in_s,
           "jti": kartotek_auth::new_jti().unwrap()})
}

async fn refused(f: &Fixture, req: Request<Body>, status: StatusCode, error: &str) -> String {
    let (s, body, headers) = call(&f.app, req).await;
    assert_eq!((s, body["error"].as_str()), (status, Some(error)), "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    body["error_description"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn a_client_gets_a_token_that_verifies_against_the_published_keys() {
    let f = fixture();
    let (status, body, headers) = call(&f.app, token_request(&assertion(&f, "ehr-1"), None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "kartotek:audit.write kartotek:locator.read");
    let (status, jwks, headers) = call(&f.app, get("/.well-known/jwks.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    assert!(!jwks.to_string().contains("\"d\""));
    let verifier = TokenVerifier::new(
        vec![TrustedIssuer::from_jwks_json(ISS, "kartotek", &jwks.to_string()).unwrap()],
        VerifierOptions::default(),
    );
    let claims = verifier
        .verify(body["access_token"].as_str().unwrap(), now_s())
        .unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.client_id.as_str()),
        ("ehr-1", "ehr-1")
    );
    assert_eq!(claims.org_parent.as_deref(), Some("974760673"));
    assert!(claims.has_scope(scopes::LOCATOR_READ));
    // A narrower scope request.
    let (status, body, _) = call(
        &f.app,
        token_request(&assertion(&f, "ehr-1"), Some(scopes::LOCATOR_READ)),
    )
    .await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (StatusCode::OK, Some(scopes::LOCATOR_READ))
    );
    // Metadata.
    let (status, meta, _) = call(&f.app, get("/.well-known/oauth-authorization-server")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(meta["issuer"], ISS);
    assert_eq!(meta["token_endpoint"], format!("{ISS}/connect/token"));
    assert_eq!(meta["jwks_uri"], format!("{ISS}/.well-known/jwks.json"));
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    assert_eq!(
        meta["grant_types_supported"],
        json!(["client_credentials", super::GRANT_TOKEN_EXCHANGE])
    );
    let text = f.metrics.render();
    assert!(
        text.contains(r#"kartotek_frontend_tokens_issued_total{grant="client_credentials"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn refusals() {
    let f = fixture();
    // Replayed jti.
    let a = assertion(&f, "ehr-1");
    let (status, _, _) = call(&f.app, token_request(&a, None)).await;
    assert_eq!(status, StatusCode::OK);
    // Replayed, expired, wrong audience, wrong typ, unknown and disabled clients: all
    // invalid_client (401), each with its reason.
    let cases = [
        (a, "already used"),
        (
            custom_assertion(&f, ASSERTION_TYPE, &claims("ehr-1", ISS, -60)),
            "expired",
        ),
        (
            custom_assertion(&f, ASSERTION_TYPE, &claims("ehr-1", "https://other", 30)),
            "aud",
        ),
        (
            custom_assertion(&f, "JWT", &claims("ehr-1", ISS, 30)),
            "typ",
        ),
        (assertion(&f, "nobody"), "unknown client"),
        (assertion(&f, "off-1"), "disabled"),
    ];
    for (t, want) in cases {
        let req = token_request(&t, None);
        let why = refused(&f, req, StatusCode::UNAUTHORIZED, "invalid_client").await;
        assert!(why.contains(want), "{why} / {want}");
    }
    // A scope the client may not have.
    let why = refused(
        &f,
        token_request(
            &assertion(&f, "ehr-1"),
            Some("kartotek:locator.read kartotek:admin"),
        ),
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    )
    .await;
    assert!(why.contains("kartotek:admin"), "{why}");
    // Oversized body: declared, and streamed without a length.
    let big = "x".repeat(20 * 1024);
    refused(
        &f,
        token_request(&big, None),
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
    )
    .await;
    let chunks = (0..40).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'a'; 512])));
    let req = Request::post("/connect/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    refused(&f, req, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request").await;
    // Other grant types, secrets, missing authentication, repeated parameters, JSON bodies.
    const CC: (&str, &str) = ("grant_type", "client_credentials");
    type Form<'a> = &'a [(&'a str, &'a str)];
    let forms: [(Form, StatusCode, &str); 5] = [
        (
            &[("grant_type", "password")],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            &[("scope", "x")],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            &[CC, ("client_secret", "s")],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (&[CC], StatusCode::UNAUTHORIZED, "invalid_client"),
        (&[CC, CC], StatusCode::BAD_REQUEST, "invalid_request"),
    ];
    for (pairs, status, error) in forms {
        refused(&f, form(pairs), status, error).await;
    }
    let req = Request::post("/connect/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    refused(&f, req, StatusCode::BAD_REQUEST, "invalid_request").await;
    let text = f.metrics.render();
    assert!(
        text.contains(r#"kartotek_frontend_token_errors_total{error="invalid_client"}"#),
        "{text}"
    );
    assert!(text.contains(r#"kartotek_frontend_token_errors_total{error="invalid_scope"} 1"#));
}
