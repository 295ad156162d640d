//! The API catalog's HTTP face: the sector's APIs, as registered in the cluster's catalog
//! (`kartotek.v1.CatalogService`, domain rules in `kartotek_domain::catalog`).
//!
//! # Module map
//!
//! - this module: the JSON shapes ([`ApiEntry`], [`ApiEntryInput`], [`SearchAnswer`]), the
//!   search every view shares ([`search`]) and who reads ([`reader`]).
//! - [`rest`]: `GET/POST /api/v1/catalog`, `GET/PUT /api/v1/catalog/{id}`,
//!   `PUT /api/v1/catalog/{id}/lifecycle`.
//! - [`page`]: `GET /catalog`, the searchable HTML page (maud, a GET form, no JavaScript).
//! - [`dcat`]: `GET /catalog.ttl`, the DCAT-AP-NO export (Turtle, written with oxrdf/oxttl).
//!
//! # Who reads, who writes
//!
//! Writes (register, update, lifecycle) need an access token from this frontend's token
//! service and are made **with the caller's token** ([`crate::caller`]): the nodes check the
//! scope (`kartotek:records.write`) and that the token's organisation owns the entry, and
//! refuse with a reason the problem document passes on (403).
//!
//! Reads: the nodes take catalog reads only with a token (scope `kartotek:records.read` or a
//! citizen's), so an anonymous reader (the public page, the DCAT export, a `GET` without
//! `Authorization`) is served with the frontend's own identity, which can read but not
//! write the catalog; a caller with a token reads with it. Drafts are shown only to their
//! owner organisation (a caller whose token's org owns them): the node finds drafts for any
//! search by owner, so the frontend drops other callers' view of them.

pub mod dcat;
pub mod page;
pub mod rest;

use kartotek_client::KartotekClient;
use kartotek_client::proto::{self as v1};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::caller::HttpCaller;
use crate::problem::HttpError;

/// Most entries one search page answers (`page_size`; the default is [`PAGE_SIZE_DEFAULT`]).
pub const PAGE_SIZE_MAX: u32 = 100;
/// Entries per search page when `page_size` is absent.
pub const PAGE_SIZE_DEFAULT: u32 = 20;
/// Longest `page_token` taken, in bytes.
pub const PAGE_TOKEN_BYTES_MAX: usize = 1024;
/// Longest `q` (search text) taken, in bytes (the cluster's limit).
pub const QUERY_TEXT_BYTES_MAX: usize = kartotek_domain::limits::CATALOG_QUERY_TEXT_BYTES_MAX;

/// Who an API is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    /// Health personnel (through their systems).
    Personnel,
    /// Citizens (through apps acting for them).
    Citizen,
}

/// Where an entry is in its lifecycle (draft → published → deprecated → retired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Being prepared; visible to its owner only.
    Draft,
    /// In use.
    Published,
    /// Still working, being phased out.
    Deprecated,
    /// No longer available.
    Retired,
}

impl Audience {
    fn from_proto(v: i32) -> Option<Audience> {
        match v1::Audience::try_from(v).ok()? {
            v1::Audience::Personnel => Some(Audience::Personnel),
            v1::Audience::Citizen => Some(Audience::Citizen),
            v1::Audience::Unspecified => None,
        }
    }

    fn to_proto(self) -> v1::Audience {
        match self {
            Audience::Personnel => v1::Audience::Personnel,
            Audience::Citizen => v1::Audience::Citizen,
        }
    }

    /// The lower-case name (`personnel`, `citizen`).
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Personnel => "personnel",
            Audience::Citizen => "citizen",
        }
    }

    /// The value of a `audience` parameter (empty: none).
    fn parse(field: &str, s: &str) -> Result<Option<Audience>, HttpError> {
        match s {
            "" => Ok(None),
            "personnel" => Ok(Some(Audience::Personnel)),
            "citizen" => Ok(Some(Audience::Citizen)),
            _ => Err(HttpError::bad_request(
                field,
                "must be personnel or citizen",
            )),
        }
    }
}

impl Lifecycle {
    fn from_proto(v: i32) -> Option<Lifecycle> {
        match v1::CatalogLifecycle::try_from(v).ok()? {
            v1::CatalogLifecycle::Draft => Some(Lifecycle::Draft),
            v1::CatalogLifecycle::Published => Some(Lifecycle::Published),
            v1::CatalogLifecycle::Deprecated => Some(Lifecycle::Deprecated),
            v1::CatalogLifecycle::Retired => Some(Lifecycle::Retired),
            v1::CatalogLifecycle::Unspecified => None,
        }
    }

    fn to_proto(self) -> v1::CatalogLifecycle {
        match self {
            Lifecycle::Draft => v1::CatalogLifecycle::Draft,
            Lifecycle::Published => v1::CatalogLifecycle::Published,
            Lifecycle::Deprecated => v1::CatalogLifecycle::Deprecated,
            Lifecycle::Retired => v1::CatalogLifecycle::Retired,
        }
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Draft => "draft",
            Lifecycle::Published => "published",
            Lifecycle::Deprecated => "deprecated",
            Lifecycle::Retired => "retired",
        }
    }

    /// The value of a `lifecycle` parameter (empty: none).
    fn parse(field: &str, s: &str) -> Result<Option<Lifecycle>, HttpError> {
        match s {
            "" => Ok(None),
            "draft" => Ok(Some(Lifecycle::Draft)),
            "published" => Ok(Some(Lifecycle::Published)),
            "deprecated" => Ok(Some(Lifecycle::Deprecated)),
            "retired" => Ok(Some(Lifecycle::Retired)),
            _ => Err(HttpError::bad_request(
                field,
                "must be draft, published, deprecated or retired",
            )),
        }
    }
}

/// One API of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiEntry {
    /// The catalog id, e.g. `nhn.kjernejournal`.
    pub id: String,
    /// The owner organisation's number.
    pub owner: String,
    /// Title.
    pub title: String,
    /// Description (may be empty).
    pub description: String,
    /// Base URL of the API.
    pub base_url: String,
    /// URL of its OpenAPI document or FHIR CapabilityStatement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_url: Option<String>,
    /// The scopes a client needs.
    pub scopes: Vec<String>,
    /// Who the API is for.
    pub audience: Audience,
    /// Whether access needs the patient's consent.
    pub requires_consent: bool,
    /// Version text (may be empty).
    pub version: String,
    /// Lifecycle state.
    pub lifecycle: Lifecycle,
    /// When it was registered (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// The cluster revision of its last change.
    pub revision: u64,
}

impl ApiEntry {
    /// The view of a cluster entry (`None` for an entry with an unknown enum value).
    pub(crate) fn from_proto(e: v1::CatalogEntry) -> Option<ApiEntry> {
        Some(ApiEntry {
            audience: Audience::from_proto(e.audience)?,
            lifecycle: Lifecycle::from_proto(e.lifecycle)?,
            spec_url: Some(e.spec_url).filter(|u| !u.is_empty()),
            id: e.id,
            owner: e.owner,
            title: e.title,
            description: e.description,
            base_url: e.base_url,
            scopes: e.scopes,
            requires_consent: e.requires_consent,
            version: e.version,
            created_at: e.created_at,
            updated_at: e.updated_at,
            revision: e.mod_revision,
        })
    }

    /// Whether `caller` may see it: drafts only their owner organisation.
    fn visible_to(&self, caller: Option<&HttpCaller>) -> bool {
        self.lifecycle != Lifecycle::Draft
            || caller.and_then(HttpCaller::org) == Some(self.owner.as_str())
    }
}

/// What a register (`POST`) or update (`PUT`) sends. The cluster validates every field and
/// names the one it refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiEntryInput {
    /// Register: the new entry's id. Update: absent, or the id of the path.
    #[serde(default)]
    pub id: Option<String>,
    /// The owner organisation; absent: the caller's (the token's) organisation. It must be
    /// the caller's organisation.
    #[serde(default)]
    pub owner: Option<String>,
    /// Title (required).
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Base URL (`https://` or `http://`).
    pub base_url: String,
    /// URL of its OpenAPI document or FHIR CapabilityStatement.
    #[serde(default)]
    pub spec_url: Option<String>,
    /// The scopes a client needs.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Who the API is for.
    pub audience: Audience,
    /// Whether access needs the patient's consent.
    #[serde(default)]
    pub requires_consent: bool,
    /// Version text.
    #[serde(default)]
    pub version: String,
}

/// A lifecycle change (`PUT /api/v1/catalog/{id}/lifecycle`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecycleInput {
    /// The new state (only forward: draft → published → deprecated → retired).
    pub lifecycle: Lifecycle,
    /// The owner organisation; absent: the caller's.
    #[serde(default)]
    pub owner: Option<String>,
}

/// A search's parameters (`GET /api/v1/catalog`, `GET /catalog`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words that must all occur (case-insensitively) in the id, title or description.
    pub q: String,
    /// Only this owner organisation's entries (its drafts too, for its own callers).
    pub owner: String,
    /// Only entries with this scope.
    pub scope: String,
    /// Only entries for `personnel` or `citizen`.
    pub audience: String,
    /// Only entries in this state (`retired` ones are found only so).
    pub lifecycle: String,
    /// Entries per page (1 to 100; default 20).
    pub page_size: Option<u32>,
    /// `next_page_token` of the previous page of the same search.
    pub page_token: String,
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchAnswer {
    /// Best match first.
    pub entries: Vec<ApiEntry>,
    /// Give as `page_token` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// The cluster client a read is made with: the caller's token, else the frontend's own
/// (read-only) identity.
pub(crate) fn reader(
    s: &AppState,
    caller: Option<&HttpCaller>,
) -> Result<KartotekClient, HttpError> {
    match caller {
        Some(c) => c.client(s),
        None => Ok(s.client.clone()),
    }
}

/// One page of the search `query` as `caller` sees it (drafts only for their owner).
pub(crate) async fn search(
    s: &AppState,
    caller: Option<&HttpCaller>,
    query: &SearchQuery,
) -> Result<SearchAnswer, HttpError> {
    if query.q.len() > QUERY_TEXT_BYTES_MAX {
        return Err(HttpError::bad_request(
            "q",
            format!("longer than {QUERY_TEXT_BYTES_MAX} bytes"),
        ));
    }
    if query.page_token.len() > PAGE_TOKEN_BYTES_MAX {
        return Err(HttpError::bad_request(
            "page_token",
            format!("longer than {PAGE_TOKEN_BYTES_MAX} bytes"),
        ));
    }
    let page_size = query.page_size.unwrap_or(PAGE_SIZE_DEFAULT);
    if !(1..=PAGE_SIZE_MAX).contains(&page_size) {
        return Err(HttpError::bad_request(
            "page_size",
            format!("must be 1 to {PAGE_SIZE_MAX}"),
        ));
    }
    let audience = Audience::parse("audience", &query.audience)?;
    let lifecycle = Lifecycle::parse("lifecycle", &query.lifecycle)?;
    let answer = reader(s, caller)?
        .search_catalog(v1::SearchCatalogRequest {
            text: query.q.clone(),
            owner: query.owner.clone(),
            scope: query.scope.clone(),
            audience: audience.map_or(v1::Audience::Unspecified, Audience::to_proto) as i32,
            include_retired: lifecycle == Some(Lifecycle::Retired),
            page_size,
            page_token: query.page_token.clone(),
            ..Default::default()
        })
        .await?;
    let entries = answer
        .entries
        .into_iter()
        .filter_map(ApiEntry::from_proto)
        .filter(|e| e.visible_to(caller))
        .filter(|e| lifecycle.is_none_or(|l| l == e.lifecycle))
        .collect();
    Ok(SearchAnswer {
        entries,
        next_page_token: Some(answer.next_page_token).filter(|t| !t.is_empty()),
    })
}

/// Most entries the DCAT export walks (pages of the cluster's largest page).
pub const EXPORT_ENTRIES_MAX: usize = 10_000;

/// Every published or deprecated entry (at most [`EXPORT_ENTRIES_MAX`]), read with the
/// frontend's own identity, best match first as the cluster pages them.
pub(crate) async fn published(s: &AppState) -> Result<Vec<ApiEntry>, HttpError> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let answer = s
            .client
            .search_catalog(v1::SearchCatalogRequest {
                page_size: u32::try_from(kartotek_domain::limits::CATALOG_SEARCH_RESULTS_MAX)
                    .unwrap_or(1000),
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await?;
        out.extend(
            answer
                .entries
                .into_iter()
                .filter_map(ApiEntry::from_proto)
                .filter(|e| matches!(e.lifecycle, Lifecycle::Published | Lifecycle::Deprecated)),
        );
        if answer.next_page_token.is_empty() || out.len() >= EXPORT_ENTRIES_MAX {
            out.truncate(EXPORT_ENTRIES_MAX);
            return Ok(out);
        }
        page_token = answer.next_page_token;
    }
}

/// The cluster request of a register or update of `id` by `caller`.
fn entry_request(
    caller: &HttpCaller,
    id: String,
    input: ApiEntryInput,
) -> Result<v1::CatalogEntryRequest, HttpError> {
    Ok(v1::CatalogEntryRequest {
        id,
        owner: owner_of(caller, input.owner)?,
        title: input.title,
        description: input.description,
        base_url: input.base_url,
        spec_url: input.spec_url.unwrap_or_default(),
        scopes: input.scopes,
        audience: input.audience.to_proto() as i32,
        requires_consent: input.requires_consent,
        version: input.version,
        ..Default::default()
    })
}

/// The owner a write names: the one given, else the caller's organisation.
fn owner_of(caller: &HttpCaller, owner: Option<String>) -> Result<String, HttpError> {
    match owner {
        Some(o) => Ok(o),
        None => caller.org().map(str::to_owned).ok_or_else(|| {
            HttpError::bad_request(
                "owner",
                "the token names no organisation: give the owner organisation",
            )
        }),
    }
}

/// The entry of a write's answer.
fn written(answer: v1::CatalogEntryResponse) -> Result<ApiEntry, HttpError> {
    answer
        .entry
        .and_then(ApiEntry::from_proto)
        .ok_or_else(|| HttpError::Internal("catalog write answered without an entry".into()))
}

/// A published entry of owner 974760673 with every field set (for tests).
#[cfg(test)]
pub(crate) fn sample_entry(id: &str) -> ApiEntry {
    ApiEntry {
        id: id.into(),
        owner: "974760673".into(),
        title: "Reseptformidleren \"RF\" <æøå>".into(),
        description: "Resepter; med \"sitat\" og\nlinjeskift".into(),
        base_url: "https://rf.example/api".into(),
        spec_url: Some("https://rf.example/openapi.json".into()),
        scopes: vec!["a:read".into(), "a:write".into()],
        audience: Audience::Personnel,
        requires_consent: true,
        version: "1".into(),
        lifecycle: Lifecycle::Published,
        created_at: String::new(),
        updated_at: String::new(),
        revision: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(lifecycle: i32, owner: &str) -> v1::CatalogEntry {
        v1::CatalogEntry {
            id: "nhn.test".into(),
            owner: owner.into(),
            title: "Test".into(),
            base_url: "https://api.example".into(),
            audience: v1::Audience::Personnel as i32,
            lifecycle,
            ..Default::default()
        }
    }

    #[test]
    fn entries_convert_and_drafts_stay_with_their_owner() {
        let e =
            ApiEntry::from_proto(entry(v1::CatalogLifecycle::Draft as i32, "999999999")).unwrap();
        assert_eq!(e.lifecycle, Lifecycle::Draft);
        assert_eq!(e.spec_url, None);
        assert!(!e.visible_to(None));
        let published =
            ApiEntry::from_proto(entry(v1::CatalogLifecycle::Published as i32, "999999999"))
                .unwrap();
        assert!(published.visible_to(None));
        // Unknown enum values are not shown rather than guessed.
        assert_eq!(ApiEntry::from_proto(entry(99, "999999999")), None);
        assert_eq!(ApiEntry::from_proto(entry(0, "999999999")), None);
    }

    #[test]
    fn parameters_are_checked() {
        assert!(Audience::parse("audience", "robots").is_err());
        assert_eq!(
            Audience::parse("audience", "citizen").unwrap(),
            Some(Audience::Citizen)
        );
        assert_eq!(Lifecycle::parse("lifecycle", "").unwrap(), None);
        match Lifecycle::parse("lifecycle", "gone") {
            Err(HttpError::BadRequest { field, .. }) => assert_eq!(field, "lifecycle"),
            other => panic!("{other:?}"),
        }
    }
}
