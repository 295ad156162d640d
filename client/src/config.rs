//! Client configuration: which nodes to contact, timeouts, backoff and the bearer token.
//!
//! [`ClientConfig`] is plain data; [`ClientConfig::validate`] checks it and
//! [`normalize_endpoint`] turns a user-written address (`host:port` or `http://host:port`)
//! into the canonical URI the client keys its connections by.

use std::time::Duration;

use tonic::transport::Uri;

use crate::error::ClientError;

/// Upper bound on the number of endpoints a client knows: configured ones plus those learned
/// from leader hints.
pub const ENDPOINTS_MAX: usize = 64;

/// Longest accepted endpoint address, in bytes.
pub const ENDPOINT_LEN_MAX: usize = 256;

/// Endpoints used by [`ClientConfig::default`]: a three-node cluster on this machine.
pub const DEFAULT_ENDPOINTS: [&str; 3] = ["127.0.0.1:7401", "127.0.0.1:7402", "127.0.0.1:7403"];

/// Settings of a [`KartotekClient`](crate::KartotekClient).
///
/// Build it with struct-update syntax from [`ClientConfig::default`], e.g.
/// `ClientConfig { endpoints: vec!["10.0.0.1:7401".into()], ..ClientConfig::default() }`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Node addresses, `host:port` or `http://host:port`. The first one is the *preferred*
    /// endpoint: bounded-staleness reads go there.
    pub endpoints: Vec<String>,
    /// Time allowed to open a TCP connection to one node.
    pub connect_timeout_ms: u64,
    /// Time allowed for one attempt of a call (one request to one node).
    pub attempt_timeout_ms: u64,
    /// Time allowed for a whole call, all retries included.
    pub deadline_ms: u64,
    /// First backoff between attempts; it doubles with every retry (with jitter).
    pub backoff_initial_ms: u64,
    /// Largest backoff between attempts.
    pub backoff_max_ms: u64,
    /// Bearer token sent as `authorization: Bearer <token>` on every call.
    pub token: Option<String>,
    /// The CA (PEM) that the nodes' API certificates chain to: set, every call is TLS
    /// (`[tls.api]` on the nodes) and each node's certificate must name the endpoint's host.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            endpoints: DEFAULT_ENDPOINTS.iter().map(|s| (*s).to_owned()).collect(),
            connect_timeout_ms: 1000,
            attempt_timeout_ms: 3000,
            deadline_ms: 15_000,
            backoff_initial_ms: 50,
            backoff_max_ms: 1000,
            token: None,
            ca_file: None,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    // Hand-written so that the token never ends up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("endpoints", &self.endpoints)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("attempt_timeout_ms", &self.attempt_timeout_ms)
            .field("deadline_ms", &self.deadline_ms)
            .field("backoff_initial_ms", &self.backoff_initial_ms)
            .field("backoff_max_ms", &self.backoff_max_ms)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl ClientConfig {
    /// The default configuration with `endpoints` replaced.
    pub fn with_endpoints<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Checks the configuration: at least one and at most [`ENDPOINTS_MAX`] well-formed
    /// endpoints, non-zero timeouts and backoff, `backoff_max_ms >= backoff_initial_ms`, and a
    /// token (if any) that is non-empty and fits in an HTTP header.
    pub fn validate(&self) -> Result<(), ClientError> {
        if self.endpoints.is_empty() {
            return Err(ClientError::Config("no endpoints configured".into()));
        }
        if self.endpoints.len() > ENDPOINTS_MAX {
            return Err(ClientError::Config(format!(
                "{} endpoints configured, at most {ENDPOINTS_MAX} allowed",
                self.endpoints.len()
            )));
        }
        for endpoint in &self.endpoints {
            normalize_endpoint(endpoint)?;
        }
        for (name, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("attempt_timeout_ms", self.attempt_timeout_ms),
            ("deadline_ms", self.deadline_ms),
            ("backoff_initial_ms", self.backoff_initial_ms),
            ("backoff_max_ms", self.backoff_max_ms),
        ] {
            if value == 0 {
                return Err(ClientError::Config(format!(
                    "{name} must be greater than 0"
                )));
            }
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(ClientError::Config(
                "backoff_max_ms must not be smaller than backoff_initial_ms".into(),
            ));
        }
        if let Some(token) = &self.token {
            if token.is_empty() {
                return Err(ClientError::Config("token is empty".into()));
            }
            if !token.bytes().all(|b| (0x21..0x7f).contains(&b)) {
                return Err(ClientError::Config(
                    "token must be printable ASCII without spaces".into(),
                ));
            }
        }
        Ok(())
    }

    /// The configured endpoints in canonical form (`http://host:port`), duplicates removed,
    /// order kept.
    pub fn normalized_endpoints(&self) -> Result<Vec<String>, ClientError> {
        let mut out: Vec<String> = Vec::with_capacity(self.endpoints.len());
        for endpoint in &self.endpoints {
            let uri = normalize_endpoint(endpoint)?;
            if !out.contains(&uri) {
                out.push(uri);
            }
        }
        Ok(out)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn attempt_timeout(&self) -> Duration {
        Duration::from_millis(self.attempt_timeout_ms)
    }

    pub(crate) fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

/// Turns `host:port` or `http://host:port` (an optional trailing `/` allowed) into the
/// canonical `http://host:port`.
///
/// Rejects other schemes (this client speaks plain HTTP/2), missing ports, paths, queries
/// and addresses longer than [`ENDPOINT_LEN_MAX`].
pub fn normalize_endpoint(raw: &str) -> Result<String, ClientError> {
    let bad = |why: &str| {
        ClientError::Config(format!(
            "invalid endpoint {:?}: {why}",
            crate::error::truncate(raw, ENDPOINT_LEN_MAX)
        ))
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(bad("empty"));
    }
    if trimmed.len() > ENDPOINT_LEN_MAX {
        return Err(bad("too long"));
    }
    let rest = match trimmed.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some(_) => return Err(bad("only http:// (or no scheme) is supported")),
        None => trimmed,
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(bad("expected host:port"));
    }
    let uri_text = format!("http://{authority}");
    let uri: Uri = uri_text.parse().map_err(|_| bad("expected host:port"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("missing host"));
    }
    match uri.port_u16() {
        Some(port) if port != 0 => {}
        _ => return Err(bad("missing or zero port")),
    }
    Ok(uri_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        ClientConfig::default()
            .validate()
            .expect("default config is valid");
    }

    #[test]
    fn normalizes_endpoints() {
        assert_eq!(
            normalize_endpoint("127.0.0.1:7401").ok().as_deref(),
            Some("http://127.0.0.1:7401")
        );
        assert_eq!(
            normalize_endpoint(" http://node-1:7401/ ").ok().as_deref(),
            Some("http://node-1:7401")
        );
        assert_eq!(
            normalize_endpoint("[::1]:7401").ok().as_deref(),
            Some("http://[::1]:7401")
        );
        for bad in [
            "",
            "node-1",
            "https://node-1:7401",
            "http://node-1:7401/x",
            "node-1:0",
            "user@node-1:1",
            ":7401",
        ] {
            assert!(normalize_endpoint(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rejects_bad_configs() {
        let ok = ClientConfig::default();
        let cases = [
            ClientConfig {
                endpoints: vec![],
                ..ok.clone()
            },
            ClientConfig {
                endpoints: (0..=ENDPOINTS_MAX)
                    .map(|i| format!("127.0.0.1:{}", 1000 + i))
                    .collect(),
                ..ok.clone()
            },
            ClientConfig {
                connect_timeout_ms: 0,
                ..ok.clone()
            },
            ClientConfig {
                attempt_timeout_ms: 0,
                ..ok.clone()
            },
            ClientConfig {
                deadline_ms: 0,
                ..ok.clone()
            },
            ClientConfig {
                backoff_max_ms: 10,
                backoff_initial_ms: 20,
                ..ok.clone()
            },
            ClientConfig {
                token: Some("has space".into()),
                ..ok.clone()
            },
            ClientConfig {
                endpoints: vec!["ftp://x:1".into()],
                ..ok.clone()
            },
        ];
        for case in cases {
            let err = case.validate().expect_err("invalid config accepted");
            assert!(matches!(err, ClientError::Config(_)), "{err:?}");
        }
    }

    #[test]
    fn debug_redacts_token() {
        let config = ClientConfig {
            token: Some("s3cret".into()),
            ..ClientConfig::default()
        };
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn dedups_endpoints() {
        let config = ClientConfig::with_endpoints(["a:1", "http://a:1", "b:2"]);
        assert_eq!(
            config.normalized_endpoints().ok(),
            Some(vec!["http://a:1".to_owned(), "http://b:2".to_owned()])
        );
    }
}
