//! What the token service reads from the registry: client records, and for a token exchange
//! the privacy records that decide it (may this citizen act for that person in this area; has
//! the person reserved themself against the target service; has the person consented to the
//! client for a scope). The [`ClientDirectory`] trait, the cluster through `kartotek-client`
//! ([`ClusterDirectory`]: linearizable reads, each audited in the cluster as the frontend's
//! read about that person) and an in-memory one for tests ([`MemoryDirectory`]).

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use futures::future::BoxFuture;
use kartotek_client::proto::{
    CheckConsentRequest, CheckRepresentationRequest, CheckReservationRequest, ClientStatus,
    GetClientRequest, GranteeKind,
};
use kartotek_client::{ClientError, KartotekClient};

/// What the token service needs of a client record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryClient {
    /// The client id.
    pub client_id: String,
    /// The owning organisation's number.
    pub org: String,
    /// Whether it may get tokens.
    pub active: bool,
    /// Public JWKs as JSON text.
    pub public_keys: Vec<String>,
    /// Scopes it may ask for.
    pub allowed_scopes: Vec<String>,
}

/// The directory could not answer (the cluster is away); the caller should retry.
#[derive(Debug, Clone, thiserror::Error)]
#[error("client directory unavailable: {0}")]
pub struct DirectoryError(pub String);

/// The answer of a privacy-record check: allowed or not, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Whether it is allowed.
    pub allowed: bool,
    /// The registry's reason (no patient data beyond the persons asked about).
    pub reason: String,
}

/// Reads client records by id, and the privacy records a token exchange depends on.
pub trait ClientDirectory: Send + Sync + std::fmt::Debug {
    /// The client `client_id`, or `None` when there is none.
    fn get<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<DirectoryClient>, DirectoryError>>;

    /// May `representative` act for `represented` in `area` (`*`: every area) now?
    fn may_represent<'a>(
        &'a self,
        representative: &'a str,
        represented: &'a str,
        area: &'a str,
    ) -> BoxFuture<'a, Result<Checked, DirectoryError>>;

    /// Has `patient` reserved themself against the national service `service`?
    fn reserved<'a>(
        &'a self,
        patient: &'a str,
        service: &'a str,
    ) -> BoxFuture<'a, Result<bool, DirectoryError>>;

    /// Has `patient` granted the client `client_id` a consent for `scope`, in force now?
    fn consented<'a>(
        &'a self,
        patient: &'a str,
        client_id: &'a str,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<Checked, DirectoryError>>;
}

fn unavailable(e: ClientError) -> DirectoryError {
    DirectoryError(e.to_string())
}

/// The cluster's client registry (`ClientRegistryService.Get`, a linearizable read).
#[derive(Debug, Clone)]
pub struct ClusterDirectory {
    client: KartotekClient,
}

impl ClusterDirectory {
    /// Reads through `client`.
    pub fn new(client: KartotekClient) -> Self {
        ClusterDirectory { client }
    }
}

impl ClientDirectory for ClusterDirectory {
    fn get<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<DirectoryClient>, DirectoryError>> {
        Box::pin(async move {
            let request = GetClientRequest {
                client_id: client_id.to_owned(),
                read: None,
            };
            match self.client.get_client(request).await {
                Ok(resp) => Ok(resp.client.map(|c| DirectoryClient {
                    active: c.status() == ClientStatus::Active,
                    client_id: c.client_id,
                    org: c.org,
                    public_keys: c.public_keys,
                    allowed_scopes: c.allowed_scopes,
                })),
                // An id the registry cannot even parse names no client.
                Err(ClientError::NotFound(_) | ClientError::InvalidArgument { .. }) => Ok(None),
                Err(e) => Err(DirectoryError(e.to_string())),
            }
        })
    }

    fn may_represent<'a>(
        &'a self,
        representative: &'a str,
        represented: &'a str,
        area: &'a str,
    ) -> BoxFuture<'a, Result<Checked, DirectoryError>> {
        Box::pin(async move {
            let r = self
                .client
                .check_representation(CheckRepresentationRequest {
                    representative: representative.to_owned(),
                    represented: represented.to_owned(),
                    area: area.to_owned(),
                    time: String::new(),
                    read: None,
                })
                .await
                .map_err(unavailable)?;
            Ok(Checked {
                allowed: r.allowed,
                reason: r.reason,
            })
        })
    }

    fn reserved<'a>(
        &'a self,
        patient: &'a str,
        service: &'a str,
    ) -> BoxFuture<'a, Result<bool, DirectoryError>> {
        Box::pin(async move {
            let r = self
                .client
                .check_reservation(CheckReservationRequest {
                    patient: patient.to_owned(),
                    service: service.to_owned(),
                    read: None,
                })
                .await
                .map_err(unavailable)?;
            Ok(r.reserved)
        })
    }

    fn consented<'a>(
        &'a self,
        patient: &'a str,
        client_id: &'a str,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<Checked, DirectoryError>> {
        Box::pin(async move {
            let r = self
                .client
                .check_consent(CheckConsentRequest {
                    patient: patient.to_owned(),
                    grantee_kind: GranteeKind::Client as i32,
                    grantee: client_id.to_owned(),
                    scope: scope.to_owned(),
                    read: None,
                })
                .await
                .map_err(unavailable)?;
            Ok(Checked {
                allowed: r.allowed,
                reason: r.reason,
            })
        })
    }
}

/// Clients and privacy facts held in memory (tests, and a frontend without a cluster).
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    clients: RwLock<HashMap<String, DirectoryClient>>,
    /// `(representative, represented, area)`; area `*` covers every area.
    representations: RwLock<HashSet<(String, String, String)>>,
    /// `(patient, service)`.
    reservations: RwLock<HashSet<(String, String)>>,
    /// `(patient, client_id, scope)`.
    consents: RwLock<HashSet<(String, String, String)>>,
}

impl MemoryDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        MemoryDirectory::default()
    }

    /// Adds or replaces a client.
    pub fn insert(&self, client: DirectoryClient) {
        let mut clients = self.clients.write().unwrap_or_else(|e| e.into_inner());
        clients.insert(client.client_id.clone(), client);
    }

    /// `representative` may act for `represented` in `area` (`*`: all).
    pub fn represent(&self, representative: &str, represented: &str, area: &str) {
        let mut r = self
            .representations
            .write()
            .unwrap_or_else(|e| e.into_inner());
        r.insert((representative.into(), represented.into(), area.into()));
    }

    /// `patient` has reserved themself against `service`.
    pub fn reserve(&self, patient: &str, service: &str) {
        let mut r = self.reservations.write().unwrap_or_else(|e| e.into_inner());
        r.insert((patient.into(), service.into()));
    }

    /// `patient` consents to `client_id` for `scope`.
    pub fn consent(&self, patient: &str, client_id: &str, scope: &str) {
        let mut c = self.consents.write().unwrap_or_else(|e| e.into_inner());
        c.insert((patient.into(), client_id.into(), scope.into()));
    }
}

impl ClientDirectory for MemoryDirectory {
    fn get<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<DirectoryClient>, DirectoryError>> {
        let clients = self.clients.read().unwrap_or_else(|e| e.into_inner());
        let found = clients.get(client_id).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn may_represent<'a>(
        &'a self,
        representative: &'a str,
        represented: &'a str,
        area: &'a str,
    ) -> BoxFuture<'a, Result<Checked, DirectoryError>> {
        let r = self
            .representations
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let key = |a: &str| {
            (
                representative.to_owned(),
                represented.to_owned(),
                a.to_owned(),
            )
        };
        let allowed = r.contains(&key("*")) || (area != "*" && r.contains(&key(area)));
        Box::pin(async move {
            Ok(Checked {
                allowed,
                reason: if allowed {
                    "represents".into()
                } else {
                    "no representation between these persons".into()
                },
            })
        })
    }

    fn reserved<'a>(
        &'a self,
        patient: &'a str,
        service: &'a str,
    ) -> BoxFuture<'a, Result<bool, DirectoryError>> {
        let r = self.reservations.read().unwrap_or_else(|e| e.into_inner());
        let reserved = r.contains(&(patient.to_owned(), service.to_owned()));
        Box::pin(async move { Ok(reserved) })
    }

    fn consented<'a>(
        &'a self,
        patient: &'a str,
        client_id: &'a str,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<Checked, DirectoryError>> {
        let c = self.consents.read().unwrap_or_else(|e| e.into_inner());
        let allowed = c.contains(&(patient.to_owned(), client_id.to_owned(), scope.to_owned()));
        Box::pin(async move {
            Ok(Checked {
                allowed,
                reason: if allowed {
                    "consented".into()
                } else {
                    "no granted consent".into()
                },
            })
        })
    }
}
