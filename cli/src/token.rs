//! `kartotek token`: get one access token with the client file (`--client-file` or
//! `KARTOTEK_CLIENT_FILE`) and print it, for tools that take a bearer token (curl, grpcurl):
//!
//! ```text
//! grpcurl -plaintext -H "authorization: Bearer $(kartotek token)" 127.0.0.1:7401 list
//! ```
//!
//! With a citizen's login (`--login-token`, or `--dev-login ID` against `kartotek dev`) and a
//! citizen app's client file the token comes from the token exchange: for the citizen, or
//! with `--act-for P` for a person they represent.
//!
//! The token is printed alone on stdout (or, with `--json`, as the token service's answer:
//! `access_token`, `expires_in`, `scope`); nothing about it goes to logs.

use clap::Args;
use serde::Serialize;

use crate::GlobalArgs;
use crate::output::print_json;

/// Arguments of `kartotek token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Scopes to ask for, space-separated (default: the client file's `scope`, else every
    /// scope the client is allowed).
    #[arg(long)]
    pub scope: Option<String>,
    /// With a citizen's login: a national service the token is also for (e.g.
    /// kjernejournal); the person's reservation against it refuses the token.
    #[arg(long)]
    pub audience: Option<String>,
}

#[derive(Serialize)]
struct TokenView<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
}

/// Runs `kartotek token`.
pub async fn run(global: &GlobalArgs, args: &TokenArgs) -> anyhow::Result<()> {
    let Some(path) = &global.client_file else {
        anyhow::bail!(
            "kartotek token needs a client file: --client-file FILE or KARTOTEK_CLIENT_FILE (kartotek dev writes them under <data-dir>/clients/)"
        );
    };
    if args.audience.is_some() && global.login_token.is_none() {
        anyhow::bail!(
            "--audience needs a citizen's login (--login-token, or --dev-login with kartotek dev)"
        );
    }
    if global.dpop {
        anyhow::bail!(
            "kartotek token prints Bearer tokens: a DPoP-bound token needs the key it is bound to, which lives only inside the process that asked for it (use --dpop with the other commands)"
        );
    }
    let source = global.token_source(path, args.audience.clone())?;
    let (token, expires_in) = source.fetch_token(args.scope.as_deref()).await?;
    if global.json {
        print_json(&TokenView {
            access_token: token.secret(),
            token_type: "Bearer",
            expires_in,
        })
    } else {
        println!("{}", token.secret());
        Ok(())
    }
}
