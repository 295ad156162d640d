//! Blocks (sperringer / tilgangsbegrensninger): a patient denies named personnel, a personnel
//! group or an organisation access to their records.
//!
//! A block's **level** says whether health personnel may pass it by emergency override
//! (helsepersonelloven §45, "required for responsible care"): an [`BlockLevel::Overridable`]
//! block (sperring) may be overridden with a justification, which is always audited and
//! notified to the patient; an [`BlockLevel::Absolute`] block (blokkering) is never passed.
//! Its **scope** is either every system under the patient records act (the top level) or one
//! national e-health service, optionally one element of it (element-level blocks in local
//! systems are those systems' own business).
//!
//! Blocks get a server-assigned id (the revision that created them) and are never deleted: a
//! revoke marks them revoked, so the history stays auditable. The access decision
//! ([`crate::access::decide`]) reads them through [`Block::is_in_force`],
//! [`Block::applies_to_caller`] and [`BlockScope::covers`].

use serde::{Deserialize, Serialize};

use crate::error::{ApplyError, ValidationError};
use crate::fields::{
    Actor, ElementId, GroupId, ServiceName, Validity, ValidityInput, parse_hpr, parse_person_actor,
    parse_record_id, parse_text, text_enum,
};
use crate::ids::{HprNumber, NationalId, OrgNumber};
use crate::limits::{BLOCKS_PER_PATIENT_MAX, REASON_BYTES_MAX};
use crate::locator::{parse_national_id, parse_org_number};
use crate::time::Timestamp;

text_enum! {
    /// Whether an emergency override may pass a block.
    pub enum BlockLevel {
        /// Sperring: denies, but health personnel may override it under §45 with a
        /// justification (audited, patient notified).
        Overridable => "overridable",
        /// Blokkering: denies, and no override passes it.
        Absolute => "absolute",
    }
}

text_enum! {
    /// What kind of party a block targets (the `target_kind` field).
    pub enum BlockTargetKind {
        /// One health professional, by HPR number.
        Personnel => "personnel",
        /// A personnel group (profession or named group), by group id.
        Group => "group",
        /// An organisation, by org number.
        Organisation => "organisation",
    }
}

text_enum! {
    /// Whether a block is still in effect (before its validity period is considered).
    pub enum BlockStatus {
        /// Not revoked.
        Active => "active",
        /// Revoked; kept for history.
        Revoked => "revoked",
    }
}

text_enum! {
    /// A block's state at a given time, for listing (see [`Block::state_at`]).
    pub enum BlockState {
        /// Active and inside its validity period.
        InForce => "in_force",
        /// Active, but its validity period has not started.
        NotYetValid => "not_yet_valid",
        /// Active, but its validity period is over.
        Expired => "expired",
        /// Revoked.
        Revoked => "revoked",
    }
}

/// Who a block denies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BlockTarget {
    /// One health professional.
    Personnel(HprNumber),
    /// Everyone in a personnel group.
    Group(GroupId),
    /// Everyone acting for an organisation.
    Organisation(OrgNumber),
}

impl BlockTarget {
    /// Parses a target sent as `target_kind` and `target`.
    pub fn parse(kind: &str, target: &str) -> Result<Self, ValidationError> {
        Ok(match BlockTargetKind::parse("target_kind", kind)? {
            BlockTargetKind::Personnel => BlockTarget::Personnel(parse_hpr("target", target)?),
            BlockTargetKind::Group => BlockTarget::Group(GroupId::parse("target", target)?),
            BlockTargetKind::Organisation => {
                BlockTarget::Organisation(parse_org_number("target", target)?)
            }
        })
    }

    /// The target's kind.
    pub fn kind(&self) -> BlockTargetKind {
        match self {
            BlockTarget::Personnel(_) => BlockTargetKind::Personnel,
            BlockTarget::Group(_) => BlockTargetKind::Group,
            BlockTarget::Organisation(_) => BlockTargetKind::Organisation,
        }
    }

    /// The target's id as text.
    pub fn id_text(&self) -> String {
        match self {
            BlockTarget::Personnel(h) => h.to_string(),
            BlockTarget::Group(g) => g.as_str().to_owned(),
            BlockTarget::Organisation(o) => o.as_str().to_owned(),
        }
    }
}

/// What a block covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BlockScope {
    /// Every system under the patient records act (the top level).
    AllRecords,
    /// One national e-health service, or one element of it.
    Service {
        /// The service.
        service: ServiceName,
        /// The element inside it; `None` = the whole service.
        element: Option<ElementId>,
    },
}

/// How a block's scope meets an access to a service (see [`BlockScope::covers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeMatch {
    /// The access is inside the blocked scope: the block applies to it as a whole.
    Full,
    /// The access is to a whole service of which the block covers one element: the access
    /// may go ahead only without that element.
    Element(ElementId),
    /// The block does not concern this access.
    None,
}

impl BlockScope {
    /// Parses a scope sent as `scope_service` and `scope_element`: both empty = every system
    /// under the patient records act; a service alone = the whole service; both = one element.
    pub fn parse(service: &str, element: &str) -> Result<Self, ValidationError> {
        match (service.is_empty(), element.is_empty()) {
            (true, true) => Ok(BlockScope::AllRecords),
            (true, false) => Err(ValidationError::new(
                "scope_element",
                "needs scope_service (an element belongs to a service)",
            )),
            (false, _) => Ok(BlockScope::Service {
                service: ServiceName::parse("scope_service", service)?,
                element: if element.is_empty() {
                    None
                } else {
                    Some(ElementId::parse("scope_element", element)?)
                },
            }),
        }
    }

    /// How this scope meets an access to `service` (and to one `element` of it, if given).
    pub fn covers(&self, service: &ServiceName, element: Option<&ElementId>) -> ScopeMatch {
        match self {
            BlockScope::AllRecords => ScopeMatch::Full,
            BlockScope::Service { service: s, .. } if s != service => ScopeMatch::None,
            BlockScope::Service { element: None, .. } => ScopeMatch::Full,
            BlockScope::Service {
                element: Some(blocked),
                ..
            } => match element {
                None => ScopeMatch::Element(blocked.clone()),
                Some(e) if e == blocked => ScopeMatch::Full,
                Some(_) => ScopeMatch::None,
            },
        }
    }
}

/// Raw fields of a block add, exactly as a caller sends them (empty string = unset).
#[derive(Debug, Clone, Copy, Default)]
pub struct BlockAddInput<'a> {
    /// The patient's national id.
    pub patient: &'a str,
    /// `personnel`, `group` or `organisation`.
    pub target_kind: &'a str,
    /// HPR number, group id or org number.
    pub target: &'a str,
    /// `overridable` or `absolute`.
    pub level: &'a str,
    /// National service name; empty = every system under the patient records act.
    pub scope_service: &'a str,
    /// Element of the service; empty = the whole service.
    pub scope_element: &'a str,
    /// RFC 3339; empty = from when applied.
    pub valid_from: &'a str,
    /// RFC 3339; empty = until revoked.
    pub valid_to: &'a str,
    /// Free text, at most [`REASON_BYTES_MAX`] bytes; may be empty.
    pub reason: &'a str,
    /// `citizen` (the patient or a representative) or `personnel`.
    pub registered_by_kind: &'a str,
    /// National id or HPR number.
    pub registered_by: &'a str,
}

/// A validated block add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockAdd {
    /// The patient whose records are blocked.
    pub patient: NationalId,
    /// Who is denied.
    pub target: BlockTarget,
    /// Whether an emergency override may pass it.
    pub level: BlockLevel,
    /// What is blocked.
    pub scope: BlockScope,
    /// When it is in force.
    pub validity: ValidityInput,
    /// Why (free text, may be empty).
    pub reason: String,
    /// Who registered it: the patient, a representative (citizen) or personnel.
    pub registered_by: Actor,
}

impl BlockAdd {
    /// Validates a block add as sent by a caller.
    pub fn parse(input: &BlockAddInput<'_>) -> Result<Self, ValidationError> {
        let patient = parse_national_id("patient", input.patient)?;
        let target = BlockTarget::parse(input.target_kind, input.target)?;
        let level = BlockLevel::parse("level", input.level)?;
        let scope = BlockScope::parse(input.scope_service, input.scope_element)?;
        let validity = ValidityInput::parse(input.valid_from, input.valid_to)?;
        let reason = parse_text("reason", input.reason, REASON_BYTES_MAX)?;
        let registered_by = parse_person_actor(
            "registered_by",
            input.registered_by_kind,
            input.registered_by,
        )?;
        Ok(BlockAdd {
            patient,
            target,
            level,
            scope,
            validity,
            reason,
            registered_by,
        })
    }
}

/// A validated block revoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRevoke {
    /// The patient the block belongs to (a block of another patient is not found).
    pub patient: NationalId,
    /// The block's id.
    pub block_id: u64,
    /// Who revokes it.
    pub revoked_by: Actor,
}

impl BlockRevoke {
    /// Validates a revoke as sent by a caller (`revoked_by_kind`: `citizen` or `personnel`).
    pub fn parse(
        patient: &str,
        block_id: u64,
        revoked_by_kind: &str,
        revoked_by: &str,
    ) -> Result<Self, ValidationError> {
        Ok(BlockRevoke {
            patient: parse_national_id("patient", patient)?,
            block_id: parse_record_id("block_id", block_id)?,
            revoked_by: parse_person_actor("revoked_by", revoked_by_kind, revoked_by)?,
        })
    }
}

/// A stored block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Server-assigned id: the revision that created it.
    pub id: u64,
    /// The patient whose records are blocked.
    pub patient: NationalId,
    /// Who is denied.
    pub target: BlockTarget,
    /// Whether an emergency override may pass it.
    pub level: BlockLevel,
    /// What is blocked.
    pub scope: BlockScope,
    /// When it is in force.
    pub validity: Validity,
    /// Why (may be empty).
    pub reason: String,
    /// Who registered it.
    pub registered_by: Actor,
    /// Active or revoked.
    pub status: BlockStatus,
    /// When it was revoked (leader time).
    pub revoked_at: Option<Timestamp>,
    /// Who revoked it.
    pub revoked_by: Option<Actor>,
    /// When it was added (leader time).
    pub created_at: Timestamp,
    /// When it last changed (leader time).
    pub updated_at: Timestamp,
    /// Revision that created it (equals `id`).
    pub create_revision: u64,
    /// Revision that last changed it.
    pub mod_revision: u64,
}

impl Block {
    /// True when the block is active and `t` is inside its validity period.
    pub fn is_in_force(&self, t: Timestamp) -> bool {
        self.status == BlockStatus::Active && self.validity.contains(t)
    }

    /// The block's state at `t`.
    pub fn state_at(&self, t: Timestamp) -> BlockState {
        if self.status == BlockStatus::Revoked {
            BlockState::Revoked
        } else if t < self.validity.from {
            BlockState::NotYetValid
        } else if self.validity.is_over(t) {
            BlockState::Expired
        } else {
            BlockState::InForce
        }
    }

    /// True when the block targets the caller: the personnel, any of the groups, or the
    /// organisation. (Validity and status are not considered; see [`Block::is_in_force`].)
    pub fn applies_to_caller(
        &self,
        personnel: Option<&HprNumber>,
        org: Option<&OrgNumber>,
        groups: &[GroupId],
    ) -> bool {
        match &self.target {
            BlockTarget::Personnel(h) => personnel == Some(h),
            BlockTarget::Group(g) => groups.contains(g),
            BlockTarget::Organisation(o) => org == Some(o),
        }
    }
}

/// Applies a block add. `patient_blocks` are the patient's existing blocks (any status).
///
/// An active block with the same target, level, scope and validity (an unset start matching
/// any start) is returned unchanged (`false`): adding the same block twice does not create a
/// second one. A patient with [`BLOCKS_PER_PATIENT_MAX`] blocks gets
/// [`ApplyError::ResourceExhausted`]; a validity period already over gets
/// [`ApplyError::FailedPrecondition`].
pub fn apply_block_add(
    patient_blocks: &[Block],
    cmd: &BlockAdd,
    now: Timestamp,
    next_revision: u64,
) -> Result<(Block, bool), ApplyError> {
    let validity = cmd.validity.resolve(now)?;
    if let Some(same) = patient_blocks.iter().find(|b| {
        b.patient == cmd.patient
            && b.status == BlockStatus::Active
            && b.target == cmd.target
            && b.level == cmd.level
            && b.scope == cmd.scope
            && b.validity.to == validity.to
            && cmd.validity.from.is_none_or(|f| f == b.validity.from)
            && !b.validity.is_over(now)
    }) {
        return Ok((same.clone(), false));
    }
    if patient_blocks.len() >= BLOCKS_PER_PATIENT_MAX {
        return Err(ApplyError::ResourceExhausted(format!(
            "the patient has {} blocks, at most {BLOCKS_PER_PATIENT_MAX} allowed",
            patient_blocks.len()
        )));
    }
    debug_assert!(
        patient_blocks
            .iter()
            .all(|b| b.mod_revision < next_revision),
        "revisions only grow"
    );
    Ok((
        Block {
            id: next_revision,
            patient: cmd.patient.clone(),
            target: cmd.target.clone(),
            level: cmd.level,
            scope: cmd.scope.clone(),
            validity,
            reason: cmd.reason.clone(),
            registered_by: cmd.registered_by.clone(),
            status: BlockStatus::Active,
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

/// Applies a block revoke. Unknown block, or a block of another patient:
/// [`ApplyError::NotFound`]. Revoking a revoked block changes nothing (`false`).
pub fn apply_block_revoke(
    existing: Option<&Block>,
    cmd: &BlockRevoke,
    now: Timestamp,
    next_revision: u64,
) -> Result<(Block, bool), ApplyError> {
    let block = match existing {
        Some(b) if b.patient == cmd.patient && b.id == cmd.block_id => b,
        _ => return Err(ApplyError::NotFound(format!("block {}", cmd.block_id))),
    };
    if block.status == BlockStatus::Revoked {
        return Ok((block.clone(), false));
    }
    debug_assert!(block.mod_revision < next_revision, "revisions only grow");
    Ok((
        Block {
            status: BlockStatus::Revoked,
            revoked_at: Some(now),
            revoked_by: Some(cmd.revoked_by.clone()),
            updated_at: now,
            mod_revision: next_revision,
            ..block.clone()
        },
        true,
    ))
}

/// The patient's blocks for listing, oldest first: all of them, or only those in force at
/// `t` when `in_force_only`.
pub fn list_blocks(blocks: &[Block], in_force_only: bool, t: Timestamp) -> Vec<&Block> {
    let mut out: Vec<&Block> = blocks
        .iter()
        .filter(|b| !in_force_only || b.is_in_force(t))
        .collect();
    out.sort_by_key(|b| b.id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::fixtures::{day, ok, org, person};

    fn input<'a>(patient: &'a str, target: &'a str) -> BlockAddInput<'a> {
        BlockAddInput {
            patient,
            target_kind: "personnel",
            target,
            level: "overridable",
            registered_by_kind: "citizen",
            registered_by: patient,
            ..Default::default()
        }
    }

    fn add(patient: &str, target: &str) -> BlockAdd {
        ok(BlockAdd::parse(&input(patient, target)))
    }

    #[test]
    fn add_then_revoke_then_revoke_again() {
        let p = person(0);
        let cmd = add(p.as_str(), "1234");
        let (b, changed) = ok(apply_block_add(&[], &cmd, day(1), 7));
        assert!(changed);
        assert_eq!((b.id, b.create_revision, b.mod_revision), (7, 7, 7));
        assert_eq!(
            b.validity,
            Validity {
                from: day(1),
                to: None
            }
        );
        assert_eq!(b.state_at(day(2)), BlockState::InForce);
        assert_eq!(b.registered_by, Actor::Citizen(p.clone()));

        let revoke = ok(BlockRevoke::parse(p.as_str(), 7, "personnel", "99"));
        let (r, changed) = ok(apply_block_revoke(Some(&b), &revoke, day(3), 9));
        assert!(changed);
        assert_eq!(r.status, BlockStatus::Revoked);
        assert_eq!(
            (r.revoked_at, r.mod_revision, r.create_revision),
            (Some(day(3)), 9, 7)
        );
        assert!(!r.is_in_force(day(4)));
        assert_eq!(r.state_at(day(4)), BlockState::Revoked);

        let (again, changed) = ok(apply_block_revoke(Some(&r), &revoke, day(5), 10));
        assert!(!changed);
        assert_eq!(again, r);
    }

    #[test]
    fn revoke_unknown_or_foreign_is_not_found() {
        let p = person(0);
        let (b, _) = ok(apply_block_add(&[], &add(p.as_str(), "1234"), day(1), 7));
        let revoke = ok(BlockRevoke::parse(p.as_str(), 7, "citizen", p.as_str()));
        assert!(matches!(
            apply_block_revoke(None, &revoke, day(2), 8),
            Err(ApplyError::NotFound(_))
        ));
        let other = person(1);
        let foreign = ok(BlockRevoke::parse(
            other.as_str(),
            7,
            "citizen",
            other.as_str(),
        ));
        assert!(matches!(
            apply_block_revoke(Some(&b), &foreign, day(2), 8),
            Err(ApplyError::NotFound(_))
        ));
        let wrong_id = ok(BlockRevoke::parse(p.as_str(), 8, "citizen", p.as_str()));
        assert!(matches!(
            apply_block_revoke(Some(&b), &wrong_id, day(2), 8),
            Err(ApplyError::NotFound(_))
        ));
    }

    #[test]
    fn adding_the_same_block_twice_is_no_change() {
        let p = person(0);
        let cmd = add(p.as_str(), "1234");
        let (b, _) = ok(apply_block_add(&[], &cmd, day(1), 7));
        let (again, changed) = ok(apply_block_add(std::slice::from_ref(&b), &cmd, day(2), 8));
        assert!(!changed);
        assert_eq!(again, b);
        // A different level is a different block.
        let mut absolute = cmd.clone();
        absolute.level = BlockLevel::Absolute;
        let (c, changed) = ok(apply_block_add(
            std::slice::from_ref(&b),
            &absolute,
            day(2),
            8,
        ));
        assert!(changed);
        assert_eq!(c.id, 8);
        // After revoking, adding again creates a new block.
        let revoke = ok(BlockRevoke::parse(p.as_str(), 7, "citizen", p.as_str()));
        let (r, _) = ok(apply_block_revoke(Some(&b), &revoke, day(3), 9));
        let (d, changed) = ok(apply_block_add(&[r], &cmd, day(4), 10));
        assert!(changed);
        assert_eq!(d.id, 10);
    }

    #[test]
    fn validity_window_and_limits() {
        let p = person(0);
        let mut i = input(p.as_str(), "1234");
        i.valid_from = "2026-01-03T00:00:00Z";
        i.valid_to = "2026-01-05T00:00:00Z";
        let cmd = ok(BlockAdd::parse(&i));
        let (b, _) = ok(apply_block_add(&[], &cmd, day(1), 7));
        assert_eq!(b.state_at(day(2)), BlockState::NotYetValid);
        assert!(!b.is_in_force(day(2)));
        assert!(b.is_in_force(day(3)));
        assert!(b.is_in_force(day(4)));
        assert!(!b.is_in_force(day(5)));
        assert_eq!(b.state_at(day(5)), BlockState::Expired);
        // Already over when applied.
        assert!(matches!(
            apply_block_add(&[], &cmd, day(6), 8),
            Err(ApplyError::FailedPrecondition(_))
        ));
        // Per-patient bound.
        let many: Vec<Block> = (0..BLOCKS_PER_PATIENT_MAX as u64)
            .map(|n| Block {
                id: n + 1,
                status: BlockStatus::Revoked,
                ..b.clone()
            })
            .collect();
        assert!(matches!(
            apply_block_add(&many, &add(p.as_str(), "55"), day(1), 5_000),
            Err(ApplyError::ResourceExhausted(_))
        ));
        assert_eq!(list_blocks(&many, true, day(3)).len(), 0);
        assert_eq!(
            list_blocks(&many, false, day(3)).len(),
            BLOCKS_PER_PATIENT_MAX
        );
    }

    #[test]
    fn targets_and_scopes_match() {
        let p = person(0);
        let o = org(0);
        let mut i = input(p.as_str(), o.as_str());
        i.target_kind = "organisation";
        i.scope_service = "Kjernejournal";
        i.scope_element = "doc-7";
        let (b, _) = ok(apply_block_add(&[], &ok(BlockAdd::parse(&i)), day(1), 3));
        assert!(b.applies_to_caller(None, Some(&o), &[]));
        assert!(!b.applies_to_caller(None, Some(&org(1)), &[]));
        let kj = ok(ServiceName::parse("service", "kjernejournal"));
        let rf = ok(ServiceName::parse("service", "reseptformidleren"));
        let doc7 = ok(ElementId::parse("element", "doc-7"));
        let doc8 = ok(ElementId::parse("element", "doc-8"));
        assert_eq!(b.scope.covers(&kj, Some(&doc7)), ScopeMatch::Full);
        assert_eq!(b.scope.covers(&kj, Some(&doc8)), ScopeMatch::None);
        assert_eq!(b.scope.covers(&kj, None), ScopeMatch::Element(doc7.clone()));
        assert_eq!(b.scope.covers(&rf, None), ScopeMatch::None);
        assert_eq!(
            BlockScope::AllRecords.covers(&rf, Some(&doc8)),
            ScopeMatch::Full
        );
        let whole = ok(BlockScope::parse("kjernejournal", ""));
        assert_eq!(whole.covers(&kj, Some(&doc8)), ScopeMatch::Full);

        let g = ok(GroupId::parse("g", "profession:lege"));
        let mut i = input(p.as_str(), "Profession:Lege");
        i.target_kind = "group";
        let (gb, _) = ok(apply_block_add(&[], &ok(BlockAdd::parse(&i)), day(1), 4));
        assert!(gb.applies_to_caller(None, None, std::slice::from_ref(&g)));
        assert!(!gb.applies_to_caller(None, None, &[]));
        let h = ok(parse_hpr("h", "1234"));
        let (hb, _) = ok(apply_block_add(&[], &add(p.as_str(), "1234"), day(1), 5));
        assert!(hb.applies_to_caller(Some(&h), None, &[]));
        assert!(!hb.applies_to_caller(None, Some(&o), &[g]));
    }

    #[test]
    fn bad_input_names_the_field() {
        let p = person(0);
        let long_reason = "x".repeat(REASON_BYTES_MAX + 1);
        let long_service = "s".repeat(65);
        let base = input(p.as_str(), "1234");
        let cases: Vec<(BlockAddInput<'_>, &str)> = vec![
            (
                BlockAddInput {
                    patient: "123",
                    ..base
                },
                "patient",
            ),
            (
                BlockAddInput {
                    target_kind: "person",
                    ..base
                },
                "target_kind",
            ),
            (
                BlockAddInput {
                    target: "12a",
                    ..base
                },
                "target",
            ),
            (
                BlockAddInput {
                    target: "1234567890",
                    ..base
                },
                "target",
            ),
            (
                BlockAddInput {
                    target_kind: "organisation",
                    target: "123456789",
                    ..base
                },
                "target",
            ),
            (
                BlockAddInput {
                    target_kind: "group",
                    target: "a b",
                    ..base
                },
                "target",
            ),
            (
                BlockAddInput {
                    level: "sperring",
                    ..base
                },
                "level",
            ),
            (BlockAddInput { level: "", ..base }, "level"),
            (
                BlockAddInput {
                    scope_service: &long_service,
                    ..base
                },
                "scope_service",
            ),
            (
                BlockAddInput {
                    scope_element: "doc-1",
                    ..base
                },
                "scope_element",
            ),
            (
                BlockAddInput {
                    scope_service: "kj",
                    scope_element: "a\nb",
                    ..base
                },
                "scope_element",
            ),
            (
                BlockAddInput {
                    valid_from: "2026-13-01T00:00:00Z",
                    ..base
                },
                "valid_from",
            ),
            (
                BlockAddInput {
                    valid_from: "2026-02-01T00:00:00Z",
                    valid_to: "2026-01-01T00:00:00Z",
                    ..base
                },
                "valid_to",
            ),
            (
                BlockAddInput {
                    reason: &long_reason,
                    ..base
                },
                "reason",
            ),
            (
                BlockAddInput {
                    reason: "a\u{0}b",
                    ..base
                },
                "reason",
            ),
            (
                BlockAddInput {
                    registered_by_kind: "client",
                    ..base
                },
                "registered_by_kind",
            ),
            (
                BlockAddInput {
                    registered_by_kind: "admin",
                    ..base
                },
                "registered_by_kind",
            ),
            (
                BlockAddInput {
                    registered_by: "1",
                    ..base
                },
                "registered_by",
            ),
        ];
        for (i, field) in cases {
            match BlockAdd::parse(&i) {
                Err(e) => assert_eq!(e.field, field, "{e}"),
                Ok(_) => panic!("accepted bad input for {field}"),
            }
        }
        let e = BlockRevoke::parse(p.as_str(), 0, "citizen", p.as_str()).err();
        assert_eq!(e.map(|e| e.field), Some("block_id".to_owned()));
        let e = BlockRevoke::parse(p.as_str(), 1, "system", "sweeper").err();
        assert_eq!(e.map(|e| e.field), Some("revoked_by_kind".to_owned()));
    }

    #[test]
    fn enum_text_round_trips() {
        for l in BlockLevel::ALL {
            assert_eq!(BlockLevel::parse("level", l.as_str()), Ok(*l));
        }
        for k in BlockTargetKind::ALL {
            assert_eq!(BlockTargetKind::parse("target_kind", k.as_str()), Ok(*k));
        }
    }

    #[test]
    fn serde_round_trip() {
        let p = person(0);
        let (b, _) = ok(apply_block_add(&[], &add(p.as_str(), "1234"), day(1), 7));
        let json = ok(serde_json::to_string(&b));
        let back: Block = ok(serde_json::from_str(&json));
        assert_eq!(back, b);
    }
}
