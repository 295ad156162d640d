//! The replicated state machine on RocksDB.
//!
//! Every log entry is applied in its own WriteBatch that also carries the new last-applied log
//! id (and membership, revision and clock), so a crash can never leave data and "how far we
//! applied" out of step. Batches are not synced: they share the WAL with the log, whose fsync
//! (by the log flusher) covers them, and anything lost is re-applied from the log.
//!
//! Applying an entry reads only what earlier entries wrote, never anything that depends on how
//! entries were grouped into `apply` calls, so every replica computes the same state.
//!
//! Exactly-once writes: a command with a request id stores its [`Response`] in the dedup table;
//! the same id again gets that response back without being applied. The table is bounded by
//! age (`dedup_ttl_ms`, measured in leader-stamped time) and size (`dedup_entries_max`); both
//! evictions happen during apply, so all replicas evict the same entries.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kartotek_domain::locator::{apply_compare_and_register, apply_register, apply_retire};
use kartotek_domain::{
    ApplyError, Change, ChangeEvent, Command, LocatorEntry, Op, Outcome, RequestId, Response,
    Timestamp,
};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageError};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{decode, encode};
use crate::db::{cf, prefix_read_options, unsynced};
use crate::error::StoreError;
use crate::keys::*;
use crate::snapshot_store::SnapshotStore;
use crate::stats::StorageStats;
use crate::types::{Entry, LogId, NodeId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

/// State machine settings.
#[derive(Debug, Clone)]
pub struct StateMachineConfig {
    /// How long (leader time) a request id is remembered for deduplication.
    pub dedup_ttl_ms: i64,
    /// Most request ids remembered; the oldest are forgotten first.
    pub dedup_entries_max: u64,
    /// Most expired dedup entries removed while applying one entry (bounds apply latency).
    pub dedup_evictions_per_entry_max: usize,
    /// Most change events kept for the watch feed; older ones are compacted (a watch from a
    /// compacted revision is refused).
    pub change_history_max: u64,
}

impl Default for StateMachineConfig {
    fn default() -> Self {
        StateMachineConfig {
            dedup_ttl_ms: 10 * 60 * 1000,
            dedup_entries_max: 1_000_000,
            dedup_evictions_per_entry_max: 64,
            change_history_max: 1_000_000,
        }
    }
}

/// The state machine. openraft owns it; reads go through [`crate::StateReader`].
pub struct StateMachine {
    db: Arc<DB>,
    config: StateMachineConfig,
    snapshots: SnapshotStore,
    stats: Arc<StorageStats>,
    revisions: tokio::sync::watch::Sender<u64>,
    /// Where the next dedup eviction scan starts: the stamp of the last evicted entry (0 after
    /// start or a snapshot install). Every evicted `T` key is a point tombstone until RocksDB
    /// compacts it away; a scan from the start of the table would step over all of them on
    /// every applied entry, which made apply cost grow with the number of writes since the
    /// first eviction (measured: 100x slower after 10 minutes of benchmark load).
    dedup_scan_from_stamp: AtomicU64,
}

/// Reads a meta value from the `sm` family.
fn get_sm<T: DeserializeOwned>(db: &DB, key: &[u8]) -> Result<Option<T>, StoreError> {
    let sm = cf(db, CF_SM)?;
    match db.get_pinned_cf(sm, key)? {
        Some(v) => Ok(Some(decode(&v)?)),
        None => Ok(None),
    }
}

/// One entry's writes: they go to one batch, and reads see them (read-your-writes within the
/// entry) before falling back to the database.
pub(crate) struct EntryTxn<'a> {
    db: &'a DB,
    batch: WriteBatch,
    written: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> EntryTxn<'a> {
    fn new(db: &'a DB) -> Self {
        EntryTxn {
            db,
            batch: WriteBatch::default(),
            written: HashMap::new(),
        }
    }

    pub(crate) fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.written.get(key) {
            Some(Some(v)) => Ok(Some(decode(v)?)),
            Some(None) => Ok(None),
            None => get_sm(self.db, key),
        }
    }

    pub(crate) fn put<T: Serialize>(&mut self, key: &[u8], value: &T) -> Result<(), StoreError> {
        self.put_raw(key, &encode(value)?)
    }

    pub(crate) fn put_raw(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let sm = cf(self.db, CF_SM)?;
        self.batch.put_cf(sm, key, value);
        self.written.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    pub(crate) fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        let sm = cf(self.db, CF_SM)?;
        self.batch.delete_cf(sm, key);
        self.written.insert(key.to_vec(), None);
        Ok(())
    }
}

/// Moves the revision by one for a change and stores the change event under it.
pub(crate) fn record_change(
    txn: &mut EntryTxn<'_>,
    meta: &mut Meta,
    now: Timestamp,
    change: Change,
) -> Result<(), StoreError> {
    meta.revision += 1;
    let event = ChangeEvent {
        revision: meta.revision,
        at: now,
        change,
    };
    txn.put(&change_key(meta.revision), &event)
}

/// Writes a locator entry a command produced (and its by-org index key when `index`), and
/// records the change when there was one.
fn store_locator(
    txn: &mut EntryTxn<'_>,
    meta: &mut Meta,
    now: Timestamp,
    entry: &LocatorEntry,
    changed: bool,
    index: bool,
) -> Result<(), StoreError> {
    if !changed {
        return Ok(());
    }
    // Invariant: a changed entry carries the revision its change is recorded under.
    assert_eq!(
        entry.mod_revision,
        meta.revision + 1,
        "locator entry revision out of step with the state revision"
    );
    txn.put(&locator_key(&entry.key), entry)?;
    if index {
        txn.put_raw(&locator_org_index_key(&entry.key), &[])?;
    }
    record_change(txn, meta, now, Change::Locator(entry.clone()))
}

/// The state-machine meta values carried from entry to entry.
pub(crate) struct Meta {
    applied: Option<LogId>,
    pub(crate) revision: u64,
    clock: Timestamp,
    dedup_count: u64,
    compacted: u64,
}

impl StateMachine {
    pub(crate) fn new(
        db: Arc<DB>,
        config: StateMachineConfig,
        snapshot_dir: PathBuf,
        stats: Arc<StorageStats>,
        revisions: tokio::sync::watch::Sender<u64>,
    ) -> Self {
        let snapshots = SnapshotStore::new(db.clone(), snapshot_dir, stats.clone());
        StateMachine {
            db,
            config,
            snapshots,
            stats,
            revisions,
            dedup_scan_from_stamp: AtomicU64::new(0),
        }
    }

    /// Tells watchers the revision the state has now reached.
    fn notify(&self) -> Result<(), StoreError> {
        let revision: u64 = get_sm(&self.db, SM_REVISION)?.unwrap_or(0);
        self.revisions.send_replace(revision);
        Ok(())
    }

    pub(crate) fn snapshots(&self) -> &SnapshotStore {
        &self.snapshots
    }

    fn read_meta(&self) -> Result<Meta, StoreError> {
        Ok(Meta {
            applied: get_sm::<Option<LogId>>(&self.db, SM_APPLIED)?.flatten(),
            revision: get_sm(&self.db, SM_REVISION)?.unwrap_or(0),
            clock: get_sm(&self.db, SM_CLOCK)?.unwrap_or_default(),
            dedup_count: get_sm(&self.db, SM_DEDUP_COUNT)?.unwrap_or(0),
            compacted: get_sm(&self.db, SM_COMPACTED)?.unwrap_or(0),
        })
    }

    fn apply_entry(&self, meta: &mut Meta, entry: &Entry) -> Result<Response, StoreError> {
        // Invariant: the applied log id only moves forward.
        assert!(
            Some(entry.log_id) > meta.applied,
            "applying {} after {:?}: applied index went back",
            entry.log_id,
            meta.applied
        );
        let mut txn = EntryTxn::new(&self.db);
        let response = match &entry.payload {
            EntryPayload::Blank => Response {
                revision: meta.revision,
                result: Ok(Outcome::None),
                deduplicated: false,
            },
            EntryPayload::Membership(m) => {
                txn.put(
                    SM_MEMBERSHIP,
                    &StoredMembership::new(Some(entry.log_id), m.clone()),
                )?;
                Response {
                    revision: meta.revision,
                    result: Ok(Outcome::None),
                    deduplicated: false,
                }
            }
            EntryPayload::Normal(cmd) => self.apply_command(&mut txn, meta, cmd)?,
        };
        meta.applied = Some(entry.log_id);
        txn.put(SM_APPLIED, &meta.applied)?;
        txn.put(SM_REVISION, &meta.revision)?;
        txn.put(SM_CLOCK, &meta.clock)?;
        txn.put(SM_DEDUP_COUNT, &meta.dedup_count)?;
        self.compact_changes(&mut txn, meta)?;
        self.db.write_opt(txn.batch, &unsynced())?;
        Ok(response)
    }

    fn apply_command(
        &self,
        txn: &mut EntryTxn<'_>,
        meta: &mut Meta,
        cmd: &Command,
    ) -> Result<Response, StoreError> {
        // State time never goes back, whatever the new leader's clock says.
        let now = cmd.stamped_at.max(meta.clock);
        meta.clock = now;
        self.evict_dedup(txn, meta, now)?;
        match &cmd.op {
            Op::Batch(items) => {
                let mut answers = Vec::with_capacity(items.len());
                for item in items {
                    let answer = if matches!(item.op, Op::Batch(_)) {
                        Response {
                            revision: meta.revision,
                            result: Err(ApplyError::Conflict("batches do not nest".into())),
                            deduplicated: false,
                        }
                    } else {
                        self.apply_item(txn, meta, item.request_id.as_ref(), &item.op, now)?
                    };
                    answers.push(answer);
                }
                Ok(Response {
                    revision: meta.revision,
                    result: Ok(Outcome::Batch(answers)),
                    deduplicated: false,
                })
            }
            op => self.apply_item(txn, meta, cmd.request_id.as_ref(), op, now),
        }
    }

    /// Applies one caller's operation at `now`: replays the answer of an already applied
    /// request id, or applies and remembers it.
    fn apply_item(
        &self,
        txn: &mut EntryTxn<'_>,
        meta: &mut Meta,
        request_id: Option<&RequestId>,
        op: &Op,
        now: Timestamp,
    ) -> Result<Response, StoreError> {
        if let Some(id) = request_id
            && let Some((_, earlier)) = txn.get::<(Timestamp, Response)>(&dedup_key(id))?
        {
            StorageStats::add(&self.stats.deduplicated_total, 1);
            return Ok(Response {
                deduplicated: true,
                ..earlier
            });
        }

        let next = meta.revision + 1;
        let result = match op {
            Op::Noop => Ok(Outcome::None),
            Op::Batch(_) => Err(ApplyError::Conflict("batches do not nest".into())),
            Op::Record(r) => crate::records::apply_record(txn, meta, r, now)?.map(Outcome::Record),
            Op::AuditAppend(events) => {
                let (first_seq, last_seq) = crate::audit_log::append(txn, events)?;
                Ok(Outcome::AuditAppended {
                    first_seq,
                    last_seq,
                })
            }
            Op::AuditPrune { before, max } => {
                let (removed, pruned_seq) = crate::audit_log::prune(txn, *before, *max)?;
                Ok(Outcome::AuditPruned {
                    removed,
                    pruned_seq,
                })
            }
            Op::LocatorRegister(reg) => {
                let existing: Option<LocatorEntry> = txn.get(&locator_key(&reg.key))?;
                let (entry, changed) = apply_register(existing.as_ref(), reg, now, next);
                store_locator(txn, meta, now, &entry, changed, true)?;
                Ok(Outcome::Locator { entry, changed })
            }
            Op::LocatorCompareAndRegister {
                register,
                expected_mod_revision,
            } => {
                let existing: Option<LocatorEntry> = txn.get(&locator_key(&register.key))?;
                match apply_compare_and_register(
                    existing.as_ref(),
                    register,
                    *expected_mod_revision,
                    now,
                    next,
                ) {
                    Ok((entry, changed)) => {
                        store_locator(txn, meta, now, &entry, changed, true)?;
                        Ok(Outcome::Locator { entry, changed })
                    }
                    Err(e) => Err(e),
                }
            }
            Op::LocatorImport(regs) => {
                let (mut changed_count, mut unchanged_count) = (0u64, 0u64);
                for reg in regs {
                    let existing: Option<LocatorEntry> = txn.get(&locator_key(&reg.key))?;
                    let (entry, changed) =
                        apply_register(existing.as_ref(), reg, now, meta.revision + 1);
                    store_locator(txn, meta, now, &entry, changed, true)?;
                    if changed {
                        changed_count += 1;
                    } else {
                        unchanged_count += 1;
                    }
                }
                Ok(Outcome::Imported {
                    changed: changed_count,
                    unchanged: unchanged_count,
                })
            }
            Op::LocatorRetire(k) => {
                let existing: Option<LocatorEntry> = txn.get(&locator_key(k))?;
                match apply_retire(existing.as_ref(), now, next) {
                    Ok((entry, changed)) => {
                        store_locator(txn, meta, now, &entry, changed, false)?;
                        Ok(Outcome::Locator { entry, changed })
                    }
                    Err(e) => Err(e),
                }
            }
        };
        let response = Response {
            revision: meta.revision,
            result,
            deduplicated: false,
        };
        if let Some(id) = request_id {
            txn.put(&dedup_key(id), &(now, response.clone()))?;
            txn.put_raw(&dedup_time_key(now, id), &[])?;
            meta.dedup_count += 1;
        }
        Ok(response)
    }

    /// Drops the oldest change events beyond `change_history_max` (one range delete).
    fn compact_changes(&self, txn: &mut EntryTxn<'_>, meta: &mut Meta) -> Result<(), StoreError> {
        let kept = meta.revision - meta.compacted;
        if kept <= self.config.change_history_max {
            return Ok(());
        }
        let new_compacted = meta.revision - self.config.change_history_max;
        let sm = cf(&self.db, CF_SM)?;
        txn.batch.delete_range_cf(
            sm,
            change_key(meta.compacted + 1),
            change_key(new_compacted + 1),
        );
        meta.compacted = new_compacted;
        txn.put(SM_COMPACTED, &meta.compacted)
    }

    /// Forgets request ids older than the TTL, and the oldest ones beyond the size bound.
    ///
    /// The scan starts at the stamp of the last evicted entry, not at the start of the `T`
    /// table: every key before it was evicted (the scan goes in key order and stops at the
    /// first key it keeps), and new keys are stamped with the state clock, which never goes
    /// back, so none is ever inserted before it.
    fn evict_dedup(
        &self,
        txn: &mut EntryTxn<'_>,
        meta: &mut Meta,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let cutoff = Timestamp(now.0.saturating_sub(self.config.dedup_ttl_ms));
        let sm = cf(&self.db, CF_SM)?;
        let mut start = DEDUP_TIME_PREFIX.to_vec();
        let from_stamp = self.dedup_scan_from_stamp.load(Ordering::Relaxed);
        start.extend_from_slice(&from_stamp.to_be_bytes());
        let it = self.db.iterator_cf_opt(
            sm,
            prefix_read_options(DEDUP_TIME_PREFIX),
            IteratorMode::From(&start, Direction::Forward),
        );
        for (evicted, item) in it.enumerate() {
            if evicted >= self.config.dedup_evictions_per_entry_max {
                break;
            }
            let (k, _) = item?;
            let Some((stamp, dkey)) = split_dedup_time_key(&k) else {
                break; // past the T table
            };
            let over_size = meta.dedup_count >= self.config.dedup_entries_max;
            if stamp >= cutoff && !over_size {
                break;
            }
            debug_assert!(stamp.0.max(0) as u64 >= from_stamp);
            txn.delete(&k)?;
            txn.delete(&dkey)?;
            meta.dedup_count = meta.dedup_count.saturating_sub(1);
            self.dedup_scan_from_stamp
                .store(stamp.0.max(0) as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership), StorageError<NodeId>> {
        let res = (|| {
            let applied = get_sm::<Option<LogId>>(&self.db, SM_APPLIED)?.flatten();
            let membership = get_sm(&self.db, SM_MEMBERSHIP)?.unwrap_or_default();
            Ok::<_, StoreError>((applied, membership))
        })();
        res.map_err(StoreError::read_sm)
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let res = (|| {
            let mut meta = self.read_meta()?;
            let mut out = Vec::new();
            for entry in entries {
                out.push(self.apply_entry(&mut meta, &entry)?);
            }
            StorageStats::add(&self.stats.applied_entries_total, out.len() as u64);
            self.revisions.send_replace(meta.revision);
            Ok::<_, StoreError>(out)
        })();
        res.map_err(StoreError::write_sm)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshots.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<tokio::fs::File>, StorageError<NodeId>> {
        self.snapshots
            .begin_receiving()
            .await
            .map_err(StoreError::write_snapshot)
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<NodeId>> {
        self.snapshots
            .install(meta, snapshot)
            .await
            .map_err(StoreError::write_snapshot)?;
        // The installed state has its own dedup table: scan it from the start.
        self.dedup_scan_from_stamp.store(0, Ordering::Relaxed);
        self.notify().map_err(StoreError::read_sm)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError<NodeId>> {
        self.snapshots
            .current()
            .await
            .map_err(StoreError::read_snapshot)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError<NodeId>> {
        self.build().await.map_err(StoreError::write_snapshot)
    }
}
