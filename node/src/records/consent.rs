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
use super::{applied, unexpected, write_record};
use crate::audit_service::handle_caller;
use crate::caller::Caller;
use crate::context::NodeContext;
use crate::error::NodeError;
use crate::locator_service::{handle, read_mode};

/// The consent service of one node.
pub struct ConsentServiceImpl {
    ctx: NodeContext,
}

impl ConsentServiceImpl {
    /// Serves consent requests on `ctx`.
    pub fn new(ctx: NodeContext) -> Self {
        ConsentServiceImpl { ctx }
    }

    async fn write(
        &self,
        name: &'static str,
        request_id: &str,
        op: RecordOp,
    ) -> Result<v1::ConsentResponse, NodeError> {
        let span = tracing::info_span!("consent.write", op = name, request_id = %request_id);
        let (outcome, revision) = write_record(&self.ctx, request_id, op)
            .instrument(span)
            .await?;
        let RecordOutcome::Consent { consent, changed } = outcome else {
            return Err(unexpected(&outcome));
        };
        Ok(v1::ConsentResponse {
            header: Some(self.ctx.header(revision, applied(&self.ctx)?)),
            consent: Some(convert::consent(&consent, Timestamp::now())),
            changed,
        })
    }

    async fn request(
        &self,
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
        self.write("request", &r.request_id, RecordOp::ConsentRequest(cmd))
            .await
    }

    async fn grant(&self, r: v1::GrantConsentRequest) -> Result<v1::ConsentResponse, NodeError> {
        let (by_kind, by) = actor_parts("by", r.by.as_ref())?;
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
            return self
                .write(
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
        self.write("grant", &r.request_id, RecordOp::ConsentGrant(cmd))
            .await
    }

    fn answer(r: &v1::AnswerConsentRequest) -> Result<ConsentAnswer, NodeError> {
        let (by_kind, by) = actor_parts("by", r.by.as_ref())?;
        Ok(ConsentAnswer::parse(
            &r.patient,
            r.consent_id,
            &by_kind,
            &by,
        )?)
    }

    async fn deny(&self, r: v1::AnswerConsentRequest) -> Result<v1::ConsentResponse, NodeError> {
        let cmd = Self::answer(&r)?;
        self.write("deny", &r.request_id, RecordOp::ConsentDeny(cmd))
            .await
    }

    async fn withdraw(
        &self,
        r: v1::AnswerConsentRequest,
    ) -> Result<v1::ConsentResponse, NodeError> {
        let cmd = Self::answer(&r)?;
        self.write("withdraw", &r.request_id, RecordOp::ConsentWithdraw(cmd))
            .await
    }

    async fn list(
        &self,
        caller: Caller,
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
        let mode = read_mode(r.read.as_ref())?;
        self.ctx
            .audited_read(
                mode,
                vec![caller.event("consent.list", "consent", Some(&patient))],
            )
            .await?;
        let found = self.ctx.reader.consents_of(&patient)?;
        let now = Timestamp::now();
        Ok(v1::ListConsentsResponse {
            header: Some(self.ctx.header(found.revision, found.applied_index)),
            consents: list_consents(&found.value, &filter, now)
                .into_iter()
                .map(|c| convert::consent(c, now))
                .collect(),
        })
    }

    async fn check(
        &self,
        caller: Caller,
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
        self.ctx
            .audited_read(
                mode,
                vec![caller.event("consent.check", "consent", Some(&query.patient))],
            )
            .await?;
        let found = self.ctx.reader.consents_of(&query.patient)?;
        let answer = check_consent(&found.value, &query, Timestamp::now());
        Ok(v1::CheckConsentResponse {
            header: Some(self.ctx.header(found.revision, found.applied_index)),
            allowed: answer.allowed,
            consent_ids: answer.consent_ids,
            reason: answer.reason,
        })
    }
}

#[tonic::async_trait]
impl ConsentService for ConsentServiceImpl {
    async fn request(
        &self,
        request: Request<v1::RequestConsentRequest>,
    ) -> Result<Response<v1::ConsentResponse>, Status> {
        handle!(self, "Consent/Request", request, request)
    }

    async fn grant(
        &self,
        request: Request<v1::GrantConsentRequest>,
    ) -> Result<Response<v1::ConsentResponse>, Status> {
        handle!(self, "Consent/Grant", request, grant)
    }

    async fn deny(
        &self,
        request: Request<v1::AnswerConsentRequest>,
    ) -> Result<Response<v1::ConsentResponse>, Status> {
        handle!(self, "Consent/Deny", request, deny)
    }

    async fn withdraw(
        &self,
        request: Request<v1::AnswerConsentRequest>,
    ) -> Result<Response<v1::ConsentResponse>, Status> {
        handle!(self, "Consent/Withdraw", request, withdraw)
    }

    async fn list(
        &self,
        request: Request<v1::ListConsentsRequest>,
    ) -> Result<Response<v1::ListConsentsResponse>, Status> {
        handle_caller!(self, "Consent/List", request, list)
    }

    async fn check(
        &self,
        request: Request<v1::CheckConsentRequest>,
    ) -> Result<Response<v1::CheckConsentResponse>, Status> {
        handle_caller!(self, "Consent/Check", request, check)
    }
}
