//! `GET /catalog`: the searchable catalog page, rendered on the server (maud). The search is
//! a plain GET form (`q`, `audience`, `scope`, `owner`), so it works without JavaScript and
//! every result page has its own URL; each field has a label, the page has one `h1`, a
//! heading per result, and the results are announced (`aria-live`) after a search. Each API
//! shows its owner, audience, scopes, consent requirement, lifecycle, address and spec link.
//! A bad parameter answers 400 with the page and the reason, not a JSON problem.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};

use super::{ApiEntry, Audience, Lifecycle, SearchAnswer, SearchQuery};
use crate::AppState;
use crate::caller::MaybeCaller;
use crate::home::layout;
use crate::layer::OwnErrorFormat;
use crate::problem::HttpError;

fn audience_text(a: Audience) -> &'static str {
    match a {
        Audience::Personnel => "Helsepersonell",
        Audience::Citizen => "Innbyggere",
    }
}

fn lifecycle_text(l: Lifecycle) -> &'static str {
    match l {
        Lifecycle::Draft => "Utkast",
        Lifecycle::Published => "Publisert",
        Lifecycle::Deprecated => "Utfases",
        Lifecycle::Retired => "Avviklet",
    }
}

fn entry_html(e: &ApiEntry) -> Markup {
    let heading = format!(
        "api-{}",
        e.id.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    html! {
        li {
            article aria-labelledby=(heading) {
                h3 id=(heading) { (e.title) }
                @if !e.description.is_empty() { p { (e.description) } }
                dl {
                    dt { "Id" } dd { code { (e.id) } }
                    dt { "Eier" } dd { "Organisasjonsnummer " (e.owner) }
                    dt { "Målgruppe" } dd { (audience_text(e.audience)) }
                    dt { "Scopes" }
                    dd {
                        @if e.scopes.is_empty() { "Ingen" }
                        @for (i, s) in e.scopes.iter().enumerate() {
                            @if i > 0 { ", " }
                            code { (s) }
                        }
                    }
                    dt { "Krever samtykke" } dd { @if e.requires_consent { "Ja" } @else { "Nei" } }
                    dt { "Livsløp" } dd { (lifecycle_text(e.lifecycle)) }
                    dt { "Adresse" } dd { code { (e.base_url) } }
                    dt { "Spesifikasjon" }
                    dd {
                        @match &e.spec_url {
                            Some(url) => { a href=(url) { "Spesifikasjonen av " (e.title) } }
                            None => { "Ikke oppgitt" }
                        }
                    }
                    @if !e.version.is_empty() { dt { "Versjon" } dd { (e.version) } }
                }
            }
        }
    }
}

/// The link to the next page of `query`.
fn next_link(query: &SearchQuery, token: &str) -> String {
    let params = [
        ("q", query.q.as_str()),
        ("audience", query.audience.as_str()),
        ("scope", query.scope.as_str()),
        ("owner", query.owner.as_str()),
        ("lifecycle", query.lifecycle.as_str()),
        ("page_token", token),
    ];
    let kept: Vec<(&str, &str)> = params.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    format!(
        "/catalog?{}",
        serde_urlencoded::to_string(kept).unwrap_or_default()
    )
}

fn page(s: &AppState, query: &SearchQuery, result: &Result<SearchAnswer, HttpError>) -> Markup {
    let option = |value: &str, text: &str| {
        html! { option value=(value) selected[query.audience == value] { (text) } }
    };
    let searched = !query.q.is_empty()
        || !query.audience.is_empty()
        || !query.scope.is_empty()
        || !query.owner.is_empty();
    layout(
        "API-katalog",
        html! {
            h1 { (s.config.catalog.title) }
            p { (s.config.catalog.description) }
            p {
                "Også som " a href="/catalog.ttl" { "DCAT-AP-NO (Turtle)" }
                " og som JSON fra " a href="/openapi#catalog" { code { "/api/v1/catalog" } } "."
            }
            form class="search" method="get" action="/catalog" role="search" aria-label="Søk i API-katalogen" {
                div {
                    label for="q" { "Søkeord" }
                    input type="search" id="q" name="q" value=(query.q) maxlength="256"
                        aria-describedby="q-help";
                    small id="q-help" { "Alle ordene må finnes i id, tittel eller beskrivelse." }
                }
                div {
                    label for="audience" { "Målgruppe" }
                    select id="audience" name="audience" {
                        (option("", "Alle"))
                        (option("personnel", "Helsepersonell"))
                        (option("citizen", "Innbyggere"))
                    }
                }
                div {
                    label for="scope" { "Scope" }
                    input type="text" id="scope" name="scope" value=(query.scope);
                }
                div {
                    label for="owner" { "Eier (organisasjonsnummer)" }
                    input type="text" id="owner" name="owner" value=(query.owner)
                        inputmode="numeric" pattern="[0-9]{9}";
                }
                div { button type="submit" { "Søk" } }
            }
            section aria-labelledby="results-heading" {
                @match result {
                    Ok(answer) => {
                        h2 id="results-heading" aria-live="polite" {
                            @if answer.entries.is_empty() { "Ingen treff" }
                            @else if searched { (answer.entries.len()) " treff" }
                            @else { "Alle API-er" }
                        }
                        ul class="results" {
                            @for e in &answer.entries { (entry_html(e)) }
                        }
                        @if let Some(token) = &answer.next_page_token {
                            p { a href=(next_link(query, token)) rel="next" { "Neste side" } }
                        }
                    }
                    Err(e) => {
                        h2 id="results-heading" { "Søket kunne ikke gjøres" }
                        p class="alert" role="alert" {
                            (e.problem().detail.unwrap_or_else(|| e.problem().title))
                        }
                    }
                }
            }
        },
    )
}

/// `GET /catalog`.
#[utoipa::path(
    get,
    path = "/catalog",
    tag = "pages",
    params(SearchQuery),
    responses(
        (status = 200, description = "The catalog page (HTML) with the search's results", content_type = "text/html"),
        (status = 400, description = "The page, saying which parameter is invalid", content_type = "text/html"),
    )
)]
pub(crate) async fn catalog_page(
    State(s): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Response {
    let (query, result) = match query {
        Ok(Query(q)) => {
            let result = super::search(&s, caller.as_ref(), &q).await;
            (q, result)
        }
        Err(_) => (
            SearchQuery::default(),
            Err(HttpError::bad_request(
                "query",
                "unknown or malformed search parameters",
            )),
        ),
    };
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(e) => e.problem().status_code(),
    };
    let markup = page(&s, &query, &result);
    let mut response = (status, Html(markup.into_string())).into_response();
    // An HTML answer, also when it reports an error: the layer leaves it as it is.
    response.extensions_mut().insert(OwnErrorFormat);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_keep_the_search() {
        let q = SearchQuery {
            q: "resept æ".into(),
            audience: "citizen".into(),
            ..SearchQuery::default()
        };
        assert_eq!(
            next_link(&q, "abc="),
            "/catalog?q=resept+%C3%A6&audience=citizen&page_token=abc%3D"
        );
    }

    #[test]
    fn entries_show_every_property() {
        let e = ApiEntry {
            title: "Reseptformidleren <b>".into(),
            audience: Audience::Citizen,
            lifecycle: Lifecycle::Deprecated,
            ..crate::catalog::sample_entry("nhn.rf")
        };
        let html = entry_html(&e).into_string();
        for want in [
            "974760673",
            "Innbyggere",
            "<code>a:write</code>",
            "Krever samtykke</dt><dd>Ja",
            "Utfases",
            "href=\"https://rf.example/openapi.json\"",
            "Reseptformidleren &lt;b&gt;",
        ] {
            assert!(html.contains(want), "{want} not in {html}");
        }
    }
}
