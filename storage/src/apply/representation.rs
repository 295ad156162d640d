//! Representations (a guardian or proxy acting for a patient): how a [`Representation`] is
//! stored (key `S represented id`, joined to the represented person's `Represented` id list
//! and indexed by representative, `R representative id` → represented, when created) and the
//! glue from the grant and revoke commands to the domain rules in
//! `kartotek_domain::representation`.

use kartotek_domain::record_op::RecordOutcome;
use kartotek_domain::representation::{
    RepresentationGrant, RepresentationRevoke, apply_representation_grant,
    apply_representation_revoke,
};
use kartotek_domain::{Change, NationalId, Representation};

use super::stored::{Applied, load_list, stored_record};
use super::{Ctx, EntryTxn};
use crate::error::StoreError;
use crate::record_keys::{IdList, representation_key, representative_index_key};

stored_record! {
    Representation => RecordOutcome,
    key: |r| representation_key(&r.represented, r.id),
    change: Change::Representation,
    outcome: |r, changed| RecordOutcome::Representation { representation: Box::new(r), changed },
    fn id_list(&self) -> Option<(IdList, &NationalId, u64)> {
        Some((IdList::Represented, &self.represented, self.id))
    }

    fn index_entries(&self, created: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
        if !created {
            return Vec::new();
        }
        let key = representative_index_key(&self.representative, self.id);
        vec![(key, self.represented.as_str().as_bytes().to_vec())]
    }
}

/// Every representation of a represented person, oldest first.
pub(super) fn load(
    txn: &EntryTxn<'_>,
    represented: &NationalId,
) -> Result<Vec<Representation>, StoreError> {
    load_list(txn, IdList::Represented, represented, representation_key)
}

/// Records a representation.
pub(super) fn grant(cx: &mut Ctx<'_, '_>, cmd: &RepresentationGrant) -> Applied<RecordOutcome> {
    let records = load(cx.txn, &cmd.represented)?;
    cx.among(&records, apply_representation_grant, cmd)
}

/// Revokes a representation.
pub(super) fn revoke(cx: &mut Ctx<'_, '_>, cmd: &RepresentationRevoke) -> Applied<RecordOutcome> {
    let key = representation_key(&cmd.represented, cmd.representation_id);
    cx.update(&key, apply_representation_revoke, cmd)
}
