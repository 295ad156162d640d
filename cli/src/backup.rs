//! `kartotek admin backup --out DIR`: an online backup of the whole cluster, and the backup
//! manifest ([`Manifest`]) that `verify-backup` and `restore` (offline commands of the
//! `kartotek` binary, which need the storage crate) read back.
//!
//! # What a backup directory holds
//!
//! - `backup.snap`: the leader's snapshot file (`KTSNAP01`, checksummed) at log id `L`, built
//!   at or after a linearizable read index, so it holds every write acknowledged before the
//!   backup was asked for (and maybe some later ones);
//! - `manifest.json`: cluster name, `L` (index, term, leader), the read index, the members,
//!   the revision and the audit chain head at `L`, and the file's size, frame count and
//!   SHA-256.
//!
//! # Safe to copy while written
//!
//! Both are written under a temporary name (`*.tmp`), fsynced, and renamed, the snapshot
//! first and the manifest last, and the directory is fsynced: a directory with a
//! `manifest.json` holds a complete backup; a crash or a broken stream leaves only `*.tmp`
//! files, which are never taken for a backup. The SHA-256 is checked while the file is
//! received; a stream that ends early or carries more or other bytes is refused and nothing
//! is renamed.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kartotek_client::KartotekClient;
use kartotek_proto::v1::{BackupManifest, Member, backup_chunk};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// File name of the snapshot in a backup directory.
pub const SNAPSHOT_FILE: &str = "backup.snap";
/// File name of the manifest in a backup directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The manifest format this version writes and reads.
pub const FORMAT: &str = "kartotek-backup/1";
/// Largest manifest file read.
pub const MANIFEST_BYTES_MAX: u64 = 1 << 20;
/// Most members a manifest may list.
pub const MEMBERS_MAX: usize = 64;
/// Longest address or name in a manifest, in bytes.
pub const FIELD_BYTES_MAX: usize = 256;
/// Longest wait for the next message of a backup stream (the first comes after the leader
/// has built its snapshot, which for a large state takes minutes).
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(900);

/// A member of the backed-up cluster, as the snapshot's membership stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestMember {
    /// Node id.
    pub node_id: u64,
    /// Public API address (`host:port`).
    pub addr: String,
    /// Raft address (`host:port`).
    pub raft_addr: String,
    /// In the voter set.
    pub voter: bool,
}

/// A log id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestLogId {
    /// Index.
    pub index: u64,
    /// Term of the leader that made it.
    pub term: u64,
    /// Id of that leader.
    pub leader: u64,
}

/// The audit chain head at the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestAuditHead {
    /// Seq of the newest event (0: none).
    pub seq: u64,
    /// Its hash, hex.
    pub hash: String,
}

/// `manifest.json`: what a backup is (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// `cluster_name` of the backed-up cluster.
    pub cluster_name: String,
    /// The node (leader) that served the backup.
    pub served_by: u64,
    /// The snapshot's id.
    pub snapshot_id: String,
    /// The snapshot's last log id `L`: the state is the log applied up to it.
    pub last_log: ManifestLogId,
    /// The linearizable read index the backup was taken at or after (at most `L`'s index).
    pub read_index: u64,
    /// The membership in the snapshot.
    pub members: Vec<ManifestMember>,
    /// The state revision at `L`: the change feed continues at `revision + 1`.
    pub revision: u64,
    /// The audit chain head at `L`.
    pub audit_head: ManifestAuditHead,
    /// The snapshot's file name in the directory ([`SNAPSHOT_FILE`]).
    pub snapshot_file: String,
    /// Its size.
    pub size_bytes: u64,
    /// Its key/value frames.
    pub frames: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
    /// When the backup was written (Unix milliseconds).
    pub created_unix_ms: u64,
}

/// Why a manifest is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Not JSON of the manifest's shape.
    #[error("manifest.json does not parse: {0}")]
    Parse(String),
    /// A field has a value no backup has.
    #[error("manifest.json: {field} {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn check_hex32(field: &'static str, s: &str) -> Result<(), ManifestError> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(field, "must be 64 hex digits (a SHA-256)"));
    }
    Ok(())
}

fn check_text(field: &'static str, s: &str) -> Result<(), ManifestError> {
    if s.is_empty() || s.len() > FIELD_BYTES_MAX || s.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("must be 1 to {FIELD_BYTES_MAX} bytes of text"),
        ));
    }
    Ok(())
}

impl Manifest {
    /// Parses and [validates](Manifest::validate) a manifest.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Parse(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// Reads `dir/manifest.json` (at most [`MANIFEST_BYTES_MAX`]) and parses it.
    pub fn load(dir: &Path) -> anyhow::Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let len = std::fs::metadata(&path)
            .with_context(|| {
                format!(
                    "{} is not a backup (no {MANIFEST_FILE}: the backup did not finish, or \
                     this is another directory)",
                    dir.display()
                )
            })?
            .len();
        if len > MANIFEST_BYTES_MAX {
            bail!(
                "{} is {len} bytes, at most {MANIFEST_BYTES_MAX}",
                path.display()
            );
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Manifest::parse(&bytes)?)
    }

    /// Checks every field for a value a backup can have.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.format != FORMAT {
            return Err(invalid(
                "format",
                format!("is {:?}; this version reads {FORMAT:?}", self.format),
            ));
        }
        check_text("cluster_name", &self.cluster_name)?;
        check_text("snapshot_id", &self.snapshot_id)?;
        if self.snapshot_file != SNAPSHOT_FILE {
            return Err(invalid(
                "snapshot_file",
                format!("must be {SNAPSHOT_FILE:?}"),
            ));
        }
        if self.last_log.index == 0 || self.last_log.term == 0 || self.last_log.leader == 0 {
            return Err(invalid(
                "last_log",
                "must name an applied entry (index, term and leader above 0)",
            ));
        }
        if self.read_index > self.last_log.index {
            return Err(invalid(
                "read_index",
                format!(
                    "{} is after the snapshot's last log index {}",
                    self.read_index, self.last_log.index
                ),
            ));
        }
        if self.members.is_empty() || self.members.len() > MEMBERS_MAX {
            return Err(invalid(
                "members",
                format!("must list 1 to {MEMBERS_MAX} members"),
            ));
        }
        let mut ids = BTreeSet::new();
        for m in &self.members {
            if m.node_id == 0 || !ids.insert(m.node_id) {
                return Err(invalid(
                    "members",
                    format!("node id {} is 0 or listed twice", m.node_id),
                ));
            }
            check_text("members.addr", &m.addr)?;
            check_text("members.raft_addr", &m.raft_addr)?;
        }
        if !self.members.iter().any(|m| m.voter) {
            return Err(invalid("members", "must include a voter"));
        }
        check_hex32("audit_head.hash", &self.audit_head.hash)?;
        check_hex32("sha256", &self.sha256)?;
        if self.size_bytes == 0 || self.frames == 0 {
            return Err(invalid(
                "size_bytes",
                "a backup's snapshot has bytes and frames",
            ));
        }
        Ok(())
    }

    /// The manifest of a backup stream's first message, written at `created_unix_ms`.
    pub fn from_stream(
        m: &BackupManifest,
        created_unix_ms: u64,
    ) -> Result<Manifest, ManifestError> {
        let manifest = Manifest {
            format: FORMAT.into(),
            cluster_name: m.cluster_name.clone(),
            served_by: m.node_id,
            snapshot_id: m.snapshot_id.clone(),
            last_log: ManifestLogId {
                index: m.last_log_index,
                term: m.last_log_term,
                leader: m.last_log_leader,
            },
            read_index: m.read_index,
            members: m.members.iter().map(ManifestMember::from).collect(),
            revision: m.revision,
            audit_head: ManifestAuditHead {
                seq: m.audit_head_seq,
                hash: m.audit_head_hash.clone(),
            },
            snapshot_file: SNAPSHOT_FILE.into(),
            size_bytes: m.size_bytes,
            frames: m.frames,
            sha256: m.sha256.clone(),
            created_unix_ms,
        };
        manifest.validate()?;
        Ok(manifest)
    }
}

impl From<&Member> for ManifestMember {
    fn from(m: &Member) -> Self {
        ManifestMember {
            node_id: m.node_id,
            addr: m.addr.clone(),
            raft_addr: m.raft_addr.clone(),
            voter: m.voter,
        }
    }
}

/// What `admin backup` wrote.
#[derive(Debug, Serialize)]
pub struct BackupReport {
    /// The backup directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Wall time of the whole backup (snapshot build and transfer), in milliseconds.
    pub elapsed_ms: u64,
}

/// The series [`metrics_text`] writes for Prometheus' textfile collector (the alert rules in
/// `deploy/prometheus/alerts.yml` name them; they are not on a node's `/metrics`).
pub const METRIC_NAMES: [&str; 4] = [
    "kartotek_backup_verified_timestamp_seconds",
    "kartotek_backup_created_timestamp_seconds",
    "kartotek_backup_size_bytes",
    "kartotek_backup_revision",
];

/// The Prometheus text exposition of a backup that verified at `verified_unix_ms`, one
/// series each of [`METRIC_NAMES`] labelled with the cluster name (for node_exporter's
/// textfile collector: `verify-backup --metrics-file`).
pub fn metrics_text(m: &Manifest, verified_unix_ms: u64) -> String {
    let cluster = m.cluster_name.replace('\\', "\\\\").replace('"', "\\\"");
    let values = [
        (
            METRIC_NAMES[0],
            "Unix time the newest backup passed kartotek admin verify-backup.",
            verified_unix_ms as f64 / 1e3,
        ),
        (
            METRIC_NAMES[1],
            "Unix time that backup was taken (its manifest's created_unix_ms).",
            m.created_unix_ms as f64 / 1e3,
        ),
        (
            METRIC_NAMES[2],
            "Size of its snapshot file.",
            m.size_bytes as f64,
        ),
        (
            METRIC_NAMES[3],
            "The revision it holds: every write at or below it.",
            m.revision as f64,
        ),
    ];
    let mut out = String::new();
    for (name, help, v) in values {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{cluster=\"{cluster}\"}} {v}\n"
        ));
    }
    out
}

/// Writes `text` to `path` as a whole, mode 0644: a temporary file beside it, fsynced,
/// renamed (a collector reading it meanwhile sees the old file or the new one, never half).
pub fn write_file_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    write_synced(&tmp, text.as_bytes())?;
    // Readable by the collector's user whatever the umask (it holds no secret).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("chmod {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Fsyncs a directory so that renames in it are durable.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsyncing {}", dir.display()))
}

/// Writes `bytes` to `path` and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// The next message of a backup stream, at most [`STREAM_IDLE_TIMEOUT`] away.
async fn next_part(
    stream: &mut tonic::Streaming<kartotek_proto::v1::BackupChunk>,
) -> anyhow::Result<Option<backup_chunk::Part>> {
    match tokio::time::timeout(STREAM_IDLE_TIMEOUT, stream.message()).await {
        Err(_) => bail!(
            "the backup stream sent nothing for {} s",
            STREAM_IDLE_TIMEOUT.as_secs()
        ),
        Ok(Err(status)) => Err(kartotek_client::ClientError::Status(status))
            .context("the backup stream broke; run the backup again"),
        Ok(Ok(None)) => Ok(None),
        Ok(Ok(Some(chunk))) => match chunk.part {
            Some(part) => Ok(Some(part)),
            None => bail!("the backup stream sent an empty message"),
        },
    }
}

/// Receives the snapshot into `tmp`, checking size and SHA-256 against `manifest`; fsynced.
async fn receive(
    stream: &mut tonic::Streaming<kartotek_proto::v1::BackupChunk>,
    manifest: &Manifest,
    tmp: &Path,
) -> anyhow::Result<()> {
    let file = std::fs::File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let bar = indicatif::ProgressBar::new(manifest.size_bytes);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    while let Some(part) = next_part(stream).await? {
        let backup_chunk::Part::Data(data) = part else {
            bail!("the backup stream sent a second manifest");
        };
        received += data.len() as u64;
        if received > manifest.size_bytes {
            bail!(
                "the backup stream sent more than the manifest's {} bytes",
                manifest.size_bytes
            );
        }
        hasher.update(&data);
        out.write_all(&data)?;
        bar.set_position(received);
    }
    bar.finish_and_clear();
    if received != manifest.size_bytes {
        bail!(
            "the backup stream ended after {received} of {} bytes; run the backup again",
            manifest.size_bytes
        );
    }
    if hex::encode(hasher.finalize()) != manifest.sha256 {
        bail!("the received snapshot's SHA-256 does not match the manifest; run the backup again");
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(())
}

/// Takes a backup from the cluster into `dir` (created if missing; refused if it already
/// holds a backup).
pub async fn backup(client: &KartotekClient, dir: &Path) -> anyhow::Result<BackupReport> {
    let started = Instant::now();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in [SNAPSHOT_FILE, MANIFEST_FILE] {
        if dir.join(name).exists() {
            bail!(
                "{} already holds a backup ({name}); choose a new directory",
                dir.display()
            );
        }
    }
    let mut stream = client.backup().await?;
    let manifest = match next_part(&mut stream).await? {
        Some(backup_chunk::Part::Manifest(m)) => Manifest::from_stream(&m, unix_ms())?,
        Some(_) => bail!("the backup stream did not start with its manifest"),
        None => bail!("the backup stream ended before its manifest"),
    };
    eprintln!(
        "backup of {} at log index {} (revision {}, {} bytes) from node {}",
        manifest.cluster_name,
        manifest.last_log.index,
        manifest.revision,
        manifest.size_bytes,
        manifest.served_by
    );
    let snap_tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let manifest_tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
    if let Err(e) = receive(&mut stream, &manifest, &snap_tmp).await {
        let _ = std::fs::remove_file(&snap_tmp);
        return Err(e);
    }
    write_synced(&manifest_tmp, &serde_json::to_vec_pretty(&manifest)?)?;
    std::fs::rename(&snap_tmp, dir.join(SNAPSHOT_FILE))?;
    std::fs::rename(&manifest_tmp, dir.join(MANIFEST_FILE))?;
    sync_dir(dir)?;
    Ok(BackupReport {
        dir: dir.to_path_buf(),
        manifest,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let m = BackupManifest {
            cluster_name: "kartotek-test".into(),
            node_id: 2,
            snapshot_id: "3-120-1".into(),
            last_log_index: 120,
            last_log_term: 3,
            last_log_leader: 2,
            members: (1..=3)
                .map(|i| Member {
                    node_id: i,
                    addr: format!("127.0.0.1:740{i}"),
                    voter: true,
                    raft_addr: format!("127.0.0.1:750{i}"),
                })
                .collect(),
            revision: 99,
            audit_head_seq: 40,
            audit_head_hash: "ab".repeat(32),
            size_bytes: 4096,
            sha256: "cd".repeat(32),
            read_index: 118,
            frames: 77,
        };
        Manifest::from_stream(&m, 1).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_manifest_round_trips_through_json() {
        let m = sample();
        let json = serde_json::to_vec_pretty(&m).unwrap_or_default();
        assert_eq!(Manifest::parse(&json), Ok(m));
    }

    #[test]
    fn bad_manifests_are_refused_naming_the_field() {
        type Change = Box<dyn Fn(&mut Manifest)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "format",
                Box::new(|m| m.format = "kartotek-backup/9".into()),
            ),
            ("cluster_name", Box::new(|m| m.cluster_name.clear())),
            (
                "snapshot_file",
                Box::new(|m| m.snapshot_file = "../etc/passwd".into()),
            ),
            ("last_log", Box::new(|m| m.last_log.index = 0)),
            ("read_index", Box::new(|m| m.read_index = 121)),
            ("members", Box::new(|m| m.members.clear())),
            ("members", Box::new(|m| m.members[1].node_id = 1)),
            (
                "members",
                Box::new(|m| m.members.iter_mut().for_each(|x| x.voter = false)),
            ),
            ("members.addr", Box::new(|m| m.members[0].addr.clear())),
            (
                "audit_head.hash",
                Box::new(|m| m.audit_head.hash = "xyz".into()),
            ),
            ("sha256", Box::new(|m| m.sha256.truncate(63))),
            ("size_bytes", Box::new(|m| m.size_bytes = 0)),
        ];
        for (field, change) in cases {
            let mut m = sample();
            change(&mut m);
            let json = serde_json::to_vec(&m).unwrap_or_default();
            match Manifest::parse(&json) {
                Err(ManifestError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_metrics_file_has_every_series_once_with_the_cluster_label() {
        let mut m = sample();
        m.cluster_name = "nasjonal \"a\"".into();
        let text = metrics_text(&m, 1_700_000_123_456);
        for name in METRIC_NAMES {
            assert_eq!(
                text.matches(&format!("# TYPE {name} gauge")).count(),
                1,
                "{text}"
            );
            assert!(
                text.contains(&format!("{name}{{cluster=\"nasjonal \\\"a\\\"\"}} ")),
                "{text}"
            );
        }
        assert!(text.contains("kartotek_backup_verified_timestamp_seconds{cluster=\"nasjonal \\\"a\\\"\"} 1700000123.456\n"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kartotek_backup.prom");
        write_file_atomically(&path, &text).unwrap();
        write_file_atomically(&path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "a temporary file is left"
        );
    }

    #[test]
    fn unknown_fields_and_garbage_do_not_parse() {
        let mut v = serde_json::to_value(sample()).unwrap_or_default();
        v["extra"] = serde_json::json!(1);
        let json = serde_json::to_vec(&v).unwrap_or_default();
        assert!(matches!(
            Manifest::parse(&json),
            Err(ManifestError::Parse(_))
        ));
        assert!(matches!(
            Manifest::parse(b"{"),
            Err(ManifestError::Parse(_))
        ));
        assert!(matches!(Manifest::parse(b""), Err(ManifestError::Parse(_))));
    }
}
