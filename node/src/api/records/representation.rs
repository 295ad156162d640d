//! `kartotek.v1.RepresentationService`: grant and revoke representations, and the queries
//! "whom can A represent", "who can represent B" and "may A act for B in area S at time t".
//!
//! The parental age rules come from the node's `[policy]` and are applied on reads only.

use kartotek_domain::fields::parse_optional_timestamp;
use kartotek_domain::locator::parse_national_id;
use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::representation::{who_can_represent, whom_can_represent};
use kartotek_domain::{
    Representation, RepresentationGrant, RepresentationInput, RepresentationQuery,
    RepresentationRevoke, Timestamp,
};
use kartotek_proto::v1;
use kartotek_proto::v1::representation_service_server::RepresentationService;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::convert::{self, actor_parts, enum_text};
use super::{unexpected, write_record};
use crate::api::layer::{Call, Gate};
use crate::api::methods;
use crate::api::paging::{ListPage, PageRequest, bool_field, id_key};
use crate::api::read_mode;
use crate::error::NodeError;

/// The representation service of one node.
pub struct RepresentationServiceImpl {
    gate: Gate,
}

/// Which side of a representation a list names.
#[derive(Clone, Copy)]
enum Side {
    Representative,
    Represented,
}

impl RepresentationServiceImpl {
    /// Serves representation requests through `gate`.
    pub fn new(gate: Gate) -> Self {
        RepresentationServiceImpl { gate }
    }
}

async fn write(
    call: &Call,
    request_id: &str,
    op: RecordOp,
) -> Result<v1::RepresentationResponse, NodeError> {
    let span =
        tracing::info_span!("representation.write", op = op.name(), request_id = %request_id);
    let (outcome, revision) = write_record(call, request_id, op).instrument(span).await?;
    let RecordOutcome::Representation {
        representation,
        changed,
    } = outcome
    else {
        return Err(unexpected(&outcome));
    };
    let policy = call.config().policy.access_policy().representation;
    Ok(v1::RepresentationResponse {
        header: Some(call.write_header(revision)?),
        representation: Some(convert::representation(
            &representation,
            Some((Timestamp::now(), &policy)),
        )),
        changed,
    })
}

async fn grant(
    call: Call,
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
    let (by_kind, by) = actor_parts("granted_by", r.granted_by.as_ref(), &call.caller().actor)?;
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
    write(&call, &r.request_id, RecordOp::RepresentationGrant(cmd)).await
}

async fn revoke(
    call: Call,
    r: v1::RevokeRepresentationRequest,
) -> Result<v1::RepresentationResponse, NodeError> {
    let (by_kind, by) = actor_parts("revoked_by", r.revoked_by.as_ref(), &call.caller().actor)?;
    let cmd = RepresentationRevoke::parse(&r.represented, r.representation_id, &by_kind, &by)?;
    write(&call, &r.request_id, RecordOp::RepresentationRevoke(cmd)).await
}

async fn list(
    call: Call,
    side: Side,
    r: v1::ListRepresentationsRequest,
) -> Result<v1::ListRepresentationsResponse, NodeError> {
    let person = parse_national_id("person", &r.person)?;
    let t = parse_optional_timestamp("time", &r.time)?.unwrap_or_else(Timestamp::now);
    let method = match side {
        Side::Representative => "representation.list_by_representative",
        Side::Represented => "representation.list_by_represented",
    };
    // The time as sent (empty: now, which moves; the cursor keeps the pages apart).
    let paging = ListPage::of(
        PageRequest::parse(r.page_size, &r.page_token)?,
        method,
        &[person.as_str(), &r.time, bool_field(r.include_inactive)],
    )?;
    let mode = read_mode(r.read.as_ref())?;
    let state = call
        .read_patient(mode, "representation.list", "representation", &person)
        .await?;
    let found = match side {
        Side::Representative => state.representations_of_representative(&person)?,
        Side::Represented => state.representations_of_represented(&person)?,
    };
    let policy = call.config().policy.access_policy().representation;
    let selected: Vec<&Representation> = if r.include_inactive {
        found.value.iter().collect()
    } else {
        match side {
            Side::Representative => whom_can_represent(&found.value, &person, t, &policy),
            Side::Represented => who_can_represent(&found.value, &person, t, &policy),
        }
    };
    let page = paging.page(selected, |x| id_key(x.id));
    Ok(v1::ListRepresentationsResponse {
        header: Some(call.header(found.revision, found.applied_index)),
        representations: page
            .items
            .into_iter()
            .map(|x| convert::representation(x, Some((t, &policy))))
            .collect(),
        next_page_token: page.next_page_token,
    })
}

async fn list_by_representative(
    call: Call,
    r: v1::ListRepresentationsRequest,
) -> Result<v1::ListRepresentationsResponse, NodeError> {
    list(call, Side::Representative, r).await
}

async fn list_by_represented(
    call: Call,
    r: v1::ListRepresentationsRequest,
) -> Result<v1::ListRepresentationsResponse, NodeError> {
    list(call, Side::Represented, r).await
}

async fn check(
    call: Call,
    r: v1::CheckRepresentationRequest,
) -> Result<v1::CheckRepresentationResponse, NodeError> {
    let q = RepresentationQuery::parse(&r.representative, &r.represented, &r.area)?;
    let t = parse_optional_timestamp("time", &r.time)?.unwrap_or_else(Timestamp::now);
    let mode = read_mode(r.read.as_ref())?;
    let found = call
        .read_patient(
            mode,
            "representation.check",
            "representation",
            &q.represented,
        )
        .await?
        .representations_of_represented(&q.represented)?;
    let policy = call.config().policy.access_policy().representation;
    let answer = kartotek_domain::representation::check(
        &found.value,
        &q.representative,
        &q.represented,
        &q.area,
        t,
        &policy,
    );
    Ok(v1::CheckRepresentationResponse {
        header: Some(call.header(found.revision, found.applied_index)),
        allowed: answer.allowed,
        representation_ids: answer.representation_ids,
        reason: answer.reason,
    })
}

#[tonic::async_trait]
impl RepresentationService for RepresentationServiceImpl {
    async fn grant(
        &self,
        request: Request<v1::GrantRepresentationRequest>,
    ) -> Result<Response<v1::RepresentationResponse>, Status> {
        self.gate
            .unary(&methods::REPRESENTATION_GRANT, request, grant)
            .await
    }

    async fn revoke(
        &self,
        request: Request<v1::RevokeRepresentationRequest>,
    ) -> Result<Response<v1::RepresentationResponse>, Status> {
        self.gate
            .unary(&methods::REPRESENTATION_REVOKE, request, revoke)
            .await
    }

    async fn list_by_representative(
        &self,
        request: Request<v1::ListRepresentationsRequest>,
    ) -> Result<Response<v1::ListRepresentationsResponse>, Status> {
        self.gate
            .unary(
                &methods::REPRESENTATION_LIST_BY_REPRESENTATIVE,
                request,
                list_by_representative,
            )
            .await
    }

    async fn list_by_represented(
        &self,
        request: Request<v1::ListRepresentationsRequest>,
    ) -> Result<Response<v1::ListRepresentationsResponse>, Status> {
        self.gate
            .unary(
                &methods::REPRESENTATION_LIST_BY_REPRESENTED,
                request,
                list_by_represented,
            )
            .await
    }

    async fn check(
        &self,
        request: Request<v1::CheckRepresentationRequest>,
    ) -> Result<Response<v1::CheckRepresentationResponse>, Status> {
        self.gate
            .unary(&methods::REPRESENTATION_CHECK, request, check)
            .await
    }
}
