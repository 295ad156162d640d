//! Representation (fullmakt, foreldreansvar, verge, manglende samtykkekompetanse): person A (the
//! representative) may act for person B (the represented) in some areas.
//!
//! A representation is granted by the represented person (power of attorney) or comes from the
//! population register (parental responsibility, guardianship); it has a validity period and may
//! be revoked. Records are never deleted.
//!
//! Parental responsibility changes with the child's age, read from the child's national id
//! ([`NationalId::age_on`]) on the UTC date of the time asked about, through a
//! [`RepresentationPolicy`]: below `parental_full_below_age` (12) the parent acts in every area
//! the record grants; from then until `parental_ends_at_age` (16) only in the configured
//! `parental_limited_areas`; at and after that age never. The policy is configuration, applied
//! only in the (pure) queries — never in the replicated apply functions — so a configuration
//! change takes effect on reads without rewriting state.
//!
//! Queries over a slice of records: [`whom_can_represent`] (for A), [`who_can_represent`] (for
//! B) and [`check`] (may A act for B in area S at time t?).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{ApplyError, ValidationError};
use crate::fields::{
    Actor, Area, Validity, ValidityInput, check_list_len, parse_record_id, parse_token_list,
    text_enum,
};
use crate::ids::NationalId;
use crate::limits::{
    AREAS_PER_REPRESENTATION_MAX, PARENTAL_LIMITED_AREAS_MAX, REPRESENTATIONS_PER_PERSON_MAX,
};
use crate::locator::parse_national_id;
use crate::time::Timestamp;

text_enum! {
    /// The legal basis of a representation.
    pub enum RepresentationKind {
        /// Fullmakt: the represented person has authorised the representative.
        PowerOfAttorney => "power_of_attorney",
        /// Foreldreansvar: a parent for a child (age rules apply; see [`RepresentationPolicy`]).
        ParentalResponsibility => "parental_responsibility",
        /// Vergemål: a guardian appointed for the represented person.
        Guardianship => "guardianship",
        /// For a person lacking consent competence (manglende samtykkekompetanse).
        NotConsentCompetent => "not_consent_competent",
    }
}

text_enum! {
    /// Where a representation comes from.
    pub enum RepresentationSource {
        /// Granted by the represented person themself.
        PatientGranted => "patient_granted",
        /// From the population register (folkeregisteret), the authoritative source for
        /// parental responsibility.
        PopulationRegister => "population_register",
    }
}

text_enum! {
    /// Whether a representation is still in effect (before its validity period and the age
    /// rules are considered).
    pub enum RepresentationStatus {
        /// Not revoked.
        Active => "active",
        /// Revoked; kept for history.
        Revoked => "revoked",
    }
}

/// Raw fields of a representation grant, exactly as a caller sends them (empty string =
/// unset).
#[derive(Debug, Clone, Copy, Default)]
pub struct RepresentationInput<'a> {
    /// National id of the person who may act.
    pub representative: &'a str,
    /// National id of the person acted for.
    pub represented: &'a str,
    /// See [`RepresentationKind`].
    pub kind: &'a str,
    /// Area tokens or `*`; 1 to [`AREAS_PER_REPRESENTATION_MAX`].
    pub areas: &'a [String],
    /// RFC 3339; empty = from when applied.
    pub valid_from: &'a str,
    /// RFC 3339; empty = until revoked.
    pub valid_to: &'a str,
    /// See [`RepresentationSource`].
    pub source: &'a str,
    /// See [`crate::fields::ActorKind`]; `citizen` for a patient-granted representation.
    pub granted_by_kind: &'a str,
    /// The granting actor's id.
    pub granted_by: &'a str,
}

/// A validated representation grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepresentationGrant {
    /// Who may act.
    pub representative: NationalId,
    /// For whom.
    pub represented: NationalId,
    /// On what basis.
    pub kind: RepresentationKind,
    /// In which areas (sorted, unique, at least one).
    pub areas: Vec<Area>,
    /// When.
    pub validity: ValidityInput,
    /// From where.
    pub source: RepresentationSource,
    /// Who registered it.
    pub granted_by: Actor,
}

impl RepresentationGrant {
    /// Validates a grant as sent by a caller. The two people must differ; a power of attorney
    /// must be `patient_granted` and parental responsibility `population_register` (the error
    /// names `source`); a patient-granted representation must be granted by a citizen.
    pub fn parse(input: &RepresentationInput<'_>) -> Result<Self, ValidationError> {
        let representative = parse_national_id("representative", input.representative)?;
        let represented = parse_national_id("represented", input.represented)?;
        if representative == represented {
            return Err(ValidationError::new(
                "represented",
                "must differ from representative",
            ));
        }
        let kind = RepresentationKind::parse("kind", input.kind)?;
        let areas = parse_token_list(
            "areas",
            input.areas,
            AREAS_PER_REPRESENTATION_MAX,
            Area::parse,
        )?;
        if areas.is_empty() {
            return Err(ValidationError::new("areas", "must have at least one area"));
        }
        let validity = ValidityInput::parse(input.valid_from, input.valid_to)?;
        let source = RepresentationSource::parse("source", input.source)?;
        match (kind, source) {
            (RepresentationKind::PowerOfAttorney, RepresentationSource::PopulationRegister) => {
                return Err(ValidationError::new(
                    "source",
                    "a power of attorney is patient_granted",
                ));
            }
            (RepresentationKind::ParentalResponsibility, RepresentationSource::PatientGranted) => {
                return Err(ValidationError::new(
                    "source",
                    "parental responsibility comes from the population_register",
                ));
            }
            _ => {}
        }
        let granted_by = Actor::parse("granted_by", input.granted_by_kind, input.granted_by)?;
        if source == RepresentationSource::PatientGranted
            && !matches!(granted_by, Actor::Citizen(_))
        {
            return Err(ValidationError::new(
                "granted_by_kind",
                "a patient-granted representation is granted by a citizen",
            ));
        }
        Ok(RepresentationGrant {
            representative,
            represented,
            kind,
            areas,
            validity,
            source,
            granted_by,
        })
    }
}

/// A validated revoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepresentationRevoke {
    /// The represented person (a representation of someone else is not found).
    pub represented: NationalId,
    /// The representation's id.
    pub representation_id: u64,
    /// Who revokes it (the represented person, the representative, the register, ...).
    pub revoked_by: Actor,
}

impl RepresentationRevoke {
    /// Validates a revoke as sent by a caller.
    pub fn parse(
        represented: &str,
        representation_id: u64,
        revoked_by_kind: &str,
        revoked_by: &str,
    ) -> Result<Self, ValidationError> {
        Ok(RepresentationRevoke {
            represented: parse_national_id("represented", represented)?,
            representation_id: parse_record_id("representation_id", representation_id)?,
            revoked_by: Actor::parse("revoked_by", revoked_by_kind, revoked_by)?,
        })
    }
}

/// A stored representation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Representation {
    /// Server-assigned id: the revision that created it.
    pub id: u64,
    /// Who may act.
    pub representative: NationalId,
    /// For whom.
    pub represented: NationalId,
    /// On what basis.
    pub kind: RepresentationKind,
    /// In which areas (sorted, unique).
    pub areas: Vec<Area>,
    /// When.
    pub validity: Validity,
    /// From where.
    pub source: RepresentationSource,
    /// Who registered it.
    pub granted_by: Actor,
    /// Active or revoked.
    pub status: RepresentationStatus,
    /// When it was revoked (leader time).
    pub revoked_at: Option<Timestamp>,
    /// Who revoked it.
    pub revoked_by: Option<Actor>,
    /// When it was created (leader time).
    pub created_at: Timestamp,
    /// When it last changed (leader time).
    pub updated_at: Timestamp,
    /// Revision that created it (equals `id`).
    pub create_revision: u64,
    /// Revision that last changed it.
    pub mod_revision: u64,
}

/// Age rules for parental responsibility. `Default`: full below 12, limited from 12, ends at
/// 16, limited areas `administrative`, `appointments`, `vaccinations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepresentationPolicy {
    /// Below this age a parent acts in every area the record grants.
    pub parental_full_below_age: u32,
    /// At and after this age parental responsibility gives no access at all.
    pub parental_ends_at_age: u32,
    /// The only areas a parent acts in from `parental_full_below_age` until
    /// `parental_ends_at_age` (area tokens, lower case).
    pub parental_limited_areas: Vec<String>,
}

impl Default for RepresentationPolicy {
    fn default() -> Self {
        RepresentationPolicy {
            parental_full_below_age: 12,
            parental_ends_at_age: 16,
            parental_limited_areas: vec![
                "administrative".into(),
                "appointments".into(),
                "vaccinations".into(),
            ],
        }
    }
}

impl RepresentationPolicy {
    /// Checks a configured policy: full-below age not above the end age, at most
    /// [`PARENTAL_LIMITED_AREAS_MAX`] limited areas, each a valid area token.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.parental_full_below_age > self.parental_ends_at_age {
            return Err(ValidationError::new(
                "parental_full_below_age",
                "must not be above parental_ends_at_age",
            ));
        }
        check_list_len(
            "parental_limited_areas",
            self.parental_limited_areas.len(),
            PARENTAL_LIMITED_AREAS_MAX,
        )?;
        for (i, a) in self.parental_limited_areas.iter().enumerate() {
            Area::parse(&format!("parental_limited_areas[{i}]"), a)?;
        }
        Ok(())
    }

    /// True when `area` is in the limited set (compared in lower case).
    fn is_limited_area(&self, area: &Area) -> bool {
        self.parental_limited_areas
            .iter()
            .any(|a| a.eq_ignore_ascii_case(area.as_str()))
    }
}

/// The UTC calendar date of `t` (`None` outside chrono's range).
fn utc_date(t: Timestamp) -> Option<NaiveDate> {
    chrono::DateTime::from_timestamp_millis(t.0).map(|d| d.date_naive())
}

/// Which areas a representation gives at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    /// Not in force (revoked, outside validity, or parental responsibility ended); the reason.
    None(String),
    /// Every area the record grants.
    Full,
    /// Only the policy's limited areas, among those the record grants.
    Limited,
}

impl Representation {
    /// True when the record is active and `t` is inside its validity period (the age rules
    /// are not considered; see [`Representation::covers`]).
    pub fn is_in_force(&self, t: Timestamp) -> bool {
        self.status == RepresentationStatus::Active && self.validity.contains(t)
    }

    /// What the record gives at `t` under `policy`.
    fn reach(&self, t: Timestamp, policy: &RepresentationPolicy) -> Reach {
        if self.status == RepresentationStatus::Revoked {
            return Reach::None(format!("representation {} is revoked", self.id));
        }
        if !self.validity.contains(t) {
            return Reach::None(format!(
                "representation {} is not valid at that time",
                self.id
            ));
        }
        if self.kind != RepresentationKind::ParentalResponsibility {
            return Reach::Full;
        }
        let Some(date) = utc_date(t) else {
            return Reach::None("time out of range".into());
        };
        let age = self.represented.age_on(date);
        if age >= policy.parental_ends_at_age {
            Reach::None(format!(
                "parental responsibility (representation {}) ends at age {}",
                self.id, policy.parental_ends_at_age
            ))
        } else if age >= policy.parental_full_below_age {
            Reach::Limited
        } else {
            Reach::Full
        }
    }

    /// The areas the representative may act in at `t` under `policy` (empty when none). For
    /// a parent of a child in the limited age band this is the record's areas narrowed to the
    /// policy's limited set (a record with `*` gives exactly the limited set).
    pub fn areas_at(&self, t: Timestamp, policy: &RepresentationPolicy) -> Vec<Area> {
        match self.reach(t, policy) {
            Reach::None(_) => Vec::new(),
            Reach::Full => self.areas.clone(),
            Reach::Limited => {
                let mut out: Vec<Area> = policy
                    .parental_limited_areas
                    .iter()
                    .filter_map(|a| Area::parse("area", a).ok())
                    .filter(|a| !a.is_all() && self.areas.iter().any(|r| r.covers(a)))
                    .collect();
                out.sort();
                out.dedup();
                out
            }
        }
    }

    /// Whether the representative may act in `area` at `t` under `policy`; the reason when
    /// not.
    pub fn covers(
        &self,
        area: &Area,
        t: Timestamp,
        policy: &RepresentationPolicy,
    ) -> Result<(), String> {
        let granted = self.areas.iter().any(|a| a.covers(area));
        match self.reach(t, policy) {
            Reach::None(reason) => Err(reason),
            _ if !granted => Err(format!(
                "representation {} does not include area {area}",
                self.id
            )),
            Reach::Full => Ok(()),
            Reach::Limited if !area.is_all() && policy.is_limited_area(area) => Ok(()),
            Reach::Limited => Err(format!(
                "for a child aged {} to {}, parental responsibility (representation {}) covers \
                 only {:?}",
                policy.parental_full_below_age,
                policy.parental_ends_at_age.saturating_sub(1),
                self.id,
                policy.parental_limited_areas
            )),
        }
    }

    /// True when the record gives anything at `t` under `policy`.
    pub fn is_effective(&self, t: Timestamp, policy: &RepresentationPolicy) -> bool {
        !self.areas_at(t, policy).is_empty()
    }
}

/// Applies a grant. `represented_records` are the existing representations of the same
/// represented person (any status). An active record with the same representative, kind,
/// areas and validity (an unset start matching any start) is returned unchanged (`false`). A
/// validity period already over: [`ApplyError::FailedPrecondition`]; more than
/// [`REPRESENTATIONS_PER_PERSON_MAX`] records: [`ApplyError::ResourceExhausted`].
pub fn apply_representation_grant(
    represented_records: &[Representation],
    cmd: &RepresentationGrant,
    now: Timestamp,
    next_revision: u64,
) -> Result<(Representation, bool), ApplyError> {
    let validity = cmd.validity.resolve(now)?;
    if let Some(same) = represented_records.iter().find(|r| {
        r.status == RepresentationStatus::Active
            && r.representative == cmd.representative
            && r.represented == cmd.represented
            && r.kind == cmd.kind
            && r.areas == cmd.areas
            && r.validity.to == validity.to
            && cmd.validity.from.is_none_or(|f| f == r.validity.from)
            && !r.validity.is_over(now)
    }) {
        return Ok((same.clone(), false));
    }
    if represented_records.len() >= REPRESENTATIONS_PER_PERSON_MAX {
        return Err(ApplyError::ResourceExhausted(format!(
            "the person has {} representations, at most {REPRESENTATIONS_PER_PERSON_MAX} allowed",
            represented_records.len()
        )));
    }
    Ok((
        Representation {
            id: next_revision,
            representative: cmd.representative.clone(),
            represented: cmd.represented.clone(),
            kind: cmd.kind,
            areas: cmd.areas.clone(),
            validity,
            source: cmd.source,
            granted_by: cmd.granted_by.clone(),
            status: RepresentationStatus::Active,
            revoked_at: None,
            revoked_by: None,
            created_at: now,
            updated_at: now,
            create_revision: next_revision,
            mod_revision: next_revision,
        },
        true,
    ))
}

/// Applies a revoke. Unknown, or of another represented person: [`ApplyError::NotFound`].
/// Revoking a revoked record changes nothing (`false`).
pub fn apply_representation_revoke(
    existing: Option<&Representation>,
    cmd: &RepresentationRevoke,
    now: Timestamp,
    next_revision: u64,
) -> Result<(Representation, bool), ApplyError> {
    let r = match existing {
        Some(r) if r.represented == cmd.represented && r.id == cmd.representation_id => r,
        _ => {
            return Err(ApplyError::NotFound(format!(
                "representation {}",
                cmd.representation_id
            )));
        }
    };
    if r.status == RepresentationStatus::Revoked {
        return Ok((r.clone(), false));
    }
    debug_assert!(r.mod_revision < next_revision, "revisions only grow");
    Ok((
        Representation {
            status: RepresentationStatus::Revoked,
            revoked_at: Some(now),
            revoked_by: Some(cmd.revoked_by.clone()),
            updated_at: now,
            mod_revision: next_revision,
            ..r.clone()
        },
        true,
    ))
}

/// "Whom can A represent?": the records naming `representative` that give anything at `t`,
/// by id.
pub fn whom_can_represent<'a>(
    records: &'a [Representation],
    representative: &NationalId,
    t: Timestamp,
    policy: &RepresentationPolicy,
) -> Vec<&'a Representation> {
    let mut out: Vec<&Representation> = records
        .iter()
        .filter(|r| r.representative == *representative && r.is_effective(t, policy))
        .collect();
    out.sort_by_key(|r| r.id);
    out
}

/// "Who can represent B?": the records naming `represented` that give anything at `t`, by id.
pub fn who_can_represent<'a>(
    records: &'a [Representation],
    represented: &NationalId,
    t: Timestamp,
    policy: &RepresentationPolicy,
) -> Vec<&'a Representation> {
    let mut out: Vec<&Representation> = records
        .iter()
        .filter(|r| r.represented == *represented && r.is_effective(t, policy))
        .collect();
    out.sort_by_key(|r| r.id);
    out
}

/// A validated check query: may `representative` act for `represented` in `area`?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepresentationQuery {
    /// Who wants to act.
    pub representative: NationalId,
    /// For whom.
    pub represented: NationalId,
    /// In which area (`*` = every area).
    pub area: Area,
}

impl RepresentationQuery {
    /// Validates a check query as sent by a caller.
    pub fn parse(
        representative: &str,
        represented: &str,
        area: &str,
    ) -> Result<Self, ValidationError> {
        Ok(RepresentationQuery {
            representative: parse_national_id("representative", representative)?,
            represented: parse_national_id("represented", represented)?,
            area: Area::parse("area", area)?,
        })
    }
}

/// The answer to a representation check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepresentationCheck {
    /// True when at least one record lets the representative act in the area.
    pub allowed: bool,
    /// The ids of those records (sorted).
    pub representation_ids: Vec<u64>,
    /// Why, for a human.
    pub reason: String,
}

/// May `a` act for `b` in `area` at `t` under `policy`?
pub fn check(
    records: &[Representation],
    a: &NationalId,
    b: &NationalId,
    area: &Area,
    t: Timestamp,
    policy: &RepresentationPolicy,
) -> RepresentationCheck {
    let mut ids = Vec::new();
    let mut refusals = Vec::new();
    for r in records
        .iter()
        .filter(|r| r.representative == *a && r.represented == *b)
    {
        match r.covers(area, t, policy) {
            Ok(()) => ids.push(r.id),
            Err(reason) => refusals.push(reason),
        }
    }
    ids.sort_unstable();
    let allowed = !ids.is_empty();
    let reason = if allowed {
        format!("may act in area {area} by representation {ids:?}")
    } else if refusals.is_empty() {
        "no representation between these persons".to_owned()
    } else {
        refusals.join("; ")
    };
    RepresentationCheck {
        allowed,
        representation_ids: ids,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::fixtures::{day, ok, person, person_born};
    use crate::ids::testing::arb_national_id;
    use chrono::Datelike;
    use proptest::prelude::*;

    fn areas(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn parental(parent: &NationalId, child: &NationalId, a: &[String]) -> RepresentationGrant {
        ok(RepresentationGrant::parse(&RepresentationInput {
            representative: parent.as_str(),
            represented: child.as_str(),
            kind: "parental_responsibility",
            areas: a,
            source: "population_register",
            granted_by_kind: "system",
            granted_by: "folkeregisteret",
            ..Default::default()
        }))
    }

    fn attorney(a: &NationalId, b: &NationalId, ar: &[String]) -> RepresentationGrant {
        ok(RepresentationGrant::parse(&RepresentationInput {
            representative: a.as_str(),
            represented: b.as_str(),
            kind: "power_of_attorney",
            areas: ar,
            source: "patient_granted",
            granted_by_kind: "citizen",
            granted_by: b.as_str(),
            ..Default::default()
        }))
    }

    /// Midnight UTC on a date.
    fn on(y: i32, m: u32, d: u32) -> Timestamp {
        let date = NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
        Timestamp(
            date.and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc()
                .timestamp_millis(),
        )
    }

    fn area(s: &str) -> Area {
        ok(Area::parse("area", s))
    }

    #[test]
    fn grant_revoke_revoke_again() {
        let (a, b) = (person(0), person(1));
        let all = areas(&["*"]);
        let (r, changed) = ok(apply_representation_grant(
            &[],
            &attorney(&a, &b, &all),
            day(1),
            4,
        ));
        assert!(changed);
        assert_eq!((r.id, r.status), (4, RepresentationStatus::Active));
        let (same, changed) = ok(apply_representation_grant(
            std::slice::from_ref(&r),
            &attorney(&a, &b, &all),
            day(2),
            5,
        ));
        assert!(!changed);
        assert_eq!(same, r);
        let rev = ok(RepresentationRevoke::parse(
            b.as_str(),
            4,
            "citizen",
            b.as_str(),
        ));
        let (x, changed) = ok(apply_representation_revoke(Some(&r), &rev, day(3), 6));
        assert!(changed);
        assert_eq!(
            (x.status, x.revoked_at),
            (RepresentationStatus::Revoked, Some(day(3)))
        );
        let (y, changed) = ok(apply_representation_revoke(Some(&x), &rev, day(4), 7));
        assert!(!changed);
        assert_eq!(y, x);
        assert!(!check(&[x], &a, &b, &area("health"), day(4), &Default::default()).allowed);
        assert!(matches!(
            apply_representation_revoke(None, &rev, day(3), 6),
            Err(ApplyError::NotFound(_))
        ));
        let foreign = ok(RepresentationRevoke::parse(
            a.as_str(),
            4,
            "citizen",
            a.as_str(),
        ));
        assert!(matches!(
            apply_representation_revoke(Some(&r), &foreign, day(3), 6),
            Err(ApplyError::NotFound(_))
        ));
        let many = vec![r.clone(); REPRESENTATIONS_PER_PERSON_MAX];
        let other = attorney(&person(2), &b, &all);
        assert!(matches!(
            apply_representation_grant(&many, &other, day(1), 9),
            Err(ApplyError::ResourceExhausted(_))
        ));
    }

    #[test]
    fn areas_and_queries() {
        let (a, b, c) = (person(0), person(1), person(2));
        let policy = RepresentationPolicy::default();
        let (r1, _) = ok(apply_representation_grant(
            &[],
            &attorney(&a, &b, &areas(&["Health", "prescriptions"])),
            day(1),
            2,
        ));
        let (r2, _) = ok(apply_representation_grant(
            &[],
            &attorney(&c, &b, &areas(&["*"])),
            day(1),
            3,
        ));
        let all = vec![r1.clone(), r2.clone()];
        assert!(check(&all, &a, &b, &area("health"), day(2), &policy).allowed);
        let no = check(&all, &a, &b, &area("journal"), day(2), &policy);
        assert!(!no.allowed);
        assert!(no.reason.contains("does not include"), "{}", no.reason);
        assert!(!check(&all, &a, &b, &area("*"), day(2), &policy).allowed);
        let yes = check(&all, &c, &b, &area("*"), day(2), &policy);
        assert_eq!((yes.allowed, yes.representation_ids), (true, vec![3]));
        assert!(!check(&all, &b, &a, &area("health"), day(2), &policy).allowed);
        assert_eq!(whom_can_represent(&all, &a, day(2), &policy), vec![&r1]);
        assert_eq!(who_can_represent(&all, &b, day(2), &policy), vec![&r1, &r2]);
        assert!(who_can_represent(&all, &a, day(2), &policy).is_empty());
        // Before the grant took effect.
        assert!(!check(&all, &a, &b, &area("health"), day(0), &policy).allowed);
    }

    #[test]
    fn parental_age_bands() {
        let parent = person(0);
        let child = person_born(2014, 6, 15, 0);
        let policy = RepresentationPolicy::default();
        let (r, _) = ok(apply_representation_grant(
            &[],
            &parental(&parent, &child, &areas(&["*"])),
            on(2020, 1, 1),
            2,
        ));
        let recs = std::slice::from_ref(&r);
        // Age 11: everything.
        assert!(
            check(
                recs,
                &parent,
                &child,
                &area("journal"),
                on(2026, 6, 14),
                &policy
            )
            .allowed
        );
        // Turns 12 on 2026-06-15: only the limited set.
        let t12 = on(2026, 6, 15);
        assert!(!check(recs, &parent, &child, &area("journal"), t12, &policy).allowed);
        assert!(check(recs, &parent, &child, &area("vaccinations"), t12, &policy).allowed);
        assert!(!check(recs, &parent, &child, &area("*"), t12, &policy).allowed);
        assert_eq!(
            r.areas_at(t12, &policy),
            vec![
                area("administrative"),
                area("appointments"),
                area("vaccinations")
            ]
        );
        // Day before 16: still limited; on the 16th birthday: nothing.
        assert!(
            check(
                recs,
                &parent,
                &child,
                &area("appointments"),
                on(2030, 6, 14),
                &policy
            )
            .allowed
        );
        let t16 = on(2030, 6, 15);
        let no = check(recs, &parent, &child, &area("appointments"), t16, &policy);
        assert!(!no.allowed);
        assert!(no.reason.contains("ends at age 16"), "{}", no.reason);
        assert!(whom_can_represent(recs, &parent, t16, &policy).is_empty());
        assert!(who_can_represent(recs, &child, t16, &policy).is_empty());
        assert_eq!(whom_can_represent(recs, &parent, t12, &policy), vec![&r]);
        // Configurable.
        let strict = RepresentationPolicy {
            parental_full_below_age: 10,
            parental_ends_at_age: 13,
            parental_limited_areas: vec!["appointments".into()],
        };
        assert!(ok(strict.validate().map(|_| true)));
        assert!(!check(recs, &parent, &child, &area("vaccinations"), t12, &strict).allowed);
        assert!(check(recs, &parent, &child, &area("appointments"), t12, &strict).allowed);
        // A record narrower than the limited set stays narrow.
        let (narrow, _) = ok(apply_representation_grant(
            &[],
            &parental(&parent, &child, &areas(&["appointments", "journal"])),
            on(2020, 1, 1),
            3,
        ));
        assert_eq!(narrow.areas_at(t12, &policy), vec![area("appointments")]);
        assert!(narrow.covers(&area("vaccinations"), t12, &policy).is_err());
    }

    #[test]
    fn policy_validation() {
        assert!(RepresentationPolicy::default().validate().is_ok());
        let bad = RepresentationPolicy {
            parental_full_below_age: 17,
            ..Default::default()
        };
        assert_eq!(
            bad.validate().err().map(|e| e.field),
            Some("parental_full_below_age".into())
        );
        let bad = RepresentationPolicy {
            parental_limited_areas: vec!["ok".into(), "not ok".into()],
            ..Default::default()
        };
        assert_eq!(
            bad.validate().err().map(|e| e.field),
            Some("parental_limited_areas[1]".into())
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let (a, b) = (person(0), person(1));
        let ok_areas = areas(&["health"]);
        let too_many: Vec<String> = (0..=AREAS_PER_REPRESENTATION_MAX)
            .map(|i| format!("a{i}"))
            .collect();
        let bad_area = areas(&["health", "a*"]);
        let base = RepresentationInput {
            representative: a.as_str(),
            represented: b.as_str(),
            kind: "power_of_attorney",
            areas: &ok_areas,
            source: "patient_granted",
            granted_by_kind: "citizen",
            granted_by: b.as_str(),
            ..Default::default()
        };
        assert!(RepresentationGrant::parse(&base).is_ok());
        let cases: Vec<(RepresentationInput<'_>, &str)> = vec![
            (
                RepresentationInput {
                    representative: "x",
                    ..base
                },
                "representative",
            ),
            (
                RepresentationInput {
                    represented: "",
                    ..base
                },
                "represented",
            ),
            (
                RepresentationInput {
                    represented: a.as_str(),
                    ..base
                },
                "represented",
            ),
            (
                RepresentationInput {
                    kind: "parent",
                    ..base
                },
                "kind",
            ),
            (RepresentationInput { areas: &[], ..base }, "areas"),
            (
                RepresentationInput {
                    areas: &too_many,
                    ..base
                },
                "areas",
            ),
            (
                RepresentationInput {
                    areas: &bad_area,
                    ..base
                },
                "areas[1]",
            ),
            (
                RepresentationInput {
                    valid_from: "x",
                    ..base
                },
                "valid_from",
            ),
            (
                RepresentationInput {
                    valid_from: "2027-01-01T00:00:00Z",
                    valid_to: "2026-01-01T00:00:00Z",
                    ..base
                },
                "valid_to",
            ),
            (
                RepresentationInput {
                    source: "register",
                    ..base
                },
                "source",
            ),
            (
                RepresentationInput {
                    source: "population_register",
                    ..base
                },
                "source",
            ),
            (
                RepresentationInput {
                    kind: "parental_responsibility",
                    ..base
                },
                "source",
            ),
            (
                RepresentationInput {
                    granted_by_kind: "personnel",
                    granted_by: "1",
                    ..base
                },
                "granted_by_kind",
            ),
            (
                RepresentationInput {
                    granted_by: "1",
                    ..base
                },
                "granted_by",
            ),
        ];
        for (i, field) in cases {
            match RepresentationGrant::parse(&i) {
                Err(e) => assert_eq!(e.field, field, "{e}"),
                Ok(_) => panic!("accepted bad input for {field}"),
            }
        }
        let e = RepresentationRevoke::parse(b.as_str(), 0, "citizen", b.as_str()).err();
        assert_eq!(e.map(|e| e.field), Some("representation_id".into()));
        let e = RepresentationQuery::parse(a.as_str(), b.as_str(), "").err();
        assert_eq!(e.map(|e| e.field), Some("area".into()));
    }

    proptest! {
        /// Parental responsibility never lets a parent act at or after the end age, whatever
        /// the areas, the policy's ages or limited set.
        #[test]
        fn parental_never_allows_at_or_after_end_age(
            parent in arb_national_id(),
            child in arb_national_id(),
            ends in 1u32..30,
            full_gap in 0u32..30,
            years_after in 0i64..40,
            days_after in 0i64..366,
            asked in prop_oneof![Just("*".to_owned()), Just("health".to_owned()), Just("appointments".to_owned()), Just("vaccinations".to_owned()), "[a-z]{1,8}"],
            granted in proptest::collection::vec(prop_oneof![Just("*".to_owned()), "[a-z]{1,8}"], 1..4),
            limited in proptest::collection::vec("[a-z]{1,8}", 0..4),
        ) {
            prop_assume!(parent != child);
            let policy = RepresentationPolicy {
                parental_full_below_age: ends.saturating_sub(full_gap),
                parental_ends_at_age: ends,
                parental_limited_areas: limited.into_iter().chain([asked.clone()]).collect(),
            };
            let birth = child.birth_date();
            // The end birthday (29 February counts as 1 March in other years).
            let year = birth.year() + ends as i32;
            let end_day = NaiveDate::from_ymd_opt(year, birth.month(), birth.day())
                .or_else(|| NaiveDate::from_ymd_opt(year, 3, 1));
            let Some(end_day) = end_day else { return Ok(()) };
            let Some(t_day) = end_day.checked_add_days(chrono::Days::new((years_after * 365 + days_after) as u64)) else { return Ok(()) };
            let t = Timestamp(t_day.and_hms_opt(12, 0, 0).unwrap_or_default().and_utc().timestamp_millis());
            prop_assert!(child.age_on(t_day) >= ends);
            let grant = match RepresentationGrant::parse(&RepresentationInput {
                representative: parent.as_str(),
                represented: child.as_str(),
                kind: "parental_responsibility",
                areas: &granted,
                source: "population_register",
                granted_by_kind: "system",
                granted_by: "folkeregisteret",
                ..Default::default()
            }) { Ok(g) => g, Err(e) => return Err(TestCaseError::fail(e.to_string())) };
            let (r, _) = match apply_representation_grant(&[], &grant, Timestamp(i64::MIN / 4), 1) {
                Ok(x) => x, Err(e) => return Err(TestCaseError::fail(e.to_string())),
            };
            let recs = std::slice::from_ref(&r);
            let Ok(asked) = Area::parse("area", &asked) else { return Ok(()) };
            prop_assert!(!check(recs, &parent, &child, &asked, t, &policy).allowed);
            prop_assert!(r.areas_at(t, &policy).is_empty());
            prop_assert!(whom_can_represent(recs, &parent, t, &policy).is_empty());
            prop_assert!(who_can_represent(recs, &child, t, &policy).is_empty());
        }
    }
}
