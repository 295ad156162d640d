//! Where the token service reads client records: the [`ClientDirectory`] trait, the cluster
//! through `kartotek-client` ([`ClusterDirectory`]) and an in-memory one for tests
//! ([`MemoryDirectory`]).

use std::collections::HashMap;
use std::sync::RwLock;

use futures::future::BoxFuture;
use kartotek_client::proto::{ClientStatus, GetClientRequest};
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

/// Reads client records by id.
pub trait ClientDirectory: Send + Sync + std::fmt::Debug {
    /// The client `client_id`, or `None` when there is none.
    fn get<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<DirectoryClient>, DirectoryError>>;
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
}

/// Clients held in memory (tests, and a frontend without a cluster).
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    clients: RwLock<HashMap<String, DirectoryClient>>,
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
}
