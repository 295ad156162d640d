//! Errors of the storage layer and their mapping onto openraft's [`openraft::StorageError`].

use openraft::StorageIOError;

use crate::types::RaftStorageError;

/// What can go wrong below the state machine.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored value could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(#[from] postcard::Error),
    /// File I/O failed (snapshots).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Stored data is not what this version writes: refuse to guess.
    #[error("corrupt or incompatible data: {0}")]
    Corrupt(String),
    /// A background task died.
    #[error("task failed: {0}")]
    Task(String),
    /// A snapshot is being installed on this node: its state cannot be read until it is done
    /// ([`crate::fence`]). Retry, here later or on another node.
    #[error("a snapshot is being installed on this node; retry (another node can answer)")]
    Installing,
    /// This node's audit journal holds its maximum of unshipped events (the chain has not
    /// taken them for a while): a read that would need one more is refused.
    #[error(
        "the audit journal is full ({0} events wait to be shipped to the chain); retry later or on another node"
    )]
    JournalFull(u64),
}

impl StoreError {
    /// Log read failure.
    pub fn read_logs(self) -> RaftStorageError {
        StorageIOError::read_logs(&self).into()
    }

    /// Log write failure.
    pub fn write_logs(self) -> RaftStorageError {
        StorageIOError::write_logs(&self).into()
    }

    /// Vote read failure.
    pub fn read_vote(self) -> RaftStorageError {
        StorageIOError::read_vote(&self).into()
    }

    /// Vote write failure.
    pub fn write_vote(self) -> RaftStorageError {
        StorageIOError::write_vote(&self).into()
    }

    /// State machine read failure.
    pub fn read_sm(self) -> RaftStorageError {
        StorageIOError::read_state_machine(&self).into()
    }

    /// State machine write failure.
    pub fn write_sm(self) -> RaftStorageError {
        StorageIOError::write_state_machine(&self).into()
    }

    /// Snapshot read failure.
    pub fn read_snapshot(self) -> RaftStorageError {
        StorageIOError::read_snapshot(None, &self).into()
    }

    /// Snapshot write failure.
    pub fn write_snapshot(self) -> RaftStorageError {
        StorageIOError::write_snapshot(None, &self).into()
    }
}
