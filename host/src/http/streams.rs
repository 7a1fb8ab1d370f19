//! The streams API, under `/api/v1/streams`: producers append events to
//! named streams, consumers read them by event name and acknowledge what
//! they have processed. Every answer is a JSON string (or, for a read, an
//! array of events) with `Content-Type: application/json; charset=utf-8`;
//! the texts are the API's contract ("Locked - Second writers not
//! allowed", "Unauthorized", "Bad Request - ...", "Not Found", "OK").
//!
//! Storage and the meaning of ids and positions: see [`crate::streams`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::body::{self, BodyError};
use super::AppState;
use crate::streams::{ids, StreamError, StreamStore};

/// Where the API is mounted.
pub const PATH_PREFIX: &str = "/api/v1/streams";
/// The content type of every answer of this API.
pub const CONTENT_TYPE: &str = "application/json; charset=utf-8";
/// Largest `limit` of a read.
pub const MAX_LIMIT: usize = 1000;
/// Longest stream name, producer id or consumer id.
const MAX_NAME: usize = 200;

/// Shortest password of a streams API user.
pub const MIN_PASSWORD: usize = 12;

/// Why a credential of `streams_api.credentials` cannot be used. Never
/// holds the password.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Its secret reference names nothing readable.
    #[error("invalid routes file {path}: {message}")]
    Unresolved {
        path: std::path::PathBuf,
        message: String,
    },
    /// The password is too short or a placeholder.
    #[error("invalid routes file {path}: streams_api.credentials[{index}] (user `{user}`): {why}")]
    Unfit {
        path: std::path::PathBuf,
        index: usize,
        user: String,
        why: String,
    },
}

/// Each user of `api` with their password, read from its reference and
/// checked: switchyard does not start with a short or placeholder one
/// (a `CHANGE-ME` left from an example would be a published password).
pub fn resolve_credentials(
    api: &crate::config::StreamsApiConfig,
    config_path: &std::path::Path,
) -> Result<Vec<(String, String)>, CredentialError> {
    let base = config_path.parent().unwrap_or(std::path::Path::new("."));
    api.credentials
        .iter()
        .enumerate()
        .map(|(index, credential)| {
            let at = format!("streams_api.credentials[{index}].password");
            let password = crate::config::secrets::resolve_string(&credential.password, &at, base)
                .map_err(|message| CredentialError::Unresolved {
                    path: config_path.to_owned(),
                    message,
                })?;
            check_password(&password).map_err(|why| CredentialError::Unfit {
                path: config_path.to_owned(),
                index,
                user: credential.user.clone(),
                why,
            })?;
            Ok((credential.user.clone(), password))
        })
        .collect()
}

/// Why `password` is unfit, if it is: too short, or a placeholder (one
/// that says to change it, or one character repeated). The reason never
/// quotes it.
fn check_password(password: &str) -> Result<(), String> {
    let length = password.chars().count();
    let letters: String = password
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const PLACEHOLDERS: &[&str] = &["changeme", "replaceme", "placeholder", "yourpassword"];
    let placeholder = PLACEHOLDERS.iter().any(|p| letters.contains(p))
        || (!password.is_empty() && password.chars().all(|c| password.starts_with(c)));
    if placeholder {
        return Err(format!(
            "the password is a placeholder; give a real one ({MIN_PASSWORD} characters or more, \
             e.g. `openssl rand -hex 12`)"
        ));
    }
    if length < MIN_PASSWORD {
        return Err(format!(
            "the password must be at least {MIN_PASSWORD} characters (got {length})"
        ));
    }
    Ok(())
}

/// What the streams handlers need.
pub struct StreamsHttp {
    pub store: Arc<StreamStore>,
    /// SHA-256 of each accepted `user:password`.
    credentials: Vec<[u8; 32]>,
    max_body: usize,
}

impl StreamsHttp {
    pub fn new(
        store: Arc<StreamStore>,
        credentials: &[(String, String)],
        max_body: Option<usize>,
    ) -> StreamsHttp {
        StreamsHttp {
            store,
            credentials: credentials
                .iter()
                .map(|(user, password)| Sha256::digest(format!("{user}:{password}")).into())
                .collect(),
            max_body: max_body.unwrap_or(body::DEFAULT_MAX_BODY),
        }
    }

    /// Whether `Authorization` holds accepted Basic credentials.
    fn authorised(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some((scheme, encoded)) = value.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(&decoded).into();
        // Compare with every credential, so the time taken says nothing of
        // which one (if any) matched.
        self.credentials
            .iter()
            .fold(false, |found, c| found | bool::from(c.ct_eq(&digest)))
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/{stream}/events", post(append).get(read))
        .route("/{stream}/events/{event_id}", post(acknowledge))
        .fallback(|| async { reply(StatusCode::NOT_FOUND, "Not Found") })
        .layer(axum::middleware::map_response(json_utf8))
        .with_state(state);
    Router::new().nest(PATH_PREFIX, api)
}

/// Every answer of this API, whatever produced it (a 405 of the router
/// included), says it is UTF-8 JSON.
async fn json_utf8(mut response: Response) -> Response {
    // The router's own 405 has no body.
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        let allow = response.headers().get(header::ALLOW).cloned();
        response = reply(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// A refusal in this API's style, for answers made outside its handlers
/// (a request timed out by the server, say): `text` as a JSON string.
pub fn refusal(status: StatusCode, text: &str) -> Response {
    Refusal::new(status, text).into_response()
}

/// An answer whose body is `text` as a JSON string.
fn reply(status: StatusCode, text: &str) -> Response {
    let body = serde_json::to_string(text).expect("a string is JSON");
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// A request refused: its status and text.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    text: String,
}

impl Refusal {
    fn new(status: StatusCode, text: impl Into<String>) -> Refusal {
        Refusal {
            status,
            text: text.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = reply(self.status, &self.text);
        if self.status == StatusCode::UNAUTHORIZED {
            // What a 401 must say (RFC 9110): how to authenticate.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"switchyard streams\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

fn bad_request(why: impl std::fmt::Display) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, format!("Bad Request - {why}"))
}

fn path_refused(e: PathRejection) -> Refusal {
    bad_request(format!("the path is malformed: {}", e.body_text()))
}

fn body_refused(e: BodyError) -> Refusal {
    match e {
        BodyError::Malformed(why) => bad_request(why),
        BodyError::TooLarge { .. } => Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Payload Too Large - {e}"),
        ),
        BodyError::UnsupportedType { .. } => Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Unsupported Media Type - {e}"),
        ),
    }
}

fn server_error(e: StreamError) -> Refusal {
    tracing::error!("streams API: {e}");
    Refusal::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("Internal Server Error - {e}"),
    )
}

/// The streams API's state, or the answer when it is off or the caller is
/// not authorised.
fn guard<'s>(state: &'s AppState, headers: &HeaderMap) -> Result<&'s StreamsHttp, Refusal> {
    let Some(api) = state.streams_api.as_deref() else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "Not Found - the streams API is not enabled (no [streams_api] in the routes file)",
        ));
    };
    if !api.authorised(headers) {
        return Err(Refusal::new(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    Ok(api)
}

/// A stream name: it becomes part of a Kafka topic name.
fn check_stream(api: &StreamsHttp, stream: &str) -> Result<(), Refusal> {
    let ok = !stream.is_empty()
        && stream.len() <= MAX_NAME
        && stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        api.store.check_name(stream).map_err(bad_request)
    } else {
        Err(bad_request(format!(
            "stream name must be 1 to {MAX_NAME} characters of A-Z, a-z, 0-9, '.', '_', '-' (got {stream:?})"
        )))
    }
}

/// A producer or consumer id from header `name`.
fn id_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, Refusal> {
    let value = headers
        .get(name)
        .ok_or_else(|| bad_request(format!("missing header {name}")))?;
    let text = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= MAX_NAME && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            bad_request(format!(
                "header {name} must be 1 to {MAX_NAME} visible ASCII characters"
            ))
        })?;
    Ok(text)
}

/// The form of an acknowledgement: `action=ACK`.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the form, which is read field by field
pub struct Acknowledgement {
    pub action: AckAction,
}

/// The one action there is.
#[derive(ToSchema)]
#[allow(dead_code)] // as above
pub enum AckAction {
    #[allow(clippy::upper_case_acronyms)]
    ACK,
}

/// An event as a producer posts it.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct StreamEvent {
    pub event: EventDescription,
    pub system: System,
    pub trigger: Trigger,
    /// Anything, as an object.
    #[schema(value_type = Object)]
    pub payload: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct EventDescription {
    /// Not empty, and neither starting nor ending with white space (the
    /// white space of Rust's `str::trim`, spelt out so that any regular
    /// expression engine reads the pattern the same).
    #[schema(
        example = "OrderPlaced",
        pattern = r"^[^\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]([\s\S]*[^\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?$"
    )]
    pub name: String,
    /// A whole number from 0 to 4294967295 (`1.0` reads as `1`, as JSON
    /// Schema has it; it is stored as `1`).
    #[serde(deserialize_with = "whole_number")]
    #[schema(example = 1, minimum = 0, maximum = 4_294_967_295_u64, format = Int64)]
    pub version: u32,
}

/// A `u32` given as any JSON number with no fraction: JSON (and JSON
/// Schema) do not tell `1` from `1.0`.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    let whole = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => u32::try_from(n).ok(),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
            Some(f as u32)
        }
        _ => None,
    };
    whole.ok_or_else(|| {
        serde::de::Error::custom(format!(
            "invalid value: {number}, expected a whole number from 0 to {}",
            u32::MAX
        ))
    })
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct System {
    #[schema(example = "alv123")]
    pub id: String,
    #[schema(example = "codello alvine")]
    pub name: String,
    #[schema(example = "2017-09-06 13:58:12")]
    pub time: String,
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct Trigger {
    #[serde(rename = "type")]
    #[schema(example = "system")]
    pub kind: String,
    #[schema(example = "/path/to/script.php")]
    pub name: String,
}

/// An event as a consumer reads it: its id, then the event as posted.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadEvent {
    #[schema(example = "3f1c2a9e-5b7d-8c01-8000-00000000002a")]
    pub event_id: String,
    #[serde(flatten)]
    pub event: StreamEvent,
}

/// Append an event to a stream.
///
/// The first producer to write to a stream owns it; any other producer is
/// refused with 423. The answer is the new event's id, once the event is
/// stored in Kafka and acknowledged by the broker.
#[utoipa::path(
    post,
    path = "/api/v1/streams/{stream}/events",
    tag = "streams",
    security(("basic" = [])),
    params(
        ("stream" = String, Path, description = "Stream name: 1 to 200 of A-Z, a-z, 0-9, '.', '_', '-'", pattern = r"^[A-Za-z0-9._-]{1,200}$"),
        ("X-Producer-ID" = String, Header, description = "The producer: 1 to 200 visible ASCII characters", pattern = r"^[!-~]{1,200}$"),
    ),
    request_body(content = StreamEvent, content_type = "application/json"),
    responses(
        (status = 200, description = "The new event's id", body = String, content_type = "application/json", example = json!("3f1c2a9e-5b7d-8c01-8000-00000000002a")),
        (status = 400, description = "\"Bad Request - ...\": malformed request or event", body = String, content_type = "application/json"),
        (status = 401, description = "\"Unauthorized\"", body = String, content_type = "application/json"),
        (status = 413, description = "\"Payload Too Large - ...\"", body = String, content_type = "application/json"),
        (status = 415, description = "\"Unsupported Media Type - ...\"", body = String, content_type = "application/json"),
        (status = 403, description = "\"Forbidden - no new stream: ...\": the stream is new and the server keeps as many streams as it may (`streams_api.max_streams`)", body = String, content_type = "application/json"),
        (status = 409, description = "\"Conflict - ...\": the stream is new and its topic would collide with another stream's (Kafka treats '.' and '_' as the same)", body = String, content_type = "application/json"),
        (status = 423, description = "\"Locked - Second writers not allowed\": the stream belongs to another producer", body = String, content_type = "application/json"),
        (status = 500, description = "\"Internal Server Error - ...\"", body = String, content_type = "application/json"),
    )
)]
pub async fn append(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let api = guard(&state, &headers)?;
    let Path(stream) = path.map_err(path_refused)?;
    check_stream(api, &stream)?;
    let producer = id_header(&headers, "X-Producer-ID")?;
    let bytes = body::read(&headers, body, "application/json", api.max_body)
        .await
        .map_err(body_refused)?;
    let event: StreamEvent = body::json(&bytes).map_err(body_refused)?;
    let name = &event.event.name;
    if name.trim().is_empty() || name.trim() != name {
        return Err(bad_request(
            "event.name must not be empty nor start or end with white space",
        ));
    }
    // Stored as the contract has it: the fields above, compact.
    let stored = serde_json::to_vec(&event).expect("an event serialises");
    match api
        .store
        .append(&stream, producer, &event.event.name, &stored)
        .await
    {
        Ok(offset) => {
            let id = ids::encode(&stream, offset).to_string();
            Ok(reply(StatusCode::OK, &id))
        }
        Err(StreamError::Locked) => Err(Refusal::new(
            StatusCode::LOCKED,
            "Locked - Second writers not allowed",
        )),
        Err(StreamError::InvalidName(why)) => Err(bad_request(why)),
        // The name is well formed; another stream holds its place.
        Err(e @ StreamError::Collides { .. }) => Err(Refusal::new(
            StatusCode::CONFLICT,
            format!("Conflict - {e}"),
        )),
        Err(e @ StreamError::TooManyStreams { .. }) => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!("Forbidden - no new stream: {e}"),
        )),
        Err(e) => Err(server_error(e)),
    }
}

/// Read a stream's next events of one name.
///
/// The events named `eventName` after the last one this consumer
/// acknowledged (of that name), oldest first. Reading does not move the
/// position: acknowledging does.
#[utoipa::path(
    get,
    path = "/api/v1/streams/{stream}/events",
    tag = "streams",
    security(("basic" = [])),
    params(
        ("stream" = String, Path, description = "Stream name: 1 to 200 of A-Z, a-z, 0-9, '.', '_', '-'", pattern = r"^[A-Za-z0-9._-]{1,200}$"),
        ("eventName" = String, Query, description = "Which events (mandatory, not empty)", min_length = 1),
        ("limit" = usize, Query, description = "At most this many, 1 to 1000 (mandatory)", minimum = 1, maximum = 1000),
        ("X-Consumer-ID" = String, Header, description = "The consumer: 1 to 200 visible ASCII characters", pattern = r"^[!-~]{1,200}$"),
    ),
    responses(
        (status = 200, description = "The events, oldest first", body = [ReadEvent]),
        (status = 400, description = "\"Bad Request - ...\": a parameter is missing or malformed", body = String, content_type = "application/json"),
        (status = 401, description = "\"Unauthorized\"", body = String, content_type = "application/json"),
        (status = 404, description = "\"Not Found - ...\": no such stream", body = String, content_type = "application/json"),
        (status = 500, description = "\"Internal Server Error - ...\"", body = String, content_type = "application/json"),
    )
)]
pub async fn read(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let api = guard(&state, &headers)?;
    let Path(stream) = path.map_err(path_refused)?;
    check_stream(api, &stream)?;
    let consumer = id_header(&headers, "X-Consumer-ID")?;
    let Ok(Query(query)) = query else {
        return Err(bad_request("the query string is malformed"));
    };
    let event_name = match query.get("eventName").map(String::as_str) {
        Some(name) if !name.is_empty() => name,
        Some(_) => return Err(bad_request("eventName must not be empty")),
        None => return Err(bad_request("missing parameter eventName")),
    };
    let limit = match query.get("limit") {
        None => return Err(bad_request("missing parameter limit")),
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n @ 1..=MAX_LIMIT) => n,
            _ => {
                return Err(bad_request(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT} (got {text:?})"
                )))
            }
        },
    };
    match api.store.read(&stream, consumer, event_name, limit).await {
        Ok(events) => {
            let mut body =
                Vec::with_capacity(2 + events.iter().map(|e| e.value.len() + 56).sum::<usize>());
            body.push(b'[');
            for (i, event) in events.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                with_event_id(
                    &mut body,
                    &ids::encode(&stream, event.offset).to_string(),
                    &event.value,
                );
            }
            body.push(b']');
            Ok((StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
        }
        Err(StreamError::UnknownStream) => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("Not Found - no stream named {stream:?}"),
        )),
        Err(e) => Err(server_error(e)),
    }
}

/// `{"eventId":"<id>",` then the stored object's members.
fn with_event_id(out: &mut Vec<u8>, id: &str, stored: &[u8]) {
    out.extend_from_slice(b"{\"eventId\":");
    out.extend_from_slice(
        serde_json::to_string(id)
            .expect("a string is JSON")
            .as_bytes(),
    );
    // Stored events are compact JSON objects with at least one member
    // (written by `append`).
    let members = stored.strip_prefix(b"{").unwrap_or(b"}");
    if members != b"}" {
        out.push(b',');
    }
    out.extend_from_slice(members);
}

/// Acknowledge an event.
///
/// Moves this consumer's position for the event's name to this event:
/// the next read of that name starts after it.
#[utoipa::path(
    post,
    path = "/api/v1/streams/{stream}/events/{eventID}",
    tag = "streams",
    security(("basic" = [])),
    params(
        ("stream" = String, Path, description = "Stream name: 1 to 200 of A-Z, a-z, 0-9, '.', '_', '-'", pattern = r"^[A-Za-z0-9._-]{1,200}$"),
        ("eventID" = uuid::Uuid, Path, description = "The event's id, as returned by a read"),
        ("X-Consumer-ID" = String, Header, description = "The consumer: 1 to 200 visible ASCII characters", pattern = r"^[!-~]{1,200}$"),
    ),
    request_body(content = Acknowledgement, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "\"OK\": position moved", body = String, content_type = "application/json"),
        (status = 400, description = "\"Bad Request - ...\": no `action=ACK`, or a malformed id", body = String, content_type = "application/json"),
        (status = 401, description = "\"Unauthorized\"", body = String, content_type = "application/json"),
        (status = 404, description = "\"Not Found\": no such stream or event", body = String, content_type = "application/json"),
        (status = 415, description = "\"Unsupported Media Type - ...\"", body = String, content_type = "application/json"),
        (status = 500, description = "\"Internal Server Error - ...\"", body = String, content_type = "application/json"),
    )
)]
pub async fn acknowledge(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let api = guard(&state, &headers)?;
    let Path((stream, event_id)) = path.map_err(path_refused)?;
    check_stream(api, &stream)?;
    let consumer = id_header(&headers, "X-Consumer-ID")?;
    let form = "application/x-www-form-urlencoded";
    let bytes = body::read(&headers, body, form, api.max_body)
        .await
        .map_err(body_refused)?;
    let action = form_urlencoded::parse(&bytes)
        .find(|(key, _)| key == "action")
        .map(|(_, value)| value.into_owned());
    match action.as_deref() {
        Some("ACK") => {}
        Some(other) => return Err(bad_request(format!("action must be ACK (got {other:?})"))),
        None => return Err(bad_request("missing form field action=ACK")),
    }
    let Ok(id) = uuid::Uuid::parse_str(&event_id) else {
        return Err(bad_request(format!("event id {event_id:?} is not a UUID")));
    };
    let not_found = || Refusal::new(StatusCode::NOT_FOUND, "Not Found");
    let offset = ids::decode(&stream, &id).ok_or_else(not_found)?;
    match api.store.acknowledge(&stream, consumer, offset).await {
        Ok(()) => Ok(reply(StatusCode::OK, "OK")),
        Err(StreamError::UnknownStream | StreamError::UnknownEvent) => Err(not_found()),
        Err(e) => Err(server_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_placeholder_passwords_are_refused_without_quoting_them() {
        for fine in ["demo-password", "0123456789abcdef", "correct horse battery"] {
            assert_eq!(check_password(fine), Ok(()), "{fine}");
        }
        for placeholder in [
            "CHANGE-ME",
            "change_me_please_now",
            "ChangeMe-0123456789",
            "REPLACE-ME-WITH-A-SECRET",
            "<your-password-here>",
            "xxxxxxxxxxxxxxxx",
        ] {
            let why = check_password(placeholder).unwrap_err();
            assert!(
                why.starts_with("the password is a placeholder"),
                "{placeholder}: {why}"
            );
            assert!(!why.contains(placeholder), "{why}");
        }
        assert_eq!(
            check_password("s3cret"),
            Err("the password must be at least 12 characters (got 6)".into())
        );
    }

    #[test]
    fn versions_are_whole_numbers_however_written() {
        let version = |text: &str| {
            serde_json::from_str::<EventDescription>(&format!(r#"{{"name":"A","version":{text}}}"#))
                .map(|e| e.version)
                .map_err(|e| e.to_string())
        };
        assert_eq!(version("7"), Ok(7));
        assert_eq!(version("7.0"), Ok(7));
        assert_eq!(version("4294967295"), Ok(u32::MAX));
        for bad in ["7.5", "-1", "4294967296", "1e10", "\"7\""] {
            let e = version(bad).unwrap_err();
            assert!(
                e.contains("expected a whole number from 0 to 4294967295")
                    || e.contains("invalid type"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn the_event_id_comes_first() {
        let mut out = Vec::new();
        with_event_id(&mut out, "x", br#"{"event":{"name":"A","version":1}}"#);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"eventId":"x","event":{"name":"A","version":1}}"#
        );
    }
}
