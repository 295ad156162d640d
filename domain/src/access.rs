//! The access decision: may this caller, for this purpose, at this time, reach this patient's
//! data in this system/service? A pure function of the request, the patient's privacy settings
//! ([`PatientFacts`]) and the configured [`AccessPolicy`].
//!
//! Rules, all of which are checked so that the answer lists every reason:
//!
//! 1. An active **reservation** of the patient for the service denies; nothing overrides it.
//! 2. A **block** in force that targets the caller (its personnel, any of its groups, or its
//!    organisation) and covers the service denies. An [`BlockLevel::Absolute`] block is never
//!    passed. An [`BlockLevel::Overridable`] one is passed only by an emergency override with a
//!    justification (helsepersonelloven §45), giving [`Effect::PermitByOverride`] with the
//!    obligations [`Obligation::NotifyPatient`] and [`Obligation::RecordJustification`]. A block
//!    on one element of a service does not deny an access to the whole service; it withholds
//!    that element ([`Obligation::WithholdElements`]) unless overridden.
//! 3. A **consent** is needed when a client (third-party app) asks (per policy) or when the
//!    service's catalog entry says `requires_consent`: the patient must have a consent that
//!    permits at the request's time (granted, inside its validity period, not withdrawn, denied
//!    or expired), to the grantee (the client; otherwise the personnel or the organisation), for
//!    the request's purpose, covering the service (its name, its catalog id or one of the catalog
//!    entry's scopes). The access is then limited to the consented scopes
//!    ([`Obligation::ShowOnlyWithinScope`]).
//! 4. An access **on behalf of** the patient by someone else needs a representation that lets
//!    that person act for the patient in the area ([`crate::representation::check`]); the
//!    access must then log the representation ([`Obligation::LogRepresentation`]).
//!
//! Every decision carries [`Obligation::LogWithPurpose`]: the caller must audit it with the
//! purpose of use. An override is only accepted from health personnel and only with a
//! non-empty justification; both are checked when the request is parsed.

use serde::{Deserialize, Serialize};

use crate::block::{Block, BlockLevel, ScopeMatch};
use crate::catalog::CatalogEntry;
use crate::consent::{Consent, Grantee};
use crate::error::ValidationError;
use crate::fields::{
    Area, ClientId, ElementId, GroupId, Purpose, ServiceName, parse_hpr, parse_optional_timestamp,
    parse_required_text, parse_token_list, text_enum,
};
use crate::ids::{HprNumber, NationalId, OrgNumber};
use crate::limits::{GROUPS_PER_REQUEST_MAX, JUSTIFICATION_BYTES_MAX};
use crate::locator::{parse_national_id, parse_org_number};
use crate::representation::{self, Representation, RepresentationPolicy};
use crate::reservation::Reservation;
use crate::time::Timestamp;

text_enum! {
    /// The outcome of an access decision.
    pub enum Effect {
        /// Access may go ahead (subject to the obligations).
        Permit => "permit",
        /// Access is refused.
        Deny => "deny",
        /// Access may go ahead only because health personnel overrode an overridable block
        /// in an emergency (§45); audited and notified to the patient.
        PermitByOverride => "permit_by_override",
    }
}

impl Effect {
    /// True for [`Effect::Permit`] and [`Effect::PermitByOverride`].
    pub fn permits(self) -> bool {
        self != Effect::Deny
    }
}

/// Something the caller must do when acting on a decision.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Obligation {
    /// Write an audit event for this access with its purpose of use (always).
    LogWithPurpose,
    /// Notify the patient of the access (emergency override).
    NotifyPatient,
    /// Record the override's justification in the patient's record and the audit log.
    RecordJustification,
    /// Show only data within these consented scopes (sorted, unique).
    ShowOnlyWithinScope(Vec<String>),
    /// Do not show these blocked elements of the service (sorted, unique).
    WithholdElements(Vec<ElementId>),
    /// Log that the access was made on the patient's behalf by a representative.
    LogRepresentation,
}

/// Raw fields of an access request, exactly as a caller sends them (empty string = unset).
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessRequestInput<'a> {
    /// The patient's national id.
    pub patient: &'a str,
    /// HPR number of the health professional asking, if any.
    pub personnel: &'a str,
    /// Org number of the organisation asking, if any.
    pub org: &'a str,
    /// The caller's personnel groups; at most [`GROUPS_PER_REQUEST_MAX`].
    pub groups: &'a [String],
    /// The system/service asked for (name token).
    pub service: &'a str,
    /// One element of the service, if the access is to that element only.
    pub element: &'a str,
    /// Purpose of use (token): `treatment`, `emergency`, `quality`, ...
    pub purpose: &'a str,
    /// RFC 3339; empty = now.
    pub time: &'a str,
    /// Client id of a third-party app asking, if any.
    pub client: &'a str,
    /// National id of a citizen acting for the patient, if any.
    pub on_behalf_of: &'a str,
    /// Representation area for `on_behalf_of`; empty = the policy's default area.
    pub area: &'a str,
    /// Emergency override (§45); needs `personnel` and `justification`.
    pub emergency_override: bool,
    /// Why the override is required for responsible care; at most
    /// [`JUSTIFICATION_BYTES_MAX`] bytes.
    pub justification: &'a str,
}

/// A validated access request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    /// The patient.
    pub patient: NationalId,
    /// The health professional asking.
    pub personnel: Option<HprNumber>,
    /// The organisation asking.
    pub org: Option<OrgNumber>,
    /// The caller's personnel groups (sorted, unique).
    pub groups: Vec<GroupId>,
    /// The system/service.
    pub service: ServiceName,
    /// One element of it; `None` = the whole service.
    pub element: Option<ElementId>,
    /// Purpose of use.
    pub purpose: Purpose,
    /// When the access happens.
    pub time: Timestamp,
    /// The third-party app asking.
    pub client: Option<ClientId>,
    /// A citizen acting for the patient.
    pub on_behalf_of: Option<NationalId>,
    /// The representation area for `on_behalf_of`.
    pub area: Option<Area>,
    /// The emergency override's justification, when overriding.
    pub emergency_override: Option<String>,
}

impl AccessRequest {
    /// Validates an access request as sent by a caller; an empty `time` is `now`.
    ///
    /// At least one of `personnel`, `org` and `client` must identify the caller. An override
    /// needs `personnel` (only health personnel may override; the error names
    /// `emergency_override`) and a non-blank `justification` (the error names
    /// `justification`); a justification without an override, or an area without
    /// `on_behalf_of`, is refused.
    pub fn parse(input: &AccessRequestInput<'_>, now: Timestamp) -> Result<Self, ValidationError> {
        let patient = parse_national_id("patient", input.patient)?;
        let personnel = optional(input.personnel, |s| parse_hpr("personnel", s))?;
        let org = optional(input.org, |s| parse_org_number("org", s))?;
        let groups = parse_token_list(
            "groups",
            input.groups,
            GROUPS_PER_REQUEST_MAX,
            GroupId::parse,
        )?;
        let service = ServiceName::parse("service", input.service)?;
        let element = optional(input.element, |s| ElementId::parse("element", s))?;
        let purpose = Purpose::parse("purpose", input.purpose)?;
        let time = parse_optional_timestamp("time", input.time)?.unwrap_or(now);
        let client = optional(input.client, |s| ClientId::parse("client", s))?;
        let on_behalf_of = optional(input.on_behalf_of, |s| parse_national_id("on_behalf_of", s))?;
        let area = optional(input.area, |s| Area::parse("area", s))?;
        if personnel.is_none() && org.is_none() && client.is_none() {
            return Err(ValidationError::new(
                "personnel",
                "the caller must be identified by personnel, org or client",
            ));
        }
        if area.is_some() && on_behalf_of.is_none() {
            return Err(ValidationError::new(
                "area",
                "is only used with on_behalf_of",
            ));
        }
        let emergency_override = if input.emergency_override {
            if personnel.is_none() {
                return Err(ValidationError::new(
                    "emergency_override",
                    "only health personnel (personnel) may override a block",
                ));
            }
            Some(parse_required_text(
                "justification",
                input.justification,
                JUSTIFICATION_BYTES_MAX,
            )?)
        } else {
            if !input.justification.is_empty() {
                return Err(ValidationError::new(
                    "justification",
                    "is only used with emergency_override",
                ));
            }
            None
        };
        Ok(AccessRequest {
            patient,
            personnel,
            org,
            groups,
            service,
            element,
            purpose,
            time,
            client,
            on_behalf_of,
            area,
            emergency_override,
        })
    }
}

/// `None` for the empty string, else `parse(s)`.
fn optional<T>(
    s: &str,
    parse: impl FnOnce(&str) -> Result<T, ValidationError>,
) -> Result<Option<T>, ValidationError> {
    if s.is_empty() {
        Ok(None)
    } else {
        parse(s).map(Some)
    }
}

/// What the decision knows about the patient: their records (any status; the decision looks
/// at status and validity itself) and the service's catalog entry, if it has one.
#[derive(Debug, Clone, Copy, Default)]
pub struct PatientFacts<'a> {
    /// The patient's blocks.
    pub blocks: &'a [Block],
    /// The patient's consents.
    pub consents: &'a [Consent],
    /// The patient's reservations.
    pub reservations: &'a [Reservation],
    /// The representations naming the patient as represented.
    pub representations: &'a [Representation],
    /// The catalog entry of the service asked for (its `requires_consent` and scopes matter).
    pub catalog_entry: Option<&'a CatalogEntry>,
}

/// Configuration of the access decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPolicy {
    /// Age rules for parental responsibility.
    pub representation: RepresentationPolicy,
    /// Whether every access by a client (third-party app) needs a consent (default true).
    pub client_access_requires_consent: bool,
    /// The representation area checked when an on-behalf-of request names none (default
    /// `health`).
    pub default_area: String,
}

impl Default for AccessPolicy {
    fn default() -> Self {
        AccessPolicy {
            representation: RepresentationPolicy::default(),
            client_access_requires_consent: true,
            default_area: "health".into(),
        }
    }
}

impl AccessPolicy {
    /// Checks a configured policy.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.representation.validate()?;
        Area::parse("default_area", &self.default_area)?;
        Ok(())
    }
}

/// The answer to an access request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessDecision {
    /// Permit, deny or permit by override.
    pub effect: Effect,
    /// True for a deny that only overridable blocks cause: personnel could pass it by an
    /// emergency override with a justification.
    pub override_possible: bool,
    /// Ids of the blocks that concern this access (sorted).
    pub matching_blocks: Vec<u64>,
    /// Ids of the consents that permit it (sorted).
    pub matching_consents: Vec<u64>,
    /// Ids of the active reservations that deny it (sorted).
    pub matching_reservations: Vec<u64>,
    /// Ids of the representations that let `on_behalf_of` act (sorted).
    pub matching_representations: Vec<u64>,
    /// Why, for a human (one line per rule that spoke).
    pub reasons: Vec<String>,
    /// What the caller must do (sorted, unique; always includes
    /// [`Obligation::LogWithPurpose`]).
    pub obligations: Vec<Obligation>,
}

/// Decides an access request. Pure and total: every input gives an answer.
pub fn decide(
    req: &AccessRequest,
    facts: &PatientFacts<'_>,
    policy: &AccessPolicy,
) -> AccessDecision {
    let t = req.time;
    let overriding = req.emergency_override.is_some();
    let mut d = AccessDecision {
        effect: Effect::Deny,
        override_possible: false,
        matching_blocks: Vec::new(),
        matching_consents: Vec::new(),
        matching_reservations: Vec::new(),
        matching_representations: Vec::new(),
        reasons: Vec::new(),
        obligations: vec![Obligation::LogWithPurpose],
    };
    // Something no override passes.
    let mut hard_deny = false;
    // An overridable block covering the whole access.
    let mut overridable_deny = false;
    // An overridable element block that the override releases.
    let mut released_by_override = false;
    let mut withheld: Vec<ElementId> = Vec::new();

    // 1. Reservations.
    for r in facts
        .reservations
        .iter()
        .filter(|r| r.key.patient == req.patient && r.key.service == req.service && r.is_active())
    {
        hard_deny = true;
        d.matching_reservations.push(r.id);
        d.reasons.push(format!(
            "the patient has opted out of {} (reservation {}); no override passes a reservation",
            req.service, r.id
        ));
    }

    // 2. Blocks.
    for b in facts.blocks.iter().filter(|b| {
        b.patient == req.patient
            && b.is_in_force(t)
            && b.applies_to_caller(req.personnel.as_ref(), req.org.as_ref(), &req.groups)
    }) {
        let target = format!("{} {}", b.target.kind(), b.target.id_text());
        match (b.scope.covers(&req.service, req.element.as_ref()), b.level) {
            (ScopeMatch::None, _) => continue,
            (ScopeMatch::Full, BlockLevel::Absolute) => {
                hard_deny = true;
                d.reasons.push(format!(
                    "absolute block {} denies {target}; no override passes it",
                    b.id
                ));
            }
            (ScopeMatch::Full, BlockLevel::Overridable) => {
                overridable_deny = true;
                d.reasons.push(if overriding {
                    format!("block {} on {target} overridden in an emergency", b.id)
                } else {
                    format!(
                        "block {} denies {target}; health personnel may override it in an \
                         emergency with a justification",
                        b.id
                    )
                });
            }
            (ScopeMatch::Element(e), BlockLevel::Overridable) if overriding => {
                released_by_override = true;
                d.reasons.push(format!(
                    "block {} on element {e} overridden in an emergency",
                    b.id
                ));
            }
            (ScopeMatch::Element(e), level) => {
                d.reasons.push(format!(
                    "{} block {} withholds element {e} from {target}",
                    level, b.id
                ));
                withheld.push(e);
            }
        }
        d.matching_blocks.push(b.id);
    }

    // 3. Consent.
    let catalog_requires = facts
        .catalog_entry
        .is_some_and(|e| e.content.requires_consent);
    let client_requires = req.client.is_some() && policy.client_access_requires_consent;
    let mut consented_scopes: Vec<String> = Vec::new();
    if catalog_requires || client_requires {
        let grantees: Vec<Grantee> = match &req.client {
            Some(c) => vec![Grantee::Client(c.clone())],
            None => req
                .personnel
                .iter()
                .map(|h| Grantee::Personnel(*h))
                .chain(req.org.iter().map(|o| Grantee::Organisation(o.clone())))
                .collect(),
        };
        let mut wanted: Vec<&str> = vec![req.service.as_str()];
        if let Some(e) = facts.catalog_entry {
            wanted.push(e.id.as_str());
            wanted.extend(e.content.scopes.iter().map(String::as_str));
        }
        for c in facts.consents.iter().filter(|c| {
            c.patient == req.patient
                && grantees.contains(&c.grantee)
                && c.purpose == req.purpose
                && c.covers_any(&wanted)
                && c.permits_at(t)
        }) {
            d.matching_consents.push(c.id);
            consented_scopes.extend(c.scopes.iter().cloned());
        }
        if d.matching_consents.is_empty() {
            hard_deny = true;
            let why = if client_requires {
                "a client's access"
            } else {
                "this service"
            };
            d.reasons.push(format!(
                "{why} needs the patient's consent, and none in force covers {} for purpose {}",
                req.service, req.purpose
            ));
        } else {
            d.reasons.push(format!(
                "consented by the patient (consent {:?})",
                d.matching_consents
            ));
        }
    }

    // 4. Representation.
    if let Some(rep) = req.on_behalf_of.as_ref().filter(|r| **r != req.patient) {
        let area = match &req.area {
            Some(a) => Some(a.clone()),
            None => Area::parse("default_area", &policy.default_area).ok(),
        };
        match area {
            None => {
                hard_deny = true;
                d.reasons
                    .push("the policy's default representation area is invalid".into());
            }
            Some(area) => {
                let rc = representation::check(
                    facts.representations,
                    rep,
                    &req.patient,
                    &area,
                    t,
                    &policy.representation,
                );
                if rc.allowed {
                    d.matching_representations = rc.representation_ids;
                    d.obligations.push(Obligation::LogRepresentation);
                } else {
                    hard_deny = true;
                }
                d.reasons.push(rc.reason);
            }
        }
    }

    // Combine.
    d.effect = if hard_deny {
        Effect::Deny
    } else if overridable_deny {
        if overriding {
            Effect::PermitByOverride
        } else {
            Effect::Deny
        }
    } else if released_by_override {
        Effect::PermitByOverride
    } else {
        Effect::Permit
    };
    d.override_possible = !hard_deny && overridable_deny && !overriding;
    if overriding && d.effect == Effect::Permit {
        d.reasons
            .push("emergency override not needed: no block to override".into());
    }
    if overriding && hard_deny && (overridable_deny || released_by_override) {
        d.reasons.push(
            "the emergency override does not help: something no override passes denies".into(),
        );
    }
    if d.effect == Effect::PermitByOverride {
        d.obligations.push(Obligation::NotifyPatient);
        d.obligations.push(Obligation::RecordJustification);
    }
    if d.effect.permits() {
        if !consented_scopes.is_empty() {
            consented_scopes.sort();
            consented_scopes.dedup();
            d.obligations
                .push(Obligation::ShowOnlyWithinScope(consented_scopes));
        }
        if !withheld.is_empty() {
            withheld.sort();
            withheld.dedup();
            d.obligations.push(Obligation::WithholdElements(withheld));
        }
    } else {
        d.obligations.retain(|o| *o == Obligation::LogWithPurpose);
    }
    if d.effect == Effect::Permit && d.reasons.is_empty() {
        d.reasons.push("nothing denies this access".into());
    }
    d.matching_blocks.sort_unstable();
    d.matching_consents.sort_unstable();
    d.matching_reservations.sort_unstable();
    d.obligations.sort();
    d.obligations.dedup();
    debug_assert!(
        d.effect != Effect::PermitByOverride || overriding,
        "only an override permits by override"
    );
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BlockAdd, BlockAddInput, BlockRevoke, apply_block_add, apply_block_revoke};
    use crate::catalog::{CatalogInput, CatalogRegister, apply_catalog_register};
    use crate::consent::{
        ConsentAnswer, ConsentGrant, ConsentInput, ConsentStatus, apply_consent_grant,
        apply_consent_withdraw,
    };
    use crate::fields::fixtures::{day, ok, org, person, person_born};
    use crate::fields::{Actor, Validity};
    use crate::representation::{
        RepresentationGrant, RepresentationInput, apply_representation_grant,
    };
    use crate::reservation::{ReservationReserve, apply_reserve};
    use proptest::prelude::*;

    const HPR: &str = "4242";

    fn base<'a>(patient: &'a str, org: &'a str) -> AccessRequestInput<'a> {
        AccessRequestInput {
            patient,
            personnel: HPR,
            org,
            service: "kjernejournal",
            purpose: "treatment",
            ..Default::default()
        }
    }

    fn req(input: &AccessRequestInput<'_>) -> AccessRequest {
        ok(AccessRequest::parse(input, day(5)))
    }

    fn block(
        patient: &NationalId,
        kind: &str,
        target: &str,
        level: &str,
        service: &str,
        element: &str,
    ) -> Block {
        let cmd = ok(BlockAdd::parse(&BlockAddInput {
            patient: patient.as_str(),
            target_kind: kind,
            target,
            level,
            scope_service: service,
            scope_element: element,
            registered_by_kind: "citizen",
            registered_by: patient.as_str(),
            ..Default::default()
        }));
        ok(apply_block_add(&[], &cmd, day(1), 100)).0
    }

    fn with_override<'a>(i: AccessRequestInput<'a>) -> AccessRequestInput<'a> {
        AccessRequestInput {
            emergency_override: true,
            justification: "bevisstløs pasient i akuttmottak",
            ..i
        }
    }

    #[test]
    fn nothing_set_permits_and_logs() {
        let (p, o) = (person(0), org(0));
        let d = decide(
            &req(&base(p.as_str(), o.as_str())),
            &PatientFacts::default(),
            &AccessPolicy::default(),
        );
        assert_eq!(d.effect, Effect::Permit);
        assert_eq!(d.obligations, vec![Obligation::LogWithPurpose]);
        assert!(!d.override_possible);
    }

    #[test]
    fn overridable_block_needs_an_override() {
        let (p, o) = (person(0), org(0));
        let b = block(&p, "personnel", HPR, "overridable", "", "");
        let facts = PatientFacts {
            blocks: std::slice::from_ref(&b),
            ..Default::default()
        };
        let policy = AccessPolicy::default();
        let d = decide(&req(&base(p.as_str(), o.as_str())), &facts, &policy);
        assert_eq!((d.effect, d.override_possible), (Effect::Deny, true));
        assert_eq!(d.matching_blocks, vec![b.id]);
        assert_eq!(d.obligations, vec![Obligation::LogWithPurpose]);
        let d = decide(
            &req(&with_override(base(p.as_str(), o.as_str()))),
            &facts,
            &policy,
        );
        assert_eq!(d.effect, Effect::PermitByOverride);
        assert_eq!(
            d.obligations,
            vec![
                Obligation::LogWithPurpose,
                Obligation::NotifyPatient,
                Obligation::RecordJustification
            ]
        );
        // Revoked or outside its period: no longer matches.
        let revoke = ok(BlockRevoke::parse(p.as_str(), b.id, "citizen", p.as_str()));
        let (r, _) = ok(apply_block_revoke(Some(&b), &revoke, day(2), 101));
        let facts = PatientFacts {
            blocks: std::slice::from_ref(&r),
            ..Default::default()
        };
        assert_eq!(
            decide(&req(&base(p.as_str(), o.as_str())), &facts, &policy).effect,
            Effect::Permit
        );
        let later = Block {
            validity: Validity {
                from: day(6),
                to: None,
            },
            ..b.clone()
        };
        let facts = PatientFacts {
            blocks: std::slice::from_ref(&later),
            ..Default::default()
        };
        assert_eq!(
            decide(&req(&base(p.as_str(), o.as_str())), &facts, &policy).effect,
            Effect::Permit
        );
        let over = Block {
            validity: Validity {
                from: day(1),
                to: Some(day(5)),
            },
            ..b
        };
        let facts = PatientFacts {
            blocks: std::slice::from_ref(&over),
            ..Default::default()
        };
        assert_eq!(
            decide(&req(&base(p.as_str(), o.as_str())), &facts, &policy).effect,
            Effect::Permit
        );
    }

    #[test]
    fn absolute_block_is_never_overridden() {
        let (p, o) = (person(0), org(0));
        let policy = AccessPolicy::default();
        for b in [
            block(&p, "organisation", o.as_str(), "absolute", "", ""),
            block(
                &p,
                "group",
                "profession:lege",
                "absolute",
                "kjernejournal",
                "",
            ),
            block(&p, "personnel", HPR, "absolute", "kjernejournal", ""),
        ] {
            let facts = PatientFacts {
                blocks: std::slice::from_ref(&b),
                ..Default::default()
            };
            let groups = vec!["Profession:Lege".to_owned()];
            let i = AccessRequestInput {
                groups: &groups,
                ..base(p.as_str(), o.as_str())
            };
            for input in [i, with_override(i)] {
                let d = decide(&req(&input), &facts, &policy);
                assert_eq!((d.effect, d.override_possible), (Effect::Deny, false));
                assert_eq!(d.matching_blocks, vec![b.id]);
            }
        }
        // A block on another service or another caller does not match.
        let other = block(&p, "personnel", "999", "absolute", "", "");
        let elsewhere = block(&p, "personnel", HPR, "absolute", "e-resept", "");
        let blocks = vec![other, elsewhere];
        let facts = PatientFacts {
            blocks: &blocks,
            ..Default::default()
        };
        let d = decide(&req(&base(p.as_str(), o.as_str())), &facts, &policy);
        assert_eq!(d.effect, Effect::Permit);
        assert!(d.matching_blocks.is_empty());
    }

    #[test]
    fn element_blocks_withhold_or_deny() {
        let (p, o) = (person(0), org(0));
        let policy = AccessPolicy::default();
        let b = block(
            &p,
            "personnel",
            HPR,
            "overridable",
            "kjernejournal",
            "doc-1",
        );
        let a = Block {
            id: 101,
            ..block(&p, "personnel", HPR, "absolute", "kjernejournal", "doc-2")
        };
        let blocks = vec![b.clone(), a.clone()];
        let facts = PatientFacts {
            blocks: &blocks,
            ..Default::default()
        };
        // The whole service: both elements withheld.
        let d = decide(&req(&base(p.as_str(), o.as_str())), &facts, &policy);
        assert_eq!(d.effect, Effect::Permit);
        let doc = |s| ok(ElementId::parse("e", s));
        assert!(d.obligations.contains(&Obligation::WithholdElements(vec![
            doc("doc-1"),
            doc("doc-2")
        ])));
        // With an override the overridable one is released.
        let d = decide(
            &req(&with_override(base(p.as_str(), o.as_str()))),
            &facts,
            &policy,
        );
        assert_eq!(d.effect, Effect::PermitByOverride);
        assert!(
            d.obligations
                .contains(&Obligation::WithholdElements(vec![doc("doc-2")]))
        );
        assert!(d.obligations.contains(&Obligation::NotifyPatient));
        // The blocked element itself.
        let i = AccessRequestInput {
            element: "doc-2",
            ..base(p.as_str(), o.as_str())
        };
        assert_eq!(
            decide(&req(&with_override(i)), &facts, &policy).effect,
            Effect::Deny
        );
        let i = AccessRequestInput {
            element: "doc-1",
            ..base(p.as_str(), o.as_str())
        };
        assert_eq!(decide(&req(&i), &facts, &policy).effect, Effect::Deny);
        assert_eq!(
            decide(&req(&with_override(i)), &facts, &policy).effect,
            Effect::PermitByOverride
        );
        let i = AccessRequestInput {
            element: "doc-3",
            ..base(p.as_str(), o.as_str())
        };
        assert_eq!(decide(&req(&i), &facts, &policy).effect, Effect::Permit);
    }

    #[test]
    fn reservation_denies_even_with_override() {
        let (p, o) = (person(0), org(0));
        let cmd = ok(ReservationReserve::parse(
            p.as_str(),
            "kjernejournal",
            "",
            "citizen",
            p.as_str(),
        ));
        let (r, _) = ok(apply_reserve(None, &cmd, day(1), 9));
        let facts = PatientFacts {
            reservations: std::slice::from_ref(&r),
            ..Default::default()
        };
        let policy = AccessPolicy::default();
        for input in [
            base(p.as_str(), o.as_str()),
            with_override(base(p.as_str(), o.as_str())),
        ] {
            let d = decide(&req(&input), &facts, &policy);
            assert_eq!(d.effect, Effect::Deny);
            assert_eq!(d.matching_reservations, vec![9]);
        }
        let i = AccessRequestInput {
            service: "e-resept",
            ..base(p.as_str(), o.as_str())
        };
        assert_eq!(decide(&req(&i), &facts, &policy).effect, Effect::Permit);
    }

    fn consent(p: &NationalId, kind: &str, grantee: &str, scopes: &[String]) -> Consent {
        let g = ok(ConsentGrant::parse(
            &ConsentInput {
                patient: p.as_str(),
                grantee_kind: kind,
                grantee,
                scopes,
                purpose: "treatment",
                ..Default::default()
            },
            "citizen",
            p.as_str(),
        ));
        ok(apply_consent_grant(&[], &g, day(1), 50)).0
    }

    #[test]
    fn client_access_needs_a_consent() {
        let (p, o) = (person(0), org(0));
        let policy = AccessPolicy::default();
        let input = AccessRequestInput {
            personnel: "",
            org: "",
            client: "helseapp",
            ..base(p.as_str(), o.as_str())
        };
        let d = decide(&req(&input), &PatientFacts::default(), &policy);
        assert_eq!(d.effect, Effect::Deny);
        let scopes = vec!["kjernejournal".to_owned(), "x".to_owned()];
        let c = consent(&p, "client", "helseapp", &scopes);
        let facts = PatientFacts {
            consents: std::slice::from_ref(&c),
            ..Default::default()
        };
        let d = decide(&req(&input), &facts, &policy);
        assert_eq!(d.effect, Effect::Permit);
        assert_eq!(d.matching_consents, vec![c.id]);
        assert!(
            d.obligations
                .contains(&Obligation::ShowOnlyWithinScope(scopes.clone()))
        );
        // Another app, another purpose, another service: no.
        let other = AccessRequestInput {
            client: "other",
            ..input
        };
        assert_eq!(decide(&req(&other), &facts, &policy).effect, Effect::Deny);
        let other = AccessRequestInput {
            purpose: "research",
            ..input
        };
        assert_eq!(decide(&req(&other), &facts, &policy).effect, Effect::Deny);
        let other = AccessRequestInput {
            service: "e-resept",
            ..input
        };
        assert_eq!(decide(&req(&other), &facts, &policy).effect, Effect::Deny);
        // Withdrawn: no.
        let ans = ok(ConsentAnswer::parse(
            p.as_str(),
            c.id,
            "citizen",
            p.as_str(),
        ));
        let (w, _) = ok(apply_consent_withdraw(Some(&c), &ans, day(2), 51));
        let facts = PatientFacts {
            consents: std::slice::from_ref(&w),
            ..Default::default()
        };
        assert_eq!(decide(&req(&input), &facts, &policy).effect, Effect::Deny);
        // Not yet valid, expired, requested: no.
        for bad in [
            Consent {
                validity: Validity {
                    from: day(6),
                    to: None,
                },
                ..c.clone()
            },
            Consent {
                validity: Validity {
                    from: day(1),
                    to: Some(day(5)),
                },
                ..c.clone()
            },
            Consent {
                status: ConsentStatus::Denied,
                ..c.clone()
            },
            Consent {
                status: ConsentStatus::Requested,
                request: None,
                ..c.clone()
            },
        ] {
            let facts = PatientFacts {
                consents: std::slice::from_ref(&bad),
                ..Default::default()
            };
            assert_eq!(decide(&req(&input), &facts, &policy).effect, Effect::Deny);
        }
        // Policy may drop the client rule.
        let lax = AccessPolicy {
            client_access_requires_consent: false,
            ..AccessPolicy::default()
        };
        assert_eq!(
            decide(&req(&input), &PatientFacts::default(), &lax).effect,
            Effect::Permit
        );
    }

    #[test]
    fn catalog_entry_may_require_consent() {
        let (p, o) = (person(0), org(0));
        let policy = AccessPolicy::default();
        let scopes = vec!["kj/read".to_owned()];
        let reg = ok(CatalogRegister::parse(&CatalogInput {
            id: "nhn.kj",
            owner: o.as_str(),
            title: "KJ",
            base_url: "https://kj",
            scopes: &scopes,
            audience: "personnel",
            requires_consent: true,
            ..Default::default()
        }));
        let (entry, _) = ok(apply_catalog_register(None, &reg, day(1), 3));
        let input = base(p.as_str(), o.as_str());
        let facts = PatientFacts {
            catalog_entry: Some(&entry),
            ..Default::default()
        };
        assert_eq!(decide(&req(&input), &facts, &policy).effect, Effect::Deny);
        // A consent to the organisation for one of the entry's scopes.
        let c = consent(&p, "organisation", o.as_str(), &scopes);
        let facts = PatientFacts {
            catalog_entry: Some(&entry),
            consents: std::slice::from_ref(&c),
            ..Default::default()
        };
        assert_eq!(decide(&req(&input), &facts, &policy).effect, Effect::Permit);
        // ... or to the personnel, by catalog id.
        let c = consent(&p, "personnel", HPR, &["nhn.kj".to_owned()]);
        let facts = PatientFacts {
            catalog_entry: Some(&entry),
            consents: std::slice::from_ref(&c),
            ..Default::default()
        };
        assert_eq!(decide(&req(&input), &facts, &policy).effect, Effect::Permit);
        // An override does not replace a consent.
        let facts = PatientFacts {
            catalog_entry: Some(&entry),
            ..Default::default()
        };
        assert_eq!(
            decide(&req(&with_override(input)), &facts, &policy).effect,
            Effect::Deny
        );
    }

    #[test]
    fn on_behalf_of_needs_a_representation() {
        let (parent, o) = (person(0), org(0));
        let child = person_born(2020, 3, 1, 0);
        let policy = AccessPolicy::default();
        let areas = vec!["*".to_owned()];
        let g = ok(RepresentationGrant::parse(&RepresentationInput {
            representative: parent.as_str(),
            represented: child.as_str(),
            kind: "parental_responsibility",
            areas: &areas,
            source: "population_register",
            granted_by_kind: "system",
            granted_by: "folkeregisteret",
            ..Default::default()
        }));
        let (r, _) = ok(apply_representation_grant(&[], &g, day(1), 77));
        let scopes = vec!["kjernejournal".to_owned()];
        let c = consent(&child, "client", "helsenorge", &scopes);
        let input = AccessRequestInput {
            personnel: "",
            client: "helsenorge",
            on_behalf_of: parent.as_str(),
            ..base(child.as_str(), o.as_str())
        };
        let facts = PatientFacts {
            consents: std::slice::from_ref(&c),
            ..Default::default()
        };
        let d = decide(&req(&input), &facts, &policy);
        assert_eq!(d.effect, Effect::Deny);
        let facts = PatientFacts {
            consents: std::slice::from_ref(&c),
            representations: std::slice::from_ref(&r),
            ..Default::default()
        };
        let d = decide(&req(&input), &facts, &policy);
        assert_eq!(d.effect, Effect::Permit);
        assert_eq!(d.matching_representations, vec![77]);
        assert!(d.obligations.contains(&Obligation::LogRepresentation));
        // Someone else acting: no.
        let stranger = person(3);
        let other = AccessRequestInput {
            on_behalf_of: stranger.as_str(),
            ..input
        };
        assert_eq!(decide(&req(&other), &facts, &policy).effect, Effect::Deny);
        // Acting for oneself needs no representation.
        let own = AccessRequestInput {
            on_behalf_of: child.as_str(),
            ..input
        };
        assert_eq!(decide(&req(&own), &facts, &policy).effect, Effect::Permit);
    }

    #[test]
    fn bad_input_names_the_field() {
        let (p, o) = (person(0), org(0));
        let b = base(p.as_str(), o.as_str());
        let too_many: Vec<String> = (0..=GROUPS_PER_REQUEST_MAX)
            .map(|i| format!("g{i}"))
            .collect();
        let bad_group = vec!["ok".to_owned(), "not ok".to_owned()];
        let long = "j".repeat(JUSTIFICATION_BYTES_MAX + 1);
        let cases: Vec<(AccessRequestInput<'_>, &str)> = vec![
            (AccessRequestInput { patient: "", ..b }, "patient"),
            (
                AccessRequestInput {
                    personnel: "x",
                    ..b
                },
                "personnel",
            ),
            (
                AccessRequestInput {
                    org: "12345678",
                    ..b
                },
                "org",
            ),
            (
                AccessRequestInput {
                    groups: &too_many,
                    ..b
                },
                "groups",
            ),
            (
                AccessRequestInput {
                    groups: &bad_group,
                    ..b
                },
                "groups[1]",
            ),
            (AccessRequestInput { service: "", ..b }, "service"),
            (
                AccessRequestInput {
                    element: "a b",
                    ..b
                },
                "element",
            ),
            (AccessRequestInput { purpose: "", ..b }, "purpose"),
            (AccessRequestInput { time: "now", ..b }, "time"),
            (
                AccessRequestInput {
                    client: "a/b c",
                    ..b
                },
                "client",
            ),
            (
                AccessRequestInput {
                    on_behalf_of: "1",
                    ..b
                },
                "on_behalf_of",
            ),
            (
                AccessRequestInput {
                    area: "health",
                    ..b
                },
                "area",
            ),
            (
                AccessRequestInput {
                    personnel: "",
                    org: "",
                    ..b
                },
                "personnel",
            ),
            (
                AccessRequestInput {
                    emergency_override: true,
                    ..b
                },
                "justification",
            ),
            (
                AccessRequestInput {
                    emergency_override: true,
                    justification: " \n ",
                    ..b
                },
                "justification",
            ),
            (
                AccessRequestInput {
                    emergency_override: true,
                    justification: &long,
                    ..b
                },
                "justification",
            ),
            (
                AccessRequestInput {
                    justification: "why",
                    ..b
                },
                "justification",
            ),
            (
                AccessRequestInput {
                    personnel: "",
                    emergency_override: true,
                    justification: "why",
                    ..b
                },
                "emergency_override",
            ),
        ];
        for (i, field) in cases {
            match AccessRequest::parse(&i, day(1)) {
                Err(e) => assert_eq!(e.field, field, "{e}"),
                Ok(_) => panic!("accepted bad input for {field}"),
            }
        }
        assert_eq!(req(&b).time, day(5));
        let timed = AccessRequestInput {
            time: "2026-01-02T00:00:00Z",
            ..b
        };
        assert_eq!(req(&timed).time, day(2));
        assert!(AccessPolicy::default().validate().is_ok());
    }

    // ---- Properties -----------------------------------------------------------------------

    const SERVICES: [&str; 2] = ["kjernejournal", "e-resept"];
    const ELEMENTS: [&str; 2] = ["doc-1", "doc-2"];
    const GROUPS: [&str; 3] = ["profession:lege", "profession:sykepleier", "team:a"];
    const CLIENTS: [&str; 2] = ["app-1", "app-2"];
    const PURPOSES: [&str; 2] = ["treatment", "emergency"];

    fn hpr(n: u32) -> HprNumber {
        ok(HprNumber::new(n))
    }

    /// A caller and a request in a small world, so that generated facts often match.
    #[derive(Debug, Clone)]
    struct Caller {
        personnel: Option<u32>,
        org: Option<usize>,
        groups: Vec<usize>,
        service: usize,
        element: Option<usize>,
        purpose: usize,
        client: Option<usize>,
        time: i64,
        justification: Option<String>,
    }

    fn arb_caller() -> impl Strategy<Value = Caller> {
        (
            proptest::option::of(1u32..4),
            proptest::option::of(0usize..3),
            proptest::collection::vec(0usize..3, 0..3),
            0usize..2,
            proptest::option::of(0usize..2),
            0usize..2,
            proptest::option::of(0usize..2),
            0i64..12,
            proptest::option::of("[a-zæøå ]{0,12}"),
        )
            .prop_map(
                |(
                    personnel,
                    org,
                    groups,
                    service,
                    element,
                    purpose,
                    client,
                    time,
                    justification,
                )| {
                    // Every caller is identified; only personnel override.
                    let personnel = if personnel.is_none() && org.is_none() && client.is_none() {
                        Some(1)
                    } else {
                        personnel
                    };
                    let justification = justification.filter(|_| personnel.is_some());
                    Caller {
                        personnel,
                        org,
                        groups,
                        service,
                        element,
                        purpose,
                        client,
                        time,
                        justification,
                    }
                },
            )
    }

    /// Builds the request; `None` when the input is refused (e.g. a blank justification).
    fn request_of(c: &Caller, patient: &NationalId) -> Option<AccessRequest> {
        let personnel = c.personnel.map(|h| h.to_string()).unwrap_or_default();
        let org_text = c
            .org
            .map(|o| org(o).as_str().to_owned())
            .unwrap_or_default();
        let groups: Vec<String> = c.groups.iter().map(|g| GROUPS[*g].to_owned()).collect();
        let t = day(c.time).to_rfc3339();
        let input = AccessRequestInput {
            patient: patient.as_str(),
            personnel: &personnel,
            org: &org_text,
            groups: &groups,
            service: SERVICES[c.service],
            element: c.element.map(|e| ELEMENTS[e]).unwrap_or(""),
            purpose: PURPOSES[c.purpose],
            time: &t,
            client: c.client.map(|k| CLIENTS[k]).unwrap_or(""),
            emergency_override: c.justification.is_some(),
            justification: c.justification.as_deref().unwrap_or(""),
            ..Default::default()
        };
        AccessRequest::parse(&input, day(0)).ok()
    }

    fn arb_block(patient: NationalId) -> impl Strategy<Value = Block> {
        (
            0u8..3,
            0usize..3,
            prop_oneof![Just(BlockLevel::Overridable), Just(BlockLevel::Absolute)],
            proptest::option::of((0usize..2, proptest::option::of(0usize..2))),
            0i64..12,
            proptest::option::of(1i64..12),
            any::<bool>(),
            1u64..1_000,
        )
            .prop_map(move |(kind, n, level, scope, from, len, revoked, id)| {
                let target = match kind {
                    0 => BlockTarget::Personnel(hpr(n as u32 + 1)),
                    1 => BlockTarget::Group(ok(GroupId::parse("g", GROUPS[n]))),
                    _ => BlockTarget::Organisation(org(n)),
                };
                let scope = match scope {
                    None => crate::block::BlockScope::AllRecords,
                    Some((s, e)) => crate::block::BlockScope::Service {
                        service: ok(ServiceName::parse("s", SERVICES[s])),
                        element: e.map(|e| ok(ElementId::parse("e", ELEMENTS[e]))),
                    },
                };
                Block {
                    id,
                    patient: patient.clone(),
                    target,
                    level,
                    scope,
                    validity: Validity {
                        from: day(from),
                        to: len.map(|l| day(from + l)),
                    },
                    reason: String::new(),
                    registered_by: Actor::Citizen(patient.clone()),
                    status: if revoked {
                        crate::block::BlockStatus::Revoked
                    } else {
                        crate::block::BlockStatus::Active
                    },
                    revoked_at: None,
                    revoked_by: None,
                    created_at: day(0),
                    updated_at: day(0),
                    create_revision: id,
                    mod_revision: id,
                }
            })
    }

    fn arb_consent(patient: NationalId) -> impl Strategy<Value = Consent> {
        (
            0u8..3,
            0usize..3,
            proptest::collection::vec(0usize..3, 1..3),
            0usize..2,
            0i64..12,
            proptest::option::of(1i64..12),
            prop_oneof![
                Just(ConsentStatus::Requested),
                Just(ConsentStatus::Granted),
                Just(ConsentStatus::Denied),
                Just(ConsentStatus::Expired),
                Just(ConsentStatus::Withdrawn)
            ],
            1_000u64..2_000,
        )
            .prop_map(move |(kind, n, scopes, purpose, from, len, status, id)| {
                let grantee = match kind {
                    0 => Grantee::Client(ok(ClientId::parse("c", CLIENTS[n % 2]))),
                    1 => Grantee::Organisation(org(n)),
                    _ => Grantee::Personnel(hpr(n as u32 + 1)),
                };
                let mut scopes: Vec<String> = scopes
                    .into_iter()
                    .map(|s| SERVICES.get(s).copied().unwrap_or("other").to_owned())
                    .collect();
                scopes.sort();
                scopes.dedup();
                Consent {
                    id,
                    patient: patient.clone(),
                    grantee,
                    scopes,
                    purpose: ok(Purpose::parse("p", PURPOSES[purpose])),
                    validity: Validity {
                        from: day(from),
                        to: len.map(|l| day(from + l)),
                    },
                    status,
                    request: (status == ConsentStatus::Requested).then_some(
                        crate::consent::ConsentRequestInfo {
                            requested_at: day(0),
                            deadline: day(8),
                        },
                    ),
                    decided_at: None,
                    decided_by: None,
                    withdrawn_at: None,
                    withdrawn_by: None,
                    expired_at: None,
                    created_at: day(0),
                    updated_at: day(0),
                    create_revision: id,
                    mod_revision: id,
                }
            })
    }

    fn arb_reservation(patient: NationalId) -> impl Strategy<Value = Reservation> {
        (0usize..2, any::<bool>(), 2_000u64..3_000).prop_map(move |(s, active, id)| {
            let cmd = ok(ReservationReserve::parse(
                patient.as_str(),
                SERVICES[s],
                "",
                "citizen",
                patient.as_str(),
            ));
            let (mut r, _) = ok(apply_reserve(None, &cmd, day(0), id));
            if !active {
                r.status = crate::reservation::ReservationStatus::Withdrawn;
            }
            r
        })
    }

    #[derive(Debug, Clone)]
    struct World {
        blocks: Vec<Block>,
        consents: Vec<Consent>,
        reservations: Vec<Reservation>,
        requires_consent: bool,
    }

    fn arb_world() -> impl Strategy<Value = World> {
        let p = person(0);
        (
            proptest::collection::vec(arb_block(p.clone()), 0..5),
            proptest::collection::vec(arb_consent(p.clone()), 0..5),
            proptest::collection::vec(arb_reservation(p), 0..3),
            any::<bool>(),
        )
            .prop_map(
                |(mut blocks, mut consents, mut reservations, requires_consent)| {
                    // The registry never repeats an id: every id is the revision that created the
                    // record, drawn from one counter for all families. The element strategies draw
                    // ids independently, so make them unique here: a repeated id moves up to the
                    // next free one (the drawn values stay, so a saved seed replays the same world).
                    let mut used = std::collections::BTreeSet::new();
                    let mut unique = |id: &mut u64, create: &mut u64, modified: &mut u64| {
                        while !used.insert(*id) {
                            *id += 1;
                        }
                        (*create, *modified) = (*id, *id);
                    };
                    for b in &mut blocks {
                        unique(&mut b.id, &mut b.create_revision, &mut b.mod_revision);
                    }
                    for c in &mut consents {
                        unique(&mut c.id, &mut c.create_revision, &mut c.mod_revision);
                    }
                    for r in &mut reservations {
                        unique(&mut r.id, &mut r.create_revision, &mut r.mod_revision);
                    }
                    World {
                        blocks,
                        consents,
                        reservations,
                        requires_consent,
                    }
                },
            )
    }

    fn catalog_entry(service: &ServiceName, requires_consent: bool) -> CatalogEntry {
        let o = org(0);
        let reg = ok(CatalogRegister::parse(&CatalogInput {
            id: service.as_str(),
            owner: o.as_str(),
            title: "t",
            base_url: "https://x",
            audience: "personnel",
            requires_consent,
            ..Default::default()
        }));
        ok(apply_catalog_register(None, &reg, day(0), 1)).0
    }

    fn decide_in(world: &World, r: &AccessRequest) -> AccessDecision {
        let entry = catalog_entry(&r.service, world.requires_consent);
        let facts = PatientFacts {
            blocks: &world.blocks,
            consents: &world.consents,
            reservations: &world.reservations,
            representations: &[],
            catalog_entry: Some(&entry),
        };
        decide(r, &facts, &AccessPolicy::default())
    }

    /// An absolute block in force that targets this caller and covers this access.
    fn matching_absolute(r: &AccessRequest, pick: u8) -> Option<Block> {
        let p = r.patient.clone();
        let target = match pick % 3 {
            0 => r.personnel.map(BlockTarget::Personnel),
            1 => r.groups.first().cloned().map(BlockTarget::Group),
            _ => r.org.clone().map(BlockTarget::Organisation),
        }
        .or_else(|| r.personnel.map(BlockTarget::Personnel))
        .or_else(|| r.org.clone().map(BlockTarget::Organisation))?;
        let scope = match pick % 2 {
            0 => crate::block::BlockScope::AllRecords,
            _ => crate::block::BlockScope::Service {
                service: r.service.clone(),
                element: r.element.clone(),
            },
        };
        Some(Block {
            id: 9_999,
            patient: p.clone(),
            target,
            level: BlockLevel::Absolute,
            scope,
            validity: Validity {
                from: r.time,
                to: None,
            },
            reason: String::new(),
            registered_by: Actor::Citizen(p),
            status: crate::block::BlockStatus::Active,
            revoked_at: None,
            revoked_by: None,
            created_at: day(0),
            updated_at: day(0),
            create_revision: 9_999,
            mod_revision: 9_999,
        })
    }

    use crate::block::BlockTarget;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// (1) An absolute block in force that matches the caller always denies, with or
        /// without an override.
        #[test]
        fn absolute_block_always_denies(world in arb_world(), caller in arb_caller(), pick in any::<u8>()) {
            let p = person(0);
            let Some(r) = request_of(&caller, &p) else { return Ok(()) };
            let Some(b) = matching_absolute(&r, pick) else { return Ok(()) };
            let mut world = world;
            world.blocks.push(b);
            let d = decide_in(&world, &r);
            prop_assert_eq!(d.effect, Effect::Deny);
            prop_assert!(d.matching_blocks.contains(&9_999));
            prop_assert!(!d.override_possible);
        }

        /// (2) Withdrawing a consent always removes its permit.
        #[test]
        fn withdrawing_a_consent_removes_its_permit(world in arb_world(), caller in arb_caller()) {
            let p = person(0);
            let Some(r) = request_of(&caller, &p) else { return Ok(()) };
            let d1 = decide_in(&world, &r);
            for id in d1.matching_consents.clone() {
                let mut after = world.clone();
                let mut with_id = after.consents.iter_mut().filter(|c| c.id == id);
                let (Some(c), None) = (with_id.next(), with_id.next()) else {
                    return Err(TestCaseError::fail(format!("not exactly one consent has the matching id {id}")));
                };
                let ans = ConsentAnswer { patient: p.clone(), consent_id: id, by: Actor::Citizen(p.clone()) };
                let withdrawn = match apply_consent_withdraw(Some(c), &ans, r.time, 10_000) {
                    Ok((w, _)) => w,
                    Err(e) => return Err(TestCaseError::fail(format!("a permitting consent could not be withdrawn: {e}"))),
                };
                *c = withdrawn;
                let d2 = decide_in(&after, &r);
                prop_assert!(!d2.matching_consents.contains(&id));
                if d1.matching_consents == [id] {
                    prop_assert_eq!(d2.effect, Effect::Deny);
                }
            }
        }

        /// (3) A decision never permits when a matching active reservation exists.
        #[test]
        fn reservation_never_permits(world in arb_world(), caller in arb_caller()) {
            let p = person(0);
            let Some(r) = request_of(&caller, &p) else { return Ok(()) };
            let mut world = world;
            let cmd = ok(ReservationReserve::parse(p.as_str(), r.service.as_str(), "", "citizen", p.as_str()));
            world.reservations.push(ok(apply_reserve(None, &cmd, day(0), 5_000)).0);
            let d = decide_in(&world, &r);
            prop_assert_eq!(d.effect, Effect::Deny);
            prop_assert!(d.matching_reservations.contains(&5_000));
        }

        /// (4) Without a justification there is no override: parsing refuses an override with
        /// a blank justification, and a request without one never permits by override.
        #[test]
        fn no_override_without_justification(world in arb_world(), caller in arb_caller(), blank in "[ \t\n]{0,4}") {
            let p = person(0);
            let mut caller = caller;
            caller.justification = None;
            let Some(r) = request_of(&caller, &p) else { return Ok(()) };
            prop_assert!(r.emergency_override.is_none());
            prop_assert_ne!(decide_in(&world, &r).effect, Effect::PermitByOverride);
            let input = AccessRequestInput {
                patient: p.as_str(),
                personnel: "1",
                service: "kjernejournal",
                purpose: "treatment",
                emergency_override: true,
                justification: &blank,
                ..Default::default()
            };
            let refused = AccessRequest::parse(&input, day(0)).err().map(|e| e.field);
            prop_assert_eq!(refused, Some("justification".to_owned()));
        }

        /// (5) Permit by override always carries NotifyPatient (and RecordJustification), and
        /// only a request with an override gets it.
        #[test]
        fn override_always_notifies(world in arb_world(), caller in arb_caller()) {
            let p = person(0);
            let Some(r) = request_of(&caller, &p) else { return Ok(()) };
            let d = decide_in(&world, &r);
            if d.effect == Effect::PermitByOverride {
                prop_assert!(r.emergency_override.is_some());
                prop_assert!(d.obligations.contains(&Obligation::NotifyPatient));
                prop_assert!(d.obligations.contains(&Obligation::RecordJustification));
            } else {
                prop_assert!(!d.obligations.contains(&Obligation::NotifyPatient));
            }
            prop_assert!(d.obligations.contains(&Obligation::LogWithPurpose));
        }

        /// An override never turns a permit into a deny, and never changes a deny caused by
        /// something no override passes.
        #[test]
        fn override_is_monotone(world in arb_world(), caller in arb_caller()) {
            let p = person(0);
            let mut without = caller.clone();
            without.justification = None;
            let mut with = caller;
            if with.personnel.is_none() { with.personnel = Some(1); }
            with.justification = Some("akutt".into());
            without.personnel = with.personnel;
            let (Some(a), Some(b)) = (request_of(&without, &p), request_of(&with, &p)) else { return Ok(()) };
            let da = decide_in(&world, &a);
            let db = decide_in(&world, &b);
            if da.effect.permits() { prop_assert!(db.effect.permits()); }
            prop_assert!(
                !(da.effect == Effect::Deny && !da.override_possible && db.effect.permits()),
                "an override passed a deny that was not overridable: {:?}", da.reasons
            );
            if da.override_possible { prop_assert_eq!(db.effect, Effect::PermitByOverride); }
        }

        /// Arbitrary strings never panic the parser.
        #[test]
        fn arbitrary_input_never_panics(
            patient in ".*", personnel in ".*", o in ".*", groups in proptest::collection::vec(".*", 0..70),
            service in ".*", element in ".*", purpose in ".*", time in ".*", client in ".*",
            obo in ".*", area in ".*", ov in any::<bool>(), j in ".*",
        ) {
            let _ = AccessRequest::parse(&AccessRequestInput {
                patient: &patient, personnel: &personnel, org: &o, groups: &groups, service: &service,
                element: &element, purpose: &purpose, time: &time, client: &client,
                on_behalf_of: &obo, area: &area, emergency_override: ov, justification: &j,
            }, day(0));
        }
    }
}
