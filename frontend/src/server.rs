//! Starting and stopping: [`FrontendArgs`] (the `kartotek frontend` command line), [`run`]
//! (load the configuration, bind, serve until shutdown), [`serve`] (serve on a listener the
//! caller bound, e.g. port 0 in tests) and [`app`] (the router alone).

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{MethodFilter, MethodRouter, on};
use futures::FutureExt;
use kartotek_auth::{Issuer, JtiReplayCache};
use kartotek_client::{ClientCredentials, ClientError, KartotekClient, SelfIssued, TokenSource};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{ConfigError, FrontendConfig};
use crate::metrics::Metrics;
use crate::problem::HttpError;
use crate::token::dev_login::{self, DevLogin};
use crate::token::directory::ClusterDirectory;
use crate::token::login_keys::LoginKeys;
use crate::token::{FRONTEND_CLIENT_ID, FRONTEND_SCOPES, TokenService, TokenSetupError};
use crate::{
    AppState, audit, catalog, fhir, health, home, innsyn, layer, metrics, openapi, org, token,
};

/// Arguments of `kartotek frontend`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FrontendArgs {
    /// TOML configuration file (see frontend/frontend.example.toml); `KARTOTEK_FRONTEND_*` variables override it (nested keys with
    /// `__`, e.g. `KARTOTEK_FRONTEND_HTTP__REQUEST_TIMEOUT_MS=5000`).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Log lines as text or JSON (overrides `log_format`).
    #[arg(long, value_enum)]
    pub log_format: Option<crate::logging::LogFormat>,
}

/// Why the frontend could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    /// The configuration is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The cluster client could not be built from the configuration.
    #[error("cluster client: {0}")]
    Client(#[from] ClientError),
    /// The token service could not be set up (signing keys).
    #[error(transparent)]
    Token(#[from] crate::token::TokenSetupError),
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
    /// The `[tls]` files could not be used.
    #[error("{0}")]
    Tls(String),
    /// `innsyn.personnel_names_file` could not be used.
    #[error("innsyn.personnel_names_file: {0}")]
    PersonnelNames(#[from] crate::personnel::NamesError),
}

/// Runs `kartotek frontend`: loads the configuration (file from `--config`, then
/// `KARTOTEK_FRONTEND_*` variables); with `--print-config` prints it as TOML to stdout and
/// returns. Otherwise sets up logging to stderr (unless the caller already installed a
/// tracing subscriber), binds `listen_addr` and serves until `shutdown` completes.
pub async fn run(
    args: &FrontendArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), FrontendError> {
    let config = FrontendConfig::load(args.config.as_deref())?;
    if args.print_config {
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    crate::logging::init_with(
        &config.log_filter,
        args.log_format.unwrap_or(config.log_format),
        Some((&config.telemetry, "kartotek-frontend")),
    );
    let addr = config.listen_addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| FrontendError::Bind { addr, source })?;
    let result = serve(config, listener, shutdown).await;
    let _ = tokio::task::spawn_blocking(crate::logging::shutdown).await;
    result
}

/// Serves the frontend on `listener` until `shutdown` completes, then stops taking
/// connections and gives requests in flight up to `http.shutdown_grace_ms` to finish.
pub async fn serve(
    config: FrontendConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), FrontendError> {
    let grace = config.shutdown_grace();
    let public = config.public_base_url.clone();
    let tls = match &config.tls {
        Some(t) => Some(
            crate::tls::server_config(&t.cert_file, &t.key_file)
                .map_err(|e| FrontendError::Tls(e.to_string()))?,
        ),
        None => None,
    };
    let every = Duration::from_millis(config.citizen_login.jwks_refresh_interval_ms);
    let state = state(config)?;
    if let Some(keys) = &state.login_keys {
        crate::token::login_keys::spawn_refresh(keys.clone(), state.token.clone(), every);
    }
    let router = routes(state, Router::new());
    let local = listener.local_addr().map_err(FrontendError::Serve)?;
    tracing::info!(addr = %local, public_base_url = %public, tls = tls.is_some(), "frontend listening");
    match tls {
        Some(tls) => {
            let listener =
                crate::tls::TlsListener::new(listener, tls).map_err(FrontendError::Serve)?;
            serve_on(listener, router, shutdown, grace).await
        }
        None => serve_on(listener, router, shutdown, grace).await,
    }
}

/// Serves `router` on `listener` until `shutdown`, then for at most `grace`.
async fn serve_on<L>(
    listener: L,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: std::time::Duration,
) -> Result<(), FrontendError>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let shutdown = shutdown.shared();
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.clone())
        .into_future();
    let grace_over = async move {
        shutdown.await;
        tracing::info!(grace_ms = grace.as_millis(), "shutting down");
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.map_err(FrontendError::Serve)?,
        () = grace_over => tracing::warn!("shutdown grace over; requests still in flight were cut"),
    }
    tracing::info!("frontend stopped");
    Ok(())
}

/// The router with every route behind the request layer. Builds the cluster client (which
/// opens no connection until used); needs a Tokio runtime only when requests come.
pub fn app(config: FrontendConfig) -> Result<Router, FrontendError> {
    Ok(routes(state(config)?, Router::new()))
}

/// The shared state of a validated configuration.
pub(crate) fn state(config: FrontendConfig) -> Result<AppState, FrontendError> {
    config.validate()?;
    let keys = TokenService::load_keys(&config)?;
    let tokens: Arc<dyn TokenSource> = match &config.cluster.client_file {
        Some(path) => Arc::new(ClientCredentials::from_file(path)?),
        None => {
            let lifetime_s = i64::try_from(config.token.access_token_lifetime_s).unwrap_or(300);
            let own = Issuer::new(config.issuer(), keys.clone(), lifetime_s);
            Arc::new(SelfIssued::new(
                own,
                &config.token.audience,
                FRONTEND_CLIENT_ID,
                &FRONTEND_SCOPES,
            ))
        }
    };
    let client = KartotekClient::with_tokens(config.client_config(), tokens)?;
    let directory = Arc::new(ClusterDirectory::new(client.clone()));
    let metrics = Metrics::new();
    let dev_login = if config.citizen_login.dev_login {
        let dev = DevLogin::new(config.issuer()).map_err(TokenSetupError::Keys)?;
        tracing::warn!(
            issuer = dev.issuer(),
            "citizen_login.dev_login is on: /dev/login logs anyone in as any synthetic national \
             id (DEV ONLY)"
        );
        Some(Arc::new(dev))
    } else {
        None
    };
    let login_keys = Arc::new(
        LoginKeys::new(&config.citizen_login.providers, dev_login.clone()).map_err(|reason| {
            TokenSetupError::Keys(kartotek_auth::KeyError::Malformed {
                key: "citizen_login.providers.jwks_file".into(),
                reason,
            })
        })?,
    );
    let logins = login_keys.verifier();
    let token = TokenService::new(
        &config,
        keys,
        directory,
        Arc::new(JtiReplayCache::default()),
        metrics.clone(),
    )
    .with_logins(logins);
    let personnel = match &config.innsyn.personnel_names_file {
        Some(path) => crate::personnel::PersonnelNames::load(path)?,
        None => crate::personnel::PersonnelNames::none(),
    };
    let mut state = state_with(config, client, metrics, token);
    state.dev_login = dev_login;
    state.login_keys = Some(login_keys);
    state.personnel = Arc::new(personnel);
    Ok(state)
}

/// The shared state with a token service the caller built (tests use an in-memory
/// directory).
pub(crate) fn state_with(
    config: FrontendConfig,
    client: KartotekClient,
    metrics: Metrics,
    token: TokenService,
) -> AppState {
    let slots = usize::try_from(config.http.concurrent_requests_max).unwrap_or(usize::MAX);
    let oidc = config
        .innsyn
        .oidc
        .clone()
        .map(crate::innsyn::oidc::Provider::new);
    AppState {
        config: Arc::new(config),
        client,
        metrics,
        slots: Arc::new(Semaphore::new(slots)),
        token: Arc::new(token),
        dev_login: None,
        login_keys: None,
        oidc,
        personnel: Arc::new(crate::personnel::PersonnelNames::none()),
    }
}

/// One route of the router: its method, its path (axum syntax, as the OpenAPI document
/// writes it) and its handler for that method.
#[derive(Clone, Copy)]
pub struct RouteSpec {
    /// `GET`, `POST` or `PUT`.
    pub method: &'static str,
    /// The path, e.g. `/api/v1/catalog/{id}`.
    pub path: &'static str,
    handler: fn(MethodFilter) -> MethodRouter<AppState>,
}

impl std::fmt::Debug for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

const fn route(
    method: &'static str,
    path: &'static str,
    handler: fn(MethodFilter) -> MethodRouter<AppState>,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        handler,
    }
}

/// Every route the router has, in one table: [`routes`] builds the router from it, and the
/// OpenAPI test compares it with the document ([`crate::openapi`]).
const ROUTES: &[RouteSpec] = &[
    route("GET", "/", |m| on(m, home::index)),
    route("GET", "/healthz", |m| on(m, health::healthz)),
    route("GET", "/readyz", |m| on(m, health::readyz)),
    route("GET", "/metrics", |m| on(m, metrics::serve_metrics)),
    route("POST", "/connect/token", |m| on(m, token::routes::token)),
    route("POST", "/connect/revoke", |m| on(m, token::routes::revoke)),
    route("POST", "/connect/introspect", |m| {
        on(m, token::routes::introspect)
    }),
    route("GET", "/.well-known/jwks.json", |m| {
        on(m, token::routes::jwks)
    }),
    route("GET", "/.well-known/oauth-authorization-server", |m| {
        on(m, token::routes::metadata)
    }),
    route("GET", dev_login::DEV_LOGIN_PATH, |m| on(m, dev_login::page)),
    route("POST", dev_login::DEV_LOGIN_PATH, |m| {
        on(m, dev_login::login)
    }),
    route("GET", "/dev/login/jwks.json", |m| on(m, dev_login::jwks)),
    route("GET", "/api/v1/catalog", |m| on(m, catalog::rest::search)),
    route("POST", "/api/v1/catalog", |m| {
        on(m, catalog::rest::register)
    }),
    route("GET", "/api/v1/catalog/{id}", |m| {
        on(m, catalog::rest::get_entry)
    }),
    route("PUT", "/api/v1/catalog/{id}", |m| {
        on(m, catalog::rest::update)
    }),
    route("PUT", "/api/v1/catalog/{id}/lifecycle", |m| {
        on(m, catalog::rest::set_lifecycle)
    }),
    route("POST", audit::AUDIT_EVENTS_PATH, |m| on(m, audit::record)),
    route("GET", audit::AUDIT_EVENTS_PATH, |m| on(m, audit::export)),
    route("GET", "/catalog", |m| on(m, catalog::page::catalog_page)),
    route("GET", "/catalog.ttl", |m| on(m, catalog::dcat::export)),
    route("GET", "/openapi.json", |m| on(m, openapi::openapi_json)),
    route("GET", "/openapi", |m| on(m, openapi::openapi_page)),
    route("GET", innsyn::INNSYN_PATH, |m| on(m, innsyn::innsyn_page)),
    route("GET", innsyn::FOR_PATH, |m| on(m, innsyn::for_page)),
    route("POST", innsyn::LOGIN_PATH, |m| on(m, innsyn::login)),
    route("GET", innsyn::oidc::START_PATH, |m| {
        on(m, innsyn::oidc_start)
    }),
    route("GET", innsyn::oidc::CALLBACK_PATH, |m| {
        on(m, innsyn::oidc_callback)
    }),
    route("POST", innsyn::LOGOUT_PATH, |m| on(m, innsyn::logout)),
    route("POST", innsyn::ACTION_PATH, |m| on(m, innsyn::action)),
    route("GET", fhir::DOCUMENT_REFERENCE_PATH, |m| {
        on(m, fhir::search_get)
    }),
    route("POST", fhir::SEARCH_PATH, |m| on(m, fhir::search_post)),
    route("GET", fhir::METADATA_PATH, |m| on(m, fhir::metadata)),
    route("GET", org::ORG_PATH, |m| on(m, org::org_page)),
    route("GET", org::ORG_CSV_PATH, |m| on(m, org::org_csv)),
    route("GET", org::ORG_FHIR_PATH, |m| on(m, org::org_fhir)),
];

/// Every `(method, path)` of the router, sorted.
pub fn route_table() -> Vec<(&'static str, &'static str)> {
    let mut table: Vec<_> = ROUTES.iter().map(|r| (r.method, r.path)).collect();
    table.sort_unstable();
    table
}

fn method_filter(method: &str) -> MethodFilter {
    match method {
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "DELETE" => MethodFilter::DELETE,
        "PATCH" => MethodFilter::PATCH,
        other => {
            debug_assert_eq!(other, "GET", "a method of ROUTES without a filter");
            MethodFilter::GET
        }
    }
}

/// The frontend's routes plus `extra` (tests add some), the fallback and the request layer.
pub(crate) fn routes(state: AppState, extra: Router<AppState>) -> Router {
    let mut router = Router::new();
    for r in ROUTES {
        // Routes of one path with several methods merge into one method router.
        router = router.route(r.path, (r.handler)(method_filter(r.method)));
    }
    router
        .merge(extra)
        .fallback(not_found)
        // The request layer's `Limited` body enforces http.request_body_bytes_max.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            layer::request_layer,
        ))
        .with_state(state)
}

/// Answer to paths no route takes.
async fn not_found(uri: axum::http::Uri) -> HttpError {
    HttpError::NotFound {
        path: uri.path().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::{Body, Bytes};
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt;

    use axum::routing::{get, post};

    use super::*;
    use crate::problem::PROBLEM_JSON;

    /// A frontend with `/test/slow` (sleeps 5 s) and `/test/echo` (reads the whole body).
    fn test_app(configure: impl FnOnce(&mut FrontendConfig)) -> Router {
        let mut config = FrontendConfig::default();
        config.cluster.readiness_timeout_ms = 50;
        config.http.request_timeout_ms = 200;
        configure(&mut config);
        let extra = Router::new()
            .route(
                "/test/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/test/echo", post(|body: Bytes| async move { body }));
        routes(state(config).unwrap(), extra)
    }

    async fn call(app: &Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let ct = response.headers().get(header::CONTENT_TYPE).cloned();
        let id = response.headers().get("x-request-id").cloned();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        if status.is_success() {
            return (
                status,
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into()),
            );
        }
        assert_eq!(ct.unwrap(), PROBLEM_JSON);
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["request_id"].as_str(), id.unwrap().to_str().ok());
        (status, json)
    }

    fn get_req(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure returns figment::Result.
    fn run_prints_the_config_or_names_the_problem() {
        // In a jail: the config tests set KARTOTEK_FRONTEND_* variables in other jails.
        figment::Jail::expect_with(|_| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let example =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("frontend.example.toml");
            let args = FrontendArgs {
                config: Some(example),
                print_config: true,
                log_format: None,
            };
            // Returns at once, without binding 127.0.0.1:8080.
            rt.block_on(run(&args, std::future::pending())).unwrap();
            let args = FrontendArgs {
                config: Some("/nonexistent/frontend.toml".into()),
                print_config: true,
                log_format: None,
            };
            let err = rt.block_on(run(&args, std::future::pending())).unwrap_err();
            assert!(matches!(err, FrontendError::Config(_)), "{err}");
            assert!(
                err.to_string().contains("/nonexistent/frontend.toml"),
                "{err}"
            );
            Ok(())
        });
    }

    #[tokio::test]
    async fn slow_requests_time_out_as_problems() {
        let app = test_app(|_| {});
        let (status, p) = call(&app, get_req("/test/slow")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(p["type"], "urn:kartotek:problem:timeout");
        assert_eq!(p["instance"], "/test/slow");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_cut_while_read() {
        let app = test_app(|c| c.http.request_body_bytes_max = 1024);
        // No content-length: the limit applies while the handler reads.
        let chunks = (0..8).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 512])));
        let req = Request::post("/test/echo")
            .body(Body::from_stream(futures::stream::iter(chunks)))
            .unwrap();
        let (status, p) = call(&app, req).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(p["type"], "urn:kartotek:problem:body-too-large");
        assert_eq!(p["detail"], "request body larger than 1024 bytes");
        // Within the limit it passes.
        let req = Request::post("/test/echo")
            .body(Body::from(vec![b'y'; 1000]))
            .unwrap();
        let (status, body) = call(&app, req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.as_str().map(str::len), Some(1000));
    }

    #[tokio::test]
    async fn concurrency_limit_queues_but_spares_liveness() {
        let mut config = FrontendConfig::default();
        config.cluster.readiness_timeout_ms = 50;
        config.http.request_timeout_ms = 200;
        config.http.concurrent_requests_max = 2;
        let state = state(config).unwrap();
        let app = routes(state.clone(), Router::new());
        // Every slot taken: a request waits, then times out.
        let held = state.slots.clone().acquire_many_owned(2).await.unwrap();
        let (status, p) = call(&app, get_req("/no/such/thing")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(p["type"], "urn:kartotek:problem:timeout");
        // Liveness and metrics take no slot.
        let (status, body) = call(&app, get_req("/healthz")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, Some("ok")));
        let (status, _) = call(&app, get_req("/metrics")).await;
        assert_eq!(status, StatusCode::OK);
        // A freed slot is taken by the next request.
        drop(held);
        let (status, _) = call(&app, get_req("/no/such/thing")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
