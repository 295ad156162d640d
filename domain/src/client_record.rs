//! Token-issuance clients: the systems and apps that may get security tokens from the
//! frontend's token service, authenticating with `private_key_jwt` (RFC 7523) against the public
//! keys registered here.
//!
//! A client belongs to one organisation, lists its public keys (JWKs, stored as the JSON text
//! the caller sent, after checking that each is a public asymmetric key with a unique `kid`),
//! the scopes it may ask for, and whether it is an approved third-party vendor (which may ask
//! citizens for consent). It is active or disabled. Register creates it; update replaces its
//! keys, scopes and flags (only its own organisation, or an operator, may).

use serde::{Deserialize, Serialize};

use crate::error::{ApplyError, ValidationError};
use crate::fields::{ClientId, check_list_len, parse_scopes, text_enum};
use crate::ids::OrgNumber;
use crate::limits::{JWK_BYTES_MAX, JWK_KID_BYTES_MAX, JWKS_PER_CLIENT_MAX, SCOPES_PER_CLIENT_MAX};
use crate::locator::parse_org_number;
use crate::time::Timestamp;

text_enum! {
    /// Whether a client may get tokens.
    pub enum ClientStatus {
        /// May get tokens.
        Active => "active",
        /// May not get tokens; kept for history and audit.
        Disabled => "disabled",
    }
}

/// JWK key types accepted (asymmetric only: a symmetric `oct` key would be a shared secret).
pub const JWK_KEY_TYPES: [&str; 3] = ["RSA", "EC", "OKP"];

/// JWK members that only a private key has (RFC 7518 §6, RFC 8037); a key with any of them is
/// refused, so a client cannot leak its private key into the registry.
const JWK_PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A validated public key: the JSON text as sent (trimmed) and its `kid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    /// The key's id (`kid`).
    pub kid: String,
    /// The JWK as JSON text.
    pub json: String,
}

/// Validates one JWK sent in `field`: at most [`JWK_BYTES_MAX`] bytes of JSON, an object
/// with a `kty` in [`JWK_KEY_TYPES`] and a non-empty `kid` (at most [`JWK_KID_BYTES_MAX`]
/// bytes), `use` (if present) `sig`, and no private-key members.
pub fn parse_jwk(field: &str, s: &str) -> Result<PublicJwk, ValidationError> {
    if s.len() > JWK_BYTES_MAX {
        return Err(ValidationError::new(
            field,
            format!("is {} bytes, at most {JWK_BYTES_MAX} allowed", s.len()),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(s)
        .map_err(|e| ValidationError::new(field, format!("is not JSON: {e}")))?;
    let Some(obj) = value.as_object() else {
        return Err(ValidationError::new(field, "must be a JSON object (a JWK)"));
    };
    match obj.get("kty").and_then(|v| v.as_str()) {
        Some(kty) if JWK_KEY_TYPES.contains(&kty) => {}
        Some(_) => {
            return Err(ValidationError::new(
                field,
                format!("kty must be one of {JWK_KEY_TYPES:?} (a public asymmetric key)"),
            ));
        }
        None => return Err(ValidationError::new(field, "has no kty")),
    }
    let kid = match obj.get("kid").and_then(|v| v.as_str()) {
        Some(k) if !k.is_empty() && k.len() <= JWK_KID_BYTES_MAX => k.to_owned(),
        Some(_) => {
            return Err(ValidationError::new(
                field,
                format!("kid must be 1 to {JWK_KID_BYTES_MAX} bytes"),
            ));
        }
        None => return Err(ValidationError::new(field, "has no kid (a string)")),
    };
    if let Some(u) = obj.get("use")
        && u.as_str() != Some("sig")
    {
        return Err(ValidationError::new(field, "use must be \"sig\""));
    }
    if let Some(m) = JWK_PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
        return Err(ValidationError::new(
            field,
            format!("has the private-key member {m:?}; register the public key only"),
        ));
    }
    Ok(PublicJwk {
        kid,
        json: s.trim().to_owned(),
    })
}

/// Validates the `public_keys` list: 1 to [`JWKS_PER_CLIENT_MAX`] keys with distinct `kid`s.
pub fn parse_jwks(keys: &[String]) -> Result<Vec<PublicJwk>, ValidationError> {
    check_list_len("public_keys", keys.len(), JWKS_PER_CLIENT_MAX)?;
    if keys.is_empty() {
        return Err(ValidationError::new(
            "public_keys",
            "must have at least one key (for private_key_jwt)",
        ));
    }
    let mut out: Vec<PublicJwk> = Vec::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        let field = format!("public_keys[{i}]");
        let jwk = parse_jwk(&field, k)?;
        if out.iter().any(|o| o.kid == jwk.kid) {
            return Err(ValidationError::new(field, "repeats a kid"));
        }
        out.push(jwk);
    }
    Ok(out)
}

/// Raw fields of a client register or update, exactly as a caller sends them.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientInput<'a> {
    /// The client's id.
    pub client_id: &'a str,
    /// Register: the owning organisation. Update: the caller's organisation (empty = an
    /// operator, who may update any client).
    pub org: &'a str,
    /// JWKs as JSON text; 1 to [`JWKS_PER_CLIENT_MAX`].
    pub public_keys: &'a [String],
    /// Scopes the client may ask for; at most [`SCOPES_PER_CLIENT_MAX`].
    pub allowed_scopes: &'a [String],
    /// Whether it is an approved third-party vendor.
    pub approved_third_party: bool,
    /// Update only: `active` or `disabled`; empty = keep.
    pub status: &'a str,
}

/// The replaceable settings of a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSettings {
    /// Public keys (order as sent).
    pub public_keys: Vec<PublicJwk>,
    /// Allowed scopes (sorted, unique).
    pub allowed_scopes: Vec<String>,
    /// Approved third-party vendor.
    pub approved_third_party: bool,
}

impl ClientSettings {
    /// Validates the settings fields.
    pub fn parse(input: &ClientInput<'_>) -> Result<Self, ValidationError> {
        Ok(ClientSettings {
            public_keys: parse_jwks(input.public_keys)?,
            allowed_scopes: parse_scopes(
                "allowed_scopes",
                input.allowed_scopes,
                SCOPES_PER_CLIENT_MAX,
                false,
            )?,
            approved_third_party: input.approved_third_party,
        })
    }
}

/// A validated client register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRegister {
    /// The client's id.
    pub client_id: ClientId,
    /// The owning organisation.
    pub org: OrgNumber,
    /// Keys, scopes, flags.
    pub settings: ClientSettings,
}

impl ClientRegister {
    /// Validates a register as sent by a caller (`status` is ignored: a new client is active).
    pub fn parse(input: &ClientInput<'_>) -> Result<Self, ValidationError> {
        Ok(ClientRegister {
            client_id: ClientId::parse("client_id", input.client_id)?,
            org: parse_org_number("org", input.org)?,
            settings: ClientSettings::parse(input)?,
        })
    }
}

/// A validated client update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientUpdate {
    /// The client's id.
    pub client_id: ClientId,
    /// The caller's organisation; `None` = an operator.
    pub by: Option<OrgNumber>,
    /// New keys, scopes, flags.
    pub settings: ClientSettings,
    /// New status; `None` = keep.
    pub status: Option<ClientStatus>,
}

impl ClientUpdate {
    /// Validates an update as sent by a caller.
    pub fn parse(input: &ClientInput<'_>) -> Result<Self, ValidationError> {
        Ok(ClientUpdate {
            client_id: ClientId::parse("client_id", input.client_id)?,
            by: if input.org.is_empty() {
                None
            } else {
                Some(parse_org_number("org", input.org)?)
            },
            settings: ClientSettings::parse(input)?,
            status: if input.status.is_empty() {
                None
            } else {
                Some(ClientStatus::parse("status", input.status)?)
            },
        })
    }
}

/// A stored client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// The client's id (its key).
    pub client_id: ClientId,
    /// The owning organisation.
    pub org: OrgNumber,
    /// Keys, scopes, flags.
    pub settings: ClientSettings,
    /// Active or disabled.
    pub status: ClientStatus,
    /// When it was registered (leader time).
    pub created_at: Timestamp,
    /// When it last changed (leader time).
    pub updated_at: Timestamp,
    /// Revision that created it.
    pub create_revision: u64,
    /// Revision that last changed it.
    pub mod_revision: u64,
}

impl ClientRecord {
    /// The JWK JSON with this `kid`, if the client is active and has it (for verifying a
    /// `private_key_jwt` assertion).
    pub fn key(&self, kid: &str) -> Option<&str> {
        if self.status != ClientStatus::Active {
            return None;
        }
        self.settings
            .public_keys
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| k.json.as_str())
    }

    /// True when the client is active and may ask for every one of `scopes`.
    pub fn allows_scopes<S: AsRef<str>>(&self, scopes: &[S]) -> bool {
        self.status == ClientStatus::Active
            && scopes
                .iter()
                .all(|s| self.settings.allowed_scopes.iter().any(|a| a == s.as_ref()))
    }
}

/// Applies a register. A new client is active. The same organisation and settings again
/// change nothing (`false`); anything else under an existing id is
/// [`ApplyError::Conflict`] (use update).
pub fn apply_client_register(
    existing: Option<&ClientRecord>,
    cmd: &ClientRegister,
    now: Timestamp,
    next_revision: u64,
) -> Result<(ClientRecord, bool), ApplyError> {
    match existing {
        Some(c) if c.org == cmd.org && c.settings == cmd.settings => Ok((c.clone(), false)),
        Some(c) => Err(ApplyError::Conflict(format!(
            "client {} already exists; update it instead",
            c.client_id
        ))),
        None => Ok((
            ClientRecord {
                client_id: cmd.client_id.clone(),
                org: cmd.org.clone(),
                settings: cmd.settings.clone(),
                status: ClientStatus::Active,
                created_at: now,
                updated_at: now,
                create_revision: next_revision,
                mod_revision: next_revision,
            },
            true,
        )),
    }
}

/// Applies an update. Unknown: [`ApplyError::NotFound`]; another organisation:
/// [`ApplyError::PermissionDenied`]. The same settings and status change nothing (`false`).
pub fn apply_client_update(
    existing: Option<&ClientRecord>,
    cmd: &ClientUpdate,
    now: Timestamp,
    next_revision: u64,
) -> Result<(ClientRecord, bool), ApplyError> {
    let c = match existing {
        Some(c) if c.client_id == cmd.client_id => c,
        _ => return Err(ApplyError::NotFound(format!("client {}", cmd.client_id))),
    };
    if let Some(by) = &cmd.by
        && *by != c.org
    {
        return Err(ApplyError::PermissionDenied(format!(
            "client {} belongs to organisation {}",
            c.client_id, c.org
        )));
    }
    let status = cmd.status.unwrap_or(c.status);
    if c.settings == cmd.settings && c.status == status {
        return Ok((c.clone(), false));
    }
    debug_assert!(c.mod_revision < next_revision, "revisions only grow");
    Ok((
        ClientRecord {
            settings: cmd.settings.clone(),
            status,
            updated_at: now,
            mod_revision: next_revision,
            ..c.clone()
        },
        true,
    ))
}

/// The list-by-organisation query: the organisation's clients, by id.
pub fn clients_of_org<'a>(records: &'a [ClientRecord], org: &OrgNumber) -> Vec<&'a ClientRecord> {
    let mut out: Vec<&ClientRecord> = records.iter().filter(|c| c.org == *org).collect();
    out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::fixtures::{day, ok, org};

    const RSA: &str = r#"{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB"}"#;
    const EC: &str = r#"{"kty":"EC","kid":"k2","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    fn input<'a>(o: &'a str, k: &'a [String], s: &'a [String]) -> ClientInput<'a> {
        ClientInput {
            client_id: "helseapp",
            org: o,
            public_keys: k,
            allowed_scopes: s,
            approved_third_party: true,
            status: "",
        }
    }

    #[test]
    fn register_update_list() {
        let o = org(0);
        let k = keys(&[RSA]);
        let s = vec!["kjernejournal".to_owned(), "patient/*.read".to_owned()];
        let reg = ok(ClientRegister::parse(&input(o.as_str(), &k, &s)));
        let (c, changed) = ok(apply_client_register(None, &reg, day(1), 4));
        assert!(changed);
        assert_eq!((c.status, c.mod_revision), (ClientStatus::Active, 4));
        assert_eq!(c.key("k1"), Some(RSA));
        assert_eq!(c.key("k2"), None);
        assert!(c.allows_scopes(&["kjernejournal"]));
        assert!(!c.allows_scopes(&["kjernejournal", "admin"]));
        let (same, changed) = ok(apply_client_register(Some(&c), &reg, day(2), 5));
        assert!(!changed);
        assert_eq!(same, c);
        let other = ok(ClientRegister::parse(&input(org(1).as_str(), &k, &s)));
        assert!(matches!(
            apply_client_register(Some(&c), &other, day(2), 5),
            Err(ApplyError::Conflict(_))
        ));

        // Rotate keys, then disable.
        let k2 = keys(&[RSA, EC]);
        let up = ok(ClientUpdate::parse(&input(o.as_str(), &k2, &s)));
        let (u, changed) = ok(apply_client_update(Some(&c), &up, day(3), 6));
        assert!(changed);
        assert_eq!(u.key("k2"), Some(EC));
        let (u2, changed) = ok(apply_client_update(Some(&u), &up, day(4), 7));
        assert!(!changed);
        assert_eq!(u2, u);
        let dis = ok(ClientUpdate::parse(&ClientInput {
            status: "disabled",
            ..input("", &k2, &s)
        }));
        let (d, changed) = ok(apply_client_update(Some(&u), &dis, day(5), 8));
        assert!(changed);
        assert_eq!(d.status, ClientStatus::Disabled);
        assert_eq!(d.key("k1"), None);
        assert!(!d.allows_scopes::<&str>(&[]));

        // Only the owner (or an operator) updates; unknown is not found.
        let foreign = ok(ClientUpdate::parse(&input(org(1).as_str(), &k, &s)));
        assert!(matches!(
            apply_client_update(Some(&c), &foreign, day(3), 6),
            Err(ApplyError::PermissionDenied(_))
        ));
        assert!(matches!(
            apply_client_update(None, &up, day(3), 6),
            Err(ApplyError::NotFound(_))
        ));

        let mut other_client = c.clone();
        other_client.client_id = ok(ClientId::parse("c", "another"));
        let mut elsewhere = c.clone();
        elsewhere.client_id = ok(ClientId::parse("c", "zzz"));
        elsewhere.org = org(1);
        let all = vec![c.clone(), elsewhere, other_client.clone()];
        assert_eq!(clients_of_org(&all, &o), vec![&other_client, &c]);
    }

    #[test]
    fn bad_input_names_the_field() {
        let o = org(0);
        let good = keys(&[RSA]);
        let s: Vec<String> = vec![];
        let base = input(o.as_str(), &good, &s);
        let too_many_keys: Vec<String> = (0..=JWKS_PER_CLIENT_MAX)
            .map(|i| format!(r#"{{"kty":"EC","kid":"k{i}"}}"#))
            .collect();
        let long_key = vec![format!(
            r#"{{"kty":"EC","kid":"k","x":"{}"}}"#,
            "a".repeat(JWK_BYTES_MAX)
        )];
        let dup = keys(&[RSA, RSA]);
        let bad_keys: Vec<(Vec<String>, &str)> = vec![
            (vec![], "public_keys"),
            (too_many_keys, "public_keys"),
            (long_key, "public_keys[0]"),
            (keys(&["not json"]), "public_keys[0]"),
            (keys(&["[1,2]"]), "public_keys[0]"),
            (keys(&[r#"{"kid":"a"}"#]), "public_keys[0]"),
            (
                keys(&[r#"{"kty":"oct","kid":"a","k":"c2VjcmV0"}"#]),
                "public_keys[0]",
            ),
            (keys(&[r#"{"kty":"RSA"}"#]), "public_keys[0]"),
            (keys(&[r#"{"kty":"RSA","kid":""}"#]), "public_keys[0]"),
            (keys(&[r#"{"kty":"RSA","kid":7}"#]), "public_keys[0]"),
            (
                keys(&[r#"{"kty":"EC","kid":"a","use":"enc"}"#]),
                "public_keys[0]",
            ),
            (
                keys(&[r#"{"kty":"EC","kid":"a","d":"secret"}"#]),
                "public_keys[0]",
            ),
            (
                keys(&[EC, r#"{"kty":"RSA","kid":"a","p":"x"}"#]),
                "public_keys[1]",
            ),
            (dup, "public_keys[1]"),
        ];
        for (k, field) in &bad_keys {
            let i = ClientInput {
                public_keys: k,
                ..base
            };
            match ClientRegister::parse(&i) {
                Err(e) => assert_eq!(e.field, *field, "{e}"),
                Ok(_) => panic!("accepted bad key for {field}: {k:?}"),
            }
        }
        let too_many_scopes: Vec<String> = (0..=SCOPES_PER_CLIENT_MAX)
            .map(|i| format!("s{i}"))
            .collect();
        let bad_scope = vec!["a b".to_owned()];
        let cases: Vec<(ClientInput<'_>, &str)> = vec![
            (
                ClientInput {
                    client_id: "",
                    ..base
                },
                "client_id",
            ),
            (
                ClientInput {
                    client_id: "a\"b",
                    ..base
                },
                "client_id",
            ),
            (ClientInput { org: "", ..base }, "org"),
            (
                ClientInput {
                    org: "123456780",
                    ..base
                },
                "org",
            ),
            (
                ClientInput {
                    allowed_scopes: &too_many_scopes,
                    ..base
                },
                "allowed_scopes",
            ),
            (
                ClientInput {
                    allowed_scopes: &bad_scope,
                    ..base
                },
                "allowed_scopes[0]",
            ),
        ];
        for (i, field) in cases {
            match ClientRegister::parse(&i) {
                Err(e) => assert_eq!(e.field, field, "{e}"),
                Ok(_) => panic!("accepted bad input for {field}"),
            }
        }
        let e = ClientUpdate::parse(&ClientInput {
            status: "paused",
            ..base
        })
        .err();
        assert_eq!(e.map(|e| e.field), Some("status".into()));
    }
}
