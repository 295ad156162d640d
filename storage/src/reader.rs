//! Read-only access to the state machine for the API: every answer comes from one RocksDB
//! snapshot, so its entries, revision and applied index are mutually consistent.
//!
//! Whether the local state is fresh enough is the caller's business (the node's read path
//! decides linearizable vs bounded-staleness before it reads here).

use std::sync::Arc;

use kartotek_domain::{ChangeEvent, LocatorEntry, LocatorStatus, NationalId, OrgNumber, Timestamp};
use rocksdb::{DB, Direction, IteratorMode, SnapshotWithThreadMode};

use crate::codec::decode;
use crate::db::{cf, prefix_read_options};
use crate::error::StoreError;
use crate::keys::{
    CF_SM, SM_APPLIED, SM_CLOCK, SM_COMPACTED, SM_REVISION, change_key, locator_org_prefix,
    locator_patient_org_prefix, locator_patient_prefix,
};
use crate::types::LogId;

/// A read answer with the point of history it reflects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult<T> {
    /// The value.
    pub value: T,
    /// State revision of the view.
    pub revision: u64,
    /// Log index applied in the view.
    pub applied_index: u64,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts (opaque to callers); `None` on the last page.
    pub next_cursor: Option<Vec<u8>>,
}

/// A slice of the change history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSlice {
    /// Events from the requested revision on, in revision order, without gaps.
    pub events: Vec<ChangeEvent>,
    /// The state revision of the view: every event up to it has been read when `events` ran
    /// to the end.
    pub revision: u64,
}

/// Why a change-history read failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The requested revision was compacted away.
    #[error("revision {requested} is compacted; the oldest revision still available is {oldest}")]
    Compacted {
        /// What the caller asked for.
        requested: u64,
        /// The oldest revision still kept.
        oldest: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Read handle on the state machine. Cheap to clone.
#[derive(Clone)]
pub struct StateReader {
    pub(crate) db: Arc<DB>,
    revisions: tokio::sync::watch::Receiver<u64>,
    fence: Arc<crate::fence::InstallFence>,
}

impl StateReader {
    pub(crate) fn new(
        db: Arc<DB>,
        revisions: tokio::sync::watch::Receiver<u64>,
        fence: Arc<crate::fence::InstallFence>,
    ) -> Self {
        StateReader {
            db,
            revisions,
            fence,
        }
    }

    /// A consistent view of the state, taken outside any snapshot install
    /// ([`StoreError::Installing`] otherwise; see [`crate::fence`]).
    pub(crate) fn view(&self) -> Result<SnapshotWithThreadMode<'_, DB>, StoreError> {
        self.fence.view(&self.db)
    }

    /// A point read outside any snapshot install.
    pub(crate) fn fenced<T>(
        &self,
        read: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.fence.fenced(read)
    }

    /// A receiver that changes whenever the applied state revision moves (for watchers).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revisions.clone()
    }

    /// The locator entries of an organisation in key order (patient, system), one page of at
    /// most `limit`, starting after `cursor` (from the previous page). Each page is read from
    /// one consistent view; pages of a long listing may reflect different revisions.
    pub fn list_locator_by_org(
        &self,
        org: &OrgNumber,
        include_retired: bool,
        cursor: Option<&[u8]>,
        limit: usize,
    ) -> Result<ReadResult<Page<LocatorEntry>>, StoreError> {
        let sm = cf(&self.db, CF_SM)?;
        let view = self.view()?;
        let prefix = locator_org_prefix(org);
        let mut start = prefix.clone();
        if let Some(c) = cursor {
            start.extend_from_slice(c);
            start.push(0); // strictly after the cursor
        }
        let mut items = Vec::new();
        let mut last = None;
        let mut more = false;
        // Retired entries are skipped without counting towards `limit`; bound the keys one page
        // may examine so a long run of them cannot make a request unbounded.
        let scan_max = limit.saturating_mul(8).max(1_000);
        for (scanned, item) in view
            .iterator_cf_opt(
                sm,
                prefix_read_options(&prefix),
                IteratorMode::From(&start, Direction::Forward),
            )
            .enumerate()
        {
            let (k, _) = item?;
            let Some(rest) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            if items.len() >= limit || scanned >= scan_max {
                more = true;
                break;
            }
            // rest = patient(11) system
            let (patient, system) = rest
                .split_at_checked(11)
                .ok_or_else(|| StoreError::Corrupt("short locator org index key".into()))?;
            let mut lk = Vec::with_capacity(1 + 11 + 9 + system.len());
            lk.push(b'L');
            lk.extend_from_slice(patient);
            lk.extend_from_slice(org.as_str().as_bytes());
            lk.extend_from_slice(system);
            last = Some(rest.to_vec());
            let Some(v) = view.get_cf(sm, &lk)? else {
                return Err(StoreError::Corrupt(
                    "locator org index points at a missing entry".into(),
                ));
            };
            let entry: LocatorEntry = decode(&v)?;
            if include_retired || entry.status == LocatorStatus::Active {
                items.push(entry);
            }
        }
        let next_cursor = if more { last } else { None };
        let (applied_index, revision) = view_position(&self.db, &view)?;
        Ok(ReadResult {
            value: Page { items, next_cursor },
            revision,
            applied_index,
        })
    }

    /// Change events from revision `from` (at least 1), at most `limit`, in revision order.
    pub fn changes(&self, from: u64, limit: usize) -> Result<ChangeSlice, HistoryError> {
        let sm = cf(&self.db, CF_SM)?;
        let view = self.view()?;
        let compacted: u64 = match view.get_cf(sm, SM_COMPACTED).map_err(StoreError::from)? {
            Some(v) => decode(&v)?,
            None => 0,
        };
        if from <= compacted {
            return Err(HistoryError::Compacted {
                requested: from,
                oldest: compacted + 1,
            });
        }
        let (_, revision) = view_position(&self.db, &view)?;
        let mut events = Vec::new();
        let start = change_key(from);
        for item in view.iterator_cf_opt(
            sm,
            prefix_read_options(b"C"),
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (k, v) = item.map_err(StoreError::from)?;
            if k.first() != Some(&b'C') || events.len() >= limit {
                break;
            }
            let event: ChangeEvent = decode(&v)?;
            // Invariant: the history has no gaps.
            let expected = from + events.len() as u64;
            if event.revision != expected {
                return Err(StoreError::Corrupt(format!(
                    "change history gap: expected revision {expected}, found {}",
                    event.revision
                ))
                .into());
            }
            events.push(event);
        }
        Ok(ChangeSlice { events, revision })
    }

    /// The applied log index and the revision, as of now.
    pub fn position(&self) -> Result<(u64, u64), StoreError> {
        view_position(&self.db, &self.view()?)
    }

    /// The locator entries of a patient (optionally at one organisation), at most `limit`.
    pub fn lookup_locator(
        &self,
        patient: &NationalId,
        org: Option<&OrgNumber>,
        include_retired: bool,
        limit: usize,
    ) -> Result<ReadResult<Vec<LocatorEntry>>, StoreError> {
        let sm = cf(&self.db, CF_SM)?;
        let view = self.view()?;
        let prefix = match org {
            Some(o) => locator_patient_org_prefix(patient, o),
            None => locator_patient_prefix(patient),
        };
        let mut out = Vec::new();
        for item in view.iterator_cf_opt(
            sm,
            prefix_read_options(&prefix),
            IteratorMode::From(&prefix, Direction::Forward),
        ) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let entry: LocatorEntry = decode(&v)?;
            if include_retired || entry.status == LocatorStatus::Active {
                out.push(entry);
            }
        }
        let (applied_index, revision) = view_position(&self.db, &view)?;
        Ok(ReadResult {
            value: out,
            revision,
            applied_index,
        })
    }
}

/// The applied log index and the revision in a view.
/// The state machine's clock in `view`: the latest leader-stamped time applied (it never goes
/// back). A decision about "now" made from this view must not use an earlier time, or a
/// record that took effect at a stamp ahead of this node's clock would not yet count.
pub(crate) fn view_clock(
    db: &DB,
    view: &SnapshotWithThreadMode<'_, DB>,
) -> Result<Timestamp, StoreError> {
    let sm = cf(db, CF_SM)?;
    Ok(match view.get_cf(sm, SM_CLOCK)? {
        Some(v) => decode(&v)?,
        None => Timestamp::default(),
    })
}

pub(crate) fn view_position(
    db: &DB,
    view: &SnapshotWithThreadMode<'_, DB>,
) -> Result<(u64, u64), StoreError> {
    let sm = cf(db, CF_SM)?;
    let applied: Option<LogId> = match view.get_cf(sm, SM_APPLIED)? {
        Some(v) => decode(&v)?,
        None => None,
    };
    let revision: u64 = match view.get_cf(sm, SM_REVISION)? {
        Some(v) => decode(&v)?,
        None => 0,
    };
    Ok((applied.map(|l| l.index).unwrap_or(0), revision))
}
