//! Access overrides (emergency access, "break the glass"): the decision is made in apply, from
//! the state as of this entry, so every replica decides the same way; when the decision is a
//! permit by override, the patient's notification is stored with it.
//!
//! The facts are read through the entry transaction: every block, consent and representation
//! of the patient, the reservation for the service, and the catalog entry whose id is the
//! service name.

use kartotek_domain::access::{AccessPolicy, AccessRequest, decide};
use kartotek_domain::notification::notification_for;
use kartotek_domain::record_op::RecordOutcome;
use kartotek_domain::{CatalogId, NationalId, Reservation, ServiceName, Timestamp};

use super::stored::Applied;
use super::{Ctx, EntryTxn, block, consent, representation};
use crate::error::StoreError;
use crate::record_keys::{catalog_key, reservation_key};
use crate::record_reader::OwnedFacts;

/// Decides an override request under `policy` and stores the notification it produces.
pub(super) fn override_access(
    cx: &mut Ctx<'_, '_>,
    request: &AccessRequest,
    policy: &AccessPolicy,
) -> Applied<RecordOutcome> {
    let facts = load_facts(cx.txn, &request.patient, &request.service, cx.now)?;
    // The override is access happening now: never decide it for a time before the state
    // clock, or a block stamped by a leader whose clock ran ahead of this request's node
    // would not count yet.
    let mut request = request.clone();
    request.time = request.time.max(cx.now);
    let decision = decide(&request, &facts.facts(), policy);
    let notification = notification_for(&request, &decision, cx.now, cx.next_revision());
    if let Some(n) = &notification {
        cx.store(n)?;
    }
    Ok(Ok(RecordOutcome::AccessDecided {
        decision: Box::new(decision),
        notification: notification.map(Box::new),
    }))
}

/// What the access decision needs about a patient.
fn load_facts(
    txn: &EntryTxn<'_>,
    patient: &NationalId,
    service: &ServiceName,
    state_clock: Timestamp,
) -> Result<OwnedFacts, StoreError> {
    let blocks = block::load(txn, patient)?;
    let consents = consent::load(txn, patient)?;
    let representations = representation::load(txn, patient)?;
    let reservations: Vec<Reservation> = txn
        .get(&reservation_key(patient, service))?
        .into_iter()
        .collect();
    let catalog_entry = match CatalogId::parse("service", service.as_str()) {
        Ok(id) => txn.get(&catalog_key(&id))?,
        Err(_) => None,
    };
    Ok(OwnedFacts {
        blocks,
        consents,
        reservations,
        representations,
        catalog_entry,
        state_clock,
    })
}
