//! DEV ONLY: a stand-in for ID-porten on a laptop. `GET /dev/login` shows a form, `POST
//! /dev/login` (form `pid`, `client_id`, optional `acr`) answers a citizen login token
//! (an OpenID Connect ID token, `aud` the client id) for any valid synthetic national id —
//! with no proof at all, which is why the configuration refuses `citizen_login.dev_login`
//! unless the issuer is `http://` on a loopback host. `GET /dev/login/jwks.json` publishes
//! its key. The key is generated at start and lives in memory only, so a restart ends every
//! dev login; the token exchange trusts it as a login provider like any other.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use kartotek_auth::login::{ACR_SUBSTANTIAL, LoginProvider, security_level_of};
use kartotek_auth::{KeyError, SigningKey, sign_login_token};
use kartotek_domain::fields::ClientId;
use kartotek_domain::locator::parse_national_id;
use serde_json::json;

use super::routes::now_s;
use super::{OAuthError, no_store};
use crate::AppState;

/// Path of the dev login, under the issuer.
pub const DEV_LOGIN_PATH: &str = "/dev/login";
/// Life of a dev login token, seconds.
pub const DEV_LOGIN_TOKEN_LIFETIME_S: i64 = 600;
/// Largest dev login form body, bytes.
pub const DEV_LOGIN_FORM_BYTES_MAX: usize = 4 * 1024;

/// The dev login's issuer and key.
#[derive(Debug, Clone)]
pub struct DevLogin {
    issuer: String,
    key: SigningKey,
}

impl DevLogin {
    /// A dev login for the token service at `token_issuer`, with a fresh key.
    pub fn new(token_issuer: &str) -> Result<DevLogin, KeyError> {
        Ok(DevLogin {
            issuer: format!("{token_issuer}{DEV_LOGIN_PATH}"),
            key: SigningKey::generate_es256()?,
        })
    }

    /// Its issuer URL (`iss` of its tokens).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The provider the token exchange trusts for it (audience: the exchanging client).
    pub fn provider(&self) -> Result<LoginProvider, KeyError> {
        let jwks = json!({ "keys": [self.key.public_key().jwk()] });
        LoginProvider::from_jwks_json(&self.issuer, "", &jwks.to_string(), &[])
    }

    /// A login token for `pid` addressed to `client_id`.
    pub fn login(
        &self,
        pid: &str,
        client_id: &str,
        acr: &str,
        now_s: i64,
    ) -> Result<String, OAuthError> {
        let id = parse_national_id("pid", pid)
            .map_err(|e| OAuthError::invalid_request(e.to_string()))?;
        ClientId::parse("client_id", client_id)
            .map_err(|e| OAuthError::invalid_request(e.to_string()))?;
        if security_level_of(acr).is_none() {
            return Err(OAuthError::invalid_request(format!(
                "acr {:?} is not an ID-porten level",
                acr.chars().take(64).collect::<String>()
            )));
        }
        sign_login_token(
            &self.key,
            &self.issuer,
            client_id,
            &id,
            acr,
            now_s,
            DEV_LOGIN_TOKEN_LIFETIME_S,
        )
        .map_err(|e| OAuthError::server_error(e.to_string()))
    }
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kartotek dev login (DEV ONLY)</title></head>
<body>
<h1>Kartotek dev login</h1>
<p><strong>DEV ONLY.</strong> This page logs anyone in as any synthetic national id, with no
proof. It stands in for ID-porten on a developer's machine and is refused in a production
configuration.</p>
<form method="post" action="/dev/login">
<label>National id (synthetic) <input name="pid" inputmode="numeric" maxlength="11" required></label>
<label>Client id of the citizen app <input name="client_id" value="dev-citizen-app" required></label>
<button type="submit">Log in</button>
</form>
</body></html>
"#;

/// `GET /dev/login`: the form.
#[utoipa::path(
    get,
    path = "/dev/login",
    tag = "dev",
    responses(
        (status = 200, description = "The dev login form (HTML)", content_type = "text/html"),
        (status = 404, description = "The dev login is off", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn page() -> Response {
    let mut response = Html(PAGE).into_response();
    no_store(&mut response);
    response
}

/// `GET /dev/login/jwks.json`: the dev login's key.
#[utoipa::path(
    get,
    path = "/dev/login/jwks.json",
    tag = "dev",
    responses((status = 200, description = "The dev login's signing key (JWK Set)", content_type = "application/json"))
)]
pub(crate) async fn jwks(State(s): State<AppState>) -> Response {
    match &s.dev_login {
        Some(d) => axum::Json(json!({ "keys": [d.key.public_key().jwk()] })).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `POST /dev/login`: `{"id_token": ..., "token_type": "id_token", "expires_in": ...}`.
#[utoipa::path(
    post,
    path = "/dev/login",
    tag = "dev",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "pid (a synthetic national id), client_id (the citizen app), acr (optional)"),
    responses(
        (status = 200, description = "`{\"id_token\": ..., \"token_type\": \"id_token\", \"expires_in\": ...}`", content_type = "application/json"),
        (status = 400, description = "Not a valid national id", content_type = "application/json"),
    )
)]
pub(crate) async fn login(State(s): State<AppState>, req: Request) -> Response {
    let Some(dev) = &s.dev_login else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let bytes = match axum::body::to_bytes(req.into_body(), DEV_LOGIN_FORM_BYTES_MAX).await {
        Ok(b) => b,
        Err(_) => {
            return OAuthError::invalid_request(format!(
                "form larger than {DEV_LOGIN_FORM_BYTES_MAX} bytes"
            ))
            .into_response();
        }
    };
    let form: Vec<(String, String)> = match serde_urlencoded::from_bytes(&bytes) {
        Ok(f) => f,
        Err(_) => return OAuthError::invalid_request("not a URL-encoded form").into_response(),
    };
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(pid), Some(client_id)) = (field("pid"), field("client_id")) else {
        return OAuthError::invalid_request("pid and client_id are required").into_response();
    };
    let acr = field("acr").unwrap_or(ACR_SUBSTANTIAL);
    match dev.login(pid, client_id, acr, now_s()) {
        Ok(id_token) => {
            tracing::warn!("dev login: issued a citizen login token without proof (dev only)");
            let mut response = (
                [(header::CONTENT_TYPE, "application/json")],
                json!({
                    "id_token": id_token,
                    "token_type": "id_token",
                    "expires_in": DEV_LOGIN_TOKEN_LIFETIME_S,
                    "dev_only": true,
                })
                .to_string(),
            )
                .into_response();
            no_store(&mut response);
            response
        }
        Err(e) => e.into_response(),
    }
}
