//! Opening the RocksDB instance that holds the log, Raft's metadata and the state machine.
//!
//! One database, three column families, one write-ahead log. Sharing the WAL is what makes the
//! durability contract cheap: a synced write makes every earlier write of any family durable
//! too (the WAL is a single sequential file), so state machine writes need no fsync of their
//! own. See the crate docs.

use std::path::Path;
use std::sync::{Arc, Weak};

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, Options, ReadOptions, SliceTransform, WriteOptions,
};

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
    // Patient-keyed families of the state machine ('L', 'B', 'C'...: a tag byte and the
    // 11-digit national id) share their first SM_PREFIX_BYTES: the tables keep a bloom filter
    // of those prefixes too, so a scan of one patient's keys seeks only in the files (and
    // memtables) that hold some, instead of in every file of every level. Point reads keep
    // the whole-key filter. Tables written before this have no prefix filter and are simply
    // read without one (RocksDB records the extractor per table).
    sm_opts.set_prefix_extractor(SliceTransform::create_fixed_prefix(SM_PREFIX_BYTES));
    sm_opts.set_memtable_prefix_bloom_ratio(0.05);

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

/// The length of the key prefix the `sm` family's tables filter on (see [`open`]): a tag
/// byte and an 11-digit national id.
pub const SM_PREFIX_BYTES: usize = 12;

/// Read options for a scan of the keys that start with `prefix`: the iterator stops at the
/// prefix's end instead of stepping on into the next table. Without the bound, a scan that
/// finds nothing of its own walks every tombstone that follows (deleted dedup index keys,
/// say) until it meets a live key, which made an access decision for a patient without
/// representations cost 30 ms after a few minutes of writes.
///
/// A `prefix` of at least [`SM_PREFIX_BYTES`] lies inside one filtered prefix, so the scan
/// seeks in prefix mode (the `sm` family's prefix bloom skips files without it); every
/// key it can return shares those bytes, so nothing is skipped that it should see. A
/// shorter prefix spans many filtered prefixes and seeks in total order: in prefix mode a
/// seek would skip every file without the *seek key's* prefix and lose later keys. Any
/// seek start inside `prefix` is fine either way (it begins with `prefix`).
pub fn prefix_read_options(prefix: &[u8]) -> ReadOptions {
    let mut ro = ReadOptions::default();
    if prefix.len() >= SM_PREFIX_BYTES {
        ro.set_prefix_same_as_start(true);
    } else {
        ro.set_total_order_seek(true);
    }
    if let Some(end) = prefix_end(prefix) {
        ro.set_iterate_upper_bound(end);
    }
    ro
}

/// Read options for a scan in key order across prefixes (a whole family): no prefix filter.
pub fn total_order_read_options() -> ReadOptions {
    let mut ro = ReadOptions::default();
    ro.set_total_order_seek(true);
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

    /// Scans with [`super::prefix_read_options`] see exactly the keys a brute-force filter
    /// sees, for prefixes longer and shorter than the filtered one and seeks from inside
    /// them, with keys spread over several tables and the memtable (where a seek in prefix
    /// mode would skip tables that lack the seek key's prefix).
    #[test]
    fn prefix_scans_see_every_key_across_tables() {
        use proptest::prelude::*;
        use proptest::strategy::ValueTree;
        use rocksdb::{Direction, IteratorMode};
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (db, stats) =
            super::open_with_stats(dir.path(), 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        let sm = super::cf(&db, crate::keys::CF_SM).unwrap_or_else(|e| panic!("{e}"));
        // Tag byte + 11 digits (+ a suffix), few distinct patients so prefixes repeat.
        let key = (0u8..3, 0u32..40, 0u32..5).prop_map(|(tag, patient, suffix)| {
            let mut k = vec![b'B' + tag];
            k.extend_from_slice(format!("{:011}", patient * 7919).as_bytes());
            if suffix > 0 {
                k.extend_from_slice(format!("/{suffix}").as_bytes());
            }
            k
        });
        let mut all = std::collections::BTreeSet::new();
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        for round in 0..4 {
            let keys = proptest::collection::vec(key.clone(), 1..60)
                .new_tree(&mut runner)
                .unwrap_or_else(|e| panic!("{e}"))
                .current();
            for k in keys {
                db.put_cf(sm, &k, b"v").unwrap_or_else(|e| panic!("{e}"));
                all.insert(k);
            }
            if round < 3 {
                db.flush_cf(sm).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let scan = |prefix: &[u8], from: &[u8]| -> Vec<Vec<u8>> {
            db.iterator_cf_opt(
                sm,
                super::prefix_read_options(prefix),
                IteratorMode::From(from, Direction::Forward),
            )
            .map(|item| item.unwrap_or_else(|e| panic!("{e}")).0.to_vec())
            .take_while(|k| k.starts_with(prefix))
            .collect()
        };
        let mut checked = 0;
        for k in all.iter() {
            for len in [1, 5, super::SM_PREFIX_BYTES, k.len()] {
                let prefix = &k[..len.min(k.len())];
                let want: Vec<Vec<u8>> = all
                    .iter()
                    .filter(|x| x.starts_with(prefix) && x.as_slice() >= k.as_slice())
                    .cloned()
                    .collect();
                assert_eq!(scan(prefix, k), want, "prefix {prefix:?} from {k:?}");
                let whole: Vec<Vec<u8>> = all
                    .iter()
                    .filter(|x| x.starts_with(prefix))
                    .cloned()
                    .collect();
                assert_eq!(scan(prefix, prefix), whole, "prefix {prefix:?}");
                checked += 1;
            }
        }
        assert!(checked > 40, "{checked}");
        // ...and the long-prefix scans did use the filter: some table was skipped.
        use rocksdb::statistics::Ticker;
        let filtered = stats
            .opts
            .get_ticker_count(Ticker::NonLastLevelSeekFiltered)
            + stats.opts.get_ticker_count(Ticker::LastLevelSeekFiltered);
        assert!(filtered > 0, "no seek was filtered by the prefix bloom");
    }

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(b"S"), Some(b"T".to_vec()));
        assert_eq!(prefix_end(b"Sa\xff"), Some(b"Sb".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
