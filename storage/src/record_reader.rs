//! Reads of the record families for the API (blocks, consents, reservations, representations,
//! API catalog entries, clients, patient notifications) and the access decision's facts.
//!
//! Like the locator reads in `reader.rs`, every method reads one RocksDB snapshot, so the
//! records it returns, the revision and the applied index are mutually consistent; above all,
//! [`StateReader::access_facts`] gives the access decision a patient's blocks, consents,
//! reservations and representations as of one point of history. Whether the local state is
//! fresh enough is the caller's business (the node's read path).

use kartotek_domain::access::PatientFacts;
use kartotek_domain::consent::ConsentDue;
use kartotek_domain::notification::PatientNotification;
use kartotek_domain::token_ids::{TokenId, TokenIdKind, TokenJti};
use kartotek_domain::{
    Block, CatalogEntry, CatalogId, ClientId, ClientRecord, Consent, NationalId, OrgNumber,
    Representation, Reservation, ServiceName, Timestamp,
};
use rocksdb::{DB, Direction, IteratorMode, SnapshotWithThreadMode};
use serde::de::DeserializeOwned;

use crate::codec::decode;
use crate::db::{cf, prefix_read_options};
use crate::error::StoreError;
use crate::keys::CF_SM;
use crate::reader::{ReadResult, StateReader, view_clock, view_position};
use crate::record_keys::*;

/// Most records one prefix scan returns (a guard; the per-person bounds of the domain are
/// lower).
pub const RECORD_SCAN_MAX: usize = 100_000;

/// The access decision's inputs about one patient, owned (borrow them with
/// [`OwnedFacts::facts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedFacts {
    /// Every block of the patient (any status).
    pub blocks: Vec<Block>,
    /// Every consent of the patient (any status).
    pub consents: Vec<Consent>,
    /// The patient's reservation for the service asked about, if any (any status).
    pub reservations: Vec<Reservation>,
    /// Every representation naming the patient as represented (any status).
    pub representations: Vec<Representation>,
    /// The catalog entry whose id is the service name, if any.
    pub catalog_entry: Option<CatalogEntry>,
    /// The state clock of the view the facts come from (latest applied leader stamp): the
    /// earliest time a decision from these facts may be made for.
    pub state_clock: Timestamp,
}

impl OwnedFacts {
    /// The facts as the domain's decision takes them.
    pub fn facts(&self) -> PatientFacts<'_> {
        PatientFacts {
            blocks: &self.blocks,
            consents: &self.consents,
            reservations: &self.reservations,
            representations: &self.representations,
            catalog_entry: self.catalog_entry.as_ref(),
        }
    }
}

type View<'a> = SnapshotWithThreadMode<'a, DB>;

/// Every value under `prefix` in `view`, in key order, at most `limit`.
fn scan<T: DeserializeOwned>(
    db: &DB,
    view: &View<'_>,
    prefix: &[u8],
    limit: usize,
) -> Result<Vec<T>, StoreError> {
    let sm = cf(db, CF_SM)?;
    let mut out = Vec::new();
    for item in view.iterator_cf_opt(
        sm,
        prefix_read_options(prefix),
        IteratorMode::From(prefix, Direction::Forward),
    ) {
        let (k, v) = item?;
        if !k.starts_with(prefix) || out.len() >= limit {
            break;
        }
        out.push(decode(&v)?);
    }
    Ok(out)
}

/// One value by key in `view`.
fn point<T: DeserializeOwned>(
    db: &DB,
    view: &View<'_>,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    let sm = cf(db, CF_SM)?;
    match view.get_cf(sm, key)? {
        Some(v) => Ok(Some(decode(&v)?)),
        None => Ok(None),
    }
}

impl StateReader {
    /// Runs `read` on one snapshot and wraps its value with the snapshot's position.
    fn in_view<T>(
        &self,
        read: impl FnOnce(&DB, &View<'_>) -> Result<T, StoreError>,
    ) -> Result<ReadResult<T>, StoreError> {
        let view = self.view()?;
        let value = read(&self.db, &view)?;
        let (applied_index, revision) = view_position(&self.db, &view)?;
        Ok(ReadResult {
            value,
            revision,
            applied_index,
        })
    }

    /// Up to `max` consent due-index entries due at or before `by`, earliest first: the
    /// candidates of the leader's expiry sweep. A key in the index that does not parse is
    /// corruption.
    pub fn consents_due(&self, by: Timestamp, max: usize) -> Result<Vec<ConsentDue>, StoreError> {
        let sm = cf(&self.db, CF_SM)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(
            sm,
            prefix_read_options(CONSENT_DUE_PREFIX),
            IteratorMode::From(CONSENT_DUE_PREFIX, Direction::Forward),
        ) {
            let (k, _) = item?;
            if !k.starts_with(CONSENT_DUE_PREFIX) || out.len() >= max {
                break;
            }
            let due = split_consent_due_key(&k).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "consent due-index key {} does not parse",
                    hex::encode(&k)
                ))
            })?;
            if due.due_at > by {
                break;
            }
            out.push(due);
        }
        Ok(out)
    }

    /// Up to `max` token ids whose expiry is at or before `by`, earliest first: the
    /// candidates of the leader's token-id sweep. A key in the index that does not parse is
    /// corruption.
    pub fn token_ids_expired(&self, by: Timestamp, max: usize) -> Result<Vec<TokenId>, StoreError> {
        let sm = cf(&self.db, CF_SM)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(
            sm,
            prefix_read_options(TOKEN_EXPIRY_PREFIX),
            IteratorMode::From(TOKEN_EXPIRY_PREFIX, Direction::Forward),
        ) {
            let (k, _) = item?;
            if !k.starts_with(TOKEN_EXPIRY_PREFIX) || out.len() >= max {
                break;
            }
            let id = split_token_expiry_key(&k).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "token expiry-index key {} does not parse",
                    hex::encode(&k)
                ))
            })?;
            if id.expires_at > by {
                break;
            }
            out.push(id);
        }
        Ok(out)
    }

    /// The stored token id of this kind, client and `jti`, if any (live or not yet swept: see
    /// [`TokenId::live_at`]). One point read of the latest applied state, no snapshot: the
    /// node asks this on every call for the token's revocation.
    pub fn token_id(
        &self,
        kind: TokenIdKind,
        client: &ClientId,
        jti: &TokenJti,
    ) -> Result<Option<TokenId>, StoreError> {
        let sm = cf(&self.db, CF_SM)?;
        let found = self.fenced(|| {
            Ok(self
                .db
                .get_pinned_cf(sm, token_id_key(kind, client, jti))?
                .map(|v| v.to_vec()))
        })?;
        match found {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Every block of a patient (any status), oldest first.
    pub fn blocks_of(&self, patient: &NationalId) -> Result<ReadResult<Vec<Block>>, StoreError> {
        self.in_view(|db, v| scan(db, v, &block_prefix(patient), RECORD_SCAN_MAX))
    }

    /// Every consent of a patient (any stored status), oldest first.
    pub fn consents_of(
        &self,
        patient: &NationalId,
    ) -> Result<ReadResult<Vec<Consent>>, StoreError> {
        self.in_view(|db, v| scan(db, v, &consent_prefix(patient), RECORD_SCAN_MAX))
    }

    /// Every reservation of a patient (any status), by service.
    pub fn reservations_of(
        &self,
        patient: &NationalId,
    ) -> Result<ReadResult<Vec<Reservation>>, StoreError> {
        self.in_view(|db, v| scan(db, v, &reservation_prefix(patient), RECORD_SCAN_MAX))
    }

    /// The patient's reservation record for one service, if any (any status).
    pub fn reservation(
        &self,
        patient: &NationalId,
        service: &ServiceName,
    ) -> Result<ReadResult<Option<Reservation>>, StoreError> {
        self.in_view(|db, v| point(db, v, &reservation_key(patient, service)))
    }

    /// Every representation naming `represented` (any status), oldest first.
    pub fn representations_of_represented(
        &self,
        represented: &NationalId,
    ) -> Result<ReadResult<Vec<Representation>>, StoreError> {
        self.in_view(|db, v| scan(db, v, &represented_prefix(represented), RECORD_SCAN_MAX))
    }

    /// Every representation naming `representative` (any status), oldest first.
    pub fn representations_of_representative(
        &self,
        representative: &NationalId,
    ) -> Result<ReadResult<Vec<Representation>>, StoreError> {
        self.in_view(|db, v| {
            let sm = cf(db, CF_SM)?;
            let prefix = representative_prefix(representative);
            let mut out = Vec::new();
            for item in v.iterator_cf_opt(
                sm,
                prefix_read_options(&prefix),
                IteratorMode::From(&prefix, Direction::Forward),
            ) {
                let (k, represented) = item?;
                let Some(rest) = k.strip_prefix(prefix.as_slice()) else {
                    break;
                };
                if out.len() >= RECORD_SCAN_MAX {
                    break;
                }
                let id_bytes: [u8; 8] = rest
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("short representative index key".into()))?;
                let id = u64::from_be_bytes(id_bytes);
                let mut key = b"S".to_vec();
                key.extend_from_slice(&represented);
                key.extend_from_slice(&id.to_be_bytes());
                match point::<Representation>(db, v, &key)? {
                    Some(r) => out.push(r),
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "representative index names representation {id}, which is missing"
                        )));
                    }
                }
            }
            Ok(out)
        })
    }

    /// One API catalog entry.
    pub fn catalog_entry(
        &self,
        id: &CatalogId,
    ) -> Result<ReadResult<Option<CatalogEntry>>, StoreError> {
        self.in_view(|db, v| point(db, v, &catalog_key(id)))
    }

    /// Every API catalog entry, by id (search filters and ranks them).
    pub fn catalog_entries(&self) -> Result<ReadResult<Vec<CatalogEntry>>, StoreError> {
        self.in_view(|db, v| scan(db, v, CATALOG_PREFIX, RECORD_SCAN_MAX))
    }

    /// One token-issuance client.
    pub fn client_record(
        &self,
        id: &ClientId,
    ) -> Result<ReadResult<Option<ClientRecord>>, StoreError> {
        self.in_view(|db, v| point(db, v, &client_key(id)))
    }

    /// The token-issuance clients, by id: all, or those of one organisation.
    pub fn client_records(
        &self,
        org: Option<&OrgNumber>,
    ) -> Result<ReadResult<Vec<ClientRecord>>, StoreError> {
        self.in_view(|db, v| {
            let all: Vec<ClientRecord> = scan(db, v, CLIENT_PREFIX, RECORD_SCAN_MAX)?;
            Ok(all
                .into_iter()
                .filter(|c| org.is_none_or(|o| c.org == *o))
                .collect())
        })
    }

    /// A patient's notifications, oldest first: all, or only those not yet acknowledged; at
    /// most `limit`.
    pub fn notifications_of(
        &self,
        patient: &NationalId,
        pending_only: bool,
        limit: usize,
    ) -> Result<ReadResult<Vec<PatientNotification>>, StoreError> {
        self.in_view(|db, v| {
            let all: Vec<PatientNotification> =
                scan(db, v, &notification_prefix(patient), RECORD_SCAN_MAX)?;
            Ok(all
                .into_iter()
                .filter(|n| !pending_only || n.is_pending())
                .take(limit)
                .collect())
        })
    }

    /// The access decision's facts about `patient` for `service`, from one snapshot: every
    /// block, consent and representation (as represented) of the patient, the reservation for
    /// the service, and the catalog entry whose id is the service name.
    pub fn access_facts(
        &self,
        patient: &NationalId,
        service: &ServiceName,
    ) -> Result<ReadResult<OwnedFacts>, StoreError> {
        self.in_view(|db, v| {
            let catalog_entry = match CatalogId::parse("service", service.as_str()) {
                Ok(id) => point(db, v, &catalog_key(&id))?,
                Err(_) => None,
            };
            Ok(OwnedFacts {
                blocks: scan(db, v, &block_prefix(patient), RECORD_SCAN_MAX)?,
                consents: scan(db, v, &consent_prefix(patient), RECORD_SCAN_MAX)?,
                reservations: point(db, v, &reservation_key(patient, service))?
                    .into_iter()
                    .collect(),
                representations: scan(db, v, &represented_prefix(patient), RECORD_SCAN_MAX)?,
                catalog_entry,
                state_clock: view_clock(db, v)?,
            })
        })
    }
}
