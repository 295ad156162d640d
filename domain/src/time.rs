//! Time as the replicated state sees it: milliseconds since the Unix epoch, UTC.
//!
//! Only the leader reads a clock; it stamps the value into each command. The state machine
//! never reads a clock, and it clamps stamps so that state time never goes back even if a new
//! leader's clock is behind the old one's.

use serde::{Deserialize, Serialize};

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time (leader only).
    pub fn now() -> Self {
        Timestamp(chrono::Utc::now().timestamp_millis())
    }

    /// RFC 3339 with millisecond precision, UTC (`2026-11-23T19:45:00.000Z`).
    pub fn to_rfc3339(self) -> String {
        match chrono::DateTime::<chrono::Utc>::from_timestamp_millis(self.0) {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            None => String::new(),
        }
    }

    /// Parses RFC 3339 (any offset) into UTC milliseconds.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| Timestamp(t.timestamp_millis()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp(1_795_000_000_123);
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert!(t.to_rfc3339().ends_with('Z'));
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }
}
