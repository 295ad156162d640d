//! `kartotek block add|revoke|list`: a patient's blocks (sperring: overridable in an
//! emergency; blokkering: absolute).

use clap::{Args, Subcommand};
use kartotek_proto::v1;

use crate::GlobalArgs;
use crate::output::{HeaderView, print_json};
use crate::record_views::{
    BlockView, WriteView, enum_flag, parse_actor, print_blocks, read_options,
};

/// Block subcommands.
#[derive(Debug, Subcommand)]
pub enum BlockCommand {
    /// Block a health professional, a personnel group or an organisation.
    Add(AddArgs),
    /// Revoke a block.
    Revoke(RevokeArgs),
    /// List a patient's blocks.
    List(ListArgs),
}

/// Arguments of `block add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Patient national id (11 digits).
    #[arg(long)]
    pub patient: String,
    /// What is blocked: personnel, group or organisation.
    #[arg(long)]
    pub target_kind: String,
    /// HPR number, group id (e.g. profession:lege) or org number.
    #[arg(long)]
    pub target: String,
    /// overridable (sperring: emergency override passes it) or absolute (blokkering).
    #[arg(long, default_value = "overridable")]
    pub level: String,
    /// National service (default: every system under the patient records act).
    #[arg(long, default_value = "")]
    pub service: String,
    /// One element of the service.
    #[arg(long, default_value = "")]
    pub element: String,
    /// Start (RFC 3339; default: now).
    #[arg(long, default_value = "")]
    pub valid_from: String,
    /// End (RFC 3339; default: until revoked).
    #[arg(long, default_value = "")]
    pub valid_to: String,
    /// Why.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Who registers it, kind:id (default: citizen:<patient>).
    #[arg(long)]
    pub by: Option<String>,
    /// Request id for exactly-once retries (a fresh UUID by default).
    #[arg(long)]
    pub request_id: Option<String>,
}

/// Arguments of `block revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Patient national id.
    #[arg(long)]
    pub patient: String,
    /// Block id.
    #[arg(long)]
    pub id: u64,
    /// Who revokes it, kind:id (default: citizen:<patient>).
    #[arg(long)]
    pub by: Option<String>,
    /// Request id for exactly-once retries.
    #[arg(long)]
    pub request_id: Option<String>,
}

/// Arguments of `block list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Patient national id.
    #[arg(long)]
    pub patient: String,
    /// Only blocks in force now.
    #[arg(long)]
    pub in_force: bool,
    /// Accept a follower's answer at most this stale (default: linearizable).
    #[arg(long)]
    pub max_staleness_ms: Option<u64>,
}

#[derive(serde::Serialize)]
struct ListView {
    header: HeaderView,
    blocks: Vec<BlockView>,
}

/// The actor of `--by`, or the patient as citizen.
pub fn by_or_patient(by: Option<&str>, patient: &str) -> anyhow::Result<v1::Actor> {
    match by {
        Some(b) => parse_actor("--by", b),
        None => Ok(v1::Actor {
            kind: v1::ActorKind::Citizen as i32,
            id: patient.to_owned(),
        }),
    }
}

fn print_write(cli: &GlobalArgs, r: &v1::BlockResponse) -> anyhow::Result<()> {
    let block = r.block.as_ref().map(BlockView::from);
    if cli.json {
        return print_json(&WriteView {
            header: HeaderView::from(r.header.as_ref()),
            changed: r.changed,
            record: serde_json::json!({ "block": block }),
        });
    }
    println!(
        "{} (revision {})",
        if r.changed { "changed" } else { "unchanged" },
        r.header.as_ref().map(|h| h.revision).unwrap_or(0)
    );
    print_blocks(&block.into_iter().collect::<Vec<_>>());
    Ok(())
}

/// Runs a block subcommand.
pub async fn run(cli: &GlobalArgs, cmd: &BlockCommand) -> anyhow::Result<()> {
    let client = cli.client()?;
    match cmd {
        BlockCommand::Add(a) => {
            let r = client
                .add_block(v1::AddBlockRequest {
                    request_id: a.request_id.clone().unwrap_or_default(),
                    patient: a.patient.clone(),
                    target_kind: enum_flag!(
                        v1::BlockTargetKind,
                        "BLOCK_TARGET_KIND_",
                        "--target-kind",
                        &a.target_kind,
                        ["personnel", "group", "organisation"]
                    )?,
                    target: a.target.clone(),
                    level: enum_flag!(
                        v1::BlockLevel,
                        "BLOCK_LEVEL_",
                        "--level",
                        &a.level,
                        ["overridable", "absolute"]
                    )?,
                    scope_service: a.service.clone(),
                    scope_element: a.element.clone(),
                    valid_from: a.valid_from.clone(),
                    valid_to: a.valid_to.clone(),
                    reason: a.reason.clone(),
                    registered_by: Some(by_or_patient(a.by.as_deref(), &a.patient)?),
                })
                .await?;
            print_write(cli, &r)
        }
        BlockCommand::Revoke(a) => {
            let r = client
                .revoke_block(v1::RevokeBlockRequest {
                    request_id: a.request_id.clone().unwrap_or_default(),
                    patient: a.patient.clone(),
                    block_id: a.id,
                    revoked_by: Some(by_or_patient(a.by.as_deref(), &a.patient)?),
                })
                .await?;
            print_write(cli, &r)
        }
        BlockCommand::List(a) => {
            let r = client
                .list_blocks(v1::ListBlocksRequest {
                    patient: a.patient.clone(),
                    in_force_only: a.in_force,
                    read: read_options(a.max_staleness_ms),
                })
                .await?;
            let blocks: Vec<BlockView> = r.blocks.iter().map(BlockView::from).collect();
            if cli.json {
                print_json(&ListView {
                    header: HeaderView::from(r.header.as_ref()),
                    blocks,
                })
            } else {
                print_blocks(&blocks);
                Ok(())
            }
        }
    }
}
