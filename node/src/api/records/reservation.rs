//! `kartotek.v1.ReservationService`: a patient opts out of (reserve) or back into (withdraw)
//! a national service; check and list.

use kartotek_domain::locator::parse_national_id;
use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::reservation::list_reservations;
use kartotek_domain::{ReservationKey, ReservationReserve, ReservationWithdraw};
use kartotek_proto::v1;
use kartotek_proto::v1::reservation_service_server::ReservationService;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::convert::{self, actor_parts};
use super::{unexpected, write_record};
use crate::api::layer::{Call, Gate};
use crate::api::methods;
use crate::api::paging::{ListPage, PageRequest, bool_field};
use crate::api::read_mode;
use crate::error::NodeError;

/// The reservation service of one node.
pub struct ReservationServiceImpl {
    gate: Gate,
}

impl ReservationServiceImpl {
    /// Serves reservation requests through `gate`.
    pub fn new(gate: Gate) -> Self {
        ReservationServiceImpl { gate }
    }
}

async fn write(
    call: &Call,
    request_id: &str,
    op: RecordOp,
) -> Result<v1::ReservationResponse, NodeError> {
    let span = tracing::info_span!("reservation.write", op = op.name(), request_id = %request_id);
    let (outcome, revision) = write_record(call, request_id, op).instrument(span).await?;
    let RecordOutcome::Reservation {
        reservation,
        changed,
    } = outcome
    else {
        return Err(unexpected(&outcome));
    };
    Ok(v1::ReservationResponse {
        header: Some(call.write_header(revision)?),
        reservation: Some(convert::reservation(&reservation)),
        changed,
    })
}

async fn reserve(call: Call, r: v1::ReserveRequest) -> Result<v1::ReservationResponse, NodeError> {
    let (by_kind, by) = actor_parts(
        "registered_by",
        r.registered_by.as_ref(),
        &call.caller().actor,
    )?;
    let cmd = ReservationReserve::parse(&r.patient, &r.service, &r.reason, &by_kind, &by)?;
    write(&call, &r.request_id, RecordOp::Reserve(cmd)).await
}

async fn withdraw(
    call: Call,
    r: v1::WithdrawReservationRequest,
) -> Result<v1::ReservationResponse, NodeError> {
    let (by_kind, by) = actor_parts(
        "withdrawn_by",
        r.withdrawn_by.as_ref(),
        &call.caller().actor,
    )?;
    let cmd = ReservationWithdraw::parse(&r.patient, &r.service, &by_kind, &by)?;
    write(&call, &r.request_id, RecordOp::ReservationWithdraw(cmd)).await
}

async fn check(
    call: Call,
    r: v1::CheckReservationRequest,
) -> Result<v1::CheckReservationResponse, NodeError> {
    let key = ReservationKey::parse(&r.patient, &r.service)?;
    let mode = read_mode(r.read.as_ref())?;
    let found = call
        .read_patient(mode, "reservation.check", "reservation", &key.patient)
        .await?
        .reservation(&key.patient, &key.service)?;
    Ok(v1::CheckReservationResponse {
        header: Some(call.header(found.revision, found.applied_index)),
        reserved: found.value.as_ref().is_some_and(|r| r.is_active()),
        reservation: found.value.as_ref().map(convert::reservation),
    })
}

async fn list(
    call: Call,
    r: v1::ListReservationsRequest,
) -> Result<v1::ListReservationsResponse, NodeError> {
    let patient = parse_national_id("patient", &r.patient)?;
    let paging = ListPage::of(
        PageRequest::parse(r.page_size, &r.page_token)?,
        "reservation.list",
        &[patient.as_str(), bool_field(r.active_only)],
    )?;
    let mode = read_mode(r.read.as_ref())?;
    let found = call
        .read_patient(mode, "reservation.list", "reservation", &patient)
        .await?
        .reservations_of(&patient)?;
    let page = paging.page(list_reservations(&found.value, r.active_only), |x| {
        x.key.service.as_str().as_bytes().to_vec()
    });
    Ok(v1::ListReservationsResponse {
        header: Some(call.header(found.revision, found.applied_index)),
        reservations: page.items.into_iter().map(convert::reservation).collect(),
        next_page_token: page.next_page_token,
    })
}

#[tonic::async_trait]
impl ReservationService for ReservationServiceImpl {
    async fn reserve(
        &self,
        request: Request<v1::ReserveRequest>,
    ) -> Result<Response<v1::ReservationResponse>, Status> {
        self.gate
            .unary(&methods::RESERVATION_RESERVE, request, reserve)
            .await
    }

    async fn withdraw(
        &self,
        request: Request<v1::WithdrawReservationRequest>,
    ) -> Result<Response<v1::ReservationResponse>, Status> {
        self.gate
            .unary(&methods::RESERVATION_WITHDRAW, request, withdraw)
            .await
    }

    async fn check(
        &self,
        request: Request<v1::CheckReservationRequest>,
    ) -> Result<Response<v1::CheckReservationResponse>, Status> {
        self.gate
            .unary(&methods::RESERVATION_CHECK, request, check)
            .await
    }

    async fn list(
        &self,
        request: Request<v1::ListReservationsRequest>,
    ) -> Result<Response<v1::ListReservationsResponse>, Status> {
        self.gate
            .unary(&methods::RESERVATION_LIST, request, list)
            .await
    }
}
