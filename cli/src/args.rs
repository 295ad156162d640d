//! Argument groups shared by the record families' commands, flattened into each command's
//! arguments (`#[command(flatten)]`) so that a flag means and reads the same everywhere.

use clap::Args;
use kartotek_client::ClientError;
use kartotek_proto::v1;
use serde::Serialize;

use crate::GlobalArgs;
use crate::output::{HeaderView, print_json};
use crate::record_views::parse_actor;

/// `--request-id`: the id that makes a write exactly-once across retries.
#[derive(Debug, Clone, Args)]
pub struct RequestIdArg {
    /// Request id for exactly-once retries (a fresh UUID by default).
    #[arg(long)]
    pub request_id: Option<String>,
}

impl RequestIdArg {
    /// The id to send (empty: the client picks a fresh UUID).
    pub fn value(&self) -> String {
        self.request_id.clone().unwrap_or_default()
    }
}

/// `--max-staleness-ms`: a bounded-staleness read instead of a linearizable one.
#[derive(Debug, Clone, Args)]
pub struct ReadArgs {
    /// Accept an answer from the first endpoint if it is provably at most this stale
    /// (default: linearizable).
    #[arg(long)]
    pub max_staleness_ms: Option<u64>,
}

impl ReadArgs {
    /// The read options to send (`None`: linearizable).
    pub fn options(&self) -> Option<v1::ReadOptions> {
        self.max_staleness_ms.map(|ms| v1::ReadOptions {
            consistency: v1::Consistency::BoundedStaleness as i32,
            max_staleness_ms: ms,
        })
    }
}

/// The actor of a `--by kind:id` flag, or `citizen` as a citizen.
pub fn by_or_citizen(by: Option<&str>, citizen: &str) -> anyhow::Result<v1::Actor> {
    match by {
        Some(b) => parse_actor("--by", b),
        // Calling as a citizen (a login token): left out, the node names the token's citizen.
        None if CALLER_IS_CITIZEN.load(std::sync::atomic::Ordering::Relaxed) => {
            Ok(v1::Actor::default())
        }
        None => Ok(v1::Actor {
            kind: v1::ActorKind::Citizen as i32,
            id: citizen.to_owned(),
        }),
    }
}

/// Set by `run` when this process calls with a citizen's login: a change's actor is then
/// left out for the node to take from the token, instead of defaulting to the patient.
pub(crate) static CALLER_IS_CITIZEN: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Who makes a change (`--by`) and its request id.
#[derive(Debug, Clone, Args)]
pub struct WriteArgs {
    /// Who does it, kind:id (default: citizen:<the person the record is about>; with a
    /// citizen's login, the token's citizen).
    #[arg(long)]
    pub by: Option<String>,
    /// The request id.
    #[command(flatten)]
    pub request_id: RequestIdArg,
}

impl WriteArgs {
    /// The actor of `--by`, or `citizen` as a citizen (the person the record is about).
    pub fn actor(&self, citizen: &str) -> anyhow::Result<v1::Actor> {
        by_or_citizen(self.by.as_deref(), citizen)
    }
}

/// A change to one patient's records: `--patient`, `--by`, `--request-id`.
#[derive(Debug, Clone, Args)]
pub struct PatientWrite {
    /// Patient national id (11 digits).
    #[arg(long)]
    pub patient: String,
    /// Who, and the request id.
    #[command(flatten)]
    pub write: WriteArgs,
}

impl PatientWrite {
    /// The actor of `--by`, or the patient as citizen.
    pub fn actor(&self) -> anyhow::Result<v1::Actor> {
        self.write.actor(&self.patient)
    }

    /// The request id to send.
    pub fn request_id(&self) -> String {
        self.write.request_id.value()
    }
}

/// A change to one existing record of a patient (revoke, deny, withdraw, acknowledge):
/// `--patient`, `--id`, `--by`, `--request-id`.
#[derive(Debug, Clone, Args)]
pub struct RecordChange {
    /// Whose record, who changes it, and the request id.
    #[command(flatten)]
    pub target: PatientWrite,
    /// Id of the record (as `list` shows it).
    #[arg(long)]
    pub id: u64,
}

/// A read of one patient's records: `--patient`, `--max-staleness-ms`.
#[derive(Debug, Clone, Args)]
pub struct PatientRead {
    /// Patient national id (11 digits).
    #[arg(long)]
    pub patient: String,
    /// The read's consistency.
    #[command(flatten)]
    pub read: ReadArgs,
}

/// Paging of a list command: `--page-size`, `--page-token`, `--all`, `--count`. Every list
/// command pages and prints the same way ([`PageArgs::list`]).
#[derive(Debug, Clone, Args)]
pub struct PageArgs {
    /// Records per page (1 to 1000).
    #[arg(long, default_value_t = 100)]
    pub page_size: u32,
    /// Start at this page token (from a previous answer).
    #[arg(long)]
    pub page_token: Option<String>,
    /// Fetch every page, not just one.
    #[arg(long)]
    pub all: bool,
    /// Only print the number of records (of every page, as with --all).
    #[arg(long)]
    pub count: bool,
}

/// The answer of a list call, one page: its header, its records, the token of the next.
pub trait Listing {
    /// One record of the list, as the API sends it.
    type Record;
    /// The header, the page's records and `next_page_token` (empty on the last page).
    fn into_page(self) -> (Option<v1::ResponseHeader>, Vec<Self::Record>, String);
}

/// [`Listing`] for list answers: `Response => records_field: Record`.
macro_rules! listing {
    ($($response:ident => $records:ident: $record:ident),* $(,)?) => {$(
        impl Listing for v1::$response {
            type Record = v1::$record;
            fn into_page(self) -> (Option<v1::ResponseHeader>, Vec<v1::$record>, String) {
                (self.header, self.$records, self.next_page_token)
            }
        }
    )*};
}

listing!(
    ListLocatorsResponse => entries: LocatorEntry,
    ListBlocksResponse => blocks: Block,
    ListNotificationsResponse => notifications: PatientNotification,
    ListConsentsResponse => consents: Consent,
    ListReservationsResponse => reservations: Reservation,
    ListRepresentationsResponse => representations: Representation,
    SearchCatalogResponse => entries: CatalogEntry,
    ListClientsResponse => clients: RegisteredClient,
);

/// What a list command fetched: one page, or every page with `--all` or `--count`.
#[derive(Debug)]
pub struct Listed<T> {
    /// The header of the last page fetched.
    pub header: HeaderView,
    /// The records of the pages fetched, as printed (none with `--count`).
    pub items: Vec<T>,
    /// How many records the pages held.
    pub total: u64,
    /// The token of the page after the last one fetched (empty: none left).
    pub next_page_token: String,
}

impl PageArgs {
    /// The whole of a list command: [`PageArgs::fetch`] with `call`, then
    /// [`PageArgs::print`] of the records as `T`.
    pub async fn list<T, R, F, Fut>(
        &self,
        cli: &GlobalArgs,
        field: &str,
        about: (&str, &str),
        table: impl Fn(&[T]),
        call: F,
    ) -> anyhow::Result<()>
    where
        T: Serialize + for<'r> From<&'r R::Record>,
        R: Listing,
        F: FnMut(u32, String) -> Fut,
        Fut: Future<Output = Result<R, ClientError>>,
    {
        let listed = self.fetch(call).await?;
        self.print(cli, listed, field, about, table)
    }

    /// Fetches one page, or every page with `--all` or `--count`: `call(page_size,
    /// page_token)` asks for one.
    pub async fn fetch<T, R, F, Fut>(&self, mut call: F) -> anyhow::Result<Listed<T>>
    where
        T: for<'r> From<&'r R::Record>,
        R: Listing,
        F: FnMut(u32, String) -> Fut,
        Fut: Future<Output = Result<R, ClientError>>,
    {
        // A count is of the whole listing, so it pages through everything like --all.
        let every_page = self.all || self.count;
        let mut token = self.page_token.clone().unwrap_or_default();
        let mut total = 0u64;
        let mut items = Vec::new();
        loop {
            let (header, records, next) = call(self.page_size, token).await?.into_page();
            total += records.len() as u64;
            if !self.count {
                items.extend(records.iter().map(T::from));
            }
            token = next;
            if token.is_empty() || !every_page {
                return Ok(Listed {
                    header: header.as_ref().into(),
                    items,
                    total,
                    next_page_token: token,
                });
            }
        }
    }

    /// Prints what [`PageArgs::fetch`] fetched: with `--count` the number (`--json`: with
    /// `about`, the list's subject, e.g. `("patient", id)`); with `--json` one document (the
    /// header, the records as `field`, `next_page_token`) however many pages; otherwise
    /// `table` and a line with the number and, if there are more, the next page token.
    pub fn print<V: Serialize>(
        &self,
        cli: &GlobalArgs,
        listed: Listed<V>,
        field: &str,
        about: (&str, &str),
        table: impl Fn(&[V]),
    ) -> anyhow::Result<()> {
        if self.count {
            if cli.json {
                let mut doc = serde_json::Map::new();
                doc.insert(about.0.into(), about.1.into());
                doc.insert("count".into(), listed.total.into());
                return print_json(&doc);
            }
            println!("{}", listed.total);
            return Ok(());
        }
        if cli.json {
            let mut doc = serde_json::Map::new();
            doc.insert("header".into(), serde_json::to_value(&listed.header)?);
            doc.insert(field.into(), serde_json::to_value(&listed.items)?);
            doc.insert("next_page_token".into(), listed.next_page_token.into());
            return print_json(&doc);
        }
        table(&listed.items);
        println!(
            "{} {field}{}",
            listed.total,
            if listed.next_page_token.is_empty() {
                String::new()
            } else {
                format!("; more with --page-token {}", listed.next_page_token)
            }
        );
        Ok(())
    }
}
