//! Turning request bodies (JSON objects) into records, reporting every
//! problem at once.
//!
//! Bodies are read field by field from a `serde_json` object rather than
//! deserialised with serde, because serde stops at the first error and an
//! integration being debugged against this mock wants to see all of its
//! mapping mistakes in one answer. Each problem is a string that starts with
//! the field it is about: `"Email: required"`.
//!
//! Rules shared by every body: a nullable field may be absent or `null`
//! (both mean null); a required field absent or `null` is a problem; a field
//! the contract does not have is a problem (names are case-sensitive, and a
//! near miss such as `lastName` is pointed at `LastName`).

use std::fmt::Display;
use std::ops::RangeInclusive;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::contracts::{Trip, User};

/// Where a record's `Id` comes from.
#[derive(Debug, Clone, Copy)]
pub enum IdSource<'a> {
    /// Creation: the body must carry it.
    Body,
    /// Replacement: the path names the record; the body may repeat the same
    /// id or leave it out.
    Path(&'a str),
}

/// Reads a user from a request body.
pub fn user(object: Map<String, Value>, id: IdSource) -> Result<User, Vec<String>> {
    let mut fields = Fields::new(object);
    let id = fields.record_id(id);
    let last_name = fields.text("LastName");
    let first_name = fields.nullable_text("FirstName");
    let email = fields.email("Email");
    let last_trip_type = fields.nullable_text("LastTripType");
    let last_trip_id = fields.nullable_text("LastTripId");
    let last_trip_date = fields.date_time("LastTripDate");
    let problems = fields.finish();
    // A required value is `None` only if a problem was recorded for it, so
    // the fallback arm never returns an empty list.
    match (id, last_name, email, last_trip_date) {
        (Some(id), Some(last_name), Some(email), Some(last_trip_date)) if problems.is_empty() => {
            Ok(User {
                id,
                last_name,
                first_name,
                email,
                last_trip_type,
                last_trip_id,
                last_trip_date,
            })
        }
        _ => Err(problems),
    }
}

/// Reads a trip from a request body; `user_exists` tells whether its
/// `UserId` names a registered user.
pub fn trip(
    object: Map<String, Value>,
    id: IdSource,
    user_exists: impl FnOnce(&str) -> bool,
) -> Result<Trip, Vec<String>> {
    let mut fields = Fields::new(object);
    let id = fields.record_id(id);
    let user_id = fields.text("UserId");
    if let Some(user_id) = &user_id {
        if !user_exists(user_id) {
            fields.problem("UserId", format!("no user `{user_id}`"));
        }
    }
    let from = fields.nullable_text("From");
    let to = fields.nullable_text("To");
    let price = fields.non_negative_number("Price");
    let start_date = fields.date_time("StartDate");
    let end_date = fields.nullable_date_time("EndDate");
    let trip_type = fields.text("Type");
    let problems = fields.finish();
    // As for users: a `None` here always comes with a problem.
    match (id, user_id, price, start_date, trip_type) {
        (Some(id), Some(user_id), Some(price), Some(start_date), Some(trip_type))
            if problems.is_empty() =>
        {
            Ok(Trip {
                id,
                user_id,
                from,
                to,
                price,
                start_date,
                end_date,
                r#type: trip_type,
            })
        }
        _ => Err(problems),
    }
}

/// A body being read: fields are taken out of the object one by one, so
/// whatever is left at the end is unknown to the contract.
pub struct Fields {
    object: Map<String, Value>,
    known: Vec<&'static str>,
    problems: Vec<String>,
}

impl Fields {
    pub fn new(object: Map<String, Value>) -> Self {
        Self {
            object,
            known: Vec::new(),
            problems: Vec::new(),
        }
    }

    pub fn problem(&mut self, field: &str, message: impl Display) {
        self.problems.push(format!("{field}: {message}"));
    }

    /// A required, non-empty string.
    pub fn text(&mut self, field: &'static str) -> Option<String> {
        let text = self.required(field).and_then(|v| self.string(field, v))?;
        if text.is_empty() {
            self.problem(field, "must not be empty");
            return None;
        }
        Some(text)
    }

    /// A string or null; any string, empty included.
    pub fn nullable_text(&mut self, field: &'static str) -> Option<String> {
        self.nullable(field).and_then(|v| self.string(field, v))
    }

    /// A required string with exactly one `@` and text on both sides of it.
    pub fn email(&mut self, field: &'static str) -> Option<String> {
        let email = self.text(field)?;
        match email.split_once('@') {
            Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
            {
                Some(email)
            }
            _ => {
                self.problem(field, format!("not an email address: {email:?}"));
                None
            }
        }
    }

    /// A required RFC 3339 date-time (with an offset), as an instant.
    pub fn date_time(&mut self, field: &'static str) -> Option<DateTime<Utc>> {
        let value = self.required(field)?;
        self.instant(field, value)
    }

    /// An RFC 3339 date-time or null.
    pub fn nullable_date_time(&mut self, field: &'static str) -> Option<DateTime<Utc>> {
        let value = self.nullable(field)?;
        self.instant(field, value)
    }

    /// A required number >= 0. JSON numbers are always finite: `serde_json`
    /// refuses out-of-range literals such as `1e400` as malformed JSON.
    pub fn non_negative_number(&mut self, field: &'static str) -> Option<f64> {
        let value = self.required(field)?;
        let Some(number) = value.as_f64() else {
            self.problem(field, format!("must be a number, got {}", kind_of(&value)));
            return None;
        };
        if number < 0.0 {
            self.problem(field, format!("must be >= 0, got {number}"));
            return None;
        }
        Some(number)
    }

    /// A required integer within `range`.
    pub fn integer(&mut self, field: &'static str, range: RangeInclusive<u64>) -> Option<u64> {
        let value = self.required(field)?;
        self.integer_in(field, value, range)
    }

    /// An integer within `range`, or null.
    pub fn nullable_integer(
        &mut self,
        field: &'static str,
        range: RangeInclusive<u64>,
    ) -> Option<u64> {
        let value = self.nullable(field)?;
        self.integer_in(field, value, range)
    }

    /// The problems found, including one for each field the contract does
    /// not have. Call after every known field was read.
    pub fn finish(mut self) -> Vec<String> {
        // Sorted, so that the same body always reads the same answer.
        let mut unknown: Vec<String> = self.object.keys().cloned().collect();
        unknown.sort();
        for field in unknown {
            match self.known.iter().find(|k| k.eq_ignore_ascii_case(&field)) {
                Some(known) => {
                    self.problem(&field, format!("unknown field (did you mean `{known}`?)"))
                }
                None => self.problem(&field, "unknown field"),
            }
        }
        self.problems
    }

    fn record_id(&mut self, source: IdSource) -> Option<String> {
        let IdSource::Path(path_id) = source else {
            return self.text("Id");
        };
        self.known.push("Id");
        match self.object.remove("Id") {
            None => Some(path_id.to_owned()),
            Some(Value::String(body_id)) if body_id == path_id => Some(body_id),
            Some(Value::String(body_id)) => {
                self.problem(
                    "Id",
                    format!("`{body_id}` differs from the id in the path, `{path_id}`"),
                );
                None
            }
            Some(other) => {
                self.problem(
                    "Id",
                    format!(
                        "must be the id in the path or absent, got {}",
                        kind_of(&other)
                    ),
                );
                None
            }
        }
    }

    /// The field's value, taken out of the object; `None` when absent or
    /// null.
    fn nullable(&mut self, field: &'static str) -> Option<Value> {
        self.known.push(field);
        self.object.remove(field).filter(|value| !value.is_null())
    }

    fn required(&mut self, field: &'static str) -> Option<Value> {
        let value = self.nullable(field);
        if value.is_none() {
            self.problem(field, "required");
        }
        value
    }

    fn string(&mut self, field: &str, value: Value) -> Option<String> {
        match value {
            Value::String(text) => Some(text),
            other => {
                self.problem(field, format!("must be a string, got {}", kind_of(&other)));
                None
            }
        }
    }

    fn instant(&mut self, field: &str, value: Value) -> Option<DateTime<Utc>> {
        let text = self.string(field, value)?;
        match DateTime::parse_from_rfc3339(&text) {
            Ok(instant) => Some(instant.with_timezone(&Utc)),
            Err(_) => {
                self.problem(field, format!("not an RFC 3339 date-time: {text:?}"));
                None
            }
        }
    }

    fn integer_in(&mut self, field: &str, value: Value, range: RangeInclusive<u64>) -> Option<u64> {
        // JSON does not tell `5` from `5.0`, nor does JSON Schema's
        // `integer`: a number without a fraction is a whole number (up to
        // 2^53, beyond which a float is no longer exact).
        let whole_float = value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(f))
            .map(|f| f as u64);
        let Some(integer) = value.as_u64().or(whole_float) else {
            let got = if value.is_number() {
                value.to_string()
            } else {
                kind_of(&value).to_owned()
            };
            self.problem(field, format!("must be a whole number, got {got}"));
            return None;
        };
        if !range.contains(&integer) {
            let (&min, &max) = (range.start(), range.end());
            let expected = if max == u64::MAX {
                format!("at least {min}")
            } else {
                format!("between {min} and {max}")
            };
            self.problem(field, format!("must be {expected}, got {integer}"));
            return None;
        }
        Some(integer)
    }
}

/// How a JSON value is named in problems ("got a string").
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(object) => object,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn a_near_miss_field_name_points_at_the_contract_name() {
        let mut fields = Fields::new(object(json!({"lastName": "L", "Nickname": "N"})));
        assert_eq!(fields.text("LastName"), None);
        let problems = fields.finish();
        assert_eq!(
            problems,
            [
                "LastName: required",
                "Nickname: unknown field",
                "lastName: unknown field (did you mean `LastName`?)",
            ]
        );
    }

    #[test]
    fn an_email_needs_exactly_one_at_with_text_on_both_sides() {
        for bad in ["ada", "@example.com", "ada@", "a@b@c"] {
            let mut fields = Fields::new(object(json!({ "Email": bad })));
            assert_eq!(fields.email("Email"), None, "{bad}");
            assert_eq!(
                fields.finish(),
                [format!("Email: not an email address: {bad:?}")]
            );
        }
        let mut fields = Fields::new(object(json!({"Email": "a@b"})));
        assert_eq!(fields.email("Email").as_deref(), Some("a@b"));
    }
}
