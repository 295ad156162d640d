//! What `/proc` says about the servers and the machine: CPU time and memory of processes,
//! how busy the machine is with other work, and a description of the hardware.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Clock ticks per second of `/proc` CPU times.
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Number of online CPUs.
pub fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// User + system CPU time of process `pid`, in seconds (0 when it is gone).
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start at ")".
    let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (get(11) + get(12)) as f64 / ticks_per_second()
}

/// Bytes process `pid` has caused to be written to storage so far (`write_bytes` of
/// `/proc/<pid>/io`: page-cache writeback it dirtied and direct I/O; `None` when unreadable).
pub fn write_bytes(pid: u32) -> Option<u64> {
    parse_write_bytes(&std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?)
}

/// The `write_bytes` field of a `/proc/<pid>/io` text.
fn parse_write_bytes(io: &str) -> Option<u64> {
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Total [`write_bytes`] of `pids`; `None` when any is unreadable.
pub fn write_bytes_sum(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|p| write_bytes(*p)).sum()
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`) in bytes.
pub fn status_bytes(pid: u32, field: &str) -> u64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Resident set size of `pid` now, bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS")
}

/// Peak resident set size of `pid` over its life, bytes.
pub fn peak_rss_bytes(pid: u32) -> u64 {
    status_bytes(pid, "VmHWM")
}

/// CPU time of the whole machine (all CPUs), in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    /// Time in processes: user, nice and system.
    pub process_seconds: f64,
    /// Time in interrupts and soft interrupts (loopback networking, block I/O completion).
    pub irq_seconds: f64,
    /// All time.
    pub total_seconds: f64,
}

/// The machine's CPU counters from the first line of `/proc/stat`.
pub fn machine_cpu() -> MachineCpu {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return MachineCpu::default();
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let f = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest is counted in user).
    let total: u64 = v.iter().take(8).sum();
    let hz = ticks_per_second();
    MachineCpu {
        process_seconds: (f(0) + f(1) + f(2)) as f64 / hz,
        irq_seconds: (f(5) + f(6)) as f64 / hz,
        total_seconds: total as f64 / hz,
    }
}

/// Flag of kernel threads in `/proc/<pid>/stat` (PF_KTHREAD).
const PF_KTHREAD: u64 = 0x0020_0000;

/// CPU seconds of all kernel threads (journal commits, block I/O workers, …).
pub fn kernel_threads_cpu_seconds() -> f64 {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let hz = ticks_per_second();
    let mut total = 0u64;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = text.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let get = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        // rest[0] is field 3; flags is field 9, utime 14, stime 15.
        if get(6) & PF_KTHREAD != 0 {
            total += get(11) + get(12);
        }
    }
    total as f64 / hz
}

/// The 1-minute load average.
pub fn loadavg_1m() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// How busy the machine was with work other than ours during an interval.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default)]
pub struct Busyness {
    /// CPU used by user processes other than the benchmark and both systems' servers, as a
    /// fraction of all CPUs.
    pub other_cpu_fraction: f64,
    /// CPU of kernel threads and interrupts (mostly the I/O and loopback traffic the servers
    /// cause, but not only theirs), as a fraction of all CPUs.
    pub kernel_cpu_fraction: f64,
    /// 1-minute load average at the end.
    pub loadavg_1m: f64,
}

/// Counters at the start of an interval, to compute [`Busyness`] at its end.
#[derive(Debug, Clone)]
pub struct BusySampler {
    machine: MachineCpu,
    ours: f64,
    kernel_threads: f64,
    pids: Vec<u32>,
}

impl BusySampler {
    /// Starts an interval; `pids` are the processes that count as ours (servers of both
    /// systems); the benchmark process itself is always counted as ours.
    pub fn start(pids: Vec<u32>) -> BusySampler {
        BusySampler {
            ours: ours_cpu(&pids),
            kernel_threads: kernel_threads_cpu_seconds(),
            machine: machine_cpu(),
            pids,
        }
    }

    /// Ends the interval.
    pub fn finish(&self) -> Busyness {
        let now = machine_cpu();
        let total = (now.total_seconds - self.machine.total_seconds).max(1e-9);
        let processes = now.process_seconds - self.machine.process_seconds;
        let kernel = kernel_threads_cpu_seconds() - self.kernel_threads;
        let irq = now.irq_seconds - self.machine.irq_seconds;
        let ours = ours_cpu(&self.pids) - self.ours;
        Busyness {
            other_cpu_fraction: ((processes - kernel - ours) / total).clamp(0.0, 1.0),
            kernel_cpu_fraction: ((kernel + irq) / total).clamp(0.0, 1.0),
            loadavg_1m: loadavg_1m(),
        }
    }
}

fn ours_cpu(pids: &[u32]) -> f64 {
    pids.iter().map(|p| process_cpu_seconds(*p)).sum::<f64>()
        + process_cpu_seconds(std::process::id())
}

/// Total CPU seconds of `pids`.
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter().map(|p| process_cpu_seconds(*p)).sum()
}

/// Total resident memory of `pids`, bytes.
pub fn rss_sum(pids: &[u32]) -> u64 {
    pids.iter().map(|p| rss_bytes(*p)).sum()
}

/// The machine, for the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name.
    pub cpu_model: String,
    /// Online CPUs.
    pub cpus: usize,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// `uname -sr` equivalent.
    pub kernel: String,
    /// Device and file system holding the data dirs.
    pub disk: String,
    /// Whether that device is rotational (from sysfs), if known.
    pub disk_rotational: Option<bool>,
}

/// Describes this machine; `data_dir` names the disk.
pub fn machine(data_dir: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0);
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let kernel = format!(
        "{} {}",
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease")
    );
    let (device, fs, mount) = mount_of(data_dir);
    let dev_name = device.rsplit('/').next().unwrap_or("").to_owned();
    let disk_rotational =
        std::fs::read_to_string(format!("/sys/block/{dev_name}/queue/rotational"))
            .ok()
            .map(|s| s.trim() == "1");
    let model = read(&format!("/sys/block/{dev_name}/device/model"));
    Machine {
        cpu_model,
        cpus: cpus(),
        memory_bytes,
        kernel,
        disk: format!(
            "{device} ({fs}, mounted at {mount}){}",
            if model.is_empty() {
                String::new()
            } else {
                format!(", model {model}")
            }
        ),
        disk_rotational,
    }
}

/// Device, file system type and mount point of the longest mount containing `path`.
pub fn mount_of(path: &Path) -> (String, String, String) {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best = ("unknown".to_owned(), "unknown".to_owned(), String::new());
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [dev, mnt, fs, ..] = f[..]
            && path.starts_with(mnt)
            && mnt.len() >= best.2.len()
        {
            best = (dev.to_owned(), fs.to_owned(), mnt.to_owned());
        }
    }
    best
}

/// Bytes used by the files under `dir` (allocated blocks, like `du`).
pub fn disk_usage_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_bytes_is_the_storage_field_not_wchar() {
        let io = "rchar: 10\nwchar: 999\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_write_bytes(io), Some(8192));
        assert_eq!(parse_write_bytes("rchar: 1\n"), None);
        assert_eq!(parse_write_bytes("write_bytes: x\n"), None);
        // Our own process is readable (the bench runs as the servers' user).
        assert!(write_bytes(std::process::id()).is_some());
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(rss_bytes(me) > 0);
        assert!(peak_rss_bytes(me) >= rss_bytes(me) / 2);
        assert!(process_cpu_seconds(me) >= 0.0);
        assert!(machine_cpu().total_seconds > 0.0);
        assert!(kernel_threads_cpu_seconds() >= 0.0);
    }
}
