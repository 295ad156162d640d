//! Access tokens: where a call's `authorization: Bearer <token>` comes from.
//!
//! A [`KartotekClient`](crate::KartotekClient) asks its [`TokenSource`] for a token before
//! every attempt of a call. Two sources come with the client:
//!
//! - [`StaticToken`]: one token given by the caller (`--token`, a token from `kartotek token`),
//!   sent as is until it expires on the server.
//! - [`ClientCredentials`]: a *client file* ([`ClientFile`]: client id, token endpoint, issuer,
//!   scopes and the client's private JWK). It gets tokens itself with the OAuth
//!   `client_credentials` grant and `private_key_jwt` client authentication (RFC 7523: a
//!   fresh, single-use, 60-second client assertion signed with the private key; no client
//!   secret ever exists), caches the token and renews it [`RENEW_BEFORE_EXPIRY_S`] seconds
//!   before it expires (or at half its life, for short-lived tokens). One fetch runs at a time;
//!   concurrent calls wait for it and share its token.
//!
//!   With [`ClientCredentials::with_exchange`] a citizen app gets its tokens by the RFC 8693
//!   token exchange of a citizen's login instead ([`Exchange`]: the login token, and whom
//!   the citizen acts for); [`dev_login`] gets such a login from `kartotek dev`'s dev login.
//!
//! - [`SelfIssued`]: tokens signed here with an issuer's own keys, for a program that *is*
//!   a trusted issuer (the frontend's calls to the cluster, `kartotek dev`'s set-up, test
//!   harnesses): each a copy of a claims template with a fresh `iat`/`exp`/`jti`.
//!
//! When a node answers UNAUTHENTICATED the client drops the cached token
//! ([`TokenSource::invalidate`]) and tries once more with a new one: the node may have been
//! given new issuer keys, or the token was revoked.
//!
//! Limits: a client file of at most [`CLIENT_FILE_BYTES_MAX`], a token answer of at most
//! [`TOKEN_RESPONSE_BYTES_MAX`], a fetch of at most [`TOKEN_FETCH_TIMEOUT_MS`]. Tokens and
//! private keys are never logged, and `Debug` shows neither.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kartotek_auth::{
    AccessClaims, CLIENT_ASSERTION_TYPE, Issuer, SigningKey, new_jti, sign_client_assertion,
};
use serde::{Deserialize, Serialize};
use tonic::metadata::AsciiMetadataValue;

use crate::error::ClientError;

/// Largest client file read, in bytes.
pub const CLIENT_FILE_BYTES_MAX: u64 = 64 * 1024;
/// Largest token-endpoint answer read, in bytes.
pub const TOKEN_RESPONSE_BYTES_MAX: usize = 64 * 1024;
/// A cached token is renewed this many seconds before it expires.
pub const RENEW_BEFORE_EXPIRY_S: u64 = 30;
/// Time allowed for one token request (connect, send, read the answer).
pub const TOKEN_FETCH_TIMEOUT_MS: u64 = 10_000;
/// Longest accepted access token, in bytes.
pub const ACCESS_TOKEN_BYTES_MAX: usize = 16 * 1024;
/// Lifetime of the client assertions this client signs, in seconds (the token service
/// accepts at most 60).
pub const ASSERTION_LIFETIME_S: i64 = 60;

/// One access token, ready to be sent. `Debug` never shows it.
#[derive(Clone)]
pub struct BearerToken {
    /// `Bearer <token>` (or `DPoP <token>`), marked sensitive.
    header: AsciiMetadataValue,
    token: Arc<str>,
    /// Bound to a key (RFC 9449): sent as `DPoP`, each call with a proof.
    dpop: bool,
}

impl BearerToken {
    /// A bearer token from its compact text; it must be non-empty visible ASCII of at most
    /// [`ACCESS_TOKEN_BYTES_MAX`] bytes.
    pub fn new(token: &str) -> Result<BearerToken, ClientError> {
        BearerToken::with_scheme(token, false)
    }

    /// A DPoP-bound token (RFC 9449): sent as `authorization: DPoP <token>`, every call with a
    /// proof of the key it is bound to ([`TokenSource::dpop_key`]).
    pub fn dpop(token: &str) -> Result<BearerToken, ClientError> {
        BearerToken::with_scheme(token, true)
    }

    fn with_scheme(token: &str, dpop: bool) -> Result<BearerToken, ClientError> {
        if token.is_empty() || token.len() > ACCESS_TOKEN_BYTES_MAX {
            return Err(ClientError::Config(format!(
                "an access token must be 1 to {ACCESS_TOKEN_BYTES_MAX} bytes"
            )));
        }
        if !token.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err(ClientError::Config(
                "token must be printable ASCII without spaces".into(),
            ));
        }
        let scheme = if dpop { "DPoP" } else { "Bearer" };
        let mut header = AsciiMetadataValue::try_from(format!("{scheme} {token}"))
            .map_err(|_| ClientError::Config("token is not a valid header value".into()))?;
        header.set_sensitive(true);
        Ok(BearerToken {
            header,
            token: token.into(),
            dpop,
        })
    }

    /// Whether the token is DPoP-bound.
    pub fn is_dpop(&self) -> bool {
        self.dpop
    }

    /// The token's compact text (for `kartotek token`; never log it).
    pub fn secret(&self) -> &str {
        &self.token
    }

    /// The `authorization` header value.
    pub(crate) fn header(&self) -> &AsciiMetadataValue {
        &self.header
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl PartialEq for BearerToken {
    fn eq(&self, other: &Self) -> bool {
        self.token == other.token
    }
}

/// Where a client's access tokens come from. Implement it to get tokens another way (a
/// service's own token cache, a token the frontend issues itself).
pub trait TokenSource: Send + Sync + fmt::Debug + 'static {
    /// A token that is valid now (fetched or renewed if needed).
    fn token(&self) -> BoxFuture<'_, Result<BearerToken, ClientError>>;

    /// A node refused `rejected` as unauthenticated: forget it if it is still cached, so
    /// that the next [`token`](Self::token) gets a new one.
    fn invalidate(&self, rejected: &BearerToken) {
        let _ = rejected;
    }

    /// The key DPoP-bound tokens of this source are bound to (none: Bearer tokens only).
    fn dpop_key(&self) -> Option<Arc<SigningKey>> {
        None
    }
}

/// A fixed token.
#[derive(Debug, Clone)]
pub struct StaticToken(BearerToken);

impl StaticToken {
    /// The source that always gives `token`.
    pub fn new(token: &str) -> Result<StaticToken, ClientError> {
        BearerToken::new(token).map(StaticToken)
    }
}

impl TokenSource for StaticToken {
    fn token(&self) -> BoxFuture<'_, Result<BearerToken, ClientError>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// A client file: what a client needs to get its own access tokens. JSON, written by
/// `kartotek dev` under `<data-dir>/clients/` or by an operator when a client is registered.
///
/// ```json
/// {
///   "client_id": "dev-health-service",
///   "issuer": "http://127.0.0.1:8080",
///   "token_endpoint": "http://127.0.0.1:8080/connect/token",
///   "scope": "kartotek:locator.read kartotek:locator.write",
///   "private_jwk": { "kty": "EC", "crv": "P-256", "kid": "…", "x": "…", "y": "…", "d": "…" }
/// }
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    /// The client's id in the client registry (the assertion's `iss` and `sub`).
    pub client_id: String,
    /// The token service's issuer (the assertion's `aud`).
    pub issuer: String,
    /// Where tokens are fetched (`http://` or `https://`).
    pub token_endpoint: String,
    /// Scopes asked for, space-separated; absent: every scope the client is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client's private key as a JWK (ES256 or EdDSA); its public half is in the
    /// client's record in the cluster.
    pub private_jwk: serde_json::Value,
    /// Free text shown by tools (`kartotek dev` says what the client is for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl fmt::Debug for ClientFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientFile")
            .field("client_id", &self.client_id)
            .field("issuer", &self.issuer)
            .field("token_endpoint", &self.token_endpoint)
            .field("scope", &self.scope)
            .field("private_jwk", &"<redacted>")
            .finish()
    }
}

impl ClientFile {
    /// Reads and checks the client file at `path` (at most [`CLIENT_FILE_BYTES_MAX`]).
    pub fn load(path: &Path) -> Result<ClientFile, ClientError> {
        use std::io::Read;
        let shown = path.display();
        let mut text = zeroize::Zeroizing::new(String::new());
        // Read at most one byte past the limit, so a file that grows meanwhile cannot make
        // this read unbounded.
        std::fs::File::open(path)
            .and_then(|f| f.take(CLIENT_FILE_BYTES_MAX + 1).read_to_string(&mut text))
            .map_err(|e| ClientError::Config(format!("client file {shown}: {e}")))?;
        if text.len() as u64 > CLIENT_FILE_BYTES_MAX {
            return Err(ClientError::Config(format!(
                "client file {shown} is over {CLIENT_FILE_BYTES_MAX} bytes"
            )));
        }
        let file: ClientFile = serde_json::from_str(&text)
            .map_err(|e| ClientError::Config(format!("client file {shown}: {e}")))?;
        file.validate()
            .map_err(|e| ClientError::Config(format!("client file {shown}: {e}")))?;
        Ok(file)
    }

    /// Checks the fields: a client id, an issuer, an `http(s)://` token endpoint and a
    /// private key this client can sign with.
    pub fn validate(&self) -> Result<(), String> {
        kartotek_domain::fields::check_token("client_id", &self.client_id, 128)
            .map_err(|e| e.to_string())?;
        if self.issuer.is_empty() || self.issuer.len() > 512 {
            return Err("issuer must be 1 to 512 bytes".into());
        }
        endpoint_uri(&self.token_endpoint)?;
        if let Some(scope) = &self.scope
            && (scope.len() > 1024 || scope.chars().any(|c| c.is_control()))
        {
            return Err("scope must be at most 1,024 bytes without control characters".into());
        }
        self.signing_key()?;
        Ok(())
    }

    /// The client's private key (to sign its own assertions).
    pub fn signing_key(&self) -> Result<SigningKey, String> {
        let json = zeroize::Zeroizing::new(self.private_jwk.to_string());
        SigningKey::from_private_jwk(&json).map_err(|e| format!("private_jwk: {e}"))
    }
}

fn endpoint_uri(endpoint: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = endpoint
        .parse()
        .map_err(|e| format!("token_endpoint {endpoint:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(format!(
            "token_endpoint {endpoint:?} must be an http:// or https:// URL"
        )),
    }
}

/// The token endpoint's JSON answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    token_type: String,
    expires_in: u64,
    #[serde(default)]
    scope: Option<String>,
}

/// An error answer (RFC 6749 §5.2).
#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Clone)]
struct Cached {
    token: BearerToken,
    renew_at: Instant,
    scope: String,
    expires_in_s: u64,
}

/// The HTTP client of a token endpoint: TLS (the system's CA certificates) for `https://`,
/// none for `http://` (so a machine without CA certificates can still reach a dev issuer).
enum Http {
    Plain(HttpClient<HttpConnector, Full<Bytes>>),
    Tls(HttpClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>),
}

impl Http {
    fn for_endpoint(endpoint: &hyper::Uri) -> Result<Http, ClientError> {
        let builder = HttpClient::builder(TokioExecutor::new());
        if endpoint.scheme_str() != Some("https") {
            return Ok(Http::Plain(builder.build(HttpConnector::new())));
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| ClientError::Config(format!("loading the system's CA certificates: {e}")))?
            .https_only()
            .enable_http1()
            .build();
        Ok(Http::Tls(builder.build(https)))
    }

    async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
        match self {
            Http::Plain(c) => c.request(request).await,
            Http::Tls(c) => c.request(request).await,
        }
    }
}

/// Tokens from a token endpoint with `client_credentials` and `private_key_jwt`, cached and
/// renewed (see the [module docs](self)).
pub struct ClientCredentials {
    file: ClientFile,
    key: SigningKey,
    endpoint: hyper::Uri,
    http: Http,
    cached: Mutex<Option<Cached>>,
    /// Held while a fetch runs: one at a time.
    fetching: tokio::sync::Mutex<()>,
    /// A token exchange instead of `client_credentials`.
    exchange: Option<Exchange>,
    /// Ask for DPoP-bound tokens (RFC 9449), bound to this key (made in memory).
    dpop: Option<Arc<SigningKey>>,
    /// The token service's last DPoP nonce (RFC 9449 §8), put in the next proof.
    dpop_nonce: Mutex<Option<String>>,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.file.client_id)
            .field("token_endpoint", &self.file.token_endpoint)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// The source for the client file at `path`.
    pub fn from_file(path: &Path) -> Result<ClientCredentials, ClientError> {
        ClientCredentials::new(ClientFile::load(path)?)
    }

    /// The source for `file` (validated here).
    pub fn new(file: ClientFile) -> Result<ClientCredentials, ClientError> {
        file.validate().map_err(ClientError::Config)?;
        let key = file.signing_key().map_err(ClientError::Config)?;
        let endpoint = endpoint_uri(&file.token_endpoint).map_err(ClientError::Config)?;
        let http = Http::for_endpoint(&endpoint)?;
        Ok(ClientCredentials {
            file,
            key,
            endpoint,
            http,
            cached: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            exchange: None,
            dpop: None,
            dpop_nonce: Mutex::new(None),
        })
    }

    /// This source, getting its tokens by the token exchange `exchange` (a citizen app).
    pub fn with_exchange(mut self, exchange: Exchange) -> ClientCredentials {
        self.exchange = Some(exchange);
        self
    }

    /// This source, asking for DPoP-bound tokens (RFC 9449): a key is made in memory for the
    /// life of the process, each token request carries a proof of it, and every call with
    /// the token carries a fresh proof (the client does this). A stolen token is then useless
    /// without the key.
    pub fn with_dpop(mut self) -> Result<ClientCredentials, ClientError> {
        let key = SigningKey::generate_es256()
            .map_err(|e| ClientError::Config(format!("making a DPoP key: {e}")))?;
        self.dpop = Some(Arc::new(key));
        Ok(self)
    }

    /// The client file this source uses.
    pub fn file(&self) -> &ClientFile {
        &self.file
    }

    /// The scopes of the cached token (empty before the first fetch).
    pub fn granted_scope(&self) -> String {
        self.cached_now().map(|c| c.scope).unwrap_or_default()
    }

    fn cached_now(&self) -> Option<Cached> {
        let guard = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        guard.clone().filter(|c| Instant::now() < c.renew_at)
    }

    async fn get(&self) -> Result<BearerToken, ClientError> {
        if let Some(c) = self.cached_now() {
            return Ok(c.token);
        }
        let _one_at_a_time = self.fetching.lock().await;
        // Another call may have fetched while this one waited.
        if let Some(c) = self.cached_now() {
            return Ok(c.token);
        }
        let fetched = self.fetch(self.file.scope.as_deref()).await?;
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some(fetched.clone());
        Ok(fetched.token)
    }

    /// Fetches a new token for `scope` (None: the file's default), bypassing the cache;
    /// for `kartotek token --scope`. Also returns its lifetime in seconds (`expires_in`).
    pub async fn fetch_token(
        &self,
        scope: Option<&str>,
    ) -> Result<(BearerToken, u64), ClientError> {
        let c = self.fetch(scope.or(self.file.scope.as_deref())).await?;
        Ok((c.token, c.expires_in_s))
    }

    /// One token request; with DPoP, once more if the token service asks for its nonce
    /// (`use_dpop_nonce`, RFC 9449 §8) — a fresh assertion and a proof with the nonce.
    async fn fetch(&self, scope: Option<&str>) -> Result<Cached, ClientError> {
        let fail = |reason: String| ClientError::Token {
            endpoint: self.file.token_endpoint.clone(),
            reason,
        };
        match self.fetch_once(scope).await {
            Err(refusal)
                if self.dpop.is_some()
                    && refusal.error.as_deref() == Some("use_dpop_nonce")
                    && refusal.dpop_nonce.is_some() =>
            {
                self.fetch_once(scope).await.map_err(|r| fail(r.reason))
            }
            other => other.map_err(|r| fail(r.reason)),
        }
    }

    fn remember_nonce(&self, nonce: Option<&String>) {
        if let Some(n) = nonce {
            *self.dpop_nonce.lock().unwrap_or_else(|e| e.into_inner()) = Some(n.clone());
        }
    }

    async fn fetch_once(&self, scope: Option<&str>) -> Result<Cached, FormRefusal> {
        let fail = FormRefusal::local;
        let now_s = unix_now_s();
        let assertion = sign_client_assertion(
            &self.key,
            &self.file.client_id,
            &self.file.issuer,
            now_s,
            ASSERTION_LIFETIME_S,
        )
        .map_err(|e| fail(format!("signing the client assertion: {e}")))?;
        let mut form: Vec<(&str, &str)> = vec![
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ];
        match &self.exchange {
            None => form.push(("grant_type", "client_credentials")),
            Some(x) => {
                form.extend([
                    ("grant_type", GRANT_TOKEN_EXCHANGE),
                    ("subject_token", x.login_token.secret()),
                    ("subject_token_type", ID_TOKEN_TYPE),
                ]);
                for (name, value) in [
                    ("act_for", &x.act_for),
                    ("area", &x.area),
                    ("audience", &x.audience),
                ] {
                    if let Some(v) = value {
                        form.push((name, v));
                    }
                }
            }
        }
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let proof = match &self.dpop {
            None => None,
            Some(key) => {
                let nonce = self
                    .dpop_nonce
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                Some(
                    kartotek_auth::dpop::sign_proof_with_nonce(
                        key,
                        "POST",
                        &self.file.token_endpoint,
                        None,
                        nonce.as_deref(),
                        now_s,
                    )
                    .map_err(|e| fail(format!("signing the DPoP proof: {e}")))?,
                )
            }
        };
        let sent_at = Instant::now();
        let answered = post_form(&self.http, &self.endpoint, &form, proof.as_deref()).await;
        self.remember_nonce(match &answered {
            Ok(a) => a.dpop_nonce.as_ref(),
            Err(r) => r.dpop_nonce.as_ref(),
        });
        let body = answered?.body;
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("the answer is not a token response: {e}")))?;
        let token = match (
            self.dpop.is_some(),
            answer.token_type.to_ascii_lowercase().as_str(),
        ) {
            (false, "bearer") => BearerToken::new(&answer.access_token),
            (true, "dpop") => BearerToken::dpop(&answer.access_token),
            (want_dpop, _) => {
                return Err(fail(format!(
                    "token_type {:?}, expected {}",
                    cut(&answer.token_type),
                    if want_dpop { "DPoP" } else { "Bearer" }
                )));
            }
        }
        .map_err(|e| fail(e.to_string()))?;
        let lifetime = Duration::from_secs(answer.expires_in);
        let early = Duration::from_secs(RENEW_BEFORE_EXPIRY_S).min(lifetime / 2);
        Ok(Cached {
            token,
            renew_at: sent_at + lifetime.saturating_sub(early),
            scope: answer.scope.unwrap_or_default(),
            expires_in_s: answer.expires_in,
        })
    }
}

/// `GET url` (an `http://` or `https://` URL; TLS with the system's CA certificates) and the
/// body of a 2xx answer, at most `bytes_max` bytes, within [`TOKEN_FETCH_TIMEOUT_MS`]: how the
/// token service fetches a login provider's JWK Set (`jwks_uri`).
pub async fn fetch_bytes(url: &str, bytes_max: usize) -> Result<Bytes, ClientError> {
    let fail = |reason: String| ClientError::Token {
        endpoint: url.to_owned(),
        reason,
    };
    let uri = endpoint_uri(url).map_err(&fail)?;
    let http = Http::for_endpoint(&uri)?;
    let request = hyper::Request::get(uri)
        .header(hyper::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| fail(format!("building the request: {e}")))?;
    let answer = async {
        let response = http.send(request).await.map_err(|e| format!("{e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        Limited::new(response.into_body(), bytes_max)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| format!("reading the answer (at most {bytes_max} bytes): {e}"))
    };
    tokio::time::timeout(Duration::from_millis(TOKEN_FETCH_TIMEOUT_MS), answer)
        .await
        .map_err(|_| fail(format!("no answer within {TOKEN_FETCH_TIMEOUT_MS} ms")))?
        .map_err(fail)
}

/// `POST url` of the form `form` (`application/x-www-form-urlencoded`; an `http://` or
/// `https://` URL, TLS with the system's CA certificates) and the body of a 2xx answer (at
/// most [`TOKEN_RESPONSE_BYTES_MAX`], within [`TOKEN_FETCH_TIMEOUT_MS`]); a refusal's reason
/// names the RFC 6749 `error` and `error_description` when the answer had them. How the
/// citizen page redeems an authorisation code at an OpenID provider's token endpoint.
pub async fn post_form_bytes(url: &str, form: &[(&str, &str)]) -> Result<Bytes, ClientError> {
    let fail = |reason: String| ClientError::Token {
        endpoint: url.to_owned(),
        reason,
    };
    let uri = endpoint_uri(url).map_err(&fail)?;
    let http = Http::for_endpoint(&uri)?;
    post_form(&http, &uri, form, None)
        .await
        .map(|a| a.body)
        .map_err(|r| fail(r.reason))
}

/// RFC 8693's grant type.
const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693's token type of an OpenID Connect ID token (the citizen's login).
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

/// A 2xx answer to a form POST.
struct FormAnswer {
    body: Bytes,
    /// Its `DPoP-Nonce` header (RFC 9449 §8).
    dpop_nonce: Option<String>,
}

/// Why a form POST (or what was made of its answer) failed.
struct FormRefusal {
    /// Why, for people (with the RFC 6749 error and description when the answer had them).
    reason: String,
    /// The answer's RFC 6749 `error` code.
    error: Option<String>,
    /// The answer's `DPoP-Nonce` header.
    dpop_nonce: Option<String>,
}

impl FormRefusal {
    /// A failure on this side (nothing from the server).
    fn local(reason: String) -> FormRefusal {
        FormRefusal {
            reason,
            error: None,
            dpop_nonce: None,
        }
    }
}

/// The `DPoP-Nonce` header of an answer, if it is a plausible nonce.
fn dpop_nonce_of(headers: &hyper::HeaderMap) -> Option<String> {
    headers
        .get("dpop-nonce")
        .and_then(|v| v.to_str().ok())
        .filter(|n| !n.is_empty() && n.len() <= kartotek_auth::dpop::DPOP_NONCE_BYTES_MAX)
        .map(str::to_owned)
}

/// POSTs `form` to `endpoint` and returns the body of a 2xx answer (at most
/// [`TOKEN_RESPONSE_BYTES_MAX`], within [`TOKEN_FETCH_TIMEOUT_MS`]); otherwise why not, with
/// the RFC 6749 error of the answer when it has one.
async fn post_form(
    http: &Http,
    endpoint: &hyper::Uri,
    form: &[(&str, &str)],
    dpop: Option<&str>,
) -> Result<FormAnswer, FormRefusal> {
    let fail = FormRefusal::local;
    let body = serde_urlencoded::to_string(form)
        .map_err(|e| fail(format!("encoding the request: {e}")))?;
    let mut request = hyper::Request::post(endpoint.clone())
        .header(
            hyper::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(hyper::header::ACCEPT, "application/json");
    if let Some(proof) = dpop {
        request = request.header("dpop", proof);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| fail(format!("building the request: {e}")))?;
    let answer = async {
        let response = http.send(request).await.map_err(|e| format!("{e}"))?;
        let status = response.status();
        let dpop_nonce = dpop_nonce_of(response.headers());
        let body = Limited::new(response.into_body(), TOKEN_RESPONSE_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, dpop_nonce, body))
    };
    let (status, dpop_nonce, body) =
        tokio::time::timeout(Duration::from_millis(TOKEN_FETCH_TIMEOUT_MS), answer)
            .await
            .map_err(|_| fail(format!("no answer within {TOKEN_FETCH_TIMEOUT_MS} ms")))?
            .map_err(fail)?;
    if !status.is_success() {
        let error = serde_json::from_slice::<ErrorAnswer>(&body).ok();
        return Err(FormRefusal {
            reason: match &error {
                Some(e) => match &e.error_description {
                    Some(d) => format!("{}: {}", cut(&e.error), cut(d)),
                    None => cut(&e.error),
                },
                None => format!("HTTP {status}"),
            },
            error: error.map(|e| e.error),
            dpop_nonce,
        });
    }
    Ok(FormAnswer { body, dpop_nonce })
}

/// A token exchange (RFC 8693) instead of `client_credentials`: a citizen app exchanging the
/// citizen's login (`login_token`, an ID token from ID-porten or the dev login) for a token
/// for the citizen, or — `act_for` — for the person they act for.
#[derive(Clone)]
pub struct Exchange {
    /// The citizen's login token.
    pub login_token: BearerToken,
    /// National id of the person to act for (a representation must allow it).
    pub act_for: Option<String>,
    /// The representation area (default `*`, every area).
    pub area: Option<String>,
    /// A national service the token is also for (a reservation against it refuses).
    pub audience: Option<String>,
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("act_for", &self.act_for.as_ref().map(|_| "(set)"))
            .field("area", &self.area)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Largest dev login answer, bytes.
const DEV_LOGIN_ANSWER_BYTES_MAX: usize = 16 * 1024;

/// DEV ONLY: logs in as the synthetic national id `pid` at the dev login of the token
/// service of `file` (`/dev/login` beside its token endpoint, which `kartotek dev` runs and production refuses)
/// and returns the login token, addressed to the file's client.
pub async fn dev_login(file: &ClientFile, pid: &str) -> Result<BearerToken, ClientError> {
    // The token service's base: where its token endpoint is (the issuer URL may name an
    // address of an earlier start).
    let base = file
        .token_endpoint
        .strip_suffix("/connect/token")
        .unwrap_or(&file.issuer);
    let url = format!("{base}/dev/login");
    let fail = |reason: String| ClientError::Token {
        endpoint: url.clone(),
        reason,
    };
    let endpoint = endpoint_uri(&url).map_err(&fail)?;
    let http = Http::for_endpoint(&endpoint)?;
    let body = post_form(
        &http,
        &endpoint,
        &[("pid", pid), ("client_id", &file.client_id)],
        None,
    )
    .await
    .map_err(|r| fail(r.reason))?
    .body;
    if body.len() > DEV_LOGIN_ANSWER_BYTES_MAX {
        return Err(fail("answer too large".into()));
    }
    #[derive(Deserialize)]
    struct Answer {
        id_token: String,
    }
    let answer: Answer =
        serde_json::from_slice(&body).map_err(|e| fail(format!("not a dev login answer: {e}")))?;
    BearerToken::new(&answer.id_token).map_err(|e| fail(e.to_string()))
}

impl TokenSource for ClientCredentials {
    fn token(&self) -> BoxFuture<'_, Result<BearerToken, ClientError>> {
        Box::pin(self.get())
    }

    fn dpop_key(&self) -> Option<Arc<SigningKey>> {
        self.dpop.clone()
    }

    fn invalidate(&self, rejected: &BearerToken) {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if cached.as_ref().is_some_and(|c| &c.token == rejected) {
            *cached = None;
        }
    }
}

/// Tokens signed with an issuer's own keys (see the [module docs](self)), cached and renewed
/// like [`ClientCredentials`]' tokens.
pub struct SelfIssued {
    issuer: Issuer,
    template: AccessClaims,
    cached: Mutex<Option<(BearerToken, Instant)>>,
}

impl fmt::Debug for SelfIssued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfIssued")
            .field("issuer", &self.issuer.issuer())
            .field("client_id", &self.template.client_id)
            .finish_non_exhaustive()
    }
}

impl SelfIssued {
    /// Tokens of `issuer` for client `client_id` (also the `sub`) with `scopes`, for
    /// `audience`.
    pub fn new(issuer: Issuer, audience: &str, client_id: &str, scopes: &[&str]) -> SelfIssued {
        let template =
            AccessClaims::for_client(issuer.issuer(), audience, client_id, scopes.join(" "));
        SelfIssued::from_template(issuer, template)
    }

    /// Tokens that are copies of `template` (its `iat`, `nbf`, `exp` and `jti` are set at
    /// each signing; `exp` = now + the issuer's lifetime).
    pub fn from_template(issuer: Issuer, template: AccessClaims) -> SelfIssued {
        SelfIssued {
            issuer,
            template,
            cached: Mutex::new(None),
        }
    }

    fn get(&self) -> Result<BearerToken, ClientError> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((token, renew_at)) = cached.as_ref()
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let fail = |reason: String| ClientError::Token {
            endpoint: format!("{} (self-issued)", self.issuer.issuer()),
            reason,
        };
        let now_s = unix_now_s();
        let lifetime_s = self.issuer.lifetime_s_max().max(1);
        let claims = AccessClaims {
            exp: now_s.saturating_add(lifetime_s),
            nbf: Some(now_s),
            iat: now_s,
            jti: new_jti().map_err(|e| fail(e.to_string()))?,
            ..self.template.clone()
        };
        let jwt = self.issuer.sign(&claims).map_err(|e| fail(e.to_string()))?;
        let token = BearerToken::new(&jwt)?;
        let lifetime = Duration::from_secs(lifetime_s.unsigned_abs());
        let early = Duration::from_secs(RENEW_BEFORE_EXPIRY_S).min(lifetime / 2);
        *cached = Some((token.clone(), Instant::now() + lifetime - early));
        Ok(token)
    }
}

impl TokenSource for SelfIssued {
    fn token(&self) -> BoxFuture<'_, Result<BearerToken, ClientError>> {
        let result = self.get();
        Box::pin(async move { result })
    }

    fn invalidate(&self, rejected: &BearerToken) {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if cached.as_ref().is_some_and(|(t, _)| t == rejected) {
            *cached = None;
        }
    }
}

pub(crate) fn unix_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A server-given text cut to 256 bytes (at a char boundary), control characters dropped.
fn cut(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .scan(0usize, |len, c| {
            *len += c.len_utf8();
            (*len <= 256).then_some(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> ClientFile {
        let key = SigningKey::generate_es256().unwrap();
        ClientFile {
            client_id: "svc".into(),
            issuer: "http://127.0.0.1:1".into(),
            token_endpoint: "http://127.0.0.1:1/connect/token".into(),
            scope: None,
            private_jwk: key.private_jwk(),
            description: None,
        }
    }

    #[test]
    fn client_files_are_checked() {
        assert!(file().validate().is_ok());
        let mut f = file();
        f.token_endpoint = "ftp://x/connect/token".into();
        assert!(f.validate().unwrap_err().contains("http"));
        let mut f = file();
        f.private_jwk = serde_json::json!({"kty": "EC"});
        assert!(f.validate().unwrap_err().contains("private_jwk"));
        let mut f = file();
        f.client_id = String::new();
        assert!(f.validate().is_err());
        let shown = format!("{:?}", file());
        assert!(
            shown.contains("<redacted>") && !shown.contains("\"d\""),
            "{shown}"
        );
    }

    #[test]
    fn tokens_are_checked_and_never_shown() {
        assert!(BearerToken::new("").is_err());
        assert!(BearerToken::new("a b").is_err());
        assert!(BearerToken::new(&"a".repeat(ACCESS_TOKEN_BYTES_MAX + 1)).is_err());
        let t = BearerToken::new("abc.def.ghi").unwrap();
        assert_eq!(t.secret(), "abc.def.ghi");
        assert_eq!(format!("{t:?}"), "BearerToken(<redacted>)");
        assert!(t.header().is_sensitive());
    }

    #[tokio::test]
    async fn an_unreachable_token_endpoint_is_a_token_error() {
        let source = ClientCredentials::new(file()).unwrap();
        let err = source.token().await.unwrap_err();
        assert!(matches!(err, ClientError::Token { .. }), "{err:?}");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    #[tokio::test]
    async fn self_issued_tokens_verify_carry_their_scopes_and_are_cached() {
        use kartotek_auth::{SigningKeySet, TokenVerifier, VerifierOptions, scopes};
        let issuer = Issuer::new(
            "http://127.0.0.1:8080",
            SigningKeySet::single(SigningKey::generate_es256().unwrap()),
            300,
        );
        let now_s = unix_now_s();
        let trusted = issuer.trusted_issuer("kartotek", now_s).unwrap();
        let source = SelfIssued::new(issuer, "kartotek", "me", &[scopes::CLIENTS_READ]);
        let first = source.token().await.unwrap();
        assert_eq!(source.token().await.unwrap(), first, "cached");
        let verifier = TokenVerifier::new(vec![trusted], VerifierOptions::default());
        let claims = verifier.verify(first.secret(), now_s).unwrap();
        assert_eq!(
            (claims.client_id.as_str(), claims.sub.as_str()),
            ("me", "me")
        );
        assert!(claims.has_scope(scopes::CLIENTS_READ));
        assert!(!claims.has_scope(scopes::ADMIN));
        source.invalidate(&first);
        assert_ne!(
            source.token().await.unwrap(),
            first,
            "renewed after a refusal"
        );
    }

    #[test]
    fn server_texts_are_cut() {
        assert_eq!(cut("a\nb"), "ab");
        assert_eq!(cut(&"é".repeat(200)).len(), 256);
    }
}
