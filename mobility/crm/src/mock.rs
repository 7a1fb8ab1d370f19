//! The mock's own controls, under `/_mock`, for tests of the integration:
//! inject faults into the CRM API (`/users...`, `/trips...`), read traffic
//! counters, reset everything.
//!
//! A fault answers CRM API requests with a chosen status, optionally after a
//! delay, for a time (`for_ms`), a number of requests (`count`), or both
//! (whichever ends first), so that retries, back-off and recovery can be
//! exercised against a CRM that fails and then comes back.
//!
//! Injecting a fault or resetting takes the CRM down or wipes it for
//! everyone, so both need the **control token** the mock was started with
//! (`Authorization: Bearer <token>`); without one configured they are
//! disabled. Reading the counters (`GET /_mock/stats`) stays open: it
//! changes nothing, shows less than `GET /users` (counts, not records),
//! and is what health probes and tests poll to see the mock is up.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;
use utoipa::ToSchema;

use crate::contracts::{Record, Trip, User};
use crate::error::ApiError;
use crate::extract::JsonObject;
use crate::state::AppState;
use crate::validation::Fields;

/// The token that unlocks the mock's controls. Its `Debug` shows nothing of
/// it.
#[derive(Clone)]
pub struct ControlToken {
    /// SHA-256 of the token, what requests are compared against.
    digest: [u8; 32],
}

/// Why a control token was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the control token must be at least {min} characters (got {got})", min = ControlToken::MIN_LEN)]
pub struct ShortToken {
    got: usize,
}

impl ControlToken {
    /// Shortest token accepted: one that can be guessed is no lock.
    pub const MIN_LEN: usize = 16;

    pub fn new(token: &str) -> Result<Self, ShortToken> {
        let token = token.trim();
        let got = token.chars().count();
        if got < Self::MIN_LEN {
            return Err(ShortToken { got });
        }
        Ok(Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest.ct_eq(&digest).into()
    }
}

impl std::fmt::Debug for ControlToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlToken(<withheld>)")
    }
}

/// Middleware of the controls that change the mock (faults, reset): 403
/// when no control token is configured, 401 without the right one.
pub async fn require_control_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = state.control_token() else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "mock control is disabled: start the mock with a control token \
             (--control-token or MOCK_CRM_CONTROL_TOKEN)",
        )
        .into_response();
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let refusal = match presented {
        Some(presented) if token.matches(presented) => return next.run(request).await,
        Some(_) => "the control token is not valid",
        None => "mock control needs `Authorization: Bearer <control token>`",
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, refusal).into_response();
    // What a 401 must say (RFC 9110): how to authenticate.
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The longest a fault may last by time: a day.
const MAX_FOR_MS: u64 = 24 * 60 * 60 * 1000;
/// The most requests a fault may count: a billion (and within what every
/// JSON parser reads as an exact integer).
const MAX_COUNT: u64 = 1_000_000_000;
/// The longest added latency: a minute.
const MAX_DELAY_MS: u64 = 60 * 1000;

/// A fault to inject. At least one of `for_ms` and `count` is required
/// (not null); fields it does not have are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": 503, "count": 10, "delay_ms": 200}))]
pub struct Fault {
    /// The status of every faulted answer, 400..=599.
    #[schema(minimum = 400, maximum = 599, example = 503)]
    pub status: u16,
    /// For how long, in milliseconds (1..=86400000).
    #[schema(minimum = 1, maximum = 86_400_000, example = 3000)]
    pub for_ms: Option<u64>,
    /// For how many requests (1..=1000000000).
    #[schema(minimum = 1, maximum = 1_000_000_000, example = 10)]
    pub count: Option<u64>,
    /// Latency added before each faulted answer, in milliseconds
    /// (0..=60000).
    #[schema(minimum = 0, maximum = 60_000, example = 200)]
    pub delay_ms: Option<u64>,
}

/// Traffic on the CRM API (`/users...`, `/trips...`) since start or the
/// last reset, and how many records are held.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "requests": 12, "faulted": 3, "by_status": {"200": 6, "201": 3, "503": 3},
    "users": 2, "trips": 1
}))]
pub struct Stats {
    /// Requests answered, faulted ones included.
    pub requests: u64,
    /// Requests answered with an injected fault.
    pub faulted: u64,
    /// Requests answered, by status code.
    pub by_status: BTreeMap<String, u64>,
    pub users: usize,
    pub trips: usize,
}

/// The answer to clearing faults.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FaultCleared {
    /// Whether a fault was still in effect.
    pub cleared: bool,
}

/// The active fault and the traffic counters.
#[derive(Debug, Default)]
pub struct MockControl {
    fault: Option<ActiveFault>,
    requests: u64,
    faulted: u64,
    by_status: BTreeMap<u16, u64>,
}

#[derive(Debug)]
struct ActiveFault {
    status: StatusCode,
    until: Option<Instant>,
    /// Never zero: the fault is removed when its last request is answered.
    remaining: Option<u64>,
    delay: Duration,
}

impl ActiveFault {
    fn expired(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| now >= until)
    }
}

impl MockControl {
    /// The status and delay the next CRM API request gets, if a fault is in
    /// effect; counts it against the fault's `count`.
    fn next_fault(&mut self, now: Instant) -> Option<(StatusCode, Duration)> {
        let fault = self.fault.as_mut()?;
        if fault.expired(now) {
            self.fault = None;
            return None;
        }
        let answer = (fault.status, fault.delay);
        if let Some(remaining) = &mut fault.remaining {
            *remaining -= 1;
            if *remaining == 0 {
                self.fault = None;
            }
        }
        Some(answer)
    }

    fn record(&mut self, status: StatusCode, faulted: bool) {
        self.requests += 1;
        if faulted {
            self.faulted += 1;
        }
        *self.by_status.entry(status.as_u16()).or_default() += 1;
    }
}

/// Whether `path` is part of the CRM API, whose traffic is counted and
/// faulted: `/users`, `/trips` and everything below them.
fn is_crm_api_path(path: &str) -> bool {
    [User::COLLECTION, Trip::COLLECTION]
        .iter()
        .any(|collection| {
            path.strip_prefix(collection)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

/// Middleware around the whole app: CRM API requests get the injected
/// fault if one is in effect, and are counted and logged whatever answers
/// them (a handler, a 404 or 405 fallback, or the fault).
pub async fn crm_api_traffic(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !is_crm_api_path(request.uri().path()) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let fault = state.mock().next_fault(Instant::now());
    let response = match fault {
        Some((status, delay)) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            ApiError::new(status, "injected fault").into_response()
        }
        None => next.run(request).await,
    };
    let status = response.status();
    state.mock().record(status, fault.is_some());
    tracing::info!(
        %method,
        path,
        status = status.as_u16(),
        faulted = fault.is_some(),
        "CRM API request"
    );
    response
}

#[utoipa::path(
    post,
    path = "/_mock/faults",
    tag = "mock control",
    summary = "Injects a fault into the CRM API",
    description = "From now on, requests to `/users...` and `/trips...` are answered with `status` and `{\"error\": \"injected fault\"}`, after `delay_ms` if given, until `for_ms` milliseconds have passed or `count` requests were faulted (whichever comes first when both are given). Replaces any fault in effect.",
    request_body = Fault,
    security(("control_token" = [])),
    responses(
        (status = 200, description = "The fault is in effect", body = Fault),
        (status = 400, description = "Invalid fault, every problem listed; malformed JSON; not an object", body = ApiError),
        (status = 401, description = "No valid control token", body = ApiError,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The mock was started without a control token: mock control is disabled", body = ApiError),
        (status = 413, description = "Body larger than 64 KiB", body = ApiError),
        (status = 415, description = "Content-Type is not application/json", body = ApiError),
    )
)]
pub async fn set_fault(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Json<Fault>, ApiError> {
    // A fault without an end would outlive the test that forgot it.
    let has_end = ["for_ms", "count"]
        .iter()
        .any(|field| body.get(*field).is_some_and(|value| !value.is_null()));
    let mut fields = Fields::new(body);
    let status = fields.integer("status", 400..=599);
    let for_ms = fields.nullable_integer("for_ms", 1..=MAX_FOR_MS);
    let count = fields.nullable_integer("count", 1..=MAX_COUNT);
    let delay_ms = fields.nullable_integer("delay_ms", 0..=MAX_DELAY_MS);
    if !has_end {
        fields.problem("for_ms", "give for_ms, count or both");
    }
    let problems = fields.finish();
    let status = status
        .and_then(|status| u16::try_from(status).ok())
        .and_then(|status| StatusCode::from_u16(status).ok());
    let status = match status {
        Some(status) if problems.is_empty() => status,
        _ => return Err(ApiError::invalid("fault", problems)),
    };
    let now = Instant::now();
    state.mock().fault = Some(ActiveFault {
        status,
        until: for_ms.map(|ms| now + Duration::from_millis(ms)),
        remaining: count,
        delay: Duration::from_millis(delay_ms.unwrap_or(0)),
    });
    tracing::warn!(
        status = status.as_u16(),
        for_ms,
        count,
        delay_ms,
        "injecting a fault into the CRM API"
    );
    Ok(Json(Fault {
        status: status.as_u16(),
        for_ms,
        count,
        delay_ms,
    }))
}

#[utoipa::path(
    delete,
    path = "/_mock/faults",
    tag = "mock control",
    summary = "Clears the injected fault",
    security(("control_token" = [])),
    responses(
        (status = 200, description = "No fault is in effect any more", body = FaultCleared),
        (status = 401, description = "No valid control token", body = ApiError,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The mock was started without a control token: mock control is disabled", body = ApiError),
    )
)]
pub async fn clear_fault(State(state): State<AppState>) -> Json<FaultCleared> {
    let was_active = state
        .mock()
        .fault
        .take()
        .is_some_and(|fault| !fault.expired(Instant::now()));
    Json(FaultCleared {
        cleared: was_active,
    })
}

#[utoipa::path(
    get,
    path = "/_mock/stats",
    tag = "mock control",
    summary = "Returns traffic counters of the CRM API and record counts",
    description = "Counts requests to `/users...` and `/trips...` only (not `/_mock`, not the API explorer) since start or the last reset.",
    responses((status = 200, description = "The counters", body = Stats))
)]
pub async fn stats(State(state): State<AppState>) -> Json<Stats> {
    Json(current_stats(&state))
}

#[utoipa::path(
    post,
    path = "/_mock/reset",
    tag = "mock control",
    summary = "Empties users, trips, faults and counters",
    security(("control_token" = [])),
    responses(
        (status = 200, description = "Everything is empty; the (zero) counters", body = Stats),
        (status = 401, description = "No valid control token", body = ApiError,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The mock was started without a control token: mock control is disabled", body = ApiError),
    )
)]
pub async fn reset(State(state): State<AppState>) -> Json<Stats> {
    {
        let mut store = state.store();
        store.users.clear();
        store.trips.clear();
    }
    *state.mock() = MockControl::default();
    tracing::warn!("reset: all users, trips, faults and counters dropped");
    Json(current_stats(&state))
}

fn current_stats(state: &AppState) -> Stats {
    let (users, trips) = {
        let store = state.store();
        (store.users.len(), store.trips.len())
    };
    let mock = state.mock();
    Stats {
        requests: mock.requests,
        faulted: mock.faulted,
        by_status: mock
            .by_status
            .iter()
            .map(|(status, count)| (status.to_string(), *count))
            .collect(),
        users,
        trips,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crm_api_paths_are_the_collections_and_what_is_below_them() {
        for path in ["/users", "/users/u-1", "/trips", "/trips/t-1/x", "/users/"] {
            assert!(is_crm_api_path(path), "{path}");
        }
        for path in ["/", "/usersx", "/_mock/stats", "/swagger/", "/openapi.json"] {
            assert!(!is_crm_api_path(path), "{path}");
        }
    }

    #[test]
    fn a_counted_fault_ends_after_its_last_request() {
        let mut mock = MockControl::default();
        let now = Instant::now();
        mock.fault = Some(ActiveFault {
            status: StatusCode::SERVICE_UNAVAILABLE,
            until: None,
            remaining: Some(2),
            delay: Duration::ZERO,
        });
        let fault = Some((StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO));
        assert_eq!(mock.next_fault(now), fault);
        assert_eq!(mock.next_fault(now), fault);
        assert_eq!(mock.next_fault(now), None);
        assert!(mock.fault.is_none());
    }

    #[test]
    fn a_timed_fault_ends_when_its_time_is_up() {
        let mut mock = MockControl::default();
        let now = Instant::now();
        mock.fault = Some(ActiveFault {
            status: StatusCode::BAD_GATEWAY,
            until: Some(now + Duration::from_millis(10)),
            remaining: None,
            delay: Duration::ZERO,
        });
        assert!(mock.next_fault(now).is_some());
        assert_eq!(mock.next_fault(now + Duration::from_millis(10)), None);
        assert!(mock.fault.is_none());
    }
}
