//! The audit layer: recording audit events durably before an answer leaves the node, shipping
//! the events a follower recorded into the replicated chain, and retention.
//!
//! The request layer ([`crate::api::layer`]) is its only caller on the request path: a handler
//! that reads patient data gets the state only after [`NodeContext::audited_read`] returned.
//! `kartotek.v1.AuditService` (Record, Query, Head) is a thin handler in [`crate::api::audit`].
//!
//! **Durable before the answer.** A read of patient data (or an access decision) records its
//! event with [`NodeContext::audited_read`], which commits an `Op::AuditAppend` through Raft:
//! the event is on a majority's disk (fsynced) when it returns, exactly like a write, and the
//! read is answered only after that. On the leader the audit commit doubles as the
//! linearizable read barrier (a read through the log), so an audited read costs one write
//! commit, not a write plus a read-index round; elsewhere the two run concurrently. The leader's proposer packs the events of all concurrent reads into one log entry
//! (group commit), so auditing adds one Raft round per *batch* of reads, not per read.
//! A follower serving a bounded-staleness read forwards its event to the leader (`Record`);
//! when no leader is reachable the read fails: no audit, no data.
//!
//! **Tamper evidence.** The state machine chains every event to the previous one
//! (SHA-256); `Head` reports a node's chain head so that copies can be compared, and clients
//! can recompute the chain from `Query` pages (`kartotek audit verify`).

use kartotek_domain::audit::AuditEvent;
use kartotek_domain::limits::AUDIT_EVENTS_PER_APPEND_MAX;
use kartotek_domain::{Op, Outcome, RequestId, Timestamp};
use kartotek_proto::raft::v1::RaftPayload;
use tonic::Request;

use crate::consistency::ReadMode;
use crate::context::NodeContext;
use crate::error::NodeError;
use crate::raft::peers::with_cluster;
use crate::raft::service::{AuditSink, ForwardedAudit};

pub mod wire;

impl NodeContext {
    /// Makes the local state fit for a read in `mode` and records the read's audit events
    /// durably; the read may be answered only when this returns `Ok`.
    ///
    /// On the leader, a linearizable read needs no separate read-index round: committing the
    /// audit entry, proposed after the read arrived, proves this node was still the leader,
    /// and once it is applied the local state holds every write acknowledged before the read
    /// began (a read through the log). Elsewhere, or if leadership moves meanwhile, the read
    /// barrier (or the staleness proof) and the audit commit run concurrently.
    pub(crate) async fn audited_read(
        &self,
        mode: ReadMode,
        events: Vec<AuditEvent>,
    ) -> Result<(), NodeError> {
        if self.config().testing.unsafe_stale_reads {
            // Self-check mode: serve at once; audit in the background.
            let ctx = self.clone();
            tokio::spawn(async move {
                let _ = ctx.audit(events).await;
            });
            return Ok(());
        }
        if matches!(mode, ReadMode::Linearizable) && self.is_leader() {
            match self.append_audit(None, events.clone()).await {
                Ok(_) => return Ok(()),
                // Leadership moved between the check and the commit: fall back below.
                Err(NodeError::NotLeader { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let (ready, audited) = tokio::join!(self.prepare_read(mode), self.audit(events));
        ready?;
        audited
    }

    /// Records `events` durably before a read is answered: on the leader by committing them
    /// to the chain (majority, fsynced); elsewhere in this node's outbox (fsynced here), from
    /// which the shipper moves them into the chain.
    pub(crate) async fn audit(&self, events: Vec<AuditEvent>) -> Result<(), NodeError> {
        if self.is_leader() {
            match self.append_audit(None, events.clone()).await {
                Ok(_) => return Ok(()),
                Err(NodeError::NotLeader { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let outbox = self.outbox().clone();
        tokio::task::spawn_blocking(move || outbox.put(&events))
            .await
            .map_err(|e| NodeError::Internal(format!("audit outbox task: {e}")))??;
        Ok(())
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

    /// Sends `events` to the leader's chain under `request_id`, over the Raft listener (a
    /// node-to-node call: the follower is a cluster member, not an API caller with a token).
    pub(crate) async fn forward_audit(
        &self,
        events: Vec<AuditEvent>,
        request_id: &str,
    ) -> Result<(u64, u64), NodeError> {
        let Some(leader) = self.leader_raft_addr() else {
            return Err(NodeError::Unavailable("no leader known yet".into()));
        };
        let mut client = self.peers().raft_client(&leader).map_err(|e| {
            NodeError::Unavailable(format!(
                "cannot reach the leader to record the audit event: {e}"
            ))
        })?;
        let forwarded: ForwardedAudit = (request_id.to_owned(), events);
        let data = postcard::to_allocvec(&forwarded)
            .map_err(|e| NodeError::Internal(format!("encoding audit events: {e}")))?;
        let mut request = with_cluster(
            Request::new(RaftPayload { data }),
            &self.config().cluster_name,
        );
        request.set_timeout(std::time::Duration::from_millis(
            self.config().api.write_timeout_ms,
        ));
        match client.record_audit(request).await {
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
}

/// Starts the outbox shipper: moves audit events recorded on this node while it was not the
/// leader into the chain, oldest first, and removes them once the leader acknowledged them.
/// A batch keeps its request id (`audit-<node>-<first>-<last>`) across retries, so a resend
/// is recorded once (within the dedup window). A crash between the leader's commit and the
/// local removal can record a batch twice: over-auditing, never under-auditing.
pub fn spawn_outbox_shipper(ctx: NodeContext) {
    tokio::spawn(async move {
        let mut batch: Vec<(u64, AuditEvent)> = Vec::new();
        let mut delay = std::time::Duration::from_millis(50);
        loop {
            if batch.is_empty() {
                let outbox = ctx.outbox().clone();
                match tokio::task::spawn_blocking(move || {
                    outbox.pending(AUDIT_EVENTS_PER_APPEND_MAX)
                })
                .await
                {
                    Ok(Ok(p)) => batch = p,
                    Ok(Err(e)) => tracing::warn!(error = %e, "audit outbox read"),
                    Err(e) => tracing::warn!(error = %e, "audit outbox task"),
                }
            }
            let (Some(first), Some(last)) = (batch.first().map(|b| b.0), batch.last().map(|b| b.0))
            else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let rid = format!("audit-{}-{first}-{last}", ctx.config().node_id);
            let events: Vec<AuditEvent> = batch.iter().map(|b| b.1.clone()).collect();
            let shipped = if ctx.is_leader() {
                match RequestId::parse(&rid) {
                    Ok(id) => ctx.append_audit(Some(id), events).await.map(|_| ()),
                    Err(e) => Err(e.into()),
                }
            } else {
                ctx.forward_audit(events, &rid).await.map(|_| ())
            };
            match shipped {
                Ok(()) => {
                    let outbox = ctx.outbox().clone();
                    match tokio::task::spawn_blocking(move || outbox.remove_through(last)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::warn!(error = %e, "audit outbox remove"),
                        Err(e) => tracing::warn!(error = %e, "audit outbox task"),
                    }
                    batch.clear();
                    delay = std::time::Duration::from_millis(50);
                }
                Err(e) => {
                    tracing::debug!(error = %e, events = batch.len(), "audit outbox not shipped yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(2));
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
}
