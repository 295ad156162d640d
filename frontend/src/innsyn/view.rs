//! What one view of the citizen page reads from the cluster, with the viewer's token (each
//! read is itself audited by the nodes as the viewer's): the person's latest audit events (up
//! to `innsyn.access_events_max`, from at most [`AUDIT_PAGES_MAX`] pages of the log),
//! pending override notifications, blocks, consents, reservations and, on the citizen's own
//! view, whom they represent now. The sections are
//! read at once; one that fails says so on the page without hiding the others.

use kartotek_client::KartotekClient;
use kartotek_client::proto as v1;

use crate::AppState;
use crate::problem::HttpError;

/// Most persons listed as represented (one page of the registry's list).
pub const REPRESENTED_MAX: usize = 100;
/// Most records of one kind shown (one page of the registry's list).
pub const RECORDS_MAX: u32 = 500;

/// One section's records, or why they could not be read.
pub type Section<T> = Result<Vec<T>, String>;

/// Everything one view shows.
#[derive(Debug)]
pub struct View {
    /// The audit events about the person, oldest first.
    pub events: Section<v1::AuditEvent>,
    /// True when there are more events than were read.
    pub more_events: bool,
    /// Override notifications not yet acknowledged.
    pub notifications: Section<v1::PatientNotification>,
    /// Consents requested or granted (not withdrawn, denied or expired).
    pub consents: Section<v1::Consent>,
    /// Blocks not revoked.
    pub blocks: Section<v1::Block>,
    /// Active reservations.
    pub reservations: Section<v1::Reservation>,
    /// Whom the person represents now (own view only).
    pub represented: Option<Section<v1::Representation>>,
}

impl Default for View {
    /// Nothing in any section.
    fn default() -> Self {
        View {
            events: Ok(Vec::new()),
            more_events: false,
            notifications: Ok(Vec::new()),
            consents: Ok(Vec::new()),
            blocks: Ok(Vec::new()),
            reservations: Ok(Vec::new()),
            represented: None,
        }
    }
}

fn shown(e: kartotek_client::ClientError) -> String {
    let p = HttpError::Cluster(e).problem();
    p.detail.unwrap_or(p.title)
}

/// Reads the view of `person` with `client` (the viewer's token for that person);
/// `own`: the viewer's own view (then also whom they represent).
pub(crate) async fn load(s: &AppState, client: &KartotekClient, person: &str, own: bool) -> View {
    let events = events(client, person, s.config.innsyn.access_events_max);
    let notifications = async {
        client
            .list_notifications(v1::ListNotificationsRequest {
                patient: person.into(),
                pending_only: true,
                page_size: RECORDS_MAX,
                ..Default::default()
            })
            .await
            .map(|a| a.notifications)
            .map_err(shown)
    };
    let consents = async {
        client
            .list_consents(v1::ListConsentsRequest {
                patient: person.into(),
                page_size: RECORDS_MAX,
                ..Default::default()
            })
            .await
            .map(|a| {
                a.consents
                    .into_iter()
                    .filter(|c| {
                        matches!(
                            v1::ConsentStatus::try_from(c.status),
                            Ok(v1::ConsentStatus::Granted | v1::ConsentStatus::Requested)
                        )
                    })
                    .collect()
            })
            .map_err(shown)
    };
    let blocks = async {
        client
            .list_blocks(v1::ListBlocksRequest {
                patient: person.into(),
                page_size: RECORDS_MAX,
                ..Default::default()
            })
            .await
            .map(|a| {
                a.blocks
                    .into_iter()
                    .filter(|b| b.status == v1::BlockStatus::Active as i32)
                    .collect()
            })
            .map_err(shown)
    };
    let reservations = async {
        client
            .list_reservations(v1::ListReservationsRequest {
                patient: person.into(),
                active_only: true,
                page_size: RECORDS_MAX,
                ..Default::default()
            })
            .await
            .map(|a| a.reservations)
            .map_err(shown)
    };
    let represented = async {
        if own {
            Some(represented(client, person).await.map_err(|e| {
                let p = e.problem();
                p.detail.unwrap_or(p.title)
            }))
        } else {
            None
        }
    };
    let ((events, more_events), notifications, consents, blocks, reservations, represented) = tokio::join!(
        events,
        notifications,
        consents,
        blocks,
        reservations,
        represented
    );
    View {
        events,
        more_events,
        notifications,
        consents,
        blocks,
        reservations,
        represented,
    }
}

/// Appends `events` to `kept`, keeping the latest `max`; true when one was dropped.
fn keep_latest<T>(kept: &mut std::collections::VecDeque<T>, events: Vec<T>, max: usize) -> bool {
    let mut dropped = false;
    for e in events {
        if max == 0 {
            return true;
        }
        if kept.len() == max {
            kept.pop_front();
            dropped = true;
        }
        kept.push_back(e);
    }
    dropped
}

/// Most pages of the audit log read for one view (of up to 1000 events each).
pub const AUDIT_PAGES_MAX: usize = 50;

/// The person's latest audit events, at most `max`, in chain order; and whether there are
/// more (older ones dropped, or more than [`AUDIT_PAGES_MAX`] pages).
async fn events(
    client: &KartotekClient,
    person: &str,
    max: u32,
) -> (Section<v1::AuditEvent>, bool) {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut kept = std::collections::VecDeque::new();
    let mut dropped = false;
    let mut from_seq = 0;
    for _ in 0..AUDIT_PAGES_MAX {
        let page = match client
            .query_audit(v1::QueryAuditRequest {
                patient: person.into(),
                from_seq,
                limit: kartotek_domain::limits::AUDIT_QUERY_LIMIT_MAX as u32,
                ..Default::default()
            })
            .await
        {
            Ok(p) => p,
            Err(e) => return (Err(shown(e)), false),
        };
        dropped |= keep_latest(&mut kept, page.events, max);
        if page.next_seq == 0 {
            return (Ok(kept.into()), dropped);
        }
        from_seq = page.next_seq;
    }
    (Ok(kept.into()), true)
}

/// The representation area a view of the represented person is asked in: `*` when the
/// representation gives every area now, else `audit` (the area `AuditService.Query` takes for
/// a representative) when it gives that; none when it gives neither (e.g. parental
/// responsibility for a child of 12 to 15 gives only the policy's limited areas), and then
/// the registry does not let the representative see the person's log.
pub fn view_area(r: &v1::Representation) -> Option<&'static str> {
    if r.effective_areas.iter().any(|a| a == "*") {
        Some("*")
    } else if r.effective_areas.iter().any(|a| a == "audit") {
        Some("audit")
    } else {
        None
    }
}

/// Whom `person` represents now (the registry's list without inactive records, so aged-out
/// parental responsibility is not there), one entry per represented person, by national id.
pub async fn represented(
    client: &KartotekClient,
    person: &str,
) -> Result<Vec<v1::Representation>, HttpError> {
    let answer = client
        .list_represented_by(v1::ListRepresentationsRequest {
            person: person.into(),
            include_inactive: false,
            page_size: REPRESENTED_MAX as u32,
            ..Default::default()
        })
        .await?;
    let mut people: Vec<v1::Representation> = answer
        .representations
        .into_iter()
        .filter(|r| !r.effective_areas.is_empty() && r.represented != person)
        .collect();
    people.sort_by(|a, b| a.represented.cmp(&b.represented).then(a.id.cmp(&b.id)));
    people.dedup_by(|a, b| a.represented == b.represented);
    Ok(people)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_events_are_kept() {
        let mut kept = std::collections::VecDeque::new();
        assert!(!keep_latest(&mut kept, vec![1, 2], 3));
        assert!(keep_latest(&mut kept, vec![3, 4, 5], 3));
        assert_eq!(Vec::from(kept), vec![3, 4, 5]);
        let mut none = std::collections::VecDeque::new();
        assert!(keep_latest(&mut none, vec![1], 0));
        assert!(none.is_empty());
    }
}
