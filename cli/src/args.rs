//! Argument groups shared by the record families' commands, flattened into each command's
//! arguments (`#[command(flatten)]`) so that a flag means and reads the same everywhere.

use clap::Args;
use kartotek_proto::v1;

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
        None => Ok(v1::Actor {
            kind: v1::ActorKind::Citizen as i32,
            id: citizen.to_owned(),
        }),
    }
}

/// Who makes a change (`--by`) and its request id.
#[derive(Debug, Clone, Args)]
pub struct WriteArgs {
    /// Who does it, kind:id (default: citizen:<the person the record is about>).
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
