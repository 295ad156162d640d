//! The load generator: closed loop (N workers, each waits for its answer) or open loop (a
//! target rate; latency counted from the *intended* start, so a stalled server cannot hide
//! its queue: no coordinated omission). Latencies go into an HdrHistogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::target::{OpKind, Outcome, Target, Workload};

/// Highest latency the histograms track, microseconds (longer ones are clamped).
const LATENCY_US_MAX: u64 = 120_000_000;

/// How load is offered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Load {
    /// `concurrency` requests in flight at all times.
    Closed {
        /// Requests in flight.
        concurrency: usize,
    },
    /// Requests started at `rate` per second, at most `in_flight_max` in flight.
    Open {
        /// Target rate, requests per second.
        rate: f64,
        /// Cap on requests in flight.
        in_flight_max: usize,
    },
}

impl Load {
    /// The x value of plots: concurrency or rate.
    pub fn x(&self) -> f64 {
        match self {
            Load::Closed { concurrency } => *concurrency as f64,
            Load::Open { rate, .. } => *rate,
        }
    }

    /// Label in tables.
    pub fn label(&self) -> String {
        match self {
            Load::Closed { concurrency } => format!("{concurrency}"),
            Load::Open { rate, .. } => format!("{rate:.0}/s"),
        }
    }
}

/// One timed run.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec {
    /// The workload.
    pub workload: Workload,
    /// How load is offered.
    pub load: Load,
    /// Load before measuring starts.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// Keys to draw from (uniformly).
    pub keys: usize,
}

/// What one run measured.
#[derive(Debug)]
pub struct RunOutcome {
    /// Latencies of the measured, correct answers, microseconds.
    pub latency_us: Histogram<u64>,
    /// Correct answers.
    pub ok: u64,
    /// Failed requests.
    pub errors: u64,
    /// Wrong answers.
    pub wrong: u64,
    /// First failure or wrong answer seen, if any.
    pub first_problem: Option<String>,
    /// Writes answered correctly, warm-up included (to relate to server counters).
    pub writes_total: u64,
    /// Reads answered correctly, warm-up included.
    pub reads_total: u64,
    /// Measured wall time, seconds.
    pub elapsed_seconds: f64,
}

/// A new latency histogram.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!("3 sigfig is valid")))
}

#[derive(Debug)]
struct Tally {
    hist: Histogram<u64>,
    writes_total: u64,
    reads_total: u64,
    ok: u64,
    errors: u64,
    wrong: u64,
    first_problem: Option<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            hist: histogram(),
            writes_total: 0,
            reads_total: 0,
            ok: 0,
            errors: 0,
            wrong: 0,
            first_problem: None,
        }
    }

    fn count(&mut self, op: OpKind, outcome: &Outcome) {
        if *outcome == Outcome::Ok {
            if op == OpKind::Write {
                self.writes_total += 1;
            } else {
                self.reads_total += 1;
            }
        }
    }

    fn record(&mut self, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Ok => {
                self.ok += 1;
                let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.hist.saturating_record(us.clamp(1, LATENCY_US_MAX));
            }
            Outcome::Error(e) => {
                self.errors += 1;
                self.first_problem.get_or_insert(e);
            }
            Outcome::Wrong(e) => {
                self.wrong += 1;
                self.first_problem.get_or_insert(e);
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.hist.add(&other.hist);
        self.writes_total += other.writes_total;
        self.reads_total += other.reads_total;
        self.ok += other.ok;
        self.errors += other.errors;
        self.wrong += other.wrong;
        if self.first_problem.is_none() {
            self.first_problem = other.first_problem;
        }
    }
}

/// Runs `spec` against `target`; `seq` numbers written versions across runs.
pub async fn run<T: Target>(target: Arc<T>, spec: RunSpec, seq: Arc<AtomicU64>) -> RunOutcome {
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let keys = spec.keys.max(1);
    let tally = match spec.load {
        Load::Closed { concurrency } => {
            let mut tasks = tokio::task::JoinSet::new();
            for worker in 0..concurrency.max(1) {
                let target = target.clone();
                let seq = seq.clone();
                tasks.spawn(async move {
                    let mut rng = StdRng::seed_from_u64(worker as u64 ^ 0x6b61_7274);
                    let mut tally = Tally::new();
                    loop {
                        let t = Instant::now();
                        if t >= end {
                            break;
                        }
                        let op = spec.workload.op(rng.gen_range(0..100));
                        let key = rng.gen_range(0..keys);
                        let s = seq.fetch_add(1, Ordering::Relaxed);
                        let outcome = target.call(op, worker, key, s).await;
                        tally.count(op, &outcome);
                        if t >= measure_from {
                            tally.record(outcome, t.elapsed());
                        }
                    }
                    tally
                });
            }
            let mut all = Tally::new();
            while let Some(t) = tasks.join_next().await {
                if let Ok(t) = t {
                    all.merge(t);
                }
            }
            all
        }
        Load::Open {
            rate,
            in_flight_max,
        } => {
            let shared = Arc::new(Mutex::new(Tally::new()));
            let permits = Arc::new(tokio::sync::Semaphore::new(in_flight_max.max(1)));
            let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let mut rng = StdRng::seed_from_u64(0x6f70_656e);
            let mut tasks = tokio::task::JoinSet::new();
            let mut k: u32 = 0;
            loop {
                let intended = start + interval * k;
                if intended >= end {
                    break;
                }
                tokio::time::sleep_until(intended).await;
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let op = spec.workload.op(rng.gen_range(0..100));
                let key = rng.gen_range(0..keys);
                let s = seq.fetch_add(1, Ordering::Relaxed);
                let (target, shared) = (target.clone(), shared.clone());
                let worker = k as usize;
                tasks.spawn(async move {
                    let outcome = target.call(op, worker, key, s).await;
                    drop(permit);
                    if let Ok(mut t) = shared.lock() {
                        t.count(op, &outcome);
                        if intended >= measure_from {
                            t.record(outcome, intended.elapsed());
                        }
                    }
                });
                k = k.saturating_add(1);
                // Reap finished tasks so the set does not grow without bound.
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
            let mut all = Tally::new();
            if let Ok(mut t) = shared.lock() {
                all.merge(std::mem::replace(&mut *t, Tally::new()));
            }
            all
        }
    };
    let elapsed_seconds = measure_from.elapsed().as_secs_f64().max(1e-6);
    RunOutcome {
        latency_us: tally.hist,
        ok: tally.ok,
        errors: tally.errors,
        wrong: tally.wrong,
        first_problem: tally.first_problem,
        writes_total: tally.writes_total,
        reads_total: tally.reads_total,
        elapsed_seconds,
    }
}
