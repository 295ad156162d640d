//! Backups of a whole cluster, and seeding a node's data directory from one.
//!
//! A backup is a snapshot file ([`crate::snapshot_file`], the same `KTSNAP01` file openraft
//! streams to a lagging follower) taken by the leader at or after a linearizable read index,
//! plus a manifest the CLI writes beside it (`kartotek admin backup`). This module holds the
//! storage side of it:
//!
//! - [`inspect`]: one verifying pass over a snapshot file: every frame decodes, the trailer's
//!   frame count and SHA-256 match, nothing follows the trailer; it returns what the manifest
//!   states about the file (size, SHA-256 of the whole file, the snapshot's log id and
//!   membership, the state revision and the audit chain head at that log id). The leader runs
//!   it before it streams a backup, `verify-backup` and `restore` run it offline.
//! - [`restore`]: seeds an *empty* data directory from a verified snapshot the way a follower
//!   installs one, and sets the Raft metadata so that the node starts as an initialised
//!   member with an empty log after the snapshot's log id `L`.
//!
//! # Durability contract of a restore
//!
//! 1. The marker file [`RESTORE_MARKER`] is created (fsynced, directory fsynced) before
//!    anything else. [`crate::Store::open`] refuses a directory that holds it, so a node never
//!    starts on a half-restored directory as if it were a fresh, uninitialised node (which an
//!    operator could then `admin init` into a second cluster).
//! 2. The snapshot is copied to `snapshots/incoming.snap` while every frame and the checksum
//!    are verified (with the membership rewritten if asked), and fsynced.
//! 3. One synced WriteBatch writes the install marker together with the Raft metadata: the
//!    vote at `L`'s term (for this node, not committed), `last_purged = L` and
//!    `committed = L`. From here on a crash is finished at the next open: the install marker
//!    makes [`crate::SnapshotStore`]'s recovery load the snapshot.
//! 4. The file is renamed to `snapshots/current.snap` (directory fsynced) and loaded into the
//!    state machine in bounded batches; the last, synced batch sets the applied log id `L`
//!    and the membership and removes the install marker.
//! 5. [`RESTORE_MARKER`] is removed (directory fsynced): the directory is ready.
//!
//! openraft then opens with `last_applied = committed = last_purged = last_log_id = L`, a
//! snapshot at `L` to send to any learner that needs entries up to `L`, and the membership
//! of the backup, so every node restored from the same backup (each with its own id) knows
//! the same voters and they elect a leader among themselves at a term after `L`'s. The vote
//! must be at `L`'s term: a leader elected at an older term would append entries whose term
//! is below the log's.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use openraft::Membership;
use rocksdb::WriteBatch;
use sha2::{Digest, Sha256};

use crate::audit_log::SM_AUDIT_HEAD;
use crate::codec::{decode, encode};
use crate::db::{cf, synced};
use crate::error::StoreError;
use crate::keys::{
    CF_RAFT, RAFT_COMMITTED, RAFT_INSTALLING, RAFT_LAST_PURGED, RAFT_VOTE, SM_REVISION,
};
use crate::snapshot_file::{SnapshotReader, SnapshotWriter, sync_dir};
use crate::snapshot_store::{CURRENT, INCOMING, load_into_sm};
use crate::types::{KartotekNode, LogId, NodeId, SnapshotMeta, StoredMembership, Vote};

/// File in a data directory while a restore into it has not finished.
pub const RESTORE_MARKER: &str = "RESTORE-INCOMPLETE";

/// Block cache of the database a restore opens, in bytes (it only writes).
const RESTORE_CACHE_BYTES: usize = 8 << 20;

/// Where a node keeps its latest snapshot, under its data directory.
pub fn snapshot_path(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots").join(CURRENT)
}

/// What a verified snapshot file holds (see [`inspect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// The snapshot's metadata: log id, membership, snapshot id.
    pub meta: SnapshotMeta,
    /// The state revision at the snapshot's log id (the change feed's position).
    pub revision: u64,
    /// Seq of the newest audit event in the chain at the snapshot's log id (0: none).
    pub audit_head_seq: u64,
    /// Its hash (the genesis hash when there is none).
    pub audit_head_hash: [u8; 32],
    /// Key/value frames in the file.
    pub frames: u64,
    /// Size of the whole file.
    pub size_bytes: u64,
    /// SHA-256 of the whole file (trailer included).
    pub sha256: [u8; 32],
}

/// A reader that hashes and counts every byte it hands out.
struct Hashing<R> {
    input: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.input.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Reads a whole snapshot file from `input`, verifying every frame, the frame count and the
/// checksum, and that nothing follows the trailer. A truncated, extended or altered file is
/// refused with [`StoreError::Corrupt`] naming what is wrong.
pub fn inspect<R: Read>(input: R) -> Result<SnapshotSummary, StoreError> {
    inspect_frames(input, |_, _| Ok(()))
}

/// [`inspect`] that also hands every frame to `each`.
fn inspect_frames<R: Read>(
    input: R,
    mut each: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
) -> Result<SnapshotSummary, StoreError> {
    let hashing = Hashing {
        input,
        hasher: Sha256::new(),
        bytes: 0,
    };
    let mut reader = SnapshotReader::new(hashing)?;
    let mut revision = 0u64;
    let mut head: (u64, [u8; 32]) = (0, kartotek_domain::audit::GENESIS_PREV_HASH);
    while let Some((k, v)) = reader.next_frame()? {
        if k == SM_REVISION {
            revision = decode(&v)?;
        } else if k == SM_AUDIT_HEAD {
            head = decode(&v)?;
        }
        each(&k, &v)?;
    }
    let meta = reader.meta().clone();
    let frames = reader.frames();
    let mut hashing = reader.into_inner();
    let mut extra = [0u8; 1];
    if hashing.read(&mut extra)? != 0 {
        return Err(StoreError::Corrupt(
            "snapshot has bytes after its checksum".into(),
        ));
    }
    Ok(SnapshotSummary {
        meta,
        revision,
        audit_head_seq: head.0,
        audit_head_hash: head.1,
        frames,
        size_bytes: hashing.bytes,
        sha256: hashing.hasher.finalize().into(),
    })
}

/// [`inspect`] of the file at `path`.
pub fn inspect_file(path: &Path) -> Result<SnapshotSummary, StoreError> {
    inspect(BufReader::with_capacity(1 << 20, File::open(path)?))
}

/// Refuses a data directory that holds an unfinished restore ([`RESTORE_MARKER`]).
pub fn check_no_interrupted_restore(data_dir: &Path) -> Result<(), StoreError> {
    if data_dir.join(RESTORE_MARKER).exists() {
        return Err(StoreError::Corrupt(format!(
            "{} holds an interrupted restore ({RESTORE_MARKER}): remove the directory and run \
             `kartotek admin restore` again",
            data_dir.display()
        )));
    }
    Ok(())
}

/// `membership` with the addresses of some members replaced (`addrs`: node id → new
/// addresses). Refuses an id that is not a member.
pub fn rewrite_addrs(
    membership: &StoredMembership,
    addrs: &BTreeMap<NodeId, KartotekNode>,
) -> Result<StoredMembership, StoreError> {
    let m = membership.membership();
    let mut nodes: BTreeMap<NodeId, KartotekNode> =
        m.nodes().map(|(id, n)| (*id, n.clone())).collect();
    for (id, node) in addrs {
        match nodes.get_mut(id) {
            Some(n) => *n = node.clone(),
            None => {
                return Err(StoreError::Corrupt(format!(
                    "node {id} is not a member of the backed-up cluster (members: {:?})",
                    nodes.keys().collect::<Vec<_>>()
                )));
            }
        }
    }
    Ok(StoredMembership::new(
        *membership.log_id(),
        Membership::new(m.get_joint_config().clone(), nodes),
    ))
}

/// What [`restore`] did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The snapshot loaded, with the membership the node now has.
    pub meta: SnapshotMeta,
    /// Frames loaded.
    pub frames: u64,
}

/// Whether `dir` holds nothing but, perhaps, an ext4 `lost+found` (the root of a freshly
/// formatted volume, e.g. a Kubernetes PVC mounted as the data dir: the node keeps its data in
/// subdirectories and never touches `lost+found`).
fn is_empty_but_lost_found(dir: &Path) -> std::io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        if entry?.file_name() != "lost+found" {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Seeds the empty (or missing) data directory `data_dir` for node `node_id` from the
/// snapshot file `backup`, with `membership` (the snapshot's own, or one from
/// [`rewrite_addrs`]). Follows the contract in the module docs. Refuses a non-empty
/// directory, a snapshot that does not verify, a snapshot with nothing applied and a node id
/// that is not a voter of `membership`.
pub fn restore(
    data_dir: &Path,
    backup: &Path,
    node_id: NodeId,
    membership: StoredMembership,
) -> Result<Restored, StoreError> {
    check_no_interrupted_restore(data_dir)?;
    if data_dir.exists() && !is_empty_but_lost_found(data_dir)? {
        return Err(StoreError::Corrupt(format!(
            "{} is not empty: a restore seeds a new, empty data directory",
            data_dir.display()
        )));
    }
    if !membership.membership().voter_ids().any(|v| v == node_id) {
        return Err(StoreError::Corrupt(format!(
            "node {node_id} is not a voter of the backed-up membership (voters: {:?})",
            membership.membership().voter_ids().collect::<Vec<_>>()
        )));
    }
    let header = SnapshotReader::open(backup)?.meta().clone();
    let Some(last) = header.last_log_id else {
        return Err(StoreError::Corrupt(
            "the backup holds no applied log entry".into(),
        ));
    };
    let meta = SnapshotMeta {
        last_log_id: Some(last),
        last_membership: membership,
        snapshot_id: header.snapshot_id.clone(),
    };

    // 1. The restore marker.
    std::fs::create_dir_all(data_dir)?;
    File::create(data_dir.join(RESTORE_MARKER))?.sync_all()?;
    sync_dir(data_dir)?;
    if let Some(parent) = data_dir.parent() {
        sync_dir(parent)?;
    }

    // 2. The verified copy, with the node's membership in its header.
    let snapshots = data_dir.join("snapshots");
    std::fs::create_dir_all(&snapshots)?;
    let incoming = snapshots.join(INCOMING);
    let mut out = SnapshotWriter::create(&incoming, &meta)?;
    let summary = inspect_frames(
        BufReader::with_capacity(1 << 20, File::open(backup)?),
        |k, v| out.frame(k, v),
    )?;
    if summary.meta != header {
        return Err(StoreError::Corrupt(
            "the backup changed while it was restored".into(),
        ));
    }
    let frames = out.finish()?;
    debug_assert_eq!(frames, summary.frames);

    // 3. The install marker with the Raft metadata, in one synced batch.
    let db = crate::db::open(&data_dir.join("db"), RESTORE_CACHE_BYTES)?;
    let raft = cf(&db, CF_RAFT)?;
    let mut batch = WriteBatch::default();
    batch.put_cf(raft, RAFT_INSTALLING, encode(&meta.snapshot_id)?);
    batch.put_cf(
        raft,
        RAFT_VOTE,
        encode(&Vote::new(last.leader_id.term, node_id))?,
    );
    batch.put_cf(raft, RAFT_LAST_PURGED, encode(&last)?);
    batch.put_cf(raft, RAFT_COMMITTED, encode(&Some::<LogId>(last))?);
    db.write_opt(batch, &synced())?;

    // 4. In place, and loaded.
    let current = snapshots.join(CURRENT);
    std::fs::rename(&incoming, &current)?;
    sync_dir(&snapshots)?;
    load_into_sm(&db, &current, Some(&meta))?;
    drop(db);

    // 5. Done.
    std::fs::remove_file(data_dir.join(RESTORE_MARKER))?;
    sync_dir(data_dir)?;
    tracing::info!(snapshot_id = %meta.snapshot_id, frames, node_id, "data directory restored from a backup");
    Ok(Restored { meta, frames })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use openraft::CommittedLeaderId;

    use super::*;
    use crate::keys::{CF_SM, SM_APPLIED};

    fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    fn membership() -> StoredMembership {
        let nodes: BTreeMap<NodeId, KartotekNode> = (1..=3)
            .map(|i| {
                (
                    i,
                    KartotekNode::new(format!("127.0.0.1:74{i:02}"), format!("127.0.0.1:75{i:02}")),
                )
            })
            .collect();
        let log_id = LogId::new(CommittedLeaderId::new(2, 1), 3);
        StoredMembership::new(
            Some(log_id),
            Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes),
        )
    }

    /// A snapshot at log id (term 4, index 40) with a revision, an audit head and 50 frames.
    fn sample(dir: &Path) -> PathBuf {
        let path = dir.join("backup.snap");
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(4, 2), 40)),
            last_membership: membership(),
            snapshot_id: "4-40-1".into(),
        };
        let mut w = ok(SnapshotWriter::create(&path, &meta));
        ok(w.frame(SM_AUDIT_HEAD, &ok(encode(&(7u64, [9u8; 32])))));
        ok(w.frame(SM_REVISION, &ok(encode(&33u64))));
        for i in 0..50u32 {
            let mut k = b"L".to_vec();
            k.extend_from_slice(&i.to_be_bytes());
            ok(w.frame(&k, &[1u8; 100]));
        }
        ok(w.finish());
        path
    }

    #[test]
    fn inspect_reports_what_the_manifest_states() {
        let dir = ok(tempfile::tempdir());
        let path = sample(dir.path());
        let s = ok(inspect_file(&path));
        let bytes = ok(std::fs::read(&path));
        assert_eq!(s.size_bytes, bytes.len() as u64);
        assert_eq!(s.sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
        assert_eq!(s.revision, 33);
        assert_eq!((s.audit_head_seq, s.audit_head_hash), (7, [9u8; 32]));
        assert_eq!(s.frames, 52);
        assert_eq!(s.meta.last_log_id.map(|l| l.index), Some(40));
    }

    #[test]
    fn inspect_refuses_truncated_extended_and_flipped_files() {
        let dir = ok(tempfile::tempdir());
        let bytes = ok(std::fs::read(sample(dir.path())));
        for cut in [0, 9, bytes.len() / 2, bytes.len() - 1] {
            let e = inspect(&bytes[..cut]).err();
            assert!(
                matches!(e, Some(StoreError::Corrupt(ref m)) if m.contains("truncated")),
                "cut at {cut}: {e:?}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            matches!(inspect(&longer[..]), Err(StoreError::Corrupt(m)) if m.contains("after its checksum"))
        );
        for at in [bytes.len() / 2, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 1;
            assert!(inspect(&flipped[..]).is_err(), "flip at {at} accepted");
        }
    }

    #[test]
    fn restore_seeds_an_empty_dir_that_opens_as_a_member_at_the_snapshot() {
        let dir = ok(tempfile::tempdir());
        let backup = sample(dir.path());
        let data = dir.path().join("node-2");
        let new_addr = KartotekNode::new("10.0.0.2:7402", "10.0.0.2:7502");
        let m = ok(rewrite_addrs(
            &membership(),
            &BTreeMap::from([(2, new_addr.clone())]),
        ));
        let r = ok(restore(&data, &backup, 2, m));
        assert_eq!(r.frames, 52);
        assert!(!data.join(RESTORE_MARKER).exists());
        // The snapshot file carries the rewritten membership, and verifies.
        let current = ok(inspect_file(&snapshot_path(&data)));
        assert_eq!(
            current.meta.last_membership.membership().get_node(&2),
            Some(&new_addr)
        );
        let db = ok(crate::db::open(&data.join("db"), 1 << 20));
        let raft = ok(cf(&db, CF_RAFT));
        let get = |k: &[u8]| ok(db.get_cf(raft, k));
        assert!(get(RAFT_INSTALLING).is_none());
        let vote: Vote = ok(decode(&get(RAFT_VOTE).unwrap_or_default()));
        assert_eq!(vote, Vote::new(4, 2));
        let purged: LogId = ok(decode(&get(RAFT_LAST_PURGED).unwrap_or_default()));
        assert_eq!(purged.index, 40);
        let applied: Option<LogId> = ok(decode(
            &ok(db.get_cf(ok(cf(&db, CF_SM)), SM_APPLIED)).unwrap_or_default(),
        ));
        assert_eq!(applied, Some(purged));
        drop(db);

        // A second restore into the same dir is refused; so is a node that is no member.
        assert!(restore(&data, &backup, 2, membership()).is_err());
        assert!(restore(&dir.path().join("node-9"), &backup, 9, membership()).is_err());
        assert!(rewrite_addrs(&membership(), &BTreeMap::from([(9, new_addr)])).is_err());
    }

    #[test]
    fn restore_takes_the_root_of_a_fresh_volume_but_nothing_else_in_the_dir() {
        let dir = ok(tempfile::tempdir());
        let backup = sample(dir.path());
        // A freshly formatted ext4 volume (a Kubernetes PVC mounted as the data dir).
        let volume = dir.path().join("pvc");
        ok(std::fs::create_dir_all(volume.join("lost+found")));
        let r = ok(restore(&volume, &backup, 1, membership()));
        assert_eq!(r.frames, 52);
        assert!(volume.join("lost+found").is_dir(), "left alone");
        // Any other entry, even an empty file, is refused and left as it was.
        let other = dir.path().join("other");
        ok(std::fs::create_dir_all(other.join("lost+found")));
        ok(std::fs::write(other.join("notes.txt"), b""));
        let e = restore(&other, &backup, 1, membership()).err();
        assert!(
            matches!(e, Some(StoreError::Corrupt(ref m)) if m.contains("is not empty")),
            "{e:?}"
        );
        let mut left: Vec<_> = ok(std::fs::read_dir(&other))
            .map(|e| ok(e).file_name())
            .collect();
        left.sort();
        assert_eq!(left, ["lost+found", "notes.txt"]);
    }

    #[test]
    fn an_interrupted_restore_is_refused_at_open() {
        let dir = ok(tempfile::tempdir());
        let data = dir.path().join("d");
        ok(std::fs::create_dir_all(&data));
        ok(std::fs::write(data.join(RESTORE_MARKER), b""));
        let e = crate::Store::open(&data, crate::StoreConfig::default()).err();
        assert!(
            matches!(e, Some(StoreError::Corrupt(ref m)) if m.contains("interrupted restore")),
            "{e:?}"
        );
    }
}
