//! Signing access tokens: [`Issuer::sign`] turns [`AccessClaims`] into a compact JWS with
//! header `typ` [`ACCESS_TOKEN_TYPE`] (`at+jwt`, RFC 9068 §2.1), `alg` of the key and its
//! `kid`, signed with the key of its [`SigningKeySet`] that is active at the token's `iat`.

use jsonwebtoken::Header;
use p256::elliptic_curve::Generate;

use crate::b64;
use crate::claims::AccessClaims;
use crate::error::{IssueError, KeyError};
use crate::keys::SigningKeySet;
use crate::verify::TrustedIssuer;

/// The `typ` header of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Longest access-token lifetime (`exp - iat`) an issuer signs, in seconds.
pub const ACCESS_TOKEN_LIFETIME_S_MAX: i64 = 3600;

/// A token issuer: its URL (the `iss` of every token) and its keys.
#[derive(Debug, Clone)]
pub struct Issuer {
    issuer: String,
    keys: SigningKeySet,
    lifetime_s_max: i64,
}

impl Issuer {
    /// An issuer at `issuer` (compared exactly with `iss`) signing with `keys`, tokens living
    /// at most `lifetime_s_max` seconds (clamped to 1..=[`ACCESS_TOKEN_LIFETIME_S_MAX`]).
    pub fn new(issuer: impl Into<String>, keys: SigningKeySet, lifetime_s_max: i64) -> Issuer {
        Issuer {
            issuer: issuer.into(),
            keys,
            lifetime_s_max: lifetime_s_max.clamp(1, ACCESS_TOKEN_LIFETIME_S_MAX),
        }
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The longest lifetime it signs, in seconds.
    pub fn lifetime_s_max(&self) -> i64 {
        self.lifetime_s_max
    }

    /// Its keys.
    pub fn keys(&self) -> &SigningKeySet {
        &self.keys
    }

    /// Signs `claims` with the key active at `claims.iat`. Refuses claims that break
    /// [`AccessClaims::check`], another `iss`, or a lifetime over the maximum.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, IssueError> {
        claims.check()?;
        if claims.iss != self.issuer {
            return Err(IssueError::WrongIssuer {
                got: claims.iss.clone(),
                want: self.issuer.clone(),
            });
        }
        let lifetime_s = claims.exp.saturating_sub(claims.iat);
        if lifetime_s > self.lifetime_s_max {
            return Err(IssueError::LifetimeTooLong {
                lifetime_s,
                max_s: self.lifetime_s_max,
            });
        }
        let key = self.keys.signing_key(claims.iat)?;
        let mut header = Header::new(key.alg().jwt());
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some(key.kid().to_owned());
        jsonwebtoken::encode(&header, claims, key.encoding_key())
            .map_err(|e| IssueError::Sign(e.to_string()))
    }

    /// The published JWK Set at `now_s` (see [`SigningKeySet::public_jwks`]).
    pub fn public_jwks(&self, now_s: i64) -> serde_json::Value {
        self.keys.public_jwks(now_s, self.lifetime_s_max)
    }

    /// This issuer as a verifier trusts it: its URL, `audience`, and the keys published at
    /// `now_s`.
    pub fn trusted_issuer(&self, audience: &str, now_s: i64) -> Result<TrustedIssuer, KeyError> {
        TrustedIssuer::new(
            self.issuer.clone(),
            audience,
            self.keys
                .published(now_s, self.lifetime_s_max)
                .map(|k| k.public_key().clone())
                .collect(),
        )
    }
}

/// A fresh random token id: 16 bytes from the system's random source, base64url (22 chars).
pub fn new_jti() -> Result<String, KeyError> {
    let bytes = <[u8; 16]>::try_generate().map_err(|e| KeyError::Generate(e.to_string()))?;
    Ok(b64::encode(&bytes))
}
