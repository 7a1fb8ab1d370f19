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

use serde_json::Value;
use switchyard_guest::json::{config_object, map_object};
use switchyard_guest::{export_plugin, Event, Outcome, Plugin};

struct Uppercase;

impl Plugin for Uppercase {
    const NAME: &'static str = "uppercase";
    /// The field names to uppercase.
    type Config = Vec<String>;

    fn configure(config: &str) -> Result<Vec<String>, String> {
        parse_config(config)
    }

    fn process(fields: &Vec<String>, event: Event) -> Outcome {
        map_object(event, |object| {
            for name in fields {
                if let Some(Value::String(s)) = object.get_mut(name) {
                    *s = s.to_uppercase();
                }
            }
            Ok(())
        })
    }
}

export_plugin!(Uppercase);

fn parse_config(config: &str) -> Result<Vec<String>, String> {
    const EXAMPLE: &str = r#"{"fields": ["name"]}"#;
    let mut top = config_object(config, EXAMPLE)?;
    if let Some(other) = top.keys().find(|k| *k != "fields") {
        return Err(format!(
            "unknown config key {other:?} (the only key is \"fields\")"
        ));
    }
    let Some(Value::Array(names)) = top.remove("fields") else {
        return Err(format!(
            "config needs a \"fields\" array of field names, e.g. {EXAMPLE}"
        ));
    };
    names
        .into_iter()
        .map(|name| match name {
            Value::String(name) => Ok(name),
            other => Err(format!("\"fields\" must hold only strings, found {other}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: &str, value: &[u8]) -> Outcome {
        let fields = parse_config(config).unwrap();
        Uppercase::process(&fields, switchyard_guest::test_event(None, Some(value)))
    }

    fn rejection(config: &str, value: &[u8]) -> Vec<String> {
        match run(config, value) {
            Outcome::Reject(reasons) => reasons,
            other => panic!("expected a reject, got {other:?}"),
        }
    }

    #[test]
    fn uppercases_listed_string_fields_only() {
        let out = run(
            r#"{"fields": ["name", "age", "missing"]}"#,
            r#"{"name": "straße", "age": 30, "city": "oslo"}"#.as_bytes(),
        );
        let Outcome::Emit(outputs) = out else {
            panic!("expected an emit, got {out:?}")
        };
        assert_eq!(
            String::from_utf8(outputs[0].value.clone().unwrap()).unwrap(),
            r#"{"name":"STRASSE","age":30,"city":"oslo"}"#
        );
    }

    #[test]
    fn rejects_non_json_and_non_objects() {
        let reasons = rejection(r#"{"fields": []}"#, b"\xff");
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].starts_with("value is not valid JSON: "),
            "{reasons:?}"
        );
        assert_eq!(
            rejection(r#"{"fields": []}"#, b"\"text\""),
            ["value is not a JSON object: found a string"]
        );
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
            let err = switchyard_guest::init::<Uppercase>(config).unwrap_err();
            assert!(err.starts_with("uppercase: "), "{config}: {err}");
            assert!(err.contains(expect), "{config}: {err}");
        }
    }
}
