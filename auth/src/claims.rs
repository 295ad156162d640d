//! The claims of a Kartotek access token: the JWT profile of RFC 9068 (`iss`, `sub`, `aud`,
//! `exp`, `nbf`, `iat`, `jti`, `client_id`, `scope`) plus what an API owner needs for purpose
//! of use and audit, named like HelseID's claims where HelseID has one:
//!
//! | field | claim | meaning |
//! |---|---|---|
//! | [`org_parent`](AccessClaims::org_parent) | [`CLAIM_ORG_PARENT`] | the client's organisation (legal entity) |
//! | [`org_child`](AccessClaims::org_child) | [`CLAIM_ORG_CHILD`] | a sub-unit of it, when the client acts for one |
//! | [`hpr_number`](AccessClaims::hpr_number) | [`CLAIM_HPR_NUMBER`] | the health personnel the call is made by |
//! | [`purpose_of_use`](AccessClaims::purpose_of_use) | [`CLAIM_PURPOSE_OF_USE`] | why (tjenstlig behov), e.g. `treatment` |
//! | [`security_level`](AccessClaims::security_level) | [`CLAIM_SECURITY_LEVEL`] | the user's authentication level, `1` to `4` |
//! | [`act`](AccessClaims::act) | `act` (RFC 8693) | who acts on behalf of `sub` |
//! | [`representation_area`](AccessClaims::representation_area) | [`CLAIM_REPRESENTATION_AREA`] | for `act`: the area of the representation (`*`: all) |
//! | [`cnf`](AccessClaims::cnf) | `cnf` (RFC 9449 `jkt`) | the key the token is bound to (DPoP, later) |
//!
//! Unknown claims are ignored (tokens of other trusted issuers carry more). Every value has a
//! named maximum; [`AccessClaims::check`] applies them and the identifier rules of
//! `kartotek-domain` (org number check digit, HPR number, client id, purpose), and the
//! verifier runs it on every token it accepts.

use kartotek_domain::fields::{check_token, parse_scope};
use kartotek_domain::limits::{CLIENT_ID_BYTES_MAX, PURPOSE_BYTES_MAX};
use kartotek_domain::{HprNumber, OrgNumber};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// HelseID's claim for the organisation number of the client's legal entity.
pub const CLAIM_ORG_PARENT: &str = "helseid://claims/client/claims/orgnr_parent";
/// HelseID's claim for the organisation number of a sub-unit (child organisation).
pub const CLAIM_ORG_CHILD: &str = "helseid://claims/client/claims/orgnr_child";
/// HelseID's claim for the HPR number of the health personnel.
pub const CLAIM_HPR_NUMBER: &str = "helseid://claims/hpr/hpr_number";
/// HelseID's claim for the user's authentication security level.
pub const CLAIM_SECURITY_LEVEL: &str = "helseid://claims/identity/security_level";
/// Kartotek's claim for the representation area of a token exchanged to act for someone
/// (`*`: every area); see `kartotek-domain`'s representation rules.
pub const CLAIM_REPRESENTATION_AREA: &str = "kartotek://claims/representation_area";
/// Kartotek's claim for the purpose of use (tjenstlig behov); HelseID carries it inside
/// `authorization_details`, which Kartotek does not model yet.
pub const CLAIM_PURPOSE_OF_USE: &str = "kartotek://claims/purpose_of_use";

/// Longest `iss` and each `aud`, in bytes.
pub const ISSUER_BYTES_MAX: usize = 512;
/// Longest `sub` (and `act.sub`), in bytes.
pub const SUBJECT_BYTES_MAX: usize = 256;
/// Most audiences in `aud`.
pub const AUDIENCES_MAX: usize = 16;
/// Longest token `jti`, in bytes.
pub const TOKEN_JTI_BYTES_MAX: usize = 256;
/// Most scopes in `scope`.
pub const SCOPES_PER_TOKEN_MAX: usize = 128;
/// Longest `cnf.jkt` (a base64url SHA-256 thumbprint is 43), in bytes.
pub const JKT_BYTES_MAX: usize = 128;
/// Security levels that may appear in [`CLAIM_SECURITY_LEVEL`].
pub const SECURITY_LEVELS: [&str; 4] = ["1", "2", "3", "4"];

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The issuer (the token service's URL), compared exactly.
    pub iss: String,
    /// The subject: for `client_credentials` the client id.
    pub sub: String,
    /// The audiences; a single one is written as a string (RFC 7519 §4.1.3 allows both).
    #[serde(
        serialize_with = "one_or_many_out",
        deserialize_with = "one_or_many_in"
    )]
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch. A number: a string here is refused (CVE-2026-25537).
    pub exp: i64,
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// The token's unique id.
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated (RFC 9068 §2.2.3); see [`AccessClaims::scopes`].
    #[serde(default)]
    pub scope: String,
    /// Organisation number of the client's legal entity.
    #[serde(
        rename = "helseid://claims/client/claims/orgnr_parent",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub org_parent: Option<String>,
    /// Organisation number of the sub-unit the client acts for.
    #[serde(
        rename = "helseid://claims/client/claims/orgnr_child",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub org_child: Option<String>,
    /// HPR number of the health personnel making the call.
    #[serde(
        rename = "helseid://claims/hpr/hpr_number",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub hpr_number: Option<String>,
    /// Purpose of use, lower case (`treatment`, `emergency`, ...).
    #[serde(
        rename = "kartotek://claims/purpose_of_use",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub purpose_of_use: Option<String>,
    /// Authentication security level of the user, `1` to `4`.
    #[serde(
        rename = "helseid://claims/identity/security_level",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub security_level: Option<String>,
    /// For a token exchanged to act for `sub`: the representation area it was granted for
    /// (`*`: every area).
    #[serde(
        rename = "kartotek://claims/representation_area",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub representation_area: Option<String>,
    /// On-behalf-of: the actor acting for `sub` (RFC 8693 §4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// Confirmation: the key the token is bound to (RFC 9449 §6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `act` claim (RFC 8693 §4.1): who acts. A nested `act` (a chain) is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The acting party.
    pub sub: String,
}

/// The `cnf` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// SHA-256 JWK thumbprint of the DPoP key (RFC 9449 §6.1).
    pub jkt: String,
}

/// A claim that breaks its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("claim {claim}: {reason}")]
pub struct ClaimError {
    /// The claim's name as in the token.
    pub claim: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn bad(claim: &'static str, reason: impl Into<String>) -> ClaimError {
    ClaimError {
        claim,
        reason: reason.into(),
    }
}

fn check_text(claim: &'static str, s: &str, max: usize) -> Result<(), ClaimError> {
    if s.is_empty() || s.len() > max {
        return Err(bad(claim, format!("must be 1 to {max} bytes")));
    }
    if s.chars().any(char::is_control) {
        return Err(bad(claim, "must not contain control characters"));
    }
    Ok(())
}

impl AccessClaims {
    /// The claims of a token `iss` issues to client `client_id` (also its `sub`) for `aud`
    /// with `scope` (space-separated): no person, organisation or purpose, and `exp`, `iat`,
    /// `nbf` and `jti` left for the issuer to set.
    pub fn for_client(iss: &str, aud: &str, client_id: &str, scope: String) -> AccessClaims {
        AccessClaims {
            iss: iss.to_owned(),
            sub: client_id.to_owned(),
            aud: vec![aud.to_owned()],
            exp: 0,
            nbf: None,
            iat: 0,
            jti: String::new(),
            client_id: client_id.to_owned(),
            scope,
            org_parent: None,
            org_child: None,
            hpr_number: None,
            purpose_of_use: None,
            security_level: None,
            representation_area: None,
            act: None,
            cnf: None,
        }
    }

    /// The granted scopes, in order (empty entries of repeated spaces skipped).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// True when `scope` is one of the granted scopes.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// Checks every claim's bounds and format: lengths, at most [`AUDIENCES_MAX`] audiences
    /// and [`SCOPES_PER_TOKEN_MAX`] scopes, `exp` after `iat`, the org numbers' check digits,
    /// the HPR number, the client id and purpose as `kartotek-domain` defines them, the
    /// security level in [`SECURITY_LEVELS`]. Times against a clock are the verifier's work.
    pub fn check(&self) -> Result<(), ClaimError> {
        check_text("iss", &self.iss, ISSUER_BYTES_MAX)?;
        check_text("sub", &self.sub, SUBJECT_BYTES_MAX)?;
        if self.aud.is_empty() || self.aud.len() > AUDIENCES_MAX {
            return Err(bad("aud", format!("must have 1 to {AUDIENCES_MAX} values")));
        }
        for a in &self.aud {
            check_text("aud", a, ISSUER_BYTES_MAX)?;
        }
        if self.exp <= self.iat {
            return Err(bad("exp", "must be after iat"));
        }
        check_text("jti", &self.jti, TOKEN_JTI_BYTES_MAX)?;
        check_token("client_id", &self.client_id, CLIENT_ID_BYTES_MAX)
            .map_err(|e| bad("client_id", e.reason))?;
        let mut n = 0;
        for s in self.scopes() {
            n += 1;
            if n > SCOPES_PER_TOKEN_MAX {
                return Err(bad(
                    "scope",
                    format!("at most {SCOPES_PER_TOKEN_MAX} scopes"),
                ));
            }
            parse_scope("scope", s).map_err(|e| bad("scope", e.reason))?;
        }
        if let Some(o) = &self.org_parent {
            OrgNumber::parse(o).map_err(|e| bad(CLAIM_ORG_PARENT, e.to_string()))?;
        }
        if let Some(o) = &self.org_child {
            OrgNumber::parse(o).map_err(|e| bad(CLAIM_ORG_CHILD, e.to_string()))?;
        }
        if let Some(h) = &self.hpr_number {
            HprNumber::parse(h).map_err(|e| bad(CLAIM_HPR_NUMBER, e.to_string()))?;
        }
        if let Some(p) = &self.purpose_of_use {
            check_token(CLAIM_PURPOSE_OF_USE, p, PURPOSE_BYTES_MAX)
                .map_err(|e| bad(CLAIM_PURPOSE_OF_USE, e.reason))?;
        }
        if let Some(l) = &self.security_level
            && !SECURITY_LEVELS.contains(&l.as_str())
        {
            return Err(bad(
                CLAIM_SECURITY_LEVEL,
                format!("must be one of {SECURITY_LEVELS:?}"),
            ));
        }
        if let Some(a) = &self.act {
            check_text("act.sub", &a.sub, SUBJECT_BYTES_MAX)?;
        }
        if let Some(area) = &self.representation_area {
            kartotek_domain::fields::Area::parse(CLAIM_REPRESENTATION_AREA, area)
                .map_err(|e| bad(CLAIM_REPRESENTATION_AREA, e.reason))?;
        }
        if let Some(c) = &self.cnf {
            check_text("cnf.jkt", &c.jkt, JKT_BYTES_MAX)?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `aud` as a string or an array of strings.
pub(crate) fn one_or_many_in<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// One audience as a string, several as an array.
fn one_or_many_out<S: Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
    match aud {
        [one] => s.serialize_str(one),
        many => many.serialize(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> AccessClaims {
        AccessClaims {
            iss: "http://127.0.0.1:8080".into(),
            sub: "ehr-1".into(),
            aud: vec!["kartotek".into()],
            exp: 1_800_000_300,
            nbf: Some(1_800_000_000),
            iat: 1_800_000_000,
            jti: "j1".into(),
            client_id: "ehr-1".into(),
            scope: "kartotek:locator.read  kartotek:audit.write".into(),
            org_parent: Some("974760673".into()),
            org_child: None,
            hpr_number: Some("1234567".into()),
            purpose_of_use: Some("treatment".into()),
            security_level: Some("4".into()),
            representation_area: None,
            act: Some(Actor {
                sub: "15076500565".into(),
            }),
            cnf: None,
        }
    }

    #[test]
    fn scopes_split_on_spaces() {
        let c = sample();
        assert_eq!(
            c.scopes().collect::<Vec<_>>(),
            ["kartotek:locator.read", "kartotek:audit.write"]
        );
        assert!(c.has_scope("kartotek:audit.write"));
        assert!(!c.has_scope("kartotek:audit"));
        assert!(!c.has_scope(""));
        c.check().unwrap();
    }

    #[test]
    fn json_names_and_audience_shapes() {
        let c = sample();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["aud"], "kartotek");
        assert_eq!(v[CLAIM_ORG_PARENT], "974760673");
        assert_eq!(v[CLAIM_HPR_NUMBER], "1234567");
        assert_eq!(v[CLAIM_PURPOSE_OF_USE], "treatment");
        assert_eq!(v[CLAIM_SECURITY_LEVEL], "4");
        assert_eq!(v["act"]["sub"], "15076500565");
        assert!(v.get(CLAIM_ORG_CHILD).is_none());
        let back: AccessClaims = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, c);
        let mut two = v;
        two["aud"] = serde_json::json!(["a", "kartotek"]);
        let back: AccessClaims = serde_json::from_value(two).unwrap();
        assert_eq!(back.aud, ["a", "kartotek"]);
        assert_eq!(serde_json::to_value(&back).unwrap()["aud"][1], "kartotek");
    }

    #[test]
    fn mistyped_times_do_not_parse() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["exp"] = serde_json::json!("9999999999");
        assert!(serde_json::from_value::<AccessClaims>(v).is_err());
    }

    type Change = fn(&mut AccessClaims);

    #[test]
    fn check_names_the_bad_claim() {
        let cases: Vec<(Change, &str)> = vec![
            (|c| c.iss.clear(), "iss"),
            (|c| c.aud.clear(), "aud"),
            (|c| c.exp = c.iat, "exp"),
            (|c| c.client_id = "has space".into(), "client_id"),
            (|c| c.scope = "a \"b".into(), "scope"),
            (
                |c| c.org_parent = Some("974760674".into()),
                CLAIM_ORG_PARENT,
            ),
            (|c| c.org_child = Some("12".into()), CLAIM_ORG_CHILD),
            (|c| c.hpr_number = Some("x".into()), CLAIM_HPR_NUMBER),
            (
                |c| c.security_level = Some("5".into()),
                CLAIM_SECURITY_LEVEL,
            ),
            (|c| c.sub = "a\nb".into(), "sub"),
        ];
        for (change, claim) in cases {
            let mut c = sample();
            change(&mut c);
            assert_eq!(c.check().unwrap_err().claim, claim);
        }
    }
}
