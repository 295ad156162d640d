//! Reservations (reservasjoner): a patient opts out of a named national e-health service
//! (e.g. `kjernejournal`, `e-resept`) that may otherwise process their data without consent.
//!
//! Keyed by `(patient, service)`: there is at most one reservation record per pair. Reserve is
//! an idempotent upsert (reserving again changes nothing; reserving after a withdrawal
//! reactivates the same record), withdraw marks the record withdrawn (kept for history). An
//! active reservation denies every access to that service for the patient, and no emergency
//! override passes it (see [`crate::access::decide`]).

use serde::{Deserialize, Serialize};

use crate::error::{ApplyError, ValidationError};
use crate::fields::{Actor, ServiceName, parse_person_actor, parse_text, text_enum};
use crate::ids::NationalId;
use crate::limits::REASON_BYTES_MAX;
use crate::locator::parse_national_id;
use crate::time::Timestamp;

text_enum! {
    /// Whether a reservation is in effect.
    pub enum ReservationStatus {
        /// The patient has opted out of the service.
        Active => "active",
        /// The opt-out was withdrawn; kept for history.
        Withdrawn => "withdrawn",
    }
}

/// Identifies one reservation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReservationKey {
    /// The patient.
    pub patient: NationalId,
    /// The national service opted out of.
    pub service: ServiceName,
}

impl ReservationKey {
    /// Validates `patient` and `service` as sent by a caller (also the `check` query).
    pub fn parse(patient: &str, service: &str) -> Result<Self, ValidationError> {
        Ok(ReservationKey {
            patient: parse_national_id("patient", patient)?,
            service: ServiceName::parse("service", service)?,
        })
    }
}

/// A validated reserve (opt out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationReserve {
    /// Which reservation.
    pub key: ReservationKey,
    /// Why (free text, may be empty).
    pub reason: String,
    /// Who registered it: the patient, a representative (citizen) or personnel.
    pub registered_by: Actor,
}

impl ReservationReserve {
    /// Validates a reserve as sent by a caller (`registered_by_kind`: `citizen` or
    /// `personnel`).
    pub fn parse(
        patient: &str,
        service: &str,
        reason: &str,
        registered_by_kind: &str,
        registered_by: &str,
    ) -> Result<Self, ValidationError> {
        Ok(ReservationReserve {
            key: ReservationKey::parse(patient, service)?,
            reason: parse_text("reason", reason, REASON_BYTES_MAX)?,
            registered_by: parse_person_actor("registered_by", registered_by_kind, registered_by)?,
        })
    }
}

/// A validated withdraw (opt back in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationWithdraw {
    /// Which reservation.
    pub key: ReservationKey,
    /// Who withdraws it.
    pub withdrawn_by: Actor,
}

impl ReservationWithdraw {
    /// Validates a withdraw as sent by a caller (`withdrawn_by_kind`: `citizen` or
    /// `personnel`).
    pub fn parse(
        patient: &str,
        service: &str,
        withdrawn_by_kind: &str,
        withdrawn_by: &str,
    ) -> Result<Self, ValidationError> {
        Ok(ReservationWithdraw {
            key: ReservationKey::parse(patient, service)?,
            withdrawn_by: parse_person_actor("withdrawn_by", withdrawn_by_kind, withdrawn_by)?,
        })
    }
}

/// A stored reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Server-assigned id: the revision that first created the record.
    pub id: u64,
    /// Which reservation.
    pub key: ReservationKey,
    /// Why (may be empty); from the latest reserve.
    pub reason: String,
    /// Active or withdrawn.
    pub status: ReservationStatus,
    /// Who registered it (the latest reserve).
    pub registered_by: Actor,
    /// When the latest reserve took effect (leader time).
    pub reserved_at: Timestamp,
    /// Who withdrew it, while withdrawn.
    pub withdrawn_by: Option<Actor>,
    /// When it was withdrawn, while withdrawn.
    pub withdrawn_at: Option<Timestamp>,
    /// When the record was created (leader time).
    pub created_at: Timestamp,
    /// When it last changed (leader time).
    pub updated_at: Timestamp,
    /// Revision that created the record (equals `id`).
    pub create_revision: u64,
    /// Revision that last changed it.
    pub mod_revision: u64,
}

impl Reservation {
    /// True while the patient is opted out.
    pub fn is_active(&self) -> bool {
        self.status == ReservationStatus::Active
    }
}

/// Applies a reserve. An active reservation is returned unchanged (`false`); a withdrawn one is
/// reactivated under the same id. `existing` must be the record stored under `cmd.key`
/// (anything else is [`ApplyError::Conflict`]).
pub fn apply_reserve(
    existing: Option<&Reservation>,
    cmd: &ReservationReserve,
    now: Timestamp,
    next_revision: u64,
) -> Result<(Reservation, bool), ApplyError> {
    match existing {
        Some(r) if r.key != cmd.key => Err(ApplyError::Conflict(
            "stored reservation has a different key".into(),
        )),
        Some(r) if r.is_active() => Ok((r.clone(), false)),
        Some(r) => {
            debug_assert!(r.mod_revision < next_revision, "revisions only grow");
            Ok((
                Reservation {
                    reason: cmd.reason.clone(),
                    status: ReservationStatus::Active,
                    registered_by: cmd.registered_by.clone(),
                    reserved_at: now,
                    withdrawn_by: None,
                    withdrawn_at: None,
                    updated_at: now,
                    mod_revision: next_revision,
                    ..r.clone()
                },
                true,
            ))
        }
        None => Ok((
            Reservation {
                id: next_revision,
                key: cmd.key.clone(),
                reason: cmd.reason.clone(),
                status: ReservationStatus::Active,
                registered_by: cmd.registered_by.clone(),
                reserved_at: now,
                withdrawn_by: None,
                withdrawn_at: None,
                created_at: now,
                updated_at: now,
                create_revision: next_revision,
                mod_revision: next_revision,
            },
            true,
        )),
    }
}

/// Applies a withdraw. Unknown reservation (or one under another key):
/// [`ApplyError::NotFound`]; withdrawing a withdrawn reservation changes nothing (`false`).
pub fn apply_reservation_withdraw(
    existing: Option<&Reservation>,
    cmd: &ReservationWithdraw,
    now: Timestamp,
    next_revision: u64,
) -> Result<(Reservation, bool), ApplyError> {
    let r = match existing {
        Some(r) if r.key == cmd.key => r,
        _ => {
            return Err(ApplyError::NotFound(format!(
                "reservation for service {}",
                cmd.key.service
            )));
        }
    };
    if !r.is_active() {
        return Ok((r.clone(), false));
    }
    debug_assert!(r.mod_revision < next_revision, "revisions only grow");
    Ok((
        Reservation {
            status: ReservationStatus::Withdrawn,
            withdrawn_by: Some(cmd.withdrawn_by.clone()),
            withdrawn_at: Some(now),
            updated_at: now,
            mod_revision: next_revision,
            ..r.clone()
        },
        true,
    ))
}

/// The check query: the active reservation for `key` among `reservations`, if any.
pub fn active_reservation<'a>(
    reservations: &'a [Reservation],
    key: &ReservationKey,
) -> Option<&'a Reservation> {
    reservations.iter().find(|r| r.key == *key && r.is_active())
}

/// The patient's reservations for listing, by service: all, or only active ones.
pub fn list_reservations(reservations: &[Reservation], active_only: bool) -> Vec<&Reservation> {
    let mut out: Vec<&Reservation> = reservations
        .iter()
        .filter(|r| !active_only || r.is_active())
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::fixtures::{day, ok, person};

    fn reserve(p: &NationalId, service: &str) -> ReservationReserve {
        ok(ReservationReserve::parse(
            p.as_str(),
            service,
            "vil ikke",
            "citizen",
            p.as_str(),
        ))
    }

    fn withdraw(p: &NationalId, service: &str) -> ReservationWithdraw {
        ok(ReservationWithdraw::parse(
            p.as_str(),
            service,
            "citizen",
            p.as_str(),
        ))
    }

    #[test]
    fn reserve_withdraw_reserve() {
        let p = person(0);
        let (r1, changed) = ok(apply_reserve(
            None,
            &reserve(&p, "Kjernejournal"),
            day(1),
            5,
        ));
        assert!(changed);
        assert_eq!(r1.key.service.as_str(), "kjernejournal");
        assert_eq!((r1.id, r1.mod_revision), (5, 5));
        assert!(r1.is_active());

        let (same, changed) = ok(apply_reserve(
            Some(&r1),
            &reserve(&p, "kjernejournal"),
            day(2),
            6,
        ));
        assert!(!changed);
        assert_eq!(same, r1);

        let (w, changed) = ok(apply_reservation_withdraw(
            Some(&r1),
            &withdraw(&p, "kjernejournal"),
            day(3),
            7,
        ));
        assert!(changed);
        assert_eq!(w.status, ReservationStatus::Withdrawn);
        assert_eq!((w.withdrawn_at, w.mod_revision), (Some(day(3)), 7));

        let (w2, changed) = ok(apply_reservation_withdraw(
            Some(&w),
            &withdraw(&p, "kjernejournal"),
            day(4),
            8,
        ));
        assert!(!changed);
        assert_eq!(w2, w);

        let (r2, changed) = ok(apply_reserve(
            Some(&w),
            &reserve(&p, "kjernejournal"),
            day(5),
            9,
        ));
        assert!(changed);
        assert!(r2.is_active());
        assert_eq!((r2.id, r2.mod_revision, r2.withdrawn_at), (5, 9, None));
        assert_eq!((r2.created_at, r2.reserved_at), (day(1), day(5)));
    }

    #[test]
    fn not_found_and_wrong_key() {
        let p = person(0);
        assert!(matches!(
            apply_reservation_withdraw(None, &withdraw(&p, "kjernejournal"), day(1), 2),
            Err(ApplyError::NotFound(_))
        ));
        let (r, _) = ok(apply_reserve(
            None,
            &reserve(&p, "kjernejournal"),
            day(1),
            2,
        ));
        assert!(matches!(
            apply_reservation_withdraw(Some(&r), &withdraw(&p, "e-resept"), day(1), 3),
            Err(ApplyError::NotFound(_))
        ));
        assert!(matches!(
            apply_reserve(Some(&r), &reserve(&person(1), "kjernejournal"), day(1), 3),
            Err(ApplyError::Conflict(_))
        ));
    }

    #[test]
    fn check_and_list() {
        let p = person(0);
        let (a, _) = ok(apply_reserve(
            None,
            &reserve(&p, "kjernejournal"),
            day(1),
            2,
        ));
        let (b, _) = ok(apply_reserve(None, &reserve(&p, "e-resept"), day(1), 3));
        let (b, _) = ok(apply_reservation_withdraw(
            Some(&b),
            &withdraw(&p, "e-resept"),
            day(2),
            4,
        ));
        let all = vec![a.clone(), b.clone()];
        let kj = ok(ReservationKey::parse(p.as_str(), "kjernejournal"));
        let er = ok(ReservationKey::parse(p.as_str(), "e-resept"));
        assert_eq!(active_reservation(&all, &kj), Some(&a));
        assert_eq!(active_reservation(&all, &er), None);
        assert_eq!(list_reservations(&all, true), vec![&a]);
        assert_eq!(list_reservations(&all, false), vec![&b, &a]);
    }

    #[test]
    fn bad_input_names_the_field() {
        let p = person(0);
        let ps = p.as_str();
        let long = "x".repeat(REASON_BYTES_MAX + 1);
        let cases: Vec<([&str; 5], &str)> = vec![
            (["", "kj", "", "citizen", ps], "patient"),
            (["1234567890x", "kj", "", "citizen", ps], "patient"),
            ([ps, "", "", "citizen", ps], "service"),
            ([ps, "kjerne journal", "", "citizen", ps], "service"),
            ([ps, "kj", &long, "citizen", ps], "reason"),
            ([ps, "kj", "", "client", "app"], "registered_by_kind"),
            ([ps, "kj", "", "patient", ps], "registered_by_kind"),
            ([ps, "kj", "", "personnel", "0"], "registered_by"),
        ];
        for ([a, b, c, d, e], field) in cases {
            match ReservationReserve::parse(a, b, c, d, e) {
                Err(err) => assert_eq!(err.field, field, "{err}"),
                Ok(_) => panic!("accepted bad input for {field}"),
            }
        }
        let e = ReservationWithdraw::parse(ps, "kj", "system", "x").err();
        assert_eq!(e.map(|e| e.field), Some("withdrawn_by_kind".to_owned()));
    }
}
