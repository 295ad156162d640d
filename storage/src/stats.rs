//! Counters the storage layer keeps for the node's Prometheus metrics. Plain atomics so the hot
//! path never takes a lock; the node reads them when it is scraped.

use std::sync::atomic::{AtomicU64, Ordering};

/// Storage counters, shared by the log store, its flusher and the state machine.
#[derive(Debug, Default)]
pub struct StorageStats {
    /// `append` calls (one WriteBatch each).
    pub append_batches_total: AtomicU64,
    /// Log entries appended.
    pub appended_entries_total: AtomicU64,
    /// WAL fsyncs done by the flusher (each covers every append before it: group commit).
    pub wal_syncs_total: AtomicU64,
    /// Sum of WAL fsync durations, microseconds.
    pub wal_sync_micros_total: AtomicU64,
    /// Entries applied to the state machine.
    pub applied_entries_total: AtomicU64,
    /// Writes answered from the dedup table instead of being applied again.
    pub deduplicated_total: AtomicU64,
    /// Snapshots built.
    pub snapshots_built_total: AtomicU64,
    /// Snapshots installed from a leader.
    pub snapshots_installed_total: AtomicU64,
}

impl StorageStats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
