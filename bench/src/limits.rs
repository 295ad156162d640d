//! Physical limits of this machine that bound both systems: how long an fsync of the data
//! disk takes (every acknowledged write waits for at least one on a majority) and the
//! loopback round trip (every replicated write needs at least one).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::runner::histogram;

/// Bytes written before each fsync (about one small Raft append).
const FSYNC_WRITE_BYTES: usize = 4096;

/// Latency summary of a repeated operation, microseconds.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Timing {
    /// Repetitions.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Max.
    pub max_us: f64,
}

impl Timing {
    /// Operations per second one after the other (1 / mean).
    pub fn serial_rate_per_s(&self) -> f64 {
        if self.mean_us > 0.0 {
            1e6 / self.mean_us
        } else {
            0.0
        }
    }

    /// Operations per second at the median latency (1 / p50): what an undisturbed disk
    /// sustains, outliers (other processes' I/O) left out.
    pub fn median_rate_per_s(&self) -> f64 {
        if self.p50_us > 0.0 {
            1e6 / self.p50_us
        } else {
            0.0
        }
    }
}

fn timing(mut f: impl FnMut() -> anyhow::Result<()>, duration: Duration) -> anyhow::Result<Timing> {
    let mut h = histogram();
    let until = Instant::now() + duration;
    while Instant::now() < until {
        let t = Instant::now();
        f()?;
        let us = u64::try_from(t.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        h.saturating_record(us);
    }
    Ok(Timing {
        count: h.len(),
        p50_us: h.value_at_quantile(0.5) as f64,
        p99_us: h.value_at_quantile(0.99) as f64,
        mean_us: h.mean(),
        max_us: h.max() as f64,
    })
}

/// Appends [`FSYNC_WRITE_BYTES`] and calls `fdatasync` in a loop for `duration`, on a file in
/// `dir` (which must be on the data disk).
pub fn fsync_latency(dir: &Path, duration: Duration) -> anyhow::Result<Timing> {
    let path = dir.join("fsync-probe.bin");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let block = vec![0x5au8; FSYNC_WRITE_BYTES];
    let result = timing(
        || {
            file.write_all(&block)?;
            file.sync_data()?;
            Ok(())
        },
        duration,
    );
    let _ = std::fs::remove_file(&path);
    result
}

/// One-byte TCP ping-pong over loopback (Nagle off) for `duration`.
pub fn loopback_rtt(duration: Duration) -> anyhow::Result<Timing> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut b = [0u8; 1];
        while s.read(&mut b)? == 1 {
            s.write_all(&b)?;
        }
        Ok(())
    });
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    let mut b = [7u8; 1];
    let t = timing(
        || {
            c.write_all(&b)?;
            c.read_exact(&mut b)?;
            Ok(())
        },
        duration,
    );
    drop(c);
    let _ = echo.join();
    t
}

/// Runs `limits`: prints both measurements.
pub async fn run(args: crate::cli::LimitsArgs) -> anyhow::Result<()> {
    let dir = args.data_dir.unwrap_or_else(std::env::temp_dir);
    let d = Duration::from_secs_f64(args.seconds);
    let (f, r) = tokio::task::spawn_blocking(move || -> anyhow::Result<(Timing, Timing)> {
        Ok((fsync_latency(&dir, d)?, loopback_rtt(d)?))
    })
    .await??;
    println!(
        "fsync (4 KiB + fdatasync): {} times, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs, {:.0}/s serial",
        f.count,
        f.p50_us,
        f.p99_us,
        f.max_us,
        f.serial_rate_per_s()
    );
    println!(
        "loopback RTT: {} times, p50 {:.0} µs, p99 {:.0} µs",
        r.count, r.p50_us, r.p99_us
    );
    Ok(())
}
