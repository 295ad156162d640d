//! `kartotek.v1.AdminService`: status, initialisation and membership changes.
//!
//! Membership changes go to the leader (others answer with a leader hint). Removing a voter
//! uses openraft's joint consensus and drops the node entirely (`retain = false`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kartotek_domain::ValidationError;
use kartotek_proto::v1::admin_service_server::AdminService;
use kartotek_proto::v1::{
    AddLearnerRequest, InitRequest, InitResponse, Member, MembershipResponse, NodeStatus,
    PromoteRequest, RemoveRequest, SnapshotRequest, SnapshotResponse, StatusRequest,
};
use kartotek_storage::KartotekNode;
use kartotek_storage::TypeConfig;
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::{ChangeMembers, Raft, ServerState};
use tonic::{Request, Response, Status};

use crate::api::layer::{Call, Gate};
use crate::api::methods;
use crate::error::NodeError;
use crate::raft::forward_to_leader;

/// Most voters a cluster may be initialised with.
pub const VOTERS_MAX: usize = 9;
/// Longest node address, in bytes.
pub const ADDR_BYTES_MAX: usize = 256;

/// The admin service of one node.
pub struct AdminServiceImpl {
    gate: Gate,
}

impl AdminServiceImpl {
    /// Serves admin requests through `gate`.
    pub fn new(gate: Gate) -> Self {
        AdminServiceImpl { gate }
    }
}

fn check_addr(field: &str, addr: &str) -> Result<(), NodeError> {
    if addr.is_empty() || addr.len() > ADDR_BYTES_MAX || !addr.contains(':') || addr.contains('/') {
        return Err(ValidationError::new(field, "must be host:port").into());
    }
    Ok(())
}

fn check_id(field: &str, id: u64) -> Result<(), NodeError> {
    if id == 0 {
        return Err(ValidationError::new(field, "node ids start at 1").into());
    }
    Ok(())
}

fn write_error(e: RaftError<u64, ClientWriteError<u64, KartotekNode>>) -> NodeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => forward_to_leader(&f),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            NodeError::Precondition(c.to_string())
        }
        RaftError::Fatal(f) => NodeError::Unavailable(format!("raft stopped: {f}")),
    }
}

fn members(raft: &Raft<TypeConfig>) -> Vec<Member> {
    let m = raft.metrics();
    let m = m.borrow();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, n)| Member {
            node_id: *id,
            addr: n.addr.clone(),
            voter: voters.contains(id),
            raft_addr: n.raft_addr.clone(),
        })
        .collect()
}

fn membership_response(
    raft: &Raft<TypeConfig>,
    r: ClientWriteResponse<TypeConfig>,
) -> MembershipResponse {
    MembershipResponse {
        members: members(raft),
        log_index: r.log_id.index,
    }
}

async fn status(call: Call, _r: StatusRequest) -> Result<NodeStatus, NodeError> {
    let raft = call.admin()?;
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| NodeError::Unavailable(e.to_string()))?;
    let (_, revision) = call.state()?.position()?;
    let m = raft.metrics();
    let m = m.borrow().clone();
    let role = match m.state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    };
    let leader_addr = m
        .current_leader
        .and_then(|l| {
            m.membership_config
                .membership()
                .get_node(&l)
                .map(|n| n.addr.clone())
        })
        .unwrap_or_default();
    Ok(NodeStatus {
        node_id: call.config().node_id,
        addr: call.config().advertise(),
        cluster_name: call.config().cluster_name.clone(),
        role: role.into(),
        term: m.current_term,
        last_log_index: m.last_log_index,
        applied_index: m.last_applied.map(|l| l.index),
        leader_id: m.current_leader,
        leader_addr,
        members: members(raft),
        snapshot_index: m.snapshot.map(|l| l.index),
        purged_index: m.purged.map(|l| l.index),
        initialized,
        revision,
        version: env!("CARGO_PKG_VERSION").into(),
        raft_addr: call.config().raft_advertise(),
    })
}

async fn init(call: Call, r: InitRequest) -> Result<InitResponse, NodeError> {
    let raft = call.admin()?;
    if r.members.is_empty() || r.members.len() > VOTERS_MAX {
        return Err(
            ValidationError::new("members", format!("must have 1 to {VOTERS_MAX} nodes")).into(),
        );
    }
    let mut nodes = BTreeMap::new();
    for (i, m) in r.members.iter().enumerate() {
        check_id(&format!("members[{i}].node_id"), m.node_id)?;
        check_addr(&format!("members[{i}].addr"), &m.addr)?;
        check_addr(&format!("members[{i}].raft_addr"), &m.raft_addr)?;
        let node = KartotekNode::new(&m.addr, &m.raft_addr);
        if nodes.insert(m.node_id, node).is_some() {
            return Err(
                ValidationError::new(format!("members[{i}].node_id"), "duplicate node id").into(),
            );
        }
    }
    if !nodes.contains_key(&call.config().node_id) {
        return Err(ValidationError::new(
            "members",
            format!(
                "must include the node receiving the request (node {})",
                call.config().node_id
            ),
        )
        .into());
    }
    match raft.initialize(nodes).await {
        Ok(()) => Ok(InitResponse { members: r.members }),
        Err(RaftError::APIError(InitializeError::NotAllowed(e))) => Err(NodeError::Precondition(
            format!("cluster already initialised: {e}"),
        )),
        Err(RaftError::APIError(InitializeError::NotInMembers(e))) => {
            Err(NodeError::Precondition(e.to_string()))
        }
        Err(RaftError::Fatal(f)) => Err(NodeError::Unavailable(f.to_string())),
    }
}

async fn add_learner(call: Call, r: AddLearnerRequest) -> Result<MembershipResponse, NodeError> {
    let raft = call.admin()?;
    check_id("node_id", r.node_id)?;
    check_addr("addr", &r.addr)?;
    check_addr("raft_addr", &r.raft_addr)?;
    let resp = raft
        .add_learner(
            r.node_id,
            KartotekNode::new(&r.addr, &r.raft_addr),
            r.wait_caught_up,
        )
        .await
        .map_err(write_error)?;
    Ok(membership_response(raft, resp))
}

async fn promote(call: Call, r: PromoteRequest) -> Result<MembershipResponse, NodeError> {
    let raft = call.admin()?;
    check_id("node_id", r.node_id)?;
    let resp = raft
        .change_membership(
            ChangeMembers::AddVoterIds(BTreeSet::from([r.node_id])),
            false,
        )
        .await
        .map_err(write_error)?;
    Ok(membership_response(raft, resp))
}

async fn remove(call: Call, r: RemoveRequest) -> Result<MembershipResponse, NodeError> {
    let raft = call.admin()?;
    check_id("node_id", r.node_id)?;
    let is_voter = members(raft)
        .iter()
        .any(|m| m.node_id == r.node_id && m.voter);
    let ids = BTreeSet::from([r.node_id]);
    let change = if is_voter {
        ChangeMembers::RemoveVoters(ids)
    } else {
        ChangeMembers::RemoveNodes(ids)
    };
    let resp = raft
        .change_membership(change, false)
        .await
        .map_err(write_error)?;
    Ok(membership_response(raft, resp))
}

async fn snapshot(call: Call, _r: SnapshotRequest) -> Result<SnapshotResponse, NodeError> {
    let raft = call.admin()?;
    let target = raft.metrics().borrow().last_applied.map(|l| l.index);
    raft.trigger()
        .snapshot()
        .await
        .map_err(|e| NodeError::Unavailable(e.to_string()))?;
    let timeout = Duration::from_millis(call.config().api.write_timeout_ms.max(30_000));
    let m = raft
        .wait(Some(timeout))
        .metrics(|m| m.snapshot.map(|l| l.index) >= target, "snapshot built")
        .await
        .map_err(|e| NodeError::Timeout(e.to_string()))?;
    Ok(SnapshotResponse {
        snapshot_index: m.snapshot.map(|l| l.index),
    })
}

#[tonic::async_trait]
impl AdminService for AdminServiceImpl {
    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        self.gate
            .unary(&methods::ADMIN_STATUS, request, status)
            .await
    }

    async fn init(&self, request: Request<InitRequest>) -> Result<Response<InitResponse>, Status> {
        self.gate.unary(&methods::ADMIN_INIT, request, init).await
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.gate
            .unary(&methods::ADMIN_ADD_LEARNER, request, add_learner)
            .await
    }

    async fn promote(
        &self,
        request: Request<PromoteRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.gate
            .unary(&methods::ADMIN_PROMOTE, request, promote)
            .await
    }

    async fn remove(
        &self,
        request: Request<RemoveRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.gate
            .unary(&methods::ADMIN_REMOVE, request, remove)
            .await
    }

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotResponse>, Status> {
        self.gate
            .unary(&methods::ADMIN_SNAPSHOT, request, snapshot)
            .await
    }
}
