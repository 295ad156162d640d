//! TLS on the frontend's own listener (`[tls]` in `frontend.toml`: `cert_file`, `key_file`).
//!
//! [`TlsListener`] is an `axum::serve::Listener`: a task accepts TCP connections and runs
//! each TLS handshake in a task of its own (at most [`HANDSHAKES_MAX`] at once, each within
//! [`HANDSHAKE_TIMEOUT_MS`]), so a client that stalls its handshake holds one slot, not the
//! accept loop; finished connections wait in a bounded queue for the server. rustls with ring,
//! TLS 1.2 and 1.3, HTTP/1.1 and HTTP/2 by ALPN. The files are read at start; a new
//! certificate means a restart (frontends are stateless: restart them one at a time).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Most TLS handshakes in progress at once.
pub const HANDSHAKES_MAX: usize = 1024;
/// Time a client has to finish its handshake.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Finished connections waiting for the server.
pub const READY_QUEUE_MAX: usize = 256;

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
#[error("tls: {path}: {reason}")]
pub struct TlsError {
    path: String,
    reason: String,
}

fn tls_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The server configuration of a certificate chain and key (PEM files).
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| tls_error(cert_file, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(cert_file, e))?;
    if certs.is_empty() {
        return Err(tls_error(cert_file, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| tls_error(key_file, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(cert_file, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls_error(cert_file, e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A listener whose connections are TLS (see the [module docs](self)).
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// TLS over `tcp` with `config`.
    pub fn new(tcp: TcpListener, config: rustls::ServerConfig) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (tx, ready) = mpsc::channel(READY_QUEUE_MAX);
        let slots = Arc::new(Semaphore::new(HANDSHAKES_MAX));
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(
                        Duration::from_millis(HANDSHAKE_TIMEOUT_MS),
                        acceptor.accept(stream),
                    )
                    .await;
                    drop(permit);
                    match handshake {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            accept_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task ended (it only does when the runtime shuts down): no more
            // connections, ever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A self-signed certificate for localhost/127.0.0.1, its files, and a client config that
    /// trusts it.
    fn certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, rustls::ClientConfig) {
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        let cert = params.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
        let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_file, cert.pem()).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&key_file, key.serialize_pem()).unwrap_or_else(|e| panic!("{e}"));
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(cert.der().clone())
            .unwrap_or_else(|e| panic!("{e}"));
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("{e}"))
        .with_root_certificates(roots)
        .with_no_client_auth();
        (cert_file, key_file, client)
    }

    async fn https_get(addr: SocketAddr, client: &rustls::ClientConfig) -> String {
        let tcp = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client.clone()));
        let name =
            rustls_pki_types::ServerName::try_from("localhost").unwrap_or_else(|e| panic!("{e}"));
        let mut tls = connector
            .connect(name, tcp)
            .await
            .unwrap_or_else(|e| panic!("handshake: {e}"));
        tls.write_all(b"GET /hello HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = String::new();
        let _ = tls.read_to_string(&mut out).await;
        out
    }

    /// The listener serves HTTPS; a client that stalls its handshake does not hold up
    /// others; a plaintext request gets no HTTP answer.
    #[tokio::test]
    async fn serves_https_and_a_stalled_handshake_blocks_nobody() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (cert_file, key_file, client) = certificate(dir.path());
        let config = server_config(&cert_file, &key_file).unwrap_or_else(|e| panic!("{e}"));
        let tcp = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let listener = TlsListener::new(tcp, config).unwrap_or_else(|e| panic!("{e}"));
        let addr = axum::serve::Listener::local_addr(&listener).unwrap_or_else(|e| panic!("{e}"));
        let app = Router::new().route("/hello", get(|| async { "hello over tls" }));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        // Connects and says nothing.
        let _stalled = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let answer = tokio::time::timeout(Duration::from_secs(5), https_get(addr, &client))
            .await
            .unwrap_or_else(|_| panic!("an HTTPS request waited behind a stalled handshake"));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("hello over tls"), "{answer}");
        // Plain HTTP on the TLS port: no HTTP answer.
        let mut plain = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        plain
            .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut got)).await;
        assert!(!String::from_utf8_lossy(&got).contains("hello over tls"));
    }

    #[test]
    fn missing_or_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap_or_else(|e| panic!("{e}"));
        let e = server_config(&empty, &empty).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("empty.pem")));
        let e = server_config(&dir.path().join("nope.pem"), &empty)
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("nope.pem")));
    }
}
