//! `uppercase`: uppercases top-level string fields of JSON object records.
//!
//! Config (the route's `config` table for this plugin, as JSON):
//!
//! ```json
//! {"fields": ["name", "country"]}
//! ```
//!
//! `fields` lists top-level field names. A listed field whose value is a
//! string is uppercased (Unicode-aware: "straße" becomes "STRASSE"); a
//! missing field, or one holding anything but a string, is left as it is.
//! `init` refuses a config that is not an object with a `fields` array of
//! strings, or that has any other key.
//!
//! Per record:
//! - value is a JSON object: emitted with those fields uppercased, same key
//!   and headers, to the default target;
//! - value is not valid JSON, or valid JSON but not an object: `reject`, with
//!   the reason;
//! - tombstone (no value): passed through unchanged.

wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

use std::cell::RefCell;

use exports::switchyard::plugin::transform::Guest;
use serde_json::Value;
use switchyard::plugin::types::{Error, Event, Outcome, Output};

thread_local! {
    /// The field names to uppercase, once `init` has accepted a config.
    static FIELDS: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

struct Uppercase;

impl Guest for Uppercase {
    fn init(config: String) -> Result<(), String> {
        let fields = parse_config(&config)?;
        FIELDS.with(|f| *f.borrow_mut() = Some(fields));
        Ok(())
    }

    fn process(batch: Vec<Event>) -> Vec<Outcome> {
        FIELDS.with(|f| match &*f.borrow() {
            Some(fields) => batch.into_iter().map(|e| process_one(e, fields)).collect(),
            None => batch
                .iter()
                .map(|_| {
                    Outcome::Fail(Error::Fatal("uppercase: process called before init".into()))
                })
                .collect(),
        })
    }
}

export!(Uppercase);

fn parse_config(config: &str) -> Result<Vec<String>, String> {
    const EXAMPLE: &str = r#"{"fields": ["name"]}"#;
    let value: Value = serde_json::from_str(config)
        .map_err(|e| format!("uppercase: config is not valid JSON: {e}"))?;
    let Value::Object(mut top) = value else {
        return Err(format!(
            "uppercase: config must be an object like {EXAMPLE}"
        ));
    };
    if let Some(other) = top.keys().find(|k| *k != "fields") {
        return Err(format!(
            "uppercase: unknown config key {other:?} (the only key is \"fields\")"
        ));
    }
    let Some(Value::Array(names)) = top.remove("fields") else {
        return Err(format!(
            "uppercase: config needs a \"fields\" array of field names, e.g. {EXAMPLE}"
        ));
    };
    names
        .into_iter()
        .map(|name| match name {
            Value::String(name) => Ok(name),
            other => Err(format!(
                "uppercase: \"fields\" must hold only strings, found {other}"
            )),
        })
        .collect()
}

fn process_one(event: Event, fields: &[String]) -> Outcome {
    let value = match &event.value {
        None => None,
        Some(value) => match uppercase_fields(value, fields) {
            Ok(value) => Some(value),
            Err(reason) => return Outcome::Reject(vec![reason]),
        },
    };
    Outcome::Emit(vec![Output {
        target: None,
        key: event.key,
        value,
        headers: event.headers,
    }])
}

/// `value` with the listed string fields uppercased, or why the value is not
/// a JSON object.
fn uppercase_fields(value: &[u8], fields: &[String]) -> Result<Vec<u8>, String> {
    let mut object = match serde_json::from_slice(value) {
        Ok(Value::Object(object)) => object,
        Ok(other) => {
            return Err(format!(
                "value is not a JSON object: found {}",
                kind(&other)
            ))
        }
        Err(e) => return Err(format!("value is not valid JSON: {e}")),
    };
    for name in fields {
        if let Some(Value::String(s)) = object.get_mut(name) {
            *s = s.to_uppercase();
        }
    }
    serde_json::to_vec(&object).map_err(|e| format!("could not encode the result as JSON: {e}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
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

    #[test]
    fn uppercases_listed_string_fields_only() {
        let fields = parse_config(r#"{"fields": ["name", "age", "missing"]}"#).unwrap();
        let out = uppercase_fields(
            r#"{"name": "straße", "age": 30, "city": "oslo"}"#.as_bytes(),
            &fields,
        );
        assert_eq!(
            String::from_utf8(out.unwrap()).unwrap(),
            r#"{"name":"STRASSE","age":30,"city":"oslo"}"#
        );
    }

    #[test]
    fn rejects_non_json_and_non_objects() {
        let err = uppercase_fields(b"\xff", &[]).unwrap_err();
        assert!(err.starts_with("value is not valid JSON: "), "{err}");
        let err = uppercase_fields(b"\"text\"", &[]).unwrap_err();
        assert_eq!(err, "value is not a JSON object: found a string");
    }

    #[test]
    fn refuses_bad_configs() {
        for (config, expect) in [
            ("nope", "not valid JSON"),
            ("[\"name\"]", "must be an object"),
            ("{}", "needs a \"fields\" array"),
            (r#"{"fields": "name"}"#, "needs a \"fields\" array"),
            (r#"{"fields": ["a", 1]}"#, "found 1"),
            (
                r#"{"fields": [], "extra": 1}"#,
                "unknown config key \"extra\"",
            ),
        ] {
            let err = parse_config(config).unwrap_err();
            assert!(err.contains(expect), "{config}: {err}");
        }
    }
}
