//! Reading the cluster's state from the nodes' `Status` answers: polling every node at once,
//! the leader claim of the highest term, and whether the voters agree on it.

use std::time::{Duration, Instant};

use kartotek_client::KartotekClient;
use kartotek_proto::v1::NodeStatus;

/// How long one status poll of one node may take.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(1500);

/// The status of every address, by position (concurrently, one attempt each, at most
/// [`POLL_TIMEOUT`]); `None` where a node did not answer.
pub async fn poll(admin: &KartotekClient, addrs: &[String]) -> Vec<Option<NodeStatus>> {
    let mut calls = tokio::task::JoinSet::new();
    for (i, addr) in addrs.iter().enumerate() {
        let admin = admin.clone();
        let addr = addr.clone();
        calls.spawn(async move {
            let status = tokio::time::timeout(POLL_TIMEOUT, admin.status(&addr))
                .await
                .ok()
                .and_then(Result::ok);
            (i, status)
        });
    }
    let mut out = vec![None; addrs.len()];
    while let Some(done) = calls.join_next().await {
        if let Ok((i, status)) = done {
            out[i] = status;
        }
    }
    out
}

/// The position and status of the node that claims leadership in the highest term.
pub fn leader_status(statuses: &[Option<NodeStatus>]) -> Option<(usize, &NodeStatus)> {
    statuses
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref().filter(|s| s.role == "leader").map(|s| (i, s)))
        .max_by_key(|(_, s)| s.term)
}

/// The voters in a node's view of the membership.
pub fn voters(status: &NodeStatus) -> Vec<u64> {
    status
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.node_id)
        .collect()
}

/// A node [`agreed_leader`] looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Its node id.
    pub id: u64,
    /// Its address.
    pub addr: String,
    /// Whether it is expected to answer (false while killed or paused).
    pub answers: bool,
}

/// The position of the leader (highest-term claim) if every node that is expected to answer
/// and is a voter in the leader's view names it as leader.
pub fn agreed_leader(statuses: &[Option<NodeStatus>], nodes: &[Expected]) -> Option<usize> {
    let (slot, ls) = leader_status(statuses)?;
    let voters = voters(ls);
    let agreed = nodes.iter().enumerate().all(|(i, n)| {
        !n.answers
            || !voters.contains(&n.id)
            || statuses
                .get(i)
                .and_then(Option::as_ref)
                .and_then(|s| s.leader_id)
                == Some(ls.node_id)
    });
    agreed.then_some(slot)
}

/// Polls `nodes` until [`agreed_leader`] finds one; returns its position. Fails at
/// `deadline` with what each node said last.
pub async fn wait_agreed_leader(
    admin: &KartotekClient,
    nodes: &[Expected],
    deadline: Instant,
) -> anyhow::Result<usize> {
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    loop {
        let statuses = poll(admin, &addrs).await;
        if let Some(slot) = agreed_leader(&statuses, nodes) {
            return Ok(slot);
        }
        if Instant::now() > deadline {
            let seen: Vec<String> = statuses
                .iter()
                .zip(nodes)
                .map(|(s, n)| match s {
                    Some(s) => format!(
                        "node {}: {} term {} leader {:?}",
                        n.id, s.role, s.term, s.leader_id
                    ),
                    None => format!("node {}: no answer", n.id),
                })
                .collect();
            anyhow::bail!("no leader the voters agree on: {}", seen.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kartotek_proto::v1::Member;

    fn status(id: u64, role: &str, term: u64, leader: Option<u64>, members: &[u64]) -> NodeStatus {
        NodeStatus {
            node_id: id,
            role: role.into(),
            term,
            leader_id: leader,
            members: members
                .iter()
                .map(|&m| Member {
                    node_id: m,
                    addr: format!("n{m}"),
                    voter: m != 4,
                    raft_addr: format!("n{m}:raft"),
                })
                .collect(),
            ..NodeStatus::default()
        }
    }

    #[test]
    fn the_highest_term_claim_is_the_leader() {
        let s = vec![
            Some(status(1, "leader", 2, Some(1), &[1, 2, 3])),
            Some(status(2, "leader", 3, Some(2), &[1, 2, 3])),
            None,
        ];
        assert_eq!(leader_status(&s).map(|(i, _)| i), Some(1));
        assert_eq!(voters(&status(1, "leader", 1, None, &[1, 2, 4])), [1, 2]);
    }

    fn expected(nodes: &[(u64, bool)]) -> Vec<Expected> {
        nodes
            .iter()
            .map(|&(id, answers)| Expected {
                id,
                addr: format!("n{id}"),
                answers,
            })
            .collect()
    }

    #[test]
    fn agreement_counts_answering_voters_only() {
        let three = expected(&[(1, true), (2, true), (3, true)]);
        let mut s = vec![
            Some(status(1, "follower", 3, Some(2), &[])),
            Some(status(2, "leader", 3, Some(2), &[1, 2, 3, 4])),
            Some(status(3, "follower", 3, None, &[])),
        ];
        assert_eq!(agreed_leader(&s, &three), None, "node 3 has no leader yet");
        assert_eq!(
            agreed_leader(&s, &expected(&[(1, true), (2, true), (3, false)])),
            Some(1),
            "a node not expected to answer (killed, paused) is not waited for"
        );
        s[2] = Some(status(3, "follower", 3, Some(2), &[]));
        assert_eq!(agreed_leader(&s, &three), Some(1));
        s.push(None);
        assert_eq!(
            agreed_leader(&s, &expected(&[(1, true), (2, true), (3, true), (4, true)])),
            Some(1),
            "a learner does not count"
        );
        assert_eq!(
            agreed_leader(&[None, None], &expected(&[(1, true), (2, true)])),
            None
        );
    }
}
