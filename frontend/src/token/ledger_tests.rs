//! The token ledger through the token service: two frontends (two routers, each with its own
//! replay cache) over one registry, as behind a load balancer: an assertion is single-use
//! across both; revocation (RFC 7009) and introspection (RFC 7662) answer alike on either.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use kartotek_auth::{JtiReplayCache, SigningKey, SigningKeySet, scopes, sign_client_assertion};
use kartotek_client::KartotekClient;
use serde_json::Value;
use tower::ServiceExt;

use super::TokenService;
use super::directory::{DirectoryClient, MemoryDirectory};
use super::routes::now_s;
use crate::config::FrontendConfig;
use crate::metrics::Metrics;
use crate::server::{routes, state_with};

const ISS: &str = "http://127.0.0.1:8080";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct Pair {
    a: Router,
    b: Router,
    key: SigningKey,
}

/// Two frontends sharing signing keys and a registry with clients `ehr-1`, `ehr-2` and
/// `greedy` (which is allowed the ledger scope, as a misconfigured record might be).
fn pair() -> Pair {
    pair_with(|_| {})
}

/// [`pair`] with a configuration tweak.
fn pair_with(tweak: fn(&mut FrontendConfig)) -> Pair {
    let key = SigningKey::generate_es256().unwrap();
    let directory = Arc::new(MemoryDirectory::new());
    for (id, extra) in [
        ("ehr-1", None),
        ("ehr-2", None),
        ("greedy", Some(scopes::TOKENS_LEDGER)),
    ] {
        let mut allowed = vec![scopes::LOCATOR_READ.to_owned()];
        allowed.extend(extra.map(str::to_owned));
        directory.insert(DirectoryClient {
            client_id: id.into(),
            org: "974760673".into(),
            active: true,
            public_keys: vec![key.public_key().jwk().to_string()],
            allowed_scopes: allowed,
        });
    }
    let keys = SigningKeySet::single(SigningKey::generate_es256().unwrap());
    let frontend = || {
        let mut config = FrontendConfig::default();
        config.cluster.readiness_timeout_ms = 50;
        tweak(&mut config);
        let metrics = Metrics::new();
        let token = TokenService::new(
            &config,
            keys.clone(),
            directory.clone(),
            Arc::new(JtiReplayCache::default()),
            metrics.clone(),
        );
        let client = KartotekClient::new(config.client_config()).unwrap();
        routes(state_with(config, client, metrics, token), Router::new())
    };
    Pair {
        a: frontend(),
        b: frontend(),
        key,
    }
}

fn post(path: &str, pairs: &[(&str, &str)]) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(serde_urlencoded::to_string(pairs).unwrap()))
        .unwrap()
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let (status, body, _) = call_with_headers(app, req).await;
    (status, body)
}

async fn call_with_headers(
    app: &Router,
    req: Request<Body>,
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        headers,
    )
}

impl Pair {
    fn assertion(&self, client: &str) -> String {
        sign_client_assertion(&self.key, client, ISS, now_s(), 30).unwrap()
    }

    /// `path` with `client`'s fresh assertion and `extra` parameters.
    fn authed(&self, path: &str, client: &str, extra: &[(&str, &str)]) -> Request<Body> {
        let assertion = self.assertion(client);
        let mut pairs = vec![
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
        ];
        pairs.extend_from_slice(extra);
        post(path, &pairs)
    }

    async fn token(&self, client: &str) -> String {
        let req = self.authed(
            "/connect/token",
            client,
            &[("grant_type", "client_credentials")],
        );
        let (status, body) = call(&self.a, req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn an_assertion_is_single_use_across_frontends() {
    let p = pair();
    let assertion = p.assertion("ehr-1");
    let req = || {
        post(
            "/connect/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
        )
    };
    let (status, body) = call(&p.a, req()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The other frontend has never seen it in its own cache: the ledger refuses it.
    let (status, body) = call(&p.b, req()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
}

#[tokio::test]
async fn revoked_tokens_introspect_inactive_on_every_frontend() {
    let p = pair();
    let token = p.token("ehr-1").await;

    // The holder learns about its token on the other frontend.
    let introspect = |who: &str| p.authed("/connect/introspect", who, &[("token", &token)]);
    let (status, body) = call(&p.b, introspect("ehr-1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["client_id"], "ehr-1");
    assert_eq!(body["scope"], scopes::LOCATOR_READ);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["exp"].as_i64().unwrap() > now_s());
    // Another client, not in the token's audience, learns nothing.
    let (_, body) = call(&p.b, introspect("ehr-2")).await;
    assert_eq!(body, serde_json::json!({"active": false}));

    // Another client may not revoke it; without client authentication nobody may.
    let (status, body) = call(
        &p.a,
        p.authed("/connect/revoke", "ehr-2", &[("token", &token)]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "unauthorized_client");
    let (status, _) = call(&p.a, post("/connect/revoke", &[("token", &token)])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, body) = call(&p.a, introspect("ehr-1")).await;
    assert_eq!(body["active"], true, "refused revocations changed nothing");

    // The holder revokes it at one frontend; both then say inactive.
    let (status, _) = call(
        &p.a,
        p.authed("/connect/revoke", "ehr-1", &[("token", &token)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for app in [&p.a, &p.b] {
        let (_, body) = call(app, introspect("ehr-1")).await;
        assert_eq!(body, serde_json::json!({"active": false}));
    }
    // Revoking twice, or revoking something that is no token of ours, is still a success.
    for t in [token.as_str(), "not-a-token"] {
        let (status, _) = call(&p.b, p.authed("/connect/revoke", "ehr-1", &[("token", t)])).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) = call(&p.b, p.authed("/connect/revoke", "ehr-1", &[])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn the_ledger_scope_is_never_granted_to_a_client() {
    let p = pair();
    let req = p.authed(
        "/connect/token",
        "greedy",
        &[
            ("grant_type", "client_credentials"),
            ("scope", scopes::TOKENS_LEDGER),
        ],
    );
    let (status, body) = call(&p.a, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_scope");
    let req = p.authed(
        "/connect/token",
        "greedy",
        &[("grant_type", "client_credentials")],
    );
    let (status, body) = call(&p.a, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], scopes::LOCATOR_READ, "{body}");
}

#[tokio::test]
async fn the_metadata_names_revocation_and_introspection() {
    let p = pair();
    let req = Request::get("/.well-known/oauth-authorization-server")
        .body(Body::empty())
        .unwrap();
    let (_, body) = call(&p.a, req).await;
    assert_eq!(body["revocation_endpoint"], format!("{ISS}/connect/revoke"));
    assert_eq!(
        body["introspection_endpoint"],
        format!("{ISS}/connect/introspect")
    );
}

#[tokio::test]
async fn one_client_over_its_rate_waits_and_others_do_not() {
    let p = pair_with(|c| {
        c.token.requests_per_client_per_s = 1;
        c.token.request_burst_per_client = 2;
    });
    let token_req = |who: &str| {
        p.authed(
            "/connect/token",
            who,
            &[("grant_type", "client_credentials")],
        )
    };
    for _ in 0..2 {
        let (status, body) = call(&p.a, token_req("ehr-1")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body, headers) = call_with_headers(&p.a, token_req("ehr-1")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(
        headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // Another client is not slowed down: forged assertions naming ehr-2 cost it nothing.
    let stranger = SigningKey::generate_es256().unwrap();
    for _ in 0..3 {
        let forged = sign_client_assertion(&stranger, "ehr-2", ISS, now_s(), 30).unwrap();
        let req = post(
            "/connect/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &forged),
            ],
        );
        let (status, _) = call(&p.a, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for _ in 0..2 {
        let (status, body) = call(&p.a, token_req("ehr-2")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}
