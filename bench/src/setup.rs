//! Shared set-up of the commands: finding the `kartotek` binary, the data and output
//! directories, and progress output (a bar on a terminal, plain lines otherwise).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::SetupArgs;

/// The `kartotek` binary: `--kartotek-bin`, else next to this executable or in its parent
/// directory (`target/release/kartotek` for `target/release/kartotek-bench`, and for a test
/// executable in `target/debug/deps/`).
pub fn kartotek_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        if !p.exists() {
            bail!("--kartotek-bin {} does not exist", p.display());
        }
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut tried = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("kartotek");
        if candidate.is_file() {
            return Ok(candidate);
        }
        tried.push(candidate);
    }
    bail!(
        "the kartotek binary was not found (tried {}); build it with `cargo build --release \
         --workspace` or pass --kartotek-bin",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `kartotek --version` (or the path when it has none).
pub fn kartotek_version(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(|v| format!("{v} ({})", bin.display()))
        .unwrap_or_else(|| bin.display().to_string())
}

/// A fresh working directory for both systems' data under `--data-dir`.
pub fn work_dir(args: &SetupArgs) -> anyhow::Result<tempfile::TempDir> {
    let parent = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    tempfile::Builder::new()
        .prefix("kartotek-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))
}

/// Keeps the working directory if asked to, and says where it is.
pub fn finish_work_dir(dir: tempfile::TempDir, keep: bool) {
    if keep {
        let path = dir.keep();
        println!("data kept in {}", path.display());
    }
}

/// Where REPORT.md and results/ go.
pub fn out_dir(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Parses `KEY=VALUE` pairs.
pub fn env_pairs(raw: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    raw.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .with_context(|| format!("expected KEY=VALUE, got {kv:?}"))
        })
        .collect()
}

/// Progress: a bar on a terminal, a line per step otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Progress over `total` steps.
    pub fn new(total: u64, what: &str) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner}} {what} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {{msg}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            Progress { bar: Some(bar) }
        } else {
            Progress { bar: None }
        }
    }

    /// Shows what runs now.
    pub fn message(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_owned());
        }
    }

    /// Sets the position.
    pub fn set(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        }
    }

    /// A finished step: one printed line.
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(b) => b.println(text),
            None => println!("{text}"),
        }
    }

    /// Advances by one step.
    pub fn inc(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
