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

use serde_json::{Map, Value};
use switchyard_guest::json::{config_object, kind, map_object};
use switchyard_guest::{export_plugin, Event, Outcome, Plugin};

/// The fields to set, once `init` has accepted a config.
type Fields = Map<String, Value>;

struct JsonSet;

impl Plugin for JsonSet {
    const NAME: &'static str = "json-set";
    type Config = Fields;

    fn configure(config: &str) -> Result<Fields, String> {
        parse_config(config)
    }

    fn process(fields: &Fields, event: Event) -> Outcome {
        map_object(event, |object| {
            for (name, value) in fields {
                object.insert(name.clone(), value.clone());
            }
            Ok(())
        })
    }
}

export_plugin!(JsonSet);

fn parse_config(config: &str) -> Result<Fields, String> {
    const EXAMPLE: &str = r#"{"set": {"status": "seen"}}"#;
    let mut top = config_object(config, EXAMPLE)?;
    if let Some(other) = top.keys().find(|k| *k != "set") {
        return Err(format!(
            "unknown config key {other:?} (the only key is \"set\")"
        ));
    }
    match top.remove("set") {
        Some(Value::Object(fields)) => Ok(fields),
        Some(other) => Err(format!(
            "config \"set\" must be an object mapping field names to values, got {}",
            kind(&other)
        )),
        None => Err(format!(
            "config needs a \"set\" object mapping field names to values, e.g. {EXAMPLE}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: &str, value: &[u8]) -> Outcome {
        let fields = parse_config(config).unwrap();
        JsonSet::process(&fields, switchyard_guest::test_event(None, Some(value)))
    }

    #[test]
    fn sets_and_replaces_fields_keeping_order_and_numbers() {
        let out = run(
            r#"{"set": {"status": "seen", "n": {"a": [1]}}}"#,
            br#"{"id": 12345678901234567890123, "status": "new", "x": 1.10}"#,
        );
        let Outcome::Emit(outputs) = out else {
            panic!("expected an emit, got {out:?}")
        };
        assert_eq!(
            String::from_utf8(outputs[0].value.clone().unwrap()).unwrap(),
            r#"{"id":12345678901234567890123,"status":"seen","x":1.10,"n":{"a":[1]}}"#
        );
    }

    #[test]
    fn rejects_non_objects() {
        let out = run(r#"{"set": {}}"#, b"[1, 2]");
        let Outcome::Reject(reasons) = out else {
            panic!("expected a reject, got {out:?}")
        };
        assert_eq!(reasons, ["value is not a JSON object: found an array"]);
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
