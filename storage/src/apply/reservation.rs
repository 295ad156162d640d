//! Reservations (a patient's opt-out of a national service): how a [`Reservation`] is stored
//! (key `V patient service`, one per patient and service, no id list) and the glue from the
//! reserve and withdraw commands to the domain rules in `kartotek_domain::reservation`.

use kartotek_domain::record_op::RecordOutcome;
use kartotek_domain::reservation::{
    ReservationKey, ReservationReserve, ReservationWithdraw, apply_reservation_withdraw,
    apply_reserve,
};
use kartotek_domain::{Change, Reservation};

use super::Ctx;
use super::stored::{Applied, StoredRecord};
use crate::record_keys::reservation_key;

/// The key of the reservation `key` names.
fn key_of(key: &ReservationKey) -> Vec<u8> {
    reservation_key(&key.patient, &key.service)
}

impl StoredRecord for Reservation {
    type Outcome = RecordOutcome;

    fn key(&self) -> Vec<u8> {
        key_of(&self.key)
    }

    fn revisions(&self) -> (u64, u64) {
        (self.create_revision, self.mod_revision)
    }

    fn change(&self) -> Change {
        Change::Reservation(self.clone())
    }

    fn outcome(self, changed: bool) -> RecordOutcome {
        RecordOutcome::Reservation {
            reservation: Box::new(self),
            changed,
        }
    }
}

/// Records (or renews) a reservation.
pub(super) fn reserve(cx: &mut Ctx<'_, '_>, cmd: &ReservationReserve) -> Applied<RecordOutcome> {
    cx.update(&key_of(&cmd.key), apply_reserve, cmd)
}

/// Withdraws a reservation.
pub(super) fn withdraw(cx: &mut Ctx<'_, '_>, cmd: &ReservationWithdraw) -> Applied<RecordOutcome> {
    cx.update(&key_of(&cmd.key), apply_reservation_withdraw, cmd)
}
