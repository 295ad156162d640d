//! The change feed: every change to a record gets the next state revision and one
//! [`ChangeEvent`], stored by the state machine under that revision. A watcher reads events
//! in revision order from any replica; since revisions are contiguous and every replica applies
//! the same log, a watcher that resumes from "last revision seen + 1" on another node sees no
//! gap and no duplicate.
//!
//! History is bounded (the state machine compacts the oldest events, see `storage`); a watch
//! from a compacted revision is refused with the oldest revision still available.

use serde::{Deserialize, Serialize};

use crate::block::{Block, BlockTarget};
use crate::catalog::CatalogEntry;
use crate::client_record::ClientRecord;
use crate::consent::{Consent, Grantee};
use crate::ids::{NationalId, OrgNumber};
use crate::locator::LocatorEntry;
use crate::notification::PatientNotification;
use crate::representation::Representation;
use crate::reservation::Reservation;
use crate::time::Timestamp;

/// What changed. New record families append variants (the log and the history store them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A locator entry as it is after the change (a retire shows status retired).
    Locator(LocatorEntry),
    /// A block as it is after the change.
    Block(Block),
    /// A consent as it is after the change.
    Consent(Consent),
    /// A reservation as it is after the change.
    Reservation(Reservation),
    /// A representation as it is after the change (its patient is the represented person).
    Representation(Representation),
    /// An API catalog entry as it is after the change (about no patient).
    CatalogEntry(CatalogEntry),
    /// A token-issuance client as it is after the change (about no patient).
    Client(ClientRecord),
    /// A patient notification (emergency override) as it is after the change.
    Notification(PatientNotification),
}

impl Change {
    /// The patient the change is about, if any.
    pub fn patient(&self) -> Option<&NationalId> {
        match self {
            Change::Locator(e) => Some(&e.key.patient),
            Change::Block(b) => Some(&b.patient),
            Change::Consent(c) => Some(&c.patient),
            Change::Reservation(r) => Some(&r.key.patient),
            Change::Representation(r) => Some(&r.represented),
            Change::CatalogEntry(_) | Change::Client(_) => None,
            Change::Notification(n) => Some(&n.patient),
        }
    }

    /// The organisation the change is about, if any.
    pub fn org(&self) -> Option<&OrgNumber> {
        match self {
            Change::Locator(e) => Some(&e.key.org),
            Change::Block(b) => match &b.target {
                BlockTarget::Organisation(o) => Some(o),
                _ => None,
            },
            Change::Consent(c) => match &c.grantee {
                Grantee::Organisation(o) => Some(o),
                _ => None,
            },
            Change::Reservation(_) | Change::Representation(_) => None,
            Change::CatalogEntry(e) => Some(&e.owner),
            Change::Client(c) => Some(&c.org),
            Change::Notification(n) => n.org.as_ref(),
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
