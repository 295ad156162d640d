//! `GET /api/v1/catalog` (search), `GET /api/v1/catalog/{id}`, `POST /api/v1/catalog`
//! (register, as a draft), `PUT /api/v1/catalog/{id}` (update),
//! `PUT /api/v1/catalog/{id}/lifecycle`. JSON in and out; errors are problem documents.
//! Writes need `Authorization: Bearer` and are made with that token (see [`super`]).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kartotek_client::proto as v1;

use super::{
    ApiEntry, ApiEntryInput, LifecycleInput, SearchAnswer, SearchQuery, entry_request, owner_of,
    reader, written,
};
use crate::AppState;
use crate::caller::{Authenticated, MaybeCaller};
use crate::problem::{HttpError, Problem};

/// The path of one entry.
pub fn entry_path(id: &str) -> String {
    format!("/api/v1/catalog/{id}")
}

/// Searches the catalog.
#[utoipa::path(
    get,
    path = "/api/v1/catalog",
    tag = "catalog",
    params(SearchQuery),
    responses(
        (status = 200, description = "One page of matching APIs, best first", body = SearchAnswer),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "The access token given does not verify", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn search(
    State(s): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    Query(query): Query<SearchQuery>,
) -> Result<Json<SearchAnswer>, HttpError> {
    super::search(&s, caller.as_ref(), &query).await.map(Json)
}

/// One API of the catalog.
#[utoipa::path(
    get,
    path = "/api/v1/catalog/{id}",
    tag = "catalog",
    params(("id" = String, Path, description = "The catalog id")),
    responses(
        (status = 200, description = "The API", body = ApiEntry),
        (status = 404, description = "No such API (or a draft of another organisation)", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn get_entry(
    State(s): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    Path(id): Path<String>,
) -> Result<Json<ApiEntry>, HttpError> {
    let answer = reader(&s, caller.as_ref())?
        .get_catalog_entry(v1::GetCatalogEntryRequest {
            id: id.clone(),
            read: None,
        })
        .await?;
    written(answer)
        .ok()
        .filter(|e| e.visible_to(caller.as_ref()))
        .map(Json)
        .ok_or(HttpError::NotFound {
            path: entry_path(&id),
        })
}

/// Registers an API (as a draft) for the caller's organisation.
#[utoipa::path(
    post,
    path = "/api/v1/catalog",
    tag = "catalog",
    request_body = ApiEntryInput,
    responses(
        (status = 201, description = "Registered (or the same registration again)", body = ApiEntry),
        (status = 400, description = "A field is invalid; nothing written", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's organisation is not the owner, or lacks the scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id is taken", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn register(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Json(input): Json<ApiEntryInput>,
) -> Result<Response, HttpError> {
    let id = input
        .id
        .clone()
        .ok_or_else(|| HttpError::bad_request("id", "required"))?;
    let request = entry_request(&caller, id, input)?;
    let entry = written(caller.client(&s)?.register_catalog_entry(request).await?)?;
    let mut response = (StatusCode::CREATED, Json(&entry)).into_response();
    if let Ok(location) = HeaderValue::from_str(&entry_path(&entry.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Replaces an API's content (its owner organisation only).
#[utoipa::path(
    put,
    path = "/api/v1/catalog/{id}",
    tag = "catalog",
    params(("id" = String, Path, description = "The catalog id")),
    request_body = ApiEntryInput,
    responses(
        (status = 200, description = "Updated", body = ApiEntry),
        (status = 400, description = "A field is invalid; nothing written", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another organisation owns the API", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such API", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn update(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(input): Json<ApiEntryInput>,
) -> Result<Json<ApiEntry>, HttpError> {
    if input.id.as_ref().is_some_and(|given| *given != id) {
        return Err(HttpError::bad_request(
            "id",
            "differs from the id in the path",
        ));
    }
    let request = entry_request(&caller, id, input)?;
    written(caller.client(&s)?.update_catalog_entry(request).await?).map(Json)
}

/// Moves an API forward in its lifecycle (its owner organisation only).
#[utoipa::path(
    put,
    path = "/api/v1/catalog/{id}/lifecycle",
    tag = "catalog",
    params(("id" = String, Path, description = "The catalog id")),
    request_body = LifecycleInput,
    responses(
        (status = 200, description = "Changed", body = ApiEntry),
        (status = 400, description = "Not a forward move, or a field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No access token, or one that does not verify", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's organisation does not own the API", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No API with this id", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn set_lifecycle(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(input): Json<LifecycleInput>,
) -> Result<Json<ApiEntry>, HttpError> {
    let request = v1::SetCatalogLifecycleRequest {
        id,
        lifecycle: input.lifecycle.to_proto() as i32,
        owner: owner_of(&caller, input.owner)?,
        ..Default::default()
    };
    written(caller.client(&s)?.set_catalog_lifecycle(request).await?).map(Json)
}
