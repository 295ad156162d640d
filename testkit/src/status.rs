//! Reading the cluster's state from the nodes' `Status` answers: polling every node at once,
//! the leader claim of the highest term, and whether the voters agree on it.

use std::time::Duration;

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

/// The position of the leader (highest-term claim) if every node that is expected to answer
/// (`expected[i] = (node id, expected)`) and is a voter in the leader's view names it as
/// leader.
pub fn agreed_leader(statuses: &[Option<NodeStatus>], expected: &[(u64, bool)]) -> Option<usize> {
    let (slot, ls) = leader_status(statuses)?;
    let voters = voters(ls);
    let agreed = expected.iter().enumerate().all(|(i, (id, answers))| {
        !answers
            || !voters.contains(id)
            || statuses
                .get(i)
                .and_then(Option::as_ref)
                .and_then(|s| s.leader_id)
                == Some(ls.node_id)
    });
    agreed.then_some(slot)
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

    #[test]
    fn agreement_counts_answering_voters_only() {
        let three = [(1, true), (2, true), (3, true)];
        let mut s = vec![
            Some(status(1, "follower", 3, Some(2), &[])),
            Some(status(2, "leader", 3, Some(2), &[1, 2, 3, 4])),
            Some(status(3, "follower", 3, None, &[])),
        ];
        assert_eq!(agreed_leader(&s, &three), None, "node 3 has no leader yet");
        assert_eq!(
            agreed_leader(&s, &[(1, true), (2, true), (3, false)]),
            Some(1),
            "a node not expected to answer (killed, paused) is not waited for"
        );
        s[2] = Some(status(3, "follower", 3, Some(2), &[]));
        assert_eq!(agreed_leader(&s, &three), Some(1));
        s.push(None);
        assert_eq!(
            agreed_leader(&s, &[(1, true), (2, true), (3, true), (4, true)]),
            Some(1),
            "a learner does not count"
        );
        assert_eq!(agreed_leader(&[None, None], &[(1, true), (2, true)]), None);
    }
}
