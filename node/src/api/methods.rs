//! Every public `kartotek.v1` method, with the class that decides what the request layer lets
//! its handler do and the scope a caller's token must carry for it. A handler can only be run through [`Gate`](super::layer::Gate) with one of
//! these, and a test checks that this table and the services' protobuf descriptors name
//! exactly the same methods, so a new RPC cannot be added without being classified here.

use kartotek_auth::scopes;

/// What a method does, as far as the request layer's rules are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Reads patient data: the handler gets the state only after the read's audit event is
    /// durable (and the layer refuses to answer if the handler never recorded one).
    PatientRead,
    /// An access decision: reads the state first, then must record the decision's audit event
    /// (with its effect) before it answers; an override is also a write.
    Decision,
    /// Reads no patient data (API catalog, token-issuance clients, the audit chain head).
    PlainRead,
    /// A replicated write.
    Write,
    /// Cluster administration (status, membership, snapshots): the only class that reaches
    /// the Raft handle.
    Admin,
}

/// One public method.
#[derive(Debug, PartialEq, Eq)]
pub struct Method {
    /// The gRPC path, `/package.Service/Method`.
    pub path: &'static str,
    /// The short name used as the metrics label (`Service/Method` without the `Service`
    /// suffix), stable for dashboards.
    pub label: &'static str,
    /// What the layer lets its handler do.
    pub class: Class,
    /// The scope a caller's access token must have (deny by default: every method has one,
    /// and no row means no method). Client-registry and cluster administration need
    /// [`scopes::ADMIN`].
    pub scope: &'static str,
    /// Whether a citizen's token (scope [`scopes::CITIZEN`], without [`Method::scope`]) may
    /// call it: then only about the citizen themself, or about the person the token acts for
    /// (the request layer's own-data rule, see `Call`).
    pub citizen: bool,
}

/// `+ CITIZEN` after a method's scope: a citizen's token may call it for their own data.
macro_rules! citizen_flag {
    () => {
        false
    };
    (CITIZEN) => {
        true
    };
}

macro_rules! methods {
    ($($name:ident = $service:literal / $method:literal : $class:ident, $label:literal, $scope:ident $(+ $citizen:ident)?;)*) => {
        $(
            #[doc = concat!("`", $service, "/", $method, "`.")]
            pub const $name: Method = Method {
                path: concat!("/kartotek.v1.", $service, "/", $method),
                label: $label,
                class: Class::$class,
                scope: scopes::$scope,
                citizen: citizen_flag!($($citizen)?),
            };
        )*
        /// Every public method.
        pub const ALL: &[&Method] = &[$(&$name),*];
    };
}

methods! {
    LOCATOR_REGISTER = "LocatorService" / "Register": Write, "Locator/Register", LOCATOR_WRITE;
    LOCATOR_RETIRE = "LocatorService" / "Retire": Write, "Locator/Retire", LOCATOR_WRITE;
    LOCATOR_LOOKUP = "LocatorService" / "Lookup": PatientRead, "Locator/Lookup", LOCATOR_READ + CITIZEN;
    LOCATOR_LIST = "LocatorService" / "List": PatientRead, "Locator/List", LOCATOR_READ + CITIZEN;
    LOCATOR_IMPORT = "LocatorService" / "Import": Write, "Locator/Import", LOCATOR_WRITE;
    LOCATOR_WATCH = "LocatorService" / "Watch": PatientRead, "Locator/Watch", LOCATOR_READ;
    AUDIT_RECORD = "AuditService" / "Record": Write, "Audit/Record", AUDIT_WRITE;
    AUDIT_QUERY = "AuditService" / "Query": PatientRead, "Audit/Query", AUDIT_READ + CITIZEN;
    AUDIT_HEAD = "AuditService" / "Head": PlainRead, "Audit/Head", AUDIT_READ;
    ADMIN_STATUS = "AdminService" / "Status": Admin, "Admin/Status", ADMIN;
    ADMIN_INIT = "AdminService" / "Init": Admin, "Admin/Init", ADMIN;
    ADMIN_ADD_LEARNER = "AdminService" / "AddLearner": Admin, "Admin/AddLearner", ADMIN;
    ADMIN_PROMOTE = "AdminService" / "Promote": Admin, "Admin/Promote", ADMIN;
    ADMIN_REMOVE = "AdminService" / "Remove": Admin, "Admin/Remove", ADMIN;
    ADMIN_SNAPSHOT = "AdminService" / "Snapshot": Admin, "Admin/Snapshot", ADMIN;
    ADMIN_BACKUP = "AdminService" / "Backup": Admin, "Admin/Backup", ADMIN;
    BLOCK_ADD = "BlockService" / "Add": Write, "Block/Add", RECORDS_WRITE + CITIZEN;
    BLOCK_REVOKE = "BlockService" / "Revoke": Write, "Block/Revoke", RECORDS_WRITE + CITIZEN;
    BLOCK_LIST = "BlockService" / "List": PatientRead, "Block/List", RECORDS_READ + CITIZEN;
    ACCESS_DECIDE = "AccessService" / "Decide": Decision, "Access/Decide", RECORDS_READ;
    NOTIFICATION_LIST = "NotificationService" / "List": PatientRead, "Notification/List", RECORDS_READ + CITIZEN;
    NOTIFICATION_ACKNOWLEDGE = "NotificationService" / "Acknowledge": Write, "Notification/Acknowledge", RECORDS_WRITE + CITIZEN;
    CONSENT_REQUEST = "ConsentService" / "Request": Write, "Consent/Request", RECORDS_WRITE;
    CONSENT_GRANT = "ConsentService" / "Grant": Write, "Consent/Grant", RECORDS_WRITE + CITIZEN;
    CONSENT_DENY = "ConsentService" / "Deny": Write, "Consent/Deny", RECORDS_WRITE + CITIZEN;
    CONSENT_WITHDRAW = "ConsentService" / "Withdraw": Write, "Consent/Withdraw", RECORDS_WRITE + CITIZEN;
    CONSENT_LIST = "ConsentService" / "List": PatientRead, "Consent/List", RECORDS_READ + CITIZEN;
    CONSENT_CHECK = "ConsentService" / "Check": PatientRead, "Consent/Check", RECORDS_READ + CITIZEN;
    RESERVATION_RESERVE = "ReservationService" / "Reserve": Write, "Reservation/Reserve", RECORDS_WRITE + CITIZEN;
    RESERVATION_WITHDRAW = "ReservationService" / "Withdraw": Write, "Reservation/Withdraw", RECORDS_WRITE + CITIZEN;
    RESERVATION_CHECK = "ReservationService" / "Check": PatientRead, "Reservation/Check", RECORDS_READ + CITIZEN;
    RESERVATION_LIST = "ReservationService" / "List": PatientRead, "Reservation/List", RECORDS_READ + CITIZEN;
    REPRESENTATION_GRANT = "RepresentationService" / "Grant": Write, "Representation/Grant", RECORDS_WRITE + CITIZEN;
    REPRESENTATION_REVOKE = "RepresentationService" / "Revoke": Write, "Representation/Revoke", RECORDS_WRITE + CITIZEN;
    REPRESENTATION_LIST_BY_REPRESENTATIVE = "RepresentationService" / "ListByRepresentative": PatientRead, "Representation/ListByRepresentative", RECORDS_READ + CITIZEN;
    REPRESENTATION_LIST_BY_REPRESENTED = "RepresentationService" / "ListByRepresented": PatientRead, "Representation/ListByRepresented", RECORDS_READ + CITIZEN;
    REPRESENTATION_CHECK = "RepresentationService" / "Check": PatientRead, "Representation/Check", RECORDS_READ + CITIZEN;
    CATALOG_REGISTER = "CatalogService" / "Register": Write, "Catalog/Register", RECORDS_WRITE;
    CATALOG_UPDATE = "CatalogService" / "Update": Write, "Catalog/Update", RECORDS_WRITE;
    CATALOG_SET_LIFECYCLE = "CatalogService" / "SetLifecycle": Write, "Catalog/SetLifecycle", RECORDS_WRITE;
    CATALOG_GET = "CatalogService" / "Get": PlainRead, "Catalog/Get", RECORDS_READ + CITIZEN;
    CATALOG_SEARCH = "CatalogService" / "Search": PlainRead, "Catalog/Search", RECORDS_READ + CITIZEN;
    CLIENT_REGISTER = "ClientRegistryService" / "Register": Write, "Client/Register", ADMIN;
    CLIENT_UPDATE = "ClientRegistryService" / "Update": Write, "Client/Update", ADMIN;
    CLIENT_GET = "ClientRegistryService" / "Get": PlainRead, "Client/Get", CLIENTS_READ;
    CLIENT_LIST = "ClientRegistryService" / "List": PlainRead, "Client/List", CLIENTS_READ;
    TOKEN_SPEND = "TokenLedgerService" / "Spend": Write, "TokenLedger/Spend", TOKENS_LEDGER;
    TOKEN_REVOKE = "TokenLedgerService" / "Revoke": Write, "TokenLedger/Revoke", TOKENS_LEDGER;
    TOKEN_STATUS = "TokenLedgerService" / "Status": PlainRead, "TokenLedger/Status", TOKENS_LEDGER;
}

/// The method with gRPC path `path`, if it is public.
pub fn by_path(path: &str) -> Option<&'static Method> {
    ALL.iter().copied().find(|m| m.path == path)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message;

    use super::*;

    /// Every method of every `kartotek.v1` service, from the compiled descriptors (what the
    /// server registers and reflection serves).
    fn described() -> BTreeSet<String> {
        let set = prost_types::FileDescriptorSet::decode(kartotek_proto::FILE_DESCRIPTOR_SET)
            .unwrap_or_else(|e| panic!("descriptor set: {e}"));
        let mut paths = BTreeSet::new();
        for file in set.file {
            if file.package() != "kartotek.v1" {
                continue;
            }
            for service in &file.service {
                for method in &service.method {
                    paths.insert(format!("/kartotek.v1.{}/{}", service.name(), method.name()));
                }
            }
        }
        paths
    }

    #[test]
    fn the_table_names_exactly_the_described_methods() {
        let described = described();
        assert!(described.len() > 40, "descriptors: {described:?}");
        let table: BTreeSet<String> = ALL.iter().map(|m| m.path.to_owned()).collect();
        let unclassified: Vec<_> = described.difference(&table).collect();
        let unknown: Vec<_> = table.difference(&described).collect();
        assert!(
            unclassified.is_empty(),
            "methods with no class in api::methods (add them, and route them through the Gate): {unclassified:?}"
        );
        assert!(
            unknown.is_empty(),
            "table names methods that do not exist: {unknown:?}"
        );
        assert_eq!(table.len(), ALL.len(), "a method is listed twice");
    }

    #[test]
    fn every_method_needs_a_known_scope_and_writes_need_write_scopes() {
        for m in ALL {
            assert!(scopes::is_known(m.scope), "{m:?}");
            if m.class == Class::Write {
                assert!(
                    m.scope.ends_with(".write")
                        || m.scope == scopes::ADMIN
                        // The token service's own scope, never granted to a client.
                        || m.scope == scopes::TOKENS_LEDGER,
                    "{m:?}"
                );
            }
            if m.class == Class::Admin {
                assert_eq!(m.scope, scopes::ADMIN, "{m:?}");
            }
        }
    }

    #[test]
    fn citizens_reach_only_their_own_records_never_operations() {
        for m in ALL.iter().filter(|m| m.citizen) {
            assert!(
                !matches!(m.class, Class::Admin),
                "a citizen may not operate the cluster: {m:?}"
            );
            assert!(
                ![scopes::ADMIN, scopes::CLIENTS_READ, scopes::AUDIT_WRITE].contains(&m.scope),
                "{m:?}"
            );
        }
        for m in [
            &LOCATOR_REGISTER,
            &LOCATOR_IMPORT,
            &LOCATOR_WATCH,
            &ACCESS_DECIDE,
            &CONSENT_REQUEST,
            &AUDIT_RECORD,
            &CATALOG_REGISTER,
        ] {
            assert!(!m.citizen, "{m:?}");
        }
        let open: Vec<&str> = ALL.iter().filter(|m| m.citizen).map(|m| m.label).collect();
        for label in [
            "Block/Add",
            "Audit/Query",
            "Consent/Grant",
            "Reservation/Reserve",
        ] {
            assert!(
                open.contains(&label),
                "{label} not open to citizens: {open:?}"
            );
        }
    }

    #[test]
    fn labels_are_unique_and_match_paths() {
        let labels: BTreeSet<&str> = ALL.iter().map(|m| m.label).collect();
        assert_eq!(labels.len(), ALL.len());
        for m in ALL {
            let (service, method) = m.label.split_once('/').unwrap_or_else(|| panic!("{m:?}"));
            assert!(m.path.ends_with(&format!("/{method}")), "{m:?}");
            assert!(m.path.contains(&format!(".{service}")), "{m:?}");
            assert_eq!(by_path(m.path), Some(*m));
        }
    }
}
