//! Patient notifications ("someone used emergency access to your data"): how a
//! [`PatientNotification`] is stored (key `W patient id`, no index) and the glue from the
//! acknowledge command to `kartotek_domain::notification`. Notifications are created by an
//! access override (see `access.rs`).

use kartotek_domain::Change;
use kartotek_domain::notification::{NotificationAck, PatientNotification, apply_notification_ack};
use kartotek_domain::record_op::RecordOutcome;

use super::Ctx;
use super::stored::{Applied, stored_record};
use crate::record_keys::notification_key;

stored_record! {
    PatientNotification => RecordOutcome,
    key: |r| notification_key(&r.patient, r.id),
    change: Change::Notification,
    outcome: |r, changed| RecordOutcome::Notification { notification: Box::new(r), changed }
}

/// Acknowledges a notification.
pub(super) fn ack(cx: &mut Ctx<'_, '_>, cmd: &NotificationAck) -> Applied<RecordOutcome> {
    let key = notification_key(&cmd.patient, cmd.notification_id);
    cx.update(&key, apply_notification_ack, cmd)
}
