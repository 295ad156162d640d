//! `GET /`: the frontend's start page, linking to each page and document it serves, and the
//! HTML layout every page shares ([`layout`]: one stylesheet inline, no script, no external
//! resource; a skip link, landmarks and visible focus for keyboard users).

use maud::{DOCTYPE, Markup, PreEscaped, html};

use axum::response::Html;

/// The inline stylesheet (system fonts; focus always visible).
const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;line-height:1.5;color:#1a1a1a;background:#fff}\
header,main,footer{max-width:60rem;margin:0 auto;padding:0 1rem}\
header{border-bottom:1px solid #ccc}nav a{margin-right:1rem}\
a{color:#0b4f9c}a:focus,button:focus,input:focus,select:focus{outline:3px solid #f5a623;outline-offset:2px}\
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem}\
form.search{display:grid;grid-template-columns:repeat(auto-fit,minmax(12rem,1fr));gap:.75rem;align-items:end;margin:1rem 0}\
label{display:block;font-weight:600}input,select,button{font:inherit;padding:.4rem;width:100%;box-sizing:border-box}\
button{background:#0b4f9c;color:#fff;border:0;cursor:pointer}\
ul.results{list-style:none;padding:0}ul.results>li{border:1px solid #ccc;border-radius:4px;padding:0 1rem;margin:1rem 0}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{font-weight:600}dd{margin:0}\
.alert{border-left:4px solid #b00020;padding:.5rem 1rem;background:#fdecee}\
code{background:#f3f3f3;padding:0 .2rem}\
tr.override{background:#fdecee}tr.override td:first-child{border-left:4px solid #b00020}.tag{font-weight:700;color:#b00020}\
form.inline{display:inline}form.inline button{width:auto}.muted{color:#555}.ok{border-left:4px solid #1b7f3b;padding:.5rem 1rem;background:#e8f5ec}\
table{border-collapse:collapse}th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}";

/// A whole page: `title` in the tab and as context for screen readers, `body` in `<main>`.
pub(crate) fn layout(title: &str, body: Markup) -> Markup {
    layout_in("nb", title, body)
}

/// [`layout`] for a page in language `lang` (`nb`, `en`).
pub(crate) fn layout_in(lang: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – Kartotek" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                a class="skip" href="#main" { "Hopp til innholdet" }
                header {
                    nav aria-label="Hovedmeny" {
                        a href="/" { "Kartotek" }
                        a href="/catalog" { "API-katalog" }
                        a href="/innsyn" { "Innsyn" }
                        a href="/openapi" { "HTTP-API (OpenAPI)" }
                    }
                }
                main id="main" tabindex="-1" { (body) }
                footer { p { small { "Kartotek – nasjonalt register (utvikling)." } } }
            }
        }
    }
}

/// `GET /`.
#[utoipa::path(
    get,
    path = "/",
    tag = "pages",
    responses((status = 200, description = "The start page (HTML)", content_type = "text/html"))
)]
pub(crate) async fn index() -> Html<String> {
    Html(
        layout(
            "Start",
            html! {
                h1 { "Kartotek" }
                p { "Tjenestene denne frontenden har:" }
                ul {
                    li { a href="/catalog" { "API-katalogen" } " – søk blant helsesektorens API-er" }
                    li { a href="/innsyn" { "Innsyn" } " – hvem har sett mine data? (for innbyggere; " a href="/innsyn?lang=en" lang="en" { "in English" } ")" }
                    li { a href="/catalog.ttl" { "API-katalogen som DCAT-AP-NO" } " (Turtle)" }
                    li { a href="/openapi" { "HTTP-API-et" } " – alle endepunkter, og " a href="/openapi.json" { "/openapi.json" } " (OpenAPI 3)" }
                    li { a href="/.well-known/oauth-authorization-server" { "Tokentjenesten" } " (metadata, RFC 8414)" }
                    li { a href="/readyz" { "/readyz" } " – svarer klyngen?" }
                    li { a href="/org" { "Organisasjonens tilganger" } " – for virksomhetens personvernombud (token med " code { "kartotek:audit.read" } "), også som CSV og FHIR" }
                    li { a href="/fhir/metadata" { "FHIR-fasaden" } " for pasientinformasjonslokatoren (CapabilityStatement; " code { "DocumentReference" } "-søk)" }
                }
            },
        )
        .into_string(),
    )
}
