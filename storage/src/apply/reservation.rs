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
use super::stored::{Applied, stored_record};
use crate::record_keys::reservation_key;

/// The key of the reservation `key` names.
fn key_of(key: &ReservationKey) -> Vec<u8> {
    reservation_key(&key.patient, &key.service)
}

stored_record! {
    Reservation => RecordOutcome,
    key: |r| key_of(&r.key),
    change: Change::Reservation,
    outcome: |r, changed| RecordOutcome::Reservation { reservation: Box::new(r), changed }
}

/// Records (or renews) a reservation.
pub(super) fn reserve(cx: &mut Ctx<'_, '_>, cmd: &ReservationReserve) -> Applied<RecordOutcome> {
    cx.update(&key_of(&cmd.key), apply_reserve, cmd)
}

/// Withdraws a reservation.
pub(super) fn withdraw(cx: &mut Ctx<'_, '_>, cmd: &ReservationWithdraw) -> Applied<RecordOutcome> {
    cx.update(&key_of(&cmd.key), apply_reservation_withdraw, cmd)
}
