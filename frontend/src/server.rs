//! Starting and stopping: [`FrontendArgs`] (the `kartotek frontend` command line), [`run`]
//! (load the configuration, bind, serve until shutdown), [`serve`] (serve on a listener the
//! caller bound, e.g. port 0 in tests) and [`app`] (the router alone).

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;
use futures::FutureExt;
use kartotek_client::{ClientError, KartotekClient};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{ConfigError, FrontendConfig};
use crate::metrics::Metrics;
use crate::problem::HttpError;
use crate::{AppState, health, layer, metrics};

/// Arguments of `kartotek frontend`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FrontendArgs {
    /// TOML configuration file; `KARTOTEK_FRONTEND_*` variables override it (nested keys with
    /// `__`, e.g. `KARTOTEK_FRONTEND_HTTP__REQUEST_TIMEOUT_MS=5000`).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
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
    init_tracing(&config.log_filter);
    let addr = config.listen_addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| FrontendError::Bind { addr, source })?;
    serve(config, listener, shutdown).await
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
    let router = app(config)?;
    let local = listener.local_addr().map_err(FrontendError::Serve)?;
    tracing::info!(addr = %local, public_base_url = %public, "frontend listening");
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
    config.validate()?;
    let client = KartotekClient::new(config.client_config())?;
    let slots = usize::try_from(config.http.concurrent_requests_max).unwrap_or(usize::MAX);
    let state = AppState {
        config: Arc::new(config),
        client,
        metrics: Metrics::new(),
        slots: Arc::new(Semaphore::new(slots)),
    };
    Ok(Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::serve_metrics))
        .fallback(not_found)
        // The request layer's `Limited` body enforces http.request_body_bytes_max.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            layer::request_layer,
        ))
        .with_state(state))
}

/// Answer to paths no route takes.
async fn not_found(uri: axum::http::Uri) -> HttpError {
    HttpError::NotFound {
        path: uri.path().to_owned(),
    }
}

fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
