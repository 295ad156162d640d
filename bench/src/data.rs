//! Synthetic, valid locator entries: the same entry is registered in Kartotek and written to
//! etcd as JSON under `/locator/<patient>/<org>/<system>`.
//!
//! Patients are valid national ids (check digits computed) generated in a fixed order, so a
//! key index always names the same patient; organisations are valid org numbers.

use chrono::{Days, NaiveDate};
use kartotek_domain::ids::NationalIdKind;
use kartotek_domain::ids::testing::{national_id_from_parts, org_number_from_prefix};
use serde::Serialize;

/// Organisations the entries are spread over.
pub const ORGS: u32 = 16;
/// Categories every entry carries (realistic size of a locator entry).
pub const CATEGORIES: [&str; 3] = ["Observation", "Condition", "MedicationStatement"];
/// First birth date of the generated patients.
const FIRST_BIRTH: (i32, u32, u32) = (1940, 1, 1);
/// Individual numbers 000-499 are issued for births 1900-1999.
const INDIVIDUALS_PER_DAY: u16 = 500;

/// The first `n` synthetic patients, in a fixed order.
pub fn patients(n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    let (y, m, d) = FIRST_BIRTH;
    let Some(first) = NaiveDate::from_ymd_opt(y, m, d) else {
        return out;
    };
    let mut day = 0u64;
    while out.len() < n {
        let Some(date) = first.checked_add_days(Days::new(day)) else {
            break;
        };
        for i in 0..INDIVIDUALS_PER_DAY {
            if out.len() == n {
                break;
            }
            if let Some(p) = national_id_from_parts(date, i, NationalIdKind::Ordinary) {
                out.push(p.as_str().to_owned());
            }
        }
        day += 1;
    }
    out
}

/// `n` valid organisation numbers.
pub fn orgs(n: u32) -> Vec<String> {
    (0..n)
        .filter_map(|k| {
            let base = 91_000_000 + k * 100;
            (base..base + 100).find_map(org_number_from_prefix)
        })
        .map(|o| o.as_str().to_owned())
        .collect()
}

/// One locator entry as both systems store it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// National id.
    pub patient: String,
    /// Organisation number.
    pub org: String,
    /// Source system at the organisation.
    pub system: String,
    /// Resource categories.
    pub categories: Vec<String>,
    /// Where the data is fetched.
    pub endpoint_ref: String,
    /// First registration (RFC 3339), as Kartotek stores it.
    pub first_registered: String,
    /// Last update (RFC 3339).
    pub last_updated: String,
}

impl Entry {
    /// The entry for `patient` at `org`, system number `system`, written as version `seq`.
    pub fn new(patient: &str, org: &str, system: u32, seq: u64) -> Entry {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Entry {
            patient: patient.to_owned(),
            org: org.to_owned(),
            system: format!("dips-arena-{system}"),
            categories: CATEGORIES.iter().map(|c| (*c).to_owned()).collect(),
            endpoint_ref: format!("fhir-journal/{seq:012}"),
            first_registered: now.clone(),
            last_updated: now,
        }
    }

    /// The etcd key: `/locator/<patient>/<org>/<system>`.
    pub fn etcd_key(&self) -> String {
        format!("{}{}/{}", etcd_prefix(&self.patient), self.org, self.system)
    }

    /// The etcd value: the entry as JSON.
    pub fn etcd_value(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The etcd key prefix of every entry of `patient`.
pub fn etcd_prefix(patient: &str) -> String {
    format!("/locator/{patient}/")
}

/// The end of an etcd prefix range: the prefix with its last byte incremented.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The keyspace of a run: `patients` × `systems` entries spread over [`ORGS`] organisations.
#[derive(Debug, Clone)]
pub struct Keyspace {
    /// Patient ids, index = key number / systems.
    pub patients: Vec<String>,
    /// Organisation numbers.
    pub orgs: Vec<String>,
    /// Entries per patient (each a different source system).
    pub systems: u32,
}

impl Keyspace {
    /// A keyspace of `entries` entries, `systems` per patient.
    pub fn new(entries: usize, systems: u32) -> Keyspace {
        let systems = systems.max(1);
        let n = entries.div_ceil(systems as usize);
        Keyspace {
            patients: patients(n),
            orgs: orgs(ORGS),
            systems,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.patients.len() * self.systems as usize
    }

    /// Entry number `key` written as version `seq`.
    pub fn entry(&self, key: usize, seq: u64) -> Entry {
        let systems = self.systems as usize;
        let p = (key / systems) % self.patients.len().max(1);
        let patient = self.patients.get(p).map(String::as_str).unwrap_or("");
        let org = self
            .orgs
            .get(p % self.orgs.len().max(1))
            .map(String::as_str)
            .unwrap_or("");
        Entry::new(patient, org, (key % systems) as u32, seq)
    }

    /// The patient of key number `key`.
    pub fn patient(&self, key: usize) -> &str {
        let p = (key / self.systems as usize) % self.patients.len().max(1);
        self.patients.get(p).map(String::as_str).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_entries_about_256_bytes() {
        let ks = Keyspace::new(2000, 2);
        assert_eq!(ks.len(), 2000);
        let mut p = ks.patients.clone();
        p.sort();
        p.dedup();
        assert_eq!(p.len(), 1000);
        assert_eq!(ks.orgs.len(), ORGS as usize);
        let v = ks.entry(7, 1).etcd_value();
        assert!((200..300).contains(&v.len()), "{} bytes", v.len());
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
    }
}
