//! Who is calling, for audit events: the actor, the organisation acted for, the purpose of
//! use, on whose behalf, and the request id — read from gRPC metadata
//! (`x-kartotek-actor`, `x-kartotek-org`, `x-kartotek-purpose`, `x-kartotek-on-behalf-of`,
//! `x-request-id`). Until verified security tokens carry these claims (frontend work), they are
//! what the caller says; a call without an actor is audited as `system:anonymous`.
//! Malformed values are refused with INVALID_ARGUMENT naming the header.

use kartotek_domain::audit::{AuditAction, AuditEvent};
use kartotek_domain::fields::{Actor, Purpose};
use kartotek_domain::limits::CORRELATION_ID_BYTES_MAX;
use kartotek_domain::locator::{parse_national_id, parse_org_number};
use kartotek_domain::{NationalId, OrgNumber, Timestamp, ValidationError};
use kartotek_proto::{
    ACTOR_HEADER, ON_BEHALF_OF_HEADER, ORG_HEADER, PURPOSE_HEADER, REQUEST_ID_HEADER,
};
use tonic::metadata::MetadataMap;

use crate::audit::wire::parse_actor;
use crate::error::NodeError;

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who.
    pub actor: Actor,
    /// For which organisation.
    pub org: Option<OrgNumber>,
    /// On whose behalf.
    pub on_behalf_of: Option<NationalId>,
    /// Why.
    pub purpose: Option<Purpose>,
    /// The request id, as correlation id.
    pub correlation_id: Option<String>,
    /// Set when a citizen's token was let in by the own-data rule (the method's scope is not
    /// in the token, [`kartotek_auth::scopes::CITIZEN`] is): the one person whose data the
    /// call may read or change — the citizen, or whom the token acts for. The request layer
    /// refuses any audit event or write about someone else.
    pub own_data_of: Option<NationalId>,
}

fn header<'a>(md: &'a MetadataMap, key: &str) -> Result<Option<&'a str>, ValidationError> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) if s.trim().is_empty() => Ok(None),
            Ok(s) => Ok(Some(s.trim())),
            Err(_) => Err(ValidationError::new(key, "is not visible ASCII")),
        },
    }
}

/// The caller's `x-request-id`, as the audit's correlation id (dropped when longer than
/// [`CORRELATION_ID_BYTES_MAX`]).
pub fn correlation_id(md: &MetadataMap) -> Result<Option<String>, ValidationError> {
    Ok(header(md, REQUEST_ID_HEADER)?
        .filter(|r| r.len() <= CORRELATION_ID_BYTES_MAX)
        .map(str::to_owned))
}

impl Caller {
    /// Reads the caller from a request's metadata.
    pub fn from_metadata(md: &MetadataMap) -> Result<Caller, NodeError> {
        let actor = match header(md, ACTOR_HEADER)? {
            Some(a) => parse_actor(ACTOR_HEADER, a)?,
            None => Actor::parse(ACTOR_HEADER, "system", "anonymous")?,
        };
        let org = header(md, ORG_HEADER)?
            .map(|o| parse_org_number(ORG_HEADER, o))
            .transpose()?;
        let on_behalf_of = header(md, ON_BEHALF_OF_HEADER)?
            .map(|p| parse_national_id(ON_BEHALF_OF_HEADER, p))
            .transpose()?;
        let purpose = header(md, PURPOSE_HEADER)?
            .map(|p| Purpose::parse(PURPOSE_HEADER, p))
            .transpose()?;
        let correlation_id = correlation_id(md)?;
        Ok(Caller {
            actor,
            org,
            on_behalf_of,
            purpose,
            correlation_id,
            own_data_of: None,
        })
    }

    /// An audit event of this caller doing `action` to `resource` about `patient`.
    pub fn event(&self, action: &str, resource: &str, patient: Option<&NationalId>) -> AuditEvent {
        AuditEvent {
            time: Timestamp::now(),
            actor: self.actor.clone(),
            org: self.org.clone(),
            on_behalf_of: self.on_behalf_of.clone(),
            patient: patient.cloned(),
            action: AuditAction::parse("action", action)
                .unwrap_or_else(|_| unreachable_action(action)),
            resource: resource.to_owned(),
            purpose: self.purpose.clone(),
            decision: None,
            emergency_override: false,
            justification: None,
            correlation_id: self.correlation_id.clone(),
            // Set by the node's journal append (`NodeContext::audit`), which knows its id.
            served_by: None,
        }
    }
}

/// The actions passed to [`Caller::event`] are the constants of `audit::actions`, all valid.
fn unreachable_action(action: &str) -> AuditAction {
    debug_assert!(false, "invalid built-in audit action {action}");
    match AuditAction::parse("action", "unknown") {
        Ok(a) => a,
        Err(_) => unreachable!("`unknown` is a valid action token"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::wire::actor_text;
    use tonic::metadata::MetadataValue;

    #[test]
    fn reads_and_validates_headers() {
        let mut md = MetadataMap::new();
        let c = Caller::from_metadata(&md).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(actor_text(&c.actor), "system:anonymous");
        md.insert(
            ACTOR_HEADER,
            MetadataValue::from_static("personnel:1234567"),
        );
        md.insert(PURPOSE_HEADER, MetadataValue::from_static("treatment"));
        let c = Caller::from_metadata(&md).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(actor_text(&c.actor), "personnel:1234567");
        assert!(c.purpose.is_some());
        md.insert(ORG_HEADER, MetadataValue::from_static("123456789"));
        match Caller::from_metadata(&md) {
            Err(NodeError::Invalid(v)) => assert_eq!(v.field, ORG_HEADER),
            other => panic!("expected invalid org, got {other:?}"),
        }
        let mut md = MetadataMap::new();
        md.insert(ACTOR_HEADER, MetadataValue::from_static("nobody"));
        assert!(Caller::from_metadata(&md).is_err());
    }
}
