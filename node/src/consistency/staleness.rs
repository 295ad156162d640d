//! Bounded-staleness reads: serve from the local replica only when it is *provably* at most
//! `max_staleness_ms` behind.
//!
//! The proof: at local monotonic time `t0` this node asked the leader for a read index `i`
//! (the leader confirmed its leadership with a quorum after `t0`). Once the local state
//! machine has applied `i`, it contains every write acknowledged before `t0`, so its staleness
//! is at most `now - t0`. The newest such `(t0, i)` is cached and shared by all reads; a read
//! whose bound the cache cannot meet fetches a fresh one (one at a time). No clock
//! synchronisation is assumed, only this node's monotonic clock. If the leader cannot be
//! reached in time, the read fails with `FAILED_PRECONDITION` instead of guessing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kartotek_proto::raft::v1::ReadIndexRequest;
use kartotek_storage::TypeConfig;
use openraft::Raft;
use tokio::sync::Mutex;

use super::read_barrier::ReadBarrier;
use crate::error::NodeError;
use crate::raft::peers::{Peers, with_cluster};

/// Tracks the newest proof of freshness. Cheap to clone.
#[derive(Clone)]
pub struct StalenessTracker {
    raft: Raft<TypeConfig>,
    barrier: ReadBarrier,
    peers: Peers,
    cluster: String,
    node_id: u64,
    rpc_timeout: Duration,
    proof: Arc<Mutex<Option<(Instant, u64)>>>,
}

impl StalenessTracker {
    /// A tracker for node `node_id`.
    pub fn new(
        raft: Raft<TypeConfig>,
        barrier: ReadBarrier,
        peers: Peers,
        cluster: String,
        node_id: u64,
        rpc_timeout: Duration,
    ) -> Self {
        StalenessTracker {
            raft,
            barrier,
            peers,
            cluster,
            node_id,
            rpc_timeout,
            proof: Arc::new(Mutex::new(None)),
        }
    }

    /// Returns once the local state is provably at most `bound` old, or an error.
    pub async fn ensure_within(&self, bound: Duration) -> Result<(), NodeError> {
        let started = Instant::now();
        // Single flight: concurrent reads wait here and then reuse the fresh proof.
        let mut proof = self.proof.lock().await;
        // A proof is reused only while a quarter of the bound is left of it: one with less
        // left could run out between here and the read (under load, the scheduler's delays
        // alone do that), failing a read that a fresh proof would have served.
        let usable = match *proof {
            Some((t0, index)) if t0.elapsed().saturating_add(bound / 4) <= bound => {
                Some((t0, index))
            }
            _ => None,
        };
        let (t0, index) = match usable {
            Some(p) => p,
            None => {
                let t0 = Instant::now();
                let budget = bound.min(self.rpc_timeout);
                let index = tokio::time::timeout(budget, self.fetch_read_index())
                    .await
                    .map_err(|_| {
                        NodeError::StalenessUnprovable(format!(
                            "no read index from the leader within {} ms",
                            budget.as_millis()
                        ))
                    })??;
                *proof = Some((t0, index));
                (t0, index)
            }
        };
        drop(proof);
        let remaining = bound.saturating_sub(t0.elapsed());
        if remaining.is_zero() {
            return Err(NodeError::StalenessUnprovable(format!(
                "the proof took {} ms",
                started.elapsed().as_millis()
            )));
        }
        self.barrier
            .wait_applied(index, remaining)
            .await
            .map_err(|e| NodeError::StalenessUnprovable(format!("replica still catching up: {e}")))
    }

    async fn fetch_read_index(&self) -> Result<u64, NodeError> {
        let (leader, addr) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let leader = m.current_leader;
            let addr = leader.and_then(|l| {
                m.membership_config
                    .membership()
                    .get_node(&l)
                    .map(|n| n.raft_addr.clone())
            });
            (leader, addr)
        };
        match (leader, addr) {
            (Some(l), _) if l == self.node_id => self
                .barrier
                .read_index()
                .await
                .map_err(|e| NodeError::StalenessUnprovable(e.to_string())),
            (Some(_), Some(addr)) => {
                let mut client = self
                    .peers
                    .raft_client(&addr)
                    .map_err(|e| NodeError::StalenessUnprovable(e.to_string()))?;
                let mut req = with_cluster(tonic::Request::new(ReadIndexRequest {}), &self.cluster);
                req.set_timeout(self.rpc_timeout);
                let resp = client.read_index(req).await.map_err(|s| {
                    NodeError::StalenessUnprovable(format!("leader at {addr}: {}", s.message()))
                })?;
                Ok(resp.into_inner().read_index)
            }
            _ => Err(NodeError::StalenessUnprovable("no leader is known".into())),
        }
    }
}
