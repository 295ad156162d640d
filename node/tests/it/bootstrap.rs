//! `kartotek admin bootstrap` against a cluster that requires tokens: with the token
//! service's signing keys it registers the first operator client and writes its client file
//! (mode 0600), which then works through the token service (`kartotek --client-file …
//! admin status`). A second bootstrap of the same client, an existing `--out`, or keys the
//! nodes do not trust are refused, and write no file.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;

use common::{TestCluster, cli_command, free_port, org};
use kartotek_testkit::auth::TEST_ISSUER;

use super::token_service::{start_frontend, wait_listening};

fn run(endpoints: &str, args: &[&str]) -> (bool, String, String) {
    // No token of the harness: the bootstrap signs its own, the client file gets its own.
    let out = cli_command()
        .env_remove("KARTOTEK_TOKEN")
        .args(["--endpoints", endpoints])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_operator_client_needs_only_the_signing_keys() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _frontend = start_frontend(cluster.dir.path(), addr, cluster.addrs());
    wait_listening(addr).await;
    let endpoints = cluster.addrs().join(",");
    let keys = cluster.dir.path().join("frontend-signing-keys.json");
    let out = cluster.dir.path().join("ops-admin.json");
    let operator_org = org(95);
    let token_endpoint = format!("http://{addr}/connect/token");
    let bootstrap = |out: &std::path::Path, keys: &std::path::Path| {
        run(
            &endpoints,
            &[
                "admin",
                "bootstrap",
                "--signing-keys",
                &keys.display().to_string(),
                "--issuer",
                TEST_ISSUER,
                "--org",
                &operator_org,
                "--token-endpoint",
                &token_endpoint,
                "--out",
                &out.display().to_string(),
            ],
        )
    };

    let (ok, stdout, stderr) = bootstrap(&out, &keys);
    assert!(ok, "bootstrap: {stderr}");
    assert!(stdout.contains("registered client ops-admin"), "{stdout}");
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the client file is the operator's only");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(file["client_id"], "ops-admin");
    assert_eq!(file["token_endpoint"], token_endpoint);

    // The client file works through the token service, with admin rights.
    let file_arg = out.display().to_string();
    let (ok, stdout, stderr) = run(
        &endpoints,
        &["--client-file", &file_arg, "--json", "admin", "status"],
    );
    assert!(ok, "admin status with the new client: {stderr}");
    assert!(stdout.contains("\"role\""), "{stdout}");
    let (ok, stdout, stderr) = run(
        &endpoints,
        &[
            "--client-file",
            &file_arg,
            "--json",
            "client",
            "get",
            "--client-id",
            "ops-admin",
        ],
    );
    assert!(ok, "client get: {stderr}");
    assert!(stdout.contains(&operator_org), "{stdout}");

    // Once only, never over a file, and only with keys the nodes trust.
    let again = cluster.dir.path().join("ops-admin-2.json");
    let (ok, _, stderr) = bootstrap(&again, &keys);
    assert!(!ok && stderr.contains("registered already"), "{stderr}");
    assert!(!again.exists());
    let (ok, _, stderr) = bootstrap(&out, &keys);
    assert!(!ok && stderr.contains("exists already"), "{stderr}");
    let other_keys = cluster.dir.path().join("other-keys.json");
    std::fs::write(
        &other_keys,
        kartotek_auth::SigningKeySet::single(kartotek_auth::SigningKey::generate_es256().unwrap())
            .to_jwks_json(),
    )
    .unwrap();
    let stranger = cluster.dir.path().join("stranger.json");
    let (ok, _, stderr) = bootstrap(&stranger, &other_keys);
    assert!(!ok, "untrusted keys: {stderr}");
    assert!(stderr.contains("trust"), "{stderr}");
    assert!(!stranger.exists());
}
