//! The set of nodes a client knows, one lazily connected channel per node, and the last
//! known leader.
//!
//! [`Endpoints`] is shared by all clones of a [`KartotekClient`](crate::KartotekClient). It
//! starts with the configured endpoints and grows with addresses learned from leader hints,
//! up to [`ENDPOINTS_MAX`](crate::ENDPOINTS_MAX). Channels are created on first use, so
//! building a client needs no runtime and opens no connection.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::config::{ClientConfig, ENDPOINTS_MAX};
use crate::error::ClientError;

/// HTTP/2 PING interval on idle connections.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// Time to wait for a PING answer before the connection is considered dead.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest CA file read, bytes.
const CA_FILE_BYTES_MAX: u64 = 256 * 1024;

/// The PEM text of the CA file at `path` (at most [`CA_FILE_BYTES_MAX`]).
fn read_ca(path: &std::path::Path) -> Result<Vec<u8>, ClientError> {
    use std::io::Read;
    let fail = |why: String| ClientError::Config(format!("ca_file {}: {why}", path.display()));
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .map_err(|e| fail(e.to_string()))?
        .take(CA_FILE_BYTES_MAX + 1)
        .read_to_end(&mut pem)
        .map_err(|e| fail(e.to_string()))?;
    if pem.len() as u64 > CA_FILE_BYTES_MAX {
        return Err(fail(format!("larger than {CA_FILE_BYTES_MAX} bytes")));
    }
    if !pem.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(fail("not PEM (no -----BEGIN line)".into()));
    }
    Ok(pem)
}

/// One known node.
#[derive(Debug)]
struct Node {
    /// Canonical address, `http://host:port`.
    uri: String,
    /// Created on first use.
    channel: Option<Channel>,
}

#[derive(Debug)]
struct State {
    /// Configured endpoints first (the first is the preferred one), then learned ones.
    nodes: Vec<Node>,
    /// Canonical address of the last known leader.
    leader: Option<String>,
}

/// Known nodes, their channels and the last known leader.
#[derive(Debug)]
pub(crate) struct Endpoints {
    connect_timeout: Duration,
    /// The CA the nodes' API certificates must chain to (`ClientConfig::ca_file`): every
    /// channel is then TLS, checking the node's name against the endpoint's host.
    tls_ca: Option<Certificate>,
    state: Mutex<State>,
}

impl Endpoints {
    /// The configured endpoints (validated, normalized, deduplicated).
    pub(crate) fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let nodes = config
            .normalized_endpoints()?
            .into_iter()
            .map(|uri| Node { uri, channel: None })
            .collect();
        let tls_ca = match &config.ca_file {
            None => None,
            Some(path) => Some(Certificate::from_pem(read_ca(path)?)),
        };
        Ok(Self {
            connect_timeout: config.connect_timeout(),
            tls_ca,
            state: Mutex::new(State {
                nodes,
                leader: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state inconsistent (every update
        // is a single assignment or push), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// All known endpoints, in order.
    pub(crate) fn all(&self) -> Vec<String> {
        self.lock().nodes.iter().map(|n| n.uri.clone()).collect()
    }

    /// The preferred endpoint (the first configured).
    pub(crate) fn preferred(&self) -> String {
        self.lock()
            .nodes
            .first()
            .map(|n| n.uri.clone())
            .unwrap_or_default()
    }

    /// The last known leader.
    pub(crate) fn leader(&self) -> Option<String> {
        self.lock().leader.clone()
    }

    /// Where a leader-bound call starts: the last known leader, else the preferred endpoint.
    pub(crate) fn leader_or_preferred(&self) -> String {
        let state = self.lock();
        state
            .leader
            .clone()
            .or_else(|| state.nodes.first().map(|n| n.uri.clone()))
            .unwrap_or_default()
    }

    /// Records `uri` (canonical) as the leader and adds it to the known endpoints if there is
    /// room.
    pub(crate) fn set_leader(&self, uri: &str) {
        let mut state = self.lock();
        if !state.nodes.iter().any(|n| n.uri == uri) && state.nodes.len() < ENDPOINTS_MAX {
            state.nodes.push(Node {
                uri: uri.to_owned(),
                channel: None,
            });
        }
        if state.leader.as_deref() != Some(uri) {
            state.leader = Some(uri.to_owned());
        }
    }

    /// Forgets the leader if it is `uri` (it failed or said it is not the leader).
    pub(crate) fn forget_leader(&self, uri: &str) {
        let mut state = self.lock();
        if state.leader.as_deref() == Some(uri) {
            state.leader = None;
        }
    }

    /// The endpoint after `uri` in round-robin order (the first one if `uri` is unknown).
    pub(crate) fn next_after(&self, uri: &str) -> String {
        let state = self.lock();
        let len = state.nodes.len();
        let index = state
            .nodes
            .iter()
            .position(|n| n.uri == uri)
            .map_or(0, |i| (i + 1) % len.max(1));
        state
            .nodes
            .get(index)
            .map(|n| n.uri.clone())
            .unwrap_or_default()
    }

    /// The channel to `uri` (canonical). Known endpoints keep theirs; an unknown one gets a
    /// fresh lazy channel that is not remembered.
    pub(crate) fn channel(&self, uri: &str) -> Result<Channel, ClientError> {
        let mut state = self.lock();
        if let Some(node) = state.nodes.iter_mut().find(|n| n.uri == uri) {
            if let Some(channel) = &node.channel {
                return Ok(channel.clone());
            }
            let channel = self.connect_lazy(uri)?;
            node.channel = Some(channel.clone());
            return Ok(channel);
        }
        drop(state);
        self.connect_lazy(uri)
    }

    /// A channel that connects on first use. Must run inside a Tokio runtime.
    fn connect_lazy(&self, uri: &str) -> Result<Channel, ClientError> {
        let dial = match &self.tls_ca {
            None => uri.to_owned(),
            Some(_) => uri.replacen("http://", "https://", 1),
        };
        let mut endpoint = Endpoint::from_shared(dial)
            .map_err(|e| ClientError::Config(format!("invalid endpoint {uri}: {e}")))?;
        if let Some(ca) = &self.tls_ca {
            let host = endpoint.uri().host().unwrap_or_default().to_owned();
            endpoint = endpoint
                .tls_config(
                    ClientTlsConfig::new()
                        .ca_certificate(ca.clone())
                        .domain_name(host.trim_start_matches('[').trim_end_matches(']')),
                )
                .map_err(|e| ClientError::Config(format!("TLS for {uri}: {e}")))?;
        }
        let endpoint = endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        Ok(endpoint.connect_lazy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(list: &[&str]) -> Endpoints {
        Endpoints::new(&ClientConfig::with_endpoints(list.iter().copied())).expect("valid config")
    }

    #[test]
    fn round_robin_wraps() {
        let e = endpoints(&["a:1", "b:2"]);
        assert_eq!(e.next_after("http://a:1"), "http://b:2");
        assert_eq!(e.next_after("http://b:2"), "http://a:1");
        assert_eq!(e.next_after("http://zzz:9"), "http://a:1");
    }

    #[test]
    fn leader_is_learned_and_bounded() {
        let e = endpoints(&["a:1"]);
        assert_eq!(e.leader_or_preferred(), "http://a:1");
        e.set_leader("http://b:2");
        assert_eq!(e.leader().as_deref(), Some("http://b:2"));
        assert_eq!(e.all(), vec!["http://a:1", "http://b:2"]);
        e.forget_leader("http://a:1");
        assert_eq!(e.leader().as_deref(), Some("http://b:2"));
        e.forget_leader("http://b:2");
        assert_eq!(e.leader(), None);
        for port in 0..(2 * ENDPOINTS_MAX) {
            e.set_leader(&format!("http://n:{}", port + 10));
        }
        assert_eq!(e.all().len(), ENDPOINTS_MAX);
        assert_eq!(e.preferred(), "http://a:1");
    }
}
