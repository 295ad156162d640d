//! Retry policy: which failed attempts are worth another try, and how long to wait.
//!
//! [`classify`] decides from a gRPC status whether a call may be retried (and whether the
//! server named the leader); [`Backoff`] yields exponentially growing, jittered pauses.

use std::time::Duration;

use kartotek_proto::LEADER_ADDR_HEADER;
use rand::Rng;
use tokio::time::Instant;
use tonic::{Code, Status};

use crate::error::ClientError;

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

/// True when the node's address refused the TCP connection: nothing listens there. (Not a
/// connect timeout, and not an Unavailable answered by a node.)
pub(crate) fn is_connection_refused(status: &Status) -> bool {
    chain_has(status, |err| {
        err.downcast_ref::<std::io::Error>()
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

/// The fail-fast rule for refused connections: remembers which endpoints refused the
/// connection since the last other outcome, and since when.
#[derive(Debug)]
pub(crate) struct Refusals {
    window: Option<Duration>,
    refused: Vec<String>,
    since: Option<Instant>,
    /// Refused attempts since the last other outcome.
    attempts: u32,
}

impl Refusals {
    /// A tracker failing after `window` of refusals (`None`: never).
    pub(crate) fn new(window: Option<Duration>) -> Self {
        Self {
            window,
            refused: Vec::new(),
            since: None,
            attempts: 0,
        }
    }

    /// Notes the failure `status` of an attempt on `endpoint`. Returns
    /// [`ClientError::Refused`] when every one of `usable` has refused the connection, with no
    /// other outcome in between, for the whole window; any other failure starts over.
    pub(crate) fn note(
        &mut self,
        status: &Status,
        endpoint: &str,
        usable: impl FnOnce() -> Vec<String>,
    ) -> Option<ClientError> {
        let window = self.window?;
        if !is_connection_refused(status) {
            self.refused.clear();
            self.since = None;
            self.attempts = 0;
            return None;
        }
        self.attempts = self.attempts.saturating_add(1);
        if !self.refused.iter().any(|r| r == endpoint) {
            self.refused.push(endpoint.to_owned());
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() < window {
            return None;
        }
        let endpoints = usable();
        endpoints
            .iter()
            .all(|u| self.refused.contains(u))
            .then(|| ClientError::Refused {
                endpoints,
                attempts: self.attempts,
            })
    }
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

    fn refused() -> Status {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        Status::from_error(Box::new(io))
    }

    #[tokio::test]
    async fn fails_fast_only_when_every_endpoint_refused_for_the_window() {
        let all = || vec!["http://a:1".to_owned(), "http://b:2".to_owned()];
        let mut r = Refusals::new(Some(Duration::from_millis(30)));
        assert!(r.note(&refused(), "http://a:1", all).is_none());
        tokio::time::sleep(Duration::from_millis(40)).await;
        // Only a has refused so far.
        assert!(r.note(&refused(), "http://a:1", all).is_none());
        let err = r.note(&refused(), "http://b:2", all).map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "no node is listening: http://a:1, http://b:2 refused the connection \
                 (3 attempt(s))"
            )
        );

        // An answer from a node (an election in progress) starts over.
        let mut r = Refusals::new(Some(Duration::from_millis(30)));
        r.note(&refused(), "http://a:1", all);
        r.note(&refused(), "http://b:2", all);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(
            r.note(&Status::unavailable("no leader"), "http://b:2", all)
                .is_none()
        );
        assert!(r.note(&refused(), "http://a:1", all).is_none());

        // Off by default.
        let mut off = Refusals::new(None);
        off.note(&refused(), "http://a:1", all);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(off.note(&refused(), "http://b:2", all).is_none());
    }

    #[test]
    fn detects_connect_failures_and_timeouts() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(is_connect_failure(&Status::from_error(Box::new(io))));
        assert!(!is_connect_failure(&Status::unavailable("x")));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(is_connection_refused(&Status::from_error(Box::new(io))));
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout");
        assert!(!is_connection_refused(&Status::from_error(Box::new(io))));
        assert!(!is_connection_refused(&Status::unavailable("no leader")));
        let expired = Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(expired.code(), Code::Cancelled);
        assert!(is_attempt_timeout(&expired));
        assert!(!is_attempt_timeout(&Status::cancelled("by server")));
    }
}
