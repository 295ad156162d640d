//! The token service end to end: a real cluster and a `kartotek frontend` process. A client
//! registered in the cluster with a freshly generated P-256 public JWK gets an access token
//! with `private_key_jwt`; the token verifies with `TokenVerifier` against the JWK Set the
//! frontend publishes, carries the client's org and scopes; the same assertion sent again is
//! refused (single-use `jti`), as is a client that was disabled since.

// Helpers outside #[test] functions panic on unexpected input too: this is a test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestCluster, free_port, org};
use kartotek_auth::{
    SigningKey, TokenVerifier, TrustedIssuer, VerifierOptions, scopes, sign_client_assertion,
};
use kartotek_proto::v1::{ClientRequest, ClientStatus};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Kills the frontend when the test ends (also on failure), printing its log on failure.
pub(crate) struct Frontend {
    child: Child,
    log: std::path::PathBuf,
}

impl Frontend {
    /// Starts `kartotek frontend` on `config`, written to `dir/frontend.toml`; its log goes
    /// to `dir/frontend.log` (printed if the test panics).
    pub(crate) fn spawn(config: &kartotek_frontend::FrontendConfig, dir: &Path) -> Frontend {
        let file = dir.join("frontend.toml");
        std::fs::write(&file, config.to_toml().unwrap()).unwrap();
        let log = dir.join("frontend.log");
        let child = Command::new(env!("CARGO_BIN_EXE_kartotek"))
            .arg("frontend")
            .arg("--config")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Frontend { child, log }
    }
}

impl Drop for Frontend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- frontend log ---\n{log}");
        }
    }
}

/// Registers client `client_id` of organisation `owner`, allowed `scopes`; its key.
pub(crate) async fn registered_client(
    cluster: &TestCluster,
    client_id: &str,
    owner: &str,
    scopes: &[&str],
) -> SigningKey {
    let key = SigningKey::generate_es256().unwrap();
    cluster
        .client()
        .register_client(ClientRequest {
            client_id: client_id.into(),
            org: owner.into(),
            public_keys: vec![key.public_key().jwk().to_string()],
            allowed_scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    key
}

/// An access token with `scopes` for `client_id` from the frontend at `addr`
/// (`client_credentials` with a signed client assertion).
pub(crate) async fn frontend_token(
    addr: SocketAddr,
    key: &SigningKey,
    client_id: &str,
    scopes: &[&str],
) -> String {
    let issuer = kartotek_testkit::auth::TEST_ISSUER;
    let assertion = sign_client_assertion(key, client_id, issuer, now_s(), 30).unwrap();
    let form = client_credentials_form(&assertion, &scopes.join(" "));
    let (status, _, body) = http_with(
        addr,
        "POST",
        "/connect/token",
        &[],
        Some(("application/x-www-form-urlencoded", &form)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

/// A frontend that issues tokens as the test issuer the nodes trust (its keys), so that its
/// own calls to the cluster (the client lookups) are accepted.
pub(crate) fn start_frontend(dir: &Path, addr: SocketAddr, endpoints: Vec<String>) -> Frontend {
    let keys = dir.join("frontend-signing-keys.json");
    common::issuer().write_signing_keys(&keys).unwrap();
    let config = kartotek_frontend::FrontendConfig {
        listen_addr: addr,
        public_base_url: format!("http://{addr}"),
        cluster: kartotek_frontend::ClusterSettings {
            endpoints,
            ..kartotek_frontend::ClusterSettings::default()
        },
        token: kartotek_frontend::TokenSettings {
            issuer: kartotek_testkit::auth::TEST_ISSUER.into(),
            signing_keys_file: Some(keys),
            ..kartotek_frontend::TokenSettings::default()
        },
        ..kartotek_frontend::FrontendConfig::default()
    };
    Frontend::spawn(&config, dir)
}

/// Waits (up to 30 s) until something listens on `addr`.
pub(crate) async fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "the frontend did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One HTTP/1.1 request on a fresh connection; (status, body).
async fn http(addr: SocketAddr, method: &str, path: &str, form: Option<&str>) -> (u16, String) {
    let body = form.map(|f| ("application/x-www-form-urlencoded", f));
    let (status, _, body) = http_with(addr, method, path, &[], body).await;
    (status, body)
}

/// One HTTP/1.1 request on a fresh connection with extra `headers` and a `(content type,
/// body)`; (status, response head lower-cased, body).
pub(crate) async fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> (u16, String, String) {
    let (status, head, body) = http_raw(addr, method, path, headers, body).await;
    (status, head.to_ascii_lowercase(), body)
}

/// [`http_with`], the response head as sent (cookie values keep their case).
pub(crate) async fn http_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some((content_type, body)) = body {
        head.push_str(&format!("content-type: {content_type}\r\n"));
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(body.map_or("", |(_, b)| b).as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head.to_owned(), body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

fn token_form(assertion: &str) -> String {
    client_credentials_form(assertion, scopes::LOCATOR_READ)
}

/// The form of a `client_credentials` request with `assertion`, asking for `scope`.
pub(crate) fn client_credentials_form(assertion: &str, scope: &str) -> String {
    [
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
        ("scope", scope),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", urlencode(v)))
    .collect::<Vec<_>>()
    .join("&")
}

/// `POST /connect/token` with `assertion`, asking for `kartotek:locator.read`.
async fn post_token(addr: SocketAddr, assertion: &str) -> (u16, String) {
    http(addr, "POST", "/connect/token", Some(&token_form(assertion))).await
}

pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn now_s() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_client_gets_a_verifiable_single_use_token() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let c = cluster.client();
    let owner = org(7);
    let key = SigningKey::generate_es256().unwrap();
    let request = |status: ClientStatus| ClientRequest {
        client_id: "ehr-e2e".into(),
        org: owner.clone(),
        public_keys: vec![key.public_key().jwk().to_string()],
        allowed_scopes: vec![scopes::LOCATOR_READ.into(), scopes::RECORDS_READ.into()],
        status: status as i32,
        ..Default::default()
    };
    let registered = c
        .register_client(request(ClientStatus::Unspecified))
        .await
        .unwrap();
    assert!(registered.changed);

    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let issuer = kartotek_testkit::auth::TEST_ISSUER.to_owned();
    let _frontend = start_frontend(cluster.dir.path(), addr, cluster.addrs());
    wait_listening(addr).await;

    let (status, meta) = http(addr, "GET", "/.well-known/oauth-authorization-server", None).await;
    assert_eq!(status, 200, "{meta}");
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["issuer"], issuer.as_str());
    assert_eq!(meta["token_endpoint"], format!("{issuer}/connect/token"));

    let assertion = sign_client_assertion(&key, "ehr-e2e", &issuer, now_s(), 30).unwrap();
    let (status, body) = post_token(addr, &assertion).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["scope"], scopes::LOCATOR_READ);

    let (status, jwks) = http(addr, "GET", "/.well-known/jwks.json", None).await;
    assert_eq!(status, 200, "{jwks}");
    let verifier = TokenVerifier::new(
        vec![TrustedIssuer::from_jwks_json(issuer.clone(), "kartotek", &jwks).unwrap()],
        VerifierOptions::default(),
    );
    let claims = verifier
        .verify(answer["access_token"].as_str().unwrap(), now_s())
        .unwrap();
    assert_eq!(claims.client_id, "ehr-e2e");
    assert_eq!(claims.org_parent.as_deref(), Some(owner.as_str()));
    assert!(claims.has_scope(scopes::LOCATOR_READ));
    assert!(!claims.has_scope(scopes::RECORDS_READ));

    // The same assertion again: refused.
    let (status, body) = post_token(addr, &assertion).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("invalid_client") && body.contains("already used"),
        "{body}"
    );

    // Disabled since: a fresh assertion is refused too.
    c.update_client(request(ClientStatus::Disabled))
        .await
        .unwrap();
    let fresh = sign_client_assertion(&key, "ehr-e2e", &issuer, now_s(), 30).unwrap();
    let (status, body) = post_token(addr, &fresh).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("disabled"), "{body}");

    let (status, metrics) = http(addr, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"kartotek_frontend_tokens_issued_total{grant="client_credentials"} 1"#),
        "{metrics}"
    );
}
