//! Keys: [`TokenAlg`] (the two algorithms ever accepted), [`PublicKey`] (a checked public
//! JWK, parsed once into the decoding key the verifier keeps), [`SigningKey`] (a private
//! key with its `kid`) and [`SigningKeySet`] (the token service's keys over time).
//!
//! # Key files and rotation
//!
//! Every frontend instance signs with the same keys, so they come from a file shared by all
//! (`token.signing_keys_file`), never generated per process (except in dev). The file is a
//! JWK Set of *private* JWKs (EC P-256 or OKP Ed25519, with `d`), each optionally with
//!
//! - `"kartotek_not_before"`: RFC 3339 time from which the key signs (published before that,
//!   so that verifiers' caches know it by the time it is used), and
//! - `"kartotek_retired_at"`: RFC 3339 time after which it no longer signs.
//!
//! The key that signs at time *t* is the one with the latest `not_before` ≤ *t* that is not
//! retired at *t* (the first in the file on a tie). A retired key stays in the published JWK
//! Set until `retired_at + token lifetime max + `[`LEEWAY_S_MAX`](crate::LEEWAY_S_MAX), when
//! the last token it signed has expired for every verifier. To rotate: add the new key with a
//! `kartotek_not_before` a few minutes ahead and give the old one the same time as
//! `kartotek_retired_at`; deploy the file to every instance; remove the old key any time after
//! it has left the published set. The public set never carries `d` or the `kartotek_*`
//! members.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use kartotek_domain::time::Timestamp;
use p256::elliptic_curve::Generate;
use p256::elliptic_curve::sec1::ToSec1Point;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::b64;
use crate::error::{IssueError, KeyError};
use crate::verify::LEEWAY_S_MAX;

/// Largest key file read, in bytes.
pub const KEY_FILE_BYTES_MAX: u64 = 256 * 1024;
/// Most keys in a JWK Set (signing key set or a trusted issuer's published set).
pub const KEYS_PER_SET_MAX: usize = 32;
/// Longest `kid`, in bytes (the domain's limit for client keys).
pub const KID_BYTES_MAX: usize = kartotek_domain::limits::JWK_KID_BYTES_MAX;
/// Key file member: when the key starts signing (RFC 3339).
pub const NOT_BEFORE_MEMBER: &str = "kartotek_not_before";
/// Key file member: when the key stops signing (RFC 3339).
pub const RETIRED_AT_MEMBER: &str = "kartotek_retired_at";

/// The signature algorithms Kartotek accepts. There is no way to name another: `none`, HMAC
/// and RSA cannot be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenAlg {
    /// ECDSA with P-256 and SHA-256 (RFC 7518 §3.4).
    Es256,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

impl TokenAlg {
    /// Both algorithms.
    pub const ALL: [TokenAlg; 2] = [TokenAlg::Es256, TokenAlg::EdDsa];

    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            TokenAlg::Es256 => "ES256",
            TokenAlg::EdDsa => "EdDSA",
        }
    }

    /// The algorithm named `alg`, if it is one of ours.
    pub fn from_name(alg: &str) -> Option<TokenAlg> {
        TokenAlg::ALL.into_iter().find(|a| a.name() == alg)
    }

    pub(crate) fn jwt(self) -> Algorithm {
        match self {
            TokenAlg::Es256 => Algorithm::ES256,
            TokenAlg::EdDsa => Algorithm::EdDSA,
        }
    }

    pub(crate) fn from_jwt(alg: Algorithm) -> Option<TokenAlg> {
        match alg {
            Algorithm::ES256 => Some(TokenAlg::Es256),
            Algorithm::EdDSA => Some(TokenAlg::EdDsa),
            _ => None,
        }
    }
}

fn malformed(key: &str, reason: impl Into<String>) -> KeyError {
    KeyError::Malformed {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn unsupported(key: &str, reason: impl Into<String>) -> KeyError {
    KeyError::Unsupported {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn str_member<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    key: &str,
) -> Result<Option<&'a str>, KeyError> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(malformed(key, format!("{name} must be a string"))),
    }
}

fn bytes_member(
    obj: &Map<String, Value>,
    name: &str,
    len: usize,
    key: &str,
) -> Result<Vec<u8>, KeyError> {
    let text =
        str_member(obj, name, key)?.ok_or_else(|| malformed(key, format!("has no {name}")))?;
    match b64::decode(text) {
        Some(b) if b.len() == len => Ok(b),
        Some(b) => Err(malformed(
            key,
            format!("{name} is {} bytes, {len} expected", b.len()),
        )),
        None => Err(malformed(key, format!("{name} is not base64url"))),
    }
}

/// The public members of a key, checked: which curve and the point.
#[derive(Clone)]
enum PublicMaterial {
    P256 { x: Vec<u8>, y: Vec<u8> },
    Ed25519 { x: Vec<u8> },
}

impl PublicMaterial {
    fn alg(&self) -> TokenAlg {
        match self {
            PublicMaterial::P256 { .. } => TokenAlg::Es256,
            PublicMaterial::Ed25519 { .. } => TokenAlg::EdDsa,
        }
    }

    /// Reads `kty`, `crv` and the point, and checks the point is on the curve (so that no
    /// bad key reaches the signature code, some of which slices without checking).
    fn from_jwk(obj: &Map<String, Value>, key: &str) -> Result<PublicMaterial, KeyError> {
        let kty = str_member(obj, "kty", key)?.ok_or_else(|| malformed(key, "has no kty"))?;
        let crv = str_member(obj, "crv", key)?;
        let material = match (kty, crv) {
            ("EC", Some("P-256")) => {
                let x = bytes_member(obj, "x", 32, key)?;
                let y = bytes_member(obj, "y", 32, key)?;
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(4);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                p256::PublicKey::from_sec1_bytes(&sec1)
                    .map_err(|_| malformed(key, "x, y is not a point on P-256"))?;
                PublicMaterial::P256 { x, y }
            }
            ("OKP", Some("Ed25519")) => {
                let x = bytes_member(obj, "x", 32, key)?;
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(&x);
                ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map_err(|_| malformed(key, "x is not an Ed25519 public key"))?;
                PublicMaterial::Ed25519 { x }
            }
            (kty, crv) => {
                return Err(unsupported(
                    key,
                    format!("kty {kty} with crv {}", crv.unwrap_or("(none)")),
                ));
            }
        };
        if let Some(alg) = str_member(obj, "alg", key)?
            && alg != material.alg().name()
        {
            return Err(unsupported(
                key,
                format!(
                    "alg {alg} for a key that can only do {}",
                    material.alg().name()
                ),
            ));
        }
        if let Some(u) = str_member(obj, "use", key)?
            && u != "sig"
        {
            return Err(malformed(key, "use must be \"sig\""));
        }
        Ok(material)
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url): the required members in lexicographic
    /// order, no whitespace.
    fn thumbprint(&self) -> String {
        let canonical = match self {
            PublicMaterial::P256 { x, y } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64::encode(x),
                b64::encode(y)
            ),
            PublicMaterial::Ed25519 { x } => {
                format!(
                    r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                    b64::encode(x)
                )
            }
        };
        b64::encode(&Sha256::digest(canonical.as_bytes()))
    }

    fn jwk(&self, kid: &str) -> Value {
        match self {
            PublicMaterial::P256 { x, y } => json!({
                "kty": "EC", "crv": "P-256", "x": b64::encode(x), "y": b64::encode(y),
                "kid": kid, "alg": "ES256", "use": "sig",
            }),
            PublicMaterial::Ed25519 { x } => json!({
                "kty": "OKP", "crv": "Ed25519", "x": b64::encode(x),
                "kid": kid, "alg": "EdDSA", "use": "sig",
            }),
        }
    }

    fn decoding_key(&self, key: &str) -> Result<DecodingKey, KeyError> {
        match self {
            PublicMaterial::P256 { x, y } => {
                DecodingKey::from_ec_components(&b64::encode(x), &b64::encode(y))
            }
            PublicMaterial::Ed25519 { x } => DecodingKey::from_ed_components(&b64::encode(x)),
        }
        .map_err(|e| malformed(key, e.to_string()))
    }
}

fn kid_of(
    obj: &Map<String, Value>,
    material: &PublicMaterial,
    key: &str,
) -> Result<String, KeyError> {
    match str_member(obj, "kid", key)? {
        Some(k)
            if !k.is_empty() && k.len() <= KID_BYTES_MAX && !k.chars().any(char::is_control) =>
        {
            Ok(k.to_owned())
        }
        Some(_) => Err(malformed(
            key,
            format!("kid must be 1 to {KID_BYTES_MAX} bytes"),
        )),
        None => Ok(material.thumbprint()),
    }
}

/// A checked public key (EC P-256 or OKP Ed25519) with its `kid` (the JWK's, or its RFC 7638
/// thumbprint when it has none) and the decoding key parsed once.
#[derive(Clone)]
pub struct PublicKey {
    kid: String,
    material: PublicMaterial,
    decoding: DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg())
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Parses one public JWK (JSON text). Refuses other key types and curves, an `alg` that
    /// does not fit the key, `use` other than `sig`, points off the curve, and private keys
    /// (a `d` member).
    pub fn from_jwk_json(json: &str) -> Result<PublicKey, KeyError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| malformed("(jwk)", format!("not JSON: {e}")))?;
        PublicKey::from_jwk_value(&value, "(jwk)")
    }

    /// [`from_jwk_json`](Self::from_jwk_json) for an already parsed value; `label` names the
    /// key in errors.
    pub fn from_jwk_value(value: &Value, label: &str) -> Result<PublicKey, KeyError> {
        let obj = value
            .as_object()
            .ok_or_else(|| malformed(label, "a JWK is a JSON object"))?;
        if obj.contains_key("d") {
            return Err(malformed(
                label,
                "has a private member d; a public key was expected",
            ));
        }
        let material = PublicMaterial::from_jwk(obj, label)?;
        let kid = kid_of(obj, &material, label)?;
        PublicKey::new(kid, material)
    }

    fn new(kid: String, material: PublicMaterial) -> Result<PublicKey, KeyError> {
        let decoding = material.decoding_key(&kid)?;
        Ok(PublicKey {
            kid,
            material,
            decoding,
        })
    }

    /// Parses a JWK Set (`{"keys": [...]}`) of at most [`KEYS_PER_SET_MAX`] public keys with
    /// distinct `kid`s.
    pub fn set_from_json(json: &str) -> Result<Vec<PublicKey>, KeyError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| malformed("(jwk set)", format!("not JSON: {e}")))?;
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("(jwk set)", "a JWK Set is an object with a keys array"))?;
        if keys.len() > KEYS_PER_SET_MAX {
            return Err(KeyError::Count(format!(
                "{} keys in a JWK Set, at most {KEYS_PER_SET_MAX}",
                keys.len()
            )));
        }
        let mut out: Vec<PublicKey> = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let key = PublicKey::from_jwk_value(k, &format!("keys[{i}]"))?;
            if out.iter().any(|o| o.kid == key.kid) {
                return Err(KeyError::DuplicateKid(key.kid));
            }
            out.push(key);
        }
        Ok(out)
    }

    /// The key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key verifies.
    pub fn alg(&self) -> TokenAlg {
        self.material.alg()
    }

    /// The RFC 7638 SHA-256 thumbprint (base64url), e.g. for `cnf.jkt`.
    pub fn thumbprint(&self) -> String {
        self.material.thumbprint()
    }

    /// The public JWK: `kty`, `crv`, `x` (`y`), `kid`, `alg`, `use`; nothing else.
    pub fn jwk(&self) -> Value {
        self.material.jwk(&self.kid)
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

/// A private signing key with its `kid`. `Debug` shows only the `kid` and algorithm.
#[derive(Clone)]
pub struct SigningKey {
    public: PublicKey,
    encoding: EncodingKey,
    /// The private scalar / seed (`d`), kept to write key files.
    d: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid)
            .field("alg", &self.public.alg())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random ES256 key (for dev and tests; production keys come from a file), `kid`
    /// its thumbprint.
    pub fn generate_es256() -> Result<SigningKey, KeyError> {
        let secret =
            p256::SecretKey::try_generate().map_err(|e| KeyError::Generate(e.to_string()))?;
        SigningKey::from_p256(&secret, None, "(generated)")
    }

    /// A new random Ed25519 key (tests), `kid` its thumbprint.
    pub fn generate_ed25519() -> Result<SigningKey, KeyError> {
        let seed = Zeroizing::new(
            <[u8; 32]>::try_generate().map_err(|e| KeyError::Generate(e.to_string()))?,
        );
        SigningKey::from_ed25519(&seed, None, "(generated)")
    }

    /// Parses a private JWK (JSON text): EC P-256 or OKP Ed25519 with `d`; the public members,
    /// when present, must belong to `d`. `kid` defaults to the thumbprint.
    pub fn from_private_jwk(json: &str) -> Result<SigningKey, KeyError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| malformed("(private jwk)", format!("not JSON: {e}")))?;
        SigningKey::from_private_jwk_value(&value, "(private jwk)")
    }

    fn from_private_jwk_value(value: &Value, label: &str) -> Result<SigningKey, KeyError> {
        let obj = value
            .as_object()
            .ok_or_else(|| malformed(label, "a JWK is a JSON object"))?;
        let kty = str_member(obj, "kty", label)?.unwrap_or("");
        let crv = str_member(obj, "crv", label)?.unwrap_or("");
        let d = Zeroizing::new(bytes_member(obj, "d", 32, label)?);
        let kid = str_member(obj, "kid", label)?.map(str::to_owned);
        let key = match (kty, crv) {
            ("EC", "P-256") => {
                let secret = p256::SecretKey::from_slice(&d)
                    .map_err(|_| malformed(label, "d is not a P-256 private key"))?;
                SigningKey::from_p256(&secret, kid, label)?
            }
            ("OKP", "Ed25519") => {
                let mut seed = Zeroizing::new([0u8; 32]);
                seed.copy_from_slice(&d);
                SigningKey::from_ed25519(&seed, kid, label)?
            }
            (kty, crv) => {
                return Err(unsupported(label, format!("kty {kty:?} with crv {crv:?}")));
            }
        };
        // The public members, if given, must be those of d; alg and use must fit.
        let mut public_only = obj.clone();
        public_only.remove("d");
        let given = PublicMaterial::from_jwk(&public_only, label);
        match given {
            Ok(m) if m.jwk("") == key.public.material.jwk("") => {}
            Ok(_) => return Err(malformed(label, "x/y do not belong to d")),
            Err(KeyError::Malformed { reason, .. }) if reason.starts_with("has no ") => {}
            Err(e) => return Err(e),
        }
        Ok(key)
    }

    /// Parses a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`): P-256 (ES256) or
    /// Ed25519. `kid` defaults to the thumbprint.
    pub fn from_pkcs8_pem(pem: &str, kid: Option<&str>) -> Result<SigningKey, KeyError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        let kid = kid.map(str::to_owned);
        if let Ok(secret) = <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem)
        {
            return SigningKey::from_p256(&secret, kid, "(pem)");
        }
        match ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            Ok(k) => SigningKey::from_ed25519(&Zeroizing::new(k.to_bytes()), kid, "(pem)"),
            Err(_) => Err(malformed(
                "(pem)",
                "not a PKCS#8 PEM P-256 or Ed25519 private key",
            )),
        }
    }

    fn from_p256(
        secret: &p256::SecretKey,
        kid: Option<String>,
        label: &str,
    ) -> Result<SigningKey, KeyError> {
        use p256::pkcs8::EncodePrivateKey as _;
        let point = secret.public_key().to_sec1_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(malformed(label, "public point has no coordinates"));
        };
        let material = PublicMaterial::P256 {
            x: x.to_vec(),
            y: y.to_vec(),
        };
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| malformed(label, format!("PKCS#8: {e}")))?;
        let d = Zeroizing::new(secret.to_bytes().to_vec());
        SigningKey::assemble(
            material,
            kid,
            EncodingKey::from_ec_der(der.as_bytes()),
            d,
            label,
        )
    }

    fn from_ed25519(
        seed: &[u8; 32],
        kid: Option<String>,
        label: &str,
    ) -> Result<SigningKey, KeyError> {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let material = PublicMaterial::Ed25519 {
            x: key.verifying_key().to_bytes().to_vec(),
        };
        let der = key
            .to_pkcs8_der()
            .map_err(|e| malformed(label, format!("PKCS#8: {e}")))?;
        let d = Zeroizing::new(seed.to_vec());
        SigningKey::assemble(
            material,
            kid,
            EncodingKey::from_ed_der(der.as_bytes()),
            d,
            label,
        )
    }

    fn assemble(
        material: PublicMaterial,
        kid: Option<String>,
        encoding: EncodingKey,
        d: Zeroizing<Vec<u8>>,
        label: &str,
    ) -> Result<SigningKey, KeyError> {
        let mut obj = Map::new();
        if let Some(k) = kid {
            obj.insert("kid".into(), Value::String(k));
        }
        let kid = kid_of(&obj, &material, label)?;
        Ok(SigningKey {
            public: PublicKey::new(kid, material)?,
            encoding,
            d,
        })
    }

    /// The key's id.
    pub fn kid(&self) -> &str {
        self.public.kid()
    }

    /// Its algorithm.
    pub fn alg(&self) -> TokenAlg {
        self.public.alg()
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The private JWK (with `d`): for writing a key file, never for publishing.
    pub fn private_jwk(&self) -> Value {
        let mut jwk = self.public.jwk();
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("d".into(), Value::String(b64::encode(&self.d)));
        }
        jwk
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    /// Signs any `claims` as a compact JWS with header `typ` and this key's `alg` and `kid`
    /// (client assertions with custom claims, tests). Access tokens go through
    /// [`Issuer::sign`](crate::Issuer::sign), which checks their claims.
    pub fn sign_jwt<T: serde::Serialize>(
        &self,
        typ: &str,
        claims: &T,
    ) -> Result<String, IssueError> {
        let mut header = jsonwebtoken::Header::new(self.alg().jwt());
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.kid().to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| IssueError::Sign(e.to_string()))
    }
}

/// One key of a [`SigningKeySet`] and when it signs.
#[derive(Debug, Clone)]
struct KeyEntry {
    key: SigningKey,
    not_before_s: Option<i64>,
    retired_at_s: Option<i64>,
}

impl KeyEntry {
    fn signs_at(&self, now_s: i64) -> bool {
        self.not_before_s.is_none_or(|t| t <= now_s) && self.retired_at_s.is_none_or(|t| now_s < t)
    }

    fn published_at(&self, now_s: i64, token_lifetime_s_max: i64) -> bool {
        self.retired_at_s.is_none_or(|t| {
            now_s
                < t.saturating_add(token_lifetime_s_max)
                    .saturating_add(LEEWAY_S_MAX)
        })
    }
}

/// The token service's signing keys over time: which one signs now, which are published.
/// See the [module docs](self) for the file format and rotation.
#[derive(Debug, Clone)]
pub struct SigningKeySet {
    entries: Vec<KeyEntry>,
}

fn time_member(obj: &Map<String, Value>, name: &str, label: &str) -> Result<Option<i64>, KeyError> {
    match str_member(obj, name, label)? {
        None => Ok(None),
        Some(s) => Timestamp::parse_rfc3339(s)
            .map(|t| Some(t.0.div_euclid(1000)))
            .ok_or_else(|| malformed(label, format!("{name} is not an RFC 3339 time"))),
    }
}

impl SigningKeySet {
    /// One key that signs from now on, without end.
    pub fn single(key: SigningKey) -> SigningKeySet {
        SigningKeySet {
            entries: vec![KeyEntry {
                key,
                not_before_s: None,
                retired_at_s: None,
            }],
        }
    }

    /// Parses a key file: a JWK Set of 1 to [`KEYS_PER_SET_MAX`] private keys with distinct
    /// `kid`s and optional [`NOT_BEFORE_MEMBER`] / [`RETIRED_AT_MEMBER`] times.
    pub fn from_jwks_json(text: &str) -> Result<SigningKeySet, KeyError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| malformed("(key file)", format!("not JSON: {e}")))?;
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("(key file)", "a JWK Set is an object with a keys array"))?;
        if keys.is_empty() || keys.len() > KEYS_PER_SET_MAX {
            return Err(KeyError::Count(format!(
                "a key file has 1 to {KEYS_PER_SET_MAX} keys, this one {}",
                keys.len()
            )));
        }
        let mut entries: Vec<KeyEntry> = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let label = format!("keys[{i}]");
            let obj = k
                .as_object()
                .ok_or_else(|| malformed(&label, "a JWK is a JSON object"))?;
            let mut jwk = obj.clone();
            let not_before_s = time_member(obj, NOT_BEFORE_MEMBER, &label)?;
            let retired_at_s = time_member(obj, RETIRED_AT_MEMBER, &label)?;
            jwk.remove(NOT_BEFORE_MEMBER);
            jwk.remove(RETIRED_AT_MEMBER);
            let key = SigningKey::from_private_jwk_value(&Value::Object(jwk), &label)?;
            if entries.iter().any(|e| e.key.kid() == key.kid()) {
                return Err(KeyError::DuplicateKid(key.kid().to_owned()));
            }
            entries.push(KeyEntry {
                key,
                not_before_s,
                retired_at_s,
            });
        }
        Ok(SigningKeySet { entries })
    }

    /// Reads and parses a key file of at most [`KEY_FILE_BYTES_MAX`] bytes.
    pub fn from_file(path: &Path) -> Result<SigningKeySet, KeyError> {
        let io = |reason: String| KeyError::Io {
            path: path.display().to_string(),
            reason,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| io(e.to_string()))?
            .len();
        if len > KEY_FILE_BYTES_MAX {
            return Err(io(format!("{len} bytes, at most {KEY_FILE_BYTES_MAX}")));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| io(e.to_string()))?);
        SigningKeySet::from_jwks_json(&text)
    }

    /// The key file text (private JWKs with `d` and the `kartotek_*` times): write it with
    /// owner-only permissions.
    pub fn to_jwks_json(&self) -> Zeroizing<String> {
        let keys: Vec<Value> = self
            .entries
            .iter()
            .map(|e| {
                let mut jwk = e.key.private_jwk();
                if let Some(obj) = jwk.as_object_mut() {
                    for (name, t) in [
                        (NOT_BEFORE_MEMBER, e.not_before_s),
                        (RETIRED_AT_MEMBER, e.retired_at_s),
                    ] {
                        if let Some(t) = t {
                            let text = Timestamp(t.saturating_mul(1000)).to_rfc3339();
                            obj.insert(name.into(), Value::String(text));
                        }
                    }
                }
                jwk
            })
            .collect();
        Zeroizing::new(json!({ "keys": keys }).to_string())
    }

    /// Rotation in one step (dev and tests): the keys that sign at `now_s` retire at `now_s`
    /// and `key` signs from `now_s`.
    pub fn rotate(&mut self, key: SigningKey, now_s: i64) -> Result<(), KeyError> {
        if self.entries.iter().any(|e| e.key.kid() == key.kid()) {
            return Err(KeyError::DuplicateKid(key.kid().to_owned()));
        }
        if self.entries.len() >= KEYS_PER_SET_MAX {
            return Err(KeyError::Count(format!(
                "at most {KEYS_PER_SET_MAX} keys; prune retired ones first"
            )));
        }
        for e in &mut self.entries {
            if e.signs_at(now_s) {
                e.retired_at_s = Some(now_s);
            }
        }
        self.entries.push(KeyEntry {
            key,
            not_before_s: Some(now_s),
            retired_at_s: None,
        });
        Ok(())
    }

    /// The key that signs at `now_s`: the latest `not_before` that is not retired.
    pub fn signing_key(&self, now_s: i64) -> Result<&SigningKey, KeyError> {
        let mut best: Option<&KeyEntry> = None;
        for e in self.entries.iter().filter(|e| e.signs_at(now_s)) {
            let later = |b: &KeyEntry| {
                e.not_before_s.unwrap_or(i64::MIN) > b.not_before_s.unwrap_or(i64::MIN)
            };
            if best.is_none_or(later) {
                best = Some(e);
            }
        }
        best.map(|e| &e.key).ok_or(KeyError::NoActiveKey { now_s })
    }

    /// The keys published at `now_s`: all but those retired before
    /// `now_s - token_lifetime_s_max - LEEWAY_S_MAX`.
    pub fn published(
        &self,
        now_s: i64,
        token_lifetime_s_max: i64,
    ) -> impl Iterator<Item = &SigningKey> {
        self.entries
            .iter()
            .filter(move |e| e.published_at(now_s, token_lifetime_s_max))
            .map(|e| &e.key)
    }

    /// The public JWK Set document (`GET /.well-known/jwks.json`) at `now_s`.
    pub fn public_jwks(&self, now_s: i64, token_lifetime_s_max: i64) -> Value {
        let keys: Vec<Value> = self
            .published(now_s, token_lifetime_s_max)
            .map(|k| k.public_key().jwk())
            .collect();
        json!({ "keys": keys })
    }

    /// Drops the keys no longer published at `now_s`; returns how many.
    pub fn prune(&mut self, now_s: i64, token_lifetime_s_max: i64) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|e| e.published_at(now_s, token_lifetime_s_max));
        before - self.entries.len()
    }

    /// Every key, in file order.
    pub fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        self.entries.iter().map(|e| &e.key)
    }

    /// A 32-byte secret for `label`, derived from every key's private part (SHA-256 of the
    /// label and the keys sorted by `kid`): every instance with the same key file derives the
    /// same secret, and nothing else can. It changes when the file's keys change (the DPoP
    /// nonce key: instances then disagree only until they all have the new file).
    pub fn derived_secret(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let mut keys: Vec<&SigningKey> = self.keys().collect();
        keys.sort_by(|a, b| a.kid().cmp(b.kid()));
        let mut hash = Sha256::new();
        hash.update(label.as_bytes());
        hash.update([0u8]);
        for key in keys {
            for part in [key.kid().as_bytes(), &key.d[..]] {
                hash.update((part.len() as u64).to_be_bytes());
                hash.update(part);
            }
        }
        Zeroizing::new(hash.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_secret_is_the_same_for_the_same_keys_and_differs_otherwise() {
        let set = SigningKeySet::single(SigningKey::generate_es256().unwrap());
        let copy = SigningKeySet::from_jwks_json(&set.to_jwks_json()).unwrap();
        assert_eq!(*set.derived_secret("a"), *copy.derived_secret("a"));
        assert_ne!(*set.derived_secret("a"), *set.derived_secret("b"));
        let other = SigningKeySet::single(SigningKey::generate_es256().unwrap());
        assert_ne!(*set.derived_secret("a"), *other.derived_secret("a"));
        let mut rotated = copy.clone();
        rotated
            .rotate(SigningKey::generate_ed25519().unwrap(), 1_800_000_000)
            .unwrap();
        assert_ne!(*set.derived_secret("a"), *rotated.derived_secret("a"));
    }

    #[test]
    fn generated_keys_round_trip_through_jwk_and_file() {
        let es = SigningKey::generate_es256().unwrap();
        let ed = SigningKey::generate_ed25519().unwrap();
        assert_eq!(es.alg(), TokenAlg::Es256);
        assert_eq!(ed.alg(), TokenAlg::EdDsa);
        assert_eq!(es.kid(), es.public_key().thumbprint());
        let back = SigningKey::from_private_jwk(&es.private_jwk().to_string()).unwrap();
        assert_eq!(back.public_key().jwk(), es.public_key().jwk());
        let mut set = SigningKeySet::single(es.clone());
        set.rotate(ed.clone(), 1_000).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys.json");
        std::fs::write(&p, set.to_jwks_json().as_str()).unwrap();
        let loaded = SigningKeySet::from_file(&p).unwrap();
        assert_eq!(loaded.signing_key(999).unwrap().kid(), es.kid());
        assert_eq!(loaded.signing_key(1_000).unwrap().kid(), ed.kid());
        let text = loaded.to_jwks_json();
        assert!(text.contains(RETIRED_AT_MEMBER), "{}", text.as_str());
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let k = SigningKey::generate_es256().unwrap();
        let d = k.private_jwk()["d"].as_str().unwrap().to_owned();
        assert!(!format!("{k:?}").contains(&d));
        assert!(!format!("{:?}", SigningKeySet::single(k)).contains(&d));
    }

    #[test]
    fn rotation_keeps_the_old_key_published_until_its_tokens_expire() {
        let old = SigningKey::generate_es256().unwrap();
        let new = SigningKey::generate_es256().unwrap();
        let mut set = SigningKeySet::single(old.clone());
        set.rotate(new.clone(), 10_000).unwrap();
        let lifetime = 300;
        let kids = |set: &SigningKeySet, now| {
            set.public_jwks(now, lifetime)["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let last = 10_000 + lifetime + LEEWAY_S_MAX - 1;
        assert_eq!(kids(&set, last), [old.kid(), new.kid()]);
        assert_eq!(set.signing_key(last).unwrap().kid(), new.kid());
        assert_eq!(kids(&set, last + 1), [new.kid()]);
        assert_eq!(set.prune(last, lifetime), 0);
        assert_eq!(set.prune(last + 1, lifetime), 1);
        assert_eq!(set.keys().count(), 1);
        // The published document has no private or kartotek_* members.
        let doc = set.public_jwks(0, lifetime).to_string();
        assert!(
            !doc.contains("\"d\"") && !doc.contains("kartotek_"),
            "{doc}"
        );
    }

    #[test]
    fn pre_published_keys_sign_only_from_not_before() {
        let a = SigningKey::generate_es256().unwrap();
        let b = SigningKey::generate_es256().unwrap();
        let mut ja = a.private_jwk();
        ja[RETIRED_AT_MEMBER] = json!("2026-12-01T12:00:00Z");
        let mut jb = b.private_jwk();
        jb[NOT_BEFORE_MEMBER] = json!("2026-12-01T12:00:00Z");
        let set = SigningKeySet::from_jwks_json(&json!({"keys": [ja, jb]}).to_string()).unwrap();
        let t = Timestamp::parse_rfc3339("2026-12-01T12:00:00Z").unwrap().0 / 1000;
        assert_eq!(set.signing_key(t - 1).unwrap().kid(), a.kid());
        assert_eq!(set.signing_key(t).unwrap().kid(), b.kid());
        assert_eq!(set.published(t - 1, 300).count(), 2);
    }

    #[test]
    fn bad_key_files_are_named() {
        let k = SigningKey::generate_es256().unwrap();
        let jwk = k.private_jwk();
        let mut wrong_x = jwk.clone();
        let other = SigningKey::generate_es256().unwrap().private_jwk();
        wrong_x["x"] = other["x"].clone();
        wrong_x["y"] = other["y"].clone();
        let mut short_d = jwk.clone();
        short_d["d"] = json!("AAAA");
        let mut rsa = jwk.clone();
        rsa["kty"] = json!("RSA");
        let mut bad_time = jwk.clone();
        bad_time[RETIRED_AT_MEMBER] = json!("yesterday");
        let mut hs = jwk.clone();
        hs["alg"] = json!("HS256");
        for (doc, want) in [
            (json!({"keys": []}), "1 to"),
            (json!({"keys": [jwk, jwk]}), "twice"),
            (json!({"keys": [wrong_x]}), "do not belong"),
            (json!({"keys": [short_d]}), "bytes, 32 expected"),
            (json!({"keys": [rsa]}), "unsupported"),
            (json!({"keys": [bad_time]}), "RFC 3339"),
            (json!({"keys": [hs]}), "alg HS256"),
            (json!([1]), "keys array"),
        ] {
            let err = SigningKeySet::from_jwks_json(&doc.to_string()).unwrap_err();
            assert!(err.to_string().contains(want), "{err} / {want}");
        }
        assert!(SigningKeySet::from_jwks_json("not json").is_err());
        let all_retired = {
            let mut j = k.private_jwk();
            j[RETIRED_AT_MEMBER] = json!("2000-01-01T00:00:00Z");
            SigningKeySet::from_jwks_json(&json!({"keys": [j]}).to_string()).unwrap()
        };
        assert!(matches!(
            all_retired.signing_key(1_800_000_000),
            Err(KeyError::NoActiveKey { .. })
        ));
    }

    #[test]
    fn public_keys_are_checked() {
        let k = SigningKey::generate_es256().unwrap();
        let jwk = k.public_key().jwk();
        let parsed = PublicKey::from_jwk_json(&jwk.to_string()).unwrap();
        assert_eq!(parsed.kid(), k.kid());
        for (change, want) in [
            (json!({"y": "AAAA"}), "bytes"),
            (json!({"crv": "P-384"}), "unsupported"),
            (json!({"use": "enc"}), "use"),
            (json!({"d": "AAAA"}), "private member"),
            (json!({"alg": "RS256"}), "alg RS256"),
            (json!({"kid": ""}), "kid"),
        ] {
            let mut j = jwk.clone();
            for (name, v) in change.as_object().unwrap() {
                j[name] = v.clone();
            }
            let err = PublicKey::from_jwk_json(&j.to_string()).unwrap_err();
            assert!(err.to_string().contains(want), "{err} / {want}");
        }
        // A point off the curve: flip a bit of y.
        let mut y = b64::decode(jwk["y"].as_str().unwrap()).unwrap();
        y[31] ^= 1;
        let mut j = jwk.clone();
        j["y"] = json!(b64::encode(&y));
        assert!(PublicKey::from_jwk_json(&j.to_string()).is_err());
        // Short Ed25519 x (jsonwebtoken would slice it and panic).
        let ed = json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "e"});
        assert!(PublicKey::from_jwk_json(&ed.to_string()).is_err());
        let x25519 = json!({"kty": "OKP", "crv": "X25519", "x": b64::encode(&[9; 32]), "kid": "x"});
        assert!(PublicKey::from_jwk_json(&x25519.to_string()).is_err());
    }

    #[test]
    fn pkcs8_pem_keys_load() {
        use p256::pkcs8::EncodePrivateKey as _;
        let secret = p256::SecretKey::try_generate().unwrap();
        let pem = secret.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap();
        let k = SigningKey::from_pkcs8_pem(&pem, Some("k1")).unwrap();
        assert_eq!((k.kid(), k.alg()), ("k1", TokenAlg::Es256));
        assert!(
            SigningKey::from_pkcs8_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                None
            )
            .is_err()
        );
    }
}
