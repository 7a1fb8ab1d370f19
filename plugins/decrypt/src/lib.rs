//! `decrypt`: turns the per-subject tokens in named fields of JSON records
//! (written by `redact`'s `encrypt` action) back into the values they hold,
//! for a route whose consumers may see the data. A subject erased on the
//! host stays erased: its tokens decrypt to nothing, and by default its
//! records are dropped.
//!
//! Config (the route's `config` table for this plugin, as JSON):
//!
//! ```json
//! {"fields": ["/userId", "/payload/email", "/passengers/*/phone"], "on_erased": "drop"}
//! ```
//!
//! - `fields` (required, non-empty): JSON Pointers (RFC 6901) of the places
//!   to decrypt, exactly; a segment `*` stands for every element of an
//!   array. A token at one of these places is decrypted; every other token,
//!   including any inside a decrypted value, is left as it is. Decryption is
//!   a grant: name only what the route's consumers may see.
//! - `on_erased`: what happens when a token's subject has been erased:
//!   `"drop"` (default) drops the record, since nothing of an erased subject
//!   should flow on; `"null"` writes `null` in place of the token; `"reject"`
//!   rejects the record, naming each such field.
//! - `one_subject` (default `true`): every token decrypted in a record must
//!   belong to one data subject (be made with one key), and to the record
//!   key's subject when the key is a key reference (`sy:key:...`, what
//!   `redact` keys a subject's records by). A record that mixes subjects is
//!   rejected, naming each field that belongs to another. `false` lets a
//!   record carry several subjects' data (each token still opens only at its
//!   own field, in the topic it was made for).
//!
//! `init` refuses any other key, naming it, and names every problem found.
//!
//! Per record:
//! - a tombstone passes through unchanged;
//! - a value that is not valid JSON is rejected;
//! - any other value: each string at a place `fields` names that is a token
//!   is decrypted by the host for its JSON Pointer in the record
//!   (`/payload/email`, `/passengers/0/phone`) and replaced by its plaintext
//!   parsed as JSON, or, when the plaintext is not JSON, by the plaintext as
//!   a string. The result goes to the default target with the record's key
//!   and headers; a value with nothing decrypted is passed on byte for byte;
//! - a token the host finds invalid (tampered with, made for another field,
//!   or for another topic), a token of another subject (`one_subject`), or
//!   plaintext that is neither JSON nor UTF-8 text rejects the record, the
//!   reason naming its pointer and never the token. Every such reason is
//!   given, and a rejection wins over `on_erased = "drop"`, so that tampering
//!   is seen, not dropped;
//! - the host's `retryable` is a retryable failure; `unavailable` (no master
//!   key on the host) is fatal.

use serde_json::Value;
use switchyard_guest::json::{config_object, emit, emit_json, kind, pointer_token};
use switchyard_guest::subjects::{
    is_token, key_ref_key, token_key, HostSubjects, SubjectError, Subjects,
};
use switchyard_guest::{export_plugin, Event, Outcome, Plugin};

const EXAMPLE: &str = r#"{"fields": ["/userId", "/payload/email"], "on_erased": "drop"}"#;

/// A config `init` accepted.
#[derive(Debug)]
struct Config {
    /// The places to decrypt.
    fields: Vec<Vec<Segment>>,
    on_erased: OnErased,
    one_subject: bool,
}

/// A step of a place in a record.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// A member of an object, or an element of an array by its index.
    Name(String),
    /// Every element of an array.
    Every,
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
        if !matches!(key.as_str(), "fields" | "on_erased" | "one_subject") {
            problems.push(format!(
                "unknown config key {key:?} (known: \"fields\", \"on_erased\", \"one_subject\")"
            ));
        }
    }

    let mut fields = Vec::new();
    match top.remove("fields") {
        None => problems.push(
            "\"fields\" is required: the JSON Pointers of the fields to decrypt, e.g. \
             [\"/userId\", \"/payload/email\"]; only those are decrypted"
                .into(),
        ),
        Some(Value::Array(list)) if list.is_empty() => problems.push(
            "\"fields\" is empty, so nothing would be decrypted: name the JSON Pointers of the \
             fields to decrypt"
                .into(),
        ),
        Some(Value::Array(list)) => {
            for (i, field) in list.iter().enumerate() {
                match field {
                    Value::String(pointer) => match parse_pointer(pointer) {
                        Ok(segments) => fields.push(segments),
                        Err(e) => problems.push(format!("fields[{i}] {pointer:?}: {e}")),
                    },
                    other => problems.push(format!(
                        "fields[{i}] must be a JSON Pointer string such as \"/payload/email\", \
                         got {}",
                        kind(other)
                    )),
                }
            }
        }
        Some(other) => problems.push(format!(
            "\"fields\" must be a list of JSON Pointers such as [\"/payload/email\"], got {}",
            kind(&other)
        )),
    }

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

    let one_subject = match top.remove("one_subject") {
        None => true,
        Some(Value::Bool(one)) => one,
        Some(other) => {
            problems.push(format!(
                "\"one_subject\" must be true (the default) or false, got {}",
                kind(&other)
            ));
            true
        }
    };

    match on_erased {
        Some(on_erased) if problems.is_empty() => Ok(Config {
            fields,
            on_erased,
            one_subject,
        }),
        _ => Err(format!("invalid config: {}", problems.join("; "))),
    }
}

/// The segments of a JSON Pointer, unescaped, `*` standing for every
/// element of an array; `""` is the whole value.
fn parse_pointer(pointer: &str) -> Result<Vec<Segment>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err("a JSON Pointer starts with \"/\", e.g. \"/payload/email\"".into());
    };
    rest.split('/')
        .map(|token| {
            if token == "*" {
                return Ok(Segment::Every);
            }
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
            Ok(Segment::Name(name))
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
    let record_key = event
        .key
        .as_deref()
        .and_then(|k| std::str::from_utf8(k).ok())
        .and_then(key_ref_key)
        .map(str::to_owned);
    let mut walk = Walk {
        config,
        subjects,
        subject: record_key.map(|key| (key, "the record key")),
        reasons: Vec::new(),
        erased: false,
        changed: false,
    };
    for field in &config.fields {
        let mut pointer = String::new();
        if let Err(failure) = walk.visit(&mut value, field, &mut pointer) {
            return failure;
        }
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

/// One record's decryption: what it found so far.
struct Walk<'a> {
    config: &'a Config,
    subjects: &'a dyn Subjects,
    /// The key id the record's tokens must share (`one_subject`), and what
    /// set it: the record key, or the first token's place.
    subject: Option<(String, &'static str)>,
    /// Why the record is rejected, if it is.
    reasons: Vec<String>,
    /// A token of an erased subject was found, under `on_erased = "drop"`.
    erased: bool,
    /// A token was replaced.
    changed: bool,
}

impl Walk<'_> {
    /// Decrypt the token at `rest` below `value` (the value at `pointer`),
    /// wherever `rest` leads. An `Err` is a failure of the host, as the
    /// record's outcome.
    fn visit(
        &mut self,
        value: &mut Value,
        rest: &[Segment],
        pointer: &mut String,
    ) -> Result<(), Outcome> {
        let Some((segment, rest)) = rest.split_first() else {
            return match value {
                Value::String(s) if is_token(s) => {
                    let token = std::mem::take(s);
                    self.token(value, token, pointer)
                }
                _ => Ok(()),
            };
        };
        let len = pointer.len();
        let result = match (segment, value) {
            (Segment::Every, Value::Array(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    pointer.push('/');
                    pointer.push_str(&i.to_string());
                    self.visit(item, rest, pointer)?;
                    pointer.truncate(len);
                }
                Ok(())
            }
            (Segment::Name(name), Value::Object(object)) => match object.get_mut(name) {
                Some(item) => {
                    pointer.push('/');
                    pointer.push_str(&pointer_token(name));
                    self.visit(item, rest, pointer)
                }
                None => Ok(()),
            },
            (Segment::Name(name), Value::Array(items)) => {
                match name.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    Some(item) => {
                        pointer.push('/');
                        pointer.push_str(name);
                        self.visit(item, rest, pointer)
                    }
                    None => Ok(()),
                }
            }
            // Not in this record.
            _ => Ok(()),
        };
        pointer.truncate(len);
        result
    }

    /// Replace `value` (taken out of it as `token`) by what the token holds.
    fn token(&mut self, value: &mut Value, token: String, field: &str) -> Result<(), Outcome> {
        if self.config.one_subject && !self.of_the_records_subject(&token, field) {
            *value = Value::String(token);
            return Ok(());
        }
        match self.subjects.decrypt(&token, field) {
            Ok(Some(plaintext)) => match plaintext_value(plaintext) {
                Ok(plain) => {
                    *value = plain;
                    self.changed = true;
                    return Ok(());
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
                "{field}: the token (sy:v...) does not decrypt here, it was tampered with or \
                 made for another field or topic: {why}"
            )),
            Err(e) => return Err(e.into_failure(&format!("decrypting {field}"))),
        }
        // Not replaced: the record is rejected or dropped, but the walk goes
        // on to find every reason.
        *value = Value::String(token);
        Ok(())
    }

    /// Whether `token` (at `field`) belongs to the record's subject: the
    /// record key's, else the first token's. A reason is noted if not.
    fn of_the_records_subject(&mut self, token: &str, field: &str) -> bool {
        let key = token_key(token).unwrap_or_default();
        match &self.subject {
            None => {
                self.subject = Some((key.to_owned(), "the first token decrypted"));
                true
            }
            Some((subject, _)) if subject == key => true,
            Some((_, by)) => {
                self.reasons.push(format!(
                    "{field}: the token belongs to another data subject than {by}; a record \
                     carries one subject's data (set \"one_subject\": false to allow several)"
                ));
                false
            }
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

    /// `value` keyed by `key`, decrypted under `config`.
    fn run_keyed(fake: &FakeSubjects, config: &Config, key: &[u8], value: &[u8]) -> Outcome {
        let event = Event {
            headers: vec![Header {
                key: "trace".into(),
                value: b"t-1".to_vec(),
            }],
            ..switchyard_guest::test_event(Some(key), Some(value))
        };
        decrypt_event(config, fake, event)
    }

    /// `value` under a key that is not a key reference.
    fn run(fake: &FakeSubjects, config: &Config, value: &[u8]) -> Outcome {
        run_keyed(fake, config, b"k", value)
    }

    fn emitted(outcome: Outcome) -> Value {
        match outcome {
            Outcome::Emit(mut outputs) if outputs.len() == 1 => {
                let out = outputs.remove(0);
                assert_eq!(out.key.as_deref(), Some(&b"k"[..]));
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
    fn decrypts_the_tokens_at_the_named_places_keeping_key_and_headers() {
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
        let every = config(
            r#"{"fields": ["/userId", "/profile", "/note", "/middle", "/passengers/*/phone", "/a~1b/c~0d", "/n", "/absent/x"]}"#,
        );
        let out = emitted(run(&fake, &every, record.to_string().as_bytes()));
        assert_eq!(
            out.to_string(),
            r#"{"userId":"u-1","profile":{"b":1,"a":[1.10]},"note":"not json","middle":null,"passengers":[{"phone":"+1"},{"phone":"+2"}],"a/b":{"c~d":37},"n":1}"#
        );
        // An index names one element.
        let second = seal(&fake, "u-1", "/passengers/1/phone", r#""+3""#);
        let record = json!({"passengers": [{"phone": "+1"}, {"phone": second}]});
        let out = emitted(run(
            &fake,
            &config(r#"{"fields": ["/passengers/1/phone"]}"#),
            record.to_string().as_bytes(),
        ));
        assert_eq!(
            out,
            json!({"passengers": [{"phone": "+1"}, {"phone": "+3"}]})
        );
    }

    #[test]
    fn only_the_named_places_are_decrypted_not_below_them_nor_inside_plaintext() {
        let fake = FakeSubjects::new();
        let email = seal(&fake, "u", "/email", r#""a@b.c""#);
        let phone = seal(&fake, "u", "/phone", r#""+1""#);
        let passenger = seal(&fake, "u", "/passengers/1/phone", r#""+2""#);
        let record =
            json!({ "email": email, "phone": phone, "passengers": [{}, {"phone": passenger}] });
        // `/passengers` names the array, not what is below it.
        let out = emitted(run(
            &fake,
            &config(r#"{"fields": ["/email", "/passengers"]}"#),
            record.to_string().as_bytes(),
        ));
        assert_eq!(
            out,
            json!({ "email": "a@b.c", "phone": phone, "passengers": [{}, {"phone": passenger}] })
        );
        // A token inside a decrypted value stays a token.
        let inner = seal(&fake, "u", "/payload/email", r#""a@b.c""#);
        let outer = seal(
            &fake,
            "u",
            "/payload",
            &json!({ "email": inner }).to_string(),
        );
        let out = emitted(run(
            &fake,
            &config(r#"{"fields": ["/payload"]}"#),
            json!({ "payload": outer }).to_string().as_bytes(),
        ));
        assert_eq!(out, json!({"payload": {"email": inner}}));
        // The whole value, named by "".
        let root = seal(&fake, "u", "", "[1,2]");
        let out = emitted(run(
            &fake,
            &config(r#"{"fields": [""]}"#),
            json!(root).to_string().as_bytes(),
        ));
        assert_eq!(out, json!([1, 2]));
    }

    #[test]
    fn a_record_carries_one_subjects_data_unless_told_otherwise() {
        let fake = FakeSubjects::new();
        let own_id = seal(&fake, "u-1", "/userId", r#""u-1""#);
        let own_email = seal(&fake, "u-1", "/email", r#""u1@example.com""#);
        let other_email = seal(&fake, "u-2", "/email", r#""u2@example.com""#);
        let fields = r#"{"fields": ["/userId", "/email"]}"#;
        // Mixed: the second subject's field is refused, naming it.
        let mixed = json!({"userId": own_id, "email": other_email}).to_string();
        let reasons = rejection(run(&fake, &config(fields), mixed.as_bytes()));
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].starts_with(
                "/email: the token belongs to another data subject than the first token decrypted"
            ),
            "{reasons:?}"
        );
        assert!(!reasons[0].contains("u2@example.com"), "{reasons:?}");
        // Keyed by a subject's key reference: every token must be that
        // subject's, the first one too.
        let own = json!({"userId": own_id, "email": own_email}).to_string();
        let u1 = fake.key_ref("u-1").unwrap();
        let u2 = fake.key_ref("u-2").unwrap();
        match run_keyed(&fake, &config(fields), u1.as_bytes(), own.as_bytes()) {
            Outcome::Emit(outputs) => assert_eq!(
                serde_json::from_slice::<Value>(outputs[0].value.as_deref().unwrap()).unwrap(),
                json!({"userId": "u-1", "email": "u1@example.com"})
            ),
            other => panic!("{other:?}"),
        }
        let reasons = rejection(run_keyed(
            &fake,
            &config(fields),
            u2.as_bytes(),
            own.as_bytes(),
        ));
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("than the record key"), "{reasons:?}");
        // Allowed on request.
        let allowed = config(r#"{"fields": ["/userId", "/email"], "one_subject": false}"#);
        assert_eq!(
            emitted(run(&fake, &allowed, mixed.as_bytes())),
            json!({"userId": "u-1", "email": "u2@example.com"})
        );
    }

    #[test]
    fn an_erased_subject_drops_the_record_or_nulls_or_rejects_its_fields() {
        let fake = FakeSubjects::new();
        let record = json!({
            "email": seal(&fake, "gone", "/email", r#""a@b.c""#),
            "nick": seal(&fake, "gone", "/nick", r#""bob""#),
        })
        .to_string();
        fake.erase("gone");
        let both = r#"["/email", "/nick"]"#;
        assert!(matches!(
            run(
                &fake,
                &config(&format!(r#"{{"fields": {both}}}"#)),
                record.as_bytes()
            ),
            Outcome::Drop
        ));
        assert_eq!(
            emitted(run(
                &fake,
                &config(&format!(r#"{{"fields": {both}, "on_erased": "null"}}"#)),
                record.as_bytes()
            )),
            json!({"email": null, "nick": null})
        );
        assert_eq!(
            rejection(run(
                &fake,
                &config(r#"{"fields": ["/email"], "on_erased": "reject"}"#),
                record.as_bytes()
            )),
            ["/email: the subject of this value has been erased"]
        );
    }

    #[test]
    fn a_tampered_or_moved_token_rejects_naming_the_pointer_only() {
        let fake = FakeSubjects::new();
        let email = seal(&fake, "u", "/email", r#""a@b.c""#);
        let tampered = format!("{email}0");
        let gone = seal(&fake, "u", "/old", "1");
        let record = json!({ "phone": email, "other": tampered, "old": gone }).to_string();
        fake.erase("u");
        // Rejected even under `drop`, with every reason.
        let reasons = rejection(run(
            &fake,
            &config(r#"{"fields": ["/phone", "/other", "/old"]}"#),
            record.as_bytes(),
        ));
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].starts_with(
            "/phone: the token (sy:v...) does not decrypt here, it was tampered with or made \
             for another field or topic: "
        ));
        assert!(reasons[1].starts_with("/other: the token (sy:v...) does not decrypt here"));
        let secret = &email["sy:v2:".len()..];
        assert!(reasons.iter().all(|r| !r.contains(secret)), "{reasons:?}");
    }

    #[test]
    fn plaintext_neither_json_nor_text_is_rejected() {
        let fake = FakeSubjects::new();
        let token = fake.encrypt("u", "/blob", &[0xff, 0xfe]).unwrap();
        assert_eq!(
            rejection(run(
                &fake,
                &config(r#"{"fields": ["/blob"]}"#),
                json!({ "blob": token }).to_string().as_bytes()
            )),
            ["/blob: the decrypted value is neither JSON nor UTF-8 text"]
        );
    }

    #[test]
    fn host_failures_fail_the_record_by_kind() {
        let fake = FakeSubjects::new();
        let record = json!({ "email": seal(&fake, "u", "/email", "1") }).to_string();
        let c = config(r#"{"fields": ["/email"]}"#);
        fake.set_failure(Some(SubjectError::Retryable("timeout".into())));
        match run(&fake, &c, record.as_bytes()) {
            Outcome::Fail(Error::Retryable(m)) => {
                assert!(m.starts_with("decrypting /email: "), "{m}")
            }
            other => panic!("{other:?}"),
        }
        fake.set_failure(Some(SubjectError::Unavailable("no master key".into())));
        match run(&fake, &c, record.as_bytes()) {
            Outcome::Fail(Error::Fatal(m)) => {
                assert!(m.ends_with("configure [subjects] with a master key"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tombstones_pass_bad_json_is_rejected_and_records_without_tokens_pass_as_they_are() {
        let fake = FakeSubjects::new();
        let c = config(r#"{"fields": ["/a", "/b"]}"#);
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
        let plain = br#"{ "a" : "sy:v:not a token",  "b": [1.0] }"#;
        match run(&fake, &c, plain) {
            Outcome::Emit(outputs) => assert_eq!(outputs[0].value.as_deref(), Some(&plain[..])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_pointers_with_escapes_and_wildcards() {
        let name = |s: &str| Segment::Name(s.into());
        assert_eq!(parse_pointer("").unwrap(), Vec::<Segment>::new());
        assert_eq!(
            parse_pointer("/a~1b/c~0d/0").unwrap(),
            [name("a/b"), name("c~d"), name("0")]
        );
        assert_eq!(
            parse_pointer("/a/*/b").unwrap(),
            [name("a"), Segment::Every, name("b")]
        );
        assert_eq!(parse_pointer("/").unwrap(), [name("")]);
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
            ("{}", "\"fields\" is required: the JSON Pointers of the fields to decrypt"),
            (
                r#"{"field": ["/a"], "on_erase": "null"}"#,
                "decrypt: invalid config: unknown config key \"field\" (known: \"fields\", \
                 \"on_erased\", \"one_subject\"); unknown config key \"on_erase\"",
            ),
            (r#"{"fields": []}"#, "\"fields\" is empty, so nothing would be decrypted"),
            (r#"{"fields": "/a"}"#, "\"fields\" must be a list of JSON Pointers"),
            (
                r#"{"fields": ["/a", "b", 3]}"#,
                "fields[1] \"b\": a JSON Pointer starts with \"/\", e.g. \"/payload/email\"; \
                 fields[2] must be a JSON Pointer string such as \"/payload/email\", got a number",
            ),
            (
                r#"{"fields": ["/a"], "on_erased": "keep"}"#,
                "\"on_erased\" must be \"drop\" (the default), \"null\" or \"reject\", got \"keep\"",
            ),
            (r#"{"fields": ["/a"], "on_erased": false}"#, "got a boolean"),
            (
                r#"{"fields": ["/a"], "one_subject": "yes"}"#,
                "\"one_subject\" must be true (the default) or false, got a string",
            ),
        ] {
            let err = refusal(config);
            assert!(err.contains(expect), "{config}: {err}");
        }
        let c = config(r#"{"fields": ["/a"]}"#);
        assert_eq!(c.on_erased, OnErased::Drop);
        assert!(c.one_subject);
    }
}
