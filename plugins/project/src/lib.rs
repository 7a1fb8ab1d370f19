//! `project`: projects internal events onto a public, versioned schema.
//! Only what the mapping names reaches the output, so personal data that the
//! mapping does not name cannot leak, including fields added to internal
//! events later.
//!
//! Config (the route's `config` table for this plugin, as JSON); this one
//! writes CloudEvents 1.0 JSON:
//!
//! ```json
//! {
//!   "type_at": "/type",
//!   "key": "/userId",
//!   "envelope": {
//!     "specversion": {"value": "1.0"},
//!     "id": "/eventId",
//!     "source": {"value": "urn:mobility:platform"},
//!     "time": "/occurredAt",
//!     "subject": "/userId",
//!     "dataschema": {"value": "https://example.com/schemas/mobility-public/v1"}
//!   },
//!   "types": {
//!     "TripEnded": {
//!       "type": {"value": "mobility.trip.ended.v1"},
//!       "data": {"object": {"tripId": "/payload/tripId", "mode": "/payload/tripType",
//!                           "endedAt": "/payload/endedAt"}}
//!     }
//!   }
//! }
//! ```
//!
//! - `type_at` (default `"/type"`): JSON Pointer to the event's type, a string.
//! - `types` (required, non-empty): the event types that have a public form,
//!   each with the field mapping that builds it. Events of any other type
//!   are dropped: the public stream carries what is published on purpose.
//! - `envelope` (optional): a field mapping for the fields every public event
//!   has; they come first, and a type's mapping may override one.
//! - `key` (optional): a source for the output's key, the subject the event
//!   is about (a string, or a number as text), so that a consumer reads each
//!   subject's events in order. Without it, the record's key is kept.
//!
//! A field mapping is an object of output field names to sources: a JSON
//! Pointer into the event (`"/payload/tripId"`; the event is rejected if it
//! is absent), `{"path": "/p", "default": v}`, a constant `{"value": v}`, or
//! a nested object `{"object": {...}}`.
//!
//! Per record, the value a JSON object:
//! - its type is in `types`: one output, the envelope and the type's fields,
//!   keyed by `key`, with no headers (internal headers are not for the
//!   public);
//! - its type is not in `types`: dropped;
//! - no string at `type_at`, or a required source absent: rejected with
//!   every reason;
//! - not JSON or not an object: rejected; a tombstone: dropped.

use serde_json::{Map, Value};
use switchyard_guest::json::{config_object, emit_json, kind};
use switchyard_guest::mapping::{pointer, typed_event, Mapping, Source};
use switchyard_guest::{export_plugin, Event, Outcome, Plugin};

const EXAMPLE: &str = r#"{"types": {"TripEnded": {"type": {"value": "trip.ended.v1"}, "tripId": "/payload/tripId"}}}"#;

struct Project;

#[derive(Debug)]
struct Config {
    type_at: String,
    key: Option<Source>,
    envelope: Option<Mapping>,
    types: Vec<(String, Mapping)>,
}

impl Plugin for Project {
    const NAME: &'static str = "project";
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
        // Linear: a public schema has a handful of event types.
        let Some((_, mapping)) = config.types.iter().find(|(t, _)| t == event_type) else {
            return Outcome::Drop;
        };
        let mut reasons = Vec::new();
        let mut output = Map::new();
        for mapping in config.envelope.iter().chain([mapping]) {
            match mapping.apply(&input) {
                Ok(fields) => output.extend(fields),
                Err(mut missing) => reasons.append(&mut missing),
            }
        }
        let key = match &config.key {
            None => event.key,
            Some(source) => match key_of(source, &input) {
                Ok(key) => Some(key.into_bytes()),
                Err(mut why) => {
                    reasons.append(&mut why);
                    None
                }
            },
        };
        if !reasons.is_empty() {
            return Outcome::Reject(
                reasons
                    .into_iter()
                    .map(|r| format!("{event_type}: {r}"))
                    .collect(),
            );
        }
        emit_json(key, &Value::Object(output), Vec::new())
    }
}

export_plugin!(Project);

/// The key a source gives for `input`: a non-empty string, or a number as
/// text.
fn key_of(source: &Source, input: &Value) -> Result<String, Vec<String>> {
    match source.resolve(input, "the key")? {
        Value::String(s) if !s.is_empty() => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::String(_) => Err(vec!["the key is an empty string".into()]),
        other => Err(vec![format!(
            "the key must be a non-empty string or a number, got {}",
            kind(&other)
        )]),
    }
}

fn parse_config(config: &str) -> Result<Config, Vec<String>> {
    let mut top = config_object(config, EXAMPLE).map_err(|e| vec![e])?;
    let mut problems = Vec::new();
    for key in top.keys() {
        if !matches!(key.as_str(), "type_at" | "key" | "envelope" | "types") {
            problems.push(format!(
                "unknown config key {key:?} (known: \"type_at\", \"key\", \"envelope\", \"types\")"
            ));
        }
    }
    let type_at = match top.remove("type_at") {
        None => Some("/type".to_owned()),
        Some(spec) => collect(&mut problems, pointer(&spec, "type_at")),
    };
    let key = top
        .remove("key")
        .and_then(|spec| collect(&mut problems, Source::parse(&spec, "key")));
    let envelope = top
        .remove("envelope")
        .and_then(|spec| collect(&mut problems, Mapping::parse(&spec, "envelope")));
    let mut types = Vec::new();
    match top.remove("types") {
        Some(Value::Object(specs)) if !specs.is_empty() => {
            for (event_type, spec) in &specs {
                let at = format!("types.{event_type}");
                if let Some(mapping) = collect(&mut problems, Mapping::parse(spec, &at)) {
                    types.push((event_type.clone(), mapping));
                }
            }
        }
        Some(Value::Object(_)) | None => problems.push(format!(
            "config needs \"types\", mapping each published event type to its public form, e.g. {EXAMPLE}"
        )),
        Some(other) => problems.push(format!(
            "types must be an object of event types to mappings, got {}",
            kind(&other)
        )),
    }
    match type_at {
        Some(type_at) if problems.is_empty() => Ok(Config {
            type_at,
            key,
            envelope,
            types,
        }),
        _ => Err(problems),
    }
}

/// `result`'s value, its problems moved to `problems`.
fn collect<T>(problems: &mut Vec<String>, result: Result<T, Vec<String>>) -> Option<T> {
    result.map_err(|mut p| problems.append(&mut p)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC_V1: &str = r#"{
      "key": "/userId",
      "envelope": {
        "specversion": {"value": "1.0"},
        "id": "/eventId",
        "source": {"value": "urn:mobility:platform"},
        "time": "/occurredAt",
        "subject": "/userId"
      },
      "types": {
        "TripEnded": {
          "type": {"value": "mobility.trip.ended.v1"},
          "data": {"object": {"tripId": "/payload/tripId", "mode": "/payload/tripType",
                              "to": {"path": "/payload/to", "default": null}}}
        },
        "UserRegistered": {"type": {"value": "mobility.user.registered.v1"}, "source": {"value": "urn:mobility:accounts"}}
      }
    }"#;

    fn config(json: &str) -> Config {
        parse_config(json).unwrap()
    }

    fn event(value: &str) -> Event {
        Event {
            headers: vec![switchyard_guest::Header {
                key: "internal-trace".into(),
                value: b"x".to_vec(),
            }],
            ..switchyard_guest::test_event(Some(b"internal-key"), Some(value.as_bytes()))
        }
    }

    #[test]
    fn projects_only_the_mapped_fields_keyed_by_subject_without_headers() {
        let out = Project::process(
            &config(PUBLIC_V1),
            event(
                r#"{"eventId":"e-1","type":"TripEnded","occurredAt":"2026-11-25T10:00:00Z","userId":"hmac:ab12",
                    "payload":{"tripId":"t-9","tripType":"Bus","email":"ada@example.com","from":"Home"}}"#,
            ),
        );
        let Outcome::Emit(outputs) = out else {
            panic!("expected an emit, got {out:?}")
        };
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].key.as_deref(), Some(&b"hmac:ab12"[..]));
        assert!(outputs[0].headers.is_empty());
        assert_eq!(
            String::from_utf8(outputs[0].value.clone().unwrap()).unwrap(),
            concat!(
                r#"{"specversion":"1.0","id":"e-1","source":"urn:mobility:platform","#,
                r#""time":"2026-11-25T10:00:00Z","subject":"hmac:ab12","type":"mobility.trip.ended.v1","#,
                r#""data":{"tripId":"t-9","mode":"Bus","to":null}}"#
            )
        );
    }

    #[test]
    fn a_types_mapping_overrides_an_envelope_field_in_place() {
        let out = Project::process(
            &config(PUBLIC_V1),
            event(r#"{"eventId":"e-2","type":"UserRegistered","occurredAt":"t","userId":"s"}"#),
        );
        let Outcome::Emit(outputs) = out else {
            panic!("expected an emit, got {out:?}")
        };
        assert_eq!(
            String::from_utf8(outputs[0].value.clone().unwrap()).unwrap(),
            r#"{"specversion":"1.0","id":"e-2","source":"urn:mobility:accounts","time":"t","subject":"s","type":"mobility.user.registered.v1"}"#
        );
    }

    #[test]
    fn unknown_types_and_tombstones_are_dropped() {
        let c = config(PUBLIC_V1);
        assert!(matches!(
            Project::process(&c, event(r#"{"type":"PaymentCaptured","userId":"s"}"#)),
            Outcome::Drop
        ));
        assert!(matches!(
            Project::process(
                &c,
                Event {
                    value: None,
                    ..event("")
                }
            ),
            Outcome::Drop
        ));
    }

    #[test]
    fn without_a_key_source_the_records_key_is_kept() {
        let c = config(r#"{"types": {"A": {"x": "/x"}}}"#);
        let Outcome::Emit(outputs) = Project::process(&c, event(r#"{"type":"A","x":1}"#)) else {
            panic!("expected an emit")
        };
        assert_eq!(outputs[0].key.as_deref(), Some(&b"internal-key"[..]));
    }

    #[test]
    fn rejects_an_event_missing_what_its_public_form_needs_with_every_reason() {
        let out = Project::process(
            &config(PUBLIC_V1),
            event(r#"{"type":"TripEnded","occurredAt":"t","userId":{"id":1},"payload":{}}"#),
        );
        let Outcome::Reject(reasons) = out else {
            panic!("expected a reject, got {out:?}")
        };
        assert_eq!(
            reasons,
            [
                "TripEnded: missing /eventId (needed for id)",
                "TripEnded: missing /payload/tripId (needed for data.tripId)",
                "TripEnded: missing /payload/tripType (needed for data.mode)",
                "TripEnded: the key must be a non-empty string or a number, got an object",
            ]
        );
        let out = Project::process(&config(PUBLIC_V1), event(r#"{"type":3}"#));
        assert!(
            matches!(&out, Outcome::Reject(r) if r == &["no event type: expected a string at /type"]),
            "{out:?}"
        );
    }

    #[test]
    fn refuses_bad_configs_naming_every_problem() {
        for (config, expect) in [
            ("1", vec!["config must be an object like"]),
            ("{}", vec!["config needs \"types\""]),
            (
                r#"{"types": {}, "keys": "/k", "type_at": 1}"#,
                vec![
                    "unknown config key \"keys\"",
                    "type_at: must be a JSON Pointer string",
                    "config needs \"types\"",
                ],
            ),
            (
                r#"{"types": {"A": {"x": "x"}}, "key": {"path": "/k"}, "envelope": []}"#,
                vec![
                    "key: {\"path\": ...} needs a \"default\"",
                    "envelope: a mapping must be an object",
                    "types.A.x: \"x\" is not a JSON Pointer",
                ],
            ),
            (
                r#"{"types": [1]}"#,
                vec!["types must be an object of event types to mappings, got an array"],
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
