//! API clients: how a [`ClientRecord`] is stored (key `Q client id`, no index) and the glue
//! from the register and update commands to the domain rules in
//! `kartotek_domain::client_record`.

use kartotek_domain::client_record::{
    ClientRegister, ClientUpdate, apply_client_register, apply_client_update,
};
use kartotek_domain::record_op::RecordOutcome;
use kartotek_domain::{Change, ClientRecord};

use super::Ctx;
use super::stored::{Applied, StoredRecord};
use crate::record_keys::client_key;

impl StoredRecord for ClientRecord {
    type Outcome = RecordOutcome;

    fn key(&self) -> Vec<u8> {
        client_key(&self.client_id)
    }

    fn revisions(&self) -> (u64, u64) {
        (self.create_revision, self.mod_revision)
    }

    fn change(&self) -> Change {
        Change::Client(self.clone())
    }

    fn outcome(self, changed: bool) -> RecordOutcome {
        RecordOutcome::Client {
            client: Box::new(self),
            changed,
        }
    }
}

/// Registers a client.
pub(super) fn register(cx: &mut Ctx<'_, '_>, cmd: &ClientRegister) -> Applied<RecordOutcome> {
    cx.update(&client_key(&cmd.client_id), apply_client_register, cmd)
}

/// Updates a client's settings or status.
pub(super) fn update(cx: &mut Ctx<'_, '_>, cmd: &ClientUpdate) -> Applied<RecordOutcome> {
    cx.update(&client_key(&cmd.client_id), apply_client_update, cmd)
}
