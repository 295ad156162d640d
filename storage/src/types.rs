//! The openraft type configuration shared by the storage, the transport and the node.

use kartotek_domain::{Command, Response};

openraft::declare_raft_types!(
    /// Kartotek's Raft types: commands are [`Command`], answers [`Response`], nodes are
    /// addressed by their gRPC address, and snapshots are files streamed in bounded chunks.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A node id.
pub type NodeId = u64;
/// A node's address record.
pub type Node = openraft::BasicNode;
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
