//! The error type of the Kartotek client.
//!
//! [`ClientError`] maps gRPC statuses from the server (and client-side failures) to the
//! cases a caller acts on. Every string taken from the network is cut to
//! [`ERROR_TEXT_MAX`] bytes so that a misbehaving server cannot make errors arbitrarily large.

use kartotek_proto::FIELD_HEADER;
use tonic::{Code, Status};

/// Longest text (message, field name, description) kept from a server error, in bytes.
pub const ERROR_TEXT_MAX: usize = 1024;

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server rejected the request; `field` names the offending request field when the
    /// server said which (metadata `x-kartotek-field`). Never retried.
    #[error("invalid argument{}: {message}", field.as_deref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    InvalidArgument {
        /// The offending field, from the `x-kartotek-field` metadata.
        field: Option<String>,
        /// The server's message.
        message: String,
    },
    /// The addressed entity does not exist. Never retried.
    #[error("not found: {0}")]
    NotFound(String),
    /// The node cannot serve the request in its current state, e.g. a bounded-staleness read
    /// on a replica that is too far behind. Never retried: the caller decides (for instance
    /// to read again linearizably).
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// No node could serve the call before the deadline: nodes unreachable, no leader known,
    /// or transport failures.
    #[error("unavailable after {attempts} attempt(s): {last}")]
    Unavailable {
        /// Number of attempts made.
        attempts: u32,
        /// Description of the last failure.
        last: String,
    },
    /// Every endpoint the call may use refused the connection for the client's fail-fast
    /// window (see [`KartotekClient::set_fail_fast_on_refusal`](crate::KartotekClient::set_fail_fast_on_refusal)):
    /// nothing listens there, most likely no cluster is running. Only clients that turned
    /// the rule on return it; others keep retrying until the deadline.
    #[error("no node is listening: {} refused the connection ({attempts} attempt(s))", endpoints.join(", "))]
    Refused {
        /// The endpoints that refused, canonical.
        endpoints: Vec<String>,
        /// Number of attempts made.
        attempts: u32,
    },
    /// The last attempt timed out and the call's deadline has passed.
    #[error("deadline exceeded after {attempts} attempt(s): {last}")]
    DeadlineExceeded {
        /// Number of attempts made.
        attempts: u32,
        /// Description of the last failure.
        last: String,
    },
    /// Any other status from the server (PermissionDenied, Unauthenticated, AlreadyExists,
    /// ResourceExhausted, ...), with its message cut to [`ERROR_TEXT_MAX`].
    #[error("{}", status_text(.0))]
    Status(Status),
    /// The client configuration or an argument given to the client is invalid.
    #[error("client configuration: {0}")]
    Config(String),
    /// No access token could be got from the token service (its error answer, or why it
    /// could not be asked). Reported as [`Code::Unauthenticated`]; never retried.
    #[error("unauthenticated: no access token from {endpoint}: {reason}")]
    Token {
        /// The token endpoint asked.
        endpoint: String,
        /// Why (the service's `error: error_description`, cut, or the transport failure).
        reason: String,
    },
}

impl ClientError {
    /// The gRPC code this error corresponds to. [`ClientError::Config`] reports
    /// [`Code::InvalidArgument`].
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } | Self::Config(_) => Code::InvalidArgument,
            Self::Token { .. } => Code::Unauthenticated,
            Self::NotFound(_) => Code::NotFound,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::Unavailable { .. } | Self::Refused { .. } => Code::Unavailable,
            Self::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            Self::Status(status) => status.code(),
        }
    }

    /// The offending field of an [`ClientError::InvalidArgument`], if the server named it.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidArgument { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// The number of attempts made, for errors that end a retry loop.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            Self::Unavailable { attempts, .. }
            | Self::DeadlineExceeded { attempts, .. }
            | Self::Refused { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }

    /// Maps a status that is not retried (or whose retries are over) to an error.
    ///
    /// `attempts` and `endpoint` go into the Unavailable / DeadlineExceeded cases.
    pub(crate) fn from_status(status: Status, attempts: u32, endpoint: &str) -> Self {
        let message = truncate(status.message(), ERROR_TEXT_MAX);
        match status.code() {
            Code::InvalidArgument => Self::InvalidArgument {
                // The standard google.rpc.BadRequest detail first, then the metadata.
                field: tonic_types::StatusExt::get_details_bad_request(&status)
                    .and_then(|b| b.field_violations.into_iter().next())
                    .map(|v| v.field)
                    .or_else(|| {
                        status
                            .metadata()
                            .get(FIELD_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    })
                    .map(|f| truncate(&f, ERROR_TEXT_MAX)),
                message,
            },
            Code::NotFound => Self::NotFound(message),
            Code::FailedPrecondition => Self::FailedPrecondition(message),
            Code::DeadlineExceeded => Self::DeadlineExceeded {
                attempts,
                last: describe(&status, endpoint),
            },
            Code::Unavailable => Self::Unavailable {
                attempts,
                last: describe(&status, endpoint),
            },
            // Failures of the connection rather than answers of the server.
            Code::Unknown | Code::Internal | Code::Cancelled
                if crate::retry::is_transport_failure(&status) =>
            {
                Self::Unavailable {
                    attempts,
                    last: describe(&status, endpoint),
                }
            }
            code => {
                let details = if status.details().len() <= ERROR_TEXT_MAX {
                    status.details().to_vec()
                } else {
                    Vec::new()
                };
                Self::Status(Status::with_details_and_metadata(
                    code,
                    message,
                    details.into(),
                    status.metadata().clone(),
                ))
            }
        }
    }
}

/// One-line description of a failed attempt: endpoint, code, message and, for transport
/// failures, the chain of causes; at most [`ERROR_TEXT_MAX`] bytes.
pub(crate) fn describe(status: &Status, endpoint: &str) -> String {
    use std::error::Error as _;
    let mut text = format!("{endpoint}: {:?}: {}", status.code(), status.message());
    let mut source = status.source();
    let mut depth = 0;
    while let Some(err) = source {
        if text.len() > ERROR_TEXT_MAX || depth >= 8 {
            break;
        }
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
        depth += 1;
    }
    truncate(&text, ERROR_TEXT_MAX)
}

/// `text` cut to at most `max` bytes on a character boundary.
/// `<code>: <message>`, e.g. `permission denied: … needs scope kartotek:admin`; the code is
/// left out when the message already starts with it.
fn status_text(status: &Status) -> String {
    let name = match status.code() {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown error",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "resource exhausted",
        Code::FailedPrecondition => "failed precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal error",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "unauthenticated",
    };
    let message = status.message();
    if message.is_empty() {
        name.to_owned()
    } else if message.starts_with(name) {
        message.to_owned()
    } else {
        format!("{name}: {message}")
    }
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataMap;

    #[test]
    fn statuses_read_as_code_and_message() {
        let e = ClientError::Status(Status::permission_denied("x needs scope y"));
        assert_eq!(e.to_string(), "permission denied: x needs scope y");
        let e = ClientError::Status(Status::unauthenticated("unauthenticated: no token"));
        assert_eq!(e.to_string(), "unauthenticated: no token");
        assert_eq!(
            ClientError::Status(Status::already_exists("")).to_string(),
            "already exists"
        );
    }

    #[test]
    fn truncates_on_char_boundary() {
        let text = "æ".repeat(ERROR_TEXT_MAX);
        let cut = truncate(&text, ERROR_TEXT_MAX);
        assert!(cut.len() <= ERROR_TEXT_MAX);
        assert_eq!(cut.len(), ERROR_TEXT_MAX);
        assert_eq!(truncate("abc", 2), "ab");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn maps_invalid_argument_with_field() {
        let mut md = MetadataMap::new();
        md.insert(FIELD_HEADER, "patient".parse().expect("ascii"));
        let status = Status::with_metadata(Code::InvalidArgument, "bad", md);
        let err = ClientError::from_status(status, 1, "http://x:1");
        assert_eq!(err.field(), Some("patient"));
        assert_eq!(err.code(), Code::InvalidArgument);
    }

    #[test]
    fn bounds_server_messages() {
        let long = "x".repeat(10 * ERROR_TEXT_MAX);
        for code in [Code::NotFound, Code::PermissionDenied, Code::Unavailable] {
            let err = ClientError::from_status(Status::new(code, long.clone()), 3, "http://x:1");
            assert_eq!(err.code(), code);
            assert!(err.to_string().len() < 2 * ERROR_TEXT_MAX, "{code:?}");
        }
    }
}
