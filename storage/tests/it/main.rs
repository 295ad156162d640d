//! The storage crate's integration tests, as one test binary (RocksDB and openraft are linked
//! once instead of once per file): the openraft storage suite, the state machine's apply and
//! snapshot rules (with property tests), the record families, the audit log's hash chain and
//! the history (watch) feed, each against a real RocksDB in a temporary directory. Run one
//! module with `cargo test --workspace --test it state_machine::`.

mod audit_log;
mod history;
mod openraft_suite;
mod records;
mod state_machine;
