//! Applying [`RecordOp`]s: the privacy-settings record families, API catalog entries,
//! clients and patient notifications, stored in the `sm` column family under their own key
//! prefixes (see `record_keys.rs`). Every change moves the state revision by one and records a
//! change event, like locator entries; an idempotent repeat writes nothing.
//!
//! The rules are the domain's pure `apply_*` functions; this module only loads what they need
//! (with point reads through the entry transaction, so a batch sees its own earlier writes)
//! and stores what they return. Apply reads nothing but the state and the command (time is
//! the leader's stamp `now`), so every replica computes the same result.

use kartotek_domain::access::decide;
use kartotek_domain::block::{apply_block_add, apply_block_revoke};
use kartotek_domain::catalog::{
    apply_catalog_register, apply_catalog_set_lifecycle, apply_catalog_update,
};
use kartotek_domain::client_record::{apply_client_register, apply_client_update};
use kartotek_domain::consent::{
    apply_consent_deny, apply_consent_grant, apply_consent_grant_request, apply_consent_request,
    apply_consent_withdraw,
};
use kartotek_domain::notification::{
    PatientNotification, apply_notification_ack, notification_for,
};
use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::representation::{apply_representation_grant, apply_representation_revoke};
use kartotek_domain::reservation::{apply_reservation_withdraw, apply_reserve};
use kartotek_domain::{
    ApplyError, Block, CatalogEntry, CatalogId, Change, ClientRecord, Consent, NationalId,
    Representation, Reservation, ServiceName, Timestamp,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;
use crate::record_keys::*;
use crate::record_reader::OwnedFacts;
use crate::state_machine::{EntryTxn, Meta, record_change};

/// The answer of one record operation: the outer `Result` is a storage failure (the node
/// stops applying), the inner one the command's answer.
type Applied = Result<Result<RecordOutcome, ApplyError>, StoreError>;

/// Applies one record operation inside the entry's transaction.
pub(crate) fn apply_record(
    txn: &mut EntryTxn<'_>,
    meta: &mut Meta,
    op: &RecordOp,
    now: Timestamp,
) -> Applied {
    let next = meta.revision + 1;
    match op {
        RecordOp::BlockAdd(cmd) => {
            let blocks: Vec<Block> = load_list(txn, IdList::Blocks, &cmd.patient, |id| {
                block_key(&cmd.patient, id)
            })?;
            let r = apply_block_add(&blocks, cmd, now, next);
            finish(
                r,
                |b, changed| RecordOutcome::Block {
                    block: Box::new(b),
                    changed,
                },
                |b| store_block(txn, meta, now, b),
            )
        }
        RecordOp::BlockRevoke(cmd) => {
            let existing: Option<Block> = txn.get(&block_key(&cmd.patient, cmd.block_id))?;
            let r = apply_block_revoke(existing.as_ref(), cmd, now, next);
            finish(
                r,
                |b, changed| RecordOutcome::Block {
                    block: Box::new(b),
                    changed,
                },
                |b| store_block(txn, meta, now, b),
            )
        }
        RecordOp::ConsentRequest(cmd) => {
            let p = &cmd.terms.patient;
            let consents: Vec<Consent> =
                load_list(txn, IdList::Consents, p, |id| consent_key(p, id))?;
            let r = apply_consent_request(&consents, cmd, now, next);
            finish(r, consent_outcome, |c| store_consent(txn, meta, now, c))
        }
        RecordOp::ConsentGrant(cmd) => {
            let p = &cmd.terms.patient;
            let consents: Vec<Consent> =
                load_list(txn, IdList::Consents, p, |id| consent_key(p, id))?;
            let r = apply_consent_grant(&consents, cmd, now, next);
            finish(r, consent_outcome, |c| store_consent(txn, meta, now, c))
        }
        RecordOp::ConsentGrantRequest(cmd)
        | RecordOp::ConsentDeny(cmd)
        | RecordOp::ConsentWithdraw(cmd) => {
            let existing: Option<Consent> = txn.get(&consent_key(&cmd.patient, cmd.consent_id))?;
            let apply = match op {
                RecordOp::ConsentGrantRequest(_) => apply_consent_grant_request,
                RecordOp::ConsentDeny(_) => apply_consent_deny,
                _ => apply_consent_withdraw,
            };
            let r = apply(existing.as_ref(), cmd, now, next);
            finish(r, consent_outcome, |c| store_consent(txn, meta, now, c))
        }
        RecordOp::Reserve(cmd) => {
            let key = reservation_key(&cmd.key.patient, &cmd.key.service);
            let existing: Option<Reservation> = txn.get(&key)?;
            let r = apply_reserve(existing.as_ref(), cmd, now, next);
            finish(r, reservation_outcome, |v| {
                store_reservation(txn, meta, now, v)
            })
        }
        RecordOp::ReservationWithdraw(cmd) => {
            let key = reservation_key(&cmd.key.patient, &cmd.key.service);
            let existing: Option<Reservation> = txn.get(&key)?;
            let r = apply_reservation_withdraw(existing.as_ref(), cmd, now, next);
            finish(r, reservation_outcome, |v| {
                store_reservation(txn, meta, now, v)
            })
        }
        RecordOp::RepresentationGrant(cmd) => {
            let b = &cmd.represented;
            let records: Vec<Representation> =
                load_list(txn, IdList::Represented, b, |id| representation_key(b, id))?;
            let r = apply_representation_grant(&records, cmd, now, next);
            finish(r, representation_outcome, |v| {
                store_representation(txn, meta, now, v)
            })
        }
        RecordOp::RepresentationRevoke(cmd) => {
            let key = representation_key(&cmd.represented, cmd.representation_id);
            let existing: Option<Representation> = txn.get(&key)?;
            let r = apply_representation_revoke(existing.as_ref(), cmd, now, next);
            finish(r, representation_outcome, |v| {
                store_representation(txn, meta, now, v)
            })
        }
        RecordOp::CatalogRegister(cmd) => {
            let existing: Option<CatalogEntry> = txn.get(&catalog_key(&cmd.id))?;
            let r = apply_catalog_register(existing.as_ref(), cmd, now, next);
            finish(r, catalog_outcome, |e| store_catalog(txn, meta, now, e))
        }
        RecordOp::CatalogUpdate(cmd) => {
            let existing: Option<CatalogEntry> = txn.get(&catalog_key(&cmd.id))?;
            let r = apply_catalog_update(existing.as_ref(), cmd, now, next);
            finish(r, catalog_outcome, |e| store_catalog(txn, meta, now, e))
        }
        RecordOp::CatalogSetLifecycle(cmd) => {
            let existing: Option<CatalogEntry> = txn.get(&catalog_key(&cmd.id))?;
            let r = apply_catalog_set_lifecycle(existing.as_ref(), cmd, now, next);
            finish(r, catalog_outcome, |e| store_catalog(txn, meta, now, e))
        }
        RecordOp::ClientRegister(cmd) => {
            let existing: Option<ClientRecord> = txn.get(&client_key(&cmd.client_id))?;
            let r = apply_client_register(existing.as_ref(), cmd, now, next);
            finish(r, client_outcome, |c| store_client(txn, meta, now, c))
        }
        RecordOp::ClientUpdate(cmd) => {
            let existing: Option<ClientRecord> = txn.get(&client_key(&cmd.client_id))?;
            let r = apply_client_update(existing.as_ref(), cmd, now, next);
            finish(r, client_outcome, |c| store_client(txn, meta, now, c))
        }
        RecordOp::AccessOverride { request, policy } => {
            let facts = load_facts(txn, &request.patient, &request.service, now)?;
            // The override is access happening now: never decide it for a time before the
            // state clock, or a block stamped by a leader whose clock ran ahead of this
            // request's node would not count yet.
            let mut request = request.clone();
            request.time = request.time.max(now);
            let request = &request;
            let decision = decide(request, &facts.facts(), policy);
            let notification = notification_for(request, &decision, now, next);
            if let Some(n) = &notification {
                store_notification(txn, meta, now, n)?;
            }
            Ok(Ok(RecordOutcome::AccessDecided {
                decision: Box::new(decision),
                notification: notification.map(Box::new),
            }))
        }
        RecordOp::NotificationAck(cmd) => {
            let key = notification_key(&cmd.patient, cmd.notification_id);
            let existing: Option<PatientNotification> = txn.get(&key)?;
            let r = apply_notification_ack(existing.as_ref(), cmd, now, next);
            finish(
                r,
                |n, changed| RecordOutcome::Notification {
                    notification: Box::new(n),
                    changed,
                },
                |n| store_notification(txn, meta, now, n),
            )
        }
    }
}

/// Turns a domain apply result into the answer, storing the record first when it changed.
fn finish<T>(
    result: Result<(T, bool), ApplyError>,
    outcome: impl FnOnce(T, bool) -> RecordOutcome,
    store: impl FnOnce(&T) -> Result<(), StoreError>,
) -> Applied {
    match result {
        Ok((record, changed)) => {
            if changed {
                store(&record)?;
            }
            Ok(Ok(outcome(record, changed)))
        }
        Err(e) => Ok(Err(e)),
    }
}

fn consent_outcome(consent: Consent, changed: bool) -> RecordOutcome {
    RecordOutcome::Consent {
        consent: Box::new(consent),
        changed,
    }
}

fn reservation_outcome(reservation: Reservation, changed: bool) -> RecordOutcome {
    RecordOutcome::Reservation {
        reservation: Box::new(reservation),
        changed,
    }
}

fn representation_outcome(representation: Representation, changed: bool) -> RecordOutcome {
    RecordOutcome::Representation {
        representation: Box::new(representation),
        changed,
    }
}

fn catalog_outcome(entry: CatalogEntry, changed: bool) -> RecordOutcome {
    RecordOutcome::Catalog {
        entry: Box::new(entry),
        changed,
    }
}

fn client_outcome(client: ClientRecord, changed: bool) -> RecordOutcome {
    RecordOutcome::Client {
        client: Box::new(client),
        changed,
    }
}

/// Loads a person's records through their id list (oldest first).
fn load_list<T: DeserializeOwned>(
    txn: &EntryTxn<'_>,
    list: IdList,
    person: &NationalId,
    key_of: impl Fn(u64) -> Vec<u8>,
) -> Result<Vec<T>, StoreError> {
    let ids: Vec<u64> = txn.get(&id_list_key(list, person))?.unwrap_or_default();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match txn.get(&key_of(id))? {
            Some(v) => out.push(v),
            None => {
                return Err(StoreError::Corrupt(format!(
                    "id list {list:?} names record {id}, which is missing"
                )));
            }
        }
    }
    Ok(out)
}

/// Appends a new record's id to a person's id list.
fn push_id(
    txn: &mut EntryTxn<'_>,
    list: IdList,
    person: &NationalId,
    id: u64,
) -> Result<(), StoreError> {
    let key = id_list_key(list, person);
    let mut ids: Vec<u64> = txn.get(&key)?.unwrap_or_default();
    // Invariant: ids are revisions, so a new one is above every listed one.
    assert!(
        ids.last().is_none_or(|last| *last < id),
        "id list {list:?} out of order"
    );
    ids.push(id);
    txn.put(&key, &ids)
}

/// Writes a changed record and records its change at the next revision.
fn commit<T: Serialize>(
    txn: &mut EntryTxn<'_>,
    meta: &mut Meta,
    now: Timestamp,
    key: &[u8],
    record: &T,
    mod_revision: u64,
    change: Change,
) -> Result<(), StoreError> {
    // Invariant: a changed record carries the revision its change is recorded under.
    assert_eq!(
        mod_revision,
        meta.revision + 1,
        "record revision out of step with the state revision"
    );
    txn.put(key, record)?;
    record_change(txn, meta, now, change)
}

fn store_block(
    txn: &mut EntryTxn<'_>,
    meta: &mut Meta,
    now: Timestamp,
    b: &Block,
) -> Result<(), StoreError> {
    if b.create_revision == b.mod_revision {
        push_id(txn, IdList::Blocks, &b.patient, b.id)?;
    }
    let key = block_key(&b.patient, b.id);
    commit(
        txn,
        meta,
        now,
        &key,
        b,
        b.mod_revision,
        Change::Block(b.clone()),
    )
}

fn store_consent(
    txn: &mut EntryTxn<'_>,
    meta: &mut Meta,
    now: Timestamp,
    c: &Consent,
) -> Result<(), StoreError> {
    if c.create_revision == c.mod_revision {
        push_id(txn, IdList::Consents, &c.patient, c.id)?;
    }
    let key = consent_key(&c.patient, c.id);
    commit(
        txn,
        meta,
        now,
        &key,
        c,
        c.mod_revision,
        Change::Consent(c.clone()),
    )
}

fn store_reservation(
    txn: &mut EntryTxn<'_>,
    meta: &mut Meta,
    now: Timestamp,
    r: &Reservation,
) -> Result<(), StoreError> {
    let key = reservation_key(&r.key.patient, &r.key.service);
    let change = Change::Reservation(r.clone());
    commit(txn, meta, now, &key, r, r.mod_revision, change)
}

fn store_representation(
    txn: &mut EntryTxn<'_>,
    meta: &mut Meta,
    now: Timestamp,
    r: &Representation,
) -> Result<(), StoreError> {
    if r.create_revision == r.mod_revision {
        push_id(txn, IdList::Represented, &r.represented, r.id)?;
        txn.put_raw(
            &representative_index_key(&r.representative, r.id),
            r.represented.as_str().as_bytes(),
        )?;
    }
    let key = representation_key(&r.represented, r.id);
    let change = Change::Representation(r.clone());
    commit(txn, meta, now, &key, r, r.mod_revision, change)
}

fn store_catalog(
    txn: &mut EntryTxn<'_>,
    meta: &mut Meta,
    now: Timestamp,
    e: &CatalogEntry,
) -> Result<(), StoreError> {
    let key = catalog_key(&e.id);
    let change = Change::CatalogEntry(e.clone());
    commit(txn, meta, now, &key, e, e.mod_revision, change)
}

fn store_client(
    txn: &mut EntryTxn<'_>,
    meta: &mut Meta,
    now: Timestamp,
    c: &ClientRecord,
) -> Result<(), StoreError> {
    let key = client_key(&c.client_id);
    commit(
        txn,
        meta,
        now,
        &key,
        c,
        c.mod_revision,
        Change::Client(c.clone()),
    )
}

fn store_notification(
    txn: &mut EntryTxn<'_>,
    meta: &mut Meta,
    now: Timestamp,
    n: &PatientNotification,
) -> Result<(), StoreError> {
    let key = notification_key(&n.patient, n.id);
    let change = Change::Notification(n.clone());
    commit(txn, meta, now, &key, n, n.mod_revision, change)
}

/// What the access decision needs about a patient, read through the entry transaction: every
/// block, consent and representation of the patient, the reservation for `service`, and the
/// catalog entry whose id is the service name.
fn load_facts(
    txn: &EntryTxn<'_>,
    patient: &NationalId,
    service: &ServiceName,
    state_clock: Timestamp,
) -> Result<OwnedFacts, StoreError> {
    let blocks = load_list(txn, IdList::Blocks, patient, |id| block_key(patient, id))?;
    let consents = load_list(txn, IdList::Consents, patient, |id| {
        consent_key(patient, id)
    })?;
    let representations = load_list(txn, IdList::Represented, patient, |id| {
        representation_key(patient, id)
    })?;
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
