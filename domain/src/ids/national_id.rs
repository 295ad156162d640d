//! Norwegian national identity numbers: [`NationalId`] (fødselsnummer, D-numbers, H-numbers
//! and synthetic test numbers).
//!
//! A patient is keyed by this number everywhere in Kartotek, so it is validated in full at the
//! API edge (length, digits, both mod-11 check digits, a real birth date) before a command that
//! names it is proposed to Raft and written to the replicated log. It is personal data:
//! `Display` and `Debug` show only the date part, and [`NationalId::log_hash`] correlates log
//! lines without the number in clear text.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::{IdError, NATIONAL_ID_LEN, digits_exact, mod11_check_digit};

/// Weights of the first check digit (position 10), over digits 1-9.
pub(super) const K1_WEIGHTS: [u8; 9] = [3, 7, 6, 1, 8, 9, 4, 5, 2];
/// Weights of the second check digit (position 11), over digits 1-10.
pub(super) const K2_WEIGHTS: [u8; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
/// Added to the day of a D-number.
pub(super) const D_NUMBER_DAY_OFFSET: u32 = 40;
/// Added to the month of an H-number.
pub(super) const H_NUMBER_MONTH_OFFSET: u32 = 40;
/// Added to the month of a synthetic test number.
pub(super) const SYNTHETIC_MONTH_OFFSET: u32 = 80;
/// Digits of the date part, shown by the redacted form.
const DATE_PART_LEN: usize = 6;

/// What kind of national id a [`NationalId`] is, read from the offsets on its date part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NationalIdKind {
    /// A fødselsnummer: the date part is the birth date as is.
    Ordinary,
    /// A D-number (for people not resident in Norway): 40 added to the day.
    DNumber,
    /// An H-number (a help number assigned by health services): 40 added to the month.
    HNumber,
    /// A synthetic test number (as in Norway's synthetic test population): 80 added to the
    /// month. A synthetic D-number (40 added to the day as well) is also of this kind.
    Synthetic,
}

/// A valid Norwegian national identity number: 11 digits `DDMMYYIIIKK`.
///
/// `DDMMYY` is the birth date (with the [`NationalIdKind`] offsets), `III` the individual number
/// and `KK` two mod-11 check digits. Equality, ordering and hashing follow the digits.
///
/// `Display` and `Debug` are redacted to `DDMMYY*****` (see [`NationalId::redacted`]); use
/// [`NationalId::as_str`] where the full number is needed (storage keys, outgoing calls). Serde
/// writes the full number (it is what is stored) and validates on read.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NationalId {
    // `id` comes first so that the derived ordering is the ordering of the digits; the other
    // fields are functions of it.
    /// The 11 ASCII digits.
    id: String,
    /// Decoded from the date part.
    kind: NationalIdKind,
    /// Decoded from the date part and the individual number.
    birth_date: NaiveDate,
}

impl NationalId {
    /// Validates a national id: exactly [`NATIONAL_ID_LEN`] ASCII digits (no spaces or
    /// separators), both check digits right, and a real birth date.
    ///
    /// Checks, in order: [`IdError::Empty`], [`IdError::NotDigits`],
    /// [`IdError::WrongLength`], [`IdError::BadCheckDigit`] (position 10, then 11),
    /// [`IdError::InvalidDate`] (day, month, their offsets), [`IdError::InvalidIndividualNumber`]
    /// (no century for this individual number and year), [`IdError::InvalidDate`] (the date
    /// does not exist in that year, e.g. 29 February 1900).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let digits: [u8; NATIONAL_ID_LEN] = digits_exact(s)?;
        let [d1, d2, m1, m2, y1, y2, i1, i2, i3, k1, k2] = digits;
        if mod11_check_digit(&digits, &K1_WEIGHTS) != Some(k1) {
            return Err(IdError::BadCheckDigit { position: 10 });
        }
        if mod11_check_digit(&digits, &K2_WEIGHTS) != Some(k2) {
            return Err(IdError::BadCheckDigit { position: 11 });
        }

        let day_field = two_digits(d1, d2);
        let month_field = two_digits(m1, m2);
        let (day, d_offset) = match day_field {
            1..=31 => (day_field, false),
            41..=71 => (day_field - D_NUMBER_DAY_OFFSET, true),
            _ => return Err(IdError::InvalidDate),
        };
        let (month, month_kind) = match month_field {
            1..=12 => (month_field, NationalIdKind::Ordinary),
            41..=52 => (month_field - H_NUMBER_MONTH_OFFSET, NationalIdKind::HNumber),
            81..=92 => (
                month_field - SYNTHETIC_MONTH_OFFSET,
                NationalIdKind::Synthetic,
            ),
            _ => return Err(IdError::InvalidDate),
        };
        let kind = match (d_offset, month_kind) {
            (false, kind) => kind,
            (true, NationalIdKind::Ordinary) => NationalIdKind::DNumber,
            (true, NationalIdKind::Synthetic) => NationalIdKind::Synthetic,
            // A number is either a D-number or an H-number, never both.
            (true, _) => return Err(IdError::InvalidDate),
        };

        let yy = u16::from(y1) * 10 + u16::from(y2);
        let individual = u16::from(i1) * 100 + u16::from(i2) * 10 + u16::from(i3);
        let year = birth_year(yy, individual).ok_or(IdError::InvalidIndividualNumber)?;
        let birth_date = NaiveDate::from_ymd_opt(year, month, day).ok_or(IdError::InvalidDate)?;

        Ok(NationalId {
            id: s.to_owned(),
            kind,
            birth_date,
        })
    }

    /// The full 11-digit number. This is personal data: do not log it (use
    /// [`NationalId::redacted`] or [`NationalId::log_hash`]).
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// Ordinary fødselsnummer, D-number, H-number or synthetic test number.
    pub fn kind(&self) -> NationalIdKind {
        self.kind
    }

    /// The birth date encoded in the number, with the kind's offsets removed.
    ///
    /// The century comes from the individual number `III` and the year `YY`:
    /// `000-499` → 1900-1999; `500-749` with `YY` 54-99 → 1854-1899; `500-999` with `YY` 00-39
    /// → 2000-2039; `900-999` with `YY` 40-99 → 1940-1999. No other combination is valid.
    pub fn birth_date(&self) -> NaiveDate {
        self.birth_date
    }

    /// Age in completed years on `date`: the number of birthdays up to and including `date`.
    ///
    /// Someone born on 29 February has a birthday on 1 March in years without one. A `date`
    /// before the birth date gives 0.
    pub fn age_on(&self, date: NaiveDate) -> u32 {
        let birth = self.birth_date;
        if date <= birth {
            return 0;
        }
        let mut years = date.year() - birth.year();
        if (date.month(), date.day()) < (birth.month(), birth.day()) {
            years -= 1;
        }
        u32::try_from(years).unwrap_or(0)
    }

    /// The number with everything after the date part masked: `DDMMYY*****` (the date part as
    /// written, offsets included). This is what `Display` and `Debug` show.
    pub fn redacted(&self) -> String {
        let date_part = self.id.get(..DATE_PART_LEN).unwrap_or_default();
        format!("{date_part}{}", "*".repeat(NATIONAL_ID_LEN - DATE_PART_LEN))
    }

    /// A keyed pseudonym of the number (16 hex characters of an HMAC-SHA256 under the
    /// process's log hash key; see [`log_hash`](super::log_hash)), for correlating log lines
    /// about the same person without writing the number in clear text. Without the key it
    /// cannot be turned back into the number; [`NO_LOG_HASH_KEY`](super::log_hash::NO_LOG_HASH_KEY)
    /// until a key is set.
    pub fn log_hash(&self) -> String {
        super::log_hash::log_hash(&self.id)
    }
}

/// The value of two decimal digits.
fn two_digits(tens: u8, ones: u8) -> u32 {
    u32::from(tens) * 10 + u32::from(ones)
}

/// The four-digit birth year from the two-digit year `yy` (0-99) and the individual number
/// (0-999), or `None` when that individual number is not issued for that year.
pub(super) fn birth_year(yy: u16, individual: u16) -> Option<i32> {
    let yy = i32::from(yy);
    match individual {
        0..=499 => Some(1900 + yy),
        500..=749 if yy >= 54 => Some(1800 + yy),
        500..=999 if yy <= 39 => Some(2000 + yy),
        900..=999 if yy >= 40 => Some(1900 + yy),
        _ => None,
    }
}

impl fmt::Display for NationalId {
    /// The redacted form `DDMMYY*****`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for NationalId {
    /// `NationalId("DDMMYY*****")`: redacted like `Display`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("NationalId").field(&self.redacted()).finish()
    }
}

impl FromStr for NationalId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NationalId::parse(s)
    }
}

impl TryFrom<String> for NationalId {
    type Error = IdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        NationalId::parse(&s)
    }
}

impl From<NationalId> for String {
    fn from(id: NationalId) -> String {
        id.id
    }
}

#[cfg(test)]
mod tests {
    use std::ops::RangeInclusive;

    use proptest::prelude::*;

    use super::*;
    use crate::ids::testing::{arb_national_id, arb_national_id_parts, national_id_from_parts};

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    fn parse_ok(s: &str) -> NationalId {
        match NationalId::parse(s) {
            Ok(id) => id,
            Err(e) => panic!("expected a valid national id, got {e}"),
        }
    }

    /// Completes nine digits with both check digits, or `None` if one would be 10. Unlike
    /// [`national_id_from_parts`] it does not validate the date, so invalid dates can be tested.
    fn with_check_digits(first9: &str) -> Option<String> {
        let mut digits: Vec<u8> = first9.bytes().map(|b| b - b'0').collect();
        let k1 = mod11_check_digit(&digits, &K1_WEIGHTS)?;
        digits.push(k1);
        let k2 = mod11_check_digit(&digits, &K2_WEIGHTS)?;
        digits.push(k2);
        Some(digits.iter().map(|d| char::from(b'0' + d)).collect())
    }

    /// Some valid individual number's id for the first nine digits' date part, trying `III`
    /// from `individuals`.
    fn first_valid(date_part: &str, mut individuals: RangeInclusive<u16>) -> String {
        individuals
            .find_map(|i| with_check_digits(&format!("{date_part}{i:03}")))
            .unwrap_or_default()
    }

    #[test]
    fn hand_checked_examples() {
        // 15076500565, checked by hand:
        //   k1: 3*1 + 7*5 + 6*0 + 1*7 + 8*6 + 9*5 + 4*0 + 5*0 + 2*5 = 148; 148 mod 11 = 5;
        //       11 - 5 = 6 (digit 10).
        //   k2: 5*1 + 4*5 + 3*0 + 2*7 + 7*6 + 6*5 + 5*0 + 4*0 + 3*5 + 2*6 = 138;
        //       138 mod 11 = 6; 11 - 6 = 5 (digit 11).
        // Individual number 005 -> 1900s.
        let id = parse_ok("15076500565");
        assert_eq!(id.kind(), NationalIdKind::Ordinary);
        assert_eq!(id.birth_date(), date(1965, 7, 15));
        assert_eq!(id.as_str(), "15076500565");

        // The worked example of the published check-digit calculation at fnrinfo.no:
        // 311299567 + check digits 1 and 5. Individual 567 with YY 99 -> 1899.
        let id = parse_ok("31129956715");
        assert_eq!(id.kind(), NationalIdKind::Ordinary);
        assert_eq!(id.birth_date(), date(1899, 12, 31));
    }

    #[test]
    fn helper_agrees_with_hand_checked_examples() {
        assert_eq!(
            national_id_from_parts(date(1965, 7, 15), 5, NationalIdKind::Ordinary)
                .map(|id| id.as_str().to_owned()),
            Some("15076500565".to_owned())
        );
        assert_eq!(
            national_id_from_parts(date(1899, 12, 31), 567, NationalIdKind::Ordinary)
                .map(|id| id.as_str().to_owned()),
            Some("31129956715".to_owned())
        );
    }

    #[test]
    fn every_kind_decodes() {
        let cases = [
            ("150765", NationalIdKind::Ordinary),
            ("550765", NationalIdKind::DNumber),
            ("154765", NationalIdKind::HNumber),
            ("158765", NationalIdKind::Synthetic),
            // Synthetic D-number: day + 40 and month + 80.
            ("558765", NationalIdKind::Synthetic),
        ];
        for (date_part, kind) in cases {
            let s = first_valid(date_part, 0..=499);
            let id = parse_ok(&s);
            assert_eq!(id.kind(), kind, "{date_part}");
            assert_eq!(id.birth_date(), date(1965, 7, 15), "{date_part}");
        }
        // Day offsets at the ends of the D-number range.
        assert_eq!(
            parse_ok(&first_valid("410190", 0..=499)).birth_date(),
            date(1990, 1, 1)
        );
        assert_eq!(
            parse_ok(&first_valid("711290", 0..=499)).birth_date(),
            date(1990, 12, 31)
        );
        // Month offsets at the ends of their ranges.
        for (part, month) in [("014190", 1), ("015290", 12), ("018190", 1), ("019290", 12)] {
            assert_eq!(
                parse_ok(&first_valid(part, 0..=499)).birth_date(),
                date(1990, month, 1),
                "{part}"
            );
        }
    }

    #[test]
    fn helper_builds_every_kind() {
        let born = date(2004, 2, 29);
        for kind in [
            NationalIdKind::Ordinary,
            NationalIdKind::DNumber,
            NationalIdKind::HNumber,
            NationalIdKind::Synthetic,
        ] {
            let built: Vec<NationalId> = (0..1000)
                .filter_map(|i| national_id_from_parts(born, i, kind))
                .collect();
            // 500 individual numbers are issued for 2004; some have a check digit of 10.
            assert!(
                built.len() > 300 && built.len() < 500,
                "{kind:?}: {}",
                built.len()
            );
            for id in built {
                assert_eq!((id.kind(), id.birth_date()), (kind, born));
            }
        }
    }

    #[test]
    fn century_rules() {
        // (date part, individual numbers to try (near a band's edge), birth year or None)
        let cases: [(&str, RangeInclusive<u16>, Option<i32>); 16] = [
            ("010100", 0..=9, Some(1900)),
            ("010199", 490..=499, Some(1999)),
            ("010139", 490..=499, Some(1939)),
            ("010154", 500..=509, Some(1854)),
            ("010199", 740..=749, Some(1899)),
            ("010153", 500..=509, None),
            ("010140", 740..=749, None),
            ("010100", 500..=509, Some(2000)),
            ("010139", 990..=999, Some(2039)),
            ("010139", 750..=759, Some(2039)),
            ("010140", 900..=909, Some(1940)),
            ("010199", 990..=999, Some(1999)),
            ("010140", 750..=759, None),
            ("010199", 890..=899, None),
            ("010154", 800..=809, None),
            ("010154", 890..=899, None),
        ];
        for (part, individuals, year) in cases {
            let s = first_valid(part, individuals.clone());
            let individual = s.get(6..9).and_then(|i| i.parse::<u16>().ok());
            assert!(
                individual.is_some_and(|i| individuals.contains(&i)),
                "{part} {individuals:?}"
            );
            let got = NationalId::parse(&s).map(|id| id.birth_date().year());
            match year {
                Some(y) => assert_eq!(got, Ok(y), "{part} {individuals:?}"),
                None => assert_eq!(
                    got,
                    Err(IdError::InvalidIndividualNumber),
                    "{part} {individuals:?}"
                ),
            }
        }
    }

    #[test]
    fn impossible_dates_rejected() {
        let bad = [
            ("000190", 0..=499), // day 0
            ("320190", 0..=499), // day 32
            ("310290", 0..=499), // 31 February
            ("300290", 0..=499), // 30 February
            ("310490", 0..=499), // 31 April
            ("290290", 0..=499), // 29 February 1990
            ("290200", 0..=499), // 29 February 1900 (not a leap year)
            ("010090", 0..=499), // month 0
            ("011390", 0..=499), // month 13
            ("014090", 0..=499), // H-number month 0
            ("015390", 0..=499), // H-number month 13
            ("016590", 0..=499), // month + 65 is not a known offset
            ("018090", 0..=499), // synthetic month 0
            ("019390", 0..=499), // synthetic month 13
            ("400190", 0..=499), // D-number day 0
            ("720190", 0..=499), // D-number day 32
            ("810190", 0..=499), // day 81
            ("414190", 0..=499), // D-number and H-number at once
            ("694290", 0..=499), // D-number 29 February 1990
        ];
        for (part, individuals) in bad {
            let s = first_valid(part, individuals);
            assert_eq!(s.len(), NATIONAL_ID_LEN, "{part}");
            assert_eq!(NationalId::parse(&s), Err(IdError::InvalidDate), "{part}");
        }
        // 29 February 2000 is a leap day (individual 500-999 -> 2000s).
        let s = first_valid("290200", 500..=999);
        assert_eq!(parse_ok(&s).birth_date(), date(2000, 2, 29));
        // So is 29 February 2000 as a D-number.
        let s = first_valid("690200", 500..=999);
        assert_eq!(parse_ok(&s).birth_date(), date(2000, 2, 29));
    }

    #[test]
    fn bad_check_digits_name_the_position() {
        // 15076500565 is valid; change k1 and k2 separately.
        assert_eq!(
            NationalId::parse("15076500575"),
            Err(IdError::BadCheckDigit { position: 10 })
        );
        assert_eq!(
            NationalId::parse("15076500564"),
            Err(IdError::BadCheckDigit { position: 11 })
        );
        // First nine digits whose k1 would be 10: no check digit can make them valid.
        let first9 = (0..1000u16)
            .map(|i| format!("150765{i:03}"))
            .find(|p| {
                let d: Vec<u8> = p.bytes().map(|b| b - b'0').collect();
                mod11_check_digit(&d, &K1_WEIGHTS).is_none()
            })
            .unwrap_or_default();
        for k in 0..100 {
            assert_eq!(
                NationalId::parse(&format!("{first9}{k:02}")),
                Err(IdError::BadCheckDigit { position: 10 })
            );
        }
    }

    #[test]
    fn malformed_input_rejected_precisely() {
        assert_eq!(NationalId::parse(""), Err(IdError::Empty));
        assert_eq!(
            NationalId::parse("1507650056"),
            Err(IdError::WrongLength {
                expected: 11,
                got: 10
            })
        );
        assert_eq!(
            NationalId::parse("150765005650"),
            Err(IdError::WrongLength {
                expected: 11,
                got: 12
            })
        );
        for s in [
            "150765 00565",
            " 15076500565",
            "15076500565 ",
            "15076500565\n",
            "150765-00565",
            "+15076500565",
            "1507650056x",
            // Full-width and Arabic-Indic digits are digits to Unicode, not to us.
            "１５０７６５００５６５",
            "١٥٠٧٦٥٠٠٥٦٥",
            "15076500565\u{0}",
            "1507650056\u{301}5",
        ] {
            assert_eq!(NationalId::parse(s), Err(IdError::NotDigits), "{s:?}");
        }
    }

    #[test]
    fn redacted_forms() {
        let id = parse_ok("15076500565");
        assert_eq!(id.redacted(), "150765*****");
        assert_eq!(id.to_string(), "150765*****");
        assert_eq!(format!("{id:?}"), "NationalId(\"150765*****\")");
        assert_eq!(
            format!("{:?}", Some(&id)),
            "Some(NationalId(\"150765*****\"))"
        );
        assert_eq!(format!("{id:>15}"), "150765*****");
    }

    #[test]
    fn log_hash_is_keyed() {
        use super::super::log_hash::{LOG_HASH_LEN, keyed_hash};
        use sha2::{Digest, Sha256};
        let id = parse_ok("15076500565");
        let other = parse_ok("31129956715");
        let a = keyed_hash(&[1; 32], id.as_str());
        assert_eq!(a.len(), LOG_HASH_LEN);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, keyed_hash(&[1; 32], id.as_str()));
        assert_ne!(
            a,
            keyed_hash(&[2; 32], id.as_str()),
            "another key, another pseudonym"
        );
        assert_ne!(a, keyed_hash(&[1; 32], other.as_str()));
        // Not the unkeyed SHA-256 that anyone could recompute from the ~10^8 valid ids.
        let unkeyed = hex::encode(Sha256::digest(b"15076500565"));
        assert!(!unkeyed.starts_with(&a));
    }

    #[test]
    fn age_in_completed_years() {
        let id = parse_ok("15076500565"); // born 1965-07-15
        assert_eq!(id.age_on(date(1965, 7, 15)), 0);
        assert_eq!(id.age_on(date(1966, 7, 14)), 0);
        assert_eq!(id.age_on(date(1966, 7, 15)), 1);
        assert_eq!(id.age_on(date(2025, 7, 14)), 59);
        assert_eq!(id.age_on(date(2025, 7, 15)), 60);
        assert_eq!(id.age_on(date(2025, 12, 31)), 60);
        assert_eq!(id.age_on(date(1900, 1, 1)), 0);

        let leap = national_id_from_parts(date(2004, 2, 29), 500, NationalIdKind::Ordinary)
            .or_else(|| national_id_from_parts(date(2004, 2, 29), 501, NationalIdKind::Ordinary));
        let Some(leap) = leap else {
            panic!("no id for 2004-02-29 with individual 500 or 501");
        };
        assert_eq!(leap.age_on(date(2005, 2, 28)), 0);
        assert_eq!(leap.age_on(date(2005, 3, 1)), 1);
        assert_eq!(leap.age_on(date(2008, 2, 28)), 3);
        assert_eq!(leap.age_on(date(2008, 2, 29)), 4);
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let id = parse_ok("15076500565");
        let json = serde_json::to_string(&id).unwrap_or_default();
        assert_eq!(json, "\"15076500565\"");
        let back: Result<NationalId, _> = serde_json::from_str(&json);
        assert_eq!(back.ok(), Some(id));
        let bad: Result<NationalId, _> = serde_json::from_str("\"15076500564\"");
        let err = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("check digit at position 11"), "{err}");
        assert!(!err.contains("15076500564"), "{err}");
        let not_string: Result<NationalId, _> = serde_json::from_str("15076500565");
        assert!(not_string.is_err());
    }

    #[test]
    fn conversions() {
        assert_eq!(
            "15076500565".parse::<NationalId>().map(String::from),
            Ok("15076500565".to_owned())
        );
        assert_eq!(
            NationalId::try_from(String::from("x")),
            Err(IdError::NotDigits)
        );
    }

    proptest! {
        /// Every generated id parses back to itself, through text and serde, and decodes to the
        /// date and kind it was generated from.
        #[test]
        fn generated_ids_round_trip(
            (born, individual, kind, id) in arb_national_id_parts().prop_filter_map(
                "a check digit would be 10",
                |(d, i, k)| national_id_from_parts(d, i, k).map(|id| (d, i, k, id)),
            )
        ) {
            let individual_digits = format!("{individual:03}");
            prop_assert_eq!(id.as_str().get(6..9), Some(individual_digits.as_str()));
            prop_assert_eq!(id.birth_date(), born);
            prop_assert_eq!(id.kind(), kind);
            prop_assert_eq!(id.as_str().len(), NATIONAL_ID_LEN);
            let reparsed = NationalId::parse(id.as_str());
            prop_assert_eq!(reparsed.as_ref(), Ok(&id));
            let json = serde_json::to_string(&id).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back: NationalId = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, id);
        }

        /// The mod-11 weights are all non-zero mod 11, so changing any one digit breaks a check
        /// digit equation: no single-digit error yields another valid id.
        #[test]
        fn single_digit_errors_detected(id in arb_national_id()) {
            let original = id.as_str().as_bytes().to_vec();
            for pos in 0..NATIONAL_ID_LEN {
                for digit in b'0'..=b'9' {
                    if original.get(pos) == Some(&digit) {
                        continue;
                    }
                    let mut changed = original.clone();
                    if let Some(b) = changed.get_mut(pos) {
                        *b = digit;
                    }
                    let changed = String::from_utf8(changed).unwrap_or_default();
                    let result = NationalId::parse(&changed);
                    prop_assert!(result.is_err(), "{} accepted", changed);
                    // Errors never echo the input.
                    let msg = result.err().map(|e| e.to_string()).unwrap_or_default();
                    prop_assert!(!msg.contains(&changed));
                }
            }
        }

        /// Display and Debug never contain the full number, nor anything after the date part.
        #[test]
        fn display_and_debug_are_redacted(id in arb_national_id()) {
            let shown = [id.to_string(), format!("{id:?}"), format!("{id:#?}"), id.redacted()];
            let date = id.as_str().get(..6).unwrap_or_default().to_owned();
            let tail = id.as_str().get(6..).unwrap_or_default().to_owned();
            for s in shown {
                prop_assert!(!s.contains(id.as_str()), "{}", s);
                // The date part is shown on purpose; the tail must not appear beside it (a
                // tail such as 40467 of 640467 40467 is a substring of the date itself).
                prop_assert!(!s.replace(&date, "").contains(&tail), "{}", s);
            }
            prop_assert!(!id.log_hash().contains(id.as_str()));
        }

        /// Digit strings of any other length are rejected with their length.
        #[test]
        fn wrong_lengths_rejected(s in "[0-9]{1,10}|[0-9]{12,40}") {
            prop_assert_eq!(
                NationalId::parse(&s),
                Err(IdError::WrongLength { expected: NATIONAL_ID_LEN, got: s.len() })
            );
        }

        /// Arbitrary strings never panic, and whatever is accepted is consistent.
        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC*|.*|[0-9]{11}|[0-9]{0,12}[^0-9][0-9]{0,12}") {
            if let Ok(id) = NationalId::parse(&s) {
                prop_assert_eq!(id.as_str(), s.as_str());
                let _ = (id.redacted(), id.log_hash(), id.age_on(NaiveDate::MAX), id.age_on(NaiveDate::MIN));
            }
            let json = serde_json::to_string(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let _ = serde_json::from_str::<NationalId>(&json);
        }

        /// Random 11-digit strings: about 1 in 121 passes the check digits; whatever passes
        /// also has a valid date and century.
        #[test]
        fn random_digits_never_panic(s in "[0-9]{11}") {
            if let Ok(id) = NationalId::parse(&s) {
                prop_assert!(id.birth_date().year() >= 1854 && id.birth_date().year() <= 2039);
            }
        }
    }
}
