//! The audit log on the node: recording events durably before an answer leaves the node, and
//! `kartotek.v1.AuditService` (Record from frontends, Query, Head).
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

use kartotek_domain::audit::{AuditEvent, AuditEventInput, ChainedAuditEvent, actions};
use kartotek_domain::limits::{AUDIT_EVENTS_PER_APPEND_MAX, AUDIT_QUERY_LIMIT_MAX};
use kartotek_domain::locator::{parse_national_id, parse_org_number};
use kartotek_domain::{Op, Outcome, RequestId, Timestamp, ValidationError};
use kartotek_proto::v1::audit_service_client::AuditServiceClient;
use kartotek_proto::v1::audit_service_server::AuditService;
use kartotek_proto::v1::{
    self as v1, AuditHeadRequest, AuditHeadResponse, QueryAuditRequest, QueryAuditResponse,
    RecordAuditEventsRequest, RecordAuditEventsResponse,
};
use kartotek_storage::AuditSelector;
use tonic::{Request, Response, Status};

use crate::caller::{Caller, actor_text, parse_actor};
use crate::context::NodeContext;
use crate::error::NodeError;
use crate::locator_service::{ReadMode, read_mode};
use crate::peers::with_cluster;

impl NodeContext {
    /// Makes the local state fit for a read in `mode` and records the read's audit events
    /// durably; the read may be answered only when this returns `Ok`.
    ///
    /// On the leader, a linearizable read needs no separate read-index round: committing the
    /// audit entry, proposed after the read arrived, proves this node was still the leader,
    /// and once it is applied the local state holds every write acknowledged before the read
    /// began (a read through the log). Elsewhere, or if leadership moves meanwhile, the read
    /// barrier (or the staleness proof) and the audit commit run concurrently.
    pub async fn audited_read(
        &self,
        mode: ReadMode,
        events: Vec<AuditEvent>,
    ) -> Result<(), NodeError> {
        if self.config.testing.unsafe_stale_reads {
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

    /// True when this node believes it is the leader.
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.current_leader == Some(self.config.node_id)
    }

    /// Records `events` durably before a read is answered: on the leader by committing them
    /// to the chain (majority, fsynced); elsewhere in this node's outbox (fsynced here), from
    /// which the shipper moves them into the chain.
    pub async fn audit(&self, events: Vec<AuditEvent>) -> Result<(), NodeError> {
        if self.is_leader() {
            match self.append_audit(None, events.clone()).await {
                Ok(_) => return Ok(()),
                Err(NodeError::NotLeader { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let outbox = self.outbox.clone();
        tokio::task::spawn_blocking(move || outbox.put(&events))
            .await
            .map_err(|e| NodeError::Internal(format!("audit outbox task: {e}")))??;
        Ok(())
    }

    /// Commits `events` to the chain on this node as leader; returns their first and last seq.
    pub async fn append_audit(
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

    /// The leader's address, if known.
    pub fn leader_addr(&self) -> Option<String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let leader = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    /// Sends `events` to the leader's `Record` under `request_id`.
    async fn forward_audit(
        &self,
        leader: &str,
        events: Vec<AuditEvent>,
        request_id: &str,
    ) -> Result<(u64, u64), NodeError> {
        let channel = self.peers.channel(leader).map_err(|e| {
            NodeError::Unavailable(format!(
                "cannot reach the leader to record the audit event: {e}"
            ))
        })?;
        let mut request = with_cluster(
            Request::new(RecordAuditEventsRequest {
                events: events
                    .iter()
                    .map(|e| audit_event_message(e, 0, &[0; 32], &[0; 32]))
                    .collect(),
                request_id: request_id.to_owned(),
            }),
            &self.config.cluster_name,
        );
        request.set_timeout(std::time::Duration::from_millis(
            self.config.api.write_timeout_ms,
        ));
        match AuditServiceClient::new(channel).record(request).await {
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
                let outbox = ctx.outbox.clone();
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
            let rid = format!("audit-{}-{first}-{last}", ctx.config.node_id);
            let events: Vec<AuditEvent> = batch.iter().map(|b| b.1.clone()).collect();
            let shipped = if ctx.is_leader() {
                match RequestId::parse(&rid) {
                    Ok(id) => ctx.append_audit(Some(id), events).await.map(|_| ()),
                    Err(e) => Err(e.into()),
                }
            } else {
                match ctx.leader_addr() {
                    Some(addr) => ctx.forward_audit(&addr, events, &rid).await.map(|_| ()),
                    None => Err(NodeError::Unavailable("no leader known".into())),
                }
            };
            match shipped {
                Ok(()) => {
                    let outbox = ctx.outbox.clone();
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
    let settings = ctx.config.audit.clone();
    if settings.retention_days == 0 {
        return;
    }
    tokio::spawn(async move {
        let every = std::time::Duration::from_millis(settings.prune_interval_ms);
        loop {
            tokio::time::sleep(every).await;
            let leading = {
                let m = ctx.raft.metrics();
                let m = m.borrow();
                m.current_leader == Some(ctx.config.node_id)
            };
            if !leading {
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

/// An audit event as an API message.
pub fn audit_event_message(
    e: &AuditEvent,
    seq: u64,
    prev_hash: &[u8; 32],
    hash: &[u8; 32],
) -> v1::AuditEvent {
    v1::AuditEvent {
        seq,
        time: e.time.to_rfc3339(),
        actor: actor_text(&e.actor),
        org: e
            .org
            .as_ref()
            .map(|o| o.as_str().to_owned())
            .unwrap_or_default(),
        on_behalf_of: e
            .on_behalf_of
            .as_ref()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        patient: e
            .patient
            .as_ref()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        action: e.action.as_str().to_owned(),
        resource: e.resource.clone(),
        purpose: e
            .purpose
            .as_ref()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        decision: e
            .decision
            .map(|d| d.as_str().to_owned())
            .unwrap_or_default(),
        emergency_override: e.emergency_override,
        justification: e.justification.clone().unwrap_or_default(),
        correlation_id: e.correlation_id.clone().unwrap_or_default(),
        prev_hash: if seq == 0 {
            String::new()
        } else {
            hex::encode(prev_hash)
        },
        hash: if seq == 0 {
            String::new()
        } else {
            hex::encode(hash)
        },
    }
}

/// A stored (chained) audit event as an API message.
pub fn chained_message(c: &ChainedAuditEvent) -> v1::AuditEvent {
    audit_event_message(&c.event, c.seq, &c.prev_hash, &c.hash)
}

/// Validates an event sent by a caller (a frontend or a forwarding node), naming
/// `events[i].field` in errors.
pub fn parse_event(i: usize, m: &v1::AuditEvent, now: Timestamp) -> Result<AuditEvent, NodeError> {
    let named =
        |e: ValidationError| ValidationError::new(format!("events[{i}].{}", e.field), e.reason);
    let actor = parse_actor("actor", &m.actor).map_err(named)?;
    let input = AuditEventInput {
        time: &m.time,
        actor_kind: actor.kind().as_str(),
        actor: &actor.id_text(),
        org: &m.org,
        on_behalf_of: &m.on_behalf_of,
        patient: &m.patient,
        action: &m.action,
        resource: &m.resource,
        purpose: &m.purpose,
        decision: &m.decision,
        emergency_override: m.emergency_override,
        justification: &m.justification,
        correlation_id: &m.correlation_id,
    };
    Ok(AuditEvent::parse(&input, now).map_err(named)?)
}

/// The audit service of one node.
pub struct AuditServiceImpl {
    ctx: NodeContext,
}

impl AuditServiceImpl {
    /// Serves audit requests on `ctx`.
    pub fn new(ctx: NodeContext) -> Self {
        AuditServiceImpl { ctx }
    }

    async fn record(
        &self,
        _caller: Caller,
        r: RecordAuditEventsRequest,
    ) -> Result<RecordAuditEventsResponse, NodeError> {
        if r.events.is_empty() || r.events.len() > AUDIT_EVENTS_PER_APPEND_MAX {
            return Err(ValidationError::new(
                "events",
                format!("must hold 1 to {AUDIT_EVENTS_PER_APPEND_MAX} events"),
            )
            .into());
        }
        let now = Timestamp::now();
        let events = r
            .events
            .iter()
            .enumerate()
            .map(|(i, m)| parse_event(i, m, now))
            .collect::<Result<Vec<_>, _>>()?;
        let request_id = if r.request_id.is_empty() {
            None
        } else {
            Some(RequestId::parse(&r.request_id)?)
        };
        let (first_seq, last_seq) = if self.ctx.is_leader() {
            self.ctx.append_audit(request_id, events).await?
        } else {
            let Some(addr) = self.ctx.leader_addr() else {
                return Err(NodeError::Unavailable("no leader known yet".into()));
            };
            self.ctx.forward_audit(&addr, events, &r.request_id).await?
        };
        Ok(RecordAuditEventsResponse {
            first_seq,
            last_seq,
        })
    }

    async fn query(
        &self,
        caller: Caller,
        r: QueryAuditRequest,
    ) -> Result<QueryAuditResponse, NodeError> {
        let selector = match (r.patient.is_empty(), r.org.is_empty()) {
            (false, false) => {
                return Err(ValidationError::new("org", "give patient or org, not both").into());
            }
            (false, true) => AuditSelector::Patient(parse_national_id("patient", &r.patient)?),
            (true, false) => AuditSelector::Org(parse_org_number("org", &r.org)?),
            (true, true) => AuditSelector::All,
        };
        if !r.representative.is_empty() {
            let representative = parse_national_id("representative", &r.representative)?;
            let AuditSelector::Patient(patient) = &selector else {
                return Err(ValidationError::new("representative", "needs patient").into());
            };
            self.ctx
                .check_representation(&representative, patient, "audit")
                .await?;
        }
        let limit = match r.limit as usize {
            0 => 100,
            n if n > AUDIT_QUERY_LIMIT_MAX => {
                return Err(ValidationError::new(
                    "limit",
                    format!("is {n}, at most {AUDIT_QUERY_LIMIT_MAX}"),
                )
                .into());
            }
            n => n,
        };
        let mode = read_mode(r.read.as_ref())?;
        // Reading the audit log is itself audited.
        let patient = match &selector {
            AuditSelector::Patient(p) => Some(p.clone()),
            _ => None,
        };
        let event = caller.event(actions::AUDIT_QUERY, "audit", patient.as_ref());
        self.ctx.audited_read(mode, vec![event]).await?;
        let page = self.ctx.reader.audit_events(&selector, r.from_seq, limit)?;
        Ok(QueryAuditResponse {
            header: Some(self.ctx.header(page.revision, page.applied_index)),
            events: page.value.events.iter().map(chained_message).collect(),
            next_seq: page.value.next_seq.unwrap_or(0),
        })
    }

    async fn head(
        &self,
        _caller: Caller,
        _r: AuditHeadRequest,
    ) -> Result<AuditHeadResponse, NodeError> {
        let h = self.ctx.reader.audit_head()?;
        Ok(AuditHeadResponse {
            node_id: self.ctx.config.node_id,
            seq: h.seq,
            hash: hex::encode(h.hash),
            pruned_seq: h.pruned_seq,
            pruned_hash: hex::encode(h.pruned_hash),
        })
    }
}

/// Runs a handler that needs the caller, with admission control and metrics.
macro_rules! handle_caller {
    ($self:ident, $method:literal, $req:ident, $f:ident) => {{
        let started = ::std::time::Instant::now();
        let result = async {
            let _permit = $self.ctx.admit().await?;
            let caller = $crate::caller::Caller::from_metadata($req.metadata())?;
            $self.$f(caller, $req.into_inner()).await
        }
        .await
        .map(::tonic::Response::new)
        .map_err(::tonic::Status::from);
        $self.ctx.observe($method, started, &result);
        result
    }};
}
pub(crate) use handle_caller;

#[tonic::async_trait]
impl AuditService for AuditServiceImpl {
    async fn record(
        &self,
        request: Request<RecordAuditEventsRequest>,
    ) -> Result<Response<RecordAuditEventsResponse>, Status> {
        handle_caller!(self, "Audit/Record", request, record)
    }

    async fn query(
        &self,
        request: Request<QueryAuditRequest>,
    ) -> Result<Response<QueryAuditResponse>, Status> {
        handle_caller!(self, "Audit/Query", request, query)
    }

    async fn head(
        &self,
        request: Request<AuditHeadRequest>,
    ) -> Result<Response<AuditHeadResponse>, Status> {
        handle_caller!(self, "Audit/Head", request, head)
    }
}
