//! The Kartotek scopes: what an access token may let its holder do. The node maps each of its
//! methods onto one of these (a small table there); the token service grants only scopes the
//! client record allows. Scope names are `kartotek:<area>.<access>`.
//!
//! [`ALL`] lists every scope with its meaning, for the authorization-server metadata and for
//! documentation.

/// Read locator entries: lookup, list, watch.
pub const LOCATOR_READ: &str = "kartotek:locator.read";
/// Register, retire and import locator entries.
pub const LOCATOR_WRITE: &str = "kartotek:locator.write";
/// Read privacy records (blocks, consents, reservations, representation, notifications) and
/// ask for access decisions.
pub const RECORDS_READ: &str = "kartotek:records.read";
/// Add, change and revoke privacy records; acknowledge notifications.
pub const RECORDS_WRITE: &str = "kartotek:records.write";
/// Query and verify the audit log (by patient, organisation or for security review).
pub const AUDIT_READ: &str = "kartotek:audit.read";
/// Forward audit events (`AuditService.Record`), as the frontends do.
pub const AUDIT_WRITE: &str = "kartotek:audit.write";
/// Cluster operations and registry administration (membership, snapshots, token-issuance
/// clients, the catalog of other organisations).
pub const ADMIN: &str = "kartotek:admin";
/// Read token-issuance client records (the token service looks clients up with it).
pub const CLIENTS_READ: &str = "kartotek:clients.read";
/// Spend single-use token ids and revoke tokens in the cluster's ledger: the token service's
/// own scope (its self-issued tokens carry it; no client record should be allowed it).
pub const TOKENS_LEDGER: &str = "kartotek:tokens.ledger";
/// A citizen acting for themself (or for whom they represent): their own records and log.
pub const CITIZEN: &str = "kartotek:citizen";

/// Every Kartotek scope and what it allows.
pub const ALL: [(&str, &str); 10] = [
    (LOCATOR_READ, "read locator entries"),
    (LOCATOR_WRITE, "register and retire locator entries"),
    (
        RECORDS_READ,
        "read privacy records and ask for access decisions",
    ),
    (RECORDS_WRITE, "change privacy records"),
    (AUDIT_READ, "query and verify the audit log"),
    (AUDIT_WRITE, "forward audit events"),
    (ADMIN, "operate the cluster and administer the registry"),
    (CLIENTS_READ, "read token-issuance client records"),
    (CITIZEN, "a citizen's own records and audit log"),
    (
        TOKENS_LEDGER,
        "the token service's ledger of spent and revoked token ids",
    ),
];

/// True when `scope` is one of [`ALL`].
pub fn is_known(scope: &str) -> bool {
    ALL.iter().any(|(s, _)| *s == scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_valid_scopes() {
        for (i, (s, what)) in ALL.iter().enumerate() {
            assert!(s.starts_with("kartotek:"), "{s}");
            assert!(!what.is_empty());
            kartotek_domain::fields::parse_scope("scope", s).unwrap();
            assert!(ALL[i + 1..].iter().all(|(o, _)| o != s), "{s} twice");
            assert!(is_known(s));
        }
        assert!(!is_known("kartotek:nothing"));
    }
}
