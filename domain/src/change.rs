//! The change feed: every change to a record gets the next state revision and one
//! [`ChangeEvent`], stored by the state machine under that revision. A watcher reads events
//! in revision order from any replica; since revisions are contiguous and every replica applies
//! the same log, a watcher that resumes from "last revision seen + 1" on another node sees no
//! gap and no duplicate.
//!
//! History is bounded (the state machine compacts the oldest events, see `storage`); a watch
//! from a compacted revision is refused with the oldest revision still available.

use serde::{Deserialize, Serialize};

use crate::ids::{NationalId, OrgNumber};
use crate::locator::LocatorEntry;
use crate::time::Timestamp;

/// What changed. New record families append variants (the log and the history store them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A locator entry as it is after the change (a retire shows status retired).
    Locator(LocatorEntry),
}

impl Change {
    /// The patient the change is about, if any.
    pub fn patient(&self) -> Option<&NationalId> {
        match self {
            Change::Locator(e) => Some(&e.key.patient),
        }
    }

    /// The organisation the change is about, if any.
    pub fn org(&self) -> Option<&OrgNumber> {
        match self {
            Change::Locator(e) => Some(&e.key.org),
        }
    }
}

/// One change at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// The state revision the change produced.
    pub revision: u64,
    /// Leader time of the change.
    pub at: Timestamp,
    /// The change.
    pub change: Change,
}

/// Which events a watcher wants; unset fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    /// Only changes about this patient.
    pub patient: Option<NationalId>,
    /// Only changes at this organisation.
    pub org: Option<OrgNumber>,
}

impl ChangeFilter {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &ChangeEvent) -> bool {
        let patient_ok = self
            .patient
            .as_ref()
            .is_none_or(|p| event.change.patient() == Some(p));
        let org_ok = self
            .org
            .as_ref()
            .is_none_or(|o| event.change.org() == Some(o));
        patient_ok && org_ok
    }
}
