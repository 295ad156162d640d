//! CPU profiles with `perf` (software clock event: works in VMs without hardware counters):
//! record one process during a run, then summarise by thread and by symbol (self time).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::results::Profile;

/// Sampling frequency, Hz.
const FREQUENCY_HZ: u32 = 999;
/// Lines kept per summary.
const ROWS_MAX: usize = 25;

/// A running `perf record`.
pub struct Recording {
    child: Child,
    data: String,
    command: String,
}

/// Whether `perf` can sample here.
pub fn available() -> bool {
    Command::new("perf")
        .args(["stat", "-e", "cpu-clock", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Starts recording `pid` for `duration` into `data_file`.
pub fn start(pid: u32, duration: Duration, data_file: &Path) -> anyhow::Result<Recording> {
    let data = data_file.display().to_string();
    let secs = format!("{:.1}", duration.as_secs_f64());
    let args = [
        "record".to_owned(),
        "-e".into(),
        "cpu-clock".into(),
        "-F".into(),
        FREQUENCY_HZ.to_string(),
        "-g".into(),
        "-p".into(),
        pid.to_string(),
        "-o".into(),
        data.clone(),
        "--".into(),
        "sleep".into(),
        secs,
    ];
    let command = format!("perf {}", args.join(" "));
    let child = Command::new("perf")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting perf record")?;
    Ok(Recording {
        child,
        data,
        command,
    })
}

impl Recording {
    /// Waits for the recording and summarises it.
    pub fn finish(mut self, what: &str, keep: bool) -> anyhow::Result<Profile> {
        self.child.wait().context("waiting for perf record")?;
        let by_thread = report(&self.data, "comm")?;
        let by_symbol = report(&self.data, "dso,sym")?;
        if !keep {
            let _ = std::fs::remove_file(&self.data);
        }
        Ok(Profile {
            what: what.to_owned(),
            command: self.command,
            by_thread,
            by_symbol,
            data_file: keep.then_some(self.data),
        })
    }
}

fn report(data: &str, sort: &str) -> anyhow::Result<Vec<(String, f64)>> {
    let out = Command::new("perf")
        .args([
            "report",
            "-i",
            data,
            "--stdio",
            "--no-children",
            "-g",
            "none",
            "--percent-limit",
            "0.5",
            "--sort",
            sort,
        ])
        .stderr(Stdio::null())
        .output()
        .context("running perf report")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let Some((pct, rest)) = t.split_once('%') else {
            continue;
        };
        let Ok(p) = pct.trim().parse::<f64>() else {
            continue;
        };
        let name = rest.split_whitespace().collect::<Vec<_>>().join(" ");
        rows.push((name, p));
        if rows.len() == ROWS_MAX {
            break;
        }
    }
    Ok(rows)
}
