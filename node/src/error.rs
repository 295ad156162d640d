//! Errors of the node's services and their mapping onto gRPC status codes.
//!
//! The mapping is part of the API contract: clients retry `UNAVAILABLE` (following the leader
//! hint in the metadata), never `INVALID_ARGUMENT` or `FAILED_PRECONDITION`.

use kartotek_domain::{ApplyError, ValidationError};
use kartotek_proto::{FIELD_HEADER, LEADER_ADDR_HEADER, LEADER_ID_HEADER, OLDEST_REVISION_HEADER};
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// What can go wrong serving a request.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The request is malformed; nothing was written.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// This node is not the leader.
    #[error("not the leader{}", leader_text(.leader_id, .leader_addr))]
    NotLeader {
        /// The leader, if known.
        leader_id: Option<u64>,
        /// Its address, if known.
        leader_addr: Option<String>,
    },
    /// The command was valid but could not take effect.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A bounded-staleness read could not be proven fresh enough here.
    #[error(
        "cannot prove this replica is within max_staleness_ms: {0}; retry with a linearizable read on the leader"
    )]
    StalenessUnprovable(String),
    /// The cluster cannot serve the request now (no quorum, shutting down).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The request's deadline passed; a write may still take effect (retry with the same
    /// request id).
    #[error("deadline exceeded: {0}")]
    Timeout(String),
    /// An operation that needs the cluster to be uninitialised, or similar.
    #[error("failed precondition: {0}")]
    Precondition(String),
    /// A watch asked for a revision the change history no longer keeps.
    #[error(
        "revision {requested} is compacted; the oldest revision still available is {oldest}: re-read the state and watch from its revision + 1"
    )]
    Compacted {
        /// What the caller asked for.
        requested: u64,
        /// The oldest revision kept.
        oldest: u64,
    },
    /// The call carries no valid access token (missing, malformed, expired, wrong issuer,
    /// audience or signature); nothing was read or written.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The token is valid but does not allow this call (a scope it lacks).
    #[error("permission denied: {0}")]
    Forbidden(String),
    /// The node's data disk is nearly full: client writes are refused ([`crate::disk`]).
    #[error("resource exhausted: {0}")]
    ReadOnly(String),
    /// Storage failed.
    #[error("storage: {0}")]
    Storage(#[from] kartotek_storage::StoreError),
    /// A bug or an unexpected Raft state.
    #[error("internal: {0}")]
    Internal(String),
}

impl NodeError {
    /// The same failure for another caller (every item of a failed proposal batch gets one).
    pub fn for_another_caller(&self) -> NodeError {
        match self {
            NodeError::NotLeader {
                leader_id,
                leader_addr,
            } => NodeError::NotLeader {
                leader_id: *leader_id,
                leader_addr: leader_addr.clone(),
            },
            NodeError::Unavailable(m) => NodeError::Unavailable(m.clone()),
            NodeError::Timeout(m) => NodeError::Timeout(m.clone()),
            NodeError::ReadOnly(m) => NodeError::ReadOnly(m.clone()),
            other => NodeError::Internal(other.to_string()),
        }
    }
}

impl From<kartotek_storage::HistoryError> for NodeError {
    fn from(e: kartotek_storage::HistoryError) -> Self {
        match e {
            kartotek_storage::HistoryError::Compacted { requested, oldest } => {
                NodeError::Compacted { requested, oldest }
            }
            kartotek_storage::HistoryError::Store(s) => NodeError::Storage(s),
        }
    }
}

fn leader_text(id: &Option<u64>, addr: &Option<String>) -> String {
    match (id, addr) {
        (Some(id), Some(a)) => format!("; the leader is node {id} at {a}"),
        (Some(id), None) => format!("; the leader is node {id}"),
        _ => "; no leader is known yet (election in progress)".into(),
    }
}

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Status {
        let msg = e.to_string();
        match e {
            NodeError::Invalid(v) => {
                // The field travels twice: as a google.rpc.BadRequest field violation in the
                // status details (standard gRPC error model) and in `x-kartotek-field`.
                let details =
                    ErrorDetails::with_bad_request_violation(v.field.clone(), v.reason.clone());
                let mut s = Status::with_error_details(Code::InvalidArgument, msg, details);
                if let Ok(val) = MetadataValue::try_from(v.field.as_str()) {
                    s.metadata_mut().insert(FIELD_HEADER, val);
                }
                s
            }
            NodeError::NotLeader {
                leader_id,
                leader_addr,
            } => {
                let mut s = Status::unavailable(msg);
                if let Some(id) = leader_id
                    && let Ok(val) = MetadataValue::try_from(id.to_string())
                {
                    s.metadata_mut().insert(LEADER_ID_HEADER, val);
                }
                if let Some(a) = leader_addr
                    && let Ok(val) = MetadataValue::try_from(a.as_str())
                {
                    s.metadata_mut().insert(LEADER_ADDR_HEADER, val);
                }
                s
            }
            NodeError::Apply(ApplyError::NotFound(_)) => Status::not_found(msg),
            NodeError::Apply(ApplyError::Conflict(_)) => Status::failed_precondition(msg),
            NodeError::Apply(ApplyError::PermissionDenied(_)) => Status::permission_denied(msg),
            NodeError::Apply(ApplyError::ResourceExhausted(_)) => Status::resource_exhausted(msg),
            #[allow(unreachable_patterns)]
            NodeError::Apply(_) => Status::failed_precondition(msg),
            NodeError::Compacted { oldest, .. } => {
                let mut s = Status::out_of_range(msg);
                if let Ok(val) = MetadataValue::try_from(oldest.to_string()) {
                    s.metadata_mut().insert(OLDEST_REVISION_HEADER, val);
                }
                s
            }
            NodeError::StalenessUnprovable(_) => Status::failed_precondition(msg),
            NodeError::Unavailable(_) => Status::unavailable(msg),
            NodeError::Timeout(_) => Status::new(Code::DeadlineExceeded, msg),
            NodeError::Precondition(_) => Status::failed_precondition(msg),
            NodeError::Unauthenticated(_) => Status::unauthenticated(msg),
            NodeError::Forbidden(_) => Status::permission_denied(msg),
            // Not retried by the client (it would fail the same way until space returns).
            NodeError::ReadOnly(_) => Status::resource_exhausted(msg),
            // A read during a snapshot install: another node (or this one soon) can answer.
            // A full audit journal: the read waits for the chain (or another node) to take it.
            NodeError::Storage(
                kartotek_storage::StoreError::Installing
                | kartotek_storage::StoreError::JournalFull(_),
            ) => Status::unavailable(msg),
            NodeError::Storage(_) | NodeError::Internal(_) => Status::internal(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_hints() {
        let s: Status = NodeError::NotLeader {
            leader_id: Some(2),
            leader_addr: Some("127.0.0.1:7402".into()),
        }
        .into();
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(
            s.metadata()
                .get(LEADER_ADDR_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("127.0.0.1:7402")
        );
        let s: Status = NodeError::Invalid(ValidationError::new("patient", "bad")).into();
        assert_eq!(s.code(), Code::InvalidArgument);
        let violations = s
            .get_details_bad_request()
            .map(|b| b.field_violations)
            .unwrap_or_default();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "patient");
        assert_eq!(
            s.metadata().get(FIELD_HEADER).and_then(|v| v.to_str().ok()),
            Some("patient")
        );
        let s: Status = NodeError::Apply(ApplyError::NotFound("x".into())).into();
        assert_eq!(s.code(), Code::NotFound);
        let s: Status = NodeError::Apply(ApplyError::PermissionDenied("x".into())).into();
        assert_eq!(s.code(), Code::PermissionDenied);
        let s: Status = NodeError::Apply(ApplyError::ResourceExhausted("x".into())).into();
        assert_eq!(s.code(), Code::ResourceExhausted);
    }
}
