//! Opening a node's storage: the database, crash recovery, and the three handles built on it.

use std::path::Path;
use std::sync::Arc;

use crate::audit_journal::{AuditJournal, JournalLimits};
use crate::db;
use crate::error::StoreError;
use crate::log_store::LogStore;
use crate::reader::StateReader;
use crate::state_machine::{StateMachine, StateMachineConfig};
use crate::stats::StorageStats;

/// Storage settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// RocksDB block cache for the state machine, in bytes.
    pub block_cache_bytes: usize,
    /// State machine settings.
    pub state_machine: StateMachineConfig,
    /// Bounds of this node's audit journal.
    pub journal: JournalLimits,
    /// **Unsafe, Jepsen self-check only**: reads are not fenced during a snapshot install,
    /// which pauses this long with the state machine cleared
    /// ([`InstallFence::unsafe_open`](crate::fence::InstallFence::unsafe_open)).
    pub unsafe_unfenced_install_pause: Option<std::time::Duration>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            block_cache_bytes: 128 << 20,
            state_machine: StateMachineConfig::default(),
            journal: JournalLimits::default(),
            unsafe_unfenced_install_pause: None,
        }
    }
}

/// Everything a node needs from its storage.
pub struct Store {
    /// The Raft log (give to openraft).
    pub log: LogStore,
    /// The state machine (give to openraft).
    pub state_machine: StateMachine,
    /// Reads for the API.
    pub reader: StateReader,
    /// Counters for metrics.
    pub stats: Arc<StorageStats>,
    /// RocksDB's own figures (write stalls, compaction bytes), for metrics.
    pub engine: db::EngineStats,
    /// Audit events of the answers this node gave, fsynced, waiting to be shipped to the
    /// chain.
    pub journal: AuditJournal,
}

impl Store {
    /// Opens (or creates) the storage under `dir` (`dir/db`, `dir/snapshots`), finishing any
    /// snapshot install a crash interrupted.
    ///
    /// Refuses a directory a restore did not finish ([`crate::backup::RESTORE_MARKER`]).
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        crate::backup::check_no_interrupted_restore(dir)?;
        std::fs::create_dir_all(dir)?;
        let (db, engine) = db::open_with_stats(&dir.join("db"), config.block_cache_bytes)?;
        let stats = Arc::new(StorageStats::default());
        let (revisions, revisions_rx) = tokio::sync::watch::channel(0);
        let fence = Arc::new(match config.unsafe_unfenced_install_pause {
            None => crate::fence::InstallFence::default(),
            Some(pause) => crate::fence::InstallFence::unsafe_open(pause),
        });
        let state_machine = StateMachine::new(
            db.clone(),
            config.state_machine,
            dir.join("snapshots"),
            stats.clone(),
            revisions.clone(),
            fence.clone(),
        );
        state_machine.snapshots().recover()?;
        move_audit_chain_out_of_sm(&db)?;
        let log = LogStore::new(db.clone(), stats.clone())?;
        let journal = AuditJournal::open(&db, &dir.join("journal"), config.journal)?;
        let reader = StateReader::new(db, revisions_rx, fence);
        revisions.send_replace(reader.position()?.1);
        Ok(Store {
            log,
            state_machine,
            reader,
            stats,
            engine,
            journal,
        })
    }
}

/// Moves audit-chain keys that an older version kept in the `sm` family into the `audit`
/// family (see `keys::family_of`), in bounded batches, each moving its keys atomically (a
/// crash in between leaves every key in exactly one family, and the next open goes on).
fn move_audit_chain_out_of_sm(db: &rocksdb::DB) -> Result<(), StoreError> {
    use crate::keys::{CF_AUDIT, CF_SM, is_audit_key};
    let sm = db::cf(db, CF_SM)?;
    let audit = db::cf(db, CF_AUDIT)?;
    let mut moved = 0u64;
    for prefix in [&b"A"[..], b"G", b"M:audit", b"P"] {
        loop {
            let mut batch = rocksdb::WriteBatch::default();
            for item in db.iterator_cf_opt(
                sm,
                db::prefix_read_options(prefix),
                rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward),
            ) {
                let (k, v) = item?;
                if !k.starts_with(prefix) || batch.size_in_bytes() >= 4 << 20 {
                    break;
                }
                debug_assert!(is_audit_key(&k));
                batch.put_cf(audit, &k, &v);
                batch.delete_cf(sm, &k);
                moved += 1;
            }
            if batch.is_empty() {
                break;
            }
            db.write_opt(batch, &db::synced())?;
        }
    }
    if moved > 0 {
        tracing::info!(
            keys = moved,
            "moved the audit chain into its own column family"
        );
    }
    Ok(())
}
