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
use super::stored::{Applied, StoredRecord};
use crate::record_keys::catalog_key;

impl StoredRecord for CatalogEntry {
    type Outcome = RecordOutcome;

    fn key(&self) -> Vec<u8> {
        catalog_key(&self.id)
    }

    fn revisions(&self) -> (u64, u64) {
        (self.create_revision, self.mod_revision)
    }

    fn change(&self) -> Change {
        Change::CatalogEntry(self.clone())
    }

    fn outcome(self, changed: bool) -> RecordOutcome {
        RecordOutcome::Catalog {
            entry: Box::new(self),
            changed,
        }
    }
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
