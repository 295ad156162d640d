//! Spent and revoked token ids: the cluster's memory of `jti`s, which makes a client assertion
//! or a DPoP proof single-use across every frontend instance behind a load balancer, and lets a
//! client revoke an access token before it expires (RFC 7009) on every node.
//!
//! An entry is a [`TokenId`]: (kind, client id, `jti`) and the time it may be forgotten (the
//! token's or proof's expiry). Three replicated commands ([`crate::record_op::RecordOp`]):
//!
//! - [`TokenIdsSpend`], once per token request: the assertion's `jti` and, for a DPoP-bound
//!   token, the proof's, at most [`TOKEN_IDS_PER_SPEND_MAX`]. All or nothing: when one is
//!   already stored and not yet expired at the command's stamp, nothing is stored and the
//!   command fails with [`ApplyError::Conflict`] naming its kind, so the second of two
//!   frontends that received the same assertion refuses it, whichever node each asked.
//! - [`TokenRevoke`]: stores a revoked access token's id until the token expires; idempotent.
//!   Every node checks it on each call (`node/src/api/auth.rs`).
//! - [`TokenIdsForget`]: the leader's sweep; removes entries whose expiry has passed by the
//!   command's stamp (re-checked on apply, so a stale view cannot forget a live entry).
//!
//! Entries do not move the state revision and make no change event: they are the token
//! service's bookkeeping, not records anybody watches. Expiries lie at most
//! [`TOKEN_ID_LIFETIME_MS_MAX`] past the stamp, so no caller can store an entry that is never
//! swept.

use serde::{Deserialize, Serialize};

use crate::error::{ApplyError, ValidationError};
use crate::fields::ClientId;
use crate::time::Timestamp;

/// Longest `jti`, in bytes (as the token service accepts for assertions).
pub const TOKEN_JTI_BYTES_MAX: usize = 256;
/// Most ids one spend stores (an assertion and a DPoP proof, with room to spare).
pub const TOKEN_IDS_PER_SPEND_MAX: usize = 4;
/// Furthest an entry's expiry may lie past the command's stamp: a day (access tokens live
/// minutes; assertions and proofs seconds).
pub const TOKEN_ID_LIFETIME_MS_MAX: i64 = 24 * 60 * 60 * 1000;
/// Most entries one sweep command forgets.
pub const TOKEN_IDS_FORGET_PER_COMMAND_MAX: usize = 1_000;

/// What a stored `jti` was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TokenIdKind {
    /// A client assertion (RFC 7523), spent by the token endpoint.
    Assertion,
    /// A DPoP proof sent to the token endpoint (RFC 9449).
    Proof,
    /// A revoked access token (RFC 7009).
    Revoked,
}

impl TokenIdKind {
    /// The kind's byte in storage keys (append-only: stored).
    pub fn byte(self) -> u8 {
        match self {
            TokenIdKind::Assertion => b'a',
            TokenIdKind::Proof => b'p',
            TokenIdKind::Revoked => b'r',
        }
    }

    /// The kind of a storage key byte.
    pub fn from_byte(b: u8) -> Option<TokenIdKind> {
        match b {
            b'a' => Some(TokenIdKind::Assertion),
            b'p' => Some(TokenIdKind::Proof),
            b'r' => Some(TokenIdKind::Revoked),
            _ => None,
        }
    }

    /// The kind's name in the API and in errors.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenIdKind::Assertion => "client_assertion",
            TokenIdKind::Proof => "dpop_proof",
            TokenIdKind::Revoked => "revoked_token",
        }
    }

    /// Validates a kind name sent in `field`.
    pub fn parse(field: &str, s: &str) -> Result<TokenIdKind, ValidationError> {
        [
            TokenIdKind::Assertion,
            TokenIdKind::Proof,
            TokenIdKind::Revoked,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| {
            ValidationError::new(
                field,
                "must be client_assertion, dpop_proof or revoked_token",
            )
        })
    }
}

/// A token's `jti`: 1 to [`TOKEN_JTI_BYTES_MAX`] bytes of visible ASCII (JWT ids are opaque
/// text; every issuer we know of uses UUIDs or base64url).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TokenJti(String);

impl TokenJti {
    /// Validates the `jti` sent in `field`.
    pub fn parse(field: &str, s: &str) -> Result<TokenJti, ValidationError> {
        if s.is_empty() || s.len() > TOKEN_JTI_BYTES_MAX {
            return Err(ValidationError::new(
                field,
                format!("must be 1 to {TOKEN_JTI_BYTES_MAX} bytes"),
            ));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValidationError::new(field, "must be visible ASCII"));
        }
        Ok(TokenJti(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One stored token id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TokenId {
    /// What it was.
    pub kind: TokenIdKind,
    /// The client it was issued to (an assertion's `iss`, an access token's `client_id`).
    pub client_id: ClientId,
    /// Its `jti`.
    pub jti: TokenJti,
    /// When it may be forgotten: the expiry of what it names.
    pub expires_at: Timestamp,
}

impl TokenId {
    /// Validates an id as sent: `expires_at_ms` must lie after `now` and at most
    /// [`TOKEN_ID_LIFETIME_MS_MAX`] past it.
    pub fn parse(
        kind: TokenIdKind,
        client_id: &str,
        jti: &str,
        expires_at_ms: i64,
        now: Timestamp,
    ) -> Result<TokenId, ValidationError> {
        let client_id = ClientId::parse("client_id", client_id)?;
        let jti = TokenJti::parse("jti", jti)?;
        if expires_at_ms <= now.0 {
            return Err(ValidationError::new(
                "expires_at_ms",
                "has passed: an expired token needs no entry",
            ));
        }
        if expires_at_ms > now.0.saturating_add(TOKEN_ID_LIFETIME_MS_MAX) {
            return Err(ValidationError::new(
                "expires_at_ms",
                "lies more than a day ahead",
            ));
        }
        Ok(TokenId {
            kind,
            client_id,
            jti,
            expires_at: Timestamp(expires_at_ms),
        })
    }

    /// Whether the entry still holds at `now`.
    pub fn live_at(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }
}

/// Spend single-use ids (all or nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenIdsSpend {
    /// 1 to [`TOKEN_IDS_PER_SPEND_MAX`] ids of kind assertion or proof, none twice.
    pub ids: Vec<TokenId>,
}

impl TokenIdsSpend {
    /// Validates a spend.
    pub fn new(ids: Vec<TokenId>) -> Result<TokenIdsSpend, ValidationError> {
        if ids.is_empty() || ids.len() > TOKEN_IDS_PER_SPEND_MAX {
            return Err(ValidationError::new(
                "ids",
                format!("1 to {TOKEN_IDS_PER_SPEND_MAX} per spend"),
            ));
        }
        if ids.iter().any(|i| i.kind == TokenIdKind::Revoked) {
            return Err(ValidationError::new(
                "ids",
                "a revoked token is stored with revoke, not spent",
            ));
        }
        for (n, id) in ids.iter().enumerate() {
            if ids[n + 1..]
                .iter()
                .any(|o| (o.kind, &o.client_id, &o.jti) == (id.kind, &id.client_id, &id.jti))
            {
                return Err(ValidationError::new("ids", "the same id twice"));
            }
        }
        Ok(TokenIdsSpend { ids })
    }
}

/// Revoke an access token until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRevoke {
    /// The token's id (kind [`TokenIdKind::Revoked`]).
    pub id: TokenId,
}

impl TokenRevoke {
    /// Validates a revocation.
    pub fn new(id: TokenId) -> Result<TokenRevoke, ValidationError> {
        if id.kind != TokenIdKind::Revoked {
            return Err(ValidationError::new("kind", "must be revoked_token"));
        }
        Ok(TokenRevoke { id })
    }
}

/// The leader's sweep: forget these entries if they have expired by the command's stamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenIdsForget {
    /// Candidates, in expiry order (at most [`TOKEN_IDS_FORGET_PER_COMMAND_MAX`]).
    pub ids: Vec<TokenId>,
}

impl TokenIdsForget {
    /// A sweep over `ids`.
    pub fn new(ids: Vec<TokenId>) -> Result<TokenIdsForget, ValidationError> {
        if ids.len() > TOKEN_IDS_FORGET_PER_COMMAND_MAX {
            return Err(ValidationError::new(
                "ids",
                format!("at most {TOKEN_IDS_FORGET_PER_COMMAND_MAX} per sweep"),
            ));
        }
        Ok(TokenIdsForget { ids })
    }
}

/// The rule of a spend: given what is stored under each id (`stored[i]` for `ids[i]`), the
/// spend goes ahead only when none is live at `now`.
pub fn check_spend(
    cmd: &TokenIdsSpend,
    stored: &[Option<TokenId>],
    now: Timestamp,
) -> Result<(), ApplyError> {
    debug_assert_eq!(cmd.ids.len(), stored.len());
    for (id, found) in cmd.ids.iter().zip(stored) {
        if found.as_ref().is_some_and(|f| f.live_at(now)) {
            return Err(ApplyError::Conflict(format!(
                "{} jti was already used",
                id.kind.as_str()
            )));
        }
    }
    Ok(())
}

/// The rule of a sweep for one candidate: forget it only when what is stored is this entry
/// and it has expired at `now`.
pub fn may_forget(candidate: &TokenId, stored: Option<&TokenId>, now: Timestamp) -> bool {
    stored.is_some_and(|s| s == candidate && !s.live_at(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(kind: TokenIdKind, jti: &str, exp: i64) -> TokenId {
        TokenId::parse(kind, "app-1", jti, exp, Timestamp(1_000)).unwrap()
    }

    #[test]
    fn ids_are_validated() {
        let now = Timestamp(1_000);
        assert!(TokenId::parse(TokenIdKind::Assertion, "app", "j", 1_001, now).is_ok());
        assert!(TokenId::parse(TokenIdKind::Assertion, "app", "", 1_001, now).is_err());
        assert!(TokenId::parse(TokenIdKind::Assertion, "app", "a b", 1_001, now).is_err());
        assert!(TokenId::parse(TokenIdKind::Assertion, "app", "j\u{0}", 1_001, now).is_err());
        let long = "j".repeat(TOKEN_JTI_BYTES_MAX + 1);
        assert!(TokenId::parse(TokenIdKind::Assertion, "app", &long, 1_001, now).is_err());
        assert!(TokenId::parse(TokenIdKind::Assertion, "app", "j", 1_000, now).is_err());
        let far = 1_000 + TOKEN_ID_LIFETIME_MS_MAX + 1;
        assert!(TokenId::parse(TokenIdKind::Assertion, "app", "j", far, now).is_err());
        assert!(TokenId::parse(TokenIdKind::Assertion, "a b", "j", 1_001, now).is_err());
    }

    #[test]
    fn spends_are_bounded_and_distinct() {
        let a = id(TokenIdKind::Assertion, "a", 2_000);
        let p = id(TokenIdKind::Proof, "a", 2_000);
        assert!(TokenIdsSpend::new(vec![]).is_err());
        assert!(TokenIdsSpend::new(vec![a.clone(), p.clone()]).is_ok());
        assert!(TokenIdsSpend::new(vec![a.clone(), a.clone()]).is_err());
        assert!(TokenIdsSpend::new(vec![a.clone(); TOKEN_IDS_PER_SPEND_MAX + 1]).is_err());
        let r = id(TokenIdKind::Revoked, "a", 2_000);
        assert!(TokenIdsSpend::new(vec![r.clone()]).is_err());
        assert!(TokenRevoke::new(r).is_ok());
        assert!(TokenRevoke::new(a).is_err());
    }

    #[test]
    fn a_live_entry_refuses_the_whole_spend() {
        let a = id(TokenIdKind::Assertion, "a", 2_000);
        let p = id(TokenIdKind::Proof, "p", 2_000);
        let cmd = TokenIdsSpend::new(vec![a.clone(), p.clone()]).unwrap();
        assert!(check_spend(&cmd, &[None, None], Timestamp(1_500)).is_ok());
        let e = check_spend(&cmd, &[None, Some(p.clone())], Timestamp(1_500)).unwrap_err();
        assert!(e.to_string().contains("dpop_proof"), "{e}");
        // An expired entry not yet swept does not count.
        assert!(check_spend(&cmd, &[Some(a.clone()), None], Timestamp(2_000)).is_ok());
    }

    #[test]
    fn kinds_round_trip() {
        for k in [
            TokenIdKind::Assertion,
            TokenIdKind::Proof,
            TokenIdKind::Revoked,
        ] {
            assert_eq!(TokenIdKind::from_byte(k.byte()), Some(k));
            assert_eq!(TokenIdKind::parse("kind", k.as_str()).unwrap(), k);
        }
        assert!(TokenIdKind::parse("kind", "other").is_err());
        assert_eq!(TokenIdKind::from_byte(b'x'), None);
    }

    proptest! {
        /// A sweep forgets exactly the stored, expired entry it names.
        #[test]
        fn sweeps_forget_only_expired_matches(exp in 1_001i64..5_000, now in 0i64..6_000, other in 1_001i64..5_000) {
            let c = id(TokenIdKind::Revoked, "r", exp);
            let stored_other = id(TokenIdKind::Revoked, "r", other);
            prop_assert_eq!(may_forget(&c, Some(&c), Timestamp(now)), now >= exp);
            prop_assert!(!may_forget(&c, None, Timestamp(now)));
            prop_assert_eq!(
                may_forget(&c, Some(&stored_other), Timestamp(now)),
                other == exp && now >= exp
            );
        }
    }
}
