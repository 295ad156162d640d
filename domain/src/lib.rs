//! Kartotek's domain: identifiers, records, replicated commands and the pure rules that apply
//! them.
//!
//! Nothing here does I/O. The API edge (`node`) turns requests into validated [`command::Command`]s;
//! the leader stamps them with its clock and proposes them to Raft; every replica's state machine
//! (`storage`) applies them with the functions here, so all replicas compute the same result from
//! the same log.
//!
//! - [`ids`]: national ids, org numbers and HPR numbers, validated exactly as specified.
//! - [`limits`]: every named maximum (strings, lists, requests).
//! - [`locator`]: patient information locator entries.
//! - [`command`]: the replicated command and its response.
//! - [`change`]: the change feed's events.
//! - [`error`]: validation and apply errors.
//! - [`fields`]: shared validators and value types (tokens, text, scopes, validity, actors).
//! - [`block`]: blocks (sperring / blokkering) of personnel, groups or organisations.
//! - [`consent`]: consents (request, grant, deny, withdraw, expire) and their checks.
//! - [`reservation`]: reservations (opt-outs) from national services.
//! - [`representation`]: who may act for whom (power of attorney, parental responsibility, ...).
//! - [`catalog`]: the API catalog (register, update, lifecycle, search).
//! - [`client_record`]: token-issuance clients (public keys, allowed scopes).
//! - [`audit`]: audit events and their tamper-evident hash chain.
//! - [`notification`]: patient notifications queued by emergency overrides.
//! - [`token_ids`]: spent and revoked token ids (single-use assertions and proofs, revocation).
//! - [`record_op`]: the replicated operations on the record families.
//! - [`access`]: the access decision over a patient's blocks, consents, reservations and
//!   representations.

pub mod access;
pub mod audit;
pub mod block;
pub mod catalog;
pub mod change;
pub mod client_record;
pub mod command;
pub mod consent;
pub mod error;
pub mod fields;
pub mod ids;
pub mod limits;
pub mod locator;
pub mod notification;
pub mod record_op;
pub mod representation;
pub mod reservation;
pub mod time;
pub mod token_ids;

pub use access::{
    AccessDecision, AccessPolicy, AccessRequest, AccessRequestInput, Effect, Obligation,
    PatientFacts, decide,
};
pub use audit::{
    AuditAction, AuditEvent, AuditEventInput, AuditQuery, ChainBreak, ChainedAuditEvent,
    GENESIS_PREV_HASH, ServedBy, verify_chain,
};
pub use block::{
    Block, BlockAdd, BlockAddInput, BlockLevel, BlockRevoke, BlockScope, BlockStatus, BlockTarget,
};
pub use catalog::{
    Audience, CatalogEntry, CatalogId, CatalogInput, CatalogLifecycle, CatalogQuery,
    CatalogRegister, CatalogSetLifecycle, CatalogUpdate,
};
pub use change::{Change, ChangeEvent, ChangeFilter};
pub use client_record::{ClientInput, ClientRecord, ClientRegister, ClientStatus, ClientUpdate};
pub use command::{BatchItem, Command, Op, Outcome, RequestId, Response};
pub use consent::{
    Consent, ConsentAnswer, ConsentCheck, ConsentCheckQuery, ConsentFilter, ConsentGrant,
    ConsentInput, ConsentRequest, ConsentStatus, Grantee,
};
pub use error::{ApplyError, ValidationError};
pub use fields::{
    Actor, ActorKind, Area, ClientId, ElementId, GroupId, Purpose, ServiceName, Validity,
    ValidityInput,
};
pub use ids::{HprNumber, IdError, NationalId, OrgNumber};
pub use locator::{LocatorEntry, LocatorKey, LocatorRegister, LocatorStatus, SystemId};
pub use representation::{
    Representation, RepresentationCheck, RepresentationGrant, RepresentationInput,
    RepresentationKind, RepresentationPolicy, RepresentationQuery, RepresentationRevoke,
    RepresentationSource,
};
pub use reservation::{
    Reservation, ReservationKey, ReservationReserve, ReservationStatus, ReservationWithdraw,
};
pub use time::Timestamp;
