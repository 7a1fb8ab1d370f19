//! `redact`: removes, masks, hashes, encrypts or pseudonymizes personal data
//! in records whose value is a JSON object, before they leave for other
//! systems.
//!
//! Config (the route's `config` table for this plugin, as JSON):
//!
//! ```json
//! {
//!   "hash_key": "<at least 32 bytes, secret>",
//!   "subject_field": "userId",
//!   "key": "subject-ref",
//!   "rules": [
//!     {"path": "userId", "action": "encrypt"},
//!     {"path": "email", "action": "encrypt"},
//!     {"path": "nickname", "action": "pseudonymize"},
//!     {"path": "deviceId", "action": "hash"},
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
//!     - `encrypt`: the value, of any kind (`null` too, so that a missing
//!       value does not show), becomes a token `sy:v2:...` made by the host
//!       from the value's compact JSON text, for the record's subject and
//!       bound to the value's place: the concrete JSON Pointer of that
//!       occurrence (`/payload/email`, `/passengers/0/phone`), and to the
//!       topic the route writes to (the host's part). A value that is
//!       already a token of the record's subject is left as it is, so a
//!       record redacted twice is encrypted once; a token of another subject
//!       rejects the record, naming the field;
//!     - `pseudonymize`: the value, of any kind, becomes the subject's
//!       pseudonym `sy:ps:...`, made by the host.
//!   - `keep_last`, `mask_char`: only with `mask`.
//! - `hash_key`: the HMAC key, its UTF-8 bytes used as they are, at least 32
//!   bytes. Required when any rule hashes. `init` never repeats it in an
//!   error message.
//! - `subject_field`: path (no `*`) to the field naming the record's data
//!   subject, e.g. `userId`. Required when a rule encrypts or pseudonymizes
//!   or `key` is `"subject-ref"`, and ignored otherwise. Its value is read
//!   before any rule applies (the subject's id is usually encrypted too); it
//!   must be a non-empty string or a number (its digits as written, so `42`
//!   and `"42"` are the same subject). When it holds a token already (the
//!   record was redacted before), the subject is decrypted from it; if that
//!   subject has been erased since, the record is dropped.
//! - `key`: `"keep"` (default) passes the record's key on; `"subject-ref"`
//!   makes the output key the host's reference to the subject's key
//!   (`sy:key:...`), so a subject's events stay in order on one partition
//!   without its id in the key.
//!
//! Tokens are bound to their place, so an `encrypt` rule must not be
//! followed by a `drop` of an element of an array it encrypts in (the
//! elements after it would move); `init` refuses that order.
//!
//! Canonical JSON text, the input of `hash`: compact (no whitespace),
//! strings in quotes with `"` and `\` escaped as `\"` and `\\`, control
//! characters below U+0020 as `\b`, `\f`, `\n`, `\r`, `\t` or `\u00xx`
//! (lowercase hex), every other character as its UTF-8 bytes; numbers digit
//! for digit as the record wrote them (`1.0` and `1` differ); object keys
//! sorted by their UTF-8 bytes. So `"a@b.c"` is hashed as the 7 bytes
//! `"a@b.c"`, quotes included.
//!
//! `init` refuses a config that breaks any of the above, naming each problem
//! and the rule (index and path) it is in.
//!
//! Per record:
//! - value is a JSON object: emitted with every rule applied, same headers,
//!   to the default target; field order is kept;
//! - a subject is needed but `subject_field` is missing, empty, or neither a
//!   string nor a number: `reject`, naming the field;
//! - value is not valid JSON, or valid JSON but not an object: `reject`,
//!   with the reason (which never quotes the value);
//! - tombstone (no value): passed through unchanged; with `key =
//!   "subject-ref"` it is dropped instead, as it names no subject and its
//!   key may be the very id the option keeps out.
//!
//! The host's subject errors: `retryable` is a retryable failure (the record
//! is retried); `unavailable` (no master key configured) and `invalid` are
//! fatal, with a message saying what to configure.
//!
//! The record's headers, and its key unless `key = "subject-ref"`, are not
//! redacted.

use std::fmt;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use switchyard_guest::json::{config_object, emit, emit_json, kind, object, pointer_token};
use switchyard_guest::subjects::{
    is_token, key_ref_key, token_key, HostSubjects, SubjectError, Subjects,
};
use switchyard_guest::{export_plugin, Error, Event, Outcome, Plugin};

/// Shortest `hash_key` accepted, in bytes: the output size of SHA-256.
const MIN_KEY_BYTES: usize = 32;

/// Prefix of every `hash` token.
const HASH_PREFIX: &str = "hmac:";

const EXAMPLE: &str = r#"{"hash_key": "...", "rules": [{"path": "email", "action": "hash"}]}"#;

const ACTIONS: &str = r#""drop", "mask", "hash", "encrypt" or "pseudonymize""#;

/// A config `init` accepted.
#[derive(Debug)]
struct Config {
    rules: Vec<Rule>,
    /// Keyed HMAC state, cloned for each value; present when a rule hashes.
    hasher: Option<Hasher>,
    /// Where each record names its subject; present when a rule or the key
    /// needs the subject.
    subject_field: Option<SubjectField>,
    key: KeyMode,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    /// The path as the config wrote it, for messages.
    text: String,
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
    Encrypt,
    Pseudonymize,
}

impl Action {
    fn needs_subject(&self) -> bool {
        matches!(self, Action::Encrypt | Action::Pseudonymize)
    }
}

/// `subject_field`: the path as the config wrote it (for reasons) and parsed.
#[derive(Debug)]
struct SubjectField {
    text: String,
    path: Vec<Segment>,
}

/// What the output record is keyed by.
#[derive(Debug, Clone, Copy, PartialEq)]
enum KeyMode {
    /// The record's own key.
    Keep,
    /// The host's reference to the subject's key.
    SubjectRef,
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

    fn process(config: &Config, event: Event) -> Outcome {
        redact_event(config, &HostSubjects, event)
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
        .filter(|k| !matches!(k.as_str(), "rules" | "hash_key" | "subject_field" | "key"))
        .map(|k| format!("{k:?}"))
        .collect();
    if !unknown.is_empty() {
        problems.push(format!(
            "unknown config key{} {} (known: \"rules\", \"hash_key\", \"subject_field\", \"key\")",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", ")
        ));
    }

    let mut rules = Vec::new();
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
                    Ok(rule) => rules.push(rule),
                    Err(mut errs) => problems.append(&mut errs),
                }
            }
        }
        Some(other) => problems.push(format!(
            "\"rules\" must be a list of {{path, action}} objects, got {}",
            kind(&other)
        )),
    }
    problems.extend(moves_after_encrypt(&rules));

    // The key's value never goes into a message: only its kind and whether
    // it is long enough.
    let hashing_rules: Vec<String> = rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.action == Action::Hash)
        .map(|(i, _)| i.to_string())
        .collect();
    let hasher = match top.remove("hash_key") {
        None if hashing_rules.is_empty() => None,
        None => {
            let (noun, verb) = match hashing_rules.len() {
                1 => ("rule", "uses"),
                _ => ("rules", "use"),
            };
            problems.push(format!(
                "\"hash_key\" is required because {noun} {} {verb} \"hash\"",
                hashing_rules.join(", ")
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

    let key = match top.remove("key") {
        None => Some(KeyMode::Keep),
        Some(Value::String(mode)) if mode == "keep" => Some(KeyMode::Keep),
        Some(Value::String(mode)) if mode == "subject-ref" => Some(KeyMode::SubjectRef),
        Some(other) => {
            let got = match &other {
                Value::String(mode) => format!("{mode:?}"),
                other => kind(other).to_owned(),
            };
            problems.push(format!(
                "\"key\" must be \"keep\" (the record's own key, the default) or \
                 \"subject-ref\" (the host's reference to the subject's key), got {got}"
            ));
            None
        }
    };

    let subject_field_given = top.contains_key("subject_field");
    let subject_field = match top.remove("subject_field") {
        None => None,
        Some(Value::String(text)) => match parse_path(&text) {
            Ok(path) if path.contains(&Segment::Each) => {
                problems.push(format!(
                    "\"subject_field\" {text:?} must name a single field: `*` is not allowed"
                ));
                None
            }
            Ok(path) => Some(SubjectField { text, path }),
            Err(e) => {
                problems.push(format!("\"subject_field\" {text:?}: {e}"));
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

    // Who needs the subject; without any, `subject_field` is not read.
    let mut needs: Vec<String> = rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.action.needs_subject())
        .map(|(i, rule)| {
            let action = match rule.action {
                Action::Encrypt => "encrypt",
                _ => "pseudonymize",
            };
            format!("rule {i} uses {action:?}")
        })
        .collect();
    if key == Some(KeyMode::SubjectRef) {
        needs.push("\"key\" is \"subject-ref\"".into());
    }
    if !needs.is_empty() && !subject_field_given {
        problems.push(format!(
            "\"subject_field\" (the path of the field naming the record's data subject, \
             e.g. \"userId\") is required because {}",
            needs.join(", ")
        ));
    }
    let subject_field = subject_field.filter(|_| !needs.is_empty());

    match key {
        Some(key) if problems.is_empty() => Ok(Config {
            rules,
            hasher,
            subject_field,
            key,
        }),
        _ => Err(format!("invalid config: {}", problems.join("; "))),
    }
}

/// A problem for each `drop` of an array element that comes after an
/// `encrypt` in the same array: the elements after the dropped one move down
/// an index, away from the places their tokens are bound to, and could not
/// be decrypted.
fn moves_after_encrypt(rules: &[Rule]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        if rule.action != Action::Drop {
            continue;
        }
        let earlier = rules[..i]
            .iter()
            .position(|e| e.action == Action::Encrypt && shifts(&rule.path, &e.path));
        if let Some(e) = earlier {
            problems.push(format!(
                "rule {i} (path {:?}): dropping an array element after rule {e} (path {:?}) \
                 encrypts in that array would move encrypted values away from the places \
                 their tokens are bound to, so they could not be decrypted; put rule {i} \
                 before rule {e}",
                rule.text, rules[e].text
            ));
        }
    }
    problems
}

/// Whether dropping at `drop` can move what `encrypt` addresses: `drop` ends
/// at an array index and `encrypt` goes through an element of that array.
fn shifts(drop: &[Segment], encrypt: &[Segment]) -> bool {
    let Some((Segment::Name(last), array)) = drop.split_last() else {
        return false;
    };
    let element = match encrypt.get(array.len()) {
        Some(Segment::Each) => true,
        Some(Segment::Name(name)) => array_index(name).is_some(),
        None => false,
    };
    array_index(last).is_some()
        && element
        && array
            .iter()
            .zip(encrypt)
            .all(|(a, b)| a == b || *a == Segment::Each || *b == Segment::Each)
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
                Ok(path) => (label, Some((p.clone(), path))),
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
            "drop" | "mask" | "hash" | "encrypt" | "pseudonymize" => Some(a.as_str()),
            other => {
                problems.push(format!(
                    "{label}: unknown action {other:?} (expected {ACTIONS})"
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
            problems.push(format!("{label}: missing \"action\" ({ACTIONS})"));
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
        Some("encrypt") => Some(Action::Encrypt),
        Some("pseudonymize") => Some(Action::Pseudonymize),
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
        (Some((text, path)), Some(action)) if problems.is_empty() => {
            Ok(Rule { text, path, action })
        }
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

/// The outcome of one record, with `subjects` doing the host's part.
///
/// The reject reasons never quote the value: it may hold the very data being
/// redacted.
fn redact_event(config: &Config, subjects: &dyn Subjects, event: Event) -> Outcome {
    let mut object = match object(&event) {
        Ok(Some(object)) => object,
        // Nothing in a tombstone names its subject, so it cannot be keyed by
        // one; and its key may be the very id `subject-ref` keeps out.
        Ok(None) if config.key == KeyMode::SubjectRef => return Outcome::Drop,
        Ok(None) => return emit(event.key, None, event.headers),
        Err(reason) => return Outcome::Reject(vec![reason]),
    };
    // Read before any rule runs: the rules usually encrypt or drop it.
    let subject = match &config.subject_field {
        None => None,
        Some(field) => match read_subject(&object, field, subjects) {
            Ok(Some(subject)) => Some(subject),
            // Redacted before, for a subject erased since: nothing of the
            // record may flow on.
            Ok(None) => return Outcome::Drop,
            Err(outcome) => return outcome,
        },
    };
    let mut key_ref = None;
    let key = match (config.key, &subject) {
        (KeyMode::SubjectRef, Some(subject)) => match subjects.key_ref(subject) {
            Ok(made) => Some(key_ref.insert(made).clone().into_bytes()),
            Err(e) => return e.into_failure("making the record key"),
        },
        // `init` gives `subject-ref` a subject field, so this is `keep`.
        _ => event.key,
    };
    let mut run = Run {
        hasher: config.hasher.as_ref(),
        subjects,
        subject: subject.as_deref(),
        pseudonym: None,
        key_ref,
    };
    let mut pointer = String::new();
    for rule in &config.rules {
        if let Err(failure) = apply_in_object(
            &mut object,
            &rule.path,
            &rule.action,
            &mut run,
            &mut pointer,
        ) {
            return failure;
        }
    }
    emit_json(key, &Value::Object(object), event.headers)
}

/// The record's subject: the string at `field`, or a number's digits.
/// `Ok(None)` when the field holds a token (the record was redacted before)
/// whose subject has been erased. An `Err` is the record's outcome.
fn read_subject(
    object: &Map<String, Value>,
    field: &SubjectField,
    subjects: &dyn Subjects,
) -> Result<Option<String>, Outcome> {
    let reject = |reason: String| Outcome::Reject(vec![reason]);
    let text = &field.text;
    let (value, pointer) = locate(object, &field.path);
    let Some(Value::String(token)) = value.filter(|v| v.as_str().is_some_and(is_token)) else {
        return subject_of(value, text).map(Some).map_err(reject);
    };
    // Encrypted by an earlier pass: the subject is what it was then, not
    // the token.
    match subjects.decrypt(token, &pointer) {
        Ok(Some(plaintext)) => match serde_json::from_slice::<Value>(&plaintext) {
            Ok(value) => subject_of(Some(&value), text).map(Some).map_err(reject),
            Err(_) => Err(reject(format!(
                "the subject field {text:?} holds a token whose value is not JSON"
            ))),
        },
        Ok(None) => Ok(None),
        Err(SubjectError::Invalid(why)) => Err(reject(format!(
            "the subject field {text:?} holds a token that does not decrypt at {pointer}: {why}"
        ))),
        Err(e) => Err(e.into_failure(&format!("decrypting the subject field {pointer}"))),
    }
}

/// The value at `path` below `object`, if any, and its JSON Pointer.
fn locate<'v>(object: &'v Map<String, Value>, path: &[Segment]) -> (Option<&'v Value>, String) {
    let mut pointer = String::new();
    let mut here: Option<&Value> = None;
    for (i, segment) in path.iter().enumerate() {
        let Segment::Name(name) = segment else {
            // `init` refuses `*` in `subject_field`.
            return (None, pointer);
        };
        let found = match (i, here) {
            (0, _) => object
                .get(name)
                .map(|v| (v, pointer_token(name).into_owned())),
            (_, Some(Value::Object(object))) => object
                .get(name)
                .map(|v| (v, pointer_token(name).into_owned())),
            (_, Some(Value::Array(items))) => {
                array_index(name).and_then(|i| items.get(i).map(|v| (v, i.to_string())))
            }
            _ => None,
        };
        let Some((value, token)) = found else {
            return (None, pointer);
        };
        pointer.push('/');
        pointer.push_str(&token);
        here = Some(value);
    }
    (here, pointer)
}

/// `value` as a subject id, or why it is not one; `text` names the field.
fn subject_of(value: Option<&Value>, text: &str) -> Result<String, String> {
    match value {
        Some(Value::String(s)) if s.is_empty() => {
            Err(format!("the subject field {text:?} is an empty string"))
        }
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(other) => Err(format!(
            "the subject field {text:?} must be a string or a number, got {}",
            kind(other)
        )),
        None => Err(format!(
            "the subject field {text:?} is missing: every record must name its data subject"
        )),
    }
}

/// What the rules need while they run on one record.
struct Run<'a> {
    hasher: Option<&'a Hasher>,
    subjects: &'a dyn Subjects,
    /// The record's subject, read before any rule ran; present when a rule
    /// needs it.
    subject: Option<&'a str>,
    /// The subject's pseudonym, asked of the host at most once per record.
    pseudonym: Option<String>,
    /// The subject's key reference, asked of the host at most once per
    /// record, when a field to encrypt holds a token already.
    key_ref: Option<String>,
}

/// Apply `action` at `path` below `object`, which is at `pointer` in the
/// record (`""` for the record itself). An `Err` is a failure of the host,
/// as the record's outcome.
fn apply_in_object(
    object: &mut Map<String, Value>,
    path: &[Segment],
    action: &Action,
    run: &mut Run,
    pointer: &mut String,
) -> Result<(), Outcome> {
    let Some((Segment::Name(name), rest)) = path.split_first() else {
        // `*` addresses array elements only.
        return Ok(());
    };
    if rest.is_empty() && *action == Action::Drop {
        object.shift_remove(name);
        return Ok(());
    }
    match object.get_mut(name) {
        Some(child) => below(pointer, &pointer_token(name), |pointer| {
            at(child, rest, action, run, pointer)
        }),
        None => Ok(()),
    }
}

/// Apply `action` at `path` below `value`, whatever it is; paths that do not
/// fit the value's shape address nothing.
fn apply_in(
    value: &mut Value,
    path: &[Segment],
    action: &Action,
    run: &mut Run,
    pointer: &mut String,
) -> Result<(), Outcome> {
    match value {
        Value::Object(object) => apply_in_object(object, path, action, run, pointer),
        Value::Array(items) => {
            let Some((segment, rest)) = path.split_first() else {
                return Ok(());
            };
            match segment {
                Segment::Each if rest.is_empty() && *action == Action::Drop => items.clear(),
                Segment::Each => {
                    for (i, item) in items.iter_mut().enumerate() {
                        below(pointer, &i.to_string(), |pointer| {
                            at(item, rest, action, run, pointer)
                        })?;
                    }
                }
                Segment::Name(name) => {
                    let Some(i) = array_index(name).filter(|i| *i < items.len()) else {
                        return Ok(());
                    };
                    if rest.is_empty() && *action == Action::Drop {
                        items.remove(i);
                    } else {
                        // The index as a number: `01` addresses `/1`.
                        below(pointer, &i.to_string(), |pointer| {
                            at(&mut items[i], rest, action, run, pointer)
                        })?;
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Apply `action` to `value` itself when `path` is used up, else below it.
fn at(
    value: &mut Value,
    path: &[Segment],
    action: &Action,
    run: &mut Run,
    pointer: &mut String,
) -> Result<(), Outcome> {
    if path.is_empty() {
        transform(value, action, run, pointer)
    } else {
        apply_in(value, path, action, run, pointer)
    }
}

/// `step` with `pointer` extended by the reference token `token`, restored
/// afterwards.
fn below<T>(pointer: &mut String, token: &str, step: impl FnOnce(&mut String) -> T) -> T {
    let len = pointer.len();
    pointer.push('/');
    pointer.push_str(token);
    let result = step(pointer);
    pointer.truncate(len);
    result
}

/// An all-digits segment as an array index.
fn array_index(segment: &str) -> Option<usize> {
    if segment.bytes().all(|b| b.is_ascii_digit()) {
        segment.parse().ok()
    } else {
        None
    }
}

/// Replace `value`, at `pointer` in the record, by its masked, hashed,
/// encrypted or pseudonymized form (`drop` is done by the container and
/// never reaches here).
fn transform(
    value: &mut Value,
    action: &Action,
    run: &mut Run,
    pointer: &str,
) -> Result<(), Outcome> {
    match action {
        Action::Drop => {}
        Action::Mask { .. } | Action::Hash if value.is_null() => {}
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
            if let Some(hasher) = run.hasher {
                *value = Value::String(hasher.token(value));
            }
        }
        // A token already: a replay, or a second `redact` in the chain, if
        // it is the record's subject's. Another subject's token is not
        // passed on as if it were this one's (it would be decrypted for
        // whoever reads this record).
        Action::Encrypt if value.as_str().is_some_and(is_token) => {
            let Some(subject) = run.subject else {
                return Ok(());
            };
            let key_ref = match &run.key_ref {
                Some(key_ref) => key_ref,
                None => match run.subjects.key_ref(subject) {
                    Ok(key_ref) => run.key_ref.insert(key_ref),
                    Err(e) => {
                        return Err(e.into_failure(&format!("checking the token at {pointer}")))
                    }
                },
            };
            let token = value.as_str().unwrap_or_default();
            if token_key(token) != key_ref_key(key_ref) {
                return Err(Outcome::Reject(vec![format!(
                    "{pointer}: holds a token (sy:v...) that is not the record's subject's; a \
                     token is only kept where it was made"
                )]));
            }
        }
        Action::Encrypt => {
            // `init` refuses encrypt rules without a subject field.
            let Some(subject) = run.subject else {
                return Ok(());
            };
            let plaintext = serde_json::to_vec(value).map_err(|e| {
                Outcome::Fail(Error::Fatal(format!(
                    "encrypting {pointer}: cannot encode the value as JSON: {e}"
                )))
            })?;
            match run.subjects.encrypt(subject, pointer, &plaintext) {
                Ok(token) => *value = Value::String(token),
                Err(e) => return Err(e.into_failure(&format!("encrypting {pointer}"))),
            }
        }
        Action::Pseudonymize => {
            let pseudonym = match (&run.pseudonym, run.subject) {
                (Some(pseudonym), _) => pseudonym.clone(),
                (None, Some(subject)) => match run.subjects.pseudonym(subject) {
                    Ok(pseudonym) => run.pseudonym.insert(pseudonym).clone(),
                    Err(e) => return Err(e.into_failure(&format!("pseudonymizing {pointer}"))),
                },
                // `init` refuses pseudonymize rules without a subject field.
                (None, None) => return Ok(()),
            };
            *value = Value::String(pseudonym);
        }
    }
    Ok(())
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
    use switchyard_guest::subjects::{FakeSubjects, TOKEN_PREFIX};

    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef-test-key";

    fn config(rules: &str) -> Config {
        parse_config(&format!(r#"{{"hash_key": "{KEY}", "rules": {rules}}}"#)).unwrap()
    }

    fn process(config: &Config, record: &[u8]) -> Outcome {
        redact_event(
            config,
            &FakeSubjects::new(),
            switchyard_guest::test_event(None, Some(record)),
        )
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
                r#"{"rules": [{"path": "a", "action": "encrypt"}, {"path": "b", "action": "pseudonymize"}], "key": "subject-ref"}"#,
                "\"subject_field\" (the path of the field naming the record's data subject, \
                 e.g. \"userId\") is required because rule 0 uses \"encrypt\", rule 1 uses \
                 \"pseudonymize\", \"key\" is \"subject-ref\"",
            ),
            (
                r#"{"rules": [{"path": "a", "action": "drop"}], "key": "subject-ref"}"#,
                "is required because \"key\" is \"subject-ref\"",
            ),
            (
                r#"{"rules": [{"path": "a", "action": "drop"}], "key": "userId"}"#,
                "\"key\" must be \"keep\" (the record's own key, the default) or \
                 \"subject-ref\" (the host's reference to the subject's key), got \"userId\"",
            ),
            (
                r#"{"rules": [{"path": "a", "action": "drop"}], "key": true}"#,
                "\"key\" must be \"keep\"",
            ),
            (
                r#"{"rules": [{"path": "a", "action": "encrypt", "keep_last": 1}], "subject_field": "u"}"#,
                "rule 0 (path \"a\"): \"keep_last\" applies only to \"mask\"",
            ),
            (
                r#"{"rules": [{"path": "a", "action": "shred"}]}"#,
                "unknown action \"shred\" (expected \"drop\", \"mask\", \"hash\", \"encrypt\" or \"pseudonymize\")",
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

    const SUBJECT_RULES: &str = r#"{
        "subject_field": "userId",
        "rules": [
            {"path": "userId", "action": "encrypt"},
            {"path": "email", "action": "encrypt"},
            {"path": "profile", "action": "encrypt"},
            {"path": "middleName", "action": "encrypt"},
            {"path": "passengers.*.phone", "action": "encrypt"},
            {"path": "nick", "action": "pseudonymize"},
            {"path": "alias", "action": "pseudonymize"}
        ]
    }"#;

    fn subject_config(config: &str) -> Config {
        parse_config(config).unwrap()
    }

    fn emitted(outcome: Outcome) -> (Option<Vec<u8>>, Value) {
        match outcome {
            Outcome::Emit(mut outputs) if outputs.len() == 1 => {
                let out = outputs.remove(0);
                let value = serde_json::from_slice(&out.value.unwrap()).unwrap();
                (out.key, value)
            }
            other => panic!("expected one output, got {other:?}"),
        }
    }

    fn redact_with(fake: &FakeSubjects, config: &Config, key: &[u8], record: &str) -> Outcome {
        let event = switchyard_guest::test_event(Some(key), Some(record.as_bytes()));
        redact_event(config, fake, event)
    }

    fn token_at<'v>(value: &'v Value, pointer: &str) -> &'v str {
        let token = value.pointer(pointer).and_then(Value::as_str).unwrap();
        assert!(token.starts_with(TOKEN_PREFIX), "{pointer}: {token}");
        token
    }

    #[test]
    fn encrypts_any_value_as_its_json_text_bound_to_its_concrete_pointer() {
        let fake = FakeSubjects::new();
        let record = r#"{"userId": "u-1", "email": "alice@example.com", "profile": {"b": 1, "a": [1.10]},
            "middleName": null, "passengers": [{"phone": "+1"}, {"name": "x"}, {"phone": 37061}],
            "keep": "as is"}"#;
        let (key, out) = emitted(redact_with(
            &fake,
            &subject_config(SUBJECT_RULES),
            b"k",
            record,
        ));
        assert_eq!(
            key.as_deref(),
            Some(&b"k"[..]),
            "the key is kept by default"
        );
        assert!(!out.to_string().contains("alice") && !out.to_string().contains("u-1"));
        assert_eq!(out["keep"], "as is");
        assert_eq!(out["passengers"][1], serde_json::json!({"name": "x"}));
        for (pointer, text) in [
            ("/userId", r#""u-1""#),
            ("/email", r#""alice@example.com""#),
            // Field order and digits as written.
            ("/profile", r#"{"b":1,"a":[1.10]}"#),
            ("/middleName", "null"),
            ("/passengers/0/phone", r#""+1""#),
            ("/passengers/2/phone", "37061"),
        ] {
            let plaintext = fake.decrypt(token_at(&out, pointer), pointer).unwrap();
            assert_eq!(plaintext.as_deref(), Some(text.as_bytes()), "{pointer}");
        }
        // Bound to its place: the first passenger's phone is not the third's.
        let first = token_at(&out, "/passengers/0/phone");
        assert!(matches!(
            fake.decrypt(first, "/passengers/2/phone"),
            Err(SubjectError::Invalid(_))
        ));
    }

    #[test]
    fn the_subject_is_read_before_the_rules_change_it() {
        let fake = FakeSubjects::new();
        let config = subject_config(SUBJECT_RULES);
        let alice = r#"{"userId": "u-1", "email": "alice@example.com"}"#;
        let bob = r#"{"userId": "u-2", "email": "bob@example.com"}"#;
        let (_, alice) = emitted(redact_with(&fake, &config, b"k", alice));
        let (_, bob) = emitted(redact_with(&fake, &config, b"k", bob));
        // Erasing u-1 shreds all of its record, its id included, and only it.
        fake.erase("u-1");
        for pointer in ["/userId", "/email"] {
            assert_eq!(
                fake.decrypt(token_at(&alice, pointer), pointer).unwrap(),
                None
            );
            assert!(fake
                .decrypt(token_at(&bob, pointer), pointer)
                .unwrap()
                .is_some());
        }
    }

    #[test]
    fn a_second_pass_changes_nothing_as_it_finds_the_subject_in_its_token() {
        let fake = FakeSubjects::new();
        let config = subject_config(
            r#"{"subject_field": "user.0.id", "key": "subject-ref", "rules": [
                {"path": "user.0.id", "action": "encrypt"}, {"path": "email", "action": "encrypt"},
                {"path": "nick", "action": "pseudonymize"}]}"#,
        );
        let record = r#"{"user": [{"id": 7}], "email": "a@b.c", "nick": "n"}"#;
        let once = emitted(redact_with(&fake, &config, b"k", record));
        assert_eq!(
            fake.decrypt(token_at(&once.1, "/user/0/id"), "/user/0/id")
                .unwrap()
                .as_deref(),
            Some(&b"7"[..])
        );
        // The subject is 7 again, not the token: same key, same pseudonym,
        // tokens left as they are.
        let replay = once.1.to_string();
        let twice = emitted(redact_with(&fake, &config, b"k", &replay));
        assert_eq!(once, twice);
        assert_eq!(twice.1["nick"], fake.pseudonym("7").unwrap().as_str());

        // Erased since: dropped. A subject token that does not decrypt at
        // the subject field: rejected, naming it.
        fake.erase("7");
        assert!(matches!(
            redact_with(&fake, &config, b"k", &replay),
            Outcome::Drop
        ));
        let moved = format!(
            r#"{{"user": [{{"id": "x"}}, {{"id": {:?}}}]}}"#,
            token_at(&once.1, "/user/0/id")
        );
        let moved_config = subject_config(
            r#"{"subject_field": "user.1.id", "rules": [{"path": "email", "action": "encrypt"}]}"#,
        );
        match redact_with(&fake, &moved_config, b"k", &moved) {
            Outcome::Reject(reasons) => assert_eq!(
                reasons,
                [
                    "the subject field \"user.1.id\" holds a token that does not decrypt at \
                  /user/1/id: token was not made for field /user/1/id"
                ]
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn another_subjects_token_in_a_field_to_encrypt_is_refused_not_kept() {
        let fake = FakeSubjects::new();
        let config = subject_config(
            r#"{"subject_field": "userId", "rules": [{"path": "email", "action": "encrypt"}]}"#,
        );
        let victims = fake
            .encrypt("victim", "/email", br#""v@example.com""#)
            .unwrap();
        let record = serde_json::json!({"userId": "attacker", "email": victims}).to_string();
        match redact_with(&fake, &config, b"k", &record) {
            Outcome::Reject(reasons) => {
                assert_eq!(
                reasons,
                ["/email: holds a token (sy:v...) that is not the record's subject's; a token \
                  is only kept where it was made"]
            )
            }
            other => panic!("{other:?}"),
        }
        // The subject's own token (a second pass) is kept as it is.
        let own = fake
            .encrypt("attacker", "/email", br#""a@example.com""#)
            .unwrap();
        let record = serde_json::json!({"userId": "attacker", "email": own}).to_string();
        let (_, out) = emitted(redact_with(&fake, &config, b"k", &record));
        assert_eq!(out["email"], own.as_str());
    }

    #[test]
    fn pointers_escape_field_names_and_number_indexes_as_written_in_digits() {
        let fake = FakeSubjects::new();
        let config = subject_config(
            r#"{"subject_field": "id", "rules": [
                {"path": "a/b.c~d", "action": "encrypt"}, {"path": "list.01", "action": "encrypt"}]}"#,
        );
        let (_, out) = emitted(redact_with(
            &fake,
            &config,
            b"k",
            r#"{"id": "s", "a/b": {"c~d": true}, "list": [0, 1]}"#,
        ));
        for pointer in ["/a~1b/c~0d", "/list/1"] {
            assert!(
                fake.decrypt(token_at(&out, pointer), pointer)
                    .unwrap()
                    .is_some(),
                "{pointer}"
            );
        }
        assert_eq!(out["list"][0], 0);
    }

    #[test]
    fn pseudonymizes_with_the_subjects_pseudonym() {
        let fake = FakeSubjects::new();
        let config = subject_config(SUBJECT_RULES);
        let (_, out) = emitted(redact_with(
            &fake,
            &config,
            b"k",
            r#"{"userId": 42, "nick": "ally", "alias": null}"#,
        ));
        // A number subject is its digits: the same subject as "42".
        let pseudonym = fake.pseudonym("42").unwrap();
        assert_eq!(out["nick"], pseudonym.as_str());
        assert_eq!(out["alias"], pseudonym.as_str());
        fake.erase("42");
        let (_, later) = emitted(redact_with(
            &fake,
            &config,
            b"k",
            r#"{"userId": "42", "nick": "ally"}"#,
        ));
        assert_ne!(later["nick"], pseudonym.as_str(), "a new data lifetime");
    }

    #[test]
    fn key_subject_ref_keys_by_the_subjects_key_ref_and_drops_tombstones() {
        let fake = FakeSubjects::new();
        let config = subject_config(
            r#"{"subject_field": "user.id", "key": "subject-ref",
                "rules": [{"path": "user", "action": "drop"}]}"#,
        );
        let (key, out) = emitted(redact_with(
            &fake,
            &config,
            b"u-1",
            r#"{"user": {"id": "u-1"}, "n": 1}"#,
        ));
        assert_eq!(out, serde_json::json!({"n": 1}));
        let key_ref = fake.key_ref("u-1").unwrap();
        assert_eq!(key.as_deref(), Some(key_ref.as_bytes()));
        let tombstone = switchyard_guest::test_event(Some(b"u-1"), None);
        assert!(matches!(
            redact_event(&config, &fake, tombstone),
            Outcome::Drop
        ));
        // Without the option, tombstones pass with their key.
        let keep = subject_config(r#"{"rules": [{"path": "a", "action": "drop"}]}"#);
        let tombstone = switchyard_guest::test_event(Some(b"u-1"), None);
        match redact_event(&keep, &fake, tombstone) {
            Outcome::Emit(outputs) => {
                assert_eq!(outputs[0].key.as_deref(), Some(&b"u-1"[..]));
                assert_eq!(outputs[0].value, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn records_without_a_usable_subject_are_rejected_naming_the_field() {
        let fake = FakeSubjects::new();
        let config = subject_config(SUBJECT_RULES);
        for (record, reason) in [
            (
                r#"{"email": "alice@example.com"}"#,
                r#"the subject field "userId" is missing: every record must name its data subject"#,
            ),
            (
                r#"{"userId": ""}"#,
                r#"the subject field "userId" is an empty string"#,
            ),
            (
                r#"{"userId": {"id": "alice@example.com"}}"#,
                r#"the subject field "userId" must be a string or a number, got an object"#,
            ),
            (
                r#"{"userId": null}"#,
                r#"the subject field "userId" must be a string or a number, got null"#,
            ),
        ] {
            match redact_with(&fake, &config, b"k", record) {
                Outcome::Reject(reasons) => assert_eq!(reasons, [reason], "{record}"),
                other => panic!("{record}: expected a reject, got {other:?}"),
            }
        }
        // A config that needs no subject does not read the field.
        let hash_only = parse_config(&format!(
            r#"{{"hash_key": "{KEY}", "subject_field": "userId", "rules": [{{"path": "a", "action": "hash"}}]}}"#
        ))
        .unwrap();
        assert!(hash_only.subject_field.is_none());
        assert!(matches!(
            redact_with(&fake, &hash_only, b"k", r#"{"a": 1}"#),
            Outcome::Emit(_)
        ));
    }

    #[test]
    fn host_failures_fail_the_record_by_kind_naming_the_step() {
        let config = subject_config(SUBJECT_RULES);
        let keyed = subject_config(
            r#"{"subject_field": "userId", "key": "subject-ref", "rules": [{"path": "x", "action": "drop"}]}"#,
        );
        let record = r#"{"userId": "u-1", "nick": "n", "email": "e"}"#;
        let fail = |config: &Config, error: SubjectError| {
            let fake = FakeSubjects::new();
            fake.set_failure(Some(error));
            match redact_with(&fake, config, b"k", record) {
                Outcome::Fail(error) => error,
                other => panic!("expected a failure, got {other:?}"),
            }
        };
        match fail(&config, SubjectError::Retryable("timeout".into())) {
            Error::Retryable(m) => assert!(m.starts_with("encrypting /userId: "), "{m}"),
            other => panic!("{other:?}"),
        }
        match fail(&config, SubjectError::Unavailable("no master key".into())) {
            Error::Fatal(m) => assert!(
                m.starts_with("encrypting /userId: ")
                    && m.ends_with("configure [subjects] with a master key"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        match fail(&config, SubjectError::Invalid("odd".into())) {
            Error::Fatal(m) => assert!(m.contains("(odd)"), "{m}"),
            other => panic!("{other:?}"),
        }
        match fail(&keyed, SubjectError::Retryable("timeout".into())) {
            Error::Retryable(m) => assert!(m.starts_with("making the record key: "), "{m}"),
            other => panic!("{other:?}"),
        }
        let pseudonymize = subject_config(
            r#"{"subject_field": "userId", "rules": [{"path": "nick", "action": "pseudonymize"}]}"#,
        );
        match fail(&pseudonymize, SubjectError::Retryable("timeout".into())) {
            Error::Retryable(m) => assert!(m.starts_with("pseudonymizing /nick: "), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_dropping_array_elements_after_encrypting_in_that_array() {
        let err = refusal(
            r#"{"subject_field": "u", "rules": [
                {"path": "trips.*.from", "action": "encrypt"},
                {"path": "trips.1", "action": "drop"}]}"#,
        );
        assert!(
            err.contains(
                "rule 1 (path \"trips.1\"): dropping an array element after rule 0 \
                 (path \"trips.*.from\") encrypts in that array"
            ) && err.contains("put rule 1 before rule 0"),
            "{err}"
        );
        // The other order, an unrelated array, an object field, or emptying
        // the array move no token.
        for rules in [
            r#"[{"path": "trips.1", "action": "drop"}, {"path": "trips.*.from", "action": "encrypt"}]"#,
            r#"[{"path": "trips.*.from", "action": "encrypt"}, {"path": "legs.1", "action": "drop"}]"#,
            r#"[{"path": "trips.*.from", "action": "encrypt"}, {"path": "trips.*.to", "action": "drop"}]"#,
            r#"[{"path": "trips.*.from", "action": "encrypt"}, {"path": "trips.*", "action": "drop"}]"#,
            r#"[{"path": "user.email", "action": "encrypt"}, {"path": "user.0", "action": "drop"}]"#,
        ] {
            let config = format!(r#"{{"subject_field": "u", "rules": {rules}}}"#);
            assert!(parse_config(&config).is_ok(), "{rules}");
        }
        assert!(shifts(
            &parse_path("a.*.b.2").unwrap(),
            &parse_path("a.0.b.3.c").unwrap()
        ));
    }
}
