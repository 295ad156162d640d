//! The audit log in the state machine: a single hash chain of [`ChainedAuditEvent`]s across
//! the cluster, with indexes by patient and by organisation.
//!
//! Events arrive in [`Op::AuditAppend`](kartotek_domain::Op::AuditAppend) commands (the
//! leader's proposer packs many callers' events into one log entry, so auditing costs one Raft
//! round per batch, not per read). Applying one gives each event the next sequence number and
//! links it to the chain head: `hash = SHA-256(prev_hash, seq, event)` (see
//! `kartotek_domain::audit`). Every replica computes the same chain from the same log, so the
//! head hash at a given seq is the same on every node: comparing nodes' heads detects a
//! tampered copy, and recomputing the chain from the events detects a changed event.
//!
//! Keys (`audit` family, see `keys::family_of`): `A seq` → event; `P patient seq` and `G org seq` → empty (indexes);
//! meta `M:audit_head` → (seq, hash); `M:audit_pruned` → (seq, hash) of the last event removed
//! by retention (the chain continues from it); `M:audit_journal:<journal id>` → the newest
//! seq of that node journal already chained (events at or below it are not chained again).
//!
//! This module holds the keys and the read side ([`StateReader::audit_head`],
//! [`StateReader::audit_events`]); appending and pruning are applied in `apply/audit.rs`.

use kartotek_domain::audit::{ChainedAuditEvent, GENESIS_PREV_HASH};
use kartotek_domain::{NationalId, OrgNumber};
use rocksdb::{Direction, IteratorMode};

use crate::codec::decode;
use crate::db::{cf, prefix_read_options};
use crate::error::StoreError;
use crate::keys::CF_AUDIT;
use crate::reader::{ReadResult, StateReader, view_position};

/// `sm` key of the chain head: `(seq, hash)` of the newest event.
pub const SM_AUDIT_HEAD: &[u8] = b"M:audit_head";
/// `sm` key of `(seq, hash)` of the newest event removed by retention.
pub const SM_AUDIT_PRUNED: &[u8] = b"M:audit_pruned";

/// `sm` key of the watermark of node journal `journal`: the newest journal seq chained.
pub fn journal_key(journal: u64) -> Vec<u8> {
    let mut k = b"M:audit_journal:".to_vec();
    k.extend_from_slice(&journal.to_be_bytes());
    k
}

/// Key of the event with sequence number `seq`.
pub fn audit_key(seq: u64) -> [u8; 9] {
    let mut k = [b'A'; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Prefix of the by-patient index entries of `p`.
pub(crate) fn patient_index_prefix(p: &NationalId) -> Vec<u8> {
    let mut k = Vec::with_capacity(20);
    k.push(b'P');
    k.extend_from_slice(p.as_str().as_bytes());
    k
}

/// Prefix of the by-organisation index entries of `o`.
pub(crate) fn org_index_prefix(o: &OrgNumber) -> Vec<u8> {
    let mut k = Vec::with_capacity(18);
    k.push(b'G');
    k.extend_from_slice(o.as_str().as_bytes());
    k
}

/// An index key: `prefix` followed by `seq`.
pub(crate) fn with_seq(mut prefix: Vec<u8>, seq: u64) -> Vec<u8> {
    prefix.extend_from_slice(&seq.to_be_bytes());
    prefix
}

/// The chain head and the retention checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditHead {
    /// Seq of the newest event (0: none yet).
    pub seq: u64,
    /// Its hash (the genesis hash when none).
    pub hash: [u8; 32],
    /// Seq of the newest event removed by retention (0: none).
    pub pruned_seq: u64,
    /// Its hash: verification of the remaining events starts from it.
    pub pruned_hash: [u8; 32],
}

/// Which events an audit read wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSelector {
    /// Every event (security review, verification).
    All,
    /// Events about this patient ("who has looked at my data?").
    Patient(NationalId),
    /// Events of this organisation (verify purpose of use).
    Org(OrgNumber),
}

/// A page of audit events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// Events in seq order.
    pub events: Vec<ChainedAuditEvent>,
    /// Seq to continue from; `None` when there are no more.
    pub next_seq: Option<u64>,
}

impl StateReader {
    /// The audit chain head as of now.
    pub fn audit_head(&self) -> Result<AuditHead, StoreError> {
        let sm = cf(&self.db, CF_AUDIT)?;
        let view = self.view()?;
        let (seq, hash): (u64, [u8; 32]) = match view.get_cf(sm, SM_AUDIT_HEAD)? {
            Some(v) => decode(&v)?,
            None => (0, GENESIS_PREV_HASH),
        };
        let (pruned_seq, pruned_hash): (u64, [u8; 32]) = match view.get_cf(sm, SM_AUDIT_PRUNED)? {
            Some(v) => decode(&v)?,
            None => (0, GENESIS_PREV_HASH),
        };
        Ok(AuditHead {
            seq,
            hash,
            pruned_seq,
            pruned_hash,
        })
    }

    /// The newest seq of node journal `journal` already in the chain (0: none).
    pub fn audit_journal_through(&self, journal: u64) -> Result<u64, StoreError> {
        let sm = cf(&self.db, CF_AUDIT)?;
        let view = self.view()?;
        Ok(match view.get_cf(sm, journal_key(journal))? {
            Some(v) => decode(&v)?,
            None => 0,
        })
    }

    /// Up to `limit` events matching `selector` with seq ≥ `from_seq`, from one view.
    pub fn audit_events(
        &self,
        selector: &AuditSelector,
        from_seq: u64,
        limit: usize,
    ) -> Result<ReadResult<AuditPage>, StoreError> {
        let sm = cf(&self.db, CF_AUDIT)?;
        let view = self.view()?;
        let mut events = Vec::new();
        let mut next_seq = None;
        let from_seq = from_seq.max(1);
        match selector {
            AuditSelector::All => {
                let start = audit_key(from_seq);
                for item in view.iterator_cf_opt(
                    sm,
                    prefix_read_options(b"A"),
                    IteratorMode::From(&start, Direction::Forward),
                ) {
                    let (k, v) = item?;
                    if k.first() != Some(&b'A') {
                        break;
                    }
                    let e: ChainedAuditEvent = decode(&v)?;
                    if events.len() >= limit {
                        next_seq = Some(e.seq);
                        break;
                    }
                    events.push(e);
                }
            }
            AuditSelector::Patient(_) | AuditSelector::Org(_) => {
                let prefix = match selector {
                    AuditSelector::Patient(p) => patient_index_prefix(p),
                    AuditSelector::Org(o) => org_index_prefix(o),
                    AuditSelector::All => Vec::new(),
                };
                let start = with_seq(prefix.clone(), from_seq);
                for item in view.iterator_cf_opt(
                    sm,
                    prefix_read_options(&prefix),
                    IteratorMode::From(&start, Direction::Forward),
                ) {
                    let (k, _) = item?;
                    let Some(rest) = k.strip_prefix(prefix.as_slice()) else {
                        break;
                    };
                    let seq_bytes: [u8; 8] = rest
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("bad audit index key".into()))?;
                    let seq = u64::from_be_bytes(seq_bytes);
                    if events.len() >= limit {
                        next_seq = Some(seq);
                        break;
                    }
                    match view.get_cf(sm, audit_key(seq))? {
                        Some(v) => events.push(decode(&v)?),
                        // Removed by retention; its index entry goes with the next prune.
                        None => continue,
                    }
                }
            }
        }
        let (applied_index, revision) = view_position(&self.db, &view)?;
        Ok(ReadResult {
            value: AuditPage { events, next_seq },
            revision,
            applied_index,
        })
    }
}
