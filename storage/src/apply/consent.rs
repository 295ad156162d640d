//! Consents: how a [`Consent`] is stored (key `N patient id`, joined to the patient's
//! `Consents` id list when created) and the glue from the request and grant commands (checked
//! against all the patient's consents) and the answers to one consent (grant a request, deny,
//! withdraw) to the domain rules in `kartotek_domain::consent`.

use kartotek_domain::consent::{
    ConsentAnswer, ConsentGrant, ConsentRequest, apply_consent_grant, apply_consent_request,
};
use kartotek_domain::record_op::RecordOutcome;
use kartotek_domain::{Change, Consent, NationalId};

use super::stored::{Applied, Rule, load_list, stored_record};
use super::{Ctx, EntryTxn};
use crate::error::StoreError;
use crate::record_keys::{IdList, consent_key};

stored_record! {
    Consent => RecordOutcome,
    key: |r| consent_key(&r.patient, r.id),
    change: Change::Consent,
    outcome: |r, changed| RecordOutcome::Consent { consent: Box::new(r), changed },
    fn id_list(&self) -> Option<(IdList, &NationalId, u64)> {
        Some((IdList::Consents, &self.patient, self.id))
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
