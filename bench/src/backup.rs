//! `scale --backup`: the operator's backup and restore, timed at the scale run's size and
//! done exactly as `deploy/RUNBOOK.md` §6 says, with the `kartotek` binary:
//!
//! 1. `kartotek admin backup --out DIR` against the running cluster (time, bytes, MB/s);
//! 2. `kartotek admin verify-backup DIR` (the offline check of every frame and checksum);
//! 3. the cluster stops; `kartotek admin restore --from DIR --data-dir NEW --node-id N` for each
//!    node (time per node, the restored data dir's size);
//! 4. the nodes start on the restored dirs (no `admin init`): time until they agree on a
//!    leader, then linearizable lookups of the imported keys, each checked against what was
//!    imported (any wrong or failed answer fails the run).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::data::Keyspace;
use crate::kartotek::{Cluster, KartotekTarget};
use crate::procfs;
use crate::runner::{self, Load, RunSpec};
use crate::target::Workload;

/// How long the restored cluster's lookups are measured.
const CHECK: Duration = Duration::from_secs(3);
/// Lookups in flight against the restored cluster.
const CHECK_CONCURRENCY: usize = 8;

/// What the backup and restore measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupResults {
    /// `admin backup` wall time, seconds.
    pub backup_seconds: f64,
    /// The backup directory's size, bytes.
    pub backup_bytes: u64,
    /// The manifest's revision.
    pub revision: u64,
    /// `admin verify-backup` wall time, seconds.
    pub verify_seconds: f64,
    /// `admin restore` wall time per node, seconds (in node id order).
    pub restore_seconds: Vec<f64>,
    /// Each restored data dir's size before its node starts, bytes.
    pub restored_dir_bytes: Vec<u64>,
    /// From starting the restored nodes until they agree on a leader, seconds.
    pub restart_to_leader_seconds: f64,
    /// Lookups checked against the imported data on the restored cluster.
    pub checked_lookups: u64,
}

/// Runs `kartotek` with `args`; fails with its stderr unless it exits 0. Returns stdout.
fn kartotek(bin: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(args)
        .output()
        .with_context(|| format!("running {} {}", bin.display(), args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`kartotek {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Backs `cluster` up into `dir/backup`, verifies it, stops the cluster, restores every node
/// into `dir/restored-N` and starts the cluster on them; checks lookups of `keyspace` there.
pub async fn run(
    cluster: &mut Cluster,
    bin: &Path,
    dir: &Path,
    keyspace: Arc<Keyspace>,
) -> anyhow::Result<BackupResults> {
    let backup_dir = dir.join("backup");
    let backup_s = backup_dir.display().to_string();
    let endpoints = cluster
        .nodes
        .iter()
        .map(|n| n.addr.clone())
        .collect::<Vec<_>>()
        .join(",");
    let mut args = vec!["--endpoints", &endpoints, "--json"];
    let token = cluster.bearer().await?;
    if let Some(t) = &token {
        args.extend(["--token", t]);
    }
    args.extend(["admin", "backup", "--out", &backup_s]);
    println!("backup: kartotek admin backup --out {backup_s}");
    let t = Instant::now();
    let report = kartotek(bin, &args)?;
    let backup_seconds = t.elapsed().as_secs_f64();
    let report: serde_json::Value =
        serde_json::from_str(&report).context("admin backup --json printed no JSON")?;
    let revision = report["manifest"]["revision"].as_u64().unwrap_or(0);
    let backup_bytes = procfs::disk_usage_bytes(&backup_dir);
    println!(
        "backup: {:.1} MB in {backup_seconds:.1} s ({:.1} MB/s), revision {revision}",
        backup_bytes as f64 / 1e6,
        backup_bytes as f64 / 1e6 / backup_seconds.max(0.001)
    );

    let t = Instant::now();
    kartotek(bin, &["admin", "verify-backup", &backup_s])?;
    let verify_seconds = t.elapsed().as_secs_f64();
    println!("verify-backup: {verify_seconds:.1} s");

    cluster.stop();
    let mut restore_seconds = Vec::new();
    let mut restored_dir_bytes = Vec::new();
    let mut dirs: Vec<(u64, PathBuf)> = Vec::new();
    for id in cluster.nodes.iter().map(|n| n.id) {
        let data = dir.join(format!("restored-{id}"));
        let data_s = data.display().to_string();
        let id_s = id.to_string();
        let t = Instant::now();
        kartotek(
            bin,
            &[
                "admin",
                "restore",
                "--from",
                &backup_s,
                "--data-dir",
                &data_s,
                "--node-id",
                &id_s,
            ],
        )?;
        restore_seconds.push(t.elapsed().as_secs_f64());
        restored_dir_bytes.push(procfs::disk_usage_bytes(&data));
        println!(
            "restore of node {id}: {:.1} s",
            restore_seconds.last().copied().unwrap_or(0.0)
        );
        dirs.push((id, data));
    }
    let t = Instant::now();
    cluster.restart_on(&dirs).await?;
    cluster.leader().await?;
    let restart_to_leader_seconds = t.elapsed().as_secs_f64();
    println!("restored cluster has a leader after {restart_to_leader_seconds:.1} s");

    let target = Arc::new(KartotekTarget::new(cluster, keyspace.clone(), 1000).await?);
    let spec = RunSpec {
        workload: Workload::LinearRead,
        load: Load::Closed {
            concurrency: CHECK_CONCURRENCY,
        },
        warmup: Duration::from_millis(500),
        duration: CHECK,
        keys: keyspace.len(),
    };
    let out = runner::run(target, spec, Arc::new(AtomicU64::new(1))).await;
    if out.errors > 0 || out.wrong > 0 || out.ok == 0 {
        bail!(
            "the restored cluster answered {} lookups right, {} wrong, {} failed",
            out.ok,
            out.wrong,
            out.errors
        );
    }
    println!("restored cluster: {} lookups checked, all right", out.ok);
    Ok(BackupResults {
        backup_seconds,
        backup_bytes,
        revision,
        verify_seconds,
        restore_seconds,
        restored_dir_bytes,
        restart_to_leader_seconds,
        checked_lookups: out.ok,
    })
}
