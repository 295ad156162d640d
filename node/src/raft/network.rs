//! The client side of the Raft transport: openraft's `RaftNetwork` over tonic.
//!
//! Messages are openraft's own types encoded with postcard in a `RaftPayload`; the reply is
//! the encoded `Result` of the remote call, so remote Raft errors arrive as such. Transport
//! failures become `Unreachable` (openraft backs off) and every call carries the cluster name
//! and a deadline from openraft's `RPCOption`, also enforced here. Append timeouts and
//! snapshot sends are counted per target ([`TransportMetrics`]).

use std::time::Duration;

use kartotek_proto::TARGET_NODE_HEADER;
use kartotek_proto::raft::v1::RaftPayload;
use kartotek_proto::raft::v1::raft_service_client::RaftServiceClient;
use kartotek_storage::KartotekNode;
use kartotek_storage::TypeConfig;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::peers::{Peers, with_cluster};
use crate::metrics::PeerLabels;

/// What the transport counts, per target (handles into the node's metrics).
#[derive(Clone, Default)]
pub struct TransportMetrics {
    /// AppendEntries that got no answer within their deadline.
    pub append_timeouts: Family<PeerLabels, Counter>,
    /// Snapshot chunks a peer acknowledged.
    pub snapshot_chunks_sent: Family<PeerLabels, Counter>,
    /// Snapshots a peer acknowledged whole.
    pub snapshots_sent: Family<PeerLabels, Counter>,
}

/// Creates a [`PeerClient`] per target; channels are shared through [`Peers`].
#[derive(Clone)]
pub struct NetworkFactory {
    peers: Peers,
    cluster: String,
    append_bytes_max: usize,
    metrics: TransportMetrics,
}

impl NetworkFactory {
    /// A factory for the cluster named `cluster`; appends larger than `append_bytes_max` are
    /// split.
    pub fn new(
        peers: Peers,
        cluster: String,
        append_bytes_max: usize,
        metrics: TransportMetrics,
    ) -> Self {
        NetworkFactory {
            peers,
            cluster,
            append_bytes_max,
            metrics,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &KartotekNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.raft_addr.clone(),
            client: self
                .peers
                .raft_client(&node.raft_addr)
                .map_err(|e| e.to_string()),
            cluster: self.cluster.clone(),
            append_bytes_max: self.append_bytes_max,
            metrics: self.metrics.clone(),
            labels: PeerLabels::of(target),
        }
    }
}

/// Transport to one peer.
pub struct PeerClient {
    target: u64,
    addr: String,
    client: Result<RaftServiceClient<Channel>, String>,
    cluster: String,
    append_bytes_max: usize,
    metrics: TransportMetrics,
    labels: PeerLabels,
}

/// The kinds of Raft RPC, for dispatch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
}

/// Encodes a Raft message for the wire.
#[allow(clippy::result_large_err)] // openraft's error type, returned as is by the trait
fn encode<Req: Serialize, E: std::error::Error>(
    req: &Req,
) -> Result<Vec<u8>, RPCError<u64, KartotekNode, E>> {
    postcard::to_allocvec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<u64, KartotekNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let data = encode(req)?;
        self.send(rpc, data, timeout).await
    }

    async fn send<Resp, E>(
        &mut self,
        rpc: Rpc,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<Resp, RPCError<u64, KartotekNode, E>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = match &mut self.client {
            Ok(c) => c,
            Err(e) => {
                let err = std::io::Error::other(format!("bad address {}: {e}", self.addr));
                return Err(RPCError::Unreachable(Unreachable::new(&err)));
            }
        };
        let mut request = with_cluster(tonic::Request::new(RaftPayload { data }), &self.cluster);
        if let Ok(v) = tonic::metadata::MetadataValue::try_from(self.target.to_string()) {
            request.metadata_mut().insert(TARGET_NODE_HEADER, v);
        }
        request.set_timeout(timeout);
        let call = async {
            match rpc {
                Rpc::Append => client.append_entries(request).await,
                Rpc::Vote => client.vote(request).await,
                Rpc::Snapshot => client.install_snapshot(request).await,
            }
        };
        let result = tokio::time::timeout(timeout, call)
            .await
            .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer in time")));
        if rpc == Rpc::Append
            && matches!(&result, Err(s) if s.code() == tonic::Code::DeadlineExceeded)
        {
            self.metrics
                .append_timeouts
                .get_or_create(&self.labels)
                .inc();
        }
        let reply = match result {
            Ok(r) => r.into_inner(),
            Err(status) => {
                let err = std::io::Error::other(format!(
                    "node {} at {}: {}: {}",
                    self.target,
                    self.addr,
                    status.code(),
                    status.message()
                ));
                return Err(match status.code() {
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                        RPCError::Unreachable(Unreachable::new(&err))
                    }
                    _ => RPCError::Network(NetworkError::new(&err)),
                });
            }
        };
        let decoded: Result<Resp, E> = postcard::from_bytes(&reply.data)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, KartotekNode, RaftError<u64>>> {
        let data = encode(&rpc)?;
        // openraft waits one heartbeat interval for an append; a large one would time out
        // again and again. Ask openraft to send fewer entries instead (it keeps the hint for
        // the next requests).
        let entries = rpc.entries.len() as u64;
        if data.len() > self.append_bytes_max && entries > 1 {
            let fit = entries * self.append_bytes_max as u64 / data.len() as u64;
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fit.clamp(1, entries - 1)),
            ));
        }
        self.send(Rpc::Append, data, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, KartotekNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let done = rpc.done;
        let answer = self.call(Rpc::Snapshot, &rpc, option.hard_ttl()).await;
        if answer.is_ok() {
            self.metrics
                .snapshot_chunks_sent
                .get_or_create(&self.labels)
                .inc();
            if done {
                self.metrics
                    .snapshots_sent
                    .get_or_create(&self.labels)
                    .inc();
            }
        }
        answer
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, KartotekNode, RaftError<u64>>> {
        self.call(Rpc::Vote, &rpc, option.hard_ttl()).await
    }
}
