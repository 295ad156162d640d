//! `kartotek.v1.AuditService`: Record (events from frontends and forwarding nodes), Query
//! (by patient, representative or organisation; itself audited) and Head (a node's chain head).
//! The recording rules live in [`crate::audit`].
//!
//! Record takes events only in the caller's own name: every event's `org` must be the
//! organisation of the caller's token (refused naming `events[i].org`, PERMISSION_DENIED for
//! another organisation, INVALID_ARGUMENT for none), unless the caller may act for any
//! organisation (an admin token), so a service cannot log an access as another
//! organisation's (the frontend's `POST /api/v1/audit-events` checks the same first).

use kartotek_domain::Timestamp;
use kartotek_domain::ValidationError;
use kartotek_domain::audit::actions;
use kartotek_domain::limits::{AUDIT_EVENTS_PER_APPEND_MAX, AUDIT_QUERY_LIMIT_MAX};
use kartotek_domain::locator::{parse_national_id, parse_org_number};
use kartotek_proto::v1::audit_service_server::AuditService;
use kartotek_proto::v1::{
    AuditHeadRequest, AuditHeadResponse, QueryAuditRequest, QueryAuditResponse,
    RecordAuditEventsRequest, RecordAuditEventsResponse,
};
use kartotek_storage::AuditSelector;
use tonic::{Request, Response, Status};

use crate::api::caller::Caller;
use crate::api::layer::{Call, Gate};
use crate::api::{methods, read_mode};
use crate::audit::wire::{chained_message, parse_event};
use crate::error::NodeError;

/// The audit service of one node.
pub struct AuditServiceImpl {
    gate: Gate,
}

impl AuditServiceImpl {
    /// Serves audit requests through `gate`.
    pub fn new(gate: Gate) -> Self {
        AuditServiceImpl { gate }
    }
}

async fn record(
    call: Call,
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
    for (i, e) in events.iter().enumerate() {
        must_record_for(call.caller(), i, e.org.as_ref())?;
    }
    let (first_seq, last_seq) = call.record_audit(&r.request_id, events).await?;
    Ok(RecordAuditEventsResponse {
        first_seq,
        last_seq,
    })
}

/// A caller records events only in its own organisation's name: each event's `org` must be
/// the organisation of the caller's token (`events[i].org` named when it is not). An event
/// without an org is refused too when the caller has one, so that a service cannot log an
/// access as nobody's. Only a caller that may act for any organisation ([`Caller::any_org`]:
/// an admin token, or auth off with no org named) records for others, as for the catalog.
fn must_record_for(
    caller: &Caller,
    i: usize,
    org: Option<&kartotek_domain::OrgNumber>,
) -> Result<(), NodeError> {
    let field = format!("events[{i}].org");
    match (org, &caller.org) {
        (Some(org), _) => caller.must_act_for(&field, org),
        (None, Some(own)) if !caller.any_org => Err(ValidationError::new(
            field,
            format!("is required: the caller's token acts for organisation {own}"),
        )
        .into()),
        (None, _) => Ok(()),
    }
}

async fn query(call: Call, r: QueryAuditRequest) -> Result<QueryAuditResponse, NodeError> {
    let selector = match (r.patient.is_empty(), r.org.is_empty()) {
        (false, false) => {
            return Err(ValidationError::new("org", "give patient or org, not both").into());
        }
        (false, true) => AuditSelector::Patient(parse_national_id("patient", &r.patient)?),
        (true, false) => AuditSelector::Org(parse_org_number("org", &r.org)?),
        (true, true) => AuditSelector::All,
    };
    // A service reviews its own organisation's log (its compliance officer, `/org`), never
    // another's; the whole log is for callers that act for every organisation (an admin
    // token). A patient's log is open to audit readers and, through the own-data rule, to
    // the patient.
    match &selector {
        AuditSelector::Org(org) => call.caller().must_act_for("org", org)?,
        AuditSelector::All if !call.caller().any_org => {
            return Err(NodeError::Forbidden(
                "AuditService/Query: the whole audit log is for admin tokens; name the \
                 patient, or your organisation as org"
                    .into(),
            ));
        }
        _ => {}
    }
    if !r.representative.is_empty() {
        let representative = parse_national_id("representative", &r.representative)?;
        let AuditSelector::Patient(patient) = &selector else {
            return Err(ValidationError::new("representative", "needs patient").into());
        };
        call.check_representation(&representative, patient, "audit")
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
    let event = call
        .caller()
        .event(actions::AUDIT_QUERY, "audit", patient.as_ref());
    let state = call.read(mode, vec![event]).await?;
    // The events of the answers this node gave before the query (its own included) first
    // reach the chain: a caller who asks here right after a lookup here sees it.
    call.audit_shipped().await?;
    let page = state.audit_events(&selector, r.from_seq, limit)?;
    Ok(QueryAuditResponse {
        header: Some(call.header(page.revision, page.applied_index)),
        events: page.value.events.iter().map(chained_message).collect(),
        next_seq: page.value.next_seq.unwrap_or(0),
    })
}

async fn head(call: Call, _r: AuditHeadRequest) -> Result<AuditHeadResponse, NodeError> {
    let h = call.state()?.audit_head()?;
    Ok(AuditHeadResponse {
        node_id: call.config().node_id,
        seq: h.seq,
        hash: hex::encode(h.hash),
        pruned_seq: h.pruned_seq,
        pruned_hash: hex::encode(h.pruned_hash),
    })
}

#[tonic::async_trait]
impl AuditService for AuditServiceImpl {
    async fn record(
        &self,
        request: Request<RecordAuditEventsRequest>,
    ) -> Result<Response<RecordAuditEventsResponse>, Status> {
        self.gate
            .unary(&methods::AUDIT_RECORD, request, record)
            .await
    }

    async fn query(
        &self,
        request: Request<QueryAuditRequest>,
    ) -> Result<Response<QueryAuditResponse>, Status> {
        self.gate.unary(&methods::AUDIT_QUERY, request, query).await
    }

    async fn head(
        &self,
        request: Request<AuditHeadRequest>,
    ) -> Result<Response<AuditHeadResponse>, Status> {
        self.gate.unary(&methods::AUDIT_HEAD, request, head).await
    }
}
