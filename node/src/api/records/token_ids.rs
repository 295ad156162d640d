//! `kartotek.v1.TokenLedgerService`: the token service's ledger of spent and revoked token ids
//! (`kartotek_domain::token_ids`). Spend makes a client assertion or DPoP proof single-use
//! across every frontend; Revoke stores a revoked access token's id, which every node's
//! authenticator then refuses (`api/auth.rs`); Status answers introspection. Only the token
//! service's own tokens carry the scope ([`kartotek_auth::scopes::TOKENS_LEDGER`]); no patient
//! data, no audit event.

use kartotek_domain::record_op::{RecordOp, RecordOutcome};
use kartotek_domain::token_ids::{TokenId, TokenIdKind, TokenIdsSpend, TokenJti, TokenRevoke};
use kartotek_domain::{ClientId, Timestamp, ValidationError};
use kartotek_proto::v1;
use kartotek_proto::v1::token_ledger_service_server::TokenLedgerService;
use tonic::{Request, Response, Status};

use super::{unexpected, write_record};
use crate::api::layer::{Call, Gate};
use crate::api::{methods, read_mode};
use crate::context::NodeContext;
use crate::error::NodeError;

/// The token ledger of one node.
pub struct TokenLedgerServiceImpl {
    gate: Gate,
}

impl TokenLedgerServiceImpl {
    /// Serves token-ledger requests through `gate`.
    pub fn new(gate: Gate) -> Self {
        TokenLedgerServiceImpl { gate }
    }
}

/// The domain kind of a proto kind; `unspecified` is `default` (or refused when `None`).
fn kind_of(
    field: &str,
    kind: i32,
    default: Option<TokenIdKind>,
) -> Result<TokenIdKind, ValidationError> {
    match v1::TokenIdKind::try_from(kind) {
        Ok(v1::TokenIdKind::ClientAssertion) => Ok(TokenIdKind::Assertion),
        Ok(v1::TokenIdKind::DpopProof) => Ok(TokenIdKind::Proof),
        Ok(v1::TokenIdKind::RevokedToken) => Ok(TokenIdKind::Revoked),
        Ok(v1::TokenIdKind::Unspecified) | Err(_) => default.ok_or_else(|| {
            ValidationError::new(
                field,
                "must be client_assertion, dpop_proof or revoked_token",
            )
        }),
    }
}

/// A sent entry as a domain id, its expiry checked against this node's clock (apply uses the
/// leader's stamp; the bounds are a day wide, so the two agree on anything sensible).
fn entry(
    field: &str,
    e: &v1::TokenIdEntry,
    default: Option<TokenIdKind>,
) -> Result<TokenId, ValidationError> {
    let kind = kind_of(&format!("{field}.kind"), e.kind, default)?;
    TokenId::parse(
        kind,
        &e.client_id,
        &e.jti,
        e.expires_at_ms,
        Timestamp::now(),
    )
}

/// Whether this node's applied state holds a live revocation of `client`'s token `jti` (a
/// `client`/`jti` that cannot be a ledger key was never revoked).
pub fn is_revoked(ctx: &NodeContext, client: &str, jti: &str) -> Result<bool, NodeError> {
    let (Ok(client), Ok(jti)) = (
        ClientId::parse("client_id", client),
        TokenJti::parse("jti", jti),
    ) else {
        return Ok(false);
    };
    Ok(ctx
        .reader()
        .token_id(TokenIdKind::Revoked, &client, &jti)?
        .is_some_and(|t| t.live_at(Timestamp::now())))
}

async fn spend(
    call: Call,
    r: v1::SpendTokenIdsRequest,
) -> Result<v1::SpendTokenIdsResponse, NodeError> {
    let ids = r
        .ids
        .iter()
        .map(|e| entry("ids", e, None))
        .collect::<Result<Vec<_>, _>>()?;
    let cmd = TokenIdsSpend::new(ids)?;
    let (outcome, revision) =
        write_record(&call, &r.request_id, RecordOp::TokenIdsSpend(cmd)).await?;
    let RecordOutcome::TokenIdsSpent { .. } = outcome else {
        return Err(unexpected(&outcome));
    };
    Ok(v1::SpendTokenIdsResponse {
        header: Some(call.write_header(revision)?),
    })
}

async fn revoke(
    call: Call,
    r: v1::RevokeTokenRequest,
) -> Result<v1::RevokeTokenResponse, NodeError> {
    let token = r
        .token
        .as_ref()
        .ok_or_else(|| ValidationError::new("token", "is missing"))?;
    let cmd = TokenRevoke::new(entry("token", token, Some(TokenIdKind::Revoked))?)?;
    let (outcome, revision) =
        write_record(&call, &r.request_id, RecordOp::TokenRevoke(cmd)).await?;
    let RecordOutcome::TokenRevoked { changed } = outcome else {
        return Err(unexpected(&outcome));
    };
    Ok(v1::RevokeTokenResponse {
        header: Some(call.write_header(revision)?),
        changed,
    })
}

async fn status(
    call: Call,
    r: v1::TokenIdStatusRequest,
) -> Result<v1::TokenIdStatusResponse, NodeError> {
    let kind = kind_of("kind", r.kind, None)?;
    let client = ClientId::parse("client_id", &r.client_id)?;
    let jti = TokenJti::parse("jti", &r.jti)?;
    let mode = read_mode(r.read.as_ref())?;
    let state = call.read(mode, vec![]).await?;
    let (applied_index, revision) = state.position()?;
    let found = state
        .token_id(kind, &client, &jti)?
        .filter(|t| t.live_at(Timestamp::now()));
    Ok(v1::TokenIdStatusResponse {
        header: Some(call.header(revision, applied_index)),
        present: found.is_some(),
        expires_at_ms: found.map(|t| t.expires_at.0).unwrap_or(0),
    })
}

#[tonic::async_trait]
impl TokenLedgerService for TokenLedgerServiceImpl {
    async fn spend(
        &self,
        request: Request<v1::SpendTokenIdsRequest>,
    ) -> Result<Response<v1::SpendTokenIdsResponse>, Status> {
        self.gate.unary(&methods::TOKEN_SPEND, request, spend).await
    }

    async fn revoke(
        &self,
        request: Request<v1::RevokeTokenRequest>,
    ) -> Result<Response<v1::RevokeTokenResponse>, Status> {
        self.gate
            .unary(&methods::TOKEN_REVOKE, request, revoke)
            .await
    }

    async fn status(
        &self,
        request: Request<v1::TokenIdStatusRequest>,
    ) -> Result<Response<v1::TokenIdStatusResponse>, Status> {
        self.gate
            .unary(&methods::TOKEN_STATUS, request, status)
            .await
    }
}
