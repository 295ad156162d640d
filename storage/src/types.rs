//! The openraft type configuration shared by the storage, the transport and the node.

use std::fmt;

use kartotek_domain::{Command, Response};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Kartotek's Raft types: commands are [`Command`], answers [`Response`], nodes are
    /// [`KartotekNode`]s (a public API address and a Raft address), and snapshots are files
    /// streamed in bounded chunks.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = u64,
        Node = KartotekNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A node id.
pub type NodeId = u64;
/// A member's addresses, as the membership stores them: where clients reach its public API
/// (the leader hint in a `NOT_LEADER` answer, audit forwarding) and where peers reach its Raft
/// listener (votes, appends, snapshots, read-index), which is a separate port so that it can
/// demand the cluster's client certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KartotekNode {
    /// The public gRPC API (`host:port`).
    pub addr: String,
    /// The Raft transport (`host:port`).
    pub raft_addr: String,
}

impl KartotekNode {
    /// A member at `addr` (public API) and `raft_addr` (Raft transport).
    pub fn new(addr: impl Into<String>, raft_addr: impl Into<String>) -> Self {
        KartotekNode {
            addr: addr.into(),
            raft_addr: raft_addr.into(),
        }
    }
}

impl fmt::Display for KartotekNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (raft {})", self.addr, self.raft_addr)
    }
}

/// A node's address record.
pub type Node = KartotekNode;
/// A log id.
pub type LogId = openraft::LogId<NodeId>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// The vote.
pub type Vote = openraft::Vote<NodeId>;
/// Membership with the log id it was stored at.
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
/// A snapshot with its data.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// openraft's storage error.
pub type RaftStorageError = openraft::StorageError<NodeId>;
