//! Key layout of the three column families.
//!
//! - `log`: `index (u64 big-endian)` → entry. Big-endian so iteration order is log order.
//! - `raft`: fixed keys for the vote, the last purged log id, the committed log id and the
//!   snapshot-install marker. Kept apart from the state machine so that a snapshot install,
//!   which replaces the whole `sm` family, never touches them.
//! - `sm`: the state machine. One byte of table prefix, then the table's key:
//!   - `M` meta: applied log id, membership, revision, state clock, dedup count;
//!   - `L` locator entries: `patient(11) org(9) system` (lookup by patient = prefix scan);
//!   - `O` locator index by org: `org(9) patient(11) system` → empty;
//!   - `D` dedup table: `request id` → (stamp, response);
//!   - `T` dedup expiry index: `stamp (u64 BE) request id` → empty;
//!   - `C` change history: `revision (u64 BE)` → change event (the watch feed), oldest
//!     compacted first;
//!   - `A`, `P`, `G` audit log: events by seq, index by patient, index by org, and the
//!     `M:audit…` meta keys (see `audit_log.rs`). These keys live in the `audit` family, not
//!     in `sm` ([`family_of`]): the chain takes a write per event for every read served, and
//!     kept apart its memtable and files never slow down the record families' reads. They
//!     are part of the state machine all the same: in the same WriteBatch as the entry's
//!     other writes, in the same snapshots, cleared and loaded by the same install;
//!   - `B`, `N`, `V`, `S`, `R`, `K`, `Q`, `W`, `I` the record families (blocks, consents,
//!     reservations, representations and their by-representative index, API catalog, clients,
//!     patient notifications, per-person id lists; see `record_keys.rs`).

use kartotek_domain::{LocatorKey, NationalId, OrgNumber, RequestId, Timestamp};

/// Column family of the Raft log.
pub const CF_LOG: &str = "log";
/// Column family of Raft's own metadata.
pub const CF_RAFT: &str = "raft";
/// Column family of the state machine.
pub const CF_SM: &str = "sm";
/// Column family of the audit chain (the state machine's `A`, `P`, `G` and `M:audit…` keys).
pub const CF_AUDIT: &str = "audit";

/// Whether a state-machine key belongs to the audit chain, which lives in [`CF_AUDIT`].
pub fn is_audit_key(key: &[u8]) -> bool {
    matches!(key.first(), Some(b'A' | b'P' | b'G')) || key.starts_with(b"M:audit")
}

/// The column family a state-machine key lives in: [`CF_AUDIT`] or [`CF_SM`].
pub fn family_of(key: &[u8]) -> &'static str {
    if is_audit_key(key) { CF_AUDIT } else { CF_SM }
}

/// Column family of this node's audit journal (events of answers given here, not yet in the
/// chain; see `audit_journal`). Named `outbox` for the data directories made before it.
pub const CF_OUTBOX: &str = "outbox";

/// `raft` key of the vote.
pub const RAFT_VOTE: &[u8] = b"vote";
/// `raft` key of the last purged log id.
pub const RAFT_LAST_PURGED: &[u8] = b"last_purged";
/// `raft` key of the committed log id.
pub const RAFT_COMMITTED: &[u8] = b"committed";
/// `raft` key present while a snapshot install is in progress.
pub const RAFT_INSTALLING: &[u8] = b"installing_snapshot";

/// `sm` key of the last applied log id.
pub const SM_APPLIED: &[u8] = b"M:applied";
/// `sm` key of the last membership.
pub const SM_MEMBERSHIP: &[u8] = b"M:membership";
/// `sm` key of the state revision.
pub const SM_REVISION: &[u8] = b"M:revision";
/// `sm` key of the state clock (the latest leader stamp applied).
pub const SM_CLOCK: &[u8] = b"M:clock";
/// `sm` key of the number of entries in the dedup table.
pub const SM_DEDUP_COUNT: &[u8] = b"M:dedup_count";

/// `sm` key of the newest compacted revision of the change history (0: nothing compacted).
pub const SM_COMPACTED: &[u8] = b"M:compacted";

/// Smallest key after every `sm` key (all `sm` keys start with an ASCII letter).
pub const SM_END: &[u8] = b"\xff";

/// Log key of an index.
pub fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Index of a log key.
pub fn log_index(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Prefix of every locator entry of a patient.
pub fn locator_patient_prefix(patient: &NationalId) -> Vec<u8> {
    let mut k = Vec::with_capacity(12);
    k.push(b'L');
    k.extend_from_slice(patient.as_str().as_bytes());
    k
}

/// Prefix of every locator entry of a patient at one organisation.
pub fn locator_patient_org_prefix(patient: &NationalId, org: &OrgNumber) -> Vec<u8> {
    let mut k = locator_patient_prefix(patient);
    k.extend_from_slice(org.as_str().as_bytes());
    k
}

/// Key of a locator entry.
pub fn locator_key(key: &LocatorKey) -> Vec<u8> {
    let mut k = locator_patient_org_prefix(&key.patient, &key.org);
    k.extend_from_slice(key.system.as_str().as_bytes());
    k
}

/// Key of a locator entry in the by-org index.
pub fn locator_org_index_key(key: &LocatorKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(21 + key.system.as_str().len());
    k.push(b'O');
    k.extend_from_slice(key.org.as_str().as_bytes());
    k.extend_from_slice(key.patient.as_str().as_bytes());
    k.extend_from_slice(key.system.as_str().as_bytes());
    k
}

/// Key of the change event at `revision`.
pub fn change_key(revision: u64) -> [u8; 9] {
    let mut k = [b'C'; 9];
    k[1..].copy_from_slice(&revision.to_be_bytes());
    k
}

/// Prefix of the by-org locator index for one organisation.
pub fn locator_org_prefix(org: &OrgNumber) -> Vec<u8> {
    let mut k = Vec::with_capacity(10);
    k.push(b'O');
    k.extend_from_slice(org.as_str().as_bytes());
    k
}

/// Key of a dedup table entry.
pub fn dedup_key(id: &RequestId) -> Vec<u8> {
    let part = id.dedup_part();
    let mut k = Vec::with_capacity(1 + part.len());
    k.push(b'D');
    k.extend_from_slice(part.as_bytes());
    k
}

/// Prefix of the dedup expiry index.
pub const DEDUP_TIME_PREFIX: &[u8] = b"T";

/// Key of a dedup expiry index entry.
pub fn dedup_time_key(stamp: Timestamp, id: &RequestId) -> Vec<u8> {
    let part = id.dedup_part();
    let mut k = Vec::with_capacity(9 + part.len());
    k.extend_from_slice(DEDUP_TIME_PREFIX);
    k.extend_from_slice(&(stamp.0.max(0) as u64).to_be_bytes());
    k.extend_from_slice(part.as_bytes());
    k
}

/// Splits a dedup expiry index key into its stamp and the dedup table key.
pub fn split_dedup_time_key(key: &[u8]) -> Option<(Timestamp, Vec<u8>)> {
    let rest = key.strip_prefix(DEDUP_TIME_PREFIX)?;
    let (stamp, id) = rest.split_at_checked(8)?;
    let stamp = u64::from_be_bytes(stamp.try_into().ok()?);
    let mut dk = Vec::with_capacity(1 + id.len());
    dk.push(b'D');
    dk.extend_from_slice(id);
    Some((Timestamp(i64::try_from(stamp).ok()?), dk))
}

/// The key just after every key with `prefix` (for range ends).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    SM_END.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_order_like_indexes() {
        assert!(log_key(1) < log_key(2));
        assert!(log_key(255) < log_key(256));
        assert_eq!(log_index(&log_key(77)), Some(77));
        assert_eq!(log_index(b"short"), None);
    }

    #[test]
    fn dedup_time_keys_round_trip() {
        let id = RequestId::parse("abc-1").unwrap_or_else(|e| panic!("{e}"));
        let k = dedup_time_key(Timestamp(1234), &id);
        assert_eq!(
            split_dedup_time_key(&k),
            Some((Timestamp(1234), dedup_key(&id)))
        );
        assert!(dedup_time_key(Timestamp(1), &id) < dedup_time_key(Timestamp(2), &id));
    }

    #[test]
    fn change_keys_order_like_revisions() {
        assert!(change_key(1) < change_key(2));
        assert!(change_key(255) < change_key(256));
        assert_eq!(change_key(0)[0], b'C');
    }

    #[test]
    fn prefix_end_is_after_prefix() {
        assert_eq!(prefix_end(b"L1"), b"L2".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
    }
}
