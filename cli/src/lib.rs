//! The client-side commands of the `kartotek` binary: cluster administration (`admin`) and the
//! domain commands (`locator`, `audit`, `block`, `access`, `consent`, `reservation`,
//! `representation`, `catalog`, `client`).
//!
//! # Why a crate of its own
//!
//! These commands are clients of the cluster: they must reach it only through the public
//! gRPC API, like the HTTP frontend does. This crate therefore depends on `kartotek-client`,
//! `kartotek-domain` and `kartotek-proto`, and *not* on `kartotek-storage`, `kartotek-node` or
//! openraft, so the compiler, not review, keeps a command from reaching into a node's state.
//!
//! The `kartotek` binary itself stays in `node/` (`node/src/main.rs`): `kartotek node` and
//! `kartotek dev` need the node library (`NodeConfig`, `run_node`), and the node's integration
//! tests drive the binary through `CARGO_BIN_EXE_kartotek`. Its top-level parser
//! (`kartotek_node::cli`) keeps `node` and `dev` and flattens this crate's [`Command`] enum
//! and [`GlobalArgs`] into itself.
//!
//! # Output
//!
//! Global flags: `--endpoints` (or `KARTOTEK_ENDPOINTS`), `--client-file` (or
//! `KARTOTEK_CLIENT_FILE`: the CLI gets its own tokens) or `--token` (or `KARTOTEK_TOKEN`),
//! `--json`, and the caller's identity (`--actor`, `--purpose`, `--acting-org`,
//! `--on-behalf-of`). Results go to stdout: tables (one style, [`output::table`]) or, with
//! `--json`, exactly one JSON document per command; only streams (`locator watch`) print
//! NDJSON, one document per line. Errors go to stderr with a non-zero exit code.

pub mod access;
pub mod admin;
pub mod args;
pub mod audit;
pub mod backup;
pub mod block;
pub mod bootstrap;
pub mod catalog;
pub mod consent;
pub mod import;
pub mod locator;
pub mod output;
pub mod record_views;
pub mod representation;
pub mod reservation;
pub mod token;

use clap::{Args, Subcommand};
use kartotek_client::{CallerIdentity, ClientConfig, KartotekClient};

/// Default endpoints: the `kartotek dev` cluster.
pub const DEFAULT_ENDPOINTS: &str = "127.0.0.1:7401,127.0.0.1:7402,127.0.0.1:7403";

/// Flags every client-side command takes (declared `global`, so they may follow the
/// subcommand).
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Cluster endpoints (host:port, comma separated).
    #[arg(long, global = true, env = "KARTOTEK_ENDPOINTS", default_value = DEFAULT_ENDPOINTS, value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Bearer token sent with every request (e.g. from `kartotek token`).
    #[arg(
        long,
        global = true,
        env = "KARTOTEK_TOKEN",
        hide_env_values = true,
        conflicts_with = "client_file"
    )]
    pub token: Option<String>,
    /// Client file (client id, issuer, token endpoint, private JWK): the CLI gets, caches and
    /// renews its own tokens with it (`kartotek dev` writes them under <data-dir>/clients/).
    #[arg(long, global = true, env = "KARTOTEK_CLIENT_FILE")]
    pub client_file: Option<std::path::PathBuf>,
    /// A citizen's login token (an ID token from ID-porten): with the client file of a
    /// citizen app, the CLI gets its tokens by exchanging it (RFC 8693) and calls as that
    /// citizen.
    #[arg(
        long,
        global = true,
        env = "KARTOTEK_LOGIN_TOKEN",
        hide_env_values = true,
        requires = "client_file"
    )]
    pub login_token: Option<String>,
    /// DEV ONLY: log in as this synthetic national id at `kartotek dev`'s dev login (instead
    /// of --login-token), with the citizen app's client file.
    #[arg(
        long,
        global = true,
        env = "KARTOTEK_DEV_LOGIN",
        conflicts_with = "login_token",
        requires = "client_file"
    )]
    pub dev_login: Option<String>,
    /// With a citizen's login: act for this person (national id), as a representation of
    /// theirs allows.
    #[arg(long, global = true, env = "KARTOTEK_ACT_FOR")]
    pub act_for: Option<String>,
    /// With --act-for: the representation area (default `*`, every area).
    #[arg(long, global = true, env = "KARTOTEK_ACT_AREA", requires = "act_for")]
    pub act_area: Option<String>,
    /// With a client file: ask for DPoP-bound tokens (RFC 9449; a key made in memory for this
    /// command) and prove possession of the key on every call.
    #[arg(long, global = true, env = "KARTOTEK_DPOP", requires = "client_file")]
    pub dpop: bool,
    /// The CA (PEM) of the nodes' API certificates: calls go over TLS (nodes with
    /// `[tls.api]`).
    #[arg(long, global = true, env = "KARTOTEK_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Machine-readable output on stdout instead of tables: one JSON document per command
    /// (streams such as `locator watch` print one document per line).
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
}

/// The client-side commands (flattened into `kartotek`'s top level).
#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Get an access token with the client file and print it (for curl, grpcurl).
    Token(token::TokenArgs),
}

impl GlobalArgs {
    /// A client for the global endpoints, token (or client file) and caller identity.
    pub fn client(&self) -> anyhow::Result<KartotekClient> {
        let config = ClientConfig {
            endpoints: self.endpoints.clone(),
            token: self.token.clone(),
            ca_file: self.ca_file.clone(),
            ..ClientConfig::default()
        };
        let client = match &self.client_file {
            Some(path) => {
                let tokens = self.token_source(path, None)?;
                KartotekClient::with_tokens(config, std::sync::Arc::new(tokens))?
            }
            None => {
                let identity = CallerIdentity {
                    actor: self.actor.clone(),
                    org: self.acting_org.clone(),
                    purpose: self.purpose.clone(),
                    on_behalf_of: self.on_behalf_of.clone(),
                };
                KartotekClient::new_as(config, identity)?
            }
        };
        // A user at a terminal: when nothing listens at any endpoint, say so in a second or
        // two instead of retrying for the whole deadline.
        client.set_fail_fast_on_refusal(Some(REFUSED_FAIL_FAST));
        Ok(client)
    }
}

impl GlobalArgs {
    /// The client file's token source: `client_credentials`, or with a citizen's login the
    /// token exchange (for the citizen, or `--act-for` someone).
    pub fn token_source(
        &self,
        path: &std::path::Path,
        audience: Option<String>,
    ) -> anyhow::Result<kartotek_client::ClientCredentials> {
        let mut source = kartotek_client::ClientCredentials::from_file(path)?;
        if self.dpop {
            source = source.with_dpop()?;
        }
        let Some(login) = &self.login_token else {
            if self.act_for.is_some() {
                anyhow::bail!(
                    "--act-for needs a citizen's login: --login-token TOKEN (or --dev-login ID with kartotek dev)"
                );
            }
            return Ok(source);
        };
        Ok(source.with_exchange(kartotek_client::Exchange {
            login_token: kartotek_client::BearerToken::new(login)?,
            act_for: self.act_for.clone(),
            area: self.act_area.clone(),
            audience,
        }))
    }

    /// These flags with `--dev-login` done: the dev login's token as `--login-token`.
    pub async fn resolved(&self) -> anyhow::Result<GlobalArgs> {
        let mut out = self.clone();
        if let (Some(pid), Some(path)) = (&self.dev_login, &self.client_file) {
            let file = kartotek_client::ClientFile::load(path)?;
            let login = kartotek_client::dev_login(&file, pid).await?;
            out.login_token = Some(login.secret().to_owned());
            out.dev_login = None;
        }
        Ok(out)
    }
}

/// How long every endpoint must have refused the connection before a command gives up
/// with [`NO_CLUSTER_HINT`] (a node restarting is back well within the deadline, but a
/// cluster that is not running at all should not cost the user 15 s).
pub const REFUSED_FAIL_FAST: std::time::Duration = std::time::Duration::from_millis(1000);

/// Printed under the error when no node listens at any endpoint.
pub const NO_CLUSTER_HINT: &str = "is the cluster running? start one with: kartotek dev";

/// Printed under an UNAUTHENTICATED error.
pub const NO_TOKEN_HINT: &str = "calls need an access token: run the `export KARTOTEK_CLIENT_FILE=…` line `kartotek dev` printed (or pass --client-file FILE, or --token TOKEN)";

/// Printed when the token service refused or could not be reached.
pub const TOKEN_SERVICE_HINT: &str = "check the client file (client id, issuer, token endpoint, key) and that the token service runs (kartotek dev starts it; see frontend.log)";

/// Printed under a PERMISSION_DENIED error of the own-data rule.
pub const OWN_DATA_HINT: &str = "a citizen's token reaches only the citizen's own records: name yourself as --patient, or act for someone you represent with --act-for NATIONAL_ID";

/// Printed under a PERMISSION_DENIED error.
pub const NO_SCOPE_HINT: &str = "the token lacks the scope this call needs: use a client file of a client that is allowed it (kartotek dev writes an admin client's under <data-dir>/clients/)";

/// A hint for the user to print under `error`, if there is one.
pub fn hint(error: &anyhow::Error) -> Option<&'static str> {
    let e = error
        .chain()
        .find_map(|e| e.downcast_ref::<kartotek_client::ClientError>())?;
    match e {
        kartotek_client::ClientError::Refused { .. } => Some(NO_CLUSTER_HINT),
        kartotek_client::ClientError::Token { reason, .. }
            if reason.starts_with("invalid_scope") =>
        {
            Some(NO_SCOPE_HINT)
        }
        kartotek_client::ClientError::Token { .. } => Some(TOKEN_SERVICE_HINT),
        _ if e.code() == tonic::Code::Unauthenticated => Some(NO_TOKEN_HINT),
        _ if e.code() == tonic::Code::PermissionDenied && e.to_string().contains("own data") => {
            Some(OWN_DATA_HINT)
        }
        _ if e.code() == tonic::Code::PermissionDenied => Some(NO_SCOPE_HINT),
        _ => None,
    }
}

/// Runs a client-side command.
pub async fn run(global: &GlobalArgs, command: &Command) -> anyhow::Result<()> {
    let resolved = global.resolved().await?;
    let global = &resolved;
    if global.login_token.is_some() {
        args::CALLER_IS_CITIZEN.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    match command {
        Command::Admin(cmd) => admin::run(global, cmd).await,
        Command::Locator(cmd) => locator::run(global, cmd).await,
        Command::Audit(cmd) => audit::run(global, cmd).await,
        Command::Block(cmd) => block::run(global, cmd).await,
        Command::Access(cmd) => access::run(global, cmd).await,
        Command::Consent(cmd) => consent::run(global, cmd).await,
        Command::Reservation(cmd) => reservation::run(global, cmd).await,
        Command::Representation(cmd) => representation::run(global, cmd).await,
        Command::Catalog(cmd) => catalog::run(global, cmd).await,
        Command::Client(cmd) => catalog::run_client(global, cmd).await,
        Command::Token(args) => token::run(global, args).await,
    }
}
