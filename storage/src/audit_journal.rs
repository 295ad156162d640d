//! This node's audit journal: the audit events of the reads (and decisions, and writes about a
//! patient) this node answered, fsynced here before the answer left, waiting to be shipped
//! into the replicated, hash-chained audit log.
//!
//! **Contract** (the node's audit layer builds its guarantee on it, see `kartotek_node::audit`):
//! [`AuditJournal::append`] returns only after the events are written **and synced** to this
//! node's disk (`O_DIRECT | O_DSYNC` writes of preallocated segment files, see
//! [`crate::journal_file`]; not RocksDB, whose WAL the Raft log syncs too), so they survive
//! kill -9 and power loss of this node. Appends are group-committed: one writer thread takes
//! every append queued while the previous write ran and writes them as one synced write, so N
//! concurrent reads cost one device flush, not N.
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
//! most `group_events_max` events. With `gather` set, a writer that found more than one append
//! waiting waits that long for more before its write (one synced write for more callers; a
//! lone caller is never delayed), so an answer waits at most `gather` longer.
//!
//! **Seqs are never given twice.** The chain skips every seq at or below its watermark for
//! this journal, so a seq given again would be an event silently dropped. Removal writes the
//! newest removed seq (`JOURNAL_REMOVED_KEY`) in the same batch as the deletion, and opening
//! continues after the greater of it and the newest event still there: a journal emptied by
//! its shipper and then restarted goes on from where it was, not from 1.
//!
//! Files: `<data dir>/journal/` ([`crate::journal_file`]). A data directory of a version that
//! kept the journal in the `outbox` column family has its waiting events, its id and its
//! removal mark moved into the files at the first open (the id file is written last, so a
//! move cut short is done again from the start).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kartotek_domain::AuditEvent;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::codec::{decode, encode};
use crate::db::{cf, synced};
use crate::error::StoreError;
use crate::journal_file::{
    self, JournalFiles, RECORD_PAYLOAD_BYTES_MAX, RemovedMarker, encode_record, record_bytes,
};
use crate::keys::CF_OUTBOX;

/// Key of the journal's id in the `outbox` family of older versions.
const JOURNAL_ID_KEY: &[u8] = b"\xff\xff\xff\xff\xff\xff\xff\xffid";
/// Key of the newest removed seq there.
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
    /// Size of a journal segment file (at least
    /// 2 × 264 KiB, room for two of the largest records).
    pub segment_bytes: u64,
    /// How long the writer waits for more appends before a write when more than one was
    /// already waiting (zero: never waits; see [`gathers`]).
    pub gather: std::time::Duration,
}

impl Default for JournalLimits {
    fn default() -> Self {
        JournalLimits {
            events_max: 1_000_000,
            queue_max: 4_096,
            group_events_max: 4_096,
            segment_bytes: 8 << 20,
            gather: std::time::Duration::ZERO,
        }
    }
}

struct Append {
    events: Vec<AuditEvent>,
    done: oneshot::Sender<Result<u64, StoreError>>,
}

struct Shared {
    /// The journal's directory (backlog reads).
    dir: PathBuf,
    /// Where removals are recorded.
    removed_marker: RemovedMarker,
    /// A write failed part way: no more appends (see `write_group`).
    failed: std::sync::atomic::AtomicBool,
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
    /// from memory; an older backlog is read from the segment files.
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
    /// Opens the journal in `dir` (making it and its id on first use, or moving an older
    /// version's journal out of `db`'s `outbox` family) and starts its writer thread.
    pub(crate) fn open(db: &DB, dir: &Path, limits: JournalLimits) -> Result<Self, StoreError> {
        let old = if journal_file::has_id(dir)? {
            None
        } else {
            let old = read_outbox(db)?;
            journal_file::reset(dir, old.as_ref().map(|o| o.first_seq - 1).unwrap_or(0))?;
            old
        };
        let opened = JournalFiles::open(dir, limits.segment_bytes)?;
        let mut files = opened.files;
        let mut next_seq = opened.next_seq;
        let mut records = opened.records;
        // Invariant: what was read back lies past the removal mark.
        debug_assert!(
            records
                .first()
                .is_none_or(|(first, _)| *first > opened.removed)
        );
        let id = match (opened.id, old) {
            (Some(id), _) => id,
            (None, old) => {
                let id = match &old {
                    Some(o) => o.id,
                    None => loop {
                        let id: u64 = rand::random();
                        if id != 0 {
                            break id;
                        }
                    },
                };
                if let Some(o) = old {
                    // Invariant: the new files start where the old journal's events do.
                    assert_eq!(next_seq, o.first_seq, "moved journal out of step");
                    let mut buf = Vec::new();
                    for (seq, payload) in o.events {
                        if buf.len() + record_bytes(payload.len()) + journal_file::BLOCK_BYTES
                            > files.room() as usize
                        {
                            files.write_synced(&std::mem::take(&mut buf))?;
                            files.rotate(seq, 0)?;
                        }
                        encode_record(&mut buf, seq, &payload);
                        records.push((seq, payload));
                        next_seq = seq + 1;
                    }
                    if !buf.is_empty() {
                        files.write_synced(&buf)?;
                    }
                }
                // The commit point of a new (or moved) journal.
                files.set_id(id)?;
                id
            }
        };
        clear_outbox(db)?;
        let removed = match records.first() {
            Some((first, _)) => first - 1,
            None => next_seq - 1,
        };
        let removed_marker = files.removed_marker()?;
        let tail: std::collections::VecDeque<(u64, AuditEvent)> = records
            .iter()
            .rev()
            .take(TAIL_EVENTS_MAX)
            .rev()
            .map(|(seq, payload)| Ok((*seq, decode(payload)?)))
            .collect::<Result<_, StoreError>>()?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            removed_marker,
            failed: std::sync::atomic::AtomicBool::new(false),
            id,
            next_seq: AtomicU64::new(next_seq),
            removed_through: AtomicU64::new(removed),
            written: Notify::new(),
            writes_total: AtomicU64::new(0),
            events_total: AtomicU64::new(0),
            written_at: std::sync::Mutex::new(if next_seq - 1 > removed {
                [(next_seq - 1, std::time::Instant::now())].into()
            } else {
                Default::default()
            }),
            removed: tokio::sync::watch::Sender::new(removed),
            tail: std::sync::Mutex::new(tail),
        });
        let (tx, rx) = mpsc::channel(limits.queue_max.max(1));
        let writer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("audit-journal".into())
            .spawn(move || write_loop(writer, files, rx, limits))
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
        let mut out = Vec::new();
        for (seq, payload) in journal_file::read_from(&self.shared.dir, from, limit)? {
            // Invariant: the writer gives seqs in write order, so what is there is contiguous.
            debug_assert!(
                out.last()
                    .is_none_or(|(prev, _): &(u64, AuditEvent)| *prev + 1 == seq),
                "audit journal hole before seq {seq}"
            );
            out.push((seq, decode(&payload)?));
        }
        Ok(out)
    }

    /// Removes every event up to and including `seq` (shipped and chained; a seq that
    /// [`AuditJournal::pending`] returned).
    pub fn remove_through(&self, seq: u64) -> Result<(), StoreError> {
        let from = self.shared.removed_through.load(Ordering::SeqCst) + 1;
        if seq < from {
            return Ok(());
        }
        // Invariant: only what was written can have been shipped.
        debug_assert!(
            seq <= self.written_through(),
            "removing unwritten seq {seq}"
        );
        // Segments holding only removed events are reused by the writer at its next
        // rotation; the marker (unsynced) keeps a restart from shipping them again.
        self.shared.removed_marker.mark(seq)?;
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
/// them as one synced write, answers them.
fn write_loop(
    shared: Arc<Shared>,
    mut files: JournalFiles,
    mut rx: mpsc::Receiver<Append>,
    limits: JournalLimits,
) {
    let mut group: Vec<Append> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut events = first.events.len();
        group.push(first);
        drain(&mut rx, &mut group, &mut events, limits.group_events_max);
        if gathers(limits.gather, group.len(), events, limits.group_events_max) {
            std::thread::sleep(limits.gather);
            drain(&mut rx, &mut group, &mut events, limits.group_events_max);
        }
        write_group(&shared, &mut files, &mut group, limits.events_max);
    }
}

/// Moves the appends already queued into `group`, up to `group_events_max` events.
fn drain(
    rx: &mut mpsc::Receiver<Append>,
    group: &mut Vec<Append>,
    events: &mut usize,
    group_events_max: usize,
) {
    while *events < group_events_max {
        match rx.try_recv() {
            Ok(a) => {
                *events += a.events.len();
                group.push(a);
            }
            Err(_) => break,
        }
    }
}

/// Whether the writer waits `gather` for more appends before writing a group of `appends`
/// appends holding `events` events: only when gathering is on, the group has room, and more
/// than one append was already waiting. That is a sign of concurrent callers, who then share
/// one synced write; a lone caller (one append) is written at once and never pays the wait.
fn gathers(gather: std::time::Duration, appends: usize, events: usize, events_max: usize) -> bool {
    !gather.is_zero() && appends > 1 && events < events_max
}

fn write_group(
    shared: &Shared,
    files: &mut JournalFiles,
    group: &mut Vec<Append>,
    events_max: u64,
) {
    if shared.failed.load(Ordering::Acquire) {
        for a in group.drain(..) {
            let _ = a.done.send(Err(StoreError::Task(
                "the audit journal failed a write; restart the node".into(),
            )));
        }
        return;
    }
    let start = shared.next_seq.load(Ordering::SeqCst);
    let mut next = start;
    // Each taken append with its first seq and its events' encodings.
    let mut taken: Vec<(Append, u64, Vec<Vec<u8>>)> = Vec::with_capacity(group.len());
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
        let encoded: Result<Vec<Vec<u8>>, StoreError> = a
            .events
            .iter_mut()
            .enumerate()
            .map(|(i, e)| {
                // A node-made event carries its journal seq into the chain, where it makes
                // the event's origin unique (`ServedBy`).
                if let Some(by) = &mut e.served_by {
                    by.journal = shared.id;
                    by.journal_seq = next + i as u64;
                }
                let payload = encode(e)?;
                if payload.len() > RECORD_PAYLOAD_BYTES_MAX {
                    return Err(StoreError::Task(format!(
                        "an audit event of {} bytes (at most {RECORD_PAYLOAD_BYTES_MAX})",
                        payload.len()
                    )));
                }
                Ok(payload)
            })
            .collect();
        match encoded {
            Ok(encoded) => {
                taken.push((a, next, encoded));
                next += n;
            }
            Err(e) => {
                let _ = a.done.send(Err(e));
            }
        }
    }
    if taken.is_empty() {
        return;
    }
    // The write (or, for a group larger than a segment, the writes: each fills a segment
    // and the next starts a new one at its first seq).
    let mut written_bytes = 0usize;
    let result: Result<(), StoreError> = (|| {
        let total: usize = taken
            .iter()
            .flat_map(|t| t.2.iter())
            .map(|p| record_bytes(p.len()))
            .sum();
        if total.next_multiple_of(journal_file::BLOCK_BYTES) as u64 > files.room() {
            // Nothing of the group is written yet, so a failure here costs no seq.
            files.rotate(start, shared.removed_through.load(Ordering::SeqCst))?;
        }
        let mut buf: Vec<u8> = Vec::with_capacity(total.min(files.segment_bytes() as usize));
        for (_, first, encoded) in &taken {
            for (i, payload) in encoded.iter().enumerate() {
                let seq = first + i as u64;
                if buf.len() + record_bytes(payload.len()) + journal_file::BLOCK_BYTES
                    > files.room() as usize
                {
                    files.write_synced(&buf)?;
                    written_bytes += buf.len();
                    buf.clear();
                    files.rotate(seq, shared.removed_through.load(Ordering::SeqCst))?;
                }
                encode_record(&mut buf, seq, payload);
            }
        }
        files.write_synced(&buf)?;
        written_bytes += buf.len();
        Ok(())
    })();
    match result {
        Ok(()) => {
            shared.next_seq.store(next, Ordering::SeqCst);
            if let Ok(mut w) = shared.written_at.lock() {
                w.push_back((next - 1, std::time::Instant::now()));
            }
            if let Ok(mut t) = shared.tail.lock() {
                for (a, first, _) in &mut taken {
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
            for (a, first, _) in taken {
                let _ = a.done.send(Ok(first));
            }
        }
        Err(e) => {
            // Nothing of this group is acknowledged. If none of it reached the disk its seqs
            // are given again to the next group; if part of it may have (a write, then a
            // failed one), the journal stops taking appends until the node restarts and
            // reads back what is really there (a seq given twice would be an event the
            // chain drops).
            if written_bytes > 0 {
                shared.failed.store(true, Ordering::Release);
                tracing::error!(error = %e, "audit journal write failed part way; no more appends until a restart");
            } else {
                tracing::error!(error = %e, "audit journal write failed");
            }
            for (a, _, _) in taken {
                let _ = a
                    .done
                    .send(Err(StoreError::Task(format!("audit journal write: {e}"))));
            }
        }
    }
}

/// The journal an older version kept in the `outbox` family, if any.
struct OldOutbox {
    id: u64,
    /// The seq of its first waiting event (the newest removed + 1 when none waits).
    first_seq: u64,
    events: Vec<(u64, Vec<u8>)>,
}

fn read_outbox(db: &DB) -> Result<Option<OldOutbox>, StoreError> {
    let c = cf(db, CF_OUTBOX)?;
    let Some(id) = db.get_cf(c, JOURNAL_ID_KEY)? else {
        return Ok(None);
    };
    let id: u64 = decode(&id)?;
    let removed: u64 = match db.get_cf(c, JOURNAL_REMOVED_KEY)? {
        Some(v) => decode(&v)?,
        None => 0,
    };
    let mut events = Vec::new();
    for item in db.iterator_cf(c, IteratorMode::From(&[], Direction::Forward)) {
        let (k, v) = item?;
        if k.len() != 8 {
            break;
        }
        events.push((seq_of(&k)?, v.to_vec()));
    }
    let last = events.last().map(|e| e.0).unwrap_or(0).max(removed);
    let first_seq = events.first().map(|e| e.0).unwrap_or(last + 1);
    // Invariant: the old journal's events were contiguous.
    debug_assert!(
        events.windows(2).all(|w| w[0].0 + 1 == w[1].0),
        "old audit journal with a hole"
    );
    Ok(Some(OldOutbox {
        id,
        first_seq,
        events,
    }))
}

/// Removes what an older version kept in the `outbox` family (once it is in the files).
fn clear_outbox(db: &DB) -> Result<(), StoreError> {
    let c = cf(db, CF_OUTBOX)?;
    if db.iterator_cf(c, IteratorMode::Start).next().is_none() {
        return Ok(());
    }
    let mut batch = WriteBatch::default();
    batch.delete_range_cf(c, &[][..], &[0xffu8; 17][..]);
    db.write_opt(batch, &synced())?;
    Ok(())
}

fn seq_of(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StoreError::Corrupt("bad audit journal key".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::gathers;
    use std::time::Duration;

    #[test]
    fn only_a_group_of_concurrent_appends_with_room_waits() {
        let g = Duration::from_micros(150);
        assert!(gathers(g, 2, 2, 4_096));
        assert!(!gathers(g, 1, 1, 4_096), "a lone caller is written at once");
        assert!(
            !gathers(g, 1, 500, 4_096),
            "one large append is written at once"
        );
        assert!(
            !gathers(g, 8, 4_096, 4_096),
            "a full group is written at once"
        );
        assert!(!gathers(Duration::ZERO, 8, 8, 4_096), "off by default");
    }
}
