//! The patient locator ("which organisations hold records about this patient"): how a
//! [`LocatorEntry`] is stored (key `L patient org system`; while active also indexed by org,
//! `O org patient system` → empty) and the glue from the register, compare-and-register,
//! import and retire commands to the domain rules in `kartotek_domain::locator`.
//!
//! Retiring keeps the org index entry (a retired entry is still listed by org, with its
//! status); registering writes it again with every change.

use kartotek_domain::locator::{apply_compare_and_register, apply_register, apply_retire};
use kartotek_domain::{Change, LocatorEntry, LocatorKey, LocatorRegister, LocatorStatus, Outcome};

use super::Ctx;
use super::stored::{Applied, stored_record};
use crate::error::StoreError;
use crate::keys::{locator_key, locator_org_index_key};

stored_record! {
    LocatorEntry => Outcome,
    key: |r| locator_key(&r.key),
    change: Change::Locator,
    outcome: |r, changed| Outcome::Locator { entry: r, changed },
    fn index_entries(&self, _created: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
        // Register (the only way to an active version) writes the index; retire does not.
        match self.status {
            LocatorStatus::Active => vec![(locator_org_index_key(&self.key), Vec::new())],
            LocatorStatus::Retired => Vec::new(),
        }
    }
}

/// The stored entry for `key`, if any.
fn load(cx: &Ctx<'_, '_>, key: &LocatorKey) -> Result<Option<LocatorEntry>, StoreError> {
    cx.txn.get(&locator_key(key))
}

/// Registers (upserts) an entry.
pub(super) fn register(cx: &mut Ctx<'_, '_>, reg: &LocatorRegister) -> Applied<Outcome> {
    let existing = load(cx, &reg.key)?;
    let result = apply_register(existing.as_ref(), reg, cx.now, cx.next_revision());
    cx.finish(Ok(result))
}

/// Registers an entry only if its `mod_revision` is `expected` (0: it must not exist).
pub(super) fn compare_and_register(
    cx: &mut Ctx<'_, '_>,
    reg: &LocatorRegister,
    expected: u64,
) -> Applied<Outcome> {
    let existing = load(cx, &reg.key)?;
    let next = cx.next_revision();
    let result = apply_compare_and_register(existing.as_ref(), reg, expected, cx.now, next);
    cx.finish(result)
}

/// Registers many entries; answers how many changed and how many were already so.
pub(super) fn import(cx: &mut Ctx<'_, '_>, regs: &[LocatorRegister]) -> Applied<Outcome> {
    let (mut changed, mut unchanged) = (0u64, 0u64);
    for reg in regs {
        let existing = load(cx, &reg.key)?;
        let (entry, is_new_version) =
            apply_register(existing.as_ref(), reg, cx.now, cx.next_revision());
        if is_new_version {
            cx.store(&entry)?;
            changed += 1;
        } else {
            unchanged += 1;
        }
    }
    Ok(Ok(Outcome::Imported { changed, unchanged }))
}

/// Retires an entry.
pub(super) fn retire(cx: &mut Ctx<'_, '_>, key: &LocatorKey) -> Applied<Outcome> {
    let existing = load(cx, key)?;
    let result = apply_retire(existing.as_ref(), cx.now, cx.next_revision());
    cx.finish(result)
}
