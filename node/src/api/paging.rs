//! Cursor paging, the one way every list call pages: [`PageRequest::parse`] reads a request's
//! `page_size` and `page_token`; for a record list, [`ListPage::of`] checks the token belongs
//! to that list (before anything is read) and [`ListPage::page`] cuts one page out of the
//! list the handler has read and filtered (filters apply before paging, so every page but the
//! last is full). Record lists are short per person (the domain bounds them) and are read
//! whole from one snapshot, then paged in memory; the locator list pages in storage.
//!
//! A page token is opaque to callers: the hex of a version byte, a digest of the list it
//! belongs to ([`ListScope`]: the method, the person or organisation, the filters) and the
//! sort key of the last record returned. The next page is the records whose key is above
//! that one, so a record added or removed between calls moves no other record across a page
//! boundary: no duplicates, no gaps among the records that stay. A token from another list
//! (another patient, another filter, another method) is refused, never answered with
//! somebody else's records. The locator list keeps its storage cursor (a key under the
//! organisation's prefix) and shares only [`PageRequest::parse`].

use kartotek_domain::ValidationError;
use kartotek_domain::limits::{LIST_PAGE_SIZE_DEFAULT, LIST_PAGE_SIZE_MAX, PAGE_TOKEN_BYTES_MAX};
use sha2::{Digest, Sha256};

use crate::error::NodeError;

/// First byte of a record-list token (a different layout gets a different byte).
const TOKEN_VERSION: u8 = 1;
/// Bytes of the list digest in a token.
const SCOPE_BYTES: usize = 8;

/// A list call's page size and cursor, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageRequest {
    /// At most this many records (1 to [`LIST_PAGE_SIZE_MAX`]).
    pub size: usize,
    /// The decoded `page_token` (`None`: the first page).
    pub cursor: Option<Vec<u8>>,
}

impl PageRequest {
    /// Reads `page_size` (0 means [`LIST_PAGE_SIZE_DEFAULT`], above [`LIST_PAGE_SIZE_MAX`] is
    /// refused) and `page_token` (empty: the first page; otherwise hex the API returned, at
    /// most [`PAGE_TOKEN_BYTES_MAX`] long).
    pub fn parse(page_size: u32, page_token: &str) -> Result<Self, NodeError> {
        Ok(PageRequest {
            size: page_size_of("page_size", page_size)?,
            cursor: cursor_of(page_token)?,
        })
    }

    /// As [`PageRequest::parse`], for a request that still has the older `limit` field: it
    /// is the page size when `page_size` is 0.
    pub fn parse_with_limit(
        page_size: u32,
        limit: u32,
        page_token: &str,
    ) -> Result<Self, NodeError> {
        if page_size == 0 && limit != 0 {
            return Ok(PageRequest {
                size: page_size_of("limit", limit)?,
                cursor: cursor_of(page_token)?,
            });
        }
        Self::parse(page_size, page_token)
    }
}

/// A page size sent as `field`.
fn page_size_of(field: &str, n: u32) -> Result<usize, NodeError> {
    match usize::try_from(n).unwrap_or(usize::MAX) {
        0 => Ok(LIST_PAGE_SIZE_DEFAULT),
        n if n > LIST_PAGE_SIZE_MAX => {
            Err(ValidationError::new(field, format!("is {n}, at most {LIST_PAGE_SIZE_MAX}")).into())
        }
        n => Ok(n),
    }
}

/// The bytes of a page token (`None` for the first page).
fn cursor_of(token: &str) -> Result<Option<Vec<u8>>, NodeError> {
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() > PAGE_TOKEN_BYTES_MAX {
        return Err(ValidationError::new(
            "page_token",
            format!(
                "is {} bytes, at most {PAGE_TOKEN_BYTES_MAX}; send the next_page_token of the previous page",
                token.len()
            ),
        )
        .into());
    }
    hex::decode(token).map(Some).map_err(|_| not_ours())
}

/// The error for a token that no list returned.
fn not_ours() -> NodeError {
    ValidationError::new(
        "page_token",
        "is not a token this API returned; send the next_page_token of the previous page",
    )
    .into()
}

/// The page token of a cursor (the empty string for none: the last page).
pub(crate) fn token_of(cursor: Option<&[u8]>) -> String {
    cursor.map(hex::encode).unwrap_or_default()
}

/// Which list a token belongs to: a digest of the method and every request field that
/// chooses the records (the person or organisation and the filters), not of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListScope([u8; SCOPE_BYTES]);

impl ListScope {
    /// The list `method` answers for `fields` (in a fixed order, as the request sent them).
    pub fn new(method: &str, fields: &[&str]) -> Self {
        let mut h = Sha256::new();
        h.update(b"kartotek.page\0");
        h.update(method.as_bytes());
        for f in fields {
            // Length-prefixed, so that no two field lists digest alike.
            h.update((f.len() as u64).to_be_bytes());
            h.update(f.as_bytes());
        }
        let digest = h.finalize();
        let mut scope = [0u8; SCOPE_BYTES];
        scope.copy_from_slice(&digest[..SCOPE_BYTES]);
        ListScope(scope)
    }

    /// The sort key a cursor of this list carries; refuses a cursor of another list.
    fn key_of<'c>(&self, cursor: &'c [u8]) -> Result<&'c [u8], NodeError> {
        let (version, rest) = cursor.split_first().ok_or_else(not_ours)?;
        if *version != TOKEN_VERSION || rest.len() < SCOPE_BYTES {
            return Err(not_ours());
        }
        let (scope, key) = rest.split_at(SCOPE_BYTES);
        if scope != self.0 {
            return Err(ValidationError::new(
                "page_token",
                "belongs to another list (another person, organisation, filter or method); \
                 send the same request with the next_page_token of its previous page",
            )
            .into());
        }
        Ok(key)
    }

    /// The page token that continues this list after the record with sort key `key`.
    fn token_after(&self, key: &[u8]) -> String {
        let mut t = Vec::with_capacity(1 + SCOPE_BYTES + key.len());
        t.push(TOKEN_VERSION);
        t.extend_from_slice(&self.0);
        t.extend_from_slice(key);
        token_of(Some(&t))
    }
}

/// One page of a list, and the token of the next (empty on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page<T> {
    /// The page's records, in sort-key order.
    pub items: Vec<T>,
    /// `next_page_token` of the answer.
    pub next_page_token: String,
}

/// A page request of one record list, its cursor checked to belong to that list (before
/// anything is read, so a refused token costs no read and records no audit event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListPage {
    scope: ListScope,
    size: usize,
    /// The sort key of the last record of the previous page.
    after: Option<Vec<u8>>,
}

impl ListPage {
    /// `request` for the list `method` answers for `fields` (see [`ListScope::new`]);
    /// refuses a token of another list.
    pub fn of(request: PageRequest, method: &str, fields: &[&str]) -> Result<Self, NodeError> {
        let scope = ListScope::new(method, fields);
        let after = match &request.cursor {
            Some(c) => Some(scope.key_of(c)?.to_vec()),
            None => None,
        };
        Ok(ListPage {
            scope,
            size: request.size,
            after,
        })
    }

    /// The page of `items` (already filtered): ordered by `key` (a record's unique sort key;
    /// byte order is the list's order), the first `size` after the cursor.
    pub fn page<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        key: impl Fn(&T) -> Vec<u8>,
    ) -> Page<T> {
        let after = self.after.as_deref();
        let mut keyed: Vec<(Vec<u8>, T)> = items
            .into_iter()
            .map(|item| (key(&item), item))
            .filter(|(k, _)| after.is_none_or(|a| k.as_slice() > a))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let more = keyed.len() > self.size;
        keyed.truncate(self.size);
        let next_page_token = match keyed.last() {
            Some((k, _)) if more => self.scope.token_after(k),
            _ => String::new(),
        };
        Page {
            items: keyed.into_iter().map(|(_, item)| item).collect(),
            next_page_token,
        }
    }
}

/// A boolean filter as a [`ListScope`] field.
pub(crate) fn bool_field(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// The sort key of a record listed by its id (oldest first).
pub(crate) fn id_key(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn code(e: NodeError) -> (Code, String) {
        let s: tonic::Status = e.into();
        (s.code(), s.message().to_owned())
    }

    fn refused(r: Result<PageRequest, NodeError>) -> (Code, String) {
        code(r.expect_err("refused"))
    }

    #[test]
    fn page_size_default_max_and_too_big() {
        assert_eq!(
            PageRequest::parse(0, "").ok().map(|p| p.size),
            Some(LIST_PAGE_SIZE_DEFAULT)
        );
        assert_eq!(PageRequest::parse(7, "").ok().map(|p| p.size), Some(7));
        let max = LIST_PAGE_SIZE_MAX as u32;
        assert_eq!(
            PageRequest::parse(max, "").ok().map(|p| p.size),
            Some(LIST_PAGE_SIZE_MAX)
        );
        let (c, m) = refused(PageRequest::parse(max + 1, ""));
        assert_eq!(c, Code::InvalidArgument);
        assert!(m.contains("page_size") && m.contains("at most 1000"), "{m}");
        let (c, m) = refused(PageRequest::parse(u32::MAX, ""));
        assert_eq!(c, Code::InvalidArgument, "{m}");
    }

    #[test]
    fn older_limit_is_the_page_size_when_page_size_is_not_set() {
        let p = PageRequest::parse_with_limit(0, 5, "").expect("ok");
        assert_eq!(p.size, 5);
        let p = PageRequest::parse_with_limit(3, 5, "").expect("ok");
        assert_eq!(p.size, 3);
        let (c, m) = refused(PageRequest::parse_with_limit(0, 5000, ""));
        assert_eq!(c, Code::InvalidArgument);
        assert!(m.contains("limit"), "{m}");
    }

    #[test]
    fn bad_and_too_long_tokens_are_invalid_arguments() {
        for bad in ["zz", "abc", "not a token", "0x12"] {
            let (c, m) = refused(PageRequest::parse(0, bad));
            assert_eq!(c, Code::InvalidArgument, "{bad}");
            assert!(m.contains("page_token") && m.contains("not a token"), "{m}");
        }
        let long = "ab".repeat(PAGE_TOKEN_BYTES_MAX / 2 + 1);
        let (c, m) = refused(PageRequest::parse(0, &long));
        assert_eq!(c, Code::InvalidArgument);
        assert!(m.contains("page_token") && m.contains("at most"), "{m}");
        // Hex that decodes but is no record-list token.
        for bytes in ["", "01", "0201020304050607080900", "01aabb"] {
            let req = PageRequest {
                size: 3,
                cursor: Some(hex::decode(bytes).expect("hex")),
            };
            let (c, m) =
                code(ListPage::of(req, "block.list", &["15076500565"]).expect_err("refused"));
            assert_eq!(c, Code::InvalidArgument, "{bytes}");
            assert!(m.contains("not a token"), "{m}");
        }
    }

    /// The page after `token` of `items` in the list `method` answers for `fields`.
    fn one(
        items: &[u64],
        size: u32,
        token: &str,
        method: &str,
        fields: &[&str],
    ) -> Result<Page<u64>, NodeError> {
        let req = PageRequest::parse(size, token)?;
        Ok(ListPage::of(req, method, fields)?.page(items.iter().copied(), |i| id_key(*i)))
    }

    fn all_pages(items: &[u64], size: u32) -> Vec<Vec<u64>> {
        let mut pages = Vec::new();
        let mut token = String::new();
        loop {
            let p =
                one(items, size, &token, "block.list", &["15076500565", "false"]).expect("page");
            pages.push(p.items);
            if p.next_page_token.is_empty() {
                return pages;
            }
            token = p.next_page_token;
        }
    }

    #[test]
    fn pages_are_full_ordered_and_end_with_an_empty_token() {
        let items = [9, 2, 14, 3, 5, 30, 7];
        assert_eq!(
            all_pages(&items, 3),
            vec![vec![2, 3, 5], vec![7, 9, 14], vec![30]]
        );
        // Exactly full: no empty trailing page.
        assert_eq!(all_pages(&items[..6], 3).len(), 2);
        assert_eq!(all_pages(&[], 3), vec![Vec::<u64>::new()]);
        assert_eq!(all_pages(&items, 0), vec![vec![2, 3, 5, 7, 9, 14, 30]]);
    }

    #[test]
    fn a_record_removed_between_pages_moves_nothing_else() {
        let f = &["15076500565"];
        let first = one(&[1, 2, 3, 4, 5], 2, "", "consent.list", f).expect("page");
        assert_eq!(first.items, vec![1, 2]);
        let second =
            one(&[1, 3, 4, 5], 2, &first.next_page_token, "consent.list", f).expect("page");
        assert_eq!(second.items, vec![3, 4]);
    }

    #[test]
    fn a_token_of_another_list_is_refused() {
        let mine: &[&str] = &["15076500565", "false"];
        let first = one(&[1, 2], 1, "", "block.list", mine).expect("page");
        let token = first.next_page_token;
        for (method, fields) in [
            ("block.list", &["31129956715", "false"][..]),
            ("block.list", &["15076500565", "true"]),
            ("consent.list", &["15076500565", "false"]),
            // Field boundaries count.
            ("block.list", &["15076500565f", "alse"]),
        ] {
            let (c, m) = code(one(&[1, 2], 1, &token, method, fields).expect_err("refused"));
            assert_eq!(c, Code::InvalidArgument);
            assert!(
                m.contains("page_token") && m.contains("another list"),
                "{m}"
            );
        }
        let second = one(&[1, 2], 1, &token, "block.list", mine).expect("page");
        assert_eq!(
            (second.items, second.next_page_token),
            (vec![2], String::new())
        );
    }

    #[test]
    fn tokens_fit_the_limit_for_long_keys() {
        // The longest key a list pages by is a catalog search's: a 4-byte rank and a catalog
        // id; its token must stay under the limit the parser enforces.
        let scope = ListScope::new("catalog.search", &[]);
        let key = vec![b'x'; 4 + kartotek_domain::limits::CATALOG_ID_BYTES_MAX];
        let token = scope.token_after(&key);
        assert!(token.len() <= PAGE_TOKEN_BYTES_MAX, "{}", token.len());
        assert!(PageRequest::parse(1, &token).is_ok());
    }
}
