//! Named maxima for everything a caller can send. The API edge checks them before anything is
//! proposed to Raft, so an oversized request is rejected with a clear error and writes nothing.

/// Longest system id (the organisation's name for the system holding the records), in bytes.
pub const SYSTEM_ID_BYTES_MAX: usize = 128;
/// Most data categories on one locator entry.
pub const CATEGORIES_PER_ENTRY_MAX: usize = 32;
/// Longest data category (e.g. a FHIR resource type name), in bytes.
pub const CATEGORY_BYTES_MAX: usize = 64;
/// Longest endpoint reference (API catalog id), in bytes.
pub const ENDPOINT_REF_BYTES_MAX: usize = 256;
/// Longest request id, in bytes (a UUID in text form is 36).
pub const REQUEST_ID_BYTES_MAX: usize = 64;
/// Most entries returned by one lookup of a patient.
pub const LOOKUP_ENTRIES_MAX: usize = 10_000;
/// Longest follower-read staleness bound a caller may ask for.
pub const MAX_STALENESS_MS_MAX: u64 = 3_600_000;
/// Most locator entries in one bulk-import batch (one Raft entry, applied atomically).
pub const IMPORT_ENTRIES_PER_BATCH_MAX: usize = 1_000;
/// Largest page a list call returns.
pub const LIST_PAGE_SIZE_MAX: usize = 1_000;
/// Page size of a list call that does not ask for one.
pub const LIST_PAGE_SIZE_DEFAULT: usize = 100;
/// Longest list cursor (page token, as sent), in bytes. Tokens are hex; the longest one
/// (a catalog search's: version, list digest, rank and a catalog id of up to
/// [`CATALOG_ID_BYTES_MAX`] bytes) is 538.
pub const PAGE_TOKEN_BYTES_MAX: usize = 1_024;
/// Most change events in one watch message.
pub const WATCH_EVENTS_PER_MESSAGE_MAX: usize = 256;

// --- Shared tokens and free text (see `fields`) -------------------------------------------

/// Longest national service name (e.g. `kjernejournal`, `e-resept`), in bytes.
pub const SERVICE_NAME_BYTES_MAX: usize = 64;
/// Longest element id inside a national service (what an element-level block names), in bytes.
pub const ELEMENT_ID_BYTES_MAX: usize = 128;
/// Longest personnel group id (e.g. `profession:lege`, `team:akutt-a`), in bytes.
pub const GROUP_ID_BYTES_MAX: usize = 128;
/// Most personnel groups on one access request.
pub const GROUPS_PER_REQUEST_MAX: usize = 64;
/// Longest client id (a token-issuance client, e.g. a third-party app), in bytes.
pub const CLIENT_ID_BYTES_MAX: usize = 128;
/// Longest system actor name (an internal component writing audit events), in bytes.
pub const SYSTEM_ACTOR_BYTES_MAX: usize = 128;
/// Longest scope (a catalog API id or an OAuth scope), in bytes.
pub const SCOPE_BYTES_MAX: usize = 128;
/// Longest purpose of use (e.g. `treatment`, `emergency`), in bytes.
pub const PURPOSE_BYTES_MAX: usize = 64;
/// Longest representation area (e.g. `health`, `prescriptions`, `*`), in bytes.
pub const AREA_BYTES_MAX: usize = 64;
/// Longest reason on a block or reservation, in bytes (UTF-8).
pub const REASON_BYTES_MAX: usize = 1024;
/// Longest emergency-override justification, in bytes (UTF-8).
pub const JUSTIFICATION_BYTES_MAX: usize = 2048;

// --- Per-patient bounds on replicated state ---------------------------------------------------

/// Most blocks (active or revoked) one patient may have; an add beyond it is refused.
pub const BLOCKS_PER_PATIENT_MAX: usize = 1_000;
/// Most consents (any status) one patient may have; a request or grant beyond it is refused.
pub const CONSENTS_PER_PATIENT_MAX: usize = 1_000;
/// Most due-index entries one consent-expiry sweep command carries (bounds apply latency; the
/// sweep proposes again while more are due).
pub const CONSENT_EXPIRE_PER_COMMAND_MAX: usize = 1_000;
/// Most representations (any status) naming one represented person.
pub const REPRESENTATIONS_PER_PERSON_MAX: usize = 200;

// --- Consents ---------------------------------------------------------------------------------

/// Most scopes on one consent.
pub const SCOPES_PER_CONSENT_MAX: usize = 32;

// --- Representations --------------------------------------------------------------------------

/// Most areas on one representation.
pub const AREAS_PER_REPRESENTATION_MAX: usize = 32;
/// Most areas in the configured parental 12–15 set of a representation policy.
pub const PARENTAL_LIMITED_AREAS_MAX: usize = 64;

// --- API catalog ------------------------------------------------------------------------------

/// Longest API catalog id, in bytes (the same as a locator entry's endpoint reference).
pub const CATALOG_ID_BYTES_MAX: usize = ENDPOINT_REF_BYTES_MAX;
/// Longest catalog entry title, in bytes (UTF-8).
pub const CATALOG_TITLE_BYTES_MAX: usize = 256;
/// Longest catalog entry description, in bytes (UTF-8).
pub const CATALOG_DESCRIPTION_BYTES_MAX: usize = 8_192;
/// Longest URL (base URL, spec URL), in bytes.
pub const URL_BYTES_MAX: usize = 2_048;
/// Longest catalog entry version text, in bytes.
pub const CATALOG_VERSION_BYTES_MAX: usize = 64;
/// Most scopes on one catalog entry.
pub const SCOPES_PER_CATALOG_ENTRY_MAX: usize = 64;
/// Longest catalog search text, in bytes (UTF-8).
pub const CATALOG_QUERY_TEXT_BYTES_MAX: usize = 256;
/// Most words in a catalog search text.
pub const CATALOG_QUERY_WORDS_MAX: usize = 16;
/// Most entries one catalog search returns.
pub const CATALOG_SEARCH_RESULTS_MAX: usize = 1_000;

// --- Token-issuance clients -------------------------------------------------------------------

/// Most public keys (JWKs) on one client (room for key rotation).
pub const JWKS_PER_CLIENT_MAX: usize = 8;
/// Longest public key (one JWK as JSON text), in bytes.
pub const JWK_BYTES_MAX: usize = 8_192;
/// Longest JWK `kid`, in bytes.
pub const JWK_KID_BYTES_MAX: usize = 256;
/// Most allowed scopes on one client.
pub const SCOPES_PER_CLIENT_MAX: usize = 128;

// --- Audit ------------------------------------------------------------------------------------

/// Longest audit action (e.g. `locator.lookup`), in bytes.
pub const AUDIT_ACTION_BYTES_MAX: usize = 64;
/// Longest audit resource description, in bytes (UTF-8).
pub const AUDIT_RESOURCE_BYTES_MAX: usize = 512;
/// Longest audit correlation id (request id, trace id), in bytes.
pub const CORRELATION_ID_BYTES_MAX: usize = 128;
/// Most audit events in one append (one `Record` call or one replicated append).
pub const AUDIT_EVENTS_PER_APPEND_MAX: usize = 1_000;
/// Most audit events one query returns.
pub const AUDIT_QUERY_LIMIT_MAX: usize = 1_000;
