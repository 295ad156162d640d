//! The citizen page `/innsyn`, "who has looked at my data" (Norwegian by default, English with
//! `?lang=en`): after logging in, a citizen sees every access to their data recorded in the
//! cluster's audit log — Kartotek's own events and those health services forwarded
//! ([`crate::audit`]) — with time, organisation, personnel (their identity only
//! `innsyn.personnel_name_delay_s` after the access; before that the organisation alone, as
//! helsenorge does), purpose, and emergency overrides highlighted; their pending override
//! notifications, each with an acknowledge button; their blocks, consents and reservations,
//! with the actions the registry has (add / revoke a block, withdraw or deny a consent,
//! reserve / withdraw a reservation); and, for each person they represent now, the same view
//! for that person.
//!
//! Server-rendered (maud, the layout of [`crate::home`]), plain links and POST forms: it
//! works without JavaScript; every field has a label, each section a heading, overrides are
//! marked in text as well as colour.
//!
//! # Identity and the cluster's rules
//!
//! The page is a *citizen app*: it holds no rights of its own. At login it exchanges the
//! citizen's login token (RFC 8693, through this frontend's own [`crate::token`] service)
//! as the client of `innsyn.client_file`, and every call to the cluster is made **with that
//! token** ([`kartotek_client::StaticToken`]), so the nodes' own-data rule, scopes and audit
//! apply to the citizen: each read and each action is audited in the cluster as the
//! citizen's. The view of a represented person uses a token exchanged `act_for` that person,
//! which the token service grants only when a representation allows it *now* (the
//! registry's rules: parental responsibility ends at 16, so a parent gets their 10-year-old's
//! view and not their 17-year-old's). Identity comes only from the verified token.
//!
//! Login: in production, "Log in with ID-porten" runs the OpenID Connect authorisation-code
//! flow with PKCE at the provider of `innsyn.oidc` ([`oidc`]), whose verified ID token the
//! exchange takes. Under `kartotek dev` the form at `/innsyn` takes a synthetic national id
//! and logs in through the dev login ([`crate::token::dev_login`]); with
//! `citizen_login.dev_login` off it is not offered.
//!
//! # Module map
//!
//! - this module: routes, the language, the actions' handler.
//! - [`oidc`]: the login at the external OpenID provider (authorisation code, PKCE, state,
//!   nonce, the callback, the provider's logout).
//! - [`session`]: cookies (HttpOnly, SameSite=Strict, `Secure` on https), CSRF tokens
//!   (HMAC of a per-browser nonce under a secret derived from the token signing keys, so any
//!   frontend instance checks another's), login and the token exchanges.
//! - [`view`]: what one view reads from the cluster (audit events, notifications, blocks,
//!   consents, reservations, representations).
//! - [`page`]: the HTML, in Norwegian and English.

pub mod oidc;
pub mod page;
pub mod session;
pub mod view;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use kartotek_client::KartotekClient;
use kartotek_client::proto as v1;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::layer::OwnErrorFormat;
use session::{Cookies, PageError, Session};

/// The page.
pub const INNSYN_PATH: &str = "/innsyn";
/// Login (POST, dev login form).
pub const LOGIN_PATH: &str = "/innsyn/login";
/// Logout (POST).
pub const LOGOUT_PATH: &str = "/innsyn/logout";
/// Every action on the records (POST).
pub const ACTION_PATH: &str = "/innsyn/action";
/// The view of a represented person, by their place in the list of whom the citizen
/// represents (no national id in the URL).
pub const FOR_PATH: &str = "/innsyn/for/{index}";
/// Largest form body of the page, bytes.
pub const FORM_BYTES_MAX: usize = 4 * 1024;
/// Longest free text (a reason) taken from a form, characters.
pub const REASON_CHARS_MAX: usize = 500;

/// The page's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// Norwegian bokmål (default).
    #[default]
    Nb,
    /// English.
    En,
}

impl Lang {
    /// `nb` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Nb => "nb",
            Lang::En => "en",
        }
    }

    /// The language of a code, if known.
    pub fn from_code(code: &str) -> Option<Lang> {
        match code {
            "nb" | "no" | "nn" => Some(Lang::Nb),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
}

/// The query of the page's views.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewQuery {
    /// `nb` (default) or `en`; remembered in a cookie.
    #[serde(default)]
    pub lang: Option<String>,
    /// `1`: also the accesses the viewer made themself and the frontend's own checks.
    #[serde(default)]
    pub all: Option<String>,
    /// The action just done (shown as a confirmation).
    #[serde(default)]
    pub done: Option<String>,
}

/// The language of a request: `lang` in the query, else the cookie, else Norwegian.
fn lang_of(query: Option<&str>, cookies: &Cookies) -> Lang {
    query
        .and_then(Lang::from_code)
        .or_else(|| cookies.get(session::LANG_COOKIE).and_then(Lang::from_code))
        .unwrap_or_default()
}

/// An HTML answer of the page: never cached, framed by nobody, no script.
fn html(status: StatusCode, body: String, cookies: Vec<HeaderValue>) -> Response {
    let mut response = (status, Html(body)).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    for c in cookies {
        h.append(header::SET_COOKIE, c);
    }
    // HTML also when it reports an error: the layer leaves it as it is.
    response.extensions_mut().insert(OwnErrorFormat);
    response
}

/// `303 See Other` to `to`, setting `cookies`.
fn see_other(to: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(to) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in cookies {
        h.append(header::SET_COOKIE, c);
    }
    response
}

/// The cookies a view sets: the CSRF nonce when new, the language when asked for, a
/// refreshed session.
struct Setup {
    lang: Lang,
    cookies: Cookies,
    csrf: String,
    set: Vec<HeaderValue>,
}

fn setup(s: &AppState, headers: &HeaderMap, lang: Option<&str>) -> Setup {
    let cookies = Cookies::from_headers(headers);
    let lang_now = lang_of(lang, &cookies);
    let secure = session::secure(s);
    let mut set = Vec::new();
    if let Some(l) = lang.and_then(Lang::from_code) {
        set.push(session::cookie(
            session::LANG_COOKIE,
            l.code(),
            session::LANG_COOKIE_MAX_AGE_S,
            secure,
        ));
    }
    let nonce = match cookies.get(session::CSRF_COOKIE) {
        Some(n) if session::nonce_ok(n) => n.to_owned(),
        _ => {
            let n = session::new_nonce();
            set.push(session::cookie(
                session::CSRF_COOKIE,
                &n,
                session::CSRF_COOKIE_MAX_AGE_S,
                secure,
            ));
            n
        }
    };
    let csrf = session::csrf_token(s, &nonce);
    Setup {
        lang: lang_now,
        cookies,
        csrf,
        set,
    }
}

/// `GET /innsyn`.
#[utoipa::path(
    get,
    path = "/innsyn",
    tag = "pages",
    params(ViewQuery),
    responses(
        (status = 200, description = "The citizen page (HTML): the login form, or the accesses to the citizen's data, their notifications, blocks, consents and reservations, and whom they represent", content_type = "text/html"),
        (status = 503, description = "The page, saying the cluster could not be reached", content_type = "text/html"),
    )
)]
pub(crate) async fn innsyn_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ViewQuery>,
) -> Response {
    let mut setup = setup(&s, &headers, q.lang.as_deref());
    let lang = setup.lang;
    let session = match session::resume(&s, &setup.cookies).await {
        Ok(Some(session)) => session,
        Ok(None) => return login_answer(&s, setup, None),
        Err(e) => return login_answer(&s, setup, Some(e)),
    };
    setup.set.extend(session.set_cookies.iter().cloned());
    let client = match session.client(&s) {
        Ok(c) => c,
        Err(e) => return login_answer(&s, setup, Some(e)),
    };
    let data = view::load(&s, &client, &session.person, true).await;
    let personnel = s.personnel.names();
    let ctx = page::Ctx {
        lang,
        csrf: &setup.csrf,
        me: &session.person,
        subject: None,
        show_all: q.all.as_deref() == Some("1"),
        done: q.done.as_deref(),
        delay_s: s.config.innsyn.personnel_name_delay_s,
        names: &s.config.innsyn,
        personnel: &personnel,
    };
    html(
        StatusCode::OK,
        page::view_page(&ctx, &data).into_string(),
        setup.set,
    )
}

fn login_answer(s: &AppState, setup: Setup, error: Option<PageError>) -> Response {
    let status = error.as_ref().map_or(StatusCode::OK, PageError::status);
    let app = s.config.innsyn.client_file.is_some();
    let ways = page::LoginWays {
        dev: s.dev_login.is_some() && app,
        provider: s.oidc.is_some() && app,
    };
    let body = page::login_page(setup.lang, &setup.csrf, ways, error.as_ref()).into_string();
    let mut set = setup.set;
    if error.is_some() {
        set.extend(session::clear_session(s));
    }
    html(status, body, set)
}

/// `GET /innsyn/for/{index}`.
#[utoipa::path(
    get,
    path = "/innsyn/for/{index}",
    tag = "pages",
    params(
        ("index" = usize, Path, description = "The person's place (from 0) in the list of whom the citizen represents now, as the page shows it"),
        ViewQuery,
    ),
    responses(
        (status = 200, description = "The same view for a person the citizen represents now (HTML)", content_type = "text/html"),
        (status = 403, description = "The page, saying the registry does not let the citizen act for that person now", content_type = "text/html"),
        (status = 404, description = "The page, saying there is no such person in the list", content_type = "text/html"),
    )
)]
pub(crate) async fn for_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(index): Path<String>,
    Query(q): Query<ViewQuery>,
) -> Response {
    let mut setup = setup(&s, &headers, q.lang.as_deref());
    let lang = setup.lang;
    let session = match session::resume(&s, &setup.cookies).await {
        Ok(Some(session)) => session,
        Ok(None) => return see_other(INNSYN_PATH, setup.set),
        Err(e) => return login_answer(&s, setup, Some(e)),
    };
    setup.set.extend(session.set_cookies.iter().cloned());
    let (person, client) = match subject_of(&s, &session, Some(&index)).await {
        Ok((Some(person), client)) => (person, client),
        Ok((None, _)) => return error_answer(&s, setup, PageError::NoSuchPerson),
        Err(e) => return error_answer(&s, setup, e),
    };
    let data = view::load(&s, &client, &person.1, false).await;
    let personnel = s.personnel.names();
    let ctx = page::Ctx {
        lang,
        csrf: &setup.csrf,
        me: &session.person,
        subject: Some((person.0, &person.1)),
        show_all: q.all.as_deref() == Some("1"),
        done: q.done.as_deref(),
        delay_s: s.config.innsyn.personnel_name_delay_s,
        names: &s.config.innsyn,
        personnel: &personnel,
    };
    html(
        StatusCode::OK,
        page::view_page(&ctx, &data).into_string(),
        setup.set,
    )
}

fn error_answer(s: &AppState, setup: Setup, e: PageError) -> Response {
    let _ = s;
    html(
        e.status(),
        page::error_page(setup.lang, &e).into_string(),
        setup.set,
    )
}

/// The person a request is about and a cluster client for them: the citizen themself
/// (`index` none), or the `index`th person they represent now, with a token exchanged for
/// that person (refused unless the registry allows it now).
async fn subject_of(
    s: &AppState,
    session: &Session,
    index: Option<&str>,
) -> Result<(Option<(usize, String)>, KartotekClient), PageError> {
    let own = session.client(s)?;
    let Some(index) = index.filter(|i| !i.is_empty()) else {
        return Ok((None, own));
    };
    let index: usize = index
        .parse()
        .ok()
        .filter(|i| *i < view::REPRESENTED_MAX)
        .ok_or(PageError::NoSuchPerson)?;
    let people = view::represented(&own, &session.person)
        .await
        .map_err(PageError::Cluster)?;
    let Some(person) = people.get(index) else {
        return Err(PageError::NoSuchPerson);
    };
    let area = view::view_area(person).ok_or(PageError::NotForLog)?;
    let token = session::act_for(s, session, &person.represented, area).await?;
    let client = session::client_with(s, &token)?;
    Ok((Some((index, person.represented.clone())), client))
}

/// A POST's form, once its CSRF token matches the browser's cookie (every form of the page
/// carries one; see [`session::check_csrf`]).
fn checked_form(s: &AppState, cookies: &Cookies, body: &[u8]) -> Result<session::Form, PageError> {
    let form = session::form(body)?;
    session::check_csrf(s, cookies, form.get("csrf"))?;
    Ok(form)
}

/// `POST /innsyn/login`.
#[utoipa::path(
    post,
    path = "/innsyn/login",
    tag = "pages",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "csrf (from the page), pid (dev login: a synthetic national id)"),
    responses(
        (status = 303, description = "Logged in: to /innsyn, with the session cookie"),
        (status = 400, description = "The page, saying what is wrong with the form", content_type = "text/html"),
        (status = 403, description = "The page: the form's CSRF token is missing or wrong, or the login was refused", content_type = "text/html"),
        (status = 404, description = "The page: no login is configured", content_type = "text/html"),
    )
)]
pub(crate) async fn login(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let setup = setup(&s, &headers, None);
    let form = match checked_form(&s, &setup.cookies, &body) {
        Ok(f) => f,
        Err(e) => return login_answer(&s, setup, Some(e)),
    };
    let pid = form.get("pid").unwrap_or_default().trim().to_owned();
    match session::login(&s, &pid).await {
        Ok(cookies) => {
            let mut set = setup.set;
            set.extend(cookies);
            see_other(INNSYN_PATH, set)
        }
        Err(e) => login_answer(&s, setup, Some(e)),
    }
}

/// `POST /innsyn/logout`.
#[utoipa::path(
    post,
    path = "/innsyn/logout",
    tag = "pages",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "csrf (from the page)"),
    responses(
        (status = 303, description = "Logged out (the access token revoked in the cluster, the cookies cleared): to /innsyn"),
        (status = 200, description = "Logged out here; a page that goes on to the provider's end-session endpoint (innsyn.oidc) to end its single sign-on too", content_type = "text/html"),
        (status = 403, description = "The page: the form's CSRF token is missing or wrong", content_type = "text/html"),
    )
)]
pub(crate) async fn logout(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let setup = setup(&s, &headers, None);
    if let Err(e) = checked_form(&s, &setup.cookies, &body) {
        return error_answer(&s, setup, e);
    }
    session::revoke(&s, &setup.cookies).await;
    let at_provider = match &s.oidc {
        Some(p) => oidc::logout_url(&s, p, &setup.cookies).await,
        None => None,
    };
    let lang = setup.lang;
    let mut set = setup.set;
    set.extend(session::clear_session(&s));
    match at_provider {
        Some(to) => html(
            StatusCode::OK,
            page::logged_out_page(lang, &to).into_string(),
            set,
        ),
        None => see_other(INNSYN_PATH, set),
    }
}

/// The query of the login start.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    /// `nb` (default) or `en`: the page's language, passed to the provider as `ui_locales`.
    #[serde(default)]
    pub lang: Option<String>,
}

/// `GET /innsyn/login/idporten`.
#[utoipa::path(
    get,
    path = "/innsyn/login/idporten",
    tag = "pages",
    params(StartQuery),
    responses(
        (status = 303, description = "To the provider's authorisation endpoint (code flow, PKCE S256, state, nonce), with the flow cookie (HttpOnly, SameSite=Lax)"),
        (status = 404, description = "The page: no provider login is configured (innsyn.oidc)", content_type = "text/html"),
        (status = 502, description = "The page: the provider's discovery document could not be had", content_type = "text/html"),
    )
)]
pub(crate) async fn oidc_start(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let setup = setup(&s, &headers, q.lang.as_deref());
    let Some(provider) = s.oidc.clone() else {
        return login_answer(&s, setup, Some(PageError::NoLogin));
    };
    match oidc::start(&s, &provider, setup.lang).await {
        Ok((cookie, to)) => {
            let mut set = setup.set;
            set.push(cookie);
            see_other(&to, set)
        }
        Err(e) => login_answer(&s, setup, Some(e)),
    }
}

/// `GET /innsyn/callback`.
#[utoipa::path(
    get,
    path = "/innsyn/callback",
    tag = "pages",
    params(oidc::CallbackQuery),
    responses(
        (status = 200, description = "Logged in (the code redeemed, the ID token verified, its nonce the flow's, exchanged): a page that moves on to /innsyn, with the session cookies", content_type = "text/html"),
        (status = 400, description = "The page: a parameter is missing or too long; nothing redeemed", content_type = "text/html"),
        (status = 403, description = "The page: the login failed (the provider's error, no or a stale flow cookie, state, iss or nonce not this login's, the ID token refused)", content_type = "text/html"),
        (status = 502, description = "The page: the provider could not be reached", content_type = "text/html"),
    )
)]
pub(crate) async fn oidc_callback(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<oidc::CallbackQuery>,
) -> Response {
    let setup = setup(&s, &headers, None);
    let Some(provider) = s.oidc.clone() else {
        return login_answer(&s, setup, Some(PageError::NoLogin));
    };
    match oidc::callback(&s, &provider, &setup.cookies, &q).await {
        Ok((cookies, lang)) => {
            let mut set = setup.set;
            set.extend(cookies);
            html(
                StatusCode::OK,
                page::logged_in_page(lang).into_string(),
                set,
            )
        }
        Err(e) => {
            let mut setup = setup;
            setup.set.push(oidc::clear_flow(&s));
            login_answer(&s, setup, Some(e))
        }
    }
}

/// `POST /innsyn/action`.
#[utoipa::path(
    post,
    path = "/innsyn/action",
    tag = "pages",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "csrf; for (the represented person's index, empty: the citizen); action: ack (id), withdraw_consent (id), deny_consent (id), revoke_block (id), add_block (target_kind personnel|organisation|group, target, level overridable|absolute, reason), reserve (service, reason), withdraw_reservation (service)"),
    responses(
        (status = 303, description = "Done (in the cluster, with the citizen's token, audited): back to the view"),
        (status = 400, description = "The page, naming the field that is wrong; nothing changed", content_type = "text/html"),
        (status = 403, description = "The page: CSRF token wrong, or the registry refused; nothing changed", content_type = "text/html"),
    )
)]
pub(crate) async fn action(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let setup = setup(&s, &headers, None);
    let form = match checked_form(&s, &setup.cookies, &body) {
        Ok(f) => f,
        Err(e) => return error_answer(&s, setup, e),
    };
    let session = match session::resume(&s, &setup.cookies).await {
        Ok(Some(session)) => session,
        Ok(None) => return error_answer(&s, setup, PageError::SessionExpired),
        Err(e) => return error_answer(&s, setup, e),
    };
    let mut set = setup.set.clone();
    set.extend(session.set_cookies.iter().cloned());
    let (subject, client) = match subject_of(&s, &session, form.get("for")).await {
        Ok(x) => x,
        Err(e) => return error_answer(&s, setup, e),
    };
    let patient = subject
        .as_ref()
        .map_or(session.person.clone(), |(_, p)| p.clone());
    let what = form.get("action").unwrap_or_default().to_owned();
    match act(&client, &patient, &what, &form).await {
        Ok(()) => {
            let base = match &subject {
                Some((i, _)) => format!("{INNSYN_PATH}/for/{i}"),
                None => INNSYN_PATH.to_owned(),
            };
            see_other(&format!("{base}?done={what}"), set)
        }
        Err(e) => error_answer(&s, setup, e),
    }
}

/// A record id from the form.
fn id_of(form: &session::Form) -> Result<u64, PageError> {
    form.get("id")
        .and_then(|v| v.parse().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| PageError::bad("id", "not a record id"))
}

/// A free-text reason (optional), at most [`REASON_CHARS_MAX`] characters.
fn reason_of(form: &session::Form) -> Result<String, PageError> {
    let reason = form.get("reason").unwrap_or_default().trim();
    if reason.chars().count() > REASON_CHARS_MAX || reason.chars().any(char::is_control) {
        return Err(PageError::bad(
            "reason",
            &format!("at most {REASON_CHARS_MAX} characters, no control characters"),
        ));
    }
    Ok(reason.to_owned())
}

/// A required short field (a service name, a block target).
fn required<'a>(form: &'a session::Form, field: &'static str) -> Result<&'a str, PageError> {
    match form.get(field).map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(PageError::bad(field, "is required")),
    }
}

/// Does action `what` of `form` on `patient`'s records, with the subject's token. The
/// cluster validates every field again and decides whether the token may.
async fn act(
    client: &KartotekClient,
    patient: &str,
    what: &str,
    form: &session::Form,
) -> Result<(), PageError> {
    let patient = patient.to_owned();
    let cluster = PageError::from_client;
    match what {
        "ack" => {
            client
                .acknowledge_notification(v1::AcknowledgeNotificationRequest {
                    patient,
                    notification_id: id_of(form)?,
                    ..Default::default()
                })
                .await
                .map_err(cluster)?;
        }
        "withdraw_consent" | "deny_consent" => {
            let request = v1::AnswerConsentRequest {
                patient,
                consent_id: id_of(form)?,
                ..Default::default()
            };
            if what == "withdraw_consent" {
                client.withdraw_consent(request).await.map_err(cluster)?;
            } else {
                client.deny_consent(request).await.map_err(cluster)?;
            }
        }
        "revoke_block" => {
            client
                .revoke_block(v1::RevokeBlockRequest {
                    patient,
                    block_id: id_of(form)?,
                    ..Default::default()
                })
                .await
                .map_err(cluster)?;
        }
        "add_block" => {
            let target_kind = match form.get("target_kind") {
                Some("personnel") => v1::BlockTargetKind::Personnel,
                Some("organisation") => v1::BlockTargetKind::Organisation,
                Some("group") => v1::BlockTargetKind::Group,
                _ => {
                    return Err(PageError::bad(
                        "target_kind",
                        "personnel, organisation or group",
                    ));
                }
            };
            let level = match form.get("level") {
                Some("overridable") | None => v1::BlockLevel::Overridable,
                Some("absolute") => v1::BlockLevel::Absolute,
                Some(_) => return Err(PageError::bad("level", "overridable or absolute")),
            };
            client
                .add_block(v1::AddBlockRequest {
                    patient,
                    target_kind: target_kind as i32,
                    target: required(form, "target")?.to_owned(),
                    level: level as i32,
                    reason: reason_of(form)?,
                    ..Default::default()
                })
                .await
                .map_err(cluster)?;
        }
        "reserve" => {
            client
                .reserve(v1::ReserveRequest {
                    patient,
                    service: required(form, "service")?.to_owned(),
                    reason: reason_of(form)?,
                    ..Default::default()
                })
                .await
                .map_err(cluster)?;
        }
        "withdraw_reservation" => {
            client
                .withdraw_reservation(v1::WithdrawReservationRequest {
                    patient,
                    service: required(form, "service")?.to_owned(),
                    ..Default::default()
                })
                .await
                .map_err(cluster)?;
        }
        _ => {
            return Err(PageError::bad(
                "action",
                "ack, withdraw_consent, deny_consent, revoke_block, add_block, reserve or \
                 withdraw_reservation",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::config::FrontendConfig;

    fn app() -> (AppState, axum::Router) {
        let mut config = FrontendConfig::default();
        config.cluster.readiness_timeout_ms = 50;
        let state = crate::server::state(config).unwrap();
        let router = crate::server::routes(state.clone(), axum::Router::new());
        (state, router)
    }

    async fn send(router: &axum::Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let response = router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn set_cookies(h: &HeaderMap) -> Vec<String> {
        h.get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn the_login_page_sets_a_strict_csrf_nonce_and_is_never_cached() {
        let (_, router) = app();
        let (status, h, body) = send(
            &router,
            Request::get("/innsyn?lang=en").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert!(
            h[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        let cookies = set_cookies(&h);
        let csrf = cookies
            .iter()
            .find(|c| c.starts_with("innsyn_csrf="))
            .unwrap();
        assert!(
            csrf.contains("HttpOnly") && csrf.contains("SameSite=Strict"),
            "{csrf}"
        );
        assert!(cookies.iter().any(|c| c.starts_with("innsyn_lang=en")));
        // No dev login in this configuration: no form, a sentence saying so.
        assert!(body.contains("<html lang=\"en\">"), "{body}");
        assert!(!body.contains("id=\"pid\""), "{body}");
        assert!(body.contains("No login is set up"), "{body}");
        assert!(!body.contains("idporten-login"), "{body}");
    }

    #[tokio::test]
    async fn posts_need_the_csrf_token_of_their_nonce() {
        let (state, router) = app();
        let nonce = session::new_nonce();
        let good = session::csrf_token(&state, &nonce);
        let other = session::csrf_token(&state, &session::new_nonce());
        let post = |csrf: &str| {
            Request::post(ACTION_PATH)
                .header(header::COOKIE, format!("innsyn_csrf={nonce}"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("csrf={csrf}&action=ack&id=1")))
                .unwrap()
        };
        for bad in ["", "zz", other.as_str()] {
            let (status, _, body) = send(&router, post(bad)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{bad}: {body}");
            assert!(body.contains("Skjemaet er utløpt"), "{body}");
        }
        // The right token passes the check; without a session nothing is done.
        let (status, _, body) = send(&router, post(&good)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body.contains("Økten er over"), "{body}");
        // A forged session cookie is no session either.
        let req = Request::post(ACTION_PATH)
            .header(
                header::COOKIE,
                format!("innsyn_csrf={nonce}; innsyn_session=eyJhbGciOiJFUzI1NiJ9.e30.x"),
            )
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={good}&action=ack&id=1")))
            .unwrap();
        let (status, _, _) = send(&router, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn the_login_is_refused_without_a_configured_login() {
        let (state, router) = app();
        let nonce = session::new_nonce();
        let csrf = session::csrf_token(&state, &nonce);
        let req = Request::post(LOGIN_PATH)
            .header(header::COOKIE, format!("innsyn_csrf={nonce}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}&pid=15076500565")))
            .unwrap();
        let (status, h, body) = send(&router, req).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(
            !set_cookies(&h)
                .iter()
                .any(|c| c.starts_with("innsyn_session=ey")),
            "no session"
        );
    }
}
