//! Consents (samtykker): a patient permits a client (third-party app), an organisation or a
//! health professional to access given scopes for a purpose and a period.
//!
//! Lifecycle: a consent is either **requested** (by the grantee, with a deadline) and then
//! granted, denied or expired, or **granted directly** by the patient; a granted consent can be
//! withdrawn, and it expires when its validity period ends.
//!
//! ```text
//! request ─▶ Requested{deadline} ─┬─ grant (before deadline) ─▶ Granted ─┬─ withdraw ─▶ Withdrawn
//!                                 ├─ deny  (before deadline) ─▶ Denied   └─ valid_to ──▶ Expired
//!                                 └─ deadline passes ─────────▶ Expired
//! grant (direct) ──────────────────────────────────────────────▶ Granted
//! ```
//!
//! Time is always the leader-stamped `now` the state machine passes in, so every replica makes
//! the same decision: a grant or deny at or after the deadline fails with
//! [`ApplyError::FailedPrecondition`], and reads use [`effective_status`], which reports a
//! request past its deadline (or a grant past its `valid_to`) as [`ConsentStatus::Expired`]
//! even before the periodic [`apply_consent_expire_due`] command has stored that.
//!
//! Consents get a server-assigned id (the revision that created them) and are never deleted.

use serde::{Deserialize, Serialize};

use crate::error::{ApplyError, ValidationError};
use crate::fields::{
    Actor, ClientId, Purpose, Validity, ValidityInput, parse_hpr, parse_person_actor,
    parse_record_id, parse_scope, parse_scopes, parse_timestamp, text_enum,
};
use crate::ids::{HprNumber, NationalId, OrgNumber};
use crate::limits::{
    CONSENT_EXPIRE_PER_COMMAND_MAX, CONSENTS_PER_PATIENT_MAX, SCOPES_PER_CONSENT_MAX,
};
use crate::locator::{parse_national_id, parse_org_number};
use crate::time::Timestamp;

text_enum! {
    /// What kind of party a consent is given to (the `grantee_kind` field).
    pub enum GranteeKind {
        /// A token-issuance client (a third-party app), by client id.
        Client => "client",
        /// An organisation, by org number.
        Organisation => "organisation",
        /// One health professional, by HPR number.
        Personnel => "personnel",
    }
}

text_enum! {
    /// Where a consent is in its lifecycle.
    pub enum ConsentStatus {
        /// Asked for by the grantee; waiting for the patient until the deadline.
        Requested => "requested",
        /// In force (within its validity period).
        Granted => "granted",
        /// The patient said no to the request.
        Denied => "denied",
        /// The request's deadline passed, or the granted period ended.
        Expired => "expired",
        /// The patient withdrew a granted consent.
        Withdrawn => "withdrawn",
    }
}

/// Who a consent is given to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Grantee {
    /// A client (third-party app).
    Client(ClientId),
    /// An organisation.
    Organisation(OrgNumber),
    /// A health professional.
    Personnel(HprNumber),
}

impl Grantee {
    /// Parses a grantee sent as `{field}_kind` and `{field}` (normally `grantee`).
    pub fn parse(field: &str, kind: &str, id: &str) -> Result<Self, ValidationError> {
        Ok(match GranteeKind::parse(&format!("{field}_kind"), kind)? {
            GranteeKind::Client => Grantee::Client(ClientId::parse(field, id)?),
            GranteeKind::Organisation => Grantee::Organisation(parse_org_number(field, id)?),
            GranteeKind::Personnel => Grantee::Personnel(parse_hpr(field, id)?),
        })
    }

    /// The grantee's kind.
    pub fn kind(&self) -> GranteeKind {
        match self {
            Grantee::Client(_) => GranteeKind::Client,
            Grantee::Organisation(_) => GranteeKind::Organisation,
            Grantee::Personnel(_) => GranteeKind::Personnel,
        }
    }

    /// The grantee's id as text.
    pub fn id_text(&self) -> String {
        match self {
            Grantee::Client(c) => c.as_str().to_owned(),
            Grantee::Organisation(o) => o.as_str().to_owned(),
            Grantee::Personnel(h) => h.to_string(),
        }
    }
}

/// Raw fields of a consent request or direct grant, exactly as a caller sends them (empty
/// string = unset).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsentInput<'a> {
    /// The patient's national id (the grantor).
    pub patient: &'a str,
    /// `client`, `organisation` or `personnel`.
    pub grantee_kind: &'a str,
    /// Client id, org number or HPR number.
    pub grantee: &'a str,
    /// Catalog API ids or OAuth scopes; 1 to [`SCOPES_PER_CONSENT_MAX`].
    pub scopes: &'a [String],
    /// Purpose of use (token).
    pub purpose: &'a str,
    /// RFC 3339; empty = from when applied.
    pub valid_from: &'a str,
    /// RFC 3339; empty = until withdrawn.
    pub valid_to: &'a str,
}

/// The validated terms common to a request and a direct grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentTerms {
    /// The grantor.
    pub patient: NationalId,
    /// Who is permitted.
    pub grantee: Grantee,
    /// What is permitted: catalog API ids or OAuth scopes, sorted, unique, at least one.
    pub scopes: Vec<String>,
    /// What for.
    pub purpose: Purpose,
    /// When.
    pub validity: ValidityInput,
}

impl ConsentTerms {
    /// Validates the common fields.
    pub fn parse(input: &ConsentInput<'_>) -> Result<Self, ValidationError> {
        Ok(ConsentTerms {
            patient: parse_national_id("patient", input.patient)?,
            grantee: Grantee::parse("grantee", input.grantee_kind, input.grantee)?,
            scopes: parse_scopes("scopes", input.scopes, SCOPES_PER_CONSENT_MAX, true)?,
            purpose: Purpose::parse("purpose", input.purpose)?,
            validity: ValidityInput::parse(input.valid_from, input.valid_to)?,
        })
    }
}

/// A validated consent request (by the grantee), which the patient must answer before
/// `deadline`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRequest {
    /// What is asked for.
    pub terms: ConsentTerms,
    /// When the request expires unanswered.
    pub deadline: Timestamp,
}

impl ConsentRequest {
    /// Validates a request as sent by a caller; `deadline` (RFC 3339) is required.
    pub fn parse(input: &ConsentInput<'_>, deadline: &str) -> Result<Self, ValidationError> {
        let terms = ConsentTerms::parse(input)?;
        let deadline = parse_timestamp("deadline", deadline)?;
        Ok(ConsentRequest { terms, deadline })
    }
}

/// A validated direct grant (the patient, or someone acting for them, grants without a
/// request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentGrant {
    /// What is granted.
    pub terms: ConsentTerms,
    /// Who grants it.
    pub granted_by: Actor,
}

impl ConsentGrant {
    /// Validates a direct grant as sent by a caller (`granted_by_kind`: `citizen` or
    /// `personnel`).
    pub fn parse(
        input: &ConsentInput<'_>,
        granted_by_kind: &str,
        granted_by: &str,
    ) -> Result<Self, ValidationError> {
        Ok(ConsentGrant {
            terms: ConsentTerms::parse(input)?,
            granted_by: parse_person_actor("granted_by", granted_by_kind, granted_by)?,
        })
    }
}

/// A validated answer to an existing consent: grant or deny a request, or withdraw a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentAnswer {
    /// The grantor (a consent of another patient is not found).
    pub patient: NationalId,
    /// The consent's id.
    pub consent_id: u64,
    /// Who answers: the patient, someone acting for them, or personnel recording it.
    pub by: Actor,
}

impl ConsentAnswer {
    /// Validates an answer as sent by a caller (`by_kind`: `citizen` or `personnel`).
    pub fn parse(
        patient: &str,
        consent_id: u64,
        by_kind: &str,
        by: &str,
    ) -> Result<Self, ValidationError> {
        Ok(ConsentAnswer {
            patient: parse_national_id("patient", patient)?,
            consent_id: parse_record_id("consent_id", consent_id)?,
            by: parse_person_actor("by", by_kind, by)?,
        })
    }
}

/// How a consent was asked for, when it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRequestInfo {
    /// When the request was made (leader time).
    pub requested_at: Timestamp,
    /// When it expires unanswered.
    pub deadline: Timestamp,
}

/// A stored consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Server-assigned id: the revision that created it.
    pub id: u64,
    /// The grantor.
    pub patient: NationalId,
    /// Who is permitted.
    pub grantee: Grantee,
    /// What is permitted (sorted, unique, at least one).
    pub scopes: Vec<String>,
    /// What for.
    pub purpose: Purpose,
    /// When it is (or would be) in force.
    pub validity: Validity,
    /// Stored lifecycle status; read it through [`effective_status`].
    pub status: ConsentStatus,
    /// Set when the consent began as a request.
    pub request: Option<ConsentRequestInfo>,
    /// When it was granted or denied (leader time).
    pub decided_at: Option<Timestamp>,
    /// Who granted or denied it.
    pub decided_by: Option<Actor>,
    /// When it was withdrawn.
    pub withdrawn_at: Option<Timestamp>,
    /// Who withdrew it.
    pub withdrawn_by: Option<Actor>,
    /// When it was stored as expired (by [`apply_consent_expire_due`]).
    pub expired_at: Option<Timestamp>,
    /// When it was created (leader time).
    pub created_at: Timestamp,
    /// When it last changed (leader time).
    pub updated_at: Timestamp,
    /// Revision that created it (equals `id`).
    pub create_revision: u64,
    /// Revision that last changed it.
    pub mod_revision: u64,
}

impl Consent {
    /// True when the consent permits at `t`: granted, not expired, and `t` inside its
    /// validity period.
    pub fn permits_at(&self, t: Timestamp) -> bool {
        effective_status(self, t) == ConsentStatus::Granted && self.validity.contains(t)
    }

    /// When this version falls due for the expiry sweep: a pending request's deadline, or a
    /// grant's `valid_to`; `None` when nothing will expire it (denied, withdrawn, expired, or
    /// granted without an end).
    pub fn due_at(&self) -> Option<Timestamp> {
        match self.status {
            ConsentStatus::Requested => self.request.as_ref().map(|r| r.deadline),
            ConsentStatus::Granted => self.validity.to,
            _ => None,
        }
    }

    /// True when the consent includes any of `scopes`.
    pub fn covers_any<S: AsRef<str>>(&self, scopes: &[S]) -> bool {
        scopes
            .iter()
            .any(|s| self.scopes.iter().any(|c| c == s.as_ref()))
    }
}

/// The consent's status as of `now`: a request whose deadline has passed, or a grant whose
/// validity period has ended, reads as [`ConsentStatus::Expired`].
pub fn effective_status(consent: &Consent, now: Timestamp) -> ConsentStatus {
    match consent.status {
        ConsentStatus::Requested if consent.request.as_ref().is_none_or(|r| r.deadline <= now) => {
            ConsentStatus::Expired
        }
        ConsentStatus::Granted if consent.validity.is_over(now) => ConsentStatus::Expired,
        s => s,
    }
}

/// A new consent record from `terms`.
fn new_consent(
    terms: &ConsentTerms,
    validity: Validity,
    status: ConsentStatus,
    now: Timestamp,
    next_revision: u64,
) -> Consent {
    Consent {
        id: next_revision,
        patient: terms.patient.clone(),
        grantee: terms.grantee.clone(),
        scopes: terms.scopes.clone(),
        purpose: terms.purpose.clone(),
        validity,
        status,
        request: None,
        decided_at: None,
        decided_by: None,
        withdrawn_at: None,
        withdrawn_by: None,
        expired_at: None,
        created_at: now,
        updated_at: now,
        create_revision: next_revision,
        mod_revision: next_revision,
    }
}

/// True when `c` has the same terms as `terms` (an unset start matching any start).
fn same_terms(c: &Consent, terms: &ConsentTerms, validity: &Validity) -> bool {
    c.patient == terms.patient
        && c.grantee == terms.grantee
        && c.scopes == terms.scopes
        && c.purpose == terms.purpose
        && c.validity.to == validity.to
        && terms.validity.from.is_none_or(|f| f == c.validity.from)
}

/// Refuses a new consent for a patient who already has [`CONSENTS_PER_PATIENT_MAX`].
fn check_room(patient_consents: &[Consent]) -> Result<(), ApplyError> {
    if patient_consents.len() >= CONSENTS_PER_PATIENT_MAX {
        return Err(ApplyError::ResourceExhausted(format!(
            "the patient has {} consents, at most {CONSENTS_PER_PATIENT_MAX} allowed",
            patient_consents.len()
        )));
    }
    Ok(())
}

/// Applies a consent request. `patient_consents` are the patient's existing consents (any
/// status).
///
/// A deadline not after `now`, or a validity period already over, is
/// [`ApplyError::FailedPrecondition`]. A pending (unexpired) request with the same terms is
/// returned unchanged (`false`), so asking twice does not nag the patient twice.
pub fn apply_consent_request(
    patient_consents: &[Consent],
    cmd: &ConsentRequest,
    now: Timestamp,
    next_revision: u64,
) -> Result<(Consent, bool), ApplyError> {
    if cmd.deadline <= now {
        return Err(ApplyError::FailedPrecondition(format!(
            "deadline {} is not in the future",
            cmd.deadline.to_rfc3339()
        )));
    }
    let validity = cmd.terms.validity.resolve(now)?;
    if let Some(same) = patient_consents.iter().find(|c| {
        effective_status(c, now) == ConsentStatus::Requested && same_terms(c, &cmd.terms, &validity)
    }) {
        return Ok((same.clone(), false));
    }
    check_room(patient_consents)?;
    let mut c = new_consent(
        &cmd.terms,
        validity,
        ConsentStatus::Requested,
        now,
        next_revision,
    );
    c.request = Some(ConsentRequestInfo {
        requested_at: now,
        deadline: cmd.deadline,
    });
    Ok((c, true))
}

/// Applies a direct grant. An effective grant with the same terms is returned unchanged
/// (`false`); a validity period already over is [`ApplyError::FailedPrecondition`].
pub fn apply_consent_grant(
    patient_consents: &[Consent],
    cmd: &ConsentGrant,
    now: Timestamp,
    next_revision: u64,
) -> Result<(Consent, bool), ApplyError> {
    let validity = cmd.terms.validity.resolve(now)?;
    if let Some(same) = patient_consents.iter().find(|c| {
        effective_status(c, now) == ConsentStatus::Granted && same_terms(c, &cmd.terms, &validity)
    }) {
        return Ok((same.clone(), false));
    }
    check_room(patient_consents)?;
    let mut c = new_consent(
        &cmd.terms,
        validity,
        ConsentStatus::Granted,
        now,
        next_revision,
    );
    c.decided_at = Some(now);
    c.decided_by = Some(cmd.granted_by.clone());
    Ok((c, true))
}

/// The consent `cmd` refers to, or [`ApplyError::NotFound`] (also for another patient's).
fn find<'a>(existing: Option<&'a Consent>, cmd: &ConsentAnswer) -> Result<&'a Consent, ApplyError> {
    match existing {
        Some(c) if c.patient == cmd.patient && c.id == cmd.consent_id => Ok(c),
        _ => Err(ApplyError::NotFound(format!("consent {}", cmd.consent_id))),
    }
}

/// The error for an answer that the consent's status does not allow.
fn illegal(c: &Consent, what: &str, now: Timestamp) -> ApplyError {
    let status = effective_status(c, now);
    let detail = match (status, &c.request) {
        (ConsentStatus::Expired, Some(r)) if c.status == ConsentStatus::Requested => {
            format!(
                " (the request's deadline {} has passed)",
                r.deadline.to_rfc3339()
            )
        }
        (ConsentStatus::Expired, _) => " (its validity period has ended)".to_owned(),
        _ => String::new(),
    };
    ApplyError::FailedPrecondition(format!(
        "cannot {what} consent {}: it is {status}{detail}",
        c.id
    ))
}

/// Applies the patient's grant of a pending request. Before the deadline: `Requested` →
/// `Granted`. Granting a granted consent changes nothing (`false`). A request past its
/// deadline, a validity period already over, or a denied, expired or withdrawn consent:
/// [`ApplyError::FailedPrecondition`]. Unknown: [`ApplyError::NotFound`].
pub fn apply_consent_grant_request(
    existing: Option<&Consent>,
    cmd: &ConsentAnswer,
    now: Timestamp,
    next_revision: u64,
) -> Result<(Consent, bool), ApplyError> {
    let c = find(existing, cmd)?;
    match effective_status(c, now) {
        ConsentStatus::Granted => Ok((c.clone(), false)),
        ConsentStatus::Requested if !c.validity.is_over(now) => {
            let mark = Mark::Decided(&cmd.by);
            Ok((
                moved(c, ConsentStatus::Granted, mark, now, next_revision),
                true,
            ))
        }
        ConsentStatus::Requested => Err(ApplyError::FailedPrecondition(format!(
            "cannot grant consent {}: its validity period has already ended",
            c.id
        ))),
        _ => Err(illegal(c, "grant", now)),
    }
}

/// Applies the patient's denial of a pending request. Before the deadline: `Requested` →
/// `Denied`. Denying a denied consent changes nothing (`false`). A request past its deadline,
/// or a granted, expired or withdrawn consent: [`ApplyError::FailedPrecondition`] (withdraw a
/// granted one instead). Unknown: [`ApplyError::NotFound`].
pub fn apply_consent_deny(
    existing: Option<&Consent>,
    cmd: &ConsentAnswer,
    now: Timestamp,
    next_revision: u64,
) -> Result<(Consent, bool), ApplyError> {
    let c = find(existing, cmd)?;
    match effective_status(c, now) {
        ConsentStatus::Denied => Ok((c.clone(), false)),
        ConsentStatus::Requested => {
            let mark = Mark::Decided(&cmd.by);
            Ok((
                moved(c, ConsentStatus::Denied, mark, now, next_revision),
                true,
            ))
        }
        ConsentStatus::Granted => Err(ApplyError::FailedPrecondition(format!(
            "cannot deny consent {}: it is granted; withdraw it instead",
            c.id
        ))),
        _ => Err(illegal(c, "deny", now)),
    }
}

/// Applies the patient's withdrawal of a granted consent: `Granted` → `Withdrawn`.
/// Withdrawing a withdrawn consent changes nothing (`false`). A request (deny it instead), or
/// a denied or expired consent: [`ApplyError::FailedPrecondition`]. Unknown:
/// [`ApplyError::NotFound`].
pub fn apply_consent_withdraw(
    existing: Option<&Consent>,
    cmd: &ConsentAnswer,
    now: Timestamp,
    next_revision: u64,
) -> Result<(Consent, bool), ApplyError> {
    let c = find(existing, cmd)?;
    match effective_status(c, now) {
        ConsentStatus::Withdrawn => Ok((c.clone(), false)),
        ConsentStatus::Granted => {
            let mark = Mark::Withdrawn(&cmd.by);
            Ok((
                moved(c, ConsentStatus::Withdrawn, mark, now, next_revision),
                true,
            ))
        }
        ConsentStatus::Requested => Err(ApplyError::FailedPrecondition(format!(
            "cannot withdraw consent {}: it is a pending request; deny it instead",
            c.id
        ))),
        _ => Err(illegal(c, "withdraw", now)),
    }
}

/// Applies the periodic, leader-proposed "expire what is due" to one consent: a request past
/// its deadline, or a grant past its `valid_to`, is stored as `Expired` (`true`); anything else
/// is returned unchanged (`false`).
pub fn apply_consent_expire_due(
    consent: &Consent,
    now: Timestamp,
    next_revision: u64,
) -> (Consent, bool) {
    let due = consent.status != ConsentStatus::Expired
        && effective_status(consent, now) == ConsentStatus::Expired;
    if !due {
        return (consent.clone(), false);
    }
    let expired = moved(
        consent,
        ConsentStatus::Expired,
        Mark::Expired,
        now,
        next_revision,
    );
    (expired, true)
}

/// What a status change records besides the status.
enum Mark<'a> {
    /// Granted or denied, by whom (`decided_at`/`decided_by`).
    Decided(&'a Actor),
    /// Withdrawn, by whom (`withdrawn_at`/`withdrawn_by`).
    Withdrawn(&'a Actor),
    /// Stored as expired by the sweep (`expired_at`).
    Expired,
}

/// `c` moved to `status` at `now` as the change under `next_revision`, with `mark` recorded.
fn moved(
    c: &Consent,
    status: ConsentStatus,
    mark: Mark<'_>,
    now: Timestamp,
    next_revision: u64,
) -> Consent {
    debug_assert!(c.mod_revision < next_revision, "revisions only grow");
    let mut next = Consent {
        status,
        updated_at: now,
        mod_revision: next_revision,
        ..c.clone()
    };
    match mark {
        Mark::Decided(by) => (next.decided_at, next.decided_by) = (Some(now), Some(by.clone())),
        Mark::Withdrawn(by) => {
            (next.withdrawn_at, next.withdrawn_by) = (Some(now), Some(by.clone()));
        }
        Mark::Expired => next.expired_at = Some(now),
    }
    next
}

/// [`apply_consent_expire_due`] over many consents: the ones it changed, in the given order.
pub fn apply_consent_expire_due_all(
    consents: &[Consent],
    now: Timestamp,
    next_revision: u64,
) -> Vec<Consent> {
    consents
        .iter()
        .filter_map(|c| {
            let (c, changed) = apply_consent_expire_due(c, now, next_revision);
            changed.then_some(c)
        })
        .collect()
}

/// The earliest time at which one of `consents` will become due for expiry after `now`
/// (a pending request's deadline or a grant's `valid_to`), for scheduling the sweep.
pub fn next_expiry(consents: &[Consent], now: Timestamp) -> Option<Timestamp> {
    consents
        .iter()
        .filter_map(Consent::due_at)
        .filter(|t| *t > now)
        .min()
}

/// One entry of the consent due index: a consent version that falls due at `due_at`. Entries
/// of versions that have since changed stay in the index until their time comes; the sweep
/// then removes them without touching the consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentDue {
    /// When that version falls due.
    pub due_at: Timestamp,
    /// The grantor.
    pub patient: NationalId,
    /// The consent's id.
    pub consent_id: u64,
}

/// The leader's expiry sweep: due-index entries it read from its own state, all due by the
/// time it proposes (at most [`CONSENT_EXPIRE_PER_COMMAND_MAX`]). Applying re-checks each
/// consent against the command's stamp, so what the leader saw only picks the candidates:
/// every replica stores the same result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentExpireDue {
    /// The candidates, in due-index order.
    pub due: Vec<ConsentDue>,
}

impl ConsentExpireDue {
    /// A sweep over `due`; refuses more than [`CONSENT_EXPIRE_PER_COMMAND_MAX`] entries.
    pub fn new(due: Vec<ConsentDue>) -> Result<Self, ValidationError> {
        if due.len() > CONSENT_EXPIRE_PER_COMMAND_MAX {
            return Err(ValidationError::new(
                "due",
                format!("at most {CONSENT_EXPIRE_PER_COMMAND_MAX} entries per sweep"),
            ));
        }
        Ok(ConsentExpireDue { due })
    }
}

/// A filter for listing a patient's consents (empty fields = any).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsentFilter {
    /// Only consents to this grantee.
    pub grantee: Option<Grantee>,
    /// Only consents with this effective status.
    pub status: Option<ConsentStatus>,
}

impl ConsentFilter {
    /// Validates a filter as sent by a caller (`grantee_kind` + `grantee` both empty = any
    /// grantee; `status` empty = any).
    pub fn parse(grantee_kind: &str, grantee: &str, status: &str) -> Result<Self, ValidationError> {
        let grantee = if grantee_kind.is_empty() && grantee.is_empty() {
            None
        } else {
            Some(Grantee::parse("grantee", grantee_kind, grantee)?)
        };
        let status = if status.is_empty() {
            None
        } else {
            Some(ConsentStatus::parse("status", status)?)
        };
        Ok(ConsentFilter { grantee, status })
    }

    /// True when `c` passes the filter at `now`.
    pub fn matches(&self, c: &Consent, now: Timestamp) -> bool {
        self.grantee.as_ref().is_none_or(|g| *g == c.grantee)
            && self.status.is_none_or(|s| s == effective_status(c, now))
    }
}

/// The list query: the consents passing `filter` at `now`, oldest first.
pub fn list_consents<'a>(
    consents: &'a [Consent],
    filter: &ConsentFilter,
    now: Timestamp,
) -> Vec<&'a Consent> {
    let mut out: Vec<&Consent> = consents.iter().filter(|c| filter.matches(c, now)).collect();
    out.sort_by_key(|c| c.id);
    out
}

/// A validated check query: may `grantee` use `scope` for `patient` now?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentCheckQuery {
    /// The grantor.
    pub patient: NationalId,
    /// Who wants to use it.
    pub grantee: Grantee,
    /// The scope wanted.
    pub scope: String,
}

impl ConsentCheckQuery {
    /// Validates a check query as sent by a caller.
    pub fn parse(
        patient: &str,
        grantee_kind: &str,
        grantee: &str,
        scope: &str,
    ) -> Result<Self, ValidationError> {
        Ok(ConsentCheckQuery {
            patient: parse_national_id("patient", patient)?,
            grantee: Grantee::parse("grantee", grantee_kind, grantee)?,
            scope: parse_scope("scope", scope)?,
        })
    }
}

/// The answer to a consent check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentCheck {
    /// True when at least one consent permits.
    pub allowed: bool,
    /// The ids of the consents that permit (sorted).
    pub consent_ids: Vec<u64>,
    /// Why, for a human.
    pub reason: String,
}

/// The check query: the patient's consents that permit `query.grantee` to use `query.scope`
/// at `now`.
pub fn check_consent(
    consents: &[Consent],
    query: &ConsentCheckQuery,
    now: Timestamp,
) -> ConsentCheck {
    let mut ids: Vec<u64> = consents
        .iter()
        .filter(|c| {
            c.patient == query.patient
                && c.grantee == query.grantee
                && c.covers_any(&[query.scope.as_str()])
                && c.permits_at(now)
        })
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    let allowed = !ids.is_empty();
    let reason = if allowed {
        format!("granted by consent {ids:?}")
    } else {
        format!(
            "no granted consent in force for {} {} and scope {}",
            query.grantee.kind(),
            query.grantee.id_text(),
            query.scope
        )
    };
    ConsentCheck {
        allowed,
        consent_ids: ids,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::fixtures::{day, ok, org, person};

    fn scopes() -> Vec<String> {
        vec!["kjernejournal".into(), "patient/*.read".into()]
    }

    fn input<'a>(p: &'a str, scopes: &'a [String]) -> ConsentInput<'a> {
        ConsentInput {
            patient: p,
            grantee_kind: "client",
            grantee: "helseapp",
            scopes,
            purpose: "Treatment",
            ..Default::default()
        }
    }

    fn request(p: &NationalId, deadline_day: i64) -> ConsentRequest {
        let s = scopes();
        let deadline = day(deadline_day).to_rfc3339();
        ok(ConsentRequest::parse(&input(p.as_str(), &s), &deadline))
    }

    fn answer(p: &NationalId, id: u64) -> ConsentAnswer {
        ok(ConsentAnswer::parse(p.as_str(), id, "citizen", p.as_str()))
    }

    fn requested(p: &NationalId) -> Consent {
        ok(apply_consent_request(&[], &request(p, 10), day(1), 5)).0
    }

    #[test]
    fn request_then_grant_then_withdraw() {
        let p = person(0);
        let (c, changed) = ok(apply_consent_request(&[], &request(&p, 10), day(1), 5));
        assert!(changed);
        assert_eq!((c.id, c.status), (5, ConsentStatus::Requested));
        assert_eq!(c.purpose.as_str(), "treatment");
        assert!(!c.permits_at(day(2)));

        let (g, changed) = ok(apply_consent_grant_request(
            Some(&c),
            &answer(&p, 5),
            day(2),
            6,
        ));
        assert!(changed);
        assert_eq!(g.status, ConsentStatus::Granted);
        assert_eq!((g.decided_at, g.mod_revision), (Some(day(2)), 6));
        assert!(g.permits_at(day(3)));
        // Granting again: no change, even after the request's deadline.
        let (again, changed) = ok(apply_consent_grant_request(
            Some(&g),
            &answer(&p, 5),
            day(20),
            7,
        ));
        assert!(!changed);
        assert_eq!(again, g);

        let (w, changed) = ok(apply_consent_withdraw(Some(&g), &answer(&p, 5), day(3), 8));
        assert!(changed);
        assert_eq!(w.status, ConsentStatus::Withdrawn);
        assert!(!w.permits_at(day(4)));
        let (w2, changed) = ok(apply_consent_withdraw(Some(&w), &answer(&p, 5), day(4), 9));
        assert!(!changed);
        assert_eq!(w2, w);
    }

    #[test]
    fn request_then_deny() {
        let p = person(0);
        let c = requested(&p);
        let (d, changed) = ok(apply_consent_deny(Some(&c), &answer(&p, 5), day(2), 6));
        assert!(changed);
        assert_eq!(d.status, ConsentStatus::Denied);
        let (d2, changed) = ok(apply_consent_deny(Some(&d), &answer(&p, 5), day(3), 7));
        assert!(!changed);
        assert_eq!(d2, d);
        assert!(!d.permits_at(day(3)));
    }

    #[test]
    fn deadline_is_decided_by_leader_time() {
        let p = person(0);
        let c = requested(&p);
        assert_eq!(effective_status(&c, day(9)), ConsentStatus::Requested);
        assert_eq!(effective_status(&c, day(10)), ConsentStatus::Expired);
        for f in [
            apply_consent_grant_request,
            apply_consent_deny,
            apply_consent_withdraw,
        ] {
            match f(Some(&c), &answer(&p, 5), day(10), 6) {
                Err(ApplyError::FailedPrecondition(m)) => assert!(m.contains("expired"), "{m}"),
                other => panic!("expected FailedPrecondition, got {other:?}"),
            }
        }
        // The sweep stores what reads already show.
        let (e, changed) = apply_consent_expire_due(&c, day(9), 6);
        assert!(!changed);
        assert_eq!(e, c);
        let (e, changed) = apply_consent_expire_due(&c, day(10), 6);
        assert!(changed);
        assert_eq!(
            (e.status, e.expired_at),
            (ConsentStatus::Expired, Some(day(10)))
        );
        let (e2, changed) = apply_consent_expire_due(&e, day(11), 7);
        assert!(!changed);
        assert_eq!(e2, e);
        assert_eq!(next_expiry(std::slice::from_ref(&c), day(1)), Some(day(10)));
        assert_eq!(next_expiry(std::slice::from_ref(&e), day(1)), None);
        // A deadline in the past is refused up front.
        assert!(matches!(
            apply_consent_request(&[], &request(&p, 1), day(1), 5),
            Err(ApplyError::FailedPrecondition(_))
        ));
    }

    #[test]
    fn granted_consent_expires_at_valid_to() {
        let p = person(0);
        let s = scopes();
        let mut i = input(p.as_str(), &s);
        i.valid_to = "2026-01-05T00:00:00Z";
        let g = ok(ConsentGrant::parse(&i, "citizen", p.as_str()));
        let (c, changed) = ok(apply_consent_grant(&[], &g, day(1), 3));
        assert!(changed);
        assert!(c.permits_at(day(4)));
        assert!(!c.permits_at(day(5)));
        assert_eq!(effective_status(&c, day(5)), ConsentStatus::Expired);
        assert!(matches!(
            apply_consent_withdraw(Some(&c), &answer(&p, 3), day(6), 4),
            Err(ApplyError::FailedPrecondition(_))
        ));
        let swept = apply_consent_expire_due_all(std::slice::from_ref(&c), day(5), 4);
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].status, ConsentStatus::Expired);
        // A future start: granted, but not yet permitting.
        let mut i = input(p.as_str(), &s);
        i.valid_from = "2026-01-03T00:00:00Z";
        let g = ok(ConsentGrant::parse(&i, "citizen", p.as_str()));
        let (c, _) = ok(apply_consent_grant(&[], &g, day(1), 3));
        assert_eq!(effective_status(&c, day(2)), ConsentStatus::Granted);
        assert!(!c.permits_at(day(2)));
        assert!(c.permits_at(day(3)));
    }

    #[test]
    fn illegal_transitions() {
        let p = person(0);
        let c = requested(&p);
        let (g, _) = ok(apply_consent_grant_request(
            Some(&c),
            &answer(&p, 5),
            day(2),
            6,
        ));
        let (d, _) = ok(apply_consent_deny(Some(&c), &answer(&p, 5), day(2), 6));
        let (w, _) = ok(apply_consent_withdraw(Some(&g), &answer(&p, 5), day(3), 7));
        let (e, _) = apply_consent_expire_due(&c, day(11), 6);
        type Apply = fn(
            Option<&Consent>,
            &ConsentAnswer,
            Timestamp,
            u64,
        ) -> Result<(Consent, bool), ApplyError>;
        let grant: Apply = apply_consent_grant_request;
        let deny: Apply = apply_consent_deny;
        let withdraw: Apply = apply_consent_withdraw;
        let cases: Vec<(&str, &Consent, Apply)> = vec![
            ("withdraw a request", &c, withdraw),
            ("deny a grant", &g, deny),
            ("grant a denial", &d, grant),
            ("withdraw a denial", &d, withdraw),
            ("grant a withdrawal", &w, grant),
            ("deny a withdrawal", &w, deny),
            ("grant an expired request", &e, grant),
            ("deny an expired request", &e, deny),
            ("withdraw an expired request", &e, withdraw),
        ];
        for (what, consent, f) in cases {
            match f(Some(consent), &answer(&p, 5), day(4), 20) {
                Err(ApplyError::FailedPrecondition(_)) => {}
                other => panic!("{what}: expected FailedPrecondition, got {other:?}"),
            }
        }
    }

    #[test]
    fn not_found() {
        let p = person(0);
        let c = requested(&p);
        let other = person(1);
        for (existing, ans) in [
            (None, answer(&p, 5)),
            (Some(&c), answer(&p, 6)),
            (Some(&c), answer(&other, 5)),
        ] {
            assert!(matches!(
                apply_consent_grant_request(existing, &ans, day(2), 9),
                Err(ApplyError::NotFound(_))
            ));
            assert!(matches!(
                apply_consent_deny(existing, &ans, day(2), 9),
                Err(ApplyError::NotFound(_))
            ));
            assert!(matches!(
                apply_consent_withdraw(existing, &ans, day(2), 9),
                Err(ApplyError::NotFound(_))
            ));
        }
    }

    #[test]
    fn repeats_and_limits() {
        let p = person(0);
        let c = requested(&p);
        let (same, changed) = ok(apply_consent_request(
            std::slice::from_ref(&c),
            &request(&p, 10),
            day(2),
            6,
        ));
        assert!(!changed);
        assert_eq!(same, c);
        let s = scopes();
        let g = ok(ConsentGrant::parse(
            &input(p.as_str(), &s),
            "citizen",
            p.as_str(),
        ));
        let (gc, _) = ok(apply_consent_grant(&[], &g, day(1), 7));
        let (same, changed) = ok(apply_consent_grant(
            std::slice::from_ref(&gc),
            &g,
            day(2),
            8,
        ));
        assert!(!changed);
        assert_eq!(same, gc);
        let many = vec![c.clone(); CONSENTS_PER_PATIENT_MAX];
        let other = ok(ConsentGrant::parse(
            &ConsentInput {
                grantee: "other-app",
                ..input(p.as_str(), &s)
            },
            "citizen",
            p.as_str(),
        ));
        assert!(matches!(
            apply_consent_grant(&many, &other, day(1), 9),
            Err(ApplyError::ResourceExhausted(_))
        ));
    }

    #[test]
    fn list_and_check() {
        let p = person(0);
        let s = scopes();
        let c = requested(&p);
        let g = ok(ConsentGrant::parse(
            &input(p.as_str(), &s),
            "citizen",
            p.as_str(),
        ));
        let (gc, _) = ok(apply_consent_grant(&[], &g, day(1), 7));
        let all = vec![gc.clone(), c.clone()];
        let f = ok(ConsentFilter::parse("", "", "granted"));
        assert_eq!(list_consents(&all, &f, day(2)), vec![&gc]);
        let f = ok(ConsentFilter::parse("client", "helseapp", ""));
        assert_eq!(list_consents(&all, &f, day(2)), vec![&c, &gc]);
        let f = ok(ConsentFilter::parse("", "", "expired"));
        assert_eq!(list_consents(&all, &f, day(11)), vec![&c]);

        let q = ok(ConsentCheckQuery::parse(
            p.as_str(),
            "client",
            "helseapp",
            "kjernejournal",
        ));
        let r = check_consent(&all, &q, day(2));
        assert!(r.allowed);
        assert_eq!(r.consent_ids, vec![7]);
        let q = ok(ConsentCheckQuery::parse(
            p.as_str(),
            "client",
            "helseapp",
            "e-resept",
        ));
        assert!(!check_consent(&all, &q, day(2)).allowed);
        let o = org(0);
        let q = ok(ConsentCheckQuery::parse(
            p.as_str(),
            "organisation",
            o.as_str(),
            "kjernejournal",
        ));
        assert!(!check_consent(&all, &q, day(2)).allowed);
    }

    #[test]
    fn bad_input_names_the_field() {
        let p = person(0);
        let s = scopes();
        let base = input(p.as_str(), &s);
        let too_many: Vec<String> = (0..=SCOPES_PER_CONSENT_MAX)
            .map(|i| format!("s{i}"))
            .collect();
        let bad_scope = vec!["ok".to_owned(), "has space".to_owned()];
        let cases: Vec<(ConsentInput<'_>, &str)> = vec![
            (
                ConsentInput {
                    patient: "0101",
                    ..base
                },
                "patient",
            ),
            (
                ConsentInput {
                    grantee_kind: "app",
                    ..base
                },
                "grantee_kind",
            ),
            (
                ConsentInput {
                    grantee: "",
                    ..base
                },
                "grantee",
            ),
            (
                ConsentInput {
                    grantee_kind: "organisation",
                    grantee: "123",
                    ..base
                },
                "grantee",
            ),
            (
                ConsentInput {
                    grantee_kind: "personnel",
                    grantee: "x",
                    ..base
                },
                "grantee",
            ),
            (
                ConsentInput {
                    scopes: &[],
                    ..base
                },
                "scopes",
            ),
            (
                ConsentInput {
                    scopes: &too_many,
                    ..base
                },
                "scopes",
            ),
            (
                ConsentInput {
                    scopes: &bad_scope,
                    ..base
                },
                "scopes[1]",
            ),
            (
                ConsentInput {
                    purpose: "",
                    ..base
                },
                "purpose",
            ),
            (
                ConsentInput {
                    purpose: "for care",
                    ..base
                },
                "purpose",
            ),
            (
                ConsentInput {
                    valid_to: "soon",
                    ..base
                },
                "valid_to",
            ),
            (
                ConsentInput {
                    valid_from: "2026-03-01T00:00:00Z",
                    valid_to: "2026-02-01T00:00:00Z",
                    ..base
                },
                "valid_to",
            ),
        ];
        for (i, field) in cases {
            match ConsentGrant::parse(&i, "citizen", p.as_str()) {
                Err(e) => assert_eq!(e.field, field, "{e}"),
                Ok(_) => panic!("accepted bad input for {field}"),
            }
        }
        let e = ConsentRequest::parse(&base, "").err();
        assert_eq!(e.map(|e| e.field), Some("deadline".to_owned()));
        let e = ConsentRequest::parse(&base, "2026-02-30T00:00:00Z").err();
        assert_eq!(e.map(|e| e.field), Some("deadline".to_owned()));
        let e = ConsentGrant::parse(&base, "client", "app").err();
        assert_eq!(e.map(|e| e.field), Some("granted_by_kind".to_owned()));
        let e = ConsentAnswer::parse(p.as_str(), 0, "citizen", p.as_str()).err();
        assert_eq!(e.map(|e| e.field), Some("consent_id".to_owned()));
        let e = ConsentFilter::parse("", "", "pending").err();
        assert_eq!(e.map(|e| e.field), Some("status".to_owned()));
        let e = ConsentCheckQuery::parse(p.as_str(), "client", "a", "").err();
        assert_eq!(e.map(|e| e.field), Some("scope".to_owned()));
    }
}
