//! The organisation view's exports: CSV (RFC 4180, a header row, written with the `csv`
//! crate) and a FHIR R4 searchset `Bundle` of IHE BALP `AuditEvent`s
//! ([`crate::audit::balp::to_fhir`], the shape of `GET /api/v1/audit-events`).

use kartotek_client::proto as v1;
use serde_json::{Value, json};

use super::{Accesses, ORG_FHIR_PATH, OrgQuery};
use crate::audit::balp;
use crate::problem::HttpError;

/// The CSV columns.
pub const CSV_HEADER: [&str; 13] = [
    "seq",
    "time",
    "actor",
    "org",
    "patient",
    "action",
    "resource",
    "purpose",
    "decision",
    "emergency_override",
    "justification",
    "on_behalf_of",
    "correlation_id",
];

/// A cell as written: text a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab,
/// carriage return first) gets a leading `'`.
fn cell(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

/// `events` as CSV.
pub fn csv(events: &[v1::AuditEvent]) -> Result<Vec<u8>, HttpError> {
    let fail = |e: csv::Error| HttpError::Internal(format!("writing CSV: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER).map_err(fail)?;
    for e in events {
        let seq = e.seq.to_string();
        let row = [
            seq.as_str(),
            &e.time,
            &e.actor,
            &e.org,
            &e.patient,
            &e.action,
            &e.resource,
            &e.purpose,
            &e.decision,
            if e.emergency_override {
                "true"
            } else {
                "false"
            },
            &e.justification,
            &e.on_behalf_of,
            &e.correlation_id,
        ];
        w.write_record(row.iter().map(|c| cell(c))).map_err(fail)?;
    }
    w.into_inner()
        .map_err(|e| HttpError::Internal(format!("writing CSV: {e}")))
}

/// The query string of `q` with `from_seq` replaced (for the `self` / `next` links).
pub fn query_string(q: &OrgQuery, from_seq: Option<u64>) -> String {
    let overrides = q.overrides_only.map(|b| b.to_string()).unwrap_or_default();
    let seq = from_seq.map(|s| s.to_string()).unwrap_or_default();
    let pairs: Vec<(&str, &str)> = [
        ("org", q.org.as_str()),
        ("from", q.from.as_str()),
        ("to", q.to.as_str()),
        ("purpose", q.purpose.as_str()),
        ("overrides_only", overrides.as_str()),
        ("from_seq", seq.as_str()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .collect();
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// The accesses as a searchset `Bundle` of BALP `AuditEvent`s.
pub fn bundle(found: &Accesses, q: &OrgQuery, base: &str) -> Value {
    let url = |from_seq| {
        let qs = query_string(q, from_seq);
        if qs.is_empty() {
            format!("{base}{ORG_FHIR_PATH}")
        } else {
            format!("{base}{ORG_FHIR_PATH}?{qs}")
        }
    };
    let mut links = vec![json!({ "relation": "self", "url": url(q.from_seq) })];
    if let Some(next) = found.next_from_seq {
        links.push(json!({ "relation": "next", "url": url(Some(next)) }));
    }
    let mut entries: Vec<Value> = found
        .events
        .iter()
        .map(|e| {
            json!({
                "fullUrl": format!("urn:kartotek:audit:{}", e.seq),
                "resource": balp::to_fhir(e),
                "search": { "mode": "match" },
            })
        })
        .collect();
    if found.truncated {
        entries.push(json!({
            "resource": crate::fhir::outcome::warning(&format!(
                "more than {} accesses matched: narrow the period", super::ORG_ACCESSES_LISTED_MAX
            )),
            "search": { "mode": "outcome" },
        }));
    }
    let mut b = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": found.events.len(),
        "link": links,
    });
    if !entries.is_empty() {
        b["entry"] = Value::Array(entries);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, override_: bool, justification: &str) -> v1::AuditEvent {
        v1::AuditEvent {
            seq,
            time: format!("2026-12-01T10:00:0{seq}.000Z"),
            actor: "personnel:1234567".into(),
            org: "974760673".into(),
            patient: "15076500565".into(),
            action: "access.decide".into(),
            purpose: "emergency".into(),
            decision: "permit_by_override".into(),
            emergency_override: override_,
            justification: justification.into(),
            hash: "ab".into(),
            prev_hash: "cd".into(),
            ..Default::default()
        }
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let out = String::from_utf8(
            csv(&[event(1, true, "=HYPERLINK(\"x\"), \"quoted\"\nline")]).unwrap(),
        )
        .unwrap();
        let mut lines = out.lines();
        assert_eq!(lines.next().unwrap(), CSV_HEADER.join(","));
        let mut r = csv::Reader::from_reader(out.as_bytes());
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[4], "15076500565");
        assert_eq!(&row[9], "true");
        assert_eq!(&row[10], "'=HYPERLINK(\"x\"), \"quoted\"\nline");
    }

    #[test]
    fn overrides_come_first_then_newest() {
        let mut events = vec![
            event(1, false, ""),
            event(2, true, "j"),
            event(3, false, ""),
        ];
        super::super::sort_accesses(&mut events);
        let order: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(order, [2, 3, 1]);
    }

    #[test]
    fn the_bundle_is_valid_fhir_r4() {
        let v = crate::fhir::schema_validator();
        let found = Accesses {
            events: vec![event(2, true, "unconscious"), event(1, false, "")],
            scanned: 2,
            next_from_seq: Some(3),
            truncated: true,
        };
        let q = OrgQuery {
            purpose: "emergency".into(),
            ..Default::default()
        };
        let b = bundle(&found, &q, "http://f");
        crate::fhir::assert_valid_fhir(&v, &b);
        assert_eq!(b["total"], 2);
        assert_eq!(
            b["link"][1]["url"],
            "http://f/org/accesses?purpose=emergency&from_seq=3"
        );
        assert_eq!(b["entry"][2]["search"]["mode"], "outcome");
    }
}
