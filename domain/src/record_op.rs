//! Replicated operations on the privacy-settings record families, the API catalog and
//! clients, and their outcomes. [`crate::Op::Record`] carries a [`RecordOp`]; the state machine
//! (`storage/src/records.rs`) applies it with the pure functions of each family's module.
//!
//! Every variant carries an already validated command (the node parses requests before it
//! proposes them), so applying never fails on input, only on state ([`crate::ApplyError`]).

use serde::{Deserialize, Serialize};

use crate::access::{AccessDecision, AccessPolicy, AccessRequest};
use crate::block::{Block, BlockAdd, BlockRevoke};
use crate::catalog::{CatalogEntry, CatalogRegister, CatalogSetLifecycle, CatalogUpdate};
use crate::client_record::{ClientRecord, ClientRegister, ClientUpdate};
use crate::consent::{Consent, ConsentAnswer, ConsentExpireDue, ConsentGrant, ConsentRequest};
use crate::fields::Actor;
use crate::ids::NationalId;
use crate::notification::{NotificationAck, PatientNotification};
use crate::representation::{Representation, RepresentationGrant, RepresentationRevoke};
use crate::reservation::{Reservation, ReservationReserve, ReservationWithdraw};
use crate::token_ids::{TokenIdsForget, TokenIdsSpend, TokenRevoke};

/// An operation on one of the record families (append-only variants: the log stores them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordOp {
    /// Add a block.
    BlockAdd(BlockAdd),
    /// Revoke a block.
    BlockRevoke(BlockRevoke),
    /// A grantee asks the patient for consent (with a deadline).
    ConsentRequest(ConsentRequest),
    /// The patient grants a consent directly.
    ConsentGrant(ConsentGrant),
    /// The patient grants a pending request.
    ConsentGrantRequest(ConsentAnswer),
    /// The patient denies a pending request.
    ConsentDeny(ConsentAnswer),
    /// The patient withdraws a granted consent.
    ConsentWithdraw(ConsentAnswer),
    /// The patient opts out of a national service.
    Reserve(ReservationReserve),
    /// The patient opts back in.
    ReservationWithdraw(ReservationWithdraw),
    /// Grant a representation.
    RepresentationGrant(RepresentationGrant),
    /// Revoke a representation.
    RepresentationRevoke(RepresentationRevoke),
    /// Register an API catalog entry.
    CatalogRegister(CatalogRegister),
    /// Update an API catalog entry's content.
    CatalogUpdate(CatalogUpdate),
    /// Move an API catalog entry forward in its lifecycle.
    CatalogSetLifecycle(CatalogSetLifecycle),
    /// Register a token-issuance client.
    ClientRegister(ClientRegister),
    /// Update a token-issuance client.
    ClientUpdate(ClientUpdate),
    /// An access decision with an emergency override: decided on the state at this log
    /// position with the policy carried here (so every replica decides alike); a permit by
    /// override stores a patient notification in the same entry.
    AccessOverride {
        /// The validated request (its override justification is set).
        request: AccessRequest,
        /// The proposing node's access policy.
        policy: AccessPolicy,
    },
    /// Acknowledge a patient notification.
    NotificationAck(NotificationAck),
    /// The leader's periodic sweep: store as expired the consents in the due index whose
    /// request deadline or validity end has passed by the command's stamp.
    ConsentExpireDue(ConsentExpireDue),
    /// The token service spends single-use ids (a client assertion's, a DPoP proof's).
    TokenIdsSpend(TokenIdsSpend),
    /// A client revokes an access token (RFC 7009) until it expires.
    TokenRevoke(TokenRevoke),
    /// The leader's sweep forgets expired token ids.
    TokenIdsForget(TokenIdsForget),
}

impl RecordOp {
    /// A short name for metrics and logs (never contains patient data).
    pub fn name(&self) -> &'static str {
        match self {
            RecordOp::BlockAdd(_) => "block_add",
            RecordOp::BlockRevoke(_) => "block_revoke",
            RecordOp::ConsentRequest(_) => "consent_request",
            RecordOp::ConsentGrant(_) => "consent_grant",
            RecordOp::ConsentGrantRequest(_) => "consent_grant_request",
            RecordOp::ConsentDeny(_) => "consent_deny",
            RecordOp::ConsentWithdraw(_) => "consent_withdraw",
            RecordOp::Reserve(_) => "reservation_reserve",
            RecordOp::ReservationWithdraw(_) => "reservation_withdraw",
            RecordOp::RepresentationGrant(_) => "representation_grant",
            RecordOp::RepresentationRevoke(_) => "representation_revoke",
            RecordOp::CatalogRegister(_) => "catalog_register",
            RecordOp::CatalogUpdate(_) => "catalog_update",
            RecordOp::CatalogSetLifecycle(_) => "catalog_set_lifecycle",
            RecordOp::ClientRegister(_) => "client_register",
            RecordOp::ClientUpdate(_) => "client_update",
            RecordOp::AccessOverride { .. } => "access_override",
            RecordOp::NotificationAck(_) => "notification_ack",
            RecordOp::ConsentExpireDue(_) => "consent_expire_due",
            RecordOp::TokenIdsSpend(_) => "token_ids_spend",
            RecordOp::TokenRevoke(_) => "token_revoke",
            RecordOp::TokenIdsForget(_) => "token_ids_forget",
        }
    }

    /// The person whose record this changes (the patient; for a representation, the
    /// represented person), or `None` for catalog, client and sweep operations. The node
    /// lets a citizen's token write only records whose subject is that citizen (or whom
    /// they act for).
    pub fn subject(&self) -> Option<&NationalId> {
        match self {
            RecordOp::BlockAdd(b) => Some(&b.patient),
            RecordOp::BlockRevoke(b) => Some(&b.patient),
            RecordOp::ConsentRequest(c) => Some(&c.terms.patient),
            RecordOp::ConsentGrant(c) => Some(&c.terms.patient),
            RecordOp::ConsentGrantRequest(a)
            | RecordOp::ConsentDeny(a)
            | RecordOp::ConsentWithdraw(a) => Some(&a.patient),
            RecordOp::Reserve(r) => Some(&r.key.patient),
            RecordOp::ReservationWithdraw(r) => Some(&r.key.patient),
            RecordOp::RepresentationGrant(r) => Some(&r.represented),
            RecordOp::RepresentationRevoke(r) => Some(&r.represented),
            RecordOp::AccessOverride { request, .. } => Some(&request.patient),
            RecordOp::NotificationAck(n) => Some(&n.patient),
            RecordOp::CatalogRegister(_)
            | RecordOp::CatalogUpdate(_)
            | RecordOp::CatalogSetLifecycle(_)
            | RecordOp::ClientRegister(_)
            | RecordOp::ClientUpdate(_)
            | RecordOp::ConsentExpireDue(_)
            | RecordOp::TokenIdsSpend(_)
            | RecordOp::TokenRevoke(_)
            | RecordOp::TokenIdsForget(_) => None,
        }
    }

    /// Who the operation says made it (`registered_by`, `granted_by`, `by`, ...), when the
    /// caller names one. The node requires a citizen's token to name the citizen here.
    pub fn acted_by(&self) -> Option<&Actor> {
        match self {
            RecordOp::BlockAdd(b) => Some(&b.registered_by),
            RecordOp::BlockRevoke(b) => Some(&b.revoked_by),
            RecordOp::ConsentGrant(c) => Some(&c.granted_by),
            RecordOp::ConsentGrantRequest(a)
            | RecordOp::ConsentDeny(a)
            | RecordOp::ConsentWithdraw(a) => Some(&a.by),
            RecordOp::Reserve(r) => Some(&r.registered_by),
            RecordOp::ReservationWithdraw(r) => Some(&r.withdrawn_by),
            RecordOp::RepresentationGrant(r) => Some(&r.granted_by),
            RecordOp::RepresentationRevoke(r) => Some(&r.revoked_by),
            RecordOp::NotificationAck(n) => Some(&n.by),
            RecordOp::ConsentRequest(_)
            | RecordOp::AccessOverride { .. }
            | RecordOp::CatalogRegister(_)
            | RecordOp::CatalogUpdate(_)
            | RecordOp::CatalogSetLifecycle(_)
            | RecordOp::ClientRegister(_)
            | RecordOp::ClientUpdate(_)
            | RecordOp::ConsentExpireDue(_)
            | RecordOp::TokenIdsSpend(_)
            | RecordOp::TokenRevoke(_)
            | RecordOp::TokenIdsForget(_) => None,
        }
    }
}

/// What a [`RecordOp`] produced (append-only variants: the dedup table stores them). `changed`
/// is false for an idempotent repeat (nothing was written). Records are boxed to keep
/// [`crate::Outcome`] small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordOutcome {
    /// A block after the command.
    Block {
        /// As stored.
        block: Box<Block>,
        /// Whether the command changed it.
        changed: bool,
    },
    /// A consent after the command.
    Consent {
        /// As stored.
        consent: Box<Consent>,
        /// Whether the command changed it.
        changed: bool,
    },
    /// A reservation after the command.
    Reservation {
        /// As stored.
        reservation: Box<Reservation>,
        /// Whether the command changed it.
        changed: bool,
    },
    /// A representation after the command.
    Representation {
        /// As stored.
        representation: Box<Representation>,
        /// Whether the command changed it.
        changed: bool,
    },
    /// A catalog entry after the command.
    Catalog {
        /// As stored.
        entry: Box<CatalogEntry>,
        /// Whether the command changed it.
        changed: bool,
    },
    /// A client after the command.
    Client {
        /// As stored.
        client: Box<ClientRecord>,
        /// Whether the command changed it.
        changed: bool,
    },
    /// An overriding access decision and the notification it queued (permit by override
    /// only).
    AccessDecided {
        /// The decision.
        decision: Box<AccessDecision>,
        /// The notification stored with it.
        notification: Option<Box<PatientNotification>>,
    },
    /// A notification after an acknowledgement.
    Notification {
        /// As stored.
        notification: Box<PatientNotification>,
        /// Whether the command changed it.
        changed: bool,
    },
    /// What an expiry sweep did.
    ConsentsExpired {
        /// Consents stored as expired by this command.
        expired: u32,
        /// Due-index entries it removed (expired ones and stale ones of changed consents).
        index_removed: u32,
    },
    /// Token ids were spent (all of them).
    TokenIdsSpent {
        /// How many.
        spent: u32,
    },
    /// An access token is revoked.
    TokenRevoked {
        /// False when it already was.
        changed: bool,
    },
    /// What a token-id sweep forgot.
    TokenIdsForgotten {
        /// Entries removed.
        forgotten: u32,
    },
}
