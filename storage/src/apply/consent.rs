//! Consents: how a [`Consent`] is stored (key `N patient id`, joined to the patient's
//! `Consents` id list when created) and the glue from the request and grant commands (checked
//! against all the patient's consents) and the answers to one consent (grant a request, deny,
//! withdraw) to the domain rules in `kartotek_domain::consent`.
//!
//! Every stored version that can fall due (a pending request, a grant with an end) also
//! writes an entry in the due index (`E`, see `record_keys.rs`). [`expire_due`] applies the
//! leader's sweep: for each candidate entry due by the command's stamp it stores the consent
//! as expired when it still is due, and removes the entry either way (an entry of a version
//! that has since changed is stale, and goes without touching the consent).

use kartotek_domain::consent::{
    ConsentAnswer, ConsentDue, ConsentExpireDue, ConsentGrant, ConsentRequest,
    apply_consent_expire_due, apply_consent_grant, apply_consent_request,
};
use kartotek_domain::record_op::RecordOutcome;
use kartotek_domain::{Change, Consent, NationalId};

use super::stored::{Applied, Rule, load_list, stored_record};
use super::{Ctx, EntryTxn};
use crate::error::StoreError;
use crate::record_keys::{IdList, consent_due_key, consent_key};

stored_record! {
    Consent => RecordOutcome,
    key: |r| consent_key(&r.patient, r.id),
    change: Change::Consent,
    outcome: |r, changed| RecordOutcome::Consent { consent: Box::new(r), changed },
    fn id_list(&self) -> Option<(IdList, &NationalId, u64)> {
        Some((IdList::Consents, &self.patient, self.id))
    }
    fn index_entries(&self, _created: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.due_at()
            .map(|due_at| {
                let due = ConsentDue {
                    due_at,
                    patient: self.patient.clone(),
                    consent_id: self.id,
                };
                (consent_due_key(&due), Vec::new())
            })
            .into_iter()
            .collect()
    }
}

/// Every consent of a patient, oldest first.
pub(super) fn load(txn: &EntryTxn<'_>, patient: &NationalId) -> Result<Vec<Consent>, StoreError> {
    load_list(txn, IdList::Consents, patient, consent_key)
}

/// Records a consent request.
pub(super) fn request(cx: &mut Ctx<'_, '_>, cmd: &ConsentRequest) -> Applied<RecordOutcome> {
    let consents = load(cx.txn, &cmd.terms.patient)?;
    cx.among(&consents, apply_consent_request, cmd)
}

/// Records a consent the patient gives directly.
pub(super) fn grant(cx: &mut Ctx<'_, '_>, cmd: &ConsentGrant) -> Applied<RecordOutcome> {
    let consents = load(cx.txn, &cmd.terms.patient)?;
    cx.among(&consents, apply_consent_grant, cmd)
}

/// Answers an existing consent with `rule`: grant the request, deny or withdraw.
pub(super) fn answer(
    cx: &mut Ctx<'_, '_>,
    rule: Rule<Consent, ConsentAnswer>,
    cmd: &ConsentAnswer,
) -> Applied<RecordOutcome> {
    cx.update(&consent_key(&cmd.patient, cmd.consent_id), rule, cmd)
}

/// Applies the leader's expiry sweep (see the module docs). Entries not yet due by the stamp
/// are left alone, so a sweep proposed early changes nothing it should not.
pub(super) fn expire_due(cx: &mut Ctx<'_, '_>, cmd: &ConsentExpireDue) -> Applied<RecordOutcome> {
    let (mut expired, mut index_removed) = (0u32, 0u32);
    let now = cx.now;
    for due in cmd.due.iter().filter(|d| d.due_at <= now) {
        let key = consent_due_key(due);
        if cx.txn.get_raw(&key)?.is_none() {
            continue;
        }
        cx.txn.delete(&key)?;
        index_removed += 1;
        let Some(consent) = cx
            .txn
            .get::<Consent>(&consent_key(&due.patient, due.consent_id))?
        else {
            continue;
        };
        let (consent, changed) = apply_consent_expire_due(&consent, cx.now, cx.next_revision());
        if changed {
            cx.store(&consent)?;
            expired += 1;
        }
    }
    Ok(Ok(RecordOutcome::ConsentsExpired {
        expired,
        index_removed,
    }))
}
