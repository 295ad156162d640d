//! Typed calls for the record families (records.proto): blocks, the access decision, patient
//! notifications, consents, reservations, representations, the API catalog and
//! token-issuance clients.
//!
//! Writes go to the leader with a stable request id (an empty `request_id` is replaced by a
//! fresh UUID v4 that stays the same for every retry of the call), so each is applied at most
//! once. Reads are routed like [`KartotekClient::lookup_locator`]: linearizable reads go to the
//! leader; bounded-staleness reads go to the preferred endpoint only and are not retried
//! elsewhere when it is too far behind. Every list answers one page (`page_size`,
//! `page_token`, `next_page_token`, as [`KartotekClient::list_locators`]).

use kartotek_proto::v1::access_service_client::AccessServiceClient;
use kartotek_proto::v1::block_service_client::BlockServiceClient;
use kartotek_proto::v1::catalog_service_client::CatalogServiceClient;
use kartotek_proto::v1::client_registry_service_client::ClientRegistryServiceClient;
use kartotek_proto::v1::consent_service_client::ConsentServiceClient;
use kartotek_proto::v1::notification_service_client::NotificationServiceClient;
use kartotek_proto::v1::representation_service_client::RepresentationServiceClient;
use kartotek_proto::v1::reservation_service_client::ReservationServiceClient;
use kartotek_proto::v1::token_ledger_service_client::TokenLedgerServiceClient;
use kartotek_proto::v1::*;

use crate::client::{KartotekClient, Plan, ensure_request_id};
use crate::error::ClientError;

/// The plan of a read: the leader, or the preferred endpoint for a bounded-staleness read.
fn read_plan(op: &'static str, read: Option<&ReadOptions>) -> Plan<'static> {
    Plan::read(op, read)
}

/// A write method: fills the request id, sends to the leader, retries with the same id.
macro_rules! write_method {
    ($(#[$doc:meta])* $name:ident, $req:ty, $resp:ty, $svc:ident, $rpc:ident) => {
        $(#[$doc])*
        pub async fn $name(&self, mut request: $req) -> Result<$resp, ClientError> {
            ensure_request_id(&mut request.request_id);
            let request_id = request.request_id.clone();
            self.execute(
                Plan::write(stringify!($name), &request_id),
                request,
                |channel, request| async move { $svc::new(channel).$rpc(request).await },
            )
            .await
        }
    };
}

/// A read method, routed by its `read` options.
macro_rules! read_method {
    ($(#[$doc:meta])* $name:ident, $req:ty, $resp:ty, $svc:ident, $rpc:ident) => {
        $(#[$doc])*
        pub async fn $name(&self, request: $req) -> Result<$resp, ClientError> {
            let plan = read_plan(stringify!($name), request.read.as_ref());
            self.execute(plan, request, |channel, request| async move {
                $svc::new(channel).$rpc(request).await
            })
            .await
        }
    };
}

impl KartotekClient {
    // ---- blocks ----

    write_method!(
        /// Adds a block (idempotent: the same active block again is returned unchanged).
        add_block, AddBlockRequest, BlockResponse, BlockServiceClient, add
    );
    write_method!(
        /// Revokes a block.
        revoke_block, RevokeBlockRequest, BlockResponse, BlockServiceClient, revoke
    );
    read_method!(
        /// One page of a patient's blocks (`page_token`: the previous answer's
        /// `next_page_token`; every list below pages the same way).
        list_blocks, ListBlocksRequest, ListBlocksResponse, BlockServiceClient, list
    );

    // ---- access decision ----

    /// The access decision. With `emergency_override` it is a write (the request id is filled
    /// in and kept across retries, and the patient notification is durable when it returns);
    /// otherwise a read routed by `read`.
    pub async fn decide_access(
        &self,
        mut request: AccessDecisionRequest,
    ) -> Result<AccessDecisionResponse, ClientError> {
        if request.emergency_override {
            ensure_request_id(&mut request.request_id);
            let request_id = request.request_id.clone();
            self.execute(
                Plan::write("decide_access_override", &request_id),
                request,
                |channel, request| async move {
                    AccessServiceClient::new(channel).decide(request).await
                },
            )
            .await
        } else {
            let plan = read_plan("decide_access", request.read.as_ref());
            self.execute(plan, request, |channel, request| async move {
                AccessServiceClient::new(channel).decide(request).await
            })
            .await
        }
    }

    // ---- patient notifications ----

    read_method!(
        /// One page of a patient's notifications (emergency overrides), all or pending only.
        list_notifications,
        ListNotificationsRequest,
        ListNotificationsResponse,
        NotificationServiceClient,
        list
    );
    write_method!(
        /// Acknowledges (marks delivered) a patient notification.
        acknowledge_notification,
        AcknowledgeNotificationRequest,
        NotificationResponse,
        NotificationServiceClient,
        acknowledge
    );

    // ---- consents ----

    write_method!(
        /// A grantee asks the patient for consent, with a deadline.
        request_consent, RequestConsentRequest, ConsentResponse, ConsentServiceClient, request
    );
    write_method!(
        /// Grants a pending request (`consent_id`) or grants directly (the terms).
        grant_consent, GrantConsentRequest, ConsentResponse, ConsentServiceClient, grant
    );
    write_method!(
        /// Denies a pending request.
        deny_consent, AnswerConsentRequest, ConsentResponse, ConsentServiceClient, deny
    );
    write_method!(
        /// Withdraws a granted consent.
        withdraw_consent, AnswerConsentRequest, ConsentResponse, ConsentServiceClient, withdraw
    );
    read_method!(
        /// One page of a patient's consents (filtered by grantee and effective status).
        list_consents, ListConsentsRequest, ListConsentsResponse, ConsentServiceClient, list
    );
    read_method!(
        /// May this grantee use this scope for the patient now?
        check_consent, CheckConsentRequest, CheckConsentResponse, ConsentServiceClient, check
    );

    // ---- reservations ----

    write_method!(
        /// The patient opts out of a national service.
        reserve, ReserveRequest, ReservationResponse, ReservationServiceClient, reserve
    );
    write_method!(
        /// The patient opts back in.
        withdraw_reservation,
        WithdrawReservationRequest,
        ReservationResponse,
        ReservationServiceClient,
        withdraw
    );
    read_method!(
        /// Has the patient opted out of this service?
        check_reservation,
        CheckReservationRequest,
        CheckReservationResponse,
        ReservationServiceClient,
        check
    );
    read_method!(
        /// One page of a patient's reservations.
        list_reservations,
        ListReservationsRequest,
        ListReservationsResponse,
        ReservationServiceClient,
        list
    );

    // ---- representation ----

    write_method!(
        /// Grants a representation.
        grant_representation,
        GrantRepresentationRequest,
        RepresentationResponse,
        RepresentationServiceClient,
        grant
    );
    write_method!(
        /// Revokes a representation.
        revoke_representation,
        RevokeRepresentationRequest,
        RepresentationResponse,
        RepresentationServiceClient,
        revoke
    );
    read_method!(
        /// "Whom can A represent?" (one page)
        list_represented_by,
        ListRepresentationsRequest,
        ListRepresentationsResponse,
        RepresentationServiceClient,
        list_by_representative
    );
    read_method!(
        /// "Who can represent B?" (one page)
        list_representatives_of,
        ListRepresentationsRequest,
        ListRepresentationsResponse,
        RepresentationServiceClient,
        list_by_represented
    );
    read_method!(
        /// "May A act for B in area S at time t?"
        check_representation,
        CheckRepresentationRequest,
        CheckRepresentationResponse,
        RepresentationServiceClient,
        check
    );

    // ---- API catalog ----

    write_method!(
        /// Registers an API catalog entry (as a draft).
        register_catalog_entry,
        CatalogEntryRequest,
        CatalogEntryResponse,
        CatalogServiceClient,
        register
    );
    write_method!(
        /// Replaces an entry's content (owner only).
        update_catalog_entry,
        CatalogEntryRequest,
        CatalogEntryResponse,
        CatalogServiceClient,
        update
    );
    write_method!(
        /// Moves an entry forward in its lifecycle (owner only).
        set_catalog_lifecycle,
        SetCatalogLifecycleRequest,
        CatalogEntryResponse,
        CatalogServiceClient,
        set_lifecycle
    );
    read_method!(
        /// One catalog entry.
        get_catalog_entry,
        GetCatalogEntryRequest,
        CatalogEntryResponse,
        CatalogServiceClient,
        get
    );
    read_method!(
        /// Searches the catalog (text, owner, scope, audience): one page, best match first.
        search_catalog,
        SearchCatalogRequest,
        SearchCatalogResponse,
        CatalogServiceClient,
        search
    );

    // ---- token-issuance clients ----

    write_method!(
        /// Registers a token-issuance client.
        register_client, ClientRequest, ClientResponse, ClientRegistryServiceClient, register
    );
    write_method!(
        /// Updates a token-issuance client (its organisation, or an operator).
        update_client, ClientRequest, ClientResponse, ClientRegistryServiceClient, update
    );
    read_method!(
        /// One token-issuance client.
        get_client, GetClientRequest, ClientResponse, ClientRegistryServiceClient, get
    );
    read_method!(
        /// One page of the token-issuance clients (of one organisation, or all), by id.
        list_clients, ListClientsRequest, ListClientsResponse, ClientRegistryServiceClient, list
    );

    // ---- the token service's ledger ----

    write_method!(
        /// Spends single-use token ids (a client assertion's, a DPoP proof's), all or none:
        /// FAILED_PRECONDITION when one was spent before and has not expired.
        spend_token_ids, SpendTokenIdsRequest, SpendTokenIdsResponse, TokenLedgerServiceClient, spend
    );
    write_method!(
        /// Revokes an access token until it expires: every node refuses it once applied.
        revoke_token, RevokeTokenRequest, RevokeTokenResponse, TokenLedgerServiceClient, revoke
    );
    read_method!(
        /// Whether a token id is spent or revoked (and not yet expired).
        token_id_status, TokenIdStatusRequest, TokenIdStatusResponse, TokenLedgerServiceClient, status
    );
}
