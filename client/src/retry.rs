//! Retry policy: which failed attempts are worth another try, and how long to wait.
//!
//! [`classify`] decides from a gRPC status whether a call may be retried (and whether the
//! server named the leader); [`Backoff`] yields exponentially growing, jittered pauses.

use std::time::Duration;

use kartotek_proto::LEADER_ADDR_HEADER;
use rand::Rng;
use tonic::{Code, Status};

/// Longest leader address accepted from a hint, in bytes.
const HINT_LEN_MAX: usize = crate::config::ENDPOINT_LEN_MAX;

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Do not retry: the answer is final.
    Fatal,
    /// Retry; `leader_hint` is the leader address the node named, if any (as sent, not
    /// normalized).
    Retry {
        /// Value of the `x-kartotek-leader-addr` metadata.
        leader_hint: Option<String>,
    },
}

/// Classifies the outcome of one attempt.
///
/// Retried: Unavailable (with or without a leader hint), DeadlineExceeded (the attempt took
/// too long; writes are deduplicated by request id), and Unknown / Internal / Cancelled when
/// they come from the transport (connection reset, h2 error) rather than from the server.
/// Everything else (InvalidArgument, NotFound, AlreadyExists, FailedPrecondition,
/// PermissionDenied, Unauthenticated, ResourceExhausted, OutOfRange, ...) is final.
pub(crate) fn classify(status: &Status) -> Verdict {
    match status.code() {
        Code::Unavailable => Verdict::Retry {
            leader_hint: leader_hint(status),
        },
        Code::DeadlineExceeded => Verdict::Retry { leader_hint: None },
        Code::Unknown | Code::Internal | Code::Cancelled if is_transport_failure(status) => {
            Verdict::Retry { leader_hint: None }
        }
        _ => Verdict::Fatal,
    }
}

/// True when `status` was produced on the client side from a transport failure (its error
/// chain is set: statuses decoded from a server's answer never have one) or says it is an
/// h2 protocol error.
pub(crate) fn is_transport_failure(status: &Status) -> bool {
    use std::error::Error as _;
    status.source().is_some()
        || status.message().starts_with("h2 protocol error")
        || status.message().starts_with("transport error")
}

/// True when the attempt certainly never reached the server: the connection could not be
/// opened (refused, connect timeout).
pub(crate) fn is_connect_failure(status: &Status) -> bool {
    chain_has(status, |err| {
        err.is::<tonic::ConnectError>()
            || err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    })
}

/// True when `status` is the client-side expiry of the attempt's `grpc-timeout` (tonic
/// reports it as Cancelled).
pub(crate) fn is_attempt_timeout(status: &Status) -> bool {
    status.code() == Code::Cancelled && chain_has(status, |err| err.is::<tonic::TimeoutExpired>())
}

/// True when an error in the source chain of `status` matches `pred`.
fn chain_has(status: &Status, pred: impl Fn(&(dyn std::error::Error + 'static)) -> bool) -> bool {
    use std::error::Error as _;
    let mut source = status.source();
    let mut depth = 0;
    while let Some(err) = source {
        if pred(err) {
            return true;
        }
        if depth >= 16 {
            break;
        }
        source = err.source();
        depth += 1;
    }
    false
}

/// The leader address from a "not leader" answer, if present, printable and not too long.
fn leader_hint(status: &Status) -> Option<String> {
    let value = status.metadata().get(LEADER_ADDR_HEADER)?.to_str().ok()?;
    let value = value.trim();
    if value.is_empty() || value.len() > HINT_LEN_MAX {
        return None;
    }
    Some(value.to_owned())
}

/// Exponential backoff with jitter: the n-th pause is drawn from
/// `[d/2, d]` where `d = min(initial * 2^n, max)`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` and growing to at most `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            next: initial.min(max),
            max,
        }
    }

    /// The next pause.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        if ceiling_ms < 2 {
            return ceiling;
        }
        let half = ceiling_ms / 2;
        let jittered = rand::thread_rng().gen_range(half..=ceiling_ms);
        Duration::from_millis(jittered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataMap;

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(1000));
        let mut ceiling: u64 = 50;
        for _ in 0..10 {
            let d = backoff.next_delay().as_millis();
            let c = u128::from(ceiling);
            assert!(d >= c / 2 && d <= c, "{d} not in [{}, {c}]", c / 2);
            ceiling = (ceiling * 2).min(1000);
        }
    }

    #[test]
    fn classifies_codes() {
        let fatal = [
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::FailedPrecondition,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::ResourceExhausted,
            Code::OutOfRange,
            // Sent by the server itself: no transport error behind it.
            Code::Unknown,
            Code::Internal,
        ];
        for code in fatal {
            assert_eq!(
                classify(&Status::new(code, "x")),
                Verdict::Fatal,
                "{code:?}"
            );
        }
        assert_eq!(
            classify(&Status::unavailable("no leader")),
            Verdict::Retry { leader_hint: None }
        );
        assert_eq!(
            classify(&Status::deadline_exceeded("slow")),
            Verdict::Retry { leader_hint: None }
        );
        assert_eq!(
            classify(&Status::internal("h2 protocol error: stream reset")),
            Verdict::Retry { leader_hint: None }
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let from_transport = Status::from_error(Box::new(io));
        assert_eq!(from_transport.code(), Code::Unknown);
        assert_eq!(
            classify(&from_transport),
            Verdict::Retry { leader_hint: None }
        );
    }

    #[test]
    fn reads_leader_hint() {
        let mut md = MetadataMap::new();
        md.insert(LEADER_ADDR_HEADER, "127.0.0.1:7402".parse().expect("ascii"));
        let status = Status::with_metadata(Code::Unavailable, "not leader", md);
        assert_eq!(
            classify(&status),
            Verdict::Retry {
                leader_hint: Some("127.0.0.1:7402".into())
            }
        );
    }

    #[test]
    fn detects_connect_failures_and_timeouts() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(is_connect_failure(&Status::from_error(Box::new(io))));
        assert!(!is_connect_failure(&Status::unavailable("x")));
        let expired = Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(expired.code(), Code::Cancelled);
        assert!(is_attempt_timeout(&expired));
        assert!(!is_attempt_timeout(&Status::cancelled("by server")));
    }
}
