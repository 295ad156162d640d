//! HPR numbers: [`HprNumber`], the number of a health professional in the Norwegian Health
//! Personnel Register (Helsepersonellregisteret).
//!
//! An HPR number names the health professional acting in a request (e.g. who looked a patient
//! up), so it is validated at the API edge before a command carrying it is proposed to Raft and
//! written to the replicated log. It has no check digit: validation is only its form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{HPR_NUMBER_DIGITS_MAX, IdError};

/// The largest HPR number ([`HPR_NUMBER_DIGITS_MAX`] nines).
const MAX_VALUE: u32 = 999_999_999;

/// A valid HPR number: a positive integer of at most [`HPR_NUMBER_DIGITS_MAX`] digits.
///
/// Its text form is canonical decimal without leading zeros (`Display`, serde), though
/// [`HprNumber::parse`] accepts leading zeros. Serde writes it as a string, like the other
/// identifiers, and validates on read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HprNumber(u32);

impl HprNumber {
    /// Validates an HPR number: 1 to [`HPR_NUMBER_DIGITS_MAX`] ASCII digits (leading zeros
    /// allowed, no sign, no spaces), with a value above zero.
    ///
    /// Checks, in order: [`IdError::Empty`], [`IdError::NotDigits`], [`IdError::TooLong`],
    /// [`IdError::Zero`].
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::NotDigits);
        }
        // All bytes are ASCII digits, so the byte length is the digit count.
        if s.len() > HPR_NUMBER_DIGITS_MAX {
            return Err(IdError::TooLong {
                max: HPR_NUMBER_DIGITS_MAX,
                got: s.len(),
            });
        }
        // At most nine digits: at most 999 999 999, well inside u32.
        let value = s
            .bytes()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
        HprNumber::new(value)
    }

    /// An HPR number from its value: above zero and at most [`HPR_NUMBER_DIGITS_MAX`] digits.
    pub fn new(value: u32) -> Result<Self, IdError> {
        match value {
            0 => Err(IdError::Zero),
            1..=MAX_VALUE => Ok(HprNumber(value)),
            _ => Err(IdError::TooLong {
                max: HPR_NUMBER_DIGITS_MAX,
                got: value.to_string().len(),
            }),
        }
    }

    /// The number's value.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for HprNumber {
    /// Decimal, without leading zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for HprNumber {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HprNumber::parse(s)
    }
}

impl TryFrom<String> for HprNumber {
    type Error = IdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        HprNumber::parse(&s)
    }
}

impl TryFrom<u32> for HprNumber {
    type Error = IdError;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        HprNumber::new(value)
    }
}

impl From<HprNumber> for String {
    fn from(hpr: HprNumber) -> String {
        hpr.to_string()
    }
}

impl From<HprNumber> for u32 {
    fn from(hpr: HprNumber) -> u32 {
        hpr.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn valid_numbers() {
        for (s, value) in [
            ("1", 1),
            ("9144900", 9_144_900),
            ("007", 7),
            ("000000001", 1),
            ("999999999", MAX_VALUE),
        ] {
            assert_eq!(HprNumber::parse(s).map(HprNumber::get), Ok(value), "{s}");
        }
        assert_eq!(
            HprNumber::parse("007").map(|h| h.to_string()),
            Ok("7".to_owned())
        );
    }

    #[test]
    fn invalid_numbers_rejected_precisely() {
        assert_eq!(HprNumber::parse(""), Err(IdError::Empty));
        assert_eq!(HprNumber::parse("0"), Err(IdError::Zero));
        assert_eq!(HprNumber::parse("000000000"), Err(IdError::Zero));
        assert_eq!(
            HprNumber::parse("1234567890"),
            Err(IdError::TooLong { max: 9, got: 10 })
        );
        assert_eq!(
            HprNumber::parse("0000000001"),
            Err(IdError::TooLong { max: 9, got: 10 })
        );
        assert_eq!(
            HprNumber::parse(&"9".repeat(1000)),
            Err(IdError::TooLong { max: 9, got: 1000 })
        );
        for s in [
            "+1", "-1", " 1", "1 ", "1\n", "1_000", "1e3", "0x1f", "١", "１", "12a",
        ] {
            assert_eq!(HprNumber::parse(s), Err(IdError::NotDigits), "{s:?}");
        }
    }

    #[test]
    fn from_value() {
        assert_eq!(HprNumber::new(0), Err(IdError::Zero));
        assert_eq!(HprNumber::new(MAX_VALUE).map(u32::from), Ok(MAX_VALUE));
        assert_eq!(
            HprNumber::new(MAX_VALUE + 1),
            Err(IdError::TooLong { max: 9, got: 10 })
        );
        assert_eq!(
            HprNumber::try_from(u32::MAX),
            Err(IdError::TooLong { max: 9, got: 10 })
        );
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let hpr = HprNumber::new(9_144_900).ok();
        let json = serde_json::to_string(&hpr).unwrap_or_default();
        assert_eq!(json, "\"9144900\"");
        assert_eq!(
            serde_json::from_str::<Option<HprNumber>>(&json).ok(),
            Some(hpr)
        );
        assert_eq!(
            serde_json::from_str::<HprNumber>("\"0009144900\"").ok(),
            None
        );
        assert_eq!(serde_json::from_str::<HprNumber>("\"009144900\"").ok(), hpr);
        assert!(serde_json::from_str::<HprNumber>("\"0\"").is_err());
        assert!(serde_json::from_str::<HprNumber>("9144900").is_err());
    }

    proptest! {
        /// Every valid value round-trips through text and serde.
        #[test]
        fn values_round_trip(value in 1u32..=MAX_VALUE) {
            let hpr = HprNumber::new(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(HprNumber::parse(&hpr.to_string()), Ok(hpr));
            prop_assert_eq!(HprNumber::parse(&format!("{value:09}")), Ok(hpr));
            let json = serde_json::to_string(&hpr).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(serde_json::from_str::<HprNumber>(&json).ok(), Some(hpr));
        }

        /// Arbitrary strings never panic; whatever is accepted is 1-9 digits with that value.
        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC*|.*|[0-9]{0,12}|[+-]?[0-9]{1,9}") {
            if let Ok(hpr) = HprNumber::parse(&s) {
                prop_assert!(!s.is_empty() && s.len() <= HPR_NUMBER_DIGITS_MAX);
                prop_assert_eq!(s.parse::<u32>().ok(), Some(hpr.get()));
            }
        }
    }
}
