//! Audit events on the wire: the `kartotek.v1.AuditEvent` message to and from the domain's
//! [`AuditEvent`], and actors in their `kind:id` text form (as in the caller headers).

use kartotek_domain::audit::{AuditEvent, ChainedAuditEvent};
use kartotek_domain::fields::Actor;
use kartotek_domain::{Timestamp, ValidationError};
use kartotek_proto::v1;

use crate::error::NodeError;

/// Parses an actor written `kind:id` (e.g. `personnel:1234567`), naming `field` in errors.
pub fn parse_actor(field: &str, text: &str) -> Result<Actor, ValidationError> {
    let Some((kind, id)) = text.split_once(':') else {
        return Err(ValidationError::new(
            field,
            "must be kind:id with kind personnel, citizen, client or system",
        ));
    };
    Actor::parse(field, kind, id)
}

/// An actor as `kind:id` (the inverse of [`parse_actor`]).
pub fn actor_text(actor: &Actor) -> String {
    format!("{}:{}", actor.kind().as_str(), actor.id_text())
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
        served_by: e.served_by.map(|by| by.node),
        served_journal_seq: e.served_by.map(|by| by.journal_seq).unwrap_or_default(),
        served_journal_id: e.served_by.map(|by| by.journal).unwrap_or_default(),
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
/// `events[i].field` in errors. The same rules as the client's
/// [`event_from_message`](kartotek_client::audit::event_from_message), which `kartotek audit
/// verify` uses to recompute the chain: one conversion for both sides.
pub fn parse_event(i: usize, m: &v1::AuditEvent, now: Timestamp) -> Result<AuditEvent, NodeError> {
    kartotek_client::audit::event_from_message(m, now)
        .map_err(|e| ValidationError::new(format!("events[{i}].{}", e.field), e.reason).into())
}
