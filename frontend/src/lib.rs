//! Kartotek's stateless HTTP frontend.
//!
//! The frontend holds no registry state: it talks to the Raft cluster only through
//! `kartotek-client` (the crate does not depend on `kartotek-storage`, `kartotek-node` or
//! `openraft`, and `tests/dependencies.rs` keeps it so). Any number of frontends can run side
//! by side behind a load balancer, and one can be killed at any time.
//!
//! The `kartotek frontend --config frontend.toml` command calls [`run`]; tests call [`serve`]
//! with a listener on port 0.
//!
//! # Module map
//!
//! - [`config`]: [`FrontendConfig`], TOML file plus `KARTOTEK_FRONTEND_*` environment
//!   overrides, validated; defaults fit `kartotek dev`.
//! - [`server`]: [`FrontendArgs`], [`run`], [`serve`], [`app`] and [`FrontendError`].
//! - [`layer`]: the one request layer every route passes through: request id, tracing
//!   span, body size limit, concurrency limit, timeout, problem documents, metrics.
//! - [`problem`]: RFC 9457 problem details ([`Problem`]) and the request error type
//!   [`HttpError`].
//! - [`logging`]: the tracing setup of the binary (text or JSON lines, `log_format`).
//! - [`metrics`]: Prometheus metrics `kartotek_frontend_*` and `GET /metrics`.
//! - [`tls`]: TLS on the listener (`[tls]`), handshakes off the accept loop.
//! - [`health`]: `GET /healthz` (liveness) and `GET /readyz` (the cluster answers and has a
//!   leader).
//!
//! - [`token`]: the token service: `POST /connect/token` (`client_credentials` with
//!   `private_key_jwt`, and the RFC 8693 token exchange of a citizen's login, for themself or
//!   for whom they represent), `GET /.well-known/jwks.json`, `GET
//!   /.well-known/oauth-authorization-server`, and in dev the dev login at `/dev/login`;
//!   signing and checks in `kartotek-auth`.
//!
//! - [`caller`]: the HTTP caller from a verified bearer token; the cluster is called with the
//!   caller's own token.
//! - [`catalog`]: the API catalog: `GET/POST /api/v1/catalog`, `GET/PUT
//!   /api/v1/catalog/{id}`, `PUT /api/v1/catalog/{id}/lifecycle`, the page `/catalog` and
//!   the DCAT-AP-NO export `/catalog.ttl`.
//! - [`openapi`]: OpenAPI 3 of every route, generated from the handlers (`/openapi.json`,
//!   browsable at `/openapi`).
//! - [`home`]: the start page `/` and the HTML layout of every page.
//!
//! - [`audit`]: audit forwarding: `POST /api/v1/audit-events` (IHE BALP `AuditEvent`s, FHIR
//!   R4, into the cluster's hash-chained audit log) and `GET /api/v1/audit-events?patient=…`
//!   (the log exported in the same shape).
//!
//! - [`innsyn`]: the citizen page `/innsyn` ("who has looked at my data", Norwegian and
//!   English): a session from the citizen's login, the accesses to their data, override
//!   notifications, blocks, consents and reservations, and the same for whom they represent.
//!
//! - [`fhir`]: the FHIR R4 facade of the locator: `GET /fhir/DocumentReference`, `POST
//!   /fhir/DocumentReference/_search` (searchset Bundles of DocumentReference pointers,
//!   audited like the gRPC lookup) and `GET /fhir/metadata` (CapabilityStatement).
//!
//! - [`org`]: the organisation view for its compliance officer: `GET /org` (page), `GET
//!   /org/accesses.csv` and `GET /org/accesses` (FHIR Bundle of BALP AuditEvents).

pub mod audit;
pub mod caller;
pub mod catalog;
pub mod config;
pub mod fhir;
pub mod health;
pub mod home;
pub mod innsyn;
pub mod layer;
pub mod logging;
pub mod metrics;
pub mod openapi;
pub mod org;
pub mod personnel;
pub mod problem;
pub mod server;
pub mod tls;
pub mod token;

use std::sync::Arc;

use kartotek_client::KartotekClient;
use tokio::sync::Semaphore;

pub use config::{
    CatalogSettings, CitizenLoginSettings, ClusterSettings, ConfigError, ContactSettings,
    FrontendConfig, HttpSettings, LoginProviderSettings, OwnerContactSettings, TokenSettings,
};
pub use config::{InnsynSettings, OidcClientAuth, OidcLoginSettings, OrganisationName};
pub use layer::RequestId;
pub use metrics::Metrics;
pub use problem::{HttpError, PROBLEM_JSON, Problem};
pub use server::{FrontendArgs, FrontendError, RouteSpec, app, route_table, run, serve};

/// What every handler shares. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    /// The validated configuration.
    pub(crate) config: Arc<FrontendConfig>,
    /// The cluster, through kartotek-client.
    pub(crate) client: KartotekClient,
    /// The metrics registry.
    pub(crate) metrics: Metrics,
    /// Concurrency slots (`http.concurrent_requests_max`).
    pub(crate) slots: Arc<Semaphore>,
    /// The token service.
    pub(crate) token: Arc<token::TokenService>,
    /// The dev login (`citizen_login.dev_login`; dev only).
    pub(crate) dev_login: Option<Arc<token::dev_login::DevLogin>>,
    /// The citizen login providers' keys, refreshed while the frontend serves.
    pub(crate) login_keys: Option<Arc<token::login_keys::LoginKeys>>,
    /// The citizen page's production login (`innsyn.oidc`).
    pub(crate) oidc: Option<Arc<innsyn::oidc::Provider>>,
    /// Health personnel's names by HPR number (`innsyn.personnel_names_file`).
    pub(crate) personnel: Arc<personnel::PersonnelNames>,
}
