//! `kartotek admin status|init|bootstrap|add-learner|promote|remove|snapshot|backup`, and the
//! arguments of the offline `admin verify-backup|restore`, which the `kartotek` binary runs
//! itself (they read and write a data directory, which this crate must not reach; see
//! `kartotek_node::cli::backup`).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kartotek_proto::v1::{AddLearnerRequest, Member, MembershipResponse};
use serde::Serialize;

use crate::GlobalArgs;
use crate::output::{MemberView, NodeStatusView, opt, print_json, table};

/// Admin subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Show every endpoint's role, term, log and applied index, leader and membership.
    Status,
    /// Initialise a new cluster with the nodes at `--endpoints` as voters.
    Init,
    /// Register the first operator client of a cluster with a token signed by the token
    /// service's own keys (no window without tokens), and write its client file; `--init`
    /// initialises the cluster first.
    Bootstrap(crate::bootstrap::BootstrapArgs),
    /// Add a node as a learner (it catches up from the log or a snapshot).
    AddLearner(AddLearnerArgs),
    /// Make a learner a voter.
    Promote(NodeIdArg),
    /// Remove a node from the cluster.
    Remove(NodeIdArg),
    /// Build a snapshot now (on the leader, or on `--node`).
    Snapshot(SnapshotArgs),
    /// Take an online backup of the whole cluster into a new directory (writes go on).
    Backup(BackupArgs),
    /// Check a backup offline: manifest, size, SHA-256, every frame of the snapshot.
    VerifyBackup(VerifyBackupArgs),
    /// Seed an empty data directory for one node of a new cluster from a backup (offline;
    /// restore every node of the new cluster from the same backup, then start them with
    /// `kartotek node`: they elect a leader themselves, no `admin init`).
    Restore(RestoreArgs),
}

/// Arguments of `admin backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup directory (created; must not hold a backup yet).
    #[arg(long)]
    pub out: std::path::PathBuf,
}

/// Arguments of `admin verify-backup`.
#[derive(Debug, Args)]
pub struct VerifyBackupArgs {
    /// The backup directory.
    pub dir: std::path::PathBuf,
    /// When it verifies, write its age, size and revision here for Prometheus (node_exporter's
    /// textfile collector, e.g. /var/lib/prometheus/node-exporter/kartotek_backup.prom; the
    /// alert KartotekBackupTooOld reads it). Untouched when it does not verify.
    #[arg(long)]
    pub metrics_file: Option<std::path::PathBuf>,
}

/// Arguments of `admin restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup directory.
    #[arg(long)]
    pub from: std::path::PathBuf,
    /// The node's data directory (missing or empty; a fresh volume's `lost+found` is allowed).
    #[arg(long)]
    pub data_dir: std::path::PathBuf,
    /// The node's id: a voter of the backed-up membership.
    #[arg(long)]
    pub node_id: u64,
    /// New addresses of a member, `ID=API_ADDR,RAFT_ADDR` (repeat per member), for a
    /// restore onto other hosts or ports. Give the same rewrites to every node restored.
    #[arg(long = "rewrite-addr", value_name = "ID=API_ADDR,RAFT_ADDR")]
    pub rewrite_addr: Vec<String>,
}

impl RestoreArgs {
    /// The parsed `--rewrite-addr` values: (node id, API address, Raft address).
    pub fn rewrites(&self) -> anyhow::Result<Vec<(u64, String, String)>> {
        self.rewrite_addr.iter().map(|s| parse_rewrite(s)).collect()
    }
}

/// Parses one `ID=API_ADDR,RAFT_ADDR`.
pub fn parse_rewrite(s: &str) -> anyhow::Result<(u64, String, String)> {
    let usage = || format!("--rewrite-addr {s:?}: expected ID=API_HOST:PORT,RAFT_HOST:PORT");
    let (id, addrs) = s.split_once('=').with_context(usage)?;
    let (api, raft) = addrs.split_once(',').with_context(usage)?;
    let id: u64 = id
        .trim()
        .parse()
        .ok()
        .filter(|i| *i > 0)
        .with_context(usage)?;
    for a in [api, raft] {
        if a.is_empty() || a.len() > 256 || !a.contains(':') || a.contains('/') || a.contains(',') {
            bail!(usage());
        }
    }
    Ok((id, api.to_owned(), raft.to_owned()))
}

/// Arguments of `admin add-learner`.
#[derive(Debug, Args)]
pub struct AddLearnerArgs {
    /// The new node's id (never reuse the id of a wiped node).
    #[arg(long)]
    pub node_id: u64,
    /// The new node's public gRPC address (host:port).
    #[arg(long)]
    pub addr: String,
    /// The new node's Raft address (host:port; its `raft_advertise_addr`). Default: asked
    /// of the node at `--addr`.
    #[arg(long)]
    pub raft_addr: Option<String>,
    /// Return at once instead of waiting until the learner has caught up.
    #[arg(long)]
    pub no_wait: bool,
}

/// A node id argument.
#[derive(Debug, Args)]
pub struct NodeIdArg {
    /// The node's id.
    #[arg(long)]
    pub node_id: u64,
}

/// Arguments of `admin snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Endpoint of the node to snapshot (default: the leader).
    #[arg(long)]
    pub node: Option<String>,
}

#[derive(Serialize)]
struct EndpointStatus {
    endpoint: String,
    status: Option<NodeStatusView>,
    error: Option<String>,
}

#[derive(Serialize)]
struct MembershipView {
    log_index: u64,
    members: Vec<MemberView>,
}

/// Initialises a new cluster with the nodes at `--endpoints` as voters (each must not be
/// part of one yet), through `client`.
pub(crate) async fn init_cluster(
    cli: &GlobalArgs,
    client: &kartotek_client::KartotekClient,
) -> anyhow::Result<kartotek_proto::v1::InitResponse> {
    let mut members = Vec::new();
    for ep in &cli.endpoints {
        let s = client
            .status(ep)
            .await
            .with_context(|| format!("asking {ep} for its node id"))?;
        if s.initialized {
            bail!(
                "node {} at {ep} is already part of an initialised cluster",
                s.node_id
            );
        }
        members.push(Member {
            node_id: s.node_id,
            addr: s.addr,
            voter: true,
            raft_addr: s.raft_addr,
        });
    }
    let first = cli.endpoints.first().context("no endpoints")?;
    Ok(client.init(first, members).await?)
}

/// Runs an admin subcommand.
pub async fn run(cli: &GlobalArgs, cmd: &AdminCommand) -> anyhow::Result<()> {
    let client = cli.client()?;
    match cmd {
        AdminCommand::Status => {
            let all = client.status_all().await;
            let views: Vec<EndpointStatus> = all
                .iter()
                .map(|(ep, r)| match r {
                    Ok(s) => EndpointStatus {
                        endpoint: ep.clone(),
                        status: Some(s.into()),
                        error: None,
                    },
                    Err(e) => EndpointStatus {
                        endpoint: ep.clone(),
                        status: None,
                        error: Some(e.to_string()),
                    },
                })
                .collect();
            if cli.json {
                return print_json(&views);
            }
            let mut t = table(&[
                "ENDPOINT", "NODE", "ROLE", "TERM", "LAST LOG", "APPLIED", "LEADER", "MEMBERS",
            ]);
            for v in &views {
                match &v.status {
                    Some(s) => {
                        let members = s
                            .members
                            .iter()
                            .map(|m| {
                                format!("{}{}", m.node_id, if m.voter { "" } else { "(learner)" })
                            })
                            .collect::<Vec<_>>()
                            .join(",");
                        t.add_row(vec![
                            v.endpoint.clone(),
                            s.node_id.to_string(),
                            s.role.clone(),
                            s.term.to_string(),
                            opt(s.last_log_index),
                            opt(s.applied_index),
                            opt(s.leader_id),
                            members,
                        ]);
                    }
                    None => {
                        t.add_row(vec![
                            v.endpoint.clone(),
                            "-".into(),
                            format!("unreachable: {}", v.error.clone().unwrap_or_default()),
                        ]);
                    }
                }
            }
            println!("{t}");
            if views.iter().all(|v| v.status.is_none()) {
                eprintln!("hint: no node answered; {}", crate::NO_CLUSTER_HINT);
            }
            Ok(())
        }
        AdminCommand::Bootstrap(a) => crate::bootstrap::run(cli, a).await,
        AdminCommand::Init => {
            let resp = init_cluster(cli, &client).await?;
            let view = MembershipView {
                log_index: 0,
                members: resp.members.iter().map(MemberView::from).collect(),
            };
            print_membership(cli, &view, "initialised")
        }
        AdminCommand::AddLearner(a) => {
            let raft_addr = match &a.raft_addr {
                Some(r) => r.clone(),
                None => {
                    let s = client.status(&a.addr).await.with_context(|| {
                        format!(
                            "asking {} for its Raft address (or pass --raft-addr)",
                            a.addr
                        )
                    })?;
                    if s.node_id != a.node_id {
                        bail!(
                            "the node at {} is node {}, not {}",
                            a.addr,
                            s.node_id,
                            a.node_id
                        );
                    }
                    s.raft_addr
                }
            };
            let resp = client
                .add_learner(AddLearnerRequest {
                    node_id: a.node_id,
                    addr: a.addr.clone(),
                    wait_caught_up: !a.no_wait,
                    raft_addr,
                })
                .await?;
            print_membership(cli, &membership(&resp), "learner added")
        }
        AdminCommand::Promote(n) => {
            let resp = client.promote(n.node_id).await?;
            print_membership(cli, &membership(&resp), "promoted")
        }
        AdminCommand::Remove(n) => {
            let resp = client.remove(n.node_id).await?;
            print_membership(cli, &membership(&resp), "removed")
        }
        AdminCommand::Backup(b) => {
            let report = crate::backup::backup(&client, &b.out).await?;
            if cli.json {
                return print_json(&report);
            }
            let m = &report.manifest;
            let secs = (report.elapsed_ms as f64 / 1000.0).max(0.001);
            println!(
                "backup written to {}: log index {} (term {}), revision {}, audit seq {}, {} bytes, {} frames, {:.1} s ({:.1} MB/s)",
                report.dir.display(),
                m.last_log.index,
                m.last_log.term,
                m.revision,
                m.audit_head.seq,
                m.size_bytes,
                m.frames,
                secs,
                m.size_bytes as f64 / 1e6 / secs
            );
            Ok(())
        }
        AdminCommand::VerifyBackup(_) | AdminCommand::Restore(_) => bail!(
            "`admin verify-backup` and `admin restore` work on local files and are run by the kartotek binary"
        ),
        AdminCommand::Snapshot(s) => {
            let resp = client.snapshot(s.node.as_deref()).await?;
            if cli.json {
                print_json(&serde_json::json!({ "snapshot_index": resp.snapshot_index }))
            } else {
                println!("snapshot at log index {}", opt(resp.snapshot_index));
                Ok(())
            }
        }
    }
}

fn membership(r: &MembershipResponse) -> MembershipView {
    MembershipView {
        log_index: r.log_index,
        members: r.members.iter().map(MemberView::from).collect(),
    }
}

fn print_membership(cli: &GlobalArgs, view: &MembershipView, verb: &str) -> anyhow::Result<()> {
    if cli.json {
        return print_json(view);
    }
    let mut t = table(&["NODE", "ADDR", "RAFT ADDR", "VOTER"]);
    for m in &view.members {
        t.add_row(vec![
            m.node_id.to_string(),
            m.addr.clone(),
            m.raft_addr.clone(),
            m.voter.to_string(),
        ]);
    }
    println!("{t}");
    println!("{verb}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_rewrite;

    #[test]
    fn rewrites_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_rewrite("2=10.0.0.2:7401,10.0.0.2:7501").ok(),
            Some((2, "10.0.0.2:7401".into(), "10.0.0.2:7501".into()))
        );
        for bad in [
            "",
            "2",
            "2=10.0.0.2:7401",
            "0=a:1,b:2",
            "x=a:1,b:2",
            "2=a:1,",
            "2=a,b:2",
            "2=a:1,b:2,c:3",
            "2=http://a:1,b:2",
        ] {
            assert!(parse_rewrite(bad).is_err(), "{bad:?} accepted");
        }
    }
}
