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
use super::{applied, unexpected, write_record};
use crate::audit_service::handle_caller;
use crate::caller::Caller;
use crate::context::NodeContext;
use crate::error::NodeError;
use crate::locator_service::{handle, read_mode};

/// The reservation service of one node.
pub struct ReservationServiceImpl {
    ctx: NodeContext,
}

impl ReservationServiceImpl {
    /// Serves reservation requests on `ctx`.
    pub fn new(ctx: NodeContext) -> Self {
        ReservationServiceImpl { ctx }
    }

    async fn write(
        &self,
        request_id: &str,
        op: RecordOp,
    ) -> Result<v1::ReservationResponse, NodeError> {
        let span =
            tracing::info_span!("reservation.write", op = op.name(), request_id = %request_id);
        let (outcome, revision) = write_record(&self.ctx, request_id, op)
            .instrument(span)
            .await?;
        let RecordOutcome::Reservation {
            reservation,
            changed,
        } = outcome
        else {
            return Err(unexpected(&outcome));
        };
        Ok(v1::ReservationResponse {
            header: Some(self.ctx.header(revision, applied(&self.ctx)?)),
            reservation: Some(convert::reservation(&reservation)),
            changed,
        })
    }

    async fn reserve(&self, r: v1::ReserveRequest) -> Result<v1::ReservationResponse, NodeError> {
        let (by_kind, by) = actor_parts("registered_by", r.registered_by.as_ref())?;
        let cmd = ReservationReserve::parse(&r.patient, &r.service, &r.reason, &by_kind, &by)?;
        self.write(&r.request_id, RecordOp::Reserve(cmd)).await
    }

    async fn withdraw(
        &self,
        r: v1::WithdrawReservationRequest,
    ) -> Result<v1::ReservationResponse, NodeError> {
        let (by_kind, by) = actor_parts("withdrawn_by", r.withdrawn_by.as_ref())?;
        let cmd = ReservationWithdraw::parse(&r.patient, &r.service, &by_kind, &by)?;
        self.write(&r.request_id, RecordOp::ReservationWithdraw(cmd))
            .await
    }

    async fn check(
        &self,
        caller: Caller,
        r: v1::CheckReservationRequest,
    ) -> Result<v1::CheckReservationResponse, NodeError> {
        let key = ReservationKey::parse(&r.patient, &r.service)?;
        let mode = read_mode(r.read.as_ref())?;
        self.ctx
            .audited_read(
                mode,
                vec![caller.event("reservation.check", "reservation", Some(&key.patient))],
            )
            .await?;
        let found = self.ctx.reader.reservation(&key.patient, &key.service)?;
        Ok(v1::CheckReservationResponse {
            header: Some(self.ctx.header(found.revision, found.applied_index)),
            reserved: found.value.as_ref().is_some_and(|r| r.is_active()),
            reservation: found.value.as_ref().map(convert::reservation),
        })
    }

    async fn list(
        &self,
        caller: Caller,
        r: v1::ListReservationsRequest,
    ) -> Result<v1::ListReservationsResponse, NodeError> {
        let patient = parse_national_id("patient", &r.patient)?;
        let mode = read_mode(r.read.as_ref())?;
        self.ctx
            .audited_read(
                mode,
                vec![caller.event("reservation.list", "reservation", Some(&patient))],
            )
            .await?;
        let found = self.ctx.reader.reservations_of(&patient)?;
        Ok(v1::ListReservationsResponse {
            header: Some(self.ctx.header(found.revision, found.applied_index)),
            reservations: list_reservations(&found.value, r.active_only)
                .into_iter()
                .map(convert::reservation)
                .collect(),
        })
    }
}

#[tonic::async_trait]
impl ReservationService for ReservationServiceImpl {
    async fn reserve(
        &self,
        request: Request<v1::ReserveRequest>,
    ) -> Result<Response<v1::ReservationResponse>, Status> {
        handle!(self, "Reservation/Reserve", request, reserve)
    }

    async fn withdraw(
        &self,
        request: Request<v1::WithdrawReservationRequest>,
    ) -> Result<Response<v1::ReservationResponse>, Status> {
        handle!(self, "Reservation/Withdraw", request, withdraw)
    }

    async fn check(
        &self,
        request: Request<v1::CheckReservationRequest>,
    ) -> Result<Response<v1::CheckReservationResponse>, Status> {
        handle_caller!(self, "Reservation/Check", request, check)
    }

    async fn list(
        &self,
        request: Request<v1::ListReservationsRequest>,
    ) -> Result<Response<v1::ListReservationsResponse>, Status> {
        handle_caller!(self, "Reservation/List", request, list)
    }
}
