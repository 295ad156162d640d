//! `kartotek locator register|retire|lookup`.

use clap::{Args, Subcommand};
use kartotek_proto::v1::{
    Consistency, LookupLocatorRequest, ReadOptions, RegisterLocatorRequest, RetireLocatorRequest,
};
use serde::Serialize;

use super::Cli;
use super::output::{HeaderView, LocatorEntryView, print_json, print_locator_table};

/// Locator subcommands.
#[derive(Debug, Subcommand)]
pub enum LocatorCommand {
    /// Register (idempotent upsert) that an organisation's system holds records about a patient.
    Register(RegisterArgs),
    /// Retire an entry.
    Retire(KeyArgs),
    /// Look up where records about a patient are.
    Lookup(LookupArgs),
}

/// The key of an entry.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Patient national id (11 digits).
    #[arg(long)]
    pub patient: String,
    /// Organisation number (9 digits).
    #[arg(long)]
    pub org: String,
    /// System id at the organisation.
    #[arg(long)]
    pub system: String,
    /// Request id for exactly-once retries (a fresh UUID by default).
    #[arg(long)]
    pub request_id: Option<String>,
}

/// Arguments of `locator register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Which entry.
    #[command(flatten)]
    pub key: KeyArgs,
    /// Data category, e.g. a FHIR resource type (repeatable, or comma separated).
    #[arg(long = "category", value_delimiter = ',')]
    pub categories: Vec<String>,
    /// API catalog id of the endpoint holding the data.
    #[arg(long, default_value = "")]
    pub endpoint_ref: String,
}

/// Arguments of `locator lookup`.
#[derive(Debug, Args)]
pub struct LookupArgs {
    /// Patient national id (11 digits).
    #[arg(long)]
    pub patient: String,
    /// Only entries of this organisation.
    #[arg(long)]
    pub org: Option<String>,
    /// Include retired entries.
    #[arg(long)]
    pub include_retired: bool,
    /// Accept an answer from the first endpoint if it is provably at most this stale
    /// (default: linearizable).
    #[arg(long)]
    pub max_staleness_ms: Option<u64>,
}

#[derive(Serialize)]
struct WriteView {
    header: HeaderView,
    changed: bool,
    entry: Option<LocatorEntryView>,
}

#[derive(Serialize)]
struct LookupView {
    header: HeaderView,
    entries: Vec<LocatorEntryView>,
}

/// Runs a locator subcommand.
pub async fn run(cli: &Cli, cmd: &LocatorCommand) -> anyhow::Result<()> {
    let client = cli.client()?;
    match cmd {
        LocatorCommand::Register(a) => {
            let resp = client
                .register_locator(RegisterLocatorRequest {
                    request_id: a.key.request_id.clone().unwrap_or_default(),
                    patient: a.key.patient.clone(),
                    org: a.key.org.clone(),
                    system: a.key.system.clone(),
                    categories: a.categories.clone(),
                    endpoint_ref: a.endpoint_ref.clone(),
                    expected_mod_revision: None,
                })
                .await?;
            print_write(
                cli,
                resp.header.as_ref(),
                resp.changed,
                resp.entry.as_ref(),
                "registered",
            )
        }
        LocatorCommand::Retire(k) => {
            let resp = client
                .retire_locator(RetireLocatorRequest {
                    request_id: k.request_id.clone().unwrap_or_default(),
                    patient: k.patient.clone(),
                    org: k.org.clone(),
                    system: k.system.clone(),
                })
                .await?;
            print_write(
                cli,
                resp.header.as_ref(),
                resp.changed,
                resp.entry.as_ref(),
                "retired",
            )
        }
        LocatorCommand::Lookup(a) => {
            let read = a.max_staleness_ms.map(|ms| ReadOptions {
                consistency: Consistency::BoundedStaleness as i32,
                max_staleness_ms: ms,
            });
            let resp = client
                .lookup_locator(LookupLocatorRequest {
                    patient: a.patient.clone(),
                    org: a.org.clone().unwrap_or_default(),
                    include_retired: a.include_retired,
                    read,
                })
                .await?;
            let view = LookupView {
                header: resp.header.as_ref().into(),
                entries: resp.entries.iter().map(LocatorEntryView::from).collect(),
            };
            if cli.json {
                print_json(&view)
            } else {
                print_locator_table(&view.entries);
                println!(
                    "{} entries (revision {}, node {})",
                    view.entries.len(),
                    view.header.revision,
                    view.header.node_id
                );
                Ok(())
            }
        }
    }
}

fn print_write(
    cli: &Cli,
    header: Option<&kartotek_proto::v1::ResponseHeader>,
    changed: bool,
    entry: Option<&kartotek_proto::v1::LocatorEntry>,
    verb: &str,
) -> anyhow::Result<()> {
    let view = WriteView {
        header: header.into(),
        changed,
        entry: entry.map(LocatorEntryView::from),
    };
    if cli.json {
        return print_json(&view);
    }
    if let Some(e) = &view.entry {
        print_locator_table(std::slice::from_ref(e));
    }
    println!(
        "{} ({}; revision {})",
        verb,
        if changed { "changed" } else { "unchanged" },
        view.header.revision
    );
    Ok(())
}
