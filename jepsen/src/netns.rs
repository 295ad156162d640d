//! The test network: one network namespace per node, wired to a bridge in a namespace of its
//! own, plus one veth from the harness's (root) namespace to that bridge.
//!
//! ```text
//!   root ns: kj<S>h 10.213.<S>.1 ──veth── [kj<S>br: br0] ──veth── kj<S>n0: eth0 10.213.<S>.129
//!                                                       ├──veth── kj<S>n1: eth0 10.213.<S>.130
//!                                                       └── ...
//! ```
//!
//! `S` is a slot (0–63) claimed by creating the bridge namespace, so several runs can coexist.
//! The 10.213.S.0/24 addresses exist only on these links: nothing leaves the machine. The
//! harness reaches every node through its own veth; node-to-node traffic crosses the bridge,
//! which is where faults go:
//! - partitions: `iptables` drops (chain `kj-part` on INPUT) of packets from the other nodes'
//!   addresses, in the node namespaces (the harness is never cut off);
//! - packet loss: `iptables -m statistic --mode random` drops (chain `kj-loss` on INPUT).
//!   (`tc netem` would also do; this machine's kernel has no `sch_netem`, iptables always
//!   works where namespaces do.)
//!
//! [`Network`] removes everything it created when dropped; [`cleanup_all`] removes leftovers of
//! runs that were killed (every name starts with `kj` and a slot number).

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Port every node listens on inside its namespace.
pub const NODE_PORT: u16 = 7401;
/// Longest a network or fault-injection command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);
/// Highest slot number tried.
const SLOTS: u8 = 64;
/// iptables chain (in each node namespace) holding the partition rules.
const PART_CHAIN: &str = "kj-part";
/// iptables chain holding the packet-loss rule.
const LOSS_CHAIN: &str = "kj-loss";
/// Most nodes a network holds (addresses .129 to .254).
pub const NODES_MAX: usize = 100;

/// Runs a command; fails with its stderr when it exits non-zero.
pub fn run(args: &[&str]) -> anyhow::Result<()> {
    run_input(args, None)
}

/// Runs a command with `input` on stdin; kills it after [`COMMAND_TIMEOUT`] (a command that
/// hangs, e.g. `fiu-ctrl` writing to the fifo of a dead node, must not hang the harness).
pub fn run_input(args: &[&str], input: Option<&str>) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let (program, rest) = args.split_first().context("empty command")?;
    let mut child = Command::new(program)
        .args(rest)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes())?;
    }
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{}` timed out after {COMMAND_TIMEOUT:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        bail!("`{}` failed: {}", args.join(" "), err.trim());
    }
    Ok(())
}

/// Stdout of a command.
fn output(args: &[&str]) -> anyhow::Result<String> {
    let (program, rest) = args.split_first().context("empty command")?;
    let out = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {program}"))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network of node namespaces around a bridge.
#[derive(Debug)]
pub struct Network {
    slot: u8,
    nodes: usize,
    torn_down: bool,
}

impl Network {
    /// Claims a free slot and builds the network for `nodes` nodes.
    pub fn create(nodes: usize) -> anyhow::Result<Network> {
        if nodes == 0 || nodes > NODES_MAX {
            bail!("nodes must be 1 to {NODES_MAX}");
        }
        let mut last_err = None;
        for slot in 0..SLOTS {
            match run(&["ip", "netns", "add", &bridge_ns(slot)]) {
                Ok(()) => {
                    let _ = std::fs::write(owner_file(slot), std::process::id().to_string());
                    let mut net = Network {
                        slot,
                        nodes,
                        torn_down: false,
                    };
                    // On failure, Drop removes what was built.
                    net.build().context("building the test network")?;
                    return Ok(net);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err
            .unwrap_or_else(|| anyhow::anyhow!("no slot"))
            .context("no free network slot (run `kartotek-jepsen cleanup`?)"))
    }

    fn build(&mut self) -> anyhow::Result<()> {
        let br = bridge_ns(self.slot);
        let host = host_link(self.slot);
        run(&["ip", "-n", &br, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", &br, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &br, "link", "set", "br0", "up"])?;
        run(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", "hb", "netns", &br,
        ])?;
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", self.host_ip()),
            "dev",
            &host,
        ])?;
        run(&["ip", "link", "set", &host, "up"])?;
        run(&["ip", "-n", &br, "link", "set", "hb", "master", "br0"])?;
        run(&["ip", "-n", &br, "link", "set", "hb", "up"])?;
        for i in 0..self.nodes {
            let ns = self.node_ns(i);
            let v = format!("v{i}");
            run(&["ip", "netns", "add", &ns])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            run(&[
                "ip", "-n", &br, "link", "add", &v, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ])?;
            run(&["ip", "-n", &br, "link", "set", &v, "master", "br0"])?;
            run(&["ip", "-n", &br, "link", "set", &v, "up"])?;
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", self.node_ip(i)),
                "dev",
                "eth0",
            ])?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            self.restore(
                i,
                &format!(
                    "*filter\n:{PART_CHAIN} - [0:0]\n:{LOSS_CHAIN} - [0:0]\n\
                     -A INPUT -j {PART_CHAIN}\n-A INPUT -j {LOSS_CHAIN}\nCOMMIT\n"
                ),
            )?;
        }
        Ok(())
    }

    /// The slot this network occupies.
    pub fn slot(&self) -> u8 {
        self.slot
    }

    /// Namespace of node `i` (0-based).
    pub fn node_ns(&self, i: usize) -> String {
        format!("kj{}n{i}", self.slot)
    }

    /// Address of node `i`.
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.slot, 129 + i as u8)
    }

    /// Address of the harness's end.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.slot, 1)
    }

    /// Command prefix that runs a program inside node `i`'s namespace.
    pub fn exec_prefix(&self, i: usize) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.node_ns(i)]
    }

    /// Replaces all partitions: node `i` drops every packet from the nodes in `drops[i]`.
    pub fn partition(&self, drops: &[Vec<usize>]) -> anyhow::Result<()> {
        for i in 0..self.nodes {
            let mut rules = format!("*filter\n-F {PART_CHAIN}\n");
            for &j in drops.get(i).map(Vec::as_slice).unwrap_or(&[]) {
                if j != i && j < self.nodes {
                    rules.push_str(&format!("-A {PART_CHAIN} -s {} -j DROP\n", self.node_ip(j)));
                }
            }
            rules.push_str("COMMIT\n");
            self.restore(i, &rules)?;
        }
        Ok(())
    }

    /// Removes every partition.
    pub fn heal_partitions(&self) -> anyhow::Result<()> {
        self.partition(&[])
    }

    /// Drops `loss_pct` % of the packets node `i` receives (iptables `statistic` match).
    pub fn set_loss(&self, i: usize, loss_pct: u32) -> anyhow::Result<()> {
        let p = format!("{:.2}", f64::from(loss_pct.min(100)) / 100.0);
        let rules = format!(
            "*filter\n-F {LOSS_CHAIN}\n-A {LOSS_CHAIN} -m statistic --mode random --probability {p} -j DROP\nCOMMIT\n"
        );
        self.restore(i, &rules)
    }

    /// Removes packet loss from node `i`.
    pub fn clear_loss(&self, i: usize) -> anyhow::Result<()> {
        self.restore(i, &format!("*filter\n-F {LOSS_CHAIN}\nCOMMIT\n"))
    }

    /// Applies `rules` in node `i`'s namespace without touching other chains.
    fn restore(&self, i: usize, rules: &str) -> anyhow::Result<()> {
        run_input(
            &[
                "ip",
                "netns",
                "exec",
                &self.node_ns(i),
                "iptables-restore",
                "-w",
                "--noflush",
            ],
            Some(rules),
        )
    }

    /// Kills whatever still runs in the namespaces and deletes them.
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        for i in 0..self.nodes {
            remove_ns(&self.node_ns(i));
        }
        remove_ns(&bridge_ns(self.slot));
        let _ = run(&["ip", "link", "del", &host_link(self.slot)]);
        let _ = std::fs::remove_file(owner_file(self.slot));
    }
}

/// Removes the namespaces and link of `slot` (for a network whose owner is unreachable).
pub fn teardown_slot(slot: u8, nodes: usize) {
    Network {
        slot,
        nodes,
        torn_down: false,
    }
    .teardown();
}

impl Drop for Network {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// File naming the pid of the harness that owns `slot`.
fn owner_file(slot: u8) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("kartotek-jepsen-slot-{slot}.pid"))
}

/// The pid of the live harness owning `slot`, if any.
fn live_owner(slot: u8) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(owner_file(slot))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let is_harness = cmdline.split(|b| *b == 0).next().is_some_and(|argv0| {
        argv0.ends_with(b"kartotek-jepsen") || argv0.windows(6).any(|w| w == b"smoke-")
    });
    (is_harness && pid != std::process::id() as i32).then_some(pid)
}

/// The slot number in a harness name (`kj12n3` -> 12).
fn slot_of(name: &str) -> Option<u8> {
    let rest = name.strip_prefix("kj")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn bridge_ns(slot: u8) -> String {
    format!("kj{slot}br")
}

fn host_link(slot: u8) -> String {
    format!("kj{slot}h")
}

/// SIGKILLs the processes in namespace `ns` and deletes it.
fn remove_ns(ns: &str) {
    if let Ok(pids) = output(&["ip", "netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _ = run(&["ip", "netns", "del", ns]);
}

/// True for names this harness creates: `kj<digits>` followed by `br`, `h` or `n<digits>`.
pub fn is_harness_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("kj") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let tail = &rest[digits..];
    tail == "br"
        || tail == "h"
        || tail
            .strip_prefix('n')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes every namespace and link a harness run left behind; returns what it removed.
/// Slots of a harness that is still running are kept unless `force`.
pub fn cleanup_all(force: bool) -> Vec<String> {
    let mut removed = Vec::new();
    let in_use = |name: &str| !force && slot_of(name).and_then(live_owner).is_some();
    if let Ok(list) = output(&["ip", "netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if is_harness_name(name) && in_use(name) {
                removed.push(format!("nothing: {name} belongs to a running harness"));
                continue;
            }
            if is_harness_name(name) {
                remove_ns(name);
                removed.push(format!("netns {name}"));
            }
        }
    }
    if let Ok(links) = output(&["ip", "-o", "link", "show"]) {
        for line in links.lines() {
            // "7: kj0h@if6: <...>"
            let Some(name) = line.split(':').nth(1).map(str::trim) else {
                continue;
            };
            let name = name.split('@').next().unwrap_or(name);
            if is_harness_name(name) && !in_use(name) && run(&["ip", "link", "del", name]).is_ok() {
                removed.push(format!("link {name}"));
            }
        }
    }
    removed
}

/// Computes, for a partition into `components`, which nodes each node drops.
pub fn drops_for(components: &[Vec<usize>], nodes: usize) -> Vec<Vec<usize>> {
    let mut comp_of = vec![usize::MAX; nodes];
    for (c, members) in components.iter().enumerate() {
        for &m in members {
            if m < nodes {
                comp_of[m] = c;
            }
        }
    }
    (0..nodes)
        .map(|i| {
            (0..nodes)
                .filter(|&j| j != i && comp_of[j] != comp_of[i])
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_harness_names() {
        for ok in ["kj0br", "kj12h", "kj3n0", "kj63n14"] {
            assert!(is_harness_name(ok), "{ok}");
        }
        for bad in [
            "kj", "kjbr", "kj1", "kj1x", "kj1n", "eth0", "kj1n2a", "docker0",
        ] {
            assert!(!is_harness_name(bad), "{bad}");
        }
    }

    #[test]
    fn drops_cross_component_traffic() {
        let d = drops_for(&[vec![0, 1], vec![2, 3, 4]], 5);
        assert_eq!(d[0], vec![2, 3, 4]);
        assert_eq!(d[4], vec![0, 1]);
    }
}
