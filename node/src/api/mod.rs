//! The public API (`kartotek.v1`): the request layer and the thin service handlers over it.
//!
//! - [`layer`]: [`Gate`](layer::Gate) and [`Call`](layer::Call), the one road every public
//!   call takes (admission, caller, audit rule, metrics; authentication lands here).
//! - [`methods`]: every public method with its [`Class`](methods::Class); a test keeps it
//!   equal to the protobuf descriptors.
//! - [`caller`]: who is calling (today from headers; next from a verified token).
//! - Handlers, one module per service, each a set of functions `(Call, Request) → Answer`:
//!   [`locator`] (+ [`locator_stream`]: import and watch), [`audit`], [`admin`], and the
//!   record families in [`records`] (blocks, access decision and notifications, consents,
//!   reservations, representation, API catalog, clients).
//! - [`convert`]: domain values to API messages (locator entries, change events).
//! - [`paging`]: the page size and cursor of every list call, and the one pager.
//!
//! Handlers never import each other and never see the node's internals: everything goes
//! through their `Call`. [`add_services`] registers every service on the gRPC router.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod caller;
pub mod convert;
pub mod layer;
pub mod locator;
pub mod locator_stream;
pub mod methods;
pub mod paging;
pub mod records;

use std::time::Duration;

use kartotek_domain::ValidationError;
use kartotek_domain::limits::MAX_STALENESS_MS_MAX;
use kartotek_proto::v1::{Consistency, ReadOptions};

use crate::consistency::ReadMode;
use crate::error::NodeError;
use layer::Gate;

/// Validates read options.
pub fn read_mode(opts: Option<&ReadOptions>) -> Result<ReadMode, NodeError> {
    let Some(o) = opts else {
        return Ok(ReadMode::Linearizable);
    };
    match Consistency::try_from(o.consistency) {
        Ok(Consistency::Unspecified | Consistency::Linearizable) => Ok(ReadMode::Linearizable),
        Ok(Consistency::BoundedStaleness) => {
            if o.max_staleness_ms == 0 || o.max_staleness_ms > MAX_STALENESS_MS_MAX {
                return Err(ValidationError::new(
                    "read.max_staleness_ms",
                    format!("must be 1 to {MAX_STALENESS_MS_MAX}"),
                )
                .into());
            }
            Ok(ReadMode::Bounded(Duration::from_millis(o.max_staleness_ms)))
        }
        Err(_) => Err(ValidationError::new(
            "read.consistency",
            format!("unknown value {}", o.consistency),
        )
        .into()),
    }
}

/// Adds every public service to a node's gRPC router (each limited to `request_bytes_max`
/// per request), all over one [`Gate`], and reports them serving on `grpc.health.v1`.
pub async fn add_services(
    router: tonic::transport::server::Router,
    gate: &Gate,
    request_bytes_max: usize,
    health: &tonic_health::server::HealthReporter,
) -> tonic::transport::server::Router {
    use kartotek_proto::v1::access_service_server::AccessServiceServer;
    use kartotek_proto::v1::admin_service_server::AdminServiceServer;
    use kartotek_proto::v1::audit_service_server::AuditServiceServer;
    use kartotek_proto::v1::block_service_server::BlockServiceServer;
    use kartotek_proto::v1::catalog_service_server::CatalogServiceServer;
    use kartotek_proto::v1::client_registry_service_server::ClientRegistryServiceServer;
    use kartotek_proto::v1::consent_service_server::ConsentServiceServer;
    use kartotek_proto::v1::locator_service_server::LocatorServiceServer;
    use kartotek_proto::v1::notification_service_server::NotificationServiceServer;
    use kartotek_proto::v1::representation_service_server::RepresentationServiceServer;
    use kartotek_proto::v1::reservation_service_server::ReservationServiceServer;
    use kartotek_proto::v1::token_ledger_service_server::TokenLedgerServiceServer;

    /// One service: reported serving, added with the request size bound.
    macro_rules! serve {
        ($router:ident, $server:ident, $service:ty) => {{
            health.set_serving::<$server<$service>>().await;
            $router.add_service(
                $server::new(<$service>::new(gate.clone()))
                    .max_decoding_message_size(request_bytes_max),
            )
        }};
    }
    let router = serve!(router, LocatorServiceServer, locator::LocatorServiceImpl);
    let router = serve!(router, AdminServiceServer, admin::AdminServiceImpl);
    let router = serve!(router, AuditServiceServer, audit::AuditServiceImpl);
    let router = serve!(router, BlockServiceServer, records::block::BlockServiceImpl);
    let router = serve!(
        router,
        AccessServiceServer,
        records::access::AccessServiceImpl
    );
    let router = serve!(
        router,
        NotificationServiceServer,
        records::access::NotificationServiceImpl
    );
    let router = serve!(
        router,
        ConsentServiceServer,
        records::consent::ConsentServiceImpl
    );
    let router = serve!(
        router,
        ReservationServiceServer,
        records::reservation::ReservationServiceImpl
    );
    let router = serve!(
        router,
        RepresentationServiceServer,
        records::representation::RepresentationServiceImpl
    );
    let router = serve!(
        router,
        CatalogServiceServer,
        records::catalog::CatalogServiceImpl
    );
    let router = serve!(
        router,
        ClientRegistryServiceServer,
        records::client::ClientRegistryServiceImpl
    );
    serve!(
        router,
        TokenLedgerServiceServer,
        records::token_ids::TokenLedgerServiceImpl
    )
}
