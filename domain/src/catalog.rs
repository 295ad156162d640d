//! The API catalog (API-katalog): a searchable register of the sector's APIs with their
//! documentation, owner, scopes, audience and whether access needs the patient's consent.
//!
//! An entry is registered by its owner organisation as a draft, then moves forward through its
//! lifecycle — draft → published → deprecated → retired, never back — and its content may be
//! updated by the owner until it is retired. The access decision reads an entry's
//! `requires_consent` flag and scopes ([`crate::access::decide`]); locator entries point at
//! entries by id (`endpoint_ref`).
//!
//! Search ([`CatalogQuery`]) is pure: `matches` filters (every word of the text must occur, case
//! insensitively, in the id, title or description; owner, scope and audience must equal) and
//! `score` ranks. Drafts are only found when searching by their owner; retired entries only
//! with `include_retired`.

use serde::{Deserialize, Serialize};

use crate::error::{ApplyError, ValidationError};
use crate::fields::{
    check_list_len, parse_required_text, parse_scope, parse_scopes, parse_text, text_enum,
    token_type,
};
use crate::ids::OrgNumber;
use crate::limits::{
    CATALOG_DESCRIPTION_BYTES_MAX, CATALOG_ID_BYTES_MAX, CATALOG_QUERY_TEXT_BYTES_MAX,
    CATALOG_QUERY_WORDS_MAX, CATALOG_SEARCH_RESULTS_MAX, CATALOG_TITLE_BYTES_MAX,
    CATALOG_VERSION_BYTES_MAX, SCOPES_PER_CATALOG_ENTRY_MAX, URL_BYTES_MAX,
};
use crate::locator::parse_org_number;
use crate::time::Timestamp;

token_type!(
    /// A catalog entry's id (e.g. `helsenorge.kjernejournal`); case kept. Locator entries
    /// refer to it as their `endpoint_ref`.
    CatalogId,
    CATALOG_ID_BYTES_MAX,
    lowercase = false
);

text_enum! {
    /// Who an API is for.
    pub enum Audience {
        /// Health personnel (through their systems).
        Personnel => "personnel",
        /// Citizens (through apps acting for them).
        Citizen => "citizen",
    }
}

text_enum! {
    /// Where an entry is in its lifecycle; it only moves forward (declaration order).
    pub enum CatalogLifecycle {
        /// Being prepared; visible to its owner.
        Draft => "draft",
        /// In use.
        Published => "published",
        /// Still working, but being phased out.
        Deprecated => "deprecated",
        /// No longer available; kept for history.
        Retired => "retired",
    }
}

/// Raw fields of a catalog register or update, exactly as a caller sends them (empty string =
/// unset where optional).
#[derive(Debug, Clone, Copy, Default)]
pub struct CatalogInput<'a> {
    /// The entry's id.
    pub id: &'a str,
    /// Register: the owner organisation. Update: the caller's organisation (must be the
    /// owner).
    pub owner: &'a str,
    /// Required, at most [`CATALOG_TITLE_BYTES_MAX`] bytes.
    pub title: &'a str,
    /// Optional, at most [`CATALOG_DESCRIPTION_BYTES_MAX`] bytes.
    pub description: &'a str,
    /// Required `https://` or `http://` URL.
    pub base_url: &'a str,
    /// Optional URL of the OpenAPI document or FHIR CapabilityStatement.
    pub spec_url: &'a str,
    /// The API's scopes; at most [`SCOPES_PER_CATALOG_ENTRY_MAX`].
    pub scopes: &'a [String],
    /// `personnel` or `citizen`.
    pub audience: &'a str,
    /// Whether access needs the patient's consent.
    pub requires_consent: bool,
    /// Version text (optional).
    pub version: &'a str,
}

/// The content of an entry (what update replaces).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogContent {
    /// Title.
    pub title: String,
    /// Description (may be empty).
    pub description: String,
    /// Base URL.
    pub base_url: String,
    /// OpenAPI / FHIR CapabilityStatement URL.
    pub spec_url: Option<String>,
    /// Scopes (sorted, unique).
    pub scopes: Vec<String>,
    /// Who the API is for.
    pub audience: Audience,
    /// Whether access needs the patient's consent.
    pub requires_consent: bool,
    /// Version text (may be empty).
    pub version: String,
}

impl CatalogContent {
    /// Validates the content fields.
    pub fn parse(input: &CatalogInput<'_>) -> Result<Self, ValidationError> {
        Ok(CatalogContent {
            title: parse_required_text("title", input.title, CATALOG_TITLE_BYTES_MAX)?,
            description: parse_text(
                "description",
                input.description,
                CATALOG_DESCRIPTION_BYTES_MAX,
            )?,
            base_url: parse_url("base_url", input.base_url)?,
            spec_url: if input.spec_url.is_empty() {
                None
            } else {
                Some(parse_url("spec_url", input.spec_url)?)
            },
            scopes: parse_scopes("scopes", input.scopes, SCOPES_PER_CATALOG_ENTRY_MAX, false)?,
            audience: Audience::parse("audience", input.audience)?,
            requires_consent: input.requires_consent,
            version: parse_text("version", input.version, CATALOG_VERSION_BYTES_MAX)?,
        })
    }
}

/// Validates a URL sent in `field`: `https://` or `http://`, a non-empty rest, at most
/// [`URL_BYTES_MAX`] bytes of visible ASCII.
pub fn parse_url(field: &str, s: &str) -> Result<String, ValidationError> {
    if s.len() > URL_BYTES_MAX {
        return Err(ValidationError::new(
            field,
            format!("is {} bytes, at most {URL_BYTES_MAX} allowed", s.len()),
        ));
    }
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        None => Err(ValidationError::new(
            field,
            "must be an https:// or http:// URL",
        )),
        Some(r) if r.is_empty() || r.starts_with('/') => {
            Err(ValidationError::new(field, "has no host"))
        }
        Some(_) if !s.chars().all(|c| c.is_ascii_graphic()) => Err(ValidationError::new(
            field,
            "must be visible ASCII without spaces (percent-encode the rest)",
        )),
        Some(_) => Ok(s.to_owned()),
    }
}

/// A validated register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogRegister {
    /// The entry's id.
    pub id: CatalogId,
    /// The owner organisation.
    pub owner: OrgNumber,
    /// The content.
    pub content: CatalogContent,
}

impl CatalogRegister {
    /// Validates a register as sent by a caller.
    pub fn parse(input: &CatalogInput<'_>) -> Result<Self, ValidationError> {
        Ok(CatalogRegister {
            id: CatalogId::parse("id", input.id)?,
            owner: parse_org_number("owner", input.owner)?,
            content: CatalogContent::parse(input)?,
        })
    }
}

/// A validated update (replaces the content; only the owner may).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogUpdate {
    /// The entry's id.
    pub id: CatalogId,
    /// The caller's organisation.
    pub by: OrgNumber,
    /// The new content.
    pub content: CatalogContent,
}

impl CatalogUpdate {
    /// Validates an update as sent by a caller (`input.owner` is the caller's organisation).
    pub fn parse(input: &CatalogInput<'_>) -> Result<Self, ValidationError> {
        Ok(CatalogUpdate {
            id: CatalogId::parse("id", input.id)?,
            by: parse_org_number("owner", input.owner)?,
            content: CatalogContent::parse(input)?,
        })
    }
}

/// A validated lifecycle change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogSetLifecycle {
    /// The entry's id.
    pub id: CatalogId,
    /// The new lifecycle state.
    pub lifecycle: CatalogLifecycle,
    /// The caller's organisation (must be the owner).
    pub by: OrgNumber,
}

impl CatalogSetLifecycle {
    /// Validates a lifecycle change as sent by a caller.
    pub fn parse(id: &str, lifecycle: &str, by: &str) -> Result<Self, ValidationError> {
        Ok(CatalogSetLifecycle {
            id: CatalogId::parse("id", id)?,
            lifecycle: CatalogLifecycle::parse("lifecycle", lifecycle)?,
            by: parse_org_number("owner", by)?,
        })
    }
}

/// A stored catalog entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// The entry's id (its key).
    pub id: CatalogId,
    /// The owner organisation.
    pub owner: OrgNumber,
    /// The content.
    pub content: CatalogContent,
    /// Lifecycle state.
    pub lifecycle: CatalogLifecycle,
    /// When it was registered (leader time).
    pub created_at: Timestamp,
    /// When it last changed (leader time).
    pub updated_at: Timestamp,
    /// Revision that created it.
    pub create_revision: u64,
    /// Revision that last changed it (bumped by every update and lifecycle change).
    pub mod_revision: u64,
}

/// Applies a register. A new entry starts as a draft. Registering the same owner and content
/// again changes nothing (`false`); anything else under an existing id is
/// [`ApplyError::Conflict`] (use update).
pub fn apply_catalog_register(
    existing: Option<&CatalogEntry>,
    cmd: &CatalogRegister,
    now: Timestamp,
    next_revision: u64,
) -> Result<(CatalogEntry, bool), ApplyError> {
    match existing {
        Some(e) if e.owner == cmd.owner && e.content == cmd.content => Ok((e.clone(), false)),
        Some(e) => Err(ApplyError::Conflict(format!(
            "catalog entry {} already exists; update it instead",
            e.id
        ))),
        None => Ok((
            CatalogEntry {
                id: cmd.id.clone(),
                owner: cmd.owner.clone(),
                content: cmd.content.clone(),
                lifecycle: CatalogLifecycle::Draft,
                created_at: now,
                updated_at: now,
                create_revision: next_revision,
                mod_revision: next_revision,
            },
            true,
        )),
    }
}

/// The entry `id` owned by `by`, or NotFound / PermissionDenied.
fn owned<'a>(
    existing: Option<&'a CatalogEntry>,
    id: &CatalogId,
    by: &OrgNumber,
) -> Result<&'a CatalogEntry, ApplyError> {
    match existing {
        Some(e) if e.id == *id && e.owner == *by => Ok(e),
        Some(e) if e.id == *id => Err(ApplyError::PermissionDenied(format!(
            "catalog entry {id} is owned by organisation {}",
            e.owner
        ))),
        _ => Err(ApplyError::NotFound(format!("catalog entry {id}"))),
    }
}

/// Applies an update: the owner replaces the content. Unknown: [`ApplyError::NotFound`];
/// another organisation: [`ApplyError::PermissionDenied`]; retired:
/// [`ApplyError::FailedPrecondition`]. The same content changes nothing (`false`).
pub fn apply_catalog_update(
    existing: Option<&CatalogEntry>,
    cmd: &CatalogUpdate,
    now: Timestamp,
    next_revision: u64,
) -> Result<(CatalogEntry, bool), ApplyError> {
    let e = owned(existing, &cmd.id, &cmd.by)?;
    if e.lifecycle == CatalogLifecycle::Retired {
        return Err(ApplyError::FailedPrecondition(format!(
            "catalog entry {} is retired",
            e.id
        )));
    }
    if e.content == cmd.content {
        return Ok((e.clone(), false));
    }
    debug_assert!(e.mod_revision < next_revision, "revisions only grow");
    Ok((
        CatalogEntry {
            content: cmd.content.clone(),
            updated_at: now,
            mod_revision: next_revision,
            ..e.clone()
        },
        true,
    ))
}

/// Applies a lifecycle change: forward only (steps may be skipped). The same state changes
/// nothing (`false`); going back is [`ApplyError::FailedPrecondition`]. Unknown:
/// [`ApplyError::NotFound`]; another organisation: [`ApplyError::PermissionDenied`].
pub fn apply_catalog_set_lifecycle(
    existing: Option<&CatalogEntry>,
    cmd: &CatalogSetLifecycle,
    now: Timestamp,
    next_revision: u64,
) -> Result<(CatalogEntry, bool), ApplyError> {
    let e = owned(existing, &cmd.id, &cmd.by)?;
    if cmd.lifecycle == e.lifecycle {
        return Ok((e.clone(), false));
    }
    if cmd.lifecycle < e.lifecycle {
        return Err(ApplyError::FailedPrecondition(format!(
            "catalog entry {} is {}; the lifecycle only moves forward (draft → published → \
             deprecated → retired)",
            e.id, e.lifecycle
        )));
    }
    debug_assert!(e.mod_revision < next_revision, "revisions only grow");
    Ok((
        CatalogEntry {
            lifecycle: cmd.lifecycle,
            updated_at: now,
            mod_revision: next_revision,
            ..e.clone()
        },
        true,
    ))
}

/// A validated catalog search.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CatalogQuery {
    /// Words (lower case) that must all occur in the id, title or description.
    pub words: Vec<String>,
    /// Only entries of this owner (also the only way to find drafts).
    pub owner: Option<OrgNumber>,
    /// Only entries with this scope.
    pub scope: Option<String>,
    /// Only entries for this audience.
    pub audience: Option<Audience>,
    /// Also retired entries.
    pub include_retired: bool,
}

impl CatalogQuery {
    /// Validates a search as sent by a caller (empty = no filter).
    pub fn parse(
        text: &str,
        owner: &str,
        scope: &str,
        audience: &str,
        include_retired: bool,
    ) -> Result<Self, ValidationError> {
        let text = parse_text("text", text, CATALOG_QUERY_TEXT_BYTES_MAX)?;
        let mut words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
        words.sort();
        words.dedup();
        check_list_len("text", words.len(), CATALOG_QUERY_WORDS_MAX)?;
        Ok(CatalogQuery {
            words,
            owner: if owner.is_empty() {
                None
            } else {
                Some(parse_org_number("owner", owner)?)
            },
            scope: if scope.is_empty() {
                None
            } else {
                Some(parse_scope("scope", scope)?)
            },
            audience: if audience.is_empty() {
                None
            } else {
                Some(Audience::parse("audience", audience)?)
            },
            include_retired,
        })
    }

    /// True when `entry` passes every filter and contains every word.
    pub fn matches(&self, entry: &CatalogEntry) -> bool {
        let visible = match entry.lifecycle {
            CatalogLifecycle::Draft => self.owner.as_ref() == Some(&entry.owner),
            CatalogLifecycle::Retired => self.include_retired,
            CatalogLifecycle::Published | CatalogLifecycle::Deprecated => true,
        };
        if !visible
            || self.owner.as_ref().is_some_and(|o| *o != entry.owner)
            || self
                .scope
                .as_ref()
                .is_some_and(|s| !entry.content.scopes.contains(s))
            || self.audience.is_some_and(|a| a != entry.content.audience)
        {
            return false;
        }
        let fields = Fields::of(entry);
        self.words.iter().all(|w| fields.contains(w))
    }

    /// Relevance of `entry` (higher first): per word, an exact id 100, in the id 40, a whole
    /// title word 30, in the title 15, a whole description word 5, in the description 2; then
    /// published +3, deprecated +1. Only meaningful for matching entries.
    pub fn score(&self, entry: &CatalogEntry) -> u32 {
        let f = Fields::of(entry);
        let mut score: u32 = self
            .words
            .iter()
            .map(|w| {
                let id = if f.id == *w {
                    100
                } else if f.id.contains(w.as_str()) {
                    40
                } else {
                    0
                };
                let title = if has_word(&f.title, w) {
                    30
                } else if f.title.contains(w.as_str()) {
                    15
                } else {
                    0
                };
                let description = if has_word(&f.description, w) {
                    5
                } else if f.description.contains(w.as_str()) {
                    2
                } else {
                    0
                };
                id + title + description
            })
            .sum();
        score += match entry.lifecycle {
            CatalogLifecycle::Published => 3,
            CatalogLifecycle::Deprecated => 1,
            CatalogLifecycle::Draft | CatalogLifecycle::Retired => 0,
        };
        score
    }
}

/// The searchable text of an entry, lower case.
struct Fields {
    id: String,
    title: String,
    description: String,
}

impl Fields {
    fn of(e: &CatalogEntry) -> Self {
        Fields {
            id: e.id.as_str().to_lowercase(),
            title: e.content.title.to_lowercase(),
            description: e.content.description.to_lowercase(),
        }
    }

    fn contains(&self, w: &str) -> bool {
        self.id.contains(w) || self.title.contains(w) || self.description.contains(w)
    }
}

/// True when `w` is a whole word of `text` (split on anything not alphanumeric).
fn has_word(text: &str, w: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric()).any(|t| t == w)
}

/// The search query: matching entries, best first (ties by id), at most `limit` (capped at
/// [`CATALOG_SEARCH_RESULTS_MAX`]).
pub fn search_catalog<'a>(
    entries: &'a [CatalogEntry],
    query: &CatalogQuery,
    limit: usize,
) -> Vec<&'a CatalogEntry> {
    ranked_catalog(entries, query)
        .into_iter()
        .take(limit.min(CATALOG_SEARCH_RESULTS_MAX))
        .map(|(_, e)| e)
        .collect()
}

/// Every entry matching the query with its score, best first (ties by id): the order a paged
/// search walks.
pub fn ranked_catalog<'a>(
    entries: &'a [CatalogEntry],
    query: &CatalogQuery,
) -> Vec<(u32, &'a CatalogEntry)> {
    let mut hits: Vec<(u32, &CatalogEntry)> = entries
        .iter()
        .filter(|e| query.matches(e))
        .map(|e| (query.score(e), e))
        .collect();
    hits.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::fixtures::{day, ok, org};

    fn input<'a>(id: &'a str, owner: &'a str, scopes: &'a [String]) -> CatalogInput<'a> {
        CatalogInput {
            id,
            owner,
            title: "Kjernejournal API",
            description: "Les kritisk info og legemiddelliste for en pasient.",
            base_url: "https://api.nhn.no/kjernejournal",
            spec_url: "https://api.nhn.no/kjernejournal/openapi.json",
            scopes,
            audience: "personnel",
            requires_consent: false,
            version: "1.2",
        }
    }

    fn entry(id: &str, owner: &OrgNumber, rev: u64) -> CatalogEntry {
        let scopes = vec!["kj/read".to_owned()];
        let cmd = ok(CatalogRegister::parse(&input(id, owner.as_str(), &scopes)));
        ok(apply_catalog_register(None, &cmd, day(1), rev)).0
    }

    #[test]
    fn register_update_lifecycle() {
        let o = org(0);
        let scopes = vec!["kj/read".to_owned()];
        let reg = ok(CatalogRegister::parse(&input(
            "nhn.kj",
            o.as_str(),
            &scopes,
        )));
        let (e, changed) = ok(apply_catalog_register(None, &reg, day(1), 3));
        assert!(changed);
        assert_eq!(
            (e.lifecycle, e.create_revision, e.mod_revision),
            (CatalogLifecycle::Draft, 3, 3)
        );
        let (same, changed) = ok(apply_catalog_register(Some(&e), &reg, day(2), 4));
        assert!(!changed);
        assert_eq!(same, e);
        let mut other = reg.clone();
        other.content.title = "Other".into();
        assert!(matches!(
            apply_catalog_register(Some(&e), &other, day(2), 4),
            Err(ApplyError::Conflict(_))
        ));

        let mut i = input("nhn.kj", o.as_str(), &scopes);
        i.version = "1.3";
        let up = ok(CatalogUpdate::parse(&i));
        let (u, changed) = ok(apply_catalog_update(Some(&e), &up, day(3), 5));
        assert!(changed);
        assert_eq!(
            (u.content.version.as_str(), u.mod_revision, u.created_at),
            ("1.3", 5, day(1))
        );
        let (u2, changed) = ok(apply_catalog_update(Some(&u), &up, day(4), 6));
        assert!(!changed);
        assert_eq!(u2, u);

        let step = |e: &CatalogEntry, to: &str, rev| {
            apply_catalog_set_lifecycle(
                Some(e),
                &ok(CatalogSetLifecycle::parse("nhn.kj", to, o.as_str())),
                day(5),
                rev,
            )
        };
        let (p, changed) = ok(step(&u, "published", 7));
        assert!(changed && p.lifecycle == CatalogLifecycle::Published && p.mod_revision == 7);
        let (p2, changed) = ok(step(&p, "published", 8));
        assert!(!changed);
        assert_eq!(p2, p);
        assert!(matches!(
            step(&p, "draft", 8),
            Err(ApplyError::FailedPrecondition(_))
        ));
        let (d, _) = ok(step(&p, "deprecated", 8));
        assert!(matches!(
            step(&d, "published", 9),
            Err(ApplyError::FailedPrecondition(_))
        ));
        let (r, _) = ok(step(&d, "retired", 9));
        assert!(matches!(
            step(&r, "deprecated", 10),
            Err(ApplyError::FailedPrecondition(_))
        ));
        assert!(matches!(
            apply_catalog_update(Some(&r), &up, day(6), 10),
            Err(ApplyError::FailedPrecondition(_))
        ));
        // Skipping forward is allowed.
        let (skip, changed) = ok(step(&u, "retired", 11));
        assert!(changed && skip.lifecycle == CatalogLifecycle::Retired);
    }

    #[test]
    fn only_the_owner_changes_an_entry() {
        let (o, other) = (org(0), org(1));
        let e = entry("nhn.kj", &o, 3);
        let scopes = vec!["kj/read".to_owned()];
        let mut i = input("nhn.kj", other.as_str(), &scopes);
        i.version = "9";
        let up = ok(CatalogUpdate::parse(&i));
        assert!(matches!(
            apply_catalog_update(Some(&e), &up, day(2), 4),
            Err(ApplyError::PermissionDenied(_))
        ));
        let lc = ok(CatalogSetLifecycle::parse(
            "nhn.kj",
            "published",
            other.as_str(),
        ));
        assert!(matches!(
            apply_catalog_set_lifecycle(Some(&e), &lc, day(2), 4),
            Err(ApplyError::PermissionDenied(_))
        ));
        assert!(matches!(
            apply_catalog_update(None, &up, day(2), 4),
            Err(ApplyError::NotFound(_))
        ));
        assert!(matches!(
            apply_catalog_set_lifecycle(None, &lc, day(2), 4),
            Err(ApplyError::NotFound(_))
        ));
    }

    fn publish(e: CatalogEntry) -> CatalogEntry {
        CatalogEntry {
            lifecycle: CatalogLifecycle::Published,
            ..e
        }
    }

    #[test]
    fn search_filters_and_ranks() {
        let (o, other) = (org(0), org(1));
        let kj = publish(entry("nhn.kjernejournal", &o, 1));
        let mut resept = publish(entry("nhn.e-resept", &o, 2));
        resept.content.title = "Reseptformidleren".into();
        resept.content.description = "Resepter; ikke kjernejournal.".into();
        resept.content.audience = Audience::Citizen;
        resept.content.scopes = vec!["erf/read".into()];
        let draft = entry("other.draft-kjernejournal", &other, 3);
        let mut retired = publish(entry("old.kjernejournal", &other, 4));
        retired.lifecycle = CatalogLifecycle::Retired;
        let all = vec![kj.clone(), resept.clone(), draft.clone(), retired.clone()];

        let q = ok(CatalogQuery::parse("KJERNEJOURNAL", "", "", "", false));
        assert_eq!(search_catalog(&all, &q, 10), vec![&kj, &resept]);
        assert!(q.score(&kj) > q.score(&resept));
        let q = ok(CatalogQuery::parse("kjernejournal", "", "", "", true));
        assert_eq!(search_catalog(&all, &q, 10), vec![&kj, &retired, &resept]);
        let q = ok(CatalogQuery::parse(
            "kjernejournal",
            other.as_str(),
            "",
            "",
            false,
        ));
        assert_eq!(search_catalog(&all, &q, 10), vec![&draft]);
        let q = ok(CatalogQuery::parse("", "", "erf/read", "", false));
        assert_eq!(search_catalog(&all, &q, 10), vec![&resept]);
        let q = ok(CatalogQuery::parse("", "", "", "citizen", false));
        assert_eq!(search_catalog(&all, &q, 10), vec![&resept]);
        let q = ok(CatalogQuery::parse(
            "legemiddelliste kritisk",
            "",
            "",
            "",
            false,
        ));
        assert_eq!(search_catalog(&all, &q, 10), vec![&kj]);
        let q = ok(CatalogQuery::parse("kritisk nothere", "", "", "", false));
        assert!(search_catalog(&all, &q, 10).is_empty());
        let q = ok(CatalogQuery::parse("", "", "", "", false));
        assert_eq!(search_catalog(&all, &q, 1).len(), 1);
    }

    #[test]
    fn bad_input_names_the_field() {
        let o = org(0);
        let scopes = vec!["a".to_owned()];
        let base = input("nhn.kj", o.as_str(), &scopes);
        let long_title = "t".repeat(CATALOG_TITLE_BYTES_MAX + 1);
        let long_desc = "d".repeat(CATALOG_DESCRIPTION_BYTES_MAX + 1);
        let long_url = format!("https://x/{}", "a".repeat(URL_BYTES_MAX));
        let too_many: Vec<String> = (0..=SCOPES_PER_CATALOG_ENTRY_MAX)
            .map(|i| format!("s{i}"))
            .collect();
        let bad_scope = vec!["a\"b".to_owned()];
        let cases: Vec<(CatalogInput<'_>, &str)> = vec![
            (CatalogInput { id: "", ..base }, "id"),
            (
                CatalogInput {
                    id: "has space",
                    ..base
                },
                "id",
            ),
            (
                CatalogInput {
                    owner: "12345678",
                    ..base
                },
                "owner",
            ),
            (CatalogInput { title: " ", ..base }, "title"),
            (
                CatalogInput {
                    title: &long_title,
                    ..base
                },
                "title",
            ),
            (
                CatalogInput {
                    description: &long_desc,
                    ..base
                },
                "description",
            ),
            (
                CatalogInput {
                    base_url: "",
                    ..base
                },
                "base_url",
            ),
            (
                CatalogInput {
                    base_url: "ftp://x",
                    ..base
                },
                "base_url",
            ),
            (
                CatalogInput {
                    base_url: "https://",
                    ..base
                },
                "base_url",
            ),
            (
                CatalogInput {
                    base_url: "https://a b",
                    ..base
                },
                "base_url",
            ),
            (
                CatalogInput {
                    spec_url: &long_url,
                    ..base
                },
                "spec_url",
            ),
            (
                CatalogInput {
                    scopes: &too_many,
                    ..base
                },
                "scopes",
            ),
            (
                CatalogInput {
                    scopes: &bad_scope,
                    ..base
                },
                "scopes[0]",
            ),
            (
                CatalogInput {
                    audience: "everyone",
                    ..base
                },
                "audience",
            ),
            (
                CatalogInput {
                    version: "1\u{7}",
                    ..base
                },
                "version",
            ),
        ];
        for (i, field) in cases {
            match CatalogRegister::parse(&i) {
                Err(e) => assert_eq!(e.field, field, "{e}"),
                Ok(_) => panic!("accepted bad input for {field}"),
            }
        }
        let e = CatalogSetLifecycle::parse("nhn.kj", "archived", o.as_str()).err();
        assert_eq!(e.map(|e| e.field), Some("lifecycle".into()));
        let many_words = vec!["w"; CATALOG_QUERY_WORDS_MAX + 1]
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{w}{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let e = CatalogQuery::parse(&many_words, "", "", "", false).err();
        assert_eq!(e.map(|e| e.field), Some("text".into()));
        let e = CatalogQuery::parse("", "", "", "robots", false).err();
        assert_eq!(e.map(|e| e.field), Some("audience".into()));
        let e = CatalogQuery::parse("", "1", "", "", false).err();
        assert_eq!(e.map(|e| e.field), Some("owner".into()));
    }
}
