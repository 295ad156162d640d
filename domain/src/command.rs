//! The replicated command: what the leader proposes to Raft and every replica applies.
//!
//! A [`Command`] carries the caller's request id (for exactly-once retries), the leader's clock
//! reading (the only time the state machine ever sees) and the operation. Its [`Response`] is
//! stored in the deduplication table under the request id, so a retry gets the original answer.

use serde::{Deserialize, Serialize};

use crate::audit::AuditEvent;
use crate::error::{ApplyError, ValidationError};
use crate::limits::REQUEST_ID_BYTES_MAX;
use crate::locator::{LocatorEntry, LocatorKey, LocatorRegister};
use crate::record_op::{RecordOp, RecordOutcome};
use crate::time::Timestamp;

/// A caller-chosen id that makes a write idempotent across retries (typically a UUID).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(String);

impl RequestId {
    /// Validates a request id: 1..=[`REQUEST_ID_BYTES_MAX`] bytes of `A-Z a-z 0-9 - _`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() || s.len() > REQUEST_ID_BYTES_MAX {
            return Err(ValidationError::new(
                "request_id",
                format!("must be 1 to {REQUEST_ID_BYTES_MAX} bytes"),
            ));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ValidationError::new(
                "request_id",
                "allowed are A-Z a-z 0-9 - _",
            ));
        }
        Ok(RequestId(s.to_owned()))
    }

    /// Validates an id as a node proposes it: a caller's ([`RequestId::parse`]) or a
    /// [scoped](RequestId::scoped) one (for ids forwarded between nodes, never from callers).
    pub fn parse_proposed(s: &str) -> Result<Self, ValidationError> {
        let hex_part =
            |p: &str| p.len() == 2 * SCOPED_HASH_BYTES && p.bytes().all(|b| b.is_ascii_hexdigit());
        match s.split_once('.') {
            Some((key, fingerprint)) if hex_part(key) && hex_part(fingerprint) => {
                Ok(RequestId(s.to_owned()))
            }
            _ => RequestId::parse(s),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A caller's id `raw` as the node proposes it: `<key>.<fingerprint>`, where `key` is a
    /// hash of `scope` (who calls which method) and `raw`, and `fingerprint` a hash of the
    /// `request` bytes. So one caller's id never finds another caller's answer (or another
    /// method's), and the same caller's id reused for a different request is refused instead
    /// of answered with the first one's answer ([`RequestId::dedup_part`],
    /// [`RequestId::fingerprint`]). A caller cannot write one: [`RequestId::parse`] refuses `.`.
    pub fn scoped(scope: &[u8], raw: &RequestId, request: &[u8]) -> RequestId {
        use sha2::{Digest, Sha256};
        let mut key = Sha256::new();
        for part in [
            b"kartotek request id v1".as_slice(),
            scope,
            raw.0.as_bytes(),
        ] {
            key.update((part.len() as u64).to_be_bytes());
            key.update(part);
        }
        let key = hex::encode(&key.finalize()[..SCOPED_HASH_BYTES]);
        let fingerprint = hex::encode(&Sha256::digest(request)[..SCOPED_HASH_BYTES]);
        RequestId(format!("{key}.{fingerprint}"))
    }

    /// What the deduplication table is keyed by: the key of a [scoped](RequestId::scoped) id,
    /// all of any other.
    pub fn dedup_part(&self) -> &str {
        self.0.split_once('.').map_or(&self.0, |(key, _)| key)
    }

    /// The request fingerprint of a [scoped](RequestId::scoped) id.
    pub fn fingerprint(&self) -> Option<&str> {
        self.0.split_once('.').map(|(_, f)| f)
    }
}

/// Bytes of each hash in a [scoped](RequestId::scoped) request id (96 bits).
const SCOPED_HASH_BYTES: usize = 12;

/// One replicated command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Deduplication key; `None` for internal commands that are naturally idempotent.
    pub request_id: Option<RequestId>,
    /// The leader's clock when it accepted the command.
    pub stamped_at: Timestamp,
    /// What to do.
    pub op: Op,
}

/// The operations the state machine knows. New record families add variants here (append
/// only: the log stores them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Does nothing; used to commit an entry in a new term.
    Noop,
    /// Register (upsert) a locator entry.
    LocatorRegister(LocatorRegister),
    /// Retire a locator entry.
    LocatorRetire(LocatorKey),
    /// Register a locator entry only if its current `mod_revision` is the expected one
    /// (0: it must not exist).
    LocatorCompareAndRegister {
        /// The register.
        register: LocatorRegister,
        /// The `mod_revision` the entry must have.
        expected_mod_revision: u64,
    },
    /// Register (upsert) a batch of locator entries atomically (bulk import; at most
    /// [`crate::limits::IMPORT_ENTRIES_PER_BATCH_MAX`]).
    LocatorImport(Vec<LocatorRegister>),
    /// Several callers' commands in one log entry (the leader's proposal batching). Each item
    /// is deduplicated and answered on its own, in order; items never nest.
    Batch(Vec<BatchItem>),
    /// An operation on a privacy-settings record, a catalog entry or a client.
    Record(RecordOp),
    /// Append audit events to the hash-chained audit log (at most
    /// [`crate::limits::AUDIT_EVENTS_PER_APPEND_MAX`]).
    AuditAppend(Vec<AuditEvent>),
    /// Retention: remove the oldest audit events recorded before `before` (at most `max`
    /// of them); the chain goes on from the last removed event's hash.
    AuditPrune {
        /// Events with a time before this are removed.
        before: Timestamp,
        /// Most events removed by this command.
        max: u32,
    },
    /// Audit events shipped from one node's audit journal into the chain. Applied **once per
    /// journal seq**: the state machine keeps, per journal, the newest journal seq it has
    /// chained, and skips the events at or below it, so a resend (after a lost answer, a
    /// crash between the commit and the journal's removal, a leader change) never chains an
    /// event twice and no caller's request id can claim a batch first.
    AuditShip {
        /// The journal's id (random, made when the node's journal was created).
        journal: u64,
        /// The journal seq of `events[0]`; the rest follow in order.
        first_seq: u64,
        /// The events (1 to [`crate::limits::AUDIT_EVENTS_PER_APPEND_MAX`]).
        events: Vec<AuditEvent>,
    },
}

/// One caller's command inside an [`Op::Batch`]; it shares the batch's leader stamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    /// Deduplication key, as in [`Command::request_id`].
    pub request_id: Option<RequestId>,
    /// What to do (never another batch).
    pub op: Op,
}

impl Op {
    /// A short name for metrics and logs (never contains patient data).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Noop => "noop",
            Op::LocatorRegister(_) => "locator_register",
            Op::LocatorRetire(_) => "locator_retire",
            Op::LocatorCompareAndRegister { .. } => "locator_compare_and_register",
            Op::LocatorImport(_) => "locator_import",
            Op::Batch(_) => "batch",
            Op::Record(_) => "record",
            Op::AuditAppend(_) => "audit_append",
            Op::AuditPrune { .. } => "audit_prune",
            Op::AuditShip { .. } => "audit_ship",
        }
    }

    /// How a caller's write is audited: the action and the one patient it is about, and the
    /// resource it names; `None` for what is about no single patient (catalog, clients, the
    /// token ledger, bulk import whose answer names no entry, internal housekeeping) and for
    /// an emergency override, which its handler audits as a decision.
    pub fn audited_as(&self) -> Option<(&'static str, &'static str, &crate::NationalId)> {
        use crate::audit::actions;
        match self {
            Op::LocatorRegister(r) | Op::LocatorCompareAndRegister { register: r, .. } => {
                Some((actions::LOCATOR_WRITE, "locator", &r.key.patient))
            }
            Op::LocatorRetire(k) => Some((actions::LOCATOR_WRITE, "locator", &k.patient)),
            Op::Record(r) => {
                let (action, resource) = match r {
                    RecordOp::BlockAdd(_) | RecordOp::BlockRevoke(_) => {
                        (actions::BLOCK_WRITE, "block")
                    }
                    RecordOp::ConsentRequest(_)
                    | RecordOp::ConsentGrant(_)
                    | RecordOp::ConsentGrantRequest(_)
                    | RecordOp::ConsentDeny(_)
                    | RecordOp::ConsentWithdraw(_) => (actions::CONSENT_WRITE, "consent"),
                    RecordOp::Reserve(_) | RecordOp::ReservationWithdraw(_) => {
                        (actions::RESERVATION_WRITE, "reservation")
                    }
                    RecordOp::RepresentationGrant(_) | RecordOp::RepresentationRevoke(_) => {
                        (actions::REPRESENTATION_WRITE, "representation")
                    }
                    RecordOp::NotificationAck(_) => (actions::NOTIFICATION_ACK, "notification"),
                    _ => return None,
                };
                r.subject().map(|p| (action, resource, p))
            }
            Op::Noop
            | Op::LocatorImport(_)
            | Op::Batch(_)
            | Op::AuditAppend(_)
            | Op::AuditPrune { .. }
            | Op::AuditShip { .. } => None,
        }
    }

    /// A rough size of the operation in log bytes, for bounding proposal batches.
    pub fn weight_bytes(&self) -> usize {
        match self {
            Op::LocatorImport(regs) => 64 + regs.len() * 128,
            Op::AuditAppend(events) | Op::AuditShip { events, .. } => 64 + events.len() * 192,
            Op::Batch(items) => items.iter().map(|i| i.op.weight_bytes()).sum(),
            _ => 256,
        }
    }
}

/// What a successful command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Nothing to report.
    None,
    /// A locator entry after the command, and whether the command changed it.
    Locator {
        /// The entry as stored.
        entry: LocatorEntry,
        /// False for an idempotent repeat.
        changed: bool,
    },
    /// A bulk-import batch: how many entries it changed and how many were already as sent.
    Imported {
        /// Entries created or changed.
        changed: u64,
        /// Entries already registered with the same content.
        unchanged: u64,
    },
    /// The answers to the items of an [`Op::Batch`], in order.
    Batch(Vec<Response>),
    /// What an [`Op::Record`] produced.
    Record(RecordOutcome),
    /// The sequence numbers an [`Op::AuditAppend`] gave its events.
    AuditAppended {
        /// Of the first event.
        first_seq: u64,
        /// Of the last event.
        last_seq: u64,
    },
    /// How many audit events an [`Op::AuditPrune`] removed, and the seq pruned up to.
    AuditPruned {
        /// Events removed.
        removed: u32,
        /// The newest removed seq (the verification start point).
        pruned_seq: u64,
    },
    /// What an [`Op::AuditShip`] did.
    AuditShipped {
        /// The newest journal seq of that journal now in the chain (the shipper removes
        /// everything up to it).
        journal_through: u64,
        /// Events of this command newly chained (the others were chained before).
        appended: u32,
        /// Journal seqs missing between what was chained before and `first_seq` (0 unless
        /// a journal lost events or the chain was restored from an older backup).
        gap: u64,
    },
}

/// The state machine's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// State revision after the command.
    pub revision: u64,
    /// The outcome, or why the command could not take effect.
    pub result: Result<Outcome, ApplyError>,
    /// True when this answer was replayed from the deduplication table: the command had
    /// already been applied under the same request id.
    pub deduplicated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        assert!(RequestId::parse("3f1c0d9e-8a63-4a8e-9b7e-0c6a1d2e3f40").is_ok());
        assert!(RequestId::parse("").is_err());
        assert!(RequestId::parse(&"a".repeat(65)).is_err());
        assert!(RequestId::parse("a b").is_err());
        assert!(RequestId::parse("a.b").is_err());
    }

    #[test]
    fn scoped_request_ids_separate_callers_and_fingerprint_the_request() {
        let raw = RequestId::parse("retry-1").unwrap_or_else(|e| panic!("{e}"));
        let a = RequestId::scoped(b"client:a LocatorService/Register", &raw, b"request 1");
        let again = RequestId::scoped(b"client:a LocatorService/Register", &raw, b"request 1");
        let other_request = RequestId::scoped(b"client:a LocatorService/Register", &raw, b"2");
        let other_caller =
            RequestId::scoped(b"client:b LocatorService/Register", &raw, b"request 1");
        assert_eq!(a, again);
        assert_eq!(a.dedup_part(), other_request.dedup_part());
        assert_ne!(a.fingerprint(), other_request.fingerprint());
        assert_ne!(a.dedup_part(), other_caller.dedup_part());
        assert_eq!(raw.dedup_part(), "retry-1");
        assert_eq!(raw.fingerprint(), None);
        // Scope and id are length-framed: moving bytes between them changes the key.
        let shifted = RequestId::scoped(
            b"client:a LocatorService/Registerr",
            &RequestId::parse("etry-1").unwrap_or_else(|e| panic!("{e}")),
            b"request 1",
        );
        assert_ne!(a.dedup_part(), shifted.dedup_part());
        assert_eq!(a.as_str().len(), 2 * 2 * SCOPED_HASH_BYTES + 1);
        assert_eq!(RequestId::parse_proposed(a.as_str()).ok(), Some(a.clone()));
        assert_eq!(RequestId::parse_proposed("retry-1").ok(), Some(raw));
        assert!(RequestId::parse(a.as_str()).is_err());
        assert!(RequestId::parse_proposed("abc.def").is_err());
    }
}
