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
    /// WAL fsyncs by duration: `wal_sync_buckets[i]` counts the fsyncs that took at most
    /// [`WAL_SYNC_BUCKETS_MICROS`]`[i]` (not cumulative; the last slot is the overflow).
    pub wal_sync_buckets: [AtomicU64; WAL_SYNC_BUCKETS_MICROS.len() + 1],
}

/// Upper bounds of the WAL fsync histogram's buckets, microseconds.
pub const WAL_SYNC_BUCKETS_MICROS: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

impl StorageStats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts one WAL fsync of `micros`.
    pub fn observe_wal_sync(&self, micros: u64) {
        Self::add(&self.wal_syncs_total, 1);
        Self::add(&self.wal_sync_micros_total, micros);
        let slot = WAL_SYNC_BUCKETS_MICROS
            .iter()
            .position(|&le| micros <= le)
            .unwrap_or(WAL_SYNC_BUCKETS_MICROS.len());
        Self::add(&self.wal_sync_buckets[slot], 1);
    }

    /// The WAL fsync histogram as `prometheus-client` encodes one: `(upper bound in
    /// seconds, count in that bucket alone)`, the overflow last with bound `f64::MAX`
    /// (`+Inf`); the encoder adds them up.
    pub fn wal_sync_histogram(&self) -> Vec<(f64, u64)> {
        WAL_SYNC_BUCKETS_MICROS
            .iter()
            .map(|&le| le as f64 / 1e6)
            .chain(std::iter::once(f64::MAX))
            .zip(&self.wal_sync_buckets)
            .map(|(le, n)| (le, Self::get(n)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::StorageStats;

    #[test]
    fn wal_sync_histogram_puts_each_fsync_in_one_bucket() {
        let s = StorageStats::default();
        for micros in [10, 50, 51, 3_000, 5_000_000] {
            s.observe_wal_sync(micros);
        }
        let h = s.wal_sync_histogram();
        assert_eq!(h.len(), 15);
        assert_eq!(h[0], (50e-6, 2));
        assert_eq!(h[1], (100e-6, 1));
        assert_eq!(h[6].1, 1, "3 ms is in the 5 ms bucket");
        assert_eq!(h.last(), Some(&(f64::MAX, 1)), "5 s is only in +Inf");
        assert_eq!(h.iter().map(|b| b.1).sum::<u64>(), 5);
        assert_eq!(StorageStats::get(&s.wal_syncs_total), 5);
        assert_eq!(StorageStats::get(&s.wal_sync_micros_total), 5_003_111);
    }
}
