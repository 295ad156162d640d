//! The frontend's configuration: TOML file plus `KARTOTEK_FRONTEND_*` environment overrides,
//! validated before anything starts. The defaults are those of `kartotek dev`: listen on
//! `127.0.0.1:8080`, talk to the three-node dev cluster on `127.0.0.1:7401..7403`.
//!
//! Nested keys use `__` in the environment, e.g. `KARTOTEK_FRONTEND_HTTP__REQUEST_TIMEOUT_MS=5000`;
//! the cluster endpoints may be given as a comma-separated list,
//! `KARTOTEK_FRONTEND_CLUSTER__ENDPOINTS=10.0.0.1:7401,10.0.0.2:7401`. Every setting is
//! shown, with its default, in `frontend/frontend.example.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::Uri;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use kartotek_client::{ClientConfig, DEFAULT_ENDPOINTS, ENDPOINTS_MAX, normalize_endpoint};
use serde::{Deserialize, Deserializer, Serialize};

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "KARTOTEK_FRONTEND_";

/// Longest accepted `public_base_url`, in bytes.
pub const PUBLIC_BASE_URL_LEN_MAX: usize = 512;

/// Errors in a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or parsed.
    #[error("reading configuration: {0}")]
    Load(String),
    /// A value is out of range or inconsistent with another.
    #[error("invalid configuration: {field}: {reason}")]
    Invalid {
        /// The setting, dotted (`http.request_timeout_ms`).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// How the frontend reaches the cluster (through `kartotek-client`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// Node gRPC addresses, `host:port` or `http://host:port`. In the environment also a
    /// comma-separated list.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub endpoints: Vec<String>,
    /// Time allowed to open a TCP connection to one node.
    pub connect_timeout_ms: u64,
    /// Time allowed for one attempt of a call (one request to one node).
    pub attempt_timeout_ms: u64,
    /// Time allowed for a whole call to the cluster, all retries included.
    pub deadline_ms: u64,
    /// `/readyz` answers 503 unless a node reports a known leader within this time.
    pub readiness_timeout_ms: u64,
    /// A client file (see `kartotek_client::ClientFile`) the frontend gets its tokens for
    /// the cluster with. Absent: it signs its own with the token service's keys (the nodes
    /// must trust this frontend's issuer; see `token::self_issued`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_file: Option<PathBuf>,
    /// The CA (PEM) of the nodes' API certificates: set, the frontend calls the cluster over
    /// TLS (nodes with `[tls.api]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        let client = ClientConfig::default();
        ClusterSettings {
            endpoints: DEFAULT_ENDPOINTS.iter().map(|e| (*e).to_owned()).collect(),
            connect_timeout_ms: client.connect_timeout_ms,
            attempt_timeout_ms: client.attempt_timeout_ms,
            deadline_ms: 5_000,
            readiness_timeout_ms: 1_000,
            client_file: None,
            ca_file: None,
        }
    }
}

/// Limits of the HTTP request layer every route passes through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Largest request body accepted; a larger one is answered 413.
    pub request_body_bytes_max: u64,
    /// Time allowed to produce a response (waiting for a concurrency slot included); a slower
    /// request is answered 503.
    pub request_timeout_ms: u64,
    /// Most requests handled at once; more wait for a slot, bounded by `request_timeout_ms`.
    /// `/healthz` and `/metrics` do not take a slot.
    pub concurrent_requests_max: u64,
    /// After the shutdown signal, time given to requests in flight before the server stops.
    pub shutdown_grace_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            request_body_bytes_max: 1 << 20,
            request_timeout_ms: 10_000,
            concurrent_requests_max: 1_024,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// Largest `token.request_bytes_max` allowed, in bytes.
pub const TOKEN_REQUEST_BYTES_MAX: u64 = 64 * 1024;

/// The token service (`/connect/token`, `/.well-known/jwks.json`,
/// `/.well-known/oauth-authorization-server`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    /// The issuer URL (`iss` of every token, the `aud` client assertions must name); empty:
    /// `public_base_url`.
    pub issuer: String,
    /// The `aud` of every access token (what the nodes expect).
    pub audience: String,
    /// JWK Set file of private signing keys, shared by every frontend instance (see
    /// `kartotek_auth::keys` for the format and rotation). Required unless the issuer is
    /// `http://` on a loopback host (dev), where a key is generated in memory at start (tokens
    /// then do not outlive the process).
    pub signing_keys_file: Option<PathBuf>,
    /// Lifetime of an access token, seconds (at most 3600).
    pub access_token_lifetime_s: u64,
    /// Largest token request body, bytes (at most [`TOKEN_REQUEST_BYTES_MAX`]).
    pub request_bytes_max: u64,
    /// Scopes that a token exchanged for a person carries only when that person has granted
    /// the exchanging client a consent for the scope (consent-gated APIs of the catalog).
    pub consent_scopes: Vec<String>,
    /// Token requests (token, revoke, introspect) one client may make per second at this
    /// instance, after a burst of `request_burst_per_client`; more are answered 429 with
    /// `Retry-After`. 0: no limit. Each request is one write to the cluster's token ledger.
    pub requests_per_client_per_s: u32,
    /// The burst of `requests_per_client_per_s` (at least 1).
    pub request_burst_per_client: u32,
    /// DPoP server nonces (RFC 9449 §8) at the token endpoint: a proof must carry a nonce this
    /// service handed out (`DPoP-Nonce` header; `use_dpop_nonce` tells the client to retry
    /// with it), so a proof cannot be made ahead of time. A nonce is taken for one to two
    /// windows of this many seconds (10 to 3600); any instance with the same signing key file
    /// checks another's. 0: no nonces.
    pub dpop_nonce_window_s: u64,
}

/// Most `token.consent_scopes`.
pub const CONSENT_SCOPES_MAX: usize = 64;
/// Most `citizen_login.providers`.
pub const LOGIN_PROVIDERS_MAX: usize = kartotek_auth::login::LOGIN_PROVIDERS_MAX;

/// One trusted OpenID provider citizens log in with (ID-porten in production), whose ID
/// tokens the token exchange accepts as the citizen's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginProviderSettings {
    /// The provider's issuer (`iss`), compared exactly, e.g. `https://idporten.no`.
    pub issuer: String,
    /// The `aud` its ID tokens must carry (the citizen app's client id at the provider);
    /// empty: the id of the Kartotek client that exchanges the token.
    #[serde(default)]
    pub audience: String,
    /// The provider's JWK Set, saved to a file (re-read every
    /// `citizen_login.jwks_refresh_interval_ms`). Give this or `jwks_uri`.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The provider's JWK Set URL (ID-porten: `https://idporten.no/jwks.json`), fetched at start
    /// and every `citizen_login.jwks_refresh_interval_ms`; a failed fetch keeps the keys it had.
    /// `https://` (or `http://` on a loopback host, for tests). Give this or `jwks_file`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Accepted `acr` values; empty: ID-porten's substantial and high.
    #[serde(default)]
    pub acr_allowed: Vec<String>,
}

/// How citizens prove who they are to the token exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CitizenLoginSettings {
    /// Trusted external providers.
    pub providers: Vec<LoginProviderSettings>,
    /// How often the providers' JWK Sets are fetched (`jwks_uri`) or re-read (`jwks_file`), so
    /// that a provider's key rotation needs no restart; at least 10 000.
    pub jwks_refresh_interval_ms: u64,
    /// DEV ONLY: the dev login at `/dev/login`, which issues a citizen login token for any
    /// synthetic national id without any proof. Refused unless the issuer is `http://` on a
    /// loopback host; `kartotek dev` turns it on.
    pub dev_login: bool,
}

impl Default for CitizenLoginSettings {
    fn default() -> Self {
        CitizenLoginSettings {
            providers: Vec::new(),
            jwks_refresh_interval_ms: 300_000,
            dev_login: false,
        }
    }
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            issuer: String::new(),
            audience: "kartotek".into(),
            signing_keys_file: None,
            access_token_lifetime_s: 300,
            request_bytes_max: 16 * 1024,
            consent_scopes: Vec::new(),
            requests_per_client_per_s: 20,
            request_burst_per_client: 60,
            dpop_nonce_window_s: 300,
        }
    }
}

/// Most `catalog.owner_contacts`.
pub const OWNER_CONTACTS_MAX: usize = 256;
/// Longest catalog title, description, contact name or e-mail address, in bytes.
pub const CATALOG_TEXT_BYTES_MAX: usize = 1024;

/// A contact point (a vCard `fn` and `hasEmail` in the DCAT export).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactSettings {
    /// The name (`vcard:fn`), e.g. an organisation's API team.
    pub name: String,
    /// The e-mail address (`vcard:hasEmail`, as a `mailto:` URI).
    pub email: String,
}

/// The contact point of one API owner organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerContactSettings {
    /// The owner's organisation number.
    pub org: String,
    /// Its contact point.
    #[serde(flatten)]
    pub contact: ContactSettings,
}

/// The API catalog's own description (`/catalog`, `/catalog.ttl`). Catalog entries carry no
/// contact e-mail (the replicated record has none), so the DCAT export takes each API's
/// contact point from here: the owner's in `owner_contacts`, else the catalog's `contact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogSettings {
    /// The catalog's title (`dct:title`, Norwegian bokmål).
    pub title: String,
    /// The catalog's description (`dct:description`, Norwegian bokmål).
    pub description: String,
    /// Organisation number of the catalog's publisher (`dct:publisher`).
    pub publisher_org: String,
    /// The catalog's contact point, also every API's whose owner has none below.
    pub contact: ContactSettings,
    /// Contact points of API owners (at most [`OWNER_CONTACTS_MAX`]).
    pub owner_contacts: Vec<OwnerContactSettings>,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        CatalogSettings {
            title: "Kartotek API-katalog".into(),
            description:
                "API-er i helsesektoren, registrert i Kartotek av organisasjonene som eier dem."
                    .into(),
            publisher_org: "999999999".into(),
            contact: ContactSettings {
                name: "Kartotek API-katalog".into(),
                email: "api-katalog@kartotek.example".into(),
            },
            owner_contacts: Vec::new(),
        }
    }
}

impl CatalogSettings {
    /// The contact point of APIs owned by `org`.
    pub fn contact_of(&self, org: &str) -> &ContactSettings {
        self.owner_contacts
            .iter()
            .find(|o| o.org == org)
            .map_or(&self.contact, |o| &o.contact)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let text = |field: &'static str, value: &str| {
            if value.trim().is_empty() || value.len() > CATALOG_TEXT_BYTES_MAX {
                Err(invalid(
                    field,
                    format!("must be 1 to {CATALOG_TEXT_BYTES_MAX} bytes"),
                ))
            } else {
                Ok(())
            }
        };
        let org = |field: &'static str, value: &str| {
            kartotek_domain::locator::parse_org_number(field, value)
                .map(|_| ())
                .map_err(|e| invalid(field, e.to_string()))
        };
        let contact = |field_name: &'static str, field_email: &'static str, c: &ContactSettings| {
            text(field_name, &c.name)?;
            text(field_email, &c.email)?;
            match c.email.split_once('@') {
                Some((user, host))
                    if !user.is_empty()
                        && host.contains('.')
                        && !c.email.contains([' ', '<', '>', '"']) =>
                {
                    Ok(())
                }
                _ => Err(invalid(field_email, "not an e-mail address")),
            }
        };
        text("catalog.title", &self.title)?;
        text("catalog.description", &self.description)?;
        org("catalog.publisher_org", &self.publisher_org)?;
        contact(
            "catalog.contact.name",
            "catalog.contact.email",
            &self.contact,
        )?;
        if self.owner_contacts.len() > OWNER_CONTACTS_MAX {
            return Err(invalid(
                "catalog.owner_contacts",
                format!("at most {OWNER_CONTACTS_MAX}"),
            ));
        }
        for o in &self.owner_contacts {
            org("catalog.owner_contacts.org", &o.org)?;
            contact(
                "catalog.owner_contacts.name",
                "catalog.owner_contacts.email",
                &o.contact,
            )?;
        }
        Ok(())
    }
}

/// Most `innsyn.organisations`.
pub const INNSYN_ORGANISATIONS_MAX: usize = 4096;
/// Longest organisation name in `innsyn.organisations`, bytes.
pub const INNSYN_ORG_NAME_BYTES_MAX: usize = 256;
/// Largest `innsyn.personnel_name_delay_s` (one year).
pub const INNSYN_NAME_DELAY_S_MAX: u64 = 366 * 24 * 3600;
/// Largest `innsyn.access_events_max`.
pub const INNSYN_ACCESS_EVENTS_MAX: u32 = 20_000;

/// The name shown for one organisation number on the citizen page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganisationName {
    /// The organisation number.
    pub org: String,
    /// Its name, e.g. `Helse Bergen HF`.
    pub name: String,
}

/// The citizen page `/innsyn`: who has looked at my data, my notifications, blocks, consents
/// and reservations, and the same for whom I represent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InnsynSettings {
    /// The citizen app client the page exchanges a citizen's login as (a client file with
    /// `kartotek:citizen` allowed; `kartotek dev`: `<data-dir>/clients/citizen-app.json`).
    /// Read at each login. Unset: nobody can log in to the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_file: Option<PathBuf>,
    /// Personnel who looked are shown by organisation at once and by their own identity only
    /// this many seconds after the access (helsenorge: one week). 0: at once.
    pub personnel_name_delay_s: u64,
    /// Most audit events shown in one view (the latest; the page says when there are more).
    pub access_events_max: u32,
    /// Names shown for organisation numbers (the audit log has only the number).
    pub organisations: Vec<OrganisationName>,
    /// Health personnel's names (the audit log has only the HPR number), shown on this page
    /// after the delay and on `/org` at once: a CSV export of HPR, `hpr_number,name` per line; re-read when it changes.
    /// Unset: personnel are shown by HPR number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personnel_names_file: Option<PathBuf>,
    /// The production login: the OpenID Connect authorisation-code flow (with PKCE) at an
    /// external provider, ID-porten. Unset: only the dev login (when on) is offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcLoginSettings>,
}

/// Longest `innsyn.oidc` URL, client id, scope or `acr_values`, in bytes.
pub const OIDC_FIELD_BYTES_MAX: usize = 512;

/// How the citizen page authenticates at the provider's token endpoint (ID-porten offers
/// both; `private_key_jwt` keeps no shared secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OidcClientAuth {
    /// `client_secret_post`: `client_secret` from `client_secret_file` in the form.
    #[default]
    ClientSecretPost,
    /// `private_key_jwt` (RFC 7523): a client assertion signed with the key in
    /// `client_key_file` (one private JWK), `aud` the provider's issuer.
    PrivateKeyJwt,
}

/// The citizen page's login at an external OpenID provider (ID-porten): authorisation code
/// with PKCE (S256), `state` and `nonce`. The provider must also be one of
/// `citizen_login.providers` (same issuer), whose checks the ID token then passes in the
/// token exchange; its `audience` there must be this `client_id` (or empty, when the
/// provider's client id is the citizen app's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcLoginSettings {
    /// The provider's issuer (`https://idporten.no`), compared exactly with the discovery
    /// document's and the authorisation response's `iss` (RFC 9207).
    pub issuer: String,
    /// The page's client id at the provider.
    pub client_id: String,
    /// How the page authenticates at the token endpoint.
    #[serde(default)]
    pub client_auth: OidcClientAuth,
    /// `client_secret_post`: a file holding the client secret (one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// `private_key_jwt`: a file with the page's private key as one JWK (ES256 or EdDSA;
    /// its public key is registered at the provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
    /// The authorisation endpoint; empty: from the discovery document
    /// (`<issuer>/.well-known/openid-configuration`).
    #[serde(default)]
    pub authorization_endpoint: String,
    /// The token endpoint; empty: from the discovery document.
    #[serde(default)]
    pub token_endpoint: String,
    /// The end-session endpoint (logout at the provider too); empty: from the discovery
    /// document, if it names one.
    #[serde(default)]
    pub end_session_endpoint: String,
    /// Scopes asked for (`openid` is required; ID-porten: `openid profile`).
    #[serde(default = "default_oidc_scope")]
    pub scope: String,
    /// `acr_values` asked for (ID-porten: `idporten-loa-substantial` or `idporten-loa-high`).
    #[serde(default = "default_oidc_acr")]
    pub acr_values: String,
    /// How long a started login may take (the flow cookie's life), seconds; 30 to 1800.
    #[serde(default = "default_oidc_flow_s")]
    pub flow_timeout_s: u64,
}

fn default_oidc_scope() -> String {
    "openid profile".into()
}

fn default_oidc_acr() -> String {
    kartotek_auth::login::ACR_SUBSTANTIAL.into()
}

fn default_oidc_flow_s() -> u64 {
    600
}

impl OidcLoginSettings {
    fn validate(&self, providers: &[LoginProviderSettings]) -> Result<(), ConfigError> {
        validate_base_url("innsyn.oidc.issuer", &self.issuer)?;
        for (field, url) in [
            (
                "innsyn.oidc.authorization_endpoint",
                &self.authorization_endpoint,
            ),
            ("innsyn.oidc.token_endpoint", &self.token_endpoint),
            (
                "innsyn.oidc.end_session_endpoint",
                &self.end_session_endpoint,
            ),
        ] {
            if !url.is_empty() {
                validate_endpoint_url(field, url)?;
            }
        }
        for (field, text) in [
            ("innsyn.oidc.client_id", &self.client_id),
            ("innsyn.oidc.scope", &self.scope),
            ("innsyn.oidc.acr_values", &self.acr_values),
        ] {
            if text.trim().is_empty()
                || text.len() > OIDC_FIELD_BYTES_MAX
                || text.chars().any(char::is_control)
            {
                return Err(invalid(
                    field,
                    format!("must be 1 to {OIDC_FIELD_BYTES_MAX} bytes, no control characters"),
                ));
            }
        }
        if !self.scope.split(' ').any(|s| s == "openid") {
            return Err(invalid("innsyn.oidc.scope", "must contain openid"));
        }
        if let Some(bad) = self
            .acr_values
            .split(' ')
            .find(|a| kartotek_auth::login::security_level_of(a).is_none())
        {
            return Err(invalid(
                "innsyn.oidc.acr_values",
                format!(
                    "{bad:?} is not an ID-porten level (idporten-loa-substantial, idporten-loa-high)"
                ),
            ));
        }
        match self.client_auth {
            OidcClientAuth::ClientSecretPost if self.client_secret_file.is_none() => {
                return Err(invalid(
                    "innsyn.oidc.client_secret_file",
                    "required with client_auth = \"client_secret_post\"",
                ));
            }
            OidcClientAuth::PrivateKeyJwt if self.client_key_file.is_none() => {
                return Err(invalid(
                    "innsyn.oidc.client_key_file",
                    "required with client_auth = \"private_key_jwt\"",
                ));
            }
            _ => {}
        }
        if !(30..=1800).contains(&self.flow_timeout_s) {
            return Err(invalid("innsyn.oidc.flow_timeout_s", "must be 30 to 1800"));
        }
        let Some(provider) = providers.iter().find(|p| p.issuer == self.issuer) else {
            return Err(invalid(
                "innsyn.oidc.issuer",
                "must also be one of citizen_login.providers (whose keys check the ID token)",
            ));
        };
        if !provider.audience.is_empty() && provider.audience != self.client_id {
            return Err(invalid(
                "innsyn.oidc.client_id",
                format!(
                    "the provider's ID tokens are for {:?} (citizen_login.providers.audience), not this client id",
                    provider.audience
                ),
            ));
        }
        Ok(())
    }
}

/// An endpoint URL: `https://`, or `http://` on a loopback host (tests), with a host; a
/// query is allowed (some providers put one in their endpoints), a fragment is not.
fn validate_endpoint_url(field: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.len() > OIDC_FIELD_BYTES_MAX {
        return Err(invalid(
            field,
            format!("at most {OIDC_FIELD_BYTES_MAX} bytes"),
        ));
    }
    let uri: Uri = url
        .parse()
        .map_err(|e| invalid(field, format!("not a URL: {e}")))?;
    let loopback = matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if loopback => {}
        _ => {
            return Err(invalid(
                field,
                "must be https:// (http:// only on a loopback host)",
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) || url.contains('#') {
        return Err(invalid(field, "needs a host and no fragment"));
    }
    Ok(())
}

impl Default for InnsynSettings {
    fn default() -> Self {
        InnsynSettings {
            client_file: None,
            personnel_name_delay_s: 7 * 24 * 3600,
            access_events_max: 2_000,
            organisations: Vec::new(),
            personnel_names_file: None,
            oidc: None,
        }
    }
}

impl InnsynSettings {
    /// The name of organisation `org`, if configured.
    pub fn organisation_name(&self, org: &str) -> Option<&str> {
        self.organisations
            .iter()
            .find(|o| o.org == org)
            .map(|o| o.name.as_str())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.personnel_name_delay_s > INNSYN_NAME_DELAY_S_MAX {
            return Err(invalid(
                "innsyn.personnel_name_delay_s",
                format!("at most {INNSYN_NAME_DELAY_S_MAX} s (a year)"),
            ));
        }
        if !(1..=INNSYN_ACCESS_EVENTS_MAX).contains(&self.access_events_max) {
            return Err(invalid(
                "innsyn.access_events_max",
                format!("must be 1 to {INNSYN_ACCESS_EVENTS_MAX}"),
            ));
        }
        if self.organisations.len() > INNSYN_ORGANISATIONS_MAX {
            return Err(invalid(
                "innsyn.organisations",
                format!("at most {INNSYN_ORGANISATIONS_MAX}"),
            ));
        }
        for o in &self.organisations {
            kartotek_domain::locator::parse_org_number("innsyn.organisations.org", &o.org)
                .map_err(|e| invalid("innsyn.organisations.org", e.to_string()))?;
            if o.name.trim().is_empty()
                || o.name.len() > INNSYN_ORG_NAME_BYTES_MAX
                || o.name.chars().any(char::is_control)
            {
                return Err(invalid(
                    "innsyn.organisations.name",
                    format!(
                        "must be 1 to {INNSYN_ORG_NAME_BYTES_MAX} bytes, no control characters"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// One frontend's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrontendConfig {
    /// Address the HTTP server listens on.
    pub listen_addr: SocketAddr,
    /// The URL clients reach this frontend at (`http[s]://host[:port][/prefix]`, no trailing
    /// `/`): the base of absolute links and the token issuer (unless `token.issuer` is set).
    pub public_base_url: String,
    /// Log filter (`tracing` env-filter syntax) when `RUST_LOG` is unset.
    pub log_filter: String,
    /// Log lines as `text` or `json` (one object per line); `--log-format` overrides it.
    pub log_format: crate::logging::LogFormat,
    /// Optional OpenTelemetry traces (OTLP; off unless `otlp_endpoint` is set).
    pub telemetry: crate::logging::TelemetrySettings,
    /// How the cluster is reached.
    pub cluster: ClusterSettings,
    /// Limits of the HTTP request layer.
    pub http: HttpSettings,
    /// The token service.
    pub token: TokenSettings,
    /// Citizen login for the token exchange.
    pub citizen_login: CitizenLoginSettings,
    /// The API catalog's description and contact points.
    pub catalog: CatalogSettings,
    /// TLS on `listen_addr` (PEM files). Unset: plain HTTP, for loopback or behind a load
    /// balancer that terminates TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<HttpTlsFiles>,
    /// The citizen page `/innsyn` ("who has looked at my data").
    pub innsyn: InnsynSettings,
}

/// The frontend's server certificate and key (PEM), e.g. `api-frontend.pem` of
/// `deploy/tls/make-certs.sh --api frontend=…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTlsFiles {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
}

impl Default for FrontendConfig {
    fn default() -> Self {
        FrontendConfig {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_base_url: "http://127.0.0.1:8080".into(),
            log_filter: "info".into(),
            log_format: crate::logging::LogFormat::Text,
            telemetry: crate::logging::TelemetrySettings::default(),
            cluster: ClusterSettings::default(),
            http: HttpSettings::default(),
            token: TokenSettings::default(),
            citizen_login: CitizenLoginSettings::default(),
            catalog: CatalogSettings::default(),
            tls: None,
            innsyn: InnsynSettings::default(),
        }
    }
}

impl FrontendConfig {
    /// Loads defaults, then the TOML file (if given), then `KARTOTEK_FRONTEND_*` variables
    /// (nested keys with `__`, e.g. `KARTOTEK_FRONTEND_HTTP__REQUEST_TIMEOUT_MS=5000`), and
    /// validates the result.
    pub fn load(path: Option<&Path>) -> Result<FrontendConfig, ConfigError> {
        Self::load_from(path, Env::prefixed(ENV_PREFIX).split("__"))
    }

    /// [`load`](Self::load) with the environment provider given (tests use a fresh one).
    fn load_from(path: Option<&Path>, env: Env) -> Result<FrontendConfig, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(FrontendConfig::default()));
        if let Some(p) = path {
            if !p.exists() {
                return Err(ConfigError::Load(format!("{} does not exist", p.display())));
            }
            fig = fig.merge(Toml::file(p));
        }
        let cfg: FrontendConfig = fig
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The effective configuration as TOML (what `--print-config` prints).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::Load(e.to_string()))
    }

    /// Checks ranges and relations between settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.telemetry
            .validate()
            .map_err(|(field, reason)| invalid(field, reason))?;
        validate_base_url("public_base_url", &self.public_base_url)?;
        self.catalog.validate()?;
        self.innsyn.validate()?;
        if let Some(o) = &self.innsyn.oidc {
            o.validate(&self.citizen_login.providers)?;
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_filter) {
            return Err(invalid("log_filter", e.to_string()));
        }

        let c = &self.cluster;
        if c.endpoints.is_empty() {
            return Err(invalid(
                "cluster.endpoints",
                "at least one endpoint is needed",
            ));
        }
        if c.endpoints.len() > ENDPOINTS_MAX {
            return Err(invalid(
                "cluster.endpoints",
                format!("at most {ENDPOINTS_MAX} endpoints"),
            ));
        }
        for e in &c.endpoints {
            if let Err(err) = normalize_endpoint(e) {
                return Err(invalid("cluster.endpoints", err.to_string()));
            }
        }
        for (field, value) in [
            ("cluster.connect_timeout_ms", c.connect_timeout_ms),
            ("cluster.attempt_timeout_ms", c.attempt_timeout_ms),
            ("cluster.deadline_ms", c.deadline_ms),
            ("cluster.readiness_timeout_ms", c.readiness_timeout_ms),
        ] {
            if !(1..=600_000).contains(&value) {
                return Err(invalid(field, "must be 1 ms to 10 min"));
            }
        }
        if c.attempt_timeout_ms > c.deadline_ms {
            return Err(invalid(
                "cluster.attempt_timeout_ms",
                "must not exceed cluster.deadline_ms",
            ));
        }

        let h = &self.http;
        if !(1024..=(64 << 20)).contains(&h.request_body_bytes_max) {
            return Err(invalid(
                "http.request_body_bytes_max",
                "must be 1 KiB to 64 MiB",
            ));
        }
        if !(1..=600_000).contains(&h.request_timeout_ms) {
            return Err(invalid("http.request_timeout_ms", "must be 1 ms to 10 min"));
        }
        if !(1..=65_536).contains(&h.concurrent_requests_max) {
            return Err(invalid(
                "http.concurrent_requests_max",
                "must be 1 to 65536",
            ));
        }
        if h.shutdown_grace_ms > 600_000 {
            return Err(invalid("http.shutdown_grace_ms", "must be at most 10 min"));
        }
        if c.readiness_timeout_ms >= h.request_timeout_ms {
            return Err(invalid(
                "cluster.readiness_timeout_ms",
                "must be less than http.request_timeout_ms (else /readyz times out first)",
            ));
        }

        if let Some(tls) = &self.tls {
            for (field, path) in [
                ("tls.cert_file", &tls.cert_file),
                ("tls.key_file", &tls.key_file),
            ] {
                if !path.is_file() {
                    return Err(invalid(field, format!("{} is not a file", path.display())));
                }
            }
        }
        let t = &self.token;
        if !t.issuer.is_empty() {
            validate_base_url("token.issuer", &t.issuer)?;
        }
        if t.audience.is_empty() || t.audience.len() > kartotek_auth::claims::ISSUER_BYTES_MAX {
            return Err(invalid(
                "token.audience",
                format!(
                    "must be 1 to {} bytes",
                    kartotek_auth::claims::ISSUER_BYTES_MAX
                ),
            ));
        }
        let lifetime_max = kartotek_auth::ACCESS_TOKEN_LIFETIME_S_MAX.unsigned_abs();
        if !(1..=lifetime_max).contains(&t.access_token_lifetime_s) {
            return Err(invalid(
                "token.access_token_lifetime_s",
                format!("must be 1 to {lifetime_max} s"),
            ));
        }
        if !(1024..=TOKEN_REQUEST_BYTES_MAX).contains(&t.request_bytes_max) {
            return Err(invalid(
                "token.request_bytes_max",
                format!("must be 1 KiB to {TOKEN_REQUEST_BYTES_MAX} bytes"),
            ));
        }
        if t.consent_scopes.len() > CONSENT_SCOPES_MAX {
            return Err(invalid(
                "token.consent_scopes",
                format!("at most {CONSENT_SCOPES_MAX}"),
            ));
        }
        if t.requests_per_client_per_s > 0 && t.request_burst_per_client == 0 {
            return Err(invalid(
                "token.request_burst_per_client",
                "must be at least 1 when requests_per_client_per_s is set",
            ));
        }
        let windows = kartotek_auth::dpop::DPOP_NONCE_WINDOW_S_RANGE;
        if t.dpop_nonce_window_s != 0
            && !windows.contains(&i64::try_from(t.dpop_nonce_window_s).unwrap_or(i64::MAX))
        {
            return Err(invalid(
                "token.dpop_nonce_window_s",
                format!(
                    "must be 0 (no nonces) or {} to {} s",
                    windows.start(),
                    windows.end()
                ),
            ));
        }
        for s in &t.consent_scopes {
            kartotek_domain::fields::parse_scope("token.consent_scopes", s)
                .map_err(|e| invalid("token.consent_scopes", e.reason))?;
        }
        let l = &self.citizen_login;
        if l.providers.len() > LOGIN_PROVIDERS_MAX {
            return Err(invalid(
                "citizen_login.providers",
                format!("at most {LOGIN_PROVIDERS_MAX}"),
            ));
        }
        for p in &l.providers {
            validate_base_url("citizen_login.providers.issuer", &p.issuer)?;
            if p.audience.len() > kartotek_auth::claims::ISSUER_BYTES_MAX {
                return Err(invalid("citizen_login.providers.audience", "too long"));
            }
            if let Some(bad) = p
                .acr_allowed
                .iter()
                .find(|a| kartotek_auth::login::security_level_of(a).is_none())
            {
                return Err(invalid(
                    "citizen_login.providers.acr_allowed",
                    format!(
                        "{bad:?} is not an ID-porten level (idporten-loa-substantial, idporten-loa-high)"
                    ),
                ));
            }
        }
        if l.jwks_refresh_interval_ms < 10_000 {
            return Err(invalid(
                "citizen_login.jwks_refresh_interval_ms",
                "at least 10000 (a provider is not asked more than every 10 s)",
            ));
        }
        for p in &l.providers {
            match (&p.jwks_file, &p.jwks_uri) {
                (Some(_), None) => {}
                (None, Some(uri)) => {
                    validate_base_url("citizen_login.providers.jwks_uri", uri)?;
                    let loopback = uri.parse::<Uri>().ok().is_some_and(|u| {
                        u.host()
                            .is_some_and(|h| matches!(h, "127.0.0.1" | "localhost" | "[::1]"))
                    });
                    if !uri.starts_with("https://") && !loopback {
                        return Err(invalid(
                            "citizen_login.providers.jwks_uri",
                            "must be https:// (http:// only on a loopback host)",
                        ));
                    }
                }
                _ => {
                    return Err(invalid(
                        "citizen_login.providers",
                        "give each provider one of jwks_file and jwks_uri",
                    ));
                }
            }
        }
        if l.dev_login && !self.is_dev_issuer() {
            return Err(invalid(
                "citizen_login.dev_login",
                "the dev login issues citizen identities without proof: only for an http:// \
                 issuer on a loopback host (kartotek dev)",
            ));
        }
        if t.signing_keys_file.is_none() && !self.is_dev_issuer() {
            return Err(invalid(
                "token.signing_keys_file",
                "required (keys shared by every frontend) unless the issuer is http:// on a \
                 loopback host (dev)",
            ));
        }
        Ok(())
    }

    /// The token issuer URL: `token.issuer`, or `public_base_url` when that is empty.
    pub fn issuer(&self) -> &str {
        if self.token.issuer.is_empty() {
            &self.public_base_url
        } else {
            &self.token.issuer
        }
    }

    /// True when the issuer is `http://` on a loopback host: dev, where signing keys may be
    /// generated in memory.
    pub fn is_dev_issuer(&self) -> bool {
        let Ok(uri) = self.issuer().parse::<Uri>() else {
            return false;
        };
        uri.scheme_str() == Some("http")
            && matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"))
    }

    /// The `kartotek-client` configuration for reaching the cluster.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            endpoints: self.cluster.endpoints.clone(),
            connect_timeout_ms: self.cluster.connect_timeout_ms,
            attempt_timeout_ms: self.cluster.attempt_timeout_ms,
            deadline_ms: self.cluster.deadline_ms,
            ca_file: self.cluster.ca_file.clone(),
            ..ClientConfig::default()
        }
    }

    /// [`HttpSettings::request_timeout_ms`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.http.request_timeout_ms)
    }

    /// [`ClusterSettings::readiness_timeout_ms`] as a duration.
    pub fn readiness_timeout(&self) -> Duration {
        Duration::from_millis(self.cluster.readiness_timeout_ms)
    }

    /// [`HttpSettings::shutdown_grace_ms`] as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.http.shutdown_grace_ms)
    }
}

fn validate_base_url(field: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.is_empty() || url.len() > PUBLIC_BASE_URL_LEN_MAX {
        return Err(invalid(
            field,
            format!("must be 1 to {PUBLIC_BASE_URL_LEN_MAX} bytes"),
        ));
    }
    let uri: Uri = url
        .parse()
        .map_err(|e| invalid(field, format!("not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid(field, "must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid(field, "missing host"));
    }
    if url.contains(['?', '#', '@']) {
        return Err(invalid(
            field,
            "must not contain user info, a query or a fragment",
        ));
    }
    if url.ends_with('/') {
        return Err(invalid(field, "must not end with /"));
    }
    Ok(())
}

/// A list from TOML (`["a:1", "b:2"]`) or a comma-separated string from the environment.
fn list_or_comma_separated<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    Ok(match ListOrString::deserialize(d)? {
        ListOrString::List(list) => list,
        ListOrString::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(c: &FrontendConfig) -> Option<&'static str> {
        match c.validate() {
            Err(ConfigError::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn defaults_are_valid_and_match_kartotek_dev() {
        let c = FrontendConfig::default();
        c.validate().unwrap();
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.cluster.endpoints,
            ["127.0.0.1:7401", "127.0.0.1:7402", "127.0.0.1:7403"]
        );
        c.client_config().validate().unwrap();
    }

    #[test]
    fn bad_values_are_named() {
        let ok = FrontendConfig::default();
        let mut cases: Vec<(FrontendConfig, &str)> = Vec::new();
        for (url, _) in [
            ("", 0),
            ("127.0.0.1:8080", 0),
            ("ftp://x", 0),
            ("http://x/", 0),
            ("http://x?a=1", 0),
            ("http://u@x", 0),
        ] {
            let mut c = ok.clone();
            c.public_base_url = url.into();
            cases.push((c, "public_base_url"));
        }
        let mut c = ok.clone();
        c.log_filter = "info,[=".into();
        cases.push((c, "log_filter"));
        let mut c = ok.clone();
        c.cluster.endpoints.clear();
        cases.push((c, "cluster.endpoints"));
        let mut c = ok.clone();
        c.cluster.endpoints = vec!["https://x:1".into()];
        cases.push((c, "cluster.endpoints"));
        let mut c = ok.clone();
        c.cluster.connect_timeout_ms = 0;
        cases.push((c, "cluster.connect_timeout_ms"));
        let mut c = ok.clone();
        c.cluster.attempt_timeout_ms = c.cluster.deadline_ms + 1;
        cases.push((c, "cluster.attempt_timeout_ms"));
        let mut c = ok.clone();
        c.http.request_body_bytes_max = 10;
        cases.push((c, "http.request_body_bytes_max"));
        let mut c = ok.clone();
        c.http.request_timeout_ms = 0;
        cases.push((c, "http.request_timeout_ms"));
        let mut c = ok.clone();
        c.http.concurrent_requests_max = 0;
        cases.push((c, "http.concurrent_requests_max"));
        let mut c = ok.clone();
        c.http.shutdown_grace_ms = 3_600_000;
        cases.push((c, "http.shutdown_grace_ms"));
        let mut c = ok.clone();
        c.cluster.readiness_timeout_ms = c.http.request_timeout_ms;
        cases.push((c, "cluster.readiness_timeout_ms"));
        for (c, want) in cases {
            assert_eq!(field_of(&c), Some(want), "{c:?}");
        }
        // Production (not http on loopback) needs a shared key file.
        let mut c = ok.clone();
        c.public_base_url = "https://kartotek.example.no/api".into();
        assert_eq!(field_of(&c), Some("token.signing_keys_file"));
        c.token.signing_keys_file = Some("/etc/kartotek/token-keys.json".into());
        c.validate().unwrap();
        for issuer in ["http://10.0.0.1:8080", "https://127.0.0.1:8080"] {
            let mut c = ok.clone();
            c.token.issuer = issuer.into();
            assert_eq!(field_of(&c), Some("token.signing_keys_file"), "{issuer}");
        }
        let mut c = ok.clone();
        c.token.issuer = "http://localhost:9000".into();
        c.validate().unwrap();
        assert_eq!(c.issuer(), "http://localhost:9000");
        assert_eq!(ok.issuer(), "http://127.0.0.1:8080");
        let mut token_cases: Vec<(FrontendConfig, &str)> = Vec::new();
        let mut c = ok.clone();
        c.token.issuer = "http://x/".into();
        token_cases.push((c, "token.issuer"));
        let mut c = ok.clone();
        c.token.audience.clear();
        token_cases.push((c, "token.audience"));
        let mut c = ok.clone();
        c.token.access_token_lifetime_s = 3601;
        token_cases.push((c, "token.access_token_lifetime_s"));
        let mut c = ok.clone();
        c.token.request_bytes_max = TOKEN_REQUEST_BYTES_MAX + 1;
        token_cases.push((c, "token.request_bytes_max"));
        for (c, want) in token_cases {
            assert_eq!(field_of(&c), Some(want), "{c:?}");
        }
        let provider = |file: Option<&str>, uri: Option<&str>| {
            let mut c = ok.clone();
            c.citizen_login.providers.push(LoginProviderSettings {
                issuer: "https://idporten.no".into(),
                audience: String::new(),
                jwks_file: file.map(PathBuf::from),
                jwks_uri: uri.map(str::to_owned),
                acr_allowed: Vec::new(),
            });
            c
        };
        assert_eq!(field_of(&provider(Some("/k.json"), None)), None);
        assert_eq!(
            field_of(&provider(None, Some("https://idporten.no/jwks.json"))),
            None
        );
        assert_eq!(
            field_of(&provider(None, Some("http://127.0.0.1:9/jwks.json"))),
            None
        );
        for (file, uri, want) in [
            (None, None, "citizen_login.providers"),
            (
                Some("/k.json"),
                Some("https://x/j"),
                "citizen_login.providers",
            ),
            (
                None,
                Some("http://idporten.no/jwks.json"),
                "citizen_login.providers.jwks_uri",
            ),
            (
                None,
                Some("ftp://idporten.no/jwks.json"),
                "citizen_login.providers.jwks_uri",
            ),
        ] {
            assert_eq!(
                field_of(&provider(file, uri)),
                Some(want),
                "{file:?} {uri:?}"
            );
        }
        let mut c = ok.clone();
        c.citizen_login.jwks_refresh_interval_ms = 9_999;
        assert_eq!(field_of(&c), Some("citizen_login.jwks_refresh_interval_ms"));
    }

    #[test]
    fn toml_file_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.toml");
        std::fs::write(
            &p,
            "listen_addr = \"0.0.0.0:9090\"\n[cluster]\nendpoints = [\"10.0.0.1:7401\"]\n",
        )
        .unwrap();
        let c = FrontendConfig::load_from(Some(&p), Env::raw().only(&[])).unwrap();
        assert_eq!(c.listen_addr.to_string(), "0.0.0.0:9090");
        assert_eq!(c.cluster.endpoints, ["10.0.0.1:7401"]);
        std::fs::write(&p, "listen_addres = \"0.0.0.0:9090\"\n").unwrap();
        assert!(FrontendConfig::load_from(Some(&p), Env::raw().only(&[])).is_err());
        let missing = dir.path().join("missing.toml");
        assert!(FrontendConfig::load(Some(&missing)).is_err());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure returns figment::Result.
    fn env_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "f.toml",
                "public_base_url = \"http://file:1\"\n[http]\nrequest_timeout_ms = 7000\n",
            )?;
            jail.set_env("KARTOTEK_FRONTEND_PUBLIC_BASE_URL", "https://env.example");
            jail.set_env(
                "KARTOTEK_FRONTEND_TOKEN__SIGNING_KEYS_FILE",
                "/etc/kartotek/token-keys.json",
            );
            jail.set_env("KARTOTEK_FRONTEND_HTTP__REQUEST_TIMEOUT_MS", "4000");
            jail.set_env(
                "KARTOTEK_FRONTEND_CLUSTER__ENDPOINTS",
                "10.0.0.1:7401, 10.0.0.2:7401",
            );
            // Not ours: the node's and the CLI's variables are left alone.
            jail.set_env("KARTOTEK_ENDPOINTS", "x");
            let c = FrontendConfig::load(Some(Path::new("f.toml")))
                .map_err(|e| figment::Error::from(e.to_string()))?;
            assert_eq!(c.public_base_url, "https://env.example");
            assert_eq!(c.http.request_timeout_ms, 4000);
            assert_eq!(c.cluster.endpoints, ["10.0.0.1:7401", "10.0.0.2:7401"]);
            jail.set_env("KARTOTEK_FRONTEND_HTTP__CONCURRENT_REQUESTS_MAX", "0");
            match FrontendConfig::load(None) {
                Err(ConfigError::Invalid { field, .. }) => {
                    assert_eq!(field, "http.concurrent_requests_max")
                }
                other => panic!("{other:?}"),
            }
            Ok(())
        });
    }

    #[test]
    fn innsyn_settings_are_checked() {
        let ok = FrontendConfig::default();
        assert_eq!(ok.innsyn.personnel_name_delay_s, 7 * 24 * 3600);
        let mut c = ok.clone();
        c.innsyn.personnel_name_delay_s = INNSYN_NAME_DELAY_S_MAX + 1;
        assert_eq!(field_of(&c), Some("innsyn.personnel_name_delay_s"));
        let mut c = ok.clone();
        c.innsyn.access_events_max = 0;
        assert_eq!(field_of(&c), Some("innsyn.access_events_max"));
        let named = |org: &str, name: &str| {
            let mut c = ok.clone();
            c.innsyn.organisations.push(OrganisationName {
                org: org.into(),
                name: name.into(),
            });
            c
        };
        assert_eq!(field_of(&named("983974724", "Helse Bergen HF")), None);
        assert_eq!(
            named("983974724", "Helse Bergen HF")
                .innsyn
                .organisation_name("983974724"),
            Some("Helse Bergen HF")
        );
        assert_eq!(
            field_of(&named("123", "X")),
            Some("innsyn.organisations.org")
        );
        assert_eq!(
            field_of(&named("983974724", " ")),
            Some("innsyn.organisations.name")
        );
    }

    #[test]
    fn the_provider_login_is_checked() {
        let mut ok = FrontendConfig::default();
        ok.citizen_login.providers.push(LoginProviderSettings {
            issuer: "https://idporten.no".into(),
            audience: "innsyn-app".into(),
            jwks_file: None,
            jwks_uri: Some("https://idporten.no/jwks.json".into()),
            acr_allowed: vec![kartotek_auth::login::ACR_HIGH.into()],
        });
        ok.innsyn.oidc = Some(OidcLoginSettings {
            issuer: "https://idporten.no".into(),
            client_id: "innsyn-app".into(),
            client_auth: OidcClientAuth::ClientSecretPost,
            client_secret_file: Some("/etc/kartotek/idporten-secret".into()),
            client_key_file: None,
            authorization_endpoint: String::new(),
            token_endpoint: String::new(),
            end_session_endpoint: String::new(),
            scope: default_oidc_scope(),
            acr_values: default_oidc_acr(),
            flow_timeout_s: default_oidc_flow_s(),
        });
        assert_eq!(field_of(&ok), None);
        let with = |f: &dyn Fn(&mut OidcLoginSettings)| {
            let mut c = ok.clone();
            if let Some(o) = c.innsyn.oidc.as_mut() {
                f(o);
            }
            field_of(&c)
        };
        assert_eq!(
            with(&|o| o.issuer = "https://other.example".into()),
            Some("innsyn.oidc.issuer")
        );
        assert_eq!(
            with(&|o| o.client_id = "someone-else".into()),
            Some("innsyn.oidc.client_id")
        );
        assert_eq!(
            with(&|o| o.scope = "profile".into()),
            Some("innsyn.oidc.scope")
        );
        assert_eq!(
            with(&|o| o.acr_values = "Level2".into()),
            Some("innsyn.oidc.acr_values")
        );
        assert_eq!(
            with(&|o| o.client_secret_file = None),
            Some("innsyn.oidc.client_secret_file")
        );
        assert_eq!(
            with(&|o| o.client_auth = OidcClientAuth::PrivateKeyJwt),
            Some("innsyn.oidc.client_key_file")
        );
        assert_eq!(
            with(&|o| o.token_endpoint = "http://idporten.no/token".into()),
            Some("innsyn.oidc.token_endpoint")
        );
        assert_eq!(
            with(&|o| o.token_endpoint = "http://127.0.0.1:9/token".into()),
            None
        );
        assert_eq!(
            with(&|o| o.flow_timeout_s = 5),
            Some("innsyn.oidc.flow_timeout_s")
        );
        // TOML names, as an operator writes them.
        let text = ok.to_toml().unwrap();
        assert!(
            text.contains("[innsyn.oidc]") && text.contains("client_auth = \"client_secret_post\""),
            "{text}"
        );
    }

    #[test]
    fn example_file_is_the_defaults() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("frontend.example.toml");
        let c = FrontendConfig::load_from(Some(&p), Env::raw().only(&[])).unwrap();
        assert_eq!(c, FrontendConfig::default());
    }

    #[test]
    fn printed_config_loads_back() {
        let c = FrontendConfig::default();
        let text = c.to_toml().unwrap();
        assert!(text.contains("[cluster]"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.toml");
        std::fs::write(&p, &text).unwrap();
        let back = FrontendConfig::load_from(Some(&p), Env::raw().only(&[])).unwrap();
        assert_eq!(back, c);
    }
}
