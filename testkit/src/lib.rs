//! One cluster bootstrap for the node tests (`node/tests/common`), the fault-injection harness
//! (`jepsen/src/cluster.rs`) and the benchmark (`bench/src/kartotek.rs`): real `kartotek node`
//! processes, each with its own config file, data dir and log, driven through
//! `kartotek-client`.
//!
//! Module map:
//! - [`config`]: [`NodeSpec`] / [`RaftSpec`], a node as a harness sets it, rendered to the
//!   node's TOML (key names of `node/src/config.rs`; `node/tests/it/testkit_config.rs` checks
//!   them against `NodeConfig`).
//! - [`process`]: [`Process`], one server process: [`Launch`] plus an optional [`Wrapper`]
//!   (jepsen's `ip netns exec`), log file, kill -9, SIGSTOP / SIGCONT, SIGTERM stop, restart
//!   on the same data dir, reap, log tail; dies with the harness (`PR_SET_PDEATHSIG`).
//! - [`cluster`]: [`Cluster`], nodes on kernel-chosen loopback ports (or caller-chosen
//!   addresses): start, wait until up, `admin init`, wait for an agreed leader, statuses,
//!   clients; prints the nodes' log tails when dropped during a panic.
//! - [`status`]: polling every node's status at once, the leader claim of the highest term,
//!   leader agreement among the voters.
//! - [`auth`]: [`TestIssuer`], a token issuer the nodes trust and the harness's clients sign
//!   with (`ClusterOptions::with_auth`).
//! - [`free_port`]: a free loopback port below the ephemeral range.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod process;
pub mod status;
pub mod tls;

pub use auth::TestIssuer;
pub use cluster::{Cluster, ClusterOptions, Node};
pub use config::{NodeSpec, RaftProfile, RaftSpec};
pub use process::{Launch, Process, Wrapper};
pub use tls::{TestPki, TlsFiles};

/// A free loopback port (bound, then released: another harness may take it in between, which
/// is rare with the scheme below and good enough for harnesses on one machine).
pub fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    // Below Linux's ephemeral range (32768-60999 by default), so an outgoing connection of
    // some process cannot take the port between this check and the node's bind, as a port
    // the kernel hands out for `:0` can; each process starts at its own offset and never
    // hands out a port twice.
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7_919) % COUNT,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % COUNT;
        let port = u16::try_from(FIRST + n)?;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port in {FIRST}..{}", FIRST + COUNT)
}
