//! The Raft layer: how this node talks Raft with the others and how writes reach the log.
//!
//! - [`network`]: the client side of the transport (openraft's `RaftNetwork` over tonic).
//! - [`service`]: the server side (`kartotek.raft.v1.RaftService`), node-to-node only; it is
//!   not part of the public API and does not pass the public request layer, but it refuses
//!   calls from another cluster or meant for another node id.
//! - [`peers`]: the shared pool of channels to other nodes.
//! - [`tls`]: mutual TLS between nodes (the Raft listener and the peer channels).
//! - [`proposer`]: packs concurrent writes into one log entry (group commit).
//! - [`stamps`]: the follower's refusal of entries stamped far ahead of its clock.
//!
//! Nothing here knows about callers, audit or the public API; the layers above
//! ([`crate::consistency`], [`crate::audit`], [`crate::api`]) build on it.

pub mod network;
pub mod peers;
pub mod proposer;
pub mod service;
pub mod stamps;
pub mod tls;

use crate::error::NodeError;

/// Maps openraft's "forward to leader" into [`NodeError::NotLeader`].
pub fn forward_to_leader(
    fwd: &openraft::error::ForwardToLeader<u64, kartotek_storage::KartotekNode>,
) -> NodeError {
    NodeError::NotLeader {
        leader_id: fwd.leader_id,
        leader_addr: fwd.leader_node.as_ref().map(|n| n.addr.clone()),
    }
}
