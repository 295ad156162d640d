//! Blocks (a patient's "sperring" of health personnel or organisations): how a [`Block`] is
//! stored (key `B patient id`, joined to the patient's `Blocks` id list when created) and the
//! glue from the add and revoke commands to the domain rules in `kartotek_domain::block`.

use kartotek_domain::block::{BlockAdd, BlockRevoke, apply_block_add, apply_block_revoke};
use kartotek_domain::record_op::RecordOutcome;
use kartotek_domain::{Block, Change, NationalId};

use super::stored::{Applied, load_list, stored_record};
use super::{Ctx, EntryTxn};
use crate::error::StoreError;
use crate::record_keys::{IdList, block_key};

stored_record! {
    Block => RecordOutcome,
    key: |r| block_key(&r.patient, r.id),
    change: Change::Block,
    outcome: |r, changed| RecordOutcome::Block { block: Box::new(r), changed },
    fn id_list(&self) -> Option<(IdList, &NationalId, u64)> {
        Some((IdList::Blocks, &self.patient, self.id))
    }
}

/// Every block of a patient, oldest first.
pub(super) fn load(txn: &EntryTxn<'_>, patient: &NationalId) -> Result<Vec<Block>, StoreError> {
    load_list(txn, IdList::Blocks, patient, block_key)
}

/// Registers a block (an identical repeat changes nothing).
pub(super) fn add(cx: &mut Ctx<'_, '_>, cmd: &BlockAdd) -> Applied<RecordOutcome> {
    let blocks = load(cx.txn, &cmd.patient)?;
    cx.among(&blocks, apply_block_add, cmd)
}

/// Revokes a block.
pub(super) fn revoke(cx: &mut Ctx<'_, '_>, cmd: &BlockRevoke) -> Applied<RecordOutcome> {
    cx.update(
        &block_key(&cmd.patient, cmd.block_id),
        apply_block_revoke,
        cmd,
    )
}
