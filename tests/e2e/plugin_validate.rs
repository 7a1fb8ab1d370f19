//! The bundled `validate` plugin, in process through the host: the event
//! API rules of seed 000 (every curl example, valid, invalid and edge
//! inputs), the other rules, a config written in a real routes file, and
//! configs that `init` refuses. Each input runs both straight through an
//! instance pool (to see the plugin's exact outcome: every reason as its
//! own string) and through a chain (to see what the route would write).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchyard::config::Config;
use switchyard::plugin::bindings::{Event, Header, Outcome};
use switchyard::plugin::pool::Limits;
use switchyard::plugin::{CallError, InstancePool, LoadedPlugin, PluginRuntime};
use switchyard::route::chain::{Chain, Destination, FailureKind, CHAIN_HEADER};
use switchyard_tests::{plugins_dir, workspace};

/// Seed 000's rules: `userId` and `type` required, `type` one of login,
/// logout, purchase, `timestamp` optional and filled with the server's time
/// when missing, `data` optional.
const SEED_000: &str = r#"{"fields": {
    "userId": {"required": true, "type": "string"},
    "type": {"required": true, "type": "string", "one_of": ["login", "logout", "purchase"]},
    "timestamp": {"type": "string", "format": "rfc3339", "default": "now"},
    "data": {"type": "object", "nullable": true}
}}"#;

/// The other rules: integers, numbers, booleans, arrays, lengths, numeric
/// `one_of`, literal defaults, and unknown fields rejected.
const STRICT: &str = r#"{"unknown_fields": "reject", "fields": {
    "id": {"required": true, "type": "integer"},
    "name": {"type": "string", "min_length": 2, "max_length": 5},
    "score": {"type": "number", "default": 0},
    "active": {"type": "boolean", "default": true},
    "tags": {"type": "array", "default": []},
    "level": {"one_of": [1, 2, 3]},
    "note": {"nullable": true}
}}"#;

/// In expected values, stands for the timestamp the plugin filled in from
/// the host clock (checked separately).
const NOW: &str = "NOW";

enum Expect {
    /// Emitted once, to the default target, with this value and the input's
    /// key and headers.
    Emit(&'static str),
    /// Emitted unchanged (the value byte for byte).
    Same,
    /// Passed through as a tombstone.
    Tombstone,
    /// Rejected with exactly these reasons, in this order.
    Reject(&'static [&'static str]),
}

struct Case {
    name: &'static str,
    value: Option<&'static [u8]>,
    expect: Expect,
}

fn case(name: &'static str, value: &'static [u8], expect: Expect) -> Case {
    Case {
        name,
        value: Some(value),
        expect,
    }
}

const LIMITS: Limits = Limits {
    call_timeout: Duration::from_secs(5),
    memory_bytes: 64 << 20,
};

/// The runtime and the loaded component, compiled once for all tests.
fn validate_plugin() -> &'static (PluginRuntime, LoadedPlugin) {
    static PLUGIN: OnceLock<(PluginRuntime, LoadedPlugin)> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        let runtime = PluginRuntime::new(workspace().join("target/test-cache")).unwrap();
        let plugin = runtime
            .load(&plugins_dir().join("validate.wasm"))
            .expect("validate.wasm: build it with `switchyard plugin build plugins/validate`");
        (runtime, plugin)
    })
}

fn pool(config: &str) -> Result<InstancePool, CallError> {
    let (runtime, plugin) = validate_plugin();
    InstancePool::new(
        runtime.clone(),
        plugin.clone(),
        config.to_owned(),
        "validate-test",
        LIMITS,
    )
}

fn event(i: usize, value: Option<&[u8]>) -> Event {
    Event {
        key: Some(format!("key-{i}").into_bytes()),
        value: value.map(<[u8]>::to_vec),
        headers: vec![Header {
            key: "trace".into(),
            value: format!("t-{i}").into_bytes(),
        }],
        topic: "user-events".into(),
        partition: 0,
        offset: i as i64,
        timestamp_ms: None,
    }
}

fn headers(headers: &[Header]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Milliseconds since the epoch of a timestamp in the form the plugin
/// writes, `YYYY-MM-DDTHH:MM:SS.mmmZ` (RFC 3339, UTC), or `None`.
fn parse_utc_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let shape = b.len() == 24
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let n = |from: usize, to: usize| s[from..to].parse::<i64>().unwrap();
    let (year, month, day) = (n(0, 4), n(5, 7), n(8, 10));
    let (hour, minute, second, millis) = (n(11, 13), n(14, 16), n(17, 19), n(20, 23));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1_000 + millis)
}

/// `expected` with [`NOW`] replaced by the timestamp in `actual`, after
/// checking that timestamp is RFC 3339 UTC and within `[from, to]` (ms).
fn fill_now(expected: &str, actual: &str, from: i64, to: i64, name: &str) -> String {
    if !expected.contains(NOW) {
        return expected.to_owned();
    }
    let json: serde_json::Value = serde_json::from_str(actual).expect("emitted JSON");
    let stamp = json["timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: no timestamp in {actual}"));
    let ms = parse_utc_ms(stamp)
        .unwrap_or_else(|| panic!("{name}: {stamp:?} is not an RFC 3339 UTC timestamp"));
    assert!(
        (from..=to).contains(&ms),
        "{name}: timestamp {stamp} is not the host's current time ({from}..={to} ms)"
    );
    expected.replace(NOW, &format!("{stamp:?}"))
}

/// Run `cases` under `config`, as one batch straight through a pool and as
/// one batch through a chain, and check every outcome exactly.
fn run_table(config: &str, cases: &[Case]) {
    let events: Vec<Event> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| event(i, c.value))
        .collect();

    let direct = pool(config).expect("config accepted");
    let from = now_ms();
    let outcomes = direct.process(&events).expect("process");
    let to = now_ms();
    assert_eq!(outcomes.len(), cases.len());
    for ((case, event), outcome) in cases.iter().zip(&events).zip(outcomes) {
        let name = case.name;
        match (&case.expect, outcome) {
            (Expect::Reject(reasons), Outcome::Reject(got)) => {
                assert_eq!(got, *reasons, "{name}")
            }
            (Expect::Emit(_) | Expect::Same | Expect::Tombstone, Outcome::Emit(outputs)) => {
                assert_eq!(outputs.len(), 1, "{name}: one output");
                let output = &outputs[0];
                assert_eq!(output.target, None, "{name}: default target");
                assert_eq!(output.key, event.key, "{name}: same key");
                assert_eq!(
                    headers(&output.headers),
                    headers(&event.headers),
                    "{name}: same headers"
                );
                let value = output.value.as_deref().map(String::from_utf8_lossy);
                match &case.expect {
                    Expect::Tombstone => assert_eq!(value, None, "{name}"),
                    Expect::Same => {
                        assert_eq!(output.value.as_deref(), case.value, "{name}: byte for byte")
                    }
                    Expect::Emit(expected) => {
                        let value = value.unwrap_or_else(|| panic!("{name}: a value"));
                        assert_eq!(value, fill_now(expected, &value, from, to, name), "{name}");
                    }
                    Expect::Reject(_) => unreachable!(),
                }
            }
            (_, other) => panic!("{name}: unexpected outcome {other:?}"),
        }
    }

    // The same batch through a chain: what the route would write.
    let chain = Chain::new(
        vec![pool(config).unwrap()],
        Destination::topic("valid"),
        &BTreeMap::new(),
    );
    let from = now_ms();
    let results = chain.run(&events);
    let to = now_ms();
    for ((case, event), result) in cases.iter().zip(&events).zip(results) {
        let name = case.name;
        match (&case.expect, result) {
            (Expect::Reject(reasons), Err(failure)) => {
                assert_eq!(failure.kind, FailureKind::Rejected, "{name}");
                assert_eq!(failure.message, reasons.join("; "), "{name}");
                assert_eq!(failure.plugin, chain.versions(), "{name}");
            }
            (Expect::Emit(_) | Expect::Same | Expect::Tombstone, Ok(routed)) => {
                assert_eq!(routed.len(), 1, "{name}");
                let record = &routed[0];
                assert_eq!(record.topic().unwrap(), "valid", "{name}");
                assert_eq!(record.key, event.key, "{name}");
                let mut expected_headers = headers(&event.headers);
                expected_headers.push((CHAIN_HEADER.into(), chain.versions().into()));
                assert_eq!(headers(&record.headers), expected_headers, "{name}");
                let value = record.value.as_deref().map(String::from_utf8_lossy);
                let expected = match &case.expect {
                    Expect::Emit(expected) => {
                        let value = value.as_deref().unwrap_or_default();
                        Some(fill_now(expected, value, from, to, name))
                    }
                    Expect::Same => case.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                    _ => None,
                };
                assert_eq!(value.map(|v| v.into_owned()), expected, "{name}");
            }
            (_, other) => panic!("{name}: unexpected result {other:?}"),
        }
    }
}

#[test]
fn seed_000_event_rules() {
    use Expect::*;
    run_table(
        SEED_000,
        &[
            // The README's curl examples: valid, timestamp filled in.
            case(
                "curl example 1",
                br#"{"userId":"u1","type":"login"}"#,
                Emit(r#"{"userId":"u1","type":"login","timestamp":NOW}"#),
            ),
            case(
                "curl example 2",
                br#"{"userId":"u2","type":"purchase","data":{"amount":99.9}}"#,
                Emit(r#"{"userId":"u2","type":"purchase","data":{"amount":99.9},"timestamp":NOW}"#),
            ),
            // The README's stored event: explicit timestamp kept, null data
            // accepted, nothing to change so the bytes pass as they are.
            case(
                "example output event",
                b"{\n  \"userId\": \"u1\",\n  \"type\": \"login\",\n  \
                  \"timestamp\": \"2025-11-06T18:00:00Z\",\n  \"data\": null\n}",
                Same,
            ),
            case(
                "logout with an offset and a fraction",
                br#"{"userId":"u3","type":"logout","timestamp":"2025-11-06T19:00:00.25+01:00"}"#,
                Same,
            ),
            case(
                "null timestamp is filled in its place",
                br#"{"userId":"u1","timestamp":null,"type":"login"}"#,
                Emit(r#"{"userId":"u1","timestamp":NOW,"type":"login"}"#),
            ),
            case(
                "unknown fields are kept",
                br#"{"source":"web","userId":"u1","type":"logout","timestamp":"2025-11-06T18:00:00Z"}"#,
                Same,
            ),
            case(
                "re-encoding keeps field order and every digit",
                br#"{ "data": {"amount": 12345678901234567890.10, "n": 1.50}, "type": "purchase", "userId": "u9" }"#,
                Emit(
                    r#"{"data":{"amount":12345678901234567890.10,"n":1.50},"type":"purchase","userId":"u9","timestamp":NOW}"#,
                ),
            ),
            // Invalid.
            case(
                "missing userId",
                br#"{"type":"login"}"#,
                Reject(&["userId: required"]),
            ),
            case(
                "type not allowed",
                br#"{"userId":"u1","type":"signup"}"#,
                Reject(&[r#"type: must be one of login, logout, purchase (got "signup")"#]),
            ),
            case(
                "type is case-sensitive",
                br#"{"userId":"u1","type":"Login"}"#,
                Reject(&[r#"type: must be one of login, logout, purchase (got "Login")"#]),
            ),
            case(
                "type not a string",
                br#"{"userId":"u1","type":1}"#,
                Reject(&["type: must be a string (got 1)"]),
            ),
            case(
                "userId a number",
                br#"{"userId":42,"type":"login"}"#,
                Reject(&["userId: must be a string (got 42)"]),
            ),
            case(
                "userId null",
                br#"{"userId":null,"type":"login"}"#,
                Reject(&["userId: must not be null"]),
            ),
            case(
                "timestamp with a space",
                br#"{"userId":"u1","type":"login","timestamp":"2025-11-06 18:00:00Z"}"#,
                Reject(&[r#"timestamp: must be an RFC 3339 timestamp (got "2025-11-06 18:00:00Z")"#]),
            ),
            case(
                "timestamp without an offset",
                br#"{"userId":"u1","type":"login","timestamp":"2025-11-06T18:00:00"}"#,
                Reject(&[r#"timestamp: must be an RFC 3339 timestamp (got "2025-11-06T18:00:00")"#]),
            ),
            case(
                "timestamp on a day that does not exist",
                br#"{"userId":"u1","type":"login","timestamp":"2025-02-29T18:00:00Z"}"#,
                Reject(&[r#"timestamp: must be an RFC 3339 timestamp (got "2025-02-29T18:00:00Z")"#]),
            ),
            case(
                "timestamp in epoch milliseconds",
                br#"{"userId":"u1","type":"login","timestamp":1762452000000}"#,
                Reject(&["timestamp: must be a string (got 1762452000000)"]),
            ),
            case(
                "data not an object",
                br#"{"userId":"u1","type":"purchase","data":"99.9"}"#,
                Reject(&[r#"data: must be an object (got "99.9")"#]),
            ),
            case(
                "several problems at once",
                br#"{"type":"signup","timestamp":"yesterday","data":[1]}"#,
                Reject(&[
                    r#"type: must be one of login, logout, purchase (got "signup")"#,
                    r#"timestamp: must be an RFC 3339 timestamp (got "yesterday")"#,
                    "data: must be an object (got an array)",
                    "userId: required",
                ]),
            ),
            case(
                "empty object",
                b"{}",
                Reject(&["type: required", "userId: required"]),
            ),
            // Not a JSON object.
            case(
                "array",
                br#"[{"userId":"u1","type":"login"}]"#,
                Reject(&["value is not a JSON object: found an array"]),
            ),
            case(
                "string",
                br#""login""#,
                Reject(&["value is not a JSON object: found a string"]),
            ),
            case(
                "null",
                b"null",
                Reject(&["value is not a JSON object: found null"]),
            ),
            case(
                "truncated JSON",
                br#"{"userId":"u1","#,
                Reject(&["value is not valid JSON: EOF while parsing a value at line 1 column 15"]),
            ),
            case(
                "trailing garbage",
                br#"{"userId":"u1","type":"login"} x"#,
                Reject(&["value is not valid JSON: trailing characters at line 1 column 32"]),
            ),
            case(
                "empty value",
                b"",
                Reject(&["value is not valid JSON: EOF while parsing a value at line 1 column 0"]),
            ),
            case(
                "not UTF-8",
                b"{\"userId\":\"\xff\",\"type\":\"login\"}",
                Reject(&["value is not valid JSON: invalid unicode code point at line 1 column 12"]),
            ),
            Case {
                name: "tombstone",
                value: None,
                expect: Tombstone,
            },
        ],
    );
}

#[test]
fn other_rules() {
    use Expect::*;
    run_table(
        STRICT,
        &[
            case(
                "literal defaults appended by field name",
                br#"{"id":1}"#,
                Emit(r#"{"id":1,"active":true,"score":0,"tags":[]}"#),
            ),
            case(
                "every rule satisfied",
                br#"{"id":2.0,"name":"ab","score":-1.5e3,"active":false,"tags":["x"],"level":3,"note":null}"#,
                Same,
            ),
            case(
                "integers of any size and form",
                br#"{"id":123456789012345678901234567890,"score":1,"active":true,"tags":[],"level":2.00}"#,
                Same,
            ),
            case(
                "lengths count characters, not bytes",
                br#"{"id":1e3,"name":"\u00fcn\u00efc\u00f8","score":1,"active":true,"tags":[]}"#,
                Same,
            ),
            case(
                "a field with no type takes anything but null",
                br#"{"note":{"any":["thing"]},"id":-7}"#,
                Emit(r#"{"note":{"any":["thing"]},"id":-7,"active":true,"score":0,"tags":[]}"#),
            ),
            case(
                "null in a defaulted field that is not nullable",
                br#"{"score":null,"id":1}"#,
                Emit(r#"{"score":0,"id":1,"active":true,"tags":[]}"#),
            ),
            case(
                "fraction in an integer",
                br#"{"id":1.5}"#,
                Reject(&["id: must be an integer (got 1.5)"]),
            ),
            case(
                "integer as a string",
                br#"{"id":"1"}"#,
                Reject(&[r#"id: must be an integer (got "1")"#]),
            ),
            case(
                "too short",
                br#"{"id":1,"name":"a"}"#,
                Reject(&["name: must be at least 2 characters long (got 1)"]),
            ),
            case(
                "too long",
                br#"{"id":1,"name":"abcdef"}"#,
                Reject(&["name: must be at most 5 characters long (got 6)"]),
            ),
            case(
                "wrong types",
                br#"{"id":1,"active":"yes","tags":{},"score":"1"}"#,
                Reject(&[
                    r#"active: must be a boolean (got "yes")"#,
                    "tags: must be an array (got an object)",
                    r#"score: must be a number (got "1")"#,
                ]),
            ),
            case(
                "numeric one_of and unknown fields",
                br#"{"extra":true,"id":1,"level":4,"more":null}"#,
                Reject(&[
                    "extra: unknown field",
                    "level: must be one of 1, 2, 3 (got 4)",
                    "more: unknown field",
                ]),
            ),
            case("missing id", b"{}", Reject(&["id: required"])),
        ],
    );
}

#[test]
fn unknown_fields_can_be_dropped() {
    use Expect::*;
    run_table(
        r#"{"unknown_fields": "drop", "fields": {"userId": {"required": true}}}"#,
        &[
            case(
                "dropped",
                br#"{"a":1,"userId":"u1","b":{"c":2}}"#,
                Emit(r#"{"userId":"u1"}"#),
            ),
            case("nothing to drop", br#"{ "userId": "u1" }"#, Same),
            case(
                "still checked",
                br#"{"a":1}"#,
                Reject(&["userId: required"]),
            ),
        ],
    );
}

/// The config as an operator writes it, in a routes file read by the
/// host's own loader (TOML to JSON), including an unquoted TOML date-time.
#[test]
fn config_from_a_routes_file() {
    let dir = plugins_dir();
    let routes = format!(
        r#"
plugins_dir = {dir:?}

[[routes]]
name = "user-events"
source = {{ topics = ["user-events"] }}
sink = {{ topic = "user-events.valid" }}
dead_letter = {{ topic = "user-events.invalid" }}

[[routes.chain]]
plugin = "validate"
config.fields.userId = {{ required = true, type = "string" }}
config.fields.type = {{ required = true, type = "string", one_of = ["login", "logout", "purchase"] }}
config.fields.timestamp = {{ type = "string", format = "rfc3339", default = "now" }}
config.fields.data = {{ type = "object", nullable = true }}

[[routes.chain]]
plugin = "validate"
config = {{ unknown_fields = "reject", fields = {{ since = {{ format = "rfc3339", default = 2025-01-01T00:00:00Z }}, n = {{ type = "integer" }} }} }}
"#,
        dir = dir.display().to_string()
    );
    let path = Path::new("routes.toml");
    let route = Config::parse(&routes, path)
        .unwrap()
        .resolve(path)
        .unwrap()
        .remove(0);

    use Expect::*;
    run_table(
        &route.chain[0].config_json,
        &[
            case(
                "valid",
                br#"{"userId":"u1","type":"login"}"#,
                Emit(r#"{"userId":"u1","type":"login","timestamp":NOW}"#),
            ),
            case(
                "reasons in record order, then missing fields",
                br#"{"data":1,"timestamp":"now","type":"x"}"#,
                Reject(&[
                    "data: must be an object (got 1)",
                    r#"timestamp: must be an RFC 3339 timestamp (got "now")"#,
                    r#"type: must be one of login, logout, purchase (got "x")"#,
                    "userId: required",
                ]),
            ),
        ],
    );
    run_table(
        &route.chain[1].config_json,
        &[
            case(
                "TOML date-time default",
                br#"{"n":1}"#,
                Emit(r#"{"n":1,"since":"2025-01-01T00:00:00Z"}"#),
            ),
            case("unknown", br#"{"m":1}"#, Reject(&["m: unknown field"])),
        ],
    );
}

#[test]
fn init_refuses_bad_configs_naming_the_field_and_the_problem() {
    for (config, expected) in [
        (
            "{",
            "config is not valid JSON: EOF while parsing an object at line 1 column 1",
        ),
        (
            "{}",
            r#"config needs a "fields" table mapping field names to rules, e.g. fields = { userId = { required = true, type = "string" } }"#,
        ),
        (
            r#"{"fields": {}, "unknown": "reject"}"#,
            r#"unknown config key "unknown" (known keys: fields, unknown_fields)"#,
        ),
        (
            r#"{"fields": {}, "unknown_fields": "ignore"}"#,
            r#"unknown_fields: must be "allow", "drop" or "reject" (got "ignore")"#,
        ),
        (
            r#"{"fields": ["userId"]}"#,
            r#"fields: must be a table mapping field names to rules, e.g. fields = { userId = { required = true, type = "string" } } (got an array)"#,
        ),
        (
            r#"{"fields": {"userId": "required"}}"#,
            r#"fields.userId: must be a table of rules like { required = true, type = "string" } (got "required")"#,
        ),
        (
            r#"{"fields": {"userId": {"mandatory": true}}}"#,
            r#"fields.userId: unknown rule "mandatory" (known rules: required, type, nullable, one_of, format, min_length, max_length, default, default_null)"#,
        ),
        (
            r#"{"fields": {"userId": {"required": 1}}}"#,
            "fields.userId.required: must be true or false (got 1)",
        ),
        (
            r#"{"fields": {"n": {"type": "float"}}}"#,
            r#"fields.n.type: must be "string", "number", "integer", "boolean", "object" or "array" (got "float")"#,
        ),
        (
            r#"{"fields": {"type": {"one_of": "login"}}}"#,
            r#"fields.type.one_of: must be a non-empty list of allowed values (got "login")"#,
        ),
        (
            r#"{"fields": {"ts": {"format": "iso8601"}}}"#,
            r#"fields.ts.format: must be "rfc3339" (got "iso8601")"#,
        ),
        (
            r#"{"fields": {"s": {"max_length": 2.5}}}"#,
            "fields.s.max_length: must be a whole number of characters, 0 or more (got 2.5)",
        ),
        (
            r#"{"fields": {"n": {"type": "number", "min_length": 1}}}"#,
            r#"fields.n.min_length: applies to strings only, but type is "number""#,
        ),
        (
            r#"{"fields": {"s": {"min_length": 3, "max_length": 2}}}"#,
            "fields.s: min_length 3 is greater than max_length 2",
        ),
        (
            r#"{"fields": {"userId": {"required": true, "default": "anonymous"}}}"#,
            "fields.userId.default: a required field cannot have a default (remove one of them)",
        ),
        (
            r#"{"fields": {"type": {"type": "string", "one_of": ["login", 2]}}}"#,
            "fields.type.one_of: 2 breaks the field's own rules: must be a string (got 2)",
        ),
        (
            r#"{"fields": {"type": {"one_of": ["login", "logout"], "default": "signup"}}}"#,
            r#"fields.type.default: "signup" breaks the field's own rules: must be one of login, logout (got "signup")"#,
        ),
        (
            r#"{"fields": {"timestamp": {"format": "rfc3339", "default": "2025-11-06"}}}"#,
            r#"fields.timestamp.default: "2025-11-06" breaks the field's own rules: must be an RFC 3339 timestamp (got "2025-11-06")"#,
        ),
        (
            r#"{"fields": {"timestamp": {"type": "integer", "default": "now"}}}"#,
            r#"fields.timestamp.default: "now" (the current time as an RFC 3339 string) breaks the field's own rules: must be an integer (got "1970-01-01T00:00:00.000Z")"#,
        ),
        (
            r#"{"fields": {"code": {"max_length": 8, "default": "now"}}}"#,
            r#"fields.code.default: "now" (the current time as an RFC 3339 string) breaks the field's own rules: must be at most 8 characters long (got 24)"#,
        ),
        (
            r#"{"fields": {"a": {"type": "text"}, "b": {"nullable": "yes"}}, "x": 1}"#,
            r#"fields.a.type: must be "string", "number", "integer", "boolean", "object" or "array" (got "text"); fields.b.nullable: must be true or false (got "yes"); unknown config key "x" (known keys: fields, unknown_fields)"#,
        ),
    ] {
        match pool(config) {
            Err(CallError::Init { plugin, message }) => {
                assert_eq!(plugin, "validate");
                assert_eq!(message, format!("validate: {expected}"), "{config}");
            }
            Err(other) => panic!("{config}: not an init refusal: {other}"),
            Ok(_) => panic!("{config}: accepted"),
        }
    }
    let err = pool(r#"{"fields": {"userId": {"requird": true}}}"#)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "plugin `validate` refused its configuration: validate: fields.userId: unknown rule \
         \"requird\" (known rules: required, type, nullable, one_of, format, min_length, \
         max_length, default, default_null)"
    );
}
