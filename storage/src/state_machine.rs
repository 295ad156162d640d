//! The replicated state machine: openraft's [`RaftStateMachine`] over RocksDB, and the
//! snapshot builder.
//!
//! Applying entries is [`crate::apply`]'s job (one atomic WriteBatch per entry, carrying the
//! new last-applied log id with the data, deterministic on every replica, exactly-once writes
//! through the dedup table); snapshots are [`SnapshotStore`]'s. This module wires them to
//! openraft and tells watchers the revision the state has reached.

use std::path::PathBuf;
use std::sync::Arc;

use kartotek_domain::Response;
use openraft::storage::RaftStateMachine;
use openraft::{RaftSnapshotBuilder, StorageError};
use rocksdb::DB;

use crate::apply::{Applier, Meta, get_sm};
use crate::error::StoreError;
use crate::keys::{SM_APPLIED, SM_MEMBERSHIP, SM_REVISION};
use crate::snapshot_store::SnapshotStore;
use crate::stats::StorageStats;
use crate::types::{Entry, LogId, NodeId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

pub use crate::apply::StateMachineConfig;

/// The state machine. openraft owns it; reads go through [`crate::StateReader`].
pub struct StateMachine {
    applier: Applier,
    snapshots: SnapshotStore,
    stats: Arc<StorageStats>,
    revisions: tokio::sync::watch::Sender<u64>,
}

impl StateMachine {
    pub(crate) fn new(
        db: Arc<DB>,
        config: StateMachineConfig,
        snapshot_dir: PathBuf,
        stats: Arc<StorageStats>,
        revisions: tokio::sync::watch::Sender<u64>,
        fence: Arc<crate::fence::InstallFence>,
    ) -> Self {
        let snapshots = SnapshotStore::new(db.clone(), snapshot_dir, stats.clone(), fence);
        StateMachine {
            applier: Applier::new(db, config, stats.clone()),
            snapshots,
            stats,
            revisions,
        }
    }

    fn db(&self) -> &DB {
        self.applier.db()
    }

    /// Tells watchers the revision the state has now reached.
    fn notify(&self) -> Result<(), StoreError> {
        let revision: u64 = get_sm(self.db(), SM_REVISION)?.unwrap_or(0);
        self.revisions.send_replace(revision);
        Ok(())
    }

    pub(crate) fn snapshots(&self) -> &SnapshotStore {
        &self.snapshots
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership), StorageError<NodeId>> {
        let res = (|| {
            let applied = get_sm::<Option<LogId>>(self.db(), SM_APPLIED)?.flatten();
            let membership = get_sm(self.db(), SM_MEMBERSHIP)?.unwrap_or_default();
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
            let mut meta = Meta::read(self.db())?;
            let mut out = Vec::new();
            for entry in entries {
                out.push(self.applier.apply_entry(&mut meta, &entry)?);
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
        self.applier.restart_dedup_scan();
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
