//! The audit layer: recording audit events durably before an answer leaves the node, shipping
//! them into the replicated chain, and retention.
//!
//! The request layer ([`crate::api::layer`]) is its only caller on the request path: a handler
//! that reads patient data gets the state only after [`NodeContext::audited_read`] returned.
//! `kartotek.v1.AuditService` (Record, Query, Head) is a thin handler in [`crate::api::audit`].
//!
//! # The guarantee
//!
//! *No patient data leaves a node without a durable audit event, and every such event reaches
//! the replicated, hash-chained audit log, once.* In detail, for a read, an access decision, a
//! stream's delivery or a write about a patient, with `audit.answer_after = "journal"` (the
//! default):
//!
//! 1. **When the answer leaves the node**, its event is fsynced in *this node's* audit journal
//!    ([`kartotek_storage::audit_journal`]): on one disk, the serving node's. It survives
//!    kill -9 and power loss of that node. Concurrent answers share one fsync (group commit),
//!    and for a linearizable read the fsync runs concurrently with the read barrier, which is
//!    a coalesced leadership confirmation (read-index, [`crate::consistency::read_barrier`]),
//!    not a log write.
//! 2. **Into the chain within `audit.ship_lag_ms_max`** (default 30 s; normally one ship round,
//!    a few ms): the shipper ([`spawn_shipper`]) moves journal events to the chain in batches of
//!    up to `audit.ship_events_max` (gathered for at most `audit.ship_interval_ms`, 20 ms), one
//!    log entry per batch (`Op::AuditShip`), committed on a
//!    majority (fsynced) and applied on every replica, oldest first; only then are they removed
//!    from the journal. When the oldest waiting event is older than the bound (no leader
//!    reachable, no quorum) or the journal holds `audit.journal_events_max` events, the node
//!    refuses further audited answers (UNAVAILABLE) until shipping catches up. A node that is
//!    killed and restarted ships what its journal holds when it is back.
//! 3. **Exactly once.** The chain keeps per journal (random id per data directory) the newest
//!    journal seq it chained, and an `AuditShip` chains only what lies above it: a resend after
//!    a lost answer, a leader change or a crash between the commit and the journal's removal
//!    chains nothing twice; no request id is involved, so no caller can claim a batch first.
//!    Journal seqs are given by one writer thread in write order, so the shipper never steps
//!    over an event still being written.
//! 4. **What a node lost for good can lose** (its disk destroyed before it shipped): the events
//!    of the answers it gave in its last shipping window — at most `ship_lag_ms_max`, in
//!    practice the events of one or two ship rounds (`kartotek_audit_journal_events` shows how
//!    many wait). An operator who cannot accept that sets `audit.answer_after = "chain"`: then
//!    every answer also waits until its event has been shipped (committed on a majority), and
//!    nothing answered can be lost with one node, at the cost of a log commit per read batch.
//!
//! Caller-supplied events (`AuditService.Record`, forwarded by the frontends) are committed to
//! the chain before their answer on every setting: the caller asked for that record.
//!
//! **Who served it.** Every event a node makes names that node, its journal and the event's
//! seq in the journal (`served_by`: IHE BALP's server agent), set when it is journaled;
//! forwarded events name none (a caller cannot claim a node). A journal's id is random per
//! data directory (a restored node under its old id has a new one) and its seqs only grow, so
//! no two events share a `served_by`: anyone reading the chain can check point 3 (no journal
//! event chained twice) without trusting the nodes. The field is
//! hashed when set, and an event without it hashes as events did before the field existed,
//! so chains written by older releases still verify.
//!
//! **Tamper evidence.** The state machine chains every event to the previous one
//! (SHA-256); `Head` reports a node's chain head so that copies can be compared, and clients
//! can recompute the chain from `Query` pages (`kartotek audit verify`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kartotek_domain::audit::AuditEvent;
use kartotek_domain::{Op, Outcome, RequestId, Timestamp};
use kartotek_proto::raft::v1::RaftPayload;
use tonic::Request;

use crate::config::AnswerAfter;
use crate::consistency::ReadMode;
use crate::context::NodeContext;
use crate::error::NodeError;
use crate::raft::peers::with_cluster;
use crate::raft::service::{AuditSink, ForwardedAudit, ForwardedShip, ShipResult};

pub mod wire;

impl NodeContext {
    /// Makes the local state fit for a read in `mode` and records the read's audit events
    /// durably; the read may be answered only when this returns `Ok`. The read barrier (or
    /// the staleness proof) and the journal fsync run concurrently.
    pub(crate) async fn audited_read(
        &self,
        mode: ReadMode,
        events: Vec<AuditEvent>,
    ) -> Result<(), NodeError> {
        if self.config().testing.unsafe_stale_reads {
            // Self-check mode: serve at once; audit in the background, a while later (so that
            // the Jepsen audit checker sees a kill -9 lose the events of answered reads).
            let ctx = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                let _ = ctx.audit(events).await;
            });
            return Ok(());
        }
        let (ready, audited) = tokio::join!(self.prepare_read(mode), self.audit(events));
        ready?;
        audited
    }

    /// Records `events` (at most `AUDIT_EVENTS_PER_APPEND_MAX`) durably before an answer, as
    /// the module's guarantee says: fsynced in this node's journal, and with
    /// `answer_after = "chain"` also shipped into the chain.
    pub(crate) async fn audit(&self, mut events: Vec<AuditEvent>) -> Result<(), NodeError> {
        if self.shipping_stuck().load(Ordering::Acquire) {
            return Err(NodeError::Unavailable(format!(
                "audit events have waited more than {} ms for the audit chain (no leader or \
                 quorum reachable from this node); retry on another node",
                self.config().audit.ship_lag_ms_max
            )));
        }
        // This node served the request (IHE BALP's server agent): two events of one retried
        // request differ when two nodes served its attempts.
        for e in &mut events {
            e.served_by = Some(kartotek_domain::ServedBy {
                node: self.config().node_id,
                // Both given by the journal as it writes the event.
                journal: 0,
                journal_seq: 0,
            });
        }
        let n = events.len() as u64;
        let first = self.journal().append(events).await?;
        if self.config().audit.answer_after == AnswerAfter::Chain {
            let timeout = Duration::from_millis(self.config().api.write_timeout_ms);
            if !self.journal().wait_removed(first + n - 1, timeout).await {
                return Err(NodeError::Timeout(
                    "waiting for the audit event to reach the chain".into(),
                ));
            }
        }
        Ok(())
    }

    /// Waits until every event journaled here so far has been shipped into the chain.
    pub(crate) async fn audit_shipped(&self) -> Result<(), NodeError> {
        let timeout = Duration::from_millis(self.config().api.read_timeout_ms);
        if self.journal_shipped_within(timeout).await {
            Ok(())
        } else {
            Err(NodeError::Timeout(
                "waiting for this node's audit journal to reach the chain".into(),
            ))
        }
    }

    /// Whether every event journaled here so far reaches the chain within `timeout`.
    async fn journal_shipped_within(&self, timeout: Duration) -> bool {
        let through = self.journal().written_through();
        self.journal().wait_removed(through, timeout).await
    }

    /// On a clean stop, once no request is served: waits up to `audit.drain_on_stop_ms` for
    /// every journaled event to reach the chain (the shipper still runs, and Raft with it),
    /// so a node stopped and then wiped takes no event with it. Logs what is left if the wait
    /// runs out: those events ship at the next start from this data dir.
    pub(crate) async fn drain_on_stop(&self) {
        let wait_ms = self.config().audit.drain_on_stop_ms;
        let left = self.journal().depth();
        if wait_ms == 0 || left == 0 {
            return;
        }
        if self
            .journal_shipped_within(Duration::from_millis(wait_ms))
            .await
        {
            tracing::info!(
                events = left,
                "audit journal drained into the chain before stopping"
            );
        } else {
            tracing::warn!(
                events = self.journal().depth(),
                wait_ms,
                "stopping with audit events not yet in the chain (no leader took them): they ship at the next start from this data dir; do not wipe it"
            );
        }
    }

    /// Commits `events` to the chain on this node as leader; returns their first and last seq.
    pub(crate) async fn append_audit(
        &self,
        request_id: Option<RequestId>,
        events: Vec<AuditEvent>,
    ) -> Result<(u64, u64), NodeError> {
        let answer = self.write(request_id, Op::AuditAppend(events)).await?;
        match answer.result {
            Ok(Outcome::AuditAppended {
                first_seq,
                last_seq,
            }) => Ok((first_seq, last_seq)),
            Ok(other) => Err(NodeError::Internal(format!("unexpected outcome {other:?}"))),
            Err(e) => Err(e.into()),
        }
    }

    /// Chains a batch of journal `journal` starting at journal seq `first_seq`, as leader.
    pub(crate) async fn ship_audit(
        &self,
        journal: u64,
        first_seq: u64,
        events: Vec<AuditEvent>,
    ) -> Result<ShipResult, NodeError> {
        let answer = self
            .write(
                None,
                Op::AuditShip {
                    journal,
                    first_seq,
                    events,
                },
            )
            .await?;
        match answer.result {
            Ok(Outcome::AuditShipped {
                journal_through,
                appended,
                gap,
            }) => Ok(ShipResult {
                journal_through,
                appended,
                gap,
            }),
            Ok(other) => Err(NodeError::Internal(format!("unexpected outcome {other:?}"))),
            Err(e) => Err(e.into()),
        }
    }

    /// A client to the leader's Raft listener (node-to-node: the follower is a cluster member,
    /// not an API caller with a token).
    fn leader_raft_client(
        &self,
    ) -> Result<
        kartotek_proto::raft::v1::raft_service_client::RaftServiceClient<tonic::transport::Channel>,
        NodeError,
    > {
        let Some(leader) = self.leader_raft_addr() else {
            return Err(NodeError::Unavailable("no leader known yet".into()));
        };
        self.peers().raft_client(&leader).map_err(|e| {
            NodeError::Unavailable(format!(
                "cannot reach the leader to record the audit event: {e}"
            ))
        })
    }

    fn leader_request<T: serde::Serialize>(
        &self,
        value: &T,
    ) -> Result<Request<RaftPayload>, NodeError> {
        let data = postcard::to_allocvec(value)
            .map_err(|e| NodeError::Internal(format!("encoding audit events: {e}")))?;
        let mut request = with_cluster(
            Request::new(RaftPayload { data }),
            &self.config().cluster_name,
        );
        request.set_timeout(Duration::from_millis(self.config().api.write_timeout_ms));
        Ok(request)
    }

    /// Sends caller-supplied `events` to the leader's chain under `request_id` (`Record` on
    /// a follower).
    pub(crate) async fn forward_audit(
        &self,
        events: Vec<AuditEvent>,
        request_id: &str,
    ) -> Result<(u64, u64), NodeError> {
        let mut client = self.leader_raft_client()?;
        let forwarded: ForwardedAudit = (request_id.to_owned(), events);
        match client.record_audit(self.leader_request(&forwarded)?).await {
            Ok(r) => {
                let r = r.into_inner();
                Ok((r.first_seq, r.last_seq))
            }
            Err(s) => Err(NodeError::Unavailable(format!(
                "the leader did not record the audit event: {}",
                s.message()
            ))),
        }
    }

    /// Sends a journal batch to the leader's chain (the shipper on a follower). A node that
    /// knows no leader (one removed from the membership, which gets no heartbeats any more,
    /// but still holds the events of reads it answered) tries every node it last knew: the
    /// leader among them takes the batch.
    async fn forward_ship(&self, ship: &ForwardedShip) -> Result<ShipResult, NodeError> {
        let targets = match self.leader_raft_addr() {
            Some(leader) => vec![leader],
            None => self.other_raft_addrs(),
        };
        let mut last = NodeError::Unavailable("no leader known yet".into());
        for addr in targets {
            match self.ship_to(&addr, ship).await {
                Ok(r) => return Ok(r),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn ship_to(&self, addr: &str, ship: &ForwardedShip) -> Result<ShipResult, NodeError> {
        let mut client = self.peers().raft_client(addr).map_err(|e| {
            NodeError::Unavailable(format!("cannot reach {addr} to ship audit events: {e}"))
        })?;
        match client.ship_audit(self.leader_request(ship)?).await {
            Ok(r) => {
                let r = r.into_inner();
                Ok(ShipResult {
                    journal_through: r.journal_through,
                    appended: r.appended,
                    gap: r.gap,
                })
            }
            Err(s) => Err(NodeError::Unavailable(format!(
                "the leader did not chain the audit batch: {}",
                s.message()
            ))),
        }
    }
}

/// Starts the shipper: moves this node's journal into the chain, oldest first, one batch of
/// at most `audit.ship_events_max` events per log entry (as leader directly, elsewhere through
/// the leader's `ShipAudit`), and removes what the chain took. Also keeps the node's
/// "shipping stuck" flag, which refuses audited answers while the oldest waiting event is
/// older than `audit.ship_lag_ms_max`.
pub fn spawn_shipper(ctx: NodeContext) {
    tokio::spawn(async move {
        let journal = ctx.journal().clone();
        let settings = ctx.config().audit.clone();
        let lag_max = Duration::from_millis(settings.ship_lag_ms_max);
        let interval = Duration::from_millis(settings.ship_interval_ms);
        let metrics = ctx.metrics().clone();
        let mut counted = (0u64, 0u64);
        let mut batch: Vec<(u64, AuditEvent)> = Vec::new();
        let mut delay = Duration::from_millis(10);
        let mut last_error_log: Option<Instant> = None;
        loop {
            let age = journal.oldest_age();
            let stuck = age > lag_max;
            if ctx.shipping_stuck().swap(stuck, Ordering::AcqRel) != stuck {
                if stuck {
                    tracing::error!(
                        age_ms = age.as_millis() as u64,
                        "audit shipping stuck: refusing audited answers until the chain takes the journal"
                    );
                } else {
                    tracing::info!("audit shipping caught up: answering again");
                }
            }
            let (writes, events) = journal.write_counts();
            metrics
                .audit_journal_writes_total
                .inc_by(writes - counted.0);
            metrics
                .audit_journal_events_total
                .inc_by(events - counted.1);
            counted = (writes, events);
            metrics.audit_journal_events.set(journal.depth() as i64);
            metrics.audit_journal_age_ms.set(age.as_millis() as i64);
            if batch.is_empty() {
                let j = journal.clone();
                let limit = settings.ship_events_max as usize;
                match tokio::task::spawn_blocking(move || j.pending(limit)).await {
                    Ok(Ok(p)) => batch = p,
                    Ok(Err(e)) => tracing::warn!(error = %e, "audit journal read"),
                    Err(e) => tracing::warn!(error = %e, "audit journal task"),
                }
            }
            let (Some(first), Some(last)) = (batch.first().map(|b| b.0), batch.last().map(|b| b.0))
            else {
                journal.written(Duration::from_millis(100)).await;
                continue;
            };
            let events: Vec<AuditEvent> = batch.iter().map(|b| b.1.clone()).collect();
            let shipped = if ctx.is_leader() {
                ctx.ship_audit(journal.id(), first, events).await
            } else {
                let ship = ForwardedShip {
                    journal: journal.id(),
                    first_seq: first,
                    events,
                };
                ctx.forward_ship(&ship).await
            };
            match shipped {
                Ok(r) => {
                    // Invariant: the chain took the batch (it answers with its watermark for
                    // this journal, which a resend or a gap can only move past `last`).
                    debug_assert!(
                        r.journal_through >= last,
                        "ship answered {r:?} for {first}..={last}"
                    );
                    metrics
                        .audit_shipped_events_total
                        .inc_by(u64::from(r.appended));
                    if r.gap > 0 {
                        metrics.audit_ship_gaps_total.inc_by(r.gap);
                        tracing::error!(
                            gap = r.gap,
                            first,
                            "audit journal seqs missing in the chain before this batch (journal lost events, or the chain was restored from an older backup)"
                        );
                    }
                    let j = journal.clone();
                    match tokio::task::spawn_blocking(move || j.remove_through(last)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::warn!(error = %e, "audit journal remove"),
                        Err(e) => tracing::warn!(error = %e, "audit journal task"),
                    }
                    let full = batch.len() >= settings.ship_events_max as usize;
                    batch.clear();
                    delay = Duration::from_millis(10);
                    if !full && settings.answer_after == AnswerAfter::Journal {
                        // A trickle: let the next reads gather for one interval (with
                        // `answer_after = chain` the answers wait for the ship: no pause).
                        tokio::time::sleep(interval).await;
                    }
                }
                Err(e) => {
                    if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                        tracing::info!(error = %e, events = batch.len(), "audit journal not shipped yet");
                        last_error_log = Some(Instant::now());
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
            }
        }
    });
}

/// Starts the retention task: while this node leads, it removes audit events older than
/// `audit.retention_days` every `audit.prune_interval_ms` (no-op when retention is 0).
pub fn spawn_retention(ctx: NodeContext) {
    let settings = ctx.config().audit.clone();
    if settings.retention_days == 0 {
        return;
    }
    tokio::spawn(async move {
        let every = std::time::Duration::from_millis(settings.prune_interval_ms);
        loop {
            tokio::time::sleep(every).await;
            if !ctx.is_leader() {
                continue;
            }
            let keep_ms = i64::from(settings.retention_days) * 86_400_000;
            let before = Timestamp(Timestamp::now().0.saturating_sub(keep_ms));
            let op = Op::AuditPrune {
                before,
                max: settings.prune_events_per_command_max,
            };
            match ctx.write(None, op).await {
                Ok(r) => {
                    if let Ok(Outcome::AuditPruned {
                        removed,
                        pruned_seq,
                    }) = r.result
                        && removed > 0
                    {
                        tracing::info!(removed, pruned_seq, "audit retention removed old events");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "audit retention"),
            }
        }
    });
}

#[tonic::async_trait]
impl AuditSink for NodeContext {
    async fn append_forwarded(
        &self,
        request_id: &str,
        events: Vec<AuditEvent>,
    ) -> Result<(u64, u64), NodeError> {
        let id = RequestId::parse_proposed(request_id)?;
        self.append_audit(Some(id), events).await
    }

    async fn ship_forwarded(&self, ship: ForwardedShip) -> Result<ShipResult, NodeError> {
        self.ship_audit(ship.journal, ship.first_seq, ship.events)
            .await
    }
}
