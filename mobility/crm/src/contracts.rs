//! The CRM's records, as it stores and returns them.
//!
//! Field names are the CRM's own (PascalCase). Every field is always
//! serialised, `null` where a nullable field has no value, so that clients
//! never have to tell "absent" from "null" in a response. Date-times are
//! instants, written in UTC with a `Z` (see [`rfc3339_utc`]).
//!
//! Requests are not deserialised into these types directly: bodies go
//! through [`crate::validation`], which reports every problem at once.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use utoipa::ToSchema;

/// A registered user of the mobility platform. Fields it does not have
/// are refused.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct User {
    /// The user's id; unique among users.
    #[schema(example = "u-1", min_length = 1)]
    pub id: String,
    #[schema(example = "Lovelace", min_length = 1)]
    pub last_name: String,
    #[schema(example = "Ada")]
    pub first_name: Option<String>,
    /// One `@` with text on both sides.
    #[schema(example = "ada@example.com", pattern = r"^[^@]+@[^@]+$")]
    pub email: String,
    /// The `Type` of the user's last trip.
    #[schema(example = "bike")]
    pub last_trip_type: Option<String>,
    #[schema(example = "t-1")]
    pub last_trip_id: Option<String>,
    /// RFC 3339 with an offset; returned in UTC.
    #[serde(serialize_with = "rfc3339_utc")]
    #[schema(value_type = String, format = DateTime, example = "2026-01-01T10:00:00Z")]
    pub last_trip_date: DateTime<Utc>,
}

/// A trip made by a user. Fields it does not have are refused.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Trip {
    /// The trip's id; unique among trips.
    #[schema(example = "t-1", min_length = 1)]
    pub id: String,
    /// The `Id` of a registered user.
    #[schema(example = "u-1", min_length = 1)]
    pub user_id: String,
    #[schema(example = "Central Station")]
    pub from: Option<String>,
    #[schema(example = "Airport")]
    pub to: Option<String>,
    /// A number >= 0.
    #[schema(example = 12.5, minimum = 0)]
    pub price: f64,
    /// RFC 3339 with an offset; returned in UTC.
    #[serde(serialize_with = "rfc3339_utc")]
    #[schema(value_type = String, format = DateTime, example = "2026-01-01T10:00:00Z")]
    pub start_date: DateTime<Utc>,
    /// RFC 3339 with an offset; returned in UTC.
    #[serde(serialize_with = "optional_rfc3339_utc")]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-01-01T10:25:00Z")]
    pub end_date: Option<DateTime<Utc>>,
    #[schema(example = "bike", min_length = 1)]
    pub r#type: String,
}

/// The record kinds the CRM stores, for code shared by users and trips.
pub trait Record: Clone {
    /// How the kind is named in messages ("user", "trip").
    const KIND: &'static str;
    /// Where records of this kind live, as in `/users`.
    const COLLECTION: &'static str;

    fn id(&self) -> &str;
}

impl Record for User {
    const KIND: &'static str = "user";
    const COLLECTION: &'static str = "/users";

    fn id(&self) -> &str {
        &self.id
    }
}

impl Record for Trip {
    const KIND: &'static str = "trip";
    const COLLECTION: &'static str = "/trips";

    fn id(&self) -> &str {
        &self.id
    }
}

/// `2026-01-01T10:00:00Z`: UTC, whole seconds unless the instant has a
/// fraction (then milli-, micro- or nanoseconds, as many as it needs), so
/// that equal instants always read the same whatever offset they came with.
fn format_rfc3339_utc(instant: &DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn rfc3339_utc<S: Serializer>(instant: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_rfc3339_utc(instant))
}

fn optional_rfc3339_utc<S: Serializer>(
    instant: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match instant {
        Some(instant) => rfc3339_utc(instant, serializer),
        None => serializer.serialize_none(),
    }
}
