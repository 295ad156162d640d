//! Client authentication with `private_key_jwt` (RFC 7523 §2.2, as HelseID uses it): the
//! client signs a short-lived JWT with a private key whose public JWK is in its client
//! record, and sends it as `client_assertion` with `client_assertion_type`
//! [`CLIENT_ASSERTION_TYPE`]. No client secrets exist.
//!
//! [`verify_client_assertion`] checks, stopping at the first failure:
//! header `alg` ES256 or EdDSA, `typ` [`ASSERTION_TYPE`]; the key by `kid` (or, without a
//! `kid`, each of the client's keys of that algorithm); the signature; `iss` = `sub` = the
//! client id; `aud` contains the token service's issuer; `exp` not passed and at most
//! [`ASSERTION_LIFETIME_S_MAX`] ahead; `nbf`/`iat` not in the future; `jti` present, at most
//! [`JTI_BYTES_MAX`] bytes. Clock skew of [`ASSERTION_LEEWAY_S`] is allowed on each time.
//!
//! [`sign_client_assertion`] makes one (for clients written in Rust, the CLI and tests).
//!
//! It returns the `jti` and `exp`; the caller then asks a [`ReplayGuard`] whether the `jti`
//! was seen before (an assertion is single-use). [`JtiReplayCache`] is the in-process guard:
//! it protects one frontend instance only. A guard shared by every instance, kept in the
//! cluster, comes later; until then a replay to another instance within the assertion's
//! (at most 60 s) life is not caught.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use jsonwebtoken::{Validation, decode, decode_header};
use kartotek_domain::ClientId;
use serde::Deserialize;
use serde_json::Value;

use crate::b64;
use crate::claims::{ISSUER_BYTES_MAX, one_or_many_in};
use crate::error::IssueError;
use crate::issue::new_jti;
use crate::keys::{PublicKey, SigningKey, TokenAlg};
use crate::verify::{VerifyError, diagnose_header, from_jwt_error};

/// `client_assertion_type` of a JWT bearer client assertion (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The `typ` header a client assertion must carry (draft-ietf-oauth-rfc7523bis, HelseID).
pub const ASSERTION_TYPE: &str = "client-authentication+jwt";
/// Longest client assertion accepted, in bytes.
pub const ASSERTION_BYTES_MAX: usize = 8 * 1024;
/// Longest `jti`, in bytes.
pub const JTI_BYTES_MAX: usize = 256;
/// Furthest `exp` may lie ahead of now, in seconds.
pub const ASSERTION_LIFETIME_S_MAX: i64 = 60;
/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const ASSERTION_LEEWAY_S: i64 = 10;
/// Most of a client's keys tried for an assertion without `kid`.
pub const KEYS_TRIED_MAX: usize = kartotek_domain::limits::JWKS_PER_CLIENT_MAX;

/// Why a client assertion was refused (answered `invalid_client`; the message may be shown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Not a compact JWS, too long, bad base64 or JSON, mistyped or missing claims.
    #[error("malformed client assertion: {0}")]
    Malformed(String),
    /// `alg` is not ES256 or EdDSA.
    #[error("client assertion algorithm {0} is not allowed")]
    AlgNotAllowed(String),
    /// `typ` is not `client-authentication+jwt`.
    #[error("client assertion typ {0:?} is not {ASSERTION_TYPE}")]
    WrongType(String),
    /// No usable key of the client has this `kid` (or the client has no ES256/EdDSA key).
    #[error("no usable key of the client for kid {0:?}")]
    UnknownKey(String),
    /// The signature does not verify with the client's key(s).
    #[error("client assertion signature does not verify")]
    BadSignature,
    /// `iss` or `sub` is not the client id.
    #[error("iss and sub must both be the client id")]
    WrongClient,
    /// `aud` does not name this token service.
    #[error("aud must contain {0:?}")]
    WrongAudience(String),
    /// `exp` has passed.
    #[error("client assertion expired at {exp}")]
    Expired {
        /// The assertion's `exp`.
        exp: i64,
    },
    /// `exp` lies more than [`ASSERTION_LIFETIME_S_MAX`] seconds ahead.
    #[error("client assertion exp {exp} is more than {ASSERTION_LIFETIME_S_MAX} s ahead")]
    LifetimeTooLong {
        /// The assertion's `exp`.
        exp: i64,
    },
    /// `nbf` or `iat` is in the future.
    #[error("client assertion not valid before {nbf}")]
    NotYetValid {
        /// The `nbf` (or `iat`).
        nbf: i64,
    },
    /// `jti` is missing, empty or too long.
    #[error("client assertion jti: {0}")]
    BadJti(String),
}

impl AssertionError {
    /// A short, stable name of the reason (for metrics labels and logs).
    pub fn code(&self) -> &'static str {
        match self {
            AssertionError::Malformed(_) => "malformed",
            AssertionError::AlgNotAllowed(_) => "alg_not_allowed",
            AssertionError::WrongType(_) => "wrong_type",
            AssertionError::UnknownKey(_) => "unknown_key",
            AssertionError::BadSignature => "bad_signature",
            AssertionError::WrongClient => "wrong_client",
            AssertionError::WrongAudience(_) => "wrong_audience",
            AssertionError::Expired { .. } => "expired",
            AssertionError::LifetimeTooLong { .. } => "lifetime_too_long",
            AssertionError::NotYetValid { .. } => "not_yet_valid",
            AssertionError::BadJti(_) => "bad_jti",
        }
    }
}

impl From<VerifyError> for AssertionError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::AlgNotAllowed(a) => AssertionError::AlgNotAllowed(a),
            VerifyError::BadSignature => AssertionError::BadSignature,
            VerifyError::Malformed(m) => AssertionError::Malformed(m),
            other => AssertionError::Malformed(other.to_string()),
        }
    }
}

/// What a verified assertion says, for the single-use check and the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionClaims {
    /// The client (its `iss` and `sub`).
    pub client_id: String,
    /// The assertion's unique id.
    pub jti: String,
    /// Its expiry, seconds since the epoch: remember the `jti` until then (plus leeway).
    pub exp_s: i64,
}

#[derive(Deserialize)]
struct RawAssertion {
    iss: String,
    sub: String,
    #[serde(deserialize_with = "one_or_many_in")]
    aud: Vec<String>,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

fn check_size(jwt: &str) -> Result<&str, AssertionError> {
    let jwt = jwt.trim();
    if jwt.is_empty() {
        return Err(AssertionError::Malformed("empty".into()));
    }
    if jwt.len() > ASSERTION_BYTES_MAX {
        return Err(AssertionError::Malformed(format!(
            "longer than {ASSERTION_BYTES_MAX} bytes"
        )));
    }
    Ok(jwt)
}

/// The client id an assertion claims to come from (its `iss`, which must equal `sub`), read
/// **without** verifying anything: only to look up the client's keys before
/// [`verify_client_assertion`].
pub fn assertion_client_id(jwt: &str) -> Result<String, AssertionError> {
    let jwt = check_size(jwt)?;
    let claims = jwt
        .split('.')
        .nth(1)
        .and_then(b64::decode)
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .ok_or_else(|| AssertionError::Malformed("claims are not base64url JSON".into()))?;
    let iss = claims.get("iss").and_then(Value::as_str);
    let sub = claims.get("sub").and_then(Value::as_str);
    match (iss, sub) {
        (Some(iss), Some(sub)) if iss == sub => ClientId::parse("iss", iss)
            .map(|c| c.as_str().to_owned())
            .map_err(|e| AssertionError::Malformed(e.to_string())),
        _ => Err(AssertionError::WrongClient),
    }
}

/// Verifies a client assertion sent by `client_id` to the token service whose issuer is
/// `expected_audience`, against the client's public keys (JWK JSON text, as in the client
/// record; keys that are not ES256/EdDSA are skipped) at `now_s`. See the
/// [module docs](self).
pub fn verify_client_assertion<K: AsRef<str>>(
    jwt: &str,
    client_id: &str,
    expected_audience: &str,
    client_public_jwks: &[K],
    now_s: i64,
) -> Result<AssertionClaims, AssertionError> {
    let jwt = check_size(jwt)?;
    let header = decode_header(jwt).map_err(|_| AssertionError::from(diagnose_header(jwt)))?;
    let alg = TokenAlg::from_jwt(header.alg)
        .ok_or_else(|| AssertionError::AlgNotAllowed(format!("{:?}", header.alg)))?;
    match header.typ.as_deref() {
        Some(t)
            if t.strip_prefix("application/")
                .unwrap_or(t)
                .eq_ignore_ascii_case(ASSERTION_TYPE) => {}
        other => return Err(AssertionError::WrongType(other.unwrap_or("").to_owned())),
    }
    let kid = header.kid.as_deref();
    let keys: Vec<PublicKey> = client_public_jwks
        .iter()
        .filter_map(|k| PublicKey::from_jwk_json(k.as_ref()).ok())
        .filter(|k| k.alg() == alg && kid.is_none_or(|kid| k.kid() == kid))
        .take(KEYS_TRIED_MAX)
        .collect();
    if keys.is_empty() {
        return Err(AssertionError::UnknownKey(kid.unwrap_or("").to_owned()));
    }
    let mut validation = Validation::new(alg.jwt());
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let mut last = AssertionError::BadSignature;
    let mut claims = None;
    for key in &keys {
        match decode::<RawAssertion>(jwt, key.decoding_key(), &validation) {
            Ok(data) => {
                claims = Some(data.claims);
                break;
            }
            Err(e) => last = from_jwt_error(e.kind()).into(),
        }
    }
    let c = claims.ok_or(last)?;
    if c.iss != client_id || c.sub != client_id {
        return Err(AssertionError::WrongClient);
    }
    if !c
        .aud
        .iter()
        .any(|a| a.len() <= ISSUER_BYTES_MAX && a == expected_audience)
    {
        return Err(AssertionError::WrongAudience(expected_audience.to_owned()));
    }
    if c.exp.saturating_add(ASSERTION_LEEWAY_S) <= now_s {
        return Err(AssertionError::Expired { exp: c.exp });
    }
    if c.exp > now_s.saturating_add(ASSERTION_LIFETIME_S_MAX + ASSERTION_LEEWAY_S) {
        return Err(AssertionError::LifetimeTooLong { exp: c.exp });
    }
    let not_before = c.nbf.unwrap_or(i64::MIN).max(c.iat.unwrap_or(i64::MIN));
    if not_before > now_s.saturating_add(ASSERTION_LEEWAY_S) {
        return Err(AssertionError::NotYetValid { nbf: not_before });
    }
    let jti = match c.jti {
        None => return Err(AssertionError::BadJti("missing".into())),
        Some(j) if j.is_empty() || j.len() > JTI_BYTES_MAX => {
            return Err(AssertionError::BadJti(format!(
                "must be 1 to {JTI_BYTES_MAX} bytes"
            )));
        }
        Some(j) if j.chars().any(char::is_control) => {
            return Err(AssertionError::BadJti(
                "must not contain control characters".into(),
            ));
        }
        Some(j) => j,
    };
    Ok(AssertionClaims {
        client_id: c.iss,
        jti,
        exp_s: c.exp,
    })
}

/// Signs a client assertion, as a client does (the CLI's client file, tests): header `typ`
/// [`ASSERTION_TYPE`] and the key's `kid`; `iss` = `sub` = `client_id`, `aud` = `audience`
/// (the token service's issuer), `iat` = `nbf` = `now_s`, `exp` = `now_s + lifetime_s`
/// (lifetime clamped to 1..=[`ASSERTION_LIFETIME_S_MAX`]), a fresh random `jti`.
pub fn sign_client_assertion(
    key: &SigningKey,
    client_id: &str,
    audience: &str,
    now_s: i64,
    lifetime_s: i64,
) -> Result<String, IssueError> {
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now_s,
        "nbf": now_s,
        "exp": now_s.saturating_add(lifetime_s.clamp(1, ASSERTION_LIFETIME_S_MAX)),
        "jti": new_jti()?,
    });
    key.sign_jwt(ASSERTION_TYPE, &claims)
}

/// Why a [`ReplayGuard`] refused an assertion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// This client used this `jti` before (and it has not expired).
    #[error("client assertion jti was already used")]
    Replayed,
    /// The guard is full (too many live assertions of this client, or of all clients); the
    /// assertion is refused rather than let through unchecked.
    #[error("too many client assertions in flight; retry shortly")]
    Full,
}

/// Remembers the `jti`s of accepted client assertions until they expire, so that each is
/// used once. Implementations: [`JtiReplayCache`] (one process); a cluster-backed one that
/// every frontend instance shares comes later.
pub trait ReplayGuard: Send + Sync {
    /// Records `client_id`'s `jti` (valid until `exp_s`) at `now_s`; [`ReplayError::Replayed`]
    /// if it is already recorded and not expired.
    fn check_and_record(
        &self,
        client_id: &str,
        jti: &str,
        exp_s: i64,
        now_s: i64,
    ) -> Result<(), ReplayError>;
}

/// Default most live `jti`s per client in a [`JtiReplayCache`].
pub const REPLAY_JTIS_PER_CLIENT_MAX: usize = 10_000;
/// Default most clients with live `jti`s in a [`JtiReplayCache`].
pub const REPLAY_CLIENTS_MAX: usize = 10_000;

#[derive(Debug, Default)]
struct ClientJtis {
    /// `jti` → `exp_s`.
    live: HashMap<String, i64>,
    /// (`exp_s`, `jti`), oldest first, to drop expired ones cheaply.
    by_exp: BTreeSet<(i64, String)>,
}

impl ClientJtis {
    /// Drops the `jti`s whose assertion can no longer be accepted at `now_s`.
    fn purge(&mut self, now_s: i64) {
        while let Some((exp, _)) = self.by_exp.first() {
            if exp.saturating_add(ASSERTION_LEEWAY_S) > now_s {
                break;
            }
            if let Some((_, jti)) = self.by_exp.pop_first() {
                self.live.remove(&jti);
            }
        }
    }
}

/// An in-process [`ReplayGuard`]: per client, the live `jti`s (bounded by
/// `jtis_per_client_max`), over at most `clients_max` clients; entries are dropped once their
/// assertion has expired (`exp` + [`ASSERTION_LEEWAY_S`]). Guards one process only.
#[derive(Debug)]
pub struct JtiReplayCache {
    clients: Mutex<HashMap<String, ClientJtis>>,
    jtis_per_client_max: usize,
    clients_max: usize,
}

impl Default for JtiReplayCache {
    fn default() -> Self {
        JtiReplayCache::new(REPLAY_JTIS_PER_CLIENT_MAX, REPLAY_CLIENTS_MAX)
    }
}

impl JtiReplayCache {
    /// A cache with the given bounds (at least 1 each).
    pub fn new(jtis_per_client_max: usize, clients_max: usize) -> JtiReplayCache {
        JtiReplayCache {
            clients: Mutex::new(HashMap::new()),
            jtis_per_client_max: jtis_per_client_max.max(1),
            clients_max: clients_max.max(1),
        }
    }

    /// Live `jti`s over all clients (after purging none; for tests and metrics).
    pub fn len(&self) -> usize {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.values().map(|c| c.live.len()).sum()
    }

    /// True when no `jti` is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReplayGuard for JtiReplayCache {
    fn check_and_record(
        &self,
        client_id: &str,
        jti: &str,
        exp_s: i64,
        now_s: i64,
    ) -> Result<(), ReplayError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if !clients.contains_key(client_id) && clients.len() >= self.clients_max {
            clients.retain(|_, c| {
                c.purge(now_s);
                !c.live.is_empty()
            });
            if clients.len() >= self.clients_max {
                return Err(ReplayError::Full);
            }
        }
        let c = clients.entry(client_id.to_owned()).or_default();
        c.purge(now_s);
        if c.live.contains_key(jti) {
            return Err(ReplayError::Replayed);
        }
        if c.live.len() >= self.jtis_per_client_max {
            return Err(ReplayError::Full);
        }
        c.live.insert(jti.to_owned(), exp_s);
        c.by_exp.insert((exp_s, jti.to_owned()));
        Ok(())
    }
}
