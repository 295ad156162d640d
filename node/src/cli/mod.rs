//! The `kartotek` command line: one binary for running nodes, a local dev cluster, cluster
//! administration and the domain commands.
//!
//! Global flags: `--endpoints` (or `KARTOTEK_ENDPOINTS`), `--token` (or `KARTOTEK_TOKEN`),
//! `--json`. Results go to stdout (tables, or JSON with `--json`); errors go to stderr with a
//! non-zero exit code.

pub mod access;
pub mod admin;
pub mod audit;
pub mod block;
pub mod catalog;
pub mod consent;
pub mod dev;
pub mod import;
pub mod locator;
pub mod node;
pub mod output;
pub mod record_views;
pub mod representation;
pub mod reservation;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kartotek_client::{CallerIdentity, ClientConfig, KartotekClient};

/// Default endpoints: the `kartotek dev` cluster.
pub const DEFAULT_ENDPOINTS: &str = "127.0.0.1:7401,127.0.0.1:7402,127.0.0.1:7403";

/// Kartotek: a Raft-replicated patient information locator and privacy registry.
#[derive(Debug, Parser)]
#[command(name = "kartotek", version, about, propagate_version = true)]
pub struct Cli {
    /// Cluster endpoints (host:port, comma separated).
    #[arg(long, global = true, env = "KARTOTEK_ENDPOINTS", default_value = DEFAULT_ENDPOINTS, value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Bearer token sent with every request.
    #[arg(long, global = true, env = "KARTOTEK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Who is calling, for the audit log: personnel:HPR, citizen:NATIONAL_ID, client:ID or
    /// system:NAME.
    #[arg(long, global = true, env = "KARTOTEK_ACTOR")]
    pub actor: Option<String>,
    /// Purpose of use recorded in the audit log (e.g. treatment).
    #[arg(long, global = true, env = "KARTOTEK_PURPOSE")]
    pub purpose: Option<String>,
    /// Organisation number the caller acts for (audit log).
    #[arg(long, global = true, env = "KARTOTEK_ACTING_ORG")]
    pub acting_org: Option<String>,
    /// National id of the person the caller acts for (representation; audit log).
    #[arg(long, global = true, env = "KARTOTEK_ON_BEHALF_OF")]
    pub on_behalf_of: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one production node.
    Node(node::NodeArgs),
    /// Run a local cluster (one OS process per node) on embedded defaults.
    Dev(dev::DevArgs),
    /// Cluster operations.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Patient information locator entries.
    #[command(subcommand)]
    Locator(locator::LocatorCommand),
    /// The audit log: who looked at what, and a check of its hash chain.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// A patient's blocks (sperring / blokkering).
    #[command(subcommand)]
    Block(block::BlockCommand),
    /// The access decision and the override notifications.
    #[command(subcommand)]
    Access(access::AccessCommand),
    /// A patient's consents.
    #[command(subcommand)]
    Consent(consent::ConsentCommand),
    /// A patient's reservations (opt-outs from national services).
    #[command(subcommand)]
    Reservation(reservation::ReservationCommand),
    /// Who may act for whom.
    #[command(subcommand)]
    Representation(representation::RepresentationCommand),
    /// The API catalog.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Token-issuance clients.
    #[command(subcommand)]
    Client(catalog::ClientCommand),
}

impl Cli {
    /// A client for the global endpoints and token.
    pub fn client(&self) -> anyhow::Result<KartotekClient> {
        let config = ClientConfig {
            endpoints: self.endpoints.clone(),
            token: self.token.clone(),
            ..ClientConfig::default()
        };
        let identity = CallerIdentity {
            actor: self.actor.clone(),
            org: self.acting_org.clone(),
            purpose: self.purpose.clone(),
            on_behalf_of: self.on_behalf_of.clone(),
        };
        Ok(KartotekClient::new_as(config, identity)?)
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

/// Parses the command line and runs it.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Node(args) => node::run(args).await,
            Command::Dev(args) => {
                init_tracing("info");
                dev::run(args).await
            }
            Command::Admin(cmd) => {
                init_tracing("warn");
                admin::run(&cli, cmd).await
            }
            Command::Locator(cmd) => {
                init_tracing("warn");
                locator::run(&cli, cmd).await
            }
            Command::Audit(cmd) => {
                init_tracing("warn");
                audit::run(&cli, cmd).await
            }
            Command::Block(cmd) => {
                init_tracing("warn");
                block::run(&cli, cmd).await
            }
            Command::Access(cmd) => {
                init_tracing("warn");
                access::run(&cli, cmd).await
            }
            Command::Consent(cmd) => {
                init_tracing("warn");
                consent::run(&cli, cmd).await
            }
            Command::Reservation(cmd) => {
                init_tracing("warn");
                reservation::run(&cli, cmd).await
            }
            Command::Representation(cmd) => {
                init_tracing("warn");
                representation::run(&cli, cmd).await
            }
            Command::Catalog(cmd) => {
                init_tracing("warn");
                catalog::run(&cli, cmd).await
            }
            Command::Client(cmd) => {
                init_tracing("warn");
                catalog::run_client(&cli, cmd).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
