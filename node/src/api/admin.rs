//! `kartotek.v1.AdminService`: status, initialisation, membership changes, snapshots and
//! online backups.
//!
//! Membership changes go to the leader (others answer with a leader hint). Removing a voter
//! uses openraft's joint consensus and drops the node entirely (`retain = false`).
//!
//! **Backup** (server streaming, on the leader): a linearizable read first (a quorum
//! confirms the leadership and the state machine reaches the read index; a follower answers
//! NOT_LEADER with the leader's address), then a snapshot at or after that index is built (or
//! the current one used if it already covers it), opened (the open file keeps its data even
//! if a newer snapshot is renamed over it meanwhile), verified in one pass
//! ([`kartotek_storage::backup::inspect`], which also reads the revision and the audit head
//! at the snapshot), and streamed: a [`BackupManifest`] first, then the file in chunks of at
//! most [`BACKUP_CHUNK_BYTES_MAX`]. Writes go on meanwhile; the backup is the state exactly at
//! its log id, which holds every write acknowledged before the backup was asked for. Who took
//! it is audited (`admin.backup`, durable before the first byte is sent).

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;

use kartotek_domain::ValidationError;
use kartotek_proto::v1::admin_service_server::AdminService;
use kartotek_proto::v1::{
    AddLearnerRequest, BackupChunk, BackupManifest, BackupRequest, InitRequest, InitResponse,
    Member, MembershipResponse, NodeStatus, PromoteRequest, RemoveRequest, SnapshotRequest,
    SnapshotResponse, StatusRequest, backup_chunk,
};
use kartotek_storage::KartotekNode;
use kartotek_storage::TypeConfig;
use kartotek_storage::backup::SnapshotSummary;
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::{ChangeMembers, Raft, ServerState};
use tonic::{Request, Response, Status};

use crate::api::layer::{Call, Gate};
use crate::api::methods;
use crate::consistency::ReadMode;
use crate::error::NodeError;
use crate::raft::forward_to_leader;

/// Most voters a cluster may be initialised with.
pub const VOTERS_MAX: usize = 9;
/// Longest node address, in bytes.
pub const ADDR_BYTES_MAX: usize = 256;
/// Most bytes of the snapshot file in one Backup message.
pub const BACKUP_CHUNK_BYTES_MAX: usize = 1 << 20;
/// Messages a Backup stream may have queued for a slow receiver.
const BACKUP_QUEUE_MESSAGES_MAX: usize = 8;
/// Longest wait of a Backup for a snapshot at or after its read index.
pub const BACKUP_SNAPSHOT_TIMEOUT_MS: u64 = 600_000;
/// How often a snapshot wait asks again for a build (a build already running when it first
/// asked may end below the index it needs).
const SNAPSHOT_RETRIGGER_MS: u64 = 2_000;

/// The message stream of a backup.
pub type BackupStream = Pin<Box<dyn futures::Stream<Item = Result<BackupChunk, Status>> + Send>>;

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
    members_of(m.membership_config.membership())
}

/// The members of `membership` as the API lists them (voter: in the voter set).
pub fn members_of(membership: &openraft::Membership<u64, KartotekNode>) -> Vec<Member> {
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

/// Asks for snapshots until the latest one reaches log index `target`, at most `timeout`;
/// returns the metrics that show it.
async fn snapshot_covering(
    raft: &Raft<TypeConfig>,
    target: Option<u64>,
    timeout: Duration,
) -> Result<openraft::RaftMetrics<u64, KartotekNode>, NodeError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let covered =
        |m: &openraft::RaftMetrics<u64, KartotekNode>| m.snapshot.map(|l| l.index) >= target;
    loop {
        {
            let m = raft.metrics().borrow().clone();
            if covered(&m) && target.is_some() {
                return Ok(m);
            }
        }
        raft.trigger()
            .snapshot()
            .await
            .map_err(|e| NodeError::Unavailable(e.to_string()))?;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(NodeError::Timeout(format!(
                "no snapshot reached log index {target:?} in {} ms",
                timeout.as_millis()
            )));
        }
        let wait = left.min(Duration::from_millis(SNAPSHOT_RETRIGGER_MS));
        match raft
            .wait(Some(wait))
            .metrics(covered, "snapshot built")
            .await
        {
            Ok(m) => return Ok(m),
            Err(openraft::metrics::WaitError::Timeout(..)) => continue,
            Err(e) => return Err(NodeError::Unavailable(e.to_string())),
        }
    }
}

async fn snapshot(call: Call, _r: SnapshotRequest) -> Result<SnapshotResponse, NodeError> {
    let raft = call.admin()?;
    let target = raft.metrics().borrow().last_applied.map(|l| l.index);
    let timeout = Duration::from_millis(call.config().api.write_timeout_ms.max(30_000));
    let m = snapshot_covering(raft, target, timeout).await?;
    Ok(SnapshotResponse {
        snapshot_index: m.snapshot.map(|l| l.index),
    })
}

/// The manifest of a backup of the verified snapshot `s`.
fn manifest(call: &Call, s: &SnapshotSummary, read_index: u64) -> BackupManifest {
    let last = s.meta.last_log_id;
    BackupManifest {
        cluster_name: call.config().cluster_name.clone(),
        node_id: call.config().node_id,
        snapshot_id: s.meta.snapshot_id.clone(),
        last_log_index: last.map_or(0, |l| l.index),
        last_log_term: last.map_or(0, |l| l.leader_id.term),
        last_log_leader: last.map_or(0, |l| l.leader_id.node_id),
        members: members_of(s.meta.last_membership.membership()),
        revision: s.revision,
        audit_head_seq: s.audit_head_seq,
        audit_head_hash: hex::encode(s.audit_head_hash),
        size_bytes: s.size_bytes,
        sha256: hex::encode(s.sha256),
        read_index,
        frames: s.frames,
    }
}

/// Opens the node's latest snapshot and verifies it; the open file stays valid whatever
/// happens to the name.
fn open_snapshot(
    data_dir: &std::path::Path,
) -> Result<(std::fs::File, SnapshotSummary), NodeError> {
    let file = std::fs::File::open(kartotek_storage::backup::snapshot_path(data_dir))
        .map_err(|e| NodeError::Internal(format!("opening the snapshot: {e}")))?;
    let summary = kartotek_storage::backup::inspect(std::io::BufReader::new(&file))?;
    Ok((file, summary))
}

/// Sends `file` from its start in chunks of at most [`BACKUP_CHUNK_BYTES_MAX`]; stops when the
/// receiver is gone. Returns the bytes sent.
fn send_file(
    mut file: std::fs::File,
    tx: &mpsc::Sender<Result<BackupChunk, Status>>,
) -> Result<u64, NodeError> {
    use std::io::{Read, Seek};
    let io = |e: std::io::Error| NodeError::Internal(format!("reading the snapshot: {e}"));
    file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
    let mut sent = 0u64;
    loop {
        let mut buf = vec![0u8; BACKUP_CHUNK_BYTES_MAX];
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            return Ok(sent);
        }
        buf.truncate(n);
        let chunk = BackupChunk {
            part: Some(backup_chunk::Part::Data(buf)),
        };
        if tx.blocking_send(Ok(chunk)).is_err() {
            return Ok(sent); // the client went away
        }
        sent += n as u64;
    }
}

/// Builds (or picks) the snapshot covering `read_index` and streams it into `tx`.
async fn stream_backup(
    call: &Call,
    read_index: u64,
    tx: &mpsc::Sender<Result<BackupChunk, Status>>,
) -> Result<(), NodeError> {
    let started = std::time::Instant::now();
    let raft = call.admin()?;
    let timeout = Duration::from_millis(BACKUP_SNAPSHOT_TIMEOUT_MS);
    snapshot_covering(raft, Some(read_index), timeout).await?;
    let data_dir = call.config().data_dir.clone();
    let (file, summary) = tokio::task::spawn_blocking(move || open_snapshot(&data_dir))
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))??;
    let at = summary.meta.last_log_id.map(|l| l.index);
    if at < Some(read_index) {
        return Err(NodeError::Internal(format!(
            "the snapshot at {at:?} is older than the read index {read_index}"
        )));
    }
    let manifest = manifest(call, &summary, read_index);
    let first = BackupChunk {
        part: Some(backup_chunk::Part::Manifest(manifest)),
    };
    if tx.send(Ok(first)).await.is_err() {
        return Ok(());
    }
    let data_tx = tx.clone();
    let sent = tokio::task::spawn_blocking(move || send_file(file, &data_tx))
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))??;
    tracing::info!(
        snapshot_id = %summary.meta.snapshot_id,
        bytes = sent,
        size_bytes = summary.size_bytes,
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "backup streamed"
    );
    Ok(())
}

async fn backup(call: Call, _r: BackupRequest) -> Result<BackupStream, NodeError> {
    let raft = call.admin()?;
    // Linearizable: a quorum confirms this node leads, and the state machine reaches the read
    // index (a follower answers NOT_LEADER with a hint here, before the stream opens).
    call.read(ReadMode::Linearizable, Vec::new()).await?;
    // Every record leaves the cluster: who took the backup is audited, durably, first.
    let event = call.caller().event(
        kartotek_domain::audit::actions::ADMIN_BACKUP,
        "cluster",
        None,
    );
    call.audit(vec![event]).await?;
    let read_index = raft.metrics().borrow().last_applied.map_or(0, |l| l.index);
    let (tx, rx) = mpsc::channel(BACKUP_QUEUE_MESSAGES_MAX);
    tokio::spawn(async move {
        if let Err(e) = stream_backup(&call, read_index, &tx).await {
            tracing::warn!(error = %e, "backup failed");
            let _ = tx.send(Err(Status::from(e))).await;
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
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

    type BackupStream = BackupStream;

    async fn backup(
        &self,
        request: Request<BackupRequest>,
    ) -> Result<Response<BackupStream>, Status> {
        self.gate
            .unary(&methods::ADMIN_BACKUP, request, backup)
            .await
    }
}
