//! Exactly-once writes: a command with a request id stores its [`Response`] in the dedup table
//! (`D request id` → (stamp, response, fingerprint), with the expiry index
//! `T stamp request id`); the same id again gets that response back without being applied.
//! The node proposes [scoped](kartotek_domain::RequestId::scoped) ids: the table is keyed by
//! the caller-and-method part, and an id whose request fingerprint differs from the stored
//! one is refused (`Conflict`, nothing applied) rather than given another request's answer. The table is bounded by age
//! (`dedup_ttl_ms`, measured in leader-stamped time) and size (`dedup_entries_max`); both
//! evictions happen during apply, so all replicas evict the same entries.

use std::sync::atomic::Ordering;

use kartotek_domain::{RequestId, Response, Timestamp};
use rocksdb::{Direction, IteratorMode};

use super::{Applier, EntryTxn, Meta};
use crate::db::{cf, prefix_read_options};
use crate::error::StoreError;
use crate::keys::{CF_SM, DEDUP_TIME_PREFIX, dedup_key, dedup_time_key, split_dedup_time_key};
use crate::stats::StorageStats;

/// Remembers the answer to request `id`, applied at `now`.
pub(super) fn remember(
    txn: &mut EntryTxn<'_>,
    meta: &mut Meta,
    id: &RequestId,
    now: Timestamp,
    response: &Response,
) -> Result<(), StoreError> {
    let remembered: Remembered = (now, response.clone(), id.fingerprint().map(str::to_owned));
    txn.put(&dedup_key(id), &remembered)?;
    txn.put_raw(&dedup_time_key(now, id), &[])?;
    meta.dedup_count += 1;
    Ok(())
}

/// A dedup table value: when, the answer, and the request's fingerprint (of a scoped id).
type Remembered = (Timestamp, Response, Option<String>);

/// What a request id already applied finds.
pub(super) enum Replay {
    /// The answer to the same request, marked as deduplicated.
    Answer(Response),
    /// The id was used (by the same caller, for the same method) for another request.
    OtherRequest,
}

impl Applier {
    /// What request `id` finds if it was applied before (see [`Replay`]).
    pub(super) fn replay(
        &self,
        txn: &EntryTxn<'_>,
        id: &RequestId,
    ) -> Result<Option<Replay>, StoreError> {
        let Some((_, earlier, fingerprint)) = txn.get::<Remembered>(&dedup_key(id))? else {
            return Ok(None);
        };
        if fingerprint.as_deref() != id.fingerprint() {
            return Ok(Some(Replay::OtherRequest));
        }
        StorageStats::add(&self.stats.deduplicated_total, 1);
        Ok(Some(Replay::Answer(Response {
            deduplicated: true,
            ..earlier
        })))
    }

    /// Forgets request ids older than the TTL, and the oldest ones beyond the size bound.
    ///
    /// The scan starts at the stamp of the last evicted entry, not at the start of the `T`
    /// table: every key before it was evicted (the scan goes in key order and stops at the
    /// first key it keeps), and new keys are stamped with the state clock, which never goes
    /// back, so none is ever inserted before it.
    pub(super) fn evict_dedup(
        &self,
        txn: &mut EntryTxn<'_>,
        meta: &mut Meta,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let cutoff = Timestamp(now.0.saturating_sub(self.config.dedup_ttl_ms));
        let sm = cf(&self.db, CF_SM)?;
        let mut start = DEDUP_TIME_PREFIX.to_vec();
        let from_stamp = self.dedup_scan_from_stamp.load(Ordering::Relaxed);
        start.extend_from_slice(&from_stamp.to_be_bytes());
        let it = self.db.iterator_cf_opt(
            sm,
            prefix_read_options(DEDUP_TIME_PREFIX),
            IteratorMode::From(&start, Direction::Forward),
        );
        for (evicted, item) in it.enumerate() {
            if evicted >= self.config.dedup_evictions_per_entry_max {
                break;
            }
            let (k, _) = item?;
            let Some((stamp, dkey)) = split_dedup_time_key(&k) else {
                break; // past the T table
            };
            let over_size = meta.dedup_count >= self.config.dedup_entries_max;
            if stamp >= cutoff && !over_size {
                break;
            }
            debug_assert!(stamp.0.max(0) as u64 >= from_stamp);
            txn.delete(&k)?;
            txn.delete(&dkey)?;
            meta.dedup_count = meta.dedup_count.saturating_sub(1);
            self.dedup_scan_from_stamp
                .store(stamp.0.max(0) as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}
