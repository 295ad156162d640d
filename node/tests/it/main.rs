//! The node's integration tests, as one test binary: each module starts real `kartotek`
//! processes (clusters over mutual TLS, `kartotek dev`, the frontend) and talks to them
//! through the client, the CLI or raw gRPC. One binary instead of one per file: the shared
//! helpers ([`common`]) and the gRPC client code are compiled and linked once, which is most of
//! the build time of these tests (CI runs on two cores). Run one module with
//! `cargo test --workspace --test it auth::`.

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod audit_frontend;
mod auth;
mod backup;
mod bad_input;
mod bootstrap;
mod catalog_frontend;
mod cli_client_update;
mod cli_rough_edges;
mod cluster;
mod deploy_files;
mod dev_cli;
mod disk_full;
mod fhir_frontend;
mod innsyn_frontend;
mod innsyn_oidc;
mod locator_feed;
mod org_frontend;
mod raft_metrics;
mod record_paging;
mod records;
mod request_layer;
mod rolling_upgrade;
mod telemetry;
mod testkit_config;
mod token_service;
