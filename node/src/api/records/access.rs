//! `kartotek.v1.AccessService` (the access decision) and `kartotek.v1.NotificationService`
//! (the patient-notification queue that emergency overrides fill).
//!
//! A decision without override is a read: after the read barrier (or a bounded-staleness
//! proof) the node reads the patient's blocks, consents, reservations and representations and
//! the service's catalog entry from one snapshot and calls the domain's `decide` with the
//! configured policy. A decision with override is a replicated write
//! ([`RecordOp::AccessOverride`]): the state machine decides it on the state at its log
//! position and, for a permit by override, stores the patient notification in the same entry,
//! so the answer never leaves the node before the notification is durable on a majority.

use kartotek_domain::access::decide as decide_access;
use kartotek_domain::locator::parse_national_id;
use kartotek_domain::notification::NotificationAck;
use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::{AccessRequest, AccessRequestInput, Timestamp};
use kartotek_proto::v1;
use kartotek_proto::v1::access_service_server::AccessService;
use kartotek_proto::v1::notification_service_server::NotificationService;
use kartotek_storage::record_reader::RECORD_SCAN_MAX;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::convert::{self, actor_parts};
use super::{unexpected, write_record};
use crate::api::layer::request_id;
use crate::api::layer::{Call, Gate};
use crate::api::methods;
use crate::api::paging::{ListPage, PageRequest, bool_field, id_key};
use crate::api::read_mode;
use crate::error::NodeError;

/// The access-decision service of one node.
pub struct AccessServiceImpl {
    gate: Gate,
}

impl AccessServiceImpl {
    /// Serves access decisions through `gate`.
    pub fn new(gate: Gate) -> Self {
        AccessServiceImpl { gate }
    }
}

async fn decide(
    call: Call,
    r: v1::AccessDecisionRequest,
) -> Result<v1::AccessDecisionResponse, NodeError> {
    // An unset time is this node's clock; an override is only accepted by the leader, so
    // there it is the leader's.
    let req = AccessRequest::parse(
        &AccessRequestInput {
            patient: &r.patient,
            personnel: &r.personnel,
            org: &r.org,
            groups: &r.groups,
            service: &r.service,
            element: &r.element,
            purpose: &r.purpose,
            time: &r.time,
            client: &r.client,
            on_behalf_of: &r.on_behalf_of,
            area: &r.area,
            emergency_override: r.emergency_override,
            justification: &r.justification,
        },
        Timestamp::now(),
    )?;
    let policy = call.config().policy.access_policy();
    let span = tracing::info_span!(
        "access.decide",
        request_id = %r.request_id,
        patient = %req.patient.log_hash(),
        service = %req.service,
        emergency_override = req.emergency_override.is_some(),
    );
    if req.emergency_override.is_some() {
        let decided_for = req.time;
        let audited_req = req.clone();
        let op = RecordOp::AccessOverride {
            request: req,
            policy,
        };
        let (outcome, revision) = write_record(&call, &r.request_id, op)
            .instrument(span.clone())
            .await?;
        let RecordOutcome::AccessDecided {
            decision,
            notification,
        } = outcome
        else {
            return Err(unexpected(&outcome));
        };
        // An override is always audited, with the effect and the justification.
        call.audit(vec![decision_event(call.caller(), &audited_req, &decision)])
            .instrument(span.clone())
            .await?;
        let _entered = span.enter();
        tracing::info!(effect = %decision.effect, notification = ?notification.as_ref().map(|n| n.id), "access.override");
        let mut answer = convert::decision(
            &decision,
            decided_for,
            notification.map(|n| n.id).unwrap_or(0),
        );
        answer.header = Some(call.write_header(revision)?);
        return Ok(answer);
    }
    // The request id only matters for an override; still refuse a malformed one.
    request_id(&r.request_id)?;
    let mode = read_mode(r.read.as_ref())?;
    let facts = call
        .read(mode, vec![])
        .instrument(span.clone())
        .await?
        .access_facts(&req.patient, &req.service)?;
    let mut req = req;
    if r.time.is_empty() {
        // "Now" is never before the state this decision reads: a record that took effect
        // at a leader stamp ahead of this node's clock counts (found by the Jepsen block
        // workload's reasoning about clock skew).
        req.time = req.time.max(facts.value.state_clock);
    }
    let decision = decide_access(&req, &facts.value.facts(), &policy);
    // Every decision is audited (with its effect) before it is answered.
    call.audit(vec![decision_event(call.caller(), &req, &decision)])
        .instrument(span.clone())
        .await?;
    let _entered = span.enter();
    tracing::debug!(effect = %decision.effect, "access.decide");
    let mut answer = convert::decision(&decision, req.time, 0);
    answer.header = Some(call.header(facts.revision, facts.applied_index));
    Ok(answer)
}

#[tonic::async_trait]
impl AccessService for AccessServiceImpl {
    async fn decide(
        &self,
        request: Request<v1::AccessDecisionRequest>,
    ) -> Result<Response<v1::AccessDecisionResponse>, Status> {
        self.gate
            .unary(&methods::ACCESS_DECIDE, request, decide)
            .await
    }
}

/// The patient-notification service of one node.
pub struct NotificationServiceImpl {
    gate: Gate,
}

impl NotificationServiceImpl {
    /// Serves notification requests through `gate`.
    pub fn new(gate: Gate) -> Self {
        NotificationServiceImpl { gate }
    }
}

async fn list(
    call: Call,
    r: v1::ListNotificationsRequest,
) -> Result<v1::ListNotificationsResponse, NodeError> {
    let patient = parse_national_id("patient", &r.patient)?;
    let paging = ListPage::of(
        PageRequest::parse_with_limit(r.page_size, r.limit, &r.page_token)?,
        "notification.list",
        &[patient.as_str(), bool_field(r.pending_only)],
    )?;
    let mode = read_mode(r.read.as_ref())?;
    let found = call
        .read_patient(mode, "notification.list", "notification", &patient)
        .await?
        .notifications_of(&patient, r.pending_only, RECORD_SCAN_MAX)?;
    let page = paging.page(&found.value, |n| id_key(n.id));
    Ok(v1::ListNotificationsResponse {
        header: Some(call.header(found.revision, found.applied_index)),
        notifications: page.items.into_iter().map(convert::notification).collect(),
        next_page_token: page.next_page_token,
    })
}

async fn acknowledge(
    call: Call,
    r: v1::AcknowledgeNotificationRequest,
) -> Result<v1::NotificationResponse, NodeError> {
    let (by_kind, by) = actor_parts("by", r.by.as_ref(), &call.caller().actor)?;
    let cmd = NotificationAck::parse(&r.patient, r.notification_id, &by_kind, &by)?;
    let span = tracing::info_span!(
        "notification.ack",
        request_id = %r.request_id,
        patient = %cmd.patient.log_hash(),
    );
    let (outcome, revision) = write_record(&call, &r.request_id, RecordOp::NotificationAck(cmd))
        .instrument(span)
        .await?;
    let RecordOutcome::Notification {
        notification,
        changed,
    } = outcome
    else {
        return Err(unexpected(&outcome));
    };
    Ok(v1::NotificationResponse {
        header: Some(call.write_header(revision)?),
        notification: Some(convert::notification(&notification)),
        changed,
    })
}

#[tonic::async_trait]
impl NotificationService for NotificationServiceImpl {
    async fn list(
        &self,
        request: Request<v1::ListNotificationsRequest>,
    ) -> Result<Response<v1::ListNotificationsResponse>, Status> {
        self.gate
            .unary(&methods::NOTIFICATION_LIST, request, list)
            .await
    }

    async fn acknowledge(
        &self,
        request: Request<v1::AcknowledgeNotificationRequest>,
    ) -> Result<Response<v1::NotificationResponse>, Status> {
        self.gate
            .unary(&methods::NOTIFICATION_ACKNOWLEDGE, request, acknowledge)
            .await
    }
}

/// The audit event of an access decision: who asked (the request's personnel and org when
/// given, else the caller), about whom, why, and what was decided.
fn decision_event(
    caller: &crate::api::caller::Caller,
    req: &AccessRequest,
    decision: &kartotek_domain::access::AccessDecision,
) -> kartotek_domain::AuditEvent {
    let mut e = caller.event(
        kartotek_domain::audit::actions::ACCESS_DECIDE,
        req.service.as_str(),
        Some(&req.patient),
    );
    if let Some(hpr) = req.personnel {
        e.actor = kartotek_domain::fields::Actor::Personnel(hpr);
    }
    if req.org.is_some() {
        e.org = req.org.clone();
    }
    if let Some(c) = &req.client {
        e.actor = kartotek_domain::fields::Actor::Client(c.clone());
    }
    if req.on_behalf_of.is_some() {
        e.on_behalf_of = req.on_behalf_of.clone();
    }
    e.purpose = Some(req.purpose.clone());
    e.decision = Some(decision.effect);
    if let Some(j) = &req.emergency_override {
        e.emergency_override = true;
        e.justification = Some(j.clone());
    }
    e
}
