//! Nemeses: the faults, their seeded schedule, and carrying them out.
//!
//! [`plan`] turns a seed, the chosen kinds and the fault-phase length into a list of
//! [`Planned`] faults: every kind has its own timeline (start, hold, heal, pause, ...), so
//! faults of different kinds overlap (composition) while faults of one kind never do. Random
//! choices (which nodes, which split, how long) are made here, from the seed; only targets that
//! depend on the cluster's state (the current leader) are resolved when the fault
//! starts. The same seed gives the same plan.
//!
//! [`Nemesis::run`] executes the plan against the [`Cluster`], logging every start, stop and
//! failure to `nemesis.jsonl`; [`Nemesis::heal_all`] undoes everything at the end of the fault
//! phase.

use std::path::Path;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use anyhow::Context;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::cluster::Cluster;
use crate::netns::drops_for;
use kartotek_client::proto::AddLearnerRequest;

/// The kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Network partitions (iptables).
    Partition,
    /// kill -9, restart later.
    Kill,
    /// SIGSTOP, SIGCONT later.
    Pause,
    /// Packet loss (iptables statistic).
    Loss,
    /// Wall-clock offsets and jumps (libfaketime).
    Clock,
    /// Failing fsync / writes (libfiu), then a crash-restart.
    Disk,
    /// Remove a node, wipe it, add it back under a new id.
    Member,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 7] = [
        Kind::Partition,
        Kind::Kill,
        Kind::Pause,
        Kind::Loss,
        Kind::Clock,
        Kind::Disk,
        Kind::Member,
    ];

    /// Parses one name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Partition => "partition",
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Loss => "loss",
            Kind::Clock => "clock",
            Kind::Disk => "disk",
            Kind::Member => "member",
        }
    }

    /// True if it needs network namespaces.
    pub fn needs_netns(self) -> bool {
        matches!(self, Kind::Partition | Kind::Loss)
    }
}

/// Parses `partition,kill` (or `none`, `all`).
pub fn parse_kinds(s: &str) -> anyhow::Result<Vec<Kind>> {
    let mut kinds = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "none" => {}
            "all" => kinds.extend(Kind::ALL),
            other => kinds.push(Kind::parse(other).with_context(|| {
                format!(
                    "unknown nemesis {other:?}; known: none, all, {}",
                    Kind::ALL.map(Kind::name).join(", ")
                )
            })?),
        }
    }
    kinds.sort();
    kinds.dedup();
    Ok(kinds)
}

/// Which node(s) a process fault hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// These slots.
    Nodes(Vec<usize>),
    /// The current leader.
    Leader,
}

/// The shape of a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    /// Two halves (the first ⌊n/2⌋ of a permutation against the rest).
    Halves(Vec<usize>),
    /// The current leader in a minority of ⌊(n-1)/2⌋ nodes against the rest.
    LeaderMinority(Vec<usize>),
    /// One node alone.
    Isolate(usize),
    /// The current leader alone.
    IsolateLeader,
    /// Two halves that both see one bridge node (the middle of the permutation).
    Bridge(Vec<usize>),
    /// Each node sees only its two neighbours on a ring (a permutation).
    Ring(Vec<usize>),
}

/// One concrete fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Fault {
    /// Partition.
    Partition {
        /// Shape.
        split: Split,
    },
    /// kill -9.
    Kill {
        /// Who.
        target: Target,
    },
    /// SIGSTOP.
    Pause {
        /// Who.
        target: Target,
    },
    /// Packet loss.
    Loss {
        /// Who.
        nodes: Vec<usize>,
        /// Percentage lost.
        loss_pct: u32,
    },
    /// Clock offsets.
    Clock {
        /// (slot, offset in seconds).
        offsets_s: Vec<(usize, i64)>,
    },
    /// Disk faults.
    Disk {
        /// Who.
        node: usize,
        /// `eio-fsync` or `enospc-write`.
        mode: String,
    },
    /// Membership change.
    Member {
        /// Who is removed, wiped and re-added.
        target: Target,
    },
}

impl Fault {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Fault::Partition { .. } => Kind::Partition,
            Fault::Kill { .. } => Kind::Kill,
            Fault::Pause { .. } => Kind::Pause,
            Fault::Loss { .. } => Kind::Loss,
            Fault::Clock { .. } => Kind::Clock,
            Fault::Disk { .. } => Kind::Disk,
            Fault::Member { .. } => Kind::Member,
        }
    }
}

/// A fault in the schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Planned {
    /// Seconds after the start of the fault phase.
    pub start_s: f64,
    /// How long it is held.
    pub hold_s: f64,
    /// What.
    pub fault: Fault,
}

/// Timing of the schedule.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Length of the fault phase.
    pub phase_s: f64,
    /// Hold time range.
    pub hold_s: (f64, f64),
    /// Quiet time between two faults of one kind.
    pub gap_s: (f64, f64),
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            phase_s: 60.0,
            hold_s: (3.0, 10.0),
            gap_s: (2.0, 6.0),
        }
    }
}

/// The seeded schedule: for each kind a timeline of non-overlapping faults.
pub fn plan(seed: u64, kinds: &[Kind], nodes: usize, timing: Timing) -> Vec<Planned> {
    let mut out = Vec::new();
    for &kind in kinds {
        let mut rng = ChaCha8Rng::seed_from_u64(
            seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(kind as u64 + 1)),
        );
        let mut t = rng.gen_range(1.0..4.0);
        loop {
            let hold = rng.gen_range(timing.hold_s.0..timing.hold_s.1);
            if t + hold > timing.phase_s {
                break;
            }
            let fault = random_fault(kind, nodes, &mut rng);
            out.push(Planned {
                start_s: round_ms(t),
                hold_s: round_ms(hold),
                fault,
            });
            t += hold + rng.gen_range(timing.gap_s.0..timing.gap_s.1);
        }
    }
    out.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    out
}

fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

fn perm(nodes: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut p: Vec<usize> = (0..nodes).collect();
    p.shuffle(rng);
    p
}

fn random_target(nodes: usize, rng: &mut ChaCha8Rng) -> Target {
    match rng.gen_range(0..4) {
        0 => Target::Leader,
        1 if nodes >= 3 => {
            let minority = (nodes - 1) / 2;
            let mut p = perm(nodes, rng);
            p.truncate(minority.max(1));
            p.sort_unstable();
            Target::Nodes(p)
        }
        _ => Target::Nodes(vec![rng.gen_range(0..nodes)]),
    }
}

fn random_fault(kind: Kind, nodes: usize, rng: &mut ChaCha8Rng) -> Fault {
    match kind {
        Kind::Partition => {
            let split = match rng.gen_range(0..6) {
                0 => Split::Halves(perm(nodes, rng)),
                1 => Split::LeaderMinority(perm(nodes, rng)),
                2 => Split::Isolate(rng.gen_range(0..nodes)),
                3 => Split::IsolateLeader,
                4 => Split::Bridge(perm(nodes, rng)),
                _ => Split::Ring(perm(nodes, rng)),
            };
            Fault::Partition { split }
        }
        Kind::Kill => Fault::Kill {
            target: random_target(nodes, rng),
        },
        Kind::Pause => Fault::Pause {
            target: random_target(nodes, rng),
        },
        Kind::Loss => {
            let mut p = perm(nodes, rng);
            p.truncate(rng.gen_range(1..=2.min(nodes)));
            p.sort_unstable();
            Fault::Loss {
                nodes: p,
                loss_pct: rng.gen_range(10..=40),
            }
        }
        Kind::Clock => {
            const OFFSETS_S: [i64; 10] = [-3600, -300, -30, -5, -1, 1, 5, 30, 300, 3600];
            let mut p = perm(nodes, rng);
            p.truncate(rng.gen_range(1..=nodes.div_ceil(2)));
            p.sort_unstable();
            Fault::Clock {
                offsets_s: p
                    .into_iter()
                    .map(|n| (n, OFFSETS_S[rng.gen_range(0..OFFSETS_S.len())]))
                    .collect(),
            }
        }
        Kind::Disk => Fault::Disk {
            node: rng.gen_range(0..nodes),
            mode: if rng.gen_bool(0.5) {
                "eio-fsync".into()
            } else {
                "enospc-write".into()
            },
        },
        Kind::Member => Fault::Member {
            target: if rng.gen_bool(0.3) {
                Target::Leader
            } else {
                Target::Nodes(vec![rng.gen_range(0..nodes)])
            },
        },
    }
}

/// Why a kill, pause or removal was not started.
const MAJORITY_DOWN: &str = "would leave a majority of the voters down";

/// Per slot: `None` for a node outside the membership, else whether the voter answers
/// (started and not paused).
fn voters_up(c: &Cluster) -> Vec<Option<bool>> {
    c.nodes
        .iter()
        .map(|n| n.member.then(|| n.answers()))
        .collect()
}

/// Splits `wanted` into the nodes a kill or pause may take down and those it may not, so that
/// the voters down stay a minority of the current voters (`up`: see [`voters_up`]). A node
/// outside the membership, or a voter already down, costs nothing. Without this cap, kills and
/// pauses of different timelines overlap into a majority down (3 of the 4 voters left after a
/// removal), and the run measures nothing but unavailability: under `all` most membership
/// faults then failed to start for want of a leader.
pub fn within_minority(wanted: &[usize], up: &[Option<bool>]) -> (Vec<usize>, Vec<usize>) {
    let voters = up.iter().flatten().count();
    let mut down = up.iter().flatten().filter(|&&a| !a).count();
    let allowed = voters.saturating_sub(1) / 2;
    let (mut take, mut capped) = (Vec::new(), Vec::new());
    for &n in wanted {
        match up.get(n).copied().flatten() {
            Some(true) if down >= allowed => capped.push(n),
            Some(true) => {
                down += 1;
                take.push(n);
            }
            _ => take.push(n),
        }
    }
    debug_assert_eq!(take.len() + capped.len(), wanted.len());
    (take, capped)
}

/// Per node, the nodes it drops packets from, for `split` (`leader`: the current leader).
pub fn drops(split: &Split, nodes: usize, leader: Option<usize>) -> Vec<Vec<usize>> {
    let leader = leader.unwrap_or(0).min(nodes.saturating_sub(1));
    match split {
        Split::Halves(p) => {
            let (a, b) = p.split_at(nodes / 2);
            drops_for(&[a.to_vec(), b.to_vec()], nodes)
        }
        Split::LeaderMinority(p) => {
            let mut minority = vec![leader];
            let others = ((nodes - 1) / 2).saturating_sub(1);
            minority.extend(p.iter().copied().filter(|&x| x != leader).take(others));
            let rest: Vec<usize> = (0..nodes).filter(|x| !minority.contains(x)).collect();
            drops_for(&[minority, rest], nodes)
        }
        Split::Isolate(n) => {
            let rest: Vec<usize> = (0..nodes).filter(|x| x != n).collect();
            drops_for(&[vec![*n], rest], nodes)
        }
        Split::IsolateLeader => {
            let rest: Vec<usize> = (0..nodes).filter(|&x| x != leader).collect();
            drops_for(&[vec![leader], rest], nodes)
        }
        Split::Bridge(p) => {
            let mid = nodes / 2;
            let (a, b) = (&p[..mid], &p[mid + 1..]);
            let mut d = vec![Vec::new(); nodes];
            for &x in a {
                d[x] = b.to_vec();
            }
            for &x in b {
                d[x] = a.to_vec();
            }
            d
        }
        Split::Ring(p) => {
            let n = p.len();
            let mut d = vec![Vec::new(); nodes];
            for (k, &x) in p.iter().enumerate() {
                let left = p[(k + n - 1) % n];
                let right = p[(k + 1) % n];
                d[x] = (0..nodes)
                    .filter(|&y| y != x && y != left && y != right)
                    .collect();
            }
            d
        }
    }
}

/// One line of the nemesis log.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LogEntry {
    /// Nanoseconds since the test started.
    pub time_ns: u64,
    /// `start`, `stop`, `error`, `event`.
    pub phase: String,
    /// Number of the planned fault (pairs start and stop).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<usize>,
    /// Fault kind, or `heal` / `cluster`.
    pub kind: String,
    /// What happened, resolved (which nodes, ...).
    pub detail: Value,
}

/// Reads a `nemesis.jsonl` back (`kartotek-jepsen check` of a stored run).
pub fn load_log(path: &std::path::Path) -> anyhow::Result<Vec<LogEntry>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

/// The nemesis log: `nemesis.jsonl` plus a copy for the report.
#[derive(Debug, Clone)]
pub struct NemesisLog {
    start: std::time::Instant,
    inner: Arc<StdMutex<(std::fs::File, Vec<LogEntry>)>>,
}

impl NemesisLog {
    /// A log writing to `path`.
    pub fn create(path: &Path, start: std::time::Instant) -> anyhow::Result<NemesisLog> {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(NemesisLog {
            start,
            inner: Arc::new(StdMutex::new((file, Vec::new()))),
        })
    }

    /// Appends an entry.
    pub fn log(&self, phase: &str, id: Option<usize>, kind: &str, detail: Value) {
        use std::io::Write;
        let entry = LogEntry {
            time_ns: u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            phase: phase.into(),
            id,
            kind: kind.into(),
            detail,
        };
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(line) = serde_json::to_string(&entry) {
            let _ = writeln!(g.0, "{line}");
        }
        g.1.push(entry);
    }

    /// Every entry so far.
    pub fn entries(&self) -> Vec<LogEntry> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }
}

/// Carries out a plan.
#[derive(Clone)]
pub struct Nemesis {
    /// The cluster.
    pub cluster: Arc<Mutex<Cluster>>,
    /// The log.
    pub log: NemesisLog,
}

impl Nemesis {
    /// Runs `planned` faults, each kind on its own task; returns when all have been healed.
    /// A fault whose start the schedule reaches only after `phase_end` (because earlier ones
    /// took longer than planned) is skipped; held faults are cut short at `phase_end`.
    pub async fn run(
        &self,
        planned: Vec<Planned>,
        phase_start: tokio::time::Instant,
        phase_end: tokio::time::Instant,
    ) {
        let mut by_kind: std::collections::BTreeMap<Kind, Vec<(usize, Planned)>> =
            Default::default();
        for (id, p) in planned.into_iter().enumerate() {
            by_kind.entry(p.fault.kind()).or_default().push((id, p));
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (_, faults) in by_kind {
            let me = self.clone();
            tasks.spawn(async move {
                for (id, p) in faults {
                    tokio::time::sleep_until(phase_start + Duration::from_secs_f64(p.start_s))
                        .await;
                    if tokio::time::Instant::now() >= phase_end {
                        me.log.log(
                            "skipped",
                            Some(id),
                            p.fault.kind().name(),
                            json!({"fault": p.fault}),
                        );
                        continue;
                    }
                    let kind = p.fault.kind().name();
                    let state = match me.start(&p.fault).await {
                        Ok(state) => {
                            me.log.log(
                                "start",
                                Some(id),
                                kind,
                                json!({"fault": p.fault, "resolved": state}),
                            );
                            state
                        }
                        Err(e) => {
                            me.log.log(
                                "error",
                                Some(id),
                                kind,
                                json!({"fault": p.fault, "error": format!("{e:#}")}),
                            );
                            continue;
                        }
                    };
                    let until = (tokio::time::Instant::now() + Duration::from_secs_f64(p.hold_s))
                        .min(phase_end);
                    tokio::time::sleep_until(until).await;
                    match me.stop(&p.fault, &state).await {
                        Ok(()) => me
                            .log
                            .log("stop", Some(id), kind, json!({"resolved": state})),
                        Err(e) => me.log.log(
                            "error",
                            Some(id),
                            kind,
                            json!({"stage": "heal", "error": format!("{e:#}")}),
                        ),
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn resolve(&self, target: &Target) -> anyhow::Result<Vec<usize>> {
        let probe = self.cluster.lock().await.probe();
        Ok(match target {
            Target::Nodes(n) => n.clone(),
            Target::Leader => vec![probe.leader().await.context("no leader to target")?],
        })
    }

    /// Starts a fault; returns the resolved detail needed to heal it.
    async fn start(&self, fault: &Fault) -> anyhow::Result<Value> {
        match fault {
            Fault::Partition { split } => {
                let probe = self.cluster.lock().await.probe();
                let leader = probe.leader().await;
                let c = self.cluster.lock().await;
                let net = c.network().context("partitions need netns mode")?;
                let d = drops(split, c.nodes.len(), leader);
                net.partition(&d)?;
                Ok(json!({"leader": leader, "drops": d}))
            }
            Fault::Kill { target } => {
                let nodes = self.resolve(target).await?;
                let mut c = self.cluster.lock().await;
                // A slot being re-added belongs to the membership nemesis.
                let nodes: Vec<usize> = nodes.into_iter().filter(|&n| c.nodes[n].member).collect();
                anyhow::ensure!(!nodes.is_empty(), "target is not a member");
                let (nodes, capped) = within_minority(&nodes, &voters_up(&c));
                anyhow::ensure!(!nodes.is_empty(), "capped: {capped:?} {MAJORITY_DOWN}");
                for &n in &nodes {
                    c.kill(n);
                }
                Ok(json!({"nodes": nodes, "capped": capped}))
            }
            Fault::Pause { target } => {
                let nodes = self.resolve(target).await?;
                let mut c = self.cluster.lock().await;
                let (nodes, capped) = within_minority(&nodes, &voters_up(&c));
                anyhow::ensure!(!nodes.is_empty(), "capped: {capped:?} {MAJORITY_DOWN}");
                for &n in &nodes {
                    c.pause(n, true);
                }
                Ok(json!({"nodes": nodes, "capped": capped}))
            }
            Fault::Loss { nodes, loss_pct } => {
                let c = self.cluster.lock().await;
                let net = c.network().context("packet loss needs netns mode")?;
                for &n in nodes {
                    net.set_loss(n, *loss_pct)?;
                }
                Ok(json!({"nodes": nodes}))
            }
            Fault::Clock { offsets_s } => {
                let c = self.cluster.lock().await;
                for &(n, off) in offsets_s {
                    c.set_clock_offset(n, off)?;
                }
                Ok(json!({"nodes": offsets_s.iter().map(|o| o.0).collect::<Vec<_>>()}))
            }
            Fault::Disk { node, mode } => {
                let c = self.cluster.lock().await;
                let commands: &[&str] = if mode == "eio-fsync" {
                    &["enable name=posix/io/sync/*,failinfo=5"]
                } else {
                    &[
                        "enable name=posix/io/rw/write,failinfo=28",
                        "enable name=posix/io/rw/pwrite,failinfo=28",
                        "enable name=posix/io/rw/writev,failinfo=28",
                        "enable name=posix/io/rw/pwritev,failinfo=28",
                    ]
                };
                for cmd in commands {
                    c.fiu(*node, cmd)?;
                }
                Ok(json!({"nodes": [node]}))
            }
            Fault::Member { target } => {
                // One node out at a time: finish an earlier removal's rejoin first.
                let out: Vec<usize> = {
                    let c = self.cluster.lock().await;
                    (0..c.nodes.len()).filter(|&k| !c.nodes[k].member).collect()
                };
                for k in out {
                    let id = self.rejoin(k).await.context("rejoining a node still out")?;
                    self.log.log(
                        "event",
                        None,
                        "member",
                        json!({"rejoined_slot": k, "new_id": id}),
                    );
                }
                let nodes = self.resolve(target).await?;
                let (probe, n, id) = {
                    let c = self.cluster.lock().await;
                    let up = voters_up(&c);
                    let voters = up.iter().flatten().count();
                    let down = up.iter().flatten().filter(|&&a| !a).count();
                    // One voter fewer must still leave a majority of the rest up.
                    anyhow::ensure!(
                        down <= voters.saturating_sub(2) / 2,
                        "{down} of {voters} voters down: removing one {MAJORITY_DOWN}"
                    );
                    // The planned slot, or the next one that is still a member.
                    let count = c.nodes.len();
                    let n = (0..count)
                        .map(|k| (nodes[0] + k) % count)
                        .find(|&k| c.nodes[k].member)
                        .context("no member left to remove")?;
                    (c.probe(), n, c.nodes[n].id)
                };
                probe
                    .admin
                    .remove(id)
                    .await
                    .with_context(|| format!("removing node id {id}"))?;
                let drained = self.cluster.lock().await.removed(n);
                if !drained {
                    // The wipe at its rejoin loses what its journal held: the one loss the
                    // audit guarantee allows (a node lost for good), counted by the checker.
                    self.log.log(
                        "event",
                        None,
                        "member",
                        json!({"undrained_slot": n, "removed_id": id}),
                    );
                }
                Ok(json!({"nodes": [n], "removed_id": id, "journal_drained": drained}))
            }
        }
    }

    /// Heals one fault.
    async fn stop(&self, fault: &Fault, state: &Value) -> anyhow::Result<()> {
        let nodes: Vec<usize> = state["nodes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64().map(|x| x as usize))
                    .collect()
            })
            .unwrap_or_default();
        let mut c = self.cluster.lock().await;
        match fault {
            Fault::Partition { .. } => c.network().context("no network")?.heal_partitions()?,
            Fault::Kill { .. } => {
                for n in nodes {
                    if c.nodes[n].member {
                        c.spawn(n)?;
                    }
                }
            }
            Fault::Pause { .. } => {
                for n in nodes {
                    c.pause(n, false);
                }
            }
            Fault::Loss { .. } => {
                let net = c.network().context("no network")?;
                for n in nodes {
                    net.clear_loss(n)?;
                }
            }
            Fault::Clock { .. } => {
                for n in nodes {
                    c.set_clock_offset(n, 0)?;
                }
            }
            Fault::Disk { .. } => {
                for n in nodes {
                    let _ = c.fiu(n, "disable name=posix/io/sync/*");
                    for f in ["write", "pwrite", "writev", "pwritev"] {
                        let _ = c.fiu(n, &format!("disable name=posix/io/rw/{f}"));
                    }
                    // A node whose storage failed stops its Raft core: crash-restart it.
                    c.kill(n);
                    c.spawn(n)?;
                }
            }
            Fault::Member { .. } => {
                drop(c);
                for n in nodes {
                    let id = self.rejoin(n).await?;
                    self.log.log(
                        "event",
                        None,
                        "member",
                        json!({"rejoined_slot": n, "new_id": id}),
                    );
                }
            }
        }
        Ok(())
    }

    /// Wipes slot `i`, starts it under a fresh id, adds it as a learner and promotes it; the
    /// cluster is not held during the membership calls.
    async fn rejoin(&self, i: usize) -> anyhow::Result<u64> {
        let (probe, addr) = {
            let c = self.cluster.lock().await;
            if c.nodes[i].member {
                return Ok(c.nodes[i].id);
            }
            (c.probe(), c.nodes[i].addr.clone())
        };
        // An id left at this address by an earlier, unfinished attempt (a learner that was
        // added but not promoted) must leave the membership first: the new node would
        // otherwise answer the leader's replication meant for the old id.
        let statuses = probe.statuses().await;
        let (_, leader_view) =
            crate::cluster::leader_status(&statuses).context("no leader to rejoin through")?;
        for stale in leader_view.members.iter().filter(|m| m.addr == addr) {
            probe
                .admin
                .remove(stale.node_id)
                .await
                .with_context(|| format!("removing stale id {} at {addr}", stale.node_id))?;
            self.log.log(
                "event",
                None,
                "member",
                json!({"removed_stale_id": stale.node_id, "slot": i}),
            );
        }
        let (id, addr, raft_addr, drained) = self.cluster.lock().await.start_fresh(i)?;
        if !drained {
            self.log.log(
                "event",
                None,
                "member",
                json!({"undrained_slot": i, "replaced_attempt": true}),
            );
        }
        probe.wait_up(&addr, Duration::from_secs(10)).await?;
        probe
            .admin
            .add_learner(AddLearnerRequest {
                node_id: id,
                addr,
                wait_caught_up: true,
                raft_addr,
            })
            .await
            .with_context(|| format!("adding learner {id}"))?;
        probe
            .admin
            .promote(id)
            .await
            .with_context(|| format!("promoting {id}"))?;
        self.cluster.lock().await.nodes[i].member = true;
        Ok(id)
    }

    /// Undoes every fault: network, clocks, disks, stopped and dead processes, membership.
    pub async fn heal_all(&self, kinds: &[Kind]) {
        let mut c = self.cluster.lock().await;
        let mut errors = Vec::new();
        if let Some(net) = c.network() {
            if let Err(e) = net.heal_partitions() {
                errors.push(format!("{e:#}"));
            }
            for i in 0..c.nodes.len() {
                if kinds.contains(&Kind::Loss) {
                    let _ = net.clear_loss(i);
                }
            }
        }
        for i in 0..c.nodes.len() {
            if kinds.contains(&Kind::Clock) {
                let _ = c.set_clock_offset(i, 0);
            }
            c.pause(i, false);
            if !c.running(i)
                && c.nodes[i].member
                && let Err(e) = c.spawn(i)
            {
                errors.push(format!("{e:#}"));
            }
        }
        // Give a leader time to emerge in the healed network, then trust its membership.
        drop(c);
        let _ = self
            .cluster
            .lock()
            .await
            .wait_stable(tokio::time::Instant::now() + Duration::from_secs(20))
            .await;
        let mut c = self.cluster.lock().await;
        let resynced = c.sync_membership().await;
        if !resynced.is_empty() {
            self.log.log(
                "event",
                None,
                "member",
                json!({"membership_resynced_slots": resynced}),
            );
        }
        for i in 0..c.nodes.len() {
            if c.nodes[i].member
                && !c.running(i)
                && let Err(e) = c.spawn(i)
            {
                errors.push(format!("{e:#}"));
            }
        }
        let outside: Vec<usize> = (0..c.nodes.len()).filter(|&i| !c.nodes[i].member).collect();
        drop(c);
        for i in outside {
            // The leader may still be being elected after the other heals: retry a while.
            let mut tries = 0;
            while let Err(e) = self.rejoin(i).await {
                tries += 1;
                if tries >= 5 {
                    errors.push(format!("rejoin {i}: {e:#}"));
                    break;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        self.log
            .log("stop", None, "heal", json!({"errors": errors}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_reproducible_and_do_not_overlap_per_kind() {
        let kinds = [Kind::Partition, Kind::Kill];
        let t = Timing {
            phase_s: 60.0,
            ..Timing::default()
        };
        let a = plan(7, &kinds, 5, t);
        assert_eq!(a, plan(7, &kinds, 5, t));
        assert_ne!(a, plan(8, &kinds, 5, t));
        for k in kinds {
            let mine: Vec<&Planned> = a.iter().filter(|p| p.fault.kind() == k).collect();
            assert!(mine.len() >= 3, "{k:?}: {}", mine.len());
            for w in mine.windows(2) {
                assert!(w[0].start_s + w[0].hold_s <= w[1].start_s);
            }
            assert!(mine.iter().all(|p| p.start_s + p.hold_s <= 60.0));
        }
    }

    fn sees(d: &[Vec<usize>], a: usize, b: usize) -> bool {
        !d[a].contains(&b) && !d[b].contains(&a)
    }

    #[test]
    fn splits() {
        let p = vec![3, 1, 4, 0, 2];
        let d = drops(&Split::Halves(p.clone()), 5, None);
        assert!(sees(&d, 3, 1) && !sees(&d, 3, 4) && sees(&d, 4, 2));
        let d = drops(&Split::LeaderMinority(p.clone()), 5, Some(4));
        assert_eq!(d[4].len(), 3, "leader sees one other: {d:?}");
        let d = drops(&Split::IsolateLeader, 5, Some(2));
        assert_eq!(d[2].len(), 4);
        let d = drops(&Split::Bridge(p.clone()), 5, None);
        // 4 is the bridge: sees everyone; 3 and 0 do not see each other.
        assert!((0..5).all(|x| sees(&d, 4, x)) && !sees(&d, 3, 0));
        let d = drops(&Split::Ring(p), 5, None);
        assert!(sees(&d, 3, 1) && sees(&d, 3, 2) && !sees(&d, 3, 4));
        assert!(d.iter().all(|x| x.len() == 2));
    }

    #[test]
    fn kills_and_pauses_leave_a_majority_of_the_voters_up() {
        // 5 voters, all up: 2 may go down.
        let up = vec![Some(true); 5];
        assert_eq!(within_minority(&[0, 1], &up), (vec![0, 1], vec![]));
        // One already down: one more, the rest capped.
        let up = [Some(true), Some(false), Some(true), Some(true), Some(true)];
        assert_eq!(within_minority(&[2, 3], &up), (vec![2], vec![3]));
        // A voter already down and a non-member cost nothing.
        let up = [Some(true), Some(false), Some(false), None, Some(true)];
        assert_eq!(within_minority(&[1, 3, 4], &up), (vec![1, 3], vec![4]));
        // 4 voters after a removal: only 1 may be down.
        let up = [Some(true), Some(true), None, Some(true), Some(true)];
        assert_eq!(within_minority(&[0, 1], &up), (vec![0], vec![1]));
    }

    #[test]
    fn parses_kinds() {
        assert_eq!(
            parse_kinds("kill,partition,kill").ok(),
            Some(vec![Kind::Partition, Kind::Kill])
        );
        assert_eq!(parse_kinds("none").ok(), Some(vec![]));
        assert_eq!(parse_kinds("all").map(|k| k.len()).ok(), Some(7));
        assert!(parse_kinds("flood").is_err());
    }
}
