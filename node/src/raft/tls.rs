//! Mutual TLS on the Raft listener and on this node's calls to its peers, and the public API's
//! server TLS ([`api_server`], `[tls.api]`).
//!
//! Both ends present a certificate signed by the cluster CA (`tls.raft.ca_file`) and check the
//! other's against it, so a host without a cluster certificate cannot vote, append, install a
//! snapshot, ask for a read index or forward audit events: its handshake fails before any
//! request is read. The cluster CA should sign node certificates only (not API clients or
//! frontends), since every holder of one is a full Raft peer. The files are read once, at
//! start; rotating certificates means restarting nodes one at a time.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::{ApiTlsFiles, MutualTlsFiles};

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
#[error("tls: reading {path}: {source}")]
pub struct TlsError {
    path: String,
    source: std::io::Error,
}

/// This node's cluster identity and the CA it checks peers against. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RaftTls {
    ca: Certificate,
    identity: Identity,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError {
        path: path.display().to_string(),
        source,
    })
}

impl RaftTls {
    /// Reads the CA, certificate and key files (PEM).
    pub fn load(files: &MutualTlsFiles) -> Result<RaftTls, TlsError> {
        let ca = Certificate::from_pem(read(&files.ca_file)?);
        let identity = Identity::from_pem(read(&files.cert_file)?, read(&files.key_file)?);
        Ok(RaftTls { ca, identity })
    }

    /// The Raft listener's side: this node's certificate, and client certificates required
    /// and checked against the cluster CA.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
    }

    /// A call to the peer at `host`: its certificate must be the cluster CA's and name
    /// `host`; this node presents its own.
    pub fn client(&self, host: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(host)
    }
}

/// The public API's server TLS: this node's API certificate and, for mutual TLS, the CA
/// client certificates must come from (see [`ApiTlsFiles`]).
pub fn api_server(files: &ApiTlsFiles) -> Result<ServerTlsConfig, TlsError> {
    let identity = Identity::from_pem(read(&files.cert_file)?, read(&files.key_file)?);
    let mut config = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &files.client_ca_file {
        config = config.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(config)
}

/// The host part of `host:port` (brackets of an IPv6 literal removed).
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_of_strips_the_port_and_brackets() {
        assert_eq!(host_of("10.0.0.1:7501"), "10.0.0.1");
        assert_eq!(
            host_of("kartotek-a1.site-a.example:7501"),
            "kartotek-a1.site-a.example"
        );
        assert_eq!(host_of("[::1]:7501"), "::1");
        assert_eq!(host_of("noport"), "noport");
    }
}
