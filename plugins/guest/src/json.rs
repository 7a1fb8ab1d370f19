//! JSON in, JSON out: the chores of plugins whose records are JSON objects.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::{Error, Event, Header, Outcome, Output};

/// A record's value as a JSON object: `Ok(None)` for a tombstone (no value),
/// `Err` with a reason (that never quotes the value, which may be personal
/// data) when the value is not JSON or not an object.
pub fn object(event: &Event) -> Result<Option<Map<String, Value>>, String> {
    let Some(value) = &event.value else {
        return Ok(None);
    };
    match serde_json::from_slice(value) {
        Ok(Value::Object(object)) => Ok(Some(object)),
        Ok(other) => Err(format!(
            "value is not a JSON object: found {}",
            kind(&other)
        )),
        Err(e) => Err(format!("value is not valid JSON: {e}")),
    }
}

/// The usual shape of a one-in, one-out JSON plugin: the record's object is
/// changed in place by `change` and emitted with the same key and headers.
///
/// A tombstone passes through unchanged; a value that is not a JSON object is
/// rejected with the reason; an `Err` from `change` rejects the record with
/// that reason.
pub fn map_object(
    event: Event,
    change: impl FnOnce(&mut Map<String, Value>) -> Result<(), Vec<String>>,
) -> Outcome {
    let mut object = match object(&event) {
        Ok(Some(object)) => object,
        Ok(None) => return emit(event.key, None, event.headers),
        Err(reason) => return Outcome::Reject(vec![reason]),
    };
    if let Err(reasons) = change(&mut object) {
        return Outcome::Reject(reasons);
    }
    emit_json(event.key, &Value::Object(object), event.headers)
}

/// One output of `value`, unchanged, to the route's sink.
pub fn emit(key: Option<Vec<u8>>, value: Option<Vec<u8>>, headers: Vec<Header>) -> Outcome {
    Outcome::Emit(vec![Output {
        target: None,
        key,
        value,
        headers,
    }])
}

/// One output of `value` as compact JSON, to the route's sink.
pub fn emit_json(key: Option<Vec<u8>>, value: &Value, headers: Vec<Header>) -> Outcome {
    match serde_json::to_vec(value) {
        Ok(bytes) => emit(key, Some(bytes), headers),
        Err(e) => Outcome::Fail(Error::Fatal(format!(
            "could not encode the result as JSON: {e}"
        ))),
    }
}

/// The route's config for a plugin, parsed as a JSON object, or a message
/// that shows the expected shape with `example`.
pub fn config_object(config: &str, example: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(config) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(format!(
            "config must be an object like {example}, got {}",
            kind(&other)
        )),
        Err(e) => Err(format!("config is not valid JSON: {e}")),
    }
}

/// What kind of JSON value `value` is, for error messages: "a string",
/// "an array", "null".
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `name` as one reference token of a JSON Pointer (RFC 6901): `~` written
/// as `~0` and `/` as `~1`, so `a/b` is the token of `/a~1b`.
pub fn pointer_token(name: &str) -> Cow<'_, str> {
    if name.contains(['~', '/']) {
        Cow::Owned(name.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(value: Option<&[u8]>) -> Event {
        Event {
            headers: vec![Header {
                key: "h".into(),
                value: b"v".to_vec(),
            }],
            ..crate::test_event(Some(b"k"), value)
        }
    }

    fn single_output(outcome: Outcome) -> Output {
        match outcome {
            Outcome::Emit(mut outputs) if outputs.len() == 1 => outputs.remove(0),
            other => panic!("expected one output, got {other:?}"),
        }
    }

    #[test]
    fn map_object_changes_the_object_and_keeps_key_and_headers() {
        let out = single_output(map_object(event(Some(br#"{"a":1}"#)), |o| {
            o.insert("b".into(), 2.into());
            Ok(())
        }));
        assert_eq!(out.value.as_deref(), Some(&br#"{"a":1,"b":2}"#[..]));
        assert_eq!(out.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(out.headers.len(), 1);
        assert_eq!(out.target, None);
    }

    #[test]
    fn map_object_passes_tombstones_and_rejects_what_is_not_an_object() {
        let out = single_output(map_object(event(None), |_| panic!("not called")));
        assert_eq!(out.value, None);

        for (value, reason) in [
            (&b"[1]"[..], "value is not a JSON object: found an array"),
            (b"{nope", "value is not valid JSON: "),
        ] {
            match map_object(event(Some(value)), |_| Ok(())) {
                Outcome::Reject(reasons) => {
                    assert!(reasons[0].starts_with(reason), "{reasons:?}")
                }
                other => panic!("expected a reject, got {other:?}"),
            }
        }
        match map_object(event(Some(b"{}")), |_| Err(vec!["a".into(), "b".into()])) {
            Outcome::Reject(reasons) => assert_eq!(reasons, ["a", "b"]),
            other => panic!("expected a reject, got {other:?}"),
        }
    }

    #[test]
    fn pointer_tokens_escape_tilde_before_slash() {
        assert_eq!(pointer_token("email"), "email");
        assert_eq!(pointer_token("a/b"), "a~1b");
        assert_eq!(pointer_token("~1"), "~01");
        assert_eq!(pointer_token("x~/y"), "x~0~1y");
        // What serde_json reads back.
        let v: Value = serde_json::from_str(r#"{"x~/y": 1}"#).unwrap();
        assert_eq!(
            v.pointer(&format!("/{}", pointer_token("x~/y"))),
            Some(&1.into())
        );
    }

    #[test]
    fn config_object_names_the_expected_shape() {
        assert!(config_object(r#"{"x":1}"#, "{}").is_ok());
        let err = config_object("[]", r#"{"x": 1}"#).unwrap_err();
        assert_eq!(
            err,
            r#"config must be an object like {"x": 1}, got an array"#
        );
        assert!(config_object("{", "{}")
            .unwrap_err()
            .starts_with("config is not valid JSON: "));
    }
}
