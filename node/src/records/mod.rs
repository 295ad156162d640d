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

pub mod access;
pub mod block;
pub mod catalog;
pub mod consent;
pub mod convert;
pub mod policy;
pub mod representation;
pub mod reservation;

use kartotek_domain::limits::{LIST_PAGE_SIZE_DEFAULT, LIST_PAGE_SIZE_MAX};
use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::{Op, Outcome, Response as Answer, ValidationError};

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

/// The error for an outcome of the wrong family (a bug).
pub(crate) fn unexpected(outcome: &RecordOutcome) -> NodeError {
    NodeError::Internal(format!("unexpected record outcome {outcome:?}"))
}

/// A list limit sent as `field`: 0 means [`LIST_PAGE_SIZE_DEFAULT`], above
/// [`LIST_PAGE_SIZE_MAX`] is refused.
pub(crate) fn list_limit(field: &str, limit: u32) -> Result<usize, NodeError> {
    match usize::try_from(limit).unwrap_or(usize::MAX) {
        0 => Ok(LIST_PAGE_SIZE_DEFAULT),
        n if n > LIST_PAGE_SIZE_MAX => {
            Err(ValidationError::new(field, format!("is {n}, at most {LIST_PAGE_SIZE_MAX}")).into())
        }
        n => Ok(n),
    }
}

/// Adds the record families' services to a node's gRPC router (each limited to
/// `request_bytes_max` per request) and reports them serving on `grpc.health.v1`.
pub async fn add_services(
    router: tonic::transport::server::Router,
    ctx: &NodeContext,
    request_bytes_max: usize,
    health: &tonic_health::server::HealthReporter,
) -> tonic::transport::server::Router {
    use kartotek_proto::v1::access_service_server::AccessServiceServer;
    use kartotek_proto::v1::block_service_server::BlockServiceServer;
    use kartotek_proto::v1::catalog_service_server::CatalogServiceServer;
    use kartotek_proto::v1::client_registry_service_server::ClientRegistryServiceServer;
    use kartotek_proto::v1::consent_service_server::ConsentServiceServer;
    use kartotek_proto::v1::notification_service_server::NotificationServiceServer;
    use kartotek_proto::v1::representation_service_server::RepresentationServiceServer;
    use kartotek_proto::v1::reservation_service_server::ReservationServiceServer;

    health
        .set_serving::<BlockServiceServer<block::BlockServiceImpl>>()
        .await;
    health
        .set_serving::<AccessServiceServer<access::AccessServiceImpl>>()
        .await;
    health
        .set_serving::<NotificationServiceServer<access::NotificationServiceImpl>>()
        .await;
    health
        .set_serving::<ConsentServiceServer<consent::ConsentServiceImpl>>()
        .await;
    health
        .set_serving::<ReservationServiceServer<reservation::ReservationServiceImpl>>()
        .await;
    health
        .set_serving::<RepresentationServiceServer<representation::RepresentationServiceImpl>>()
        .await;
    health
        .set_serving::<CatalogServiceServer<catalog::CatalogServiceImpl>>()
        .await;
    health
        .set_serving::<ClientRegistryServiceServer<catalog::ClientRegistryServiceImpl>>()
        .await;
    router
        .add_service(
            BlockServiceServer::new(block::BlockServiceImpl::new(ctx.clone()))
                .max_decoding_message_size(request_bytes_max),
        )
        .add_service(
            AccessServiceServer::new(access::AccessServiceImpl::new(ctx.clone()))
                .max_decoding_message_size(request_bytes_max),
        )
        .add_service(
            NotificationServiceServer::new(access::NotificationServiceImpl::new(ctx.clone()))
                .max_decoding_message_size(request_bytes_max),
        )
        .add_service(
            ConsentServiceServer::new(consent::ConsentServiceImpl::new(ctx.clone()))
                .max_decoding_message_size(request_bytes_max),
        )
        .add_service(
            ReservationServiceServer::new(reservation::ReservationServiceImpl::new(ctx.clone()))
                .max_decoding_message_size(request_bytes_max),
        )
        .add_service(
            RepresentationServiceServer::new(representation::RepresentationServiceImpl::new(
                ctx.clone(),
            ))
            .max_decoding_message_size(request_bytes_max),
        )
        .add_service(
            CatalogServiceServer::new(catalog::CatalogServiceImpl::new(ctx.clone()))
                .max_decoding_message_size(request_bytes_max),
        )
        .add_service(
            ClientRegistryServiceServer::new(catalog::ClientRegistryServiceImpl::new(ctx.clone()))
                .max_decoding_message_size(request_bytes_max),
        )
}
