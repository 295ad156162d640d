//! `kartotek admin verify-backup DIR` and `kartotek admin restore --from DIR --data-dir D
//! --node-id N`: the offline half of backups (the online half, `admin backup`, is a client
//! command in `kartotek-cli`; the manifest format is [`kartotek_cli::backup::Manifest`]).
//!
//! **Verify** checks, in this order, and names the first thing that is wrong: the manifest
//! parses and validates; `backup.snap` has the manifest's size (a truncated copy stops here);
//! one pass over the file decodes every frame and checks its trailer (frame count, checksum)
//! and the SHA-256 of the whole file against the manifest (an altered byte stops here); the
//! snapshot's log id, id, membership, revision, audit head and frame count equal the
//! manifest's.
//!
//! **Restore** verifies first, then seeds the data directory with
//! [`kartotek_storage::backup::restore`] (see its durability contract): the node starts with
//! `kartotek node` as a member of the backed-up membership, with an empty log after the
//! snapshot's log id, and elects a leader with the other restored nodes. The membership holds
//! each member's addresses; a cluster restored onto other hosts or ports gets them with
//! `--rewrite-addr ID=API_ADDR,RAFT_ADDR`, the same for every node restored. The node's
//! `cluster_name` should be the manifest's (printed).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use kartotek_cli::admin::{RestoreArgs, VerifyBackupArgs};
use kartotek_cli::backup::{MANIFEST_FILE, Manifest, ManifestMember, SNAPSHOT_FILE};
use kartotek_storage::KartotekNode;
use kartotek_storage::backup::{SnapshotSummary, inspect_file, restore, rewrite_addrs};
use kartotek_storage::types::StoredMembership;
use serde::Serialize;

/// The members of a stored membership, as a manifest lists them.
fn members_of(m: &StoredMembership) -> Vec<ManifestMember> {
    crate::api::admin::members_of(m.membership())
        .iter()
        .map(ManifestMember::from)
        .collect()
}

/// A backup that verified.
#[derive(Debug)]
pub struct Verified {
    /// Its manifest.
    pub manifest: Manifest,
    /// What its snapshot holds.
    pub summary: SnapshotSummary,
}

/// Verifies the backup in `dir` offline (see the module docs).
pub fn verify(dir: &Path) -> anyhow::Result<Verified> {
    let manifest = Manifest::load(dir)?;
    let file = dir.join(SNAPSHOT_FILE);
    let size = std::fs::metadata(&file)
        .with_context(|| format!("{} is missing", file.display()))?
        .len();
    if size != manifest.size_bytes {
        bail!(
            "{} is {size} bytes, but {MANIFEST_FILE} says {}: the copy is {}",
            file.display(),
            manifest.size_bytes,
            if size < manifest.size_bytes {
                "truncated"
            } else {
                "longer than the backup"
            }
        );
    }
    let summary = inspect_file(&file).map_err(|e| {
        anyhow::anyhow!(
            "{} does not verify (altered or damaged): {e}",
            file.display()
        )
    })?;
    if hex::encode(summary.sha256) != manifest.sha256 {
        bail!(
            "{}'s SHA-256 does not match {MANIFEST_FILE}: the file was altered",
            file.display()
        );
    }
    let last = summary.meta.last_log_id;
    let stated = (
        manifest.last_log.index,
        manifest.last_log.term,
        manifest.last_log.leader,
    );
    let found = last.map(|l| (l.index, l.leader_id.term, l.leader_id.node_id));
    let mismatch =
        |what: &str| anyhow::anyhow!("{} and {MANIFEST_FILE} disagree on {what}", file.display());
    if found != Some(stated) {
        return Err(mismatch("the snapshot's log id"));
    }
    if summary.meta.snapshot_id != manifest.snapshot_id {
        return Err(mismatch("the snapshot id"));
    }
    if members_of(&summary.meta.last_membership) != manifest.members {
        return Err(mismatch("the membership"));
    }
    if summary.revision != manifest.revision {
        return Err(mismatch("the revision"));
    }
    if summary.audit_head_seq != manifest.audit_head.seq
        || hex::encode(summary.audit_head_hash) != manifest.audit_head.hash
    {
        return Err(mismatch("the audit chain head"));
    }
    if summary.frames != manifest.frames {
        return Err(mismatch("the frame count"));
    }
    Ok(Verified { manifest, summary })
}

#[derive(Serialize)]
struct VerifyView<'a> {
    ok: bool,
    dir: &'a Path,
    manifest: &'a Manifest,
}

/// `admin verify-backup`.
pub fn run_verify(args: &VerifyBackupArgs, json: bool) -> anyhow::Result<()> {
    let v = verify(&args.dir)?;
    if let Some(path) = &args.metrics_file {
        let text = kartotek_cli::backup::metrics_text(&v.manifest, kartotek_cli::backup::unix_ms());
        kartotek_cli::backup::write_file_atomically(path, &text)
            .with_context(|| format!("writing the metrics file {}", path.display()))?;
    }
    if json {
        let view = VerifyView {
            ok: true,
            dir: &args.dir,
            manifest: &v.manifest,
        };
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        let m = &v.manifest;
        println!(
            "backup {} verified: cluster {}, log index {} (term {}), revision {}, audit seq {}, {} frames, {} bytes",
            args.dir.display(),
            m.cluster_name,
            m.last_log.index,
            m.last_log.term,
            m.revision,
            m.audit_head.seq,
            m.frames,
            m.size_bytes
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct RestoreView<'a> {
    data_dir: &'a Path,
    node_id: u64,
    cluster_name: &'a str,
    last_log_index: u64,
    revision: u64,
    frames: u64,
    members: Vec<ManifestMember>,
    elapsed_ms: u64,
}

/// `admin restore`.
pub fn run_restore(args: &RestoreArgs, json: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let rewrites = args.rewrites()?;
    let v = verify(&args.from)?;
    let addrs: BTreeMap<u64, KartotekNode> = rewrites
        .into_iter()
        .map(|(id, api, raft)| (id, KartotekNode::new(api, raft)))
        .collect();
    let membership = rewrite_addrs(&v.summary.meta.last_membership, &addrs)?;
    let restored = restore(
        &args.data_dir,
        &args.from.join(SNAPSHOT_FILE),
        args.node_id,
        membership,
    )
    .with_context(|| format!("restoring into {}", args.data_dir.display()))?;
    let view = RestoreView {
        data_dir: &args.data_dir,
        node_id: args.node_id,
        cluster_name: &v.manifest.cluster_name,
        last_log_index: v.manifest.last_log.index,
        revision: v.manifest.revision,
        frames: restored.frames,
        members: members_of(&restored.meta.last_membership),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    println!(
        "restored node {} into {} at log index {} (revision {}, {} frames) in {} ms",
        view.node_id,
        args.data_dir.display(),
        view.last_log_index,
        view.revision,
        view.frames,
        view.elapsed_ms
    );
    for m in &view.members {
        println!(
            "  member {} api {} raft {}{}",
            m.node_id,
            m.addr,
            m.raft_addr,
            if m.voter { "" } else { " (learner)" }
        );
    }
    println!(
        "next: start it with `kartotek node` (node_id = {}, cluster_name = {:?}, data_dir = {:?}, \
         listening at its member addresses above) once every member is restored",
        view.node_id,
        view.cluster_name,
        args.data_dir.display().to_string()
    );
    Ok(())
}
