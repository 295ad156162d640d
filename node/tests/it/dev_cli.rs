//! The README quick start as a test: `kartotek dev` runs a 3-process cluster; the CLI, with
//! the health service's client file `kartotek dev` wrote, registers and looks up an entry
//! (without one: "unauthenticated"; `admin remove` with it: "permission denied"); `kill -9` of the leader's pid from `cluster.json` is
//! survived; citizens log in at the dev login and use the token exchange (own data, acting
//! for a child by representation, refusals); DPoP-bound tokens from the dev frontend work with
//! `--dpop` and are refused without a proof, with one for another method and with a replayed
//! one; `kartotek admin status` shows the new leader; the dev frontend answers
//! `GET /healthz` at the address `cluster.json` names; Ctrl-C stops everything.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{org, patient};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// `kartotek <args>` against `endpoints`, with `client_file` as KARTOTEK_CLIENT_FILE (None:
/// no credentials at all).
fn kartotek(endpoints: &str, client_file: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kartotek"));
    cmd.args(args)
        .env("KARTOTEK_ENDPOINTS", endpoints)
        .env_remove("KARTOTEK_CLIENT_FILE")
        .env_remove("KARTOTEK_TOKEN")
        .stdin(Stdio::null());
    if let Some(f) = client_file {
        cmd.env("KARTOTEK_CLIENT_FILE", f);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("running kartotek: {e}"))
}

/// The command failed and its stderr says `what`.
fn fails_with(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(what),
        "expected a failure saying {what:?}, got {}: {stderr}",
        out.status
    );
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "command failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn free_base() -> u16 {
    // Three consecutive free ports, all taken from the harness's allocator (so that the next
    // base it hands out cannot overlap these).
    for _ in 0..200 {
        let base = common::free_port();
        if (1..3).all(|i| common::free_port() == base + i) {
            return base;
        }
    }
    panic!("no three consecutive free ports");
}

/// `GET http://{addr}{path}` over a plain TCP connection: (status code, body).
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    http_exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

/// `POST http://{addr}{path}` of a URL-encoded `form` over a plain TCP connection: (status
/// code, body).
fn http_post_form(addr: &str, path: &str, form: &str) -> Option<(u16, String)> {
    http_exchange(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    )
}

/// Sends one HTTP/1.1 `request` to `addr` and reads the answer to its end: (status, body).
fn http_exchange(addr: &str, request: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let code = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}

/// One client assertion of `client` sent twice to the dev frontend's token endpoint: a token
/// the first time, `invalid_client` "already used" the second (the cluster's token ledger).
fn replayed_assertion_is_refused(frontend_addr: &str, client: &Path) {
    let file = kartotek_client::ClientFile::load(client).unwrap_or_else(|e| panic!("{e}"));
    let key = file.signing_key().unwrap_or_else(|e| panic!("{e}"));
    let now_s = kartotek_domain::Timestamp::now().0.div_euclid(1000);
    let assertion =
        kartotek_auth::sign_client_assertion(&key, &file.client_id, &file.issuer, now_s, 60)
            .unwrap_or_else(|e| panic!("{e}"));
    let form = format!(
        "grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}",
        "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
    );
    let first = http_post_form(frontend_addr, "/connect/token", &form);
    assert_eq!(first.as_ref().map(|a| a.0), Some(200), "{first:?}");
    let again = http_post_form(frontend_addr, "/connect/token", &form);
    match again {
        Some((401, body)) => assert!(
            body.contains("invalid_client") && body.contains("already used"),
            "{body}"
        ),
        other => panic!("a replayed client assertion: {other:?}"),
    }
}

fn cluster_file(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("cluster.json")).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

fn leader_of(endpoints: &str, admin: &Path) -> Option<u64> {
    leader_and_term(endpoints, admin).map(|(l, _)| l)
}

/// The leader some node reports, with that node's term (asked with the admin client).
fn leader_and_term(endpoints: &str, admin: &Path) -> Option<(u64, u64)> {
    let out = kartotek(endpoints, Some(admin), &["admin", "status", "--json"]);
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.as_array()?
        .iter()
        .filter_map(|e| {
            let s = e.get("status")?;
            Some((s.get("leader_id")?.as_u64()?, s.get("term")?.as_u64()?))
        })
        .next()
}

#[test]
fn dev_cluster_quick_start_survives_leader_kill() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("dev");
    let base = free_base();
    let metrics_base = free_base();
    let raft_base = free_base();
    let frontend_addr = format!("127.0.0.1:{}", common::free_port());
    let endpoints = (0..3)
        .map(|i| format!("127.0.0.1:{}", base + i))
        .collect::<Vec<_>>()
        .join(",");
    let mut dev = Command::new(env!("CARGO_BIN_EXE_kartotek"))
        .args(["dev", "--data-dir"])
        .arg(&data)
        .args([
            "--base-port",
            &base.to_string(),
            "--metrics-base-port",
            &metrics_base.to_string(),
            "--raft-base-port",
            &raft_base.to_string(),
            "--frontend-addr",
            &frontend_addr,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let guard = scopeguard(dev.id());
    let service = data.join("clients/health-service.json");
    let admin = data.join("clients/admin.json");

    // Up: cluster.json says initialised with three pids, and there is a leader.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let cf = cluster_file(&data);
        let pids = cf["nodes"]
            .as_array()
            .map(|n| n.iter().filter(|n| n["pid"].is_u64()).count());
        if cf["initialized"] == true && pids == Some(3) && leader_of(&endpoints, &admin).is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dev cluster did not come up: {cf}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // The frontend: cluster.json names it, with a pid, and it answers /healthz.
    let cf = cluster_file(&data);
    assert_eq!(
        cf["frontend"]["http"],
        format!("http://{frontend_addr}"),
        "{cf}"
    );
    assert!(cf["frontend"]["pid"].is_u64(), "{cf}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((code, body)) = http_get(&frontend_addr, "/healthz") {
            assert_eq!(code, 200, "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the frontend never answered /healthz"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let p = patient(42);
    let o = org(42);
    let out = kartotek(
        &endpoints,
        Some(&service),
        &[
            "locator",
            "register",
            "--patient",
            &p,
            "--org",
            &o,
            "--system",
            "dips-arena",
            "--category",
            "Observation,Condition",
            "--json",
        ],
    );
    let v = json(&out);
    assert_eq!(v["changed"], true);
    let v = json(&kartotek(
        &endpoints,
        Some(&service),
        &["locator", "lookup", "--patient", &p, "--json"],
    ));
    assert_eq!(v["entries"][0]["system"], "dips-arena");
    assert_eq!(v["entries"][0]["status"], "active");

    // Without credentials: a clear "unauthenticated" and the hint to the export line.
    let lookup = ["locator", "lookup", "--patient", p.as_str(), "--json"];
    let out = kartotek(&endpoints, None, &lookup);
    fails_with(&out, "unauthenticated");
    fails_with(&out, "KARTOTEK_CLIENT_FILE");
    // A token signed by a key nobody trusts (a client file of another dev cluster) is not
    // taken either: the token service refuses the unknown client.
    let stranger = dir.path().join("stranger.json");
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&service).unwrap_or_default())
            .unwrap_or_else(|e| panic!("client file: {e}"));
    file["client_id"] = "nobody".into();
    std::fs::write(&stranger, file.to_string()).unwrap_or_else(|e| panic!("{e}"));
    fails_with(
        &kartotek(&endpoints, Some(&stranger), &lookup),
        "unknown client",
    );
    // The health service may not administer the cluster; membership stays as it was.
    let out = kartotek(
        &endpoints,
        Some(&service),
        &["admin", "remove", "--node-id", "3"],
    );
    fails_with(&out, "permission denied");
    fails_with(&out, "kartotek:admin");
    let status = json(&kartotek(
        &endpoints,
        Some(&admin),
        &["admin", "status", "--json"],
    ));
    let voters = status[0]["status"]["members"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["voter"] == true).count());
    assert_eq!(voters, Some(3), "{status}");
    // `kartotek token` prints a compact JWT for curl/grpcurl.
    let out = kartotek(&endpoints, Some(&service), &["token"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
    fails_with(
        &kartotek(
            &endpoints,
            Some(&service),
            &["token", "--scope", "kartotek:admin"],
        ),
        "invalid_scope",
    );
    let audit = json(&kartotek(
        &endpoints,
        Some(&service),
        &["audit", "query", "--patient", &p, "--json"],
    ));
    assert_eq!(
        audit["events"][0]["actor"], "client:dev-health-service",
        "{audit}"
    );

    citizen_flows(&endpoints, &service, &data.join("clients/citizen-app.json"));
    dpop_flows(&endpoints, &service, &p, &frontend_addr);
    replayed_assertion_is_refused(&frontend_addr, &service);

    // kill -9 the leader by its pid from cluster.json.
    let (leader, old_term) =
        leader_and_term(&endpoints, &admin).unwrap_or_else(|| panic!("no leader"));
    let cf = cluster_file(&data);
    let pid = cf["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == leader))
        .and_then(|n| n["pid"].as_i64())
        .unwrap_or_else(|| panic!("no pid for leader {leader} in {cf}"));
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    let killed_at = Instant::now();
    loop {
        let out = kartotek(
            &endpoints,
            Some(&service),
            &["locator", "lookup", "--patient", &p, "--json"],
        );
        if out.status.success() {
            let v = json(&out);
            assert_eq!(v["entries"][0]["system"], "dips-arena");
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "lookup did not recover after leader kill"
        );
    }
    let recovered = killed_at.elapsed();
    eprintln!(
        "lookup answered again {} ms after kill -9 of the leader",
        recovered.as_millis()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Either a new election happened, or the supervisor restarted the killed leader
        // (new pid) and it resumed leadership in its term before the followers' election
        // timeout ran out (legal in Raft: its vote is on disk).
        let restarted = cluster_file(&data)["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["id"] == leader))
            .and_then(|n| n["pid"].as_i64())
            .is_some_and(|p| p != pid);
        if let Some((l, term)) = leader_and_term(&endpoints, &admin)
            && (term > old_term || (l == leader && restarted))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "admin status never showed a leader after the kill (old {leader} in term {old_term}): {}",
            String::from_utf8_lossy(
                &kartotek(&endpoints, Some(&admin), &["admin", "status", "--json"]).stdout
            )
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let table = kartotek(&endpoints, Some(&admin), &["admin", "status"]);
    assert!(table.status.success());
    assert!(String::from_utf8_lossy(&table.stdout).contains("leader"));

    // Bad input: clear error on stderr, non-zero exit.
    let bad = kartotek(
        &endpoints,
        Some(&service),
        &["locator", "lookup", "--patient", "123"],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("patient"));

    // Ctrl-C stops everything cleanly.
    let _ = kill(Pid::from_raw(dev.id() as i32), Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(s)) = dev.try_wait() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "kartotek dev did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "kartotek dev exited with {status}");
    let cf = cluster_file(&data);
    assert!(
        cf["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().all(|n| n["pid"].is_null()))
    );
    assert!(cf["frontend"]["pid"].is_null(), "{cf}");
    drop(guard);
}

/// The token exchange through the running dev cluster, as a citizen app would use it: a
/// citizen logs in at the dev login and reads their own records (not another person's);
/// acting for a child needs a representation from the population register; parental
/// responsibility gives nothing for a child of 16 or more; a reservation of the target service
/// refuses the token; and after the representation is revoked the exchange is refused.
fn citizen_flows(endpoints: &str, service: &Path, app: &Path) {
    let parent = common::person_born(1980, 0);
    let child = common::person_born(2020, 0);
    let grown = common::person_born(2008, 0);
    let as_citizen = |who: &str, act_for: Option<&str>, args: &[&str]| {
        let mut all = vec!["--dev-login", who];
        if let Some(p) = act_for {
            all.extend(["--act-for", p]);
        }
        all.extend(args);
        kartotek(endpoints, Some(app), &all)
    };
    let blocks_of = |p: &str| ["block", "list", "--patient", p, "--json"].map(str::to_owned);
    fn list(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    // Their own records; nobody else's.
    json(&as_citizen(&parent, None, &list(&blocks_of(&parent))));
    fails_with(
        &as_citizen(&parent, None, &list(&blocks_of(&child))),
        "own data",
    );
    // For the child: not without a representation.
    fails_with(
        &as_citizen(&parent, Some(&child), &list(&blocks_of(&child))),
        "may not act for",
    );
    let mut ids = Vec::new();
    for c in [&child, &grown] {
        let v = json(&kartotek(
            endpoints,
            Some(service),
            &[
                "representation",
                "grant",
                "--representative",
                &parent,
                "--represented",
                c,
                "--kind",
                "parental-responsibility",
                "--area",
                "*",
                "--json",
            ],
        ));
        ids.push(
            v["representation"]["id"]
                .to_string()
                .trim_matches('"')
                .to_owned(),
        );
    }
    json(&as_citizen(
        &parent,
        Some(&child),
        &list(&blocks_of(&child)),
    ));
    // A token for the child, as `kartotek token --act-for` prints it.
    let out = as_citizen(&parent, Some(&child), &["token", "--json"]);
    let token = json(&out)["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let payload = token.split('.').nth(1).unwrap_or_default();
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("claims of {token}: {e}"));
    assert_eq!(claims["sub"], child.as_str(), "{claims}");
    assert_eq!(claims["act"]["sub"], parent.as_str(), "{claims}");
    // Parental responsibility ends when the child turns 16.
    fails_with(
        &as_citizen(&parent, Some(&grown), &list(&blocks_of(&grown))),
        "may not act for",
    );
    // The child's reservation against a service refuses a token for that service.
    json(&as_citizen(
        &parent,
        Some(&child),
        &["token", "--audience", "kjernejournal", "--json"],
    ));
    json(&kartotek(
        endpoints,
        Some(service),
        &[
            "reservation",
            "add",
            "--patient",
            &child,
            "--service",
            "kjernejournal",
            "--json",
        ],
    ));
    fails_with(
        &as_citizen(
            &parent,
            Some(&child),
            &["token", "--audience", "kjernejournal"],
        ),
        "reservation",
    );
    // Revoked: no more tokens for the child.
    json(&kartotek(
        endpoints,
        Some(service),
        &[
            "representation",
            "revoke",
            "--represented",
            &child,
            "--id",
            &ids[0],
            "--json",
        ],
    ));
    fails_with(
        &as_citizen(&parent, Some(&child), &list(&blocks_of(&child))),
        "may not act for",
    );
}

/// Kills the dev supervisor (and so, by PDEATHSIG, its nodes) if the test panics.
struct Guard(u32);
fn scopeguard(pid: u32) -> Guard {
    Guard(pid)
}
impl Drop for Guard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = kill(Pid::from_raw(self.0 as i32), Signal::SIGKILL);
        }
    }
}

/// DPoP (RFC 9449) through `kartotek dev`: the CLI with `--dpop` gets a bound token from the
/// frontend and proves the key on each call; the same token is refused as Bearer, without a
/// proof, with a proof for another method, and with a proof used before.
fn dpop_flows(endpoints: &str, service: &Path, p: &str, frontend_addr: &str) {
    use kartotek_client::token::TokenSource;
    use kartotek_proto::v1::LookupLocatorRequest;
    use kartotek_proto::v1::locator_service_client::LocatorServiceClient;
    use tonic::metadata::MetadataValue;

    let v = json(&kartotek(
        endpoints,
        Some(service),
        &["--dpop", "locator", "lookup", "--patient", p, "--json"],
    ));
    assert_eq!(v["entries"][0]["system"], "dips-arena", "{v}");
    fails_with(
        &kartotek(endpoints, Some(service), &["--dpop", "token"]),
        "Bearer tokens",
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let source = kartotek_client::ClientCredentials::from_file(service)
            .and_then(|s| s.with_dpop())
            .unwrap_or_else(|e| panic!("{e}"));
        let (token, _) = source
            .fetch_token(None)
            .await
            .unwrap_or_else(|e| panic!("a DPoP-bound token from the dev frontend: {e}"));
        assert!(token.is_dpop());
        // The first proof had no server nonce (RFC 9449 §8): the frontend answered
        // use_dpop_nonce with one, and the client retried with it.
        let metrics = http_get(frontend_addr, "/metrics").map(|(_, b)| b);
        let nonce_asked = metrics.as_deref().unwrap_or_default().lines().any(|l| {
            l.starts_with("kartotek_frontend_token_errors_total{error=\"use_dpop_nonce\"}")
                && !l.ends_with(" 0")
        });
        assert!(nonce_asked, "no use_dpop_nonce counted: {metrics:?}");
        let key = source.dpop_key().unwrap_or_else(|| panic!("no key"));
        let first = endpoints.split(',').next().unwrap_or_default();
        let channel = tonic::transport::Channel::from_shared(format!("http://{first}"))
            .unwrap_or_else(|e| panic!("{e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let lookup = |scheme: &'static str, proof: Option<String>| {
            let channel = channel.clone();
            let token = token.secret().to_owned();
            let p = p.to_owned();
            async move {
                let mut r = tonic::Request::new(LookupLocatorRequest {
                    patient: p,
                    ..Default::default()
                });
                let md = r.metadata_mut();
                md.insert(
                    "authorization",
                    MetadataValue::try_from(format!("{scheme} {token}"))
                        .unwrap_or_else(|e| panic!("{e}")),
                );
                if let Some(proof) = proof {
                    md.insert(
                        "dpop",
                        MetadataValue::try_from(proof).unwrap_or_else(|e| panic!("{e}")),
                    );
                }
                LocatorServiceClient::new(channel)
                    .lookup(r)
                    .await
                    .map(|_| ())
                    .map_err(|s| (s.code(), s.message().to_owned()))
            }
        };
        let now_s = kartotek_domain::Timestamp::now().0.div_euclid(1000);
        let proof = |htu: &str| {
            kartotek_auth::dpop::sign_proof(&key, "POST", htu, Some(token.secret()), now_s)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let refused = |r: Result<(), (tonic::Code, String)>, want: &str| match r {
            Err((tonic::Code::Unauthenticated, m)) => assert!(m.contains(want), "{m}"),
            other => panic!("expected UNAUTHENTICATED ({want}), got {other:?}"),
        };
        const LOOKUP: &str = "https://kartotek/kartotek.v1.LocatorService/Lookup";
        refused(lookup("Bearer", None).await, "DPoP-bound");
        refused(lookup("DPoP", None).await, "needs a `dpop` proof");
        refused(
            lookup(
                "DPoP",
                Some(proof("https://kartotek/kartotek.v1.LocatorService/Retire")),
            )
            .await,
            "not this request",
        );
        let good = proof(LOOKUP);
        assert_eq!(lookup("DPoP", Some(good.clone())).await, Ok(()));
        refused(lookup("DPoP", Some(good)).await, "already used");
    });
}
