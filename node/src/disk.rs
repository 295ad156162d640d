//! The data disk's free space, and read-only mode when it runs low.
//!
//! A [`DiskWatch`] looks at the free space of the data directory's filesystem (`statvfs`,
//! the bytes an unprivileged process may still use) every `storage.disk_check_interval_ms`.
//! Below `storage.disk_free_bytes_min` the node turns **read-only**; at or above 1.25 times
//! that (the hysteresis keeps a disk at the edge from flapping) it takes writes again by
//! itself, with no restart.
//!
//! What read-only means, and why it is safe:
//! - **Client writes are refused** before they are proposed, by the request layer (every
//!   write method, forwarded audit events included): RESOURCE_EXHAUSTED with the node, the
//!   free bytes and the setting, so nothing is half-written and a caller knows to retry later
//!   or at another node. A write sent to another node is refused only if *that* node is
//!   read-only (a node knows only its own disk).
//! - **Reads keep working, audited as always**: their audit events are small fsynced journal
//!   appends that the reserve holds; a read whose journal append fails anyway is refused,
//!   never answered unaudited (the journal's contract, [`crate::audit`]).
//! - **Replication, audit shipping and snapshots go on** in the reserve: refusing entries a
//!   leader already committed would stall the cluster for everyone. If the reserve runs out
//!   anyway (a follower whose disk fills while the others take writes), RocksDB or the log
//!   store fails a write and openraft stops this node's Raft (a storage error is fatal to it);
//!   nothing acknowledged is lost (a quorum has it) and the node's state is as of its last
//!   synced write. Free space and restart the node: it catches up from the leader.
//!
//! Metrics: `kartotek_storage_read_only` (1 or 0); the free space itself is
//! `kartotek_storage_data_dir_free_bytes` (read at each scrape).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Free space at which a read-only node takes writes again, as a multiple of the minimum
/// (in quarters: 5/4).
const RESUME_QUARTERS: u64 = 5;

/// The disk state of the node, shared by the watcher and the request layer.
#[derive(Debug)]
pub struct DiskWatch {
    dir: PathBuf,
    free_bytes_min: u64,
    read_only: AtomicBool,
    free_bytes: AtomicU64,
}

/// What a look at the free space changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing.
    None,
    /// The node turned read-only.
    ReadOnly,
    /// The node takes writes again.
    Writable,
}

impl DiskWatch {
    /// A watch of `dir`'s filesystem with the minimum `free_bytes_min`; writable until the
    /// first look says otherwise.
    pub fn new(dir: &Path, free_bytes_min: u64) -> Arc<DiskWatch> {
        Arc::new(DiskWatch {
            dir: dir.to_path_buf(),
            free_bytes_min,
            read_only: AtomicBool::new(false),
            free_bytes: AtomicU64::new(u64::MAX),
        })
    }

    /// Whether client writes are refused now.
    pub fn read_only(&self) -> bool {
        self.read_only.load(Ordering::Acquire)
    }

    /// Free bytes at the last look (`u64::MAX` before the first).
    pub fn free_bytes(&self) -> u64 {
        self.free_bytes.load(Ordering::Relaxed)
    }

    /// The minimum.
    pub fn free_bytes_min(&self) -> u64 {
        self.free_bytes_min
    }

    /// Records `free` bytes and applies the hysteresis.
    pub fn observe(&self, free: u64) -> Change {
        self.free_bytes.store(free, Ordering::Relaxed);
        let was = self.read_only();
        let now = next_read_only(was, free, self.free_bytes_min);
        if now == was {
            return Change::None;
        }
        self.read_only.store(now, Ordering::Release);
        if now {
            Change::ReadOnly
        } else {
            Change::Writable
        }
    }

    /// Looks at the disk now: the free bytes, or why not.
    pub fn look(&self) -> Result<u64, String> {
        free_bytes_of(&self.dir)
    }
}

/// Whether a node that `was` read-only is read-only with `free` bytes and minimum `min`.
pub fn next_read_only(was: bool, free: u64, min: u64) -> bool {
    if was {
        free < min.saturating_mul(RESUME_QUARTERS) / 4
    } else {
        free < min
    }
}

/// The bytes an unprivileged process may still write on `dir`'s filesystem.
pub fn free_bytes_of(dir: &Path) -> Result<u64, String> {
    let s =
        nix::sys::statvfs::statvfs(dir).map_err(|e| format!("statvfs {}: {e}", dir.display()))?;
    Ok(s.blocks_available().saturating_mul(s.fragment_size()))
}

/// Looks at the disk every `every` until the process ends, logging each change and keeping
/// the gauge; a failed look keeps the last state (and is logged).
pub fn spawn(watch: Arc<DiskWatch>, metrics: crate::metrics::Metrics, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let w = watch.clone();
            let looked = tokio::task::spawn_blocking(move || w.look()).await;
            let free = match looked {
                Ok(Ok(free)) => free,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not read the data disk's free space");
                    continue;
                }
                Err(_) => continue,
            };
            match watch.observe(free) {
                Change::ReadOnly => tracing::error!(
                    free_bytes = free,
                    disk_free_bytes_min = watch.free_bytes_min(),
                    "data disk nearly full: this node is READ-ONLY (client writes refused) until space returns"
                ),
                Change::Writable => tracing::warn!(
                    free_bytes = free,
                    "data disk has space again: this node takes writes again"
                ),
                Change::None => {}
            }
            metrics.read_only.set(i64::from(watch.read_only()));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_below_the_minimum_and_writable_only_well_above_it() {
        let min = 1000;
        assert!(!next_read_only(false, 1000, min));
        assert!(next_read_only(false, 999, min));
        // Once read-only, the minimum itself is not enough: 1.25 times it.
        assert!(next_read_only(true, 1000, min));
        assert!(next_read_only(true, 1249, min));
        assert!(!next_read_only(true, 1250, min));
        assert!(!next_read_only(false, u64::MAX, u64::MAX));
    }

    #[test]
    fn observing_reports_each_change_once() {
        let dir = tempfile::tempdir().unwrap();
        let w = DiskWatch::new(dir.path(), 1000);
        assert!(!w.read_only());
        assert_eq!(w.observe(5000), Change::None);
        assert_eq!(w.observe(10), Change::ReadOnly);
        assert_eq!(w.observe(10), Change::None);
        assert!(w.read_only());
        assert_eq!(w.observe(1100), Change::None);
        assert_eq!(w.observe(2000), Change::Writable);
        assert!(!w.read_only());
        assert_eq!(w.free_bytes(), 2000);
        assert!(w.look().unwrap() > 0, "a real filesystem has some space");
    }
}
