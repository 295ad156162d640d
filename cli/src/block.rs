//! `kartotek block add|revoke|list`: a patient's blocks (sperring: overridable in an
//! emergency; blokkering: absolute).

use clap::{Args, Subcommand};
use kartotek_proto::v1;

use crate::GlobalArgs;
use crate::args::{PageArgs, PatientRead, PatientWrite, RecordChange};
use crate::record_views::{BlockView, enum_flag, print_blocks, print_write_answer};

/// Block subcommands.
#[derive(Debug, Subcommand)]
pub enum BlockCommand {
    /// Block a health professional, a personnel group or an organisation.
    Add(AddArgs),
    /// Revoke a block (`--id` from `block list`).
    Revoke(RecordChange),
    /// List a patient's blocks.
    List(ListArgs),
}

/// Arguments of `block add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Whose block, who registers it, and the request id.
    #[command(flatten)]
    pub change: PatientWrite,
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
}

/// Arguments of `block list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Whose blocks, and the read's consistency.
    #[command(flatten)]
    pub of: PatientRead,
    /// Only blocks in force now.
    #[arg(long)]
    pub in_force: bool,
    /// Which page, or every page.
    #[command(flatten)]
    pub page: PageArgs,
}

fn print_write(cli: &GlobalArgs, r: &v1::BlockResponse) -> anyhow::Result<()> {
    if !cli.json {
        println!(
            "{} (revision {})",
            if r.changed { "changed" } else { "unchanged" },
            r.header.as_ref().map(|h| h.revision).unwrap_or(0)
        );
    }
    let block = r.block.as_ref().map(BlockView::from);
    print_write_answer(
        cli,
        r.header.as_ref(),
        r.changed,
        "block",
        block,
        print_blocks,
    )
}

/// Runs a block subcommand.
pub async fn run(cli: &GlobalArgs, cmd: &BlockCommand) -> anyhow::Result<()> {
    let client = cli.client()?;
    match cmd {
        BlockCommand::Add(a) => {
            let r = client
                .add_block(v1::AddBlockRequest {
                    request_id: a.change.request_id(),
                    patient: a.change.patient.clone(),
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
                    registered_by: Some(a.change.actor()?),
                })
                .await?;
            print_write(cli, &r)
        }
        BlockCommand::Revoke(a) => {
            let r = client
                .revoke_block(v1::RevokeBlockRequest {
                    request_id: a.target.request_id(),
                    patient: a.target.patient.clone(),
                    block_id: a.id,
                    revoked_by: Some(a.target.actor()?),
                })
                .await?;
            print_write(cli, &r)
        }
        BlockCommand::List(a) => {
            let about = ("patient", a.of.patient.as_str());
            a.page
                .list(
                    cli,
                    "blocks",
                    about,
                    print_blocks,
                    |page_size, page_token| {
                        client.list_blocks(v1::ListBlocksRequest {
                            patient: a.of.patient.clone(),
                            in_force_only: a.in_force,
                            read: a.of.read.options(),
                            page_size,
                            page_token,
                        })
                    },
                )
                .await
        }
    }
}
