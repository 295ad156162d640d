//! Identifiers of people, organisations and health personnel: Norwegian national identity
//! numbers ([`NationalId`]), organisation numbers ([`OrgNumber`]) and HPR numbers
//! ([`HprNumber`]).
//!
//! Identifiers are validated at the API edge, before anything is proposed to Raft and written to
//! the replicated log: a value of one of these types is always valid, so the state machine and
//! storage never see a malformed identifier. Parsing never panics, whatever the input. A
//! rejection is an [`IdError`] whose message is written for the API caller (it is returned as
//! a field-level `INVALID_ARGUMENT` explanation) and never repeats the input, so it is also
//! safe to log.
//!
//! National ids are personal data: their `Display` and `Debug` forms are redacted, and
//! [`NationalId::log_hash`] gives a keyed pseudonym for correlating log lines ([`log_hash`]).
//! Only
//! [`NationalId::as_str`] and serde (what is stored and replicated) give the full id.
//!
//! [`testing`] builds valid identifiers for tests and tools.

mod hpr_number;
pub mod log_hash;
mod national_id;
mod org_number;

pub use hpr_number::HprNumber;
pub use national_id::{NationalId, NationalIdKind};
pub use org_number::OrgNumber;

/// Length of a national id (fødselsnummer, D-, H- or synthetic number), in digits.
pub const NATIONAL_ID_LEN: usize = 11;
/// Length of an organisation number, in digits.
pub const ORG_NUMBER_LEN: usize = 9;
/// Most digits of an HPR number.
pub const HPR_NUMBER_DIGITS_MAX: usize = 9;

/// Why a string is not a valid identifier.
///
/// The messages are written for the caller who sent the value (the API edge prefixes them with
/// the field name) and never contain the input itself. Positions count from 1, left to right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum IdError {
    /// The value is the empty string.
    #[error("must not be empty")]
    Empty,
    /// The value has only digits, but not as many as this kind of identifier has.
    #[error("must be exactly {expected} digits, got {got}")]
    WrongLength {
        /// How many digits this kind of identifier has.
        expected: usize,
        /// How many digits the value has.
        got: usize,
    },
    /// The value has only digits, but more than this kind of identifier allows.
    #[error("must be at most {max} digits, got {got}")]
    TooLong {
        /// The most digits this kind of identifier allows.
        max: usize,
        /// How many digits the value has.
        got: usize,
    },
    /// The value contains something other than the ASCII digits `0`-`9` (a space, a sign, a
    /// separator, a letter, a non-ASCII digit, ...).
    #[error("must contain only the digits 0-9, without spaces, signs or separators")]
    NotDigits,
    /// A mod-11 check digit does not match the digits before it: the number is mistyped or
    /// made up.
    #[error(
        "check digit at position {position} does not match the other digits (mistyped number?)"
    )]
    BadCheckDigit {
        /// Position of the check digit that does not match (1-based).
        position: usize,
    },
    /// The first six digits of a national id are not a valid date `DDMMYY` (after removing
    /// the D-number, H-number or synthetic offset), e.g. day 0, month 13 or 31 February.
    #[error("digits 1-6 are not a valid birth date (DDMMYY)")]
    InvalidDate,
    /// The individual number (digits 7-9) of a national id is never issued together with its
    /// two-digit birth year (digits 5-6), so the birth century is unknown.
    #[error("individual number (digits 7-9) is not issued for the birth year in digits 5-6")]
    InvalidIndividualNumber,
    /// The value is zero, which is not a valid number of this kind.
    #[error("must be greater than zero")]
    Zero,
}

/// Checks that `s` is exactly `N` ASCII digits and returns their values (0-9).
///
/// Errors, in this order: [`IdError::Empty`], [`IdError::NotDigits`] (so a value with a stray
/// space is reported as such rather than as a length problem), [`IdError::WrongLength`].
fn digits_exact<const N: usize>(s: &str) -> Result<[u8; N], IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdError::NotDigits);
    }
    // All bytes are ASCII digits, so the byte length is the digit count.
    let bytes: [u8; N] = s.as_bytes().try_into().map_err(|_| IdError::WrongLength {
        expected: N,
        got: s.len(),
    })?;
    Ok(bytes.map(|b| b - b'0'))
}

/// The mod-11 check digit for `digits` (values 0-9) under `weights`, or `None` when it would be
/// 10 (no valid number starts with these digits).
///
/// Only the first `weights.len()` digits are used. The check digit is `11 - (sum mod 11)`,
/// where 11 becomes 0.
fn mod11_check_digit(digits: &[u8], weights: &[u8]) -> Option<u8> {
    let sum: u32 = digits
        .iter()
        .zip(weights)
        .map(|(&d, &w)| u32::from(d) * u32::from(w))
        .sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        c => u8::try_from(c).ok(),
    }
}

/// Builders of valid identifiers, for tests and tools (fixtures, load generators, demo data).
///
/// Everything here builds values through the same validation as the API edge, so a value it
/// returns is one a caller could have sent. The proptest strategies exist only in this crate's
/// own tests (proptest is a dev-dependency).
pub mod testing {
    use chrono::{Datelike, NaiveDate};

    use super::{NationalId, NationalIdKind, OrgNumber, mod11_check_digit, national_id};

    /// The national id of the given kind for someone born on `date` with individual number
    /// `individual` (digits 7-9), with its check digits computed.
    ///
    /// `None` when no such id exists: a check digit would be 10, `individual` is above 999, or
    /// the individual number is not issued for `date`'s year (see [`NationalId::birth_date`]
    /// for the century rules; years 1854-2039 are representable).
    /// [`NationalIdKind::DNumber`] adds 40 to the day, [`NationalIdKind::HNumber`] 40 and
    /// [`NationalIdKind::Synthetic`] 80 to the month.
    pub fn national_id_from_parts(
        date: NaiveDate,
        individual: u16,
        kind: NationalIdKind,
    ) -> Option<NationalId> {
        if individual > 999 {
            return None;
        }
        let year = date.year();
        if national_id::birth_year(u16::try_from(year.rem_euclid(100)).ok()?, individual)
            != Some(year)
        {
            return None;
        }
        let mut day = date.day();
        let mut month = date.month();
        match kind {
            NationalIdKind::Ordinary => {}
            NationalIdKind::DNumber => day += national_id::D_NUMBER_DAY_OFFSET,
            NationalIdKind::HNumber => month += national_id::H_NUMBER_MONTH_OFFSET,
            NationalIdKind::Synthetic => month += national_id::SYNTHETIC_MONTH_OFFSET,
        }
        let mut id = format!(
            "{day:02}{month:02}{:02}{individual:03}",
            year.rem_euclid(100)
        );
        let k1 = mod11_check_digit(&digit_values(&id)?, &national_id::K1_WEIGHTS)?;
        id.push(char::from(b'0' + k1));
        let k2 = mod11_check_digit(&digit_values(&id)?, &national_id::K2_WEIGHTS)?;
        id.push(char::from(b'0' + k2));
        NationalId::parse(&id).ok()
    }

    /// The organisation number whose first eight digits are `prefix` (zero-padded), with its
    /// check digit computed. `None` when `prefix` has more than eight digits or the check
    /// digit would be 10.
    pub fn org_number_from_prefix(prefix: u32) -> Option<OrgNumber> {
        if prefix > 99_999_999 {
            return None;
        }
        let mut org = format!("{prefix:08}");
        let check = mod11_check_digit(&digit_values(&org)?, &super::org_number::WEIGHTS)?;
        org.push(char::from(b'0' + check));
        OrgNumber::parse(&org).ok()
    }

    /// The values of the ASCII digits in `s`, or `None` if it has anything else.
    fn digit_values(s: &str) -> Option<Vec<u8>> {
        s.bytes()
            .map(|b| b.is_ascii_digit().then(|| b - b'0'))
            .collect()
    }

    #[cfg(test)]
    pub use strategies::*;

    #[cfg(test)]
    mod strategies {
        use chrono::{Datelike, NaiveDate};
        use proptest::prelude::*;

        use super::{NationalId, NationalIdKind, OrgNumber};

        /// Any kind of national id.
        pub fn arb_national_id_kind() -> impl Strategy<Value = NationalIdKind> {
            prop_oneof![
                Just(NationalIdKind::Ordinary),
                Just(NationalIdKind::DNumber),
                Just(NationalIdKind::HNumber),
                Just(NationalIdKind::Synthetic),
            ]
        }

        /// A birth date from 1854-01-01 to 2039-12-31 (every date a national id can encode),
        /// an individual number issued for that year, and a kind. About one in six of these
        /// has no id (a check digit would be 10); see [`arb_national_id`].
        pub fn arb_national_id_parts() -> impl Strategy<Value = (NaiveDate, u16, NationalIdKind)> {
            let first = NaiveDate::from_ymd_opt(1854, 1, 1).unwrap_or_default();
            let last = NaiveDate::from_ymd_opt(2039, 12, 31).unwrap_or_default();
            let span = (last - first).num_days();
            (0..=span, 0u16..1000, arb_national_id_kind()).prop_map(move |(offset, pick, kind)| {
                let date = first + chrono::Days::new(offset.unsigned_abs());
                (date, individual_for_year(date.year(), pick), kind)
            })
        }

        /// An individual number issued for `year`, chosen by `pick`.
        fn individual_for_year(year: i32, pick: u16) -> u16 {
            let ranges: &[(u16, u16)] = match year {
                ..=1899 => &[(500, 749)],
                1900..=1939 => &[(0, 499)],
                1940..=1999 => &[(0, 499), (900, 999)],
                _ => &[(500, 999)],
            };
            let total: u16 = ranges.iter().map(|(lo, hi)| hi - lo + 1).sum();
            let mut index = pick % total;
            for &(lo, hi) in ranges {
                let len = hi - lo + 1;
                if index < len {
                    return lo + index;
                }
                index -= len;
            }
            0
        }

        /// Any valid national id (all kinds, all encodable birth dates).
        pub fn arb_national_id() -> impl Strategy<Value = NationalId> {
            arb_national_id_parts().prop_filter_map("a check digit would be 10", |(d, i, k)| {
                super::national_id_from_parts(d, i, k)
            })
        }

        /// Any valid organisation number.
        pub fn arb_org_number() -> impl Strategy<Value = OrgNumber> {
            (0u32..=99_999_999).prop_filter_map("the check digit would be 10", |prefix| {
                super::org_number_from_prefix(prefix)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_exact_reports_in_order() {
        assert_eq!(digits_exact::<3>(""), Err(IdError::Empty));
        assert_eq!(digits_exact::<3>("1 2"), Err(IdError::NotDigits));
        assert_eq!(digits_exact::<3>("12a4"), Err(IdError::NotDigits));
        assert_eq!(
            digits_exact::<3>("1234"),
            Err(IdError::WrongLength {
                expected: 3,
                got: 4
            })
        );
        assert_eq!(digits_exact::<3>("907"), Ok([9, 0, 7]));
    }

    #[test]
    fn mod11_rules() {
        // Sum 0 -> remainder 0 -> 11 -> 0.
        assert_eq!(mod11_check_digit(&[0, 0], &[3, 2]), Some(0));
        // Sum 1 -> 11 - 1 = 10 -> no valid check digit.
        assert_eq!(mod11_check_digit(&[1], &[1]), None);
        // Sum 2 -> 9.
        assert_eq!(mod11_check_digit(&[1], &[2]), Some(9));
        // Digits beyond the weights are ignored.
        assert_eq!(mod11_check_digit(&[1, 9, 9], &[2]), Some(9));
    }

    #[test]
    fn error_messages_are_clear() {
        let cases = [
            (IdError::Empty, "must not be empty"),
            (
                IdError::WrongLength {
                    expected: 11,
                    got: 10,
                },
                "must be exactly 11 digits, got 10",
            ),
            (
                IdError::TooLong { max: 9, got: 10 },
                "must be at most 9 digits, got 10",
            ),
            (
                IdError::BadCheckDigit { position: 11 },
                "check digit at position 11 does not match the other digits (mistyped number?)",
            ),
        ];
        for (err, msg) in cases {
            assert_eq!(err.to_string(), msg);
        }
        for err in [
            IdError::NotDigits,
            IdError::InvalidDate,
            IdError::InvalidIndividualNumber,
            IdError::Zero,
        ] {
            assert!(!err.to_string().is_empty());
        }
    }
}
