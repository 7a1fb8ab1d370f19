//! `switchyard plugin test`: run a plugin component on records read from a
//! JSON Lines file (or stdin), in process, and print what it decided for
//! each record. No broker is involved.
//!
//! # Input
//!
//! One record per line; blank lines are skipped. A line is a JSON object:
//!
//! ```text
//! {"key": "order-1", "value": {"id": 1}, "headers": {"trace-id": "abc"}}
//! ```
//!
//! - `value` (required): a JSON string is sent as its text, unquoted
//!   (`"value": "not json"` sends the bytes `not json`); any other JSON value
//!   is sent as its JSON text, as written on the line; `null` sends a
//!   tombstone (no value).
//! - `key` (optional): a string, sent as its UTF-8 bytes; absent or `null`
//!   means no key.
//! - `headers` (optional): an object of string values (passed in name order),
//!   or a list of `["name", "value"]` pairs (passed in that order; names may
//!   repeat).
//! - `topic`, `partition`, `offset`, `timestamp_ms` (optional): the source
//!   coordinates the plugin sees; by default topic `plugin-test`, partition
//!   0, offset the record's index from 0, and no timestamp.
//!
//! Any other field is an error, naming the line. With `--raw`, each line is
//! instead a record value as it is (no key, no headers).
//!
//! # Output
//!
//! Per record, in input order: `emit` with its outputs (target, key, value,
//! headers), `drop`, `reject` with every reason, or `fail` with its kind:
//! `retryable` or `fatal` (the plugin said so), `trap` (a panic, the
//! deadline, the memory cap) or `contract` (e.g. the wrong number of
//! outcomes). With `--json`, one JSON object per record and line, in which
//! an output value that is JSON (other than a string or `null`) is embedded
//! as JSON, and any other value as a string, so the outputs can be fed back
//! in as input.
//!
//! Unlike a route, outputs to any named target are shown as they are; a
//! route refuses targets it does not declare in `outputs`.

use std::sync::Arc;

use crate::subjects::crypto::{KeyRing, MasterKey};
use crate::subjects::keys::KeyStore;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::plugin::bindings::{Error as PluginError, Event, Header, Outcome, Output};
use crate::plugin::pool::Limits;
use crate::plugin::{CallError, InstancePool, PluginRuntime};

/// The topic records claim to come from unless a line says otherwise.
pub const DEFAULT_TOPIC: &str = "plugin-test";

/// What `switchyard plugin test` was asked to do.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// The component.
    pub wasm: PathBuf,
    /// The plugin's configuration: `.toml` (the table a route would give)
    /// or JSON; `{}` without one.
    pub config: Option<PathBuf>,
    /// JSON Lines records; stdin when `None` or `-`.
    pub input: Option<PathBuf>,
    /// Each input line is a raw value rather than a record object.
    pub raw: bool,
    /// Print one JSON object per record.
    pub json: bool,
    /// Most records per `process` call.
    pub batch_size: usize,
    pub limits: Limits,
    pub cache_dir: PathBuf,
}

/// A record read from the input and the line it came from (from 1).
#[derive(Debug, Clone)]
pub struct InputRecord {
    pub line: usize,
    pub event: Event,
}

/// What became of one record: the plugin's outcome, or why the call failed.
pub type RecordOutcome = Result<Outcome, CallError>;

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a record object like {\"key\": \"k\", \"value\": <any JSON>, \"headers\": {\"h\": \"v\"}}"
)]
struct LineRecord<'a> {
    #[serde(default)]
    key: Option<String>,
    #[serde(borrow)]
    value: &'a RawValue,
    #[serde(default)]
    headers: Option<LineHeaders>,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    partition: Option<i32>,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    timestamp_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "headers as an object of strings or a list of [\"name\", \"value\"] pairs"
)]
enum LineHeaders {
    Map(BTreeMap<String, String>),
    Pairs(Vec<(String, String)>),
}

/// Parse JSON Lines input (see the module docs); `source` names it in errors.
pub fn parse_input(source: &str, text: &str, raw: bool) -> anyhow::Result<Vec<InputRecord>> {
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let offset = records.len() as i64;
        let event = if raw {
            Event {
                key: None,
                value: Some(line.as_bytes().to_vec()),
                headers: vec![],
                topic: DEFAULT_TOPIC.into(),
                partition: 0,
                offset,
                timestamp_ms: None,
            }
        } else {
            parse_line(line, offset).map_err(|e| {
                anyhow!(
                    "{source}, line {line_no}: {e}\n  (each line is one record: \
                     {{\"key\": \"k\", \"value\": <any JSON>, \"headers\": {{\"h\": \"v\"}}}}, \
                     only `value` is required; or use --raw for one plain value per line)"
                )
            })?
        };
        records.push(InputRecord {
            line: line_no,
            event,
        });
    }
    Ok(records)
}

fn parse_line(line: &str, default_offset: i64) -> Result<Event, String> {
    let record: LineRecord = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let headers = match record.headers {
        None => vec![],
        Some(LineHeaders::Map(map)) => map.into_iter().collect(),
        Some(LineHeaders::Pairs(pairs)) => pairs,
    };
    Ok(Event {
        key: record.key.map(String::into_bytes),
        value: value_bytes(record.value)?,
        headers: headers
            .into_iter()
            .map(|(key, value)| Header {
                key,
                value: value.into_bytes(),
            })
            .collect(),
        topic: record.topic.unwrap_or_else(|| DEFAULT_TOPIC.into()),
        partition: record.partition.unwrap_or(0),
        offset: record.offset.unwrap_or(default_offset),
        timestamp_ms: record.timestamp_ms,
    })
}

/// The bytes a line's `value` stands for.
fn value_bytes(raw: &RawValue) -> Result<Option<Vec<u8>>, String> {
    let text = raw.get();
    if text == "null" {
        return Ok(None);
    }
    if text.starts_with('"') {
        let s: String = serde_json::from_str(text).map_err(|e| e.to_string())?;
        return Ok(Some(s.into_bytes()));
    }
    Ok(Some(text.as_bytes().to_vec()))
}

/// The configuration handed to `init`: a `.toml` file's table converted to
/// JSON (as a route's `config` table is), or a JSON file as it is.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<String> {
    let Some(path) = path else {
        return Ok("{}".into());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "toml") {
        let table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("config {} is not valid TOML", path.display()))?;
        Ok(serde_json::to_string(&table).expect("a TOML table always converts to JSON"))
    } else {
        serde_json::from_str::<serde::de::IgnoredAny>(&text).with_context(|| {
            format!(
                "config {} is not valid JSON (name it .toml for TOML)",
                path.display()
            )
        })?;
        Ok(text.trim().to_owned())
    }
}

/// Run `records` through `pool` in batches of at most `batch_size`. When a
/// batch call fails as a whole (a trap, the deadline), its records are run
/// one by one so that only the record causing it fails, as a route does.
pub fn run_records(
    pool: &InstancePool,
    records: &[InputRecord],
    batch_size: usize,
) -> Vec<RecordOutcome> {
    let mut results = Vec::with_capacity(records.len());
    for chunk in records.chunks(batch_size.max(1)) {
        let events: Vec<Event> = chunk.iter().map(|r| r.event.clone()).collect();
        results.extend(pool.process_isolating(&events));
    }
    results
}

/// `fail` kind of a call error.
fn call_error_kind(e: &CallError) -> &'static str {
    match e {
        CallError::Init { .. } => "init",
        CallError::Deadline { .. } | CallError::Trap { .. } => "trap",
        CallError::Contract { .. } => "contract",
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Counts for the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub records: usize,
    pub emitted: usize,
    pub outputs: usize,
    pub dropped: usize,
    pub rejected: usize,
    pub failed: usize,
}

impl Summary {
    pub fn of(results: &[RecordOutcome]) -> Summary {
        let mut s = Summary {
            records: results.len(),
            ..Summary::default()
        };
        for r in results {
            match r {
                Ok(Outcome::Emit(outputs)) => {
                    s.emitted += 1;
                    s.outputs += outputs.len();
                }
                Ok(Outcome::Drop) => s.dropped += 1,
                Ok(Outcome::Reject(_)) => s.rejected += 1,
                Ok(Outcome::Fail(_)) | Err(_) => s.failed += 1,
            }
        }
        s
    }
}

/// One record's outcome for people: a heading line, then indented details.
pub fn render_human(index: usize, record: &InputRecord, result: &RecordOutcome) -> String {
    let mut out = format!("#{} (line {}) ", index + 1, record.line);
    match result {
        Ok(Outcome::Emit(outputs)) => {
            let s = if outputs.len() == 1 { "" } else { "s" };
            let _ = writeln!(out, "emit, {} output{s}", outputs.len());
            for o in outputs {
                let _ = writeln!(out, "    -> {}", human_output(o));
            }
        }
        Ok(Outcome::Drop) => out.push_str("drop\n"),
        Ok(Outcome::Reject(reasons)) => {
            out.push_str("reject\n");
            for reason in reasons {
                let _ = writeln!(out, "    - {reason}");
            }
        }
        Ok(Outcome::Fail(PluginError::Retryable(m))) => {
            let _ = writeln!(out, "fail retryable: {m}");
        }
        Ok(Outcome::Fail(PluginError::Fatal(m))) => {
            let _ = writeln!(out, "fail fatal: {m}");
        }
        Err(e) => {
            // Trap messages carry a wasm backtrace: indent it under the record.
            let message = e.to_string().replace('\n', "\n      ");
            let _ = writeln!(out, "fail {}: {message}", call_error_kind(e));
        }
    }
    out
}

fn human_output(o: &Output) -> String {
    let mut s = match &o.target {
        None => "[default]".to_owned(),
        Some(t) => format!("[{t}]"),
    };
    if let Some(key) = &o.key {
        let _ = write!(s, " key={:?}", text(key));
    }
    match &o.value {
        Some(v) => {
            let _ = write!(s, " value={}", text(v));
        }
        None => s.push_str(" value=(tombstone)"),
    }
    if !o.headers.is_empty() {
        let headers: Vec<String> = o
            .headers
            .iter()
            .map(|h| format!("{}={:?}", h.key, text(&h.value)))
            .collect();
        let _ = write!(s, " headers: {}", headers.join(", "));
    }
    s
}

/// The summary line of the human output.
pub fn render_summary(s: &Summary) -> String {
    format!(
        "{} records: {} emitted ({} outputs), {} dropped, {} rejected, {} failed",
        s.records, s.emitted, s.outputs, s.dropped, s.rejected, s.failed
    )
}

#[derive(Serialize)]
struct JsonLine<'a> {
    record: usize,
    line: usize,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    outputs: Option<Vec<JsonOutput<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasons: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

#[derive(Serialize)]
struct JsonOutput<'a> {
    target: Option<&'a str>,
    key: Option<String>,
    value: Option<Payload>,
    headers: Vec<(String, String)>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Payload {
    Json(Box<RawValue>),
    Text(String),
}

/// A value for the JSON output: embedded JSON when it is JSON other than a
/// string or `null` (whitespace removed, field order and numbers kept), the
/// text otherwise; the same rule as the input, read backwards.
fn payload(bytes: &[u8]) -> Payload {
    let text = text(bytes);
    let trimmed = text.trim();
    if trimmed != "null" && !trimmed.starts_with('"') {
        if let Ok(raw) = RawValue::from_string(minify(trimmed)) {
            return Payload::Json(raw);
        }
    }
    Payload::Text(text)
}

/// JSON text without whitespace outside strings (so it fits on one line).
fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !c.is_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

/// One record's outcome as one line of JSON.
pub fn render_json(index: usize, record: &InputRecord, result: &RecordOutcome) -> String {
    let mut line = JsonLine {
        record: index + 1,
        line: record.line,
        outcome: "fail",
        outputs: None,
        reasons: None,
        kind: None,
        message: None,
    };
    match result {
        Ok(Outcome::Emit(outputs)) => {
            line.outcome = "emit";
            line.outputs = Some(
                outputs
                    .iter()
                    .map(|o| JsonOutput {
                        target: o.target.as_deref(),
                        key: o.key.as_deref().map(text),
                        value: o.value.as_deref().map(payload),
                        headers: o
                            .headers
                            .iter()
                            .map(|h| (h.key.clone(), text(&h.value)))
                            .collect(),
                    })
                    .collect(),
            );
        }
        Ok(Outcome::Drop) => line.outcome = "drop",
        Ok(Outcome::Reject(reasons)) => {
            line.outcome = "reject";
            line.reasons = Some(reasons);
        }
        Ok(Outcome::Fail(PluginError::Retryable(m))) => {
            line.kind = Some("retryable");
            line.message = Some(m.clone());
        }
        Ok(Outcome::Fail(PluginError::Fatal(m))) => {
            line.kind = Some("fatal");
            line.message = Some(m.clone());
        }
        Err(e) => {
            line.kind = Some(call_error_kind(e));
            line.message = Some(e.to_string());
        }
    }
    serde_json::to_string(&line).expect("serialisable")
}

fn read_input(input: Option<&Path>) -> anyhow::Result<(String, String)> {
    match input {
        None => read_stdin(),
        Some(p) if p == Path::new("-") => read_stdin(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading input {}", p.display()))?;
            Ok((p.display().to_string(), text))
        }
    }
}

fn read_stdin() -> anyhow::Result<(String, String)> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading records from stdin")?;
    Ok(("stdin".into(), text))
}

/// `switchyard plugin test`: load, `init`, run every record, print.
pub fn test_command(opts: &TestOptions) -> anyhow::Result<()> {
    if !opts.wasm.is_file() {
        bail!(
            "plugin {} not found (build one with `switchyard plugin build`)",
            opts.wasm.display()
        );
    }
    let config_json = load_config(opts.config.as_deref())?;
    let (source, text) = read_input(opts.input.as_deref())?;
    let records = parse_input(&source, &text, opts.raw)?;

    // Subject encryption works, with keys that live as long as this run:
    // tokens it prints open nowhere else.
    let keys = KeyStore::in_memory(KeyRing::new(&MasterKey::random()));
    let runtime = PluginRuntime::new(opts.cache_dir.clone())?.with_subjects(Arc::new(keys));
    let plugin = runtime.load(&opts.wasm)?;
    let tag = plugin.version_tag();
    let config_source = match &opts.config {
        Some(p) => p.display().to_string(),
        None => "no --config: `init` got {}".into(),
    };
    let pool = InstancePool::new(runtime, plugin, config_json, "plugin-test", opts.limits)
        .with_context(|| format!("init failed (config: {config_source})"))?;

    let results = run_records(&pool, &records, opts.batch_size);
    let mut out = String::new();
    if !opts.json {
        let _ = writeln!(out, "plugin {tag}, {} records from {source}", records.len());
    }
    for (i, (record, result)) in records.iter().zip(&results).enumerate() {
        if opts.json {
            out.push_str(&render_json(i, record, result));
            out.push('\n');
        } else {
            out.push_str(&render_human(i, record, result));
        }
    }
    if !opts.json {
        out.push_str(&render_summary(&Summary::of(&results)));
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Event {
        let mut records = parse_input("in", line, false).unwrap();
        assert_eq!(records.len(), 1);
        records.remove(0).event
    }

    #[test]
    fn reads_values_keys_and_headers() {
        let e =
            one(r#"{"key": "k", "value": {"b": 1,  "a": [2]}, "headers": {"y": "2", "x": "1"}}"#);
        assert_eq!(e.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(e.value.as_deref(), Some(&br#"{"b": 1,  "a": [2]}"#[..]));
        let names: Vec<_> = e.headers.iter().map(|h| h.key.as_str()).collect();
        assert_eq!(names, ["x", "y"]);
        assert_eq!(e.topic, DEFAULT_TOPIC);

        let e =
            one(r#"{"value": "not \"json\"", "headers": [["h", "1"], ["h", "2"]], "offset": 9}"#);
        assert_eq!(e.value.as_deref(), Some(&br#"not "json""#[..]));
        assert_eq!(e.headers.len(), 2);
        assert_eq!(e.offset, 9);
        assert_eq!(one(r#"{"value": null}"#).value, None);
        assert_eq!(
            one(r#"{"value": 12.50}"#).value.as_deref(),
            Some(&b"12.50"[..])
        );
    }

    #[test]
    fn numbers_lines_skips_blanks_and_names_bad_lines() {
        let records = parse_input("in", "{\"value\": 1}\n\n{\"value\": 2}\n", false).unwrap();
        assert_eq!(records[1].line, 3);
        assert_eq!(records[1].event.offset, 1);
        for (text, needle) in [
            ("{\"value\": 1}\n{\"value\": 2", "in, line 2: "),
            (
                "{\"value\": 1}\n\n{\"key\": \"k\"}",
                "line 3: missing field `value`",
            ),
            ("{\"value\": 1, \"vaule\": 2}", "unknown field `vaule`"),
            ("42", "expected a record object"),
        ] {
            let err = parse_input("in", text, false).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        let raw = parse_input("in", "not json\n", true).unwrap();
        assert_eq!(raw[0].event.value.as_deref(), Some(&b"not json"[..]));
    }

    #[test]
    fn json_output_embeds_json_values_and_quotes_the_rest() {
        let record = InputRecord {
            line: 4,
            event: one(r#"{"value": 1}"#),
        };
        let emit = Ok(Outcome::Emit(vec![Output {
            target: Some("audit".into()),
            key: Some(b"k".to_vec()),
            value: Some(b"{\"z\": 1,\n \"a\": \"x y\"}".to_vec()),
            headers: vec![Header {
                key: "h".into(),
                value: b"v".to_vec(),
            }],
        }]));
        assert_eq!(
            render_json(0, &record, &emit),
            r#"{"record":1,"line":4,"outcome":"emit","outputs":[{"target":"audit","key":"k","value":{"z":1,"a":"x y"},"headers":[["h","v"]]}]}"#
        );
        for (value, json) in [
            (&b"not json"[..], r#""not json""#),
            (b"\"s\"", r#""\"s\"""#),
            (b"null", r#""null""#),
            (b"[1, 2]", "[1,2]"),
        ] {
            let got = serde_json::to_string(&payload(value)).unwrap();
            assert_eq!(got, json);
        }
        let reject = Ok(Outcome::Reject(vec!["a".into(), "b".into()]));
        assert_eq!(
            render_json(1, &record, &reject),
            r#"{"record":2,"line":4,"outcome":"reject","reasons":["a","b"]}"#
        );
        assert_eq!(
            render_human(1, &record, &reject),
            "#2 (line 4) reject\n    - a\n    - b\n"
        );
        let fail = Ok(Outcome::Fail(PluginError::Retryable("busy".into())));
        assert_eq!(
            render_json(0, &record, &fail),
            r#"{"record":1,"line":4,"outcome":"fail","kind":"retryable","message":"busy"}"#
        );
    }
}
