//! openraft's own storage test suite against the RocksDB log store and state machine.

use kartotek_storage::{LogStore, StateMachine, Store, StoreConfig, TypeConfig};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = TempDir::new().map_err(|e| kartotek_storage::StoreError::Io(e).write_logs())?;
        let store = Store::open(dir.path(), StoreConfig::default()).map_err(|e| e.write_logs())?;
        Ok((dir, store.log, store.state_machine))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(RocksBuilder) {
        panic!("openraft storage suite: {e}");
    }
}
