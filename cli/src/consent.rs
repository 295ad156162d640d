//! `kartotek consent request|grant|deny|withdraw|list|check`.

use clap::{Args, Subcommand};
use kartotek_proto::v1;

use crate::GlobalArgs;
use crate::args::{PageArgs, PatientRead, RecordChange, RequestIdArg, by_or_citizen};
use crate::record_views::{
    ConsentView, enum_flag, print_check, print_consents, print_write_answer,
};

/// Consent subcommands.
#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// A grantee asks the patient for consent, with a deadline.
    Request(TermsArgs),
    /// Grant a pending request (--id) or grant directly (the terms).
    Grant(GrantArgs),
    /// Deny a pending request (`--id` from `consent list`).
    Deny(RecordChange),
    /// Withdraw a granted consent (`--id` from `consent list`).
    Withdraw(RecordChange),
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
    /// The request id.
    #[command(flatten)]
    pub request_id: RequestIdArg,
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

/// Arguments of `consent list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Whose consents, and the read's consistency.
    #[command(flatten)]
    pub of: PatientRead,
    /// Only this effective status (requested, granted, denied, expired, withdrawn).
    #[arg(long)]
    pub status: Option<String>,
    /// Which page, or every page.
    #[command(flatten)]
    pub page: PageArgs,
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
    print_write_answer(
        cli,
        r.header.as_ref(),
        r.changed,
        "consent",
        consent,
        print_consents,
    )
}

/// Runs a consent subcommand.
pub async fn run(cli: &GlobalArgs, cmd: &ConsentCommand) -> anyhow::Result<()> {
    let client = cli.client()?;
    match cmd {
        ConsentCommand::Request(t) => {
            let r = client
                .request_consent(v1::RequestConsentRequest {
                    request_id: t.request_id.value(),
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
                    request_id: t.request_id.value(),
                    patient: t.patient.clone(),
                    consent_id: g.id,
                    grantee_kind: grantee_kind(&t.grantee_kind)?,
                    grantee: t.grantee.clone(),
                    scopes: t.scopes.clone(),
                    purpose: t.consent_purpose.clone(),
                    valid_from: t.valid_from.clone(),
                    valid_to: t.valid_to.clone(),
                    by: Some(by_or_citizen(g.by.as_deref(), &t.patient)?),
                })
                .await?;
            print_write(cli, &r)
        }
        ConsentCommand::Deny(a) | ConsentCommand::Withdraw(a) => {
            let req = v1::AnswerConsentRequest {
                request_id: a.target.request_id(),
                patient: a.target.patient.clone(),
                consent_id: a.id,
                by: Some(a.target.actor()?),
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
            let about = ("patient", a.of.patient.as_str());
            a.page
                .list(
                    cli,
                    "consents",
                    about,
                    print_consents,
                    |page_size, page_token| {
                        client.list_consents(v1::ListConsentsRequest {
                            patient: a.of.patient.clone(),
                            status,
                            read: a.of.read.options(),
                            page_size,
                            page_token,
                            ..Default::default()
                        })
                    },
                )
                .await
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
            print_check(
                cli,
                r.header.as_ref(),
                r.allowed,
                "consent_ids",
                &r.consent_ids,
                &r.reason,
            )
        }
    }
}
