//! `auth-cost`: what verifying a token on every call costs. Two 3-node Kartotek clusters run
//! side by side on this machine: one requires tokens (ES256 `at+jwt`, verified on every
//! call by the node's request layer) and its clients send them; the other takes calls
//! without. The same linearizable-lookup load runs against each in turn, alternating which
//! goes first, and the report gives latency percentiles, server CPU per operation and the
//! ratios. Results go to `results/auth-cost.json` under the output directory and to stdout
//! as a Markdown table.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::cli::AuthCostArgs;
use crate::data::Keyspace;
use crate::kartotek::{self, KartotekTarget};
use crate::procfs::{self, BusySampler};
use crate::report;
use crate::results::Percentiles;
use crate::runner::{self, Load, RunSpec};
use crate::setup;
use crate::target::Workload;

/// The results file.
pub const AUTH_COST_JSON: &str = "results/auth-cost.json";

/// One measured run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRun {
    /// Tokens required and sent.
    pub auth: bool,
    /// Lookups in flight.
    pub concurrency: usize,
    /// Repetition.
    pub repetition: u32,
    /// Lookups answered per second.
    pub throughput_per_s: f64,
    /// Latency.
    pub latency: Percentiles,
    /// CPU of the three nodes per lookup, µs.
    pub server_cpu_us_per_op: f64,
    /// Failed or wrong answers.
    pub problems: u64,
    /// Share of all CPUs other work used meanwhile.
    pub other_cpu_fraction: f64,
}

/// What `auth-cost` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthCostResults {
    /// Start (RFC 3339).
    pub started: String,
    /// Command line.
    pub command: String,
    /// Every run.
    pub runs: Vec<AuthRun>,
}

/// Runs `auth-cost`.
pub async fn run(args: AuthCostArgs) -> anyhow::Result<()> {
    let started = chrono::Utc::now();
    let bin = setup::kartotek_bin(args.setup.kartotek_bin.as_deref())?;
    let env = setup::env_pairs(&args.setup.kartotek_env)?;
    let work = setup::work_dir(&args.setup)?;
    let out_dir = setup::out_dir(args.setup.out_dir.as_deref());
    let keyspace = Arc::new(Keyspace::new(args.keys, 1));
    let mut clusters = Vec::new();
    for auth in [true, false] {
        let dir = work
            .path()
            .join(if auth { "with-auth" } else { "without-auth" });
        let cluster = kartotek::Cluster::start_with(&bin, &dir, 3, &env, auth).await?;
        cluster
            .import(
                &keyspace,
                0..keyspace.len(),
                &format!("auth-{auth}"),
                |_| {},
            )
            .await
            .context("preloading")?;
        let target = Arc::new(KartotekTarget::new(&cluster, keyspace.clone(), 1000).await?);
        clusters.push((auth, cluster, target));
    }
    println!(
        "two clusters up (with and without auth), {} keys each",
        keyspace.len()
    );
    let seq = Arc::new(AtomicU64::new(1));
    let mut runs = Vec::new();
    for repetition in 0..args.timing.repetitions {
        for (i, concurrency) in args.concurrency.iter().enumerate() {
            let mut order: Vec<usize> = vec![0, 1];
            if (repetition as usize + i) % 2 == 1 {
                order.reverse();
            }
            for slot in order {
                let (auth, cluster, target) = &clusters[slot];
                let spec = RunSpec {
                    workload: Workload::LinearRead,
                    load: Load::Closed {
                        concurrency: *concurrency,
                    },
                    warmup: Duration::from_secs_f64(args.timing.warmup_s),
                    duration: Duration::from_secs_f64(args.timing.duration_s),
                    keys: keyspace.len(),
                };
                let pids = cluster.pids();
                let all: Vec<u32> = clusters.iter().flat_map(|(_, c, _)| c.pids()).collect();
                let busy = BusySampler::start(all);
                let cpu_before = procfs::cpu_seconds(&pids);
                let out = runner::run(target.clone(), spec, seq.clone()).await;
                let cpu = procfs::cpu_seconds(&pids) - cpu_before;
                let busy = busy.finish();
                let ops = (out.reads_total + out.writes_total).max(1);
                let run = AuthRun {
                    auth: *auth,
                    concurrency: *concurrency,
                    repetition,
                    throughput_per_s: out.ok as f64 / out.elapsed_seconds,
                    latency: Percentiles::of(&out.latency_us),
                    server_cpu_us_per_op: cpu * 1e6 / ops as f64,
                    problems: out.errors + out.wrong,
                    other_cpu_fraction: busy.other_cpu_fraction,
                };
                println!(
                    "auth {:<5} c={:<3} rep {}: {:>7.0} ops/s  p50 {:>7.3} ms  p99 {:>7.3} ms  p99.9 {:>7.3} ms  cpu {:>5.0} µs/op  other-cpu {:>3.0}%{}",
                    run.auth,
                    run.concurrency,
                    run.repetition,
                    run.throughput_per_s,
                    run.latency.p50_us / 1e3,
                    run.latency.p99_us / 1e3,
                    run.latency.p999_us / 1e3,
                    run.server_cpu_us_per_op,
                    run.other_cpu_fraction * 100.0,
                    if run.problems > 0 {
                        format!("  {} failed/wrong", run.problems)
                    } else {
                        String::new()
                    }
                );
                runs.push(run);
            }
        }
    }
    drop(clusters);
    println!("\n{}", table(&runs, &args.concurrency));
    let results = AuthCostResults {
        started: started.to_rfc3339(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        runs,
    };
    let json = report::save_json(&out_dir, AUTH_COST_JSON, &results)?;
    println!("results: {}", json.display());
    setup::finish_work_dir(work, args.setup.keep_data);
    Ok(())
}

/// The median over repetitions of `f` for the runs of (`auth`, `concurrency`).
fn median(runs: &[AuthRun], auth: bool, concurrency: usize, f: impl Fn(&AuthRun) -> f64) -> f64 {
    let mut v: Vec<f64> = runs
        .iter()
        .filter(|r| r.auth == auth && r.concurrency == concurrency)
        .map(f)
        .collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A Markdown table: per concurrency, medians with and without auth and their ratio.
fn table(runs: &[AuthRun], concurrency: &[usize]) -> String {
    let mut t =
        String::from("| c | metric | with auth | without | ratio |\n|---|---|---:|---:|---:|\n");
    type Metric = (&'static str, fn(&AuthRun) -> f64, f64);
    let metrics: [Metric; 5] = [
        ("ops/s", |r| r.throughput_per_s, 1.0),
        ("p50 ms", |r| r.latency.p50_us, 1e-3),
        ("p99 ms", |r| r.latency.p99_us, 1e-3),
        ("p99.9 ms", |r| r.latency.p999_us, 1e-3),
        ("CPU µs/op", |r| r.server_cpu_us_per_op, 1.0),
    ];
    for c in concurrency {
        for (name, f, scale) in &metrics {
            let with = median(runs, true, *c, f) * scale;
            let without = median(runs, false, *c, f) * scale;
            t.push_str(&format!(
                "| {c} | {name} | {with:.3} | {without:.3} | {:.2} |\n",
                with / without
            ));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(auth: bool, p50_us: f64) -> AuthRun {
        AuthRun {
            auth,
            concurrency: 1,
            repetition: 0,
            throughput_per_s: 100.0,
            latency: Percentiles {
                p50_us,
                ..Percentiles::default()
            },
            server_cpu_us_per_op: 10.0,
            problems: 0,
            other_cpu_fraction: 0.0,
        }
    }

    #[test]
    fn the_table_shows_medians_and_ratios() {
        let runs = vec![
            run(true, 2000.0),
            run(true, 3000.0),
            run(true, 9000.0),
            run(false, 1500.0),
        ];
        let t = table(&runs, &[1]);
        assert!(t.contains("| 1 | p50 ms | 3.000 | 1.500 | 2.00 |"), "{t}");
    }
}
