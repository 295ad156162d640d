//! Where snapshots live on disk, and how they are built, served and installed.
//!
//! `snapshots/current.snap` is the latest snapshot (format: [`crate::snapshot_file`]).
//!
//! - **Build** (under the store's lock, so never during an install): a RocksDB snapshot gives a
//!   consistent view of the `sm` family; it is dumped to
//!   `build-<id>.tmp`, fsynced, and renamed over `current.snap` (directory fsynced) unless a
//!   newer snapshot got there first.
//! - **Receive**: openraft writes the chunks a leader streams into `receiving-<n>.part`.
//! - **Install**: the received file is copied to `incoming.snap` while every frame and the
//!   checksum are verified, and fsynced. Then the `installing` marker is written (synced), the
//!   file is renamed to `current.snap`, the `sm` family is cleared and loaded from it in bounded
//!   batches, and the last batch removes the marker (synced). While it loads, the
//!   [install fence](crate::fence) refuses every read of the state machine. A crash anywhere in between is
//!   finished at the next open ([`SnapshotStore::recover`]): the marker means "load
//!   `current.snap` (after renaming `incoming.snap` if it is still there)".

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{DB, IteratorMode, WriteBatch};
use tokio::sync::Mutex;

use crate::codec::{decode, encode};
use crate::db::{cf, synced, unsynced};
use crate::error::StoreError;
use crate::keys::{
    CF_AUDIT, CF_RAFT, CF_SM, RAFT_INSTALLING, SM_APPLIED, SM_END, SM_MEMBERSHIP, family_of,
};
use crate::snapshot_file::{SnapshotReader, SnapshotWriter, copy_verified, read_meta, sync_dir};
use crate::stats::StorageStats;
use crate::types::{LogId, Snapshot, SnapshotMeta, StoredMembership};

/// Bytes per WriteBatch when loading a snapshot into the state machine.
pub const INSTALL_BATCH_BYTES_MAX: usize = 4 << 20;

/// File name of the latest snapshot in the snapshot directory.
pub const CURRENT: &str = "current.snap";
/// File name of a snapshot being installed (before it is renamed to [`CURRENT`]).
pub(crate) const INCOMING: &str = "incoming.snap";

/// Builds, serves and installs snapshots. Cheap to clone.
#[derive(Clone)]
pub struct SnapshotStore {
    db: Arc<DB>,
    dir: PathBuf,
    /// Serialises changes of `current.snap`.
    lock: Arc<Mutex<()>>,
    receive_seq: Arc<AtomicU64>,
    stats: Arc<StorageStats>,
    /// Closed while an install loads the state machine (reads are refused meanwhile).
    fence: Arc<crate::fence::InstallFence>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

impl SnapshotStore {
    pub(crate) fn new(
        db: Arc<DB>,
        dir: PathBuf,
        stats: Arc<StorageStats>,
        fence: Arc<crate::fence::InstallFence>,
    ) -> Self {
        SnapshotStore {
            db,
            dir,
            lock: Arc::new(Mutex::new(())),
            receive_seq: Arc::new(AtomicU64::new(0)),
            stats,
            fence,
        }
    }

    /// Finishes an interrupted install and removes leftovers of interrupted builds and
    /// transfers. Called once at open, before openraft starts.
    pub(crate) fn recover(&self) -> Result<(), StoreError> {
        std::fs::create_dir_all(&self.dir)?;
        let raft = cf(&self.db, CF_RAFT)?;
        let installing = self.db.get_cf(raft, RAFT_INSTALLING)?.is_some();
        let incoming = self.dir.join(INCOMING);
        if installing {
            if incoming.exists() {
                std::fs::rename(&incoming, self.dir.join(CURRENT))?;
                sync_dir(&self.dir)?;
            }
            tracing::warn!("finishing a snapshot install interrupted by a crash");
            load_into_sm(&self.db, &self.dir.join(CURRENT), None)?;
        }
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".part") || name.ends_with(".tmp") || name == INCOMING {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// Builds a snapshot of the current state.
    pub async fn build(&self) -> Result<Snapshot, StoreError> {
        // Held for the whole build: openraft may build while it installs, and the view must
        // never be of a half-loaded install (the fence would refuse one; the lock makes the
        // build wait for the install instead).
        let _guard = self.lock.lock().await;
        let db = self.db.clone();
        let dir = self.dir.clone();
        let fence = self.fence.clone();
        let (meta, tmp) = blocking(move || {
            let view = fence.view(&db)?;
            let sm = cf(&db, CF_SM)?;
            let applied: Option<LogId> = match view.get_cf(sm, SM_APPLIED)? {
                Some(v) => decode(&v)?,
                None => None,
            };
            let membership: StoredMembership = match view.get_cf(sm, SM_MEMBERSHIP)? {
                Some(v) => decode(&v)?,
                None => StoredMembership::default(),
            };
            let id = match applied {
                Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, chrono_free_millis()),
                None => format!("0-0-{}", chrono_free_millis()),
            };
            let meta = SnapshotMeta {
                last_log_id: applied,
                last_membership: membership,
                snapshot_id: id.clone(),
            };
            let tmp = dir.join(format!("build-{id}.tmp"));
            let mut w = SnapshotWriter::create(&tmp, &meta)?;
            // The state machine is both families; a key says which it belongs to.
            for family in [sm, cf(&db, CF_AUDIT)?] {
                for item in view.iterator_cf_opt(
                    family,
                    crate::db::total_order_read_options(),
                    IteratorMode::Start,
                ) {
                    let (k, v) = item?;
                    w.frame(&k, &v)?;
                }
            }
            let frames = w.finish()?;
            tracing::info!(snapshot_id = %id, frames, "snapshot built");
            Ok((meta, tmp))
        })
        .await?;

        let file = tokio::fs::File::open(&tmp).await?;
        let current = self.dir.join(CURRENT);
        let newer = match read_meta(&current) {
            Ok(cur) => meta.last_log_id >= cur.last_log_id,
            Err(_) => true,
        };
        if newer {
            tokio::fs::rename(&tmp, &current).await?;
            sync_dir(&self.dir)?;
        } else {
            tokio::fs::remove_file(&tmp).await?;
        }
        StorageStats::add(&self.stats.snapshots_built_total, 1);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }

    /// The latest snapshot, if any.
    pub async fn current(&self) -> Result<Option<Snapshot>, StoreError> {
        let _guard = self.lock.lock().await;
        let path = self.dir.join(CURRENT);
        if !path.exists() {
            return Ok(None);
        }
        let p = path.clone();
        let meta = blocking(move || read_meta(&p)).await?;
        let file = tokio::fs::File::open(&path).await?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(file),
        }))
    }

    /// A fresh file for openraft to write a streamed snapshot into.
    pub async fn begin_receiving(&self) -> Result<Box<tokio::fs::File>, StoreError> {
        let n = self.receive_seq.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("receiving-{n}.part"));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await?;
        // Unlinked at once: the open handle keeps the data until openraft drops it, and
        // nothing is left behind if the transfer is abandoned.
        tokio::fs::remove_file(&path).await?;
        Ok(Box::new(file))
    }

    /// Installs a snapshot received from the leader.
    pub async fn install(
        &self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StoreError> {
        let _guard = self.lock.lock().await;
        let mut file = snapshot.into_std().await;
        let db = self.db.clone();
        let dir = self.dir.clone();
        let expected = meta.clone();
        let fence = self.fence.clone();
        blocking(move || {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::Start(0))?;
            let incoming = dir.join(INCOMING);
            let got = copy_verified(std::io::BufReader::new(file), &incoming)?;
            if got.last_log_id != expected.last_log_id || got.snapshot_id != expected.snapshot_id {
                return Err(StoreError::Corrupt(format!(
                    "received snapshot {} does not match its announced meta {}",
                    got.snapshot_id, expected.snapshot_id
                )));
            }
            let raft = cf(&db, CF_RAFT)?;
            db.put_cf_opt(
                raft,
                RAFT_INSTALLING,
                encode(&expected.snapshot_id)?,
                &synced(),
            )?;
            std::fs::rename(&incoming, dir.join(CURRENT))?;
            sync_dir(&dir)?;
            let _installing = fence.install();
            if let Some(pause) = fence.unsafe_open_pause() {
                clear_sm_unsafely(&db, pause)?;
            }
            load_into_sm(&db, &dir.join(CURRENT), Some(&expected))?;
            tracing::info!(snapshot_id = %expected.snapshot_id, "snapshot installed");
            Ok(())
        })
        .await?;
        StorageStats::add(&self.stats.snapshots_installed_total, 1);
        Ok(())
    }
}

/// The unsafe install of the Jepsen self-check ([`InstallFence::unsafe_open`](crate::fence::InstallFence::unsafe_open)):
/// the state machine cleared in a write of its own, then `pause` with nothing in it.
fn clear_sm_unsafely(db: &DB, pause: std::time::Duration) -> Result<(), StoreError> {
    let mut batch = WriteBatch::default();
    batch.delete_range_cf(cf(db, CF_SM)?, &b""[..], SM_END);
    db.write_opt(batch, &unsynced())?;
    tracing::error!(
        pause_ms = pause.as_millis() as u64,
        "UNSAFE: state machine cleared, unfenced"
    );
    std::thread::sleep(pause);
    Ok(())
}

/// Replaces the `sm` family with the snapshot at `path` and clears the install marker.
pub(crate) fn load_into_sm(
    db: &DB,
    path: &Path,
    meta: Option<&SnapshotMeta>,
) -> Result<(), StoreError> {
    let sm = cf(db, CF_SM)?;
    let raft = cf(db, CF_RAFT)?;
    let mut reader = SnapshotReader::open(path)?;
    let meta = meta.cloned().unwrap_or_else(|| reader.meta().clone());
    let audit = cf(db, CF_AUDIT)?;
    let mut batch = WriteBatch::default();
    batch.delete_range_cf(sm, &b""[..], SM_END);
    batch.delete_range_cf(audit, &b""[..], SM_END);
    while let Some((k, v)) = reader.next_frame()? {
        // Routed by key, so snapshots made before the chain had its own family load too.
        batch.put_cf(cf(db, family_of(&k))?, k, v);
        if batch.size_in_bytes() >= INSTALL_BATCH_BYTES_MAX {
            db.write_opt(std::mem::take(&mut batch), &unsynced())?;
        }
    }
    // The snapshot's own meta is authoritative for how far it reaches.
    batch.put_cf(sm, SM_APPLIED, encode(&meta.last_log_id)?);
    batch.put_cf(sm, SM_MEMBERSHIP, encode(&meta.last_membership)?);
    batch.delete_cf(raft, RAFT_INSTALLING);
    db.write_opt(batch, &synced())?;
    Ok(())
}

/// Milliseconds since the epoch, for unique snapshot ids.
fn chrono_free_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}
