//! `GET /org`: the organisation view as a page, rendered on the server (maud): a GET form
//! (period, purpose, overrides only) that works without JavaScript, counts per purpose,
//! and a table of the accesses, emergency overrides first and marked, with links to the
//! CSV and FHIR exports of the same view.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::html;

use super::export::query_string;
use super::{Accesses, ORG_CSV_PATH, ORG_FHIR_PATH, OrgQuery, OrgView};
use crate::home::layout;
use crate::layer::OwnErrorFormat;

/// The answer to `/org` without `Authorization`: 401, with a page that says how to
/// authenticate (a browser cannot add a bearer token by itself).
pub fn needs_token() -> Response {
    let body = html! {
        h1 { "Organisasjonens tilganger" }
        p class="alert" { "Denne siden krever et tilgangstoken for virksomhetens egen klient med scope " code { "kartotek:audit.read" } "." }
        p {
            "Hent et token med " code { "POST /connect/token" } " (client_credentials med private_key_jwt; under "
            code { "kartotek dev" } ": " code { "kartotek token" } ") og send det som "
            code { "Authorization: Bearer <token>" } ", for eksempel med "
            code { "curl -H \"authorization: Bearer $TOKEN\" /org" } "."
        }
        p { "Eksportene av samme utvalg: " code { "/org/accesses.csv" } " (CSV) og " code { "/org/accesses" } " (FHIR Bundle av AuditEvent)." }
    };
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Html(layout("Organisasjonens tilganger", body).into_string()),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"kartotek\""),
    );
    response.extensions_mut().insert(OwnErrorFormat);
    response
}

/// The page of `view`'s `found` accesses.
pub fn render(
    q: &OrgQuery,
    view: &OrgView,
    found: &Accesses,
    personnel: &std::collections::HashMap<String, String>,
) -> Html<String> {
    let mut per_purpose: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for e in &found.events {
        let p = if e.purpose.is_empty() {
            "(ingen)"
        } else {
            e.purpose.as_str()
        };
        let slot = per_purpose.entry(p).or_default();
        slot.0 += 1;
        if e.emergency_override {
            slot.1 += 1;
        }
    }
    let qs = query_string(q, q.from_seq);
    let suffix = if qs.is_empty() {
        String::new()
    } else {
        format!("?{qs}")
    };
    let overrides = found.events.iter().filter(|e| e.emergency_override).count();
    let body = html! {
        h1 { "Tilganger i organisasjon " (view.org) }
        p { "Virksomhetens helsepersonells og systemers oppslag på pasientdata, slik de står i Kartoteks hash-kjedede logg. Nødtilganger (\"ØH-overstyring\") står først." }
        form class="search" method="get" action="/org" role="search" aria-label="Filtrer tilgangene" {
            div { label for="from" { "Fra (dato eller tid)" } input id="from" name="from" type="text" value=(q.from) placeholder="2026-12-01"; }
            div { label for="to" { "Til og med" } input id="to" name="to" type="text" value=(q.to) placeholder="2026-12-31"; }
            div { label for="purpose" { "Formål" } input id="purpose" name="purpose" type="text" value=(q.purpose) placeholder="treatment"; }
            div {
                label for="overrides_only" { "Bare nødtilganger" }
                select id="overrides_only" name="overrides_only" {
                    option value="false" selected[!view.overrides_only] { "Nei" }
                    option value="true" selected[view.overrides_only] { "Ja" }
                }
            }
            div { button type="submit" { "Vis" } }
        }
        p {
            "Last ned: " a href=(format!("{ORG_CSV_PATH}{suffix}")) { "CSV" }
            " · " a href=(format!("{ORG_FHIR_PATH}{suffix}")) { "FHIR Bundle (AuditEvent)" }
        }
        section aria-labelledby="summary" {
            h2 id="summary" { "Etter formål" }
            @if per_purpose.is_empty() {
                p { "Ingen tilganger i perioden." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Formål" } th scope="col" { "Tilganger" } th scope="col" { "Nødtilganger" } } }
                    tbody {
                        @for (purpose, (n, o)) in &per_purpose {
                            tr { td { (purpose) } td { (n) } td { (o) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="list" aria-live="polite" {
            h2 id="list" { (found.events.len()) " tilganger, " (overrides) " nødtilganger" }
            @if found.truncated {
                p class="alert" { "Flere tilganger enn det som vises: avgrens perioden." }
            }
            @if let Some(next) = found.next_from_seq {
                p { "Loggen er lest til sekvensnummer " (next) ". " a href=(format!("/org?{}", query_string(q, Some(next)))) { "Les videre" } }
            }
            @if !found.events.is_empty() {
                table {
                    thead {
                        tr {
                            th scope="col" { "Tid" } th scope="col" { "Hvem" } th scope="col" { "Pasient" }
                            th scope="col" { "Hva" } th scope="col" { "Formål" } th scope="col" { "Beslutning" }
                            th scope="col" { "Begrunnelse" }
                        }
                    }
                    tbody {
                        @for e in &found.events {
                            tr class=[e.emergency_override.then_some("alert")] {
                                td { (e.time) }
                                td {
                                    (e.actor)
                                    @if let Some(name) = e.actor.strip_prefix("personnel:").and_then(|h| personnel.get(h)) {
                                        br; (name)
                                    }
                                }
                                td { (e.patient) }
                                td { (e.action) }
                                td { (e.purpose) }
                                td {
                                    @if e.emergency_override { strong { "Nødtilgang" } " " }
                                    (e.decision)
                                }
                                td { (e.justification) }
                            }
                        }
                    }
                }
            }
        }
    };
    Html(layout("Organisasjonens tilganger", body).into_string())
}
