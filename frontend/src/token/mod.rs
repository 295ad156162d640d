//! The token service, after HelseID: `POST /connect/token` issues signed `at+jwt` access
//! tokens to clients that authenticate with `private_key_jwt` (RFC 7523) against the public
//! keys of their client record in the cluster, for two grants:
//!
//! - `client_credentials`: the client acting as itself (`sub` = `client_id`);
//! - the token exchange (RFC 8693, `urn:ietf:params:oauth:grant-type:token-exchange`) of a
//!   citizen app: the `subject_token` is the citizen's login (an ID token of a trusted
//!   provider, ID-porten in production, or of the dev login), and the token is for the
//!   citizen themself (`sub` the national id), or — with `act_for` — for the person they act
//!   for (`sub` that person, `act.sub` the citizen), only if a representation allows it now in
//!   `area`. A reservation of the person against the target service (`audience`) refuses
//!   the exchange; scopes in `token.consent_scopes` need the person's granted consent to the
//!   client; and the token carries no Kartotek scope but `kartotek:citizen`.
//!
//! With a `DPoP` header (RFC 9449: a proof for `POST <issuer>/connect/token`, used once) either
//! grant's token is bound to the proof's key (`cnf.jkt`, `token_type` `DPoP`), and the nodes
//! then take it only with a proof of that key for each call. With `token.dpop_nonce_window_s`
//! (on by default) the proof must also carry a server nonce (RFC 9449 §8): a proof without a
//! current one is answered `use_dpop_nonce` with a `DPoP-Nonce` header to retry with, and
//! every answer to a DPoP request carries the current nonce. The nonces are stateless
//! (`kartotek_auth::dpop::NonceKey`, a MAC of the time window under a secret derived from the
//! signing key file), so any instance takes another's.
//!
//! `POST /connect/revoke` (RFC 7009) lets a client revoke its own access token: the cluster
//! stores its `jti` until it expires and every node refuses it. `POST /connect/introspect`
//! (RFC 7662) tells a token's client, or a client in its `aud`, whether it is active (and its
//! claims); anyone else gets `{"active": false}`. Both authenticate the caller with
//! `private_key_jwt`, as the token endpoint does.
//!
//! `GET /.well-known/jwks.json` publishes the signing keys (rotation in
//! `kartotek_auth::keys`); `GET /.well-known/oauth-authorization-server` is the RFC 8414
//! metadata.
//!
//! # Module map
//!
//! - this module: [`TokenService`] (the grants, independent of HTTP) and [`OAuthError`]
//!   (RFC 6749 §5.2 error answers).
//! - [`directory`]: [`ClientDirectory`](directory::ClientDirectory), what the grants read
//!   from the registry (client records; representation, reservation and consent checks):
//!   the cluster through `kartotek-client`, or memory (tests).
//! - [`dev_login`]: DEV ONLY, a stand-in for ID-porten at `/dev/login`.
//! - [`fuzzing`]: the token endpoint's fuzz entry point (`fuzz/`), also a property test.
//! - [`login_keys`]: the citizen login providers' keys, fetched or re-read while serving.
//! - [`rate`]: the per-client token-request rate limit (`token.requests_per_client_per_s`).
//! - [`routes`]: the HTTP handlers.
//!
//! A token request is refused unless: the body is a form of at most `token.request_bytes_max`
//! bytes with each parameter once; `grant_type` is one of the two;
//! `client_assertion_type` is the JWT bearer type and `client_assertion` verifies
//! (`kartotek_auth::verify_client_assertion`: the client's keys, `aud` = the issuer, at most
//! 60 s to live, `typ` `client-authentication+jwt`); the client exists and is active; the
//! assertion's `jti` was not used before (this process's [`JtiReplayCache`] first, then the
//! cluster's token ledger, which spends the assertion's and the DPoP proof's `jti` once for
//! every frontend instance); every requested `scope` is allowed to the client (no
//! `scope`: all its allowed scopes for `client_credentials`, `kartotek:citizen` for an
//! exchange). The token's org claim is the client record's org. Assertions, login tokens and
//! access tokens are never logged.

pub mod dev_login;
pub mod directory;
pub mod fuzzing;
pub mod login_keys;
pub mod rate;
pub mod routes;

#[cfg(test)]
mod exchange_tests;
#[cfg(test)]
mod ledger_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kartotek_auth::login::{ID_TOKEN_TYPE, JWT_TOKEN_TYPE};
use kartotek_auth::{
    AccessClaims, AssertionError, CLIENT_ASSERTION_TYPE, Issuer, JtiReplayCache, KeyError,
    LoginVerifier, ReplayError, ReplayGuard, SigningKey, SigningKeySet, TokenAlg,
    assertion_client_id, new_jti, scopes, verify_client_assertion,
};
use kartotek_domain::fields::{Area, ServiceName};
use kartotek_domain::locator::parse_national_id;
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::FrontendConfig;
use crate::metrics::Metrics;
use directory::{ClientDirectory, DirectoryClient, LedgerId, LedgerKind, Spent};

/// The `client_id` and `sub` of the tokens the frontend signs for its own calls to the
/// cluster ([`kartotek_client::SelfIssued`]: it is an issuer the nodes trust, so it needs no
/// client of its own; the audit log names this id for its reads of client records).
pub const FRONTEND_CLIENT_ID: &str = "kartotek-frontend";
/// What those tokens allow: reading client records (the token service), the token ledger
/// (single-use assertions and proofs, revocation), forwarding audit events, and the
/// privacy-record checks of the token exchange (representation, reservation,
/// consent; each audited in the cluster as this client's read about the person).
pub const FRONTEND_SCOPES: [&str; 4] = [
    scopes::CLIENTS_READ,
    scopes::AUDIT_WRITE,
    scopes::RECORDS_READ,
    scopes::TOKENS_LEDGER,
];

/// The grant of a client acting as itself.
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
/// The grant of a citizen app exchanging a citizen's login (RFC 8693).
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 token type of what the exchange issues.
pub const ACCESS_TOKEN_TYPE_URN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// What the DPoP nonce secret is derived under from the signing keys.
const DPOP_NONCE_SECRET_LABEL: &str = "kartotek token service: DPoP nonce secret";
/// Most parameters in a token request form.
pub const FORM_PARAMS_MAX: usize = 16;

/// An RFC 6749 §5.2 error answer: `{"error": ..., "error_description": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    /// The HTTP status (400, 401 for `invalid_client`, 413, 503).
    pub status: StatusCode,
    /// The error code (`invalid_request`, `invalid_client`, `invalid_scope`, ...).
    pub error: &'static str,
    /// A human-readable reason, never secret.
    pub description: String,
    /// `Retry-After` seconds (a 429 of the per-client rate limit).
    pub retry_after_s: Option<u64>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            retry_after_s: None,
        }
    }

    /// 429 `temporarily_unavailable`: the client's token requests are over its rate; retry
    /// after `wait`.
    pub fn too_many(wait: std::time::Duration) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        OAuthError {
            retry_after_s: Some(secs),
            ..OAuthError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                format!("too many token requests from this client; retry in {secs} s"),
            )
        }
    }

    /// `invalid_request` (400).
    pub fn invalid_request(description: impl Into<String>) -> Self {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// `invalid_client` (401): client authentication failed.
    pub fn invalid_client(description: impl Into<String>) -> Self {
        OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    /// `invalid_scope` (400).
    pub fn invalid_scope(description: impl Into<String>) -> Self {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    /// `invalid_grant` (400): the subject token is not a valid login, or the registry does
    /// not allow what the exchange asks (no representation, no consent).
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    /// `invalid_target` (400, RFC 8693): the person has reserved themself against the
    /// target service.
    pub fn invalid_target(description: impl Into<String>) -> Self {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_target", description)
    }

    /// `unauthorized_client` (400): the client may not use this grant.
    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        OAuthError::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    /// `invalid_dpop_proof` (400, RFC 9449): the `DPoP` header's proof does not verify.
    pub fn invalid_dpop_proof(description: impl Into<String>) -> Self {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description)
    }

    /// `use_dpop_nonce` (400, RFC 9449 §8): the DPoP proof must carry the nonce of the
    /// answer's `DPoP-Nonce` header.
    pub fn use_dpop_nonce(description: impl Into<String>) -> Self {
        OAuthError::new(StatusCode::BAD_REQUEST, "use_dpop_nonce", description)
    }

    /// `unsupported_grant_type` (400).
    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            description,
        )
    }

    /// `temporarily_unavailable` (503): the cluster is away, or the replay guard is full.
    pub fn unavailable(description: impl Into<String>) -> Self {
        OAuthError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            description,
        )
    }

    /// `server_error` (500).
    pub fn server_error(description: impl Into<String>) -> Self {
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            description,
        )
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, axum::Json(body)).into_response();
        no_store(&mut response);
        if let Some(secs) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // RFC 6749 §5.2 shape, not a problem document: the request layer leaves it alone.
        response
            .extensions_mut()
            .insert(crate::layer::OwnErrorFormat);
        response
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub(crate) fn no_store(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A successful token answer (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TokenResponse {
    /// The signed `at+jwt`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// For a token exchange: what was issued (RFC 8693 §2.2.1), always an access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

/// Why the token service could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TokenSetupError {
    /// The signing keys could not be loaded or generated.
    #[error("token signing keys: {0}")]
    Keys(#[from] KeyError),
}

/// The token service: issuer, client directory, replay guard.
pub struct TokenService {
    issuer: Issuer,
    audience: String,
    lifetime_s: i64,
    directory: Arc<dyn ClientDirectory>,
    replay: Arc<dyn ReplayGuard>,
    metrics: Metrics,
    logins: std::sync::RwLock<Arc<LoginVerifier>>,
    consent_scopes: Vec<String>,
    proofs: kartotek_auth::dpop::ProofReplayCache,
    /// DPoP server nonces (`token.dpop_nonce_window_s`; none when 0).
    nonces: Option<kartotek_auth::dpop::NonceKey>,
    rates: rate::ClientRates,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("issuer", &self.issuer.issuer())
            .field("audience", &self.audience)
            .field("lifetime_s", &self.lifetime_s)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// The service of `config`: keys from `token.signing_keys_file`, or (dev issuer only; the
    /// configuration refuses otherwise) one ES256 key generated in memory.
    pub fn from_config(
        config: &FrontendConfig,
        directory: Arc<dyn ClientDirectory>,
        metrics: Metrics,
    ) -> Result<TokenService, TokenSetupError> {
        Ok(TokenService::new(
            config,
            Self::load_keys(config)?,
            directory,
            Arc::new(JtiReplayCache::default()),
            metrics,
        ))
    }

    /// The signing keys of `config`: from `token.signing_keys_file`, or (dev issuer only;
    /// the configuration refuses otherwise) one ES256 key generated in memory.
    pub fn load_keys(config: &FrontendConfig) -> Result<SigningKeySet, TokenSetupError> {
        Ok(match &config.token.signing_keys_file {
            Some(path) => SigningKeySet::from_file(path)?,
            None => {
                let key = SigningKey::generate_es256()?;
                tracing::warn!(
                    kid = key.kid(),
                    "no token.signing_keys_file: signing with a key generated in memory (dev \
                     only; tokens do not outlive this process)"
                );
                SigningKeySet::single(key)
            }
        })
    }

    /// The service of `config` with the given keys, directory and replay guard.
    pub fn new(
        config: &FrontendConfig,
        keys: SigningKeySet,
        directory: Arc<dyn ClientDirectory>,
        replay: Arc<dyn ReplayGuard>,
        metrics: Metrics,
    ) -> TokenService {
        let lifetime_s = i64::try_from(config.token.access_token_lifetime_s).unwrap_or(300);
        let nonces = match config.token.dpop_nonce_window_s {
            0 => None,
            window_s => Some(kartotek_auth::dpop::NonceKey::new(
                &keys.derived_secret(DPOP_NONCE_SECRET_LABEL),
                i64::try_from(window_s).unwrap_or(i64::MAX),
            )),
        };
        TokenService {
            issuer: Issuer::new(config.issuer(), keys, lifetime_s),
            audience: config.token.audience.clone(),
            lifetime_s,
            directory,
            replay,
            metrics,
            logins: std::sync::RwLock::new(Arc::new(LoginVerifier::new(
                Vec::new(),
                kartotek_auth::LEEWAY_S_DEFAULT,
            ))),
            consent_scopes: config.token.consent_scopes.clone(),
            proofs: kartotek_auth::dpop::ProofReplayCache::default(),
            nonces,
            rates: rate::ClientRates::new(
                config.token.requests_per_client_per_s,
                config.token.request_burst_per_client,
                rate::RATE_CLIENTS_MAX,
            ),
        }
    }

    /// This service, trusting `logins` for the token exchange's citizen logins.
    pub fn with_logins(self, logins: LoginVerifier) -> TokenService {
        self.set_logins(logins);
        self
    }

    /// Trusts `logins` from now on (the providers' keys were refreshed).
    pub fn set_logins(&self, logins: LoginVerifier) {
        *self.logins.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(logins);
    }

    /// The login verifier now.
    pub(crate) fn logins(&self) -> Arc<LoginVerifier> {
        self.logins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The DPoP nonce to hand out at `now_s` (`DPoP-Nonce` header), when nonces are on.
    pub fn dpop_nonce(&self, now_s: i64) -> Option<String> {
        self.nonces.as_ref().map(|n| n.issue(now_s))
    }

    /// The issuer.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The published JWK Set at `now_s`.
    pub fn jwks(&self, now_s: i64) -> Value {
        self.issuer.public_jwks(now_s)
    }

    /// RFC 8414 authorization-server metadata.
    pub fn metadata(&self) -> Value {
        let iss = self.issuer.issuer();
        let algs: Vec<&str> = TokenAlg::ALL.iter().map(|a| a.name()).collect();
        let scopes: Vec<&str> = scopes::ALL.iter().map(|(s, _)| *s).collect();
        json!({
            "issuer": iss,
            "token_endpoint": format!("{iss}/connect/token"),
            "revocation_endpoint": format!("{iss}/connect/revoke"),
            "revocation_endpoint_auth_methods_supported": ["private_key_jwt"],
            "introspection_endpoint": format!("{iss}/connect/introspect"),
            "introspection_endpoint_auth_methods_supported": ["private_key_jwt"],
            "jwks_uri": format!("{iss}/.well-known/jwks.json"),
            "grant_types_supported": [GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": algs,
            "dpop_signing_alg_values_supported": algs,
            "scopes_supported": scopes,
            "response_types_supported": [],
        })
    }

    /// Handles one token request (the form's parameters) at `now_s`, counting the outcome.
    pub async fn token(
        &self,
        params: &[(String, String)],
        now_s: i64,
    ) -> Result<TokenResponse, OAuthError> {
        self.token_with_proof(params, None, now_s).await
    }

    /// [`token`](Self::token) with the request's `DPoP` header: the token is then bound to
    /// the proof's key (`cnf.jkt`, `token_type` `DPoP`; RFC 9449).
    pub async fn token_with_proof(
        &self,
        params: &[(String, String)],
        dpop: Option<&str>,
        now_s: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let result = self.grant(params, dpop, now_s).await;
        match &result {
            Ok(t) => {
                let grant = if t.issued_token_type.is_some() {
                    "token_exchange"
                } else {
                    GRANT_CLIENT_CREDENTIALS
                };
                self.metrics.token_issued(grant);
                tracing::info!(grant, scope = %t.scope, "token issued");
            }
            Err(e) => {
                self.metrics.token_error(e.error);
                tracing::info!(error = e.error, reason = %e.description, "token refused");
            }
        }
        result
    }

    async fn grant(
        &self,
        params: &[(String, String)],
        dpop: Option<&str>,
        now_s: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let form = Form::new(params)?;
        let proof = match dpop {
            None => None,
            Some(proof) => {
                let endpoint = format!("{}/connect/token", self.issuer.issuer());
                let verified = kartotek_auth::dpop::verify_proof(
                    proof,
                    "POST",
                    &endpoint,
                    kartotek_auth::dpop::HtuMatch::Url,
                    None,
                    now_s,
                )
                .and_then(|p| match &self.nonces {
                    Some(nonces) => nonces.check(&p, now_s).map(|()| p),
                    None => Ok(p),
                })
                .and_then(|p| self.proofs.check_and_record(&p, now_s).map(|()| p))
                .map_err(|e| match e {
                    kartotek_auth::dpop::DpopError::UseNonce(_) => {
                        OAuthError::use_dpop_nonce(e.to_string())
                    }
                    e => OAuthError::invalid_dpop_proof(e.to_string()),
                })?;
                Some(verified)
            }
        };
        self.grant_for(&form, proof.as_ref(), now_s).await
    }

    /// The grant of `form`; with a verified DPoP `proof`, the token is bound to its key.
    async fn grant_for(
        &self,
        form: &Form<'_>,
        proof: Option<&kartotek_auth::dpop::DpopProof>,
        now_s: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let jkt = proof.map(|p| p.jkt.as_str());
        let exchange = match form.get("grant_type")? {
            Some(GRANT_CLIENT_CREDENTIALS) => false,
            Some(GRANT_TOKEN_EXCHANGE) => true,
            Some(_) => {
                return Err(OAuthError::unsupported_grant_type(format!(
                    "supported: {GRANT_CLIENT_CREDENTIALS}, {GRANT_TOKEN_EXCHANGE}"
                )));
            }
            None => return Err(OAuthError::invalid_request("grant_type is missing")),
        };
        let client = self.authenticate(form, proof, now_s).await?;
        if exchange {
            self.exchange(form, &client, jkt, now_s).await
        } else {
            let granted = granted_scopes(form.get("scope")?, &client.allowed_scopes)?;
            let claims = AccessClaims {
                org_parent: Some(client.org.clone()),
                ..AccessClaims::for_client(
                    self.issuer.issuer(),
                    &self.audience,
                    &client.client_id,
                    granted.join(" "),
                )
            };
            self.sign(claims, jkt, now_s)
        }
    }

    /// The claims of `token` if it is an access token this service signed and has not
    /// expired at `now_s` (signature, `iss`, `aud`, `typ`, times: the nodes' own check).
    pub(crate) fn own_token(&self, token: &str, now_s: i64) -> Option<AccessClaims> {
        let jwks = self.issuer.public_jwks(now_s).to_string();
        let issuer = kartotek_auth::TrustedIssuer::from_jwks_json(
            self.issuer.issuer(),
            &self.audience,
            &jwks,
        )
        .ok()?;
        kartotek_auth::TokenVerifier::new(vec![issuer], kartotek_auth::VerifierOptions::default())
            .verify(token, now_s)
            .ok()
    }

    /// RFC 7009 revocation: the client authenticates as for a token; a valid, unexpired
    /// token of this issuer that was issued to that client is stored as revoked in the
    /// cluster until it expires, and every node refuses it from then on. A token that is not
    /// valid (expired, another issuer's, garbage) needs nothing and answers success, as the
    /// RFC asks; a valid one of another client is refused.
    pub async fn revoke(&self, params: &[(String, String)], now_s: i64) -> Result<(), OAuthError> {
        let form = Form::new(params)?;
        let token = form
            .get("token")?
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        let client = self.authenticate(&form, None, now_s).await?;
        let Some(claims) = self.own_token(token, now_s) else {
            return Ok(());
        };
        if claims.client_id != client.client_id {
            return Err(OAuthError::unauthorized_client(
                "the token was issued to another client",
            ));
        }
        if claims.jti.is_empty() {
            return Ok(());
        }
        let id = LedgerId {
            kind: LedgerKind::Revoked,
            client_id: claims.client_id.clone(),
            jti: claims.jti.clone(),
            expires_at_s: claims.exp.max(now_s + 1) + kartotek_auth::LEEWAY_S_DEFAULT,
        };
        self.directory.revoke(&id).await.map_err(|e| {
            tracing::warn!(error = %e, "revoking in the token ledger");
            OAuthError::unavailable("the token ledger is unavailable")
        })?;
        tracing::info!(client_id = %client.client_id, "token revoked");
        Ok(())
    }

    /// RFC 7662 introspection: the caller authenticates as for a token and learns about a
    /// token issued to it or naming it in `aud` (a resource server); any other token, and
    /// one that is invalid, expired or revoked, is `{"active": false}`, so the endpoint tells
    /// nobody about tokens that are not theirs.
    pub async fn introspect(
        &self,
        params: &[(String, String)],
        now_s: i64,
    ) -> Result<Value, OAuthError> {
        let form = Form::new(params)?;
        let token = form
            .get("token")?
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        let caller = self.authenticate(&form, None, now_s).await?;
        let inactive = json!({"active": false});
        let Some(claims) = self.own_token(token, now_s) else {
            return Ok(inactive);
        };
        if claims.client_id != caller.client_id && !claims.aud.contains(&caller.client_id) {
            return Ok(inactive);
        }
        if !claims.jti.is_empty() {
            let revoked = self
                .directory
                .revoked(&claims.client_id, &claims.jti)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "asking the token ledger");
                    OAuthError::unavailable("the token ledger is unavailable")
                })?;
            if revoked {
                return Ok(inactive);
            }
        }
        let mut body =
            serde_json::to_value(&claims).map_err(|e| OAuthError::server_error(e.to_string()))?;
        if let Some(map) = body.as_object_mut() {
            map.insert("active".into(), Value::Bool(true));
            let bound = claims.cnf.is_some();
            map.insert(
                "token_type".into(),
                Value::from(if bound { "DPoP" } else { "Bearer" }),
            );
        }
        Ok(body)
    }

    /// `private_key_jwt` client authentication (RFC 7523), for every grant: the client
    /// exists and is active, its assertion verifies against its keys, and its `jti` is new.
    async fn authenticate(
        &self,
        form: &Form<'_>,
        proof: Option<&kartotek_auth::dpop::DpopProof>,
        now_s: i64,
    ) -> Result<DirectoryClient, OAuthError> {
        if form.get("client_secret")?.is_some() {
            return Err(OAuthError::invalid_client(
                "client secrets are not accepted; authenticate with private_key_jwt",
            ));
        }
        match form.get("client_assertion_type")? {
            Some(CLIENT_ASSERTION_TYPE) => {}
            Some(_) => {
                return Err(OAuthError::invalid_client(format!(
                    "client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
                )));
            }
            None => {
                return Err(OAuthError::invalid_client(
                    "client authentication required: private_key_jwt (client_assertion_type \
                     and client_assertion)",
                ));
            }
        }
        let assertion = form
            .get("client_assertion")?
            .ok_or_else(|| OAuthError::invalid_client("client_assertion is missing"))?;
        let client_id = assertion_client_id(assertion).map_err(assertion_error)?;
        if let Some(id) = form.get("client_id")?
            && id != client_id
        {
            return Err(OAuthError::invalid_client(
                "client_id differs from the assertion's iss",
            ));
        }
        let client = match self.directory.get(&client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(OAuthError::invalid_client("unknown client")),
            Err(e) => {
                tracing::warn!(error = %e, "reading the client record");
                return Err(OAuthError::unavailable(
                    "the client registry is unavailable",
                ));
            }
        };
        if !client.active {
            return Err(OAuthError::invalid_client("client is disabled"));
        }
        let verified = verify_client_assertion(
            assertion,
            &client_id,
            self.issuer.issuer(),
            &client.public_keys,
            now_s,
        )
        .map_err(assertion_error)?;
        // Charged only now that the assertion is the client's own.
        self.rates
            .take(&client_id, std::time::Instant::now())
            .map_err(OAuthError::too_many)?;
        // Scopes are checked before the jti is spent, so a refused scope can be retried with
        // the same assertion; the grant-specific checks after this point cannot.
        if let Some(requested) = form.get("scope")? {
            granted_scopes(Some(requested), &client.allowed_scopes)?;
        }
        // This process's cache refuses a replay here without asking the cluster; the
        // ledger then makes the assertion (and the proof) single-use for every frontend.
        match self
            .replay
            .check_and_record(&client_id, &verified.jti, verified.exp_s, now_s)
        {
            Ok(()) => {}
            Err(ReplayError::Replayed) => {
                return Err(OAuthError::invalid_client(
                    "client assertion was already used (jti)",
                ));
            }
            Err(ReplayError::Full) => {
                return Err(OAuthError::unavailable(
                    "too many client assertions in flight; retry shortly",
                ));
            }
        }
        let mut ids = vec![LedgerId {
            kind: LedgerKind::Assertion,
            client_id: client_id.clone(),
            jti: verified.jti.clone(),
            expires_at_s: verified.exp_s.max(now_s + 1) + kartotek_auth::LEEWAY_S_DEFAULT,
        }];
        if let Some(p) = proof {
            ids.push(LedgerId {
                kind: LedgerKind::Proof,
                client_id: client_id.clone(),
                jti: p.jti.clone(),
                expires_at_s: p.iat.max(now_s)
                    + kartotek_auth::dpop::DPOP_PROOF_MAX_AGE_S
                    + kartotek_auth::dpop::DPOP_LEEWAY_S,
            });
        }
        match self.directory.spend(&ids).await {
            Ok(Spent::Fresh) => Ok(client),
            Ok(Spent::Replayed(reason)) => Err(if reason.contains("dpop_proof") {
                OAuthError::invalid_dpop_proof("the DPoP proof was already used (jti)")
            } else {
                OAuthError::invalid_client("client assertion was already used (jti)")
            }),
            Err(e) => {
                tracing::warn!(error = %e, "spending the assertion in the token ledger");
                Err(OAuthError::unavailable("the token ledger is unavailable"))
            }
        }
    }

    /// The token exchange (RFC 8693) of a citizen app: `subject_token` is the citizen's
    /// login (an ID token of a trusted provider, or of the dev login); without `act_for` the
    /// token is for the citizen themself, with it for the person they act for, if a
    /// representation allows it now in `area` (default `*`, every area). `audience` names a
    /// national service the token is also for: a reservation of the person against it refuses
    /// the exchange. Scopes in `token.consent_scopes` need the person's granted consent to
    /// the client. The token never carries a Kartotek scope other than `kartotek:citizen`.
    async fn exchange(
        &self,
        form: &Form<'_>,
        client: &DirectoryClient,
        jkt: Option<&str>,
        now_s: i64,
    ) -> Result<TokenResponse, OAuthError> {
        if !client.allowed_scopes.iter().any(|s| s == scopes::CITIZEN) {
            return Err(OAuthError::unauthorized_client(format!(
                "only a citizen app (allowed {}) may exchange a citizen's login",
                scopes::CITIZEN
            )));
        }
        let by_access_token = match form.get("subject_token_type")? {
            Some(ID_TOKEN_TYPE | JWT_TOKEN_TYPE) => false,
            Some(ACCESS_TOKEN_TYPE_URN) => true,
            Some(_) => {
                return Err(OAuthError::invalid_request(format!(
                    "subject_token_type must be {ID_TOKEN_TYPE} (the citizen's login) or \
                     {ACCESS_TOKEN_TYPE_URN} (this service's token for the citizen, with act_for)"
                )));
            }
            None => return Err(OAuthError::invalid_request("subject_token_type is missing")),
        };
        if form.get("actor_token")?.is_some() {
            return Err(OAuthError::invalid_request(
                "actor_token is not supported: the subject token's citizen is the actor; name \
                 whom they act for with act_for",
            ));
        }
        if let Some(t) = form.get("requested_token_type")?
            && t != ACCESS_TOKEN_TYPE_URN
        {
            return Err(OAuthError::invalid_request(format!(
                "requested_token_type must be {ACCESS_TOKEN_TYPE_URN}"
            )));
        }
        let login = form
            .get("subject_token")?
            .ok_or_else(|| OAuthError::invalid_request("subject_token is missing"))?;
        let subject = if by_access_token {
            self.citizen_of_own_token(login, form.get("act_for")?.is_some(), client, now_s)?
        } else {
            let logins = self.logins();
            if logins.is_empty() {
                return Err(OAuthError::unauthorized_client(
                    "no citizen login provider is configured ([citizen_login]), or none has keys yet",
                ));
            }
            let citizen = logins
                .verify(login, &client.client_id, now_s)
                .map_err(|e| OAuthError::invalid_grant(format!("subject_token: {e}")))?;
            Subject {
                national_id: citizen.national_id.as_str().to_owned(),
                security_level: citizen.security_level.to_owned(),
                exp_max: None,
            }
        };
        let own = subject.national_id.clone();
        let person = match form.get("act_for")? {
            None => own.clone(),
            Some(p) => parse_national_id("act_for", p)
                .map_err(|e| OAuthError::invalid_request(e.to_string()))?
                .as_str()
                .to_owned(),
        };
        let acting = person != own;
        let area = match form.get("area")? {
            None => Area::ALL_TEXT.to_owned(),
            Some(a) => Area::parse("area", a)
                .map_err(|e| OAuthError::invalid_request(e.to_string()))?
                .as_str()
                .to_owned(),
        };
        let service = form
            .get("audience")?
            .map(|a| {
                ServiceName::parse("audience", a)
                    .map(|s| s.as_str().to_owned())
                    .map_err(|e| OAuthError::invalid_request(e.to_string()))
            })
            .transpose()?;
        let granted = exchange_scopes(form.get("scope")?, &client.allowed_scopes)?;
        let registry = |e: directory::DirectoryError| {
            tracing::warn!(error = %e, "token exchange: reading the registry");
            OAuthError::unavailable("the registry is unavailable")
        };
        if acting {
            let checked = self
                .directory
                .may_represent(&own, &person, &area)
                .await
                .map_err(registry)?;
            if !checked.allowed {
                return Err(OAuthError::invalid_grant(format!(
                    "the citizen may not act for act_for in area {area}: {}",
                    checked.reason
                )));
            }
        }
        if let Some(service) = &service
            && self
                .directory
                .reserved(&person, service)
                .await
                .map_err(registry)?
        {
            return Err(OAuthError::invalid_target(format!(
                "the person has a reservation against {service}"
            )));
        }
        for scope in granted.iter().filter(|s| self.consent_scopes.contains(s)) {
            let checked = self
                .directory
                .consented(&person, &client.client_id, scope)
                .await
                .map_err(registry)?;
            if !checked.allowed {
                return Err(OAuthError::invalid_grant(format!(
                    "scope {scope} needs the person's consent to this client: {}",
                    checked.reason
                )));
            }
        }
        let mut audiences = vec![self.audience.clone()];
        audiences.extend(service);
        let claims = AccessClaims {
            sub: person,
            aud: audiences,
            org_parent: Some(client.org.clone()),
            security_level: Some(subject.security_level),
            act: acting.then_some(kartotek_auth::Actor { sub: own }),
            representation_area: acting.then_some(area),
            ..AccessClaims::for_client(
                self.issuer.issuer(),
                &self.audience,
                &client.client_id,
                granted.join(" "),
            )
        };
        self.sign_until(claims, jkt, now_s, subject.exp_max)
    }

    /// The citizen of `token` when it is this service's own token for a citizen, issued to
    /// `client` (the same citizen app), not acting for anyone, not sender-bound: the subject
    /// of an `act_for` exchange after the citizen's login token has expired (ID-porten's
    /// live two minutes). Only `act_for`: a token is never renewed from itself, and the new
    /// token expires no later than this one, so the session is never longer than the login
    /// gave. (A revoked token is not looked up here: the client must still authenticate as
    /// the app the token was issued to, and what it gets ends when the revoked token would.)
    fn citizen_of_own_token(
        &self,
        token: &str,
        act_for: bool,
        client: &DirectoryClient,
        now_s: i64,
    ) -> Result<Subject, OAuthError> {
        if !act_for {
            return Err(OAuthError::invalid_request(format!(
                "subject_token_type {ACCESS_TOKEN_TYPE_URN} is only for act_for: renew a \
                 citizen's own token with their login"
            )));
        }
        let claims = self.own_token(token, now_s).ok_or_else(|| {
            OAuthError::invalid_grant("subject_token: not a valid token of this service")
        })?;
        let citizen = claims.scope.split(' ').any(|sc| sc == scopes::CITIZEN);
        if !citizen || claims.act.is_some() || claims.cnf.is_some() {
            return Err(OAuthError::invalid_grant(
                "subject_token: not a citizen's own bearer token",
            ));
        }
        if claims.client_id != client.client_id {
            return Err(OAuthError::invalid_grant(
                "subject_token: issued to another client",
            ));
        }
        let security_level = claims
            .security_level
            .ok_or_else(|| OAuthError::invalid_grant("subject_token: no security level"))?;
        Ok(Subject {
            national_id: claims.sub,
            security_level,
            exp_max: Some(claims.exp),
        })
    }

    /// Signs `claims` with fresh times and `jti`, living the configured lifetime, bound to
    /// `jkt` when given (`cnf.jkt`; `token_type` `DPoP`).
    fn sign(
        &self,
        claims: AccessClaims,
        jkt: Option<&str>,
        now_s: i64,
    ) -> Result<TokenResponse, OAuthError> {
        self.sign_until(claims, jkt, now_s, None)
    }

    /// [`sign`](Self::sign), expiring no later than `exp_max` when given.
    fn sign_until(
        &self,
        claims: AccessClaims,
        jkt: Option<&str>,
        now_s: i64,
        exp_max: Option<i64>,
    ) -> Result<TokenResponse, OAuthError> {
        let lifetime_s = match exp_max {
            Some(exp) => self.lifetime_s.min(exp.saturating_sub(now_s)),
            None => self.lifetime_s,
        };
        if lifetime_s <= 0 {
            return Err(OAuthError::invalid_grant("subject_token: expired"));
        }
        let exchange = claims.act.is_some() || claims.sub != claims.client_id;
        let claims = AccessClaims {
            exp: now_s.saturating_add(lifetime_s),
            nbf: Some(now_s),
            iat: now_s,
            jti: new_jti().map_err(|e| OAuthError::server_error(e.to_string()))?,
            cnf: jkt.map(|j| kartotek_auth::Confirmation { jkt: j.to_owned() }),
            ..claims
        };
        let access_token = self.issuer.sign(&claims).map_err(|e| {
            tracing::error!(error = %e, "signing an access token");
            OAuthError::server_error("could not sign the token")
        })?;
        Ok(TokenResponse {
            access_token,
            token_type: if claims.cnf.is_some() {
                "DPoP"
            } else {
                "Bearer"
            }
            .into(),
            expires_in: lifetime_s,
            scope: claims.scope,
            issued_token_type: exchange.then(|| ACCESS_TOKEN_TYPE_URN.to_owned()),
        })
    }
}

/// Whom a token exchange is for, from its subject token.
struct Subject {
    /// The citizen's national id.
    national_id: String,
    /// Their HelseID security level (from the login's `acr`).
    security_level: String,
    /// The subject token's own expiry, when the new token may not outlive it.
    exp_max: Option<i64>,
}

/// A token request's form: at most [`FORM_PARAMS_MAX`] parameters, each at most once.
struct Form<'a> {
    params: &'a [(String, String)],
}

impl<'a> Form<'a> {
    fn new(params: &'a [(String, String)]) -> Result<Form<'a>, OAuthError> {
        if params.len() > FORM_PARAMS_MAX {
            return Err(OAuthError::invalid_request(format!(
                "at most {FORM_PARAMS_MAX} parameters"
            )));
        }
        Ok(Form { params })
    }

    /// The parameter `name`, if sent (once).
    fn get(&self, name: &str) -> Result<Option<&'a str>, OAuthError> {
        let mut found = self.params.iter().filter(|(k, _)| k == name);
        let first = found.next().map(|(_, v)| v.as_str());
        if found.next().is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {name} is repeated"
            )));
        }
        Ok(first)
    }
}

/// The scopes of an exchanged token: the requested ones (default `kartotek:citizen`), each
/// allowed to the client, and no Kartotek scope but `kartotek:citizen` (a citizen's token
/// never carries personnel or operator rights, whatever the client may have).
fn exchange_scopes(requested: Option<&str>, allowed: &[String]) -> Result<Vec<String>, OAuthError> {
    let granted = granted_scopes(Some(requested.unwrap_or(scopes::CITIZEN)), allowed)?;
    if let Some(s) = granted
        .iter()
        .find(|s| scopes::is_known(s) && *s != scopes::CITIZEN)
    {
        return Err(OAuthError::invalid_scope(format!(
            "{s} is not for citizens; an exchanged token carries {} and API scopes only",
            scopes::CITIZEN
        )));
    }
    Ok(granted)
}

fn assertion_error(e: AssertionError) -> OAuthError {
    OAuthError::invalid_client(e.to_string())
}

/// The requested scopes (space-separated; none or empty: all allowed), each allowed to the
/// client; sorted, without duplicates.
fn granted_scopes(requested: Option<&str>, allowed: &[String]) -> Result<Vec<String>, OAuthError> {
    let mut granted: Vec<String> = match requested.map(str::trim).filter(|s| !s.is_empty()) {
        None => allowed
            .iter()
            .filter(|s| *s != scopes::TOKENS_LEDGER)
            .cloned()
            .collect(),
        Some(text) => {
            let mut out = Vec::new();
            for s in text.split(' ').filter(|s| !s.is_empty()) {
                if out.len() >= kartotek_auth::claims::SCOPES_PER_TOKEN_MAX {
                    return Err(OAuthError::invalid_scope("too many scopes"));
                }
                if s == scopes::TOKENS_LEDGER {
                    return Err(OAuthError::invalid_scope(format!(
                        "{} is the token service's own scope",
                        scopes::TOKENS_LEDGER
                    )));
                }
                if !allowed.iter().any(|a| a == s) {
                    let shown: String = s.chars().take(64).collect();
                    return Err(OAuthError::invalid_scope(format!(
                        "scope {shown:?} is not allowed for this client"
                    )));
                }
                out.push(s.to_owned());
            }
            out
        }
    };
    granted.sort();
    granted.dedup();
    if granted.is_empty() {
        return Err(OAuthError::invalid_scope(
            "the client has no allowed scopes",
        ));
    }
    Ok(granted)
}
