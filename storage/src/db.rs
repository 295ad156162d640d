//! Opening the RocksDB instance that holds the log, Raft's metadata and the state machine.
//!
//! One database, three column families, one write-ahead log. Sharing the WAL is what makes the
//! durability contract cheap: a synced write makes every earlier write of any family durable
//! too (the WAL is a single sequential file), so state machine writes need no fsync of their
//! own. See the crate docs.

use std::path::Path;
use std::sync::{Arc, Weak};

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, Options, ReadOptions, WriteOptions};

use crate::error::StoreError;
use crate::keys::{CF_AUDIT, CF_LOG, CF_OUTBOX, CF_RAFT, CF_SM};

/// Opens (creating if missing) the database at `path`.
pub fn open(path: &Path, block_cache_bytes: usize) -> Result<Arc<DB>, StoreError> {
    open_with_stats(path, block_cache_bytes).map(|(db, _)| db)
}

/// [`open`], with RocksDB's statistics tickers on (counters only: no histograms or timers,
/// which cost a clock read per operation) and the handle that reads them.
pub fn open_with_stats(
    path: &Path,
    block_cache_bytes: usize,
) -> Result<(Arc<DB>, EngineStats), StoreError> {
    let mut opts = Options::default();
    opts.enable_statistics();
    opts.set_statistics_level(rocksdb::statistics::StatsLevel::ExceptHistogramOrTimers);
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_keep_log_file_num(4);
    opts.set_max_total_wal_size(256 << 20);
    opts.increase_parallelism(2);

    let mut table = rocksdb::BlockBasedOptions::default();
    let cache = rocksdb::Cache::new_lru_cache(block_cache_bytes);
    table.set_block_cache(&cache);
    table.set_bloom_filter(10.0, false);

    let mut log_opts = Options::default();
    log_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let mut sm_opts = Options::default();
    sm_opts.set_block_based_table_factory(&table);
    sm_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let audit_opts = sm_opts.clone();

    debug_assert_eq!(ALL_FAMILIES.len(), 5, "every family is in ALL_FAMILIES");
    let cfs = vec![
        ColumnFamilyDescriptor::new(CF_LOG, log_opts),
        ColumnFamilyDescriptor::new(CF_RAFT, Options::default()),
        ColumnFamilyDescriptor::new(CF_SM, sm_opts),
        ColumnFamilyDescriptor::new(CF_OUTBOX, Options::default()),
        ColumnFamilyDescriptor::new(CF_AUDIT, audit_opts),
    ];
    let db = Arc::new(DB::open_cf_descriptors(&opts, path, cfs)?);
    let stats = EngineStats {
        opts,
        db: Arc::downgrade(&db),
    };
    Ok((db, stats))
}

/// Reads RocksDB's own figures for the node's metrics: statistics tickers (shared by the
/// options the database was opened with) and database properties. Holds the database
/// weakly, so it never keeps a closed store open.
pub struct EngineStats {
    opts: Options,
    db: Weak<DB>,
}

impl std::fmt::Debug for EngineStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineStats")
    }
}

/// RocksDB's figures at one moment (see [`EngineStats::figures`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineFigures {
    /// Time writers were delayed or stopped by write stalls (L0 files, pending compaction,
    /// memtables), microseconds since open.
    pub stall_micros: u64,
    /// Bytes read by compactions since open.
    pub compaction_read_bytes: u64,
    /// Bytes written by compactions since open.
    pub compaction_write_bytes: u64,
    /// Bytes compactions still have to rewrite, estimated, over every column family.
    pub pending_compaction_bytes: u64,
    /// Writes are stopped right now (`rocksdb.is-write-stopped`).
    pub write_stopped: bool,
    /// The delayed write rate while writes are slowed down, bytes/s (0: not slowed).
    pub delayed_write_rate_bytes: u64,
}

impl EngineStats {
    /// The figures now (zeros once the database is closed).
    pub fn figures(&self) -> EngineFigures {
        use rocksdb::statistics::Ticker;
        let Some(db) = self.db.upgrade() else {
            return EngineFigures::default();
        };
        let int = |name: &str| db.property_int_value(name).ok().flatten().unwrap_or(0);
        let pending_compaction_bytes = ALL_FAMILIES
            .iter()
            .filter_map(|name| db.cf_handle(name))
            .filter_map(|h| {
                db.property_int_value_cf(h, "rocksdb.estimate-pending-compaction-bytes")
                    .ok()
                    .flatten()
            })
            .sum();
        EngineFigures {
            stall_micros: self.opts.get_ticker_count(Ticker::StallMicros),
            compaction_read_bytes: self.opts.get_ticker_count(Ticker::CompactReadBytes),
            compaction_write_bytes: self.opts.get_ticker_count(Ticker::CompactWriteBytes),
            pending_compaction_bytes,
            write_stopped: int("rocksdb.is-write-stopped") != 0,
            delayed_write_rate_bytes: int("rocksdb.actual-delayed-write-rate"),
        }
    }
}

/// Every column family of the database.
const ALL_FAMILIES: [&str; 5] = [CF_LOG, CF_RAFT, CF_SM, CF_OUTBOX, CF_AUDIT];

/// A column family handle, or a clear error if the database lacks it.
pub fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily, StoreError> {
    db.cf_handle(name)
        .ok_or_else(|| StoreError::Corrupt(format!("column family {name} missing")))
}

/// Write options that fsync the WAL before returning.
pub fn synced() -> WriteOptions {
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    wo
}

/// Write options that leave the WAL in the OS page cache; a later synced write or the log
/// flusher makes them durable.
pub fn unsynced() -> WriteOptions {
    WriteOptions::default()
}

/// The smallest key after every key that starts with `prefix` (`None`: no such key, the
/// prefix is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Read options for a scan of the keys that start with `prefix`: the iterator stops at the
/// prefix's end instead of stepping on into the next table. Without the bound, a scan that
/// finds nothing of its own walks every tombstone that follows (deleted dedup index keys,
/// say) until it meets a live key, which made an access decision for a patient without
/// representations cost 30 ms after a few minutes of writes.
pub fn prefix_read_options(prefix: &[u8]) -> ReadOptions {
    let mut ro = ReadOptions::default();
    if let Some(end) = prefix_end(prefix) {
        ro.set_iterate_upper_bound(end);
    }
    ro
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn engine_figures_count_compaction_bytes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (db, stats) =
            super::open_with_stats(dir.path(), 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stats.figures().compaction_write_bytes, 0);
        let sm = super::cf(&db, crate::keys::CF_SM).unwrap_or_else(|e| panic!("{e}"));
        for round in 0..3u32 {
            for i in 0..200u32 {
                db.put_cf(sm, format!("k{i:05}"), format!("v{round}{i:0>100}"))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            db.flush_cf(sm).unwrap_or_else(|e| panic!("{e}"));
        }
        db.compact_range_cf(sm, None::<&[u8]>, None::<&[u8]>);
        let f = stats.figures();
        assert!(f.compaction_write_bytes > 0, "{f:?}");
        assert!(f.compaction_read_bytes > 0, "{f:?}");
        assert!(!f.write_stopped);
        drop(db);
        assert_eq!(
            stats.figures(),
            super::EngineFigures::default(),
            "closed: zeros"
        );
    }

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(b"S"), Some(b"T".to_vec()));
        assert_eq!(prefix_end(b"Sa\xff"), Some(b"Sb".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
