//! `crm-map`: turns internal events into CRM operations, following a mapping
//! that is data in the route's config, not code per event type.
//!
//! Config (the route's `config` table for this plugin, as JSON):
//!
//! ```json
//! {
//!   "type_at": "/type",
//!   "unknown_types": "drop",
//!   "events": {
//!     "UserRegistered": [
//!       {"resource": "users", "id": "/userId",
//!        "set": {"Id": "/userId", "FirstName": {"path": "/payload/firstName", "default": null},
//!                "LastName": "/payload/lastName", "Email": "/payload/email"},
//!        "on_create": {"LastTripType": {"value": null}, "LastTripId": {"value": null},
//!                      "LastTripDate": {"value": "0001-01-01T00:00:00Z"}}}
//!     ],
//!     "TripEnded": [
//!       {"resource": "trips", "id": "/payload/tripId",
//!        "set": {"EndDate": "/payload/endedAt", "Price": "/payload/price"}},
//!       {"resource": "users", "id": "/userId",
//!        "set": {"LastTripType": "/payload/tripType", "LastTripId": "/payload/tripId",
//!                "LastTripDate": "/payload/endedAt"}}
//!     ]
//!   }
//! }
//! ```
//!
//! - `type_at` (default `"/type"`): JSON Pointer to the event's type, a string.
//! - `unknown_types` (default `"drop"`): what to do with an event whose type
//!   `events` does not list: `"drop"` it (the CRM does not care about it) or
//!   `"reject"` it (to the dead-letter topic, for a person to look at).
//! - `events` (required): event type to a list of operations, applied in
//!   order. An empty list maps that type to nothing (the record is dropped).
//!   Each operation has:
//!   - `resource` (required): the CRM collection, such as `users` or `trips`:
//!     letters, digits, `-` and `_`, since it becomes a URL path segment;
//!   - `id` (required): a source (see below) for the record's id in that
//!     collection, a non-empty string or a number;
//!   - `set` (required, non-empty): the fields to write, a field mapping;
//!   - `on_create` (optional): fields written only when the record does not
//!     exist yet, for contract fields the event cannot know (a new user's
//!     `LastTripDate`), a field mapping.
//!
//! A field mapping is an object of CRM field names to sources: a JSON Pointer
//! into the event (`"/payload/email"`; the event is rejected if it is
//! absent), `{"path": "/p", "default": v}`, a constant `{"value": v}`, or a
//! nested object `{"object": {...}}`.
//!
//! Per record, the value a JSON object:
//! - its type is listed: one output per operation, in order, each the JSON
//!   of a CRM operation (below), with the record's key and headers. Keyed by
//!   the user, the operations of one user stay in order on their partition;
//! - its type is not listed: dropped or rejected, as `unknown_types` says;
//! - no string at `type_at`, or a required source absent: rejected with
//!   every reason, naming the operation and field;
//! - not JSON, or not an object: rejected; a tombstone: dropped (deletion is
//!   not part of the CRM's API).
//!
//! A CRM operation (version 1), what the CRM sink executes:
//!
//! ```json
//! {"op": "upsert", "resource": "users", "id": "u-1",
//!  "set": {"LastTripId": "t-9"}, "on_create": {}}
//! ```
//!
//! `upsert` means: if `resource/id` exists, write `set` over its current
//! fields (the others are kept) and replace it; if not, create it from
//! `on_create` and then `set`. Doing it twice gives the same result, so
//! redelivery is harmless.

use serde_json::{json, Map, Value};
use switchyard_guest::json::{config_object, emit_json, kind};
use switchyard_guest::mapping::{pointer, typed_event, Mapping, Source};
use switchyard_guest::{export_plugin, Event, Outcome, Plugin};

const EXAMPLE: &str = r#"{"events": {"UserRegistered": [{"resource": "users", "id": "/userId", "set": {"Email": "/payload/email"}}]}}"#;

struct CrmMap;

#[derive(Debug)]
struct Config {
    type_at: String,
    drop_unknown: bool,
    operations: Vec<(String, Vec<Operation>)>,
}

#[derive(Debug)]
struct Operation {
    resource: String,
    id: Source,
    set: Mapping,
    on_create: Option<Mapping>,
}

impl Plugin for CrmMap {
    const NAME: &'static str = "crm-map";
    type Config = Config;

    fn configure(config: &str) -> Result<Config, String> {
        parse_config(config).map_err(|problems| problems.join("; "))
    }

    fn process(config: &Config, event: Event) -> Outcome {
        let (input, event_type) = match typed_event(&event, &config.type_at) {
            Ok(Some(typed)) => typed,
            Ok(None) => return Outcome::Drop,
            Err(reason) => return Outcome::Reject(vec![reason]),
        };
        let event_type = event_type.as_str();
        let Some(operations) = config.operations_of(event_type) else {
            return if config.drop_unknown {
                Outcome::Drop
            } else {
                Outcome::Reject(vec![format!(
                    "event type {event_type:?} has no CRM mapping"
                )])
            };
        };
        if operations.is_empty() {
            return Outcome::Drop;
        }
        let mut outputs = Vec::with_capacity(operations.len());
        let mut reasons = Vec::new();
        for op in operations {
            match op.render(event_type, &input) {
                Ok(document) => {
                    match emit_json(event.key.clone(), &document, event.headers.clone()) {
                        Outcome::Emit(mut one) => outputs.append(&mut one),
                        failed => return failed,
                    }
                }
                Err(mut more) => reasons.append(&mut more),
            }
        }
        if reasons.is_empty() {
            Outcome::Emit(outputs)
        } else {
            Outcome::Reject(reasons)
        }
    }
}

export_plugin!(CrmMap);

impl Config {
    fn operations_of(&self, event_type: &str) -> Option<&[Operation]> {
        // Linear: a CRM mapping lists a handful of event types.
        self.operations
            .iter()
            .find(|(t, _)| t == event_type)
            .map(|(_, ops)| ops.as_slice())
    }
}

impl Operation {
    /// The CRM operation document for `input`, or why it cannot be made.
    fn render(&self, event_type: &str, input: &Value) -> Result<Value, Vec<String>> {
        let at = |what: &str| format!("{event_type} -> {}.{what}", self.resource);
        let mut reasons = Vec::new();
        let id = match id_of(&self.id, input) {
            Ok(id) => Some(id),
            Err(why) => {
                let where_ = at("id");
                reasons.extend(why.into_iter().map(|w| format!("{where_}: {w}")));
                None
            }
        };
        let mut fields = |mapping: &Mapping, what: &str| match mapping.apply(input) {
            Ok(fields) => fields,
            Err(missing) => {
                let where_ = at(what);
                reasons.extend(missing.into_iter().map(|m| format!("{where_}: {m}")));
                Map::new()
            }
        };
        let set = fields(&self.set, "set");
        let on_create = match &self.on_create {
            Some(mapping) => fields(mapping, "on_create"),
            None => Map::new(),
        };
        match id {
            Some(id) if reasons.is_empty() => Ok(json!({
                "op": "upsert",
                "resource": self.resource,
                "id": id,
                "set": set,
                "on_create": on_create,
            })),
            _ => Err(reasons),
        }
    }
}

/// The id a source gives for `input`: a non-empty string, or a number as
/// text.
fn id_of(source: &Source, input: &Value) -> Result<String, Vec<String>> {
    match source.resolve(input, "id")? {
        Value::String(s) if !s.is_empty() => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::String(_) => Err(vec!["the id is an empty string".into()]),
        other => Err(vec![format!(
            "the id must be a non-empty string or a number, got {}",
            kind(&other)
        )]),
    }
}

fn parse_config(config: &str) -> Result<Config, Vec<String>> {
    let mut top = config_object(config, EXAMPLE).map_err(|e| vec![e])?;
    let mut problems = Vec::new();
    for key in top.keys() {
        if !matches!(key.as_str(), "type_at" | "unknown_types" | "events") {
            problems.push(format!(
                "unknown config key {key:?} (known: \"type_at\", \"unknown_types\", \"events\")"
            ));
        }
    }
    let type_at = match top.remove("type_at") {
        None => "/type".to_owned(),
        Some(spec) => pointer(&spec, "type_at").unwrap_or_else(|mut p| {
            problems.append(&mut p);
            String::new()
        }),
    };
    let drop_unknown = match top.remove("unknown_types") {
        None => true,
        Some(Value::String(s)) if s == "drop" => true,
        Some(Value::String(s)) if s == "reject" => false,
        Some(other) => {
            problems.push(format!(
                "unknown_types must be \"drop\" or \"reject\", got {other}"
            ));
            true
        }
    };
    let mut operations = Vec::new();
    match top.remove("events") {
        Some(Value::Object(events)) if !events.is_empty() => {
            for (event_type, ops) in &events {
                let at = format!("events.{event_type}");
                match ops {
                    Value::Array(ops) => {
                        let parsed: Vec<Operation> = ops
                            .iter()
                            .enumerate()
                            .filter_map(|(i, op)| {
                                parse_operation(op, &format!("{at}[{i}]"))
                                    .map_err(|mut p| problems.append(&mut p))
                                    .ok()
                            })
                            .collect();
                        operations.push((event_type.clone(), parsed));
                    }
                    other => problems.push(format!(
                        "{at}: must be a list of operations, got {}",
                        kind(other)
                    )),
                }
            }
        }
        Some(Value::Object(_)) | None => problems.push(format!(
            "config needs \"events\", mapping event types to operations, e.g. {EXAMPLE}"
        )),
        Some(other) => problems.push(format!(
            "events must be an object of event types to operations, got {}",
            kind(&other)
        )),
    }
    if problems.is_empty() {
        Ok(Config {
            type_at,
            drop_unknown,
            operations,
        })
    } else {
        Err(problems)
    }
}

fn parse_operation(spec: &Value, at: &str) -> Result<Operation, Vec<String>> {
    let Value::Object(op) = spec else {
        return Err(vec![format!(
            "{at}: an operation must be an object with \"resource\", \"id\" and \"set\", got {}",
            kind(spec)
        )]);
    };
    let mut problems = Vec::new();
    for key in op.keys() {
        if !matches!(key.as_str(), "resource" | "id" | "set" | "on_create") {
            problems.push(format!(
                "{at}: unknown key {key:?} (known: \"resource\", \"id\", \"set\", \"on_create\")"
            ));
        }
    }
    let resource = match op.get("resource") {
        Some(Value::String(r))
            if !r.is_empty()
                && r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            Some(r.clone())
        }
        Some(Value::String(r)) => {
            problems.push(format!(
                "{at}.resource: {r:?} must be letters, digits, '-' or '_' (it is a URL path segment)"
            ));
            None
        }
        Some(other) => {
            problems.push(format!(
                "{at}.resource: must be a string such as \"users\", got {}",
                kind(other)
            ));
            None
        }
        None => {
            problems.push(format!("{at}: needs \"resource\", such as \"users\""));
            None
        }
    };
    let id = match op.get("id") {
        Some(spec) => Source::parse(spec, &format!("{at}.id"))
            .map_err(|mut p| problems.append(&mut p))
            .ok(),
        None => {
            problems.push(format!("{at}: needs \"id\", such as \"/userId\""));
            None
        }
    };
    let set = match op.get("set") {
        Some(Value::Object(fields)) if fields.is_empty() => {
            problems.push(format!("{at}.set: must name at least one field"));
            None
        }
        Some(spec) => Mapping::parse(spec, &format!("{at}.set"))
            .map_err(|mut p| problems.append(&mut p))
            .ok(),
        None => {
            problems.push(format!("{at}: needs \"set\", the fields to write"));
            None
        }
    };
    let on_create = match op.get("on_create") {
        None => None,
        Some(spec) => Mapping::parse(spec, &format!("{at}.on_create"))
            .map_err(|mut p| problems.append(&mut p))
            .ok(),
    };
    match (resource, id, set) {
        (Some(resource), Some(id), Some(set)) if problems.is_empty() => Ok(Operation {
            resource,
            id,
            set,
            on_create,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use switchyard_guest::test_event;

    use super::*;

    /// The mapping of the mobility platform's events to the CRM contract.
    const MOBILITY: &str = r#"{
      "events": {
        "UserRegistered": [
          {"resource": "users", "id": "/userId",
           "set": {"Id": "/userId", "FirstName": {"path": "/payload/firstName", "default": null},
                   "LastName": "/payload/lastName", "Email": "/payload/email"},
           "on_create": {"LastTripType": {"value": null}, "LastTripId": {"value": null},
                         "LastTripDate": {"value": "0001-01-01T00:00:00Z"}}}
        ],
        "TripEnded": [
          {"resource": "trips", "id": "/payload/tripId",
           "set": {"EndDate": "/payload/endedAt", "Price": "/payload/price"}},
          {"resource": "users", "id": "/userId",
           "set": {"LastTripType": "/payload/tripType", "LastTripId": "/payload/tripId",
                   "LastTripDate": "/payload/endedAt"}}
        ],
        "Heartbeat": []
      }
    }"#;

    fn config(json: &str) -> Config {
        parse_config(json).unwrap()
    }

    fn event(value: &str) -> Event {
        test_event(Some(b"u-1"), Some(value.as_bytes()))
    }

    fn documents(outcome: Outcome) -> Vec<String> {
        match outcome {
            Outcome::Emit(outputs) => outputs
                .into_iter()
                .map(|o| {
                    assert_eq!(o.key.as_deref(), Some(&b"u-1"[..]), "key kept");
                    assert_eq!(o.target, None);
                    String::from_utf8(o.value.unwrap()).unwrap()
                })
                .collect(),
            other => panic!("expected an emit, got {other:?}"),
        }
    }

    fn reasons(outcome: Outcome) -> Vec<String> {
        match outcome {
            Outcome::Reject(reasons) => reasons,
            other => panic!("expected a reject, got {other:?}"),
        }
    }

    #[test]
    fn a_registration_becomes_a_user_upsert_with_creation_defaults() {
        let out = CrmMap::process(
            &config(MOBILITY),
            event(
                r#"{"type":"UserRegistered","userId":"u-1",
                    "payload":{"lastName":"Lovelace","email":"ada@example.com","phone":"+370"}}"#,
            ),
        );
        assert_eq!(
            documents(out),
            [concat!(
                r#"{"op":"upsert","resource":"users","id":"u-1","#,
                r#""set":{"Id":"u-1","FirstName":null,"LastName":"Lovelace","Email":"ada@example.com"},"#,
                r#""on_create":{"LastTripType":null,"LastTripId":null,"LastTripDate":"0001-01-01T00:00:00Z"}}"#
            )]
        );
    }

    #[test]
    fn a_trip_end_updates_the_trip_then_the_users_last_trip() {
        let out = CrmMap::process(
            &config(MOBILITY),
            event(
                r#"{"type":"TripEnded","userId":"u-1","payload":{"tripId":"t-9","tripType":"Taxi",
                    "endedAt":"2026-11-25T10:00:00Z","price":12.50}}"#,
            ),
        );
        assert_eq!(
            documents(out),
            [
                r#"{"op":"upsert","resource":"trips","id":"t-9","set":{"EndDate":"2026-11-25T10:00:00Z","Price":12.50},"on_create":{}}"#,
                r#"{"op":"upsert","resource":"users","id":"u-1","set":{"LastTripType":"Taxi","LastTripId":"t-9","LastTripDate":"2026-11-25T10:00:00Z"},"on_create":{}}"#,
            ]
        );
    }

    #[test]
    fn unknown_types_are_dropped_or_rejected_as_configured() {
        let e = r#"{"type":"PaymentCaptured","userId":"u-1"}"#;
        assert!(matches!(
            CrmMap::process(&config(MOBILITY), event(e)),
            Outcome::Drop
        ));
        let strict = MOBILITY.replacen('{', r#"{"unknown_types": "reject","#, 1);
        assert_eq!(
            reasons(CrmMap::process(&config(&strict), event(e))),
            ["event type \"PaymentCaptured\" has no CRM mapping"]
        );
        // A type mapped to no operations is dropped on purpose.
        assert!(matches!(
            CrmMap::process(&config(MOBILITY), event(r#"{"type":"Heartbeat"}"#)),
            Outcome::Drop
        ));
    }

    #[test]
    fn a_record_that_cannot_be_mapped_is_rejected_with_every_reason() {
        let out = CrmMap::process(
            &config(MOBILITY),
            event(r#"{"type":"TripEnded","userId":"","payload":{"tripId":7,"tripType":"Bus"}}"#),
        );
        assert_eq!(
            reasons(out),
            [
                "TripEnded -> trips.set: missing /payload/endedAt (needed for EndDate)",
                "TripEnded -> trips.set: missing /payload/price (needed for Price)",
                "TripEnded -> users.id: the id is an empty string",
                "TripEnded -> users.set: missing /payload/endedAt (needed for LastTripDate)",
            ]
        );
        assert_eq!(
            reasons(CrmMap::process(&config(MOBILITY), event(r#"{"kind":"x"}"#))),
            ["no event type: expected a string at /type"]
        );
        assert!(matches!(
            CrmMap::process(
                &config(MOBILITY),
                Event {
                    value: None,
                    ..event("")
                }
            ),
            Outcome::Drop
        ));
    }

    #[test]
    fn refuses_bad_configs_naming_every_problem() {
        for (config, expect) in [
            ("[]", vec!["config must be an object like"]),
            ("{}", vec!["config needs \"events\""]),
            (
                r#"{"events": {}, "typ": 1}"#,
                vec!["unknown config key \"typ\"", "config needs \"events\""],
            ),
            (
                r#"{"events": [], "unknown_types": "skip"}"#,
                vec![
                    "unknown_types must be \"drop\" or \"reject\", got \"skip\"",
                    "events must be an object",
                ],
            ),
            (
                r#"{"events": {"A": {}}, "type_at": "type"}"#,
                vec![
                    "type_at: \"type\" is not a JSON Pointer",
                    "events.A: must be a list of operations, got an object",
                ],
            ),
            (
                r#"{"events": {"A": [{"resource": "us ers", "set": {}, "extra": 1}, 3]}}"#,
                vec![
                    "events.A[0]: unknown key \"extra\"",
                    "events.A[0].resource: \"us ers\" must be letters, digits",
                    "events.A[0]: needs \"id\"",
                    "events.A[0].set: must name at least one field",
                    "events.A[1]: an operation must be an object",
                ],
            ),
            (
                r#"{"events": {"A": [{"resource": "users", "id": "userId", "set": {"X": 1}, "on_create": []}]}}"#,
                vec![
                    "events.A[0].id: \"userId\" is not a JSON Pointer",
                    "events.A[0].set.X: a source is",
                    "events.A[0].on_create: a mapping must be an object",
                ],
            ),
        ] {
            let problems = parse_config(config).unwrap_err();
            assert_eq!(problems.len(), expect.len(), "{config}: {problems:#?}");
            for (problem, expect) in problems.iter().zip(&expect) {
                assert!(
                    problem.starts_with(expect),
                    "{config}: {problem:?} should start with {expect:?}"
                );
            }
        }
    }
}
