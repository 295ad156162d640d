//! DPoP (RFC 9449): access tokens bound to a key the client holds. The client signs a fresh
//! *proof* (a JWT with header `typ` `dpop+jwt` and its public key as `jwk`) for every request:
//! `htm` the HTTP method, `htu` the URL, `iat` now, a unique `jti`, and — when it presents an
//! access token — `ath`, the token's SHA-256. The token service binds a token to the proof's
//! key (`cnf.jkt`, the RFC 7638 thumbprint); a resource server then accepts the token only
//! with a proof signed by that key, for this request, not seen before.
//!
//! [`verify_proof`] checks, in order: at most [`DPOP_PROOF_BYTES_MAX`]; `typ` `dpop+jwt`;
//! `alg` ES256 or EdDSA; a public `jwk` in the header (no private member) that verifies the
//! signature; `htm` equal; `htu` the same URL (scheme and host compared case-insensitively, no
//! query or fragment; see [`HtuMatch`]); `iat` within [`DPOP_PROOF_MAX_AGE_S`] (and the leeway)
//! of now; `jti` 1 to [`DPOP_JTI_BYTES_MAX`] bytes; `ath` equal to the presented token's hash
//! (and absent when none is presented). Replay of a `jti` is the caller's to refuse (it owns
//! the cache; see [`ProofReplayCache`]).
//!
//! # Server nonces (RFC 9449 §8)
//!
//! A server that wants proofs made *now*, not pre-made by a thief who once held the key,
//! hands out a nonce (`DPoP-Nonce` header) and refuses a proof without the current one with
//! the error `use_dpop_nonce`. [`NonceKey`] makes them stateless, so any instance behind a
//! load balancer checks another's: a nonce is `<window>.<HMAC-SHA256(secret, window)>`, where
//! the window is `now / window_s`, and it is taken in its own window and the next one (it
//! lives `window_s` to `2 × window_s`). The secret comes from the token service's key file
//! ([`SigningKeySet::derived_secret`](crate::SigningKeySet::derived_secret)), which every
//! instance shares.

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::{Header, decode, decode_header};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;

use crate::b64;
use crate::error::IssueError;
use crate::keys::{PublicKey, SigningKey, TokenAlg};
use crate::verify::{diagnose_header, from_jwt_error};

/// The `typ` of a DPoP proof.
pub const DPOP_PROOF_TYPE: &str = "dpop+jwt";
/// Longest proof accepted, in bytes.
pub const DPOP_PROOF_BYTES_MAX: usize = 8 * 1024;
/// Oldest proof accepted (by its `iat`), in seconds; a proof is for one request, now.
pub const DPOP_PROOF_MAX_AGE_S: i64 = 60;
/// Clock leeway for a proof's `iat`, in seconds.
pub const DPOP_LEEWAY_S: i64 = 5;
/// Longest proof `jti`, in bytes.
pub const DPOP_JTI_BYTES_MAX: usize = 128;
/// Longest `htu`, in bytes.
pub const DPOP_HTU_BYTES_MAX: usize = 2048;
/// Longest proof `nonce`, in bytes (ours are 60).
pub const DPOP_NONCE_BYTES_MAX: usize = 256;
/// Shortest and longest nonce window, in seconds.
pub const DPOP_NONCE_WINDOW_S_RANGE: std::ops::RangeInclusive<i64> = 10..=3600;

/// Why a proof was refused (safe to show the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// No proof, or not a compact JWS.
    #[error("malformed DPoP proof: {0}")]
    Malformed(String),
    /// `typ` is not `dpop+jwt`.
    #[error("DPoP proof typ must be dpop+jwt")]
    WrongType,
    /// `alg` is not ES256 or EdDSA.
    #[error("DPoP proof algorithm {0} is not allowed")]
    AlgNotAllowed(String),
    /// The header's `jwk` is missing, private or not a usable key.
    #[error("DPoP proof jwk: {0}")]
    BadKey(String),
    /// The signature does not verify with the header's key.
    #[error("DPoP proof signature does not verify")]
    BadSignature,
    /// `htm` or `htu` is for another request.
    #[error("DPoP proof is for {got}, not this request ({want})")]
    WrongRequest {
        /// What the proof says.
        got: String,
        /// What this request is.
        want: String,
    },
    /// `iat` is too old or in the future.
    #[error("DPoP proof iat {iat} is not within {DPOP_PROOF_MAX_AGE_S} s of now")]
    Stale {
        /// The proof's `iat`.
        iat: i64,
    },
    /// `ath` does not match the presented access token (or one is missing).
    #[error("DPoP proof ath does not match the access token")]
    WrongTokenHash,
    /// The proof's `jti` was used before.
    #[error("DPoP proof was already used (jti)")]
    Replayed,
    /// The proof's key is not the one the token is bound to.
    #[error("the access token is bound to another key (cnf.jkt)")]
    WrongKey,
    /// The proof has no `nonce`, or not a current one of this server (answer with
    /// `use_dpop_nonce` and a fresh `DPoP-Nonce`).
    #[error("DPoP proof must carry the server's current nonce (DPoP-Nonce header): {0}")]
    UseNonce(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
}

/// A verified proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProof {
    /// The thumbprint of its key (what `cnf.jkt` must be).
    pub jkt: String,
    /// Its unique id (remember it until `iat` + [`DPOP_PROOF_MAX_AGE_S`]).
    pub jti: String,
    /// When it was made.
    pub iat: i64,
    /// The server nonce it carries (at most [`DPOP_NONCE_BYTES_MAX`] bytes).
    pub nonce: Option<String>,
}

/// How `htu` is compared with the request's URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HtuMatch {
    /// The whole URL: scheme, host, port and path (the token endpoint, which knows its URL).
    Url,
    /// Scheme `http`/`https` and the path only: a node behind a load balancer or addressed by
    /// any of its names cannot know the authority the client dialled, but the path (the gRPC
    /// method) still ties the proof to one call.
    Path,
}

/// `ath`: the base64url SHA-256 of an access token.
pub fn token_hash(access_token: &str) -> String {
    b64::encode(&sha2::Sha256::digest(access_token.as_bytes()))
}

/// Signs a proof for `htm` `htu` at `now_s` with `key` (with `ath` of `access_token`).
pub fn sign_proof(
    key: &SigningKey,
    htm: &str,
    htu: &str,
    access_token: Option<&str>,
    now_s: i64,
) -> Result<String, IssueError> {
    sign_proof_with_nonce(key, htm, htu, access_token, None, now_s)
}

/// [`sign_proof`] carrying the server's `nonce`.
pub fn sign_proof_with_nonce(
    key: &SigningKey,
    htm: &str,
    htu: &str,
    access_token: Option<&str>,
    nonce: Option<&str>,
    now_s: i64,
) -> Result<String, IssueError> {
    let mut header = Header::new(key.alg().jwt());
    header.typ = Some(DPOP_PROOF_TYPE.to_owned());
    let mut jwk = key.public_key().jwk();
    if let Some(obj) = jwk.as_object_mut() {
        obj.remove("kid");
    }
    header.jwk = Some(serde_json::from_value(jwk).map_err(|e| IssueError::Sign(e.to_string()))?);
    let claims = ProofClaims {
        jti: crate::issue::new_jti().map_err(|e| IssueError::Sign(e.to_string()))?,
        htm: htm.to_owned(),
        htu: htu.to_owned(),
        iat: now_s,
        ath: access_token.map(token_hash),
        nonce: nonce.map(str::to_owned),
    };
    jsonwebtoken::encode(&header, &claims, key.encoding_key())
        .map_err(|e| IssueError::Sign(e.to_string()))
}

/// Splits a URL into (scheme, authority, path), lower-casing scheme and authority; `None` for
/// anything that is not `http[s]://authority/path` without query or fragment.
fn url_parts(url: &str) -> Option<(String, String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    if rest.contains(['?', '#']) {
        return None;
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some((scheme, authority.to_ascii_lowercase(), path.to_owned()))
}

/// Verifies `proof` for a request `htm` `htu` (compared as `htu_match` says) presenting
/// `access_token` (if any), at `now_s`. See the [module docs](self).
pub fn verify_proof(
    proof: &str,
    htm: &str,
    htu: &str,
    htu_match: HtuMatch,
    access_token: Option<&str>,
    now_s: i64,
) -> Result<DpopProof, DpopError> {
    let proof = proof.trim();
    if proof.is_empty() || proof.len() > DPOP_PROOF_BYTES_MAX {
        return Err(DpopError::Malformed(format!(
            "must be 1 to {DPOP_PROOF_BYTES_MAX} bytes"
        )));
    }
    let header = decode_header(proof).map_err(|_| match diagnose_header(proof) {
        crate::VerifyError::AlgNotAllowed(a) => DpopError::AlgNotAllowed(a),
        e => DpopError::Malformed(e.to_string()),
    })?;
    if header.typ.as_deref() != Some(DPOP_PROOF_TYPE) {
        return Err(DpopError::WrongType);
    }
    let alg = TokenAlg::from_jwt(header.alg)
        .ok_or_else(|| DpopError::AlgNotAllowed(format!("{:?}", header.alg)))?;
    // The key, from the raw header (the library's typed `jwk` would drop what we must see,
    // such as a private `d`).
    let raw_header: Value = proof
        .split('.')
        .next()
        .and_then(b64::decode)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| DpopError::Malformed("header".into()))?;
    let jwk = raw_header
        .get("jwk")
        .ok_or_else(|| DpopError::BadKey("missing".into()))?;
    let key =
        PublicKey::from_jwk_value(jwk, "jwk").map_err(|e| DpopError::BadKey(e.to_string()))?;
    if key.alg() != alg {
        return Err(DpopError::BadKey("does not fit alg".into()));
    }
    let validation = crate::verify::signature_only_for(alg.jwt());
    let claims = decode::<ProofClaims>(proof, key.decoding_key(), &validation)
        .map_err(|e| match from_jwt_error(e.kind()) {
            crate::VerifyError::BadSignature => DpopError::BadSignature,
            other => DpopError::Malformed(other.to_string()),
        })?
        .claims;
    let shown = |s: &str| s.chars().take(128).collect::<String>();
    let same_request = claims.htm == htm
        && claims.htu.len() <= DPOP_HTU_BYTES_MAX
        && match (url_parts(&claims.htu), url_parts(htu), htu_match) {
            (Some(got), Some(want), HtuMatch::Url) => got == want,
            (Some(got), Some(want), HtuMatch::Path) => got.2 == want.2,
            _ => false,
        };
    if !same_request {
        return Err(DpopError::WrongRequest {
            got: format!("{} {}", shown(&claims.htm), shown(&claims.htu)),
            want: format!("{htm} {htu}"),
        });
    }
    if claims.iat < now_s.saturating_sub(DPOP_PROOF_MAX_AGE_S + DPOP_LEEWAY_S)
        || claims.iat > now_s.saturating_add(DPOP_LEEWAY_S)
    {
        return Err(DpopError::Stale { iat: claims.iat });
    }
    if claims.jti.is_empty() || claims.jti.len() > DPOP_JTI_BYTES_MAX {
        return Err(DpopError::Malformed(format!(
            "jti must be 1 to {DPOP_JTI_BYTES_MAX} bytes"
        )));
    }
    match (access_token, &claims.ath) {
        (None, None) => {}
        (Some(token), Some(ath)) if *ath == token_hash(token) => {}
        _ => return Err(DpopError::WrongTokenHash),
    }
    if claims
        .nonce
        .as_ref()
        .is_some_and(|n| n.is_empty() || n.len() > DPOP_NONCE_BYTES_MAX)
    {
        return Err(DpopError::Malformed(format!(
            "nonce must be 1 to {DPOP_NONCE_BYTES_MAX} bytes"
        )));
    }
    Ok(DpopProof {
        jkt: key.thumbprint(),
        jti: claims.jti,
        iat: claims.iat,
        nonce: claims.nonce,
    })
}

/// Makes and checks stateless server nonces (see the [module docs](self#server-nonces-rfc-9449-8)).
pub struct NonceKey {
    sign: jsonwebtoken::EncodingKey,
    check: jsonwebtoken::DecodingKey,
    window_s: i64,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceKey")
            .field("window_s", &self.window_s)
            .finish_non_exhaustive()
    }
}

/// What a nonce's MAC covers besides its window (so the secret's MACs mean nothing else).
const NONCE_MAC_LABEL: &str = "kartotek dpop nonce v1 ";

impl NonceKey {
    /// Nonces under `secret` for windows of `window_s` (clamped to
    /// [`DPOP_NONCE_WINDOW_S_RANGE`]).
    pub fn new(secret: &[u8; 32], window_s: i64) -> NonceKey {
        // The library refuses only an empty secret.
        let (Ok(sign), Ok(check)) = (
            jsonwebtoken::EncodingKey::from_secret(secret),
            jsonwebtoken::DecodingKey::from_secret(secret),
        ) else {
            unreachable!("a 32-byte HMAC secret is not empty");
        };
        NonceKey {
            sign,
            check,
            window_s: window_s.clamp(
                *DPOP_NONCE_WINDOW_S_RANGE.start(),
                *DPOP_NONCE_WINDOW_S_RANGE.end(),
            ),
        }
    }

    fn mac_input(window: i64) -> String {
        format!("{NONCE_MAC_LABEL}{window}")
    }

    /// The nonce to hand out at `now_s`.
    pub fn issue(&self, now_s: i64) -> String {
        let window = now_s.div_euclid(self.window_s);
        // HS256 over a short string cannot fail; an empty MAC would only make the nonce
        // fail its own check.
        let mac = jsonwebtoken::crypto::sign(
            Self::mac_input(window).as_bytes(),
            &self.sign,
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap_or_default();
        format!("{window}.{mac}")
    }

    /// Whether `proof` carries a nonce of this key that is current at `now_s`.
    pub fn check(&self, proof: &DpopProof, now_s: i64) -> Result<(), DpopError> {
        let nonce = proof
            .nonce
            .as_deref()
            .ok_or_else(|| DpopError::UseNonce("the proof has none".into()))?;
        let (window, mac) = nonce
            .split_once('.')
            .and_then(|(w, mac)| Some((w.parse::<i64>().ok()?, mac)))
            .ok_or_else(|| DpopError::UseNonce("not one of this server's".into()))?;
        let now_window = now_s.div_euclid(self.window_s);
        if window != now_window && window != now_window.saturating_sub(1) {
            return Err(DpopError::UseNonce("it has expired".into()));
        }
        // The library's HMAC check compares in constant time.
        let genuine = jsonwebtoken::crypto::verify(
            mac,
            Self::mac_input(window).as_bytes(),
            &self.check,
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap_or(false);
        if !genuine {
            return Err(DpopError::UseNonce("not one of this server's".into()));
        }
        Ok(())
    }
}

/// Most proof `jti`s a [`ProofReplayCache`] remembers.
pub const PROOF_JTIS_MAX: usize = 100_000;

/// The proof `jti`s seen in the last [`DPOP_PROOF_MAX_AGE_S`] (per process). Full, it refuses
/// new proofs rather than forget live ones (a replay window must not open under load).
#[derive(Debug, Default)]
pub struct ProofReplayCache {
    seen: Mutex<HashMap<String, i64>>,
}

impl ProofReplayCache {
    /// Records `proof`'s `jti` at `now_s`; [`DpopError::Replayed`] if it was seen.
    pub fn check_and_record(&self, proof: &DpopProof, now_s: i64) -> Result<(), DpopError> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains_key(&proof.jti) {
            return Err(DpopError::Replayed);
        }
        if seen.len() >= PROOF_JTIS_MAX {
            let oldest = now_s.saturating_sub(DPOP_PROOF_MAX_AGE_S + DPOP_LEEWAY_S);
            seen.retain(|_, iat| *iat >= oldest);
            if seen.len() >= PROOF_JTIS_MAX {
                return Err(DpopError::Replayed);
            }
        }
        seen.insert(proof.jti.clone(), proof.iat);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const URL: &str = "https://node-a.example:7401/kartotek.v1.LocatorService/Lookup";

    fn key() -> SigningKey {
        SigningKey::generate_es256().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_proof_verifies_for_its_request_and_names_its_key() {
        let k = key();
        let p = sign_proof(&k, "POST", URL, Some("tok"), NOW).unwrap_or_else(|e| panic!("{e}"));
        let v = verify_proof(&p, "POST", URL, HtuMatch::Url, Some("tok"), NOW + 3)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.jkt, k.public_key().thumbprint());
        // Path matching: another authority, same method.
        let other_host = "http://10.0.0.7:7401/kartotek.v1.LocatorService/Lookup";
        assert!(verify_proof(&p, "POST", other_host, HtuMatch::Path, Some("tok"), NOW).is_ok());
        assert!(verify_proof(&p, "POST", other_host, HtuMatch::Url, Some("tok"), NOW).is_err());
    }

    #[test]
    fn proofs_for_anything_else_are_refused() {
        let k = key();
        let p = sign_proof(&k, "POST", URL, Some("tok"), NOW).unwrap_or_else(|e| panic!("{e}"));
        let other = "https://node-a.example:7401/kartotek.v1.AdminService/Remove";
        for (htu, htm, token, now, want) in [
            (other, "POST", Some("tok"), NOW, "for "),
            (URL, "GET", Some("tok"), NOW, "for "),
            (URL, "POST", Some("other"), NOW, "ath"),
            (URL, "POST", None, NOW, "ath"),
            (URL, "POST", Some("tok"), NOW + 120, "iat"),
            (URL, "POST", Some("tok"), NOW - 30, "iat"),
        ] {
            let e = verify_proof(&p, htm, htu, HtuMatch::Path, token, now)
                .err()
                .unwrap_or_else(|| panic!("{htm} {htu} {token:?} {now} accepted"));
            assert!(e.to_string().contains(want), "{e}");
        }
        // A proof signed by another key than its header names.
        let mut parts: Vec<String> = p.split('.').map(str::to_owned).collect();
        let q = sign_proof(&key(), "POST", URL, Some("tok"), NOW).unwrap_or_else(|e| panic!("{e}"));
        parts[2] = q.split('.').nth(2).unwrap_or_default().to_owned();
        assert_eq!(
            verify_proof(
                &parts.join("."),
                "POST",
                URL,
                HtuMatch::Url,
                Some("tok"),
                NOW
            )
            .err(),
            Some(DpopError::BadSignature)
        );
        // An access token is not a proof; nor is garbage.
        let at = k
            .sign_jwt("at+jwt", &serde_json::json!({"jti": "j"}))
            .unwrap_or_default();
        assert_eq!(
            verify_proof(&at, "POST", URL, HtuMatch::Url, None, NOW).err(),
            Some(DpopError::WrongType)
        );
        assert!(verify_proof("x.y.z", "POST", URL, HtuMatch::Url, None, NOW).is_err());
    }

    #[test]
    fn a_replayed_proof_is_refused() {
        let k = key();
        let cache = ProofReplayCache::default();
        let p = sign_proof(&k, "POST", URL, None, NOW).unwrap_or_else(|e| panic!("{e}"));
        let v = verify_proof(&p, "POST", URL, HtuMatch::Url, None, NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(cache.check_and_record(&v, NOW).is_ok());
        assert_eq!(
            cache.check_and_record(&v, NOW + 1),
            Err(DpopError::Replayed)
        );
    }

    #[test]
    fn nonces_are_taken_in_their_window_and_the_next_and_only_from_their_key() {
        let k = key();
        let nonces = NonceKey::new(&[7; 32], 60);
        let proof_with = |nonce: Option<&str>, at: i64| {
            let p = sign_proof_with_nonce(&k, "POST", URL, None, nonce, at)
                .unwrap_or_else(|e| panic!("{e}"));
            verify_proof(&p, "POST", URL, HtuMatch::Url, None, at).unwrap_or_else(|e| panic!("{e}"))
        };
        let start = 1_800_000_020; // window 30_000_000 starts at 1_800_000_000
        let nonce = nonces.issue(start);
        assert_eq!(
            proof_with(Some(&nonce), start).nonce.as_deref(),
            Some(&*nonce)
        );
        // Another instance with the same secret takes it; in this window and the next.
        let twin = NonceKey::new(&[7; 32], 60);
        assert!(twin.check(&proof_with(Some(&nonce), start), start).is_ok());
        assert!(
            twin.check(&proof_with(Some(&nonce), start + 99), start + 99)
                .is_ok()
        );
        let refused = |key: &NonceKey, nonce: Option<&str>, at: i64| match key
            .check(&proof_with(nonce, at), at)
        {
            Err(DpopError::UseNonce(why)) => why,
            other => panic!("{nonce:?} at {at}: {other:?}"),
        };
        assert!(refused(&nonces, Some(&nonce), start + 100).contains("expired"));
        assert!(refused(&nonces, None, start).contains("none"));
        let other = NonceKey::new(&[8; 32], 60);
        assert!(refused(&other, Some(&nonce), start).contains("not one"));
        // A future window, a forged MAC, garbage.
        let (w, mac) = nonce.split_once('.').unwrap_or_default();
        let future = format!("{}.{mac}", w.parse::<i64>().unwrap_or_default() + 1);
        assert!(refused(&nonces, Some(&future), start).contains("expired"));
        assert!(refused(&nonces, Some(&format!("{w}.AAAA")), start).contains("not one"));
        assert!(refused(&nonces, Some("garbage"), start).contains("not one"));
        // An over-long nonce is not a proof at all.
        let long = "n".repeat(DPOP_NONCE_BYTES_MAX + 1);
        let p = sign_proof_with_nonce(&k, "POST", URL, None, Some(&long), start)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            verify_proof(&p, "POST", URL, HtuMatch::Url, None, start),
            Err(DpopError::Malformed(_))
        ));
    }
}
