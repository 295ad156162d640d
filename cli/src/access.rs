//! `kartotek access check` (the access decision, with `--override` for an emergency override)
//! and `kartotek access notifications list|ack` (the patient-notification queue overrides
//! fill).
//!
//! The purpose of use and the on-behalf-of person are the global `--purpose` and
//! `--on-behalf-of` flags (also recorded in the audit log).

use anyhow::bail;
use clap::{Args, Subcommand};
use kartotek_proto::v1;

use crate::GlobalArgs;
use crate::args::{PageArgs, ReadArgs, RecordChange, RequestIdArg};
use crate::output::{HeaderView, print_json};
use crate::record_views::{DecisionView, NotificationView, WriteView, print_notifications};

/// Access subcommands.
// Parsed once per process; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Decide an access: permit, deny or permit by override, with the matching records and
    /// the obligations.
    Check(CheckArgs),
    /// The patient notifications queued by emergency overrides.
    #[command(subcommand)]
    Notifications(NotificationsCommand),
}

/// Arguments of `access check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Patient national id.
    #[arg(long)]
    pub patient: String,
    /// HPR number of the health professional asking.
    #[arg(long, default_value = "")]
    pub personnel: String,
    /// Org number of the organisation asking.
    #[arg(long, default_value = "")]
    pub org: String,
    /// Personnel group (repeatable, or comma separated), e.g. profession:lege.
    #[arg(long = "group", value_delimiter = ',')]
    pub groups: Vec<String>,
    /// The system / national service.
    #[arg(long)]
    pub service: String,
    /// One element of the service.
    #[arg(long, default_value = "")]
    pub element: String,
    /// The time of the access (RFC 3339; default: now).
    #[arg(long, default_value = "")]
    pub time: String,
    /// Client id of a third-party app asking.
    #[arg(long, default_value = "")]
    pub client: String,
    /// Representation area for --on-behalf-of.
    #[arg(long, default_value = "")]
    pub area: String,
    /// Emergency override (helsepersonelloven §45); needs --personnel and --justification.
    #[arg(long = "override")]
    pub emergency_override: bool,
    /// Why the override is required for responsible care.
    #[arg(long, default_value = "")]
    pub justification: String,
    /// The request id of an override (exactly-once).
    #[command(flatten)]
    pub request_id: RequestIdArg,
    /// The read's consistency (not with --override).
    #[command(flatten)]
    pub read: ReadArgs,
}

/// Notification subcommands.
#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// List a patient's notifications.
    List(NotificationListArgs),
    /// Acknowledge (mark delivered) a notification (`--id` from `notifications list`).
    Ack(RecordChange),
}

/// Arguments of `access notifications list`.
#[derive(Debug, Args)]
pub struct NotificationListArgs {
    /// Patient national id.
    #[arg(long)]
    pub patient: String,
    /// Only those not yet acknowledged.
    #[arg(long)]
    pub pending: bool,
    /// Which page, or every page.
    #[command(flatten)]
    pub page: PageArgs,
}

/// Runs an access subcommand.
pub async fn run(cli: &GlobalArgs, cmd: &AccessCommand) -> anyhow::Result<()> {
    let client = cli.client()?;
    match cmd {
        AccessCommand::Check(a) => {
            let Some(purpose) = cli.purpose.clone() else {
                bail!("--purpose is required (the purpose of use, e.g. treatment)");
            };
            let r = client
                .decide_access(v1::AccessDecisionRequest {
                    request_id: a.request_id.value(),
                    patient: a.patient.clone(),
                    personnel: a.personnel.clone(),
                    org: a.org.clone(),
                    groups: a.groups.clone(),
                    service: a.service.clone(),
                    element: a.element.clone(),
                    purpose,
                    time: a.time.clone(),
                    client: a.client.clone(),
                    on_behalf_of: cli.on_behalf_of.clone().unwrap_or_default(),
                    area: a.area.clone(),
                    emergency_override: a.emergency_override,
                    justification: a.justification.clone(),
                    read: a.read.options(),
                })
                .await?;
            let view = DecisionView::from(&r);
            if cli.json {
                return print_json(&view);
            }
            println!("effect: {}", view.effect);
            if view.override_possible {
                println!("(an emergency override with a justification would pass this deny)");
            }
            for reason in &view.reasons {
                println!("  - {reason}");
            }
            for o in &view.obligations {
                if o.values.is_empty() {
                    println!("obligation: {}", o.kind);
                } else {
                    println!("obligation: {} {}", o.kind, o.values.join(","));
                }
            }
            if view.notification_id != 0 {
                println!("patient notification queued: {}", view.notification_id);
            }
            Ok(())
        }
        AccessCommand::Notifications(NotificationsCommand::List(a)) => {
            let about = ("patient", a.patient.as_str());
            a.page
                .list(
                    cli,
                    "notifications",
                    about,
                    print_notifications,
                    |page_size, page_token| {
                        client.list_notifications(v1::ListNotificationsRequest {
                            patient: a.patient.clone(),
                            pending_only: a.pending,
                            read: None,
                            page_size,
                            page_token,
                            ..Default::default()
                        })
                    },
                )
                .await
        }
        AccessCommand::Notifications(NotificationsCommand::Ack(a)) => {
            let r = client
                .acknowledge_notification(v1::AcknowledgeNotificationRequest {
                    request_id: a.target.request_id(),
                    patient: a.target.patient.clone(),
                    notification_id: a.id,
                    by: Some(a.target.actor()?),
                })
                .await?;
            let item = r.notification.as_ref().map(NotificationView::from);
            if cli.json {
                print_json(&WriteView {
                    header: HeaderView::from(r.header.as_ref()),
                    changed: r.changed,
                    record: serde_json::json!({ "notification": item }),
                })
            } else {
                print_notifications(&item.into_iter().collect::<Vec<_>>());
                Ok(())
            }
        }
    }
}
