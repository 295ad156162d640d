//! `kartotek representation grant|revoke|list|check`: who may act for whom.

use anyhow::bail;
use clap::{Args, Subcommand};
use kartotek_proto::v1;

use crate::GlobalArgs;
use crate::args::{PageArgs, ReadArgs, WriteArgs};
use crate::record_views::{
    RepresentationView, enum_flag, print_check, print_representations, print_write_answer,
};

/// Representation subcommands.
#[derive(Debug, Subcommand)]
pub enum RepresentationCommand {
    /// Grant a representation.
    Grant(GrantArgs),
    /// Revoke a representation.
    Revoke(RevokeArgs),
    /// "Whom can A represent?" (--representative) or "who can represent B?" (--represented).
    List(ListArgs),
    /// "May A act for B in area S at time t?"
    Check(CheckArgs),
}

/// Arguments of `representation grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// National id of who may act.
    #[arg(long)]
    pub representative: String,
    /// National id of whom they act for.
    #[arg(long)]
    pub represented: String,
    /// power-of-attorney, parental-responsibility, guardianship or not-consent-competent.
    #[arg(long)]
    pub kind: String,
    /// Area (repeatable or comma separated; `*` = every area).
    #[arg(long = "area", value_delimiter = ',', required = true)]
    pub areas: Vec<String>,
    /// patient-granted or population-register (default by kind).
    #[arg(long)]
    pub source: Option<String>,
    /// Start (RFC 3339; default now).
    #[arg(long, default_value = "")]
    pub valid_from: String,
    /// End (RFC 3339; default until revoked).
    #[arg(long, default_value = "")]
    pub valid_to: String,
    /// Who registers it (default: the represented person), and the request id.
    #[command(flatten)]
    pub write: WriteArgs,
}

/// Arguments of `representation revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// National id of the represented person.
    #[arg(long)]
    pub represented: String,
    /// Representation id.
    #[arg(long)]
    pub id: u64,
    /// Who revokes it (default: the represented person), and the request id.
    #[command(flatten)]
    pub write: WriteArgs,
}

/// Arguments of `representation list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Whom can this person represent?
    #[arg(long, conflicts_with = "represented")]
    pub representative: Option<String>,
    /// Who can represent this person?
    #[arg(long)]
    pub represented: Option<String>,
    /// At this time (RFC 3339; default now).
    #[arg(long, default_value = "")]
    pub time: String,
    /// Also records that give nothing at that time (revoked, outside validity, aged out).
    #[arg(long)]
    pub include_inactive: bool,
    /// The read's consistency.
    #[command(flatten)]
    pub read: ReadArgs,
    /// Which page, or every page.
    #[command(flatten)]
    pub page: PageArgs,
}

/// Arguments of `representation check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Who wants to act.
    #[arg(long)]
    pub representative: String,
    /// For whom.
    #[arg(long)]
    pub represented: String,
    /// In which area (`*` = every area).
    #[arg(long)]
    pub area: String,
    /// At this time (RFC 3339; default now).
    #[arg(long, default_value = "")]
    pub time: String,
}

fn print_write(cli: &GlobalArgs, r: &v1::RepresentationResponse) -> anyhow::Result<()> {
    let item = r.representation.as_ref().map(RepresentationView::from);
    print_write_answer(
        cli,
        r.header.as_ref(),
        r.changed,
        "representation",
        item,
        print_representations,
    )
}

/// Runs a representation subcommand.
pub async fn run(cli: &GlobalArgs, cmd: &RepresentationCommand) -> anyhow::Result<()> {
    let client = cli.client()?;
    match cmd {
        RepresentationCommand::Grant(a) => {
            let kind = enum_flag!(
                v1::RepresentationKind,
                "REPRESENTATION_KIND_",
                "--kind",
                &a.kind,
                [
                    "power-of-attorney",
                    "parental-responsibility",
                    "guardianship",
                    "not-consent-competent"
                ]
            )?;
            let source_text = match (&a.source, kind) {
                (Some(s), _) => s.clone(),
                (None, k) if k == v1::RepresentationKind::PowerOfAttorney as i32 => {
                    "patient-granted".into()
                }
                _ => "population-register".into(),
            };
            let source = enum_flag!(
                v1::RepresentationSource,
                "REPRESENTATION_SOURCE_",
                "--source",
                &source_text,
                ["patient-granted", "population-register"]
            )?;
            let by = a.write.actor(&a.represented)?;
            let r = client
                .grant_representation(v1::GrantRepresentationRequest {
                    request_id: a.write.request_id.value(),
                    representative: a.representative.clone(),
                    represented: a.represented.clone(),
                    kind,
                    areas: a.areas.clone(),
                    valid_from: a.valid_from.clone(),
                    valid_to: a.valid_to.clone(),
                    source,
                    granted_by: Some(by),
                })
                .await?;
            print_write(cli, &r)
        }
        RepresentationCommand::Revoke(a) => {
            let by = a.write.actor(&a.represented)?;
            let r = client
                .revoke_representation(v1::RevokeRepresentationRequest {
                    request_id: a.write.request_id.value(),
                    represented: a.represented.clone(),
                    representation_id: a.id,
                    revoked_by: Some(by),
                })
                .await?;
            print_write(cli, &r)
        }
        RepresentationCommand::List(a) => {
            let (about, by_representative) = match (&a.representative, &a.represented) {
                (Some(p), _) => (("representative", p.as_str()), true),
                (None, Some(p)) => (("represented", p.as_str()), false),
                (None, None) => bail!("give --representative or --represented"),
            };
            let client = &client;
            a.page
                .list(
                    cli,
                    "representations",
                    about,
                    print_representations,
                    |page_size, page_token| {
                        let request = v1::ListRepresentationsRequest {
                            person: about.1.to_owned(),
                            time: a.time.clone(),
                            include_inactive: a.include_inactive,
                            read: a.read.options(),
                            page_size,
                            page_token,
                        };
                        async move {
                            if by_representative {
                                client.list_represented_by(request).await
                            } else {
                                client.list_representatives_of(request).await
                            }
                        }
                    },
                )
                .await
        }
        RepresentationCommand::Check(a) => {
            let r = client
                .check_representation(v1::CheckRepresentationRequest {
                    representative: a.representative.clone(),
                    represented: a.represented.clone(),
                    area: a.area.clone(),
                    time: a.time.clone(),
                    read: None,
                })
                .await?;
            print_check(
                cli,
                r.header.as_ref(),
                r.allowed,
                "representation_ids",
                &r.representation_ids,
                &r.reason,
            )
        }
    }
}
