//! `kartotek consent request|grant|deny|withdraw|list|check`.

use clap::{Args, Subcommand};
use kartotek_proto::v1;

use crate::GlobalArgs;
use crate::block::by_or_patient;
use crate::output::{HeaderView, print_json};
use crate::record_views::{ConsentView, WriteView, enum_flag, print_consents, read_options};

/// Consent subcommands.
#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// A grantee asks the patient for consent, with a deadline.
    Request(TermsArgs),
    /// Grant a pending request (--id) or grant directly (the terms).
    Grant(GrantArgs),
    /// Deny a pending request.
    Deny(AnswerArgs),
    /// Withdraw a granted consent.
    Withdraw(AnswerArgs),
    /// List a patient's consents.
    List(ListArgs),
    /// May this grantee use this scope for the patient now?
    Check(CheckArgs),
}

/// The terms of a consent.
#[derive(Debug, Args)]
pub struct TermsArgs {
    /// Patient national id.
    #[arg(long)]
    pub patient: String,
    /// client, organisation or personnel.
    #[arg(long, default_value = "")]
    pub grantee_kind: String,
    /// Client id, org number or HPR number.
    #[arg(long, default_value = "")]
    pub grantee: String,
    /// Scope (catalog API id or OAuth scope; repeatable or comma separated).
    #[arg(long = "scope", value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// Purpose of use.
    #[arg(long = "for", default_value = "")]
    pub consent_purpose: String,
    /// Start (RFC 3339; default now).
    #[arg(long, default_value = "")]
    pub valid_from: String,
    /// End (RFC 3339; default until withdrawn).
    #[arg(long, default_value = "")]
    pub valid_to: String,
    /// Deadline of a request (RFC 3339).
    #[arg(long, default_value = "")]
    pub deadline: String,
    /// Request id for exactly-once retries.
    #[arg(long)]
    pub request_id: Option<String>,
}

/// Arguments of `consent grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The terms (for a direct grant).
    #[command(flatten)]
    pub terms: TermsArgs,
    /// The pending request to grant.
    #[arg(long, default_value_t = 0)]
    pub id: u64,
    /// Who grants, kind:id (default citizen:<patient>).
    #[arg(long)]
    pub by: Option<String>,
}

/// Arguments of `consent deny|withdraw`.
#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// Patient national id.
    #[arg(long)]
    pub patient: String,
    /// Consent id.
    #[arg(long)]
    pub id: u64,
    /// Who answers, kind:id (default citizen:<patient>).
    #[arg(long)]
    pub by: Option<String>,
    /// Request id for exactly-once retries.
    #[arg(long)]
    pub request_id: Option<String>,
}

/// Arguments of `consent list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Patient national id.
    #[arg(long)]
    pub patient: String,
    /// Only this effective status (requested, granted, denied, expired, withdrawn).
    #[arg(long)]
    pub status: Option<String>,
    /// Accept a follower's answer at most this stale.
    #[arg(long)]
    pub max_staleness_ms: Option<u64>,
}

/// Arguments of `consent check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Patient national id.
    #[arg(long)]
    pub patient: String,
    /// client, organisation or personnel.
    #[arg(long)]
    pub grantee_kind: String,
    /// Grantee id.
    #[arg(long)]
    pub grantee: String,
    /// The scope wanted.
    #[arg(long)]
    pub scope: String,
}

fn grantee_kind(text: &str) -> anyhow::Result<i32> {
    if text.is_empty() {
        return Ok(0);
    }
    enum_flag!(
        v1::GranteeKind,
        "GRANTEE_KIND_",
        "--grantee-kind",
        text,
        ["client", "organisation", "personnel"]
    )
}

fn print_write(cli: &GlobalArgs, r: &v1::ConsentResponse) -> anyhow::Result<()> {
    let consent = r.consent.as_ref().map(ConsentView::from);
    if cli.json {
        return print_json(&WriteView {
            header: HeaderView::from(r.header.as_ref()),
            changed: r.changed,
            record: serde_json::json!({ "consent": consent }),
        });
    }
    print_consents(&consent.into_iter().collect::<Vec<_>>());
    Ok(())
}

/// Runs a consent subcommand.
pub async fn run(cli: &GlobalArgs, cmd: &ConsentCommand) -> anyhow::Result<()> {
    let client = cli.client()?;
    match cmd {
        ConsentCommand::Request(t) => {
            let r = client
                .request_consent(v1::RequestConsentRequest {
                    request_id: t.request_id.clone().unwrap_or_default(),
                    patient: t.patient.clone(),
                    grantee_kind: grantee_kind(&t.grantee_kind)?,
                    grantee: t.grantee.clone(),
                    scopes: t.scopes.clone(),
                    purpose: t.consent_purpose.clone(),
                    valid_from: t.valid_from.clone(),
                    valid_to: t.valid_to.clone(),
                    deadline: t.deadline.clone(),
                })
                .await?;
            print_write(cli, &r)
        }
        ConsentCommand::Grant(g) => {
            let t = &g.terms;
            let r = client
                .grant_consent(v1::GrantConsentRequest {
                    request_id: t.request_id.clone().unwrap_or_default(),
                    patient: t.patient.clone(),
                    consent_id: g.id,
                    grantee_kind: grantee_kind(&t.grantee_kind)?,
                    grantee: t.grantee.clone(),
                    scopes: t.scopes.clone(),
                    purpose: t.consent_purpose.clone(),
                    valid_from: t.valid_from.clone(),
                    valid_to: t.valid_to.clone(),
                    by: Some(by_or_patient(g.by.as_deref(), &t.patient)?),
                })
                .await?;
            print_write(cli, &r)
        }
        ConsentCommand::Deny(a) | ConsentCommand::Withdraw(a) => {
            let req = v1::AnswerConsentRequest {
                request_id: a.request_id.clone().unwrap_or_default(),
                patient: a.patient.clone(),
                consent_id: a.id,
                by: Some(by_or_patient(a.by.as_deref(), &a.patient)?),
            };
            let r = if matches!(cmd, ConsentCommand::Deny(_)) {
                client.deny_consent(req).await?
            } else {
                client.withdraw_consent(req).await?
            };
            print_write(cli, &r)
        }
        ConsentCommand::List(a) => {
            let status = match &a.status {
                Some(s) => enum_flag!(
                    v1::ConsentStatus,
                    "CONSENT_STATUS_",
                    "--status",
                    s,
                    ["requested", "granted", "denied", "expired", "withdrawn"]
                )?,
                None => 0,
            };
            let r = client
                .list_consents(v1::ListConsentsRequest {
                    patient: a.patient.clone(),
                    status,
                    read: read_options(a.max_staleness_ms),
                    ..Default::default()
                })
                .await?;
            let items: Vec<ConsentView> = r.consents.iter().map(ConsentView::from).collect();
            if cli.json {
                print_json(&serde_json::json!({
                    "header": HeaderView::from(r.header.as_ref()),
                    "consents": items,
                }))
            } else {
                print_consents(&items);
                Ok(())
            }
        }
        ConsentCommand::Check(a) => {
            let r = client
                .check_consent(v1::CheckConsentRequest {
                    patient: a.patient.clone(),
                    grantee_kind: grantee_kind(&a.grantee_kind)?,
                    grantee: a.grantee.clone(),
                    scope: a.scope.clone(),
                    read: None,
                })
                .await?;
            if cli.json {
                print_json(&serde_json::json!({
                    "header": HeaderView::from(r.header.as_ref()),
                    "allowed": r.allowed,
                    "consent_ids": r.consent_ids,
                    "reason": r.reason,
                }))
            } else {
                println!(
                    "{}: {}",
                    if r.allowed { "allowed" } else { "not allowed" },
                    r.reason
                );
                Ok(())
            }
        }
    }
}
