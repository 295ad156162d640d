//! Replicated operations on the privacy-settings record families, the API catalog and
//! clients, and their outcomes. [`crate::Op::Record`] carries a [`RecordOp`]; the state machine
//! (`storage/src/records.rs`) applies it with the pure functions of each family's module.

use serde::{Deserialize, Serialize};

/// An operation on one of the record families (append-only variants: the log stores them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordOp {}

/// What a [`RecordOp`] produced (append-only variants: the dedup table stores them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordOutcome {}
