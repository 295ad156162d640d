//! Authentication and authorisation of a public call: the bearer access token is verified
//! (trusted issuers from `[auth]`, exact `iss` and `aud`, `exp`/`nbf` with a small leeway, the
//! ES256/EdDSA allow-list, `typ` `at+jwt`; see `kartotek_auth::verify`), the method's scope
//! (one row per method in [`super::methods`], deny by default) must be among the token's, and
//! the [`Caller`] the audit events name is made from the token's claims only.
//!
//! [`Authenticator::caller`] is called by the request layer ([`super::layer::Gate`]) before a
//! handler runs; a refused call reads and writes nothing. With `auth.required = false` (a
//! closed test network only; the default is on) the caller headers are taken as before.
//!
//! DPoP (RFC 9449): a token bound to a key (`cnf.jkt`) is accepted only with a proof of that
//! key for this call, once ([`Authenticator::check_binding`]); its proof is checked on every
//! call, cached token or not.
//!
//! Key rotation: the node re-reads a trusted issuer's JWK Set file when it changes
//! ([`Authenticator::reload_if_changed`], every `auth.jwks_reload_interval_ms`), so an
//! operator publishes a new key by adding it to the file before the token service signs
//! with it, and removes an old one after its last token has expired; no restart.
//!
//! Revocation (RFC 7009): a token whose id the token service stored as revoked in the cluster
//! (`TokenLedgerService.Revoke`) is refused on every call, once this node has applied the
//! revocation (normally milliseconds after the token service's answer; a node cut off from the
//! leader keeps taking the token until it catches up or the token expires, which bounds it to
//! the token lifetime). It costs one point read of the local state per call.
//!
//! Cost: a token's signature is checked once per node. A verified token's claims are kept in
//! [`VerifiedTokens`] (keyed by the SHA-256 of the token, at most [`VERIFIED_TOKENS_MAX`]
//! entries, dropped when the token expires), so the calls after the first pay a hash and a map
//! lookup under a short lock instead of an ECDSA verification (≈ 0.4 ms of CPU with the
//! pure-Rust P-256 at c=64: `kartotek-bench auth-cost` measured 2.4× the CPU per lookup and
//! half the throughput before the cache). `exp` is checked on every call, cached or not.

use std::sync::Arc;

use kartotek_auth::{AccessClaims, TokenVerifier, TrustedIssuer, VerifierOptions, dpop, scopes};
use kartotek_domain::fields::{Actor, Purpose};
use kartotek_domain::locator::{parse_national_id, parse_org_number};
use tonic::metadata::MetadataMap;

use super::caller::{Caller, correlation_id};
use super::methods::Method;
use crate::config::AuthSettings;
use crate::error::NodeError;

/// Why the `[auth]` section could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// A JWK Set file could not be read.
    #[error("auth.trusted_issuers[{index}].jwks_file {path}: {source}")]
    Read {
        /// Which issuer.
        index: usize,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A JWK Set did not give usable keys.
    #[error("auth.trusted_issuers[{index}]: {reason}")]
    Keys {
        /// Which issuer.
        index: usize,
        /// Why.
        reason: String,
    },
}

/// Most verified tokens a node remembers.
pub const VERIFIED_TOKENS_MAX: usize = 16_384;

/// Claims of tokens whose signature this node has verified, by the SHA-256 of the token.
#[derive(Default)]
pub struct VerifiedTokens {
    map: std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<AccessClaims>>>,
}

impl VerifiedTokens {
    fn key(token: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(token.as_bytes()).into()
    }

    /// The claims of `token` if it was verified before and has not expired at `now_s`
    /// (with `leeway_s`).
    fn get(&self, token: &str, now_s: i64, leeway_s: i64) -> Option<Arc<AccessClaims>> {
        let key = Self::key(token);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let claims = map.get(&key)?;
        if claims.exp.saturating_add(leeway_s) <= now_s {
            map.remove(&key);
            return None;
        }
        Some(claims.clone())
    }

    /// Forgets every verified token (after the keys changed).
    fn clear(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Remembers the verified `claims` of `token`; when full, forgets expired tokens first
    /// and, if still full, everything (the next calls verify again).
    fn put(&self, token: &str, claims: Arc<AccessClaims>, now_s: i64) {
        let key = Self::key(token);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= VERIFIED_TOKENS_MAX {
            map.retain(|_, c| c.exp > now_s);
            if map.len() >= VERIFIED_TOKENS_MAX {
                map.clear();
            }
        }
        map.insert(key, claims);
    }
}

/// Verifies callers. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    keys: Option<Arc<IssuerKeys>>,
    verified: Arc<VerifiedTokens>,
    proofs: Arc<dpop::ProofReplayCache>,
    leeway_s: i64,
    revoked: Option<RevocationCheck>,
}

/// Whether the access token issued to client `client_id` with id `jti` is revoked, as this
/// node's applied state says (`TokenLedgerService.Revoke`; one point read).
pub type RevocationCheck = Arc<dyn Fn(&str, &str) -> Result<bool, NodeError> + Send + Sync>;

/// The trusted issuers' keys, re-read when a JWK Set file changes.
struct IssuerKeys {
    settings: AuthSettings,
    current: std::sync::RwLock<Arc<TokenVerifier>>,
    /// Each file's modification time, length and inode when last read.
    stamps: std::sync::Mutex<Vec<Option<(std::time::SystemTime, u64, u64)>>>,
}

fn stamp(path: &std::path::Path) -> Option<(std::time::SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// Largest trusted issuer's JWK Set file, bytes.
pub const JWKS_FILE_BYTES_MAX: u64 = 256 * 1024;

fn read_jwks(index: usize, path: &std::path::Path) -> Result<String, AuthConfigError> {
    use std::io::Read;
    let read_error = |source| AuthConfigError::Read {
        index,
        path: path.display().to_string(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(JWKS_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > JWKS_FILE_BYTES_MAX {
        return Err(AuthConfigError::Keys {
            index,
            reason: format!("jwks_file is larger than {JWKS_FILE_BYTES_MAX} bytes"),
        });
    }
    Ok(text)
}

/// A verifier for `settings`' trusted issuers, from their JWK Set files as they are now.
fn build_verifier(settings: &AuthSettings) -> Result<TokenVerifier, AuthConfigError> {
    let mut issuers = Vec::with_capacity(settings.trusted_issuers.len());
    for (index, t) in settings.trusted_issuers.iter().enumerate() {
        let json = read_jwks(index, &t.jwks_file)?;
        let issuer = TrustedIssuer::from_jwks_json(&t.issuer, &t.audience, &json).map_err(|e| {
            AuthConfigError::Keys {
                index,
                reason: e.to_string(),
            }
        })?;
        issuers.push(issuer);
    }
    let options = VerifierOptions {
        leeway_s: settings.leeway_s,
        ..VerifierOptions::default()
    };
    Ok(TokenVerifier::new(issuers, options))
}

impl Authenticator {
    /// The authenticator `settings` describe: reads each trusted issuer's JWK Set file.
    pub fn from_settings(settings: &AuthSettings) -> Result<Authenticator, AuthConfigError> {
        if !settings.required {
            return Ok(Authenticator {
                keys: None,
                verified: Arc::default(),
                proofs: Arc::default(),
                leeway_s: 0,
                revoked: None,
            });
        }
        let stamps = settings
            .trusted_issuers
            .iter()
            .map(|t| stamp(&t.jwks_file))
            .collect();
        let verifier = build_verifier(settings)?;
        Ok(Authenticator {
            keys: Some(Arc::new(IssuerKeys {
                settings: settings.clone(),
                current: std::sync::RwLock::new(Arc::new(verifier)),
                stamps: std::sync::Mutex::new(stamps),
            })),
            verified: Arc::default(),
            proofs: Arc::default(),
            leeway_s: settings.leeway_s,
            revoked: None,
        })
    }

    /// Refuses revoked tokens, as `check` tells (the node's token ledger).
    pub fn with_revocations(mut self, check: RevocationCheck) -> Authenticator {
        self.revoked = Some(check);
        self
    }

    /// Re-reads the trusted issuers' JWK Set files if one changed since it was last read
    /// (modification time, length or inode: a file renamed over it counts), so that keys rotate without a restart: a new key is
    /// published in the file before it signs, a retired one stays until its last token has
    /// expired. Returns whether the keys were replaced; on an error the old keys stay in use.
    /// Replacing them also forgets the verified-token cache, so a key taken out (for a
    /// compromise, say) stops its tokens at once.
    pub fn reload_if_changed(&self) -> Result<bool, AuthConfigError> {
        let Some(keys) = &self.keys else {
            return Ok(false);
        };
        let now: Vec<_> = keys
            .settings
            .trusted_issuers
            .iter()
            .map(|t| stamp(&t.jwks_file))
            .collect();
        {
            let stamps = keys.stamps.lock().unwrap_or_else(|e| e.into_inner());
            if *stamps == now {
                return Ok(false);
            }
        }
        let verifier = build_verifier(&keys.settings)?;
        *keys.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(verifier);
        *keys.stamps.lock().unwrap_or_else(|e| e.into_inner()) = now;
        self.verified.clear();
        Ok(true)
    }

    /// DPoP (RFC 9449): a token bound to a key (`cnf.jkt`) is taken only as `DPoP <token>`
    /// with a `dpop` proof signed by that key for this call — `htm` POST, `htu` with this
    /// method's path (the authority a client dialled is not checked: a node has several names),
    /// `ath` the token's hash, `iat` within a minute — whose `jti` this node has not seen. An
    /// unbound token is taken only as `Bearer`.
    fn check_binding(
        &self,
        claims: &AccessClaims,
        scheme: Scheme,
        token: &str,
        md: &MetadataMap,
        method: &Method,
        now_s: i64,
    ) -> Result<(), NodeError> {
        let refused = |why: String| NodeError::Unauthenticated(why);
        match (&claims.cnf, scheme) {
            (None, Scheme::Bearer) => Ok(()),
            (None, Scheme::Dpop) => Err(refused(
                "the token is not DPoP-bound: send it as `authorization: Bearer <token>`".into(),
            )),
            (Some(_), Scheme::Bearer) => Err(refused(
                "the token is DPoP-bound: send `authorization: DPoP <token>` and a `dpop` proof"
                    .into(),
            )),
            (Some(cnf), Scheme::Dpop) => {
                let proof = md
                    .get("dpop")
                    .ok_or_else(|| refused("a DPoP-bound token needs a `dpop` proof".into()))?
                    .to_str()
                    .map_err(|_| refused("the dpop proof is not visible ASCII".into()))?;
                let htu = format!("https://kartotek{}", method.path);
                let verified = dpop::verify_proof(
                    proof,
                    "POST",
                    &htu,
                    dpop::HtuMatch::Path,
                    Some(token),
                    now_s,
                )
                .map_err(|e| refused(e.to_string()))?;
                if verified.jkt != cnf.jkt {
                    return Err(refused(dpop::DpopError::WrongKey.to_string()));
                }
                self.proofs
                    .check_and_record(&verified, now_s)
                    .map_err(|e| refused(e.to_string()))
            }
        }
    }

    /// Whether calls must carry a verified token.
    pub fn required(&self) -> bool {
        self.keys.is_some()
    }

    /// The verified caller of a call of `method` with metadata `md`, or why not.
    pub fn caller(&self, md: &MetadataMap, method: &Method) -> Result<Caller, NodeError> {
        let Some(keys) = &self.keys else {
            return Caller::from_metadata(md);
        };
        let (scheme, token) = bearer(md)?;
        let now_s = now_s();
        let claims = match self.verified.get(token, now_s, self.leeway_s) {
            Some(claims) => claims,
            None => {
                let verifier = keys
                    .current
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let claims = Arc::new(
                    verifier
                        .verify(token, now_s)
                        .map_err(|e| NodeError::Unauthenticated(format!("{e}")))?,
                );
                self.verified.put(token, claims.clone(), now_s);
                claims
            }
        };
        // Revocation is checked on every call, cached token or not: it can come at any time.
        if let Some(revoked) = &self.revoked
            && !claims.jti.is_empty()
            && revoked(&claims.client_id, &claims.jti)?
        {
            return Err(NodeError::Unauthenticated(
                "the access token was revoked; get a new one".into(),
            ));
        }
        self.check_binding(&claims, scheme, token, md, method, now_s)?;
        let forbidden = || {
            NodeError::Forbidden(format!(
                "{} needs scope {}{} (the token has: {})",
                method.path,
                method.scope,
                if method.citizen {
                    format!(" (or {} in a citizen's token)", scopes::CITIZEN)
                } else {
                    String::new()
                },
                if claims.scope.is_empty() {
                    "none"
                } else {
                    &claims.scope
                }
            ))
        };
        if claims.has_scope(method.scope) {
            return caller_of(&claims, md);
        }
        if !(method.citizen && claims.has_scope(scopes::CITIZEN)) {
            return Err(forbidden());
        }
        // The own-data rule: a citizen's token reaches the citizen's data, or the data of the
        // person it was exchanged to act for, and nobody else's.
        let mut caller = caller_of(&claims, md)?;
        let person = match (&caller.on_behalf_of, &caller.actor) {
            (Some(represented), Actor::Citizen(_)) => represented.clone(),
            (None, Actor::Citizen(own)) => own.clone(),
            // A client's own token with the citizen scope names no citizen to restrict to.
            _ => return Err(forbidden()),
        };
        // A representation limited to some areas (a parent of a child from 12 to 16) gives a
        // token for those areas' services; Kartotek's records are not split by area, so it
        // reaches none of them here.
        if caller.on_behalf_of.is_some()
            && let Some(area) = claims.representation_area.as_deref()
            && area != kartotek_domain::fields::Area::ALL_TEXT
        {
            return Err(NodeError::Forbidden(format!(
                "{}: the token acts for someone in area {area} only; Kartotek's records need a \
                 representation in every area (*)",
                method.path
            )));
        }
        caller.own_data_of = Some(person);
        Ok(caller)
    }
}

fn now_s() -> i64 {
    kartotek_domain::Timestamp::now().0.div_euclid(1000)
}

/// How a token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// `authorization: Bearer <token>`.
    Bearer,
    /// `authorization: DPoP <token>` with a `dpop` proof (RFC 9449).
    Dpop,
}

/// The token of `authorization: Bearer <token>` or `authorization: DPoP <token>`.
fn bearer(md: &MetadataMap) -> Result<(Scheme, &str), NodeError> {
    let Some(value) = md.get("authorization") else {
        return Err(NodeError::Unauthenticated(
            "no access token: send `authorization: Bearer <token>` (get one from the token service, e.g. `kartotek token`)".into(),
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| NodeError::Unauthenticated("authorization is not visible ASCII".into()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok((Scheme::Bearer, token.trim()))
        }
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("dpop") => {
            Ok((Scheme::Dpop, token.trim()))
        }
        _ => Err(NodeError::Unauthenticated(
            "authorization is not `Bearer <token>` or `DPoP <token>`".into(),
        )),
    }
}

/// The caller a verified token names: health personnel by HPR number when the token carries
/// one, a citizen by national id (`sub`) when it has the citizen scope and its subject is not the
/// client, else the client itself; the organisation (sub-unit first), the purpose of use and, for
/// a token exchanged to act for someone, the person acted for. Nothing comes from headers but
/// the request id.
fn caller_of(claims: &AccessClaims, md: &MetadataMap) -> Result<Caller, NodeError> {
    let bad = |claim: &str, e: &dyn std::fmt::Display| {
        NodeError::Unauthenticated(format!("token claim {claim}: {e}"))
    };
    let (actor, on_behalf_of) = match (&claims.act, &claims.hpr_number) {
        (Some(act), _) => (
            Actor::parse("act", "citizen", &act.sub).map_err(|e| bad("act.sub", &e))?,
            Some(parse_national_id("sub", &claims.sub).map_err(|e| bad("sub", &e))?),
        ),
        (None, Some(hpr)) => (
            Actor::parse("hpr_number", "personnel", hpr).map_err(|e| bad("hpr_number", &e))?,
            None,
        ),
        // A citizen's own token (after an ID-porten login): the subject is the person, not
        // the client (a client's own token has `sub` = `client_id`).
        (None, None) if claims.has_scope(scopes::CITIZEN) && claims.sub != claims.client_id => (
            Actor::parse("sub", "citizen", &claims.sub).map_err(|e| bad("sub", &e))?,
            None,
        ),
        (None, None) => (
            Actor::parse("client_id", "client", &claims.client_id)
                .map_err(|e| bad("client_id", &e))?,
            None,
        ),
    };
    let org = claims
        .org_child
        .as_deref()
        .or(claims.org_parent.as_deref())
        .map(|o| parse_org_number("org", o))
        .transpose()
        .map_err(|e| bad("org", &e))?;
    let purpose = claims
        .purpose_of_use
        .as_deref()
        .map(|p| Purpose::parse("purpose_of_use", p))
        .transpose()
        .map_err(|e| bad("purpose_of_use", &e))?;
    let correlation_id = correlation_id(md)?;
    Ok(Caller {
        actor,
        any_org: claims.has_scope(scopes::ADMIN),
        org,
        on_behalf_of,
        purpose,
        correlation_id,
        own_data_of: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Arc<AccessClaims> {
        Arc::new(AccessClaims {
            exp,
            ..AccessClaims::for_client("iss", "aud", "c", String::new())
        })
    }

    #[test]
    fn verified_tokens_are_remembered_until_they_expire() {
        let v = VerifiedTokens::default();
        assert!(v.get("a.b.c", 100, 0).is_none());
        v.put("a.b.c", claims(200), 100);
        assert_eq!(v.get("a.b.c", 150, 0).map(|c| c.exp), Some(200));
        assert!(
            v.get("a.b.x", 150, 0).is_none(),
            "another token is not a hit"
        );
        assert!(v.get("a.b.c", 195, 10).is_some(), "within the leeway");
        assert!(v.get("a.b.c", 200, 0).is_none(), "expired");
        assert!(v.get("a.b.c", 150, 0).is_none(), "and forgotten");
    }

    #[test]
    fn a_full_cache_forgets_instead_of_growing() {
        let v = VerifiedTokens::default();
        for i in 0..VERIFIED_TOKENS_MAX + 10 {
            v.put(&format!("t{i}"), claims(1000), 100);
        }
        let len = v.map.lock().map(|m| m.len()).unwrap_or(usize::MAX);
        assert!(len <= VERIFIED_TOKENS_MAX, "{len}");
    }
}
