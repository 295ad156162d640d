//! The HTTP caller: who sent a request, from a verified bearer token, never from what a
//! request says about itself.
//!
//! A request may carry `Authorization: Bearer <access token>`, a token this frontend's token
//! service issued (signature, `iss`, `aud`, `typ` and times checked as the nodes check them:
//! [`TokenService::own_token`](crate::token::TokenService)). [`HttpCaller`] is the verified
//! caller; [`MaybeCaller`] extracts it when present (a request without the header is
//! anonymous; one with a header that does not verify is refused 401, not served as
//! anonymous), [`Authenticated`] when required.
//!
//! The frontend calls the cluster *with the caller's own token*
//! ([`HttpCaller::client`], [`kartotek_client::KartotekClient::with_token_source`]), so the
//! nodes apply their rules (scopes, the organisation that owns a catalog entry, revocation)
//! to the caller, not to the frontend's own identity. DPoP-bound tokens are refused here:
//! the nodes want a proof of the caller's key for each call, which the frontend cannot make.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use kartotek_auth::AccessClaims;
use kartotek_client::{KartotekClient, StaticToken};

use crate::AppState;
use crate::problem::HttpError;
use crate::token::routes::now_s;

/// Longest `Authorization` header value taken, in bytes.
pub const AUTHORIZATION_BYTES_MAX: usize = 8 * 1024;

/// A caller whose access token verified.
#[derive(Clone)]
pub struct HttpCaller {
    claims: AccessClaims,
    token: String,
}

impl std::fmt::Debug for HttpCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCaller")
            .field("client_id", &self.claims.client_id)
            .field("org", &self.org())
            .finish_non_exhaustive()
    }
}

impl HttpCaller {
    /// The caller of `authorization` (the header's value), verified by the token service.
    pub(crate) fn verify(s: &AppState, authorization: &str) -> Result<HttpCaller, HttpError> {
        if authorization.len() > AUTHORIZATION_BYTES_MAX {
            return Err(HttpError::Unauthenticated(format!(
                "authorization header longer than {AUTHORIZATION_BYTES_MAX} bytes"
            )));
        }
        let token = match authorization.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("dpop") => {
                return Err(HttpError::Unauthenticated(
                    "DPoP-bound tokens cannot be forwarded to the cluster; use a Bearer token"
                        .into(),
                ));
            }
            _ => {
                return Err(HttpError::Unauthenticated(
                    "authorization is not `Bearer <access token>`".into(),
                ));
            }
        };
        let claims = s.token.own_token(token, now_s()).ok_or_else(|| {
            HttpError::Unauthenticated(
                "the access token does not verify (expired, or not issued by this token service)"
                    .into(),
            )
        })?;
        if claims.cnf.is_some() {
            return Err(HttpError::Unauthenticated(
                "DPoP-bound tokens cannot be forwarded to the cluster; use a Bearer token".into(),
            ));
        }
        Ok(HttpCaller {
            claims,
            token: token.to_owned(),
        })
    }

    /// The caller's organisation (the token's sub-unit, else its parent organisation).
    pub fn org(&self) -> Option<&str> {
        self.claims
            .org_child
            .as_deref()
            .or(self.claims.org_parent.as_deref())
    }

    /// The client the token was issued to.
    pub fn client_id(&self) -> &str {
        &self.claims.client_id
    }

    /// A cluster client that calls with this caller's token (sharing the frontend's
    /// connections).
    pub(crate) fn client(&self, s: &AppState) -> Result<KartotekClient, HttpError> {
        let token = StaticToken::new(&self.token)
            .map_err(|_| HttpError::Unauthenticated("the access token is not ASCII".into()))?;
        Ok(s.client.with_token_source(Arc::new(token)))
    }
}

/// The caller when the request has an `Authorization` header (it must verify), else none.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<HttpCaller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, HttpError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(MaybeCaller(None));
        };
        let value = value
            .to_str()
            .map_err(|_| HttpError::Unauthenticated("authorization is not visible ASCII".into()))?;
        HttpCaller::verify(s, value).map(|c| MaybeCaller(Some(c)))
    }
}

/// A caller that must be authenticated (401 with `WWW-Authenticate: Bearer` otherwise).
#[derive(Debug, Clone)]
pub struct Authenticated(pub HttpCaller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, HttpError> {
        match MaybeCaller::from_request_parts(parts, s).await?.0 {
            Some(c) => Ok(Authenticated(c)),
            None => Err(HttpError::Unauthenticated(
                "this needs an access token: `Authorization: Bearer <token>` from POST \
                 /connect/token"
                    .into(),
            )),
        }
    }
}
