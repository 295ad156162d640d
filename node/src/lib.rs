//! The Kartotek node and command-line tool, as a library; `main.rs` only calls [`cli::run`].
//!
//! - [`server`] wires a node: storage ([`kartotek_storage`]), openraft, the gRPC services and
//!   the metrics endpoint.
//! - [`raft_network`] / [`raft_service`]: the Raft transport over tonic, client and server.
//! - [`read_barrier`] (linearizable reads) and [`staleness`] (bounded-staleness reads).
//! - [`locator_service`] (+ [`locator_stream`]: import and watch), [`admin_service`]: the public
//!   `kartotek.v1` API.
//! - [`records`]: the record families' services (blocks, access decision, notifications,
//!   consents, reservations, representation, API catalog, clients).
//! - [`cli`]: `kartotek node`, `kartotek dev`, `kartotek admin …`, `kartotek locator …`.

pub mod admin_service;
pub mod audit_service;
pub mod caller;
pub mod cli;
pub mod config;
pub mod context;
pub mod convert;
pub mod error;
pub mod locator_service;
pub mod locator_stream;
pub mod metrics;
pub mod peers;
pub mod proposer;
pub mod raft_network;
pub mod raft_service;
pub mod read_barrier;
pub mod records;
pub mod server;
pub mod staleness;
