//! Read-only access to the state machine for the API: every answer comes from one RocksDB
//! snapshot, so its entries, revision and applied index are mutually consistent.
//!
//! Whether the local state is fresh enough is the caller's business (the node's read path
//! decides linearizable vs bounded-staleness before it reads here).

use std::sync::Arc;

use kartotek_domain::{LocatorEntry, LocatorStatus, NationalId, OrgNumber};
use rocksdb::{DB, Direction, IteratorMode, SnapshotWithThreadMode};

use crate::codec::decode;
use crate::db::cf;
use crate::error::StoreError;
use crate::keys::{
    CF_SM, SM_APPLIED, SM_REVISION, locator_patient_org_prefix, locator_patient_prefix,
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

/// Read handle on the state machine. Cheap to clone.
#[derive(Clone)]
pub struct StateReader {
    db: Arc<DB>,
}

impl StateReader {
    pub(crate) fn new(db: Arc<DB>) -> Self {
        StateReader { db }
    }

    /// The applied log index and the revision, as of now.
    pub fn position(&self) -> Result<(u64, u64), StoreError> {
        view_position(&self.db, &self.db.snapshot())
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
        let view = self.db.snapshot();
        let prefix = match org {
            Some(o) => locator_patient_org_prefix(patient, o),
            None => locator_patient_prefix(patient),
        };
        let mut out = Vec::new();
        for item in view.iterator_cf(sm, IteratorMode::From(&prefix, Direction::Forward)) {
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
fn view_position(db: &DB, view: &SnapshotWithThreadMode<'_, DB>) -> Result<(u64, u64), StoreError> {
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
