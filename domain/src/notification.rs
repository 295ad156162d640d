//! Patient notifications: the durable queue of "someone passed your block by emergency
//! override" messages (helsepersonelloven §45 requires the patient to be told).
//!
//! An access decision with an emergency override is a replicated write
//! ([`crate::record_op::RecordOp::AccessOverride`]): the state machine decides it on the state
//! at that log position, and when the answer is [`Effect::PermitByOverride`] it stores a
//! [`PatientNotification`] in the same log entry, so the caller never gets a permit by override
//! without the notification being durable. The patient (or whoever serves them, e.g. the
//! citizen portal) lists pending notifications and acknowledges them once delivered;
//! acknowledged ones are kept for history.

use serde::{Deserialize, Serialize};

use crate::access::{AccessDecision, AccessRequest, Effect};
use crate::error::{ApplyError, ValidationError};
use crate::fields::{Actor, ElementId, Purpose, ServiceName, parse_person_actor, parse_record_id};
use crate::ids::{HprNumber, NationalId, OrgNumber};
use crate::locator::parse_national_id;
use crate::time::Timestamp;

/// A stored notification to a patient about an emergency override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientNotification {
    /// Server-assigned id: the revision that created it.
    pub id: u64,
    /// Whom to notify.
    pub patient: NationalId,
    /// The health professional who overrode.
    pub personnel: Option<HprNumber>,
    /// The organisation they acted for.
    pub org: Option<OrgNumber>,
    /// The service accessed.
    pub service: ServiceName,
    /// The element accessed, if only one.
    pub element: Option<ElementId>,
    /// Purpose of use given.
    pub purpose: Purpose,
    /// When the access happened (the request's time).
    pub access_time: Timestamp,
    /// The decision's effect (always permit by override when stored).
    pub effect: Effect,
    /// The blocks that were overridden.
    pub overridden_blocks: Vec<u64>,
    /// The justification the professional gave.
    pub justification: String,
    /// One line for the patient.
    pub summary: String,
    /// When it was queued (leader time).
    pub created_at: Timestamp,
    /// When it was acknowledged (delivered), if it was.
    pub acknowledged_at: Option<Timestamp>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<Actor>,
    /// Revision that created it (equals `id`).
    pub create_revision: u64,
    /// Revision that last changed it.
    pub mod_revision: u64,
}

impl PatientNotification {
    /// True until acknowledged.
    pub fn is_pending(&self) -> bool {
        self.acknowledged_at.is_none()
    }
}

/// The notification an overriding decision leaves, or `None` when the decision is not a
/// permit by override (nothing to notify).
pub fn notification_for(
    req: &AccessRequest,
    decision: &AccessDecision,
    now: Timestamp,
    next_revision: u64,
) -> Option<PatientNotification> {
    if decision.effect != Effect::PermitByOverride {
        return None;
    }
    let justification = req.emergency_override.clone().unwrap_or_default();
    let who = match (&req.personnel, &req.org) {
        (Some(h), Some(o)) => format!("health professional {h} at organisation {o}"),
        (Some(h), None) => format!("health professional {h}"),
        (None, Some(o)) => format!("organisation {o}"),
        (None, None) => "health personnel".to_owned(),
    };
    let summary = format!(
        "{who} opened your records in {} in an emergency although you had blocked access \
         (block {:?}); purpose {}",
        req.service, decision.matching_blocks, req.purpose
    );
    Some(PatientNotification {
        id: next_revision,
        patient: req.patient.clone(),
        personnel: req.personnel,
        org: req.org.clone(),
        service: req.service.clone(),
        element: req.element.clone(),
        purpose: req.purpose.clone(),
        access_time: req.time,
        effect: decision.effect,
        overridden_blocks: decision.matching_blocks.clone(),
        justification,
        summary,
        created_at: now,
        acknowledged_at: None,
        acknowledged_by: None,
        create_revision: next_revision,
        mod_revision: next_revision,
    })
}

/// A validated acknowledgement (the notification was delivered to the patient).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationAck {
    /// The patient (a notification of another patient is not found).
    pub patient: NationalId,
    /// The notification's id.
    pub notification_id: u64,
    /// Who acknowledges it (the patient, a representative, or personnel delivering it).
    pub by: Actor,
}

impl NotificationAck {
    /// Validates an acknowledgement as sent by a caller (`by_kind`: `citizen` or `personnel`).
    pub fn parse(
        patient: &str,
        notification_id: u64,
        by_kind: &str,
        by: &str,
    ) -> Result<Self, ValidationError> {
        Ok(NotificationAck {
            patient: parse_national_id("patient", patient)?,
            notification_id: parse_record_id("notification_id", notification_id)?,
            by: parse_person_actor("by", by_kind, by)?,
        })
    }
}

/// Applies an acknowledgement. Unknown, or another patient's: [`ApplyError::NotFound`];
/// acknowledging twice changes nothing (`false`).
pub fn apply_notification_ack(
    existing: Option<&PatientNotification>,
    cmd: &NotificationAck,
    now: Timestamp,
    next_revision: u64,
) -> Result<(PatientNotification, bool), ApplyError> {
    let n = match existing {
        Some(n) if n.patient == cmd.patient && n.id == cmd.notification_id => n,
        _ => {
            return Err(ApplyError::NotFound(format!(
                "notification {}",
                cmd.notification_id
            )));
        }
    };
    if !n.is_pending() {
        return Ok((n.clone(), false));
    }
    debug_assert!(n.mod_revision < next_revision, "revisions only grow");
    Ok((
        PatientNotification {
            acknowledged_at: Some(now),
            acknowledged_by: Some(cmd.by.clone()),
            mod_revision: next_revision,
            ..n.clone()
        },
        true,
    ))
}
