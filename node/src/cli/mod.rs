//! The `kartotek` command line: one binary for running nodes, a local dev cluster, cluster
//! administration and the domain commands.
//!
//! This module keeps only the commands that need the node library: `kartotek node`
//! ([`node`]: `NodeConfig`, `run_node`) and `kartotek dev` ([`dev`]: starts `kartotek node`
//! processes and a `kartotek frontend`), plus `kartotek frontend` (the `kartotek-frontend`
//! crate, which like `kartotek-cli` reaches the cluster only through `kartotek-client`). Every other command (`admin`, `locator`, `audit`, `block`, ...) lives in the
//! `kartotek-cli` crate, which depends only on `kartotek-client`, `kartotek-domain` and
//! `kartotek-proto` (not on storage, this crate or openraft), so that the compiler keeps those
//! commands talking to the cluster through the public API only. [`Command`] flattens
//! [`kartotek_cli::Command`] and [`Cli`] flattens [`kartotek_cli::GlobalArgs`], so users see
//! one flat `kartotek` command. The binary stays in this crate (`node/src/main.rs`) because
//! `node` and `dev` need the node library and the integration tests drive it through
//! `CARGO_BIN_EXE_kartotek`.
//!
//! `admin verify-backup` and `admin restore` are parsed with the other `admin` commands (in
//! `kartotek-cli`) but run here ([`backup`]): they read and write local files with the
//! storage crate, which `kartotek-cli` must not depend on.
//!
//! Results go to stdout (tables, or one JSON document with `--json`); errors go to stderr
//! with a non-zero exit code.

pub mod backup;
pub mod dev;
pub mod dev_auth;
pub mod node;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use kartotek_cli::DEFAULT_ENDPOINTS;

/// Kartotek: a Raft-replicated patient information locator and privacy registry.
#[derive(Debug, Parser)]
#[command(name = "kartotek", version, about, propagate_version = true)]
pub struct Cli {
    /// Endpoints, token, `--json` and the caller's identity.
    #[command(flatten)]
    pub global: kartotek_cli::GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one production node.
    Node(node::NodeArgs),
    /// Run a local cluster (one OS process per node, and an HTTP frontend) on embedded
    /// defaults.
    Dev(dev::DevArgs),
    /// Run the stateless HTTP frontend (a client of the cluster).
    Frontend(kartotek_frontend::FrontendArgs),
    /// The client-side commands (admin, locator, audit, ...), from `kartotek-cli`.
    #[command(flatten)]
    Client(Box<kartotek_cli::Command>),
}

fn init_tracing(default_filter: &str) {
    kartotek_frontend::logging::init(default_filter, kartotek_frontend::logging::LogFormat::Text);
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
            Command::Frontend(args) => Ok(kartotek_frontend::run(args, shutdown_signal()).await?),
            Command::Dev(args) => {
                init_tracing("info");
                dev::run(args).await
            }
            Command::Client(cmd) => {
                init_tracing("warn");
                use kartotek_cli::admin::AdminCommand;
                match cmd.as_ref() {
                    kartotek_cli::Command::Admin(AdminCommand::VerifyBackup(a)) => {
                        backup::run_verify(a, cli.global.json)
                    }
                    kartotek_cli::Command::Admin(AdminCommand::Restore(a)) => {
                        backup::run_restore(a, cli.global.json)
                    }
                    _ => kartotek_cli::run(&cli.global, cmd).await,
                }
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(hint) = kartotek_cli::hint(&e) {
                eprintln!("hint: {hint}");
            }
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// clap's own consistency checks (no two flags of a command with one name, flattened
    /// groups included).
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `--log-format` on `node` and `frontend`: text or json, nothing else.
    #[test]
    fn node_and_frontend_take_a_log_format() {
        use clap::Parser;
        use kartotek_frontend::logging::LogFormat;

        use super::Command;
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.command);
        match parse(&["kartotek", "node", "--log-format", "json"]) {
            Ok(Command::Node(a)) => assert_eq!(a.log_format, Some(LogFormat::Json)),
            other => panic!("{other:?}"),
        }
        match parse(&["kartotek", "frontend", "--log-format", "text"]) {
            Ok(Command::Frontend(a)) => assert_eq!(a.log_format, Some(LogFormat::Text)),
            other => panic!("{other:?}"),
        }
        match parse(&["kartotek", "node"]) {
            Ok(Command::Node(a)) => assert_eq!(a.log_format, None, "the config decides"),
            other => panic!("{other:?}"),
        }
        assert!(parse(&["kartotek", "node", "--log-format", "xml"]).is_err());
    }
}
