//! Norwegian organisation numbers (organisasjonsnummer, from the Central Coordinating Register
//! for Legal Entities): [`OrgNumber`].
//!
//! An organisation number names the organisation that holds records about a patient, so it is
//! part of the keys of the replicated state. It is validated at the API edge (length, digits,
//! the mod-11 check digit) before a command that names it is proposed to Raft and written to the
//! replicated log. Organisation numbers are public, so they are shown in clear everywhere.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{IdError, ORG_NUMBER_LEN, digits_exact, mod11_check_digit};

/// Weights of the check digit (position 9), over digits 1-8.
pub(super) const WEIGHTS: [u8; 8] = [3, 2, 7, 6, 5, 4, 3, 2];

/// A valid Norwegian organisation number: [`ORG_NUMBER_LEN`] digits, the last a mod-11 check
/// digit over the first eight.
///
/// Equality, ordering and hashing follow the digits. Serde writes the digits as a string and
/// validates on read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgNumber(String);

impl OrgNumber {
    /// Validates an organisation number: exactly [`ORG_NUMBER_LEN`] ASCII digits (no spaces or
    /// separators) whose last digit is the check digit of the first eight, weights
    /// `3 2 7 6 5 4 3 2`, `11 - (sum mod 11)` with 11 written as 0 (when that gives 10, no
    /// number with those first eight digits is valid).
    ///
    /// Checks, in order: [`IdError::Empty`], [`IdError::NotDigits`],
    /// [`IdError::WrongLength`], [`IdError::BadCheckDigit`] (position 9).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let digits: [u8; ORG_NUMBER_LEN] = digits_exact(s)?;
        let [.., check] = digits;
        if mod11_check_digit(&digits, &WEIGHTS) != Some(check) {
            return Err(IdError::BadCheckDigit {
                position: ORG_NUMBER_LEN,
            });
        }
        Ok(OrgNumber(s.to_owned()))
    }

    /// The nine digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgNumber {
    /// The nine digits, in clear (organisation numbers are public).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for OrgNumber {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrgNumber::parse(s)
    }
}

impl TryFrom<String> for OrgNumber {
    type Error = IdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        OrgNumber::parse(&s)
    }
}

impl From<OrgNumber> for String {
    fn from(org: OrgNumber) -> String {
        org.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ids::testing::{arb_org_number, org_number_from_prefix};

    #[test]
    fn known_valid() {
        // Checked by hand, e.g. 974760673:
        //   3*9 + 2*7 + 7*4 + 6*7 + 5*6 + 4*0 + 3*6 + 2*7 = 173; 173 mod 11 = 8; 11 - 8 = 3.
        // 889640782: 196 mod 11 = 9 -> 2. 983544622: 152 mod 11 = 9 -> 2.
        for s in ["974760673", "889640782", "983544622"] {
            match OrgNumber::parse(s) {
                Ok(org) => {
                    assert_eq!(org.as_str(), s);
                    assert_eq!(org.to_string(), s);
                    assert_eq!(format!("{org:?}"), format!("OrgNumber({s:?})"));
                }
                Err(e) => panic!("{s}: {e}"),
            }
        }
    }

    #[test]
    fn check_digit_edge_cases() {
        // Sum 0 (all zeros): remainder 0 -> check digit 0.
        assert!(OrgNumber::parse("000000000").is_ok());
        // 00000005: sum 2*5 = 10, remainder 10 -> check digit 1.
        assert!(OrgNumber::parse("000000051").is_ok());
        // 00000050: sum 3*5 = 15, remainder 4 -> check digit 7.
        assert!(OrgNumber::parse("000000507").is_ok());
        // 00000006: sum 2*6 = 12, remainder 1 -> 10 -> no valid number starts so.
        assert_eq!(org_number_from_prefix(6), None);
        for check in 0..10 {
            assert_eq!(
                OrgNumber::parse(&format!("00000006{check}")),
                Err(IdError::BadCheckDigit { position: 9 })
            );
        }
        assert_eq!(
            org_number_from_prefix(97_476_067).map(String::from),
            Some("974760673".to_owned())
        );
        assert_eq!(org_number_from_prefix(100_000_000), None);
    }

    #[test]
    fn malformed_input_rejected_precisely() {
        assert_eq!(OrgNumber::parse(""), Err(IdError::Empty));
        assert_eq!(
            OrgNumber::parse("97476067"),
            Err(IdError::WrongLength {
                expected: 9,
                got: 8
            })
        );
        assert_eq!(
            OrgNumber::parse("9747606730"),
            Err(IdError::WrongLength {
                expected: 9,
                got: 10
            })
        );
        assert_eq!(
            OrgNumber::parse("974760674"),
            Err(IdError::BadCheckDigit { position: 9 })
        );
        for s in [
            "974 760 673",
            "NO974760673",
            "974760673MVA",
            " 974760673",
            "-97476067",
            "９７４７６０６７３",
        ] {
            assert_eq!(OrgNumber::parse(s), Err(IdError::NotDigits), "{s:?}");
        }
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let org = OrgNumber::parse("974760673").ok();
        let json = serde_json::to_string(&org).unwrap_or_default();
        assert_eq!(json, "\"974760673\"");
        let back: Option<OrgNumber> = serde_json::from_str(&json).ok();
        assert_eq!(back, org);
        assert!(serde_json::from_str::<OrgNumber>("\"974760674\"").is_err());
        assert!(serde_json::from_str::<OrgNumber>("974760673").is_err());
        assert_eq!("974760673".parse::<OrgNumber>().ok(), org);
    }

    proptest! {
        /// Every generated number parses back to itself, through text and serde.
        #[test]
        fn generated_numbers_round_trip(org in arb_org_number()) {
            prop_assert_eq!(org.as_str().len(), ORG_NUMBER_LEN);
            let reparsed = OrgNumber::parse(org.as_str());
            prop_assert_eq!(reparsed.as_ref(), Ok(&org));
            prop_assert_eq!(org.to_string(), org.as_str());
            let json = serde_json::to_string(&org).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back: OrgNumber = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, org);
        }

        /// Every weight (and the check digit's own weight 1) is non-zero mod 11, so any one
        /// changed digit is detected.
        #[test]
        fn single_digit_errors_detected(org in arb_org_number()) {
            let original = org.as_str().as_bytes().to_vec();
            for pos in 0..ORG_NUMBER_LEN {
                for digit in b'0'..=b'9' {
                    if original.get(pos) == Some(&digit) {
                        continue;
                    }
                    let mut changed = original.clone();
                    if let Some(b) = changed.get_mut(pos) {
                        *b = digit;
                    }
                    let changed = String::from_utf8(changed).unwrap_or_default();
                    prop_assert_eq!(
                        OrgNumber::parse(&changed),
                        Err(IdError::BadCheckDigit { position: 9 }),
                        "{} accepted", changed
                    );
                }
            }
        }

        /// Digit strings of any other length are rejected with their length.
        #[test]
        fn wrong_lengths_rejected(s in "[0-9]{1,8}|[0-9]{10,40}") {
            prop_assert_eq!(
                OrgNumber::parse(&s),
                Err(IdError::WrongLength { expected: ORG_NUMBER_LEN, got: s.len() })
            );
        }

        /// Arbitrary strings never panic, and whatever is accepted is the input.
        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC*|.*|[0-9]{9}|[0-9]{0,10}[^0-9][0-9]{0,10}") {
            if let Ok(org) = OrgNumber::parse(&s) {
                prop_assert_eq!(org.as_str(), s.as_str());
            }
        }
    }
}
