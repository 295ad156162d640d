//! The citizen login providers' keys, kept fresh: each of `citizen_login.providers` has its
//! JWK Set in a file (`jwks_file`) or at a URL (`jwks_uri`, ID-porten's
//! `https://idporten.no/jwks.json`). [`LoginKeys::refresh`] re-reads every file and fetches
//! every URL (at most [`LOGIN_JWKS_BYTES_MAX`] each), keeps the last good set of a provider
//! whose file or URL fails (a provider's outage must not log every citizen out), and gives the
//! token service a new [`LoginVerifier`]; the frontend runs it at start and every
//! `citizen_login.jwks_refresh_interval_ms`, so a provider's key rotation needs no restart.
//!
//! At start a provider's file must read (a typo should stop the frontend); a URL that does not
//! answer yet only leaves that provider without keys until a refresh gets them (its logins are
//! refused as from an untrusted issuer meanwhile, and the frontend logs why).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kartotek_auth::LoginVerifier;
use kartotek_auth::login::LoginProvider;

use super::TokenService;
use super::dev_login::DevLogin;
use crate::config::LoginProviderSettings;

/// Largest login-provider JWK Set (file or answer), in bytes.
pub const LOGIN_JWKS_BYTES_MAX: usize = 256 * 1024;

/// The providers' settings and the last good JWK Set of each.
#[derive(Debug)]
pub struct LoginKeys {
    providers: Vec<LoginProviderSettings>,
    dev: Option<Arc<DevLogin>>,
    last_good: Mutex<Vec<Option<String>>>,
}

/// Why a provider's JWK Set could not be had.
fn read_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(LOGIN_JWKS_BYTES_MAX as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() > LOGIN_JWKS_BYTES_MAX {
        return Err(format!(
            "{}: larger than {LOGIN_JWKS_BYTES_MAX} bytes",
            path.display()
        ));
    }
    Ok(text)
}

impl LoginKeys {
    /// The keys of `providers` (and the dev login's, when on). Reads the files now: an
    /// unreadable one is an error; URLs are fetched by the first [`refresh`](Self::refresh).
    pub fn new(
        providers: &[LoginProviderSettings],
        dev: Option<Arc<DevLogin>>,
    ) -> Result<LoginKeys, String> {
        let mut sets = Vec::with_capacity(providers.len());
        for p in providers {
            sets.push(match &p.jwks_file {
                Some(path) => Some(read_file(path)?),
                None => None,
            });
        }
        Ok(LoginKeys {
            providers: providers.to_vec(),
            dev,
            last_good: Mutex::new(sets),
        })
    }

    /// Whether any provider's keys come from a URL (and so need a refresh at start).
    pub fn has_urls(&self) -> bool {
        self.providers.iter().any(|p| p.jwks_uri.is_some())
    }

    /// The verifier of the last good sets: every provider whose set parses, then the dev
    /// login.
    pub fn verifier(&self) -> LoginVerifier {
        let sets = self
            .last_good
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = Vec::new();
        for (p, set) in self.providers.iter().zip(sets) {
            let Some(set) = set else { continue };
            match LoginProvider::from_jwks_json(&p.issuer, &p.audience, &set, &p.acr_allowed) {
                Ok(provider) => out.push(provider),
                Err(e) => tracing::warn!(issuer = %p.issuer, error = %e, "login provider keys"),
            }
        }
        if let Some(dev) = &self.dev {
            match dev.provider() {
                Ok(p) => out.push(p),
                Err(e) => tracing::warn!(error = %e, "the dev login's keys"),
            }
        }
        LoginVerifier::new(out, kartotek_auth::LEEWAY_S_DEFAULT)
    }

    /// Re-reads the files and fetches the URLs; a provider that fails keeps its last good
    /// set (and the failure is logged). Returns the verifier of what is now known.
    pub async fn refresh(&self) -> LoginVerifier {
        for (i, p) in self.providers.iter().enumerate() {
            let got = match (&p.jwks_file, &p.jwks_uri) {
                (Some(path), _) => read_file(path),
                (None, Some(uri)) => kartotek_client::fetch_bytes(uri, LOGIN_JWKS_BYTES_MAX)
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|b| String::from_utf8(b.to_vec()).map_err(|e| e.to_string())),
                (None, None) => continue,
            };
            let valid = got.and_then(|text| {
                LoginProvider::from_jwks_json(&p.issuer, &p.audience, &text, &p.acr_allowed)
                    .map(|_| text)
                    .map_err(|e| e.to_string())
            });
            match valid {
                Ok(text) => {
                    let mut sets = self.last_good.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(slot) = sets.get_mut(i) {
                        *slot = Some(text);
                    }
                }
                Err(e) => tracing::warn!(
                    issuer = %p.issuer,
                    error = %e,
                    "could not refresh a login provider's keys; keeping the last good ones"
                ),
            }
        }
        self.verifier()
    }
}

/// Refreshes `keys` into `token` now and then every `every` (runs until the process ends).
pub fn spawn_refresh(keys: Arc<LoginKeys>, token: Arc<TokenService>, every: Duration) {
    tokio::spawn(async move {
        loop {
            token.set_logins(keys.refresh().await);
            tokio::time::sleep(every).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use kartotek_auth::SigningKey;
    use kartotek_auth::login::sign_login_token;

    fn person() -> kartotek_domain::NationalId {
        use kartotek_domain::ids::NationalIdKind;
        use kartotek_domain::ids::testing::national_id_from_parts;
        let date = chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap();
        (0..1000u16)
            .find_map(|i| national_id_from_parts(date, i, NationalIdKind::Ordinary))
            .unwrap()
    }

    /// A JWK Set server on loopback whose document the test can change.
    async fn jwks_server(doc: Arc<Mutex<String>>) -> String {
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { doc.lock().unwrap_or_else(|e| e.into_inner()).clone() }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/jwks.json")
    }

    fn jwks_of(key: &SigningKey) -> String {
        serde_json::json!({"keys": [key.public_key().jwk()]}).to_string()
    }

    #[tokio::test]
    async fn keys_from_a_url_rotate_and_survive_an_outage() {
        let old = SigningKey::generate_es256().unwrap();
        let new = SigningKey::generate_es256().unwrap();
        let doc = Arc::new(Mutex::new(jwks_of(&old)));
        let uri = jwks_server(doc.clone()).await;
        let provider = LoginProviderSettings {
            issuer: "https://idporten.example".into(),
            audience: "app".into(),
            jwks_file: None,
            jwks_uri: Some(uri),
            acr_allowed: Vec::new(),
        };
        let keys = LoginKeys::new(std::slice::from_ref(&provider), None).unwrap();
        assert!(keys.has_urls());
        let now_s = crate::token::routes::now_s();
        let pid = person();
        let login = |key: &SigningKey| {
            sign_login_token(
                key,
                &provider.issuer,
                "app",
                &pid,
                "idporten-loa-high",
                now_s,
                300,
            )
            .unwrap()
        };
        assert!(
            keys.verifier().verify(&login(&old), "app", now_s).is_err(),
            "no keys before the first fetch"
        );
        let v = keys.refresh().await;
        assert!(v.verify(&login(&old), "app", now_s).is_ok());
        assert!(v.verify(&login(&new), "app", now_s).is_err());

        // The provider publishes its new key: the next refresh trusts it.
        *doc.lock().unwrap() = jwks_of(&new);
        let v = keys.refresh().await;
        assert!(v.verify(&login(&new), "app", now_s).is_ok());
        assert!(v.verify(&login(&old), "app", now_s).is_err());

        // The provider answers garbage: the last good keys stay.
        *doc.lock().unwrap() = "not a jwk set".into();
        let v = keys.refresh().await;
        assert!(v.verify(&login(&new), "app", now_s).is_ok());
    }
}
