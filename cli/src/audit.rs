//! `kartotek audit query|verify`: "who has looked at my data?", and a check of the hash chain.
//!
//! `verify` pages through the whole log and recomputes every hash itself (it does not trust
//! the node's word), then asks every endpoint for its chain head and checks that all nodes
//! that have applied the same events report the same hash.

use clap::{Args, Subcommand};
use kartotek_client::KartotekClient;
use kartotek_client::audit::chained_from_message;
use kartotek_domain::audit::{ChainedAuditEvent, GENESIS_PREV_HASH, verify_chain};
use kartotek_proto::v1::{self as v1, QueryAuditRequest};
use serde::Serialize;

use crate::GlobalArgs;
use crate::output::{print_json, table};

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Audit events about a patient, of an organisation, or all (security review).
    Query(QueryArgs),
    /// Recompute the hash chain from the events and compare every node's chain head.
    Verify,
}

/// Arguments of `audit query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Events about this patient (national id).
    #[arg(long, conflicts_with = "org")]
    pub patient: Option<String>,
    /// Events of this organisation (org number).
    #[arg(long)]
    pub org: Option<String>,
    /// Read as this representative of `--patient` (checked against representation records).
    #[arg(long, requires = "patient")]
    pub representative: Option<String>,
    /// Start at this sequence number.
    #[arg(long, default_value_t = 0)]
    pub from_seq: u64,
    /// At most this many events (all pages if unset).
    #[arg(long)]
    pub limit: Option<u64>,
}

#[derive(Serialize)]
struct VerifyView {
    events: u64,
    verified_from_seq: u64,
    head_seq: u64,
    head_hash: String,
    nodes: Vec<NodeHeadView>,
    ok: bool,
}

#[derive(Serialize)]
struct NodeHeadView {
    endpoint: String,
    node_id: Option<u64>,
    seq: Option<u64>,
    hash: Option<String>,
    error: Option<String>,
    agrees: Option<bool>,
}

fn to_chained(m: &v1::AuditEvent) -> anyhow::Result<ChainedAuditEvent> {
    chained_from_message(m).map_err(|e| anyhow::anyhow!("event {} does not parse: {e}", m.seq))
}

async fn query(cli: &GlobalArgs, client: &KartotekClient, a: &QueryArgs) -> anyhow::Result<()> {
    let mut from = a.from_seq;
    let mut events: Vec<v1::AuditEvent> = Vec::new();
    let next_seq = loop {
        let page = client
            .query_audit(QueryAuditRequest {
                patient: a.patient.clone().unwrap_or_default(),
                org: a.org.clone().unwrap_or_default(),
                from_seq: from,
                limit: 1000,
                representative: a.representative.clone().unwrap_or_default(),
                read: None,
            })
            .await?;
        let room = a.limit.map_or(usize::MAX, |l| {
            usize::try_from(l)
                .unwrap_or(usize::MAX)
                .saturating_sub(events.len())
        });
        let cut = page.events.len() > room;
        events.extend(page.events.into_iter().take(room));
        if cut {
            break events.last().map_or(0, |e| e.seq + 1);
        }
        if page.next_seq == 0 || a.limit.is_some_and(|l| events.len() as u64 >= l) {
            break page.next_seq;
        }
        from = page.next_seq;
    };
    if cli.json {
        return print_json(&QueryView {
            count: events.len(),
            events: events.iter().map(EventView::from).collect(),
            next_seq,
        });
    }
    let mut t = table(&[
        "SEQ", "TIME", "ACTOR", "ORG", "PATIENT", "ACTION", "PURPOSE", "DECISION", "OVERRIDE",
    ]);
    for e in &events {
        t.add_row(vec![
            e.seq.to_string(),
            e.time.clone(),
            e.actor.clone(),
            e.org.clone(),
            e.patient.clone(),
            e.action.clone(),
            e.purpose.clone(),
            e.decision.clone(),
            if e.emergency_override {
                format!("yes: {}", e.justification)
            } else {
                String::new()
            },
        ]);
    }
    println!("{t}");
    println!("{} events", events.len());
    Ok(())
}

/// `audit query --json`: one document.
#[derive(Serialize)]
struct QueryView<'a> {
    /// Number of events below.
    count: usize,
    events: Vec<EventView<'a>>,
    /// Where to continue (`--from-seq`) when `--limit` cut the answer; 0 at the end.
    next_seq: u64,
}

#[derive(Serialize)]
struct EventView<'a> {
    seq: u64,
    time: &'a str,
    actor: &'a str,
    org: &'a str,
    on_behalf_of: &'a str,
    patient: &'a str,
    action: &'a str,
    resource: &'a str,
    purpose: &'a str,
    decision: &'a str,
    emergency_override: bool,
    justification: &'a str,
    correlation_id: &'a str,
    /// The node that served the request and made the event; absent for forwarded events.
    #[serde(skip_serializing_if = "Option::is_none")]
    served_by: Option<u64>,
    /// The event's seq in that node's audit journal.
    #[serde(skip_serializing_if = "Option::is_none")]
    served_journal_seq: Option<u64>,
    /// That journal's id (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    served_journal_id: Option<String>,
    hash: &'a str,
}

impl<'a> From<&'a v1::AuditEvent> for EventView<'a> {
    fn from(e: &'a v1::AuditEvent) -> Self {
        EventView {
            seq: e.seq,
            time: &e.time,
            actor: &e.actor,
            org: &e.org,
            on_behalf_of: &e.on_behalf_of,
            patient: &e.patient,
            action: &e.action,
            resource: &e.resource,
            purpose: &e.purpose,
            decision: &e.decision,
            emergency_override: e.emergency_override,
            justification: &e.justification,
            correlation_id: &e.correlation_id,
            served_by: e.served_by,
            served_journal_seq: e.served_by.map(|_| e.served_journal_seq),
            served_journal_id: e.served_by.map(|_| format!("{:016x}", e.served_journal_id)),
            hash: &e.hash,
        }
    }
}

async fn verify(cli: &GlobalArgs, client: &KartotekClient) -> anyhow::Result<()> {
    // Heads first: a node's head can only move forward while we read.
    let endpoints = client.endpoints();
    let mut heads = Vec::new();
    for ep in &endpoints {
        heads.push((ep.clone(), client.audit_head(ep).await));
    }
    let start = heads
        .iter()
        .filter_map(|(_, h)| h.as_ref().ok())
        .map(|h| (h.pruned_seq, h.pruned_hash.clone()))
        .max_by_key(|(seq, _)| *seq)
        .unwrap_or((0, hex::encode(GENESIS_PREV_HASH)));
    let mut prev: [u8; 32] = hex::decode(&start.1)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("pruned hash is not 32 bytes"))?;
    let mut from = start.0 + 1;
    let mut count = 0u64;
    let mut hashes_at: std::collections::HashMap<u64, String> = Default::default();
    let mut last_seq = start.0;
    loop {
        let page = client
            .query_audit(QueryAuditRequest {
                from_seq: from,
                limit: 1000,
                ..Default::default()
            })
            .await?;
        let chained = page
            .events
            .iter()
            .map(to_chained)
            .collect::<anyhow::Result<Vec<_>>>()?;
        if let Some(first) = chained.first()
            && first.seq != last_seq + 1
        {
            anyhow::bail!(
                "audit chain has a gap: seq {} follows {last_seq}",
                first.seq
            );
        }
        verify_chain(prev, &chained)
            .map_err(|b| anyhow::anyhow!("audit chain broken at seq {}: {}", b.seq, b.reason))?;
        for c in &chained {
            hashes_at.insert(c.seq, hex::encode(c.hash));
        }
        if let Some(last) = chained.last() {
            prev = last.hash;
            last_seq = last.seq;
        }
        count += chained.len() as u64;
        if page.next_seq == 0 {
            break;
        }
        from = page.next_seq;
    }
    let mut nodes = Vec::new();
    let mut ok = true;
    for (ep, head) in heads {
        match head {
            Ok(h) => {
                let agrees = hashes_at
                    .get(&h.seq)
                    .map(|want| *want == h.hash)
                    .or((h.seq == start.0).then(|| h.hash == start.1));
                if agrees == Some(false) {
                    ok = false;
                }
                nodes.push(NodeHeadView {
                    endpoint: ep,
                    node_id: Some(h.node_id),
                    seq: Some(h.seq),
                    hash: Some(h.hash),
                    error: None,
                    agrees,
                });
            }
            Err(e) => nodes.push(NodeHeadView {
                endpoint: ep,
                node_id: None,
                seq: None,
                hash: None,
                error: Some(e.to_string()),
                agrees: None,
            }),
        }
    }
    let view = VerifyView {
        events: count,
        verified_from_seq: start.0 + 1,
        head_seq: last_seq,
        head_hash: hex::encode(prev),
        nodes,
        ok,
    };
    if cli.json {
        print_json(&view)?;
    } else {
        println!(
            "chain verified: {} events (seq {} to {}), head {}",
            view.events, view.verified_from_seq, view.head_seq, view.head_hash
        );
        for n in &view.nodes {
            let verdict = match (&n.error, n.agrees) {
                (Some(e), _) => format!("unreachable: {e}"),
                (None, Some(true)) => "agrees".into(),
                (None, Some(false)) => "DISAGREES: this copy differs".into(),
                (None, None) => "not comparable (head outside the verified range)".into(),
            };
            match (n.node_id, n.seq) {
                (Some(id), Some(seq)) => {
                    println!("  {} node {id}: head seq {seq} {verdict}", n.endpoint);
                }
                _ => println!("  {}: {verdict}", n.endpoint),
            }
        }
    }
    if !view.ok {
        anyhow::bail!("a node's audit chain head does not match the verified chain");
    }
    Ok(())
}

/// Runs an audit subcommand.
pub async fn run(cli: &GlobalArgs, cmd: &AuditCommand) -> anyhow::Result<()> {
    let client = cli.client()?;
    match cmd {
        AuditCommand::Query(a) => query(cli, &client, a).await,
        AuditCommand::Verify => verify(cli, &client).await,
    }
}
