//! Applying committed Raft entries to the state machine: one entry, one [`EntryTxn`], one
//! atomic WriteBatch that also carries the new last-applied log id, membership, revision and
//! state clock, so a crash never leaves data and "how far we applied" out of step.
//!
//! [`Applier::apply_entry`] is the dispatcher: it turns an entry's [`Command`] into a
//! [`Response`], answering a repeated request id from the dedup table (`dedup.rs`), and hands
//! each operation to its family's module (`locator`, `block`, `consent`, `reservation`,
//! `representation`, `catalog`, `client`, `notification`, `access`, `audit`, `token_ids`). The
//! families hold only the glue from a command to the domain's pure `apply_*` rule; every changed record
//! is written by the one generic store in `stored.rs` ([`stored::StoredRecord`]), which moves
//! the revision by one and records the change event (the watch feed) under it.
//!
//! Applying an entry reads only the state (through the transaction, so a batch sees its own
//! earlier writes) and the command, with time taken from the leader's stamp, never anything
//! that depends on how entries were grouped into `apply` calls: every replica computes the
//! same state. Storage here depends on `keys`, `record_keys`, `codec`, `db` and the audit
//! keys in `audit_log`; no reader depends on it.

mod access;
mod audit;
mod block;
mod catalog;
mod client;
mod consent;
mod dedup;
mod locator;
mod notification;
mod representation;
mod reservation;
mod stored;
mod token_ids;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kartotek_domain::consent::{
    apply_consent_deny, apply_consent_grant_request, apply_consent_withdraw,
};
use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::{
    ApplyError, Change, ChangeEvent, Command, Op, Outcome, RequestId, Response, Timestamp,
};
use openraft::EntryPayload;
use rocksdb::{DB, WriteBatch};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{decode, encode};
use crate::db::{cf, unsynced};
use crate::error::StoreError;
use crate::keys::{
    CF_SM, SM_APPLIED, SM_CLOCK, SM_COMPACTED, SM_DEDUP_COUNT, SM_MEMBERSHIP, SM_REVISION,
    change_key, family_of,
};
use crate::stats::StorageStats;
use crate::types::{Entry, LogId, StoredMembership};
use stored::Applied;

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

/// Reads a state-machine value (from the `sm` family, or `audit` for the chain's keys).
pub(crate) fn get_sm<T: DeserializeOwned>(db: &DB, key: &[u8]) -> Result<Option<T>, StoreError> {
    let family = cf(db, family_of(key))?;
    match db.get_pinned_cf(family, key)? {
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

    /// Reads a value, seeing this entry's own writes first.
    pub(crate) fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.written.get(key) {
            Some(Some(v)) => Ok(Some(decode(v)?)),
            Some(None) => Ok(None),
            None => get_sm(self.db, key),
        }
    }

    /// Whether a key is present (raw bytes, for index entries), seeing this entry's own writes
    /// first.
    pub(crate) fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.written.get(key) {
            Some(v) => Ok(v.clone()),
            None => Ok(self.db.get_cf(cf(self.db, family_of(key))?, key)?),
        }
    }

    /// Writes an encoded value.
    pub(crate) fn put<T: Serialize>(&mut self, key: &[u8], value: &T) -> Result<(), StoreError> {
        self.put_raw(key, &encode(value)?)
    }

    /// Writes raw bytes (index entries).
    pub(crate) fn put_raw(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let family = cf(self.db, family_of(key))?;
        self.batch.put_cf(family, key, value);
        self.written.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    /// Deletes a key.
    pub(crate) fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        let family = cf(self.db, family_of(key))?;
        self.batch.delete_cf(family, key);
        self.written.insert(key.to_vec(), None);
        Ok(())
    }
}

/// The state-machine meta values carried from entry to entry.
pub(crate) struct Meta {
    applied: Option<LogId>,
    /// The state revision: moves by one with every change.
    pub(crate) revision: u64,
    clock: Timestamp,
    dedup_count: u64,
    compacted: u64,
}

impl Meta {
    /// Reads the meta values as of the last applied entry.
    pub(crate) fn read(db: &DB) -> Result<Meta, StoreError> {
        Ok(Meta {
            applied: get_sm::<Option<LogId>>(db, SM_APPLIED)?.flatten(),
            revision: get_sm(db, SM_REVISION)?.unwrap_or(0),
            clock: get_sm(db, SM_CLOCK)?.unwrap_or_default(),
            dedup_count: get_sm(db, SM_DEDUP_COUNT)?.unwrap_or(0),
            compacted: get_sm(db, SM_COMPACTED)?.unwrap_or(0),
        })
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

/// What one operation is applied against: the entry's transaction, the meta values and the
/// state time `now` (the leader's stamp, never behind the state clock).
pub(crate) struct Ctx<'t, 'a> {
    /// The entry's transaction.
    pub(crate) txn: &'t mut EntryTxn<'a>,
    /// The meta values.
    pub(crate) meta: &'t mut Meta,
    /// The state time of the command.
    pub(crate) now: Timestamp,
}

/// Applies entries to the state in the database.
pub(crate) struct Applier {
    db: Arc<DB>,
    config: StateMachineConfig,
    stats: Arc<StorageStats>,
    /// Where the next dedup eviction scan starts: the stamp of the last evicted entry (0 after
    /// start or a snapshot install). Every evicted `T` key is a point tombstone until RocksDB
    /// compacts it away; a scan from the start of the table would step over all of them on
    /// every applied entry, which made apply cost grow with the number of writes since the
    /// first eviction (measured: 100x slower after 10 minutes of benchmark load).
    dedup_scan_from_stamp: AtomicU64,
}

impl Applier {
    /// An applier over `db`.
    pub(crate) fn new(db: Arc<DB>, config: StateMachineConfig, stats: Arc<StorageStats>) -> Self {
        Applier {
            db,
            config,
            stats,
            dedup_scan_from_stamp: AtomicU64::new(0),
        }
    }

    /// The database.
    pub(crate) fn db(&self) -> &Arc<DB> {
        &self.db
    }

    /// After a snapshot install: the installed state has its own dedup table, scan it from
    /// the start.
    pub(crate) fn restart_dedup_scan(&self) {
        self.dedup_scan_from_stamp.store(0, Ordering::Relaxed);
    }

    /// Applies one entry in its own WriteBatch (not synced; see the crate's durability
    /// contract) and returns its answer.
    pub(crate) fn apply_entry(
        &self,
        meta: &mut Meta,
        entry: &Entry,
    ) -> Result<Response, StoreError> {
        // Invariant: the applied log id only moves forward.
        assert!(
            Some(entry.log_id) > meta.applied,
            "applying {} after {:?}: applied index went back",
            entry.log_id,
            meta.applied
        );
        let mut txn = EntryTxn::new(&self.db);
        let response = match &entry.payload {
            EntryPayload::Blank => answer(meta, Ok(Outcome::None)),
            EntryPayload::Membership(m) => {
                txn.put(
                    SM_MEMBERSHIP,
                    &StoredMembership::new(Some(entry.log_id), m.clone()),
                )?;
                answer(meta, Ok(Outcome::None))
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
                        answer(meta, Err(nested_batch()))
                    } else {
                        self.apply_item(txn, meta, item.request_id.as_ref(), &item.op, now)?
                    };
                    answers.push(answer);
                }
                Ok(answer(meta, Ok(Outcome::Batch(answers))))
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
            && let Some(earlier) = self.replay(txn, id)?
        {
            return Ok(match earlier {
                dedup::Replay::Answer(response) => response,
                dedup::Replay::OtherRequest => answer(
                    meta,
                    Err(ApplyError::Conflict(
                        "this request id was already used for another request; use a new \
                         request id for each new request"
                            .into(),
                    )),
                ),
            });
        }
        let result = apply_op(&mut Ctx { txn, meta, now }, op)?;
        let response = answer(meta, result);
        if let Some(id) = request_id {
            dedup::remember(txn, meta, id, now, &response)?;
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
}

/// A fresh (not deduplicated) answer at the current revision.
fn answer(meta: &Meta, result: Result<Outcome, ApplyError>) -> Response {
    Response {
        revision: meta.revision,
        result,
        deduplicated: false,
    }
}

/// The answer to a batch inside a batch.
fn nested_batch() -> ApplyError {
    ApplyError::Conflict("batches do not nest".into())
}

/// Applies one (non-batch) operation.
fn apply_op(cx: &mut Ctx<'_, '_>, op: &Op) -> Applied<Outcome> {
    match op {
        Op::Noop => Ok(Ok(Outcome::None)),
        Op::Batch(_) => Ok(Err(nested_batch())),
        Op::Record(r) => Ok(apply_record(cx, r)?.map(Outcome::Record)),
        Op::AuditAppend(events) => {
            let (first_seq, last_seq) = audit::append(cx.txn, events)?;
            Ok(Ok(Outcome::AuditAppended {
                first_seq,
                last_seq,
            }))
        }
        Op::AuditPrune { before, max } => {
            let (removed, pruned_seq) = audit::prune(cx.txn, *before, *max)?;
            Ok(Ok(Outcome::AuditPruned {
                removed,
                pruned_seq,
            }))
        }
        Op::AuditShip {
            journal,
            first_seq,
            events,
        } => {
            let shipped = audit::ship(cx.txn, *journal, *first_seq, events)?;
            Ok(Ok(Outcome::AuditShipped {
                journal_through: shipped.through,
                appended: shipped.appended,
                gap: shipped.gap,
            }))
        }
        Op::LocatorRegister(reg) => locator::register(cx, reg),
        Op::LocatorCompareAndRegister {
            register,
            expected_mod_revision,
        } => locator::compare_and_register(cx, register, *expected_mod_revision),
        Op::LocatorImport(regs) => locator::import(cx, regs),
        Op::LocatorRetire(key) => locator::retire(cx, key),
    }
}

/// Applies one record operation.
fn apply_record(cx: &mut Ctx<'_, '_>, op: &RecordOp) -> Applied<RecordOutcome> {
    match op {
        RecordOp::BlockAdd(cmd) => block::add(cx, cmd),
        RecordOp::BlockRevoke(cmd) => block::revoke(cx, cmd),
        RecordOp::ConsentRequest(cmd) => consent::request(cx, cmd),
        RecordOp::ConsentGrant(cmd) => consent::grant(cx, cmd),
        RecordOp::ConsentGrantRequest(cmd) => consent::answer(cx, apply_consent_grant_request, cmd),
        RecordOp::ConsentDeny(cmd) => consent::answer(cx, apply_consent_deny, cmd),
        RecordOp::ConsentWithdraw(cmd) => consent::answer(cx, apply_consent_withdraw, cmd),
        RecordOp::Reserve(cmd) => reservation::reserve(cx, cmd),
        RecordOp::ReservationWithdraw(cmd) => reservation::withdraw(cx, cmd),
        RecordOp::RepresentationGrant(cmd) => representation::grant(cx, cmd),
        RecordOp::RepresentationRevoke(cmd) => representation::revoke(cx, cmd),
        RecordOp::CatalogRegister(cmd) => catalog::register(cx, cmd),
        RecordOp::CatalogUpdate(cmd) => catalog::update(cx, cmd),
        RecordOp::CatalogSetLifecycle(cmd) => catalog::set_lifecycle(cx, cmd),
        RecordOp::ClientRegister(cmd) => client::register(cx, cmd),
        RecordOp::ClientUpdate(cmd) => client::update(cx, cmd),
        RecordOp::AccessOverride { request, policy } => {
            access::override_access(cx, request, policy)
        }
        RecordOp::NotificationAck(cmd) => notification::ack(cx, cmd),
        RecordOp::ConsentExpireDue(cmd) => consent::expire_due(cx, cmd),
        RecordOp::TokenIdsSpend(cmd) => token_ids::spend(cx, cmd),
        RecordOp::TokenRevoke(cmd) => token_ids::revoke(cx, cmd),
        RecordOp::TokenIdsForget(cmd) => token_ids::forget(cx, cmd),
    }
}
