//! Verifying bearer tokens: [`TokenVerifier`] holds the [`TrustedIssuer`]s (issuer URL,
//! audience, public keys) and checks a token in this order, stopping at the first failure:
//!
//! 1. present ([`VerifyError::Missing`]) and at most [`TOKEN_BYTES_MAX`] bytes;
//! 2. header: `alg` in the allow-list ([`VerifyError::AlgNotAllowed`]: `none`, `HS*`, `RS*`,
//!    ... never pass, whatever the key), `typ` `at+jwt` or `application/at+jwt`
//!    ([`VerifyError::WrongType`]), `kid` known ([`VerifyError::UnknownKey`], or
//!    [`VerifyError::UnknownIssuer`] when the token's `iss` is not trusted at all);
//! 3. signature with that key, for the key's own algorithm ([`VerifyError::BadSignature`]);
//! 4. claims parse as [`AccessClaims`]: `exp`, `nbf`, `iat` must be numbers, so a string
//!    `exp` is [`VerifyError::Malformed`] and never skips the expiry check (CVE-2026-25537);
//! 5. `iss` equals the issuer of the key, exactly ([`VerifyError::UnknownIssuer`]);
//! 6. `aud` contains the issuer's audience ([`VerifyError::WrongAudience`]);
//! 7. `exp` + leeway > now ([`VerifyError::Expired`]); `nbf` and `iat` ≤ now + leeway
//!    ([`VerifyError::NotYetValid`]);
//! 8. every claim within its bounds ([`AccessClaims::check`], [`VerifyError::BadClaim`]).
//!
//! Keys are parsed once, when the verifier is built: a call looks the `kid` up in a map and
//! runs one signature check and the claims decode; nothing else is allocated beyond the
//! decoded header and claims.

use std::collections::HashMap;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use serde_json::Value;

use crate::b64;
use crate::claims::AccessClaims;
use crate::error::KeyError;
use crate::issue::ACCESS_TOKEN_TYPE;
use crate::keys::{KEYS_PER_SET_MAX, PublicKey, TokenAlg};

/// Longest token accepted, in bytes.
pub const TOKEN_BYTES_MAX: usize = 16 * 1024;
/// Default clock leeway for `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_S_DEFAULT: i64 = 30;
/// Largest clock leeway allowed, in seconds.
pub const LEEWAY_S_MAX: i64 = 300;
/// Most trusted issuers of one verifier.
pub const TRUSTED_ISSUERS_MAX: usize = 16;

/// Why a token was refused. The messages name the reason and nothing secret, so they may be
/// shown to the caller (e.g. in `WWW-Authenticate: Bearer error="invalid_token"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No token.
    #[error("no token")]
    Missing,
    /// Not a compact JWS, too long, bad base64 or JSON, or mistyped claims.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `alg` is not one of the allowed algorithms.
    #[error("algorithm {0} is not allowed")]
    AlgNotAllowed(String),
    /// `typ` is not `at+jwt`.
    #[error("token type {0:?} is not at+jwt")]
    WrongType(String),
    /// `iss` is not a trusted issuer, or not the issuer of the key that signed.
    #[error("issuer {0:?} is not trusted")]
    UnknownIssuer(String),
    /// No trusted key has this `kid` (or the header has none).
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `aud` does not contain the expected audience.
    #[error("audience is not {0:?}")]
    WrongAudience(String),
    /// `exp` has passed.
    #[error("token expired at {exp}")]
    Expired {
        /// The token's `exp`.
        exp: i64,
    },
    /// `nbf` or `iat` is in the future.
    #[error("token not valid before {nbf}")]
    NotYetValid {
        /// The token's `nbf` (or `iat`).
        nbf: i64,
    },
    /// A claim breaks its rule.
    #[error("claim {claim}: {reason}")]
    BadClaim {
        /// The claim.
        claim: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl VerifyError {
    /// A short, stable name of the reason (for metrics labels and logs).
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Missing => "missing",
            VerifyError::Malformed(_) => "malformed",
            VerifyError::AlgNotAllowed(_) => "alg_not_allowed",
            VerifyError::WrongType(_) => "wrong_type",
            VerifyError::UnknownIssuer(_) => "unknown_issuer",
            VerifyError::UnknownKey(_) => "unknown_key",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::WrongAudience(_) => "wrong_audience",
            VerifyError::Expired { .. } => "expired",
            VerifyError::NotYetValid { .. } => "not_yet_valid",
            VerifyError::BadClaim { .. } => "bad_claim",
        }
    }
}

/// An issuer whose tokens are accepted: its URL (compared exactly with `iss`), the audience
/// its tokens must name, and its public keys (its published JWK Set).
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    issuer: String,
    audience: String,
    keys: Vec<PublicKey>,
}

impl TrustedIssuer {
    /// An issuer with 1 to [`KEYS_PER_SET_MAX`] keys of distinct `kid`s.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        keys: Vec<PublicKey>,
    ) -> Result<TrustedIssuer, KeyError> {
        if keys.is_empty() || keys.len() > KEYS_PER_SET_MAX {
            return Err(KeyError::Count(format!(
                "a trusted issuer has 1 to {KEYS_PER_SET_MAX} keys, this one {}",
                keys.len()
            )));
        }
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|o| o.kid() == k.kid()) {
                return Err(KeyError::DuplicateKid(k.kid().to_owned()));
            }
        }
        Ok(TrustedIssuer {
            issuer: issuer.into(),
            audience: audience.into(),
            keys,
        })
    }

    /// An issuer with the keys of its JWK Set document (`/.well-known/jwks.json`).
    pub fn from_jwks_json(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks_json: &str,
    ) -> Result<TrustedIssuer, KeyError> {
        TrustedIssuer::new(issuer, audience, PublicKey::set_from_json(jwks_json)?)
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience its tokens must carry.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Its keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }
}

/// How a [`TokenVerifier`] checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierOptions {
    /// Algorithms accepted (a subset of ES256 and EdDSA; no other can be named). Keys of
    /// another algorithm are not used.
    pub algs: Vec<TokenAlg>,
    /// Clock leeway for `exp`, `nbf` and `iat`, seconds; clamped to 0..=[`LEEWAY_S_MAX`].
    pub leeway_s: i64,
}

impl Default for VerifierOptions {
    fn default() -> Self {
        VerifierOptions {
            algs: TokenAlg::ALL.to_vec(),
            leeway_s: LEEWAY_S_DEFAULT,
        }
    }
}

/// One usable key: which issuer, which key, and the library's validation settings for it.
#[derive(Debug)]
struct Slot {
    issuer: usize,
    key: PublicKey,
    validation: Validation,
}

/// Verifies bearer access tokens against trusted issuers. Build once, share (it is `Sync`),
/// call [`verify`](Self::verify) per request.
#[derive(Debug)]
pub struct TokenVerifier {
    issuers: Vec<TrustedIssuer>,
    by_kid: HashMap<String, Vec<Slot>>,
    algs: Vec<TokenAlg>,
    leeway_s: i64,
}

/// Signature only: the time, audience and issuer checks are ours, on typed claims, against
/// the caller's clock.
fn signature_only(alg: TokenAlg) -> Validation {
    signature_only_for(alg.jwt())
}

/// [`signature_only`] for any of the library's algorithms (login tokens may be RS256).
pub(crate) fn signature_only_for(alg: jsonwebtoken::Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v
}

impl TokenVerifier {
    /// A verifier for `issuers` (at most [`TRUSTED_ISSUERS_MAX`]; more are ignored, as are
    /// keys whose algorithm is not in `options.algs`).
    pub fn new(issuers: Vec<TrustedIssuer>, options: VerifierOptions) -> TokenVerifier {
        let mut issuers = issuers;
        issuers.truncate(TRUSTED_ISSUERS_MAX);
        let mut by_kid: HashMap<String, Vec<Slot>> = HashMap::new();
        for (i, iss) in issuers.iter().enumerate() {
            for k in iss.keys.iter().filter(|k| options.algs.contains(&k.alg())) {
                by_kid.entry(k.kid().to_owned()).or_default().push(Slot {
                    issuer: i,
                    key: k.clone(),
                    validation: signature_only(k.alg()),
                });
            }
        }
        TokenVerifier {
            issuers,
            by_kid,
            algs: options.algs,
            leeway_s: options.leeway_s.clamp(0, LEEWAY_S_MAX),
        }
    }

    /// The trusted issuers.
    pub fn issuers(&self) -> &[TrustedIssuer] {
        &self.issuers
    }

    /// Verifies `token` at `now_s` (seconds since the epoch); see the [module docs](self) for
    /// the checks and their order.
    pub fn verify(&self, token: &str, now_s: i64) -> Result<AccessClaims, VerifyError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(VerifyError::Missing);
        }
        if token.len() > TOKEN_BYTES_MAX {
            return Err(VerifyError::Malformed(format!(
                "longer than {TOKEN_BYTES_MAX} bytes"
            )));
        }
        let header = match decode_header(token) {
            Ok(h) => h,
            Err(_) => return Err(diagnose_header(token)),
        };
        let alg = TokenAlg::from_jwt(header.alg)
            .filter(|a| self.algs.contains(a))
            .ok_or_else(|| VerifyError::AlgNotAllowed(format!("{:?}", header.alg)))?;
        match header.typ.as_deref() {
            Some(t) if is_access_token_type(t) => {}
            other => return Err(VerifyError::WrongType(other.unwrap_or("").to_owned())),
        }
        let kid = header.kid.as_deref().unwrap_or("");
        let Some(slots) = self.by_kid.get(kid) else {
            return Err(self.unknown_key(token, kid));
        };
        let mut last = VerifyError::UnknownKey(kid.to_owned());
        for slot in slots.iter().filter(|s| s.key.alg() == alg) {
            match decode::<AccessClaims>(token, slot.key.decoding_key(), &slot.validation) {
                Ok(data) => {
                    return self.check_claims(&self.issuers[slot.issuer], data.claims, now_s);
                }
                Err(e) => last = from_jwt_error(e.kind()),
            }
        }
        Err(last)
    }

    fn check_claims(
        &self,
        issuer: &TrustedIssuer,
        claims: AccessClaims,
        now_s: i64,
    ) -> Result<AccessClaims, VerifyError> {
        if claims.iss != issuer.issuer {
            return Err(VerifyError::UnknownIssuer(claims.iss));
        }
        if !claims.aud.contains(&issuer.audience) {
            return Err(VerifyError::WrongAudience(issuer.audience.clone()));
        }
        if claims.exp.saturating_add(self.leeway_s) <= now_s {
            return Err(VerifyError::Expired { exp: claims.exp });
        }
        let not_before = claims.nbf.unwrap_or(i64::MIN).max(claims.iat);
        if not_before > now_s.saturating_add(self.leeway_s) {
            return Err(VerifyError::NotYetValid { nbf: not_before });
        }
        claims.check().map_err(|e| VerifyError::BadClaim {
            claim: e.claim,
            reason: e.reason,
        })?;
        Ok(claims)
    }

    /// No key has `kid`: say so, or say the issuer is unknown when the (unverified) `iss`
    /// names no trusted issuer. Only on this failure path are the claims peeked at.
    fn unknown_key(&self, token: &str, kid: &str) -> VerifyError {
        let iss = token
            .split('.')
            .nth(1)
            .and_then(b64::decode)
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v.get("iss").and_then(Value::as_str).map(str::to_owned));
        match iss {
            Some(iss) if !self.issuers.iter().any(|i| i.issuer == iss) => {
                VerifyError::UnknownIssuer(iss)
            }
            _ => VerifyError::UnknownKey(kid.to_owned()),
        }
    }
}

/// `at+jwt`, or `application/at+jwt` (RFC 9068 §2.1; media types compare case-insensitively).
fn is_access_token_type(typ: &str) -> bool {
    let t = typ.strip_prefix("application/").unwrap_or(typ);
    t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
}

/// The library could not read the header: an `alg` it does not know (`none`, ...) is
/// [`VerifyError::AlgNotAllowed`], anything else [`VerifyError::Malformed`].
pub(crate) fn diagnose_header(token: &str) -> VerifyError {
    let header = token
        .split('.')
        .next()
        .and_then(b64::decode)
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    match header.as_ref().and_then(|h| h.get("alg")) {
        Some(Value::String(alg)) if TokenAlg::from_name(alg).is_none() => {
            VerifyError::AlgNotAllowed(alg.chars().take(32).collect())
        }
        _ => VerifyError::Malformed("header is not a JOSE header".into()),
    }
}

/// The library's error after the header was read.
pub(crate) fn from_jwt_error(kind: &ErrorKind) -> VerifyError {
    match kind {
        ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidEddsaKey => {
            VerifyError::BadSignature
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            VerifyError::AlgNotAllowed("for this key".into())
        }
        ErrorKind::Json(e) => VerifyError::Malformed(format!("claims: {e}")),
        ErrorKind::Base64(_) => VerifyError::Malformed("bad base64url".into()),
        ErrorKind::Utf8(_) => VerifyError::Malformed("not UTF-8".into()),
        _ => VerifyError::Malformed("not a compact JWS".into()),
    }
}
