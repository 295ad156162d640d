//! The frontend's HTTP API as OpenAPI 3, generated from the code: every handler carries a
//! `#[utoipa::path]` (method, path, parameters, bodies, answers) and [`ApiDoc`] collects
//! them with the JSON schemas of their bodies. `GET /openapi.json` serves the document (with
//! `public_base_url` as its server), `GET /openapi` a browsable HTML view of it (rendered on
//! the server, no script, nothing fetched from elsewhere).
//!
//! The router is built from [`crate::server::route_table`], and a test checks that the
//! document lists exactly those routes, so a route cannot be added without its
//! documentation (or documented without existing).

use axum::Json;
use axum::extract::State;
use axum::response::Html;
use maud::{Markup, html};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Server};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::home::layout;

/// The OpenAPI document of every route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kartotek frontend",
        description = "The stateless HTTP frontend of Kartotek: the token service, the API catalog, audit forwarding, health and metrics. Errors are RFC 9457 problem documents (application/problem+json), except the token service's RFC 6749 errors and the FHIR facade's OperationOutcomes (application/fhir+json)."
    ),
    paths(
        crate::home::index,
        crate::health::healthz,
        crate::health::readyz,
        crate::metrics::serve_metrics,
        crate::token::routes::token,
        crate::token::routes::revoke,
        crate::token::routes::introspect,
        crate::token::routes::jwks,
        crate::token::routes::metadata,
        crate::token::dev_login::page,
        crate::token::dev_login::login,
        crate::token::dev_login::jwks,
        crate::catalog::rest::search,
        crate::catalog::rest::get_entry,
        crate::catalog::rest::register,
        crate::catalog::rest::update,
        crate::catalog::rest::set_lifecycle,
        crate::audit::record,
        crate::audit::export,
        crate::catalog::page::catalog_page,
        crate::catalog::dcat::export,
        openapi_json,
        openapi_page,
        crate::innsyn::innsyn_page,
        crate::innsyn::for_page,
        crate::innsyn::login,
        crate::innsyn::oidc_start,
        crate::innsyn::oidc_callback,
        crate::innsyn::logout,
        crate::innsyn::action,
        crate::fhir::search_get,
        crate::fhir::search_post,
        crate::fhir::metadata,
        crate::org::org_page,
        crate::org::org_csv,
        crate::org::org_fhir,
    ),
    components(schemas(crate::problem::Problem, crate::audit::Recorded)),
    modifiers(&BearerScheme),
    tags(
        (name = "catalog", description = "The API catalog: search, read, register, update, lifecycle; DCAT-AP-NO export"),
        (name = "audit", description = "Audit forwarding (IHE BALP AuditEvents into the hash-chained audit log) and export"),
        (name = "token", description = "The token service (OAuth 2.0: private_key_jwt, token exchange, revocation, introspection)"),
        (name = "pages", description = "HTML pages"),
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "dev", description = "DEV ONLY: the dev login (kartotek dev)"),
        (name = "fhir", description = "FHIR R4 facade of the locator: DocumentReference search (NRL/MHD style) and the CapabilityStatement; errors are OperationOutcomes (application/fhir+json)"),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme: an access token of `POST /connect/token`.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from POST /connect/token"))
                    .build(),
            ),
        );
    }
}

/// The document, with `base` (the `public_base_url`) as its server.
pub fn document(base: &str) -> Document {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.servers = Some(vec![Server::new(base)]);
    doc
}

/// Every `(method, path)` the document lists, methods upper case, sorted.
pub fn operations(doc: &Document) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("DELETE", &item.delete),
            ("OPTIONS", &item.options),
            ("HEAD", &item.head),
            ("PATCH", &item.patch),
            ("TRACE", &item.trace),
        ] {
            if op.is_some() {
                out.push((method.to_owned(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "pages",
    responses((status = 200, description = "This document (OpenAPI 3)", content_type = "application/json"))
)]
pub(crate) async fn openapi_json(State(s): State<AppState>) -> Json<Document> {
    Json(document(&s.config.public_base_url))
}

fn operation_html(method: &str, path: &str, op: &utoipa::openapi::path::Operation) -> Markup {
    let anchor = format!(
        "{}-{}",
        method.to_ascii_lowercase(),
        path.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    html! {
        section aria-labelledby=(anchor) {
            h3 id=(anchor) { code { (method) " " (path) } }
            @if let Some(summary) = &op.summary { p { (summary) } }
            @if let Some(description) = &op.description { p { (description) } }
            @if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                p { "Autentisering: " code { "Authorization: Bearer" } " (kan være valgfri, se under)." }
            }
            @if let Some(params) = op.parameters.as_ref().filter(|p| !p.is_empty()) {
                table {
                    caption { "Parametre" }
                    thead { tr { th scope="col" { "Navn" } th scope="col" { "Hvor" } th scope="col" { "Påkrevd" } th scope="col" { "Beskrivelse" } } }
                    tbody {
                        @for p in params {
                            tr {
                                td { code { (p.name) } }
                                td { (serde_json::to_value(&p.parameter_in).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) }
                                td { @if matches!(p.required, utoipa::openapi::Required::True) { "ja" } @else { "nei" } }
                                td { (p.description.clone().unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
            @if let Some(body) = &op.request_body {
                p {
                    "Innhold: "
                    @for (i, ct) in body.content.keys().enumerate() {
                        @if i > 0 { ", " }
                        code { (ct) }
                    }
                    @if let Some(d) = &body.description { " – " (d) }
                }
            }
            table {
                caption { "Svar" }
                thead { tr { th scope="col" { "Status" } th scope="col" { "Beskrivelse" } th scope="col" { "Innhold" } } }
                tbody {
                    @for (status, response) in &op.responses.responses {
                        tr {
                            td { (status) }
                            @match response {
                                RefOr::T(r) => {
                                    td { (r.description) }
                                    td { @for ct in r.content.keys() { code { (ct) } " " } }
                                }
                                RefOr::Ref(r) => { td { (r.ref_location) } td {} }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /openapi`: the document as a page, grouped by tag.
#[utoipa::path(
    get,
    path = "/openapi",
    tag = "pages",
    responses((status = 200, description = "The OpenAPI document as an HTML page", content_type = "text/html"))
)]
pub(crate) async fn openapi_page(State(s): State<AppState>) -> Html<String> {
    let doc = document(&s.config.public_base_url);
    let tags: Vec<(String, String)> = doc
        .tags
        .iter()
        .flatten()
        .map(|t| (t.name.clone(), t.description.clone().unwrap_or_default()))
        .collect();
    let ops_of = |tag: &str| -> Vec<(String, String, utoipa::openapi::path::Operation)> {
        let mut out = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("DELETE", &item.delete),
                ("PATCH", &item.patch),
            ] {
                if let Some(op) = op
                    && op.tags.as_ref().is_some_and(|t| t.iter().any(|t| t == tag))
                {
                    out.push((method.to_owned(), path.clone(), op.clone()));
                }
            }
        }
        out
    };
    let body = html! {
        h1 { "HTTP-API" }
        p { (doc.info.description.clone().unwrap_or_default()) }
        p { "Maskinlesbart: " a href="/openapi.json" { "/openapi.json" } " (OpenAPI 3)." }
        nav aria-label="Grupper" {
            ul { @for (name, _) in &tags { li { a href=(format!("#{name}")) { (name) } } } }
        }
        @for (name, description) in &tags {
            section aria-labelledby=(name) {
                h2 id=(name) { (name) }
                p { (description) }
                @for (method, path, op) in ops_of(name) { (operation_html(&method, &path, &op)) }
            }
        }
    };
    Html(layout("HTTP-API", body).into_string())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt;

    use super::*;
    use crate::config::FrontendConfig;
    use crate::server::route_table;

    #[test]
    fn the_document_lists_exactly_the_routes_of_the_router() {
        let documented = operations(&document("http://127.0.0.1:8080"));
        let routed: Vec<(String, String)> = route_table()
            .into_iter()
            .map(|(m, p)| (m.to_owned(), p.to_owned()))
            .collect();
        assert_eq!(documented, routed);
        assert!(routed.len() >= 20, "{routed:?}");
    }

    #[tokio::test]
    async fn the_router_serves_every_path_of_the_table() {
        let mut config = FrontendConfig::default();
        config.cluster.readiness_timeout_ms = 50;
        let app = crate::server::app(config).unwrap();
        for (method, path) in route_table() {
            // A method no route uses: the path's method router answers 405 with the methods
            // it has, without running a handler (a path the router lacks would be 404).
            let uri = path.replace("{id}", "x");
            let response = app
                .clone()
                .oneshot(Request::delete(&uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
            let allow = response.headers()[header::ALLOW]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(allow.contains(method), "{method} {path}: allow {allow}");
        }
    }

    #[test]
    fn every_operation_has_a_tag_and_a_summary() {
        let doc = document("http://127.0.0.1:8080");
        for (path, item) in &doc.paths.paths {
            for op in [&item.get, &item.post, &item.put].into_iter().flatten() {
                assert!(op.tags.as_ref().is_some_and(|t| !t.is_empty()), "{path}");
                assert!(op.summary.is_some(), "{path} has no doc comment");
            }
        }
    }
}
