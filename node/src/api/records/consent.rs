//! `kartotek.v1.ConsentService`: request, grant, deny, withdraw, list and check consents.
//!
//! A request's deadline is enforced in apply with the leader-stamped time, so replicas agree;
//! reads report a request past its deadline (or a grant past its end) as expired, using the
//! answering node's clock ([`effective_status`](kartotek_domain::consent::effective_status)).

use kartotek_domain::consent::{ConsentCheckQuery, ConsentFilter, check_consent, list_consents};
use kartotek_domain::locator::parse_national_id;
use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::{
    ConsentAnswer, ConsentGrant, ConsentInput, ConsentRequest, Timestamp, ValidationError,
};
use kartotek_proto::v1;
use kartotek_proto::v1::consent_service_server::ConsentService;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::convert::{self, actor_parts, enum_text, optional_enum_text};
use super::{unexpected, write_record};
use crate::api::layer::{Call, Gate};
use crate::api::methods;
use crate::api::paging::{ListPage, PageRequest, id_key};
use crate::api::read_mode;
use crate::error::NodeError;

/// The consent service of one node.
pub struct ConsentServiceImpl {
    gate: Gate,
}

impl ConsentServiceImpl {
    /// Serves consent requests through `gate`.
    pub fn new(gate: Gate) -> Self {
        ConsentServiceImpl { gate }
    }
}

async fn write(
    call: &Call,
    name: &'static str,
    request_id: &str,
    op: RecordOp,
) -> Result<v1::ConsentResponse, NodeError> {
    let span = tracing::info_span!("consent.write", op = name, request_id = %request_id);
    let (outcome, revision) = write_record(call, request_id, op).instrument(span).await?;
    let RecordOutcome::Consent { consent, changed } = outcome else {
        return Err(unexpected(&outcome));
    };
    Ok(v1::ConsentResponse {
        header: Some(call.write_header(revision)?),
        consent: Some(convert::consent(&consent, Timestamp::now())),
        changed,
    })
}

async fn request_consent(
    call: Call,
    r: v1::RequestConsentRequest,
) -> Result<v1::ConsentResponse, NodeError> {
    let kind = enum_text!(
        "grantee_kind",
        r.grantee_kind,
        v1::GranteeKind,
        "GRANTEE_KIND_"
    )?;
    let cmd = ConsentRequest::parse(
        &ConsentInput {
            patient: &r.patient,
            grantee_kind: &kind,
            grantee: &r.grantee,
            scopes: &r.scopes,
            purpose: &r.purpose,
            valid_from: &r.valid_from,
            valid_to: &r.valid_to,
        },
        &r.deadline,
    )?;
    write(
        &call,
        "request",
        &r.request_id,
        RecordOp::ConsentRequest(cmd),
    )
    .await
}

async fn grant(call: Call, r: v1::GrantConsentRequest) -> Result<v1::ConsentResponse, NodeError> {
    let (by_kind, by) = actor_parts("by", r.by.as_ref(), &call.caller().actor)?;
    if r.consent_id != 0 {
        let terms_given = r.grantee_kind != 0
            || !r.grantee.is_empty()
            || !r.scopes.is_empty()
            || !r.purpose.is_empty()
            || !r.valid_from.is_empty()
            || !r.valid_to.is_empty();
        if terms_given {
            return Err(ValidationError::new(
                "consent_id",
                "grant either a pending request (consent_id) or directly (the terms), not both",
            )
            .into());
        }
        let cmd = ConsentAnswer::parse(&r.patient, r.consent_id, &by_kind, &by)?;
        return write(
            &call,
            "grant_request",
            &r.request_id,
            RecordOp::ConsentGrantRequest(cmd),
        )
        .await;
    }
    let kind = enum_text!(
        "grantee_kind",
        r.grantee_kind,
        v1::GranteeKind,
        "GRANTEE_KIND_"
    )?;
    let cmd = ConsentGrant::parse(
        &ConsentInput {
            patient: &r.patient,
            grantee_kind: &kind,
            grantee: &r.grantee,
            scopes: &r.scopes,
            purpose: &r.purpose,
            valid_from: &r.valid_from,
            valid_to: &r.valid_to,
        },
        &by_kind,
        &by,
    )?;
    write(&call, "grant", &r.request_id, RecordOp::ConsentGrant(cmd)).await
}

fn answer(call: &Call, r: &v1::AnswerConsentRequest) -> Result<ConsentAnswer, NodeError> {
    let (by_kind, by) = actor_parts("by", r.by.as_ref(), &call.caller().actor)?;
    Ok(ConsentAnswer::parse(
        &r.patient,
        r.consent_id,
        &by_kind,
        &by,
    )?)
}

async fn deny(call: Call, r: v1::AnswerConsentRequest) -> Result<v1::ConsentResponse, NodeError> {
    let cmd = answer(&call, &r)?;
    write(&call, "deny", &r.request_id, RecordOp::ConsentDeny(cmd)).await
}

async fn withdraw(
    call: Call,
    r: v1::AnswerConsentRequest,
) -> Result<v1::ConsentResponse, NodeError> {
    let cmd = answer(&call, &r)?;
    write(
        &call,
        "withdraw",
        &r.request_id,
        RecordOp::ConsentWithdraw(cmd),
    )
    .await
}

async fn list(
    call: Call,
    r: v1::ListConsentsRequest,
) -> Result<v1::ListConsentsResponse, NodeError> {
    let patient = parse_national_id("patient", &r.patient)?;
    let kind = optional_enum_text!(
        "grantee_kind",
        r.grantee_kind,
        v1::GranteeKind,
        "GRANTEE_KIND_"
    )?;
    let status = optional_enum_text!("status", r.status, v1::ConsentStatus, "CONSENT_STATUS_")?;
    let filter = ConsentFilter::parse(&kind, &r.grantee, &status)?;
    let paging = ListPage::of(
        PageRequest::parse(r.page_size, &r.page_token)?,
        "consent.list",
        &[patient.as_str(), &kind, &r.grantee, &status],
    )?;
    let mode = read_mode(r.read.as_ref())?;
    let found = call
        .read_patient(mode, "consent.list", "consent", &patient)
        .await?
        .consents_of(&patient)?;
    let now = Timestamp::now();
    let page = paging.page(list_consents(&found.value, &filter, now), |c| id_key(c.id));
    Ok(v1::ListConsentsResponse {
        header: Some(call.header(found.revision, found.applied_index)),
        consents: page
            .items
            .into_iter()
            .map(|c| convert::consent(c, now))
            .collect(),
        next_page_token: page.next_page_token,
    })
}

async fn check(
    call: Call,
    r: v1::CheckConsentRequest,
) -> Result<v1::CheckConsentResponse, NodeError> {
    let kind = enum_text!(
        "grantee_kind",
        r.grantee_kind,
        v1::GranteeKind,
        "GRANTEE_KIND_"
    )?;
    let query = ConsentCheckQuery::parse(&r.patient, &kind, &r.grantee, &r.scope)?;
    let mode = read_mode(r.read.as_ref())?;
    let found = call
        .read_patient(mode, "consent.check", "consent", &query.patient)
        .await?
        .consents_of(&query.patient)?;
    let answer = check_consent(&found.value, &query, Timestamp::now());
    Ok(v1::CheckConsentResponse {
        header: Some(call.header(found.revision, found.applied_index)),
        allowed: answer.allowed,
        consent_ids: answer.consent_ids,
        reason: answer.reason,
    })
}

#[tonic::async_trait]
impl ConsentService for ConsentServiceImpl {
    async fn request(
        &self,
        request: Request<v1::RequestConsentRequest>,
    ) -> Result<Response<v1::ConsentResponse>, Status> {
        self.gate
            .unary(&methods::CONSENT_REQUEST, request, request_consent)
            .await
    }

    async fn grant(
        &self,
        request: Request<v1::GrantConsentRequest>,
    ) -> Result<Response<v1::ConsentResponse>, Status> {
        self.gate
            .unary(&methods::CONSENT_GRANT, request, grant)
            .await
    }

    async fn deny(
        &self,
        request: Request<v1::AnswerConsentRequest>,
    ) -> Result<Response<v1::ConsentResponse>, Status> {
        self.gate.unary(&methods::CONSENT_DENY, request, deny).await
    }

    async fn withdraw(
        &self,
        request: Request<v1::AnswerConsentRequest>,
    ) -> Result<Response<v1::ConsentResponse>, Status> {
        self.gate
            .unary(&methods::CONSENT_WITHDRAW, request, withdraw)
            .await
    }

    async fn list(
        &self,
        request: Request<v1::ListConsentsRequest>,
    ) -> Result<Response<v1::ListConsentsResponse>, Status> {
        self.gate.unary(&methods::CONSENT_LIST, request, list).await
    }

    async fn check(
        &self,
        request: Request<v1::CheckConsentRequest>,
    ) -> Result<Response<v1::CheckConsentResponse>, Status> {
        self.gate
            .unary(&methods::CONSENT_CHECK, request, check)
            .await
    }
}
