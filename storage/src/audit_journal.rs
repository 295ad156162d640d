//! This node's audit journal: the audit events of the reads (and decisions, and writes about a
//! patient) this node answered, fsynced here before the answer left, waiting to be shipped
//! into the replicated, hash-chained audit log.
//!
//! **Contract** (the node's audit layer builds its guarantee on it, see `kartotek_node::audit`):
//! [`AuditJournal::append`] returns only after the events are in RocksDB's WAL **and the WAL is
//! fsynced**, so they survive kill -9 and power loss of this node. Appends are
//! group-committed: one writer thread takes every append queued while the previous fsync ran
//! and writes them as one synced batch, so N concurrent reads cost one fsync, not N.
//!
//! **Order without holes.** The writer thread is the only one that gives journal seqs, and it
//! gives them in the order it writes: every write holds a contiguous run of seqs above every
//! earlier write. A reader of [`AuditJournal::pending`] therefore never sees seq `n+1` before
//! `n`, and the shipper's cursor cannot step over an event that is still being written (the
//! outbox this replaces took its seqs before writing, and a slow writer's events could land
//! behind a cursor that had moved on).
//!
//! **Identity.** A journal has a random 64-bit id, made when its column family is first used
//! and kept with it. The chain keeps, per journal id, the newest journal seq it has chained
//! (`Op::AuditShip`), so shipping is exactly once without request ids; a node whose data
//! directory is wiped gets a new journal and its new seqs are not mistaken for old ones.
//!
//! Bounded: at most `events_max` events wait (appends beyond it are refused with
//! [`StoreError::JournalFull`]: the read is refused rather than answered without a durable
//! event), the queue to the writer holds at most `queue_max` appends, and one write takes at
//! most `group_events_max` events.
//!
//! **Seqs are never given twice.** The chain skips every seq at or below its watermark for
//! this journal, so a seq given again would be an event silently dropped. Removal writes the
//! newest removed seq (`JOURNAL_REMOVED_KEY`) in the same batch as the deletion, and opening
//! continues after the greater of it and the newest event still there: a journal emptied by
//! its shipper and then restarted goes on from where it was, not from 1.
//!
//! Keys (family `outbox`, never in snapshots): `seq (u64 BE)` → event; `JOURNAL_ID_KEY` → id;
//! `JOURNAL_REMOVED_KEY` → the newest removed seq.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kartotek_domain::AuditEvent;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::codec::{decode, encode};
use crate::db::{cf, synced, unsynced};
use crate::error::StoreError;
use crate::keys::CF_OUTBOX;

/// Key of the journal's id: after every seq key (a seq key is 8 bytes; this one has the
/// greatest 8-byte prefix and is longer).
const JOURNAL_ID_KEY: &[u8] = b"\xff\xff\xff\xff\xff\xff\xff\xffid";
/// Key of the newest removed seq (after every seq key, like the id).
const JOURNAL_REMOVED_KEY: &[u8] = b"\xff\xff\xff\xff\xff\xff\xff\xffremoved";

/// Bounds of a journal.
#[derive(Debug, Clone, Copy)]
pub struct JournalLimits {
    /// Most events waiting to be shipped.
    pub events_max: u64,
    /// Most appends queued for the writer.
    pub queue_max: usize,
    /// Most events in one synced write.
    pub group_events_max: usize,
}

impl Default for JournalLimits {
    fn default() -> Self {
        JournalLimits {
            events_max: 1_000_000,
            queue_max: 4_096,
            group_events_max: 4_096,
        }
    }
}

struct Append {
    events: Vec<AuditEvent>,
    done: oneshot::Sender<Result<u64, StoreError>>,
}

struct Shared {
    db: Arc<DB>,
    id: u64,
    /// The next seq the writer gives (only the writer thread moves it).
    next_seq: AtomicU64,
    /// Every seq up to this one has been removed: reads start after it and removals delete
    /// only from it on, so neither steps over the tombstones of everything shipped before.
    removed_through: AtomicU64,
    /// Woken after every write (the shipper waits on it).
    written: Notify,
    /// Synced writes made, and events in them (for metrics).
    writes_total: AtomicU64,
    events_total: AtomicU64,
    /// `(last seq, when written)` of each write not yet wholly removed, oldest first (the
    /// age of the oldest waiting event; events found at open count from the open).
    written_at: std::sync::Mutex<std::collections::VecDeque<(u64, std::time::Instant)>>,
    /// The newest removed seq, for [`AuditJournal::wait_removed`].
    removed: tokio::sync::watch::Sender<u64>,
    /// The newest written events (at most [`TAIL_EVENTS_MAX`]), so that the shipper reads
    /// from memory, not from a column family full of range tombstones (each RocksDB read
    /// there pays for every tombstone in the memtable, and that grew with every ship).
    tail: std::sync::Mutex<std::collections::VecDeque<(u64, AuditEvent)>>,
}

/// Most events kept in memory for the shipper; an older backlog is read from disk.
const TAIL_EVENTS_MAX: usize = 65_536;

/// The journal. Cheap to clone.
#[derive(Clone)]
pub struct AuditJournal {
    shared: Arc<Shared>,
    writer: Arc<Writer>,
}

/// The writer thread's queue and handle: when the last journal handle goes, the queue closes
/// and the thread is joined (so the database is closed when the store is dropped).
struct Writer {
    tx: Option<mpsc::Sender<Append>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl AuditJournal {
    /// Opens the journal in `db` (making its id on first use) and starts its writer thread.
    pub(crate) fn open(db: Arc<DB>, limits: JournalLimits) -> Result<Self, StoreError> {
        let c = cf(&db, CF_OUTBOX)?;
        let id = match db.get_cf(c, JOURNAL_ID_KEY)? {
            Some(v) => decode::<u64>(&v)?,
            None => {
                let id = loop {
                    let id: u64 = rand::random();
                    if id != 0 {
                        break id;
                    }
                };
                db.put_cf_opt(c, JOURNAL_ID_KEY, encode(&id)?, &synced())?;
                id
            }
        };
        let last = match db
            .iterator_cf(
                c,
                IteratorMode::From(&u64::MAX.to_be_bytes(), Direction::Reverse),
            )
            .next()
        {
            Some(item) => Some(seq_of(&item?.0)?),
            None => None,
        }
        .unwrap_or(0);
        let removed: u64 = match db.get_cf(c, JOURNAL_REMOVED_KEY)? {
            Some(v) => decode(&v)?,
            None => 0,
        };
        let last = last.max(removed);
        let first = match db.iterator_cf(c, IteratorMode::Start).next() {
            Some(item) => {
                let (k, _) = item?;
                if k.len() == 8 { seq_of(&k)? } else { last + 1 }
            }
            None => last + 1,
        };
        let shared = Arc::new(Shared {
            db,
            id,
            next_seq: AtomicU64::new(last + 1),
            removed_through: AtomicU64::new(first.saturating_sub(1)),
            written: Notify::new(),
            writes_total: AtomicU64::new(0),
            events_total: AtomicU64::new(0),
            written_at: std::sync::Mutex::new(if last >= first {
                [(last, std::time::Instant::now())].into()
            } else {
                Default::default()
            }),
            removed: tokio::sync::watch::Sender::new(first.saturating_sub(1)),
            tail: Default::default(),
        });
        let (tx, rx) = mpsc::channel(limits.queue_max.max(1));
        let writer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("audit-journal".into())
            .spawn(move || write_loop(writer, rx, limits))
            .map_err(|e| StoreError::Task(format!("starting the audit journal writer: {e}")))?;
        Ok(AuditJournal {
            shared,
            writer: Arc::new(Writer {
                tx: Some(tx),
                thread: Some(thread),
            }),
        })
    }

    /// This journal's id.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Records `events` durably (fsynced, group-committed with concurrent appends) and returns
    /// the journal seq of the first one.
    pub async fn append(&self, events: Vec<AuditEvent>) -> Result<u64, StoreError> {
        let (done, answer) = oneshot::channel();
        let stopped = || StoreError::Task("the audit journal writer has stopped".into());
        self.writer
            .tx
            .as_ref()
            .ok_or_else(stopped)?
            .send(Append { events, done })
            .await
            .map_err(|_| StoreError::Task("the audit journal writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Task("the audit journal writer has stopped".into()))?
    }

    /// Up to `limit` waiting events, oldest first, with their journal seqs (contiguous).
    pub fn pending(&self, limit: usize) -> Result<Vec<(u64, AuditEvent)>, StoreError> {
        let from = self.shared.removed_through.load(Ordering::SeqCst) + 1;
        if let Ok(tail) = self.shared.tail.lock()
            && let Some(front) = tail.front().map(|t| t.0)
            && front <= from
        {
            let skip = usize::try_from(from - front).unwrap_or(usize::MAX);
            return Ok(tail.iter().skip(skip).take(limit).cloned().collect());
        }
        if self.written_through() < from {
            return Ok(Vec::new());
        }
        let db = &self.shared.db;
        let c = cf(db, CF_OUTBOX)?;
        let mut out = Vec::new();
        let from = from.to_be_bytes();
        for item in db.iterator_cf(c, IteratorMode::From(&from, Direction::Forward)) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if k.len() != 8 {
                break;
            }
            let seq = seq_of(&k)?;
            // Invariant: the writer gives seqs in write order, so what is there is contiguous.
            debug_assert!(
                out.last()
                    .is_none_or(|(prev, _): &(u64, AuditEvent)| *prev + 1 == seq),
                "audit journal hole before seq {seq}"
            );
            out.push((seq, decode(&v)?));
        }
        Ok(out)
    }

    /// Removes every event up to and including `seq` (shipped and chained; a seq that
    /// [`AuditJournal::pending`] returned).
    pub fn remove_through(&self, seq: u64) -> Result<(), StoreError> {
        let db = &self.shared.db;
        let c = cf(db, CF_OUTBOX)?;
        let from = self.shared.removed_through.load(Ordering::SeqCst) + 1;
        if seq < from {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(c, from.to_be_bytes(), (seq + 1).to_be_bytes());
        // In the same batch: lost together with the deletion in a crash, or kept with it.
        batch.put_cf(c, JOURNAL_REMOVED_KEY, encode(&seq)?);
        db.write_opt(batch, &unsynced())?;
        self.shared.removed_through.fetch_max(seq, Ordering::SeqCst);
        if let Ok(mut w) = self.shared.written_at.lock() {
            while w.front().is_some_and(|(last, _)| *last <= seq) {
                w.pop_front();
            }
        }
        if let Ok(mut t) = self.shared.tail.lock() {
            while t.front().is_some_and(|(s, _)| *s <= seq) {
                t.pop_front();
            }
        }
        self.shared.removed.send_modify(|r| *r = (*r).max(seq));
        Ok(())
    }

    /// How long the oldest waiting event has waited (zero when none waits).
    pub fn oldest_age(&self) -> std::time::Duration {
        match self.shared.written_at.lock() {
            Ok(w) => w.front().map(|(_, at)| at.elapsed()).unwrap_or_default(),
            Err(_) => std::time::Duration::ZERO,
        }
    }

    /// Waits until every event up to `seq` has been shipped and removed, at most `timeout`;
    /// false on timeout.
    pub async fn wait_removed(&self, seq: u64, timeout: std::time::Duration) -> bool {
        let mut rx = self.shared.removed.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= seq))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The newest seq written (0: none yet).
    pub fn written_through(&self) -> u64 {
        self.shared.next_seq.load(Ordering::SeqCst) - 1
    }

    /// Events written and not yet removed.
    pub fn depth(&self) -> u64 {
        depth(&self.shared)
    }

    /// Synced writes made since start, and the events in them.
    pub fn write_counts(&self) -> (u64, u64) {
        (
            self.shared.writes_total.load(Ordering::Relaxed),
            self.shared.events_total.load(Ordering::Relaxed),
        )
    }

    /// Waits until the next write (or `timeout`).
    pub async fn written(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.shared.written.notified()).await;
    }
}

fn depth(s: &Shared) -> u64 {
    (s.next_seq.load(Ordering::SeqCst) - 1).saturating_sub(s.removed_through.load(Ordering::SeqCst))
}

/// The writer thread: takes every queued append, gives their events seqs in order, writes
/// them as one synced batch, answers them.
fn write_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<Append>, limits: JournalLimits) {
    let mut group: Vec<Append> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut events = first.events.len();
        group.push(first);
        while events < limits.group_events_max {
            match rx.try_recv() {
                Ok(a) => {
                    events += a.events.len();
                    group.push(a);
                }
                Err(_) => break,
            }
        }
        write_group(&shared, &mut group, limits.events_max);
    }
}

fn write_group(shared: &Shared, group: &mut Vec<Append>, events_max: u64) {
    let start = shared.next_seq.load(Ordering::SeqCst);
    let mut next = start;
    let mut batch = WriteBatch::default();
    let mut taken: Vec<(Append, u64)> = Vec::with_capacity(group.len());
    let prepared: Result<(), StoreError> = (|| {
        let c = cf(&shared.db, CF_OUTBOX)?;
        let room = events_max.saturating_sub(depth(shared));
        for mut a in group.drain(..) {
            let n = a.events.len() as u64;
            if n == 0 {
                let _ = a
                    .done
                    .send(Err(StoreError::Task("an empty audit append".into())));
                continue;
            }
            if next - start + n > room {
                let _ = a.done.send(Err(StoreError::JournalFull(events_max)));
                continue;
            }
            for (i, e) in a.events.iter_mut().enumerate() {
                let seq = next + i as u64;
                // A node-made event carries its journal seq into the chain, where it makes
                // the event's origin unique (`ServedBy`).
                if let Some(by) = &mut e.served_by {
                    by.journal = shared.id;
                    by.journal_seq = seq;
                }
                batch.put_cf(c, seq.to_be_bytes(), encode(e)?);
            }
            taken.push((a, next));
            next += n;
        }
        if next > start {
            shared.db.write_opt(std::mem::take(&mut batch), &synced())?;
        }
        Ok(())
    })();
    match prepared {
        Ok(()) => {
            shared.next_seq.store(next, Ordering::SeqCst);
            if next > start {
                if let Ok(mut w) = shared.written_at.lock() {
                    w.push_back((next - 1, std::time::Instant::now()));
                }
                if let Ok(mut t) = shared.tail.lock() {
                    for (a, first) in &mut taken {
                        let first = *first;
                        let events = std::mem::take(&mut a.events);
                        t.extend(
                            events
                                .into_iter()
                                .enumerate()
                                .map(|(i, e)| (first + i as u64, e)),
                        );
                    }
                    while t.len() > TAIL_EVENTS_MAX {
                        t.pop_front();
                    }
                }
                shared.writes_total.fetch_add(1, Ordering::Relaxed);
                shared
                    .events_total
                    .fetch_add(next - start, Ordering::Relaxed);
                shared.written.notify_one();
            }
            for (a, first) in taken {
                let _ = a.done.send(Ok(first));
            }
        }
        Err(e) => {
            // Nothing of this group is durable: its seqs are given again to the next group.
            tracing::error!(error = %e, "audit journal write failed");
            for (a, _) in taken {
                let _ = a
                    .done
                    .send(Err(StoreError::Task(format!("audit journal write: {e}"))));
            }
        }
    }
}

fn seq_of(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StoreError::Corrupt("bad audit journal key".into()))?;
    Ok(u64::from_be_bytes(bytes))
}
