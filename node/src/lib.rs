//! The Kartotek node and command-line tool, as a library; `main.rs` only calls [`cli::run`].
//!
//! Layers, bottom to top (a module uses only the ones below it):
//!
//! - [`error`], [`config`] (+ [`policy`]), [`metrics`]: the node's error type (and its gRPC
//!   mapping), its one `Config` (TOML + `KARTOTEK_*` env, validated; the access-policy
//!   section), its Prometheus metrics; [`log_hash`], the key national ids are pseudonymised
//!   under in the log.
//! - [`raft`]: the Raft transport over tonic (client [`raft::network`], server
//!   [`raft::service`]), the peer channel pool and the proposer that batches writes into log
//!   entries. Storage ([`kartotek_storage`]) sits under it.
//! - [`consistency`]: linearizable reads (read-index) and bounded-staleness proofs.
//! - [`context`]: [`context::NodeContext`], the node's parts behind methods (private fields).
//! - [`audit`]: audit events durable before an answer (fsynced in the node's audit journal),
//!   the shipper that moves them into the chain exactly once, retention, and the events'
//!   wire form. Its module doc is the audit guarantee.
//! - [`sweep`]: leader-only housekeeping proposals (the consent-expiry sweep).
//! - [`api`]: the public `kartotek.v1` API — the request layer ([`api::layer`]: one road for
//!   every call: admission, caller, read mode, audit rule, metrics), the method table
//!   ([`api::methods`]) and the thin service handlers over it, which never import each other.
//! - [`server`]: wires one node together and serves it.
//! - [`cli`]: the `kartotek` command line: `node`, `dev` and `frontend` here, and the offline
//!   `admin verify-backup` / `admin restore` ([`cli::backup`]); every client-side command
//!   comes from the `kartotek-cli` crate, which talks to the cluster only through
//!   `kartotek-client`.
//!
//! # Backups
//!
//! `AdminService.Backup` ([`api::admin`]) streams, from the leader, a snapshot built at or
//! after a linearizable read index: the state exactly at one log id, holding every write
//! acknowledged before the backup was asked for, with its revision and audit chain head in
//! the manifest. A restore ([`cli::backup`], on [`kartotek_storage::backup`]) seeds a new
//! cluster's empty data directories from it; they start as members of the backed-up
//! membership, and the change feed and the audit chain continue from the backup. The storage
//! crate's docs (rule 6) hold the durability contract of a restore.

pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod consistency;
pub mod context;
pub mod disk;
pub mod error;
pub mod log_hash;
pub mod metrics;
pub mod policy;
pub mod raft;
pub mod server;
pub mod sweep;
