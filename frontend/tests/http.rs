//! The frontend served on a port-0 listener, with a cluster that is not there (its endpoint is
//! a loopback port nobody listens on): liveness, readiness, problem documents, request ids
//! and metrics, over plain HTTP/1.1.

// Helpers outside #[test] functions panic on unexpected input too: this is a test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use kartotek_frontend::{FrontendConfig, PROBLEM_JSON};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One request on a fresh connection (`connection: close`, so the answer ends with EOF).
async fn request(addr: SocketAddr, head: &str, body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let text = format!("{head}\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect::<Vec<_>>();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, &format!("GET {path} HTTP/1.1"), b"").await
}

/// A loopback port nobody listens on (bound, then released).
async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// Starts a frontend whose cluster is a dead port; returns its address and the shutdown
/// trigger.
async fn start() -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let mut config = FrontendConfig::default();
    config.cluster.endpoints = vec![dead_port().await.to_string()];
    config.cluster.connect_timeout_ms = 200;
    config.cluster.attempt_timeout_ms = 300;
    config.cluster.readiness_timeout_ms = 500;
    config.http.request_body_bytes_max = 4096;
    config.http.shutdown_grace_ms = 1000;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        kartotek_frontend::serve(config, listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (addr, tx, task)
}

fn assert_problem(a: &Answer, status: u16, path: &str) -> serde_json::Value {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.header("content-type"), Some(PROBLEM_JSON));
    let p = a.json();
    assert_eq!(p["status"], status);
    assert!(p["type"].is_string(), "{p}");
    assert!(p["title"].is_string(), "{p}");
    assert_eq!(p["instance"], path, "{p}");
    assert_eq!(
        p["request_id"].as_str(),
        a.header("x-request-id"),
        "problem and header carry the same request id"
    );
    p
}

#[tokio::test]
async fn frontend_without_cluster() {
    let (addr, stop, task) = start().await;

    // Liveness does not depend on the cluster.
    let a = get(addr, "/healthz").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, "ok");
    let generated = a.header("x-request-id").unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(generated).unwrap().get_version_num(),
        4
    );

    // Readiness does.
    let a = get(addr, "/readyz").await;
    let p = assert_problem(&a, 503, "/readyz");
    assert_eq!(p["type"], "urn:kartotek:problem:cluster-unavailable");
    assert!(
        !a.body.contains("127.0.0.1:"),
        "no internal addresses: {}",
        a.body
    );

    // Unknown routes answer as problem documents, with the caller's request id echoed.
    let a = request(
        addr,
        "GET /no/such/thing HTTP/1.1\r\nx-request-id: test-id-42",
        b"",
    )
    .await;
    let p = assert_problem(&a, 404, "/no/such/thing");
    assert_eq!(p["type"], "urn:kartotek:problem:not-found");
    assert_eq!(a.header("x-request-id"), Some("test-id-42"));

    // An unacceptable request id is replaced.
    let a = request(addr, "GET /healthz HTTP/1.1\r\nx-request-id: bad;id", b"").await;
    assert_ne!(a.header("x-request-id"), Some("bad;id"));
    assert!(uuid::Uuid::parse_str(a.header("x-request-id").unwrap()).is_ok());

    // Wrong method on a known route: axum's 405, rewritten as a problem document.
    let a = request(addr, "POST /healthz HTTP/1.1\r\ncontent-length: 0", b"").await;
    let p = assert_problem(&a, 405, "/healthz");
    assert_eq!(p["type"], "about:blank");
    assert_eq!(p["title"], "Method Not Allowed");
    assert!(a.header("allow").is_some_and(|v| v.contains("GET")));

    // Oversized bodies are refused before they are read.
    let a = request(addr, "POST /readyz HTTP/1.1\r\ncontent-length: 100000", b"").await;
    let p = assert_problem(&a, 413, "/readyz");
    assert_eq!(p["type"], "urn:kartotek:problem:body-too-large");

    // Metrics count every request above by route and code.
    let a = get(addr, "/metrics").await;
    assert_eq!(a.status, 200);
    for line in [
        r#"kartotek_frontend_http_requests_total{route="/healthz",method="GET",code="200"} 2"#,
        r#"kartotek_frontend_http_requests_total{route="/readyz",method="GET",code="503"} 1"#,
        r#"kartotek_frontend_http_requests_total{route="unmatched",method="GET",code="404"} 1"#,
        r#"kartotek_frontend_http_requests_total{route="/healthz",method="POST",code="405"} 1"#,
        r#"kartotek_frontend_http_request_duration_seconds_count{route="/readyz"} 2"#,
    ] {
        assert!(a.body.contains(line), "{line} missing from\n{}", a.body);
    }

    // Shutdown: the server stops.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}
