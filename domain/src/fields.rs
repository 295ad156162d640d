//! Shared validators and small value types for the record families (blocks, consents,
//! reservations, representations, the API catalog, clients, audit events).
//!
//! Everything a caller sends passes through one of these before a command is proposed to Raft:
//! bounded tokens ([`ServiceName`], [`GroupId`], [`ClientId`], [`Purpose`], [`Area`], ...),
//! bounded free text ([`parse_text`]), scope lists ([`parse_scopes`]), RFC 3339 times
//! ([`parse_timestamp`]), validity periods ([`ValidityInput`] → [`Validity`]) and the acting
//! party ([`Actor`]). Each validator names the offending field exactly as the API does, so the
//! edge can return it as a field-level `INVALID_ARGUMENT`.
//!
//! Tokens that decide access (service names, group ids, purposes, areas) are lower-cased, so a
//! block on `profession:lege` is not sidestepped by `profession:Lege`. Client ids, scopes and
//! element ids keep their case (OAuth scopes and client ids are case-sensitive).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{ApplyError, ValidationError};
use crate::ids::{HprNumber, NationalId};
use crate::limits::{
    AREA_BYTES_MAX, CLIENT_ID_BYTES_MAX, ELEMENT_ID_BYTES_MAX, GROUP_ID_BYTES_MAX,
    PURPOSE_BYTES_MAX, SCOPE_BYTES_MAX, SERVICE_NAME_BYTES_MAX, SYSTEM_ACTOR_BYTES_MAX,
};
use crate::locator::parse_national_id;
use crate::time::Timestamp;

/// Defines a fieldless enum with a fixed text form per variant: `as_str`, `parse(field, s)`
/// (exact match; an unknown value names the field and lists the known ones) and `ALL`.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize,
        )]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text form used at the API edge.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses the text form sent in `field` (exact, lower case).
            pub fn parse(field: &str, s: &str) -> Result<Self, $crate::error::ValidationError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::error::ValidationError::new(
                        field,
                        format!("unknown value; expected one of: {}", [$($text),+].join(", ")),
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

/// Defines a validated token newtype over `String` with `parse(field, s)`, `as_str` and
/// `Display`. `lowercase` tokens are normalised to ASCII lower case.
macro_rules! token_type {
    ($(#[$meta:meta])* $name:ident, $max:expr, lowercase = $lower:expr) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize,
        )]
        pub struct $name(String);

        impl $name {
            /// Validates the token sent in `field`: 1 to the named maximum of bytes of
            /// `A-Z a-z 0-9 . _ - : /`.
            pub fn parse(
                field: &str,
                s: &str,
            ) -> Result<Self, $crate::error::ValidationError> {
                $crate::fields::check_token(field, s, $max)?;
                Ok($name(if $lower { s.to_ascii_lowercase() } else { s.to_owned() }))
            }

            /// The token as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use token_type;

token_type!(
    /// A national e-health service (e.g. `kjernejournal`, `e-resept`), lower case. Also the
    /// "system/service" an access request is for.
    ServiceName,
    SERVICE_NAME_BYTES_MAX,
    lowercase = true
);
token_type!(
    /// An element inside a national service (e.g. one prescription, one document), as the
    /// service names it; case kept.
    ElementId,
    ELEMENT_ID_BYTES_MAX,
    lowercase = false
);
token_type!(
    /// A personnel group: a profession (`profession:lege`) or a named group, lower case.
    GroupId,
    GROUP_ID_BYTES_MAX,
    lowercase = true
);
token_type!(
    /// A token-issuance client (an EHR system or a third-party app); case kept.
    ClientId,
    CLIENT_ID_BYTES_MAX,
    lowercase = false
);
token_type!(
    /// Purpose of use (tjenstlig behov): `treatment`, `emergency`, `quality`, ...; lower case.
    Purpose,
    PURPOSE_BYTES_MAX,
    lowercase = true
);
token_type!(
    /// An internal component acting on its own (e.g. `expiry-sweeper`), for audit events.
    SystemName,
    SYSTEM_ACTOR_BYTES_MAX,
    lowercase = false
);

/// A representation area (`health`, `prescriptions`, ...) or `*` for every area; lower case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Area(String);

impl Area {
    /// The wildcard: every area.
    pub const ALL_TEXT: &'static str = "*";

    /// Validates an area sent in `field`: `*`, or a token of 1 to [`AREA_BYTES_MAX`] bytes of
    /// `A-Z a-z 0-9 . _ - : /` (lower-cased).
    pub fn parse(field: &str, s: &str) -> Result<Self, ValidationError> {
        if s == Self::ALL_TEXT {
            return Ok(Area(s.to_owned()));
        }
        check_token(field, s, AREA_BYTES_MAX)?;
        Ok(Area(s.to_ascii_lowercase()))
    }

    /// The area as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the wildcard `*`.
    pub fn is_all(&self) -> bool {
        self.0 == Self::ALL_TEXT
    }

    /// True when this area (as granted) covers `wanted` (as asked for): equal, or this is `*`.
    pub fn covers(&self, wanted: &Area) -> bool {
        self.is_all() || self == wanted
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a token-like field: non-empty, at most `max_bytes`, only `A-Z a-z 0-9 . _ - : /`.
pub fn check_token(field: &str, s: &str, max_bytes: usize) -> Result<(), ValidationError> {
    check_len(field, s, max_bytes)?;
    if s.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/')))
    {
        return Err(ValidationError::new(
            field,
            format!("contains {c:?}; allowed are A-Z a-z 0-9 . _ - : /"),
        ));
    }
    Ok(())
}

/// Checks that `s` is at most `max_bytes` long.
fn check_len(field: &str, s: &str, max_bytes: usize) -> Result<(), ValidationError> {
    if s.len() > max_bytes {
        return Err(ValidationError::new(
            field,
            format!("is {} bytes, at most {max_bytes} allowed", s.len()),
        ));
    }
    Ok(())
}

/// Checks a list length against its maximum.
pub fn check_list_len(field: &str, len: usize, max: usize) -> Result<(), ValidationError> {
    if len > max {
        return Err(ValidationError::new(
            field,
            format!("has {len} items, at most {max} allowed"),
        ));
    }
    Ok(())
}

/// Validates bounded free text (UTF-8, at most `max_bytes`, no control characters other than
/// newline and tab). Surrounding whitespace is trimmed; the empty string is allowed.
pub fn parse_text(field: &str, s: &str, max_bytes: usize) -> Result<String, ValidationError> {
    check_len(field, s, max_bytes)?;
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ValidationError::new(
            field,
            "contains control characters (only newline and tab are allowed)",
        ));
    }
    Ok(s.trim().to_owned())
}

/// Like [`parse_text`], but the text must not be empty or only whitespace.
pub fn parse_required_text(
    field: &str,
    s: &str,
    max_bytes: usize,
) -> Result<String, ValidationError> {
    let text = parse_text(field, s, max_bytes)?;
    if text.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    Ok(text)
}

/// Validates one scope: a catalog API id or an OAuth scope token (RFC 6749: visible ASCII
/// except space, `"` and `\`), 1 to [`SCOPE_BYTES_MAX`] bytes. Case is kept.
pub fn parse_scope(field: &str, s: &str) -> Result<String, ValidationError> {
    check_len(field, s, SCOPE_BYTES_MAX)?;
    if s.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if let Some(c) = s
        .chars()
        .find(|&c| !(c.is_ascii_graphic() && c != '"' && c != '\\'))
    {
        return Err(ValidationError::new(
            field,
            format!("contains {c:?}; a scope is visible ASCII without spaces, '\"' or '\\'"),
        ));
    }
    Ok(s.to_owned())
}

/// Validates a list of scopes sent in `field` (errors name `field[i]`), at most `max` of
/// them; returns them sorted and without duplicates. With `required`, the list must not be
/// empty.
pub fn parse_scopes(
    field: &str,
    scopes: &[String],
    max: usize,
    required: bool,
) -> Result<Vec<String>, ValidationError> {
    check_list_len(field, scopes.len(), max)?;
    if required && scopes.is_empty() {
        return Err(ValidationError::new(field, "must have at least one scope"));
    }
    let mut out = scopes
        .iter()
        .enumerate()
        .map(|(i, s)| parse_scope(&format!("{field}[{i}]"), s))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// Validates a list of tokens of type `T` sent in `field` (errors name `field[i]`), at most
/// `max`; returns them sorted and without duplicates.
pub fn parse_token_list<T: Ord>(
    field: &str,
    items: &[String],
    max: usize,
    parse: impl Fn(&str, &str) -> Result<T, ValidationError>,
) -> Result<Vec<T>, ValidationError> {
    check_list_len(field, items.len(), max)?;
    let mut out = items
        .iter()
        .enumerate()
        .map(|(i, s)| parse(&format!("{field}[{i}]"), s))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// Validates an HPR number sent in `field`, naming the field in the error.
pub fn parse_hpr(field: &str, s: &str) -> Result<HprNumber, ValidationError> {
    HprNumber::parse(s).map_err(|e| ValidationError::new(field, e.to_string()))
}

/// Validates an RFC 3339 time sent in `field` (any offset; stored as UTC milliseconds).
pub fn parse_timestamp(field: &str, s: &str) -> Result<Timestamp, ValidationError> {
    if s.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if s.len() > 64 {
        return Err(ValidationError::new(field, "is not an RFC 3339 time"));
    }
    Timestamp::parse_rfc3339(s).ok_or_else(|| {
        ValidationError::new(field, "is not an RFC 3339 time (e.g. 2026-11-23T19:45:00Z)")
    })
}

/// Like [`parse_timestamp`], but the empty string means "not set".
pub fn parse_optional_timestamp(
    field: &str,
    s: &str,
) -> Result<Option<Timestamp>, ValidationError> {
    if s.is_empty() {
        Ok(None)
    } else {
        parse_timestamp(field, s).map(Some)
    }
}

/// Validates a server-assigned record id sent in `field` (ids start at 1).
pub fn parse_record_id(field: &str, id: u64) -> Result<u64, ValidationError> {
    if id == 0 {
        return Err(ValidationError::new(
            field,
            "must be a record id (above zero)",
        ));
    }
    Ok(id)
}

/// A validity period as sent by a caller: either end may be unset. An unset start means "from
/// when the command is applied" (leader time); an unset end means "until revoked".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidityInput {
    /// Start, if the caller gave one.
    pub from: Option<Timestamp>,
    /// End (exclusive), if the caller gave one.
    pub to: Option<Timestamp>,
}

impl ValidityInput {
    /// Parses `valid_from` and `valid_to` (RFC 3339, empty = unset). When both are set,
    /// `valid_from` must be before `valid_to` (the error names `valid_to`).
    pub fn parse(valid_from: &str, valid_to: &str) -> Result<Self, ValidationError> {
        let from = parse_optional_timestamp("valid_from", valid_from)?;
        let to = parse_optional_timestamp("valid_to", valid_to)?;
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(ValidationError::new("valid_to", "must be after valid_from"));
        }
        Ok(ValidityInput { from, to })
    }

    /// Fixes the period at apply time: an unset start becomes `now`. A period whose end is not
    /// after `now` (or not after its start) is [`ApplyError::FailedPrecondition`]: it would
    /// never be in force.
    pub fn resolve(&self, now: Timestamp) -> Result<Validity, ApplyError> {
        let from = self.from.unwrap_or(now);
        if let Some(to) = self.to {
            if to <= from {
                return Err(ApplyError::FailedPrecondition(
                    "valid_to is not after valid_from".into(),
                ));
            }
            if to <= now {
                return Err(ApplyError::FailedPrecondition(format!(
                    "valid_to {} is already past",
                    to.to_rfc3339()
                )));
            }
        }
        Ok(Validity { from, to: self.to })
    }
}

/// A stored validity period: in force from `from` (inclusive) until `to` (exclusive), or
/// indefinitely when `to` is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validity {
    /// Start (inclusive).
    pub from: Timestamp,
    /// End (exclusive); `None` = until revoked.
    pub to: Option<Timestamp>,
}

impl Validity {
    /// True when `t` is inside the period.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && self.to.is_none_or(|to| t < to)
    }

    /// True when the period has ended at `t`.
    pub fn is_over(&self, t: Timestamp) -> bool {
        self.to.is_some_and(|to| to <= t)
    }
}

text_enum! {
    /// The kind of party acting, as sent at the API edge next to its id.
    pub enum ActorKind {
        /// Health personnel, by HPR number.
        Personnel => "personnel",
        /// A citizen, by national id (the patient, or someone acting for them).
        Citizen => "citizen",
        /// A token-issuance client, by client id.
        Client => "client",
        /// An internal component, by name.
        System => "system",
    }
}

/// Who did something: registered a block, decided a consent, appears in an audit event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Actor {
    /// Health personnel.
    Personnel(HprNumber),
    /// A citizen (the patient themself or a representative).
    Citizen(NationalId),
    /// A client (system or app) acting on its own.
    Client(ClientId),
    /// An internal component.
    System(SystemName),
}

impl Actor {
    /// Parses an actor sent as `{field}_kind` (see [`ActorKind`]) and `{field}` (its id).
    pub fn parse(field: &str, kind: &str, id: &str) -> Result<Self, ValidationError> {
        Ok(match ActorKind::parse(&format!("{field}_kind"), kind)? {
            ActorKind::Personnel => Actor::Personnel(parse_hpr(field, id)?),
            ActorKind::Citizen => Actor::Citizen(parse_national_id(field, id)?),
            ActorKind::Client => Actor::Client(ClientId::parse(field, id)?),
            ActorKind::System => Actor::System(SystemName::parse(field, id)?),
        })
    }

    /// The actor's kind.
    pub fn kind(&self) -> ActorKind {
        match self {
            Actor::Personnel(_) => ActorKind::Personnel,
            Actor::Citizen(_) => ActorKind::Citizen,
            Actor::Client(_) => ActorKind::Client,
            Actor::System(_) => ActorKind::System,
        }
    }

    /// The actor's id as text (a national id in full: personal data, do not log).
    pub fn id_text(&self) -> String {
        match self {
            Actor::Personnel(h) => h.to_string(),
            Actor::Citizen(n) => n.as_str().to_owned(),
            Actor::Client(c) => c.as_str().to_owned(),
            Actor::System(s) => s.as_str().to_owned(),
        }
    }
}

/// Parses an actor that must be a person: a citizen (the patient or someone acting for them)
/// or health personnel. Clients and system actors are refused (the error names
/// `{field}_kind`).
pub fn parse_person_actor(field: &str, kind: &str, id: &str) -> Result<Actor, ValidationError> {
    let actor = Actor::parse(field, kind, id)?;
    match actor {
        Actor::Citizen(_) | Actor::Personnel(_) => Ok(actor),
        Actor::Client(_) | Actor::System(_) => Err(ValidationError::new(
            format!("{field}_kind"),
            "must be citizen (the patient or someone acting for them) or personnel",
        )),
    }
}

impl fmt::Display for Actor {
    /// `kind:id`, with a national id redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Personnel(h) => write!(f, "personnel:{h}"),
            Actor::Citizen(n) => write!(f, "citizen:{n}"),
            Actor::Client(c) => write!(f, "client:{c}"),
            Actor::System(s) => write!(f, "system:{s}"),
        }
    }
}

/// Test fixtures shared by the record-family tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use chrono::NaiveDate;

    use crate::ids::testing::{national_id_from_parts, org_number_from_prefix};
    use crate::ids::{NationalId, NationalIdKind, OrgNumber};

    /// The `n`th valid national id of someone born on `y-m-d`.
    pub fn person_born(y: i32, m: u32, d: u32, n: usize) -> NationalId {
        let date = NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
        let found = (0..1000u16)
            .filter_map(|i| national_id_from_parts(date, i, NationalIdKind::Ordinary))
            .nth(n);
        match found {
            Some(id) => id,
            None => panic!("no national id for {y}-{m}-{d} #{n}"),
        }
    }

    /// A valid national id (born 1990-01-01), distinct per `n`.
    pub fn person(n: usize) -> NationalId {
        person_born(1990, 1, 1, n)
    }

    /// A valid org number, distinct per `n`.
    pub fn org(n: usize) -> OrgNumber {
        match (10_000_000..10_100_000u32)
            .filter_map(org_number_from_prefix)
            .nth(n)
        {
            Some(o) => o,
            None => panic!("no org number #{n}"),
        }
    }

    /// The leader time at midnight UTC on 2026-01-`days` (`day(1)` is 2026-01-01; counts on
    /// past the month end).
    pub fn day(days: i64) -> crate::time::Timestamp {
        crate::time::Timestamp(1_767_225_600_000 + (days - 1) * 86_400_000)
    }

    /// Unwraps a result in a test, failing with the error's text.
    pub fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn tokens_are_checked_and_normalised() {
        assert_eq!(
            ok(ServiceName::parse("service", "KjerneJournal")).as_str(),
            "kjernejournal"
        );
        assert_eq!(ok(ClientId::parse("client", "App-1")).as_str(), "App-1");
        assert_eq!(
            ok(GroupId::parse("groups[0]", "profession:Lege")).as_str(),
            "profession:lege"
        );
        for bad in ["", "a b", "æ", &"x".repeat(65)] {
            let e = ServiceName::parse("service", bad).err();
            assert_eq!(e.map(|e| e.field), Some("service".to_owned()), "{bad:?}");
        }
        assert!(Area::parse("areas[0]", "*").is_ok_and(|a| a.is_all()));
        assert!(Area::parse("areas[0]", "**").is_err());
    }

    #[test]
    fn text_and_scopes() {
        assert_eq!(
            ok(parse_text("reason", "  hei på deg \n", 100)),
            "hei på deg"
        );
        assert!(parse_text("reason", "a\u{0007}", 100).is_err());
        assert!(parse_text("reason", &"å".repeat(51), 100).is_err());
        assert!(parse_required_text("justification", "   ", 100).is_err());
        let scopes = ok(parse_scopes(
            "scopes",
            &["b".into(), "patient/*.read".into(), "b".into()],
            4,
            true,
        ));
        assert_eq!(scopes, vec!["b", "patient/*.read"]);
        let e = parse_scopes("scopes", &["a".into(), "a b".into()], 4, true).err();
        assert_eq!(e.map(|e| e.field), Some("scopes[1]".to_owned()));
        let e = parse_scopes("scopes", &vec!["a".into(); 5], 4, true).err();
        assert_eq!(e.map(|e| e.field), Some("scopes".to_owned()));
        let e = parse_scopes("scopes", &[], 4, true).err();
        assert_eq!(e.map(|e| e.field), Some("scopes".to_owned()));
    }

    #[test]
    fn validity_periods() {
        let v = ok(ValidityInput::parse("2026-01-01T00:00:00Z", ""));
        assert_eq!(v.from, Some(day(1)));
        let e = ValidityInput::parse("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z").err();
        assert_eq!(e.map(|e| e.field), Some("valid_to".to_owned()));
        let e = ValidityInput::parse("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z").err();
        assert_eq!(e.map(|e| e.field), Some("valid_to".to_owned()));
        let e = ValidityInput::parse("tomorrow", "").err();
        assert_eq!(e.map(|e| e.field), Some("valid_from".to_owned()));
        // Unset start resolves to now; an end already past is refused at apply time.
        let r = ok(ValidityInput::parse("", "2026-01-05T00:00:00Z").map(|v| v.resolve(day(1))));
        let r = ok(r);
        assert_eq!(r.from, day(1));
        assert!(r.contains(day(1)) && r.contains(day(4)) && !r.contains(Timestamp(day(5).0 + 1)));
        assert!(!r.contains(day(5)) && r.is_over(day(5)) && !r.is_over(day(4)));
        let past = ok(ValidityInput::parse("", "2026-01-05T00:00:00Z"));
        assert!(matches!(
            past.resolve(day(6)),
            Err(ApplyError::FailedPrecondition(_))
        ));
    }

    #[test]
    fn actors() {
        let p = person(0);
        assert_eq!(
            ok(Actor::parse("registered_by", "citizen", p.as_str())),
            Actor::Citizen(p.clone())
        );
        assert_eq!(
            ok(Actor::parse("registered_by", "personnel", "12345")).kind(),
            ActorKind::Personnel
        );
        let e = Actor::parse("registered_by", "robot", "x").err();
        assert_eq!(e.map(|e| e.field), Some("registered_by_kind".to_owned()));
        let e = Actor::parse("registered_by", "citizen", "123").err();
        assert_eq!(e.map(|e| e.field), Some("registered_by".to_owned()));
        // Display never shows a national id in full.
        let shown = Actor::Citizen(p.clone()).to_string();
        assert!(!shown.contains(p.as_str()));
    }
}
