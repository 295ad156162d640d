//! Patient information locator entries: "organisation X, system Y holds records about patient P".
//!
//! The key is `(patient, org, system)`. Register is an idempotent upsert (registering the same
//! content again changes nothing and keeps the revision), retire marks an entry retired (kept for
//! reconciliation and audit). The apply functions are pure: the state machine feeds them the
//! existing record, the leader-stamped time and the next revision.

use serde::{Deserialize, Serialize};

use crate::error::{ApplyError, ValidationError};
use crate::fields::check_token;
use crate::ids::{NationalId, OrgNumber};
use crate::limits::{
    CATEGORIES_PER_ENTRY_MAX, CATEGORY_BYTES_MAX, ENDPOINT_REF_BYTES_MAX, SYSTEM_ID_BYTES_MAX,
};
use crate::time::Timestamp;

/// The organisation's name for a system that holds records (e.g. `dips-arena`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SystemId(String);

impl SystemId {
    /// Validates a system id: 1..=[`SYSTEM_ID_BYTES_MAX`] bytes of visible ASCII
    /// (`A-Z a-z 0-9 . _ - : /`).
    pub fn parse(field: &str, s: &str) -> Result<Self, ValidationError> {
        check_token(field, s, SYSTEM_ID_BYTES_MAX)?;
        Ok(SystemId(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validates a national id sent in `field`, naming the field in the error.
pub fn parse_national_id(field: &str, s: &str) -> Result<NationalId, ValidationError> {
    NationalId::parse(s).map_err(|e| ValidationError::new(field, e.to_string()))
}

/// Validates an org number sent in `field`, naming the field in the error.
pub fn parse_org_number(field: &str, s: &str) -> Result<OrgNumber, ValidationError> {
    OrgNumber::parse(s).map_err(|e| ValidationError::new(field, e.to_string()))
}

/// Identifies one locator entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LocatorKey {
    /// The patient the records are about.
    pub patient: NationalId,
    /// The organisation holding them.
    pub org: OrgNumber,
    /// The system at that organisation.
    pub system: SystemId,
}

impl LocatorKey {
    /// Validates the three key fields as sent by a caller.
    pub fn parse(patient: &str, org: &str, system: &str) -> Result<Self, ValidationError> {
        let patient = parse_national_id("patient", patient)?;
        let org = parse_org_number("org", org)?;
        let system = SystemId::parse("system", system)?;
        Ok(LocatorKey {
            patient,
            org,
            system,
        })
    }
}

/// Whether an entry is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocatorStatus {
    /// The organisation holds records about the patient.
    Active,
    /// No longer in use; kept for reconciliation and audit.
    Retired,
}

/// A validated register (upsert) request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatorRegister {
    /// Which entry.
    pub key: LocatorKey,
    /// Data categories, sorted and without duplicates (so equal sets compare equal).
    pub categories: Vec<String>,
    /// API catalog id of the endpoint, if any.
    pub endpoint_ref: Option<String>,
}

impl LocatorRegister {
    /// Validates a register request as sent by a caller.
    pub fn parse(
        patient: &str,
        org: &str,
        system: &str,
        categories: &[String],
        endpoint_ref: &str,
    ) -> Result<Self, ValidationError> {
        let key = LocatorKey::parse(patient, org, system)?;
        if categories.len() > CATEGORIES_PER_ENTRY_MAX {
            return Err(ValidationError::new(
                "categories",
                format!(
                    "has {} items, at most {CATEGORIES_PER_ENTRY_MAX} allowed",
                    categories.len()
                ),
            ));
        }
        for (i, c) in categories.iter().enumerate() {
            check_token(&format!("categories[{i}]"), c, CATEGORY_BYTES_MAX)?;
        }
        let mut categories = categories.to_vec();
        categories.sort();
        categories.dedup();
        let endpoint_ref = if endpoint_ref.is_empty() {
            None
        } else {
            check_token("endpoint_ref", endpoint_ref, ENDPOINT_REF_BYTES_MAX)?;
            Some(endpoint_ref.to_owned())
        };
        Ok(LocatorRegister {
            key,
            categories,
            endpoint_ref,
        })
    }
}

/// A stored locator entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatorEntry {
    /// Which entry.
    pub key: LocatorKey,
    /// Data categories, sorted, unique.
    pub categories: Vec<String>,
    /// API catalog id of the endpoint, if any.
    pub endpoint_ref: Option<String>,
    /// Active or retired.
    pub status: LocatorStatus,
    /// When the entry was first registered (leader time).
    pub first_registered: Timestamp,
    /// When the entry last changed (leader time).
    pub last_updated: Timestamp,
    /// State revision at which the entry was created.
    pub create_revision: u64,
    /// State revision at which the entry last changed.
    pub mod_revision: u64,
}

/// Applies a register (upsert). Returns the entry and whether anything changed; when nothing
/// changed the existing entry is returned untouched (same `mod_revision`).
pub fn apply_register(
    existing: Option<&LocatorEntry>,
    reg: &LocatorRegister,
    now: Timestamp,
    next_revision: u64,
) -> (LocatorEntry, bool) {
    match existing {
        Some(e)
            if e.status == LocatorStatus::Active
                && e.categories == reg.categories
                && e.endpoint_ref == reg.endpoint_ref =>
        {
            (e.clone(), false)
        }
        Some(e) => (
            LocatorEntry {
                key: e.key.clone(),
                categories: reg.categories.clone(),
                endpoint_ref: reg.endpoint_ref.clone(),
                status: LocatorStatus::Active,
                first_registered: e.first_registered,
                last_updated: now,
                create_revision: e.create_revision,
                mod_revision: next_revision,
            },
            true,
        ),
        None => (
            LocatorEntry {
                key: reg.key.clone(),
                categories: reg.categories.clone(),
                endpoint_ref: reg.endpoint_ref.clone(),
                status: LocatorStatus::Active,
                first_registered: now,
                last_updated: now,
                create_revision: next_revision,
                mod_revision: next_revision,
            },
            true,
        ),
    }
}

/// Applies a compare-and-set register: like [`apply_register`], but only when the existing
/// entry's `mod_revision` is `expected` (0: the entry must not exist); otherwise
/// [`ApplyError::Conflict`] and nothing changes.
pub fn apply_compare_and_register(
    existing: Option<&LocatorEntry>,
    reg: &LocatorRegister,
    expected: u64,
    now: Timestamp,
    next_revision: u64,
) -> Result<(LocatorEntry, bool), ApplyError> {
    let found = existing.map_or(0, |e| e.mod_revision);
    if found != expected {
        // The entry's revision is not told: it is the entry's data, read only by a lookup,
        // which is audited.
        return Err(ApplyError::Conflict(format!(
            "the entry's mod_revision is not {expected}; look it up for the current one"
        )));
    }
    Ok(apply_register(existing, reg, now, next_revision))
}

/// Applies a retire. Retiring a retired entry changes nothing; retiring an unknown entry is
/// [`ApplyError::NotFound`].
pub fn apply_retire(
    existing: Option<&LocatorEntry>,
    now: Timestamp,
    next_revision: u64,
) -> Result<(LocatorEntry, bool), ApplyError> {
    match existing {
        None => Err(ApplyError::NotFound("locator entry".into())),
        Some(e) if e.status == LocatorStatus::Retired => Ok((e.clone(), false)),
        Some(e) => Ok((
            LocatorEntry {
                status: LocatorStatus::Retired,
                last_updated: now,
                mod_revision: next_revision,
                ..e.clone()
            },
            true,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::testing::{national_id_from_parts, org_number_from_prefix};
    use proptest::prelude::*;

    fn patient() -> String {
        let date = chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap_or_default();
        (0..1000u16)
            .find_map(|i| national_id_from_parts(date, i, crate::ids::NationalIdKind::Ordinary))
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default()
    }

    fn org() -> String {
        (10_000_000..10_000_100u32)
            .find_map(org_number_from_prefix)
            .map(|o| o.as_str().to_owned())
            .unwrap_or_default()
    }

    fn reg(categories: &[&str]) -> LocatorRegister {
        let cats: Vec<String> = categories.iter().map(|s| s.to_string()).collect();
        match LocatorRegister::parse(&patient(), &org(), "ehr-1", &cats, "api-1") {
            Ok(r) => r,
            Err(e) => panic!("fixture must be valid: {e}"),
        }
    }

    #[test]
    fn register_is_idempotent_upsert() {
        let r = reg(&["Observation", "Condition"]);
        let (e1, changed) = apply_register(None, &r, Timestamp(10), 1);
        assert!(changed);
        assert_eq!(e1.categories, vec!["Condition", "Observation"]);
        let (e2, changed) = apply_register(Some(&e1), &r, Timestamp(20), 2);
        assert!(!changed);
        assert_eq!(e2, e1);
        let (e3, changed) = apply_register(Some(&e1), &reg(&["Condition"]), Timestamp(30), 3);
        assert!(changed);
        assert_eq!(e3.first_registered, Timestamp(10));
        assert_eq!(e3.last_updated, Timestamp(30));
        assert_eq!((e3.create_revision, e3.mod_revision), (1, 3));
    }

    #[test]
    fn compare_and_register_checks_the_revision() {
        let r = reg(&["Observation"]);
        assert!(apply_compare_and_register(None, &r, 5, Timestamp(1), 1).is_err());
        let (e1, changed) = apply_compare_and_register(None, &r, 0, Timestamp(1), 1)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(changed);
        assert!(matches!(
            apply_compare_and_register(Some(&e1), &r, 0, Timestamp(2), 2),
            Err(ApplyError::Conflict(_))
        ));
        let (e2, changed) =
            apply_compare_and_register(Some(&e1), &reg(&["Condition"]), 1, Timestamp(2), 2)
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(changed);
        assert_eq!(e2.mod_revision, 2);
    }

    #[test]
    fn retire_then_register_reactivates() {
        let r = reg(&["Observation"]);
        let (e1, _) = apply_register(None, &r, Timestamp(10), 1);
        assert_eq!(
            apply_retire(None, Timestamp(11), 2),
            Err(ApplyError::NotFound("locator entry".into()))
        );
        let (e2, changed) =
            apply_retire(Some(&e1), Timestamp(12), 2).unwrap_or((e1.clone(), false));
        assert!(changed);
        assert_eq!(e2.status, LocatorStatus::Retired);
        let (e3, changed) = apply_retire(Some(&e2), Timestamp(13), 3).unwrap_or((e1.clone(), true));
        assert!(!changed);
        assert_eq!(e3, e2);
        let (e4, changed) = apply_register(Some(&e2), &r, Timestamp(14), 3);
        assert!(changed);
        assert_eq!(e4.status, LocatorStatus::Active);
    }

    /// patient, org, system, categories, endpoint_ref, the field the error must name.
    type BadCase = (String, String, String, Vec<String>, String, &'static str);

    #[test]
    fn bad_input_names_the_field() {
        let cases: Vec<BadCase> = vec![
            (
                "123".into(),
                org(),
                "s".into(),
                vec![],
                String::new(),
                "patient",
            ),
            (
                patient(),
                "123456789".into(),
                "s".into(),
                vec![],
                String::new(),
                "org",
            ),
            (
                patient(),
                org(),
                String::new(),
                vec![],
                String::new(),
                "system",
            ),
            (
                patient(),
                org(),
                "x".repeat(129),
                vec![],
                String::new(),
                "system",
            ),
            (
                patient(),
                org(),
                "a b".into(),
                vec![],
                String::new(),
                "system",
            ),
            (
                patient(),
                org(),
                "s".into(),
                vec!["ok".into(), "no way".into()],
                String::new(),
                "categories[1]",
            ),
            (
                patient(),
                org(),
                "s".into(),
                vec!["c".into(); 33],
                String::new(),
                "categories",
            ),
            (
                patient(),
                org(),
                "s".into(),
                vec![],
                "x\n".into(),
                "endpoint_ref",
            ),
        ];
        for (p, o, s, c, e, field) in cases {
            match LocatorRegister::parse(&p, &o, &s, &c, &e) {
                Err(err) => assert_eq!(err.field, field, "{err}"),
                Ok(_) => panic!("accepted bad input for {field}"),
            }
        }
    }

    proptest! {
        /// Whatever order and duplicates categories arrive in, the stored set is canonical, so a
        /// re-registration of the same set is never a change.
        #[test]
        fn categories_are_canonical(mut cats in proptest::collection::vec("[A-Za-z]{1,8}", 0..10)) {
            let p = patient();
            let o = org();
            let a = LocatorRegister::parse(&p, &o, "s", &cats, "");
            cats.reverse();
            let dup: Vec<String> = cats.iter().chain(cats.iter()).cloned().collect();
            let b = LocatorRegister::parse(&p, &o, "s", &dup, "");
            let (a, b) = match (a, b) { (Ok(a), Ok(b)) => (a, b), _ => return Err(TestCaseError::fail("valid input rejected")) };
            let (e, _) = apply_register(None, &a, Timestamp(1), 1);
            let (_, changed) = apply_register(Some(&e), &b, Timestamp(2), 2);
            prop_assert!(!changed);
        }

        /// Arbitrary strings never panic the validator.
        #[test]
        fn arbitrary_input_never_panics(p in ".*", o in ".*", s in ".*", c in proptest::collection::vec(".*", 0..40), e in ".*") {
            let _ = LocatorRegister::parse(&p, &o, &s, &c, &e);
        }
    }
}
