//! IHE BALP (Basic Audit Log Patterns) `AuditEvent`s, FHIR R4 JSON, to and from Kartotek's
//! audit events. Pure: no I/O.
//!
//! [`parse_post`] reads the body of `POST /api/v1/audit-events` (one `AuditEvent`, or a
//! `Bundle` of type `batch`, `transaction` or `collection` of at most
//! [`AUDIT_EVENTS_PER_POST_MAX`]) into [`Forwarded`] events, each checked field by field; the
//! first fault is a [`BalpError`] naming the JSON path (`entry[3].resource.entity[0].what.
//! identifier.value`). [`to_fhir`] writes a stored Kartotek event back in the same shape.
//!
//! # The shape taken (BALP patient-read / patient-query)
//!
//! | FHIR | Kartotek event |
//! |---|---|
//! | `id` (required, FHIR id: 1 to 64 of `A-Z a-z 0-9 - .`) | idempotency key (see [`super`]) |
//! | `recorded` (required, RFC 3339 instant) | `time` |
//! | `subtype[]` code `read`/`vread` (restful-interaction) or `action` `R` | action `patient.read` |
//! | `subtype[]` code `search`/`search-type`/`search-system`, or `action` `E` | action `patient.query` |
//! | `outcome` (`0`, `4`, `8`, `12`) | checked |
//! | user agent: the agent with `requestor: true` (required, exactly one) | |
//! | ... `who.identifier` HPR (`urn:oid:2.16.578.1.12.4.1.4.4`) | actor `personnel:<hpr>` |
//! | ... `who.identifier` national id (`urn:oid:2.16.578.1.12.4.1.4.1`, D-number `.2`) | actor `citizen:<id>` |
//! | ... `purposeOfUse[0].coding[0].code` (v3 ActReason `TREAT`, `ETREAT`, ... or a Kartotek purpose) | `purpose` |
//! | any agent's `who.identifier` with the org-number system (`urn:oid:2.16.578.1.12.4.1.4.101`) | must be the token's organisation |
//! | `entity[]` with `role` object-role `1` (Patient) or type `1` (Person) and a national id in `what.identifier` (required, exactly one) | `patient` |
//! | `entity[]` of type `XrequestId` (BALP entity type) `what.identifier.value` | `correlation_id` |
//! | the first other `entity[]`'s `what.reference` (or `what.display`, `name`) | `resource` (default `Patient`) |
//!
//! The event's organisation is always the caller's (the token's): an agent naming another
//! organisation is refused ([`BalpError::OtherOrganisation`], 403), an event naming none is
//! recorded as the token's organisation's.

use std::collections::HashMap;

use kartotek_client::proto as v1;
use kartotek_domain::OrgNumber;
use kartotek_domain::fields::{Actor, Purpose, parse_hpr, parse_timestamp};
use kartotek_domain::limits::{AUDIT_EVENTS_PER_APPEND_MAX, AUDIT_RESOURCE_BYTES_MAX};
use kartotek_domain::locator::{parse_national_id, parse_org_number};
use serde_json::{Value, json};

/// Most `AuditEvent`s one POST may carry (a `Bundle`'s entries); all go into one
/// `AuditService.Record`, so at most the cluster's per-append maximum.
pub const AUDIT_EVENTS_PER_POST_MAX: usize = 500;
const _: () = assert!(AUDIT_EVENTS_PER_POST_MAX <= AUDIT_EVENTS_PER_APPEND_MAX);

/// Longest FHIR `id` of an event (the FHIR R4 id rule).
pub const EVENT_ID_BYTES_MAX: usize = 64;

/// Identifier system of the Norwegian national id (fødselsnummer).
pub const NATIONAL_ID_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.4.1";
/// Identifier system of the D-number.
pub const D_NUMBER_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.4.2";
/// Identifier system of the HPR number (health personnel register).
pub const HPR_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.4.4";
/// Identifier system of the organisation number (Enhetsregisteret).
pub const ORG_NUMBER_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.4.101";
/// Identifier system of a token-issuance client id (Kartotek's).
pub const CLIENT_ID_SYSTEM: &str = "urn:kartotek:client";
/// Identifier system of a Kartotek node's audit journal position (the BALP server agent).
pub const SERVED_BY_SYSTEM: &str = "urn:kartotek:served-by";
/// Code system of Kartotek's audit actions (the exported `subtype`).
pub const ACTION_SYSTEM: &str = "urn:kartotek:audit-action";
/// Code system of Kartotek's purposes of use (exported `purposeOfUse`).
pub const PURPOSE_SYSTEM: &str = "urn:kartotek:purpose";
/// BALP's entity type code system (`XrequestId`).
pub const BALP_ENTITY_TYPE_SYSTEM: &str =
    "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType";
/// DICOM codes: the agent types of BALP's client and server agents.
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// The action of a forwarded read.
pub const ACTION_READ: &str = "patient.read";
/// The action of a forwarded query.
pub const ACTION_QUERY: &str = "patient.query";

/// Why a POST body is refused; the field is a JSON path into the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BalpError {
    /// A field is missing or invalid (400).
    #[error("{field}: {reason}")]
    Invalid {
        /// JSON path of the field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// An agent names an organisation other than the token's (403).
    #[error(
        "{field}: organisation {named} is not the caller's ({own}): events are logged only in the token's organisation's name"
    )]
    OtherOrganisation {
        /// JSON path of the identifier value.
        field: String,
        /// What the event names.
        named: String,
        /// The token's organisation.
        own: String,
    },
}

impl BalpError {
    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        BalpError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The JSON path of the refused field.
    pub fn field(&self) -> &str {
        match self {
            BalpError::Invalid { field, .. } | BalpError::OtherOrganisation { field, .. } => field,
        }
    }
}

/// One validated event, ready for `AuditService.Record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The FHIR `id`.
    pub id: String,
    /// The Kartotek event (`org` the token's).
    pub event: v1::AuditEvent,
}

fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn obj<'a>(v: &'a Value, path: &str) -> Result<&'a serde_json::Map<String, Value>, BalpError> {
    v.as_object()
        .ok_or_else(|| BalpError::invalid(path, "must be a JSON object"))
}

fn opt_str<'a>(v: &'a Value, path: &str, key: &str) -> Result<Option<&'a str>, BalpError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(BalpError::invalid(at(path, key), "must be a string")),
    }
}

fn req_str<'a>(v: &'a Value, path: &str, key: &str) -> Result<&'a str, BalpError> {
    opt_str(v, path, key)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| BalpError::invalid(at(path, key), "is required"))
}

fn arr<'a>(v: &'a Value, path: &str, key: &str) -> Result<&'a [Value], BalpError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a.as_slice()),
        Some(_) => Err(BalpError::invalid(at(path, key), "must be an array")),
    }
}

/// Reads a POST body: one `AuditEvent` or a `Bundle` of them. `org` is the token's
/// organisation. All or nothing: the first bad field refuses the whole body.
pub fn parse_post(body: &Value, org: &OrgNumber) -> Result<Vec<Forwarded>, BalpError> {
    obj(body, "")?;
    let events = match req_str(body, "", "resourceType")? {
        "AuditEvent" => vec![parse_event(body, "", org)?],
        "Bundle" => {
            let kind = req_str(body, "", "type")?;
            if !matches!(kind, "batch" | "transaction" | "collection") {
                return Err(BalpError::invalid(
                    "type",
                    "must be batch, transaction or collection",
                ));
            }
            let entries = arr(body, "", "entry")?;
            if entries.is_empty() || entries.len() > AUDIT_EVENTS_PER_POST_MAX {
                return Err(BalpError::invalid(
                    "entry",
                    format!(
                        "has {} entries; a bundle carries 1 to {AUDIT_EVENTS_PER_POST_MAX} AuditEvents",
                        entries.len()
                    ),
                ));
            }
            let mut out = Vec::with_capacity(entries.len());
            for (i, entry) in entries.iter().enumerate() {
                let path = format!("entry[{i}].resource");
                let resource = entry
                    .get("resource")
                    .ok_or_else(|| BalpError::invalid(path.clone(), "is required"))?;
                obj(resource, &path)?;
                if req_str(resource, &path, "resourceType")? != "AuditEvent" {
                    return Err(BalpError::invalid(
                        at(&path, "resourceType"),
                        "must be AuditEvent",
                    ));
                }
                out.push(parse_event(resource, &path, org)?);
            }
            out
        }
        _ => {
            return Err(BalpError::invalid(
                "resourceType",
                "must be AuditEvent or Bundle",
            ));
        }
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if let Some(first) = seen.insert(e.id.as_str(), i) {
            return Err(BalpError::invalid(
                format!("entry[{i}].resource.id"),
                format!("repeats the id of entry[{first}]"),
            ));
        }
    }
    Ok(events)
}

fn codes<'a>(v: &'a Value) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    // A Coding, or a CodeableConcept's codings.
    let single = v.get("code").map(|_| v);
    let many = v
        .get("coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    single.into_iter().chain(many).filter_map(|c| {
        Some((
            c.get("system").and_then(Value::as_str).unwrap_or_default(),
            c.get("code").and_then(Value::as_str)?,
        ))
    })
}

fn has_code(v: Option<&Value>, system: &str, code: &str) -> bool {
    v.into_iter()
        .flat_map(|v| match v {
            Value::Array(a) => a.iter().collect::<Vec<_>>(),
            other => vec![other],
        })
        .any(|c| codes(c).any(|(s, k)| (s == system || s.is_empty()) && k == code))
}

fn parse_event(e: &Value, path: &str, org: &OrgNumber) -> Result<Forwarded, BalpError> {
    let id = req_str(e, path, "id")?;
    if id.len() > EVENT_ID_BYTES_MAX
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(BalpError::invalid(
            at(path, "id"),
            format!("must be a FHIR id: 1 to {EVENT_ID_BYTES_MAX} of A-Z a-z 0-9 - ."),
        ));
    }
    let recorded = req_str(e, path, "recorded")?;
    let time = parse_timestamp(&at(path, "recorded"), recorded)
        .map_err(|v| BalpError::invalid(v.field, v.reason))?;
    let action = action_of(e, path)?;
    if let Some(outcome) = opt_str(e, path, "outcome")?
        && !matches!(outcome, "0" | "4" | "8" | "12")
    {
        return Err(BalpError::invalid(
            at(path, "outcome"),
            "must be 0, 4, 8 or 12",
        ));
    }
    let agents = arr(e, path, "agent")?;
    let mut user = None;
    for (i, a) in agents.iter().enumerate() {
        let apath = format!("{}[{i}]", at(path, "agent"));
        obj(a, &apath)?;
        let who = a.get("who");
        let ident = who.and_then(|w| w.get("identifier"));
        if let Some(ident) = ident
            && ident.get("system").and_then(Value::as_str) == Some(ORG_NUMBER_SYSTEM)
        {
            let vpath = format!("{apath}.who.identifier.value");
            let value = ident
                .get("value")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let named = parse_org_number(&vpath, value)
                .map_err(|v| BalpError::invalid(v.field, v.reason))?;
            if named != *org {
                return Err(BalpError::OtherOrganisation {
                    field: vpath,
                    named: named.as_str().to_owned(),
                    own: org.as_str().to_owned(),
                });
            }
        }
        match a.get("requestor") {
            Some(Value::Bool(true)) => {
                if user.is_some() {
                    return Err(BalpError::invalid(
                        at(&apath, "requestor"),
                        "only one agent (the user) may be the requestor",
                    ));
                }
                user = Some((a, apath));
            }
            None | Some(Value::Bool(false)) => {}
            Some(_) => {
                return Err(BalpError::invalid(
                    at(&apath, "requestor"),
                    "must be true or false",
                ));
            }
        }
    }
    let Some((user, upath)) = user else {
        return Err(BalpError::invalid(
            at(path, "agent"),
            "needs the user agent: one agent with requestor true",
        ));
    };
    let actor = actor_of(user, &upath)?;
    let purpose = purpose_of(user, &upath)?;
    let (patient, correlation_id, resource) = entities_of(e, path)?;
    Ok(Forwarded {
        id: id.to_owned(),
        event: v1::AuditEvent {
            time: time.to_rfc3339(),
            actor,
            org: org.as_str().to_owned(),
            patient,
            action: action.to_owned(),
            resource,
            purpose,
            correlation_id,
            ..Default::default()
        },
    })
}

fn action_of(e: &Value, path: &str) -> Result<&'static str, BalpError> {
    const RESTFUL: &str = "http://hl7.org/fhir/restful-interaction";
    let subtype = e.get("subtype");
    if ["read", "vread"]
        .iter()
        .any(|c| has_code(subtype, RESTFUL, c))
    {
        return Ok(ACTION_READ);
    }
    if ["search", "search-type", "search-system"]
        .iter()
        .any(|c| has_code(subtype, RESTFUL, c))
    {
        return Ok(ACTION_QUERY);
    }
    match opt_str(e, path, "action")? {
        Some("R") => Ok(ACTION_READ),
        Some("E") => Ok(ACTION_QUERY),
        Some(_) => Err(BalpError::invalid(
            at(path, "action"),
            "a patient read (R) or query (E) is forwarded; others are not taken",
        )),
        None => Err(BalpError::invalid(
            at(path, "subtype"),
            "needs restful-interaction read, vread, search or search-type (or action R / E)",
        )),
    }
}

fn identifier<'a>(v: &'a Value, path: &str) -> Result<(&'a str, &'a str, String), BalpError> {
    let ipath = at(path, "identifier");
    let ident = v
        .get("identifier")
        .ok_or_else(|| BalpError::invalid(ipath.clone(), "is required"))?;
    obj(ident, &ipath)?;
    let system = req_str(ident, &ipath, "system")?;
    let value = req_str(ident, &ipath, "value")?;
    Ok((system, value, at(&ipath, "value")))
}

fn actor_of(user: &Value, upath: &str) -> Result<String, BalpError> {
    let wpath = at(upath, "who");
    let who = user
        .get("who")
        .ok_or_else(|| BalpError::invalid(wpath.clone(), "is required"))?;
    let (system, value, vpath) = identifier(who, &wpath)?;
    let bad = |v: kartotek_domain::ValidationError| BalpError::invalid(v.field, v.reason);
    let actor = match system {
        HPR_SYSTEM => Actor::Personnel(parse_hpr(&vpath, value).map_err(bad)?),
        NATIONAL_ID_SYSTEM | D_NUMBER_SYSTEM => {
            Actor::Citizen(parse_national_id(&vpath, value).map_err(bad)?)
        }
        CLIENT_ID_SYSTEM => Actor::parse(&vpath, "client", value).map_err(bad)?,
        _ => {
            return Err(BalpError::invalid(
                at(&wpath, "identifier.system"),
                format!(
                    "must be {HPR_SYSTEM} (HPR number), {NATIONAL_ID_SYSTEM} (national id), \
                     {D_NUMBER_SYSTEM} (D-number) or {CLIENT_ID_SYSTEM}"
                ),
            ));
        }
    };
    Ok(format!("{}:{}", actor.kind().as_str(), actor.id_text()))
}

fn purpose_of(user: &Value, upath: &str) -> Result<String, BalpError> {
    let purposes = arr(user, upath, "purposeOfUse")?;
    let Some(first) = purposes.first() else {
        return Ok(String::new());
    };
    let ppath = format!("{}[0]", at(upath, "purposeOfUse"));
    let Some((_, code)) = codes(first).next() else {
        return Err(BalpError::invalid(
            format!("{ppath}.coding[0].code"),
            "is required",
        ));
    };
    let mapped = match code {
        "TREAT" => "treatment",
        "ETREAT" => "emergency",
        "HQUALIMP" => "quality",
        "HRESCH" => "research",
        "HPAYMT" => "payment",
        other => other,
    };
    Purpose::parse(&format!("{ppath}.coding[0].code"), mapped)
        .map(|p| p.as_str().to_owned())
        .map_err(|v| BalpError::invalid(v.field, v.reason))
}

/// `(patient, correlation id, resource)` of the event's entities.
fn entities_of(e: &Value, path: &str) -> Result<(String, String, String), BalpError> {
    let epath = at(path, "entity");
    let mut patient: Option<String> = None;
    let mut correlation = String::new();
    let mut resource: Option<String> = None;
    for (i, entity) in arr(e, path, "entity")?.iter().enumerate() {
        let ipath = format!("{epath}[{i}]");
        obj(entity, &ipath)?;
        let is_patient = has_code(
            entity.get("role"),
            "http://terminology.hl7.org/CodeSystem/object-role",
            "1",
        ) || has_code(
            entity.get("type"),
            "http://terminology.hl7.org/CodeSystem/audit-entity-type",
            "1",
        );
        let wpath = at(&ipath, "what");
        if is_patient {
            let what = entity
                .get("what")
                .ok_or_else(|| BalpError::invalid(wpath.clone(), "is required"))?;
            let (system, value, vpath) = identifier(what, &wpath)?;
            if !matches!(system, NATIONAL_ID_SYSTEM | D_NUMBER_SYSTEM) {
                return Err(BalpError::invalid(
                    at(&wpath, "identifier.system"),
                    format!("must be {NATIONAL_ID_SYSTEM} (national id) or {D_NUMBER_SYSTEM}"),
                ));
            }
            let id = parse_national_id(&vpath, value)
                .map_err(|v| BalpError::invalid(v.field, v.reason))?;
            if patient.is_some() {
                return Err(BalpError::invalid(
                    ipath,
                    "a second patient entity: forward one event per patient",
                ));
            }
            patient = Some(id.as_str().to_owned());
        } else if has_code(entity.get("type"), BALP_ENTITY_TYPE_SYSTEM, "XrequestId") {
            let what = entity
                .get("what")
                .ok_or_else(|| BalpError::invalid(wpath.clone(), "is required"))?;
            let (_, value, vpath) = match identifier(what, &wpath) {
                Ok(found) => found,
                // The identifier needs no system here.
                Err(_) => (
                    "",
                    what.get("identifier")
                        .and_then(|i| i.get("value"))
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    format!("{wpath}.identifier.value"),
                ),
            };
            if value.is_empty()
                || value.len() > kartotek_domain::limits::CORRELATION_ID_BYTES_MAX
                || !value.chars().all(|c| c.is_ascii_graphic())
            {
                return Err(BalpError::invalid(
                    vpath,
                    format!(
                        "must be 1 to {} bytes of visible ASCII",
                        kartotek_domain::limits::CORRELATION_ID_BYTES_MAX
                    ),
                ));
            }
            value.clone_into(&mut correlation);
        } else if resource.is_none() {
            let what = entity.get("what");
            let text = what
                .and_then(|w| w.get("reference").or_else(|| w.get("display")))
                .or_else(|| entity.get("name"))
                .and_then(Value::as_str);
            if let Some(text) = text {
                if text.len() > AUDIT_RESOURCE_BYTES_MAX {
                    return Err(BalpError::invalid(
                        format!("{wpath}.reference"),
                        format!("longer than {AUDIT_RESOURCE_BYTES_MAX} bytes"),
                    ));
                }
                resource = Some(text.to_owned());
            }
        }
    }
    let patient = patient.ok_or_else(|| {
        BalpError::invalid(
            epath,
            format!(
                "needs the patient: an entity with role object-role 1 (Patient) and \
                 what.identifier {NATIONAL_ID_SYSTEM}|<national id>"
            ),
        )
    })?;
    Ok((
        patient,
        correlation,
        resource.unwrap_or_else(|| "Patient".to_owned()),
    ))
}

/// A stored Kartotek audit event as a BALP-shaped FHIR R4 `AuditEvent`: the user agent
/// (requestor, purpose of use), the organisation as the client agent, the serving node
/// (`served_by`: node, journal, journal seq) as the server agent, the patient and
/// `X-Request-Id` entities, and the chain position and hashes as extensions.
pub fn to_fhir(e: &v1::AuditEvent) -> Value {
    let (kind, id) = e
        .actor
        .split_once(':')
        .unwrap_or(("system", e.actor.as_str()));
    let system = match kind {
        "personnel" => HPR_SYSTEM,
        "citizen" => NATIONAL_ID_SYSTEM,
        "client" => CLIENT_ID_SYSTEM,
        _ => "urn:kartotek:system",
    };
    let mut user = json!({
        "type": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "code": "IRCP", "display": "information recipient" }] },
        "who": { "identifier": { "system": system, "value": id } },
        "requestor": true,
    });
    if !e.purpose.is_empty() {
        user["purposeOfUse"] =
            json!([{ "coding": [{ "system": PURPOSE_SYSTEM, "code": e.purpose }] }]);
    }
    if !e.on_behalf_of.is_empty() {
        user["extension"] = json!([{
            "url": "urn:kartotek:on-behalf-of",
            "valueIdentifier": { "system": NATIONAL_ID_SYSTEM, "value": e.on_behalf_of } }]);
    }
    let mut agents = vec![user];
    if !e.org.is_empty() {
        agents.push(json!({
            "type": { "coding": [{ "system": DCM, "code": "110153", "display": "Source Role ID" }] },
            "who": { "identifier": { "system": ORG_NUMBER_SYSTEM, "value": e.org } },
            "requestor": false,
        }));
    }
    if let Some(node) = e.served_by {
        agents.push(json!({
            "type": { "coding": [{ "system": DCM, "code": "110152", "display": "Destination Role ID" }] },
            "who": {
                "identifier": { "system": SERVED_BY_SYSTEM, "value": format!(
                    "node/{node}/journal/{:016x}/seq/{}", e.served_journal_id, e.served_journal_seq) },
                "display": format!("Kartotek node {node}"),
            },
            "requestor": false,
        }));
    }
    let mut entities = Vec::new();
    if !e.patient.is_empty() {
        entities.push(json!({
            "what": { "identifier": { "system": NATIONAL_ID_SYSTEM, "value": e.patient } },
            "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1" },
            "role": { "system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1" },
        }));
    }
    if !e.resource.is_empty() {
        entities.push(json!({
            "what": { "display": e.resource },
            "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2" },
        }));
    }
    if !e.correlation_id.is_empty() {
        entities.push(json!({
            "what": { "identifier": { "value": e.correlation_id } },
            "type": { "system": BALP_ENTITY_TYPE_SYSTEM, "code": "XrequestId" },
        }));
    }
    let mut extensions = vec![
        json!({ "url": "urn:kartotek:audit-seq", "valueUnsignedInt": e.seq }),
        json!({ "url": "urn:kartotek:audit-hash", "valueString": e.hash }),
        json!({ "url": "urn:kartotek:audit-prev-hash", "valueString": e.prev_hash }),
    ];
    if !e.decision.is_empty() {
        extensions.push(json!({ "url": "urn:kartotek:decision", "valueCode": e.decision }));
    }
    if e.emergency_override {
        extensions.push(json!({ "url": "urn:kartotek:emergency-override", "valueBoolean": true }));
        extensions
            .push(json!({ "url": "urn:kartotek:justification", "valueString": e.justification }));
    }
    let verb = if e.action.ends_with(".write") || e.action.ends_with(".ack") {
        "U"
    } else if e.action.ends_with(".decide") || e.action.ends_with(".query") {
        "E"
    } else {
        "R"
    };
    let outcome = if e.decision == "deny" { "4" } else { "0" };
    json!({
        "resourceType": "AuditEvent",
        "id": format!("kartotek-{}", e.seq),
        "extension": extensions,
        "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest" },
        "subtype": [{ "system": ACTION_SYSTEM, "code": e.action }],
        "action": verb,
        "recorded": e.time,
        "outcome": outcome,
        "agent": agents,
        "source": {
            "observer": { "display": "Kartotek" },
            "type": [{ "system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4" }],
        },
        "entity": entities,
    })
}

/// A valid BALP patient-read event of organisation `org` about `patient` (for tests and
/// the README).
#[cfg(test)]
pub(crate) fn sample(id: &str, org: &str, patient: &str) -> Value {
    json!({
        "resourceType": "AuditEvent",
        "id": id,
        "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest" },
        "subtype": [{ "system": "http://hl7.org/fhir/restful-interaction", "code": "read" }],
        "action": "R",
        "recorded": "2026-12-01T10:00:00Z",
        "outcome": "0",
        "agent": [
            { "type": { "coding": [{ "system": DCM, "code": "110153" }] },
              "who": { "identifier": { "system": ORG_NUMBER_SYSTEM, "value": org } },
              "requestor": false },
            { "type": { "coding": [{ "system": DCM, "code": "110152" }] },
              "who": { "display": "https://ehr.example/fhir" }, "requestor": false },
            { "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP" }] },
              "who": { "identifier": { "system": HPR_SYSTEM, "value": "1234567" } },
              "requestor": true,
              "purposeOfUse": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT" }] }] }
        ],
        "source": { "observer": { "display": "ehr.example" } },
        "entity": [
            { "what": { "identifier": { "system": NATIONAL_ID_SYSTEM, "value": patient } },
              "role": { "system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1" } },
            { "what": { "reference": "DocumentReference/epikrise-1" } },
            { "what": { "identifier": { "value": "req-abc-1" } },
              "type": { "system": BALP_ENTITY_TYPE_SYSTEM, "code": "XrequestId" } }
        ]
    })
}

#[cfg(test)]
mod tests {
    use kartotek_domain::Timestamp;

    use super::*;

    const ORG: &str = "974760673";
    const OTHER_ORG: &str = "981275721";
    const PATIENT: &str = "15076500565";

    fn org() -> OrgNumber {
        parse_org_number("org", ORG).unwrap()
    }

    fn field_of(body: &Value) -> String {
        parse_post(body, &org()).unwrap_err().field().to_owned()
    }

    #[test]
    fn a_valid_event_maps_to_the_kartotek_event() {
        let events = parse_post(&sample("ev-1", ORG, PATIENT), &org()).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.id, "ev-1");
        assert_eq!(
            e.event,
            v1::AuditEvent {
                time: "2026-12-01T10:00:00.000Z".into(),
                actor: "personnel:1234567".into(),
                org: ORG.into(),
                patient: PATIENT.into(),
                action: ACTION_READ.into(),
                resource: "DocumentReference/epikrise-1".into(),
                purpose: "treatment".into(),
                correlation_id: "req-abc-1".into(),
                ..Default::default()
            }
        );
        // The node's own validation takes it.
        kartotek_client::audit::event_from_message(&e.event, Timestamp(0)).unwrap();
    }

    #[test]
    fn a_missing_patient_is_refused_naming_the_field() {
        let mut e = sample("ev-1", ORG, PATIENT);
        e["entity"].as_array_mut().unwrap().remove(0);
        let bundle = json!({ "resourceType": "Bundle", "type": "batch",
            "entry": [{ "resource": sample("a", ORG, PATIENT) }, { "resource": e }] });
        assert_eq!(field_of(&bundle), "entry[1].resource.entity");
        // A bad national id is named down to its value.
        let mut e = sample("ev-1", ORG, PATIENT);
        e["entity"][0]["what"]["identifier"]["value"] = json!("15076500566");
        assert_eq!(field_of(&e), "entity[0].what.identifier.value");
    }

    #[test]
    fn a_wrong_organisation_actor_is_refused() {
        let err = parse_post(&sample("ev-1", OTHER_ORG, PATIENT), &org()).unwrap_err();
        assert!(matches!(err, BalpError::OtherOrganisation { .. }), "{err}");
        assert_eq!(err.field(), "agent[0].who.identifier.value");
        // A bad org number is invalid, not "another organisation".
        let err = parse_post(&sample("ev-1", "974760674", PATIENT), &org()).unwrap_err();
        assert!(matches!(err, BalpError::Invalid { .. }), "{err}");
    }

    #[test]
    fn an_oversized_bundle_is_refused() {
        let entries: Vec<Value> = (0..=AUDIT_EVENTS_PER_POST_MAX)
            .map(|i| json!({ "resource": sample(&format!("e{i}"), ORG, PATIENT) }))
            .collect();
        let bundle = json!({ "resourceType": "Bundle", "type": "batch", "entry": entries });
        assert_eq!(field_of(&bundle), "entry");
        let mut entries = entries;
        entries.pop();
        let bundle = json!({ "resourceType": "Bundle", "type": "batch", "entry": entries });
        assert_eq!(
            parse_post(&bundle, &org()).unwrap().len(),
            AUDIT_EVENTS_PER_POST_MAX
        );
    }

    /// What a case is about, how it spoils the sample, the field the error must name.
    type Case = (&'static str, fn(&mut Value), &'static str);

    #[test]
    fn other_faults_name_their_field() {
        let cases: [Case; 7] = [
            (
                "no id",
                |e| {
                    e.as_object_mut().unwrap().remove("id");
                },
                "id",
            ),
            ("bad id", |e| e["id"] = json!("a b"), "id"),
            (
                "bad time",
                |e| e["recorded"] = json!("yesterday"),
                "recorded",
            ),
            (
                "no user",
                |e| e["agent"][2]["requestor"] = json!(false),
                "agent",
            ),
            (
                "bad hpr",
                |e| e["agent"][2]["who"]["identifier"]["value"] = json!("x1"),
                "agent[2].who.identifier.value",
            ),
            (
                "a create",
                |e| {
                    e["subtype"] = json!([]);
                    e["action"] = json!("C");
                },
                "action",
            ),
            ("bad outcome", |e| e["outcome"] = json!("1"), "outcome"),
        ];
        for (what, change, field) in cases {
            let mut e = sample("ev-1", ORG, PATIENT);
            change(&mut e);
            assert_eq!(field_of(&e), field, "{what}");
        }
        let twice = json!({ "resourceType": "Bundle", "type": "collection",
            "entry": [{ "resource": sample("a", ORG, PATIENT) }, { "resource": sample("a", ORG, PATIENT) }] });
        assert_eq!(field_of(&twice), "entry[1].resource.id");
        assert_eq!(
            field_of(&json!({ "resourceType": "Patient" })),
            "resourceType"
        );
    }

    #[test]
    fn exported_events_are_balp_shaped_and_post_back() {
        let stored = v1::AuditEvent {
            seq: 7,
            time: "2026-12-01T10:00:00.000Z".into(),
            actor: "personnel:1234567".into(),
            org: ORG.into(),
            patient: PATIENT.into(),
            action: "locator.lookup".into(),
            resource: "locator".into(),
            purpose: "treatment".into(),
            correlation_id: "req-1".into(),
            served_by: Some(2),
            served_journal_id: 0xabc,
            served_journal_seq: 41,
            ..Default::default()
        };
        let fhir = to_fhir(&stored);
        assert_eq!(fhir["id"], "kartotek-7");
        assert_eq!(
            fhir["agent"][2]["who"]["identifier"]["value"],
            "node/2/journal/0000000000000abc/seq/41"
        );
        assert_eq!(fhir["agent"][0]["requestor"], true);
        assert_eq!(fhir["entity"][0]["what"]["identifier"]["value"], PATIENT);
        // The shape is the one POST takes (as a read: `subtype` is Kartotek's action).
        let mut back = fhir.clone();
        back["action"] = json!("R");
        let parsed = parse_post(&back, &org()).unwrap();
        assert_eq!(parsed[0].event.patient, PATIENT);
        assert_eq!(parsed[0].event.actor, stored.actor);
        assert_eq!(parsed[0].event.correlation_id, "req-1");
    }
}
