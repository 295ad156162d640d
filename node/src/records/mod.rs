//! The record families' gRPC services (`kartotek.v1` in records.proto): blocks, the access
//! decision and patient notifications, consents, reservations, representations, the API
//! catalog and token-issuance clients.
//!
//! Every service follows the locator service's pattern: validate with the domain's `parse`
//! (bad input is INVALID_ARGUMENT naming the field, and nothing is proposed), write through
//! [`NodeContext::write`] (batched, exactly-once by request id) or read after
//! [`NodeContext::prepare_read`] from one consistent view, and answer with the header of the
//! point of history the answer reflects. Time-dependent reads use the answering node's clock
//! (the leader's, for linearizable reads) unless the request names a time.
//!
//! `// AUDIT:` marks every place where an audit event must be recorded (every access decision
//! and every read of patient data).

pub mod convert;

use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::{Op, Outcome, Response as Answer};

use crate::context::NodeContext;
use crate::error::NodeError;
use crate::locator_service::request_id;

/// Proposes a record operation under the caller's request id; returns its outcome and the
/// revision after it.
pub(crate) async fn write_record(
    ctx: &NodeContext,
    raw_request_id: &str,
    op: RecordOp,
) -> Result<(RecordOutcome, u64), NodeError> {
    let rid = request_id(raw_request_id)?;
    let answer: Answer = ctx.write(rid, Op::Record(op)).await?;
    match answer.result {
        Ok(Outcome::Record(outcome)) => Ok((outcome, answer.revision)),
        Ok(other) => Err(NodeError::Internal(format!("unexpected outcome {other:?}"))),
        Err(e) => Err(e.into()),
    }
}

/// The applied index now (for the header of a write's answer).
pub(crate) fn applied(ctx: &NodeContext) -> Result<u64, NodeError> {
    Ok(ctx.reader.position()?.0)
}
