//! Protobuf messages and gRPC stubs for Kartotek.
//!
//! - [`v1`]: the public API (`kartotek.v1`): locator entries and cluster administration.
//! - [`raft::v1`]: the node-to-node Raft transport (`kartotek.raft.v1`).
//!
//! Both are generated at build time from `proto/` with a vendored `protoc`.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// Encoded `FileDescriptorSet` of every Kartotek proto (for gRPC server reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("kartotek_descriptor");

/// Public API, package `kartotek.v1`.
pub mod v1 {
    tonic::include_proto!("kartotek.v1");
}

/// Node-to-node transport, package `kartotek.raft.v1`.
pub mod raft {
    /// Version 1 of the transport.
    pub mod v1 {
        tonic::include_proto!("kartotek.raft.v1");
    }
}

/// Metadata key carrying the leader's node id on a "not leader" error.
pub const LEADER_ID_HEADER: &str = "x-kartotek-leader-id";
/// Metadata key carrying the leader's gRPC address on a "not leader" error.
pub const LEADER_ADDR_HEADER: &str = "x-kartotek-leader-addr";
/// Metadata key naming the offending request field on INVALID_ARGUMENT.
pub const FIELD_HEADER: &str = "x-kartotek-field";
/// Metadata key carrying the cluster name on every node-to-node call.
pub const CLUSTER_HEADER: &str = "x-kartotek-cluster";
/// Metadata key naming the node id a Raft request is meant for; a node with another id refuses
/// it (a wiped node re-added under a new id at a reused address must not answer for the old id).
pub const TARGET_NODE_HEADER: &str = "x-kartotek-target-node";
/// Metadata key carrying the caller's request id (for tracing); writes also carry it in the body.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Metadata key naming who calls: `personnel:<HPR>`, `citizen:<national id>`,
/// `client:<client id>` or `system:<name>` (until verified tokens carry it). Audited.
pub const ACTOR_HEADER: &str = "x-kartotek-actor";
/// Metadata key of the organisation number the caller acts for. Audited.
pub const ORG_HEADER: &str = "x-kartotek-org";
/// Metadata key of the purpose of use (e.g. `treatment`). Audited.
pub const PURPOSE_HEADER: &str = "x-kartotek-purpose";
/// Metadata key of the national id the caller acts on behalf of (representation). Audited.
pub const ON_BEHALF_OF_HEADER: &str = "x-kartotek-on-behalf-of";
/// Metadata key of the oldest revision still in the change history (with OUT_OF_RANGE).
pub const OLDEST_REVISION_HEADER: &str = "x-kartotek-oldest-revision";
