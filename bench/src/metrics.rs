//! Prometheus text metrics over a minimal HTTP/1.1 GET (Kartotek's metrics address and etcd's
//! client URL both serve `/metrics`), so the benchmark needs no HTTP client library.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest `/metrics` answer read.
const BODY_BYTES_MAX: usize = 16 << 20;
/// Time allowed for one scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET http://<addr><path>`; returns the body.
pub async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.take(BODY_BYTES_MAX as u64).read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            bail!("malformed HTTP answer from {addr}");
        };
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            bail!("{addr}{path}: {}", head.lines().next().unwrap_or_default());
        }
        let chunked = head.lines().any(|l| {
            l.to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked")
        });
        Ok(if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        })
    };
    tokio::time::timeout(SCRAPE_TIMEOUT, fut)
        .await
        .with_context(|| format!("{addr}{path} timed out"))?
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Metric name → sum of its samples over all label sets.
pub type Samples = BTreeMap<String, f64>;

/// Parses Prometheus text, summing samples of the same name over labels.
pub fn parse(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let value = line
            .rsplit_once('}')
            .map(|(_, v)| v)
            .unwrap_or(&line[name_end..])
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *out.entry(name.to_owned()).or_default() += v;
        }
    }
    out
}

/// Scrapes and parses `/metrics` of `addr`.
pub async fn scrape(addr: &str) -> anyhow::Result<Samples> {
    Ok(parse(&http_get(addr, "/metrics").await?))
}

/// `after[name] - before[name]` (0 when missing).
pub fn delta(before: &Samples, after: &Samples, name: &str) -> f64 {
    after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_sums() {
        let s = parse(
            "# HELP x\nkartotek_storage_wal_syncs_total 12\nreq{code=\"Ok\"} 3\nreq{code=\"x\"} 4.5\n",
        );
        assert_eq!(s.get("kartotek_storage_wal_syncs_total"), Some(&12.0));
        assert_eq!(s.get("req"), Some(&7.5));
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }
}
