//! The search parameters of `DocumentReference` searches, parsed and checked. Pure: no I/O.
//!
//! The same [`SearchParams`] reads a `GET` query string and a `POST …/_search` form body
//! (FHIR's two ways of searching; both may be given at once, as the FHIR spec allows). Every
//! parameter has a named maximum, unknown parameters are refused (400, naming the parameter
//! and the supported ones) rather than silently ignored, so a typo does not widen a search.

use kartotek_domain::ids::NationalIdKind;
use kartotek_domain::locator::{parse_national_id, parse_org_number};
use kartotek_domain::{NationalId, OrgNumber};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::audit::balp::{D_NUMBER_SYSTEM, NATIONAL_ID_SYSTEM, ORG_NUMBER_SYSTEM};
use crate::problem::HttpError;

/// Identifier system of the H-number (help number given by health services).
pub const H_NUMBER_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.4.3";

/// Longest `patient.identifier` / `custodian.identifier` value taken, in bytes (the longest
/// system, `|` and an 11-digit id fit with room to spare).
pub const IDENTIFIER_BYTES_MAX: usize = 128;
/// Longest `category` value taken, in bytes.
pub const CATEGORY_PARAM_BYTES_MAX: usize = 1024;
/// Most categories one `category` parameter may list (comma-separated, any of them).
pub const CATEGORIES_PER_SEARCH_MAX: usize = 32;
/// Longest query string plus form body taken, in bytes.
pub const SEARCH_INPUT_BYTES_MAX: usize = 4096;
/// Most `DocumentReference`s one search answers (`_count`, and the default).
pub const DOCUMENT_REFERENCES_MAX: usize = 1000;

/// The search parameters, as the query string or form body spell them. Each may be given
/// once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams, ToSchema)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Required: the patient, `urn:oid:2.16.578.1.12.4.1.4.1|<national id>` (fødselsnummer;
    /// D-number `…4.2|`, H-number `…4.3|`; a bare 11-digit id is taken too). Send it in a
    /// `POST /fhir/DocumentReference/_search` form to keep it out of URLs and access logs.
    #[serde(rename = "patient.identifier")]
    pub patient_identifier: Option<String>,
    /// Only pointers held by this organisation: `urn:oid:2.16.578.1.12.4.1.4.101|<org
    /// number>` (or the bare number).
    #[serde(rename = "custodian.identifier")]
    pub custodian_identifier: Option<String>,
    /// Only pointers with one of these categories (comma-separated; `code` or
    /// `urn:kartotek:locator-category|code`).
    pub category: Option<String>,
    /// `current` (the default: active entries) or `current,superseded` (also retired ones;
    /// `superseded` alone: only those).
    pub status: Option<String>,
    /// Most pointers answered (1 to 1000; default 1000). `Bundle.total` counts them all.
    #[serde(rename = "_count")]
    pub count: Option<String>,
    /// `json` or `application/fhir+json` (the only format served).
    #[serde(rename = "_format")]
    pub format: Option<String>,
}

/// A checked search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// Whose pointers.
    pub patient: NationalId,
    /// Only this custodian's.
    pub custodian: Option<OrgNumber>,
    /// Any of these categories (empty: all).
    pub categories: Vec<String>,
    /// Answer active entries (`current`).
    pub current: bool,
    /// Answer retired entries (`superseded`).
    pub superseded: bool,
    /// At most this many.
    pub count: usize,
}

/// The parameter names a search takes (for error messages and the CapabilityStatement).
pub const PARAMETER_NAMES: [&str; 6] = [
    "patient.identifier",
    "custodian.identifier",
    "category",
    "status",
    "_count",
    "_format",
];

/// Code system of the locator's data categories in `DocumentReference.category`.
pub const CATEGORY_SYSTEM: &str = "urn:kartotek:locator-category";

/// Parses a query string and/or form body (`application/x-www-form-urlencoded`, joined
/// with `&`) into a checked [`Search`].
pub fn parse(input: &str) -> Result<Search, HttpError> {
    if input.len() > SEARCH_INPUT_BYTES_MAX {
        return Err(HttpError::bad_request(
            "search",
            format!("the search parameters are longer than {SEARCH_INPUT_BYTES_MAX} bytes"),
        ));
    }
    let params: SearchParams = serde_urlencoded::from_str(input).map_err(|e| {
        HttpError::bad_request(
            "search",
            format!(
                "{e} (each parameter once; supported: {})",
                PARAMETER_NAMES.join(", ")
            ),
        )
    })?;
    params.check()
}

impl SearchParams {
    /// The checked search.
    pub fn check(&self) -> Result<Search, HttpError> {
        let patient = patient(self.patient_identifier.as_deref())?;
        let custodian = self
            .custodian_identifier
            .as_deref()
            .map(custodian)
            .transpose()?;
        let categories = categories(self.category.as_deref().unwrap_or_default())?;
        let (current, superseded) = status(self.status.as_deref())?;
        let count = match self.count.as_deref() {
            None => DOCUMENT_REFERENCES_MAX,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=DOCUMENT_REFERENCES_MAX).contains(n))
                .ok_or_else(|| {
                    HttpError::bad_request(
                        "_count",
                        format!("must be a number from 1 to {DOCUMENT_REFERENCES_MAX}"),
                    )
                })?,
        };
        if let Some(f) = self.format.as_deref()
            && !matches!(f, "json" | "application/fhir+json" | "application/json")
        {
            return Err(HttpError::bad_request(
                "_format",
                "only json (application/fhir+json) is served",
            ));
        }
        Ok(Search {
            patient,
            custodian,
            categories,
            current,
            superseded,
            count,
        })
    }
}

/// The identifier system a national id of `kind` is written with.
pub fn system_of(kind: NationalIdKind) -> &'static str {
    match kind {
        NationalIdKind::DNumber => D_NUMBER_SYSTEM,
        NationalIdKind::HNumber => H_NUMBER_SYSTEM,
        NationalIdKind::Ordinary | NationalIdKind::Synthetic => NATIONAL_ID_SYSTEM,
    }
}

fn patient(value: Option<&str>) -> Result<NationalId, HttpError> {
    const FIELD: &str = "patient.identifier";
    let value = value.filter(|v| !v.is_empty()).ok_or_else(|| {
        HttpError::bad_request(
            FIELD,
            format!("is required: {NATIONAL_ID_SYSTEM}|<national id>"),
        )
    })?;
    if value.len() > IDENTIFIER_BYTES_MAX {
        return Err(HttpError::bad_request(
            FIELD,
            format!("longer than {IDENTIFIER_BYTES_MAX} bytes"),
        ));
    }
    if value.contains(',') {
        return Err(HttpError::bad_request(
            FIELD,
            "one patient per search (no comma-separated list)",
        ));
    }
    let (system, id) = match value.split_once('|') {
        Some((system, id)) => (Some(system), id),
        None => (None, value),
    };
    let id = parse_national_id(FIELD, id).map_err(|e| HttpError::bad_request(e.field, e.reason))?;
    // Synthetic test ids are written with any of the three systems.
    let fits = match system {
        None | Some("") => true,
        Some(NATIONAL_ID_SYSTEM) => {
            matches!(
                id.kind(),
                NationalIdKind::Ordinary | NationalIdKind::Synthetic
            )
        }
        Some(D_NUMBER_SYSTEM) => {
            matches!(
                id.kind(),
                NationalIdKind::DNumber | NationalIdKind::Synthetic
            )
        }
        Some(H_NUMBER_SYSTEM) => {
            matches!(
                id.kind(),
                NationalIdKind::HNumber | NationalIdKind::Synthetic
            )
        }
        Some(_) => {
            return Err(HttpError::bad_request(
                FIELD,
                format!(
                    "the identifier system must be {NATIONAL_ID_SYSTEM} (fødselsnummer), \
                     {D_NUMBER_SYSTEM} (D-number) or {H_NUMBER_SYSTEM} (H-number)"
                ),
            ));
        }
    };
    if !fits {
        return Err(HttpError::bad_request(
            FIELD,
            format!(
                "the id is not of its system's kind: write it with system {}",
                system_of(id.kind())
            ),
        ));
    }
    Ok(id)
}

fn custodian(value: &str) -> Result<OrgNumber, HttpError> {
    const FIELD: &str = "custodian.identifier";
    if value.len() > IDENTIFIER_BYTES_MAX {
        return Err(HttpError::bad_request(
            FIELD,
            format!("longer than {IDENTIFIER_BYTES_MAX} bytes"),
        ));
    }
    let number = match value.split_once('|') {
        Some((ORG_NUMBER_SYSTEM | "", number)) => number,
        Some(_) => {
            return Err(HttpError::bad_request(
                FIELD,
                format!("the identifier system must be {ORG_NUMBER_SYSTEM} (org number)"),
            ));
        }
        None => value,
    };
    parse_org_number(FIELD, number).map_err(|e| HttpError::bad_request(e.field, e.reason))
}

fn categories(value: &str) -> Result<Vec<String>, HttpError> {
    const FIELD: &str = "category";
    if value.len() > CATEGORY_PARAM_BYTES_MAX {
        return Err(HttpError::bad_request(
            FIELD,
            format!("longer than {CATEGORY_PARAM_BYTES_MAX} bytes"),
        ));
    }
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for item in value.split(',') {
        let code = match item.split_once('|') {
            Some((CATEGORY_SYSTEM | "", code)) => code,
            Some(_) => {
                return Err(HttpError::bad_request(
                    FIELD,
                    format!("the code system must be {CATEGORY_SYSTEM} (or none)"),
                ));
            }
            None => item,
        };
        if code.is_empty() {
            return Err(HttpError::bad_request(FIELD, "an empty category"));
        }
        out.push(code.to_owned());
    }
    if out.len() > CATEGORIES_PER_SEARCH_MAX {
        return Err(HttpError::bad_request(
            FIELD,
            format!("more than {CATEGORIES_PER_SEARCH_MAX} categories"),
        ));
    }
    Ok(out)
}

fn status(value: Option<&str>) -> Result<(bool, bool), HttpError> {
    let Some(value) = value else {
        return Ok((true, false));
    };
    let (mut current, mut superseded) = (false, false);
    for s in value.split(',') {
        match s {
            "current" => current = true,
            "superseded" => superseded = true,
            _ => {
                return Err(HttpError::bad_request(
                    "status",
                    "must be current, superseded or current,superseded",
                ));
            }
        }
    }
    Ok((current, superseded))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FNR: &str = "15076500565";

    fn field_of(input: &str) -> String {
        match parse(input) {
            Err(HttpError::BadRequest { field, .. }) => field,
            other => panic!("{input}: {other:?}"),
        }
    }

    fn enc(s: &str) -> String {
        serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_owned()
    }

    #[test]
    fn the_token_form_of_the_patient_is_taken() {
        let s = parse(&format!(
            "patient.identifier={}",
            enc(&format!("{NATIONAL_ID_SYSTEM}|{FNR}"))
        ))
        .unwrap();
        assert_eq!(s.patient.as_str(), FNR);
        assert_eq!(
            (s.custodian, s.current, s.superseded, s.count),
            (None, true, false, DOCUMENT_REFERENCES_MAX)
        );
        assert!(s.categories.is_empty());
        // Bare, or with an empty system.
        assert_eq!(
            parse(&format!("patient.identifier={FNR}"))
                .unwrap()
                .patient
                .as_str(),
            FNR
        );
        assert_eq!(
            parse(&format!("patient.identifier=%7C{FNR}"))
                .unwrap()
                .patient
                .as_str(),
            FNR
        );
    }

    #[test]
    fn bad_identifiers_are_refused_naming_the_parameter() {
        for bad in [
            String::new(),
            "patient.identifier=".into(),
            "patient.identifier=15076500566".into(),
            format!(
                "patient.identifier={}",
                enc(&format!("urn:oid:1.2.3|{FNR}"))
            ),
            format!(
                "patient.identifier={}",
                enc(&format!("{D_NUMBER_SYSTEM}|{FNR}"))
            ),
            format!("patient.identifier={FNR},{FNR}"),
            format!(
                "patient.identifier={}",
                "1".repeat(IDENTIFIER_BYTES_MAX + 1)
            ),
        ] {
            assert_eq!(field_of(&bad), "patient.identifier", "{bad}");
        }
        // A D-number under the D-number system is taken; under the fødselsnummer system not.
        let d = "55076500565"; // 15 + 40
        if let Ok(id) = parse_national_id("x", d) {
            assert_eq!(id.kind(), NationalIdKind::DNumber);
            let ok = format!(
                "patient.identifier={}",
                enc(&format!("{D_NUMBER_SYSTEM}|{d}"))
            );
            assert_eq!(parse(&ok).unwrap().patient.as_str(), d);
            let wrong = format!(
                "patient.identifier={}",
                enc(&format!("{NATIONAL_ID_SYSTEM}|{d}"))
            );
            assert_eq!(field_of(&wrong), "patient.identifier");
        }
    }

    #[test]
    fn other_parameters_are_checked() {
        let base = format!("patient.identifier={FNR}");
        let s = parse(&format!(
            "{base}&custodian.identifier={}&category=Observation,{}&status=current,superseded&_count=5&_format=json",
            enc(&format!("{ORG_NUMBER_SYSTEM}|974760673")),
            enc(&format!("{CATEGORY_SYSTEM}|Condition")),
        ))
        .unwrap();
        assert_eq!(s.custodian.unwrap().as_str(), "974760673");
        assert_eq!(s.categories, ["Observation", "Condition"]);
        assert_eq!((s.current, s.superseded, s.count), (true, true, 5));
        assert_eq!(
            field_of(&format!("{base}&custodian.identifier=974760674")),
            "custodian.identifier"
        );
        assert_eq!(field_of(&format!("{base}&_count=0")), "_count");
        assert_eq!(field_of(&format!("{base}&_count=1001")), "_count");
        assert_eq!(field_of(&format!("{base}&status=retired")), "status");
        assert_eq!(field_of(&format!("{base}&_format=xml")), "_format");
        assert_eq!(field_of(&format!("{base}&category=a,,b")), "category");
        // Unknown and repeated parameters are refused, not ignored.
        assert_eq!(field_of(&format!("{base}&patient=x")), "search");
        assert_eq!(field_of(&format!("{base}&{base}")), "search");
        assert_eq!(field_of(&"a".repeat(SEARCH_INPUT_BYTES_MAX + 1)), "search");
    }
}
