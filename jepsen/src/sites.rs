//! The tools of `deploy/multi-site/run.sh`, which runs a three-site cluster on one machine:
//!
//! - [`delay_proxy`] (`kartotek-jepsen delay-proxy`): a TCP proxy that holds every chunk it
//!   forwards, in both directions, for a fixed one-way delay, so a connection through it has
//!   a round trip of twice that. The kernel here has no `sch_netem`, so this is how the
//!   script puts 10–30 ms between sites: each node's Raft listener sits behind one, with its
//!   site's delay. Per direction at most [`PROXY_QUEUE_CHUNKS_MAX`] chunks of at most
//!   [`PROXY_CHUNK_BYTES_MAX`] wait; a full queue stops reading (TCP back-pressure).
//! - [`probe`] (`kartotek-jepsen site-probe`): sequential writes or reads (linearizable or
//!   bounded-staleness) against chosen endpoints, printing p50 / p99 / max latency and the
//!   failures; with `--seconds` it runs for a time, which measures a failover as the longest
//!   write while a site is cut off.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use kartotek_client::proto::{
    Consistency, LookupLocatorRequest, ReadOptions, RegisterLocatorRequest,
};
use kartotek_client::{ClientConfig, KartotekClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Largest chunk read and forwarded at once, bytes.
pub const PROXY_CHUNK_BYTES_MAX: usize = 64 * 1024;
/// Most chunks waiting out their delay, per direction of one connection.
pub const PROXY_QUEUE_CHUNKS_MAX: usize = 256;
/// Most connections through one proxy at a time.
pub const PROXY_CONNECTIONS_MAX: usize = 256;

/// Forwards every connection to `listen` to `to`, each chunk held `delay` in each
/// direction. Runs until the process ends.
pub async fn delay_proxy(
    listen: SocketAddr,
    to: SocketAddr,
    delay: Duration,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(PROXY_CONNECTIONS_MAX));
    eprintln!(
        "delay-proxy {listen} -> {to}: {} ms each way",
        delay.as_millis()
    );
    loop {
        let (inbound, _) = listener.accept().await?;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // dropped: too many connections
        };
        tokio::spawn(async move {
            let _slot = slot;
            let Ok(outbound) = TcpStream::connect(to).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            tokio::join!(pipe(ri, wo, delay), pipe(ro, wi, delay));
        });
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(PROXY_QUEUE_CHUNKS_MAX);
    let reader = async move {
        let mut buf = vec![0u8; PROXY_CHUNK_BYTES_MAX];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((read_at, chunk)) = rx.recv().await {
            tokio::time::sleep_until((read_at + delay).into()).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// What [`probe`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeMode {
    /// Locator registrations (committed on a majority).
    Write,
    /// Linearizable lookups (a read-index round through the leader).
    Linearizable,
    /// Bounded-staleness lookups (answered by the node itself within `--staleness-ms`).
    Bounded,
}

/// Runs `mode` sequentially against `endpoints` (the first preferred): `requests` of them,
/// or for `seconds`; prints the latencies.
pub async fn probe(
    endpoints: Vec<String>,
    mode: ProbeMode,
    requests: u32,
    seconds: Option<u64>,
    staleness_ms: u64,
) -> anyhow::Result<()> {
    let client = KartotekClient::new(ClientConfig {
        endpoints,
        ..ClientConfig::default()
    })?;
    let patient = "15076500565";
    let org = "974760673";
    let register = |n: u64| RegisterLocatorRequest {
        request_id: format!("site-probe-{}-{n}", std::process::id()),
        patient: patient.into(),
        org: org.into(),
        system: format!("site-probe-{}", n % 50),
        categories: vec!["Observation".into()],
        endpoint_ref: "fhir-api-1".into(),
        expected_mod_revision: None,
    };
    // The patient has an entry to read.
    client.register_locator(register(0)).await?;
    let until = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let mut latencies_us: Vec<u64> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut n = 0u64;
    loop {
        n += 1;
        let done = match until {
            Some(t) => Instant::now() >= t,
            None => n > u64::from(requests),
        };
        if done {
            break;
        }
        let started = Instant::now();
        let result = match mode {
            ProbeMode::Write => client.register_locator(register(n)).await.map(|_| ()),
            ProbeMode::Linearizable | ProbeMode::Bounded => {
                let read = (mode == ProbeMode::Bounded).then_some(ReadOptions {
                    consistency: Consistency::BoundedStaleness as i32,
                    max_staleness_ms: staleness_ms,
                });
                client
                    .lookup_locator(LookupLocatorRequest {
                        patient: patient.into(),
                        read,
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
            }
        };
        latencies_us.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        if let Err(e) = result {
            failures.push(e.to_string());
        }
    }
    latencies_us.sort_unstable();
    let pct = |q: f64| {
        latencies_us
            .get(((latencies_us.len().saturating_sub(1)) as f64 * q) as usize)
            .map_or(0.0, |v| *v as f64 / 1000.0)
    };
    println!(
        "{mode:?}: {} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} failed",
        latencies_us.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
        failures.len()
    );
    for f in failures.iter().take(5) {
        println!("  failed: {f}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proxy adds at least its delay each way (asserted from below only: a loaded
    /// machine may add more, never less).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_proxy_holds_each_direction_for_its_delay() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        tokio::spawn(delay_proxy(listen, echo_addr, Duration::from_millis(25)));
        let mut s = loop {
            if let Ok(s) = TcpStream::connect(listen).await {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        for round in 0..3 {
            let started = Instant::now();
            s.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
            let rtt = started.elapsed();
            assert!(rtt >= Duration::from_millis(50), "round {round}: {rtt:?}");
        }
    }
}
