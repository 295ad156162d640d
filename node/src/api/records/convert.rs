//! Conversions between the record families' domain values and their `kartotek.v1` messages,
//! and the enum rules of the API edge: a proto enum travels as its number; the server maps it
//! to the domain's text form (`BLOCK_LEVEL_ABSOLUTE` → `absolute`) and refuses
//! `_UNSPECIFIED` and unknown numbers with a field-level INVALID_ARGUMENT.

use kartotek_domain::access::{AccessDecision, Obligation};
use kartotek_domain::block::Block;
use kartotek_domain::consent::effective_status;
use kartotek_domain::notification::PatientNotification;
use kartotek_domain::{
    Actor, CatalogEntry, ClientRecord, Consent, Representation, RepresentationPolicy, Reservation,
    Timestamp, ValidationError,
};
use kartotek_proto::v1;

/// The domain text of a proto enum value whose generated name is `name` (`None`: unknown
/// number). `_UNSPECIFIED` and unknown numbers are refused, naming `field`.
pub fn text_of(
    field: &str,
    value: i32,
    name: Option<&'static str>,
    prefix: &str,
) -> Result<String, ValidationError> {
    match name {
        None => Err(ValidationError::new(
            field,
            format!("unknown enum value {value}"),
        )),
        Some(n) if n.ends_with("_UNSPECIFIED") => Err(ValidationError::new(field, "must be set")),
        Some(n) => Ok(n.strip_prefix(prefix).unwrap_or(n).to_ascii_lowercase()),
    }
}

/// Like [`text_of`], but `_UNSPECIFIED` (0) means "not set" (the empty string), for filters
/// and optional fields.
pub fn optional_text_of(
    field: &str,
    value: i32,
    name: Option<&'static str>,
    prefix: &str,
) -> Result<String, ValidationError> {
    if value == 0 {
        Ok(String::new())
    } else {
        text_of(field, value, name, prefix)
    }
}

/// The domain text of a proto enum field: `enum_text!(field, value, Type, "PREFIX_")`.
macro_rules! enum_text {
    ($field:expr, $value:expr, $ty:ty, $prefix:literal) => {
        $crate::api::records::convert::text_of(
            $field,
            $value,
            <$ty>::try_from($value).ok().map(|e| e.as_str_name()),
            $prefix,
        )
    };
}
pub(crate) use enum_text;

/// Like [`enum_text!`], with 0 meaning "not set" (empty text).
macro_rules! optional_enum_text {
    ($field:expr, $value:expr, $ty:ty, $prefix:literal) => {
        $crate::api::records::convert::optional_text_of(
            $field,
            $value,
            <$ty>::try_from($value).ok().map(|e| e.as_str_name()),
            $prefix,
        )
    };
}
pub(crate) use optional_enum_text;

/// The proto enum number of a domain text form (`absolute` → `BLOCK_LEVEL_ABSOLUTE`).
macro_rules! enum_number {
    ($ty:ty, $prefix:literal, $text:expr) => {
        <$ty>::from_str_name(&format!("{}{}", $prefix, $text.to_ascii_uppercase()))
            .map(i32::from)
            .unwrap_or(0)
    };
}

/// An actor sent as `{field}` (kind and id) as the domain's `(kind text, id)`. Left out (no
/// actor, or kind and id both unset), it is the verified caller when that is a person
/// (personnel or a citizen); otherwise an unset actor or kind names `{field}_kind`.
pub fn actor_parts(
    field: &str,
    a: Option<&v1::Actor>,
    caller: &kartotek_domain::fields::Actor,
) -> Result<(String, String), ValidationError> {
    let a = a.cloned().unwrap_or_default();
    if a.kind == 0
        && a.id.is_empty()
        && matches!(
            caller,
            kartotek_domain::fields::Actor::Personnel(_)
                | kartotek_domain::fields::Actor::Citizen(_)
        )
    {
        return Ok((caller.kind().as_str().to_owned(), caller.id_text()));
    }
    let kind = enum_text!(
        &format!("{field}_kind"),
        a.kind,
        v1::ActorKind,
        "ACTOR_KIND_"
    )?;
    Ok((kind, a.id))
}

fn time(t: Timestamp) -> String {
    t.to_rfc3339()
}

fn opt_time(t: Option<Timestamp>) -> String {
    t.map(Timestamp::to_rfc3339).unwrap_or_default()
}

/// An actor as an API message.
pub fn actor(a: &Actor) -> v1::Actor {
    v1::Actor {
        kind: enum_number!(v1::ActorKind, "ACTOR_KIND_", a.kind().as_str()),
        id: a.id_text(),
    }
}

/// A block as an API message; `state` as of `now`.
pub fn block(b: &Block, now: Timestamp) -> v1::Block {
    let (scope_service, scope_element) = match &b.scope {
        kartotek_domain::BlockScope::AllRecords => (String::new(), String::new()),
        kartotek_domain::BlockScope::Service { service, element } => (
            service.as_str().to_owned(),
            element
                .as_ref()
                .map(|e| e.as_str().to_owned())
                .unwrap_or_default(),
        ),
    };
    v1::Block {
        id: b.id,
        patient: b.patient.as_str().to_owned(),
        target_kind: enum_number!(
            v1::BlockTargetKind,
            "BLOCK_TARGET_KIND_",
            b.target.kind().as_str()
        ),
        target: b.target.id_text(),
        level: enum_number!(v1::BlockLevel, "BLOCK_LEVEL_", b.level.as_str()),
        scope_service,
        scope_element,
        valid_from: time(b.validity.from),
        valid_to: opt_time(b.validity.to),
        reason: b.reason.clone(),
        registered_by: Some(actor(&b.registered_by)),
        status: enum_number!(v1::BlockStatus, "BLOCK_STATUS_", b.status.as_str()),
        revoked_at: opt_time(b.revoked_at),
        revoked_by: b.revoked_by.as_ref().map(actor),
        created_at: time(b.created_at),
        updated_at: time(b.updated_at),
        create_revision: b.create_revision,
        mod_revision: b.mod_revision,
        state: b.state_at(now).as_str().to_owned(),
    }
}

/// A consent as an API message; `status` is the effective status at `now`.
pub fn consent(c: &Consent, now: Timestamp) -> v1::Consent {
    v1::Consent {
        id: c.id,
        patient: c.patient.as_str().to_owned(),
        grantee_kind: enum_number!(v1::GranteeKind, "GRANTEE_KIND_", c.grantee.kind().as_str()),
        grantee: c.grantee.id_text(),
        scopes: c.scopes.clone(),
        purpose: c.purpose.as_str().to_owned(),
        valid_from: time(c.validity.from),
        valid_to: opt_time(c.validity.to),
        status: enum_number!(
            v1::ConsentStatus,
            "CONSENT_STATUS_",
            effective_status(c, now).as_str()
        ),
        requested_at: opt_time(c.request.as_ref().map(|r| r.requested_at)),
        deadline: opt_time(c.request.as_ref().map(|r| r.deadline)),
        decided_at: opt_time(c.decided_at),
        decided_by: c.decided_by.as_ref().map(actor),
        withdrawn_at: opt_time(c.withdrawn_at),
        withdrawn_by: c.withdrawn_by.as_ref().map(actor),
        expired_at: opt_time(c.expired_at),
        created_at: time(c.created_at),
        updated_at: time(c.updated_at),
        create_revision: c.create_revision,
        mod_revision: c.mod_revision,
    }
}

/// A reservation as an API message.
pub fn reservation(r: &Reservation) -> v1::Reservation {
    v1::Reservation {
        id: r.id,
        patient: r.key.patient.as_str().to_owned(),
        service: r.key.service.as_str().to_owned(),
        reason: r.reason.clone(),
        status: enum_number!(
            v1::ReservationStatus,
            "RESERVATION_STATUS_",
            r.status.as_str()
        ),
        registered_by: Some(actor(&r.registered_by)),
        reserved_at: time(r.reserved_at),
        withdrawn_by: r.withdrawn_by.as_ref().map(actor),
        withdrawn_at: opt_time(r.withdrawn_at),
        created_at: time(r.created_at),
        updated_at: time(r.updated_at),
        create_revision: r.create_revision,
        mod_revision: r.mod_revision,
    }
}

/// A representation as an API message; `effective_areas` as of `at` under the policy when
/// given (empty otherwise, e.g. in the change feed).
pub fn representation(
    r: &Representation,
    at: Option<(Timestamp, &RepresentationPolicy)>,
) -> v1::Representation {
    v1::Representation {
        id: r.id,
        representative: r.representative.as_str().to_owned(),
        represented: r.represented.as_str().to_owned(),
        kind: enum_number!(
            v1::RepresentationKind,
            "REPRESENTATION_KIND_",
            r.kind.as_str()
        ),
        areas: r.areas.iter().map(|a| a.as_str().to_owned()).collect(),
        valid_from: time(r.validity.from),
        valid_to: opt_time(r.validity.to),
        source: enum_number!(
            v1::RepresentationSource,
            "REPRESENTATION_SOURCE_",
            r.source.as_str()
        ),
        granted_by: Some(actor(&r.granted_by)),
        status: enum_number!(
            v1::RepresentationStatus,
            "REPRESENTATION_STATUS_",
            r.status.as_str()
        ),
        revoked_at: opt_time(r.revoked_at),
        revoked_by: r.revoked_by.as_ref().map(actor),
        created_at: time(r.created_at),
        updated_at: time(r.updated_at),
        create_revision: r.create_revision,
        mod_revision: r.mod_revision,
        effective_areas: match at {
            Some((t, policy)) => r
                .areas_at(t, policy)
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            None => Vec::new(),
        },
    }
}

/// A catalog entry as an API message.
pub fn catalog_entry(e: &CatalogEntry) -> v1::CatalogEntry {
    v1::CatalogEntry {
        id: e.id.as_str().to_owned(),
        owner: e.owner.as_str().to_owned(),
        title: e.content.title.clone(),
        description: e.content.description.clone(),
        base_url: e.content.base_url.clone(),
        spec_url: e.content.spec_url.clone().unwrap_or_default(),
        scopes: e.content.scopes.clone(),
        audience: enum_number!(v1::Audience, "AUDIENCE_", e.content.audience.as_str()),
        requires_consent: e.content.requires_consent,
        version: e.content.version.clone(),
        lifecycle: enum_number!(
            v1::CatalogLifecycle,
            "CATALOG_LIFECYCLE_",
            e.lifecycle.as_str()
        ),
        created_at: time(e.created_at),
        updated_at: time(e.updated_at),
        create_revision: e.create_revision,
        mod_revision: e.mod_revision,
    }
}

/// A token-issuance client as an API message.
pub fn client(c: &ClientRecord) -> v1::RegisteredClient {
    v1::RegisteredClient {
        client_id: c.client_id.as_str().to_owned(),
        org: c.org.as_str().to_owned(),
        public_keys: c
            .settings
            .public_keys
            .iter()
            .map(|k| k.json.clone())
            .collect(),
        allowed_scopes: c.settings.allowed_scopes.clone(),
        approved_third_party: c.settings.approved_third_party,
        status: enum_number!(v1::ClientStatus, "CLIENT_STATUS_", c.status.as_str()),
        created_at: time(c.created_at),
        updated_at: time(c.updated_at),
        create_revision: c.create_revision,
        mod_revision: c.mod_revision,
    }
}

/// A patient notification as an API message.
pub fn notification(n: &PatientNotification) -> v1::PatientNotification {
    v1::PatientNotification {
        id: n.id,
        patient: n.patient.as_str().to_owned(),
        personnel: n.personnel.map(|h| h.to_string()).unwrap_or_default(),
        org: n
            .org
            .as_ref()
            .map(|o| o.as_str().to_owned())
            .unwrap_or_default(),
        service: n.service.as_str().to_owned(),
        element: n
            .element
            .as_ref()
            .map(|e| e.as_str().to_owned())
            .unwrap_or_default(),
        purpose: n.purpose.as_str().to_owned(),
        access_time: time(n.access_time),
        effect: enum_number!(v1::AccessEffect, "ACCESS_EFFECT_", n.effect.as_str()),
        overridden_block_ids: n.overridden_blocks.clone(),
        justification: n.justification.clone(),
        summary: n.summary.clone(),
        created_at: time(n.created_at),
        acknowledged_at: opt_time(n.acknowledged_at),
        acknowledged_by: n.acknowledged_by.as_ref().map(actor),
        create_revision: n.create_revision,
        mod_revision: n.mod_revision,
    }
}

/// An obligation as an API message.
pub fn obligation(o: &Obligation) -> v1::Obligation {
    use v1::ObligationKind as K;
    let (kind, values) = match o {
        Obligation::LogWithPurpose => (K::LogWithPurpose, Vec::new()),
        Obligation::NotifyPatient => (K::NotifyPatient, Vec::new()),
        Obligation::RecordJustification => (K::RecordJustification, Vec::new()),
        Obligation::ShowOnlyWithinScope(s) => (K::ShowOnlyWithinScope, s.clone()),
        Obligation::WithholdElements(e) => (
            K::WithholdElements,
            e.iter().map(|e| e.as_str().to_owned()).collect(),
        ),
        Obligation::LogRepresentation => (K::LogRepresentation, Vec::new()),
    };
    v1::Obligation {
        kind: kind as i32,
        values,
    }
}

/// An access decision as an API answer (without header).
pub fn decision(
    d: &AccessDecision,
    decided_for: Timestamp,
    notification_id: u64,
) -> v1::AccessDecisionResponse {
    v1::AccessDecisionResponse {
        header: None,
        effect: enum_number!(v1::AccessEffect, "ACCESS_EFFECT_", d.effect.as_str()),
        override_possible: d.override_possible,
        matching_block_ids: d.matching_blocks.clone(),
        matching_consent_ids: d.matching_consents.clone(),
        matching_reservation_ids: d.matching_reservations.clone(),
        matching_representation_ids: d.matching_representations.clone(),
        reasons: d.reasons.clone(),
        obligations: d.obligations.iter().map(obligation).collect(),
        decided_for: time(decided_for),
        notification_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_texts_round_trip() {
        let n = enum_number!(v1::BlockLevel, "BLOCK_LEVEL_", "absolute");
        assert_eq!(n, v1::BlockLevel::Absolute as i32);
        assert_eq!(
            enum_text!("level", n, v1::BlockLevel, "BLOCK_LEVEL_").ok(),
            Some("absolute".to_owned())
        );
        let e = enum_text!("level", 0, v1::BlockLevel, "BLOCK_LEVEL_").err();
        assert_eq!(e.map(|e| e.field), Some("level".to_owned()));
        let e = enum_text!("level", 99, v1::BlockLevel, "BLOCK_LEVEL_").err();
        assert_eq!(e.map(|e| e.field), Some("level".to_owned()));
        assert_eq!(
            optional_enum_text!("status", 0, v1::ConsentStatus, "CONSENT_STATUS_").ok(),
            Some(String::new())
        );
        let k = enum_number!(
            v1::RepresentationKind,
            "REPRESENTATION_KIND_",
            "not_consent_competent"
        );
        assert_eq!(k, v1::RepresentationKind::NotConsentCompetent as i32);
        let client = kartotek_domain::fields::Actor::parse("c", "client", "some-app")
            .unwrap_or_else(|e| panic!("{e}"));
        let e = actor_parts("by", None, &client).err();
        assert_eq!(e.map(|e| e.field), Some("by_kind".to_owned()));
        let id = (0..1000u16)
            .find_map(|i| {
                kartotek_domain::ids::testing::national_id_from_parts(
                    chrono::NaiveDate::from_ymd_opt(1980, 5, 17).unwrap_or_default(),
                    i,
                    kartotek_domain::ids::NationalIdKind::Ordinary,
                )
            })
            .unwrap_or_else(|| panic!("no id"));
        let citizen = kartotek_domain::fields::Actor::Citizen(id.clone());
        assert_eq!(
            actor_parts("by", None, &citizen).ok(),
            Some(("citizen".to_owned(), id.as_str().to_owned())),
            "left out, the actor is the verified caller"
        );
    }
}
