//! A full data disk, for real: a node whose data directory is on a small tmpfs (mounted by
//! the test; it needs root, as CI has) is filled up with a filler file until less than
//! `storage.disk_free_bytes_min` is free. The node turns read-only: writes are refused with
//! RESOURCE_EXHAUSTED naming the setting, and change nothing; audited reads go on; the
//! metrics say so. The filler is deleted: the node takes writes again by itself, with every
//! earlier write intact, and its audit chain verifies.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{TestCluster, org, patient};
use kartotek_client::ClientError;
use kartotek_proto::v1::{LookupLocatorRequest, RegisterLocatorRequest};
use kartotek_testkit::NodeSpec;

/// The tmpfs the node's data dir is on.
static MOUNT: OnceLock<PathBuf> = OnceLock::new();
const TMPFS_BYTES: u64 = 320 << 20;
const FREE_MIN_BYTES: u64 = 48 << 20;

fn on_tmpfs(spec: &mut NodeSpec) {
    spec.metrics_addr = Some(format!("127.0.0.1:{}", common::free_port()));
    spec.data_dir = MOUNT.get().expect("mounted first").join("data");
    spec.extra_toml.push_str(&format!(
        "\n[storage]\ndisk_free_bytes_min = {FREE_MIN_BYTES}\ndisk_check_interval_ms = 100\n"
    ));
}

/// Unmounts the tmpfs when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Mounts a tmpfs of `bytes` at `dir`; none (said so) where that is not allowed and `CI` is
/// unset.
fn mount(dir: &Path, bytes: u64) -> Option<Tmpfs> {
    std::fs::create_dir_all(dir).unwrap();
    let out = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
        .arg(dir)
        .output()
        .unwrap();
    if out.status.success() {
        return Some(Tmpfs(dir.to_path_buf()));
    }
    let why = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but mounting a tmpfs failed (the test needs root): {why}"
    );
    eprintln!("SKIPPED the disk-full test: cannot mount a tmpfs here: {why}");
    None
}

fn register(n: u32) -> RegisterLocatorRequest {
    RegisterLocatorRequest {
        request_id: format!("disk-full-{n}"),
        patient: patient(n),
        org: org(97),
        system: "ehr-disk".into(),
        categories: vec!["Observation".into()],
        endpoint_ref: "fhir-api-1".into(),
        expected_mod_revision: None,
    }
}

fn lookup(n: u32) -> LookupLocatorRequest {
    LookupLocatorRequest {
        patient: patient(n),
        ..Default::default()
    }
}

/// Writes a filler file leaving about `leave` bytes free on `dir`'s filesystem.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let free = kartotek_node::disk::free_bytes_of(dir).unwrap();
    let path = dir.join("filler");
    let size = free.saturating_sub(leave);
    let f = std::fs::File::create(&path).unwrap();
    // tmpfs allocates on write, not on set_len: write it.
    let mut w = std::io::BufWriter::new(f);
    let chunk = vec![0xA5u8; 1 << 20];
    let mut written = 0;
    while written < size {
        let n = (size - written).min(chunk.len() as u64) as usize;
        std::io::Write::write_all(&mut w, &chunk[..n]).unwrap();
        written += n as u64;
    }
    std::io::Write::flush(&mut w).unwrap();
    path
}

async fn metric(cluster: &TestCluster, name: &str) -> Option<f64> {
    let addr = cluster.nodes[cluster.idx(1)].metrics_addr.clone()?;
    let text = tokio::task::spawn_blocking(move || common::metrics_text(&addr))
        .await
        .ok()?;
    common::metric_value(&text, name)
}

async fn readyz(cluster: &TestCluster) -> String {
    let addr = cluster.nodes[cluster.idx(1)]
        .metrics_addr
        .clone()
        .expect("metrics address");
    tokio::task::spawn_blocking(move || common::http_get(&addr, "/readyz"))
        .await
        .expect("readyz")
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_the_node_read_only_until_space_returns() {
    let holder = tempfile::tempdir().unwrap();
    let mnt = holder.path().join("tmpfs");
    let Some(_tmpfs) = mount(&mnt, TMPFS_BYTES) else {
        return;
    };
    MOUNT.set(mnt.clone()).unwrap();
    let cluster = TestCluster::start(1, on_tmpfs).await;
    let client = cluster.client();
    for n in 1..=20 {
        client.register_locator(register(n)).await.unwrap();
    }

    // Fill the disk: less than the minimum left.
    let filler = fill(&mnt, FREE_MIN_BYTES / 2);
    wait_until("the node turns read-only", async || {
        metric(&cluster, "kartotek_storage_read_only").await == Some(1.0)
    })
    .await;
    let free = metric(&cluster, "kartotek_storage_data_dir_free_bytes")
        .await
        .unwrap();
    assert!(free < FREE_MIN_BYTES as f64, "{free}");
    // Writes are refused, clearly, and change nothing.
    match client.register_locator(register(21)).await {
        Err(ClientError::Status(s)) => {
            assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
            assert!(
                s.message().contains("read-only")
                    && s.message().contains("storage.disk_free_bytes_min"),
                "{s:?}"
            );
        }
        other => panic!("a write on a full disk: {other:?}"),
    }
    // Audited reads go on.
    for n in 1..=20 {
        let r = client.lookup_locator(lookup(n)).await.unwrap();
        assert_eq!(r.entries.len(), 1);
    }
    assert!(
        client
            .lookup_locator(lookup(21))
            .await
            .unwrap()
            .entries
            .is_empty(),
        "the refused write left nothing"
    );
    let log = cluster.log(1);
    assert!(log.contains("READ-ONLY"), "the node says so");
    // Still ready (it serves reads), and /readyz says why writes fail.
    let ready = readyz(&cluster).await;
    assert!(
        ready.starts_with("HTTP/1.0 200") || ready.starts_with("HTTP/1.1 200"),
        "{ready}"
    );
    assert!(ready.contains("READ-ONLY"), "{ready}");

    // Space returns: writes resume by themselves.
    std::fs::remove_file(&filler).unwrap();
    wait_until("the node takes writes again", async || {
        metric(&cluster, "kartotek_storage_read_only").await == Some(0.0)
    })
    .await;
    client.register_locator(register(21)).await.unwrap();
    let ready = readyz(&cluster).await;
    assert!(ready.ends_with("\r\n\r\nready\n"), "{ready}");
    for n in 1..=21 {
        assert_eq!(
            client
                .lookup_locator(lookup(n))
                .await
                .unwrap()
                .entries
                .len(),
            1
        );
    }
    let out = common::kartotek(&cluster.addrs().join(","), &["--json", "audit", "verify"]);
    assert!(
        out.status.success(),
        "audit verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(cluster);
}
