//! The server side of the Raft transport (`kartotek.raft.v1.RaftService`).
//!
//! Decodes openraft messages, hands them to the local Raft, and returns the encoded `Result`.
//! Besides Raft itself it carries the two leader services other nodes need: the read index
//! (bounded-staleness reads) and the audit chain append (events recorded on a follower).
//! Calls from another cluster (wrong `x-kartotek-cluster`) and undecodable payloads are
//! refused with an error; nothing a peer sends can crash the node. Appends carrying entries
//! stamped far ahead of this node's clock are refused, with the rest of that leader's term
//! ([`crate::raft::stamps`]).

use kartotek_domain::audit::AuditEvent;
use kartotek_domain::limits::AUDIT_EVENTS_PER_APPEND_MAX;
use kartotek_proto::raft::v1::raft_service_server::RaftService;
use kartotek_proto::raft::v1::{
    RaftPayload, ReadIndexRequest, ReadIndexResponse, RecordAuditResponse, ShipAuditResponse,
};
use kartotek_proto::{CLUSTER_HEADER, TARGET_NODE_HEADER};
use kartotek_storage::TypeConfig;
use openraft::Raft;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use crate::error::NodeError;

/// Where the `ReadIndex` RPC gets its answer: the node's read barrier (in
/// [`crate::consistency`]), passed in so that this transport layer does not depend on the
/// layer above it.
#[tonic::async_trait]
pub trait ReadIndexSource: Send + Sync + 'static {
    /// Confirms leadership with a quorum and returns the index a read must wait for.
    async fn read_index(&self) -> Result<u64, NodeError>;
}

/// Where the `RecordAudit` RPC appends: the node's audit layer (in [`crate::audit`]), passed
/// in for the same reason.
#[tonic::async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// Appends `events` to the chain as leader under `request_id`; their first and last seq.
    async fn append_forwarded(
        &self,
        request_id: &str,
        events: Vec<AuditEvent>,
    ) -> Result<(u64, u64), NodeError>;

    /// Chains a batch of another node's audit journal as leader (exactly once per seq).
    async fn ship_forwarded(&self, ship: ForwardedShip) -> Result<ShipResult, NodeError>;
}

/// What a follower sends in `RecordAudit`: the batch's request id and its events.
pub type ForwardedAudit = (String, Vec<AuditEvent>);

/// What a follower's shipper sends in `ShipAudit`: a run of its journal.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ForwardedShip {
    /// The journal's id.
    pub journal: u64,
    /// The journal seq of `events[0]`.
    pub first_seq: u64,
    /// The events, in journal order.
    pub events: Vec<AuditEvent>,
}

/// What chaining a journal batch did (`Outcome::AuditShipped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShipResult {
    /// The journal's newest seq in the chain now.
    pub journal_through: u64,
    /// Events newly chained.
    pub appended: u32,
    /// Journal seqs missing before the batch.
    pub gap: u64,
}

/// The layers above the transport that its leader-service RPCs reach.
pub struct Upper {
    /// Answers `ReadIndex`.
    pub read_index: std::sync::Arc<dyn ReadIndexSource>,
    /// Answers `RecordAudit`.
    pub audit: std::sync::Arc<dyn AuditSink>,
}

/// Serves Raft RPCs for one node.
pub struct RaftServiceImpl {
    raft: Raft<TypeConfig>,
    stamps: crate::raft::stamps::StampGuard,
    node_id: u64,
    cluster: String,
    upper: Upper,
}

impl RaftServiceImpl {
    /// Serves `raft` for the cluster named `cluster`, refusing appends as `stamps` says.
    pub fn new(
        raft: Raft<TypeConfig>,
        node_id: u64,
        cluster: String,
        upper: Upper,
        stamps: crate::raft::stamps::StampGuard,
    ) -> Self {
        RaftServiceImpl {
            raft,
            stamps,
            node_id,
            cluster,
            upper,
        }
    }

    fn check_cluster<T>(&self, req: &Request<T>) -> Result<(), Status> {
        // A request addressed to another node id (a stale membership entry at a reused
        // address) is refused: answering it would feed one node's log to another's progress.
        if let Some(v) = req.metadata().get(TARGET_NODE_HEADER) {
            let target = v.to_str().ok().and_then(|s| s.parse::<u64>().ok());
            if target != Some(self.node_id) {
                return Err(Status::permission_denied(format!(
                    "this is node {}, not node {}",
                    self.node_id,
                    v.to_str().unwrap_or("?")
                )));
            }
        }
        match req.metadata().get(CLUSTER_HEADER).map(|v| v.to_str()) {
            Some(Ok(name)) if name == self.cluster => Ok(()),
            Some(Ok(name)) => Err(Status::permission_denied(format!(
                "this node belongs to cluster {:?}, not {:?}",
                self.cluster, name
            ))),
            _ => Err(Status::permission_denied("missing cluster name")),
        }
    }
}

fn decode<T: DeserializeOwned>(payload: &RaftPayload) -> Result<T, Status> {
    postcard::from_bytes(&payload.data)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft payload: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    postcard::to_allocvec(value)
        .map(|data| Response::new(RaftPayload { data }))
        .map_err(|e| Status::internal(format!("encoding raft reply: {e}")))
}

#[tonic::async_trait]
impl RaftService for RaftServiceImpl {
    async fn append_entries(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_cluster(&req)?;
        let rpc = decode(req.get_ref())?;
        self.stamps
            .check(&rpc, kartotek_domain::Timestamp::now())
            .map_err(Status::failed_precondition)?;
        let result = self.raft.append_entries(rpc).await;
        encode(&result)
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_cluster(&req)?;
        let rpc = decode(req.get_ref())?;
        let result = self.raft.vote(rpc).await;
        encode(&result)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_cluster(&req)?;
        let rpc = decode(req.get_ref())?;
        let result = self.raft.install_snapshot(rpc).await;
        encode(&result)
    }

    async fn read_index(
        &self,
        req: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        self.check_cluster(&req)?;
        let read_index = self
            .upper
            .read_index
            .read_index()
            .await
            .map_err(Status::from)?;
        Ok(Response::new(ReadIndexResponse { read_index }))
    }

    async fn record_audit(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RecordAuditResponse>, Status> {
        self.check_cluster(&req)?;
        let (request_id, events): ForwardedAudit = decode(req.get_ref())?;
        if events.is_empty() || events.len() > AUDIT_EVENTS_PER_APPEND_MAX {
            return Err(Status::invalid_argument(format!(
                "a forwarded audit batch has 1 to {AUDIT_EVENTS_PER_APPEND_MAX} events"
            )));
        }
        let (first_seq, last_seq) = self
            .upper
            .audit
            .append_forwarded(&request_id, events)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(RecordAuditResponse {
            first_seq,
            last_seq,
        }))
    }

    async fn ship_audit(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<ShipAuditResponse>, Status> {
        self.check_cluster(&req)?;
        let ship: ForwardedShip = decode(req.get_ref())?;
        if ship.events.is_empty() || ship.events.len() > AUDIT_EVENTS_PER_APPEND_MAX {
            return Err(Status::invalid_argument(format!(
                "a shipped audit batch has 1 to {AUDIT_EVENTS_PER_APPEND_MAX} events"
            )));
        }
        if ship.first_seq == 0
            || ship
                .first_seq
                .checked_add(ship.events.len() as u64)
                .is_none()
        {
            return Err(Status::invalid_argument(
                "a shipped audit batch starts at journal seq 1 or later and ends before u64::MAX",
            ));
        }
        let r = self
            .upper
            .audit
            .ship_forwarded(ship)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(ShipAuditResponse {
            journal_through: r.journal_through,
            appended: r.appended,
            gap: r.gap,
        }))
    }
}

#[cfg(test)]
mod tests {
    //! The Raft payload decoder takes bytes from the network (behind mutual TLS, but a bug
    //! or a compromised peer must still not crash a node): any bytes decode to a message or
    //! to INVALID_ARGUMENT, never a panic or an unbounded allocation.

    use super::*;
    use kartotek_proto::raft::v1::RaftPayload;
    use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
    use proptest::prelude::*;

    fn payload(data: Vec<u8>) -> RaftPayload {
        RaftPayload { data }
    }

    fn decode_all(data: &[u8]) {
        let p = payload(data.to_vec());
        for r in [
            decode::<AppendEntriesRequest<TypeConfig>>(&p).map(|_| ()),
            decode::<VoteRequest<u64>>(&p).map(|_| ()),
            decode::<InstallSnapshotRequest<TypeConfig>>(&p).map(|_| ()),
            decode::<ForwardedAudit>(&p).map(|_| ()),
            decode::<ForwardedShip>(&p).map(|_| ()),
        ] {
            if let Err(status) = r {
                assert_eq!(status.code(), tonic::Code::InvalidArgument);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            decode_all(&data);
        }

        /// A real message with bytes flipped or cut: the decoder meets plausible prefixes,
        /// lengths and enum tags, not only noise.
        #[test]
        fn damaged_messages_never_panic(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let events: ForwardedAudit = ("rid-1".into(), Vec::new());
            let mut data = postcard::to_allocvec(&events).unwrap_or_default();
            let vote = VoteRequest::<u64>::new(openraft::Vote::new(3, 1), None);
            data.extend(postcard::to_allocvec(&vote).unwrap_or_default());
            for (at, byte) in flips {
                let i = at.index(data.len());
                data[i] ^= byte;
            }
            data.truncate(cut.index(data.len() + 1));
            decode_all(&data);
        }
    }

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating_it() {
        // A vec length of 2^63 in postcard's varint, then nothing.
        let mut data = vec![0x05, b'r', b'i', b'd', b'-', b'1'];
        data.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        let r = decode::<ForwardedAudit>(&payload(data));
        assert_eq!(
            r.err().map(|s| s.code()),
            Some(tonic::Code::InvalidArgument)
        );
    }
}
