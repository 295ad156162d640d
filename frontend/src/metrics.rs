//! Prometheus metrics of the frontend, named `kartotek_frontend_<what>_<unit>`, and the
//! `/metrics` handler that serves them in the text exposition format.
//!
//! The request layer ([`crate::layer`]) records every request: a counter by route, method and
//! status code, a duration histogram by route, and a gauge of requests in flight. The `route`
//! label is the matched route pattern (`/healthz`, later `/api/v1/catalog/{id}`), or
//! `unmatched` for requests no route took, so that its values stay few.
//!
//! The token service counts `kartotek_frontend_tokens_issued_total{grant}` and
//! `kartotek_frontend_token_errors_total{error}` (the RFC 6749 error code). Audit forwarding
//! counts `kartotek_frontend_audit_events_total{outcome}`: `recorded` (events of a POST the
//! cluster took, resends included) and `refused` (POSTs refused before anything was sent).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderName, header};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;

/// The `route` label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Matched route pattern, or [`UNMATCHED_ROUTE`].
    pub route: String,
    /// HTTP method (`GET`, ...; `other` for non-standard ones).
    pub method: String,
    /// HTTP status code (`200`, ...).
    pub code: String,
}

/// Labels of a request duration observation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Matched route pattern, or [`UNMATCHED_ROUTE`].
    pub route: String,
}

/// Labels of an issued token.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabels {
    /// The grant type (`client_credentials`).
    pub grant: String,
}

/// Labels of a refused token request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenErrorLabels {
    /// The RFC 6749 error code (`invalid_client`, ...).
    pub error: String,
}

/// Labels of forwarded audit events.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuditOutcomeLabels {
    /// `recorded` or `refused`.
    pub outcome: String,
}

/// The frontend's metrics. Cheap to clone: clones share the registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    tokens_issued_total: Family<GrantLabels, Counter>,
    token_errors_total: Family<TokenErrorLabels, Counter>,
    audit_events_total: Family<AuditOutcomeLabels, Counter>,
    requests_total: Family<RequestLabels, Counter>,
    request_duration_seconds: Family<RouteLabels, Histogram>,
    requests_in_flight: Gauge,
}

impl Metrics {
    /// A fresh registry with the frontend's metrics.
    pub fn new() -> Self {
        let requests_total = Family::<RequestLabels, Counter>::default();
        // 0.5 ms to ~65 s.
        let request_duration_seconds =
            Family::<RouteLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 18))
            });
        let requests_in_flight = Gauge::default();
        let mut registry = Registry::default();
        // prometheus-client appends `_total` to counters.
        registry.register(
            "kartotek_frontend_http_requests",
            "HTTP requests by route, method and status code",
            requests_total.clone(),
        );
        registry.register(
            "kartotek_frontend_http_request_duration_seconds",
            "HTTP request duration until the response head, by route",
            request_duration_seconds.clone(),
        );
        registry.register(
            "kartotek_frontend_http_requests_in_flight",
            "HTTP requests being handled",
            requests_in_flight.clone(),
        );
        let tokens_issued_total = Family::<GrantLabels, Counter>::default();
        let token_errors_total = Family::<TokenErrorLabels, Counter>::default();
        registry.register(
            "kartotek_frontend_tokens_issued",
            "Access tokens issued, by grant type",
            tokens_issued_total.clone(),
        );
        registry.register(
            "kartotek_frontend_token_errors",
            "Token requests refused, by RFC 6749 error code",
            token_errors_total.clone(),
        );
        let audit_events_total = Family::<AuditOutcomeLabels, Counter>::default();
        registry.register(
            "kartotek_frontend_audit_events",
            "Forwarded audit events recorded, and POSTs refused, by outcome",
            audit_events_total.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            audit_events_total,
            tokens_issued_total,
            token_errors_total,
            requests_total,
            request_duration_seconds,
            requests_in_flight,
        }
    }

    /// Counts a request as started; the guard counts it as finished when dropped.
    pub(crate) fn in_flight(&self) -> InFlight {
        self.requests_in_flight.inc();
        InFlight(self.requests_in_flight.clone())
    }

    /// Records one finished request.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests_total
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                code: status.to_string(),
            })
            .inc();
        self.request_duration_seconds
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts an issued token.
    pub fn token_issued(&self, grant: &str) {
        self.tokens_issued_total
            .get_or_create(&GrantLabels {
                grant: grant.to_owned(),
            })
            .inc();
    }

    /// Counts a refused token request by its error code.
    pub fn token_error(&self, error: &str) {
        self.token_errors_total
            .get_or_create(&TokenErrorLabels {
                error: error.to_owned(),
            })
            .inc();
    }

    /// Counts `n` forwarded audit events (or refused POSTs) with `outcome`.
    pub fn audit_events(&self, outcome: &str, n: u64) {
        self.audit_events_total
            .get_or_create(&AuditOutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc_by(n);
    }

    /// The text exposition (OpenMetrics).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Decrements the in-flight gauge when dropped (also when the request is cancelled).
pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition (`kartotek_frontend_*`)", content_type = "text/plain"))
)]
pub(crate) async fn serve_metrics(
    State(s): State<AppState>,
) -> ([(HeaderName, &'static str); 1], String) {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_convention() {
        let m = Metrics::new();
        m.observe("/healthz", "GET", 200, 0.001);
        drop(m.in_flight());
        let text = m.render();
        assert!(
            text.contains(
                r#"kartotek_frontend_http_requests_total{route="/healthz",method="GET",code="200"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"kartotek_frontend_http_request_duration_seconds_count{route="/healthz"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("kartotek_frontend_http_requests_in_flight 0"),
            "{text}"
        );
    }
}
