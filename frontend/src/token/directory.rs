//! What the token service reads from the registry: client records, and for a token exchange
//! the privacy records that decide it (may this citizen act for that person in this area; has
//! the person reserved themself against the target service; has the person consented to the
//! client for a scope). The [`ClientDirectory`] trait, the cluster through `kartotek-client`
//! ([`ClusterDirectory`]: linearizable reads, each audited in the cluster as the frontend's
//! read about that person) and an in-memory one for tests ([`MemoryDirectory`]).
//!
//! It is also the token service's way to the cluster's token ledger
//! (`TokenLedgerService`): spending an assertion's and a proof's `jti` once for every
//! frontend instance, revoking access tokens, and asking whether one is revoked.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use futures::future::BoxFuture;
use kartotek_client::proto::{
    CheckConsentRequest, CheckRepresentationRequest, CheckReservationRequest, ClientStatus,
    GetClientRequest, GranteeKind, RevokeTokenRequest, SpendTokenIdsRequest, TokenIdEntry,
    TokenIdKind, TokenIdStatusRequest,
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

/// What a token-ledger entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedgerKind {
    /// A client assertion's `jti`.
    Assertion,
    /// A DPoP proof's `jti`.
    Proof,
    /// A revoked access token's `jti`.
    Revoked,
}

impl LedgerKind {
    /// The kind's name, as the ledger names it in errors.
    pub fn name(self) -> &'static str {
        match self {
            LedgerKind::Assertion => "client_assertion",
            LedgerKind::Proof => "dpop_proof",
            LedgerKind::Revoked => "revoked_token",
        }
    }

    fn proto(self) -> TokenIdKind {
        match self {
            LedgerKind::Assertion => TokenIdKind::ClientAssertion,
            LedgerKind::Proof => TokenIdKind::DpopProof,
            LedgerKind::Revoked => TokenIdKind::RevokedToken,
        }
    }
}

/// One entry of the cluster's token ledger.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LedgerId {
    /// What it names.
    pub kind: LedgerKind,
    /// Whose: the assertion's `iss`, the token's `client_id`.
    pub client_id: String,
    /// The `jti`.
    pub jti: String,
    /// Until when it is kept (seconds since the epoch): the expiry of what it names.
    pub expires_at_s: i64,
}

impl LedgerId {
    fn proto(&self) -> TokenIdEntry {
        TokenIdEntry {
            kind: self.kind.proto() as i32,
            client_id: self.client_id.clone(),
            jti: self.jti.clone(),
            expires_at_ms: self.expires_at_s.saturating_mul(1000),
        }
    }
}

/// The answer of a spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spent {
    /// Every id was new and is now spent.
    Fresh,
    /// One was spent before (the ledger's reason); nothing was stored.
    Replayed(String),
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

    /// Spends single-use ids, all or none, for every frontend at once.
    fn spend<'a>(&'a self, ids: &'a [LedgerId]) -> BoxFuture<'a, Result<Spent, DirectoryError>>;

    /// Revokes an access token (kind [`LedgerKind::Revoked`]) until it expires.
    fn revoke<'a>(&'a self, id: &'a LedgerId) -> BoxFuture<'a, Result<(), DirectoryError>>;

    /// Whether `client_id`'s access token `jti` is revoked.
    fn revoked<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
    ) -> BoxFuture<'a, Result<bool, DirectoryError>>;
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

    fn spend<'a>(&'a self, ids: &'a [LedgerId]) -> BoxFuture<'a, Result<Spent, DirectoryError>> {
        Box::pin(async move {
            let request = SpendTokenIdsRequest {
                request_id: String::new(),
                ids: ids.iter().map(LedgerId::proto).collect(),
            };
            match self.client.spend_token_ids(request).await {
                Ok(_) => Ok(Spent::Fresh),
                Err(ClientError::FailedPrecondition(reason)) => Ok(Spent::Replayed(reason)),
                Err(e) => Err(unavailable(e)),
            }
        })
    }

    fn revoke<'a>(&'a self, id: &'a LedgerId) -> BoxFuture<'a, Result<(), DirectoryError>> {
        Box::pin(async move {
            let request = RevokeTokenRequest {
                request_id: String::new(),
                token: Some(id.proto()),
            };
            self.client
                .revoke_token(request)
                .await
                .map(|_| ())
                .map_err(unavailable)
        })
    }

    fn revoked<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
    ) -> BoxFuture<'a, Result<bool, DirectoryError>> {
        Box::pin(async move {
            let request = TokenIdStatusRequest {
                kind: TokenIdKind::RevokedToken as i32,
                client_id: client_id.to_owned(),
                jti: jti.to_owned(),
                read: None,
            };
            match self.client.token_id_status(request).await {
                Ok(r) => Ok(r.present),
                // A client id or jti the ledger cannot hold was never revoked.
                Err(ClientError::InvalidArgument { .. }) => Ok(false),
                Err(e) => Err(unavailable(e)),
            }
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
    /// The token ledger: `(kind, client_id, jti)` → expiry (seconds).
    ledger: RwLock<HashMap<(LedgerKind, String, String), i64>>,
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

    fn spend<'a>(&'a self, ids: &'a [LedgerId]) -> BoxFuture<'a, Result<Spent, DirectoryError>> {
        let now_s = super::routes::now_s();
        let mut ledger = self.ledger.write().unwrap_or_else(|e| e.into_inner());
        let key = |id: &LedgerId| (id.kind, id.client_id.clone(), id.jti.clone());
        let replayed = ids
            .iter()
            .find(|id| ledger.get(&key(id)).is_some_and(|&exp| exp > now_s));
        let answer = match replayed {
            Some(id) => Spent::Replayed(format!("{} jti was already used", id.kind.name())),
            None => {
                for id in ids {
                    ledger.insert(key(id), id.expires_at_s);
                }
                Spent::Fresh
            }
        };
        Box::pin(async move { Ok(answer) })
    }

    fn revoke<'a>(&'a self, id: &'a LedgerId) -> BoxFuture<'a, Result<(), DirectoryError>> {
        let mut ledger = self.ledger.write().unwrap_or_else(|e| e.into_inner());
        ledger.insert(
            (LedgerKind::Revoked, id.client_id.clone(), id.jti.clone()),
            id.expires_at_s,
        );
        Box::pin(async move { Ok(()) })
    }

    fn revoked<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
    ) -> BoxFuture<'a, Result<bool, DirectoryError>> {
        let ledger = self.ledger.read().unwrap_or_else(|e| e.into_inner());
        let found = ledger
            .get(&(LedgerKind::Revoked, client_id.to_owned(), jti.to_owned()))
            .is_some();
        Box::pin(async move { Ok(found) })
    }
}
