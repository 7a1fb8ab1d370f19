//! Field mappings: build a JSON object from an input record, declared as data
//! in a plugin's config rather than written as code per event type.
//!
//! A mapping is a JSON object whose keys are the output field names (kept in
//! order) and whose values say where each field comes from:
//!
//! | source                                | the field is                                        |
//! |---------------------------------------|-----------------------------------------------------|
//! | `"/payload/email"`                    | the input's value at that JSON Pointer (RFC 6901); the record is rejected if it is absent |
//! | `{"path": "/payload/to", "default": null}` | the value at the pointer, or `default` if absent |
//! | `{"value": "1.0"}`                    | that constant, any JSON value                       |
//! | `{"object": { ...a mapping... }}`     | a nested object, built the same way                 |
//!
//! ```json
//! {"Id": "/userId", "Email": "/payload/email", "To": {"path": "/payload/to", "default": null},
//!  "Source": {"value": "app"}, "Where": {"object": {"city": "/payload/city"}}}
//! ```
//!
//! Only the fields a mapping names reach the output, so a mapping is also an
//! allow-list: a field added to the input later does not leak through.

use serde_json::{Map, Value};

use crate::json::kind;
use crate::Event;

/// A parsed mapping: output field names, in order, with their sources.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    fields: Vec<(String, Source)>,
}

/// Where one output field comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The input's value at a JSON Pointer; required.
    Pointer(String),
    /// The input's value at a JSON Pointer, or this default if absent.
    PointerOr(String, Value),
    /// A constant.
    Value(Value),
    /// A nested object.
    Object(Mapping),
}

impl Mapping {
    /// Parse `spec`, naming every problem with its place in the config:
    /// `at` is where `spec` sits (e.g. `types.TripEnded`), so a problem reads
    /// `types.TripEnded.Email: ...`.
    pub fn parse(spec: &Value, at: &str) -> Result<Mapping, Vec<String>> {
        let Value::Object(entries) = spec else {
            return Err(vec![format!(
                "{at}: a mapping must be an object of output field names to sources, got {}",
                kind(spec)
            )]);
        };
        let mut fields = Vec::with_capacity(entries.len());
        let mut problems = Vec::new();
        for (name, source) in entries {
            match Source::parse(source, &format!("{at}.{name}")) {
                Ok(source) => fields.push((name.clone(), source)),
                Err(mut more) => problems.append(&mut more),
            }
        }
        if problems.is_empty() {
            Ok(Mapping { fields })
        } else {
            Err(problems)
        }
    }

    /// The output object for `input`, or every field that could not be made,
    /// as reasons for rejecting the record. `input` is not quoted in them.
    pub fn apply(&self, input: &Value) -> Result<Map<String, Value>, Vec<String>> {
        let mut out = Map::with_capacity(self.fields.len());
        let mut missing = Vec::new();
        self.apply_into(input, "", &mut out, &mut missing);
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(missing)
        }
    }

    fn apply_into(
        &self,
        input: &Value,
        prefix: &str,
        out: &mut Map<String, Value>,
        missing: &mut Vec<String>,
    ) {
        for (name, source) in &self.fields {
            if let Some(value) = source.resolve_into(input, &format!("{prefix}{name}"), missing) {
                out.insert(name.clone(), value);
            }
        }
    }
}

impl Source {
    /// The value this source gives for `input`, or why there is none; `name`
    /// is the output field it is for, named in the reasons.
    pub fn resolve(&self, input: &Value, name: &str) -> Result<Value, Vec<String>> {
        let mut missing = Vec::new();
        match self.resolve_into(input, name, &mut missing) {
            Some(value) if missing.is_empty() => Ok(value),
            _ => Err(missing),
        }
    }

    fn resolve_into(&self, input: &Value, name: &str, missing: &mut Vec<String>) -> Option<Value> {
        match self {
            Source::Pointer(pointer) => {
                let value = input.pointer(pointer).cloned();
                if value.is_none() {
                    missing.push(format!("missing {pointer} (needed for {name})"));
                }
                value
            }
            Source::PointerOr(pointer, default) => {
                Some(input.pointer(pointer).unwrap_or(default).clone())
            }
            Source::Value(value) => Some(value.clone()),
            Source::Object(nested) => {
                let mut object = Map::with_capacity(nested.fields.len());
                nested.apply_into(input, &format!("{name}."), &mut object, missing);
                Some(Value::Object(object))
            }
        }
    }

    /// Parse one source; `at` names its place in the config.
    pub fn parse(spec: &Value, at: &str) -> Result<Source, Vec<String>> {
        const FORMS: &str = r#"a JSON Pointer such as "/payload/email", {"path": "/p", "default": null}, {"value": ...} or {"object": {...}}"#;
        match spec {
            Value::String(pointer) => parse_pointer(pointer, at).map(Source::Pointer),
            Value::Object(form) => {
                let keys: Vec<&str> = form.keys().map(String::as_str).collect();
                match keys.as_slice() {
                    ["value"] => Ok(Source::Value(form["value"].clone())),
                    ["object"] => Mapping::parse(&form["object"], at).map(Source::Object),
                    ["path", "default"] | ["default", "path"] => match &form["path"] {
                        Value::String(pointer) => {
                            let pointer = parse_pointer(pointer, at)?;
                            Ok(Source::PointerOr(pointer, form["default"].clone()))
                        }
                        other => Err(vec![format!(
                            "{at}: \"path\" must be a JSON Pointer string, got {}",
                            kind(other)
                        )]),
                    },
                    ["path"] => Err(vec![format!(
                        "{at}: {{\"path\": ...}} needs a \"default\"; write the pointer alone if the field is required"
                    )]),
                    _ => Err(vec![format!(
                        "{at}: unknown source with keys {keys:?}; a source is {FORMS}"
                    )]),
                }
            }
            other => Err(vec![format!(
                "{at}: a source is {FORMS}, got {}",
                kind(other)
            )]),
        }
    }
}

fn parse_pointer(pointer: &str, at: &str) -> Result<String, Vec<String>> {
    if pointer.starts_with('/') {
        Ok(pointer.to_owned())
    } else {
        Err(vec![format!(
            "{at}: {pointer:?} is not a JSON Pointer (it must start with \"/\", e.g. \"/payload/email\"); write a constant as {{\"value\": {pointer:?}}}"
        )])
    }
}

/// A record as a typed event: its value as a JSON object and its event
/// type, the string at the pointer `type_at`. `Ok(None)` for a tombstone;
/// `Err` with the reason to reject a record that is not a JSON object or
/// has no type.
pub fn typed_event(event: &Event, type_at: &str) -> Result<Option<(Value, String)>, String> {
    let Some(object) = crate::json::object(event)? else {
        return Ok(None);
    };
    let input = Value::Object(object);
    let event_type = input
        .pointer(type_at)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no event type: expected a string at {type_at}"))?
        .to_owned();
    Ok(Some((input, event_type)))
}

/// A JSON Pointer from a config, checked to start with `/`; `at` names its
/// place in the config. For single values such as "the event type is at".
pub fn pointer(spec: &Value, at: &str) -> Result<String, Vec<String>> {
    match spec {
        Value::String(pointer) => parse_pointer(pointer, at),
        other => Err(vec![format!(
            "{at}: must be a JSON Pointer string such as \"/type\", got {}",
            kind(other)
        )]),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mapping(spec: Value) -> Mapping {
        Mapping::parse(&spec, "m").unwrap()
    }

    #[test]
    fn builds_the_output_in_mapping_order_from_every_source_kind() {
        let m = mapping(json!({
            "Id": "/userId",
            "To": {"path": "/payload/to", "default": null},
            "From": {"default": "?", "path": "/payload/from"},
            "Kind": {"value": {"v": 1}},
            "Where": {"object": {"city": "/payload/city", "a~b": "/weird~1key/x~0y"}},
        }));
        let input = json!({
            "userId": "u-1",
            "payload": {"from": "A", "city": "Vilnius", "email": "secret@example.com"},
            "weird/key": {"x~y": 3},
        });
        let out = m.apply(&input).unwrap();
        assert_eq!(
            Value::Object(out).to_string(),
            r#"{"Id":"u-1","To":null,"From":"A","Kind":{"v":1},"Where":{"city":"Vilnius","a~b":3}}"#
        );
    }

    #[test]
    fn names_every_missing_required_field_with_its_output_path() {
        let m = mapping(json!({
            "Id": "/userId",
            "Email": "/payload/email",
            "Trip": {"object": {"Id": "/payload/tripId"}},
        }));
        let reasons = m.apply(&json!({"payload": {}})).unwrap_err();
        assert_eq!(
            reasons,
            [
                "missing /userId (needed for Id)",
                "missing /payload/email (needed for Email)",
                "missing /payload/tripId (needed for Trip.Id)",
            ]
        );
    }

    #[test]
    fn refuses_bad_specs_naming_the_place_of_each_problem() {
        let problems = Mapping::parse(
            &json!({
                "a": "payload/email",
                "b": 3,
                "c": {"path": "/x"},
                "d": {"path": 1, "default": 0},
                "e": {"value": 1, "extra": 2},
                "f": {"object": []},
            }),
            "types.X",
        )
        .unwrap_err();
        let expect = [
            "types.X.a: \"payload/email\" is not a JSON Pointer",
            "types.X.b: a source is",
            "types.X.c: {\"path\": ...} needs a \"default\"",
            "types.X.d: \"path\" must be a JSON Pointer string, got a number",
            "types.X.e: unknown source with keys [\"value\", \"extra\"]",
            "types.X.f: a mapping must be an object",
        ];
        assert_eq!(problems.len(), expect.len(), "{problems:#?}");
        for (problem, expect) in problems.iter().zip(expect) {
            assert!(
                problem.starts_with(expect),
                "{problem:?} should start with {expect:?}"
            );
        }
        assert!(Mapping::parse(&json!([]), "top").unwrap_err()[0].starts_with("top: a mapping"));
    }
}
