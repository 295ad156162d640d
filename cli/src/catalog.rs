//! `kartotek catalog register|update|lifecycle|get|search` (the API catalog) and
//! `kartotek client register|get|list` (token-issuance clients).

use clap::{Args, Subcommand};
use kartotek_proto::v1;

use crate::GlobalArgs;
use crate::args::{PageArgs, RequestIdArg};
use crate::output::{HeaderView, print_json};
use crate::record_views::{
    CatalogEntryView, ClientView, enum_flag, print_catalog, print_clients, print_write_answer,
};

/// Catalog subcommands.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Register an API (as a draft).
    Register(EntryArgs),
    /// Replace an API's content (owner only).
    Update(EntryArgs),
    /// Move an API forward: draft → published → deprecated → retired.
    Lifecycle(LifecycleArgs),
    /// Show one API.
    Get(GetArgs),
    /// Search by text, owner, scope and audience.
    Search(SearchArgs),
}

/// The content of a catalog entry.
#[derive(Debug, Args)]
pub struct EntryArgs {
    /// Catalog id, e.g. nhn.kjernejournal.
    #[arg(long)]
    pub id: String,
    /// Owner org number (update: the caller's organisation).
    #[arg(long)]
    pub owner: String,
    /// Title.
    #[arg(long)]
    pub title: String,
    /// Description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Base URL.
    #[arg(long)]
    pub base_url: String,
    /// OpenAPI / FHIR CapabilityStatement URL.
    #[arg(long, default_value = "")]
    pub spec_url: String,
    /// Scope (repeatable or comma separated).
    #[arg(long = "scope", value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// personnel or citizen.
    #[arg(long, default_value = "personnel")]
    pub audience: String,
    /// Access needs the patient's consent.
    #[arg(long)]
    pub requires_consent: bool,
    /// Version.
    #[arg(long = "api-version", default_value = "")]
    pub api_version: String,
    /// The request id.
    #[command(flatten)]
    pub request_id: RequestIdArg,
}

/// Arguments of `catalog lifecycle`.
#[derive(Debug, Args)]
pub struct LifecycleArgs {
    /// Catalog id.
    #[arg(long)]
    pub id: String,
    /// draft, published, deprecated or retired.
    #[arg(long)]
    pub to: String,
    /// The caller's organisation (must own the entry).
    #[arg(long)]
    pub owner: String,
    /// The request id.
    #[command(flatten)]
    pub request_id: RequestIdArg,
}

/// Arguments of `catalog get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Catalog id.
    #[arg(long)]
    pub id: String,
}

/// Arguments of `catalog search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words that must all occur (id, title or description).
    #[arg(default_value = "")]
    pub text: String,
    /// Only this owner's entries (also finds its drafts).
    #[arg(long, default_value = "")]
    pub owner: String,
    /// Only entries with this scope.
    #[arg(long, default_value = "")]
    pub scope: String,
    /// Only entries for this audience (personnel or citizen).
    #[arg(long)]
    pub audience: Option<String>,
    /// Also retired entries.
    #[arg(long)]
    pub include_retired: bool,
    /// Which page (best matches first), or every page.
    #[command(flatten)]
    pub page: PageArgs,
}

fn audience(text: &str) -> anyhow::Result<i32> {
    enum_flag!(
        v1::Audience,
        "AUDIENCE_",
        "--audience",
        text,
        ["personnel", "citizen"]
    )
}

fn entry_request(a: &EntryArgs) -> anyhow::Result<v1::CatalogEntryRequest> {
    Ok(v1::CatalogEntryRequest {
        request_id: a.request_id.value(),
        id: a.id.clone(),
        owner: a.owner.clone(),
        title: a.title.clone(),
        description: a.description.clone(),
        base_url: a.base_url.clone(),
        spec_url: a.spec_url.clone(),
        scopes: a.scopes.clone(),
        audience: audience(&a.audience)?,
        requires_consent: a.requires_consent,
        version: a.api_version.clone(),
    })
}

fn print_entry(cli: &GlobalArgs, r: &v1::CatalogEntryResponse) -> anyhow::Result<()> {
    let item = r.entry.as_ref().map(CatalogEntryView::from);
    print_write_answer(
        cli,
        r.header.as_ref(),
        r.changed,
        "entry",
        item,
        print_catalog,
    )
}

/// Runs a catalog subcommand.
pub async fn run(cli: &GlobalArgs, cmd: &CatalogCommand) -> anyhow::Result<()> {
    let client = cli.client()?;
    match cmd {
        CatalogCommand::Register(a) => {
            let r = client.register_catalog_entry(entry_request(a)?).await?;
            print_entry(cli, &r)
        }
        CatalogCommand::Update(a) => {
            let r = client.update_catalog_entry(entry_request(a)?).await?;
            print_entry(cli, &r)
        }
        CatalogCommand::Lifecycle(a) => {
            let lifecycle = enum_flag!(
                v1::CatalogLifecycle,
                "CATALOG_LIFECYCLE_",
                "--to",
                &a.to,
                ["draft", "published", "deprecated", "retired"]
            )?;
            let r = client
                .set_catalog_lifecycle(v1::SetCatalogLifecycleRequest {
                    request_id: a.request_id.value(),
                    id: a.id.clone(),
                    lifecycle,
                    owner: a.owner.clone(),
                })
                .await?;
            print_entry(cli, &r)
        }
        CatalogCommand::Get(a) => {
            let r = client
                .get_catalog_entry(v1::GetCatalogEntryRequest {
                    id: a.id.clone(),
                    read: None,
                })
                .await?;
            print_entry(cli, &r)
        }
        CatalogCommand::Search(a) => {
            let audience = match &a.audience {
                Some(t) => audience(t)?,
                None => 0,
            };
            let about = ("text", a.text.as_str());
            a.page
                .list(
                    cli,
                    "entries",
                    about,
                    print_catalog,
                    |page_size, page_token| {
                        client.search_catalog(v1::SearchCatalogRequest {
                            text: a.text.clone(),
                            owner: a.owner.clone(),
                            scope: a.scope.clone(),
                            audience,
                            include_retired: a.include_retired,
                            read: None,
                            page_size,
                            page_token,
                            ..Default::default()
                        })
                    },
                )
                .await
        }
    }
}

/// Client-registry subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a token-issuance client.
    Register(ClientArgs),
    /// Replace a client's keys, scopes and flags, and optionally its status (owner or
    /// operator).
    Update(ClientUpdateArgs),
    /// Show one client.
    Get(ClientIdArgs),
    /// List clients (of one organisation, or all).
    List(ClientListArgs),
}

/// A client's settings, as `client register` sets them and `client update` replaces them.
#[derive(Debug, Args)]
pub struct ClientSettingsArgs {
    /// Client id.
    #[arg(long)]
    pub client_id: String,
    /// File with a public JWK (JSON; repeatable).
    #[arg(long = "jwk-file", required = true)]
    pub jwk_files: Vec<std::path::PathBuf>,
    /// Allowed scope (repeatable or comma separated).
    #[arg(long = "scope", value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// Approved third-party vendor.
    #[arg(long)]
    pub third_party: bool,
    /// The request id.
    #[command(flatten)]
    pub request_id: RequestIdArg,
}

impl ClientSettingsArgs {
    /// The request, with `org` and `status` (the proto number) filled in.
    fn request(&self, org: &str, status: i32) -> anyhow::Result<v1::ClientRequest> {
        let mut keys = Vec::new();
        for f in &self.jwk_files {
            let text = std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))?;
            keys.push(text.trim().to_owned());
        }
        Ok(v1::ClientRequest {
            request_id: self.request_id.value(),
            client_id: self.client_id.clone(),
            org: org.to_owned(),
            public_keys: keys,
            allowed_scopes: self.scopes.clone(),
            approved_third_party: self.third_party,
            status,
        })
    }
}

/// Arguments of `client register`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Id, keys, scopes, flags.
    #[command(flatten)]
    pub settings: ClientSettingsArgs,
    /// Owning org number.
    #[arg(long)]
    pub org: String,
}

/// Arguments of `client update`.
#[derive(Debug, Args)]
pub struct ClientUpdateArgs {
    /// Id, and the new keys, scopes and flags (they replace the old ones).
    #[command(flatten)]
    pub settings: ClientSettingsArgs,
    /// The caller's organisation, which must own the client (empty: an operator).
    #[arg(long, default_value = "")]
    pub org: String,
    /// New status: active or disabled (default: keep).
    #[arg(long)]
    pub status: Option<String>,
}

/// Arguments of `client get`.
#[derive(Debug, Args)]
pub struct ClientIdArgs {
    /// Client id.
    #[arg(long)]
    pub client_id: String,
}

/// Arguments of `client list`.
#[derive(Debug, Args)]
pub struct ClientListArgs {
    /// Only this organisation's clients.
    #[arg(long, default_value = "")]
    pub org: String,
    /// Which page (by client id), or every page.
    #[command(flatten)]
    pub page: PageArgs,
}

/// Runs a client-registry subcommand.
pub async fn run_client(cli: &GlobalArgs, cmd: &ClientCommand) -> anyhow::Result<()> {
    let client = cli.client()?;
    let (header, items, changed) = match cmd {
        ClientCommand::Register(a) => {
            let r = client
                .register_client(a.settings.request(&a.org, 0)?)
                .await?;
            (
                r.header,
                r.client.into_iter().collect::<Vec<_>>(),
                Some(r.changed),
            )
        }
        ClientCommand::Update(a) => {
            let status = match &a.status {
                Some(text) => enum_flag!(
                    v1::ClientStatus,
                    "CLIENT_STATUS_",
                    "--status",
                    text,
                    ["active", "disabled"]
                )?,
                None => 0,
            };
            let r = client
                .update_client(a.settings.request(&a.org, status)?)
                .await?;
            (r.header, r.client.into_iter().collect(), Some(r.changed))
        }
        ClientCommand::Get(a) => {
            let r = client
                .get_client(v1::GetClientRequest {
                    client_id: a.client_id.clone(),
                    read: None,
                })
                .await?;
            (r.header, r.client.into_iter().collect(), None)
        }
        ClientCommand::List(a) => {
            let about = ("org", a.org.as_str());
            return a
                .page
                .list(
                    cli,
                    "clients",
                    about,
                    print_clients,
                    |page_size, page_token| {
                        client.list_clients(v1::ListClientsRequest {
                            org: a.org.clone(),
                            read: None,
                            page_size,
                            page_token,
                        })
                    },
                )
                .await;
        }
    };
    let views: Vec<ClientView> = items.iter().map(ClientView::from).collect();
    if cli.json {
        print_json(&serde_json::json!({
            "header": HeaderView::from(header.as_ref()),
            "changed": changed,
            "clients": views,
        }))
    } else {
        print_clients(&views);
        Ok(())
    }
}
