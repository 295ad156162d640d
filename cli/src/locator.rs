//! `kartotek locator register|retire|lookup|list|import|watch`.

use clap::{Args, Subcommand};
use kartotek_proto::v1::{
    ListLocatorsRequest, LookupLocatorRequest, RegisterLocatorRequest, RetireLocatorRequest,
    WatchLocatorsRequest,
};
use serde::Serialize;

use crate::GlobalArgs;
use crate::args::{PageArgs, ReadArgs, RequestIdArg};
use crate::output::{HeaderView, LocatorEntryView, print_json, print_locator_table};

/// Locator subcommands.
#[derive(Debug, Subcommand)]
pub enum LocatorCommand {
    /// Register (idempotent upsert) that an organisation's system holds records about a patient.
    Register(RegisterArgs),
    /// Retire an entry.
    Retire(KeyArgs),
    /// Look up where records about a patient are.
    Lookup(LookupArgs),
    /// List an organisation's entries (for reconciliation), page by page.
    List(ListArgs),
    /// Bulk import entries from an NDJSON or CSV file (resumable).
    Import(crate::import::ImportArgs),
    /// Follow the change feed from a revision (Ctrl-C to stop).
    ///
    /// A stream: with --json it prints one JSON document per event, one per line (NDJSON),
    /// as the events arrive.
    Watch(WatchArgs),
}

/// Arguments of `locator list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Organisation number (9 digits).
    #[arg(long)]
    pub org: String,
    /// Include retired entries.
    #[arg(long)]
    pub include_retired: bool,
    /// Which page, or every page.
    #[command(flatten)]
    pub page: PageArgs,
}

/// Arguments of `locator watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// First revision to show (default: only changes from now on).
    #[arg(long = "from", default_value_t = 0)]
    pub from_revision: u64,
    /// Only changes about this patient.
    #[arg(long)]
    pub patient: Option<String>,
    /// Only changes at this organisation.
    #[arg(long)]
    pub org: Option<String>,
    /// Stop after this many events.
    #[arg(long)]
    pub limit: Option<u64>,
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
    /// The request id.
    #[command(flatten)]
    pub request_id: RequestIdArg,
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
    /// The read's consistency.
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Serialize)]
struct WriteView {
    header: HeaderView,
    changed: bool,
    entry: Option<LocatorEntryView>,
}

#[derive(Serialize)]
struct EventView {
    revision: u64,
    at: String,
    entry: Option<LocatorEntryView>,
}

#[derive(Serialize)]
struct LookupView {
    header: HeaderView,
    entries: Vec<LocatorEntryView>,
}

/// Runs a locator subcommand.
pub async fn run(cli: &GlobalArgs, cmd: &LocatorCommand) -> anyhow::Result<()> {
    let client = cli.client()?;
    match cmd {
        LocatorCommand::Import(a) => crate::import::run(cli, a).await,
        LocatorCommand::List(a) => list(cli, &client, a).await,
        LocatorCommand::Watch(a) => watch(cli, &client, a).await,
        LocatorCommand::Register(a) => {
            let resp = client
                .register_locator(RegisterLocatorRequest {
                    request_id: a.key.request_id.value(),
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
                    request_id: k.request_id.value(),
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
            let resp = client
                .lookup_locator(LookupLocatorRequest {
                    patient: a.patient.clone(),
                    org: a.org.clone().unwrap_or_default(),
                    include_retired: a.include_retired,
                    read: a.read.options(),
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
    cli: &GlobalArgs,
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

async fn list(
    cli: &GlobalArgs,
    client: &kartotek_client::KartotekClient,
    a: &ListArgs,
) -> anyhow::Result<()> {
    let about = ("org", a.org.as_str());
    a.page
        .list(
            cli,
            "entries",
            about,
            print_locator_table,
            |page_size, page_token| {
                client.list_locators(ListLocatorsRequest {
                    org: a.org.clone(),
                    page_size,
                    page_token,
                    include_retired: a.include_retired,
                    read: None,
                })
            },
        )
        .await
}

async fn watch(
    cli: &GlobalArgs,
    client: &kartotek_client::KartotekClient,
    a: &WatchArgs,
) -> anyhow::Result<()> {
    let mut w = client.watch_locators(WatchLocatorsRequest {
        from_revision: a.from_revision,
        patient: a.patient.clone().unwrap_or_default(),
        org: a.org.clone().unwrap_or_default(),
    });
    let mut shown = 0u64;
    loop {
        let msg = tokio::select! {
            m = w.next() => m?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        for e in &msg.events {
            // The feed carries every record family; this command shows locator entries.
            let Some(entry) = e.record.as_ref().and_then(locator_of) else {
                continue;
            };
            let entry = Some(entry);
            let view = EventView {
                revision: e.revision,
                at: e.at.clone(),
                entry,
            };
            if cli.json {
                println!("{}", serde_json::to_string(&view)?);
            } else if let Some(en) = &view.entry {
                println!(
                    "rev {:>8}  {}  {} {} {} {} [{}]",
                    view.revision,
                    view.at,
                    en.status,
                    en.patient,
                    en.org,
                    en.system,
                    en.categories.join(",")
                );
            }
            shown += 1;
            if a.limit.is_some_and(|l| shown >= l) {
                return Ok(());
            }
        }
        use std::io::Write as _;
        std::io::stdout().flush()?;
    }
}

/// The locator entry of a change event, if it is one.
fn locator_of(r: &kartotek_proto::v1::change_event::Record) -> Option<LocatorEntryView> {
    #[allow(unreachable_patterns)]
    match r {
        kartotek_proto::v1::change_event::Record::Locator(l) => Some(LocatorEntryView::from(l)),
        _ => None,
    }
}
