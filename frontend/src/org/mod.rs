//! The organisation view: an organisation's compliance officer reviews its personnel's
//! accesses to patient data, by purpose of use and period, emergency overrides first.
//!
//! # Module map
//!
//! - this module: the query ([`OrgQuery`]), who may review ([`review_org`]), reading the
//!   organisation's audit events from the cluster ([`accesses`]) and the three handlers:
//!   `GET /org` (an HTML page), `GET /org/accesses.csv` (CSV) and `GET /org/accesses` (a
//!   FHIR R4 `Bundle` of IHE BALP `AuditEvent`s, the shape of [`crate::audit::balp::to_fhir`]).
//! - [`page`]: the page (maud; a GET form, no JavaScript).
//! - [`export`]: the CSV and FHIR renderings.
//!
//! # Who may review
//!
//! The caller needs an access token of this frontend's token service (`Authorization:
//! Bearer`) whose organisation is the one reviewed (the token's sub-unit or parent
//! organisation; `org` defaults to it, and naming another is refused 403 here), with the
//! audit-read scope `kartotek:audit.read`, which the cluster checks: the query
//! (`AuditService.Query` by organisation) is made **with the caller's token** and is itself
//! audited.
//!
//! # What is listed
//!
//! Every audit event of the organisation (Kartotek's own, and those its services forwarded)
//! about a patient, oldest to newest as the chain has them, read page by page up to
//! [`ORG_EVENTS_SCANNED_MAX`] from `from_seq`; then filtered by `from`/`to` (event time),
//! `purpose` and `overrides_only`, and sorted: emergency overrides first, then newest first.
//! When the scan stopped before the chain's end, the answer says where to go on
//! (`next_from_seq`).

pub mod export;
pub mod page;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kartotek_client::proto as v1;
use kartotek_domain::Timestamp;
use kartotek_domain::fields::Purpose;
use kartotek_domain::locator::parse_org_number;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::caller::{Authenticated, HttpCaller, MaybeCaller};
use crate::problem::HttpError;

/// The page.
pub const ORG_PATH: &str = "/org";
/// The CSV export.
pub const ORG_CSV_PATH: &str = "/org/accesses.csv";
/// The FHIR export.
pub const ORG_FHIR_PATH: &str = "/org/accesses";
/// Most audit events one view reads from the chain (pages of the cluster's maximum).
pub const ORG_EVENTS_SCANNED_MAX: usize = 10_000;
/// Most accesses one view lists (after filtering).
pub const ORG_ACCESSES_LISTED_MAX: usize = 5_000;
/// Longest `from` / `to` / `purpose` parameter taken, in bytes.
pub const ORG_PARAM_BYTES_MAX: usize = 64;

/// The parameters of the view (all three routes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrgQuery {
    /// The organisation (org number); default and only allowed value: the token's.
    pub org: String,
    /// Only accesses at or after this time (RFC 3339, or a date `YYYY-MM-DD`, UTC).
    pub from: String,
    /// Only accesses before this time (RFC 3339, or a date: before the end of that day).
    pub to: String,
    /// Only accesses with this purpose of use (e.g. `treatment`, `emergency`).
    pub purpose: String,
    /// Only emergency overrides (`true`).
    pub overrides_only: Option<bool>,
    /// Start reading the chain at this seq (`next_from_seq` of a view that stopped early).
    pub from_seq: Option<u64>,
}

/// A checked view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgView {
    /// The organisation reviewed.
    pub org: String,
    /// Inclusive lower bound (ms since the epoch).
    pub from: Option<Timestamp>,
    /// Exclusive upper bound.
    pub to: Option<Timestamp>,
    /// Only this purpose.
    pub purpose: Option<String>,
    /// Only overrides.
    pub overrides_only: bool,
    /// The chain seq to start at.
    pub from_seq: u64,
}

/// The accesses of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accesses {
    /// Matching events: overrides first, then newest first.
    pub events: Vec<v1::AuditEvent>,
    /// Events read from the chain.
    pub scanned: usize,
    /// Where to go on when the scan stopped before the chain's end.
    pub next_from_seq: Option<u64>,
    /// More matched than [`ORG_ACCESSES_LISTED_MAX`] (the rest are left out).
    pub truncated: bool,
}

fn time_param(field: &str, value: &str, end_of_day: bool) -> Result<Option<Timestamp>, HttpError> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > ORG_PARAM_BYTES_MAX {
        return Err(HttpError::bad_request(
            field,
            format!("longer than {ORG_PARAM_BYTES_MAX} bytes"),
        ));
    }
    if let Some(t) = Timestamp::parse_rfc3339(value) {
        return Ok(Some(t));
    }
    let day = Timestamp::parse_rfc3339(&format!("{value}T00:00:00Z")).ok_or_else(|| {
        HttpError::bad_request(field, "must be an RFC 3339 time or a date YYYY-MM-DD")
    })?;
    Ok(Some(if end_of_day {
        Timestamp(day.0 + 86_400_000)
    } else {
        day
    }))
}

/// The organisation `caller` reviews for `asked` (empty: the token's): only its own.
pub fn review_org(caller: &HttpCaller, asked: &str) -> Result<String, HttpError> {
    let own = caller.org().ok_or_else(|| HttpError::Forbidden {
        field: "authorization".into(),
        message: "the access token names no organisation: only an organisation's own \
                  compliance officer reviews its accesses"
            .into(),
    })?;
    if asked.is_empty() || asked == own {
        return Ok(own.to_owned());
    }
    let asked =
        parse_org_number("org", asked).map_err(|e| HttpError::bad_request(e.field, e.reason))?;
    Err(HttpError::Forbidden {
        field: "org".into(),
        message: format!(
            "organisation {asked} is not the token's ({own}): an organisation reviews only its \
             own personnel's accesses"
        ),
    })
}

impl OrgQuery {
    /// The checked view of `caller`.
    pub fn check(&self, caller: &HttpCaller) -> Result<OrgView, HttpError> {
        let org = review_org(caller, &self.org)?;
        let from = time_param("from", &self.from, false)?;
        let to = time_param("to", &self.to, true)?;
        if let (Some(f), Some(t)) = (from, to)
            && f.0 >= t.0
        {
            return Err(HttpError::bad_request("to", "must be after from"));
        }
        let purpose = if self.purpose.is_empty() {
            None
        } else {
            Some(
                Purpose::parse("purpose", &self.purpose)
                    .map_err(|e| HttpError::bad_request(e.field, e.reason))?
                    .as_str()
                    .to_owned(),
            )
        };
        Ok(OrgView {
            org,
            from,
            to,
            purpose,
            overrides_only: self.overrides_only.unwrap_or(false),
            from_seq: self.from_seq.unwrap_or(0),
        })
    }
}

impl OrgView {
    fn matches(&self, e: &v1::AuditEvent) -> bool {
        if e.patient.is_empty() {
            return false;
        }
        let time = Timestamp::parse_rfc3339(&e.time);
        self.from.is_none_or(|f| time.is_some_and(|t| t.0 >= f.0))
            && self.to.is_none_or(|to| time.is_some_and(|t| t.0 < to.0))
            && self.purpose.as_deref().is_none_or(|p| e.purpose == p)
            && (!self.overrides_only || e.emergency_override)
    }
}

/// Overrides first, then newest first (RFC 3339 UTC times of one format sort as text; the
/// chain seq breaks ties).
pub fn sort_accesses(events: &mut [v1::AuditEvent]) {
    events.sort_by(|a, b| {
        b.emergency_override
            .cmp(&a.emergency_override)
            .then_with(|| b.time.cmp(&a.time))
            .then_with(|| b.seq.cmp(&a.seq))
    });
}

/// The accesses of `view`, read with `caller`'s token.
pub(crate) async fn accesses(
    s: &AppState,
    caller: &HttpCaller,
    view: &OrgView,
) -> Result<Accesses, HttpError> {
    let client = caller.client(s)?;
    let page_max = kartotek_domain::limits::AUDIT_QUERY_LIMIT_MAX;
    let mut from_seq = view.from_seq;
    let mut scanned = 0usize;
    let mut events = Vec::new();
    let mut truncated = false;
    let next_from_seq = loop {
        let page = client
            .query_audit(v1::QueryAuditRequest {
                org: view.org.clone(),
                from_seq,
                limit: u32::try_from(page_max).unwrap_or(1000),
                ..Default::default()
            })
            .await?;
        scanned += page.events.len();
        for e in page.events {
            if view.matches(&e) {
                if events.len() < ORG_ACCESSES_LISTED_MAX {
                    events.push(e);
                } else {
                    truncated = true;
                }
            }
        }
        if page.next_seq == 0 {
            break None;
        }
        if scanned >= ORG_EVENTS_SCANNED_MAX {
            break Some(page.next_seq);
        }
        from_seq = page.next_seq;
    };
    sort_accesses(&mut events);
    Ok(Accesses {
        events,
        scanned,
        next_from_seq,
        truncated,
    })
}

/// The organisation's accesses as a page.
///
/// A table of its personnel's accesses to patient data (time, actor, patient, action,
/// purpose, decision), emergency overrides first and highlighted, filtered by period and
/// purpose (a GET form), with counts per purpose and links to the CSV and FHIR exports.
/// Needs the organisation's own token with `kartotek:audit.read`.
#[utoipa::path(
    get,
    path = "/org",
    tag = "pages",
    params(OrgQuery),
    responses(
        (status = 200, description = "The organisation view (HTML)", content_type = "text/html"),
        (status = 400, description = "A parameter is invalid", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No access token: a page saying how to get one (a token that does not verify: a problem document)", content_type = "text/html"),
        (status = 403, description = "Another organisation, or the token lacks kartotek:audit.read", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn org_page(
    State(s): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    Query(q): Query<OrgQuery>,
) -> Result<Response, HttpError> {
    // A person who follows the link from `/` without a token learns how to get one.
    let Some(caller) = caller else {
        return Ok(page::needs_token());
    };
    let view = q.check(&caller)?;
    let found = accesses(&s, &caller, &view).await?;
    Ok(page::render(&q, &view, &found, &s.personnel.names()).into_response())
}

/// The organisation's accesses as CSV.
///
/// One row per access (`seq,time,actor,org,patient,action,resource,purpose,decision,emergency_override,justification,on_behalf_of,correlation_id`), overrides first; the same filters as `/org`.
#[utoipa::path(
    get,
    path = "/org/accesses.csv",
    tag = "audit",
    params(OrgQuery),
    responses(
        (status = 200, description = "CSV (RFC 4180, header row)", content_type = "text/csv"),
        (status = 400, description = "A parameter is invalid", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another organisation, or the token lacks kartotek:audit.read", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn org_csv(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(q): Query<OrgQuery>,
) -> Result<Response, HttpError> {
    let view = q.check(&caller)?;
    let found = accesses(&s, &caller, &view).await?;
    let body = export::csv(&found.events)?;
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"accesses-{}.csv\"",
        view.org
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(next) = found.next_from_seq
        && let Ok(v) = HeaderValue::from_str(&next.to_string())
    {
        headers.insert("x-kartotek-next-from-seq", v);
    }
    Ok(response)
}

/// The organisation's accesses as a FHIR R4 Bundle of IHE BALP AuditEvents.
///
/// A searchset Bundle, overrides first; the same filters as `/org`; a `next` link when the scan stopped before the chain's end.
#[utoipa::path(
    get,
    path = "/org/accesses",
    tag = "audit",
    params(OrgQuery),
    responses(
        (status = 200, description = "A FHIR searchset Bundle of AuditEvents", content_type = "application/fhir+json"),
        (status = 400, description = "A parameter is invalid", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another organisation, or the token lacks kartotek:audit.read", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn org_fhir(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(q): Query<OrgQuery>,
) -> Result<Response, HttpError> {
    let view = q.check(&caller)?;
    let found = accesses(&s, &caller, &view).await?;
    let base = s.config.public_base_url.trim_end_matches('/');
    let bundle = export::bundle(&found, &q, base);
    Ok(crate::fhir::fhir_json(StatusCode::OK, &bundle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_take_dates_and_times_and_refuse_the_rest() {
        let day = time_param("from", "2026-12-01", false).unwrap().unwrap();
        assert_eq!(day.to_rfc3339(), "2026-12-01T00:00:00.000Z");
        let end = time_param("to", "2026-12-01", true).unwrap().unwrap();
        assert_eq!(end.to_rfc3339(), "2026-12-02T00:00:00.000Z");
        let t = time_param("from", "2026-12-01T10:00:00+01:00", false)
            .unwrap()
            .unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-01T09:00:00.000Z");
        assert_eq!(time_param("from", "", false).unwrap(), None);
        for bad in [
            "yesterday",
            "2026-13-01",
            &"1".repeat(ORG_PARAM_BYTES_MAX + 1),
        ] {
            match time_param("from", bad, false) {
                Err(HttpError::BadRequest { field, .. }) => assert_eq!(field, "from"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_view_matches_by_period_purpose_and_override() {
        let view = OrgView {
            org: "974760673".into(),
            from: time_param("from", "2026-12-01", false).unwrap(),
            to: time_param("to", "2026-12-01", true).unwrap(),
            purpose: Some("treatment".into()),
            overrides_only: false,
            from_seq: 0,
        };
        let e = v1::AuditEvent {
            time: "2026-12-01T23:59:59.000Z".into(),
            patient: "15076500565".into(),
            purpose: "treatment".into(),
            ..Default::default()
        };
        assert!(view.matches(&e));
        let late = v1::AuditEvent {
            time: "2026-12-02T00:00:00.000Z".into(),
            ..e.clone()
        };
        assert!(!view.matches(&late), "to is the end of its day");
        let other = v1::AuditEvent {
            purpose: "research".into(),
            ..e.clone()
        };
        assert!(!view.matches(&other));
        let no_patient = v1::AuditEvent {
            patient: String::new(),
            ..e.clone()
        };
        assert!(!view.matches(&no_patient), "not an access to patient data");
        let overrides = OrgView {
            overrides_only: true,
            ..view
        };
        assert!(!overrides.matches(&e));
        assert!(overrides.matches(&v1::AuditEvent {
            emergency_override: true,
            ..e
        }));
    }
}
