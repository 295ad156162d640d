//! How the record families print: stable JSON views (`--json`; tests and tooling rely on
//! them) and human tables, plus the small argument helpers the record commands share
//! (`--by kind:id` actors, enum flags, read options).

use anyhow::bail;
use kartotek_proto::v1;
use serde::Serialize;

use crate::output::{HeaderView, table};

/// The lower-case text of a proto enum number (`BLOCK_LEVEL_ABSOLUTE` → `absolute`).
macro_rules! enum_str {
    ($ty:ty, $prefix:literal, $n:expr) => {
        match <$ty>::try_from($n) {
            Ok(e) => e
                .as_str_name()
                .strip_prefix($prefix)
                .unwrap_or("unspecified")
                .to_ascii_lowercase(),
            Err(_) => format!("unknown({})", $n),
        }
    };
}

/// The proto number of an enum flag's text (`absolute` → `BLOCK_LEVEL_ABSOLUTE`); an
/// unknown text is an error naming the flag and the known values.
macro_rules! enum_flag {
    ($ty:ty, $prefix:literal, $flag:literal, $text:expr, [$($known:literal),+]) => {{
        let text: &str = $text;
        match <$ty>::from_str_name(&format!(
            "{}{}",
            $prefix,
            text.to_ascii_uppercase().replace('-', "_")
        )) {
            Some(e) if i32::from(e) != 0 => Ok(i32::from(e)),
            _ => Err(anyhow::anyhow!(
                "{}: unknown value `{}`; expected one of: {}",
                $flag,
                text,
                [$($known),+].join(", ")
            )),
        }
    }};
}
pub(crate) use enum_flag;

/// Parses `--by kind:id` (kind: personnel, citizen, client or system).
pub fn parse_actor(flag: &str, s: &str) -> anyhow::Result<v1::Actor> {
    let Some((kind, id)) = s.split_once(':') else {
        bail!("{flag}: expected kind:id, e.g. citizen:01017012345 or personnel:1234567");
    };
    let kind = enum_flag!(
        v1::ActorKind,
        "ACTOR_KIND_",
        "--by",
        kind,
        ["personnel", "citizen", "client", "system"]
    )?;
    Ok(v1::Actor {
        kind,
        id: id.to_owned(),
    })
}

/// `kind:id` of an actor.
pub fn actor_text(a: Option<&v1::Actor>) -> String {
    match a {
        Some(a) => format!(
            "{}:{}",
            enum_str!(v1::ActorKind, "ACTOR_KIND_", a.kind),
            a.id
        ),
        None => String::new(),
    }
}

/// Prints the answer of a check ("may A do B?"): `allowed`, the ids of the records that
/// decided it (as `ids_key` in JSON) and the reason.
pub fn print_check(
    cli: &crate::GlobalArgs,
    header: Option<&v1::ResponseHeader>,
    allowed: bool,
    ids_key: &str,
    ids: &[u64],
    reason: &str,
) -> anyhow::Result<()> {
    if cli.json {
        let mut view = serde_json::json!({
            "header": HeaderView::from(header),
            "allowed": allowed,
            "reason": reason,
        });
        view[ids_key] = serde_json::json!(ids);
        return crate::output::print_json(&view);
    }
    println!(
        "{}: {reason}",
        if allowed { "allowed" } else { "not allowed" }
    );
    Ok(())
}

/// Prints a write's answer: with `--json` a [`WriteView`] with the record under `key`,
/// else the record with `table`.
pub fn print_write_answer<V: Serialize>(
    cli: &crate::GlobalArgs,
    header: Option<&v1::ResponseHeader>,
    changed: bool,
    key: &str,
    record: Option<V>,
    table: fn(&[V]),
) -> anyhow::Result<()> {
    if cli.json {
        let mut keyed = serde_json::Map::new();
        keyed.insert(key.to_owned(), serde_json::to_value(&record)?);
        return crate::output::print_json(&WriteView {
            header: HeaderView::from(header),
            changed,
            record: keyed,
        });
    }
    table(&record.into_iter().collect::<Vec<_>>());
    Ok(())
}

/// A write's answer: header, whether it changed anything, and the record.
#[derive(Debug, Serialize)]
pub struct WriteView<T> {
    /// Where and when.
    pub header: HeaderView,
    /// False for an idempotent repeat.
    pub changed: bool,
    /// The record as stored.
    #[serde(flatten)]
    pub record: T,
}

/// A block as printed.
#[derive(Debug, Serialize)]
pub struct BlockView {
    /// Id.
    pub id: u64,
    /// Patient national id.
    pub patient: String,
    /// personnel / group / organisation.
    pub target_kind: String,
    /// HPR number, group id or org number.
    pub target: String,
    /// overridable / absolute.
    pub level: String,
    /// National service (empty: every system under the patient records act).
    pub scope_service: String,
    /// Element of the service.
    pub scope_element: String,
    /// RFC 3339.
    pub valid_from: String,
    /// RFC 3339 (empty: until revoked).
    pub valid_to: String,
    /// Reason.
    pub reason: String,
    /// kind:id.
    pub registered_by: String,
    /// active / revoked.
    pub status: String,
    /// in_force / not_yet_valid / expired / revoked.
    pub state: String,
    /// Revision of the last change.
    pub mod_revision: u64,
}

impl From<&v1::Block> for BlockView {
    fn from(b: &v1::Block) -> Self {
        BlockView {
            id: b.id,
            patient: b.patient.clone(),
            target_kind: enum_str!(v1::BlockTargetKind, "BLOCK_TARGET_KIND_", b.target_kind),
            target: b.target.clone(),
            level: enum_str!(v1::BlockLevel, "BLOCK_LEVEL_", b.level),
            scope_service: b.scope_service.clone(),
            scope_element: b.scope_element.clone(),
            valid_from: b.valid_from.clone(),
            valid_to: b.valid_to.clone(),
            reason: b.reason.clone(),
            registered_by: actor_text(b.registered_by.as_ref()),
            status: enum_str!(v1::BlockStatus, "BLOCK_STATUS_", b.status),
            state: b.state.clone(),
            mod_revision: b.mod_revision,
        }
    }
}

/// Prints blocks as a table.
pub fn print_blocks(blocks: &[BlockView]) {
    let mut t = table(&[
        "ID",
        "TARGET",
        "LEVEL",
        "SCOPE",
        "VALID FROM",
        "VALID TO",
        "STATE",
        "REASON",
    ]);
    for b in blocks {
        let scope = match (b.scope_service.as_str(), b.scope_element.as_str()) {
            ("", _) => "all records".to_owned(),
            (s, "") => s.to_owned(),
            (s, e) => format!("{s}/{e}"),
        };
        t.add_row(vec![
            b.id.to_string(),
            format!("{}:{}", b.target_kind, b.target),
            b.level.clone(),
            scope,
            b.valid_from.clone(),
            b.valid_to.clone(),
            b.state.clone(),
            b.reason.clone(),
        ]);
    }
    println!("{t}");
}

/// An obligation as printed.
#[derive(Debug, Serialize)]
pub struct ObligationView {
    /// log_with_purpose, notify_patient, ...
    pub kind: String,
    /// Scopes or elements, for the kinds that carry them.
    pub values: Vec<String>,
}

/// An access decision as printed.
#[derive(Debug, Serialize)]
pub struct DecisionView {
    /// Where and when.
    pub header: HeaderView,
    /// permit / deny / permit_by_override.
    pub effect: String,
    /// Whether an emergency override could pass the deny.
    pub override_possible: bool,
    /// Matching blocks.
    pub matching_blocks: Vec<u64>,
    /// Matching consents.
    pub matching_consents: Vec<u64>,
    /// Matching reservations.
    pub matching_reservations: Vec<u64>,
    /// Matching representations.
    pub matching_representations: Vec<u64>,
    /// Why.
    pub reasons: Vec<String>,
    /// What the caller must do.
    pub obligations: Vec<ObligationView>,
    /// The time decided for.
    pub decided_for: String,
    /// The queued patient notification (0: none).
    pub notification_id: u64,
}

impl From<&v1::AccessDecisionResponse> for DecisionView {
    fn from(d: &v1::AccessDecisionResponse) -> Self {
        DecisionView {
            header: HeaderView::from(d.header.as_ref()),
            effect: enum_str!(v1::AccessEffect, "ACCESS_EFFECT_", d.effect),
            override_possible: d.override_possible,
            matching_blocks: d.matching_block_ids.clone(),
            matching_consents: d.matching_consent_ids.clone(),
            matching_reservations: d.matching_reservation_ids.clone(),
            matching_representations: d.matching_representation_ids.clone(),
            reasons: d.reasons.clone(),
            obligations: d
                .obligations
                .iter()
                .map(|o| ObligationView {
                    kind: enum_str!(v1::ObligationKind, "OBLIGATION_KIND_", o.kind),
                    values: o.values.clone(),
                })
                .collect(),
            decided_for: d.decided_for.clone(),
            notification_id: d.notification_id,
        }
    }
}

/// A patient notification as printed.
#[derive(Debug, Serialize)]
pub struct NotificationView {
    /// Id.
    pub id: u64,
    /// Patient national id.
    pub patient: String,
    /// HPR number of who overrode.
    pub personnel: String,
    /// Their organisation.
    pub org: String,
    /// Service accessed.
    pub service: String,
    /// Purpose given.
    pub purpose: String,
    /// When the access happened.
    pub access_time: String,
    /// Overridden blocks.
    pub overridden_blocks: Vec<u64>,
    /// The justification.
    pub justification: String,
    /// One line for the patient.
    pub summary: String,
    /// When queued.
    pub created_at: String,
    /// When acknowledged (empty: pending).
    pub acknowledged_at: String,
    /// pending / acknowledged.
    pub status: String,
}

impl From<&v1::PatientNotification> for NotificationView {
    fn from(n: &v1::PatientNotification) -> Self {
        NotificationView {
            id: n.id,
            patient: n.patient.clone(),
            personnel: n.personnel.clone(),
            org: n.org.clone(),
            service: n.service.clone(),
            purpose: n.purpose.clone(),
            access_time: n.access_time.clone(),
            overridden_blocks: n.overridden_block_ids.clone(),
            justification: n.justification.clone(),
            summary: n.summary.clone(),
            created_at: n.created_at.clone(),
            acknowledged_at: n.acknowledged_at.clone(),
            status: if n.acknowledged_at.is_empty() {
                "pending".into()
            } else {
                "acknowledged".into()
            },
        }
    }
}

/// Prints notifications as a table.
pub fn print_notifications(items: &[NotificationView]) {
    let mut t = table(&[
        "ID",
        "STATUS",
        "WHEN",
        "PERSONNEL",
        "ORG",
        "SERVICE",
        "JUSTIFICATION",
    ]);
    for n in items {
        t.add_row(vec![
            n.id.to_string(),
            n.status.clone(),
            n.access_time.clone(),
            n.personnel.clone(),
            n.org.clone(),
            n.service.clone(),
            n.justification.clone(),
        ]);
    }
    println!("{t}");
}

/// A consent as printed.
#[derive(Debug, Serialize)]
pub struct ConsentView {
    /// Id.
    pub id: u64,
    /// Patient national id.
    pub patient: String,
    /// client / organisation / personnel.
    pub grantee_kind: String,
    /// Grantee id.
    pub grantee: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Purpose.
    pub purpose: String,
    /// RFC 3339.
    pub valid_from: String,
    /// RFC 3339.
    pub valid_to: String,
    /// Effective status.
    pub status: String,
    /// Request deadline (requests only).
    pub deadline: String,
    /// Revision of the last change.
    pub mod_revision: u64,
}

impl From<&v1::Consent> for ConsentView {
    fn from(c: &v1::Consent) -> Self {
        ConsentView {
            id: c.id,
            patient: c.patient.clone(),
            grantee_kind: enum_str!(v1::GranteeKind, "GRANTEE_KIND_", c.grantee_kind),
            grantee: c.grantee.clone(),
            scopes: c.scopes.clone(),
            purpose: c.purpose.clone(),
            valid_from: c.valid_from.clone(),
            valid_to: c.valid_to.clone(),
            status: enum_str!(v1::ConsentStatus, "CONSENT_STATUS_", c.status),
            deadline: c.deadline.clone(),
            mod_revision: c.mod_revision,
        }
    }
}

/// Prints consents as a table.
pub fn print_consents(items: &[ConsentView]) {
    let mut t = table(&[
        "ID",
        "GRANTEE",
        "SCOPES",
        "PURPOSE",
        "STATUS",
        "VALID FROM",
        "VALID TO",
        "DEADLINE",
    ]);
    for c in items {
        t.add_row(vec![
            c.id.to_string(),
            format!("{}:{}", c.grantee_kind, c.grantee),
            c.scopes.join(","),
            c.purpose.clone(),
            c.status.clone(),
            c.valid_from.clone(),
            c.valid_to.clone(),
            c.deadline.clone(),
        ]);
    }
    println!("{t}");
}

/// A reservation as printed.
#[derive(Debug, Serialize)]
pub struct ReservationView {
    /// Id.
    pub id: u64,
    /// Patient national id.
    pub patient: String,
    /// National service.
    pub service: String,
    /// Reason.
    pub reason: String,
    /// active / withdrawn.
    pub status: String,
    /// When reserved.
    pub reserved_at: String,
    /// Revision of the last change.
    pub mod_revision: u64,
}

impl From<&v1::Reservation> for ReservationView {
    fn from(r: &v1::Reservation) -> Self {
        ReservationView {
            id: r.id,
            patient: r.patient.clone(),
            service: r.service.clone(),
            reason: r.reason.clone(),
            status: enum_str!(v1::ReservationStatus, "RESERVATION_STATUS_", r.status),
            reserved_at: r.reserved_at.clone(),
            mod_revision: r.mod_revision,
        }
    }
}

/// Prints reservations as a table.
pub fn print_reservations(items: &[ReservationView]) {
    let mut t = table(&["ID", "SERVICE", "STATUS", "RESERVED AT", "REASON"]);
    for r in items {
        t.add_row(vec![
            r.id.to_string(),
            r.service.clone(),
            r.status.clone(),
            r.reserved_at.clone(),
            r.reason.clone(),
        ]);
    }
    println!("{t}");
}

/// A representation as printed.
#[derive(Debug, Serialize)]
pub struct RepresentationView {
    /// Id.
    pub id: u64,
    /// Who may act.
    pub representative: String,
    /// For whom.
    pub represented: String,
    /// power_of_attorney / parental_responsibility / guardianship / not_consent_competent.
    pub kind: String,
    /// Areas as granted.
    pub areas: Vec<String>,
    /// Areas given at the time asked about (after the parental age rules).
    pub effective_areas: Vec<String>,
    /// RFC 3339.
    pub valid_from: String,
    /// RFC 3339.
    pub valid_to: String,
    /// patient_granted / population_register.
    pub source: String,
    /// active / revoked.
    pub status: String,
    /// Revision of the last change.
    pub mod_revision: u64,
}

impl From<&v1::Representation> for RepresentationView {
    fn from(r: &v1::Representation) -> Self {
        RepresentationView {
            id: r.id,
            representative: r.representative.clone(),
            represented: r.represented.clone(),
            kind: enum_str!(v1::RepresentationKind, "REPRESENTATION_KIND_", r.kind),
            areas: r.areas.clone(),
            effective_areas: r.effective_areas.clone(),
            valid_from: r.valid_from.clone(),
            valid_to: r.valid_to.clone(),
            source: enum_str!(v1::RepresentationSource, "REPRESENTATION_SOURCE_", r.source),
            status: enum_str!(v1::RepresentationStatus, "REPRESENTATION_STATUS_", r.status),
            mod_revision: r.mod_revision,
        }
    }
}

/// Prints representations as a table.
pub fn print_representations(items: &[RepresentationView]) {
    let mut t = table(&[
        "ID",
        "REPRESENTATIVE",
        "REPRESENTED",
        "KIND",
        "AREAS",
        "EFFECTIVE",
        "STATUS",
        "VALID TO",
    ]);
    for r in items {
        t.add_row(vec![
            r.id.to_string(),
            r.representative.clone(),
            r.represented.clone(),
            r.kind.clone(),
            r.areas.join(","),
            r.effective_areas.join(","),
            r.status.clone(),
            r.valid_to.clone(),
        ]);
    }
    println!("{t}");
}

/// A catalog entry as printed.
#[derive(Debug, Serialize)]
pub struct CatalogEntryView {
    /// Id.
    pub id: String,
    /// Owner org number.
    pub owner: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Base URL.
    pub base_url: String,
    /// Spec URL.
    pub spec_url: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// personnel / citizen.
    pub audience: String,
    /// Whether access needs consent.
    pub requires_consent: bool,
    /// Version.
    pub version: String,
    /// draft / published / deprecated / retired.
    pub lifecycle: String,
    /// Revision of the last change.
    pub mod_revision: u64,
}

impl From<&v1::CatalogEntry> for CatalogEntryView {
    fn from(e: &v1::CatalogEntry) -> Self {
        CatalogEntryView {
            id: e.id.clone(),
            owner: e.owner.clone(),
            title: e.title.clone(),
            description: e.description.clone(),
            base_url: e.base_url.clone(),
            spec_url: e.spec_url.clone(),
            scopes: e.scopes.clone(),
            audience: enum_str!(v1::Audience, "AUDIENCE_", e.audience),
            requires_consent: e.requires_consent,
            version: e.version.clone(),
            lifecycle: enum_str!(v1::CatalogLifecycle, "CATALOG_LIFECYCLE_", e.lifecycle),
            mod_revision: e.mod_revision,
        }
    }
}

/// Prints catalog entries as a table.
pub fn print_catalog(items: &[CatalogEntryView]) {
    let mut t = table(&[
        "ID",
        "TITLE",
        "OWNER",
        "AUDIENCE",
        "LIFECYCLE",
        "CONSENT",
        "VERSION",
        "BASE URL",
    ]);
    for e in items {
        t.add_row(vec![
            e.id.clone(),
            e.title.clone(),
            e.owner.clone(),
            e.audience.clone(),
            e.lifecycle.clone(),
            if e.requires_consent { "yes" } else { "no" }.to_owned(),
            e.version.clone(),
            e.base_url.clone(),
        ]);
    }
    println!("{t}");
}

/// A token-issuance client as printed.
#[derive(Debug, Serialize)]
pub struct ClientView {
    /// Client id.
    pub client_id: String,
    /// Owning org number.
    pub org: String,
    /// Number of public keys.
    pub public_keys: usize,
    /// Allowed scopes.
    pub allowed_scopes: Vec<String>,
    /// Approved third-party vendor.
    pub approved_third_party: bool,
    /// active / disabled.
    pub status: String,
    /// Revision of the last change.
    pub mod_revision: u64,
}

impl From<&v1::RegisteredClient> for ClientView {
    fn from(c: &v1::RegisteredClient) -> Self {
        ClientView {
            client_id: c.client_id.clone(),
            org: c.org.clone(),
            public_keys: c.public_keys.len(),
            allowed_scopes: c.allowed_scopes.clone(),
            approved_third_party: c.approved_third_party,
            status: enum_str!(v1::ClientStatus, "CLIENT_STATUS_", c.status),
            mod_revision: c.mod_revision,
        }
    }
}

/// Prints clients as a table.
pub fn print_clients(items: &[ClientView]) {
    let mut t = table(&["CLIENT", "ORG", "KEYS", "SCOPES", "THIRD PARTY", "STATUS"]);
    for c in items {
        t.add_row(vec![
            c.client_id.clone(),
            c.org.clone(),
            c.public_keys.to_string(),
            c.allowed_scopes.join(","),
            c.approved_third_party.to_string(),
            c.status.clone(),
        ]);
    }
    println!("{t}");
}
