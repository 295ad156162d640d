//! The Raft log on RocksDB, with group commit.
//!
//! `append` writes all given entries in one WriteBatch (visible to readers at once, as openraft
//! requires) and hands openraft's flush callback to the *flusher*, a dedicated thread. The
//! flusher takes every callback queued so far, fsyncs the WAL once, and only then reports those
//! appends as flushed. While one fsync runs, new appends queue up and share the next one, so
//! under load the fsync rate, not the request rate, bounds the write path.
//!
//! The vote and truncations are written with a synced write before the call returns.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::Instant;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageError};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use tokio::sync::mpsc;

use crate::codec::{decode, encode};
use crate::db::{cf, synced, unsynced};
use crate::error::StoreError;
use crate::keys::{
    CF_LOG, CF_RAFT, RAFT_COMMITTED, RAFT_LAST_PURGED, RAFT_VOTE, log_index, log_key,
};
use crate::stats::StorageStats;
use crate::types::{Entry, LogId, NodeId, TypeConfig, Vote};

/// Most appends waiting for the flusher before `append` itself waits (back-pressure).
pub const FLUSH_QUEUE_MAX: usize = 4096;

/// The Raft log store. Cheap to clone; clones share the database and the flusher.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    flusher: Arc<Flusher>,
    stats: Arc<StorageStats>,
}

/// The flusher thread and its queue. Dropping the last handle closes the queue and joins the
/// thread, so the database is released when the store is.
struct Flusher {
    tx: Option<mpsc::Sender<LogFlushed<TypeConfig>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl LogStore {
    /// Creates the log store over an open database and starts its flusher thread.
    pub fn new(db: Arc<DB>, stats: Arc<StorageStats>) -> Result<Self, StoreError> {
        let (flush_tx, flush_rx) = mpsc::channel(FLUSH_QUEUE_MAX);
        let flusher_db = db.clone();
        let flusher_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("kartotek-log-flusher".into())
            .spawn(move || run_flusher(flusher_db, flush_rx, flusher_stats))?;
        Ok(LogStore {
            db,
            flusher: Arc::new(Flusher {
                tx: Some(flush_tx),
                thread: Some(thread),
            }),
            stats,
        })
    }

    fn get_raft<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let raft = cf(&self.db, CF_RAFT)?;
        match self.db.get_pinned_cf(raft, key)? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    fn last_log_id(&self) -> Result<Option<LogId>, StoreError> {
        let log = cf(&self.db, CF_LOG)?;
        let mut it = self.db.iterator_cf(log, IteratorMode::End);
        match it.next() {
            Some(item) => {
                let (_, v) = item?;
                let entry: Entry = decode(&v)?;
                Ok(Some(entry.log_id))
            }
            None => Ok(None),
        }
    }

    fn read_range(&self, start: u64, end: Bound<u64>) -> Result<Vec<Entry>, StoreError> {
        let log = cf(&self.db, CF_LOG)?;
        let start_key = log_key(start);
        let it = self
            .db
            .iterator_cf(log, IteratorMode::From(&start_key, Direction::Forward));
        let mut out = Vec::new();
        let mut expected: Option<u64> = None;
        for item in it {
            let (k, v) = item?;
            let index = log_index(&k)
                .ok_or_else(|| StoreError::Corrupt("log key is not 8 bytes".into()))?;
            let in_range = match end {
                Bound::Included(e) => index <= e,
                Bound::Excluded(e) => index < e,
                Bound::Unbounded => true,
            };
            if !in_range {
                break;
            }
            // The log never has holes: a gap here is a bug or corruption.
            if expected.is_some_and(|e| e != index) {
                return Err(StoreError::Corrupt(format!(
                    "hole in the log before index {index}"
                )));
            }
            let entry: Entry = decode(&v)?;
            debug_assert_eq!(
                entry.log_id.index, index,
                "log entry stored under wrong key"
            );
            out.push(entry);
            expected = Some(index.saturating_add(1));
        }
        Ok(out)
    }
}

/// The log indexes a purge up to `log_id` deletes, as a half-open range `[from, to)`: from
/// the entry after the previous purge point (`previous`, persisted in the `raft` family), or
/// from 0 when nothing was purged yet, through `log_id`. `None` when there is nothing new to
/// delete. Everything up to `previous` is already gone, so starting there again would only
/// pile one more range tombstone over the whole purged prefix on every purge.
fn purge_range(previous: Option<&LogId>, log_id: &LogId) -> Option<(u64, u64)> {
    let from = previous.map_or(0, |p| p.index.saturating_add(1));
    let to = log_id.index.saturating_add(1);
    (from < to).then_some((from, to))
}

/// The flusher: one WAL fsync for every group of queued appends.
fn run_flusher(
    db: Arc<DB>,
    mut rx: mpsc::Receiver<LogFlushed<TypeConfig>>,
    stats: Arc<StorageStats>,
) {
    let mut group = Vec::with_capacity(64);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < FLUSH_QUEUE_MAX {
            match rx.try_recv() {
                Ok(cb) => group.push(cb),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let result = db.flush_wal(true);
        stats.observe_wal_sync(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        for cb in group.drain(..) {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            cb.log_io_completed(r);
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "WAL fsync failed; the node can no longer acknowledge writes");
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = range.end_bound().cloned();
        self.read_range(start, end).map_err(StoreError::read_logs)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged: Option<LogId> = self
            .get_raft(RAFT_LAST_PURGED)
            .map_err(StoreError::read_logs)?;
        let last = self.last_log_id().map_err(StoreError::read_logs)?;
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError<NodeId>> {
        let res = (|| {
            let raft = cf(&self.db, CF_RAFT)?;
            self.db
                .put_cf_opt(raft, RAFT_VOTE, encode(vote)?, &synced())?;
            Ok::<_, StoreError>(())
        })();
        res.map_err(StoreError::write_vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError<NodeId>> {
        self.get_raft(RAFT_VOTE).map_err(StoreError::read_vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId>,
    ) -> Result<(), StorageError<NodeId>> {
        let res = (|| {
            let raft = cf(&self.db, CF_RAFT)?;
            self.db
                .put_cf_opt(raft, RAFT_COMMITTED, encode(&committed)?, &unsynced())?;
            Ok::<_, StoreError>(())
        })();
        res.map_err(StoreError::write_logs)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError<NodeId>> {
        let v: Option<Option<LogId>> = self
            .get_raft(RAFT_COMMITTED)
            .map_err(StoreError::read_logs)?;
        Ok(v.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let res = (|| {
            let log = cf(&self.db, CF_LOG)?;
            let mut batch = WriteBatch::default();
            let mut n = 0u64;
            for entry in entries {
                batch.put_cf(log, log_key(entry.log_id.index), encode(&entry)?);
                n += 1;
            }
            self.db.write_opt(batch, &unsynced())?;
            StorageStats::add(&self.stats.append_batches_total, 1);
            StorageStats::add(&self.stats.appended_entries_total, n);
            Ok::<_, StoreError>(())
        })();
        res.map_err(StoreError::write_logs)?;
        // Durable only once the flusher has synced the WAL; openraft waits for the callback.
        let stopped = || StoreError::Task("log flusher stopped".into()).write_logs();
        match &self.flusher.tx {
            Some(tx) => tx.send(callback).await.map_err(|_| stopped()),
            None => Err(stopped()),
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError<NodeId>> {
        let res = (|| {
            let log = cf(&self.db, CF_LOG)?;
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(log, log_key(log_id.index), log_key(u64::MAX));
            batch.delete_cf(log, log_key(u64::MAX));
            self.db.write_opt(batch, &synced())?;
            Ok::<_, StoreError>(())
        })();
        res.map_err(StoreError::write_logs)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError<NodeId>> {
        let res = (|| {
            let log = cf(&self.db, CF_LOG)?;
            let raft = cf(&self.db, CF_RAFT)?;
            let previous: Option<LogId> = self.get_raft(RAFT_LAST_PURGED)?;
            let mut batch = WriteBatch::default();
            batch.put_cf(raft, RAFT_LAST_PURGED, encode(&log_id)?);
            if let Some((from, to)) = purge_range(previous.as_ref(), &log_id) {
                batch.delete_range_cf(log, log_key(from), log_key(to));
            }
            // Not synced: if lost in a crash, the purged entries reappear together with the
            // older last-purged id, which is consistent.
            self.db.write_opt(batch, &unsynced())?;
            Ok::<_, StoreError>(())
        })();
        res.map_err(StoreError::write_logs)
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    #[test]
    fn purge_range_starts_after_the_previous_purge_point() {
        assert_eq!(purge_range(None, &log_id(0)), Some((0, 1)));
        assert_eq!(purge_range(None, &log_id(9)), Some((0, 10)));
        assert_eq!(purge_range(Some(&log_id(9)), &log_id(20)), Some((10, 21)));
        assert_eq!(purge_range(Some(&log_id(20)), &log_id(21)), Some((21, 22)));
        // Nothing new: no range tombstone at all.
        assert_eq!(purge_range(Some(&log_id(20)), &log_id(20)), None);
        assert_eq!(purge_range(Some(&log_id(20)), &log_id(5)), None);
    }

    /// A purge deletes only what lies after the previous purge point: a key planted below it
    /// (which no real log has) survives the next purge. A purge from index 0 deletes it.
    #[tokio::test]
    async fn purge_deletes_only_from_the_previous_purge_point() {
        let dir = tempfile::TempDir::new().unwrap();
        let db = crate::db::open(&dir.path().join("db"), 1 << 20).unwrap();
        let mut store = LogStore::new(db.clone(), Arc::new(StorageStats::default())).unwrap();
        let log = cf(&db, CF_LOG).unwrap();
        for i in 1..=30u64 {
            db.put_cf(log, log_key(i), b"x").unwrap();
        }
        store.purge(log_id(10)).await.unwrap();
        assert!(db.get_cf(log, log_key(10)).unwrap().is_none());
        assert!(db.get_cf(log, log_key(11)).unwrap().is_some());

        db.put_cf(log, log_key(5), b"planted").unwrap();
        store.purge(log_id(20)).await.unwrap();
        assert_eq!(
            db.get_cf(log, log_key(5)).unwrap().as_deref(),
            Some(&b"planted"[..]),
            "the second purge deleted below the first purge point"
        );
        for i in 11..=20u64 {
            assert!(db.get_cf(log, log_key(i)).unwrap().is_none(), "{i} kept");
        }
        assert!(db.get_cf(log, log_key(21)).unwrap().is_some());
        let purged: Option<LogId> = store.get_raft(RAFT_LAST_PURGED).unwrap();
        assert_eq!(purged, Some(log_id(20)));
    }
}
