//! `decrypt`: turns the per-subject tokens in JSON records (written by
//! `redact`'s `encrypt` action) back into the values they hold, for a route
//! whose consumers may see the data. A subject erased on the host stays
//! erased: its tokens decrypt to nothing, and by default its records are
//! dropped.
//!
//! Config (the route's `config` table for this plugin, as JSON; `{}` is
//! enough):
//!
//! ```json
//! {"fields": ["/email", "/passengers"], "on_erased": "drop"}
//! ```
//!
//! - `fields` (optional, non-empty): JSON Pointers (RFC 6901) of the places
//!   to decrypt; a token at one of them or anywhere below it is decrypted,
//!   every other token is left as it is. Without `fields`, every token in
//!   the value is decrypted.
//! - `on_erased`: what happens when a token's subject has been erased:
//!   `"drop"` (default) drops the record, since nothing of an erased subject
//!   should flow on; `"null"` writes `null` in place of the token; `"reject"`
//!   rejects the record, naming each such field.
//!
//! `init` refuses any other key, naming it, and names every problem found.
//!
//! Per record:
//! - a tombstone passes through unchanged;
//! - a value that is not valid JSON is rejected;
//! - any other value is walked: every string that is a token (starts with
//!   `sy:v1:`) in the places `fields` names is decrypted by the host for its
//!   JSON Pointer in the record (`/payload/email`, `/passengers/0/phone`)
//!   and replaced by its plaintext parsed as JSON, or, when the plaintext is
//!   not JSON, by the plaintext as a string. Tokens inside a decrypted value
//!   are decrypted in turn. The result goes to the default target with the
//!   record's key and headers; a value with nothing decrypted is passed on
//!   byte for byte;
//! - a token the host finds invalid (tampered with, or made for another
//!   field) rejects the record, the reason naming its pointer and never the
//!   token; so does plaintext that is neither JSON nor UTF-8 text. Every such
//!   reason is given, and a rejection wins over `on_erased = "drop"`, so that
//!   tampering is seen, not dropped;
//! - the host's `retryable` is a retryable failure; `unavailable` (no master
//!   key on the host) is fatal.

use serde_json::Value;
use switchyard_guest::json::{config_object, emit, emit_json, kind, pointer_token};
use switchyard_guest::subjects::{is_token, HostSubjects, SubjectError, Subjects, TOKEN_PREFIX};
use switchyard_guest::{export_plugin, Event, Outcome, Plugin};

const EXAMPLE: &str = r#"{"fields": ["/email"], "on_erased": "drop"}"#;

/// A config `init` accepted.
#[derive(Debug)]
struct Config {
    /// The places to decrypt, as unescaped reference tokens; `None` for
    /// everywhere.
    fields: Option<Vec<Vec<String>>>,
    on_erased: OnErased,
}

/// What a token of an erased subject does to its record.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OnErased {
    Drop,
    Null,
    Reject,
}

struct Decrypt;

impl Plugin for Decrypt {
    const NAME: &'static str = "decrypt";
    type Config = Config;

    fn configure(config: &str) -> Result<Config, String> {
        parse_config(config)
    }

    fn process(config: &Config, event: Event) -> Outcome {
        decrypt_event(config, &HostSubjects, event)
    }
}

export_plugin!(Decrypt);

// ---------------------------------------------------------------------------
// Config

fn parse_config(config: &str) -> Result<Config, String> {
    let mut top = config_object(config, EXAMPLE)?;
    let mut problems = Vec::new();
    for key in top.keys() {
        if !matches!(key.as_str(), "fields" | "on_erased") {
            problems.push(format!(
                "unknown config key {key:?} (known: \"fields\", \"on_erased\")"
            ));
        }
    }

    let fields = match top.remove("fields") {
        None => None,
        Some(Value::Array(list)) if list.is_empty() => {
            problems.push(
                "\"fields\" is empty, so nothing would be decrypted; leave it out to decrypt \
                 every token"
                    .into(),
            );
            None
        }
        Some(Value::Array(list)) => {
            let mut fields = Vec::with_capacity(list.len());
            for (i, field) in list.iter().enumerate() {
                match field {
                    Value::String(pointer) => match parse_pointer(pointer) {
                        Ok(tokens) => fields.push(tokens),
                        Err(e) => problems.push(format!("fields[{i}] {pointer:?}: {e}")),
                    },
                    other => problems.push(format!(
                        "fields[{i}] must be a JSON Pointer string such as \"/payload/email\", \
                         got {}",
                        kind(other)
                    )),
                }
            }
            Some(fields)
        }
        Some(other) => {
            problems.push(format!(
                "\"fields\" must be a list of JSON Pointers such as [\"/payload/email\"], got {}",
                kind(&other)
            ));
            None
        }
    };

    let on_erased = match top.remove("on_erased") {
        None => Some(OnErased::Drop),
        Some(Value::String(mode)) if mode == "drop" => Some(OnErased::Drop),
        Some(Value::String(mode)) if mode == "null" => Some(OnErased::Null),
        Some(Value::String(mode)) if mode == "reject" => Some(OnErased::Reject),
        Some(other) => {
            let got = match &other {
                Value::String(mode) => format!("{mode:?}"),
                other => kind(other).to_owned(),
            };
            problems.push(format!(
                "\"on_erased\" must be \"drop\" (the default), \"null\" or \"reject\", got {got}"
            ));
            None
        }
    };

    match on_erased {
        Some(on_erased) if problems.is_empty() => Ok(Config { fields, on_erased }),
        _ => Err(format!("invalid config: {}", problems.join("; "))),
    }
}

/// The reference tokens of a JSON Pointer, unescaped; `""` is the whole
/// value.
fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err("a JSON Pointer starts with \"/\", e.g. \"/payload/email\"".into());
    };
    rest.split('/')
        .map(|token| {
            let mut name = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    name.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => name.push('~'),
                    Some('1') => name.push('/'),
                    _ => {
                        return Err(
                            "`~` must be followed by 0 or 1 (`~0` is `~`, `~1` is `/`)".to_owned()
                        )
                    }
                }
            }
            Ok(name)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Records

/// The outcome of one record, with `subjects` doing the host's part.
fn decrypt_event(config: &Config, subjects: &dyn Subjects, event: Event) -> Outcome {
    let Some(bytes) = &event.value else {
        return emit(event.key, None, event.headers);
    };
    let mut value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(e) => return Outcome::Reject(vec![format!("value is not valid JSON: {e}")]),
    };
    let mut walk = Walk {
        config,
        subjects,
        path: Vec::new(),
        reasons: Vec::new(),
        erased: false,
        changed: false,
    };
    if let Err(failure) = walk.value(&mut value) {
        return failure;
    }
    if !walk.reasons.is_empty() {
        Outcome::Reject(walk.reasons)
    } else if walk.erased {
        Outcome::Drop
    } else if walk.changed {
        emit_json(event.key, &value, event.headers)
    } else {
        emit(event.key, event.value, event.headers)
    }
}

/// One record's walk: where it is, and what it found so far.
struct Walk<'a> {
    config: &'a Config,
    subjects: &'a dyn Subjects,
    /// Reference tokens from the record's root to the current value.
    path: Vec<String>,
    /// Why the record is rejected, if it is.
    reasons: Vec<String>,
    /// A token of an erased subject was found, under `on_erased = "drop"`.
    erased: bool,
    /// A token was replaced.
    changed: bool,
}

impl Walk<'_> {
    /// Decrypt the tokens in `value`, the value at `self.path`. An `Err` is
    /// a failure of the host, as the record's outcome.
    fn value(&mut self, value: &mut Value) -> Result<(), Outcome> {
        match value {
            Value::String(s) if is_token(s) && self.decrypts_here() => {
                let token = std::mem::take(s);
                self.token(value, token)
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.path.push(i.to_string());
                    if self.reaches_below() {
                        self.value(item)?;
                    }
                    self.path.pop();
                }
                Ok(())
            }
            Value::Object(object) => {
                for (name, item) in object.iter_mut() {
                    self.path.push(name.clone());
                    if self.reaches_below() {
                        self.value(item)?;
                    }
                    self.path.pop();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Replace `value` (taken out of it as `token`) by what the token holds.
    fn token(&mut self, value: &mut Value, token: String) -> Result<(), Outcome> {
        let field: String = self
            .path
            .iter()
            .map(|name| format!("/{}", pointer_token(name)))
            .collect();
        match self.subjects.decrypt(&token, &field) {
            Ok(Some(plaintext)) => match plaintext_value(plaintext) {
                Ok(plain) => {
                    *value = plain;
                    self.changed = true;
                    // A decrypted object may hold tokens of its own fields.
                    return self.value(value);
                }
                Err(why) => self.reasons.push(format!("{field}: {why}")),
            },
            Ok(None) => match self.config.on_erased {
                OnErased::Drop => self.erased = true,
                OnErased::Null => {
                    *value = Value::Null;
                    self.changed = true;
                    return Ok(());
                }
                OnErased::Reject => self.reasons.push(format!(
                    "{field}: the subject of this value has been erased"
                )),
            },
            Err(SubjectError::Invalid(why)) => self.reasons.push(format!(
                "{field}: the token ({TOKEN_PREFIX}...) does not decrypt here, it was tampered \
                 with or made for another field: {why}"
            )),
            Err(e) => return Err(e.into_failure(&format!("decrypting {field}"))),
        }
        // Not replaced: the record is rejected or dropped, but the walk goes
        // on to find every reason.
        *value = Value::String(token);
        Ok(())
    }

    /// Whether tokens at the current place are to be decrypted.
    fn decrypts_here(&self) -> bool {
        match &self.config.fields {
            None => true,
            Some(fields) => fields.iter().any(|f| self.path.starts_with(f)),
        }
    }

    /// Whether the current place is, or leads to, a place to decrypt.
    fn reaches_below(&self) -> bool {
        match &self.config.fields {
            None => true,
            Some(fields) => fields
                .iter()
                .any(|f| self.path.starts_with(f) || f.starts_with(&self.path)),
        }
    }
}

/// A plaintext as the value it stands for: its JSON, else its text.
fn plaintext_value(plaintext: Vec<u8>) -> Result<Value, &'static str> {
    if let Ok(value) = serde_json::from_slice(&plaintext) {
        return Ok(value);
    }
    String::from_utf8(plaintext)
        .map(Value::String)
        .map_err(|_| "the decrypted value is neither JSON nor UTF-8 text")
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use switchyard_guest::{Error, Header};

    use super::*;
    use switchyard_guest::subjects::FakeSubjects;

    fn config(json: &str) -> Config {
        parse_config(json).unwrap()
    }

    fn refusal(config: &str) -> String {
        switchyard_guest::init::<Decrypt>(config).unwrap_err()
    }

    fn run(fake: &FakeSubjects, config: &Config, value: &[u8]) -> Outcome {
        let event = Event {
            headers: vec![Header {
                key: "trace".into(),
                value: b"t-1".to_vec(),
            }],
            ..switchyard_guest::test_event(Some(b"sy:key:k"), Some(value))
        };
        decrypt_event(config, fake, event)
    }

    fn emitted(outcome: Outcome) -> Value {
        match outcome {
            Outcome::Emit(mut outputs) if outputs.len() == 1 => {
                let out = outputs.remove(0);
                assert_eq!(out.key.as_deref(), Some(&b"sy:key:k"[..]));
                assert_eq!(out.headers.len(), 1);
                assert_eq!(out.target, None);
                serde_json::from_slice(&out.value.unwrap()).unwrap()
            }
            other => panic!("expected one output, got {other:?}"),
        }
    }

    fn rejection(outcome: Outcome) -> Vec<String> {
        match outcome {
            Outcome::Reject(reasons) => reasons,
            other => panic!("expected a reject, got {other:?}"),
        }
    }

    /// A token `fake` made for `subject` of `plaintext` at `field`.
    fn seal(fake: &FakeSubjects, subject: &str, field: &str, plaintext: &str) -> String {
        fake.encrypt(subject, field, plaintext.as_bytes()).unwrap()
    }

    #[test]
    fn decrypts_every_token_at_its_pointer_keeping_key_and_headers() {
        let fake = FakeSubjects::new();
        let record = json!({
            "userId": seal(&fake, "u-1", "/userId", r#""u-1""#),
            "profile": seal(&fake, "u-1", "/profile", r#"{"b":1,"a":[1.10]}"#),
            "note": seal(&fake, "u-1", "/note", "not json"),
            "middle": seal(&fake, "u-1", "/middle", "null"),
            "passengers": [
                {"phone": seal(&fake, "u-1", "/passengers/0/phone", r#""+1""#)},
                {"phone": "+2"},
            ],
            "a/b": {"c~d": seal(&fake, "u-1", "/a~1b/c~0d", "37")},
            "n": 1,
        });
        let out = emitted(run(&fake, &config("{}"), record.to_string().as_bytes()));
        assert_eq!(
            out.to_string(),
            r#"{"userId":"u-1","profile":{"b":1,"a":[1.10]},"note":"not json","middle":null,"passengers":[{"phone":"+1"},{"phone":"+2"}],"a/b":{"c~d":37},"n":1}"#
        );
    }

    #[test]
    fn tokens_inside_a_decrypted_value_are_decrypted_and_a_root_token_too() {
        let fake = FakeSubjects::new();
        let inner = seal(&fake, "u", "/payload/email", r#""a@b.c""#);
        let outer = seal(
            &fake,
            "u",
            "/payload",
            &json!({ "email": inner }).to_string(),
        );
        let out = emitted(run(
            &fake,
            &config("{}"),
            json!({ "payload": outer }).to_string().as_bytes(),
        ));
        assert_eq!(out, json!({"payload": {"email": "a@b.c"}}));

        let root = seal(&fake, "u", "", "[1,2]");
        let out = emitted(run(
            &fake,
            &config("{}"),
            json!(root).to_string().as_bytes(),
        ));
        assert_eq!(out, json!([1, 2]));
    }

    #[test]
    fn fields_limit_decryption_to_those_places_and_below() {
        let fake = FakeSubjects::new();
        let email = seal(&fake, "u", "/email", r#""a@b.c""#);
        let phone = seal(&fake, "u", "/phone", r#""+1""#);
        let passenger = seal(&fake, "u", "/passengers/1/phone", r#""+2""#);
        let record =
            json!({ "email": email, "phone": phone, "passengers": [{}, {"phone": passenger}] });
        let out = emitted(run(
            &fake,
            &config(r#"{"fields": ["/email", "/passengers"]}"#),
            record.to_string().as_bytes(),
        ));
        assert_eq!(
            out,
            json!({ "email": "a@b.c", "phone": phone, "passengers": [{}, {"phone": "+2"}] })
        );
    }

    #[test]
    fn an_erased_subject_drops_the_record_or_nulls_or_rejects_its_fields() {
        let fake = FakeSubjects::new();
        let record = json!({
            "email": seal(&fake, "gone", "/email", r#""a@b.c""#),
            "friend": seal(&fake, "kept", "/friend", r#""bob""#),
        })
        .to_string();
        fake.erase("gone");
        assert!(matches!(
            run(&fake, &config("{}"), record.as_bytes()),
            Outcome::Drop
        ));
        assert_eq!(
            emitted(run(
                &fake,
                &config(r#"{"on_erased": "null"}"#),
                record.as_bytes()
            )),
            json!({"email": null, "friend": "bob"})
        );
        assert_eq!(
            rejection(run(
                &fake,
                &config(r#"{"on_erased": "reject"}"#),
                record.as_bytes()
            )),
            ["/email: the subject of this value has been erased"]
        );
        // Outside `fields`, an erased token is not looked at.
        let friend_only = config(r#"{"fields": ["/friend"]}"#);
        let out = emitted(run(&fake, &friend_only, record.as_bytes()));
        assert_eq!(out["friend"], "bob");
    }

    #[test]
    fn a_tampered_or_moved_token_rejects_naming_the_pointer_only() {
        let fake = FakeSubjects::new();
        let email = seal(&fake, "u", "/email", r#""a@b.c""#);
        let tampered = format!("{email}0");
        let gone = seal(&fake, "gone", "/old", "1");
        fake.erase("gone");
        let record = json!({ "phone": email, "other": tampered, "old": gone }).to_string();
        // Rejected even under `drop`, with every reason.
        let reasons = rejection(run(&fake, &config("{}"), record.as_bytes()));
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].starts_with(
            "/phone: the token (sy:v1:...) does not decrypt here, it was tampered with or made \
             for another field: "
        ));
        assert!(reasons[1].starts_with("/other: the token (sy:v1:...) does not decrypt here"));
        let secret = &email[TOKEN_PREFIX.len()..];
        assert!(reasons.iter().all(|r| !r.contains(secret)), "{reasons:?}");
    }

    #[test]
    fn plaintext_neither_json_nor_text_is_rejected() {
        let fake = FakeSubjects::new();
        let token = fake.encrypt("u", "/blob", &[0xff, 0xfe]).unwrap();
        assert_eq!(
            rejection(run(
                &fake,
                &config("{}"),
                json!({ "blob": token }).to_string().as_bytes()
            )),
            ["/blob: the decrypted value is neither JSON nor UTF-8 text"]
        );
    }

    #[test]
    fn host_failures_fail_the_record_by_kind() {
        let fake = FakeSubjects::new();
        let record = json!({ "email": seal(&fake, "u", "/email", "1") }).to_string();
        fake.set_failure(Some(SubjectError::Retryable("timeout".into())));
        match run(&fake, &config("{}"), record.as_bytes()) {
            Outcome::Fail(Error::Retryable(m)) => {
                assert!(m.starts_with("decrypting /email: "), "{m}")
            }
            other => panic!("{other:?}"),
        }
        fake.set_failure(Some(SubjectError::Unavailable("no master key".into())));
        match run(&fake, &config("{}"), record.as_bytes()) {
            Outcome::Fail(Error::Fatal(m)) => {
                assert!(m.ends_with("configure [subjects] with a master key"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tombstones_pass_bad_json_is_rejected_and_records_without_tokens_pass_as_they_are() {
        let fake = FakeSubjects::new();
        let c = config("{}");
        let tombstone = switchyard_guest::test_event(Some(b"k"), None);
        match decrypt_event(&c, &fake, tombstone) {
            Outcome::Emit(outputs) => {
                assert_eq!(outputs[0].value, None);
                assert_eq!(outputs[0].key.as_deref(), Some(&b"k"[..]));
            }
            other => panic!("{other:?}"),
        }
        let reasons = rejection(run(&fake, &c, b"{\"email\": \"a@b"));
        assert!(
            reasons[0].starts_with("value is not valid JSON: "),
            "{reasons:?}"
        );
        let plain = br#"{ "a" : "sy:v0:not a token",  "b": [1.0] }"#;
        match run(&fake, &c, plain) {
            Outcome::Emit(outputs) => assert_eq!(outputs[0].value.as_deref(), Some(&plain[..])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_pointers_with_escapes() {
        assert_eq!(parse_pointer("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_pointer("/a~1b/c~0d/0").unwrap(), ["a/b", "c~d", "0"]);
        assert_eq!(parse_pointer("/").unwrap(), [""]);
        assert!(parse_pointer("/a~2")
            .unwrap_err()
            .contains("`~` must be followed by 0 or 1"));
        assert!(parse_pointer("/a~").is_err());
        assert!(parse_pointer("email")
            .unwrap_err()
            .contains("starts with \"/\""));
    }

    #[test]
    fn refuses_bad_configs_naming_every_problem() {
        for (config, expect) in [
            ("[]", "decrypt: config must be an object like"),
            (
                r#"{"field": ["/a"], "on_erase": "null"}"#,
                "decrypt: invalid config: unknown config key \"field\" (known: \"fields\", \
                 \"on_erased\"); unknown config key \"on_erase\"",
            ),
            (r#"{"fields": []}"#, "\"fields\" is empty, so nothing would be decrypted"),
            (r#"{"fields": "/a"}"#, "\"fields\" must be a list of JSON Pointers"),
            (
                r#"{"fields": ["/a", "b", 3]}"#,
                "fields[1] \"b\": a JSON Pointer starts with \"/\", e.g. \"/payload/email\"; \
                 fields[2] must be a JSON Pointer string such as \"/payload/email\", got a number",
            ),
            (
                r#"{"on_erased": "keep"}"#,
                "\"on_erased\" must be \"drop\" (the default), \"null\" or \"reject\", got \"keep\"",
            ),
            (r#"{"on_erased": false}"#, "got a boolean"),
        ] {
            let err = refusal(config);
            assert!(err.contains(expect), "{config}: {err}");
        }
        assert_eq!(config("{}").on_erased, OnErased::Drop);
    }
}
