//! Audit events as the API sends them, turned back into the domain's events.
//!
//! The registry hands out audit events as `kartotek.v1.AuditEvent` messages (text fields,
//! hex hashes). [`event_from_message`] validates one into a domain
//! [`AuditEvent`](kartotek_domain::AuditEvent) exactly as a node does when a frontend records
//! it, and [`chained_from_message`] also takes its `seq` and hashes, so that a caller (the
//! `kartotek audit verify` command) can recompute the hash chain itself with
//! [`kartotek_domain::verify_chain`] instead of trusting the node. Pure: no I/O.

use kartotek_domain::audit::{AuditEvent, AuditEventInput, ChainedAuditEvent};
use kartotek_domain::{Actor, Timestamp, ValidationError};
use kartotek_proto::v1;

/// Validates an audit event message into the domain's event. An empty `time` becomes `now`.
/// The actor is written `kind:id` (`personnel:1234567`); errors name the message's field.
/// `served_by` is left unset: only a node names itself, when it makes an event
/// ([`chained_from_message`] takes it from a stored event).
pub fn event_from_message(
    m: &v1::AuditEvent,
    now: Timestamp,
) -> Result<AuditEvent, ValidationError> {
    let Some((kind, id)) = m.actor.split_once(':') else {
        return Err(ValidationError::new(
            "actor",
            "must be kind:id with kind personnel, citizen, client or system",
        ));
    };
    let actor = Actor::parse("actor", kind, id)?;
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
    AuditEvent::parse(&input, now)
}

/// A stored audit event message (with `seq`, `prev_hash` and `hash` set by the registry) as
/// the domain's chained event. The hashes must be 64 hex digits.
pub fn chained_from_message(m: &v1::AuditEvent) -> Result<ChainedAuditEvent, ValidationError> {
    let hash32 = |field: &str, h: &str| -> Result<[u8; 32], ValidationError> {
        hex::decode(h)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| ValidationError::new(field, "must be 64 hex digits (SHA-256)"))
    };
    let mut event = event_from_message(m, Timestamp(0))?;
    event.served_by = m.served_by.map(|node| kartotek_domain::ServedBy {
        node,
        journal: m.served_journal_id,
        journal_seq: m.served_journal_seq,
    });
    Ok(ChainedAuditEvent {
        seq: m.seq,
        event,
        prev_hash: hash32("prev_hash", &m.prev_hash)?,
        hash: hash32("hash", &m.hash)?,
    })
}

#[cfg(test)]
mod tests {
    use kartotek_domain::audit::{GENESIS_PREV_HASH, actions, verify_chain};

    use super::*;

    fn stored(template: &v1::AuditEvent, c: &ChainedAuditEvent) -> v1::AuditEvent {
        v1::AuditEvent {
            seq: c.seq,
            prev_hash: hex::encode(c.prev_hash),
            hash: hex::encode(c.hash),
            ..template.clone()
        }
    }

    #[test]
    fn a_message_round_trips_into_a_verifiable_chain() {
        let template = v1::AuditEvent {
            time: "2026-01-02T03:04:05Z".into(),
            actor: "personnel:1234567".into(),
            org: "974760673".into(),
            patient: "15076500565".into(),
            action: actions::ACCESS_DECIDE.into(),
            resource: "kjernejournal".into(),
            purpose: "treatment".into(),
            decision: "permit_by_override".into(),
            emergency_override: true,
            justification: "akutt".into(),
            correlation_id: "req-1".into(),
            ..Default::default()
        };
        let event = event_from_message(&template, Timestamp(0)).expect("valid event");
        assert_eq!(event.actor.id_text(), "1234567");
        assert_eq!(event.justification.as_deref(), Some("akutt"));
        assert!(event.emergency_override);

        let first = ChainedAuditEvent::link(GENESIS_PREV_HASH, 1, event.clone());
        let second = ChainedAuditEvent::link(first.hash, 2, event);
        let messages = [stored(&template, &first), stored(&template, &second)];
        let chained = messages
            .iter()
            .map(chained_from_message)
            .collect::<Result<Vec<_>, _>>()
            .expect("stored events convert");
        assert_eq!(chained, vec![first, second]);
        verify_chain(GENESIS_PREV_HASH, &chained).expect("the chain verifies");
    }

    #[test]
    fn bad_messages_name_the_field() {
        let bad_actor = v1::AuditEvent {
            actor: "nobody".into(),
            action: actions::ACCESS_DECIDE.into(),
            ..Default::default()
        };
        let err = event_from_message(&bad_actor, Timestamp(0)).expect_err("no kind");
        assert_eq!(err.field, "actor");

        let bad_hash = v1::AuditEvent {
            seq: 1,
            actor: "system:importer".into(),
            action: actions::ACCESS_DECIDE.into(),
            prev_hash: hex::encode(GENESIS_PREV_HASH),
            hash: "abc".into(),
            ..Default::default()
        };
        let err = chained_from_message(&bad_hash).expect_err("short hash");
        assert_eq!(err.field, "hash");
    }
}
