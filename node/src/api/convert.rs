//! Conversions between domain records and `kartotek.v1` messages.

use kartotek_domain::{Change, ChangeEvent, LocatorEntry, LocatorStatus};
use kartotek_proto::v1;

use crate::api::records::convert as rc;

/// A stored locator entry as an API message.
pub fn locator_entry(e: &LocatorEntry) -> v1::LocatorEntry {
    v1::LocatorEntry {
        patient: e.key.patient.as_str().to_owned(),
        org: e.key.org.as_str().to_owned(),
        system: e.key.system.as_str().to_owned(),
        categories: e.categories.clone(),
        endpoint_ref: e.endpoint_ref.clone().unwrap_or_default(),
        status: match e.status {
            LocatorStatus::Active => v1::LocatorStatus::Active,
            LocatorStatus::Retired => v1::LocatorStatus::Retired,
        } as i32,
        first_registered: e.first_registered.to_rfc3339(),
        last_updated: e.last_updated.to_rfc3339(),
        create_revision: e.create_revision,
        mod_revision: e.mod_revision,
    }
}

/// A change event as an API message.
pub fn change_event(e: &ChangeEvent) -> v1::ChangeEvent {
    v1::ChangeEvent {
        revision: e.revision,
        at: e.at.to_rfc3339(),
        record: Some(match &e.change {
            Change::Locator(entry) => v1::change_event::Record::Locator(locator_entry(entry)),
            Change::Block(b) => v1::change_event::Record::Block(rc::block(b, e.at)),
            Change::Consent(c) => v1::change_event::Record::Consent(rc::consent(c, e.at)),
            Change::Reservation(r) => v1::change_event::Record::Reservation(rc::reservation(r)),
            Change::Representation(r) => {
                v1::change_event::Record::Representation(rc::representation(r, None))
            }
            Change::CatalogEntry(c) => v1::change_event::Record::CatalogEntry(rc::catalog_entry(c)),
            Change::Client(c) => v1::change_event::Record::Client(rc::client(c)),
            Change::Notification(n) => v1::change_event::Record::Notification(rc::notification(n)),
        }),
    }
}
