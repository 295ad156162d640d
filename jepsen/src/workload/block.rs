//! The block-safety workload: patients add absolute blocks while health personnel ask for
//! access decisions, and once adding a block is acknowledged no decision that starts later may
//! permit.
//!
//! Key `k` is patient `k`. Every block targets one fixed health professional
//! ([`PERSONNEL`]), at level absolute (blokkering: nothing passes it, not even an emergency
//! override), and is never revoked, so for each patient the truth is a single step from "no
//! block" to "blocked" at the moment the first block add takes effect. Workers move through
//! the patients in windows of [`WINDOW_KEYS`] keys, [`OPS_PER_WINDOW`] operations per window,
//! so most patients see decisions both before and after their block.
//!
//! Operations: `block` (add the block; through the write client), `decide` (a plain,
//! linearizable access decision on the worker's home node), `follower-decide` (a
//! bounded-staleness decision answered by the home node from its own state, at most
//! [`STALENESS_MS`] behind: this is the read a snapshot install on a follower must not see
//! half-loaded), `override` (a decision with an emergency override and a justification, which
//! is a replicated write), and after healing `final-read` (a plain decision for every patient
//! a block was tried on, in chunks). Run with a small `--snapshot-logs` so that lagging and
//! restarted followers catch up by snapshot install while they serve follower decisions.
//!
//! The checker reports, per patient:
//! - *unsafe permits*: a decision invoked after some block add on that patient was
//!   acknowledged (for a follower decision: more than [`STALENESS_MS`] after) that still
//!   permitted (with or without override): the guarantee itself;
//! - *flip-backs*: a permit from a decision invoked after another decision had already
//!   completed with deny (blocks are never revoked, so denial is permanent; a follower
//!   decision may lag by [`STALENESS_MS`]);
//! - *phantom denies*: a deny that completed before any block add on that patient was even
//!   invoked (the decision saw something that was never written);
//! - *override without request*: `permit_by_override` from a decision that did not ask for it;
//! - *lost blocks*: a patient whose block was acknowledged but whose final decision permits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use kartotek_client::proto::{
    AccessDecisionRequest, AccessEffect, Actor, ActorKind, AddBlockRequest, BlockLevel,
    BlockTargetKind, Consistency, ReadOptions,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{
    CheckOutcome, Clients, Validity, Workload, examples, org, patient, read_error, write_error,
};
use crate::history::{Completion, Event, EventType, Invocation, pair};

/// The HPR number every block targets and every decision asks for.
pub const PERSONNEL: &str = "1234567";
/// The service decisions ask for.
const SERVICE: &str = "kjernejournal";
/// Patients in play at once.
const WINDOW_KEYS: u64 = 4;
/// Operations (over all workers) before the window moves to fresh patients.
const OPS_PER_WINDOW: u64 = 60;
/// Patients checked per final-read operation.
const FINAL_CHUNK: usize = 100;
/// Distinct patients [`patient`] can make.
const PATIENTS_MAX: u64 = 15_000;
/// How far behind a follower decision may be (its `max_staleness_ms`).
pub const STALENESS_MS: u64 = 2_000;

/// The block-safety workload.
#[derive(Debug)]
pub struct BlockWorkload {
    org: String,
    ops: AtomicU64,
    /// Patients a block add was invoked on (final reads check them).
    blocked: Mutex<BTreeSet<u64>>,
    /// Percentages: block adds, override decisions, follower decisions (the rest are plain
    /// decisions).
    block_pct: u32,
    override_pct: u32,
    follower_pct: u32,
}

impl Default for BlockWorkload {
    fn default() -> Self {
        Self::new()
    }
}

impl BlockWorkload {
    /// A new workload: 10 % block adds, 5 % override decisions, 40 % follower decisions,
    /// 45 % plain decisions.
    pub fn new() -> Self {
        BlockWorkload {
            org: org(3),
            ops: AtomicU64::new(0),
            blocked: Mutex::new(BTreeSet::new()),
            block_pct: 10,
            override_pct: 5,
            follower_pct: 40,
        }
    }

    fn follower_decision(&self, key: u64) -> AccessDecisionRequest {
        AccessDecisionRequest {
            read: Some(ReadOptions {
                consistency: Consistency::BoundedStaleness as i32,
                max_staleness_ms: STALENESS_MS,
            }),
            ..self.decision(key, false)
        }
    }

    fn decision(&self, key: u64, emergency_override: bool) -> AccessDecisionRequest {
        AccessDecisionRequest {
            patient: patient(key),
            personnel: PERSONNEL.into(),
            org: self.org.clone(),
            service: SERVICE.into(),
            purpose: "treatment".into(),
            emergency_override,
            justification: if emergency_override {
                "unconscious patient in the emergency room".into()
            } else {
                String::new()
            },
            ..Default::default()
        }
    }

    fn block(&self, key: u64) -> AddBlockRequest {
        let p = patient(key);
        AddBlockRequest {
            patient: p.clone(),
            target_kind: BlockTargetKind::Personnel as i32,
            target: PERSONNEL.into(),
            level: BlockLevel::Absolute as i32,
            reason: "jepsen block safety".into(),
            registered_by: Some(Actor {
                kind: ActorKind::Citizen as i32,
                id: p,
            }),
            ..Default::default()
        }
    }
}

/// The effect as the history records it.
fn effect_name(effect: i32) -> &'static str {
    match AccessEffect::try_from(effect) {
        Ok(AccessEffect::Permit) => "permit",
        Ok(AccessEffect::Deny) => "deny",
        Ok(AccessEffect::PermitByOverride) => "permit_by_override",
        _ => "unspecified",
    }
}

impl Workload for BlockWorkload {
    type WorkerState = ();

    fn name(&self) -> &'static str {
        "block"
    }

    fn next_op(&self, _worker: usize, _state: &mut (), rng: &mut ChaCha8Rng) -> Invocation {
        let n = self.ops.fetch_add(1, Ordering::Relaxed);
        let key =
            ((n / OPS_PER_WINDOW) * WINDOW_KEYS + rng.gen_range(0..WINDOW_KEYS)) % PATIENTS_MAX;
        let roll: u32 = rng.gen_range(0..100);
        let f = if roll < self.block_pct {
            self.blocked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key);
            "block"
        } else if roll < self.block_pct + self.override_pct {
            "override"
        } else if roll < self.block_pct + self.override_pct + self.follower_pct {
            "follower-decide"
        } else {
            "decide"
        };
        Invocation {
            f,
            key: Some(key),
            value: Value::Null,
        }
    }

    async fn invoke(&self, clients: &Clients, _state: &mut (), op: &Invocation) -> Completion {
        if op.f == "final-read" {
            // One plain decision per patient, through the leader-following client.
            let keys: Vec<u64> = op
                .value
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            let mut effects = serde_json::Map::new();
            for key in keys {
                match clients.write.decide_access(self.decision(key, false)).await {
                    Ok(d) => {
                        effects.insert(key.to_string(), json!(effect_name(d.effect)));
                    }
                    Err(e) => return read_error(Value::Null, &e),
                }
            }
            return Completion::ok(Value::Object(effects));
        }
        let Some(key) = op.key else {
            return Completion::fail(op.value.clone(), "no key");
        };
        match op.f {
            "block" => match clients.write.add_block(self.block(key)).await {
                Ok(r) => Completion::ok(json!({
                    "block_id": r.block.map(|b| b.id),
                    "changed": r.changed,
                })),
                Err(e) => write_error(Value::Null, &e),
            },
            "decide" => match clients.read.decide_access(self.decision(key, false)).await {
                Ok(d) => Completion::ok(json!(effect_name(d.effect))),
                Err(e) => read_error(Value::Null, &e),
            },
            "follower-decide" => match clients
                .read
                .decide_access(self.follower_decision(key))
                .await
            {
                Ok(d) => Completion::ok(json!(effect_name(d.effect))),
                Err(e) => read_error(Value::Null, &e),
            },
            "override" => match clients.write.decide_access(self.decision(key, true)).await {
                Ok(d) => Completion::ok(json!(effect_name(d.effect))),
                // An override that may have been applied only queued a notification; for
                // the checker its effect is unknown either way.
                Err(e) => write_error(Value::Null, &e),
            },
            other => Completion::fail(op.value.clone(), format!("unknown op {other}")),
        }
    }

    fn final_ops(&self) -> Vec<Invocation> {
        let keys: Vec<u64> = self
            .blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        keys.chunks(FINAL_CHUNK)
            .map(|chunk| Invocation {
                f: "final-read",
                key: None,
                value: json!(chunk),
            })
            .collect()
    }

    fn check(&self, history: &[Event]) -> CheckOutcome {
        check_history(history)
    }
}

/// One completed decision.
#[derive(Debug, Clone, Copy)]
struct Decision {
    invoked_ns: u64,
    completed_ns: u64,
    effect: &'static str,
    asked_override: bool,
    /// How far behind it may be (0: linearizable).
    stale_ns: u64,
}

/// What the history says about one patient.
#[derive(Debug, Default)]
struct Patient {
    /// Earliest acknowledgement of a block add.
    block_acked_ns: Option<u64>,
    /// Earliest invocation of a block add that may have taken effect (ok or info).
    block_invoked_ns: Option<u64>,
    decisions: Vec<Decision>,
    /// The final decision's effect, if a final read covered this patient.
    final_effect: Option<String>,
}

fn static_effect(s: &str) -> &'static str {
    match s {
        "permit" => "permit",
        "deny" => "deny",
        "permit_by_override" => "permit_by_override",
        _ => "unspecified",
    }
}

/// Checks a block-safety history.
pub fn check_history(history: &[Event]) -> CheckOutcome {
    let mut patients: BTreeMap<u64, Patient> = BTreeMap::new();
    let mut final_reads = 0usize;
    for op in pair(history) {
        let Some(done) = op.done else {
            // Never completed: a block may still have taken effect.
            if op.invoke.f == "block"
                && let Some(k) = op.invoke.key
            {
                let p = patients.entry(k).or_default();
                p.block_invoked_ns = Some(
                    p.block_invoked_ns
                        .map_or(op.invoke.time_ns, |t| t.min(op.invoke.time_ns)),
                );
            }
            continue;
        };
        match op.invoke.f.as_str() {
            "block" => {
                let Some(k) = op.invoke.key else { continue };
                if done.kind == EventType::Fail {
                    continue;
                }
                let p = patients.entry(k).or_default();
                p.block_invoked_ns = Some(
                    p.block_invoked_ns
                        .map_or(op.invoke.time_ns, |t| t.min(op.invoke.time_ns)),
                );
                if done.kind == EventType::Ok {
                    p.block_acked_ns = Some(
                        p.block_acked_ns
                            .map_or(done.time_ns, |t| t.min(done.time_ns)),
                    );
                }
            }
            "decide" | "override" | "follower-decide" => {
                let Some(k) = op.invoke.key else { continue };
                if done.kind != EventType::Ok {
                    continue;
                }
                let effect = static_effect(done.value.as_str().unwrap_or_default());
                patients.entry(k).or_default().decisions.push(Decision {
                    invoked_ns: op.invoke.time_ns,
                    completed_ns: done.time_ns,
                    effect,
                    asked_override: op.invoke.f == "override",
                    stale_ns: if op.invoke.f == "follower-decide" {
                        STALENESS_MS * 1_000_000
                    } else {
                        0
                    },
                });
            }
            "final-read" => {
                if done.kind != EventType::Ok {
                    continue;
                }
                final_reads += 1;
                if let Some(map) = done.value.as_object() {
                    for (k, v) in map {
                        let (Ok(k), Some(v)) = (k.parse::<u64>(), v.as_str()) else {
                            continue;
                        };
                        let p = patients.entry(k).or_default();
                        p.final_effect = Some(v.to_owned());
                        // A final decision starts after every client operation ended.
                        p.decisions.push(Decision {
                            invoked_ns: op.invoke.time_ns,
                            completed_ns: done.time_ns,
                            effect: static_effect(v),
                            asked_override: false,
                            stale_ns: 0,
                        });
                    }
                }
            }
            _ => {}
        }
    }

    let mut unsafe_permits = Vec::new();
    let mut flip_backs = Vec::new();
    let mut phantom_denies = Vec::new();
    let mut unrequested_overrides = Vec::new();
    let mut lost_blocks = Vec::new();
    let mut unchecked = 0usize;
    let mut decisions = 0usize;
    let mut denied_after_ack = 0usize;
    for (key, p) in &mut patients {
        p.decisions.sort_by_key(|d| d.invoked_ns);
        decisions += p.decisions.len();
        // Earliest completion of a deny so far, over decisions by completion time.
        let mut by_end: Vec<&Decision> = p.decisions.iter().collect();
        by_end.sort_by_key(|d| d.completed_ns);
        let first_deny_end = by_end
            .iter()
            .find(|d| d.effect == "deny")
            .map(|d| d.completed_ns);
        for d in &p.decisions {
            let permits = d.effect == "permit" || d.effect == "permit_by_override";
            if let Some(ack) = p.block_acked_ns
                && d.invoked_ns > ack.saturating_add(d.stale_ns)
            {
                if permits {
                    unsafe_permits.push(json!({
                        "patient_key": key,
                        "block_acknowledged_ms": ack as f64 / 1e6,
                        "decision_invoked_ms": d.invoked_ns as f64 / 1e6,
                        "effect": d.effect,
                        "override": d.asked_override,
                    }));
                } else {
                    denied_after_ack += 1;
                }
            }
            if let Some(deny_end) = first_deny_end
                && d.invoked_ns > deny_end.saturating_add(d.stale_ns)
                && permits
            {
                flip_backs.push(json!({
                    "patient_key": key,
                    "deny_completed_ms": deny_end as f64 / 1e6,
                    "decision_invoked_ms": d.invoked_ns as f64 / 1e6,
                    "effect": d.effect,
                }));
            }
            if d.effect == "deny" && p.block_invoked_ns.is_none_or(|t| d.completed_ns < t) {
                phantom_denies.push(json!({
                    "patient_key": key,
                    "decision_completed_ms": d.completed_ns as f64 / 1e6,
                    "block_invoked_ms": p.block_invoked_ns.map(|t| t as f64 / 1e6),
                }));
            }
            if d.effect == "permit_by_override" && !d.asked_override {
                unrequested_overrides.push(json!({"patient_key": key}));
            }
        }
        if p.block_acked_ns.is_some() {
            match p.final_effect.as_deref() {
                Some("deny") => {}
                Some(other) => lost_blocks.push(json!({"patient_key": key, "final": other})),
                None => unchecked += 1,
            }
        }
    }

    let anomalies = unsafe_permits.len()
        + flip_backs.len()
        + phantom_denies.len()
        + unrequested_overrides.len()
        + lost_blocks.len();
    let valid = if anomalies > 0 {
        Validity::Invalid
    } else if unchecked > 0 {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    let acked = patients
        .values()
        .filter(|p| p.block_acked_ns.is_some())
        .count();
    let summary = format!(
        "block: {} patients, {} blocked (acknowledged), {} decisions ({} after an acknowledged block, all must deny); {} unsafe permits, {} flip-backs, {} phantom denies, {} unrequested overrides, {} lost blocks{}",
        patients.len(),
        acked,
        decisions,
        denied_after_ack + unsafe_permits.len(),
        unsafe_permits.len(),
        flip_backs.len(),
        phantom_denies.len(),
        unrequested_overrides.len(),
        lost_blocks.len(),
        if unchecked > 0 {
            format!("; {unchecked} blocked patients without a final read")
        } else {
            String::new()
        }
    );
    CheckOutcome {
        valid,
        summary,
        details: json!({
            "patients": patients.len(),
            "blocked_acknowledged": acked,
            "decisions": decisions,
            "decisions_after_acknowledged_block": denied_after_ack + unsafe_permits.len(),
            "final_reads": final_reads,
            "unsafe_permits": unsafe_permits.len(),
            "unsafe_permit_examples": examples(unsafe_permits, 20),
            "flip_backs": flip_backs.len(),
            "flip_back_examples": examples(flip_backs, 20),
            "phantom_denies": phantom_denies.len(),
            "phantom_deny_examples": examples(phantom_denies, 20),
            "unrequested_overrides": unrequested_overrides.len(),
            "lost_blocks": lost_blocks.len(),
            "lost_block_examples": examples(lost_blocks, 20),
            "blocked_without_final_read": unchecked,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::history::test_event as ev;

    /// Patient 7: permit, then a block acknowledged at 4, then a deny; final read deny.
    fn base() -> Vec<Event> {
        vec![
            ev(1, 1, EventType::Invoke, "decide", Some(7), Value::Null),
            ev(2, 1, EventType::Ok, "decide", Some(7), json!("permit")),
            ev(3, 2, EventType::Invoke, "block", Some(7), Value::Null),
            ev(
                4,
                2,
                EventType::Ok,
                "block",
                Some(7),
                json!({"changed": true}),
            ),
            ev(5, 1, EventType::Invoke, "override", Some(7), Value::Null),
            ev(6, 1, EventType::Ok, "override", Some(7), json!("deny")),
        ]
    }

    fn with_final(mut h: Vec<Event>, effect: &str) -> Vec<Event> {
        h.push(ev(
            100,
            9,
            EventType::Invoke,
            "final-read",
            None,
            json!([7]),
        ));
        h.push(ev(
            101,
            9,
            EventType::Ok,
            "final-read",
            None,
            json!({"7": effect}),
        ));
        h
    }

    #[test]
    fn valid_history() {
        let out = check_history(&with_final(base(), "deny"));
        assert_eq!(out.valid, Validity::Valid, "{}", out.details);
        assert_eq!(out.details["decisions_after_acknowledged_block"], 2);
    }

    #[test]
    fn permit_after_acknowledged_block_is_unsafe() {
        let mut h = base();
        h.push(ev(7, 3, EventType::Invoke, "decide", Some(7), Value::Null));
        h.push(ev(8, 3, EventType::Ok, "decide", Some(7), json!("permit")));
        let out = check_history(&with_final(h, "deny"));
        assert_eq!(out.valid, Validity::Invalid);
        assert_eq!(out.details["unsafe_permits"], 1, "{}", out.details);
        assert_eq!(out.details["flip_backs"], 1, "{}", out.details);
    }

    #[test]
    fn concurrent_permit_is_fine_but_lost_block_is_not() {
        // A decision that started before the ack may permit.
        let mut h = base();
        h.insert(
            2,
            ev(3, 4, EventType::Invoke, "decide", Some(7), Value::Null),
        );
        h.push(ev(9, 4, EventType::Ok, "decide", Some(7), json!("permit")));
        let out = check_history(&with_final(h.clone(), "deny"));
        assert_eq!(out.valid, Validity::Valid, "{}", out.details);
        let out = check_history(&with_final(h, "permit"));
        assert_eq!(out.details["lost_blocks"], 1, "{}", out.details);
        assert_eq!(out.valid, Validity::Invalid);
    }

    #[test]
    fn deny_without_block_is_phantom() {
        let h = vec![
            ev(1, 1, EventType::Invoke, "decide", Some(3), Value::Null),
            ev(2, 1, EventType::Ok, "decide", Some(3), json!("deny")),
        ];
        let out = check_history(&h);
        assert_eq!(out.details["phantom_denies"], 1, "{}", out.details);
        assert_eq!(out.valid, Validity::Invalid);
    }

    #[test]
    fn unknown_block_may_explain_a_deny_and_needs_no_final_read() {
        let h = vec![
            ev(1, 2, EventType::Invoke, "block", Some(3), Value::Null),
            ev(2, 2, EventType::Info, "block", Some(3), Value::Null),
            ev(3, 1, EventType::Invoke, "decide", Some(3), Value::Null),
            ev(4, 1, EventType::Ok, "decide", Some(3), json!("deny")),
        ];
        let out = check_history(&h);
        assert_eq!(out.valid, Validity::Valid, "{}", out.details);
    }

    #[test]
    fn acknowledged_block_without_final_read_is_unknown() {
        assert_eq!(check_history(&base()).valid, Validity::Unknown);
    }

    #[test]
    fn unrequested_override_is_reported() {
        let h = vec![
            ev(1, 1, EventType::Invoke, "decide", Some(3), Value::Null),
            ev(
                2,
                1,
                EventType::Ok,
                "decide",
                Some(3),
                json!("permit_by_override"),
            ),
        ];
        assert_eq!(check_history(&h).details["unrequested_overrides"], 1);
    }
}
