//! `redact`: removes, masks or hashes personal data in records whose value
//! is a JSON object, before they leave for other systems.
//!
//! Config (the route's `config` table for this plugin, as JSON):
//!
//! ```json
//! {
//!   "hash_key": "<at least 32 bytes, secret>",
//!   "subject_field": "userId",
//!   "rules": [
//!     {"path": "email", "action": "hash"},
//!     {"path": "phone", "action": "mask", "keep_last": 2},
//!     {"path": "passengers.*.phone", "action": "mask", "keep_last": 4, "mask_char": "#"},
//!     {"path": "address", "action": "drop"}
//!   ]
//! }
//! ```
//!
//! - `rules` (required, non-empty): applied in order, each to the result of
//!   the ones before. Each rule has:
//!   - `path` (required): field names separated by `.`, descending into
//!     nested objects (`user.email`). A segment `*` stands for every element
//!     of an array (`passengers.*.phone`); a segment of digits is an index
//!     into an array (`passengers.0.phone`) or an object field of that name.
//!     Field names containing `.`, and a field named `*`, cannot be
//!     addressed. A path that is not in a record is skipped for that record.
//!   - `action` (required): one of
//!     - `drop`: the field is removed (an array element addressed by index
//!       is removed; a final `*` empties the array);
//!     - `mask`: a string keeps its last `keep_last` characters (default 0)
//!       and every other character becomes `mask_char` (default `*`, exactly
//!       one character); the length in characters is kept. A string of
//!       `keep_last` characters or fewer is masked entirely. A number,
//!       boolean, object or array becomes `null`; `null` stays `null`;
//!     - `hash`: the value (of any kind but `null`, which stays `null`)
//!       becomes `"hmac:"` followed by the 64 lowercase hex digits of
//!       HMAC-SHA256(`hash_key`, canonical JSON text of the value): the same
//!       value and key always give the same token;
//!     - `encrypt`: reserved; refused by `init` (see below).
//!   - `keep_last`, `mask_char`: only with `mask`.
//! - `hash_key`: the HMAC key, its UTF-8 bytes used as they are, at least 32
//!   bytes. Required when any rule hashes. `init` never repeats it in an
//!   error message.
//! - `subject_field`: optional path (no `*`) to the field naming the data
//!   subject, e.g. `userId`. Validated but not used yet: it is for `encrypt`.
//!
//! Canonical JSON text, the input of `hash`: compact (no whitespace),
//! strings in quotes with `"` and `\` escaped as `\"` and `\\`, control
//! characters below U+0020 as `\b`, `\f`, `\n`, `\r`, `\t` or `\u00xx`
//! (lowercase hex), every other character as its UTF-8 bytes; numbers digit
//! for digit as the record wrote them (`1.0` and `1` differ); object keys
//! sorted by their UTF-8 bytes. So `"a@b.c"` is hashed as the 7 bytes
//! `"a@b.c"`, quotes included.
//!
//! `encrypt` (per-subject encryption for GDPR crypto-shredding) needs a
//! per-subject data key from a host service that this version of the host
//! does not provide, so `init` refuses any rule that uses it.
//!
//! `init` refuses a config that breaks any of the above, naming each problem
//! and the rule (index and path) it is in.
//!
//! Per record:
//! - value is a JSON object: emitted with every rule applied, same key and
//!   headers, to the default target; field order is kept;
//! - value is not valid JSON, or valid JSON but not an object: `reject`,
//!   with the reason (which never quotes the value);
//! - tombstone (no value): passed through unchanged.
//!
//! The record key and headers are not redacted.

use std::fmt;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use switchyard_guest::json::{config_object, kind, map_object};
use switchyard_guest::{export_plugin, Event, Outcome, Plugin};

/// Shortest `hash_key` accepted, in bytes: the output size of SHA-256.
const MIN_KEY_BYTES: usize = 32;

/// Prefix of every `hash` token.
const HASH_PREFIX: &str = "hmac:";

const EXAMPLE: &str = r#"{"hash_key": "...", "rules": [{"path": "email", "action": "hash"}]}"#;

/// A config `init` accepted.
#[derive(Debug)]
struct Config {
    rules: Vec<Rule>,
    /// Keyed HMAC state, cloned for each value; present when a rule hashes.
    hasher: Option<Hasher>,
    /// For `encrypt`, once the host provides subject keys.
    #[allow(dead_code)]
    subject_field: Option<Vec<Segment>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    path: Vec<Segment>,
    action: Action,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// An object field, or an array index when it is all digits.
    Name(String),
    /// `*`: every element of an array.
    Each,
}

#[derive(Debug, Clone, PartialEq)]
enum Action {
    Drop,
    Mask { keep_last: usize, mask_char: char },
    Hash,
}

/// HMAC-SHA256 keyed with `hash_key`. Its `Debug` shows no key material.
#[derive(Clone)]
struct Hasher(Hmac<Sha256>);

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher(<key withheld>)")
    }
}

impl Hasher {
    /// `hmac:` and the hex HMAC of `value`'s canonical JSON text.
    fn token(&self, value: &Value) -> String {
        let mut text = String::new();
        canonical_json(value, &mut text);
        let mut mac = self.0.clone();
        mac.update(text.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("{HASH_PREFIX}{}", hex::encode(digest))
    }
}

struct Redact;

impl Plugin for Redact {
    const NAME: &'static str = "redact";
    type Config = Config;

    fn configure(config: &str) -> Result<Config, String> {
        parse_config(config)
    }

    // The reject reasons of `map_object` never quote the value: it may hold
    // the very data being redacted.
    fn process(config: &Config, event: Event) -> Outcome {
        map_object(event, |object| {
            redact(object, config);
            Ok(())
        })
    }
}

export_plugin!(Redact);

// ---------------------------------------------------------------------------
// Config

fn parse_config(config: &str) -> Result<Config, String> {
    let mut top = config_object(config, EXAMPLE)?;
    let mut problems = Vec::new();

    let unknown: Vec<String> = top
        .keys()
        .filter(|k| !matches!(k.as_str(), "rules" | "hash_key" | "subject_field"))
        .map(|k| format!("{k:?}"))
        .collect();
    if !unknown.is_empty() {
        problems.push(format!(
            "unknown config key{} {} (known: \"rules\", \"hash_key\", \"subject_field\")",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", ")
        ));
    }

    let mut rules = Vec::new();
    let mut hashing_rules = Vec::new();
    match top.remove("rules") {
        None => problems.push(format!(
            "config needs a \"rules\" list of {{path, action}} objects, e.g. {EXAMPLE}"
        )),
        Some(Value::Array(list)) if list.is_empty() => {
            problems.push("\"rules\" is empty: there is nothing to redact".into())
        }
        Some(Value::Array(list)) => {
            for (i, rule) in list.iter().enumerate() {
                match parse_rule(i, rule) {
                    Ok(rule) => {
                        if rule.action == Action::Hash {
                            hashing_rules.push(i);
                        }
                        rules.push(rule);
                    }
                    Err(mut errs) => problems.append(&mut errs),
                }
            }
        }
        Some(other) => problems.push(format!(
            "\"rules\" must be a list of {{path, action}} objects, got {}",
            kind(&other)
        )),
    }

    // The key's value never goes into a message: only its kind and whether
    // it is long enough.
    let hasher = match top.remove("hash_key") {
        None if hashing_rules.is_empty() => None,
        None => {
            let (noun, verb) = match hashing_rules.len() {
                1 => ("rule", "uses"),
                _ => ("rules", "use"),
            };
            let list: Vec<String> = hashing_rules.iter().map(usize::to_string).collect();
            problems.push(format!(
                "\"hash_key\" is required because {noun} {} {verb} \"hash\"",
                list.join(", ")
            ));
            None
        }
        Some(Value::String(key)) if key.len() < MIN_KEY_BYTES => {
            problems.push(format!(
                "\"hash_key\" is too short: it must be at least {MIN_KEY_BYTES} bytes \
                 (e.g. 64 hex digits from `openssl rand -hex 32`)"
            ));
            None
        }
        Some(Value::String(key)) => match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
            Ok(mac) => Some(Hasher(mac)),
            // HMAC takes keys of any length; kept for completeness.
            Err(_) => {
                problems.push("\"hash_key\" cannot be used as an HMAC key".into());
                None
            }
        },
        Some(other) => {
            problems.push(format!(
                "\"hash_key\" must be a string, got {}",
                kind(&other)
            ));
            None
        }
    };

    let subject_field = match top.remove("subject_field") {
        None => None,
        Some(Value::String(path)) => match parse_path(&path) {
            Ok(segments) if segments.contains(&Segment::Each) => {
                problems.push(format!(
                    "\"subject_field\" {path:?} must name a single field: `*` is not allowed"
                ));
                None
            }
            Ok(segments) => Some(segments),
            Err(e) => {
                problems.push(format!("\"subject_field\" {path:?}: {e}"));
                None
            }
        },
        Some(other) => {
            problems.push(format!(
                "\"subject_field\" must be a string (a field path such as \"userId\"), got {}",
                kind(&other)
            ));
            None
        }
    };

    if problems.is_empty() {
        Ok(Config {
            rules,
            hasher,
            subject_field,
        })
    } else {
        Err(format!("invalid config: {}", problems.join("; ")))
    }
}

/// One rule, or every problem with it.
fn parse_rule(index: usize, rule: &Value) -> Result<Rule, Vec<String>> {
    let Value::Object(fields) = rule else {
        return Err(vec![format!(
            "rule {index}: must be an object with \"path\" and \"action\", got {}",
            kind(rule)
        )]);
    };
    let mut problems = Vec::new();
    let (label, path) = match fields.get("path") {
        Some(Value::String(p)) => {
            let label = format!("rule {index} (path {p:?})");
            match parse_path(p) {
                Ok(path) => (label, Some(path)),
                Err(e) => {
                    problems.push(format!("{label}: {e}"));
                    (label, None)
                }
            }
        }
        Some(other) => {
            let label = format!("rule {index}");
            problems.push(format!(
                "{label}: \"path\" must be a string, got {}",
                kind(other)
            ));
            (label, None)
        }
        None => {
            let label = format!("rule {index}");
            problems.push(format!("{label}: missing \"path\""));
            (label, None)
        }
    };

    let action = match fields.get("action") {
        Some(Value::String(a)) => match a.as_str() {
            "drop" | "mask" | "hash" => Some(a.as_str()),
            "encrypt" => {
                problems.push(format!(
                    "{label}: action \"encrypt\" needs the host's subject-key service \
                     (per-subject data keys, for crypto-shredding), which this version of \
                     Switchyard does not provide; use \"hash\" or \"drop\" for now"
                ));
                None
            }
            other => {
                problems.push(format!(
                    "{label}: unknown action {other:?} (expected \"drop\", \"mask\", \"hash\" \
                     or \"encrypt\")"
                ));
                None
            }
        },
        Some(other) => {
            problems.push(format!(
                "{label}: \"action\" must be a string, got {}",
                kind(other)
            ));
            None
        }
        None => {
            problems.push(format!(
                "{label}: missing \"action\" (\"drop\", \"mask\", \"hash\" or \"encrypt\")"
            ));
            None
        }
    };

    for key in fields.keys() {
        match key.as_str() {
            "path" | "action" => {}
            "keep_last" | "mask_char" => {
                if action.is_some_and(|a| a != "mask") {
                    problems.push(format!("{label}: {key:?} applies only to \"mask\""));
                }
            }
            other => problems.push(format!(
                "{label}: unknown key {other:?} (known: \"path\", \"action\", \"keep_last\", \
                 \"mask_char\")"
            )),
        }
    }

    let action = match action {
        Some("drop") => Some(Action::Drop),
        Some("hash") => Some(Action::Hash),
        Some(_mask) => {
            let keep_last = match fields.get("keep_last") {
                None => Some(0),
                Some(Value::Number(n)) => match n.as_u64().map(usize::try_from) {
                    Some(Ok(k)) => Some(k),
                    _ => {
                        problems.push(format!(
                            "{label}: \"keep_last\" must be a whole number 0 or more, got {n}"
                        ));
                        None
                    }
                },
                Some(other) => {
                    problems.push(format!(
                        "{label}: \"keep_last\" must be a whole number 0 or more, got {}",
                        kind(other)
                    ));
                    None
                }
            };
            let mask_char = match fields.get("mask_char") {
                None => Some('*'),
                Some(Value::String(s)) => {
                    let mut chars = s.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => Some(c),
                        _ => {
                            problems.push(format!(
                                "{label}: \"mask_char\" must be exactly one character, got {s:?}"
                            ));
                            None
                        }
                    }
                }
                Some(other) => {
                    problems.push(format!(
                        "{label}: \"mask_char\" must be a one-character string, got {}",
                        kind(other)
                    ));
                    None
                }
            };
            keep_last
                .zip(mask_char)
                .map(|(keep_last, mask_char)| Action::Mask {
                    keep_last,
                    mask_char,
                })
        }
        None => None,
    };

    match (path, action) {
        (Some(path), Some(action)) if problems.is_empty() => Ok(Rule { path, action }),
        _ => Err(problems),
    }
}

/// `a.b.*.c` as segments, or what is wrong with it.
fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    path.split('.')
        .map(|segment| match segment {
            "" => Err("empty segment (a leading, trailing or doubled `.`)".to_owned()),
            "*" => Ok(Segment::Each),
            name => Ok(Segment::Name(name.to_owned())),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Records

/// Apply every rule of `config` to `object`, in order.
fn redact(object: &mut Map<String, Value>, config: &Config) {
    for rule in &config.rules {
        apply_in_object(object, &rule.path, &rule.action, config.hasher.as_ref());
    }
}

/// Apply `action` at `path` below `object`.
fn apply_in_object(
    object: &mut Map<String, Value>,
    path: &[Segment],
    action: &Action,
    hasher: Option<&Hasher>,
) {
    let Some((Segment::Name(name), rest)) = path.split_first() else {
        // `*` addresses array elements only.
        return;
    };
    if rest.is_empty() {
        if *action == Action::Drop {
            object.shift_remove(name);
        } else if let Some(target) = object.get_mut(name) {
            transform(target, action, hasher);
        }
    } else if let Some(child) = object.get_mut(name) {
        apply_in(child, rest, action, hasher);
    }
}

/// Apply `action` at `path` below `value`, whatever it is; paths that do not
/// fit the value's shape address nothing.
fn apply_in(value: &mut Value, path: &[Segment], action: &Action, hasher: Option<&Hasher>) {
    match value {
        Value::Object(object) => apply_in_object(object, path, action, hasher),
        Value::Array(items) => {
            let Some((segment, rest)) = path.split_first() else {
                return;
            };
            match segment {
                Segment::Each if rest.is_empty() && *action == Action::Drop => items.clear(),
                Segment::Each => {
                    for item in items.iter_mut() {
                        at(item, rest, action, hasher);
                    }
                }
                Segment::Name(name) => {
                    let Some(i) = array_index(name).filter(|i| *i < items.len()) else {
                        return;
                    };
                    if rest.is_empty() && *action == Action::Drop {
                        items.remove(i);
                    } else {
                        at(&mut items[i], rest, action, hasher);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Apply `action` to `value` itself when `path` is used up, else below it.
fn at(value: &mut Value, path: &[Segment], action: &Action, hasher: Option<&Hasher>) {
    if path.is_empty() {
        transform(value, action, hasher);
    } else {
        apply_in(value, path, action, hasher);
    }
}

/// An all-digits segment as an array index.
fn array_index(segment: &str) -> Option<usize> {
    if segment.bytes().all(|b| b.is_ascii_digit()) {
        segment.parse().ok()
    } else {
        None
    }
}

/// Replace `value` by its masked or hashed form (`drop` is done by the
/// container and never reaches here).
fn transform(value: &mut Value, action: &Action, hasher: Option<&Hasher>) {
    if value.is_null() {
        return;
    }
    match action {
        Action::Drop => {}
        Action::Mask {
            keep_last,
            mask_char,
        } => {
            *value = match value {
                Value::String(s) => Value::String(mask(s, *keep_last, *mask_char)),
                _ => Value::Null,
            }
        }
        Action::Hash => {
            // `init` refuses hash rules without a key, so this is present.
            if let Some(hasher) = hasher {
                *value = Value::String(hasher.token(value));
            }
        }
    }
}

/// `s` with all but its last `keep_last` characters replaced by `mask_char`;
/// entirely masked when that would keep all of it.
fn mask(s: &str, keep_last: usize, mask_char: char) -> String {
    let count = s.chars().count();
    let keep = if keep_last >= count { 0 } else { keep_last };
    let mut out: String = std::iter::repeat_n(mask_char, count - keep).collect();
    out.extend(s.chars().skip(count - keep));
    out
}

/// Compact JSON with object keys sorted by their UTF-8 bytes and numbers as
/// written: the input of `hash`.
fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => push_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        Value::Object(object) => {
            let mut entries: Vec<(&String, &Value)> = object.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(k, out);
                out.push(':');
                canonical_json(v, out);
            }
            out.push('}');
        }
    }
}

fn push_json_string(s: &str, out: &mut String) {
    // Encoding a string cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef-test-key";

    fn config(rules: &str) -> Config {
        parse_config(&format!(r#"{{"hash_key": "{KEY}", "rules": {rules}}}"#)).unwrap()
    }

    fn process(config: &Config, record: &[u8]) -> Outcome {
        Redact::process(config, switchyard_guest::test_event(None, Some(record)))
    }

    fn run(rules: &str, record: &str) -> String {
        match process(&config(rules), record.as_bytes()) {
            Outcome::Emit(mut outputs) if outputs.len() == 1 => {
                String::from_utf8(outputs.remove(0).value.unwrap()).unwrap()
            }
            other => panic!("expected one output, got {other:?}"),
        }
    }

    fn rejection(config: &Config, record: &[u8]) -> Vec<String> {
        match process(config, record) {
            Outcome::Reject(reasons) => reasons,
            other => panic!("expected a reject, got {other:?}"),
        }
    }

    /// The refusal as the host sees it.
    fn refusal(config: &str) -> String {
        switchyard_guest::init::<Redact>(config).unwrap_err()
    }

    #[test]
    fn parses_paths() {
        use Segment::*;
        assert_eq!(
            parse_path("a.*.0").unwrap(),
            vec![Name("a".into()), Each, Name("0".into())]
        );
        assert_eq!(parse_path("").unwrap_err(), "empty path");
        for bad in ["a..b", ".a", "a."] {
            assert!(
                parse_path(bad).unwrap_err().contains("empty segment"),
                "{bad}"
            );
        }
    }

    #[test]
    fn masks_by_characters_and_never_keeps_everything() {
        assert_eq!(mask("+37061234567", 4, '*'), "********4567");
        assert_eq!(mask("žėųšč", 2, '#'), "###šč");
        assert_eq!(mask("abcd", 4, '*'), "****");
        assert_eq!(mask("ab", 4, '*'), "**");
        assert_eq!(mask("", 4, '*'), "");
        assert_eq!(mask("secret", 0, 'x'), "xxxxxx");
    }

    #[test]
    fn canonical_json_sorts_keys_and_keeps_numbers_as_written() {
        let v: Value =
            serde_json::from_str(r#"{"b": [1.10, "x\"y"], "a": {"d": null, "c": true}}"#).unwrap();
        let mut out = String::new();
        canonical_json(&v, &mut out);
        assert_eq!(out, r#"{"a":{"c":true,"d":null},"b":[1.10,"x\"y"]}"#);
        // The string escapes the docs list.
        let v = Value::String("\\/\u{1}\u{1f}\u{7f}\u{8}\u{c}\n\r\tž\"".into());
        let mut out = String::new();
        canonical_json(&v, &mut out);
        assert_eq!(
            out,
            r#""\\/\u0001\u001f"#.to_owned() + "\u{7f}" + r#"\b\f\n\r\tž\"""#
        );
    }

    #[test]
    fn hash_token_matches_rfc_4231_hmac() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for
        // nothing?". Our input is canonical JSON, so hash the string's
        // JSON text by hand through the same MAC.
        let hasher = Hasher(Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap());
        let mut mac = hasher.0.clone();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let token = hasher.token(&Value::String("x".into()));
        assert!(
            token.starts_with("hmac:") && token.len() == 5 + 64,
            "{token}"
        );
    }

    #[test]
    fn applies_rules_in_order_keeping_field_order() {
        let out = run(
            r#"[{"path": "user.phone", "action": "mask", "keep_last": 2},
                {"path": "address", "action": "drop"},
                {"path": "trips.*.from", "action": "drop"},
                {"path": "trips.1", "action": "drop"},
                {"path": "missing.deep", "action": "hash"}]"#,
            r#"{"id": 12345678901234567890123, "user": {"phone": "+3706", "n": 1},
                "address": "x", "trips": [{"from": "A", "to": "B"}, {"from": "C"}], "z": 1.10}"#,
        );
        assert_eq!(
            out,
            r#"{"id":12345678901234567890123,"user":{"phone":"***06","n":1},"trips":[{"to":"B"}],"z":1.10}"#
        );
    }

    #[test]
    fn wildcard_on_non_array_and_index_out_of_range_address_nothing() {
        let record = r#"{"a":{"b":1},"c":[1,2]}"#;
        assert_eq!(
            run(r#"[{"path": "a.*", "action": "drop"}]"#, record),
            record
        );
        assert_eq!(
            run(r#"[{"path": "c.5", "action": "drop"}]"#, record),
            record
        );
        assert_eq!(
            run(r#"[{"path": "c.*", "action": "drop"}]"#, record),
            r#"{"a":{"b":1},"c":[]}"#
        );
    }

    #[test]
    fn rejects_non_json_and_non_objects_without_quoting_them() {
        let c = config(r#"[{"path": "a", "action": "drop"}]"#);
        let reasons = rejection(&c, b"{\"email\": \"alice@example.com\"");
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].starts_with("value is not valid JSON: "),
            "{reasons:?}"
        );
        assert!(!reasons[0].contains("alice"), "{reasons:?}");
        assert_eq!(
            rejection(&c, br#"["alice@example.com"]"#),
            ["value is not a JSON object: found an array"]
        );
    }

    #[test]
    fn refuses_bad_configs_naming_the_rule() {
        for (config, expect) in [
            ("{", "not valid JSON"),
            ("[]", "must be an object"),
            ("{}", "needs a \"rules\" list"),
            (r#"{"rules": []}"#, "\"rules\" is empty"),
            (r#"{"rules": {}}"#, "got an object"),
            (r#"{"rules": [1]}"#, "rule 0: must be an object"),
            (
                r#"{"rules": [{"path": "a", "action": "drop"}], "rulez": 1}"#,
                "unknown config key \"rulez\"",
            ),
            (
                r#"{"rules": [{"path": "", "action": "drop"}]}"#,
                "rule 0 (path \"\"): empty path",
            ),
            (
                r#"{"rules": [{"path": "a", "action": "drop"}, {"path": "b", "action": "zap"}]}"#,
                "rule 1 (path \"b\"): unknown action \"zap\"",
            ),
            (
                r#"{"rules": [{"action": "drop"}]}"#,
                "rule 0: missing \"path\"",
            ),
            (
                r#"{"rules": [{"path": "a"}]}"#,
                "rule 0 (path \"a\"): missing \"action\"",
            ),
            (
                r#"{"rules": [{"path": "a", "action": "drop", "keep_last": 1}]}"#,
                "\"keep_last\" applies only to \"mask\"",
            ),
            (
                r#"{"rules": [{"path": "a", "action": "mask", "keep_last": -1}]}"#,
                "\"keep_last\" must be a whole number 0 or more, got -1",
            ),
            (
                r#"{"rules": [{"path": "a", "action": "mask", "mask_char": "ab"}]}"#,
                "\"mask_char\" must be exactly one character",
            ),
            (
                r#"{"rules": [{"path": "a", "action": "drop", "kep": 1}]}"#,
                "rule 0 (path \"a\"): unknown key \"kep\"",
            ),
            (
                r#"{"rules": [{"path": "a", "action": "drop"}, {"path": "e", "action": "hash"}]}"#,
                "\"hash_key\" is required because rule 1 uses \"hash\"",
            ),
            (
                r#"{"rules": [{"path": "a", "action": "encrypt"}], "subject_field": "userId"}"#,
                "rule 0 (path \"a\"): action \"encrypt\" needs the host's subject-key service",
            ),
            (
                r#"{"rules": [{"path": "a", "action": "drop"}], "subject_field": "a.*"}"#,
                "`*` is not allowed",
            ),
            (
                r#"{"rules": [{"path": "a", "action": "drop"}], "subject_field": 7}"#,
                "\"subject_field\" must be a string",
            ),
        ] {
            let err = refusal(config);
            assert!(err.starts_with("redact: "), "{config}: {err}");
            assert!(err.contains(expect), "{config}: {err}");
        }
    }

    #[test]
    fn reports_every_problem_at_once() {
        let err = refusal(
            r#"{"rules": [{"path": "a..b", "action": "drop"}, {"path": "c", "action": "nope"}]}"#,
        );
        assert!(
            err.contains("rule 0 (path \"a..b\"): empty segment"),
            "{err}"
        );
        assert!(err.contains("rule 1 (path \"c\"): unknown action"), "{err}");
    }

    #[test]
    fn key_problems_never_echo_the_key() {
        let short = "hunter2-short-secret";
        let err = refusal(&format!(
            r#"{{"hash_key": "{short}", "rules": [{{"path": "a", "action": "hash"}}]}}"#
        ));
        assert!(err.contains("\"hash_key\" is too short"), "{err}");
        assert!(!err.contains(short) && !err.contains("hunter2"), "{err}");
        // A valid key beside some other problem.
        let err = refusal(&format!(
            r#"{{"hash_key": "{KEY}", "rules": [{{"path": "a", "action": "bad"}}]}}"#
        ));
        assert!(!err.contains(KEY), "{err}");
        assert!(!format!("{:?}", config(r#"[{"path": "a", "action": "hash"}]"#)).contains(KEY));
    }
}
