//! `kartotek locator import FILE`: bulk import from NDJSON or CSV, resumable.
//!
//! The file's data lines are cut into fixed batches (`--batch-size` lines each); batch `k`
//! always holds the same lines and is sent under the id `imp-<file hash>-<k>`, so a resent
//! batch is applied at most once. After every answered batch the state file
//! (`FILE.import-state.json`) records how many leading batches are done; a rerun after an
//! interruption (Ctrl-C, kill, lost connection) skips them. Lines the CLI cannot read and
//! entries the server rejects are appended to `FILE.rejected.ndjson` with their line number,
//! field and reason; the summary counts them.
//!
//! Formats: NDJSON (one object per line: `patient`, `org`, `system`, `categories` as a list or
//! comma-separated text, `endpoint_ref`) or CSV with a header naming those columns
//! (`categories` separated by `;` or `|`). Chosen by `--format` or the file extension.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kartotek_domain::limits::IMPORT_ENTRIES_PER_BATCH_MAX;
use kartotek_proto::v1::{ImportEntry, ImportLocatorsRequest, ImportLocatorsResponse};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::GlobalArgs;
use crate::output::print_json;

/// Longest line read from an import file, in bytes.
pub const IMPORT_LINE_BYTES_MAX: usize = 64 * 1024;

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportFormat {
    /// One JSON object per line.
    Ndjson,
    /// Comma-separated values with a header row.
    Csv,
}

/// Arguments of `locator import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import.
    pub file: PathBuf,
    /// Input format (default: from the extension; `.csv` is CSV, anything else NDJSON).
    #[arg(long, value_enum)]
    pub format: Option<ImportFormat>,
    /// Lines per batch (one atomic Raft entry each), 1 to 1000.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Ignore an existing state file and start from the first line.
    #[arg(long)]
    pub restart: bool,
}

/// What a rerun needs to resume; written after every answered batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportState {
    /// Hash of the file's content: a changed file is never resumed.
    pub file_sha256: String,
    /// Lines per batch (resuming needs the same cut).
    pub batch_size: usize,
    /// Leading batches answered.
    pub batches_done: u64,
    /// Data lines covered by those batches.
    pub lines_done: u64,
    /// Entries created or changed.
    pub changed: u64,
    /// Entries already registered as sent.
    pub unchanged: u64,
    /// Lines rejected (unreadable or invalid).
    pub rejected: u64,
    /// True when the whole file has been imported.
    pub complete: bool,
}

/// The summary printed at the end.
#[derive(Debug, Serialize)]
struct Summary {
    file: String,
    state: ImportState,
    resumed_from_batch: u64,
    seconds: f64,
    entries_per_second: f64,
    rejected_file: Option<String>,
}

/// One rejected line.
#[derive(Debug, Serialize)]
struct Rejected<'a> {
    line: u64,
    field: &'a str,
    reason: &'a str,
}

fn side_file(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn load_state(path: &Path) -> Option<ImportState> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn save_state(path: &Path, state: &ImportState) -> anyhow::Result<()> {
    let tmp = side_file(path, ".tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// NDJSON line shape (`categories` as a list or comma-separated text).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonLine {
    patient: String,
    org: String,
    system: String,
    #[serde(default)]
    categories: Categories,
    #[serde(default)]
    endpoint_ref: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(untagged)]
enum Categories {
    #[default]
    None,
    List(Vec<String>),
    Text(String),
}

impl Categories {
    fn into_vec(self, separators: &[char]) -> Vec<String> {
        match self {
            Categories::None => Vec::new(),
            Categories::List(v) => v,
            Categories::Text(t) => split_list(&t, separators),
        }
    }
}

fn split_list(t: &str, separators: &[char]) -> Vec<String> {
    t.split(separators)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One data line of the file: its number (1-based, as an editor shows it) and content.
type Parsed = (u64, Result<ImportEntry, String>);

/// Reads data lines of either format.
enum LineReader {
    Ndjson {
        lines: std::io::Lines<BufReader<File>>,
        line_no: u64,
    },
    Csv {
        records: csv::StringRecordsIntoIter<File>,
        columns: HashMap<String, usize>,
    },
}

impl LineReader {
    fn open(path: &Path, format: ImportFormat) -> anyhow::Result<Self> {
        let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(match format {
            ImportFormat::Ndjson => LineReader::Ndjson {
                lines: BufReader::new(f).lines(),
                line_no: 0,
            },
            ImportFormat::Csv => {
                let mut rdr = csv::ReaderBuilder::new()
                    .flexible(true)
                    .trim(csv::Trim::All)
                    .from_reader(f);
                let columns: HashMap<String, usize> = rdr
                    .headers()
                    .context("reading the CSV header")?
                    .iter()
                    .enumerate()
                    .map(|(i, h)| (h.to_ascii_lowercase(), i))
                    .collect();
                for required in ["patient", "org", "system"] {
                    if !columns.contains_key(required) {
                        anyhow::bail!("the CSV header has no `{required}` column");
                    }
                }
                LineReader::Csv {
                    records: rdr.into_records(),
                    columns,
                }
            }
        })
    }

    /// The next data line, or `None` at the end.
    fn next_line(&mut self) -> Option<Parsed> {
        match self {
            LineReader::Ndjson { lines, line_no } => loop {
                *line_no += 1;
                let line = match lines.next()? {
                    Ok(l) => l,
                    Err(e) => return Some((*line_no, Err(format!("unreadable line: {e}")))),
                };
                if line.trim().is_empty() {
                    continue;
                }
                if line.len() > IMPORT_LINE_BYTES_MAX {
                    return Some((
                        *line_no,
                        Err(format!("line is longer than {IMPORT_LINE_BYTES_MAX} bytes")),
                    ));
                }
                let parsed = serde_json::from_str::<JsonLine>(&line)
                    .map(|j| ImportEntry {
                        patient: j.patient,
                        org: j.org,
                        system: j.system,
                        categories: j.categories.into_vec(&[',']),
                        endpoint_ref: j.endpoint_ref,
                    })
                    .map_err(|e| format!("not a valid entry object: {e}"));
                return Some((*line_no, parsed));
            },
            LineReader::Csv { records, columns } => {
                let rec = records.next()?;
                let rec = match rec {
                    Ok(r) => r,
                    Err(e) => {
                        let line = e.position().map_or(0, |p| p.line());
                        return Some((line, Err(format!("unreadable CSV record: {e}"))));
                    }
                };
                let line = rec.position().map_or(0, |p| p.line());
                let col = |name: &str| {
                    columns
                        .get(name)
                        .and_then(|&i| rec.get(i))
                        .unwrap_or("")
                        .to_owned()
                };
                Some((
                    line,
                    Ok(ImportEntry {
                        patient: col("patient"),
                        org: col("org"),
                        system: col("system"),
                        categories: split_list(&col("categories"), &[';', '|']),
                        endpoint_ref: col("endpoint_ref"),
                    }),
                ))
            }
        }
    }
}

/// A batch on its way: the request and the line number of each entry in it.
struct BatchLines {
    lines: Vec<u64>,
    data_lines: u64,
}

/// What the reader tells the answer loop about each batch: its number, its lines, and the
/// lines it could not read (line, reason).
type BatchInfo = (u64, BatchLines, Vec<(u64, String)>);

/// Reads the file from `skip_lines` on and sends batches; locally unreadable lines go to
/// `local_rejects` with their batch number.
#[allow(clippy::too_many_arguments)]
fn read_batches(
    mut reader: LineReader,
    file_id: &str,
    batch_size: usize,
    first_batch: u64,
    skip_lines: u64,
    batches: mpsc::Sender<ImportLocatorsRequest>,
    lines: std::sync::mpsc::SyncSender<BatchInfo>,
) -> anyhow::Result<()> {
    for _ in 0..skip_lines {
        if reader.next_line().is_none() {
            return Ok(());
        }
    }
    let mut seq = first_batch;
    loop {
        let mut entries = Vec::with_capacity(batch_size);
        let mut entry_lines = Vec::with_capacity(batch_size);
        let mut rejects = Vec::new();
        let mut data_lines = 0u64;
        while data_lines < batch_size as u64 {
            let Some((line, parsed)) = reader.next_line() else {
                break;
            };
            data_lines += 1;
            match parsed {
                Ok(e) => {
                    entries.push(e);
                    entry_lines.push(line);
                }
                Err(reason) => rejects.push((line, reason)),
            }
        }
        if data_lines == 0 {
            return Ok(());
        }
        let meta = BatchLines {
            lines: entry_lines,
            data_lines,
        };
        if lines.send((seq, meta, rejects)).is_err() {
            return Ok(());
        }
        let req = ImportLocatorsRequest {
            batch_id: format!("imp-{file_id}-{seq}"),
            sequence: seq,
            entries,
        };
        if batches.blocking_send(req).is_err() {
            return Ok(());
        }
        seq += 1;
    }
}

fn progress_bar(total_lines: u64, done: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total_lines), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} lines ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(done);
    bar
}

fn count_data_lines(path: &Path, format: ImportFormat) -> anyhow::Result<u64> {
    let mut reader = LineReader::open(path, format)?;
    let mut n = 0u64;
    while reader.next_line().is_some() {
        n += 1;
    }
    Ok(n)
}

/// Runs `locator import`.
pub async fn run(cli: &GlobalArgs, a: &ImportArgs) -> anyhow::Result<()> {
    if !(1..=IMPORT_ENTRIES_PER_BATCH_MAX).contains(&a.batch_size) {
        anyhow::bail!("--batch-size must be 1 to {IMPORT_ENTRIES_PER_BATCH_MAX}");
    }
    let format = a.format.unwrap_or_else(|| {
        if a.file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            ImportFormat::Csv
        } else {
            ImportFormat::Ndjson
        }
    });
    let client = cli.client()?;
    let state_path = side_file(&a.file, ".import-state.json");
    let rejected_path = side_file(&a.file, ".rejected.ndjson");
    let sha = {
        let f = a.file.clone();
        tokio::task::spawn_blocking(move || file_sha256(&f)).await??
    };
    let mut state = match load_state(&state_path) {
        Some(s) if !a.restart && s.file_sha256 == sha && s.batch_size == a.batch_size => s,
        _ => {
            let _ = std::fs::remove_file(&rejected_path);
            ImportState {
                file_sha256: sha.clone(),
                batch_size: a.batch_size,
                ..ImportState::default()
            }
        }
    };
    let resumed_from = state.batches_done;
    if state.complete {
        eprintln!(
            "{} was imported completely before; nothing to do (use --restart to import it again)",
            a.file.display()
        );
    }
    let total_lines = {
        let f = a.file.clone();
        tokio::task::spawn_blocking(move || count_data_lines(&f, format)).await??
    };
    let started = Instant::now();
    let imported_before = state.changed + state.unchanged;
    if !state.complete {
        let file_id = sha.get(..16).unwrap_or(&sha).to_owned();
        let reader = LineReader::open(&a.file, format)?;
        let (batch_tx, batch_rx) = mpsc::channel(a.window.max(1));
        let (lines_tx, lines_rx) = std::sync::mpsc::sync_channel(a.window.max(1) * 2 + 2);
        let (answer_tx, mut answer_rx) = mpsc::channel::<ImportLocatorsResponse>(a.window.max(1));
        let (first_batch, skip_lines, batch_size) =
            (state.batches_done, state.lines_done, a.batch_size);
        let reader_task = tokio::task::spawn_blocking(move || {
            read_batches(
                reader,
                &file_id,
                batch_size,
                first_batch,
                skip_lines,
                batch_tx,
                lines_tx,
            )
        });
        let window = a.window;
        let importer = {
            let client = client.clone();
            tokio::spawn(async move { client.import_locators(batch_rx, answer_tx, window).await })
        };
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let bar = tty.then(|| progress_bar(total_lines, state.lines_done));
        let mut rejected_out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&rejected_path)
            .with_context(|| format!("opening {}", rejected_path.display()))?;
        let mut last_line_print = Instant::now();
        let mut in_flight: HashMap<u64, (BatchLines, Vec<(u64, String)>)> = HashMap::new();
        while let Some(answer) = answer_rx.recv().await {
            while !in_flight.contains_key(&answer.sequence) {
                match lines_rx.recv_timeout(Duration::from_secs(5)) {
                    Ok((seq, meta, rejects)) => {
                        in_flight.insert(seq, (meta, rejects));
                    }
                    Err(_) => anyhow::bail!("internal: no line map for batch {}", answer.sequence),
                }
            }
            let Some((meta, local_rejects)) = in_flight.remove(&answer.sequence) else {
                continue;
            };
            for (line, reason) in &local_rejects {
                let r = Rejected {
                    line: *line,
                    field: "line",
                    reason,
                };
                writeln!(rejected_out, "{}", serde_json::to_string(&r)?)?;
            }
            for rj in &answer.rejected {
                let line = meta.lines.get(rj.index as usize).copied().unwrap_or(0);
                let r = Rejected {
                    line,
                    field: &rj.field,
                    reason: &rj.reason,
                };
                writeln!(rejected_out, "{}", serde_json::to_string(&r)?)?;
            }
            rejected_out.flush()?;
            state.batches_done += 1;
            state.lines_done += meta.data_lines;
            state.changed += u64::from(answer.changed);
            state.unchanged += u64::from(answer.unchanged);
            state.rejected += local_rejects.len() as u64 + answer.rejected.len() as u64;
            save_state(&state_path, &state)?;
            if let Some(b) = &bar {
                b.set_position(state.lines_done);
            } else if last_line_print.elapsed() >= Duration::from_secs(2) {
                eprintln!(
                    "import: {}/{} lines, {} changed, {} unchanged, {} rejected",
                    state.lines_done, total_lines, state.changed, state.unchanged, state.rejected
                );
                last_line_print = Instant::now();
            }
        }
        let result = importer.await?;
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        reader_task.await??;
        if let Err(e) = result {
            eprintln!(
                "import stopped after {} of {} lines: {e}\nrun the same command again to resume",
                state.lines_done, total_lines
            );
            return Err(e.into());
        }
        state.complete = true;
        save_state(&state_path, &state)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let imported_now = state.changed + state.unchanged - imported_before;
    let summary = Summary {
        file: a.file.display().to_string(),
        state: state.clone(),
        resumed_from_batch: resumed_from,
        seconds,
        entries_per_second: if seconds > 0.0 {
            imported_now as f64 / seconds
        } else {
            0.0
        },
        rejected_file: (state.rejected > 0).then(|| rejected_path.display().to_string()),
    };
    if cli.json {
        return print_json(&summary);
    }
    println!(
        "imported {} lines in {:.1} s ({:.0} entries/s{}): {} changed, {} unchanged, {} rejected",
        state.lines_done,
        seconds,
        summary.entries_per_second,
        if resumed_from > 0 {
            format!(", resumed at batch {resumed_from}")
        } else {
            String::new()
        },
        state.changed,
        state.unchanged,
        state.rejected
    );
    if let Some(f) = &summary.rejected_file {
        println!("rejected lines with reasons: {f}");
    }
    Ok(())
}
