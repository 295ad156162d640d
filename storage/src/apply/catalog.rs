//! The API catalog: how a [`CatalogEntry`] is stored (key `K id`, no index) and the glue from
//! the register, update and lifecycle commands to the domain rules in
//! `kartotek_domain::catalog`. Every catalog command names its entry by id.

use kartotek_domain::catalog::{
    CatalogRegister, CatalogSetLifecycle, CatalogUpdate, apply_catalog_register,
    apply_catalog_set_lifecycle, apply_catalog_update,
};
use kartotek_domain::record_op::RecordOutcome;
use kartotek_domain::{CatalogEntry, Change};

use super::Ctx;
use super::stored::{Applied, stored_record};
use crate::record_keys::catalog_key;

stored_record! {
    CatalogEntry => RecordOutcome,
    key: |r| catalog_key(&r.id),
    change: Change::CatalogEntry,
    outcome: |r, changed| RecordOutcome::Catalog { entry: Box::new(r), changed }
}

/// Registers an entry.
pub(super) fn register(cx: &mut Ctx<'_, '_>, cmd: &CatalogRegister) -> Applied<RecordOutcome> {
    cx.update(&catalog_key(&cmd.id), apply_catalog_register, cmd)
}

/// Updates an entry's content.
pub(super) fn update(cx: &mut Ctx<'_, '_>, cmd: &CatalogUpdate) -> Applied<RecordOutcome> {
    cx.update(&catalog_key(&cmd.id), apply_catalog_update, cmd)
}

/// Moves an entry through its lifecycle.
pub(super) fn set_lifecycle(
    cx: &mut Ctx<'_, '_>,
    cmd: &CatalogSetLifecycle,
) -> Applied<RecordOutcome> {
    cx.update(&catalog_key(&cmd.id), apply_catalog_set_lifecycle, cmd)
}
