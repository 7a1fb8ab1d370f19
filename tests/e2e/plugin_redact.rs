//! The bundled `redact` plugin, in process through the host (runtime,
//! instance pool, chain): each action on each kind of value and path, hash
//! tokens checked against an HMAC computed here, rejections, tombstones, and
//! the configurations `init` refuses (never repeating the key).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard::config::Config;
use switchyard::plugin::bindings::{Event, Header};
use switchyard::plugin::pool::Limits;
use switchyard::plugin::{CallError, InstancePool, LoadedPlugin, PluginRuntime};
use switchyard::route::chain::{Chain, Destination, Failure, FailureKind, Routed, CHAIN_HEADER};
use switchyard_tests::{plugins_dir, workspace};

const KEY_A: &str = "redact-test-key-A-0123456789abcdef0123456789";
const KEY_B: &str = "redact-test-key-B-0123456789abcdef0123456789";
/// 31 bytes: one short of the minimum.
const SHORT_KEY: &str = "hunter2-hunter2-hunter2-hunter2";

const LIMITS: Limits = Limits {
    call_timeout: Duration::from_secs(5),
    memory_bytes: 64 << 20,
};

/// The runtime and the compiled plugin, shared by every test here so that
/// the component is compiled once.
fn redact_plugin() -> (PluginRuntime, LoadedPlugin) {
    static LOADED: OnceLock<(PluginRuntime, LoadedPlugin)> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let path = plugins_dir().join("redact.wasm");
            assert!(
                path.is_file(),
                "{} not found: build it with `switchyard plugin build plugins/redact`",
                path.display()
            );
            let runtime = PluginRuntime::new(workspace().join("target/test-cache")).unwrap();
            let plugin = runtime.load(&path).unwrap();
            (runtime, plugin)
        })
        .clone()
}

fn pool(config: &Value) -> Result<InstancePool, CallError> {
    let (runtime, plugin) = redact_plugin();
    InstancePool::new(runtime, plugin, config.to_string(), "redact-test", LIMITS)
}

fn chain(config: &Value) -> Chain {
    let pool = pool(config).unwrap_or_else(|e| panic!("config {config} refused: {e}"));
    Chain::new(vec![pool], Destination::topic("out"), &BTreeMap::new())
}

/// A chain with `rule` as its only rule, and `KEY_A` for hashing.
fn one_rule(rule: Value) -> Chain {
    chain(&json!({ "hash_key": KEY_A, "rules": [rule] }))
}

fn event(offset: i64, value: Option<&[u8]>) -> Event {
    Event {
        key: Some(format!("key-{offset}").into_bytes()),
        value: value.map(<[u8]>::to_vec),
        headers: vec![],
        topic: "people".into(),
        partition: 0,
        offset,
        timestamp_ms: None,
    }
}

/// Run `values` through `chain`: each record's single output value as text,
/// or its failure.
fn run(chain: &Chain, values: &[&[u8]]) -> Vec<Result<String, Failure>> {
    let events: Vec<Event> = (0..).zip(values).map(|(i, v)| event(i, Some(v))).collect();
    chain
        .run(&events)
        .into_iter()
        .map(|result| result.map(|outputs| single_value(&outputs)))
        .collect()
}

fn single_value(outputs: &[Routed]) -> String {
    assert_eq!(outputs.len(), 1, "one output per record: {outputs:?}");
    let value = outputs[0].value.as_deref().expect("a value");
    String::from_utf8(value.to_vec()).expect("UTF-8 output")
}

fn redact_one(chain: &Chain, value: &str) -> String {
    let mut results = run(chain, &[value.as_bytes()]);
    results
        .remove(0)
        .unwrap_or_else(|f| panic!("{value} failed: {f:?}"))
}

/// HMAC-SHA256 (RFC 2104) written out over plain SHA-256, independent of
/// the plugin's `hmac` crate.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block_key.map(|k| k ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token `hash` gives for the canonical JSON text `canonical` under
/// `KEY_A`.
fn token(canonical: &str) -> String {
    token_with(KEY_A, canonical)
}

fn token_with(key: &str, canonical: &str) -> String {
    format!("hmac:{}", hmac_sha256(key.as_bytes(), canonical.as_bytes()))
}

#[test]
fn the_reference_hmac_matches_rfc_4231() {
    // Test case 2, and test case 6 (a key longer than the block).
    assert_eq!(
        hmac_sha256(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        ),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn drop_removes_fields_of_any_kind_at_any_path() {
    for (path, input, expected) in [
        (
            "email",
            r#"{"id":1,"email":"a@b.c","n":2}"#,
            r#"{"id":1,"n":2}"#,
        ),
        ("age", r#"{"age":41,"x":1}"#, r#"{"x":1}"#),
        (
            "address",
            r#"{"address":{"city":"Vilnius","zip":"01100"},"x":1}"#,
            r#"{"x":1}"#,
        ),
        ("tags", r#"{"tags":["a","b"],"x":null}"#, r#"{"x":null}"#),
        (
            "user.email",
            r#"{"user":{"id":"u1","email":"a@b.c"}}"#,
            r#"{"user":{"id":"u1"}}"#,
        ),
        (
            "trip.driver.contact",
            r#"{"trip":{"id":7,"driver":{"name":"D","contact":{"phone":"+1"}}}}"#,
            r#"{"trip":{"id":7,"driver":{"name":"D"}}}"#,
        ),
        (
            "passengers.*.phone",
            r#"{"passengers":[{"name":"A","phone":"+1"},{"name":"B"},{"name":"C","phone":"+3"}]}"#,
            r#"{"passengers":[{"name":"A"},{"name":"B"},{"name":"C"}]}"#,
        ),
        (
            "legs.*.stops.*.address",
            r#"{"legs":[{"stops":[{"address":"x","n":1}]},{"stops":[{"address":"y"}]}]}"#,
            r#"{"legs":[{"stops":[{"n":1}]},{"stops":[{}]}]}"#,
        ),
        ("tags.*", r#"{"tags":["a","b"]}"#, r#"{"tags":[]}"#),
        (
            "passengers.0",
            r#"{"passengers":[{"n":1},{"n":2}]}"#,
            r#"{"passengers":[{"n":2}]}"#,
        ),
        (
            "passengers.1.phone",
            r#"{"passengers":[{"phone":"+1"},{"phone":"+2"}]}"#,
            r#"{"passengers":[{"phone":"+1"},{}]}"#,
        ),
    ] {
        let chain = one_rule(json!({ "path": path, "action": "drop" }));
        assert_eq!(
            redact_one(&chain, input),
            expected,
            "drop {path} on {input}"
        );
    }
}

#[test]
fn mask_keeps_trailing_characters_of_strings_and_nulls_other_values() {
    for (rule, input, expected) in [
        (
            json!({"path": "phone", "action": "mask", "keep_last": 4}),
            r#"{"phone":"+37061234567","x":1}"#,
            r#"{"phone":"********4567","x":1}"#,
        ),
        (
            json!({"path": "name", "action": "mask"}),
            r#"{"name":"Alice"}"#,
            r#"{"name":"*****"}"#,
        ),
        (
            json!({"path": "card", "action": "mask", "keep_last": 2, "mask_char": "x"}),
            r#"{"card":"4111111111111111"}"#,
            r#"{"card":"xxxxxxxxxxxxxx11"}"#,
        ),
        // Never the whole string, however short.
        (
            json!({"path": "pin", "action": "mask", "keep_last": 4}),
            r#"{"pin":"123"}"#,
            r#"{"pin":"***"}"#,
        ),
        (
            json!({"path": "pin", "action": "mask", "keep_last": 4}),
            r#"{"pin":"1234"}"#,
            r#"{"pin":"****"}"#,
        ),
        (
            json!({"path": "e", "action": "mask", "keep_last": 4}),
            r#"{"e":""}"#,
            r#"{"e":""}"#,
        ),
        // Characters, not bytes.
        (
            json!({"path": "name", "action": "mask", "keep_last": 1, "mask_char": "•"}),
            r#"{"name":"Žydrūnė"}"#,
            r#"{"name":"••••••ė"}"#,
        ),
        // Anything but a string becomes null; null stays null.
        (
            json!({"path": "phone", "action": "mask", "keep_last": 4}),
            r#"{"phone":37061234567}"#,
            r#"{"phone":null}"#,
        ),
        (
            json!({"path": "address", "action": "mask"}),
            r#"{"address":{"city":"Vilnius"},"x":1}"#,
            r#"{"address":null,"x":1}"#,
        ),
        (
            json!({"path": "phones", "action": "mask"}),
            r#"{"phones":["+1","+2"]}"#,
            r#"{"phones":null}"#,
        ),
        (
            json!({"path": "vip", "action": "mask"}),
            r#"{"vip":true}"#,
            r#"{"vip":null}"#,
        ),
        (
            json!({"path": "email", "action": "mask"}),
            r#"{"email":null}"#,
            r#"{"email":null}"#,
        ),
        // Nested and wildcard paths.
        (
            json!({"path": "user.contact.email", "action": "mask", "keep_last": 3}),
            r#"{"user":{"contact":{"email":"a@b.lt"}}}"#,
            r#"{"user":{"contact":{"email":"***.lt"}}}"#,
        ),
        (
            json!({"path": "passengers.*.phone", "action": "mask", "keep_last": 2}),
            r#"{"passengers":[{"phone":"+3701"},{"name":"B"},{"phone":12}]}"#,
            r#"{"passengers":[{"phone":"***01"},{"name":"B"},{"phone":null}]}"#,
        ),
        (
            json!({"path": "phones.*", "action": "mask", "keep_last": 1}),
            r#"{"phones":["+12","+34"]}"#,
            r#"{"phones":["**2","**4"]}"#,
        ),
    ] {
        let chain = one_rule(rule.clone());
        assert_eq!(redact_one(&chain, input), expected, "{rule} on {input}");
    }
}

#[test]
fn hash_replaces_values_with_the_hmac_of_their_canonical_json() {
    for (path, input, expected) in [
        (
            "email",
            r#"{"email":"alice@example.com","x":1}"#,
            format!(r#"{{"email":"{}","x":1}}"#, token(r#""alice@example.com""#)),
        ),
        (
            "userId",
            r#"{"userId":12345}"#,
            format!(r#"{{"userId":"{}"}}"#, token("12345")),
        ),
        // Numbers as written, digit for digit.
        (
            "price",
            r#"{"price":1.10}"#,
            format!(r#"{{"price":"{}"}}"#, token("1.10")),
        ),
        (
            "id",
            r#"{"id":123456789012345678901234567890}"#,
            format!(r#"{{"id":"{}"}}"#, token("123456789012345678901234567890")),
        ),
        // Objects with sorted keys, compact.
        (
            "address",
            r#"{"address":{"zip":"01100", "city":"Vilnius"}}"#,
            format!(
                r#"{{"address":"{}"}}"#,
                token(r#"{"city":"Vilnius","zip":"01100"}"#)
            ),
        ),
        (
            "phones",
            r#"{"phones":["+1", "+2"]}"#,
            format!(r#"{{"phones":"{}"}}"#, token(r#"["+1","+2"]"#)),
        ),
        (
            "vip",
            r#"{"vip":false}"#,
            format!(r#"{{"vip":"{}"}}"#, token("false")),
        ),
        // JSON escaping and non-ASCII text.
        (
            "note",
            r#"{"note":"say \"hi\"\n"}"#,
            format!(r#"{{"note":"{}"}}"#, token(r#""say \"hi\"\n""#)),
        ),
        (
            "name",
            r#"{"name":"Žydrūnė"}"#,
            format!(r#"{{"name":"{}"}}"#, token(r#""Žydrūnė""#)),
        ),
        ("email", r#"{"email":null}"#, r#"{"email":null}"#.to_owned()),
        // Nested and wildcard paths.
        (
            "user.email",
            r#"{"user":{"id":"u1","email":"a@b.c"}}"#,
            format!(
                r#"{{"user":{{"id":"u1","email":"{}"}}}}"#,
                token(r#""a@b.c""#)
            ),
        ),
        (
            "passengers.*.phone",
            r#"{"passengers":[{"phone":"+1"},{"name":"B"},{"phone":"+3"}]}"#,
            format!(
                r#"{{"passengers":[{{"phone":"{}"}},{{"name":"B"}},{{"phone":"{}"}}]}}"#,
                token(r#""+1""#),
                token(r#""+3""#)
            ),
        ),
        (
            "phones.*",
            r#"{"phones":["+1",2]}"#,
            format!(r#"{{"phones":["{}","{}"]}}"#, token(r#""+1""#), token("2")),
        ),
    ] {
        let chain = one_rule(json!({ "path": path, "action": "hash" }));
        assert_eq!(
            redact_one(&chain, input),
            expected,
            "hash {path} on {input}"
        );
    }
}

#[test]
fn hash_tokens_are_stable_for_a_key_and_differ_between_keys() {
    let rules = json!([{ "path": "email", "action": "hash" }]);
    let a1 = chain(&json!({ "hash_key": KEY_A, "rules": rules }));
    let a2 = chain(&json!({ "hash_key": KEY_A, "rules": rules }));
    let b = chain(&json!({ "hash_key": KEY_B, "rules": rules }));
    let email = |out: &str| -> String {
        let v: Value = serde_json::from_str(out).unwrap();
        v["email"].as_str().unwrap().to_owned()
    };
    let record = br#"{"email":"alice@example.com"}"#;
    let first = run(&a1, &[record, record, br#"{"email":"bob@example.com"}"#]);
    let tokens: Vec<String> = first.iter().map(|r| email(r.as_ref().unwrap())).collect();
    assert_eq!(tokens[0], tokens[1], "same value, same token in a batch");
    assert_ne!(tokens[0], tokens[2], "different values, different tokens");
    let again = email(&redact_one(&a2, r#"{"email":"alice@example.com"}"#));
    assert_eq!(again, tokens[0], "same key, same token in another pool");
    let other_key = email(&redact_one(&b, r#"{"email":"alice@example.com"}"#));
    assert_ne!(other_key, tokens[0], "another key, another token");
    assert_eq!(other_key, token_with(KEY_B, r#""alice@example.com""#));
    // Objects hash the same whatever their key order; types are told apart.
    let same = [
        redact_one(&a1, r#"{"email":{"a":1,"b":[2,{"d":4,"c":3}]}}"#),
        redact_one(&a1, r#"{"email":{"b":[2,{"c":3,"d":4}],"a":1}}"#),
    ];
    assert_eq!(email(&same[0]), email(&same[1]));
    let typed = [
        redact_one(&a1, r#"{"email":"123"}"#),
        redact_one(&a1, r#"{"email":123}"#),
    ];
    assert_ne!(email(&typed[0]), email(&typed[1]));
    assert!(!tokens[0].contains("alice"));
}

#[test]
fn paths_missing_from_a_record_are_skipped() {
    let record = r#"{"user":{"email":"a@b.c"},"list":{"x":1},"arr":[1,2],"n":5}"#;
    for path in [
        "phone",
        "user.phone",
        "user.email.deeper",
        "n.deeper",
        "list.*.x",
        "nothing.*.x",
        "arr.9",
        "arr.x",
        "arr.*.x",
    ] {
        for action in [
            json!({"action": "drop"}),
            json!({"action": "mask", "keep_last": 2}),
            json!({"action": "hash"}),
        ] {
            let mut rule = action.clone();
            rule["path"] = json!(path);
            let chain = one_rule(rule.clone());
            assert_eq!(redact_one(&chain, record), record, "{rule}");
        }
    }
}

#[test]
fn rules_apply_in_order_keeping_field_order_numbers_key_and_headers() {
    let chain = chain(&json!({
        "hash_key": KEY_A,
        "subject_field": "userId",
        "rules": [
            { "path": "email", "action": "hash" },
            { "path": "phone", "action": "mask", "keep_last": 2 },
            { "path": "address", "action": "drop" },
            // Applies to what the rules before left: `email` is a token now.
            { "path": "email", "action": "mask", "keep_last": 8 },
        ],
    }));
    let input = br#"{"z":1,"userId":"u-42","email":"a@b.c","big":123456789012345678901234567890,"address":{"city":"Vilnius"},"phone":"+37061234567","price":1.50}"#;
    let mut source = event(0, Some(input));
    source.headers = vec![
        Header {
            key: "trace".into(),
            value: b"t1".to_vec(),
        },
        Header {
            key: "trace".into(),
            value: b"t2".to_vec(),
        },
    ];
    let results = chain.run(std::slice::from_ref(&source));
    let outputs = results[0].as_ref().unwrap();
    let token_tail = &token(r#""a@b.c""#)[69 - 8..];
    let expected = format!(
        r#"{{"z":1,"userId":"u-42","email":"{}{token_tail}","big":123456789012345678901234567890,"phone":"**********67","price":1.50}}"#,
        "*".repeat(69 - 8)
    );
    assert_eq!(single_value(outputs), expected);
    assert_eq!(outputs[0].topic().unwrap(), "out");
    assert_eq!(outputs[0].key, source.key, "same key");
    let headers: Vec<(&str, &[u8])> = outputs[0]
        .headers
        .iter()
        .map(|h| (h.key.as_str(), h.value.as_slice()))
        .collect();
    assert_eq!(
        &headers[..2],
        &[("trace", &b"t1"[..]), ("trace", &b"t2"[..])]
    );
    assert_eq!(headers[2].0, CHAIN_HEADER, "the host's header after them");
    assert_eq!(headers.len(), 3);
}

#[test]
fn tombstones_pass_through_unchanged() {
    let chain = one_rule(json!({ "path": "email", "action": "hash" }));
    let mut tombstone = event(3, None);
    tombstone.headers = vec![Header {
        key: "h".into(),
        value: b"v".to_vec(),
    }];
    let results = chain.run(std::slice::from_ref(&tombstone));
    let outputs = results[0].as_ref().expect("tombstone passes");
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].value, None, "still a tombstone");
    assert_eq!(outputs[0].key.as_deref(), Some(&b"key-3"[..]));
    assert_eq!(outputs[0].headers[0].key, "h");
}

#[test]
fn values_that_are_not_json_objects_are_rejected_without_quoting_them() {
    let chain = one_rule(json!({ "path": "email", "action": "hash" }));
    let cases: [(&[u8], &str); 9] = [
        (
            br#"{"email": "alice@example.com""#,
            "value is not valid JSON",
        ),
        (b"alice@example.com", "value is not valid JSON"),
        (b"", "value is not valid JSON"),
        (b"\xff\xfe alice", "value is not valid JSON"),
        (
            br#"["alice@example.com"]"#,
            "value is not a JSON object: found an array",
        ),
        (
            br#""alice@example.com""#,
            "value is not a JSON object: found a string",
        ),
        (b"42", "value is not a JSON object: found a number"),
        (b"null", "value is not a JSON object: found null"),
        (b"true", "value is not a JSON object: found a boolean"),
    ];
    // Good records around the bad ones: only the bad ones fail.
    let good: &[u8] = br#"{"email":"bob@example.com"}"#;
    let mut values = vec![good];
    values.extend(cases.iter().map(|(v, _)| *v));
    values.push(good);
    let results = run(&chain, &values);
    assert!(results[0].is_ok());
    assert!(results[values.len() - 1].is_ok());
    for ((value, expect), result) in cases.iter().zip(&results[1..]) {
        let failure = result.as_ref().unwrap_err();
        let shown = String::from_utf8_lossy(value);
        assert_eq!(failure.kind, FailureKind::Rejected, "{shown}");
        assert!(failure.message.contains(expect), "{shown}: {failure:?}");
        assert!(!failure.message.contains("alice"), "{shown}: {failure:?}");
    }
}

#[test]
fn init_refuses_bad_configs_naming_the_rule_and_never_the_key() {
    let hash = json!({ "path": "email", "action": "hash" });
    let drop = json!({ "path": "address", "action": "drop" });
    for (config, expected) in [
        (json!({}), vec![r#"needs a "rules" list"#]),
        (json!({ "rules": [] }), vec![r#""rules" is empty"#]),
        (
            json!({ "rules": "email" }),
            vec![r#""rules" must be a list"#],
        ),
        (
            json!({ "rules": ["email"] }),
            vec!["rule 0: must be an object"],
        ),
        (
            json!({ "hash_key": KEY_A, "rules": [drop, { "path": "email", "action": "shred" }] }),
            vec![r#"rule 1 (path "email"): unknown action "shred""#],
        ),
        (
            json!({ "rules": [{ "path": "", "action": "drop" }] }),
            vec![r#"rule 0 (path ""): empty path"#],
        ),
        (
            json!({ "rules": [{ "path": "user..email", "action": "drop" }] }),
            vec![r#"rule 0 (path "user..email"): empty segment"#],
        ),
        (
            json!({ "rules": [{ "action": "drop" }] }),
            vec![r#"rule 0: missing "path""#],
        ),
        (
            json!({ "rules": [{ "path": "email" }] }),
            vec![r#"rule 0 (path "email"): missing "action""#],
        ),
        (
            json!({ "rules": [{ "path": "email", "action": "hash", "keep_last": 2 }], "hash_key": KEY_A }),
            vec![r#"rule 0 (path "email"): "keep_last" applies only to "mask""#],
        ),
        (
            json!({ "rules": [{ "path": "phone", "action": "mask", "keep_last": -2 }] }),
            vec![r#""keep_last" must be a whole number 0 or more"#],
        ),
        (
            json!({ "rules": [{ "path": "phone", "action": "mask", "mask_char": "**" }] }),
            vec![r#""mask_char" must be exactly one character"#],
        ),
        (
            json!({ "rules": [drop, hash] }),
            vec![r#""hash_key" is required because rule 1 uses "hash""#],
        ),
        (
            json!({ "hash_key": SHORT_KEY, "rules": [hash] }),
            vec![r#""hash_key" is too short: it must be at least 32 bytes"#],
        ),
        (
            json!({ "hash_key": 1234567890123456_u64, "rules": [hash] }),
            vec![r#""hash_key" must be a string, got a number"#],
        ),
        // A misspelt key name: named, its value (the secret) not shown.
        (
            json!({ "hash-key": KEY_A, "rules": [hash] }),
            vec![
                r#"unknown config key "hash-key""#,
                r#""hash_key" is required because rule 0 uses "hash""#,
            ],
        ),
        // Encryption is per subject: the subject must be named.
        (
            json!({
                "hash_key": KEY_A,
                "rules": [hash, { "path": "email", "action": "encrypt" }],
            }),
            vec![
                r#""subject_field" (the path of the field naming the record's data subject, e.g. "userId") is required because rule 1 uses "encrypt""#,
            ],
        ),
        (
            json!({ "hash_key": KEY_A, "subject_field": "", "rules": [hash] }),
            vec![r#""subject_field" "": empty path"#],
        ),
        (
            json!({ "hash_key": KEY_A, "subject_field": "users.*.id", "rules": [hash] }),
            vec![r#""subject_field" "users.*.id" must name a single field"#],
        ),
        (
            json!({ "hash_key": KEY_A, "subject_field": 42, "rules": [hash] }),
            vec![r#""subject_field" must be a string"#],
        ),
        // Every problem at once.
        (
            json!({
                "hash_key": SHORT_KEY,
                "rules": [{ "path": "a.", "action": "drop" }, drop, { "path": "b", "action": "zap" }, hash],
            }),
            vec![
                r#"rule 0 (path "a."): empty segment"#,
                r#"rule 2 (path "b"): unknown action "zap""#,
                r#""hash_key" is too short"#,
            ],
        ),
    ] {
        let message = match pool(&config) {
            Err(CallError::Init { message, .. }) => message,
            Err(other) => panic!("{config}: not an init refusal: {other}"),
            Ok(_) => panic!("{config}: accepted"),
        };
        assert!(message.starts_with("redact: "), "{config}: {message}");
        for expect in expected {
            assert!(
                message.contains(expect),
                "{config}:\n{message}\nlacks {expect}"
            );
        }
        for secret in [KEY_A, SHORT_KEY, "hunter2", "0123456789abcdef"] {
            assert!(
                !message.contains(secret),
                "{config}: echoes the key: {message}"
            );
        }
    }
}

#[test]
fn the_documented_routes_file_example_runs() {
    // The example of plugins/redact/README.md, in a routes file read and
    // resolved by the host as `switchyard run` does.
    let routes = format!(
        r#"
        plugins_dir = {:?}

        [[routes]]
        name = "crm-users"
        source = {{ topics = ["users"] }}
        sink = {{ topic = "users.redacted" }}

        [[routes.chain]]
        plugin = "redact"
        config = {{ hash_key = "{KEY_A}", subject_field = "userId", rules = [
            {{ path = "email", action = "hash" }},
            {{ path = "phone", action = "mask", keep_last = 2 }},
            {{ path = "address", action = "drop" }},
        ] }}
        "#,
        plugins_dir().display().to_string()
    );
    let config = Config::parse(&routes, Path::new("routes.toml")).unwrap();
    let route = config.resolve(Path::new("routes.toml")).unwrap().remove(0);
    let (runtime, plugin) = redact_plugin();
    let pool = InstancePool::new(
        runtime,
        plugin,
        route.chain[0].config_json.clone(),
        &route.name,
        LIMITS,
    )
    .unwrap();
    let chain = Chain::new(vec![pool], Destination::topic("out"), &BTreeMap::new());
    let out = redact_one(
        &chain,
        r#"{"userId":"u-1","email":"alice@example.com","phone":"+37061234567","address":"Gedimino pr. 1"}"#,
    );
    assert_eq!(
        out,
        format!(
            r#"{{"userId":"u-1","email":"{}","phone":"**********67"}}"#,
            token(r#""alice@example.com""#)
        )
    );
}
