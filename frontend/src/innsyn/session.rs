//! The citizen page's session: what the browser holds, how it is checked, and the token
//! exchanges behind it.
//!
//! Cookies, all `HttpOnly; SameSite=Strict; Path=/innsyn` (and `Secure` when
//! `public_base_url` is `https://`), so no script and no other site's request carries them:
//! - [`SESSION_COOKIE`]: the citizen's access token from the exchange (verified on every
//!   request: signature, issuer, audience, expiry, scope `kartotek:citizen`, no `act`);
//! - [`LOGIN_COOKIE`]: their login token (the provider's ID token), needed to renew an
//!   expired access token (the represented persons' views are exchanged `act_for` from the
//!   access token, and live no longer than it); the session ends when it expires (dev
//!   login: 10 min; ID-porten's ID tokens live 2 min, so
//!   there the session is the access token's life, and the cookie keeps the ID token as
//!   long, for the provider's logout);
//! - `innsyn_oidc` ([`super::oidc`]): a login started at the external provider, `SameSite=Lax`
//!   (it must come back on the provider's redirect), MAC-protected, gone after the callback;
//! - [`CSRF_COOKIE`]: a random nonce. Every POST form carries `csrf` = HMAC-SHA256 of the nonce
//!   under a secret derived from the token signing keys (a signed double submit: a site that
//!   can plant a cookie still cannot make the matching token);
//! - [`LANG_COOKIE`]: `nb` or `en`.
//!
//! Nothing of the session is kept in the frontend, so any instance serves any request.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use hmac::{Hmac, Mac};
use kartotek_auth::login::{ACR_SUBSTANTIAL, ID_TOKEN_TYPE};
use kartotek_auth::{CLIENT_ASSERTION_TYPE, scopes, sign_client_assertion};
use kartotek_client::{ClientError, ClientFile, KartotekClient, StaticToken};
use sha2::Sha256;

use crate::AppState;
use crate::problem::HttpError;
use crate::token::routes::now_s;
use crate::token::{ACCESS_TOKEN_TYPE_URN, GRANT_TOKEN_EXCHANGE, OAuthError};

/// The access token cookie.
pub const SESSION_COOKIE: &str = "innsyn_session";
/// The login token cookie.
pub const LOGIN_COOKIE: &str = "innsyn_login";
/// The CSRF nonce cookie.
pub const CSRF_COOKIE: &str = "innsyn_csrf";
/// The language cookie.
pub const LANG_COOKIE: &str = "innsyn_lang";
/// Life of the CSRF nonce cookie, seconds.
pub const CSRF_COOKIE_MAX_AGE_S: i64 = 12 * 3600;
/// Life of the language cookie, seconds.
pub const LANG_COOKIE_MAX_AGE_S: i64 = 365 * 24 * 3600;
/// Largest `Cookie` header read, bytes (a larger one is read as no cookies).
pub const COOKIE_HEADER_BYTES_MAX: usize = 16 * 1024;
/// Most cookies read from a request.
pub const COOKIES_MAX: usize = 32;
/// Most fields in a form of the page.
pub const FORM_FIELDS_MAX: usize = 16;
/// Bytes of a CSRF nonce, hex-encoded twice as many characters.
const NONCE_BYTES: usize = 16;
/// Life of the page's client assertions, seconds.
const ASSERTION_LIFETIME_S: i64 = 30;
/// What the CSRF secret is derived under from the signing keys.
const CSRF_SECRET_LABEL: &str = "kartotek innsyn: CSRF tokens";

/// Why a request of the page could not be served; shown on the page, never with a token.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// `innsyn.client_file` is unset, or the dev login is off.
    #[error("no citizen login is configured for this page")]
    NoLogin,
    /// The client file could not be read.
    #[error("the page's client file: {0}")]
    ClientFile(String),
    /// A form field is wrong; nothing changed.
    #[error("{field}: {reason}")]
    Bad {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The form's CSRF token is missing or wrong; nothing changed.
    #[error("the form is out of date or was not sent by this page; load the page again")]
    Csrf,
    /// The session is over (expired, or the frontend's keys changed).
    #[error("the session is over; log in again")]
    SessionExpired,
    /// The token service refused (the login, or acting for the person).
    #[error("{0}")]
    Refused(String),
    /// The representation gives areas other than the log only.
    #[error("the representation does not give you the person's log now")]
    NotForLog,
    /// No such person in the list of whom the citizen represents.
    #[error("no such person among those you represent now")]
    NoSuchPerson,
    /// The cluster refused or failed.
    #[error("{0}")]
    Cluster(HttpError),
    /// The login at the external provider failed or was refused (the provider's error, or
    /// a callback that does not belong to a login this browser started).
    #[error("the login failed: {0}")]
    Login(String),
    /// The external provider could not be reached or answered nonsense.
    #[error("the login provider is unavailable: {0}")]
    ProviderUnavailable(String),
}

impl PageError {
    /// A [`PageError::Bad`] about `field`.
    pub fn bad(field: &'static str, reason: &str) -> PageError {
        PageError::Bad {
            field,
            reason: reason.to_owned(),
        }
    }

    /// The error of a cluster call.
    pub fn from_client(e: ClientError) -> PageError {
        PageError::Cluster(HttpError::Cluster(e))
    }

    /// The HTTP status of the page that reports it.
    pub fn status(&self) -> StatusCode {
        match self {
            PageError::NoLogin => StatusCode::NOT_FOUND,
            PageError::ClientFile(_) => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Bad { .. } => StatusCode::BAD_REQUEST,
            PageError::Csrf | PageError::Refused(_) | PageError::NotForLog => StatusCode::FORBIDDEN,
            PageError::SessionExpired => StatusCode::UNAUTHORIZED,
            PageError::NoSuchPerson => StatusCode::NOT_FOUND,
            PageError::Login(_) => StatusCode::FORBIDDEN,
            PageError::ProviderUnavailable(_) => StatusCode::BAD_GATEWAY,
            PageError::Cluster(e) => e.problem().status_code(),
        }
    }

    /// What the page says (the cluster's own reason for a refusal).
    pub fn detail(&self) -> String {
        match self {
            PageError::Cluster(e) => {
                let p = e.problem();
                p.detail.unwrap_or(p.title)
            }
            other => other.to_string(),
        }
    }
}

fn refused(e: OAuthError) -> PageError {
    if e.status.is_server_error() {
        PageError::Cluster(HttpError::ClusterUnavailable(e.description))
    } else {
        PageError::Refused(e.description)
    }
}

/// The cookies of a request (at most [`COOKIES_MAX`], from a header of at most
/// [`COOKIE_HEADER_BYTES_MAX`] bytes).
#[derive(Debug, Clone, Default)]
pub struct Cookies(BTreeMap<String, String>);

impl Cookies {
    /// The cookies of `headers`.
    pub fn from_headers(headers: &HeaderMap) -> Cookies {
        let mut out = BTreeMap::new();
        for value in headers.get_all(header::COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            if text.len() > COOKIE_HEADER_BYTES_MAX {
                continue;
            }
            for pair in text.split(';') {
                if out.len() >= COOKIES_MAX {
                    break;
                }
                if let Some((k, v)) = pair.trim().split_once('=') {
                    out.entry(k.trim().to_owned())
                        .or_insert_with(|| v.trim().to_owned());
                }
            }
        }
        Cookies(out)
    }

    /// The value of cookie `name`, if sent and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// True when the page is served over https (cookies get `Secure`).
pub(crate) fn secure(s: &AppState) -> bool {
    s.config.public_base_url.starts_with("https://")
}

/// A `Set-Cookie` value: `name=value`, HttpOnly, SameSite=Strict, Path=/innsyn, `max_age_s`
/// (0 clears it).
pub fn cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    cookie_same_site(name, value, max_age_s, secure, "Strict")
}

/// [`cookie`] with another `SameSite` (`Lax`: the login flow's cookie, which must come back
/// on the provider's cross-site redirect to the callback).
pub fn cookie_same_site(
    name: &str,
    value: &str,
    max_age_s: i64,
    secure: bool,
    same_site: &str,
) -> HeaderValue {
    let text = format!(
        "{name}={value}; Path={}; HttpOnly; SameSite={same_site}; Max-Age={}{}",
        super::INNSYN_PATH,
        max_age_s.max(0),
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The cookies that end a session.
pub(crate) fn clear_session(s: &AppState) -> Vec<HeaderValue> {
    let secure = secure(s);
    vec![
        cookie(SESSION_COOKIE, "", 0, secure),
        cookie(LOGIN_COOKIE, "", 0, secure),
    ]
}

/// A fresh CSRF nonce (hex).
pub fn new_nonce() -> String {
    let a = uuid::Uuid::new_v4();
    hex::encode(&a.as_bytes()[..NONCE_BYTES])
}

/// True when `nonce` has the shape [`new_nonce`] makes.
pub fn nonce_ok(nonce: &str) -> bool {
    nonce.len() == 2 * NONCE_BYTES && nonce.bytes().all(|b| b.is_ascii_hexdigit())
}

fn csrf_mac(s: &AppState, nonce: &str) -> Hmac<Sha256> {
    keyed_mac(s, CSRF_SECRET_LABEL, nonce.as_bytes())
}

/// HMAC-SHA256 of `data` under the secret derived as `label` from the token signing keys
/// (the same on every frontend instance that shares the keys).
pub(crate) fn keyed_mac(s: &AppState, label: &str, data: &[u8]) -> Hmac<Sha256> {
    let secret = s.token.issuer().keys().derived_secret(label);
    let mut mac = match Hmac::<Sha256>::new_from_slice(&secret[..]) {
        Ok(m) => m,
        // HMAC takes a key of any length.
        Err(_) => unreachable_mac(),
    };
    mac.update(data);
    mac
}

#[cold]
fn unreachable_mac() -> Hmac<Sha256> {
    match Hmac::<Sha256>::new_from_slice(&[0u8; 32]) {
        Ok(m) => m,
        Err(_) => std::process::abort(),
    }
}

/// The CSRF token of the browser with `nonce` (what each form carries).
pub(crate) fn csrf_token(s: &AppState, nonce: &str) -> String {
    hex::encode(csrf_mac(s, nonce).finalize().into_bytes())
}

/// Checks a form's `csrf` against the browser's nonce cookie (constant time).
pub(crate) fn check_csrf(
    s: &AppState,
    cookies: &Cookies,
    sent: Option<&str>,
) -> Result<(), PageError> {
    let nonce = cookies
        .get(CSRF_COOKIE)
        .filter(|n| nonce_ok(n))
        .ok_or(PageError::Csrf)?;
    let sent = sent
        .and_then(|t| hex::decode(t).ok())
        .ok_or(PageError::Csrf)?;
    csrf_mac(s, nonce)
        .verify_slice(&sent)
        .map_err(|_| PageError::Csrf)
}

/// A form of the page: at most [`super::FORM_BYTES_MAX`] bytes and [`FORM_FIELDS_MAX`]
/// fields, each once.
#[derive(Debug, Clone, Default)]
pub struct Form(BTreeMap<String, String>);

impl Form {
    /// The field `name`, if sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Parses a form body.
pub fn form(body: &[u8]) -> Result<Form, PageError> {
    if body.len() > super::FORM_BYTES_MAX {
        return Err(PageError::bad(
            "body",
            &format!("larger than {} bytes", super::FORM_BYTES_MAX),
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| PageError::bad("body", "not a URL-encoded form"))?;
    if pairs.len() > FORM_FIELDS_MAX {
        return Err(PageError::bad(
            "body",
            &format!("at most {FORM_FIELDS_MAX} fields"),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if out.contains_key(&k) {
            return Err(PageError::Bad {
                field: "body",
                reason: format!(
                    "field {} is repeated",
                    k.chars().take(32).collect::<String>()
                ),
            });
        }
        out.insert(k, v);
    }
    Ok(Form(out))
}

/// A verified session: the citizen (from the token only) and their tokens.
#[derive(Clone)]
pub struct Session {
    /// The citizen's national id (`sub` of the verified token).
    pub person: String,
    token: String,
    /// Cookies to set when the access token was renewed.
    pub set_cookies: Vec<HeaderValue>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    /// A cluster client that calls with the citizen's own token.
    pub(crate) fn client(&self, s: &AppState) -> Result<KartotekClient, PageError> {
        client_with(s, &self.token)
    }
}

/// A cluster client that calls with `token`.
pub(crate) fn client_with(s: &AppState, token: &str) -> Result<KartotekClient, PageError> {
    let token = StaticToken::new(token).map_err(|_| PageError::SessionExpired)?;
    Ok(s.client.with_token_source(std::sync::Arc::new(token)))
}

/// The citizen of `token` if it is this service's valid citizen token for themself.
fn own_citizen(s: &AppState, token: &str) -> Option<String> {
    let claims = s.token.own_token(token, now_s())?;
    let citizen = claims.scope.split(' ').any(|sc| sc == scopes::CITIZEN);
    (citizen && claims.act.is_none() && claims.cnf.is_none()).then_some(claims.sub)
}

/// The session of a request's cookies: the access token if valid, else (when the login
/// token still is) a renewed one; none when there is neither.
pub(crate) async fn resume(s: &AppState, cookies: &Cookies) -> Result<Option<Session>, PageError> {
    let login = cookies.get(LOGIN_COOKIE).map(str::to_owned);
    if let Some(token) = cookies.get(SESSION_COOKIE)
        && let Some(person) = own_citizen(s, token)
    {
        return Ok(Some(Session {
            person,
            token: token.to_owned(),
            set_cookies: Vec::new(),
        }));
    }
    let Some(login) = login else {
        return Ok(None);
    };
    match exchange(s, &login, None).await {
        Ok((token, expires_in)) => {
            let person = own_citizen(s, &token).ok_or(PageError::SessionExpired)?;
            Ok(Some(Session {
                person,
                set_cookies: vec![cookie(SESSION_COOKIE, &token, expires_in, secure(s))],
                token,
            }))
        }
        Err(PageError::Refused(_)) => Err(PageError::SessionExpired),
        Err(e) => Err(e),
    }
}

/// The page's client: its file and key.
fn page_client(s: &AppState) -> Result<(ClientFile, kartotek_auth::SigningKey), PageError> {
    let path = s
        .config
        .innsyn
        .client_file
        .as_ref()
        .ok_or(PageError::NoLogin)?;
    let file = ClientFile::load(path).map_err(|e| {
        tracing::warn!(error = %e, "innsyn: reading the client file");
        PageError::ClientFile(e.to_string())
    })?;
    let key = file.signing_key().map_err(PageError::ClientFile)?;
    Ok((file, key))
}

/// The page's client authentication for one token-service request.
fn client_auth(s: &AppState) -> Result<Vec<(String, String)>, PageError> {
    let (file, key) = page_client(s)?;
    let assertion = sign_client_assertion(
        &key,
        &file.client_id,
        s.config.issuer(),
        now_s(),
        ASSERTION_LIFETIME_S,
    )
    .map_err(|e| PageError::ClientFile(e.to_string()))?;
    Ok(vec![
        ("client_assertion_type".into(), CLIENT_ASSERTION_TYPE.into()),
        ("client_assertion".into(), assertion),
    ])
}

/// The token exchange of `login` (the citizen's login token) for the citizen: (access
/// token, seconds it lives).
async fn exchange(
    s: &AppState,
    login: &str,
    act_for: Option<(&str, &str)>,
) -> Result<(String, i64), PageError> {
    exchange_of(s, login, ID_TOKEN_TYPE, act_for).await
}

/// The token exchange of `subject` (of RFC 8693 type `subject_type`) for the citizen, or
/// `act_for` a person they represent: (access token, seconds it lives).
async fn exchange_of(
    s: &AppState,
    subject: &str,
    subject_type: &str,
    act_for: Option<(&str, &str)>,
) -> Result<(String, i64), PageError> {
    let mut params = client_auth(s)?;
    params.extend([
        ("grant_type".into(), GRANT_TOKEN_EXCHANGE.into()),
        ("subject_token".into(), subject.to_owned()),
        ("subject_token_type".into(), subject_type.into()),
        ("requested_token_type".into(), ACCESS_TOKEN_TYPE_URN.into()),
        ("scope".into(), scopes::CITIZEN.into()),
    ]);
    if let Some((person, area)) = act_for {
        params.push(("act_for".into(), person.to_owned()));
        params.push(("area".into(), area.to_owned()));
    }
    let answer = s.token.token(&params, now_s()).await.map_err(refused)?;
    if answer.token_type != "Bearer" {
        return Err(PageError::Refused("not a bearer token".into()));
    }
    Ok((answer.access_token, answer.expires_in))
}

/// A token for `person`, whom the session's citizen represents, in representation `area`
/// (`*` or `audit`): exchanged `act_for` them, so the token service checks the
/// representation now (refused otherwise). The subject is the citizen's own access token of
/// this session (not the login, which at ID-porten lives two minutes); the token got lives
/// no longer than it.
pub(crate) async fn act_for(
    s: &AppState,
    session: &Session,
    person: &str,
    area: &str,
) -> Result<String, PageError> {
    match exchange_of(
        s,
        &session.token,
        ACCESS_TOKEN_TYPE_URN,
        Some((person, area)),
    )
    .await
    {
        Ok((token, _)) => Ok(token),
        Err(PageError::Refused(reason)) if reason.starts_with("subject_token") => {
            Err(PageError::SessionExpired)
        }
        Err(e) => Err(e),
    }
}

/// Logs `pid` in through the dev login (DEV ONLY): the session's cookies.
pub(crate) async fn login(s: &AppState, pid: &str) -> Result<Vec<HeaderValue>, PageError> {
    let dev = s.dev_login.as_ref().ok_or(PageError::NoLogin)?;
    let (file, _) = page_client(s)?;
    let id_token = dev
        .login(pid, &file.client_id, ACR_SUBSTANTIAL, now_s())
        .map_err(|e| PageError::Bad {
            field: "pid",
            reason: e.description,
        })?;
    let cookies = start_session(
        s,
        &id_token,
        crate::token::dev_login::DEV_LOGIN_TOKEN_LIFETIME_S,
    )
    .await?;
    tracing::info!("innsyn: a citizen logged in (dev login)");
    Ok(cookies)
}

/// The id of the page's client (the citizen app of `innsyn.client_file`).
pub(crate) fn page_client_id(s: &AppState) -> Result<String, PageError> {
    Ok(page_client(s)?.0.client_id)
}

/// A session for the citizen of the verified login `id_token`: the exchange, then the
/// session's cookies (the login cookie kept `login_max_age_s`, or as long as the access
/// token when that is longer, so that logout can name the login to the provider).
pub(crate) async fn start_session(
    s: &AppState,
    id_token: &str,
    login_max_age_s: i64,
) -> Result<Vec<HeaderValue>, PageError> {
    let (token, expires_in) = exchange(s, id_token, None).await?;
    own_citizen(s, &token).ok_or(PageError::SessionExpired)?;
    let secure = secure(s);
    Ok(vec![
        cookie(SESSION_COOKIE, &token, expires_in, secure),
        cookie(
            LOGIN_COOKIE,
            id_token,
            login_max_age_s.max(expires_in),
            secure,
        ),
    ])
}

/// Revokes the session's access token in the cluster (logout); failures are logged only.
pub(crate) async fn revoke(s: &AppState, cookies: &Cookies) {
    let Some(token) = cookies.get(SESSION_COOKIE) else {
        return;
    };
    let mut params = match client_auth(s) {
        Ok(p) => p,
        Err(_) => return,
    };
    params.push(("token".into(), token.to_owned()));
    if let Err(e) = s.token.revoke(&params, now_s()).await {
        tracing::warn!(error = %e, "innsyn: revoking the session token at logout");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_parsed_bounded_and_first_wins() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; innsyn_lang=en; a=2; empty="),
        );
        let c = Cookies::from_headers(&h);
        assert_eq!(c.get("a"), Some("1"));
        assert_eq!(c.get(LANG_COOKIE), Some("en"));
        assert_eq!(c.get("empty"), None);
        let big = format!("a={}", "x".repeat(COOKIE_HEADER_BYTES_MAX));
        h.insert(header::COOKIE, HeaderValue::from_str(&big).unwrap());
        assert_eq!(Cookies::from_headers(&h).get("a"), None);
    }

    #[test]
    fn session_cookies_are_http_only_and_strict() {
        let c = cookie(SESSION_COOKIE, "abc", 300, true);
        let text = c.to_str().unwrap();
        for want in [
            "innsyn_session=abc",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/innsyn",
            "Max-Age=300",
            "Secure",
        ] {
            assert!(text.contains(want), "{want} not in {text}");
        }
        assert!(
            !cookie(SESSION_COOKIE, "", 0, false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }

    #[test]
    fn forms_refuse_repeats_and_oversize() {
        assert_eq!(form(b"a=1&b=x+y").unwrap().get("b"), Some("x y"));
        assert!(matches!(form(b"a=1&a=2"), Err(PageError::Bad { .. })));
        assert!(matches!(
            form(&vec![b'a'; super::super::FORM_BYTES_MAX + 1]),
            Err(PageError::Bad { .. })
        ));
        let many: Vec<String> = (0..=FORM_FIELDS_MAX).map(|i| format!("f{i}=1")).collect();
        assert!(form(many.join("&").as_bytes()).is_err());
    }

    #[test]
    fn nonces_have_one_shape() {
        let n = new_nonce();
        assert!(nonce_ok(&n), "{n}");
        assert_ne!(n, new_nonce());
        assert!(!nonce_ok("xyz"));
    }
}
