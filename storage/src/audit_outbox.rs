//! This node's audit outbox: audit events recorded durably on the node that served a read,
//! waiting to be shipped into the replicated, hash-chained audit log.
//!
//! A node that is not the leader (a follower serving a bounded-staleness read at a remote
//! site) must not make every read wait for a round trip to the leader, nor fail while the
//! leader is unreachable. It writes the read's events here with a **synced** write (fsync of
//! the WAL; concurrent writers share one fsync through RocksDB's write groups) before the
//! answer leaves the node, so the event survives kill -9 and power loss of this node. A
//! shipper task (in `node`) sends the outbox to the leader in order, under request ids derived
//! from the outbox sequence numbers, and removes what the leader acknowledged. The outbox is
//! its own column family: snapshots and snapshot installs never touch it.
//!
//! Keys: `seq (u64 BE)` → event.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kartotek_domain::AuditEvent;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};

use crate::codec::{decode, encode};
use crate::db::{cf, synced, unsynced};
use crate::error::StoreError;
use crate::keys::CF_OUTBOX;

/// The outbox. Cheap to clone.
#[derive(Clone)]
pub struct AuditOutbox {
    db: Arc<DB>,
    next_seq: Arc<AtomicU64>,
    /// Every seq up to this one has been removed: reads start after it and removals delete
    /// only from it on, so neither steps over the tombstones of everything shipped before
    /// (a scan from the start of the family would, and grow slower with every read served).
    removed_through: Arc<AtomicU64>,
}

impl AuditOutbox {
    pub(crate) fn open(db: Arc<DB>) -> Result<Self, StoreError> {
        let c = cf(&db, CF_OUTBOX)?;
        let edge = |mode: IteratorMode<'_>| -> Result<Option<u64>, StoreError> {
            match db.iterator_cf(c, mode).next() {
                Some(item) => Ok(Some(seq_of(&item?.0)?)),
                None => Ok(None),
            }
        };
        let last = edge(IteratorMode::End)?.unwrap_or(0);
        let first = edge(IteratorMode::Start)?.unwrap_or(last + 1);
        Ok(AuditOutbox {
            db,
            next_seq: Arc::new(AtomicU64::new(last + 1)),
            removed_through: Arc::new(AtomicU64::new(first.saturating_sub(1))),
        })
    }

    /// Records `events` durably (fsynced) and returns the outbox seq of the first one.
    pub fn put(&self, events: &[AuditEvent]) -> Result<u64, StoreError> {
        let c = cf(&self.db, CF_OUTBOX)?;
        let n = events.len() as u64;
        let first = self.next_seq.fetch_add(n, Ordering::SeqCst);
        let mut batch = WriteBatch::default();
        for (i, e) in events.iter().enumerate() {
            batch.put_cf(c, (first + i as u64).to_be_bytes(), encode(e)?);
        }
        self.db.write_opt(batch, &synced())?;
        Ok(first)
    }

    /// Up to `limit` waiting events, oldest first, with their outbox seqs.
    pub fn pending(&self, limit: usize) -> Result<Vec<(u64, AuditEvent)>, StoreError> {
        let c = cf(&self.db, CF_OUTBOX)?;
        let mut out = Vec::new();
        let from = (self.removed_through.load(Ordering::SeqCst) + 1).to_be_bytes();
        for item in self
            .db
            .iterator_cf(c, IteratorMode::From(&from, Direction::Forward))
        {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            out.push((seq_of(&k)?, decode(&v)?));
        }
        Ok(out)
    }

    /// Removes every event up to and including `seq` (shipped and acknowledged).
    pub fn remove_through(&self, seq: u64) -> Result<(), StoreError> {
        let c = cf(&self.db, CF_OUTBOX)?;
        let from = self.removed_through.load(Ordering::SeqCst) + 1;
        if seq < from {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(c, from.to_be_bytes(), (seq + 1).to_be_bytes());
        self.db.write_opt(batch, &unsynced())?;
        self.removed_through.fetch_max(seq, Ordering::SeqCst);
        Ok(())
    }
}

fn seq_of(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StoreError::Corrupt("bad audit outbox key".into()))?;
    Ok(u64::from_be_bytes(bytes))
}
