//! Citizen login tokens: the OpenID Connect ID token a citizen brings from a trusted login
//! provider (ID-porten in production, `kartotek dev`'s dev login on a laptop), checked by
//! [`LoginVerifier`] before the token service exchanges it for a Kartotek access token
//! (RFC 8693 token exchange, in the frontend).
//!
//! A provider ([`LoginProvider`]) is configured with its issuer (compared exactly), the
//! audience its ID tokens must carry (empty: the id of the client that exchanges the token,
//! which is how an OpenID provider addresses the app the citizen logged in to), its public
//! keys (its JWK Set) and the `acr` values accepted. The checks, in order, stopping at the
//! first failure ([`VerifyError`]):
//!
//! 1. at most [`LOGIN_TOKEN_BYTES_MAX`] bytes; a compact JWS;
//! 2. `alg` ES256, EdDSA or RS256 (ID-porten signs with RS256; RSA keys of 2048 to 8192 bits
//!    only) — never `none` or HMAC; `typ` absent or `JWT` (an access token, `at+jwt`, or a
//!    client assertion is not a login);
//! 3. `kid` of a key of a configured provider, signature with that key;
//! 4. `iss` exactly that provider's; `aud` contains the expected audience;
//! 5. `exp` + leeway > now; `nbf`/`iat` ≤ now + leeway; at most
//!    [`LOGIN_TOKEN_LIFETIME_S_MAX`] between `iat` and `exp`;
//! 6. the national id: `pid` (ID-porten's claim for the fødselsnummer or D-number), else
//!    `sub`, valid by the domain's rules (check digits);
//! 7. `acr` one of the provider's accepted values (default: ID-porten's substantial and high
//!    levels), mapped to the HelseID security level (`3` substantial, `4` high);
//! 8. `nonce`, when present, at most [`LOGIN_NONCE_BYTES_MAX`] bytes; it is returned, not
//!    compared: the relying party that sent one (the citizen page's authorisation-code login)
//!    compares it with its own.
//!
//! Time is passed in; nothing is logged here (a login token names a person).

use jsonwebtoken::{Algorithm, DecodingKey, decode, decode_header};
use kartotek_domain::NationalId;
use kartotek_domain::locator::parse_national_id;
use serde::Deserialize;
use serde_json::Value;

use crate::b64;
use crate::claims::one_or_many_in;
use crate::error::KeyError;
use crate::keys::{KEYS_PER_SET_MAX, PublicKey};
use crate::verify::{
    LEEWAY_S_MAX, VerifyError, diagnose_header, from_jwt_error, signature_only_for,
};

/// Longest login token accepted, in bytes.
pub const LOGIN_TOKEN_BYTES_MAX: usize = 16 * 1024;
/// Longest login-token life (`exp - iat`) accepted, in seconds (ID-porten's ID tokens live
/// two minutes; a login is fresh or it is not a login).
pub const LOGIN_TOKEN_LIFETIME_S_MAX: i64 = 3600;
/// Longest `nonce` claim accepted, in bytes.
pub const LOGIN_NONCE_BYTES_MAX: usize = 256;
/// Most login providers of one verifier.
pub const LOGIN_PROVIDERS_MAX: usize = 8;
/// Most accepted `acr` values of one provider.
pub const ACR_VALUES_MAX: usize = 8;
/// Smallest RSA modulus accepted, in bytes (2048 bits).
pub const RSA_MODULUS_BYTES_MIN: usize = 256;
/// Largest RSA modulus accepted, in bytes (8192 bits).
pub const RSA_MODULUS_BYTES_MAX: usize = 1024;
/// ID-porten's substantial level (security level 3).
pub const ACR_SUBSTANTIAL: &str = "idporten-loa-substantial";
/// ID-porten's high level (security level 4).
pub const ACR_HIGH: &str = "idporten-loa-high";
/// The `acr` values a provider accepts unless configured otherwise.
pub const ACR_DEFAULT: [&str; 2] = [ACR_SUBSTANTIAL, ACR_HIGH];
/// RFC 8693 token type of an OpenID Connect ID token.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// RFC 8693 token type of a JWT (accepted for a login token too).
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The HelseID security level of an `acr` value: `4` for high, `3` for substantial (also
/// ID-porten's older `Level4`/`Level3`); `None` for anything else.
pub fn security_level_of(acr: &str) -> Option<&'static str> {
    match acr {
        ACR_HIGH | "Level4" => Some("4"),
        ACR_SUBSTANTIAL | "Level3" => Some("3"),
        _ => None,
    }
}

/// The claims of a login token that the exchange uses; others are ignored.
#[derive(Debug, Clone, Deserialize)]
struct LoginClaims {
    iss: String,
    #[serde(default)]
    sub: String,
    #[serde(deserialize_with = "one_or_many_in")]
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    pid: Option<String>,
    #[serde(default)]
    acr: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// A citizen, as a verified login token names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Citizen {
    /// The national id (fødselsnummer or D-number).
    pub national_id: NationalId,
    /// The `acr` the provider logged them in with.
    pub acr: String,
    /// The HelseID security level of that `acr` (`3` or `4`).
    pub security_level: &'static str,
    /// The provider's issuer URL.
    pub issuer: String,
    /// When the login token expires (seconds since the epoch).
    pub exp: i64,
    /// The token's `nonce` (OpenID Connect Core §3.1.3.7: the relying party that sent one in
    /// its authentication request compares it), at most [`LOGIN_NONCE_BYTES_MAX`] bytes.
    pub nonce: Option<String>,
}

/// One verification key of a provider.
#[derive(Clone)]
struct LoginKey {
    kid: String,
    alg: Algorithm,
    decoding: DecodingKey,
}

impl std::fmt::Debug for LoginKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn key_error(key: &str, reason: impl Into<String>) -> KeyError {
    KeyError::Malformed {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// An RSA public JWK (`kty` `RSA`, `n`, `e`; `alg` RS256 or absent; `use` sig or absent).
fn rsa_key(obj: &serde_json::Map<String, Value>, label: &str) -> Result<LoginKey, KeyError> {
    let text = |name: &str| -> Result<&str, KeyError> {
        obj.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| key_error(label, format!("an RSA key needs {name} as a string")))
    };
    if obj.contains_key("d") {
        return Err(key_error(label, "has a private member d"));
    }
    if let Some(alg) = obj.get("alg")
        && alg.as_str() != Some("RS256")
    {
        return Err(key_error(label, "an RSA key is accepted only for RS256"));
    }
    if let Some(u) = obj.get("use")
        && u.as_str() != Some("sig")
    {
        return Err(key_error(label, "use must be sig"));
    }
    let kid = text("kid")?;
    let (n, e) = (text("n")?, text("e")?);
    let modulus = b64::decode(n).ok_or_else(|| key_error(label, "n is not base64url"))?;
    let modulus_len = modulus.len() - modulus.iter().take_while(|b| **b == 0).count();
    if !(RSA_MODULUS_BYTES_MIN..=RSA_MODULUS_BYTES_MAX).contains(&modulus_len) {
        return Err(key_error(
            label,
            format!(
                "RSA modulus of {} bits; 2048 to 8192 accepted",
                modulus_len * 8
            ),
        ));
    }
    let decoding =
        DecodingKey::from_rsa_components(n, e).map_err(|err| key_error(label, err.to_string()))?;
    Ok(LoginKey {
        kid: kid.to_owned(),
        alg: Algorithm::RS256,
        decoding,
    })
}

/// A trusted login provider: issuer, expected audience, keys and accepted `acr` values.
#[derive(Debug, Clone)]
pub struct LoginProvider {
    issuer: String,
    audience: String,
    keys: Vec<LoginKey>,
    acr_allowed: Vec<String>,
}

impl LoginProvider {
    /// A provider with the keys of its JWK Set document (EC P-256, Ed25519 or RSA keys, each
    /// with a distinct `kid`; at most [`KEYS_PER_SET_MAX`]). `audience` empty: the exchanging
    /// client's id. `acr_allowed` empty: [`ACR_DEFAULT`]; each must map to a security level.
    pub fn from_jwks_json(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks_json: &str,
        acr_allowed: &[String],
    ) -> Result<LoginProvider, KeyError> {
        let value: Value = serde_json::from_str(jwks_json)
            .map_err(|e| key_error("(jwk set)", format!("not JSON: {e}")))?;
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| key_error("(jwk set)", "a JWK Set is an object with a keys array"))?;
        if keys.is_empty() || keys.len() > KEYS_PER_SET_MAX {
            return Err(KeyError::Count(format!(
                "a login provider has 1 to {KEYS_PER_SET_MAX} keys, this one {}",
                keys.len()
            )));
        }
        let mut out: Vec<LoginKey> = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let label = format!("keys[{i}]");
            let key = match k.get("kty").and_then(Value::as_str) {
                Some("RSA") => {
                    let obj = k
                        .as_object()
                        .ok_or_else(|| key_error(&label, "a JWK is a JSON object"))?;
                    rsa_key(obj, &label)?
                }
                _ => {
                    let p = PublicKey::from_jwk_value(k, &label)?;
                    LoginKey {
                        kid: p.kid().to_owned(),
                        alg: p.alg().jwt(),
                        decoding: p.decoding_key().clone(),
                    }
                }
            };
            if out.iter().any(|o| o.kid == key.kid) {
                return Err(KeyError::DuplicateKid(key.kid));
            }
            out.push(key);
        }
        let acr_allowed: Vec<String> = if acr_allowed.is_empty() {
            ACR_DEFAULT.iter().map(|s| (*s).to_owned()).collect()
        } else {
            acr_allowed.to_vec()
        };
        if acr_allowed.len() > ACR_VALUES_MAX {
            return Err(KeyError::Count(format!(
                "at most {ACR_VALUES_MAX} acr values"
            )));
        }
        if let Some(bad) = acr_allowed.iter().find(|a| security_level_of(a).is_none()) {
            return Err(key_error(
                "acr_allowed",
                format!("{bad:?} has no security level (accepted: {ACR_SUBSTANTIAL}, {ACR_HIGH})"),
            ));
        }
        Ok(LoginProvider {
            issuer: issuer.into(),
            audience: audience.into(),
            keys: out,
            acr_allowed,
        })
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// Verifies citizen login tokens against the configured providers. Build once, share.
#[derive(Debug, Clone)]
pub struct LoginVerifier {
    providers: Vec<LoginProvider>,
    leeway_s: i64,
}

impl LoginVerifier {
    /// A verifier for `providers` (at most [`LOGIN_PROVIDERS_MAX`]; more are ignored) with a
    /// clock leeway of `leeway_s` (clamped to 0..=[`LEEWAY_S_MAX`]).
    pub fn new(providers: Vec<LoginProvider>, leeway_s: i64) -> LoginVerifier {
        let mut providers = providers;
        providers.truncate(LOGIN_PROVIDERS_MAX);
        LoginVerifier {
            providers,
            leeway_s: leeway_s.clamp(0, LEEWAY_S_MAX),
        }
    }

    /// True when no provider is configured (no citizen can log in).
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// The citizen `token` names, verified at `now_s` for an exchange by `client_id` (see
    /// the [module docs](self) for the checks).
    pub fn verify(&self, token: &str, client_id: &str, now_s: i64) -> Result<Citizen, VerifyError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(VerifyError::Missing);
        }
        if token.len() > LOGIN_TOKEN_BYTES_MAX {
            return Err(VerifyError::Malformed(format!(
                "longer than {LOGIN_TOKEN_BYTES_MAX} bytes"
            )));
        }
        let header = decode_header(token).map_err(|_| diagnose_header(token))?;
        if !matches!(
            header.alg,
            Algorithm::ES256 | Algorithm::EdDSA | Algorithm::RS256
        ) {
            return Err(VerifyError::AlgNotAllowed(format!("{:?}", header.alg)));
        }
        match header.typ.as_deref() {
            None => {}
            Some(t) if t.eq_ignore_ascii_case("JWT") => {}
            Some(t) => return Err(VerifyError::WrongType(t.chars().take(64).collect())),
        }
        let kid = header.kid.as_deref().unwrap_or("");
        let mut last = VerifyError::UnknownKey(kid.to_owned());
        for provider in &self.providers {
            for key in provider
                .keys
                .iter()
                .filter(|k| k.kid == kid && k.alg == header.alg)
            {
                match decode::<LoginClaims>(token, &key.decoding, &signature_only_for(key.alg)) {
                    Ok(data) => return self.check(provider, data.claims, client_id, now_s),
                    Err(e) => last = from_jwt_error(e.kind()),
                }
            }
        }
        Err(last)
    }

    fn check(
        &self,
        provider: &LoginProvider,
        claims: LoginClaims,
        client_id: &str,
        now_s: i64,
    ) -> Result<Citizen, VerifyError> {
        if claims.iss != provider.issuer {
            return Err(VerifyError::UnknownIssuer(
                claims.iss.chars().take(128).collect(),
            ));
        }
        let audience = if provider.audience.is_empty() {
            client_id
        } else {
            provider.audience.as_str()
        };
        if !claims.aud.iter().any(|a| a == audience) {
            return Err(VerifyError::WrongAudience(audience.to_owned()));
        }
        if claims.exp.saturating_add(self.leeway_s) <= now_s {
            return Err(VerifyError::Expired { exp: claims.exp });
        }
        let not_before = claims.nbf.unwrap_or(i64::MIN).max(claims.iat);
        if not_before > now_s.saturating_add(self.leeway_s) {
            return Err(VerifyError::NotYetValid { nbf: not_before });
        }
        if claims.exp.saturating_sub(claims.iat) > LOGIN_TOKEN_LIFETIME_S_MAX {
            return Err(VerifyError::BadClaim {
                claim: "exp",
                reason: format!("a login token lives at most {LOGIN_TOKEN_LIFETIME_S_MAX} s"),
            });
        }
        let id_text = claims.pid.as_deref().unwrap_or(&claims.sub);
        let national_id = parse_national_id("pid", id_text).map_err(|e| VerifyError::BadClaim {
            claim: "pid",
            reason: format!("not a national id ({})", e.reason),
        })?;
        let acr = claims.acr.unwrap_or_default();
        let security_level = provider
            .acr_allowed
            .iter()
            .find(|a| **a == acr)
            .and_then(|a| security_level_of(a))
            .ok_or_else(|| VerifyError::BadClaim {
                claim: "acr",
                reason: format!(
                    "{:?} is not an accepted level ({})",
                    acr.chars().take(64).collect::<String>(),
                    provider.acr_allowed.join(", ")
                ),
            })?;
        if claims
            .nonce
            .as_ref()
            .is_some_and(|n| n.len() > LOGIN_NONCE_BYTES_MAX)
        {
            return Err(VerifyError::BadClaim {
                claim: "nonce",
                reason: format!("longer than {LOGIN_NONCE_BYTES_MAX} bytes"),
            });
        }
        Ok(Citizen {
            national_id,
            acr,
            security_level,
            issuer: provider.issuer.clone(),
            exp: claims.exp,
            nonce: claims.nonce,
        })
    }
}

/// Signs a login token as a login provider would (`typ` `JWT`; `sub` and `pid` the national
/// id): `kartotek dev`'s dev login and tests. Never used on a production path.
pub fn sign_login_token(
    key: &crate::keys::SigningKey,
    issuer: &str,
    audience: &str,
    national_id: &NationalId,
    acr: &str,
    now_s: i64,
    lifetime_s: i64,
) -> Result<String, crate::error::IssueError> {
    let claims = serde_json::json!({
        "iss": issuer,
        "aud": audience,
        "sub": national_id.as_str(),
        "pid": national_id.as_str(),
        "acr": acr,
        "iat": now_s,
        "nbf": now_s,
        "exp": now_s.saturating_add(lifetime_s.clamp(1, LOGIN_TOKEN_LIFETIME_S_MAX)),
        "jti": crate::issue::new_jti().map_err(|e| crate::error::IssueError::Sign(e.to_string()))?,
    });
    key.sign_jwt("JWT", &claims)
}
