//! Applying audit commands to the hash chain (see `audit_log.rs` for the chain, its keys and
//! its read side): an append links each event to the head and gives it the next sequence
//! number, a prune removes the oldest events before a time and moves the retention
//! checkpoint, a ship chains a node journal's events exactly once per journal seq. All three
//! only touch the audit tables, never the revision or the change feed.

use kartotek_domain::audit::{ChainedAuditEvent, GENESIS_PREV_HASH};
use kartotek_domain::{AuditEvent, Timestamp};

use super::EntryTxn;
use crate::audit_log::{
    SM_AUDIT_HEAD, SM_AUDIT_PRUNED, audit_key, journal_key, org_index_prefix, patient_index_prefix,
    with_seq,
};
use crate::error::StoreError;

/// Appends `events` to the chain in the entry's transaction; returns the first and last seq.
pub(super) fn append(
    txn: &mut EntryTxn<'_>,
    events: &[AuditEvent],
) -> Result<(u64, u64), StoreError> {
    let (mut seq, mut hash): (u64, [u8; 32]) =
        txn.get(SM_AUDIT_HEAD)?.unwrap_or((0, GENESIS_PREV_HASH));
    let first = seq + 1;
    for event in events {
        let linked = ChainedAuditEvent::link(hash, seq + 1, event.clone());
        // Invariant: the chain only grows at its head.
        assert_eq!(linked.seq, seq + 1, "audit seq out of step");
        seq = linked.seq;
        hash = linked.hash;
        if let Some(p) = &linked.event.patient {
            txn.put_raw(&with_seq(patient_index_prefix(p), seq), &[])?;
        }
        if let Some(o) = &linked.event.org {
            txn.put_raw(&with_seq(org_index_prefix(o), seq), &[])?;
        }
        txn.put(&audit_key(seq), &linked)?;
    }
    txn.put(SM_AUDIT_HEAD, &(seq, hash))?;
    Ok((first, seq))
}

/// What applying an `AuditShip` did.
pub(super) struct Shipped {
    /// The newest journal seq of the journal in the chain now.
    pub through: u64,
    /// Events newly chained.
    pub appended: u32,
    /// Journal seqs skipped between the previous watermark and the batch.
    pub gap: u64,
}

/// Chains the events of a journal batch that are newer than the journal's watermark (the
/// newest journal seq chained before), and moves the watermark to the batch's end.
pub(super) fn ship(
    txn: &mut EntryTxn<'_>,
    journal: u64,
    first_seq: u64,
    events: &[AuditEvent],
) -> Result<Shipped, StoreError> {
    let key = journal_key(journal);
    let watermark: u64 = txn.get(&key)?.unwrap_or(0);
    let Some(last_seq) = first_seq
        .checked_add(events.len() as u64)
        .and_then(|e| e.checked_sub(1))
    else {
        // An empty batch (or one past u64::MAX) chains nothing.
        return Ok(Shipped {
            through: watermark,
            appended: 0,
            gap: 0,
        });
    };
    if last_seq <= watermark {
        return Ok(Shipped {
            through: watermark,
            appended: 0,
            gap: 0,
        });
    }
    let gap = first_seq.saturating_sub(watermark + 1);
    let skip = (watermark + 1).saturating_sub(first_seq) as usize;
    let fresh = events.get(skip..).unwrap_or_default();
    append(txn, fresh)?;
    txn.put(&key, &last_seq)?;
    Ok(Shipped {
        through: last_seq,
        appended: fresh.len() as u32,
        gap,
    })
}

/// Removes up to `max` of the oldest events recorded before `before`, with their index
/// entries, and moves the retention checkpoint; returns how many and the checkpoint seq.
pub(super) fn prune(
    txn: &mut EntryTxn<'_>,
    before: Timestamp,
    max: u32,
) -> Result<(u32, u64), StoreError> {
    let (mut pruned_seq, mut pruned_hash): (u64, [u8; 32]) =
        txn.get(SM_AUDIT_PRUNED)?.unwrap_or((0, GENESIS_PREV_HASH));
    let (head_seq, _): (u64, [u8; 32]) = txn.get(SM_AUDIT_HEAD)?.unwrap_or((0, GENESIS_PREV_HASH));
    let mut removed = 0u32;
    while removed < max && pruned_seq < head_seq {
        let seq = pruned_seq + 1;
        let Some(e) = txn.get::<ChainedAuditEvent>(&audit_key(seq))? else {
            return Err(StoreError::Corrupt(format!("audit event {seq} missing")));
        };
        if e.event.time >= before {
            break;
        }
        txn.delete(&audit_key(seq))?;
        if let Some(p) = &e.event.patient {
            txn.delete(&with_seq(patient_index_prefix(p), seq))?;
        }
        if let Some(o) = &e.event.org {
            txn.delete(&with_seq(org_index_prefix(o), seq))?;
        }
        pruned_seq = seq;
        pruned_hash = e.hash;
        removed += 1;
    }
    if removed > 0 {
        txn.put(SM_AUDIT_PRUNED, &(pruned_seq, pruned_hash))?;
    }
    Ok((removed, pruned_seq))
}
