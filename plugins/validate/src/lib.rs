//! `validate`: checks records whose value is a JSON object against
//! declarative per-field rules, fills in defaults, and rejects invalid
//! records with every reason.
//!
//! Config (the route's `config` table for this plugin; the host hands it to
//! `init` as JSON). The rules of an event API where `userId` and `type` are
//! required, `type` is one of three values, `timestamp` is optional and
//! filled with the server's time when missing, and `data` is optional:
//!
//! ```toml
//! [[routes.chain]]
//! plugin = "validate"
//! config.unknown_fields = "allow"
//! config.fields.userId = { required = true, type = "string" }
//! config.fields.type = { required = true, type = "string", one_of = ["login", "logout", "purchase"] }
//! config.fields.timestamp = { type = "string", format = "rfc3339", default = "now" }
//! config.fields.data = { type = "object", nullable = true }
//! ```
//!
//! Top-level keys:
//! - `fields` (required): a table mapping top-level field names to rules;
//! - `unknown_fields`: what to do with a field `fields` does not name:
//!   `"allow"` (the default) keeps it, `"drop"` removes it, `"reject"`
//!   rejects the record.
//!
//! Rules of one field (all optional; `{}` declares a field that may be
//! anything but null):
//! - `required = true`: the field must be present;
//! - `type`: `"string"`, `"number"`, `"integer"` (a number with no
//!   fractional part: `2`, `2.0`, `2e3`), `"boolean"`, `"object"` or
//!   `"array"`;
//! - `nullable = true`: `null` is accepted (and skips the other checks);
//!   otherwise a `null` is an error, unless the field has a default;
//! - `one_of = [...]`: the allowed values (numbers compare by value, so
//!   `2.0` matches `2`);
//! - `format = "rfc3339"`: an RFC 3339 date-time such as
//!   `2025-11-06T18:00:00Z` or `2025-11-06T19:00:00.5+01:00`;
//! - `min_length`, `max_length`: bounds on a string's length in characters
//!   (Unicode scalar values);
//! - `default`: the value written when the field is missing (appended after
//!   the record's own fields, by field name) or `null` in a field that is
//!   not nullable (replaced in place).
//!   The string `"now"` means the host clock's current time as RFC 3339 UTC
//!   with milliseconds, e.g. `2025-11-06T18:00:00.123Z`. A TOML date-time
//!   written unquoted (`default = 2025-01-01T00:00:00Z`) is taken as its
//!   RFC 3339 string.
//!
//! `format`, `min_length` and `max_length` imply `type = "string"`. `init`
//! refuses a config with an unknown key or rule, a rule of the wrong type, a
//! rule that contradicts another (`format` on a number, `min_length` above
//! `max_length`, a default on a required field), or a `one_of` value or
//! default that breaks the field's own rules; the message names every
//! problem with its place, e.g. `fields.userId: unknown rule "requird"`.
//!
//! Per record:
//! - value is a JSON object that passes every rule: emitted, same key and
//!   headers, to the default target. If nothing had to change, the value is
//!   passed on byte for byte; otherwise it is re-encoded compactly, keeping
//!   the record's field order and every digit of its numbers;
//! - a rule fails: `reject` with one reason per problem, each naming the
//!   field, e.g. `userId: required`, `type: must be one of login, logout,
//!   purchase (got "signup")`: first the record's fields in its order, then
//!   the missing required fields by name;
//! - value is not valid JSON, or valid JSON but not an object: `reject`,
//!   with the reason;
//! - tombstone (no value): passed through unchanged.

use std::num::NonZeroU8;

use serde_json::{Map, Value};
use switchyard_guest::json::{emit, emit_json, kind, object};
use switchyard_guest::{clock, export_plugin, Event, Outcome, Plugin};
use time::format_description::well_known::iso8601::{Config as Iso8601Config, TimePrecision};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::OffsetDateTime;

struct Validate;

impl Plugin for Validate {
    const NAME: &'static str = "validate";
    type Config = Config;

    fn configure(config: &str) -> Result<Config, String> {
        Config::parse(config).map_err(|problems| problems.join("; "))
    }

    fn process(config: &Config, event: Event) -> Outcome {
        process_one(event, config, &clock::now_ms)
    }
}

export_plugin!(Validate);

/// An accepted configuration.
#[derive(Debug)]
struct Config {
    /// Declared fields and their rules, sorted by name (the host's TOML
    /// tables reach `init` sorted anyway, so config order means nothing).
    fields: Vec<(String, Rule)>,
    unknown_fields: UnknownFields,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnknownFields {
    Allow,
    Drop,
    Reject,
}

/// The rules of one field.
#[derive(Debug, Clone, Default)]
struct Rule {
    required: bool,
    nullable: bool,
    kind: Option<Type>,
    one_of: Option<Vec<Value>>,
    format: Option<Format>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    default: Option<DefaultValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Rfc3339,
}

#[derive(Debug, Clone)]
enum DefaultValue {
    Literal(Value),
    /// The current time as an RFC 3339 UTC string.
    Now,
}

const CONFIG_KEYS: &str = "fields, unknown_fields";
const RULES: &str =
    "required, type, nullable, one_of, format, min_length, max_length, default, default_null";
const TYPES: &str = "\"string\", \"number\", \"integer\", \"boolean\", \"object\" or \"array\"";
const EXAMPLE: &str = r#"fields = { userId = { required = true, type = "string" } }"#;
/// How the host's TOML-to-JSON conversion writes a TOML date-time.
const TOML_DATETIME: &str = "$__toml_private_datetime";

impl Config {
    /// The config, or every problem found in it.
    fn parse(text: &str) -> Result<Config, Vec<String>> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| vec![format!("config is not valid JSON: {e}")])?;
        let Value::Object(top) = value else {
            return Err(vec![format!(
                "config must be a table like {EXAMPLE}, got {}",
                kind(&value)
            )]);
        };
        let mut problems = Vec::new();
        let mut config = Config {
            fields: Vec::new(),
            unknown_fields: UnknownFields::Allow,
        };
        for (key, value) in &top {
            match key.as_str() {
                "fields" => match value {
                    Value::Object(fields) => {
                        for (name, rule) in fields {
                            if let Some(rule) = parse_rule(name, rule, &mut problems) {
                                config.fields.push((name.clone(), rule));
                            }
                        }
                    }
                    other => problems.push(format!(
                        "fields: must be a table mapping field names to rules, e.g. {EXAMPLE} \
                         (got {})",
                        shown(other)
                    )),
                },
                "unknown_fields" => match value.as_str() {
                    Some("allow") => config.unknown_fields = UnknownFields::Allow,
                    Some("drop") => config.unknown_fields = UnknownFields::Drop,
                    Some("reject") => config.unknown_fields = UnknownFields::Reject,
                    _ => problems.push(format!(
                        "unknown_fields: must be \"allow\", \"drop\" or \"reject\" (got {})",
                        shown(value)
                    )),
                },
                _ => problems.push(format!(
                    "unknown config key {key:?} (known keys: {CONFIG_KEYS})"
                )),
            }
        }
        if !top.contains_key("fields") {
            problems.push(format!(
                "config needs a \"fields\" table mapping field names to rules, e.g. {EXAMPLE}"
            ));
        }
        if problems.is_empty() {
            config.fields.sort_by(|(a, _), (b, _)| a.cmp(b));
            Ok(config)
        } else {
            Err(problems)
        }
    }

    fn declares(&self, name: &str) -> bool {
        self.rule(name).is_some()
    }

    /// The rules of field `name`, if the config declares it.
    fn rule(&self, name: &str) -> Option<&Rule> {
        let i = self
            .fields
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()?;
        Some(&self.fields[i].1)
    }
}

/// The rules of field `name`, or `None` after adding its problems.
fn parse_rule(name: &str, value: &Value, problems: &mut Vec<String>) -> Option<Rule> {
    let Value::Object(table) = value else {
        problems.push(format!(
            "fields.{name}: must be a table of rules like {{ required = true, type = \"string\" }} \
             (got {})",
            shown(value)
        ));
        return None;
    };
    let before = problems.len();
    let mut rule = Rule::default();
    for (key, value) in table {
        let at = format!("fields.{name}.{key}");
        let mut problem = |expected: &str| {
            problems.push(format!("{at}: must be {expected} (got {})", shown(value)));
        };
        match key.as_str() {
            "required" | "nullable" => match value.as_bool() {
                Some(b) if key == "required" => rule.required = b,
                Some(b) => rule.nullable = b,
                None => problem("true or false"),
            },
            "type" => match value.as_str().and_then(Type::from_name) {
                Some(t) => rule.kind = Some(t),
                None => problem(TYPES),
            },
            "one_of" => match untoml(value) {
                Value::Array(allowed) if !allowed.is_empty() => rule.one_of = Some(allowed),
                _ => problem("a non-empty list of allowed values"),
            },
            "format" => match value.as_str() {
                Some("rfc3339") => rule.format = Some(Format::Rfc3339),
                _ => problem("\"rfc3339\""),
            },
            "min_length" | "max_length" => match value.as_u64() {
                Some(n) if key == "min_length" => rule.min_length = Some(n),
                Some(n) => rule.max_length = Some(n),
                None => problem("a whole number of characters, 0 or more"),
            },
            // TOML has no null: this is how a routes file says
            // `default = null`.
            "default_null" => match value.as_bool() {
                Some(true) if rule.default.is_some() => problems.push(format!(
                    "fields.{name}: give `default` or `default_null`, not both"
                )),
                Some(true) => rule.default = Some(DefaultValue::Literal(Value::Null)),
                Some(false) => {}
                None => problem("true or false"),
            },
            "default" if rule.default.is_some() => problems.push(format!(
                "fields.{name}: give `default` or `default_null`, not both"
            )),
            "default" => {
                rule.default = Some(match untoml(value) {
                    Value::String(s) if s == "now" => DefaultValue::Now,
                    literal => DefaultValue::Literal(literal),
                })
            }
            _ => problems.push(format!(
                "fields.{name}: unknown rule {key:?} (known rules: {RULES})"
            )),
        }
    }

    // Rules that contradict each other.
    for (present, rule_name) in [
        (rule.format.is_some(), "format"),
        (rule.min_length.is_some(), "min_length"),
        (rule.max_length.is_some(), "max_length"),
    ] {
        match rule.kind {
            _ if !present => {}
            None | Some(Type::String) => rule.kind = Some(Type::String),
            Some(other) => problems.push(format!(
                "fields.{name}.{rule_name}: applies to strings only, but type is \"{}\"",
                other.name()
            )),
        }
    }
    if let (Some(min), Some(max)) = (rule.min_length, rule.max_length) {
        if min > max {
            problems.push(format!(
                "fields.{name}: min_length {min} is greater than max_length {max}"
            ));
        }
    }
    if rule.required && rule.default.is_some() {
        problems.push(format!(
            "fields.{name}.default: a required field cannot have a default (remove one of them)"
        ));
    }
    if problems.len() > before {
        return None;
    }

    // Allowed values and the default must pass the field's own rules.
    if let Some(allowed) = &rule.one_of {
        let plain = Rule {
            one_of: None,
            ..rule.clone()
        };
        for value in allowed {
            let broken = plain.check(value);
            if !broken.is_empty() {
                problems.push(format!(
                    "fields.{name}.one_of: {} breaks the field's own rules: {}",
                    shown(value),
                    broken.join(", ")
                ));
            }
        }
    }
    match &rule.default {
        Some(DefaultValue::Literal(value)) => {
            let broken = rule.check(value);
            if !broken.is_empty() {
                problems.push(format!(
                    "fields.{name}.default: {} breaks the field's own rules: {}",
                    shown(value),
                    broken.join(", ")
                ));
            }
        }
        Some(DefaultValue::Now) => {
            let epoch = utc_ms(0).expect("the epoch is in range");
            let broken = rule.check(&Value::String(epoch));
            if !broken.is_empty() {
                problems.push(format!(
                    "fields.{name}.default: \"now\" (the current time as an RFC 3339 string) \
                     breaks the field's own rules: {}",
                    broken.join(", ")
                ));
            }
        }
        None => {}
    }
    (problems.len() == before).then_some(rule)
}

impl Type {
    fn from_name(name: &str) -> Option<Type> {
        Some(match name {
            "string" => Type::String,
            "number" => Type::Number,
            "integer" => Type::Integer,
            "boolean" => Type::Boolean,
            "object" => Type::Object,
            "array" => Type::Array,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Type::String => "string",
            Type::Number => "number",
            Type::Integer => "integer",
            Type::Boolean => "boolean",
            Type::Object => "object",
            Type::Array => "array",
        }
    }

    fn matches(self, value: &Value) -> bool {
        match self {
            Type::String => value.is_string(),
            Type::Number => value.is_number(),
            Type::Integer => {
                matches!(value, Value::Number(n) if decimal(&n.to_string()).is_integral())
            }
            Type::Boolean => value.is_boolean(),
            Type::Object => value.is_object(),
            Type::Array => value.is_array(),
        }
    }
}

impl Rule {
    /// What is wrong with `value` as this field's value (empty if nothing).
    fn check(&self, value: &Value) -> Vec<String> {
        if value.is_null() {
            return if self.nullable {
                Vec::new()
            } else {
                vec!["must not be null".into()]
            };
        }
        if let Some(kind) = self.kind {
            if !kind.matches(value) {
                let article =
                    if kind == Type::Integer || kind == Type::Object || kind == Type::Array {
                        "an"
                    } else {
                        "a"
                    };
                return vec![format!(
                    "must be {article} {} (got {})",
                    kind.name(),
                    shown(value)
                )];
            }
        }
        let mut problems = Vec::new();
        if let Some(allowed) = &self.one_of {
            if !allowed.iter().any(|a| same(a, value)) {
                problems.push(format!(
                    "must be one of {} (got {})",
                    listed(allowed),
                    shown(value)
                ));
            }
        }
        if let Value::String(s) = value {
            if self.format == Some(Format::Rfc3339) && !is_rfc3339(s) {
                problems.push(format!(
                    "must be an RFC 3339 timestamp (got {})",
                    shown(value)
                ));
            }
            let length = s.chars().count() as u64;
            if let Some(min) = self.min_length.filter(|&min| length < min) {
                problems.push(format!(
                    "must be at least {} long (got {length})",
                    characters(min)
                ));
            }
            if let Some(max) = self.max_length.filter(|&max| length > max) {
                problems.push(format!(
                    "must be at most {} long (got {length})",
                    characters(max)
                ));
            }
        }
        problems
    }
}

fn process_one(event: Event, config: &Config, now_ms: &dyn Fn() -> i64) -> Outcome {
    let object = match object(&event) {
        Ok(Some(object)) => object,
        Ok(None) => return emit(event.key, None, event.headers),
        Err(reason) => return Outcome::Reject(vec![reason]),
    };
    match validate(object, config, now_ms) {
        Ok(None) => emit(event.key, event.value, event.headers),
        Ok(Some(changed)) => emit_json(event.key, &Value::Object(changed), event.headers),
        Err(reasons) => Outcome::Reject(reasons),
    }
}

/// Check `object` against `config`: `Ok(None)` if it passes as it is,
/// `Ok(Some(new object))` if it passes once defaults are filled in (or
/// unknown fields dropped), `Err` with every problem otherwise.
fn validate(
    mut object: Map<String, Value>,
    config: &Config,
    now_ms: &dyn Fn() -> i64,
) -> Result<Option<Map<String, Value>>, Vec<String>> {
    let mut problems = Vec::new();
    let mut fill = Vec::new();
    // The record's fields, in its order.
    for (name, value) in &object {
        match (config.rule(name), value) {
            (
                Some(Rule {
                    nullable: false,
                    default: Some(default),
                    ..
                }),
                Value::Null,
            ) => fill.push((name.clone(), default)),
            (Some(rule), value) => problems.extend(
                rule.check(value)
                    .into_iter()
                    .map(|p| format!("{name}: {p}")),
            ),
            (None, _) if config.unknown_fields == UnknownFields::Reject => {
                problems.push(format!("{name}: unknown field"))
            }
            (None, _) => {}
        }
    }
    // Then the declared fields it lacks, by name.
    for (name, rule) in &config.fields {
        if !object.contains_key(name) {
            if let Some(default) = &rule.default {
                fill.push((name.clone(), default));
            } else if rule.required {
                problems.push(format!("{name}: required"));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let mut changed = false;
    if config.unknown_fields == UnknownFields::Drop {
        let before = object.len();
        object.retain(|k, _| config.declares(k));
        changed = object.len() != before;
    }
    if !fill.is_empty() {
        let mut now = None;
        for (name, default) in fill {
            let value = match default {
                DefaultValue::Literal(value) => value.clone(),
                DefaultValue::Now => Value::String(match &now {
                    Some(stamp) => String::clone(stamp),
                    None => {
                        let ms = now_ms();
                        let stamp = utc_ms(ms).ok_or_else(|| {
                            vec![format!(
                                "{name}: the host clock ({ms} ms since the epoch) is outside \
                                 the years 0000-9999 that RFC 3339 can write"
                            )]
                        })?;
                        now.insert(stamp).clone()
                    }
                }),
            };
            // A field that was `null` keeps its place; a missing one goes
            // at the end.
            object.insert(name, value);
        }
        changed = true;
    }
    Ok(changed.then_some(object))
}

/// A TOML date-time, as the host's TOML-to-JSON conversion writes it
/// (`{"$__toml_private_datetime": "..."}`), turned back into its string;
/// anything else unchanged.
fn untoml(value: &Value) -> Value {
    match value {
        Value::Object(o) => match (o.len(), o.get(TOML_DATETIME)) {
            (1, Some(Value::String(s))) => Value::String(s.clone()),
            _ => Value::Object(o.iter().map(|(k, v)| (k.clone(), untoml(v))).collect()),
        },
        Value::Array(a) => Value::Array(a.iter().map(untoml).collect()),
        other => other.clone(),
    }
}

/// A JSON number's value as a sign, significant digits (no leading or
/// trailing zeros) and a power of ten: `-1.50e2` is `(true, "15", 1)`. Zero
/// is `(false, "", 0)`. Works on the number's text, so that numbers of any
/// size compare exactly.
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: String,
    scale: i64,
}

impl Decimal {
    fn is_integral(&self) -> bool {
        self.scale >= 0
    }
}

fn decimal(text: &str) -> Decimal {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.split_once(['e', 'E']) {
        Some((m, e)) => {
            let huge = if e.starts_with('-') {
                i64::MIN / 2
            } else {
                i64::MAX / 2
            };
            (m, e.parse::<i64>().unwrap_or(huge))
        }
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{int}{frac}");
    let trimmed = all.trim_end_matches('0');
    let scale = exponent
        .saturating_sub(frac.len() as i64)
        .saturating_add((all.len() - trimmed.len()) as i64);
    let digits = trimmed.trim_start_matches('0');
    if digits.is_empty() {
        return Decimal {
            negative: false,
            digits: String::new(),
            scale: 0,
        };
    }
    Decimal {
        negative,
        digits: digits.to_owned(),
        scale,
    }
}

/// JSON equality, with numbers compared by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => decimal(&x.to_string()) == decimal(&y.to_string()),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Allowed values for a message: strings bare, anything else as shown.
fn listed(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => shown(other),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value for a message: scalars as JSON (long strings cut short),
/// arrays and objects by kind.
fn shown(value: &Value) -> String {
    const MAX_CHARS: usize = 40;
    match value {
        Value::Array(_) | Value::Object(_) => kind(value).into(),
        Value::String(s) if s.chars().count() > MAX_CHARS => {
            let head = Value::String(s.chars().take(MAX_CHARS).collect()).to_string();
            format!("{}…\"", &head[..head.len() - 1])
        }
        other => other.to_string(),
    }
}

fn characters(n: u64) -> String {
    if n == 1 {
        "1 character".into()
    } else {
        format!("{n} characters")
    }
}

/// Whether `s` is an RFC 3339 date-time (`date-time` in section 5.6 of the
/// RFC), e.g. `2025-11-06T18:00:00Z` or `2025-11-06T19:00:00.5+01:00`:
/// a real calendar date, `T` and `Z` in either case, a leap second only
/// where one can be (`23:59:60` UTC on a month's last day).
///
/// `time` takes any character between the date and the time (the RFC lets
/// applications pick another, such as a space); this plugin keeps to the
/// RFC's grammar, which has `T` there.
fn is_rfc3339(s: &str) -> bool {
    matches!(s.as_bytes().get(10), Some(b'T' | b't')) && OffsetDateTime::parse(s, &Rfc3339).is_ok()
}

/// `2025-11-06T18:00:00.123Z`: ISO 8601's extended format with a 4-digit
/// year and milliseconds, which for UTC is also RFC 3339.
const UTC_MS: Iso8601<
    {
        Iso8601Config::DEFAULT
            .set_time_precision(TimePrecision::Second {
                decimal_digits: NonZeroU8::new(3),
            })
            .encode()
    },
> = Iso8601;

/// `ms` (milliseconds since the Unix epoch) as an RFC 3339 UTC timestamp
/// with milliseconds, e.g. `2025-11-06T18:00:00.123Z`, or `None` outside
/// the years 0000-9999 that RFC 3339 can write.
fn utc_ms(ms: i64) -> Option<String> {
    let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    if time.year() < 0 {
        return None;
    }
    time.format(&UTC_MS).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{"fields": {
        "userId": {"required": true, "type": "string"},
        "type": {"required": true, "type": "string", "one_of": ["login", "logout", "purchase"]},
        "timestamp": {"type": "string", "format": "rfc3339", "default": "now"},
        "data": {"type": "object", "nullable": true}
    }}"#;

    /// 2025-11-06T18:00:00.123Z
    fn clock() -> i64 {
        1_762_452_000_123
    }

    fn run(config: &str, value: &str) -> Result<String, Vec<String>> {
        run_at(config, value, &clock)
    }

    /// The emitted value, or the reasons for the reject.
    fn run_at(config: &str, value: &str, now_ms: &dyn Fn() -> i64) -> Result<String, Vec<String>> {
        let config = Config::parse(config).unwrap();
        let event = switchyard_guest::test_event(None, Some(value.as_bytes()));
        match process_one(event, &config, now_ms) {
            Outcome::Emit(mut outputs) if outputs.len() == 1 => {
                Ok(String::from_utf8(outputs.remove(0).value.unwrap()).unwrap())
            }
            Outcome::Reject(reasons) => Err(reasons),
            other => panic!("expected one output or a reject, got {other:?}"),
        }
    }

    /// The refusal as the host sees it, less the plugin's name in front.
    fn refused(config: &str) -> String {
        let message = switchyard_guest::init::<Validate>(config).unwrap_err();
        match message.strip_prefix("validate: ") {
            Some(problems) => problems.to_owned(),
            None => panic!("{config}: refusal without the plugin's name: {message}"),
        }
    }

    #[test]
    fn seed_rules_fill_the_timestamp_and_keep_the_rest() {
        assert_eq!(
            run(SEED, r#"{"userId":"u1","type":"login"}"#).unwrap(),
            r#"{"userId":"u1","type":"login","timestamp":"2025-11-06T18:00:00.123Z"}"#
        );
        assert_eq!(
            run(SEED, r#"{"timestamp":null,"type":"login","userId":"u1"}"#).unwrap(),
            r#"{"timestamp":"2025-11-06T18:00:00.123Z","type":"login","userId":"u1"}"#
        );
        let unchanged = r#"{ "userId": "u1", "type": "logout", "timestamp": "2025-11-06T18:00:00Z", "data": null }"#;
        assert_eq!(run(SEED, unchanged).unwrap(), unchanged);
    }

    #[test]
    fn default_null_writes_null_for_a_missing_field() {
        let config =
            r#"{"fields": {"data": {"type": "object", "nullable": true, "default_null": true}}}"#;
        assert_eq!(run(config, r#"{"a":1}"#).unwrap(), r#"{"a":1,"data":null}"#);
        assert_eq!(
            run(config, r#"{"data":{"x":1}}"#).unwrap(),
            r#"{"data":{"x":1}}"#
        );
        let both = r#"{"fields": {"d": {"nullable": true, "default": 1, "default_null": true}}}"#;
        assert_eq!(
            Config::parse(both).unwrap_err(),
            ["fields.d: give `default` or `default_null`, not both"]
        );
        let not_nullable = r#"{"fields": {"d": {"default_null": true}}}"#;
        assert_eq!(
            Config::parse(not_nullable).unwrap_err(),
            ["fields.d.default: null breaks the field's own rules: must not be null"]
        );
    }

    #[test]
    fn every_problem_is_reported() {
        assert_eq!(
            run(
                SEED,
                r#"{"type":"signup","timestamp":"2025-11-06","data":[1],"userId":null}"#
            )
            .unwrap_err(),
            [
                "type: must be one of login, logout, purchase (got \"signup\")",
                "timestamp: must be an RFC 3339 timestamp (got \"2025-11-06\")",
                "data: must be an object (got an array)",
                "userId: must not be null",
            ]
        );
        assert_eq!(
            run(SEED, "{}").unwrap_err(),
            ["type: required", "userId: required"]
        );
        assert_eq!(
            run(SEED, r#"{"userId":7,"type":"login"}"#).unwrap_err(),
            ["userId: must be a string (got 7)"]
        );
    }

    #[test]
    fn non_objects_and_bad_json_are_rejected() {
        assert_eq!(
            run(SEED, "[1]").unwrap_err(),
            ["value is not a JSON object: found an array"]
        );
        let err = run(SEED, "{nope").unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(err[0].starts_with("value is not valid JSON: "), "{err:?}");
    }

    #[test]
    fn integers_lengths_one_of_and_literal_defaults() {
        let config = r#"{"unknown_fields": "reject", "fields": {
            "id": {"required": true, "type": "integer"},
            "name": {"min_length": 2, "max_length": 3},
            "level": {"one_of": [1, 2, 3]},
            "tags": {"type": "array", "default": []}
        }}"#;
        for id in [
            "1",
            "-0",
            "2.0",
            "1e2",
            "150e-1",
            "123456789012345678901234567890",
        ] {
            let record = format!(r#"{{"id":{id},"tags":[]}}"#);
            assert_eq!(run(config, &record).unwrap(), record, "{id}");
        }
        for id in ["1.5", "1e-1", "\"1\""] {
            assert_eq!(
                run(config, &format!(r#"{{"id":{id}}}"#)).unwrap_err(),
                [format!("id: must be an integer (got {id})")]
            );
        }
        assert_eq!(
            run(config, r#"{"id":1,"name":"ßü","level":2.00}"#).unwrap(),
            r#"{"id":1,"name":"ßü","level":2.00,"tags":[]}"#
        );
        assert_eq!(
            run(config, r#"{"id":1,"name":"a","level":4,"x":1}"#).unwrap_err(),
            [
                "name: must be at least 2 characters long (got 1)",
                "level: must be one of 1, 2, 3 (got 4)",
                "x: unknown field",
            ]
        );
        assert_eq!(
            run(config, r#"{"id":1,"name":"abcd"}"#).unwrap_err(),
            ["name: must be at most 3 characters long (got 4)"]
        );
    }

    #[test]
    fn unknown_fields_can_be_dropped() {
        let config = r#"{"unknown_fields": "drop", "fields": {"a": {}, "b": {}}}"#;
        assert_eq!(
            run(config, r#"{"x":0,"b":1,"y":2,"a":3}"#).unwrap(),
            r#"{"b":1,"a":3}"#
        );
        assert_eq!(run(config, r#"{ "a": 3 }"#).unwrap(), r#"{ "a": 3 }"#);
    }

    #[test]
    fn toml_date_times_are_strings() {
        let config = r#"{"fields": {"since": {"format": "rfc3339",
            "default": {"$__toml_private_datetime": "2025-01-01T00:00:00Z"}}}}"#;
        assert_eq!(
            run(config, "{}").unwrap(),
            r#"{"since":"2025-01-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn bad_configs_are_refused_with_every_problem_named() {
        for (config, expect) in [
            ("{", "config is not valid JSON: EOF while parsing an object at line 1 column 1"),
            ("[]", "config must be a table like fields = { userId = { required = true, type = \"string\" } }, got an array"),
            ("{}", "config needs a \"fields\" table mapping field names to rules, e.g. fields = { userId = { required = true, type = \"string\" } }"),
            (r#"{"fields": {}, "feilds": 1}"#, "unknown config key \"feilds\" (known keys: fields, unknown_fields)"),
            (r#"{"fields": {}, "unknown_fields": "deny"}"#, "unknown_fields: must be \"allow\", \"drop\" or \"reject\" (got \"deny\")"),
            (r#"{"fields": {"a": true}}"#, "fields.a: must be a table of rules like { required = true, type = \"string\" } (got true)"),
            (r#"{"fields": {"a": {"requird": true}}}"#, "fields.a: unknown rule \"requird\" (known rules: required, type, nullable, one_of, format, min_length, max_length, default, default_null)"),
            (r#"{"fields": {"a": {"required": "yes"}}}"#, "fields.a.required: must be true or false (got \"yes\")"),
            (r#"{"fields": {"a": {"type": "str"}}}"#, "fields.a.type: must be \"string\", \"number\", \"integer\", \"boolean\", \"object\" or \"array\" (got \"str\")"),
            (r#"{"fields": {"a": {"one_of": []}}}"#, "fields.a.one_of: must be a non-empty list of allowed values (got an array)"),
            (r#"{"fields": {"a": {"format": "iso"}}}"#, "fields.a.format: must be \"rfc3339\" (got \"iso\")"),
            (r#"{"fields": {"a": {"min_length": -1}}}"#, "fields.a.min_length: must be a whole number of characters, 0 or more (got -1)"),
            (r#"{"fields": {"a": {"type": "number", "format": "rfc3339"}}}"#, "fields.a.format: applies to strings only, but type is \"number\""),
            (r#"{"fields": {"a": {"min_length": 3, "max_length": 2}}}"#, "fields.a: min_length 3 is greater than max_length 2"),
            (r#"{"fields": {"a": {"required": true, "default": 1}}}"#, "fields.a.default: a required field cannot have a default (remove one of them)"),
            (r#"{"fields": {"a": {"type": "string", "one_of": ["x", 3]}}}"#, "fields.a.one_of: 3 breaks the field's own rules: must be a string (got 3)"),
            (r#"{"fields": {"a": {"format": "rfc3339", "default": "yesterday"}}}"#, "fields.a.default: \"yesterday\" breaks the field's own rules: must be an RFC 3339 timestamp (got \"yesterday\")"),
            (r#"{"fields": {"a": {"type": "integer", "default": "now"}}}"#, "fields.a.default: \"now\" (the current time as an RFC 3339 string) breaks the field's own rules: must be an integer (got \"1970-01-01T00:00:00.000Z\")"),
            (r#"{"fields": {"a": {"default": null}}}"#, "fields.a.default: null breaks the field's own rules: must not be null"),
            (
                r#"{"fields": {"a": {"type": "text"}, "b": {"nullable": 1}}, "x": 0}"#,
                "fields.a.type: must be \"string\", \"number\", \"integer\", \"boolean\", \"object\" or \"array\" (got \"text\"); fields.b.nullable: must be true or false (got 1); unknown config key \"x\" (known keys: fields, unknown_fields)",
            ),
        ] {
            assert_eq!(refused(config), expect, "{config}");
        }
    }

    #[test]
    fn long_strings_are_cut_short_in_reasons() {
        let config = r#"{"fields": {"a": {"one_of": ["x"]}}}"#;
        let long = "y".repeat(50);
        assert_eq!(
            run(config, &format!(r#"{{"a":"{long}"}}"#)).unwrap_err(),
            [format!("a: must be one of x (got \"{}…\")", "y".repeat(40))]
        );
    }

    #[test]
    fn rfc3339_date_times_are_accepted() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2025-11-06T18:00:00Z",
            "2025-11-06t18:00:00z",
            "2025-11-06T19:00:00+01:00",
            "2025-11-06T17:30:00-00:30",
            "2025-11-06T18:00:00.5Z",
            "2025-11-06T18:00:00.123456789Z",
            "2025-11-06T18:00:00.1234567891234Z",
            "2024-02-29T23:59:59Z",
            "2000-02-29T00:00:00Z",
            "1969-12-31T23:59:59.999Z",
            "2016-12-31T23:59:60Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
        ] {
            assert!(is_rfc3339(s), "{s}");
        }
    }

    #[test]
    fn everything_else_is_not_rfc3339() {
        for s in [
            "",
            "yesterday",
            "2025-11-06",
            "2025-11-06T18:00:00",
            "2025-11-06 18:00:00Z",
            "2025-11-06_18:00:00Z",
            "2025-11-06T18:00Z",
            "2025-11-06T18:00:00.Z",
            "2025-11-06T18:00:00ZZ",
            "2025-11-06T18:00:00+0100",
            "2025-11-06T18:00:00+01",
            "2025-11-06T18:00:00+24:00",
            "2025-11-06T18:00:00+01:60",
            "2025-13-06T18:00:00Z",
            "2025-00-06T18:00:00Z",
            "2025-02-29T18:00:00Z",
            "1900-02-29T18:00:00Z",
            "2025-04-31T18:00:00Z",
            "2025-11-00T18:00:00Z",
            "2025-11-06T24:00:00Z",
            "2025-11-06T18:60:00Z",
            "2025-11-06T18:00:60Z",
            "2025-11-06T18:00:61Z",
            "2025/11/06T18:00:00Z",
            "+025-11-06T18:00:00Z",
            "2025-11-06T18:00:00 Z",
            "２025-11-06T18:00:00Z",
            "1762452000000",
        ] {
            assert!(!is_rfc3339(s), "{s}");
        }
    }

    #[test]
    fn clock_is_written_as_utc_with_milliseconds() {
        assert_eq!(utc_ms(0).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_ms(-1).unwrap(), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            utc_ms(1_762_452_000_123).unwrap(),
            "2025-11-06T18:00:00.123Z"
        );
        assert_eq!(
            utc_ms(1_709_251_199_000).unwrap(),
            "2024-02-29T23:59:59.000Z"
        );
        assert_eq!(
            utc_ms(-62_167_219_200_000).unwrap(),
            "0000-01-01T00:00:00.000Z"
        );
        assert_eq!(utc_ms(-62_167_219_200_001), None);
        assert_eq!(utc_ms(i64::MAX), None);
        for ms in (-5_000_000_000_000i64..=5_000_000_000_000).step_by(7_777_777_777) {
            let stamp = utc_ms(ms).unwrap();
            let parsed = OffsetDateTime::parse(&stamp, &Rfc3339).unwrap();
            assert_eq!(
                parsed.unix_timestamp_nanos(),
                i128::from(ms) * 1_000_000,
                "{stamp}"
            );
            assert!(is_rfc3339(&stamp), "{stamp}");
        }
    }

    #[test]
    fn a_clock_rfc3339_cannot_write_rejects_the_record() {
        assert_eq!(
            run_at(SEED, r#"{"userId":"u1","type":"login"}"#, &|| i64::MAX).unwrap_err(),
            [
                "timestamp: the host clock (9223372036854775807 ms since the epoch) is outside \
              the years 0000-9999 that RFC 3339 can write"
            ]
        );
    }
}
