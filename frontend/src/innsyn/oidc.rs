//! The citizen page's production login: the OpenID Connect authorisation-code flow with
//! PKCE at an external provider — ID-porten — configured in `innsyn.oidc`
//! ([`OidcLoginSettings`]).
//!
//! 1. `GET /innsyn/login/idporten` ([`start`]) makes a fresh `state`, `nonce` and PKCE
//!    verifier (RFC 7636, S256), keeps them in the flow cookie [`FLOW_COOKIE`]
//!    (`HttpOnly; SameSite=Lax; Path=/innsyn`, MAC under a secret derived from the token
//!    signing keys, so any frontend instance takes the callback; it lives
//!    `innsyn.oidc.flow_timeout_s`), and sends the browser to the provider's authorisation
//!    endpoint (`response_type=code`, `scope`, `acr_values`, `ui_locales`, the challenge).
//!    `SameSite=Lax` because the provider's redirect back is a cross-site navigation, on
//!    which a `Strict` cookie is not sent.
//! 2. The provider sends the browser to `GET /innsyn/callback` ([`callback`]) with `code`
//!    and `state` (or `error`). The callback needs the flow cookie, its MAC, its age, the
//!    same `state` (constant time), and `iss` equal to the configured issuer when the
//!    provider sends one (RFC 9207; ID-porten does): otherwise nothing is redeemed. The
//!    flow cookie is cleared by every answer (one callback per login).
//! 3. The code is redeemed at the token endpoint (`grant_type=authorization_code`, the
//!    `redirect_uri`, the PKCE verifier, and the page's client authentication:
//!    `client_secret_post` or `private_key_jwt`), from the frontend, never the browser.
//! 4. The answer's ID token is verified by the token service's login verifier (signature
//!    with the provider's JWK Set, `iss`, `aud`, expiry, the national id in `pid`, `acr`
//!    level: [`kartotek_auth::login`]), and its `nonce` must be the flow's (constant time).
//! 5. The ID token is exchanged (RFC 8693) exactly as the dev login's is
//!    ([`session::start_session`]): the citizen's session cookies are `SameSite=Strict`.
//!    The callback answers a small page that moves on to `/innsyn` itself (meta refresh and a
//!    link), not a redirect, because a `Strict` cookie set in a cross-site redirect chain is
//!    not sent with the next hop of that chain.
//!
//! Logout ([`logout_url`]) ends the provider's single sign-on session too, at its
//! end-session endpoint with the ID token as `id_token_hint`, back to `/innsyn`.
//!
//! The endpoints come from the settings, or from the provider's discovery document
//! (`<issuer>/.well-known/openid-configuration`, at most [`DISCOVERY_BYTES_MAX`], its
//! `issuer` compared exactly), fetched at the first login and kept; a failed fetch is tried
//! again at the next login. Nothing here logs a national id, a code or a token.

use std::sync::Arc;

use axum::http::HeaderValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Lang;
use super::session::{self, Cookies, PageError};
use crate::AppState;
use crate::config::{OidcClientAuth, OidcLoginSettings};
use crate::token::routes::now_s;

/// Starts a login at the provider (GET: a plain link works without JavaScript).
pub const START_PATH: &str = "/innsyn/login/idporten";
/// Where the provider sends the browser back (register `<public_base_url>/innsyn/callback`
/// as the client's redirect URI at the provider).
pub const CALLBACK_PATH: &str = "/innsyn/callback";
/// The flow cookie.
pub const FLOW_COOKIE: &str = "innsyn_oidc";
/// Largest discovery document, bytes.
pub const DISCOVERY_BYTES_MAX: usize = 64 * 1024;
/// Longest `code`, `state`, `iss`, `error` or `error_description` taken from a callback, bytes.
pub const CALLBACK_PARAM_BYTES_MAX: usize = 2048;
/// Longest secret in `client_secret_file`, bytes.
pub const CLIENT_SECRET_BYTES_MAX: usize = 1024;
/// Life of the page's `private_key_jwt` assertions, seconds.
const ASSERTION_LIFETIME_S: i64 = 60;
/// Random bytes in `state` and `nonce` (hex in the URL).
const STATE_BYTES: usize = 16;
/// What the flow cookie's MAC key is derived under.
const FLOW_SECRET_LABEL: &str = "kartotek innsyn: OIDC login flow";

/// The provider's endpoints as the page uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The authorisation endpoint.
    pub authorization: String,
    /// The token endpoint.
    pub token: String,
    /// The end-session endpoint, if the provider has one.
    pub end_session: Option<String>,
}

/// The configured provider and the endpoints learnt from its discovery document.
#[derive(Debug)]
pub struct Provider {
    settings: OidcLoginSettings,
    discovered: tokio::sync::Mutex<Option<Endpoints>>,
}

/// The part of a discovery document (OpenID Connect Discovery §3) the page reads.
#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

/// The part of a token answer the page reads.
#[derive(Deserialize)]
struct TokenAnswer {
    id_token: String,
}

impl Provider {
    /// The provider of `settings` (validated with the frontend's config).
    pub fn new(settings: OidcLoginSettings) -> Arc<Provider> {
        Arc::new(Provider {
            settings,
            discovered: tokio::sync::Mutex::new(None),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &OidcLoginSettings {
        &self.settings
    }

    /// The endpoints: the configured ones, the rest from the discovery document.
    pub async fn endpoints(&self) -> Result<Endpoints, PageError> {
        let s = &self.settings;
        let configured = |v: &String| (!v.is_empty()).then(|| v.clone());
        if let (Some(authorization), Some(token)) = (
            configured(&s.authorization_endpoint),
            configured(&s.token_endpoint),
        ) {
            return Ok(Endpoints {
                authorization,
                token,
                end_session: configured(&s.end_session_endpoint),
            });
        }
        let mut cache = self.discovered.lock().await;
        let found = match cache.as_ref() {
            Some(e) => e.clone(),
            None => {
                let e = self.discover().await?;
                *cache = Some(e.clone());
                e
            }
        };
        Ok(Endpoints {
            authorization: configured(&s.authorization_endpoint).unwrap_or(found.authorization),
            token: configured(&s.token_endpoint).unwrap_or(found.token),
            end_session: configured(&s.end_session_endpoint).or(found.end_session),
        })
    }

    async fn discover(&self) -> Result<Endpoints, PageError> {
        let url = format!("{}/.well-known/openid-configuration", self.settings.issuer);
        let body = kartotek_client::fetch_bytes(&url, DISCOVERY_BYTES_MAX)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "innsyn: the login provider's discovery document");
                PageError::ProviderUnavailable(format!("its discovery document: {e}"))
            })?;
        let doc: Discovery = serde_json::from_slice(&body).map_err(|e| {
            PageError::ProviderUnavailable(format!("its discovery document is not one: {e}"))
        })?;
        parse_discovery(&self.settings.issuer, doc)
    }
}

/// The endpoints of a discovery document, once its `issuer` is the configured one and its
/// endpoints are `https://` (or `http://` on a loopback host).
fn parse_discovery(issuer: &str, doc: Discovery) -> Result<Endpoints, PageError> {
    if doc.issuer != issuer {
        return Err(PageError::ProviderUnavailable(format!(
            "its discovery document names issuer {:?}, not {issuer:?}",
            doc.issuer.chars().take(128).collect::<String>()
        )));
    }
    let checked = |what: &str, url: String| {
        endpoint_ok(&url).then_some(url).ok_or_else(|| {
            PageError::ProviderUnavailable(format!(
                "its {what} is not an https:// URL (http:// only on a loopback host)"
            ))
        })
    };
    Ok(Endpoints {
        authorization: checked("authorization_endpoint", doc.authorization_endpoint)?,
        token: checked("token_endpoint", doc.token_endpoint)?,
        end_session: doc
            .end_session_endpoint
            .map(|u| checked("end_session_endpoint", u))
            .transpose()?,
    })
}

/// True for an endpoint the page may send a browser or a code to.
fn endpoint_ok(url: &str) -> bool {
    let Ok(uri) = url.parse::<axum::http::Uri>() else {
        return false;
    };
    let loopback = matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
    url.len() <= crate::config::OIDC_FIELD_BYTES_MAX
        && !url.contains('#')
        && match uri.scheme_str() {
            Some("https") => uri.host().is_some_and(|h| !h.is_empty()),
            Some("http") => loopback,
            _ => false,
        }
}

/// A started login, as the flow cookie keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// `state` (hex).
    pub state: String,
    /// `nonce` (hex).
    pub nonce: String,
    /// The PKCE verifier (base64url of 32 random bytes: 43 characters).
    pub verifier: String,
    /// When it started, seconds since the epoch.
    pub started_s: i64,
    /// The page's language.
    pub lang: Lang,
}

/// `n` random bytes, hex (from UUID v4s: the OS's random source).
fn random_hex(n: usize) -> String {
    let mut out = String::with_capacity(2 * n);
    while out.len() < 2 * n {
        out.push_str(&hex::encode(uuid::Uuid::new_v4().as_bytes()));
    }
    out.truncate(2 * n);
    out
}

impl Flow {
    /// A fresh flow started at `now_s`.
    pub fn new(lang: Lang, now_s: i64) -> Flow {
        let mut raw = [0u8; 32];
        raw[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        raw[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Flow {
            state: random_hex(STATE_BYTES),
            nonce: random_hex(STATE_BYTES),
            verifier: URL_SAFE_NO_PAD.encode(raw),
            started_s: now_s,
            lang,
        }
    }

    /// The PKCE S256 challenge of the verifier (RFC 7636 §4.2).
    pub fn challenge(&self) -> String {
        pkce_challenge(&self.verifier)
    }

    fn body(&self) -> String {
        format!(
            "{}.{}.{}.{}.{}",
            self.state,
            self.nonce,
            self.verifier,
            self.started_s,
            self.lang.code()
        )
    }

    /// The cookie value: the flow and its MAC.
    fn seal(&self, s: &AppState) -> String {
        let body = self.body();
        let mac = session::keyed_mac(s, FLOW_SECRET_LABEL, body.as_bytes());
        format!("{body}.{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// The flow of a cookie value, if its MAC is this frontend's and it is at most
    /// `timeout_s` old at `now_s`.
    fn open(s: &AppState, value: &str, timeout_s: u64, now_s: i64) -> Result<Flow, PageError> {
        let stale = || {
            PageError::Login(
                "this login was not started here or is out of date; start it again".into(),
            )
        };
        let (body, mac) = value.rsplit_once('.').ok_or_else(stale)?;
        let mac = hex::decode(mac).map_err(|_| stale())?;
        session::keyed_mac(s, FLOW_SECRET_LABEL, body.as_bytes())
            .verify_slice(&mac)
            .map_err(|_| stale())?;
        let parts: Vec<&str> = body.split('.').collect();
        let [state, nonce, verifier, started, lang] = parts[..] else {
            return Err(stale());
        };
        let started_s: i64 = started.parse().map_err(|_| stale())?;
        let age_s = now_s.saturating_sub(started_s);
        if age_s < 0 || age_s > i64::try_from(timeout_s).unwrap_or(i64::MAX) {
            return Err(stale());
        }
        Ok(Flow {
            state: state.to_owned(),
            nonce: nonce.to_owned(),
            verifier: verifier.to_owned(),
            started_s,
            lang: Lang::from_code(lang).unwrap_or_default(),
        })
    }
}

/// The PKCE S256 challenge of `verifier`: base64url(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Constant-time equality of two short strings.
fn same(a: &str, b: &str) -> bool {
    use subtle_eq::ct_eq;
    ct_eq(a.as_bytes(), b.as_bytes())
}

/// A constant-time comparison without another dependency: an HMAC tag comparison would do
/// too, but the lengths here are public, so XOR-folding equal-length inputs is enough.
mod subtle_eq {
    /// True when `a == b`, in time that depends only on the lengths.
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let mut diff = 0u8;
        for (x, y) in a.iter().zip(b) {
            diff |= x ^ y;
        }
        std::hint::black_box(diff) == 0
    }
}

/// The page's redirect URI.
pub(crate) fn redirect_uri(s: &AppState) -> String {
    format!("{}{CALLBACK_PATH}", s.config.public_base_url)
}

/// `url` with `params` appended as its query (after `?`, or `&` when it has one).
fn with_query(url: &str, params: &[(&str, &str)]) -> String {
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// The authorisation request of `flow` (OpenID Connect Core §3.1.2.1, RFC 7636).
pub fn authorization_url(
    settings: &OidcLoginSettings,
    endpoint: &str,
    redirect_uri: &str,
    flow: &Flow,
) -> String {
    let challenge = flow.challenge();
    with_query(
        endpoint,
        &[
            ("response_type", "code"),
            ("client_id", &settings.client_id),
            ("redirect_uri", redirect_uri),
            ("scope", &settings.scope),
            ("state", &flow.state),
            ("nonce", &flow.nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("acr_values", &settings.acr_values),
            ("ui_locales", flow.lang.code()),
            ("response_mode", "query"),
        ],
    )
}

/// The browser's answer from the provider (the callback's query).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorisation code.
    #[serde(default)]
    pub code: Option<String>,
    /// The `state` of the login this browser started.
    #[serde(default)]
    pub state: Option<String>,
    /// The provider's issuer (RFC 9207).
    #[serde(default)]
    pub iss: Option<String>,
    /// The provider's error code (e.g. `access_denied` when the citizen cancelled).
    #[serde(default)]
    pub error: Option<String>,
    /// The provider's description of the error.
    #[serde(default)]
    pub error_description: Option<String>,
}

/// A callback parameter, bounded and without control characters (shown on the page).
fn param<'a>(name: &'static str, v: Option<&'a String>) -> Result<Option<&'a str>, PageError> {
    match v {
        None => Ok(None),
        Some(v) if v.len() > CALLBACK_PARAM_BYTES_MAX || v.chars().any(char::is_control) => {
            Err(PageError::bad(
                name,
                &format!("at most {CALLBACK_PARAM_BYTES_MAX} bytes, no control characters"),
            ))
        }
        Some(v) => Ok(Some(v.as_str())),
    }
}

/// The flow cookie that starts `flow`, and where to send the browser.
pub(crate) async fn start(
    s: &AppState,
    provider: &Provider,
    lang: Lang,
) -> Result<(HeaderValue, String), PageError> {
    session::page_client_id(s)?;
    let endpoints = provider.endpoints().await?;
    let flow = Flow::new(lang, now_s());
    let to = authorization_url(
        provider.settings(),
        &endpoints.authorization,
        &redirect_uri(s),
        &flow,
    );
    let cookie = session::cookie_same_site(
        FLOW_COOKIE,
        &flow.seal(s),
        i64::try_from(provider.settings().flow_timeout_s).unwrap_or(600),
        session::secure(s),
        "Lax",
    );
    Ok((cookie, to))
}

/// The cookie that ends a flow.
pub(crate) fn clear_flow(s: &AppState) -> HeaderValue {
    session::cookie_same_site(FLOW_COOKIE, "", 0, session::secure(s), "Lax")
}

/// The callback: the session cookies of the citizen, and the flow's language.
pub(crate) async fn callback(
    s: &AppState,
    provider: &Provider,
    cookies: &Cookies,
    q: &CallbackQuery,
) -> Result<(Vec<HeaderValue>, Lang), PageError> {
    let settings = provider.settings();
    let now = now_s();
    let sealed = cookies.get(FLOW_COOKIE).ok_or_else(|| {
        PageError::Login(
            "no login was started in this browser (or it took too long); start it again".into(),
        )
    })?;
    let flow = Flow::open(s, sealed, settings.flow_timeout_s, now)?;
    let state = param("state", q.state.as_ref())?.unwrap_or_default();
    if !same(state, &flow.state) {
        return Err(PageError::Login(
            "the answer does not belong to the login this browser started (state)".into(),
        ));
    }
    if let Some(iss) = param("iss", q.iss.as_ref())?
        && iss != settings.issuer
    {
        return Err(PageError::Login(
            "the answer comes from another login provider (iss)".into(),
        ));
    }
    if let Some(error) = param("error", q.error.as_ref())? {
        let description = param("error_description", q.error_description.as_ref())?;
        return Err(PageError::Login(match description {
            Some(d) => format!("{error}: {d}"),
            None => error.to_owned(),
        }));
    }
    let code = param("code", q.code.as_ref())?
        .filter(|c| !c.is_empty())
        .ok_or_else(|| PageError::bad("code", "missing"))?;
    let endpoints = provider.endpoints().await?;
    let id_token = redeem(s, settings, &endpoints.token, code, &flow).await?;
    let client_id = session::page_client_id(s)?;
    let citizen = s
        .token
        .logins()
        .verify(&id_token, &client_id, now)
        .map_err(|e| PageError::Login(format!("the provider's ID token: {e}")))?;
    if citizen.issuer != settings.issuer {
        return Err(PageError::Login(
            "the ID token is from another provider".into(),
        ));
    }
    if !citizen
        .nonce
        .as_deref()
        .is_some_and(|n| same(n, &flow.nonce))
    {
        return Err(PageError::Login(
            "the ID token does not belong to this login (nonce)".into(),
        ));
    }
    let login_life_s = citizen.exp.saturating_sub(now).max(0);
    let mut set = session::start_session(s, &id_token, login_life_s).await?;
    set.push(clear_flow(s));
    tracing::info!(acr = %citizen.acr, "innsyn: a citizen logged in at the provider");
    Ok((set, flow.lang))
}

/// Redeems `code` at the token endpoint: the ID token.
async fn redeem(
    s: &AppState,
    settings: &OidcLoginSettings,
    token_endpoint: &str,
    code: &str,
    flow: &Flow,
) -> Result<String, PageError> {
    let redirect = redirect_uri(s);
    let auth = client_auth(settings, now_s())?;
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &redirect),
        ("code_verifier", &flow.verifier),
        ("client_id", &settings.client_id),
    ];
    form.extend(auth.iter().map(|(k, v)| (*k, v.as_str())));
    let body = kartotek_client::post_form_bytes(token_endpoint, &form)
        .await
        .map_err(|e| match e {
            kartotek_client::ClientError::Token { reason, .. }
                if reason.contains("invalid_grant") || reason.contains("invalid_client") =>
            {
                PageError::Login(format!("the provider refused the code: {reason}"))
            }
            other => {
                tracing::warn!(error = %other, "innsyn: redeeming a code at the provider");
                PageError::ProviderUnavailable(other.to_string())
            }
        })?;
    let answer: TokenAnswer = serde_json::from_slice(&body)
        .map_err(|_| PageError::ProviderUnavailable("its token answer has no id_token".into()))?;
    Ok(answer.id_token)
}

/// The page's client authentication at the provider's token endpoint.
fn client_auth(
    settings: &OidcLoginSettings,
    now_s: i64,
) -> Result<Vec<(&'static str, String)>, PageError> {
    let unreadable = |what: &str, e: String| {
        tracing::warn!(error = %e, "innsyn: reading {what}");
        PageError::ProviderUnavailable(format!("the page's {what} could not be read"))
    };
    match settings.client_auth {
        OidcClientAuth::ClientSecretPost => {
            let path = settings
                .client_secret_file
                .as_ref()
                .ok_or_else(|| unreadable("client secret", "unset".into()))?;
            let secret = read_small(path, CLIENT_SECRET_BYTES_MAX)
                .map_err(|e| unreadable("client secret", e))?;
            Ok(vec![("client_secret", secret.trim().to_owned())])
        }
        OidcClientAuth::PrivateKeyJwt => {
            let path = settings
                .client_key_file
                .as_ref()
                .ok_or_else(|| unreadable("client key", "unset".into()))?;
            let jwk = read_small(path, 16 * 1024).map_err(|e| unreadable("client key", e))?;
            let key = kartotek_auth::SigningKey::from_private_jwk(&jwk)
                .map_err(|e| unreadable("client key", e.to_string()))?;
            let assertion = kartotek_auth::sign_client_assertion(
                &key,
                &settings.client_id,
                &settings.issuer,
                now_s,
                ASSERTION_LIFETIME_S,
            )
            .map_err(|e| unreadable("client key", e.to_string()))?;
            Ok(vec![
                (
                    "client_assertion_type",
                    kartotek_auth::CLIENT_ASSERTION_TYPE.to_owned(),
                ),
                ("client_assertion", assertion),
            ])
        }
    }
}

/// A file of at most `bytes_max` bytes, as text.
fn read_small(path: &std::path::Path, bytes_max: usize) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(bytes_max as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() > bytes_max {
        return Err(format!("{}: larger than {bytes_max} bytes", path.display()));
    }
    Ok(text)
}

/// Where logout sends the browser: the provider's end-session endpoint (with the ID token
/// of the session as `id_token_hint`, back to `/innsyn`), when it has one.
pub(crate) async fn logout_url(
    s: &AppState,
    provider: &Provider,
    cookies: &Cookies,
) -> Option<String> {
    let id_token = cookies.get(session::LOGIN_COOKIE)?;
    let end_session = provider.endpoints().await.ok()?.end_session?;
    let back = format!("{}{}", s.config.public_base_url, super::INNSYN_PATH);
    Some(with_query(
        &end_session,
        &[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", &back),
            ("client_id", &provider.settings().client_id),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn flows_are_fresh_and_well_formed() {
        let a = Flow::new(Lang::En, 1_000);
        let b = Flow::new(Lang::En, 1_000);
        assert_ne!(a.state, b.state);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.verifier, b.verifier);
        assert_eq!(a.state.len(), 2 * STATE_BYTES);
        // RFC 7636 §4.1: 43 to 128 unreserved characters.
        assert_eq!(a.verifier.len(), 43);
        assert!(
            a.verifier
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c))
        );
    }

    fn settings() -> OidcLoginSettings {
        OidcLoginSettings {
            issuer: "https://idporten.example".into(),
            client_id: "innsyn-app".into(),
            client_auth: OidcClientAuth::ClientSecretPost,
            client_secret_file: Some("/dev/null".into()),
            client_key_file: None,
            authorization_endpoint: String::new(),
            token_endpoint: String::new(),
            end_session_endpoint: String::new(),
            scope: "openid profile".into(),
            acr_values: "idporten-loa-high".into(),
            flow_timeout_s: 600,
        }
    }

    #[test]
    fn the_authorization_request_has_every_parameter() {
        let flow = Flow::new(Lang::Nb, 1);
        let url = authorization_url(
            &settings(),
            "https://idporten.example/authorize?x=1",
            "https://kartotek.example/innsyn/callback",
            &flow,
        );
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "https://idporten.example/authorize");
        let q: std::collections::BTreeMap<String, String> =
            serde_urlencoded::from_str(query).unwrap();
        assert_eq!(q["x"], "1");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "innsyn-app");
        assert_eq!(
            q["redirect_uri"],
            "https://kartotek.example/innsyn/callback"
        );
        assert_eq!(q["scope"], "openid profile");
        assert_eq!(q["state"], flow.state);
        assert_eq!(q["nonce"], flow.nonce);
        assert_eq!(q["code_challenge"], pkce_challenge(&flow.verifier));
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["acr_values"], "idporten-loa-high");
        assert_eq!(q["ui_locales"], "nb");
        assert!(
            !url.contains(&flow.verifier),
            "the verifier never leaves the frontend"
        );
    }

    #[test]
    fn discovery_needs_the_same_issuer_and_safe_endpoints() {
        let doc = |iss: &str, auth: &str| Discovery {
            issuer: iss.into(),
            authorization_endpoint: auth.into(),
            token_endpoint: "https://idporten.example/token".into(),
            end_session_endpoint: Some("https://idporten.example/endsession".into()),
        };
        let ok = parse_discovery(
            "https://idporten.example",
            doc(
                "https://idporten.example",
                "https://idporten.example/authorize",
            ),
        )
        .unwrap();
        assert_eq!(ok.token, "https://idporten.example/token");
        assert_eq!(
            ok.end_session.as_deref(),
            Some("https://idporten.example/endsession")
        );
        for (iss, auth) in [
            ("https://evil.example", "https://idporten.example/authorize"),
            (
                "https://idporten.example/",
                "https://idporten.example/authorize",
            ),
            (
                "https://idporten.example",
                "http://idporten.example/authorize",
            ),
            ("https://idporten.example", "javascript:alert(1)"),
        ] {
            assert!(
                parse_discovery("https://idporten.example", doc(iss, auth)).is_err(),
                "{iss} {auth}"
            );
        }
        assert!(endpoint_ok("http://127.0.0.1:9/authorize"));
    }

    fn state() -> AppState {
        use crate::token::{TokenService, directory::MemoryDirectory};
        let config = crate::config::FrontendConfig::default();
        let metrics = crate::metrics::Metrics::new();
        let token = TokenService::new(
            &config,
            kartotek_auth::SigningKeySet::single(
                kartotek_auth::SigningKey::generate_es256().unwrap(),
            ),
            Arc::new(MemoryDirectory::new()),
            Arc::new(kartotek_auth::JtiReplayCache::default()),
            metrics.clone(),
        );
        let client = kartotek_client::KartotekClient::new(config.client_config()).unwrap();
        crate::server::state_with(config, client, metrics, token)
    }

    #[test]
    fn the_flow_cookie_opens_only_untouched_fresh_and_here() {
        let (here, elsewhere) = (state(), state());
        let flow = Flow::new(Lang::En, 10_000);
        let sealed = flow.seal(&here);
        assert_eq!(Flow::open(&here, &sealed, 600, 10_100).unwrap(), flow);
        // Too old, or from the future.
        assert!(Flow::open(&here, &sealed, 600, 10_601).is_err());
        assert!(Flow::open(&here, &sealed, 600, 9_000).is_err());
        // Another frontend's keys.
        assert!(Flow::open(&elsewhere, &sealed, 600, 10_100).is_err());
        // Any byte changed: the state, the verifier, the time, the MAC.
        for i in 0..sealed.len() {
            let mut bytes = sealed.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            let Ok(t) = String::from_utf8(bytes) else {
                continue;
            };
            if t != sealed {
                assert!(Flow::open(&here, &t, 600, 10_100).is_err(), "byte {i}");
            }
        }
        assert!(Flow::open(&here, "", 600, 10_100).is_err());
        assert!(Flow::open(&here, "a.b.c", 600, 10_100).is_err());
    }

    #[test]
    fn constant_time_equality_is_equality() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(!same("", "a"));
    }
}
