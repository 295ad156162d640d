//! Spent and revoked token ids (`kartotek_domain::token_ids`): stored under `J` with an entry
//! in the expiry index `X` (see `record_keys.rs`), written straight through the entry's
//! transaction. They are bookkeeping, not records: they move no revision and make no change
//! event, so a token request never shows up in the watch feed.

use kartotek_domain::record_op::RecordOutcome;
use kartotek_domain::token_ids::{
    TokenId, TokenIdsForget, TokenIdsSpend, TokenRevoke, check_spend, may_forget,
};

use super::Ctx;
use super::stored::Applied;
use crate::error::StoreError;
use crate::record_keys::{token_expiry_key, token_id_key};

fn key_of(id: &TokenId) -> Vec<u8> {
    token_id_key(id.kind, &id.client_id, &id.jti)
}

/// Stores `id` (replacing an expired entry under the same key and its index entry).
fn put(cx: &mut Ctx<'_, '_>, id: &TokenId, old: Option<&TokenId>) -> Result<(), StoreError> {
    if let Some(old) = old {
        cx.txn.delete(&token_expiry_key(old))?;
    }
    cx.txn.put(&key_of(id), id)?;
    cx.txn.put_raw(&token_expiry_key(id), &[])
}

/// Spends the ids, all or none.
pub(super) fn spend(cx: &mut Ctx<'_, '_>, cmd: &TokenIdsSpend) -> Applied<RecordOutcome> {
    let mut stored = Vec::with_capacity(cmd.ids.len());
    for id in &cmd.ids {
        stored.push(cx.txn.get::<TokenId>(&key_of(id))?);
    }
    if let Err(e) = check_spend(cmd, &stored, cx.now) {
        return Ok(Err(e));
    }
    for (id, old) in cmd.ids.iter().zip(&stored) {
        put(cx, id, old.as_ref())?;
    }
    Ok(Ok(RecordOutcome::TokenIdsSpent {
        spent: cmd.ids.len() as u32,
    }))
}

/// Revokes an access token until it expires (a later expiry of the same id extends it).
pub(super) fn revoke(cx: &mut Ctx<'_, '_>, cmd: &TokenRevoke) -> Applied<RecordOutcome> {
    let key = key_of(&cmd.id);
    let old = cx.txn.get::<TokenId>(&key)?;
    if let Some(o) = &old
        && o.live_at(cx.now)
        && o.expires_at >= cmd.id.expires_at
    {
        return Ok(Ok(RecordOutcome::TokenRevoked { changed: false }));
    }
    put(cx, &cmd.id, old.as_ref())?;
    Ok(Ok(RecordOutcome::TokenRevoked { changed: true }))
}

/// Forgets the candidates that are stored as named and have expired by the stamp; a stale
/// candidate (its entry replaced or gone) only loses its index entry.
pub(super) fn forget(cx: &mut Ctx<'_, '_>, cmd: &TokenIdsForget) -> Applied<RecordOutcome> {
    let mut forgotten = 0u32;
    for id in &cmd.ids {
        let key = key_of(id);
        let stored = cx.txn.get::<TokenId>(&key)?;
        if may_forget(id, stored.as_ref(), cx.now) {
            cx.txn.delete(&key)?;
            cx.txn.delete(&token_expiry_key(id))?;
            forgotten += 1;
        } else if stored
            .as_ref()
            .is_none_or(|s| s.expires_at != id.expires_at)
        {
            // Not the live entry's index key (that one carries the stored expiry).
            cx.txn.delete(&token_expiry_key(id))?;
        }
    }
    Ok(Ok(RecordOutcome::TokenIdsForgotten { forgotten }))
}
