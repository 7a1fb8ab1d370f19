//! The CRM API: users and trips, each with list, get by id, create and
//! replace. The handlers are thin: they validate the body, then apply the
//! same table operations to either kind of record.
//!
//! Order of checks on writes: the body first (415, 413, malformed JSON,
//! then every validation problem at once, including a trip's unknown
//! `UserId`), then the target (409 for a taken id on creation, 404 for an
//! unknown id on replacement).

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use crate::contracts::{Record, Trip, User};
use crate::error::ApiError;
use crate::extract::{JsonObject, RecordId};
use crate::state::AppState;
use crate::store::{IdTaken, Table, UnknownId};
use crate::validation::{self, IdSource};

#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    operation_id = "listUsers",
    summary = "Returns all registered users",
    description = "In creation order.",
    responses(
        (status = 200, description = "Every user", body = [User]),
        (status = "default", description = "An injected fault (see mock control): any status 400..=599", body = ApiError),
    )
)]
pub async fn list_users(State(state): State<AppState>) -> Json<Vec<User>> {
    Json(state.store().users.all().to_vec())
}

#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    operation_id = "getUser",
    summary = "Returns registered user by id",
    params(("id" = String, Path, description = "The user's `Id`")),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 400, description = "The id is not valid UTF-8 once percent-decoded", body = ApiError),
        (status = 404, description = "No user with this id", body = ApiError),
        (status = "default", description = "An injected fault (see mock control): any status 400..=599", body = ApiError),
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    RecordId(id): RecordId,
) -> Result<Json<User>, ApiError> {
    found(&state.store().users, &id)
}

#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    operation_id = "createUser",
    summary = "Registers new user",
    description = "Nullable fields may be absent or null. Fields the contract does not have are refused.",
    request_body = User,
    responses(
        (status = 201, description = "The user as stored", body = User,
            headers(("Location" = String, description = "`/users/{Id}`, the id percent-encoded"))),
        (status = 400, description = "Invalid user, every problem listed; malformed JSON; not an object", body = ApiError),
        (status = 409, description = "A user with this `Id` already exists", body = ApiError),
        (status = 413, description = "Body larger than 64 KiB", body = ApiError),
        (status = 415, description = "Content-Type is not application/json", body = ApiError),
        (status = "default", description = "An injected fault (see mock control): any status 400..=599", body = ApiError),
    )
)]
pub async fn create_user(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let user = validation::user(body, IdSource::Body)
        .map_err(|problems| ApiError::invalid(User::KIND, problems))?;
    create(&mut state.store().users, user)
}

#[utoipa::path(
    post,
    path = "/users/{id}",
    tag = "users",
    operation_id = "replaceUser",
    summary = "Replaces existing user properties by user id",
    description = "The body is the whole record. `Id` may be left out (it is taken from the path) or must equal the path's id.",
    params(("id" = String, Path, description = "The user's `Id`")),
    request_body = User,
    responses(
        (status = 200, description = "The user as stored", body = User),
        (status = 400, description = "Invalid user, every problem listed (an `Id` other than the path's among them); malformed JSON; not an object", body = ApiError),
        (status = 404, description = "No user with this id", body = ApiError),
        (status = 413, description = "Body larger than 64 KiB", body = ApiError),
        (status = 415, description = "Content-Type is not application/json", body = ApiError),
        (status = "default", description = "An injected fault (see mock control): any status 400..=599", body = ApiError),
    )
)]
pub async fn replace_user(
    State(state): State<AppState>,
    RecordId(id): RecordId,
    JsonObject(body): JsonObject,
) -> Result<Json<User>, ApiError> {
    let user = validation::user(body, IdSource::Path(&id))
        .map_err(|problems| ApiError::invalid(User::KIND, problems))?;
    replace(&mut state.store().users, user)
}

#[utoipa::path(
    get,
    path = "/trips",
    tag = "trips",
    operation_id = "listTrips",
    summary = "Returns all trips",
    description = "In creation order.",
    responses(
        (status = 200, description = "Every trip", body = [Trip]),
        (status = "default", description = "An injected fault (see mock control): any status 400..=599", body = ApiError),
    )
)]
pub async fn list_trips(State(state): State<AppState>) -> Json<Vec<Trip>> {
    Json(state.store().trips.all().to_vec())
}

#[utoipa::path(
    get,
    path = "/trips/{id}",
    tag = "trips",
    operation_id = "getTrip",
    summary = "Returns trip by id",
    params(("id" = String, Path, description = "The trip's `Id`")),
    responses(
        (status = 200, description = "The trip", body = Trip),
        (status = 400, description = "The id is not valid UTF-8 once percent-decoded", body = ApiError),
        (status = 404, description = "No trip with this id", body = ApiError),
        (status = "default", description = "An injected fault (see mock control): any status 400..=599", body = ApiError),
    )
)]
pub async fn get_trip(
    State(state): State<AppState>,
    RecordId(id): RecordId,
) -> Result<Json<Trip>, ApiError> {
    found(&state.store().trips, &id)
}

#[utoipa::path(
    post,
    path = "/trips",
    tag = "trips",
    operation_id = "createTrip",
    summary = "Creates new trip",
    description = "`UserId` must name a registered user. Nullable fields may be absent or null. Fields the contract does not have are refused.",
    request_body = Trip,
    responses(
        (status = 201, description = "The trip as stored", body = Trip,
            headers(("Location" = String, description = "`/trips/{Id}`, the id percent-encoded"))),
        (status = 400, description = "Invalid trip, every problem listed (an unknown `UserId` among them); malformed JSON; not an object", body = ApiError),
        (status = 409, description = "A trip with this `Id` already exists", body = ApiError),
        (status = 413, description = "Body larger than 64 KiB", body = ApiError),
        (status = 415, description = "Content-Type is not application/json", body = ApiError),
        (status = "default", description = "An injected fault (see mock control): any status 400..=599", body = ApiError),
    )
)]
pub async fn create_trip(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let mut store = state.store();
    let trip = validation::trip(body, IdSource::Body, |user_id| {
        store.users.contains(user_id)
    })
    .map_err(|problems| ApiError::invalid(Trip::KIND, problems))?;
    create(&mut store.trips, trip)
}

#[utoipa::path(
    post,
    path = "/trips/{id}",
    tag = "trips",
    operation_id = "replaceTrip",
    summary = "Replaces existing trip properties by trip id",
    description = "The body is the whole record. `Id` may be left out (it is taken from the path) or must equal the path's id. `UserId` must name a registered user.",
    params(("id" = String, Path, description = "The trip's `Id`")),
    request_body = Trip,
    responses(
        (status = 200, description = "The trip as stored", body = Trip),
        (status = 400, description = "Invalid trip, every problem listed (an `Id` other than the path's or an unknown `UserId` among them); malformed JSON; not an object", body = ApiError),
        (status = 404, description = "No trip with this id", body = ApiError),
        (status = 413, description = "Body larger than 64 KiB", body = ApiError),
        (status = 415, description = "Content-Type is not application/json", body = ApiError),
        (status = "default", description = "An injected fault (see mock control): any status 400..=599", body = ApiError),
    )
)]
pub async fn replace_trip(
    State(state): State<AppState>,
    RecordId(id): RecordId,
    JsonObject(body): JsonObject,
) -> Result<Json<Trip>, ApiError> {
    let mut store = state.store();
    let trip = validation::trip(body, IdSource::Path(&id), |user_id| {
        store.users.contains(user_id)
    })
    .map_err(|problems| ApiError::invalid(Trip::KIND, problems))?;
    replace(&mut store.trips, trip)
}

fn found<T: Record + Serialize>(table: &Table<T>, id: &str) -> Result<Json<T>, ApiError> {
    table
        .get(id)
        .cloned()
        .map(Json)
        .ok_or_else(|| not_found::<T>(id))
}

/// 201 with the record and its `Location`, or 409 if its id is taken.
fn create<T: Record + Serialize>(
    table: &mut Table<T>,
    record: T,
) -> Result<impl IntoResponse, ApiError> {
    let id = record.id().to_owned();
    match table.create(record.clone()) {
        Ok(()) => {
            let location = format!("{}/{}", T::COLLECTION, percent_encode_segment(&id));
            Ok((StatusCode::CREATED, [(LOCATION, location)], Json(record)))
        }
        Err(IdTaken) => Err(ApiError::conflict(format!(
            "{} `{id}` already exists",
            T::KIND
        ))),
    }
}

/// 200 with the record as stored, or 404 if its id is unknown.
fn replace<T: Record + Serialize>(table: &mut Table<T>, record: T) -> Result<Json<T>, ApiError> {
    let id = record.id().to_owned();
    match table.replace(record.clone()) {
        Ok(()) => Ok(Json(record)),
        Err(UnknownId) => Err(not_found::<T>(&id)),
    }
}

fn not_found<T: Record>(id: &str) -> ApiError {
    ApiError::not_found(format!("{} `{id}` not found", T::KIND))
}

/// `id` as one path segment: every byte but the unreserved characters of
/// RFC 3986 percent-encoded, so that any id (one with a `/`, a space or
/// non-ASCII text) yields a `Location` that leads back to the record.
fn percent_encode_segment(id: &str) -> String {
    let mut encoded = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::percent_encode_segment;

    #[test]
    fn ids_are_percent_encoded_as_one_path_segment() {
        assert_eq!(percent_encode_segment("u-1_a.b~"), "u-1_a.b~");
        assert_eq!(percent_encode_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(percent_encode_segment("é"), "%C3%A9");
    }
}
