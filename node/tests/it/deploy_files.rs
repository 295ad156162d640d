//! The files in `deploy/` work: the Kubernetes manifests pass `kubernetes-validate --strict`
//! (the schemas of a pinned Kubernetes version; CI installs the tool into a venv, see
//! `.ci/run`), the systemd units pass `systemd-analyze verify`, the example configurations
//! (and the ones inside the ConfigMaps) load and validate with the node's and the frontend's
//! `Config` loaders, the Prometheus rules pass `promtool check rules`, every metric the
//! Grafana dashboard and the alert rules name exists on a running node, and a node started
//! with `--log-format json` writes JSON lines whose request spans carry the request id.
//!
//! The external tools are found through `CI_KUBERNETES_VALIDATE` and `CI_PROMTOOL` (set by
//! `.ci/run`) or on `PATH`; without them a test says so and passes, except under CI (`CI`
//! set), where a missing tool fails it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestCluster, free_port, metric_value, metrics_text, ok, org, patient};
use kartotek_frontend::config::FrontendConfig;
use kartotek_node::config::NodeConfig;
use kartotek_proto::v1::RegisterLocatorRequest;
use kartotek_testkit::config::NodeSpec;

/// The Kubernetes version the manifests are checked against (the oldest we support: the
/// StatefulSet's `ordinals` and the `apps.kubernetes.io/pod-index` label need 1.31 and 1.28).
const KUBERNETES_VERSION: &str = "1.33.0";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn deploy(path: &str) -> PathBuf {
    repo().join("deploy").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The external tool `name`: `$env_var`, else `name` on `PATH`. `None` (with a message)
/// outside CI when neither exists; a panic under CI.
fn tool(env_var: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{env_var}={} is not a file", p.display());
        return Some(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if on_path.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is missing (set {env_var}; .ci/run installs it)"
        );
        eprintln!("SKIPPED: {name} not found (set {env_var} or run .ci/run)");
    }
    on_path
}

/// Runs `cmd`; returns (success, stdout + stderr).
fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The Kubernetes manifests (every `.yaml` in `deploy/k8s/` but the kustomization, which is
/// not an API object).
fn manifests() -> Vec<PathBuf> {
    yaml_files_in("k8s")
}

/// The restore's manifests (`deploy/k8s/restore/`): applied by hand during a restore
/// (RUNBOOK §6.3), never by the kustomization.
fn restore_manifests() -> Vec<PathBuf> {
    yaml_files_in("k8s/restore")
}

/// Every `.yaml` in `deploy/<dir>` but a kustomization.
fn yaml_files_in(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy(dir))
        .unwrap_or_else(|e| panic!("deploy/{dir}: {e}"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn kubernetes_manifests_pass_strict_schema_validation() {
    let files = manifests();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for needed in [
        "node-statefulset.yaml",
        "node-services.yaml",
        "node-pdb.yaml",
        "node-config.yaml",
        "frontend.yaml",
        "backup-cronjob.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == needed),
            "{needed} missing: {names:?}"
        );
    }
    // Every file the kustomization lists exists, and every manifest is listed.
    let kustomization = read(&deploy("k8s/kustomization.yaml"));
    for n in &names {
        assert!(
            kustomization.contains(n.as_str()),
            "{n} not in kustomization.yaml"
        );
    }
    // The restore's are not (applying them is a step of a restore).
    let restore = restore_manifests();
    let restore_names: Vec<String> = restore
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(restore_names, ["data-pvcs.yaml", "restore-job.yaml"]);
    assert!(!kustomization.contains("restore"), "{kustomization}");
    let Some(validate) = tool("CI_KUBERNETES_VALIDATE", "kubernetes-validate") else {
        return;
    };
    let (ok, out) = run(Command::new(&validate)
        .args(["--strict", "--no-warn", "-k", KUBERNETES_VERSION])
        .args(&files)
        .args(&restore));
    assert!(ok, "kubernetes-validate --strict failed:\n{out}");
    for n in names.iter().chain(&restore_names) {
        assert!(out.contains(n.as_str()), "{n} was not checked:\n{out}");
    }
    // The check can fail: a misspelt field is refused.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let text = read(&deploy("k8s/node-statefulset.yaml"))
        .replace("enableServiceLinks:", "enableServiceLink:");
    std::fs::write(&bad, text).unwrap();
    let (ok, out) = run(Command::new(&validate)
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .arg(&bad));
    assert!(!ok, "a misspelt field passed:\n{out}");
}

/// What the StatefulSet must keep (each a line of it).
#[test]
fn the_statefulset_keeps_ids_volumes_probes_and_security() {
    let text = read(&deploy("k8s/node-statefulset.yaml"));
    for needle in [
        "kind: StatefulSet",
        "serviceName: kartotek-node",
        "start: 1",
        "podManagementPolicy: Parallel",
        "enableServiceLinks: false",
        "fieldPath: metadata.labels['apps.kubernetes.io/pod-index']",
        "path: /readyz",
        "path: /healthz",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "volumeClaimTemplates:",
        "mountPath: /var/lib/kartotek",
        "secretName: kartotek-node-tls",
        "secretName: kartotek-api-tls",
    ] {
        assert!(
            text.contains(needle),
            "node-statefulset.yaml lacks {needle:?}"
        );
    }
    let services = read(&deploy("k8s/node-services.yaml"));
    assert!(services.contains("clusterIP: None"), "no headless Service");
    assert!(services.contains("publishNotReadyAddresses: true"));
    assert!(read(&deploy("k8s/node-pdb.yaml")).contains("maxUnavailable: 1"));
    let frontend = read(&deploy("k8s/frontend.yaml"));
    for needle in [
        "kind: Deployment",
        "path: /readyz",
        "enableServiceLinks: false",
    ] {
        assert!(frontend.contains(needle), "frontend.yaml lacks {needle:?}");
    }
}

/// The block scalar `key: |` of a ConfigMap in `yaml`, unindented.
fn config_map_entry(yaml: &str, key: &str) -> String {
    let head = format!("{key}: |");
    let mut lines = yaml.lines().skip_while(|l| l.trim() != head);
    let first = lines.next().unwrap_or_else(|| panic!("no {head}"));
    let indent = first.len() - first.trim_start().len();
    let mut out = String::new();
    for l in lines {
        let body_indent = l.len() - l.trim_start().len();
        if !l.trim().is_empty() && body_indent <= indent {
            break;
        }
        out.push_str(l.get(indent + 2..).unwrap_or(""));
        out.push('\n');
    }
    assert!(out.len() > 50, "{key} is nearly empty");
    out
}

/// Writes `text` to `dir/name` with the absolute paths it names moved under `dir` (the
/// configuration's files made, empty: `validate()` asks only that they exist).
fn relocated(text: &str, dir: &Path, name: &str) -> PathBuf {
    let root = dir.display().to_string();
    let text = text
        .replace("\"/etc/kartotek/", &format!("\"{root}/etc/"))
        .replace("\"/var/lib/kartotek", &format!("\"{root}/data"));
    for quoted in text.split('"').skip(1).step_by(2) {
        if quoted.starts_with(&format!("{root}/etc/")) {
            let p = Path::new(quoted);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
    }
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file
}

fn load_node(text: &str) -> NodeConfig {
    let dir = tempfile::tempdir().unwrap();
    let file = relocated(text, dir.path(), "node.toml");
    NodeConfig::load(Some(&file)).unwrap_or_else(|e| panic!("node config: {e}\n{text}"))
}

fn load_frontend(text: &str) -> FrontendConfig {
    let dir = tempfile::tempdir().unwrap();
    let file = relocated(text, dir.path(), "frontend.toml");
    FrontendConfig::load(Some(&file)).unwrap_or_else(|e| panic!("frontend config: {e}\n{text}"))
}

#[test]
fn example_and_configmap_configs_load_and_validate() {
    let node = load_node(&read(&deploy("node.example.toml")));
    assert!(node.auth.required && node.tls.raft.is_some() && node.tls.api.is_some());
    let frontend = load_frontend(&read(&deploy("frontend.example.toml")));
    assert!(frontend.tls.is_some() && frontend.cluster.ca_file.is_some());
    assert!(!frontend.citizen_login.dev_login);
    assert!(
        frontend.innsyn.oidc.is_some(),
        "the production citizen login"
    );

    let k8s_node = load_node(&config_map_entry(
        &read(&deploy("k8s/node-config.yaml")),
        "node.toml",
    ));
    assert!(
        k8s_node.data_dir.ends_with("data"),
        "{:?}",
        k8s_node.data_dir
    );
    assert!(k8s_node.tls.raft.is_some() && k8s_node.auth.required);
    let k8s_frontend = load_frontend(&config_map_entry(
        &read(&deploy("k8s/frontend.yaml")),
        "frontend.toml",
    ));
    assert!(k8s_frontend.cluster.ca_file.is_some());
    // The frontend's issuer is what the nodes trust.
    assert_eq!(
        k8s_node.auth.trusted_issuers[0].issuer,
        k8s_frontend.public_base_url
    );

    // Every KARTOTEK_* variable the StatefulSet sets overrides a key that exists (the
    // optional keys the ConfigMap leaves to the environment filled in, so they serialize).
    let mut filled = k8s_node.clone();
    filled.advertise_addr = Some("kartotek-1.example:7401".into());
    filled.raft_advertise_addr = Some("kartotek-1.example:7501".into());
    let settings = toml::Value::try_from(&filled).unwrap();
    let statefulset = read(&deploy("k8s/node-statefulset.yaml"));
    let vars: Vec<&str> = statefulset
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- name: KARTOTEK_"))
        .collect();
    assert!(vars.len() >= 5, "{vars:?}");
    for var in vars {
        let mut v = &settings;
        for key in var.to_lowercase().split("__") {
            v = v
                .get(key)
                .unwrap_or_else(|| panic!("KARTOTEK_{var}: no key {key} in NodeConfig"));
        }
    }
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let Some(analyze) = tool("CI_SYSTEMD_ANALYZE", "systemd-analyze") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let binary = env!("CARGO_BIN_EXE_kartotek");
    let mut units = Vec::new();
    for (unit, wants) in [
        ("kartotek-node.service", "ReadWritePaths=/var/lib/kartotek"),
        (
            "kartotek-frontend.service",
            "ExecStart=/usr/local/bin/kartotek frontend",
        ),
        ("kartotek-backup.service", "verify-backup --metrics-file"),
    ] {
        let text = read(&deploy(&format!("systemd/{unit}")));
        for option in [
            wants,
            "ProtectSystem=strict",
            "ProtectHome=true",
            "NoNewPrivileges=true",
            "PrivateTmp=true",
            "PrivateDevices=true",
            "CapabilityBoundingSet=\n",
            "RestrictAddressFamilies=",
            "SystemCallFilter=@system-service",
            "LimitNOFILE=",
        ] {
            assert!(text.contains(option), "{unit} lacks {option:?}");
        }
        // verify wants the ExecStart binary to exist: the one under test.
        let path = dir.path().join(unit);
        std::fs::write(&path, text.replace("/usr/local/bin/kartotek", binary)).unwrap();
        units.push(path);
    }
    let timer = dir.path().join("kartotek-backup.timer");
    std::fs::write(&timer, read(&deploy("systemd/kartotek-backup.timer"))).unwrap();
    let (ok, out) = run(Command::new(&analyze)
        .args(["verify", "--man=no"])
        .args(&units)
        .arg(&timer));
    assert!(
        ok && out.trim().is_empty(),
        "systemd-analyze verify:\n{out}"
    );
    // It can fail: an unknown key is reported (exit code 0, but a message).
    let bad = dir.path().join("bad.service");
    let text = read(&units[0]).replace("ProtectHome=", "ProtectHom=");
    std::fs::write(&bad, text).unwrap();
    let (_, out) = run(Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(&bad));
    assert!(out.contains("ProtectHom"), "a misspelt key passed:\n{out}");
}

/// The shell script of the (first) container's `args: - |` in `yaml`, unindented.
fn container_script(yaml: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != "args:");
    lines.next().expect("args:");
    let first = lines.next().expect("the script");
    assert_eq!(first.trim(), "- |", "args is not a block scalar");
    let indent = first.len() - first.trim_start().len() + 2;
    let mut out = String::new();
    for l in lines {
        if !l.trim().is_empty() && l.len() - l.trim_start().len() < indent {
            break;
        }
        out.push_str(l.get(indent..).unwrap_or(""));
        out.push('\n');
    }
    out
}

/// A stand-in `kartotek` in `dir` that logs its arguments to `$LOG` and does what the real one
/// does to the files the Kubernetes scripts look at (`FAIL_BACKUP`, `FAIL_VERIFY`: fail that
/// step; a failed verify writes no metrics file, as the real one).
fn fake_kartotek(dir: &Path) {
    let path = dir.join("kartotek");
    std::fs::write(
        &path,
        r#"#!/bin/sh
echo "$*" >>"$LOG"
case "$1 $2" in
  "admin backup") mkdir -p "$4" && : >"$4/manifest.json"; exit "${FAIL_BACKUP:-0}" ;;
  "admin verify-backup")
    [ "${FAIL_VERIFY:-0}" = 0 ] || exit 1
    if [ "$3" = --metrics-file ]; then echo verified >"$4"; fi ;;
  "admin restore") ;;
  *) exit 9 ;;
esac
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The Kubernetes backup CronJob's script does what the systemd unit's does: a dated backup,
/// verified with the metrics file, the newest 14 kept; a failed backup removes its directory
/// and prunes nothing, and so does one that does not verify (which stays for inspection). The
/// restore Job's script refuses to run without a complete backup named, and restores nodes
/// 1, 2, 3 into the volume roots after verifying.
#[test]
fn the_kubernetes_backup_and_restore_scripts_keep_their_contract() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    fake_kartotek(&bin);
    let backups = dir.path().join("backups");
    for day in 1..=15 {
        std::fs::create_dir_all(backups.join(format!("202611{day:02}T023000Z"))).unwrap();
    }
    let log = dir.path().join("log");
    let cron = read(&deploy("k8s/backup-cronjob.yaml"));
    let script = container_script(&cron).replace("/backups", &backups.to_string_lossy());
    assert!(script.contains("verify-backup --metrics-file"), "{script}");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run_backup = |envs: &[(&str, &str)]| {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-euc", &script])
            .env("PATH", &path)
            .env("LOG", &log)
            .env("KARTOTEK_BACKUP_KEEP", "14");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        run(&mut cmd)
    };
    let dated = |b: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(b)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with('Z'))
            .collect();
        v.sort();
        v
    };
    let metrics = backups.join("kartotek_backup.prom");

    // A failed backup: its directory is gone, nothing pruned, no metrics, the Job fails.
    let (ok, out) = run_backup(&[("FAIL_BACKUP", "1")]);
    assert!(!ok, "{out}");
    assert_eq!(dated(&backups).len(), 15, "{out}");
    assert!(!metrics.exists());
    // One that does not verify: kept for inspection, nothing pruned, no metrics, fails.
    let (ok, out) = run_backup(&[("FAIL_VERIFY", "1")]);
    assert!(!ok, "{out}");
    let after = dated(&backups);
    assert_eq!(after.len(), 16, "{out}");
    assert!(!metrics.exists());
    let unverified = after.last().unwrap().clone();
    assert!(unverified.starts_with("20"), "{after:?}");
    std::fs::remove_dir_all(backups.join(&unverified)).unwrap();
    std::thread::sleep(Duration::from_millis(1100)); // a new second: a new directory name
    // A good one: dated, verified with the metrics file, the newest 14 kept.
    let (ok, out) = run_backup(&[]);
    assert!(ok, "{out}");
    let kept = dated(&backups);
    assert_eq!(kept.len(), 14, "{kept:?}");
    assert_eq!(
        kept[0], "20261103T023000Z",
        "the oldest two pruned: {kept:?}"
    );
    assert!(!kept.last().unwrap().starts_with("202611"), "{kept:?}");
    assert_eq!(read(&metrics).trim(), "verified");
    let calls = read(&log);
    assert!(
        calls.contains(&format!(
            "admin verify-backup --metrics-file {} {}",
            metrics.display(),
            backups.join(kept.last().unwrap()).display()
        )),
        "{calls}"
    );

    // The restore Job.
    let job = read(&deploy("k8s/restore/restore-job.yaml"));
    let data = dir.path().join("data");
    let script = container_script(&job)
        .replace("/backups", &backups.to_string_lossy())
        .replace("/data/", &format!("{}/", data.display()));
    std::fs::write(&log, "").unwrap();
    let restore = |backup: &str| {
        run(Command::new("/bin/sh")
            .args(["-euc", &script])
            .env("PATH", &path)
            .env("LOG", &log)
            .env("BACKUP", backup)
            .env("NODES", "1 2 3"))
    };
    let (ok, out) = restore("");
    assert!(!ok && out.contains("set 'backup'"), "{out}");
    let (ok, out) = restore("20261101T023000Z"); // pruned: no such backup
    assert!(!ok && out.contains("no complete backup"), "{out}");
    assert_eq!(read(&log), "", "nothing ran");
    let newest = kept.last().unwrap();
    let (ok, out) = restore(newest);
    assert!(ok, "{out}");
    let from = backups.join(newest);
    let mut want = format!("admin verify-backup {}\n", from.display());
    for n in 1..=3 {
        want.push_str(&format!(
            "admin restore --from {} --data-dir {}/{n} --node-id {n}\n",
            from.display(),
            data.display()
        ));
    }
    assert_eq!(read(&log), want);
}

#[test]
fn the_containerfile_builds_like_ci_and_runs_unprivileged() {
    let text = read(&deploy("Containerfile"));
    let instructions: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter(|l| !l.starts_with(' '))
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    let known = [
        "FROM",
        "RUN",
        "ENV",
        "WORKDIR",
        "COPY",
        "USER",
        "VOLUME",
        "EXPOSE",
        "ENTRYPOINT",
        "CMD",
        "ARG",
        "LABEL",
        "HEALTHCHECK",
    ];
    for i in &instructions {
        assert!(
            known.contains(i),
            "unknown instruction {i:?} (or a continuation without \\)"
        );
    }
    assert!(
        instructions.iter().filter(|i| **i == "FROM").count() >= 2,
        "not multi-stage"
    );
    // Continuation lines follow a line ending in a backslash.
    let lines: Vec<&str> = text.lines().collect();
    for w in lines.windows(2) {
        if w[1].starts_with(' ') && !w[1].trim().is_empty() {
            assert!(
                w[0].ends_with('\\'),
                "continuation without \\ after {:?}",
                w[0]
            );
        }
    }
    let user = text
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "runs as {user}"
    );
    assert!(text.contains("VOLUME [\"/var/lib/kartotek\"]"));
    let expose = text
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .expect("EXPOSE");
    for port in ["7401", "7501", "9401", "8080"] {
        assert!(
            expose.split_whitespace().any(|p| p == port),
            "{port} not exposed"
        );
    }
    // The builder installs what CI builds with.
    let ci = read(&repo().join(".ci/run"));
    for package in [
        "libjemalloc-dev",
        "libclang1-14",
        "libclang-common-14-dev",
        "clang-14",
    ] {
        assert!(ci.contains(package) && text.contains(package), "{package}");
    }
}

#[test]
fn prometheus_rules_pass_promtool() {
    let Some(promtool) = tool("CI_PROMTOOL", "promtool") else {
        return;
    };
    let (ok, out) = run(Command::new(promtool)
        .args(["check", "rules"])
        .arg(deploy("prometheus/alerts.yml")));
    assert!(ok, "promtool check rules:\n{out}");
}

/// Every `kartotek_<name>` token in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("kartotek_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()))
            .unwrap_or(tail.len());
        // Not part of a longer word (e.g. `xkartotek_`).
        let starts_word = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        if starts_word {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// The sample names a scrape can have: sample lines, and the series every `# TYPE` line
/// promises (a family with no children yet, e.g. append timeouts before the first one).
fn exposed_names(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let mut parts = t.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            for s in suffixes {
                names.insert(format!("{name}{s}"));
            }
        } else if !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

fn observability_node(spec: &mut NodeSpec) {
    spec.metrics_addr = Some(format!("127.0.0.1:{}", free_port()));
    // The request layer logs each finished call at debug: an access log.
    spec.log_filter = "info,kartotek_node::api::layer=debug".into();
}

/// One node with `--log-format json`: its log lines are JSON, and a write's line carries its
/// request id on the request span; its /metrics has every metric the dashboard and the
/// alert rules query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_ids_and_dashboard_metrics_exist() {
    let mut cluster = TestCluster::start(1, observability_node).await;
    {
        let node = &mut cluster.nodes[0];
        node.process
            .launch
            .args
            .extend(["--log-format".into(), "json".into()]);
        ok(node.process.restart());
    }
    cluster.leader().await;
    let node_id = cluster.nodes[0].id;
    let metrics_addr = cluster.nodes[0]
        .metrics_addr
        .clone()
        .expect("metrics address");
    let request_id = format!("deploy-files-{}", uuid::Uuid::new_v4());
    let client = cluster.client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = client
            .register_locator(RegisterLocatorRequest {
                request_id: request_id.clone(),
                patient: patient(7),
                org: org(7),
                system: "observability".into(),
                ..Default::default()
            })
            .await;
        match answer {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("register: {e}; again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("register: {e}"),
        }
    }

    // The log after the restart: every line JSON, one of them the write's, in its span.
    let log = cluster.log(node_id);
    let (_, after) = log
        .rsplit_once("=== kartotek-testkit: starting")
        .expect("restart marker");
    let json_lines: Vec<&str> = after
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(json_lines.len() > 3, "{after}");
    let mut found = false;
    for line in &json_lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{after}"));
        assert!(
            v.get("timestamp").is_some() && v.get("level").is_some(),
            "{line}"
        );
        // `span`: the event's own (innermost) span; `spans`: the spans entered around it.
        let spans = v["spans"].as_array().into_iter().flatten();
        let in_request = std::iter::once(&v["span"]).chain(spans).any(|s| {
            s["name"] == "request"
                && s["request_id"] == request_id.as_str()
                && s["method"] == "Locator/Register"
        });
        found |= in_request;
    }
    assert!(
        found,
        "no line in the request span of {request_id}:\n{after}"
    );

    // Every metric the dashboard and the alert rules name exists.
    let scrape = metrics_text(&metrics_addr);
    let exposed = exposed_names(&scrape);
    let dashboard = read(&deploy("grafana/kartotek.json"));
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    let exprs: Vec<&str> = parsed["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() >= 20, "{} queries", exprs.len());
    let alerts = read(&deploy("prometheus/alerts.yml"));
    let mut missing = Vec::new();
    for (file, text) in [("kartotek.json", &dashboard), ("alerts.yml", &alerts)] {
        let names = metric_names(text);
        assert!(names.len() > 10, "{file}: {names:?}");
        for n in names {
            // The backup series come from `verify-backup --metrics-file`, not a node (the
            // backup test checks that file).
            if file == "alerts.yml" && kartotek_cli::backup::METRIC_NAMES.contains(&n.as_str()) {
                continue;
            }
            if !exposed.contains(&n) {
                missing.push(format!("{file}: {n}"));
            }
        }
    }
    assert!(missing.is_empty(), "not on /metrics: {missing:?}\n{scrape}");
    // What the issue asks an operator to see is on the dashboard.
    let queried = metric_names(&exprs.join("\n"));
    for needed in [
        "kartotek_raft_term",
        "kartotek_raft_leader_changes_total",
        "kartotek_raft_commit_lag_entries",
        "kartotek_raft_apply_lag_entries",
        "kartotek_raft_append_timeouts_total",
        "kartotek_storage_wal_sync_duration_seconds_bucket",
        "kartotek_raft_snapshots_sent_total",
        "kartotek_storage_snapshots_installed_total",
        "kartotek_api_request_duration_seconds_bucket",
        "kartotek_raft_entry_proposals_bucket",
        "kartotek_audit_journal_events",
        "kartotek_audit_journal_age_ms",
        "kartotek_storage_write_stall_seconds_total",
        "kartotek_storage_compaction_written_bytes_total",
        "kartotek_storage_data_dir_free_bytes",
    ] {
        assert!(
            queried.contains(needed),
            "the dashboard does not query {needed}"
        );
    }
    // The write was counted with its method and code, latency included.
    assert!(
        scrape.lines().any(
            |l| l.starts_with("kartotek_api_request_duration_seconds_count")
                && l.contains("method=\"Locator/Register\"")
                && l.contains("code=\"Ok\"")
        ),
        "{scrape}"
    );
    let value =
        |name: &str| metric_value(&scrape, name).unwrap_or_else(|| panic!("no {name}:\n{scrape}"));
    assert!(value("kartotek_raft_leader_changes_total") >= 1.0);
    assert_eq!(value("kartotek_raft_has_leader"), 1.0);
    assert!(value("kartotek_storage_data_dir_free_bytes") > 0.0);
    assert!(
        value("kartotek_storage_data_dir_size_bytes")
            >= value("kartotek_storage_data_dir_free_bytes")
    );
    assert!(value("kartotek_storage_wal_sync_duration_seconds_count") >= 1.0);
    assert!(value("kartotek_raft_entry_proposals_count") >= 1.0);
}

#[test]
fn metric_names_are_found_in_queries_and_scrapes() {
    let q =
        "rate(kartotek_a_total[5m]) / xkartotek_no + histogram_quantile(0.9, kartotek_b_bucket)";
    assert_eq!(
        metric_names(q).into_iter().collect::<Vec<_>>(),
        ["kartotek_a_total", "kartotek_b_bucket"]
    );
    let scrape = "# TYPE kartotek_c counter\n# TYPE kartotek_h histogram\nkartotek_g{x=\"1\"} 2\n";
    let names = exposed_names(scrape);
    for n in [
        "kartotek_c_total",
        "kartotek_h_bucket",
        "kartotek_h_count",
        "kartotek_g",
    ] {
        assert!(names.contains(n), "{n}: {names:?}");
    }
    assert!(!names.contains("kartotek_c"));
}
