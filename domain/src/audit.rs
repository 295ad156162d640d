//! Audit events ("who has looked at my data?") and their tamper-evident hash chain.
//!
//! An [`AuditEvent`] says who (personnel, citizen, client or system) did what (`action`, e.g.
//! `locator.lookup`, `access.decide`) to which resource about which patient, for which
//! organisation, on whose behalf, for what purpose, with what decision, whether by emergency
//! override and why, under which correlation (request) id.
//!
//! Events are appended to a chain: each [`ChainedAuditEvent`] carries a sequence number, the
//! previous event's hash and its own hash, `SHA-256` over an explicit, versioned, length-prefixed
//! encoding of `(prev_hash, seq, event)` ([`canonical_bytes`]; deliberately not serde or
//! `Debug`, so the hash of a stored event never changes with a library upgrade). Changing,
//! removing, inserting or reordering any event breaks the chain, which [`verify_chain`] finds.
//! The first event follows [`GENESIS_PREV_HASH`]; after retention has pruned a prefix, a
//! verification starts from the hash of the last pruned event.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::access::Effect;
use crate::error::ValidationError;
use crate::fields::{
    Actor, Purpose, parse_optional_timestamp, parse_required_text, parse_text, text_enum,
    token_type,
};
use crate::ids::{NationalId, OrgNumber};
use crate::limits::{
    AUDIT_ACTION_BYTES_MAX, AUDIT_RESOURCE_BYTES_MAX, CORRELATION_ID_BYTES_MAX,
    JUSTIFICATION_BYTES_MAX,
};
use crate::locator::{parse_national_id, parse_org_number};
use crate::time::Timestamp;

token_type!(
    /// What was done, as a lower-case dotted token (`locator.lookup`, `access.decide`, ...;
    /// see [`actions`]).
    AuditAction,
    AUDIT_ACTION_BYTES_MAX,
    lowercase = true
);

/// Well-known audit actions. Other valid tokens are accepted too.
pub mod actions {
    /// Locator lookup by patient.
    pub const LOCATOR_LOOKUP: &str = "locator.lookup";
    /// Locator register or retire.
    pub const LOCATOR_WRITE: &str = "locator.write";
    /// Listing an organisation's locator entries.
    pub const LOCATOR_LIST: &str = "locator.list";
    /// Following the locator change feed.
    pub const LOCATOR_WATCH: &str = "locator.watch";
    /// An access decision.
    pub const ACCESS_DECIDE: &str = "access.decide";
    /// Listing a patient's blocks.
    pub const BLOCK_LIST: &str = "block.list";
    /// Adding or revoking a block.
    pub const BLOCK_WRITE: &str = "block.write";
    /// Listing or checking consents.
    pub const CONSENT_READ: &str = "consent.read";
    /// Requesting, granting, denying or withdrawing a consent.
    pub const CONSENT_WRITE: &str = "consent.write";
    /// Checking or listing reservations.
    pub const RESERVATION_READ: &str = "reservation.read";
    /// Reserving or withdrawing.
    pub const RESERVATION_WRITE: &str = "reservation.write";
    /// Representation queries.
    pub const REPRESENTATION_READ: &str = "representation.read";
    /// Granting or revoking a representation.
    pub const REPRESENTATION_WRITE: &str = "representation.write";
    /// Acknowledging an override notification.
    pub const NOTIFICATION_ACK: &str = "notification.ack";
    /// Reading the audit log.
    pub const AUDIT_QUERY: &str = "audit.query";
    /// Issuing a security token.
    pub const TOKEN_ISSUE: &str = "token.issue";
    /// Taking a backup of the whole registry (every record leaves the cluster).
    pub const ADMIN_BACKUP: &str = "admin.backup";
}

/// The previous-event hash of the first event in a chain: 32 zero bytes.
pub const GENESIS_PREV_HASH: [u8; 32] = [0; 32];

/// Version tag at the start of every hashed encoding; bump it (and keep the old encoder for
/// old events) if the encoding ever changes.
const ENCODING_TAG: &[u8] = b"kartotek.audit.v1\0";

/// The tag of an event that names its serving node: the v1 encoding followed by `served_by`
/// (node, journal, journal seq; big endian). An event without one is hashed exactly as before, so old chains verify.
const ENCODING_TAG_SERVED: &[u8] = b"kartotek.audit.v2\0";

/// One audited happening.
///
/// Stored and replicated with postcard, whose encoding of a struct has no field names: an
/// event is written as its fields in order, the last one a [`wire::Tail`] that reads the
/// bytes of the original `correlation_id: Option<String>` unchanged (variants 0 and 1) and
/// adds `served_by` as variant 2. Events written before nodes named themselves decode as
/// they are, with `served_by: None`. Human-readable formats (JSON) see the plain fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// When (leader time, or the frontend's time for a forwarded event).
    pub time: Timestamp,
    /// Who acted.
    pub actor: Actor,
    /// For which organisation.
    pub org: Option<OrgNumber>,
    /// The citizen the actor acted for (representation), if any.
    pub on_behalf_of: Option<NationalId>,
    /// The patient the data is about, if any.
    pub patient: Option<NationalId>,
    /// What was done.
    pub action: AuditAction,
    /// What it was done to (free text, e.g. `locator:974589095/dips`).
    pub resource: String,
    /// Purpose of use.
    pub purpose: Option<Purpose>,
    /// The access decision's effect, for decisions.
    pub decision: Option<Effect>,
    /// True when an emergency override was used.
    pub emergency_override: bool,
    /// The override's justification (set exactly when `emergency_override`).
    pub justification: Option<String>,
    /// The request id / trace id tying this event to the request.
    pub correlation_id: Option<String>,
    /// The Kartotek node that served the request and made the event (IHE BALP's server
    /// agent), with the event's seq in that node's audit journal. `None` for events a
    /// frontend forwarded and for events made before nodes named themselves.
    pub served_by: Option<ServedBy>,
}

/// Where a node-made event comes from: the node, its audit journal and the event's seq in
/// it. No two events share one: a journal's id is drawn at random when its data directory is
/// made (a wiped or restored node has a new journal, even under its old node id), and its
/// seqs only grow, across restarts too. So the chain shows by itself that no journal event
/// was chained twice: two chain events with the same `ServedBy` are a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServedBy {
    /// The serving node's id.
    pub node: u64,
    /// The id of that node's journal (given when the journal writes the event; 0 before).
    pub journal: u64,
    /// The event's seq in that journal (given with `journal`).
    pub journal_seq: u64,
}

/// Raw fields of an audit event, exactly as a frontend forwards them (empty = unset).
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditEventInput<'a> {
    /// RFC 3339; empty = now.
    pub time: &'a str,
    /// See [`crate::fields::ActorKind`].
    pub actor_kind: &'a str,
    /// The actor's id.
    pub actor: &'a str,
    /// Org number.
    pub org: &'a str,
    /// National id.
    pub on_behalf_of: &'a str,
    /// National id.
    pub patient: &'a str,
    /// Action token.
    pub action: &'a str,
    /// At most [`AUDIT_RESOURCE_BYTES_MAX`] bytes.
    pub resource: &'a str,
    /// Purpose token.
    pub purpose: &'a str,
    /// `permit`, `deny` or `permit_by_override`.
    pub decision: &'a str,
    /// Whether an emergency override was used.
    pub emergency_override: bool,
    /// Required with an override; at most [`JUSTIFICATION_BYTES_MAX`] bytes.
    pub justification: &'a str,
    /// At most [`CORRELATION_ID_BYTES_MAX`] bytes of visible ASCII.
    pub correlation_id: &'a str,
}

impl AuditEvent {
    /// Validates a forwarded event; an empty `time` is `now`. An override needs a
    /// justification and a justification needs an override (the error names
    /// `justification`); a `permit_by_override` decision needs an override.
    pub fn parse(input: &AuditEventInput<'_>, now: Timestamp) -> Result<Self, ValidationError> {
        let time = parse_optional_timestamp("time", input.time)?.unwrap_or(now);
        let actor = Actor::parse("actor", input.actor_kind, input.actor)?;
        let org = opt(input.org, |s| parse_org_number("org", s))?;
        let on_behalf_of = opt(input.on_behalf_of, |s| parse_national_id("on_behalf_of", s))?;
        let patient = opt(input.patient, |s| parse_national_id("patient", s))?;
        let action = AuditAction::parse("action", input.action)?;
        let resource = parse_text("resource", input.resource, AUDIT_RESOURCE_BYTES_MAX)?;
        let purpose = opt(input.purpose, |s| Purpose::parse("purpose", s))?;
        let decision = opt(input.decision, |s| Effect::parse("decision", s))?;
        let justification = match (input.emergency_override, input.justification.is_empty()) {
            (true, _) => Some(parse_required_text(
                "justification",
                input.justification,
                JUSTIFICATION_BYTES_MAX,
            )?),
            (false, true) => None,
            (false, false) => {
                return Err(ValidationError::new(
                    "justification",
                    "is only used with emergency_override",
                ));
            }
        };
        if decision == Some(Effect::PermitByOverride) && !input.emergency_override {
            return Err(ValidationError::new(
                "decision",
                "permit_by_override needs emergency_override",
            ));
        }
        let correlation_id = opt(input.correlation_id, |s| {
            if s.len() > CORRELATION_ID_BYTES_MAX || !s.chars().all(|c| c.is_ascii_graphic()) {
                Err(ValidationError::new(
                    "correlation_id",
                    format!("must be 1 to {CORRELATION_ID_BYTES_MAX} bytes of visible ASCII"),
                ))
            } else {
                Ok(s.to_owned())
            }
        })?;
        Ok(AuditEvent {
            time,
            actor,
            org,
            on_behalf_of,
            patient,
            action,
            resource,
            purpose,
            decision,
            emergency_override: input.emergency_override,
            justification,
            correlation_id,
            served_by: None,
        })
    }
}

mod wire {
    //! The serde form of [`AuditEvent`]; see its docs.

    use serde::ser::SerializeStruct;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{
        Actor, AuditAction, AuditEvent, Effect, NationalId, OrgNumber, Purpose, ServedBy, Timestamp,
    };

    /// The last field of the compact form: `correlation_id`, and `served_by` when set. The
    /// variant index is postcard's first byte of the field, so 0 and 1 are exactly the bytes
    /// of an `Option<String>` (`None`, `Some`).
    #[derive(Serialize, Deserialize)]
    enum Tail<S> {
        /// No correlation id, no serving node.
        None,
        /// A correlation id, no serving node.
        Some(S),
        /// The serving node and journal seq, with or without a correlation id.
        Served(Option<S>, ServedBy),
    }

    impl<S> Tail<S> {
        fn of(correlation_id: Option<S>, served_by: Option<ServedBy>) -> Self {
            match (correlation_id, served_by) {
                (None, None) => Tail::None,
                (Some(id), None) => Tail::Some(id),
                (id, Some(by)) => Tail::Served(id, by),
            }
        }
    }

    /// The compact form, read back (postcard reads a struct as a tuple of its fields).
    #[derive(Deserialize)]
    #[rustfmt::skip]
    struct Compact(Timestamp, Actor, Option<OrgNumber>, Option<NationalId>, Option<NationalId>,
        AuditAction, String, Option<Purpose>, Option<Effect>, bool, Option<String>, Tail<String>);

    /// The human-readable form: every field by name (`served_by` may be left out).
    #[derive(Deserialize)]
    struct Plain {
        time: Timestamp,
        actor: Actor,
        org: Option<OrgNumber>,
        on_behalf_of: Option<NationalId>,
        patient: Option<NationalId>,
        action: AuditAction,
        resource: String,
        purpose: Option<Purpose>,
        decision: Option<Effect>,
        emergency_override: bool,
        justification: Option<String>,
        correlation_id: Option<String>,
        #[serde(default)]
        served_by: Option<ServedBy>,
    }

    impl Serialize for AuditEvent {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let readable = s.is_human_readable();
            let mut st = s.serialize_struct("AuditEvent", if readable { 13 } else { 12 })?;
            st.serialize_field("time", &self.time)?;
            st.serialize_field("actor", &self.actor)?;
            st.serialize_field("org", &self.org)?;
            st.serialize_field("on_behalf_of", &self.on_behalf_of)?;
            st.serialize_field("patient", &self.patient)?;
            st.serialize_field("action", &self.action)?;
            st.serialize_field("resource", &self.resource)?;
            st.serialize_field("purpose", &self.purpose)?;
            st.serialize_field("decision", &self.decision)?;
            st.serialize_field("emergency_override", &self.emergency_override)?;
            st.serialize_field("justification", &self.justification)?;
            if readable {
                st.serialize_field("correlation_id", &self.correlation_id)?;
                st.serialize_field("served_by", &self.served_by)?;
            } else {
                let tail = Tail::of(self.correlation_id.as_deref(), self.served_by);
                st.serialize_field("tail", &tail)?;
            }
            st.end()
        }
    }

    impl<'de> Deserialize<'de> for AuditEvent {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let c = if d.is_human_readable() {
                let p = Plain::deserialize(d)?;
                let tail = Tail::of(p.correlation_id, p.served_by);
                #[rustfmt::skip]
                let c = Compact(p.time, p.actor, p.org, p.on_behalf_of, p.patient, p.action,
                    p.resource, p.purpose, p.decision, p.emergency_override, p.justification, tail);
                c
            } else {
                Compact::deserialize(d)?
            };
            let (correlation_id, served_by) = match c.11 {
                Tail::None => (None, None),
                Tail::Some(id) => (Some(id), None),
                Tail::Served(id, by) => (id, Some(by)),
            };
            Ok(AuditEvent {
                time: c.0,
                actor: c.1,
                org: c.2,
                on_behalf_of: c.3,
                patient: c.4,
                action: c.5,
                resource: c.6,
                purpose: c.7,
                decision: c.8,
                emergency_override: c.9,
                justification: c.10,
                correlation_id,
                served_by,
            })
        }
    }
}

/// `None` for the empty string, else `parse(s)`.
fn opt<T>(
    s: &str,
    parse: impl FnOnce(&str) -> Result<T, ValidationError>,
) -> Result<Option<T>, ValidationError> {
    if s.is_empty() {
        Ok(None)
    } else {
        parse(s).map(Some)
    }
}

/// An event in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedAuditEvent {
    /// Position in the chain (consecutive).
    pub seq: u64,
    /// The event.
    pub event: AuditEvent,
    /// The previous event's `hash` ([`GENESIS_PREV_HASH`] for the first).
    pub prev_hash: [u8; 32],
    /// [`chain`]`(prev_hash, seq, &event)`.
    pub hash: [u8; 32],
}

impl ChainedAuditEvent {
    /// Links `event` after `prev_hash` at `seq`.
    pub fn link(prev_hash: [u8; 32], seq: u64, event: AuditEvent) -> Self {
        let hash = chain(&prev_hash, seq, &event);
        ChainedAuditEvent {
            seq,
            event,
            prev_hash,
            hash,
        }
    }

    /// The first event of a new chain (seq 1, after [`GENESIS_PREV_HASH`]).
    pub fn genesis(event: AuditEvent) -> Self {
        Self::link(GENESIS_PREV_HASH, 1, event)
    }

    /// The event that follows this one (`seq + 1`, saturating).
    pub fn next(&self, event: AuditEvent) -> Self {
        Self::link(self.hash, self.seq.saturating_add(1), event)
    }
}

/// Appends a length-prefixed byte string.
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Every field is bounded far below 4 GiB; saturate rather than panic regardless.
    let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
}

/// Appends an optional byte string: 0, or 1 and the string.
fn put_opt(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            put_bytes(out, b);
        }
    }
}

/// The explicit encoding that [`chain`] hashes: a version tag, `prev_hash`, `seq` (big
/// endian), then every field of the event in declaration order, strings length-prefixed,
/// optional fields and enums tagged; `served_by`, when set, last, under its own tag (v2), so
/// an event without it hashes as it did before the field existed. Injective: different inputs
/// never encode the same.
pub fn canonical_bytes(prev_hash: &[u8; 32], seq: u64, event: &AuditEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + event.resource.len());
    out.extend_from_slice(match event.served_by {
        None => ENCODING_TAG,
        Some(_) => ENCODING_TAG_SERVED,
    });
    out.extend_from_slice(prev_hash);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&event.time.0.to_be_bytes());
    out.push(match event.actor {
        Actor::Personnel(_) => 1,
        Actor::Citizen(_) => 2,
        Actor::Client(_) => 3,
        Actor::System(_) => 4,
    });
    put_bytes(&mut out, event.actor.id_text().as_bytes());
    put_opt(&mut out, event.org.as_ref().map(|o| o.as_str().as_bytes()));
    put_opt(
        &mut out,
        event.on_behalf_of.as_ref().map(|n| n.as_str().as_bytes()),
    );
    put_opt(
        &mut out,
        event.patient.as_ref().map(|n| n.as_str().as_bytes()),
    );
    put_bytes(&mut out, event.action.as_str().as_bytes());
    put_bytes(&mut out, event.resource.as_bytes());
    put_opt(
        &mut out,
        event.purpose.as_ref().map(|p| p.as_str().as_bytes()),
    );
    put_opt(&mut out, event.decision.map(|d| d.as_str().as_bytes()));
    out.push(u8::from(event.emergency_override));
    put_opt(&mut out, event.justification.as_deref().map(str::as_bytes));
    put_opt(&mut out, event.correlation_id.as_deref().map(str::as_bytes));
    if let Some(by) = event.served_by {
        out.extend_from_slice(&by.node.to_be_bytes());
        out.extend_from_slice(&by.journal.to_be_bytes());
        out.extend_from_slice(&by.journal_seq.to_be_bytes());
    }
    out
}

/// The hash of `event` at `seq` after `prev_hash`: SHA-256 of [`canonical_bytes`].
pub fn chain(prev_hash: &[u8; 32], seq: u64, event: &AuditEvent) -> [u8; 32] {
    Sha256::digest(canonical_bytes(prev_hash, seq, event)).into()
}

/// Where and why a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at seq {seq}: {reason}")]
pub struct ChainBreak {
    /// The `seq` of the first event that does not verify.
    pub seq: u64,
    /// What is wrong there.
    pub reason: String,
}

/// Verifies `events` as a contiguous chain following `start_prev_hash` ([`GENESIS_PREV_HASH`]
/// from the start, or the hash of the last event before them): each event's `prev_hash` is
/// the previous hash, its `seq` is one more than the previous one's, and its `hash` is
/// [`chain`] of its content. The first failure is reported.
pub fn verify_chain(
    start_prev_hash: [u8; 32],
    events: &[ChainedAuditEvent],
) -> Result<(), ChainBreak> {
    let mut prev = start_prev_hash;
    let mut expected_seq: Option<u64> = None;
    for e in events {
        if let Some(want) = expected_seq
            && e.seq != want
        {
            return Err(ChainBreak {
                seq: e.seq,
                reason: format!("expected seq {want}"),
            });
        }
        if e.prev_hash != prev {
            return Err(ChainBreak {
                seq: e.seq,
                reason: "prev_hash is not the previous event's hash".into(),
            });
        }
        if chain(&e.prev_hash, e.seq, &e.event) != e.hash {
            return Err(ChainBreak {
                seq: e.seq,
                reason: "hash does not match the event's content".into(),
            });
        }
        prev = e.hash;
        expected_seq = Some(e.seq.checked_add(1).ok_or_else(|| ChainBreak {
            seq: e.seq,
            reason: "seq overflows".into(),
        })?);
    }
    Ok(())
}

text_enum! {
    /// What an audit query is for (sets which field it filters on).
    pub enum AuditQueryKind {
        /// "Who has looked at my data?": events about one patient.
        ByPatient => "by_patient",
        /// An organisation verifying its staff's purpose of use.
        ByOrganisation => "by_organisation",
        /// Every access decision (security review).
        Decisions => "decisions",
    }
}

/// A validated audit query; empty filters match everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditQuery {
    /// Only events about this patient.
    pub patient: Option<NationalId>,
    /// Only events for this organisation.
    pub org: Option<OrgNumber>,
    /// Only events with this action.
    pub action: Option<AuditAction>,
    /// Only access decisions (events with a decision).
    pub decisions_only: bool,
    /// Only events at or after this time.
    pub from: Option<Timestamp>,
    /// Only events before this time.
    pub to: Option<Timestamp>,
}

impl AuditQuery {
    /// Validates a query as sent by a caller (empty = no filter). `from` must be before `to`
    /// when both are set.
    pub fn parse(
        patient: &str,
        org: &str,
        action: &str,
        decisions_only: bool,
        from: &str,
        to: &str,
    ) -> Result<Self, ValidationError> {
        let from = parse_optional_timestamp("from", from)?;
        let to = parse_optional_timestamp("to", to)?;
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(ValidationError::new("to", "must be after from"));
        }
        Ok(AuditQuery {
            patient: opt(patient, |s| parse_national_id("patient", s))?,
            org: opt(org, |s| parse_org_number("org", s))?,
            action: opt(action, |s| AuditAction::parse("action", s))?,
            decisions_only,
            from,
            to,
        })
    }

    /// True when `e` passes every filter.
    pub fn matches(&self, e: &AuditEvent) -> bool {
        self.patient
            .as_ref()
            .is_none_or(|p| e.patient.as_ref() == Some(p))
            && self.org.as_ref().is_none_or(|o| e.org.as_ref() == Some(o))
            && self.action.as_ref().is_none_or(|a| *a == e.action)
            && (!self.decisions_only || e.decision.is_some())
            && self.from.is_none_or(|f| e.time >= f)
            && self.to.is_none_or(|t| e.time < t)
    }
}

/// The oldest time kept under a retention of `retention_days` at `now`: events before it may
/// be pruned (keep the last pruned hash to verify the rest).
pub fn retention_cutoff(now: Timestamp, retention_days: u32) -> Timestamp {
    Timestamp(
        now.0
            .saturating_sub(i64::from(retention_days).saturating_mul(86_400_000)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::fixtures::{day, ok, org, person};
    use proptest::prelude::*;

    fn event(n: usize) -> AuditEvent {
        let p = person(n % 3);
        let o = org(n % 2);
        let hpr = (n + 1).to_string();
        let ov = n % 4 == 3;
        let t = day(n as i64 + 1).to_rfc3339();
        let rid = format!("req-{n}");
        ok(AuditEvent::parse(
            &AuditEventInput {
                time: &t,
                actor_kind: "personnel",
                actor: &hpr,
                org: o.as_str(),
                patient: p.as_str(),
                action: actions::ACCESS_DECIDE,
                resource: "kjernejournal",
                purpose: "treatment",
                decision: if ov { "permit_by_override" } else { "permit" },
                emergency_override: ov,
                justification: if ov { "akutt" } else { "" },
                correlation_id: &rid,
                ..Default::default()
            },
            day(0),
        ))
    }

    /// An event as stored before `served_by` existed: serde's derive, fields in order.
    #[derive(Serialize, Deserialize)]
    struct BeforeServedBy {
        time: Timestamp,
        actor: Actor,
        org: Option<OrgNumber>,
        on_behalf_of: Option<NationalId>,
        patient: Option<NationalId>,
        action: AuditAction,
        resource: String,
        purpose: Option<Purpose>,
        decision: Option<Effect>,
        emergency_override: bool,
        justification: Option<String>,
        correlation_id: Option<String>,
    }

    fn before(e: &AuditEvent) -> BeforeServedBy {
        BeforeServedBy {
            time: e.time,
            actor: e.actor.clone(),
            org: e.org.clone(),
            on_behalf_of: e.on_behalf_of.clone(),
            patient: e.patient.clone(),
            action: e.action.clone(),
            resource: e.resource.clone(),
            purpose: e.purpose.clone(),
            decision: e.decision,
            emergency_override: e.emergency_override,
            justification: e.justification.clone(),
            correlation_id: e.correlation_id.clone(),
        }
    }

    #[test]
    fn events_stored_before_served_by_read_and_write_the_same_bytes() {
        let mut no_id = event(1);
        no_id.correlation_id = None;
        for e in [event(0), event(3), no_id] {
            let old = ok(postcard::to_allocvec(&before(&e)));
            // Unchanged bytes for an event that names no node...
            assert_eq!(ok(postcard::to_allocvec(&e)), old);
            // ...and old bytes read back as the event, inside a chained event too.
            assert_eq!(ok(postcard::from_bytes::<AuditEvent>(&old)), e);
            let chained = ChainedAuditEvent::genesis(e.clone());
            let bytes = ok(postcard::to_allocvec(&chained));
            assert_eq!(
                ok(postcard::from_bytes::<ChainedAuditEvent>(&bytes)),
                chained
            );
            // Its hash is the one it had before (the v1 encoding, no trailing field).
            let canon = canonical_bytes(&GENESIS_PREV_HASH, 1, &e);
            assert!(canon.starts_with(ENCODING_TAG));
        }
    }

    #[test]
    fn served_by_round_trips_and_is_hashed() {
        for id in [None, Some("req-9".to_owned())] {
            let mut e = event(2);
            e.correlation_id = id;
            let plain = e.clone();
            e.served_by = Some(ServedBy {
                node: 3,
                journal: 7,
                journal_seq: 11,
            });
            let bytes = ok(postcard::to_allocvec(&e));
            assert_eq!(ok(postcard::from_bytes::<AuditEvent>(&bytes)), e);
            let chained = ChainedAuditEvent::genesis(e.clone());
            let bytes = ok(postcard::to_allocvec(&chained));
            assert_eq!(
                ok(postcard::from_bytes::<ChainedAuditEvent>(&bytes)),
                chained
            );
            let json = ok(serde_json::to_string(&e));
            assert!(
                json.contains("\"served_by\":{\"node\":3,\"journal\":7,\"journal_seq\":11}"),
                "{json}"
            );
            assert_eq!(ok(serde_json::from_str::<AuditEvent>(&json)), e);
            // JSON without the field (older output) reads as naming no node.
            let old_json = ok(serde_json::to_string(&before(&plain)));
            assert_eq!(ok(serde_json::from_str::<AuditEvent>(&old_json)), plain);
            // The node is part of the hash: another node, another hash.
            let canon = canonical_bytes(&GENESIS_PREV_HASH, 1, &e);
            assert!(canon.starts_with(ENCODING_TAG_SERVED));
            for other in [(4, 7, 11), (3, 8, 11), (3, 7, 12)] {
                let other = AuditEvent {
                    served_by: Some(ServedBy {
                        node: other.0,
                        journal: other.1,
                        journal_seq: other.2,
                    }),
                    ..e.clone()
                };
                assert_ne!(chained.hash, ChainedAuditEvent::genesis(other).hash);
            }
            assert_ne!(chained.hash, ChainedAuditEvent::genesis(plain).hash);
        }
    }

    fn build(n: usize) -> Vec<ChainedAuditEvent> {
        let mut out: Vec<ChainedAuditEvent> = Vec::new();
        for i in 0..n {
            let e = event(i);
            let next = match out.last() {
                None => ChainedAuditEvent::genesis(e),
                Some(prev) => prev.next(e),
            };
            out.push(next);
        }
        out
    }

    #[test]
    fn chain_verifies_and_detects_changes() {
        let c = build(6);
        assert_eq!(verify_chain(GENESIS_PREV_HASH, &c), Ok(()));
        assert_eq!(c[0].seq, 1);
        assert_eq!(c[0].prev_hash, GENESIS_PREV_HASH);
        assert_eq!(verify_chain(GENESIS_PREV_HASH, &[]), Ok(()));
        // A pruned prefix: start from the last pruned hash.
        assert_eq!(verify_chain(c[1].hash, &c[2..]), Ok(()));
        assert!(verify_chain(GENESIS_PREV_HASH, &c[2..]).is_err());
        // Removal, reordering, duplication.
        let mut removed = c.clone();
        removed.remove(3);
        assert_eq!(
            verify_chain(GENESIS_PREV_HASH, &removed)
                .err()
                .map(|b| b.seq),
            Some(5)
        );
        let mut swapped = c.clone();
        swapped.swap(1, 2);
        assert!(verify_chain(GENESIS_PREV_HASH, &swapped).is_err());
        let mut dup = c.clone();
        dup.insert(2, c[1].clone());
        assert!(verify_chain(GENESIS_PREV_HASH, &dup).is_err());
        // Edited content.
        let mut edited = c.clone();
        edited[4].event.resource = "e-resept".into();
        let b = verify_chain(GENESIS_PREV_HASH, &edited).err();
        assert_eq!(b.as_ref().map(|b| b.seq), Some(5));
        assert!(b.is_some_and(|b| b.reason.contains("hash")));
    }

    #[test]
    fn encoding_is_injective_across_field_boundaries() {
        let mut a = event(0);
        let mut b = event(0);
        a.resource = "ab".into();
        a.correlation_id = Some("c".into());
        b.resource = "a".into();
        b.correlation_id = Some("bc".into());
        assert_ne!(
            canonical_bytes(&GENESIS_PREV_HASH, 1, &a),
            canonical_bytes(&GENESIS_PREV_HASH, 1, &b)
        );
        let mut c = event(0);
        c.org = None;
        assert_ne!(
            chain(&GENESIS_PREV_HASH, 1, &c),
            chain(&GENESIS_PREV_HASH, 1, &event(0))
        );
        // Same content, same hash (deterministic across replicas).
        assert_eq!(
            chain(&GENESIS_PREV_HASH, 1, &event(0)),
            chain(&GENESIS_PREV_HASH, 1, &event(0))
        );
    }

    #[test]
    fn queries() {
        let c = build(6);
        let p0 = person(0);
        let q = ok(AuditQuery::parse(p0.as_str(), "", "", false, "", ""));
        let hits: Vec<u64> = c
            .iter()
            .filter(|e| q.matches(&e.event))
            .map(|e| e.seq)
            .collect();
        assert_eq!(hits, vec![1, 4]);
        let o1 = org(1);
        let q = ok(AuditQuery::parse(
            "",
            o1.as_str(),
            "access.decide",
            true,
            "2026-01-03T00:00:00Z",
            "",
        ));
        let hits: Vec<u64> = c
            .iter()
            .filter(|e| q.matches(&e.event))
            .map(|e| e.seq)
            .collect();
        assert_eq!(hits, vec![4, 6]);
        let q = ok(AuditQuery::parse("", "", "block.list", false, "", ""));
        assert!(c.iter().all(|e| !q.matches(&e.event)));
        assert_eq!(retention_cutoff(day(31), 30), day(1));
    }

    #[test]
    fn bad_input_names_the_field() {
        let p = person(0);
        let o = org(0);
        let b = AuditEventInput {
            actor_kind: "citizen",
            actor: p.as_str(),
            org: o.as_str(),
            patient: p.as_str(),
            action: "locator.lookup",
            ..Default::default()
        };
        assert!(AuditEvent::parse(&b, day(1)).is_ok_and(|e| e.time == day(1)));
        let long_res = "r".repeat(AUDIT_RESOURCE_BYTES_MAX + 1);
        let long_corr = "c".repeat(CORRELATION_ID_BYTES_MAX + 1);
        let cases: Vec<(AuditEventInput<'_>, &str)> = vec![
            (AuditEventInput { time: "x", ..b }, "time"),
            (
                AuditEventInput {
                    actor_kind: "",
                    ..b
                },
                "actor_kind",
            ),
            (AuditEventInput { actor: "1", ..b }, "actor"),
            (AuditEventInput { org: "1", ..b }, "org"),
            (
                AuditEventInput {
                    on_behalf_of: "1",
                    ..b
                },
                "on_behalf_of",
            ),
            (AuditEventInput { patient: "1", ..b }, "patient"),
            (AuditEventInput { action: "", ..b }, "action"),
            (
                AuditEventInput {
                    action: "look up",
                    ..b
                },
                "action",
            ),
            (
                AuditEventInput {
                    resource: &long_res,
                    ..b
                },
                "resource",
            ),
            (
                AuditEventInput {
                    purpose: "a b",
                    ..b
                },
                "purpose",
            ),
            (
                AuditEventInput {
                    decision: "allow",
                    ..b
                },
                "decision",
            ),
            (
                AuditEventInput {
                    decision: "permit_by_override",
                    ..b
                },
                "decision",
            ),
            (
                AuditEventInput {
                    emergency_override: true,
                    ..b
                },
                "justification",
            ),
            (
                AuditEventInput {
                    justification: "why",
                    ..b
                },
                "justification",
            ),
            (
                AuditEventInput {
                    correlation_id: &long_corr,
                    ..b
                },
                "correlation_id",
            ),
            (
                AuditEventInput {
                    correlation_id: "a b",
                    ..b
                },
                "correlation_id",
            ),
        ];
        for (i, field) in cases {
            match AuditEvent::parse(&i, day(1)) {
                Err(e) => assert_eq!(e.field, field, "{e}"),
                Ok(_) => panic!("accepted bad input for {field}"),
            }
        }
        let e = AuditQuery::parse(
            "",
            "",
            "",
            false,
            "2026-01-02T00:00:00Z",
            "2026-01-01T00:00:00Z",
        )
        .err();
        assert_eq!(e.map(|e| e.field), Some("to".into()));
    }

    /// Structured single-field changes of one chained event.
    fn mutate(e: &mut ChainedAuditEvent, kind: u8, byte: usize, delta: u8) {
        let delta = delta.max(1);
        match kind % 12 {
            0 => e.hash[byte % 32] ^= delta,
            1 => e.prev_hash[byte % 32] ^= delta,
            2 => e.seq = e.seq.wrapping_add(u64::from(delta)),
            3 => e.event.time = Timestamp(e.event.time.0 ^ i64::from(delta)),
            4 => {
                // One byte of the resource, kept ASCII.
                let mut bytes = e.event.resource.clone().into_bytes();
                if bytes.is_empty() {
                    bytes.push(b'a');
                } else {
                    let i = byte % bytes.len();
                    bytes[i] = b'a' + (bytes[i].wrapping_sub(b'a').wrapping_add(delta) % 26);
                    if bytes[i] == e.event.resource.as_bytes()[i] {
                        bytes[i] = if bytes[i] == b'z' { b'y' } else { b'z' };
                    }
                }
                e.event.resource = String::from_utf8(bytes).unwrap_or_default();
            }
            5 => e.event.emergency_override = !e.event.emergency_override,
            6 => {
                e.event.decision = match e.event.decision {
                    Some(Effect::Permit) => Some(Effect::Deny),
                    _ => Some(Effect::Permit),
                }
            }
            7 => e.event.org = None,
            8 => e.event.patient = Some(person(byte % 3 + 3)),
            9 => {
                e.event.actor = Actor::Personnel(ok(crate::ids::HprNumber::new(900 + delta as u32)))
            }
            10 => {
                e.event.correlation_id = Some(format!(
                    "{}x",
                    e.event.correlation_id.clone().unwrap_or_default()
                ))
            }
            _ => {
                e.event.justification = Some(format!(
                    "{}!",
                    e.event.justification.clone().unwrap_or_default()
                ))
            }
        }
    }

    proptest! {
        /// Any single-field change of any event, its hashes or its seq is detected.
        #[test]
        fn any_structured_mutation_is_detected(n in 1usize..8, pick in any::<usize>(), kind in any::<u8>(), byte in any::<usize>(), delta in any::<u8>()) {
            let mut c = build(n);
            let i = pick % n;
            let before = c[i].clone();
            mutate(&mut c[i], kind, byte, delta);
            prop_assume!(c[i] != before);
            prop_assert!(verify_chain(GENESIS_PREV_HASH, &c).is_err());
        }

        /// Any single-byte change of the stored form (JSON here) of any chained event that
        /// still reads back as a different event is detected.
        #[test]
        fn any_byte_mutation_is_detected(n in 1usize..6, pick in any::<usize>(), byte in any::<usize>(), delta in 1u8..=255) {
            let mut c = build(n);
            let i = pick % n;
            let bytes = match serde_json::to_vec(&c[i]) { Ok(b) => b, Err(e) => return Err(TestCaseError::fail(e.to_string())) };
            let mut m = bytes.clone();
            let k = byte % m.len();
            m[k] = m[k].wrapping_add(delta);
            let Ok(changed) = serde_json::from_slice::<ChainedAuditEvent>(&m) else { return Ok(()) };
            prop_assume!(changed != c[i]);
            c[i] = changed;
            prop_assert!(verify_chain(GENESIS_PREV_HASH, &c).is_err());
        }

        /// Arbitrary strings never panic the parser.
        #[test]
        fn arbitrary_input_never_panics(a in ".*", b in ".*", c in ".*", d in ".*", ov in any::<bool>()) {
            let _ = AuditEvent::parse(&AuditEventInput {
                time: &a, actor_kind: &b, actor: &c, org: &d, on_behalf_of: &a, patient: &b,
                action: &c, resource: &d, purpose: &a, decision: &b, emergency_override: ov,
                justification: &c, correlation_id: &d,
            }, day(0));
        }
    }
}
