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
/// Longest list cursor (page token), in bytes.
pub const PAGE_TOKEN_BYTES_MAX: usize = 512;
/// Most change events in one watch message.
pub const WATCH_EVENTS_PER_MESSAGE_MAX: usize = 256;
