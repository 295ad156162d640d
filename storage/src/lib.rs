//! Durable storage for a Kartotek node: the Raft log and the state machine on RocksDB, for
//! openraft 0.9 (`storage-v2`).
//!
//! # Durability contract
//!
//! One RocksDB database with one write-ahead log (WAL) holds three column families: `log`
//! (Raft entries), `raft` (vote, purge point, committed id, install marker) and `sm` (the state
//! machine). The WAL is a single sequential file: syncing it makes *every* earlier write to any
//! family durable. The rules, and why an acknowledged write survives `kill -9` and power loss:
//!
//! 1. **Log append** ([`LogStore`]): the entries go to RocksDB in one WriteBatch (readable at
//!    once); openraft is told they are flushed only after the log flusher has fsynced the WAL.
//!    A leader counts its own vote toward commit, and a follower answers AppendEntries, only
//!    after that callback, so an entry acknowledged to a client is fsynced on a majority.
//!    Appends that arrive while an fsync runs share the next one (group commit).
//! 2. **Vote**: written with a synced write before `save_vote` returns, so a node never votes
//!    twice in a term across a crash. **Truncate** is synced too.
//! 3. **Apply** ([`StateMachine`]): each entry's data, the last-applied log id, the membership,
//!    revision and state clock are one atomic WriteBatch, not synced. After a crash the state
//!    machine is at some applied id ≤ the durable log's end (WAL order), never ahead of it, and
//!    openraft re-applies the rest from the log. Apply never depends on how entries were
//!    batched, so re-application is deterministic.
//! 4. **Snapshots** ([`SnapshotStore`]): built from a RocksDB snapshot (consistent view) into a
//!    temporary file that is fsynced and renamed (directory fsynced) before it is used.
//!    Installed snapshots are verified (checksum), fsynced, and loaded under a synced marker
//!    that makes the install restartable after a crash.
//! 5. **Purge** deletes only log entries up to the id openraft asks for, which is always covered
//!    by a durable snapshot (rule 4) and by the state machine (rule 3, WAL order).
//!
//! 6. **Backups** ([`backup`]): a backup is a snapshot file built as in rule 4 at or after a
//!    linearizable read index, so it holds every write acknowledged before the backup was
//!    asked for (and possibly some later ones: it is the state at its log id `L`, exactly).
//!    Its trailer checksum and a SHA-256 of the whole file in the manifest refuse a truncated
//!    or altered copy. A restore seeds an empty data directory from it under a marker file
//!    and the install marker (rule 4), so a crash mid-restore is either finished at the next
//!    open or refused there, never started as an empty node; see [`backup`] for the steps.
//!
//! The state machine is not held in memory; reads go to RocksDB ([`StateReader`]), so the data
//! set may exceed RAM.
//!
//! # Module map
//!
//! Opening and layout:
//! - [`store`]: opens a node's storage ([`Store`]): the database, crash recovery (an
//!   interrupted snapshot install), and the handles below, all sharing one [`db`].
//! - [`db`]: the RocksDB instance and its column families; [`keys`] and [`record_keys`]: the
//!   key layout of every family; [`codec`]: the versioned encoding of every stored value.
//! - [`types`]: the openraft type configuration; [`error`]: storage errors and their mapping to
//!   openraft's; [`stats`]: counters for the node's metrics.
//!
//! The Raft side (what openraft calls):
//! - [`log_store`]: the Raft log ([`LogStore`]) with group commit, vote, truncate and purge.
//! - [`state_machine`]: openraft's state machine ([`StateMachine`], [`StateMachineConfig`]):
//!   hands committed entries to `apply` and snapshots to [`snapshot_store`].
//! - `apply` (crate-private): applying one entry's command to the state in one WriteBatch:
//!   the dispatcher and the entry transaction (`apply/mod.rs`), exactly-once dedup, the one
//!   generic store of a changed record (`apply/stored.rs`), and one module per record family
//!   (locator, block, consent, reservation, representation, catalog, client, notification,
//!   access override, audit chain) holding the glue to the domain's `apply_*` rules.
//! - [`snapshot_store`] and [`snapshot_file`]: building, serving and installing snapshots, and
//!   their checksummed file format; [`backup`]: verifying a backup's snapshot file and
//!   restoring a data directory from it.
//!
//! The read side (what the API calls; none of it depends on `apply`):
//! - [`reader`]: [`StateReader`], point-in-time reads of the locator and the change history;
//!   [`record_reader`]: reads of the record families and the facts for access decisions;
//!   [`audit_log`]: the audit chain's keys and reads.
//! - [`audit_journal`] (on the files of `journal_file`): this node's fsynced, group-committed journal of the audit events of the
//!   answers it gave, not yet in the chain.
//!
//! Dependencies go one way: `state_machine` → `apply` → keys/codec/db (and the audit keys in
//! `audit_log`, the record facts type in `record_reader`); readers depend only on `reader`,
//! keys, codec, db, error and types.

mod apply;
pub mod audit_journal;
pub mod audit_log;
pub mod backup;
pub mod codec;
pub mod db;
pub mod error;
pub mod fence;
mod journal_file;
pub mod keys;
pub mod log_store;
pub mod reader;
pub mod record_keys;
pub mod record_reader;
pub mod snapshot_file;
pub mod snapshot_store;
pub mod state_machine;
pub mod stats;
pub mod store;
pub mod types;

pub use audit_journal::{AuditJournal, JournalLimits};
pub use audit_log::{AuditHead, AuditPage, AuditSelector};
pub use error::StoreError;
pub use log_store::LogStore;
pub use reader::{ChangeSlice, HistoryError, Page, ReadResult, StateReader};
pub use record_reader::OwnedFacts;
pub use snapshot_store::SnapshotStore;
pub use state_machine::{StateMachine, StateMachineConfig};
pub use stats::StorageStats;
pub use store::{Store, StoreConfig};
pub use types::{KartotekNode, TypeConfig};
