//! The one way a changed record reaches the state: [`StoredRecord`] says, for each record
//! family (locator entries and the privacy-settings records alike), under which key it lives,
//! which index entries it keeps and which change event and answer it produces; [`Ctx::store`]
//! writes it, and [`Ctx::finish`] turns a domain `apply_*` result into the command's answer,
//! storing the record first when it changed. [`load_list`] and [`Ctx::update`] are the two ways
//! the family modules load what the domain rules need.
//!
//! Every change moves the state revision by one and records a change event under it, so the
//! watch feed sees every stored version; an idempotent repeat (`changed == false`) writes
//! nothing at all.

use kartotek_domain::{ApplyError, Change, NationalId, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Ctx, EntryTxn, record_change};
use crate::error::StoreError;
use crate::record_keys::{IdList, id_list_key};

/// The answer of one operation: the outer `Result` is a storage failure (the node stops
/// applying), the inner one the command's answer.
pub(crate) type Applied<O> = Result<Result<O, ApplyError>, StoreError>;

/// A domain rule for a command about one existing record (or none): the record, the
/// command, the leader's stamp and the next revision in; the new version and whether it
/// changed out.
pub(crate) type Rule<R, C> = fn(Option<&R>, &C, Timestamp, u64) -> Result<(R, bool), ApplyError>;

/// A domain rule for a command checked against all of a person's records of one family.
pub(crate) type ListRule<R, C> = fn(&[R], &C, Timestamp, u64) -> Result<(R, bool), ApplyError>;

/// A record family as the state machine stores it.
pub(crate) trait StoredRecord: Serialize + Clone {
    /// What the command answers with this record: `Outcome` for locator entries,
    /// `RecordOutcome` for the record families.
    type Outcome;

    /// The record's primary key in the `sm` family.
    fn key(&self) -> Vec<u8>;

    /// `(create_revision, mod_revision)` of this version.
    fn revisions(&self) -> (u64, u64);

    /// The per-person id list (list, person, id) a record joins when it is created.
    fn id_list(&self) -> Option<(IdList, &NationalId, u64)> {
        None
    }

    /// Raw index entries (key, value) written with this version; `created` says whether this
    /// version created the record.
    fn index_entries(&self, created: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
        let _ = created;
        Vec::new()
    }

    /// The change-feed event of this version.
    fn change(&self) -> Change;

    /// The command's answer with this record.
    fn outcome(self, changed: bool) -> Self::Outcome;
}

/// Implements [`StoredRecord`] for a record family that carries `create_revision` and
/// `mod_revision`: its key, the `Change` variant of its event and its outcome, plus any
/// optional trait items (`id_list`, `index_entries`) written out after them.
macro_rules! stored_record {
    (
        $record:ty => $outcome:ty,
        key: |$k:ident| $key:expr,
        change: $change:path,
        outcome: |$o:ident, $changed:ident| $out:expr
        $(, $($item:item)*)?
    ) => {
        impl $crate::apply::stored::StoredRecord for $record {
            type Outcome = $outcome;

            fn key(&self) -> Vec<u8> {
                let $k = self;
                $key
            }

            fn revisions(&self) -> (u64, u64) {
                (self.create_revision, self.mod_revision)
            }

            fn change(&self) -> kartotek_domain::Change {
                $change(self.clone())
            }

            fn outcome(self, $changed: bool) -> $outcome {
                let $o = self;
                $out
            }

            $($($item)*)?
        }
    };
}
pub(crate) use stored_record;

impl Ctx<'_, '_> {
    /// The revision the next change is recorded under.
    pub(crate) fn next_revision(&self) -> u64 {
        self.meta.revision + 1
    }

    /// Writes a changed record (its id-list membership and index entries first) and records
    /// its change at the next revision.
    pub(crate) fn store<R: StoredRecord>(&mut self, record: &R) -> Result<(), StoreError> {
        let (create_revision, mod_revision) = record.revisions();
        // Invariant: a changed record carries the revision its change is recorded under.
        assert_eq!(
            mod_revision,
            self.next_revision(),
            "record revision out of step with the state revision"
        );
        let created = create_revision == mod_revision;
        if created && let Some((list, person, id)) = record.id_list() {
            push_id(self.txn, list, person, id)?;
        }
        for (key, value) in record.index_entries(created) {
            self.txn.put_raw(&key, &value)?;
        }
        self.txn.put(&record.key(), record)?;
        record_change(self.txn, self.meta, self.now, record.change())
    }

    /// Turns a domain apply result into the answer, storing the record first when it changed.
    pub(crate) fn finish<R: StoredRecord>(
        &mut self,
        result: Result<(R, bool), ApplyError>,
    ) -> Applied<R::Outcome> {
        match result {
            Ok((record, changed)) => {
                if changed {
                    self.store(&record)?;
                }
                Ok(Ok(record.outcome(changed)))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Loads the record under `key` (if any), applies `rule` for `cmd` to it with the next
    /// revision, and finishes the result.
    pub(crate) fn update<R: StoredRecord + DeserializeOwned, C>(
        &mut self,
        key: &[u8],
        rule: Rule<R, C>,
        cmd: &C,
    ) -> Applied<R::Outcome> {
        let existing: Option<R> = self.txn.get(key)?;
        let result = rule(existing.as_ref(), cmd, self.now, self.next_revision());
        self.finish(result)
    }

    /// Applies `rule` for `cmd` among `records` (a person's list, loaded with [`load_list`])
    /// with the next revision, and finishes the result.
    pub(crate) fn among<R: StoredRecord, C>(
        &mut self,
        records: &[R],
        rule: ListRule<R, C>,
        cmd: &C,
    ) -> Applied<R::Outcome> {
        let result = rule(records, cmd, self.now, self.next_revision());
        self.finish(result)
    }
}

/// Loads a person's records through their id list (oldest first).
pub(crate) fn load_list<T: DeserializeOwned>(
    txn: &EntryTxn<'_>,
    list: IdList,
    person: &NationalId,
    key_of: impl Fn(&NationalId, u64) -> Vec<u8>,
) -> Result<Vec<T>, StoreError> {
    let ids: Vec<u64> = txn.get(&id_list_key(list, person))?.unwrap_or_default();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match txn.get(&key_of(person, id))? {
            Some(v) => out.push(v),
            None => {
                return Err(StoreError::Corrupt(format!(
                    "id list {list:?} names record {id}, which is missing"
                )));
            }
        }
    }
    Ok(out)
}

/// Appends a new record's id to a person's id list.
fn push_id(
    txn: &mut EntryTxn<'_>,
    list: IdList,
    person: &NationalId,
    id: u64,
) -> Result<(), StoreError> {
    let key = id_list_key(list, person);
    let mut ids: Vec<u64> = txn.get(&key)?.unwrap_or_default();
    // Invariant: ids are revisions, so a new one is above every listed one.
    assert!(
        ids.last().is_none_or(|last| *last < id),
        "id list {list:?} out of order"
    );
    ids.push(id);
    txn.put(&key, &ids)
}
