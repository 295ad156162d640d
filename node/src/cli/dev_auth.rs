//! `kartotek dev`'s security setup: one token issuer (the dev frontend), nodes that require
//! its tokens, and dev clients with key files, so that the two-command start works with
//! authentication on.
//!
//! Under `<data-dir>/auth/`, made on the first start and kept:
//! - `signing-keys.json`: the frontend's private signing key (a JWK Set, mode 0600;
//!   `token.signing_keys_file` of `frontend.toml`), so that tokens outlive a restart;
//! - `jwks.json`: its public half, which every node's `[auth]` trusts (`jwks_file`).
//!
//! After the cluster is up, the supervisor signs itself an admin token with that key (client
//! id [`SUPERVISOR_CLIENT_ID`]; it never leaves the process) and registers the dev clients of
//! [`DEV_CLIENTS`] in the cluster with fresh P-256 keys, writing each one's client file (the
//! private key; mode 0600) to `<data-dir>/clients/<name>.json`. A client already registered
//! keeps its record and file. Everything here is for a laptop: the keys are on disk in the
//! clear and the issuer is plain http on loopback.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use kartotek_auth::{Issuer, SigningKey, SigningKeySet, scopes};
use kartotek_cli::bootstrap::write_private;
use kartotek_client::{ClientConfig, ClientError, ClientFile, KartotekClient, SelfIssued};
use kartotek_proto::v1::{ClientRequest, GetClientRequest};
use serde::{Deserialize, Serialize};

use crate::config::{AuthSettings, TrustedIssuerSettings};

/// The audience of every dev token (the frontend's default `token.audience`).
pub const AUDIENCE: &str = "kartotek";
/// The client id the supervisor's own admin token names.
pub const SUPERVISOR_CLIENT_ID: &str = "kartotek-dev";
/// Lifetime of the dev frontend's access tokens, seconds.
pub const TOKEN_LIFETIME_S: i64 = 300;
/// The organisation number dev clients belong to (a valid test number).
pub const DEV_ORG: &str = "999999999";

/// One dev client: file name, client id, what it is for and its allowed scopes.
pub struct DevClient {
    /// `<data-dir>/clients/<name>.json`.
    pub name: &'static str,
    /// Its id in the client registry.
    pub client_id: &'static str,
    /// Shown in the client file and at start.
    pub description: &'static str,
    /// Scopes it may ask for.
    pub scopes: &'static [&'static str],
}

/// The clients `kartotek dev` provisions.
pub const DEV_CLIENTS: [DevClient; 3] = [
    DevClient {
        name: "health-service",
        client_id: "dev-health-service",
        description: "a health service: reads and writes locator entries and privacy records, reads the audit log and forwards its own audit events",
        scopes: &[
            scopes::LOCATOR_READ,
            scopes::LOCATOR_WRITE,
            scopes::RECORDS_READ,
            scopes::RECORDS_WRITE,
            scopes::AUDIT_READ,
            scopes::AUDIT_WRITE,
        ],
    },
    DevClient {
        name: "admin",
        client_id: "dev-admin",
        description: "an operator: every scope, cluster administration included",
        scopes: &[
            scopes::LOCATOR_READ,
            scopes::LOCATOR_WRITE,
            scopes::RECORDS_READ,
            scopes::RECORDS_WRITE,
            scopes::AUDIT_READ,
            scopes::AUDIT_WRITE,
            scopes::ADMIN,
            scopes::CLIENTS_READ,
        ],
    },
    DevClient {
        name: "citizen-app",
        client_id: "dev-citizen-app",
        description: "a citizen app: exchanges a citizen's login (dev: kartotek --dev-login NATIONAL_ID) for a token for the citizen, or --act-for someone they represent",
        scopes: &[scopes::CITIZEN],
    },
];

/// The dev cluster's security files, in `cluster.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthEntry {
    /// The issuer URL every token names (the frontend's base URL on the first start).
    pub issuer: String,
    /// The audience.
    pub audience: String,
    /// Private signing keys (the frontend's).
    pub signing_keys_file: PathBuf,
    /// Public keys (the nodes').
    pub jwks_file: PathBuf,
    /// Where the client files are.
    pub clients_dir: PathBuf,
}

impl AuthEntry {
    /// Makes (or keeps) the keys under `<data_dir>/auth/` for `issuer`.
    pub fn prepare(data_dir: &Path, issuer: &str) -> anyhow::Result<AuthEntry> {
        let dir = data_dir.join("auth");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let entry = AuthEntry {
            issuer: issuer.to_owned(),
            audience: AUDIENCE.into(),
            signing_keys_file: dir.join("signing-keys.json"),
            jwks_file: dir.join("jwks.json"),
            clients_dir: data_dir.join("clients"),
        };
        if !entry.signing_keys_file.exists() {
            let keys = SigningKeySet::single(SigningKey::generate_es256()?);
            write_private(&entry.signing_keys_file, keys.to_jwks_json().as_bytes())?;
        }
        let issuer = entry.issuer()?;
        let public = issuer.public_jwks(now_s());
        std::fs::write(&entry.jwks_file, serde_json::to_string_pretty(&public)?)
            .with_context(|| format!("writing {}", entry.jwks_file.display()))?;
        Ok(entry)
    }

    /// The issuer with the stored signing keys.
    fn issuer(&self) -> anyhow::Result<Issuer> {
        let keys = SigningKeySet::from_file(&self.signing_keys_file)
            .with_context(|| format!("reading {}", self.signing_keys_file.display()))?;
        Ok(Issuer::new(self.issuer.clone(), keys, TOKEN_LIFETIME_S))
    }

    /// The nodes' `[auth]`: tokens required, this issuer trusted.
    pub fn node_settings(&self) -> AuthSettings {
        AuthSettings {
            required: true,
            trusted_issuers: vec![TrustedIssuerSettings {
                issuer: self.issuer.clone(),
                audience: self.audience.clone(),
                jwks_file: self.jwks_file.clone(),
            }],
            ..AuthSettings::default()
        }
    }

    /// A client that calls with the supervisor's own admin token.
    pub fn supervisor_client(&self, config: ClientConfig) -> anyhow::Result<KartotekClient> {
        let tokens = SelfIssued::new(
            self.issuer()?,
            &self.audience,
            SUPERVISOR_CLIENT_ID,
            &[scopes::ADMIN, scopes::CLIENTS_READ],
        );
        Ok(KartotekClient::with_tokens(config, Arc::new(tokens))?)
    }

    /// The client file of dev client `name`.
    pub fn client_file(&self, name: &str) -> PathBuf {
        self.clients_dir.join(format!("{name}.json"))
    }

    /// Registers every dev client that has no record yet and writes its client file;
    /// returns the files.
    pub async fn provision_clients(
        &self,
        admin: &KartotekClient,
        token_endpoint: &str,
    ) -> anyhow::Result<Vec<(&'static DevClient, PathBuf)>> {
        std::fs::create_dir_all(&self.clients_dir)
            .with_context(|| format!("creating {}", self.clients_dir.display()))?;
        let mut files = Vec::new();
        for client in &DEV_CLIENTS {
            let path = self.client_file(client.name);
            let registered = match admin
                .get_client(GetClientRequest {
                    client_id: client.client_id.into(),
                    ..Default::default()
                })
                .await
            {
                Ok(_) => true,
                Err(ClientError::NotFound(_)) => false,
                Err(e) => {
                    return Err(e).with_context(|| format!("looking up {}", client.client_id));
                }
            };
            if registered && path.exists() {
                files.push((client, path));
                continue;
            }
            if registered {
                anyhow::bail!(
                    "client {} is registered but {} is missing; remove the data directory to start afresh",
                    client.client_id,
                    path.display()
                );
            }
            let key = SigningKey::generate_es256()?;
            admin
                .register_client(ClientRequest {
                    client_id: client.client_id.into(),
                    org: DEV_ORG.into(),
                    public_keys: vec![key.public_key().jwk().to_string()],
                    allowed_scopes: client.scopes.iter().map(|s| (*s).to_owned()).collect(),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("registering {}", client.client_id))?;
            let file = ClientFile {
                client_id: client.client_id.into(),
                issuer: self.issuer.clone(),
                token_endpoint: token_endpoint.to_owned(),
                scope: None,
                private_jwk: key.private_jwk(),
                description: Some(format!("kartotek dev: {}", client.description)),
            };
            write_private(&path, serde_json::to_string_pretty(&file)?.as_bytes())?;
            files.push((client, path));
        }
        Ok(files)
    }
}

fn now_s() -> i64 {
    kartotek_domain::Timestamp::now().0.div_euclid(1000)
}
