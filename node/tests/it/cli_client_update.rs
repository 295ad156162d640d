//! `kartotek client update` (ClientRegistryService.Update) through the real binary.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::common;

use common::{TestCluster, org};

/// A public P-256 JWK (no private part).
const EC: &str = r#"{"kty":"EC","kid":"k2","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

/// Runs `kartotek --json ARGS` against `endpoints` and returns its one JSON document.
fn cli(endpoints: &str, args: &[&str]) -> serde_json::Value {
    let out = common::cli_command()
        .args(["--endpoints", endpoints, "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kartotek {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_update_replaces_settings_and_sets_the_status() {
    let cluster = TestCluster::start(1, |_| {}).await;
    let ep = cluster.nodes[0].addr.clone();
    let owner = org(81);
    let dir = tempfile::tempdir().unwrap();
    let jwk = dir.path().join("key.jwk");
    std::fs::write(&jwk, EC).unwrap();
    let jwk = jwk.to_str().unwrap();

    let registered = cli(
        &ep,
        &[
            "client",
            "register",
            "--client-id",
            "journal-app",
            "--org",
            &owner,
            "--jwk-file",
            jwk,
            "--scope",
            "kj/read",
        ],
    );
    assert_eq!(registered["changed"], true);
    assert_eq!(registered["clients"][0]["status"], "active");

    let updated = cli(
        &ep,
        &[
            "client",
            "update",
            "--client-id",
            "journal-app",
            "--org",
            &owner,
            "--jwk-file",
            jwk,
            "--scope",
            "kj/read,kj/write",
            "--third-party",
            "--status",
            "disabled",
        ],
    );
    assert_eq!(updated["changed"], true, "{updated}");
    let got = cli(&ep, &["client", "get", "--client-id", "journal-app"]);
    let c = &got["clients"][0];
    assert_eq!(c["status"], "disabled", "{got}");
    assert_eq!(
        c["allowed_scopes"],
        serde_json::json!(["kj/read", "kj/write"])
    );
    assert_eq!(c["approved_third_party"], true);

    // The same update again changes nothing; a bad status names the flag.
    let again = cli(
        &ep,
        &[
            "client",
            "update",
            "--client-id",
            "journal-app",
            "--org",
            &owner,
            "--jwk-file",
            jwk,
            "--scope",
            "kj/read,kj/write",
            "--third-party",
            "--status",
            "disabled",
        ],
    );
    assert_eq!(again["changed"], false, "{again}");
    let out = common::cli_command()
        .args([
            "--endpoints",
            &ep,
            "client",
            "update",
            "--client-id",
            "journal-app",
        ])
        .args(["--jwk-file", jwk, "--status", "paused"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--status: unknown value `paused`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
