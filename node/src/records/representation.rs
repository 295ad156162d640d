//! `kartotek.v1.RepresentationService`: grant and revoke representations, and the queries
//! "whom can A represent", "who can represent B" and "may A act for B in area S at time t".
//!
//! The parental age rules come from the node's `[policy]` and are applied on reads only.

use kartotek_domain::fields::parse_optional_timestamp;
use kartotek_domain::locator::parse_national_id;
use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::representation::{check, who_can_represent, whom_can_represent};
use kartotek_domain::{
    Representation, RepresentationGrant, RepresentationInput, RepresentationQuery,
    RepresentationRevoke, Timestamp,
};
use kartotek_proto::v1;
use kartotek_proto::v1::representation_service_server::RepresentationService;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::convert::{self, actor_parts, enum_text};
use super::{applied, unexpected, write_record};
use crate::audit_service::handle_caller;
use crate::caller::Caller;
use crate::context::NodeContext;
use crate::error::NodeError;
use crate::locator_service::{handle, read_mode};

/// The representation service of one node.
pub struct RepresentationServiceImpl {
    ctx: NodeContext,
}

/// Which side of a representation a list names.
#[derive(Clone, Copy)]
enum Side {
    Representative,
    Represented,
}

impl RepresentationServiceImpl {
    /// Serves representation requests on `ctx`.
    pub fn new(ctx: NodeContext) -> Self {
        RepresentationServiceImpl { ctx }
    }

    async fn write(
        &self,
        request_id: &str,
        op: RecordOp,
    ) -> Result<v1::RepresentationResponse, NodeError> {
        let span =
            tracing::info_span!("representation.write", op = op.name(), request_id = %request_id);
        let (outcome, revision) = write_record(&self.ctx, request_id, op)
            .instrument(span)
            .await?;
        let RecordOutcome::Representation {
            representation,
            changed,
        } = outcome
        else {
            return Err(unexpected(&outcome));
        };
        let policy = self.ctx.config.policy.access_policy().representation;
        Ok(v1::RepresentationResponse {
            header: Some(self.ctx.header(revision, applied(&self.ctx)?)),
            representation: Some(convert::representation(
                &representation,
                Some((Timestamp::now(), &policy)),
            )),
            changed,
        })
    }

    async fn grant(
        &self,
        r: v1::GrantRepresentationRequest,
    ) -> Result<v1::RepresentationResponse, NodeError> {
        let kind = enum_text!(
            "kind",
            r.kind,
            v1::RepresentationKind,
            "REPRESENTATION_KIND_"
        )?;
        let source = enum_text!(
            "source",
            r.source,
            v1::RepresentationSource,
            "REPRESENTATION_SOURCE_"
        )?;
        let (by_kind, by) = actor_parts("granted_by", r.granted_by.as_ref())?;
        let cmd = RepresentationGrant::parse(&RepresentationInput {
            representative: &r.representative,
            represented: &r.represented,
            kind: &kind,
            areas: &r.areas,
            valid_from: &r.valid_from,
            valid_to: &r.valid_to,
            source: &source,
            granted_by_kind: &by_kind,
            granted_by: &by,
        })?;
        self.write(&r.request_id, RecordOp::RepresentationGrant(cmd))
            .await
    }

    async fn revoke(
        &self,
        r: v1::RevokeRepresentationRequest,
    ) -> Result<v1::RepresentationResponse, NodeError> {
        let (by_kind, by) = actor_parts("revoked_by", r.revoked_by.as_ref())?;
        let cmd = RepresentationRevoke::parse(&r.represented, r.representation_id, &by_kind, &by)?;
        self.write(&r.request_id, RecordOp::RepresentationRevoke(cmd))
            .await
    }

    async fn list(
        &self,
        caller: Caller,
        side: Side,
        r: v1::ListRepresentationsRequest,
    ) -> Result<v1::ListRepresentationsResponse, NodeError> {
        let person = parse_national_id("person", &r.person)?;
        let t = parse_optional_timestamp("time", &r.time)?.unwrap_or_else(Timestamp::now);
        let mode = read_mode(r.read.as_ref())?;
        self.ctx
            .audited_read(
                mode,
                vec![caller.event("representation.list", "representation", Some(&person))],
            )
            .await?;
        let found = match side {
            Side::Representative => self.ctx.reader.representations_of_representative(&person)?,
            Side::Represented => self.ctx.reader.representations_of_represented(&person)?,
        };
        let policy = self.ctx.config.policy.access_policy().representation;
        let selected: Vec<&Representation> = if r.include_inactive {
            found.value.iter().collect()
        } else {
            match side {
                Side::Representative => whom_can_represent(&found.value, &person, t, &policy),
                Side::Represented => who_can_represent(&found.value, &person, t, &policy),
            }
        };
        Ok(v1::ListRepresentationsResponse {
            header: Some(self.ctx.header(found.revision, found.applied_index)),
            representations: selected
                .into_iter()
                .map(|x| convert::representation(x, Some((t, &policy))))
                .collect(),
        })
    }

    async fn list_by_representative(
        &self,
        caller: Caller,
        r: v1::ListRepresentationsRequest,
    ) -> Result<v1::ListRepresentationsResponse, NodeError> {
        self.list(caller, Side::Representative, r).await
    }

    async fn list_by_represented(
        &self,
        caller: Caller,
        r: v1::ListRepresentationsRequest,
    ) -> Result<v1::ListRepresentationsResponse, NodeError> {
        self.list(caller, Side::Represented, r).await
    }

    async fn check(
        &self,
        caller: Caller,
        r: v1::CheckRepresentationRequest,
    ) -> Result<v1::CheckRepresentationResponse, NodeError> {
        let q = RepresentationQuery::parse(&r.representative, &r.represented, &r.area)?;
        let t = parse_optional_timestamp("time", &r.time)?.unwrap_or_else(Timestamp::now);
        let mode = read_mode(r.read.as_ref())?;
        self.ctx
            .audited_read(
                mode,
                vec![caller.event(
                    "representation.check",
                    "representation",
                    Some(&q.represented),
                )],
            )
            .await?;
        let found = self
            .ctx
            .reader
            .representations_of_represented(&q.represented)?;
        let policy = self.ctx.config.policy.access_policy().representation;
        let answer = check(
            &found.value,
            &q.representative,
            &q.represented,
            &q.area,
            t,
            &policy,
        );
        Ok(v1::CheckRepresentationResponse {
            header: Some(self.ctx.header(found.revision, found.applied_index)),
            allowed: answer.allowed,
            representation_ids: answer.representation_ids,
            reason: answer.reason,
        })
    }
}

#[tonic::async_trait]
impl RepresentationService for RepresentationServiceImpl {
    async fn grant(
        &self,
        request: Request<v1::GrantRepresentationRequest>,
    ) -> Result<Response<v1::RepresentationResponse>, Status> {
        handle!(self, "Representation/Grant", request, grant)
    }

    async fn revoke(
        &self,
        request: Request<v1::RevokeRepresentationRequest>,
    ) -> Result<Response<v1::RepresentationResponse>, Status> {
        handle!(self, "Representation/Revoke", request, revoke)
    }

    async fn list_by_representative(
        &self,
        request: Request<v1::ListRepresentationsRequest>,
    ) -> Result<Response<v1::ListRepresentationsResponse>, Status> {
        handle_caller!(
            self,
            "Representation/ListByRepresentative",
            request,
            list_by_representative
        )
    }

    async fn list_by_represented(
        &self,
        request: Request<v1::ListRepresentationsRequest>,
    ) -> Result<Response<v1::ListRepresentationsResponse>, Status> {
        handle_caller!(
            self,
            "Representation/ListByRepresented",
            request,
            list_by_represented
        )
    }

    async fn check(
        &self,
        request: Request<v1::CheckRepresentationRequest>,
    ) -> Result<Response<v1::CheckRepresentationResponse>, Status> {
        handle_caller!(self, "Representation/Check", request, check)
    }
}
