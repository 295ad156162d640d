//! `kartotek admin bootstrap`: the first operator client of a production cluster, without
//! a window in which the nodes take calls without tokens.
//!
//! Every call needs a token with `kartotek:admin` from an issuer the nodes trust, and the
//! token service issues tokens only to clients registered in the cluster — which has none
//! yet. Whoever holds the token service's signing keys (`token.signing_keys_file` of the
//! frontends, the private half of the JWK Set every node's `[auth]` trusts) can sign any
//! token of that issuer anyway, so this command does just that, once, on the operator's host:
//!
//! 1. signs itself admin tokens (client id [`BOOTSTRAP_CLIENT_ID`], scopes `kartotek:admin`
//!    and `kartotek:clients.read`, each living [`BOOTSTRAP_TOKEN_LIFETIME_S`]) with those keys
//!    as `--issuer`; they never leave the process;
//! 2. with `--init`, initialises the cluster of `--endpoints` (as `admin init`);
//! 3. registers the operator client `--client-id` of `--org` with a fresh P-256 key and the
//!    scopes of `--scope` (refused if that client id is registered already);
//! 4. writes its client file (the private key; mode 0600, written to a temporary name, synced
//!    and renamed; refused if `--out` exists), which `kartotek --client-file` then uses
//!    through the token service like any client.
//!
//! The registration is audited in the cluster as made by `client:kartotek-bootstrap`. Run it
//! where the signing keys already are (the keys stay in their file; nothing is printed of
//! them), then keep the client file offline.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use kartotek_auth::{Issuer, SigningKey, SigningKeySet, scopes};
use kartotek_client::{ClientConfig, ClientError, ClientFile, KartotekClient, SelfIssued};
use kartotek_proto::v1::{ClientRequest, GetClientRequest};

use crate::GlobalArgs;

/// The client id the bootstrap's own tokens name (and the audit log shows).
pub const BOOTSTRAP_CLIENT_ID: &str = "kartotek-bootstrap";
/// Life of the bootstrap's own tokens, seconds.
pub const BOOTSTRAP_TOKEN_LIFETIME_S: i64 = 300;
/// The operator client's scopes unless `--scope` says otherwise.
pub const OPERATOR_SCOPES: [&str; 3] = [scopes::ADMIN, scopes::CLIENTS_READ, scopes::AUDIT_READ];

/// Arguments of `admin bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The token service's signing key set (`token.signing_keys_file` of the frontends).
    #[arg(long)]
    pub signing_keys: PathBuf,
    /// The token issuer the nodes trust (the frontends' `token.issuer` or
    /// `public_base_url`), e.g. `https://kartotek.example`.
    #[arg(long)]
    pub issuer: String,
    /// The audience the nodes expect (`auth.trusted_issuers.audience`).
    #[arg(long, default_value = "kartotek")]
    pub audience: String,
    /// The operator client's id.
    #[arg(long, default_value = "ops-admin")]
    pub client_id: String,
    /// The operator's organisation number.
    #[arg(long)]
    pub org: String,
    /// The operator client's allowed scopes (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = OPERATOR_SCOPES.map(String::from))]
    pub scope: Vec<String>,
    /// Where to write the operator's client file (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// The token endpoint the client file names (default `<issuer>/connect/token`).
    #[arg(long)]
    pub token_endpoint: Option<String>,
    /// Initialise the cluster of `--endpoints` first (as `admin init`).
    #[arg(long)]
    pub init: bool,
}

/// Runs `admin bootstrap`.
pub async fn run(cli: &GlobalArgs, a: &BootstrapArgs) -> anyhow::Result<()> {
    if a.out.exists() {
        bail!("{} exists already; choose another --out", a.out.display());
    }
    let issuer = a.issuer.trim_end_matches('/').to_owned();
    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
        bail!("--issuer must be an http:// or https:// URL (the issuer the nodes trust)");
    }
    let keys = SigningKeySet::from_file(&a.signing_keys)
        .with_context(|| format!("reading --signing-keys {}", a.signing_keys.display()))?;
    let tokens = SelfIssued::new(
        Issuer::new(issuer.clone(), keys, BOOTSTRAP_TOKEN_LIFETIME_S),
        &a.audience,
        BOOTSTRAP_CLIENT_ID,
        &[scopes::ADMIN, scopes::CLIENTS_READ],
    );
    let config = ClientConfig {
        endpoints: cli.endpoints.clone(),
        ca_file: cli.ca_file.clone(),
        ..ClientConfig::default()
    };
    let admin = KartotekClient::with_tokens(config, Arc::new(tokens))?;
    admin.set_fail_fast_on_refusal(Some(crate::REFUSED_FAIL_FAST));
    if a.init {
        init(cli, &admin).await?;
    }
    match admin
        .get_client(GetClientRequest {
            client_id: a.client_id.clone(),
            ..Default::default()
        })
        .await
    {
        Ok(_) => bail!(
            "client {} is registered already: bootstrap makes the first operator client once \
             (use that client's file, or another --client-id)",
            a.client_id
        ),
        Err(ClientError::NotFound(_)) => {}
        Err(e) => {
            return Err(e).context(
                "asking the cluster for the client (do the nodes trust --issuer with these keys?)",
            );
        }
    }
    let key = SigningKey::generate_es256()?;
    admin
        .register_client(ClientRequest {
            client_id: a.client_id.clone(),
            org: a.org.clone(),
            public_keys: vec![key.public_key().jwk().to_string()],
            allowed_scopes: a.scope.clone(),
            ..Default::default()
        })
        .await
        .with_context(|| format!("registering {}", a.client_id))?;
    let file = ClientFile {
        client_id: a.client_id.clone(),
        issuer: issuer.clone(),
        token_endpoint: a
            .token_endpoint
            .clone()
            .unwrap_or_else(|| format!("{issuer}/connect/token")),
        scope: None,
        private_jwk: key.private_jwk(),
        description: Some(format!(
            "operator client of organisation {}, made by kartotek admin bootstrap",
            a.org
        )),
    };
    write_private(&a.out, serde_json::to_string_pretty(&file)?.as_bytes())?;
    if cli.json {
        return crate::output::print_json(&serde_json::json!({
            "client_id": a.client_id,
            "org": a.org,
            "scopes": a.scope,
            "client_file": a.out,
        }));
    }
    println!(
        "registered client {} (organisation {}, scopes {}); its client file: {} (mode 0600)",
        a.client_id,
        a.org,
        a.scope.join(","),
        a.out.display()
    );
    println!(
        "use it: kartotek --client-file {} admin status   (then keep the file offline)",
        a.out.display()
    );
    Ok(())
}

/// `admin init` with the bootstrap's client.
async fn init(cli: &GlobalArgs, admin: &KartotekClient) -> anyhow::Result<()> {
    let resp = crate::admin::init_cluster(cli, admin)
        .await
        .context("--init (leave it out if the cluster is initialised)")?;
    println!(
        "initialised: voters {}",
        resp.members
            .iter()
            .map(|m| m.node_id.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok(())
}

/// Writes `bytes` to `path`, readable by the owner only: a temporary name (`path` with the
/// extension `tmp`), synced, renamed over `path`. Client files with private keys are
/// written so (here and by `kartotek dev`).
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
