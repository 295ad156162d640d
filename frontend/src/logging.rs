//! The one logging setup of the `kartotek` binary (node, frontend, dev, the client commands):
//! `tracing` to stderr, filtered by `RUST_LOG` or the component's `log_filter`, as text for a
//! terminal or as JSON lines for a log shipper (`log_format = "json"` in the config, or
//! `--log-format json`).
//!
//! A JSON line is one object: `timestamp`, `level`, `target`, `fields` (the event's
//! `message` and fields), `span` (the innermost span with its fields) and `spans` (every
//! span from the root), so a request span's `request_id` is on every line logged inside
//! it. National ids never reach a log in clear (they are logged as keyed hashes by the
//! callers), so neither format needs masking here.

use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber (once per process; later calls do nothing): stderr,
/// `RUST_LOG` if set and valid, else `default_filter`.
pub fn init(default_filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn formats_parse_from_config_text() {
        #[derive(serde::Deserialize)]
        struct C {
            f: LogFormat,
        }
        let c: C = toml::from_str("f = \"json\"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.f, LogFormat::Json);
        assert!(toml::from_str::<C>("f = \"xml\"").is_err());
    }
}
