//! The `[policy]` section of a node's configuration: the access decision's policy and the
//! parental-responsibility age rules (full below 12, limited 12–15, ends at 16 by default).
//!
//! Policy is applied on reads (and carried inside an override decision's log entry), never
//! while applying other writes, so changing it needs no rewrite of state. Every node of a
//! cluster should have the same policy, or answers differ by node.

use kartotek_domain::{AccessPolicy, RepresentationPolicy, ValidationError};
use serde::{Deserialize, Serialize};

/// Access and representation policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    /// Below this age a parent acts for a child in every granted area.
    pub parental_full_below_age: u32,
    /// At and after this age parental responsibility gives nothing.
    pub parental_ends_at_age: u32,
    /// The only areas a parent acts in between the two ages.
    pub parental_limited_areas: Vec<String>,
    /// Whether every access by a third-party client needs a consent.
    pub client_access_requires_consent: bool,
    /// Representation area checked when an on-behalf-of access names none.
    pub default_area: String,
}

impl Default for PolicySettings {
    fn default() -> Self {
        let p = AccessPolicy::default();
        PolicySettings {
            parental_full_below_age: p.representation.parental_full_below_age,
            parental_ends_at_age: p.representation.parental_ends_at_age,
            parental_limited_areas: p.representation.parental_limited_areas,
            client_access_requires_consent: p.client_access_requires_consent,
            default_area: p.default_area,
        }
    }
}

impl PolicySettings {
    /// The domain's access policy.
    pub fn access_policy(&self) -> AccessPolicy {
        AccessPolicy {
            representation: RepresentationPolicy {
                parental_full_below_age: self.parental_full_below_age,
                parental_ends_at_age: self.parental_ends_at_age,
                parental_limited_areas: self.parental_limited_areas.clone(),
            },
            client_access_requires_consent: self.client_access_requires_consent,
            default_area: self.default_area.clone(),
        }
    }

    /// Checks the settings (the error names the setting under `policy.`).
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.access_policy()
            .validate()
            .map_err(|e| ValidationError::new(format!("policy.{}", e.field), e.reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_inverted_ages_are_not() {
        assert!(PolicySettings::default().validate().is_ok());
        let bad = PolicySettings {
            parental_full_below_age: 17,
            ..PolicySettings::default()
        };
        let e = bad.validate().err();
        assert_eq!(
            e.map(|e| e.field),
            Some("policy.parental_full_below_age".to_owned())
        );
    }
}
