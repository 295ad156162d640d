//! `kartotek node --config node.toml`: one production node.

use std::path::PathBuf;

use clap::Args;

use crate::config::NodeConfig;
use crate::server::run_node;

/// Arguments of `kartotek node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// TOML configuration file (see deploy/node.example.toml); `KARTOTEK_*` variables override
    /// it (nested keys with `__`, e.g. `KARTOTEK_RAFT__PROFILE=wan`).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Log lines as text or JSON (overrides `log_format`).
    #[arg(long, value_enum)]
    pub log_format: Option<kartotek_frontend::logging::LogFormat>,
}

/// Runs the node until SIGINT/SIGTERM.
pub async fn run(args: &NodeArgs) -> anyhow::Result<()> {
    let config = NodeConfig::load(args.config.as_deref())?;
    if args.print_config {
        print!("{}", toml::to_string_pretty(&config)?);
        return Ok(());
    }
    kartotek_frontend::logging::init_with(
        &config.log_filter,
        args.log_format.unwrap_or(config.log_format),
        Some((&config.telemetry, "kartotek-node")),
    );
    let result = run_node(config, super::shutdown_signal()).await;
    // The last spans (the shutdown's) go out before the process ends.
    let _ = tokio::task::spawn_blocking(kartotek_frontend::logging::shutdown).await;
    result?;
    Ok(())
}
