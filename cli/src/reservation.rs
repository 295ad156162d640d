//! `kartotek reservation add|withdraw|check|list`: a patient's opt-outs from national
//! services.

use clap::{Args, Subcommand};
use kartotek_proto::v1;

use crate::GlobalArgs;
use crate::args::{PageArgs, PatientRead, WriteArgs};
use crate::output::{HeaderView, print_json};
use crate::record_views::{ReservationView, print_reservations, print_write_answer};

/// Reservation subcommands.
#[derive(Debug, Subcommand)]
pub enum ReservationCommand {
    /// Opt the patient out of a national service.
    Add(ChangeArgs),
    /// Opt back in.
    Withdraw(ChangeArgs),
    /// Has the patient opted out of the service?
    Check(KeyArgs),
    /// List a patient's reservations.
    List(ListArgs),
}

/// Arguments of `reservation add|withdraw`.
#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// Which reservation.
    #[command(flatten)]
    pub key: KeyArgs,
    /// Why (add only).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Who, and the request id.
    #[command(flatten)]
    pub write: WriteArgs,
}

/// A patient and a service.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Patient national id.
    #[arg(long)]
    pub patient: String,
    /// National service, e.g. kjernejournal.
    #[arg(long)]
    pub service: String,
}

/// Arguments of `reservation list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Whose reservations, and the read's consistency.
    #[command(flatten)]
    pub of: PatientRead,
    /// Only active reservations.
    #[arg(long)]
    pub active: bool,
    /// Which page, or every page.
    #[command(flatten)]
    pub page: PageArgs,
}

/// Runs a reservation subcommand.
pub async fn run(cli: &GlobalArgs, cmd: &ReservationCommand) -> anyhow::Result<()> {
    let client = cli.client()?;
    match cmd {
        ReservationCommand::Add(a) | ReservationCommand::Withdraw(a) => {
            let by = Some(a.write.actor(&a.key.patient)?);
            let request_id = a.write.request_id.value();
            let r = if matches!(cmd, ReservationCommand::Add(_)) {
                client
                    .reserve(v1::ReserveRequest {
                        request_id,
                        patient: a.key.patient.clone(),
                        service: a.key.service.clone(),
                        reason: a.reason.clone(),
                        registered_by: by,
                    })
                    .await?
            } else {
                client
                    .withdraw_reservation(v1::WithdrawReservationRequest {
                        request_id,
                        patient: a.key.patient.clone(),
                        service: a.key.service.clone(),
                        withdrawn_by: by,
                    })
                    .await?
            };
            let item = r.reservation.as_ref().map(ReservationView::from);
            print_write_answer(
                cli,
                r.header.as_ref(),
                r.changed,
                "reservation",
                item,
                print_reservations,
            )
        }
        ReservationCommand::Check(k) => {
            let r = client
                .check_reservation(v1::CheckReservationRequest {
                    patient: k.patient.clone(),
                    service: k.service.clone(),
                    read: None,
                })
                .await?;
            if cli.json {
                print_json(&serde_json::json!({
                    "header": HeaderView::from(r.header.as_ref()),
                    "reserved": r.reserved,
                    "reservation": r.reservation.as_ref().map(ReservationView::from),
                }))
            } else {
                println!(
                    "{}",
                    if r.reserved {
                        "reserved (opted out)"
                    } else {
                        "not reserved"
                    }
                );
                Ok(())
            }
        }
        ReservationCommand::List(a) => {
            let about = ("patient", a.of.patient.as_str());
            a.page
                .list(
                    cli,
                    "reservations",
                    about,
                    print_reservations,
                    |page_size, page_token| {
                        client.list_reservations(v1::ListReservationsRequest {
                            patient: a.of.patient.clone(),
                            active_only: a.active,
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
