//! The install fence: no read sees the state machine while a snapshot is being loaded into it.
//!
//! Installing a snapshot clears the `sm` family and loads it again in batches of
//! [`INSTALL_BATCH_BYTES_MAX`](crate::snapshot_store::INSTALL_BATCH_BYTES_MAX) that are not
//! atomic together. A read in between would see part of the state — for example no blocks,
//! so an access decision would permit what a block forbids. The fence is a generation counter
//! (a seqlock): odd while an install runs. A read takes its RocksDB snapshot (or makes its
//! point read) between two loads of the counter and is refused with
//! [`StoreError::Installing`] unless both saw the same even value — then no install write
//! happened in between, and the view is entirely before or entirely after an install. Reads
//! never wait and the install never waits for reads; a refused read is retried (by the
//! client, on this node after the install or on another node).

use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{DB, SnapshotWithThreadMode};

use crate::error::StoreError;

/// Shared by the snapshot store (which installs) and every reader.
#[derive(Debug, Default)]
pub struct InstallFence {
    generation: AtomicU64,
    /// Test only ([`InstallFence::unsafe_open`]): the fence never closes, and an install
    /// pauses this long with the state machine cleared.
    unsafe_open_pause: Option<std::time::Duration>,
}

/// Held while an install writes the state machine; dropping it opens the fence again.
#[derive(Debug)]
pub(crate) struct Installing<'a> {
    fence: &'a InstallFence,
}

impl Drop for Installing<'_> {
    fn drop(&mut self) {
        let was = self.fence.generation.fetch_add(1, Ordering::SeqCst);
        debug_assert!(!was.is_multiple_of(2), "the install fence was not closed");
    }
}

impl InstallFence {
    /// **Unsafe, for the Jepsen self-check only**: a fence that never refuses a read, with
    /// installs that clear the state machine in a write of its own and pause `pause` before
    /// loading the snapshot — the install of before the fence existed, its window widened so
    /// that a follower decision lands in it and permits what a block forbids.
    pub fn unsafe_open(pause: std::time::Duration) -> Self {
        InstallFence {
            generation: AtomicU64::new(0),
            unsafe_open_pause: Some(pause),
        }
    }

    /// The pause of an [unsafe open](InstallFence::unsafe_open) fence.
    pub(crate) fn unsafe_open_pause(&self) -> Option<std::time::Duration> {
        self.unsafe_open_pause
    }

    /// Closes the fence until the guard is dropped (one install at a time: the snapshot
    /// store's lock).
    pub(crate) fn install(&self) -> Installing<'_> {
        let was = self.generation.fetch_add(1, Ordering::SeqCst);
        assert!(was.is_multiple_of(2), "two snapshot installs at once");
        Installing { fence: self }
    }

    /// Whether an install is running now.
    pub fn installing(&self) -> bool {
        !self.generation.load(Ordering::SeqCst).is_multiple_of(2)
    }

    /// Runs `read` (a point read or taking a snapshot), refused if an install overlapped it.
    pub(crate) fn fenced<T>(
        &self,
        read: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.unsafe_open_pause.is_some() {
            return read();
        }
        let before = self.generation.load(Ordering::SeqCst);
        if !before.is_multiple_of(2) {
            return Err(StoreError::Installing);
        }
        let value = read()?;
        if self.generation.load(Ordering::SeqCst) != before {
            return Err(StoreError::Installing);
        }
        Ok(value)
    }

    /// A snapshot of `db` taken outside any install.
    pub(crate) fn view<'a>(
        &self,
        db: &'a DB,
    ) -> Result<SnapshotWithThreadMode<'a, DB>, StoreError> {
        self.fenced(|| Ok(db.snapshot()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_overlapping_an_install_are_refused() {
        let fence = InstallFence::default();
        assert!(fence.fenced(|| Ok(1)).is_ok());
        {
            let _installing = fence.install();
            assert!(fence.installing());
            assert!(matches!(
                fence.fenced(|| Ok(1)),
                Err(StoreError::Installing)
            ));
        }
        assert!(!fence.installing());
        // An install that starts and ends while the read runs is caught too.
        let r = fence.fenced(|| {
            drop(fence.install());
            Ok(1)
        });
        assert!(matches!(r, Err(StoreError::Installing)));
        assert!(fence.fenced(|| Ok(1)).is_ok());
    }

    #[test]
    fn an_unsafe_open_fence_refuses_nothing() {
        let fence = InstallFence::unsafe_open(std::time::Duration::ZERO);
        let _installing = fence.install();
        assert!(fence.fenced(|| Ok(1)).is_ok());
    }
}
