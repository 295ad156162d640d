//! Opening the RocksDB instance that holds the log, Raft's metadata and the state machine.
//!
//! One database, three column families, one write-ahead log. Sharing the WAL is what makes the
//! durability contract cheap: a synced write makes every earlier write of any family durable
//! too (the WAL is a single sequential file), so state machine writes need no fsync of their
//! own. See the crate docs.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, Options, ReadOptions, WriteOptions};

use crate::error::StoreError;
use crate::keys::{CF_AUDIT, CF_LOG, CF_OUTBOX, CF_RAFT, CF_SM};

/// Opens (creating if missing) the database at `path`.
pub fn open(path: &Path, block_cache_bytes: usize) -> Result<Arc<DB>, StoreError> {
    let mut opts = Options::default();
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

    let cfs = vec![
        ColumnFamilyDescriptor::new(CF_LOG, log_opts),
        ColumnFamilyDescriptor::new(CF_RAFT, Options::default()),
        ColumnFamilyDescriptor::new(CF_SM, sm_opts),
        ColumnFamilyDescriptor::new(CF_OUTBOX, Options::default()),
        ColumnFamilyDescriptor::new(CF_AUDIT, audit_opts),
    ];
    let db = DB::open_cf_descriptors(&opts, path, cfs)?;
    Ok(Arc::new(db))
}

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
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(b"S"), Some(b"T".to_vec()));
        assert_eq!(prefix_end(b"Sa\xff"), Some(b"Sb".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
