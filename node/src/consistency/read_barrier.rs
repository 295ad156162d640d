//! Linearizable reads with coalesced leadership confirmation (read-index).
//!
//! A linearizable read must see every write acknowledged before it started. The leader
//! confirms it is still leader with a quorum (openraft's `get_read_log_id`) and the read waits
//! until the state machine has applied up to the returned index. Confirmation costs a
//! heartbeat round, so reads are batched: a single task takes every read queued so far, runs
//! one round for all of them, and answers them together; reads that arrive during a round wait
//! for the next one (a round that started before a read arrived cannot vouch for it).

use std::time::Duration;

use kartotek_storage::TypeConfig;
use openraft::Raft;
use openraft::error::{CheckIsLeaderError, RaftError};
use tokio::sync::{mpsc, oneshot};

use crate::error::NodeError;
use crate::metrics::Metrics;
use crate::raft::forward_to_leader;

type Waiter = oneshot::Sender<Result<u64, NodeError>>;

/// Handle to the read batcher. Cheap to clone.
#[derive(Clone)]
pub struct ReadBarrier {
    tx: mpsc::Sender<Waiter>,
    raft: Raft<TypeConfig>,
    timeout: Duration,
}

impl ReadBarrier {
    /// Starts the batching task. `queue_max` bounds the reads waiting for a round.
    pub fn start(
        raft: Raft<TypeConfig>,
        queue_max: usize,
        timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        let (tx, rx) = mpsc::channel(queue_max.max(1));
        tokio::spawn(run(raft.clone(), rx, queue_max.max(1), metrics));
        ReadBarrier { tx, raft, timeout }
    }

    /// The read index: the log index a read must wait for to be linearizable. Confirms
    /// leadership (shared with concurrent reads).
    pub async fn read_index(&self) -> Result<u64, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(tx)
            .await
            .map_err(|_| NodeError::Unavailable("node is shutting down".into()))?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(NodeError::Unavailable("node is shutting down".into())),
            Err(_) => Err(NodeError::Timeout("confirming leadership".into())),
        }
    }

    /// Waits until the local state machine has applied `index`, at most `timeout`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), NodeError> {
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "read")
            .await
            .map(|_| ())
            .map_err(|e| match e {
                openraft::metrics::WaitError::Timeout(..) => {
                    NodeError::Timeout(format!("waiting for log index {index} to be applied"))
                }
                openraft::metrics::WaitError::ShuttingDown => {
                    NodeError::Unavailable("node is shutting down".into())
                }
            })
    }

    /// Confirms leadership and waits for the state machine: after this returns, a local read
    /// is linearizable.
    pub async fn linearize(&self) -> Result<(), NodeError> {
        let index = self.read_index().await?;
        self.wait_applied(index, self.timeout).await
    }
}

async fn run(
    raft: Raft<TypeConfig>,
    mut rx: mpsc::Receiver<Waiter>,
    batch_max: usize,
    metrics: Metrics,
) {
    let mut batch: Vec<Waiter> = Vec::with_capacity(64);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        metrics.read_rounds_total.inc();
        metrics.reads_coalesced_total.inc_by(batch.len() as u64);
        let result = raft.get_read_log_id().await;
        for waiter in batch.drain(..) {
            let r = match &result {
                Ok((read, _applied)) => Ok(read.map(|l| l.index).unwrap_or(0)),
                Err(e) => Err(map_check_error(e)),
            };
            let _ = waiter.send(r);
        }
    }
}

fn map_check_error(
    e: &RaftError<u64, CheckIsLeaderError<u64, kartotek_storage::KartotekNode>>,
) -> NodeError {
    match e {
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => forward_to_leader(f),
        RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => {
            NodeError::Unavailable(format!("no quorum: {q}"))
        }
        RaftError::Fatal(f) => NodeError::Unavailable(format!("raft stopped: {f}")),
    }
}

#[tonic::async_trait]
impl crate::raft::service::ReadIndexSource for ReadBarrier {
    async fn read_index(&self) -> Result<u64, NodeError> {
        ReadBarrier::read_index(self).await
    }
}
