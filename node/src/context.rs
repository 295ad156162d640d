//! [`NodeContext`]: the parts of a running node, behind methods.
//!
//! The fields are private. Infrastructure inside the crate (the server wiring, the audit
//! shipper and retention in [`crate::audit`], the admin handlers through the request layer's
//! admin grant) reaches them through the `pub(crate)` methods here. Request handlers never get
//! a `NodeContext` at all: they get a [`Call`](crate::api::layer::Call) from the request layer,
//! whose methods keep the rules (a read of patient data yields the state only once its audit
//! event is durable; the Raft handle only for admin methods).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kartotek_domain::{Command, Op, RequestId, Response, Timestamp};
use kartotek_proto::v1::ResponseHeader;
use kartotek_storage::{AuditJournal, StateReader, TypeConfig};
use openraft::Raft;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::NodeConfig;
use crate::consistency::ReadMode;
use crate::consistency::read_barrier::ReadBarrier;
use crate::consistency::staleness::StalenessTracker;
use crate::error::NodeError;
use crate::metrics::Metrics;
use crate::raft::peers::Peers;
use crate::raft::proposer::Proposer;

/// The parts of a running node a request needs, cheap to clone.
#[derive(Clone)]
pub struct NodeContext {
    config: Arc<NodeConfig>,
    raft: Raft<TypeConfig>,
    reader: StateReader,
    barrier: ReadBarrier,
    staleness: StalenessTracker,
    metrics: Metrics,
    inflight: Arc<Semaphore>,
    watches: Arc<Semaphore>,
    proposer: Proposer,
    peers: Peers,
    journal: AuditJournal,
    /// Set by the audit shipper while the journal's oldest event has waited longer than
    /// `audit.ship_lag_ms_max` for the chain: reads are refused meanwhile.
    shipping_stuck: Arc<std::sync::atomic::AtomicBool>,
    /// The data disk's free space and read-only mode.
    disk: Arc<crate::disk::DiskWatch>,
}

/// What [`NodeContext::new`] is made of (the server builds these).
pub struct NodeParts {
    /// The node's configuration.
    pub config: Arc<NodeConfig>,
    /// The Raft handle.
    pub raft: Raft<TypeConfig>,
    /// Reads of the state machine.
    pub reader: StateReader,
    /// Linearizable-read batcher.
    pub barrier: ReadBarrier,
    /// Bounded-staleness proofs.
    pub staleness: StalenessTracker,
    /// Metrics.
    pub metrics: Metrics,
    /// Batches concurrent writes into log entries.
    pub proposer: Proposer,
    /// Channels to the other nodes.
    pub peers: Peers,
    /// This node's audit journal (events of the answers it gave, waiting to be shipped).
    pub journal: AuditJournal,
}

impl NodeContext {
    /// Assembles a context; the in-flight and watch bounds come from `config.api`.
    pub fn new(parts: NodeParts) -> NodeContext {
        let api = &parts.config.api;
        let inflight = Arc::new(Semaphore::new(
            usize::try_from(api.concurrent_requests_max).unwrap_or(4096),
        ));
        let watches = Arc::new(Semaphore::new(
            usize::try_from(api.watches_max).unwrap_or(usize::MAX),
        ));
        let disk = crate::disk::DiskWatch::new(
            &parts.config.data_dir,
            parts.config.storage.disk_free_bytes_min,
        );
        NodeContext {
            config: parts.config,
            raft: parts.raft,
            reader: parts.reader,
            barrier: parts.barrier,
            staleness: parts.staleness,
            metrics: parts.metrics,
            inflight,
            watches,
            proposer: parts.proposer,
            peers: parts.peers,
            journal: parts.journal,
            shipping_stuck: Arc::default(),
            disk,
        }
    }

    /// The node's configuration.
    pub(crate) fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The Raft handle (membership and status: admin methods, the audit tasks).
    pub(crate) fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// The state machine's reader. Handlers get it only through the request layer.
    pub(crate) fn reader(&self) -> &StateReader {
        &self.reader
    }

    /// The data disk's state.
    pub(crate) fn disk(&self) -> &Arc<crate::disk::DiskWatch> {
        &self.disk
    }

    /// Refuses a client write while the data disk is below its minimum.
    pub(crate) fn writable(&self) -> Result<(), NodeError> {
        if !self.disk.read_only() {
            return Ok(());
        }
        Err(NodeError::ReadOnly(format!(
            "node {} is read-only: its data disk has {} bytes free, below storage.disk_free_bytes_min = {}; \
             reads go on, writes resume when space returns (or write through another node)",
            self.config.node_id,
            self.disk.free_bytes(),
            self.disk.free_bytes_min()
        )))
    }

    /// The node's metrics.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Channels to the other nodes.
    pub(crate) fn peers(&self) -> &Peers {
        &self.peers
    }

    /// This node's audit journal.
    pub(crate) fn journal(&self) -> &AuditJournal {
        &self.journal
    }

    /// Whether audit shipping has been stuck past its bound (reads are refused).
    pub(crate) fn shipping_stuck(&self) -> &std::sync::atomic::AtomicBool {
        &self.shipping_stuck
    }

    /// Proposes a command (batched with concurrent ones by the [`Proposer`], stamped with
    /// this node's clock as leader) and waits for its answer, within the write timeout.
    pub(crate) async fn write(
        &self,
        request_id: Option<RequestId>,
        op: Op,
    ) -> Result<Response, NodeError> {
        let cmd = Command {
            request_id,
            stamped_at: Timestamp::now(),
            op,
        };
        let timeout = Duration::from_millis(self.config.api.write_timeout_ms);
        tokio::time::timeout(timeout, self.proposer.propose(cmd.request_id, cmd.op))
            .await
            .map_err(|_| {
                NodeError::Timeout(
                    "the write was not committed in time; it may still take effect: retry with the same request id".into(),
                )
            })?
    }

    /// Makes the local state fit to serve a read in `mode` (no audit: see
    /// [`NodeContext::audited_read`] for reads of patient data).
    pub(crate) async fn prepare_read(&self, mode: ReadMode) -> Result<(), NodeError> {
        match mode {
            ReadMode::Linearizable if self.config.testing.unsafe_stale_reads => Ok(()),
            ReadMode::Linearizable => self.barrier.linearize().await,
            ReadMode::Bounded(bound) => self.staleness.ensure_within(bound).await,
        }
    }

    /// The header for an answer made at `revision` / `applied_index`.
    pub(crate) fn header(&self, revision: u64, applied_index: u64) -> ResponseHeader {
        let term = self.raft.metrics().borrow().current_term;
        ResponseHeader {
            revision,
            node_id: self.config.node_id,
            raft_term: term,
            applied_index,
        }
    }

    /// Takes an in-flight slot, waiting at most the read timeout.
    pub(crate) async fn admit(&self) -> Result<OwnedSemaphorePermit, NodeError> {
        let timeout = Duration::from_millis(self.config.api.read_timeout_ms);
        match tokio::time::timeout(timeout, self.inflight.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(NodeError::Unavailable("node is shutting down".into())),
            Err(_) => Err(NodeError::Unavailable(
                "node overloaded: too many requests in flight".into(),
            )),
        }
    }

    /// Takes a watch-stream slot at once, or refuses.
    pub(crate) fn admit_watch(&self) -> Result<OwnedSemaphorePermit, NodeError> {
        self.watches
            .clone()
            .try_acquire_owned()
            .map_err(|_| NodeError::Unavailable("too many watch streams on this node".into()))
    }

    /// Records a finished request in the metrics; returns its status code.
    pub(crate) fn observe<T>(
        &self,
        method: &str,
        started: Instant,
        result: &Result<T, tonic::Status>,
    ) -> tonic::Code {
        let code = match result {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        self.metrics
            .observe(method, code, started.elapsed().as_secs_f64());
        code
    }

    /// True when this node believes it is the leader.
    pub(crate) fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.current_leader == Some(self.config.node_id)
    }

    /// The leader's Raft listener address, if known.
    pub(crate) fn leader_raft_addr(&self) -> Option<String> {
        self.leader_node().map(|n| n.raft_addr)
    }

    /// The Raft addresses of the other nodes of the last membership this node knows (for a
    /// node that knows no leader, e.g. one removed from the cluster, to find it itself).
    pub(crate) fn other_raft_addrs(&self) -> Vec<String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != m.id)
            .map(|(_, n)| n.raft_addr.clone())
            .collect()
    }

    fn leader_node(&self) -> Option<kartotek_storage::KartotekNode> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let leader = m.current_leader?;
        m.membership_config.membership().get_node(&leader).cloned()
    }
}
