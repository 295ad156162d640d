//! Connections to other nodes: one lazily connected, reused gRPC channel per address.
//!
//! Shared by the Raft transport and the bounded-staleness read path (which asks the leader for
//! a read index). The pool is bounded; a changed address for a node id gets a new channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kartotek_proto::raft::v1::raft_service_client::RaftServiceClient;
use tonic::transport::{Channel, Endpoint};

use super::tls::{RaftTls, host_of};

/// Most peer channels kept.
pub const PEER_CHANNELS_MAX: usize = 64;

/// Marks a node-to-node request with the cluster name (checked by the receiving node).
pub fn with_cluster<T>(mut request: tonic::Request<T>, cluster: &str) -> tonic::Request<T> {
    if let Ok(v) = tonic::metadata::MetadataValue::try_from(cluster) {
        request
            .metadata_mut()
            .insert(kartotek_proto::CLUSTER_HEADER, v);
    }
    request
}

/// Pool of channels to peers. Cheap to clone.
#[derive(Clone)]
pub struct Peers {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    connect_timeout: Duration,
    tls: Option<RaftTls>,
}

impl Peers {
    /// An empty pool; with `tls`, every channel is mutual TLS with the cluster CA.
    pub fn new(connect_timeout: Duration, tls: Option<RaftTls>) -> Self {
        Peers {
            channels: Arc::new(Mutex::new(HashMap::new())),
            connect_timeout,
            tls,
        }
    }

    /// A Raft transport client for `addr` (`host:port`).
    pub fn raft_client(
        &self,
        addr: &str,
    ) -> Result<RaftServiceClient<Channel>, tonic::transport::Error> {
        let channel = self.channel(addr)?;
        Ok(RaftServiceClient::new(channel)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20))
    }

    /// The shared channel to `addr` (`host:port`), opened lazily.
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut map = match self.channels.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = match &self.tls {
            Some(tls) => Endpoint::from_shared(format!("https://{addr}"))?
                .tls_config(tls.client(host_of(addr)))?,
            None => Endpoint::from_shared(format!("http://{addr}"))?,
        };
        let endpoint = endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect_lazy();
        if map.len() >= PEER_CHANNELS_MAX {
            map.clear();
        }
        map.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }
}
