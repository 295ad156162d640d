//! The follower's check of the leader's clock: no log entry stamped far in the future.
//!
//! The leader stamps every command with its wall clock, and the state machine's clock is the
//! largest stamp it has applied (it never goes back). So one entry from a leader whose clock
//! runs an hour ahead would move every replica's state clock an hour forward for good: blocks
//! and consents limited in time would end early. A follower therefore refuses an
//! AppendEntries that carries an entry stamped more than `raft.stamp_ahead_ms_max` ahead of
//! its own clock — and every later AppendEntries of that leader in that term, heartbeats
//! included. Its election timer then runs out and it calls an election: the leader with the
//! wrong clock loses its term instead of holding the cluster without committing anything.
//! The refused entries were never committed (no majority took them), so the next leader
//! overwrites them. A majority of nodes with clocks ahead together is beyond this check.
//!
//! Only entries above the leader's commit index (`leader_commit` of the request) are judged.
//! An entry at or below it is committed: a majority took it, refusing it cannot undo it, and
//! would only keep this follower behind for good, calling elections that depose every leader
//! that sends it the entry (a cluster wedged that way after a clock fault healed: the Jepsen
//! `all` run of 2026-12-02). For the same reason a refused term is trusted again once its
//! leader's commit index reaches the first refused entry: a majority took that entry after all.
//!
//! Counted in `kartotek_raft_future_stamps_refused_total`; logged once per refused term.

use std::sync::Mutex;

use kartotek_domain::Timestamp;
use kartotek_storage::TypeConfig;
use openraft::EntryPayload;
use openraft::raft::AppendEntriesRequest;
use prometheus_client::metrics::counter::Counter;

/// A leader term: (term, leader node id).
type Term = (u64, u64);

/// A refused leader term, and the index of the first entry refused in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Distrust {
    term: Term,
    first_refused_index: u64,
}

/// Refuses appends with far-future stamps, and the rest of their leader's term.
#[derive(Debug)]
pub struct StampGuard {
    ahead_ms_max: i64,
    distrusted: Mutex<Option<Distrust>>,
    /// AppendEntries refused (`kartotek_raft_future_stamps_refused_total`).
    refused_total: Counter,
}

impl StampGuard {
    /// A guard refusing stamps more than `ahead_ms_max` ahead of the local clock, counting
    /// refusals in `refused_total`.
    pub fn new(ahead_ms_max: u64, refused_total: Counter) -> StampGuard {
        StampGuard {
            ahead_ms_max: i64::try_from(ahead_ms_max).unwrap_or(i64::MAX),
            distrusted: Mutex::new(None),
            refused_total,
        }
    }

    /// Whether `rpc` may be handed to Raft at local time `now`; why not otherwise.
    pub fn check(
        &self,
        rpc: &AppendEntriesRequest<TypeConfig>,
        now: Timestamp,
    ) -> Result<(), String> {
        let term = (rpc.vote.leader_id.term, rpc.vote.leader_id.node_id);
        // Entries up to here are committed: not judged (module doc).
        let committed = rpc.leader_commit.map(|l| l.index);
        let mut distrusted = self.distrusted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = *distrusted
            && d.term == term
        {
            if committed >= Some(d.first_refused_index) {
                // A majority took the refused entry after all: refusing more only wedges us.
                tracing::warn!(
                    leader = term.1,
                    term = term.0,
                    index = d.first_refused_index,
                    "a refused entry stamped ahead of this node's clock was committed by a majority; trusting the leader again"
                );
                *distrusted = None;
            } else {
                self.refused_total.inc();
                return Err(format!(
                    "leader {} of term {} stamped entries ahead of this node's clock; its term is refused",
                    term.1, term.0
                ));
            }
        }
        // The uncommitted entries' stamps ahead of `now`: (index, ms ahead).
        let ahead_of = rpc
            .entries
            .iter()
            .filter(|e| Some(e.log_id.index) > committed)
            .filter_map(|e| match &e.payload {
                EntryPayload::Normal(cmd) => {
                    Some((e.log_id.index, cmd.stamped_at.0.saturating_sub(now.0)))
                }
                _ => None,
            });
        let Some(first_refused_index) = ahead_of
            .clone()
            .find(|&(_, ahead)| ahead > self.ahead_ms_max)
            .map(|(index, _)| index)
        else {
            return Ok(());
        };
        let ahead = ahead_of.map(|(_, ahead)| ahead).max().unwrap_or_default();
        *distrusted = Some(Distrust {
            term,
            first_refused_index,
        });
        self.refused_total.inc();
        tracing::error!(
            leader = term.1,
            term = term.0,
            ahead_ms = ahead,
            max_ms = self.ahead_ms_max,
            "refusing the leader's entries: stamped ahead of this node's clock (check the clocks: NTP)"
        );
        Err(format!(
            "an entry is stamped {ahead} ms ahead of this node's clock (at most {} ms); leader {} of term {} is refused",
            self.ahead_ms_max, term.1, term.0
        ))
    }
}

#[cfg(test)]
mod tests {
    use kartotek_domain::{Command, Op};
    use openraft::{CommittedLeaderId, Entry, LeaderId, LogId, Vote};

    use super::*;

    fn append(term: u64, leader: u64, stamps: &[i64]) -> AppendEntriesRequest<TypeConfig> {
        append_from(term, leader, 1, stamps, None)
    }

    /// Entries at `first_index..` with `stamps`, the leader's commit index at `commit`.
    fn append_from(
        term: u64,
        leader: u64,
        first_index: u64,
        stamps: &[i64],
        commit: Option<u64>,
    ) -> AppendEntriesRequest<TypeConfig> {
        let log_id = |index| LogId::new(CommittedLeaderId::new(term, leader), index);
        AppendEntriesRequest {
            vote: Vote {
                leader_id: LeaderId::new(term, leader),
                committed: true,
            },
            prev_log_id: None,
            entries: stamps
                .iter()
                .enumerate()
                .map(|(i, s)| Entry {
                    log_id: log_id(first_index + i as u64),
                    payload: EntryPayload::Normal(Command {
                        request_id: None,
                        stamped_at: Timestamp(*s),
                        op: Op::Noop,
                    }),
                })
                .collect(),
            leader_commit: commit.map(log_id),
        }
    }

    #[test]
    fn a_far_future_stamp_refuses_the_rest_of_that_leaders_term() {
        let refused = Counter::default();
        let guard = StampGuard::new(10_000, refused.clone());
        let now = Timestamp(1_800_000_000_000);
        assert!(
            guard
                .check(&append(3, 1, &[now.0 - 5_000, now.0 + 9_000]), now)
                .is_ok()
        );
        assert!(guard.check(&append(3, 1, &[]), now).is_ok(), "a heartbeat");
        let e = guard
            .check(&append(3, 1, &[now.0, now.0 + 3_600_000]), now)
            .err()
            .unwrap_or_default();
        assert!(e.contains("3600000 ms ahead"), "{e}");
        // The same leader's term: even a heartbeat or a sane entry is refused now.
        assert!(guard.check(&append(3, 1, &[]), now).is_err());
        assert!(guard.check(&append(3, 1, &[now.0]), now).is_err());
        assert_eq!(refused.get(), 3);
        // The next term (another leader, or the same one re-elected) starts trusted.
        assert!(guard.check(&append(4, 2, &[now.0]), now).is_ok());
        assert!(guard.check(&append(4, 1, &[now.0]), now).is_ok());
    }

    /// The wedge of the `all` run: entries stamped ahead that a majority (clocks ahead too)
    /// committed must reach the follower whose clock is right, or it stays behind for good and
    /// deposes every leader with its elections.
    #[test]
    fn committed_entries_are_accepted_whatever_their_stamps() {
        let refused = Counter::default();
        let guard = StampGuard::new(10_000, refused.clone());
        let now = Timestamp(1_800_000_000_000);
        let hour = 3_600_000;
        // Entries 5..=7, an hour ahead, committed through 7: taken.
        assert!(
            guard
                .check(&append_from(3, 1, 5, &[now.0 + hour; 3], Some(7)), now)
                .is_ok()
        );
        // Committed through 6 only: entry 7 is judged and refused, with the term.
        let e = guard
            .check(&append_from(3, 1, 5, &[now.0 + hour; 3], Some(6)), now)
            .err()
            .unwrap_or_default();
        assert!(e.contains("3600000 ms ahead"), "{e}");
        assert!(
            guard
                .check(&append_from(3, 1, 8, &[], Some(6)), now)
                .is_err()
        );
        assert_eq!(refused.get(), 2);
        // A majority took entry 7 after all (commit index 7): the term is trusted again, and
        // only the new uncommitted entries are judged.
        assert!(
            guard
                .check(&append_from(3, 1, 8, &[], Some(7)), now)
                .is_ok()
        );
        assert!(
            guard
                .check(&append_from(3, 1, 8, &[now.0 + hour, now.0], Some(8)), now)
                .is_ok()
        );
        assert!(
            guard
                .check(&append_from(3, 1, 9, &[now.0, now.0 + hour], Some(8)), now)
                .is_err()
        );
        // Refused from entry 10 on: a commit index of 9 does not lift it.
        assert!(
            guard
                .check(&append_from(3, 1, 11, &[], Some(9)), now)
                .is_err()
        );
        assert_eq!(refused.get(), 4);
    }
}
