//! Rust client for Kartotek, the Raft-replicated health registry.
//!
//! [`KartotekClient`] wraps the `kartotek.v1` gRPC API (`LocatorService`, `AdminService`,
//! `AuditService` and the record families' services: blocks, access decision, notifications,
//! consents, reservations, representation, API catalog, clients)
//! with leader discovery, retries with backoff until a deadline, and stable request ids for
//! writes. Configure it with [`ClientConfig`]; failures are [`ClientError`]s. [`audit`] turns
//! audit event messages back into the domain's chained events, to recompute the hash chain.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kartotek_client::ClientError> {
//! use kartotek_client::{ClientConfig, KartotekClient};
//! use kartotek_client::proto::RegisterLocatorRequest;
//!
//! let client = KartotekClient::new(ClientConfig::with_endpoints(["127.0.0.1:7401"]))?;
//! let answer = client
//!     .register_locator(RegisterLocatorRequest {
//!         patient: "01010112345".into(),
//!         org: "123456789".into(),
//!         system: "ehr".into(),
//!         ..Default::default()
//!     })
//!     .await?;
//! println!("changed: {}", answer.changed);
//! # Ok(())
//! # }
//! ```

pub mod audit;
mod client;
mod config;
mod dpop;
mod endpoints;
mod error;
mod records;
mod retry;
mod streams;
pub mod token;

pub use client::{CallerIdentity, KartotekClient, correlated};
pub use config::{
    ClientConfig, DEFAULT_ENDPOINTS, ENDPOINT_LEN_MAX, ENDPOINTS_MAX, normalize_endpoint,
};
pub use error::{ClientError, ERROR_TEXT_MAX};
pub use streams::{IMPORT_WINDOW_BATCHES_MAX, LocatorWatch};
pub use token::{
    BearerToken, ClientCredentials, ClientFile, Exchange, SelfIssued, StaticToken, TokenSource,
    dev_login, fetch_bytes, post_form_bytes,
};

/// The `kartotek.v1` messages the client's methods take and return.
pub use kartotek_proto::v1 as proto;
