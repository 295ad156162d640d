//! API clients: how a [`ClientRecord`] is stored (key `Q client id`, no index) and the glue
//! from the register and update commands to the domain rules in
//! `kartotek_domain::client_record`.

use kartotek_domain::client_record::{
    ClientRegister, ClientUpdate, apply_client_register, apply_client_update,
};
use kartotek_domain::record_op::RecordOutcome;
use kartotek_domain::{Change, ClientRecord};

use super::Ctx;
use super::stored::{Applied, stored_record};
use crate::record_keys::client_key;

stored_record! {
    ClientRecord => RecordOutcome,
    key: |r| client_key(&r.client_id),
    change: Change::Client,
    outcome: |r, changed| RecordOutcome::Client { client: Box::new(r), changed }
}

/// Registers a client.
pub(super) fn register(cx: &mut Ctx<'_, '_>, cmd: &ClientRegister) -> Applied<RecordOutcome> {
    cx.update(&client_key(&cmd.client_id), apply_client_register, cmd)
}

/// Updates a client's settings or status.
pub(super) fn update(cx: &mut Ctx<'_, '_>, cmd: &ClientUpdate) -> Applied<RecordOutcome> {
    cx.update(&client_key(&cmd.client_id), apply_client_update, cmd)
}
