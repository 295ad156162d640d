//! Everything a request handler needs from its node, in one cheap-to-clone value.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kartotek_domain::{Command, Op, RequestId, Response, Timestamp};
use kartotek_proto::v1::ResponseHeader;
use kartotek_storage::{StateReader, TypeConfig};
use openraft::Raft;
use tokio::sync::Semaphore;

use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::metrics::Metrics;
use crate::proposer::Proposer;
use crate::read_barrier::ReadBarrier;
use crate::staleness::StalenessTracker;

/// Shared state of a running node.
#[derive(Clone)]
pub struct NodeContext {
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
    /// Bounds the requests served at once.
    pub inflight: Arc<Semaphore>,
    /// Bounds the watch streams served at once.
    pub watches: Arc<Semaphore>,
    /// Batches concurrent writes into log entries.
    pub proposer: Proposer,
    /// Channels to the other nodes (forwarding audit events to the leader).
    pub peers: crate::peers::Peers,
    /// Audit events recorded on this node while not the leader, waiting to be shipped.
    pub outbox: kartotek_storage::AuditOutbox,
}

impl NodeContext {
    /// Proposes a command (batched with concurrent ones by the [`Proposer`], stamped with
    /// this node's clock as leader) and waits for its answer, within the write timeout.
    pub async fn write(
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

    /// The header for an answer made at `revision` / `applied_index`.
    pub fn header(&self, revision: u64, applied_index: u64) -> ResponseHeader {
        let term = self.raft.metrics().borrow().current_term;
        ResponseHeader {
            revision,
            node_id: self.config.node_id,
            raft_term: term,
            applied_index,
        }
    }

    /// Takes an in-flight slot, waiting at most the read timeout.
    pub async fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, NodeError> {
        let timeout = Duration::from_millis(self.config.api.read_timeout_ms);
        match tokio::time::timeout(timeout, self.inflight.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(NodeError::Unavailable("node is shutting down".into())),
            Err(_) => Err(NodeError::Unavailable(
                "node overloaded: too many requests in flight".into(),
            )),
        }
    }

    /// Records a finished request in the metrics.
    pub fn observe<T>(&self, method: &str, started: Instant, result: &Result<T, tonic::Status>) {
        let code = match result {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        self.metrics
            .observe(method, code, started.elapsed().as_secs_f64());
    }
}

impl NodeContext {
    /// Checks that `representative` may act for `represented` in `area` now, from this node's
    /// representation records (a linearizable read first) and the configured age rules.
    /// Refuses with PERMISSION_DENIED naming why.
    pub async fn check_representation(
        &self,
        representative: &kartotek_domain::NationalId,
        represented: &kartotek_domain::NationalId,
        area: &str,
    ) -> Result<(), NodeError> {
        let area = kartotek_domain::fields::Area::parse("area", area)?;
        self.barrier.linearize().await?;
        let records = self.reader.representations_of_represented(represented)?;
        let policy = self.config.policy.access_policy();
        let checked = kartotek_domain::representation::check(
            &records.value,
            representative,
            represented,
            &area,
            kartotek_domain::Timestamp::now(),
            &policy.representation,
        );
        if checked.allowed {
            Ok(())
        } else {
            Err(NodeError::Apply(
                kartotek_domain::ApplyError::PermissionDenied(format!(
                    "not a representative in area {}: {}",
                    area.as_str(),
                    checked.reason
                )),
            ))
        }
    }
}
