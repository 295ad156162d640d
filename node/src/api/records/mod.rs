//! The record families' gRPC services (`kartotek.v1` in records.proto): blocks, the access
//! decision and patient notifications, consents, reservations, representations, the API
//! catalog, token-issuance clients and the token service's ledger of spent and revoked token
//! ids.
//!
//! Every service follows the locator service's pattern: validate with the domain's `parse`
//! (bad input is INVALID_ARGUMENT naming the field, and nothing is proposed), write through
//! [`Call::write`] (batched, exactly-once by request id) or read the state [`Call::read`]
//! hands out (after the read's audit event is durable, for patient data), and answer with
//! the header of the point of history the answer reflects. Time-dependent reads use the answering node's clock
//! (the leader's, for linearizable reads) unless the request names a time.
//!
//! Which methods must audit is declared in [`crate::api::methods`]; the request layer refuses
//! to answer for a patient-data method that did not record its event.

pub mod access;
pub mod block;
pub mod catalog;
pub mod client;
pub mod consent;
pub mod convert;
pub mod representation;
pub mod reservation;
pub mod token_ids;

use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::{Op, Outcome};

use crate::api::layer::Call;
use crate::error::NodeError;

/// Proposes a record operation under the caller's request id; returns its outcome and the
/// revision after it.
pub(crate) async fn write_record(
    call: &Call,
    raw_request_id: &str,
    op: RecordOp,
) -> Result<(RecordOutcome, u64), NodeError> {
    let answer = call.write(raw_request_id, Op::Record(op)).await?;
    match answer.result {
        Ok(Outcome::Record(outcome)) => Ok((outcome, answer.revision)),
        Ok(other) => Err(NodeError::Internal(format!("unexpected outcome {other:?}"))),
        Err(e) => Err(e.into()),
    }
}

/// The error for an outcome of the wrong family (a bug).
pub(crate) fn unexpected(outcome: &RecordOutcome) -> NodeError {
    NodeError::Internal(format!("unexpected record outcome {outcome:?}"))
}
