//! Printing results: JSON (`--json`) or human tables. The JSON shapes are stable; tests and
//! tooling rely on them.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use kartotek_proto::v1;
use serde::Serialize;

/// A locator entry as printed.
#[derive(Debug, Serialize)]
pub struct LocatorEntryView {
    /// National id of the patient.
    pub patient: String,
    /// Org number.
    pub org: String,
    /// System id.
    pub system: String,
    /// Data categories.
    pub categories: Vec<String>,
    /// API catalog id.
    pub endpoint_ref: String,
    /// `active` or `retired`.
    pub status: String,
    /// RFC 3339.
    pub first_registered: String,
    /// RFC 3339.
    pub last_updated: String,
    /// Revision of creation.
    pub create_revision: u64,
    /// Revision of the last change.
    pub mod_revision: u64,
}

impl From<&v1::LocatorEntry> for LocatorEntryView {
    fn from(e: &v1::LocatorEntry) -> Self {
        let status = match v1::LocatorStatus::try_from(e.status) {
            Ok(v1::LocatorStatus::Active) => "active",
            Ok(v1::LocatorStatus::Retired) => "retired",
            _ => "unknown",
        };
        LocatorEntryView {
            patient: e.patient.clone(),
            org: e.org.clone(),
            system: e.system.clone(),
            categories: e.categories.clone(),
            endpoint_ref: e.endpoint_ref.clone(),
            status: status.into(),
            first_registered: e.first_registered.clone(),
            last_updated: e.last_updated.clone(),
            create_revision: e.create_revision,
            mod_revision: e.mod_revision,
        }
    }
}

/// Where and when an answer was made.
#[derive(Debug, Serialize)]
pub struct HeaderView {
    /// State revision.
    pub revision: u64,
    /// Answering node.
    pub node_id: u64,
    /// Raft term.
    pub raft_term: u64,
    /// Applied log index.
    pub applied_index: u64,
}

impl From<Option<&v1::ResponseHeader>> for HeaderView {
    fn from(h: Option<&v1::ResponseHeader>) -> Self {
        let h = h.cloned().unwrap_or_default();
        HeaderView {
            revision: h.revision,
            node_id: h.node_id,
            raft_term: h.raft_term,
            applied_index: h.applied_index,
        }
    }
}

/// A cluster member as printed.
#[derive(Debug, Serialize)]
pub struct MemberView {
    /// Node id.
    pub node_id: u64,
    /// Public gRPC address.
    pub addr: String,
    /// Raft listener address.
    pub raft_addr: String,
    /// Voter or learner.
    pub voter: bool,
}

impl From<&v1::Member> for MemberView {
    fn from(m: &v1::Member) -> Self {
        MemberView {
            node_id: m.node_id,
            addr: m.addr.clone(),
            raft_addr: m.raft_addr.clone(),
            voter: m.voter,
        }
    }
}

/// One node's status as printed.
#[derive(Debug, Serialize)]
pub struct NodeStatusView {
    /// Node id.
    pub node_id: u64,
    /// Advertised address.
    pub addr: String,
    /// Cluster name.
    pub cluster_name: String,
    /// leader / follower / candidate / learner.
    pub role: String,
    /// Raft term.
    pub term: u64,
    /// Last log index.
    pub last_log_index: Option<u64>,
    /// Applied index.
    pub applied_index: Option<u64>,
    /// Leader id, if known.
    pub leader_id: Option<u64>,
    /// Leader address, if known.
    pub leader_addr: Option<String>,
    /// Membership.
    pub members: Vec<MemberView>,
    /// Latest snapshot's index.
    pub snapshot_index: Option<u64>,
    /// Index up to which the log is purged.
    pub purged_index: Option<u64>,
    /// Whether the cluster has been initialised.
    pub initialized: bool,
    /// State revision.
    pub revision: u64,
    /// Software version.
    pub version: String,
}

impl From<&v1::NodeStatus> for NodeStatusView {
    fn from(s: &v1::NodeStatus) -> Self {
        NodeStatusView {
            node_id: s.node_id,
            addr: s.addr.clone(),
            cluster_name: s.cluster_name.clone(),
            role: s.role.clone(),
            term: s.term,
            last_log_index: s.last_log_index,
            applied_index: s.applied_index,
            leader_id: s.leader_id,
            leader_addr: (!s.leader_addr.is_empty()).then(|| s.leader_addr.clone()),
            members: s.members.iter().map(MemberView::from).collect(),
            snapshot_index: s.snapshot_index,
            purged_index: s.purged_index,
            initialized: s.initialized,
            revision: s.revision,
            version: s.version.clone(),
        }
    }
}

/// Prints a value as pretty JSON.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The one table style of every command (box drawing, `UTF8_FULL_CONDENSED`): build every
/// table with this.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.to_vec());
    t
}

/// Prints locator entries as a table.
pub fn print_locator_table(entries: &[LocatorEntryView]) {
    let mut t = table(&[
        "PATIENT",
        "ORG",
        "SYSTEM",
        "STATUS",
        "CATEGORIES",
        "ENDPOINT",
        "LAST UPDATED",
        "REV",
    ]);
    for e in entries {
        t.add_row(vec![
            e.patient.clone(),
            e.org.clone(),
            e.system.clone(),
            e.status.clone(),
            e.categories.join(","),
            e.endpoint_ref.clone(),
            e.last_updated.clone(),
            e.mod_revision.to_string(),
        ]);
    }
    println!("{t}");
}

/// Formats an optional number for a table.
pub fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}
