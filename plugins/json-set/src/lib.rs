//! `json-set`: sets top-level fields on records whose value is a JSON object.
//!
//! Config (the route's `config` table for this plugin, as JSON):
//!
//! ```json
//! {"set": {"status": "seen", "version": 2, "meta": {"by": "switchyard"}}}
//! ```
//!
//! `set` maps field names to any JSON value. Each field is written onto the
//! record's top-level object, replacing a field of the same name (which keeps
//! its position; new fields go at the end). `init` refuses a config that is
//! not an object with a `set` object, or that has any other key.
//!
//! Per record:
//! - value is a JSON object: emitted with the fields set, same key and
//!   headers, to the default target;
//! - value is not valid JSON, or valid JSON but not an object: `reject`, with
//!   the reason;
//! - tombstone (no value): passed through unchanged.

wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

use std::cell::RefCell;

use exports::switchyard::plugin::transform::Guest;
use serde_json::{Map, Value};
use switchyard::plugin::types::{Error, Event, Outcome, Output};

/// The fields to set, once `init` has accepted a config.
type Fields = Map<String, Value>;

thread_local! {
    static CONFIG: RefCell<Option<Fields>> = const { RefCell::new(None) };
}

struct JsonSet;

impl Guest for JsonSet {
    fn init(config: String) -> Result<(), String> {
        let fields = parse_config(&config)?;
        CONFIG.with(|c| *c.borrow_mut() = Some(fields));
        Ok(())
    }

    fn process(batch: Vec<Event>) -> Vec<Outcome> {
        CONFIG.with(|c| match &*c.borrow() {
            Some(fields) => batch.into_iter().map(|e| process_one(e, fields)).collect(),
            None => batch
                .iter()
                .map(|_| Outcome::Fail(Error::Fatal("json-set: process called before init".into())))
                .collect(),
        })
    }
}

export!(JsonSet);

fn parse_config(config: &str) -> Result<Fields, String> {
    const EXAMPLE: &str = r#"{"set": {"status": "seen"}}"#;
    let value: Value = serde_json::from_str(config)
        .map_err(|e| format!("json-set: config is not valid JSON: {e}"))?;
    let Value::Object(mut top) = value else {
        return Err(format!(
            "json-set: config must be an object like {EXAMPLE}, got {}",
            kind(&value)
        ));
    };
    if let Some(other) = top.keys().find(|k| *k != "set") {
        return Err(format!(
            "json-set: unknown config key {other:?} (the only key is \"set\")"
        ));
    }
    match top.remove("set") {
        Some(Value::Object(fields)) => Ok(fields),
        Some(other) => Err(format!(
            "json-set: config \"set\" must be an object mapping field names to values, got {}",
            kind(&other)
        )),
        None => Err(format!(
            "json-set: config needs a \"set\" object mapping field names to values, e.g. {EXAMPLE}"
        )),
    }
}

fn process_one(event: Event, fields: &Fields) -> Outcome {
    let Some(value) = &event.value else {
        return emit(event.key, None, event.headers);
    };
    match set_fields(value, fields) {
        Ok(value) => emit(event.key, Some(value), event.headers),
        Err(reason) => Outcome::Reject(vec![reason]),
    }
}

/// `value` with `fields` set, or why the value is not a JSON object.
fn set_fields(value: &[u8], fields: &Fields) -> Result<Vec<u8>, String> {
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
    for (name, v) in fields {
        object.insert(name.clone(), v.clone());
    }
    serde_json::to_vec(&object).map_err(|e| format!("could not encode the result as JSON: {e}"))
}

fn emit(
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<switchyard::plugin::types::Header>,
) -> Outcome {
    Outcome::Emit(vec![Output {
        target: None,
        key,
        value,
        headers,
    }])
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

    fn fields(json: &str) -> Fields {
        parse_config(json).unwrap()
    }

    #[test]
    fn sets_and_replaces_fields_keeping_order_and_numbers() {
        let f = fields(r#"{"set": {"status": "seen", "n": {"a": [1]}}}"#);
        let out = set_fields(
            br#"{"id": 12345678901234567890123, "status": "new", "x": 1.10}"#,
            &f,
        );
        assert_eq!(
            String::from_utf8(out.unwrap()).unwrap(),
            r#"{"id":12345678901234567890123,"status":"seen","x":1.10,"n":{"a":[1]}}"#
        );
    }

    #[test]
    fn rejects_non_json_and_non_objects() {
        let f = fields(r#"{"set": {}}"#);
        let err = set_fields(b"{nope", &f).unwrap_err();
        assert!(err.starts_with("value is not valid JSON: "), "{err}");
        let err = set_fields(b"[1, 2]", &f).unwrap_err();
        assert_eq!(err, "value is not a JSON object: found an array");
    }

    #[test]
    fn refuses_bad_configs() {
        for (config, expect) in [
            ("{", "not valid JSON"),
            ("[]", "must be an object"),
            ("{}", "needs a \"set\" object"),
            (r#"{"set": [1]}"#, "got an array"),
            (r#"{"set": {}, "sett": {}}"#, "unknown config key \"sett\""),
        ] {
            let err = parse_config(config).unwrap_err();
            assert!(err.contains(expect), "{config}: {err}");
        }
    }
}
