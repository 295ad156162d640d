//! A quick, indicative load run against a running cluster (e.g. `kartotek dev`): concurrent
//! locator registers, then concurrent linearizable (audited) lookups, then access decisions,
//! through the Rust client.
//! Not the benchmark (that is `bench/`); no comparison, no warm-up discipline.
//!
//! `cargo run --example quickload -- [endpoints] [concurrency] [seconds]`

use std::time::{Duration, Instant};

use kartotek_client::{ClientConfig, KartotekClient};
use kartotek_domain::ids::NationalIdKind;
use kartotek_domain::ids::testing::{national_id_from_parts, org_number_from_prefix};
use kartotek_proto::v1::{AccessDecisionRequest, LookupLocatorRequest, RegisterLocatorRequest};

fn patients(n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut day = 0u64;
    while out.len() < n {
        let date = chrono::NaiveDate::from_ymd_opt(1950, 1, 1)
            .and_then(|d| d.checked_add_days(chrono::Days::new(day)))
            .unwrap_or_default();
        for i in 0..400u16 {
            if let Some(p) = national_id_from_parts(date, i, NationalIdKind::Ordinary) {
                out.push(p.as_str().to_owned());
            }
        }
        day += 1;
    }
    out.truncate(n);
    out
}

fn report(what: &str, mut lat: Vec<Duration>, elapsed: Duration) {
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{what}: {} ops in {:.1} s = {:.0} ops/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let endpoints = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:7401,127.0.0.1:7402,127.0.0.1:7403".into());
    let concurrency: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let client = KartotekClient::new(ClientConfig {
        endpoints: endpoints.split(',').map(str::to_owned).collect(),
        ..ClientConfig::default()
    })?;
    let org = (10_000_000..10_000_100u32)
        .find_map(org_number_from_prefix)
        .map(|o| o.as_str().to_owned())
        .unwrap_or_default();
    let pats = patients(concurrency * 50);
    for phase in ["write", "read", "decide"] {
        let started = Instant::now();
        let until = started + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for w in 0..concurrency {
            let client = client.clone();
            let pats = pats[w * 50..(w + 1) * 50].to_vec();
            let org = org.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0usize;
                while Instant::now() < until {
                    let p = &pats[i % pats.len()];
                    let t = Instant::now();
                    let ok = if phase == "write" {
                        client
                            .register_locator(RegisterLocatorRequest {
                                patient: p.clone(),
                                org: org.clone(),
                                system: format!("sys-{}", i % 7),
                                categories: vec!["Observation".into()],
                                ..Default::default()
                            })
                            .await
                            .is_ok()
                    } else if phase == "read" {
                        client
                            .lookup_locator(LookupLocatorRequest {
                                patient: p.clone(),
                                ..Default::default()
                            })
                            .await
                            .is_ok()
                    } else {
                        client
                            .decide_access(AccessDecisionRequest {
                                patient: p.clone(),
                                personnel: "1234567".into(),
                                org: org.clone(),
                                service: "dips-arena".into(),
                                purpose: "treatment".into(),
                                ..Default::default()
                            })
                            .await
                            .is_ok()
                    };
                    if ok {
                        lat.push(t.elapsed());
                    }
                    i += 1;
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await?);
        }
        report(phase, all, started.elapsed());
    }
    Ok(())
}
