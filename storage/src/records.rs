//! Applying [`RecordOp`]s: the privacy-settings record families, API catalog entries and
//! clients, stored in the `sm` column family under their own key prefixes (see `keys.rs`).
//! Every change moves the state revision by one and records a change event, like locator
//! entries.

use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::{ApplyError, Timestamp};

use crate::error::StoreError;
use crate::state_machine::{EntryTxn, Meta};

/// Applies one record operation inside the entry's transaction. The outer `Result` is a
/// storage failure (the node stops applying); the inner one is the command's answer.
pub(crate) fn apply_record(
    _txn: &mut EntryTxn<'_>,
    _meta: &mut Meta,
    op: &RecordOp,
    _now: Timestamp,
) -> Result<Result<RecordOutcome, ApplyError>, StoreError> {
    match *op {}
}
