//! Key layout of the record families in the `sm` column family (see `keys.rs` for the rest).
//!
//! Ids are server-assigned revisions, written big-endian so that a prefix scan returns a
//! person's records oldest first. National ids are 11 ASCII digits and org numbers 9, so the
//! fixed-width prefixes never run into each other.
//!
//! - `B` blocks: `patient(11) id(u64 BE)` → [`kartotek_domain::Block`];
//! - `N` consents: `patient(11) id(u64 BE)` → [`kartotek_domain::Consent`];
//! - `V` reservations: `patient(11) service` → [`kartotek_domain::Reservation`];
//! - `S` representations by the represented person: `represented(11) id(u64 BE)` →
//!   [`kartotek_domain::Representation`];
//! - `R` representations by representative: `representative(11) id(u64 BE)` → the
//!   represented person's id (11 bytes), pointing at the `S` key;
//! - `K` API catalog entries: `catalog id` → [`kartotek_domain::CatalogEntry`];
//! - `Q` token-issuance clients: `client id` → [`kartotek_domain::ClientRecord`];
//! - `W` patient notifications (emergency overrides): `patient(11) id(u64 BE)` →
//!   [`kartotek_domain::notification::PatientNotification`];
//! - `E` the consent due index: `due_at(u64 BE, ms, clamped at 0) patient(11) id(u64 BE)` →
//!   empty, one entry per stored consent version that falls due (see
//!   [`kartotek_domain::Consent::due_at`]); the leader's sweep reads it in time order and the
//!   sweep command removes what it went through;
//! - `J` spent and revoked token ids: `kind(1) client id 0x00 jti` →
//!   [`kartotek_domain::token_ids::TokenId`] (client ids never hold a zero byte, so the split
//!   is unambiguous);
//! - `X` their expiry index: `expires_at(u64 BE, ms) kind(1) client id 0x00 jti` → empty; the
//!   leader's sweep reads it in time order;
//! - `I` id lists for apply: `family(1) owner(11)` → the sorted ids (`Vec<u64>`) of one
//!   person's blocks (`B`), consents (`N`) or representations as represented (`S`). Apply
//!   reads a person's records through this list with point reads, which see the writes of
//!   the same log entry (the entry transaction has no prefix scan).

use kartotek_domain::consent::ConsentDue;
use kartotek_domain::token_ids::{TokenId, TokenIdKind, TokenJti};
use kartotek_domain::{CatalogId, ClientId, NationalId, ServiceName, Timestamp};

/// Which per-person id list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdList {
    /// A patient's blocks.
    Blocks,
    /// A patient's consents.
    Consents,
    /// The representations naming a person as represented.
    Represented,
}

impl IdList {
    fn byte(self) -> u8 {
        match self {
            IdList::Blocks => b'B',
            IdList::Consents => b'N',
            IdList::Represented => b'S',
        }
    }
}

/// `table` + the person's national id.
fn person_prefix(table: u8, person: &NationalId) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 11 + 8);
    k.push(table);
    k.extend_from_slice(person.as_str().as_bytes());
    k
}

/// `prefix` + id (u64 BE).
fn with_id(mut prefix: Vec<u8>, id: u64) -> Vec<u8> {
    prefix.extend_from_slice(&id.to_be_bytes());
    prefix
}

/// Prefix of every block of a patient.
pub fn block_prefix(patient: &NationalId) -> Vec<u8> {
    person_prefix(b'B', patient)
}

/// Key of one block.
pub fn block_key(patient: &NationalId, id: u64) -> Vec<u8> {
    with_id(block_prefix(patient), id)
}

/// Prefix of every consent of a patient.
pub fn consent_prefix(patient: &NationalId) -> Vec<u8> {
    person_prefix(b'N', patient)
}

/// Key of one consent.
pub fn consent_key(patient: &NationalId, id: u64) -> Vec<u8> {
    with_id(consent_prefix(patient), id)
}

/// Prefix of the consent due index.
pub const CONSENT_DUE_PREFIX: &[u8] = b"E";

/// Key of one consent due-index entry.
pub fn consent_due_key(due: &ConsentDue) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 8 + 11 + 8);
    k.extend_from_slice(CONSENT_DUE_PREFIX);
    k.extend_from_slice(&(due.due_at.0.max(0) as u64).to_be_bytes());
    k.extend_from_slice(due.patient.as_str().as_bytes());
    k.extend_from_slice(&due.consent_id.to_be_bytes());
    k
}

/// The entry a consent due-index key names; `None` for a key that is not one.
pub fn split_consent_due_key(key: &[u8]) -> Option<ConsentDue> {
    let rest = key.strip_prefix(CONSENT_DUE_PREFIX)?;
    let (due_at, rest) = rest.split_at_checked(8)?;
    let (patient, id) = rest.split_at_checked(11)?;
    let due_at = i64::try_from(u64::from_be_bytes(due_at.try_into().ok()?)).ok()?;
    Some(ConsentDue {
        due_at: Timestamp(due_at),
        patient: NationalId::parse(std::str::from_utf8(patient).ok()?).ok()?,
        consent_id: u64::from_be_bytes(id.try_into().ok()?),
    })
}

/// Prefix of every reservation of a patient.
pub fn reservation_prefix(patient: &NationalId) -> Vec<u8> {
    person_prefix(b'V', patient)
}

/// Key of one reservation.
pub fn reservation_key(patient: &NationalId, service: &ServiceName) -> Vec<u8> {
    let mut k = reservation_prefix(patient);
    k.extend_from_slice(service.as_str().as_bytes());
    k
}

/// Prefix of every representation naming `represented`.
pub fn represented_prefix(represented: &NationalId) -> Vec<u8> {
    person_prefix(b'S', represented)
}

/// Key of one representation (stored under the represented person).
pub fn representation_key(represented: &NationalId, id: u64) -> Vec<u8> {
    with_id(represented_prefix(represented), id)
}

/// Prefix of the by-representative index of `representative`.
pub fn representative_prefix(representative: &NationalId) -> Vec<u8> {
    person_prefix(b'R', representative)
}

/// Key of one by-representative index entry.
pub fn representative_index_key(representative: &NationalId, id: u64) -> Vec<u8> {
    with_id(representative_prefix(representative), id)
}

/// Prefix of every catalog entry.
pub const CATALOG_PREFIX: &[u8] = b"K";

/// Key of one catalog entry.
pub fn catalog_key(id: &CatalogId) -> Vec<u8> {
    let mut k = CATALOG_PREFIX.to_vec();
    k.extend_from_slice(id.as_str().as_bytes());
    k
}

/// Prefix of every client.
pub const CLIENT_PREFIX: &[u8] = b"Q";

/// Key of one client.
pub fn client_key(id: &ClientId) -> Vec<u8> {
    let mut k = CLIENT_PREFIX.to_vec();
    k.extend_from_slice(id.as_str().as_bytes());
    k
}

/// Prefix of every token id.
pub const TOKEN_ID_PREFIX: &[u8] = b"J";
/// Prefix of the token-id expiry index.
pub const TOKEN_EXPIRY_PREFIX: &[u8] = b"X";

/// `kind client 0x00 jti`, the part both token-id keys share.
fn token_id_part(kind: TokenIdKind, client: &ClientId, jti: &TokenJti) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + client.as_str().len() + jti.as_str().len());
    k.push(kind.byte());
    k.extend_from_slice(client.as_str().as_bytes());
    k.push(0);
    k.extend_from_slice(jti.as_str().as_bytes());
    k
}

/// Key of one token id.
pub fn token_id_key(kind: TokenIdKind, client: &ClientId, jti: &TokenJti) -> Vec<u8> {
    let mut k = TOKEN_ID_PREFIX.to_vec();
    k.extend_from_slice(&token_id_part(kind, client, jti));
    k
}

/// Key of a token id's expiry-index entry.
pub fn token_expiry_key(id: &TokenId) -> Vec<u8> {
    let mut k = TOKEN_EXPIRY_PREFIX.to_vec();
    k.extend_from_slice(&(id.expires_at.0.max(0) as u64).to_be_bytes());
    k.extend_from_slice(&token_id_part(id.kind, &id.client_id, &id.jti));
    k
}

/// The token id an expiry-index key names; `None` for a key that is not one.
pub fn split_token_expiry_key(key: &[u8]) -> Option<TokenId> {
    let rest = key.strip_prefix(TOKEN_EXPIRY_PREFIX)?;
    let (exp, rest) = rest.split_at_checked(8)?;
    let (&kind, rest) = rest.split_first()?;
    let zero = rest.iter().position(|&b| b == 0)?;
    let (client, jti) = (&rest[..zero], &rest[zero + 1..]);
    Some(TokenId {
        kind: TokenIdKind::from_byte(kind)?,
        client_id: ClientId::parse("client_id", std::str::from_utf8(client).ok()?).ok()?,
        jti: TokenJti::parse("jti", std::str::from_utf8(jti).ok()?).ok()?,
        expires_at: Timestamp(i64::try_from(u64::from_be_bytes(exp.try_into().ok()?)).ok()?),
    })
}

/// Prefix of every notification of a patient.
pub fn notification_prefix(patient: &NationalId) -> Vec<u8> {
    person_prefix(b'W', patient)
}

/// Key of one notification.
pub fn notification_key(patient: &NationalId, id: u64) -> Vec<u8> {
    with_id(notification_prefix(patient), id)
}

/// Key of a person's id list.
pub fn id_list_key(list: IdList, person: &NationalId) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + 11);
    k.push(b'I');
    k.push(list.byte());
    k.extend_from_slice(person.as_str().as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use kartotek_domain::ids::NationalIdKind;
    use kartotek_domain::ids::testing::national_id_from_parts;

    #[test]
    fn token_expiry_keys_round_trip_in_time_order() {
        let id = |exp: i64, jti: &str| TokenId {
            kind: TokenIdKind::Proof,
            client_id: ClientId::parse("c", "app-1").unwrap(),
            jti: TokenJti::parse("j", jti).unwrap(),
            expires_at: Timestamp(exp),
        };
        let (a, b) = (id(5_000, "z\u{7e}"), id(40_000, "a"));
        assert_eq!(
            split_token_expiry_key(&token_expiry_key(&a)),
            Some(a.clone())
        );
        assert!(token_expiry_key(&a) < token_expiry_key(&b));
        assert_eq!(split_token_expiry_key(b"X123"), None);
        assert_eq!(
            split_token_expiry_key(&token_id_key(a.kind, &a.client_id, &a.jti)),
            None
        );
    }

    fn person() -> NationalId {
        let date = chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap_or_default();
        match (0..1000u16).find_map(|i| national_id_from_parts(date, i, NationalIdKind::Ordinary)) {
            Some(p) => p,
            None => panic!("no id"),
        }
    }

    #[test]
    fn ids_order_within_a_person() {
        let p = person();
        assert!(block_key(&p, 255) < block_key(&p, 256));
        assert!(block_key(&p, 1).starts_with(&block_prefix(&p)));
        assert_eq!(block_key(&p, 1).len(), 1 + 11 + 8);
        assert_ne!(
            id_list_key(IdList::Blocks, &p),
            id_list_key(IdList::Consents, &p)
        );
        assert!(representation_key(&p, 3).starts_with(b"S"));
        assert!(representative_index_key(&p, 3).starts_with(b"R"));
    }

    #[test]
    fn consent_due_keys_order_by_time_and_round_trip() {
        let p = person();
        let due = |t, id| ConsentDue {
            due_at: Timestamp(t),
            patient: p.clone(),
            consent_id: id,
        };
        assert!(consent_due_key(&due(999, 9)) < consent_due_key(&due(1_000, 1)));
        assert!(consent_due_key(&due(1_000, 1)) < consent_due_key(&due(1_000, 2)));
        let d = due(1_700_000_000_000, 42);
        assert_eq!(split_consent_due_key(&consent_due_key(&d)), Some(d));
        assert_eq!(split_consent_due_key(b"E123"), None);
        assert_eq!(split_consent_due_key(&block_key(&p, 1)), None);
    }
}
