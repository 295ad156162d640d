//! The token service, after HelseID: `POST /connect/token` issues signed `at+jwt` access
//! tokens for the `client_credentials` grant to clients that authenticate with
//! `private_key_jwt` (RFC 7523) against the public keys of their client record in the
//! cluster; `GET /.well-known/jwks.json` publishes the signing keys (rotation in
//! `kartotek_auth::keys`); `GET /.well-known/oauth-authorization-server` is the RFC 8414
//! metadata.
//!
//! # Module map
//!
//! - this module: [`TokenService`] (the grant, independent of HTTP) and [`OAuthError`]
//!   (RFC 6749 §5.2 error answers).
//! - [`directory`]: [`ClientDirectory`](directory::ClientDirectory), where client records
//!   come from: the cluster through `kartotek-client`, or memory (tests).
//! - [`routes`]: the three HTTP handlers.
//!
//! A token request is refused unless: the body is a form of at most `token.request_bytes_max`
//! bytes with each parameter once; `grant_type` is `client_credentials`;
//! `client_assertion_type` is the JWT bearer type and `client_assertion` verifies
//! (`kartotek_auth::verify_client_assertion`: the client's keys, `aud` = the issuer, at most
//! 60 s to live, `typ` `client-authentication+jwt`); the client exists and is active; the
//! assertion's `jti` was not used before ([`JtiReplayCache`]: per process only, until a
//! cluster-backed guard exists); every requested `scope` is allowed to the client (no
//! `scope`: all its allowed scopes). The token's `sub` and `client_id` are the client, its
//! org claim the client record's org. Assertions and tokens are never logged.

pub mod directory;
pub mod routes;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kartotek_auth::{
    AccessClaims, AssertionError, CLIENT_ASSERTION_TYPE, Issuer, JtiReplayCache, KeyError,
    ReplayError, ReplayGuard, SigningKey, SigningKeySet, TokenAlg, assertion_client_id, new_jti,
    scopes, verify_client_assertion,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::FrontendConfig;
use crate::metrics::Metrics;
use directory::ClientDirectory;

/// The `client_id` and `sub` of the tokens the frontend signs for its own calls to the
/// cluster ([`kartotek_client::SelfIssued`]: it is an issuer the nodes trust, so it needs no
/// client of its own; the audit log names this id for its reads of client records).
pub const FRONTEND_CLIENT_ID: &str = "kartotek-frontend";
/// What those tokens allow: reading client records (the token service) and forwarding audit
/// events.
pub const FRONTEND_SCOPES: [&str; 2] = [scopes::CLIENTS_READ, scopes::AUDIT_WRITE];

/// The only grant type served so far.
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
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
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
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
        TokenService {
            issuer: Issuer::new(config.issuer(), keys, lifetime_s),
            audience: config.token.audience.clone(),
            lifetime_s,
            directory,
            replay,
            metrics,
        }
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
            "jwks_uri": format!("{iss}/.well-known/jwks.json"),
            "grant_types_supported": [GRANT_CLIENT_CREDENTIALS],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": algs,
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
        let result = self.grant(params, now_s).await;
        match &result {
            Ok(t) => {
                self.metrics.token_issued(GRANT_CLIENT_CREDENTIALS);
                tracing::info!(scope = %t.scope, "token issued");
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
        now_s: i64,
    ) -> Result<TokenResponse, OAuthError> {
        if params.len() > FORM_PARAMS_MAX {
            return Err(OAuthError::invalid_request(format!(
                "at most {FORM_PARAMS_MAX} parameters"
            )));
        }
        let param = |name: &str| -> Result<Option<&str>, OAuthError> {
            let mut found = params.iter().filter(|(k, _)| k == name);
            let first = found.next().map(|(_, v)| v.as_str());
            if found.next().is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name} is repeated"
                )));
            }
            Ok(first)
        };
        match param("grant_type")? {
            Some(GRANT_CLIENT_CREDENTIALS) => {}
            Some(_) => {
                return Err(OAuthError::unsupported_grant_type(
                    "only client_credentials is supported",
                ));
            }
            None => return Err(OAuthError::invalid_request("grant_type is missing")),
        }
        if param("client_secret")?.is_some() {
            return Err(OAuthError::invalid_client(
                "client secrets are not accepted; authenticate with private_key_jwt",
            ));
        }
        match param("client_assertion_type")? {
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
        let assertion = param("client_assertion")?
            .ok_or_else(|| OAuthError::invalid_client("client_assertion is missing"))?;
        let client_id = assertion_client_id(assertion).map_err(assertion_error)?;
        if let Some(id) = param("client_id")?
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
        let granted = granted_scopes(param("scope")?, &client.allowed_scopes)?;
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
        let claims = AccessClaims {
            exp: now_s.saturating_add(self.lifetime_s),
            nbf: Some(now_s),
            iat: now_s,
            jti: new_jti().map_err(|e| OAuthError::server_error(e.to_string()))?,
            org_parent: Some(client.org.clone()),
            ..AccessClaims::for_client(
                self.issuer.issuer(),
                &self.audience,
                &client_id,
                granted.join(" "),
            )
        };
        let access_token = self.issuer.sign(&claims).map_err(|e| {
            tracing::error!(error = %e, "signing an access token");
            OAuthError::server_error("could not sign the token")
        })?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: self.lifetime_s,
            scope: claims.scope,
        })
    }
}

fn assertion_error(e: AssertionError) -> OAuthError {
    OAuthError::invalid_client(e.to_string())
}

/// The requested scopes (space-separated; none or empty: all allowed), each allowed to the
/// client; sorted, without duplicates.
fn granted_scopes(requested: Option<&str>, allowed: &[String]) -> Result<Vec<String>, OAuthError> {
    let mut granted: Vec<String> = match requested.map(str::trim).filter(|s| !s.is_empty()) {
        None => allowed.to_vec(),
        Some(text) => {
            let mut out = Vec::new();
            for s in text.split(' ').filter(|s| !s.is_empty()) {
                if out.len() >= kartotek_auth::claims::SCOPES_PER_TOKEN_MAX {
                    return Err(OAuthError::invalid_scope("too many scopes"));
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
