//! HTTP sinks: a route's outputs delivered to an HTTP endpoint instead of a
//! topic.
//!
//! ```text
//!  batch results ──► lanes by source key (one key's records in offset order,
//!                    up to `concurrency` keys at once)
//!                      └─ each output: request ─► 2xx: done
//!                                              ─► 5xx/408/429/timeout/connect:
//!                                                 back off, again, within the budget
//!                                              ─► other 4xx, or budget spent:
//!                                                 the record fails (`on_error`)
//!  then, in offset order, the worker hands the records to the acker as usual
//! ```
//!
//! Delivery is at least once: a record's offset is stored only after the
//! endpoint took all its outputs, so a crash or a rebalance delivers them
//! again. Both formats make that harmless: `crm-upsert` writes the same
//! fields again (a replay of an already applied operation changes nothing),
//! and `json-post` sends an `Idempotency-Key` that is the same on every
//! delivery of the same output.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::chain::{
    string_leaves, Destination, Failure, FailureKind, RecordResult, Routed, WITHHELD,
};
use crate::config::{redact_userinfo, ErasureMatch, ErasureOverwrite, HttpFormat, HttpSinkSpec};
use crate::metrics::{self, HttpSinkLabels};
use crate::plugin::bindings::Event;
use crate::subjects::crypto::{KeyId, KEY_REF_PREFIX};
use crate::subjects::keys::KeyStore;

/// The longest part of a response body quoted in an error.
const QUOTED_BODY: usize = 300;
/// The most of a response body read: the sink needs a record's fields or an
/// error's first words, not an endpoint's every byte.
const MAX_RESPONSE_BODY: usize = 1 << 20;
/// How often an upsert starts over when the record changes under it (it
/// appeared or vanished between the read and the write).
const UPSERT_ROUNDS: usize = 3;

/// One route's HTTP sink: its settings and a pooled client.
pub struct HttpSink {
    route: String,
    spec: HttpSinkSpec,
    client: reqwest::Client,
    /// The URL as logs show it (no credentials).
    shown_url: String,
    /// The subject key store, when subject encryption is configured: an
    /// output of a subject erased since it was decrypted is not delivered.
    keys: Option<Arc<KeyStore>>,
}

/// What erasing a subject did to one kind of record at a sink's endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Overwritten {
    pub route: String,
    /// The endpoint, without credentials.
    pub url: String,
    pub resource: String,
    /// The subject's records found and rewritten.
    pub records: usize,
    /// The fields written over each.
    pub fields: Vec<String>,
    /// Why it did not finish, if it did not; erasing again completes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What [`HttpSink::erasure_request`] says for a 404.
const NOT_FOUND: &str = "not found";

/// The result of one attempt at an output.
#[derive(Debug, PartialEq)]
enum Attempt {
    Done,
    /// Worth trying again (the endpoint is down, overloaded or slow);
    /// `retry_after` is the endpoint's own hint.
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Trying again would give the same answer.
    Permanent(String),
}

impl Attempt {
    fn transient(message: String) -> Attempt {
        Attempt::Transient {
            message,
            retry_after: None,
        }
    }
}

/// A CRM operation, version 1 (the `crm-map` plugin's output).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Operation {
    op: String,
    resource: String,
    id: Value,
    set: Map<String, Value>,
    #[serde(default)]
    on_create: Map<String, Value>,
}

impl HttpSink {
    pub fn new(
        route: &str,
        spec: &HttpSinkSpec,
        keys: Option<Arc<KeyStore>>,
    ) -> anyhow::Result<HttpSink> {
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &spec.headers {
            let mut value = reqwest::header::HeaderValue::from_str(value)?;
            value.set_sensitive(true);
            headers.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes())?,
                value,
            );
        }
        let client = reqwest::Client::builder()
            .timeout(spec.timeout)
            .connect_timeout(spec.timeout.min(Duration::from_secs(5)))
            // A redirect would carry the sink's headers (credentials among
            // them) to wherever the endpoint points: an answer of its own.
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpSink {
            route: route.to_owned(),
            shown_url: redact_userinfo(spec.url.as_str()),
            spec: spec.clone(),
            client,
            keys,
        })
    }

    /// Whether erasing a subject has anything to do here.
    pub fn erases(&self) -> bool {
        !self.spec.on_erasure.is_empty()
    }

    /// Overwrite `subject`'s personal data at the endpoint, as
    /// `on_erasure` says: each kind of record found is rewritten with the
    /// erased values (read, written over, replaced). Safe to repeat.
    pub async fn erase(&self, subject: &str) -> Vec<Overwritten> {
        let mut done = Vec::with_capacity(self.spec.on_erasure.len());
        for overwrite in &self.spec.on_erasure {
            let (records, error) = match self.overwrite(overwrite, subject).await {
                Ok(records) => (records, None),
                Err((records, error)) => (records, Some(error)),
            };
            done.push(Overwritten {
                route: self.route.clone(),
                url: self.shown_url.clone(),
                resource: overwrite.resource.clone(),
                records,
                fields: overwrite.set.keys().cloned().collect(),
                error,
            });
        }
        done
    }

    /// The records of `overwrite` found for `subject`, each rewritten; on
    /// an error, how many were rewritten before it.
    async fn overwrite(
        &self,
        overwrite: &ErasureOverwrite,
        subject: &str,
    ) -> Result<usize, (usize, String)> {
        let op = |id: &str| Operation {
            op: "upsert".into(),
            resource: overwrite.resource.clone(),
            id: Value::String(id.to_owned()),
            set: overwrite.set.clone(),
            on_create: Map::new(),
        };
        let ids = match &overwrite.matching {
            ErasureMatch::Id => vec![subject.to_owned()],
            ErasureMatch::Field(field) => self
                .ids_where(&overwrite.resource, field, subject)
                .await
                .map_err(|e| (0, e))?,
        };
        let mut rewritten = 0;
        for id in ids {
            match self.rewrite_existing(&op(&id), subject).await {
                Ok(true) => rewritten += 1,
                Ok(false) => {}
                Err(e) => return Err((rewritten, e)),
            }
        }
        Ok(rewritten)
    }

    /// The ids of the records of `resource` whose `field` holds `subject`.
    async fn ids_where(
        &self,
        resource: &str,
        field: &str,
        subject: &str,
    ) -> Result<Vec<String>, String> {
        let mut url = self.spec.url.clone();
        url.path_segments_mut()
            .map_err(|()| format!("{} cannot be a base URL", self.shown_url))?
            .pop_if_empty()
            .push(resource);
        let to = Sent {
            shown: redact_userinfo(url.as_str()),
            url,
            values: vec![subject.to_owned()],
        };
        let body = self.erasure_request(Method::GET, &to, None).await?;
        let Ok(Value::Array(records)) = serde_json::from_slice::<Value>(&body) else {
            return Err(format!("GET {} did not answer a JSON list", to.shown));
        };
        let holds = |v: &Value| match v {
            Value::String(s) => s == subject,
            Value::Number(n) => n.to_string() == subject,
            _ => false,
        };
        records
            .iter()
            .filter(|r| r.get(field).is_some_and(holds))
            .map(|r| match r.get("Id").or_else(|| r.get("id")) {
                Some(Value::String(id)) => Ok(id.clone()),
                Some(Value::Number(id)) => Ok(id.to_string()),
                _ => Err(format!(
                    "a record of {} has no `Id` or `id` to address it by",
                    to.shown
                )),
            })
            .collect()
    }

    /// Rewrite the record `op` names with its fields written over it, if
    /// it exists (`false` if not). Transient failures are tried again a
    /// few times: an operator waits for the answer.
    async fn rewrite_existing(&self, op: &Operation, subject: &str) -> Result<bool, String> {
        let (_, record) = self.resource_urls(op)?;
        let mut values = vec![subject.to_owned()];
        values.extend(string_leaves(Some(
            Value::Object(op.set.clone()).to_string().as_bytes(),
        )));
        let shown = format!(
            "{}/{}/{{id}}",
            self.shown_url.trim_end_matches('/'),
            op.resource
        );
        let to = Sent {
            url: record,
            shown,
            values,
        };
        let current = match self.erasure_request(Method::GET, &to, None).await {
            Ok(body) => body,
            Err(e) if e == NOT_FOUND => return Ok(false),
            Err(e) => return Err(e),
        };
        let Ok(Value::Object(mut current)) = serde_json::from_slice::<Value>(&current) else {
            return Err(format!("GET {} did not answer a JSON object", to.shown));
        };
        current.extend(op.set.iter().map(|(k, v)| (k.clone(), v.clone())));
        match self
            .erasure_request(Method::POST, &to, Some(&Value::Object(current)))
            .await
        {
            Ok(_) => Ok(true),
            // Gone in the meantime: nothing left to erase.
            Err(e) if e == NOT_FOUND => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One request of an erasure, tried up to three times while the answer
    /// is transient; the body of a 2xx answer, [`NOT_FOUND`] for a 404, or
    /// what went wrong.
    async fn erasure_request(
        &self,
        method: Method,
        to: &Sent,
        body: Option<&Value>,
    ) -> Result<Vec<u8>, String> {
        let mut delay = self.spec.backoff;
        for attempt in 1..=3 {
            let mut request = self.client.request(method.clone(), to.url.clone());
            if let Some(body) = body {
                request = request.json(body);
            }
            let outcome = match self.send(method.clone(), to, request).await {
                Ok((status, body)) if status.is_success() => return Ok(body),
                Ok((StatusCode::NOT_FOUND, _)) => return Err(NOT_FOUND.into()),
                Ok((status, body)) => classify(method.as_str(), to, status, &body),
                Err(attempt) => attempt,
            };
            match outcome {
                Attempt::Transient { message, .. } if attempt < 3 => {
                    tracing::debug!(route = %self.route, "erasure at the HTTP sink: {message}; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.spec.max_backoff);
                }
                Attempt::Transient { message, .. } | Attempt::Permanent(message) => {
                    return Err(message)
                }
                Attempt::Done => return Ok(Vec::new()),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Whether `source` is a record of a subject erased since it was read:
    /// keyed by a key reference whose key is gone.
    fn of_erased_subject(&self, source: &Event) -> bool {
        let Some(keys) = &self.keys else {
            return false;
        };
        source
            .key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| k.strip_prefix(KEY_REF_PREFIX))
            .and_then(KeyId::decode)
            .is_some_and(|id| keys.is_erased(&id))
    }

    /// The URL, without credentials.
    pub fn shown_url(&self) -> &str {
        &self.shown_url
    }

    /// Deliver one output of `source`, retrying transient failures within
    /// the budget. `Err` says why it was given up; `None` means `stop` came
    /// first (the output may or may not have been taken).
    async fn deliver(
        &self,
        source: &Event,
        index: usize,
        output: &Routed,
        stop: &CancellationToken,
        retries: &Counter,
    ) -> Option<Result<(), String>> {
        let started = Instant::now();
        let mut delay = self.spec.backoff;
        let mut attempts = 1u32;
        loop {
            // Decrypted before its subject was erased, delivered after: the
            // endpoint would get back what the erasure overwrote.
            if self.of_erased_subject(source) {
                tracing::info!(route = %self.route, "HTTP sink: an output of a subject erased since it was read is not delivered");
                return Some(Ok(()));
            }
            let attempt = tokio::select! {
                _ = stop.cancelled() => return None,
                a = self.attempt(source, index, output) => a,
            };
            let (message, retry_after) = match attempt {
                Attempt::Done => {
                    if attempts > 1 {
                        tracing::info!(route = %self.route, url = %self.shown_url, attempts, "HTTP sink delivered after retries");
                    }
                    return Some(Ok(()));
                }
                Attempt::Permanent(message) => return Some(Err(message)),
                Attempt::Transient {
                    message,
                    retry_after,
                } => (message, retry_after),
            };
            // Up to a quarter more, so that many keys do not retry in step.
            let jittered = delay + delay.mul_f64(fastrand::f64() / 4.0);
            let wait = retry_wait(retry_after, jittered, self.spec.max_backoff);
            if started.elapsed() + wait > self.spec.retry_budget {
                return Some(Err(format!(
                    "{message}; gave up after {attempts} attempts in {:.1} s (retry budget {} s)",
                    started.elapsed().as_secs_f64(),
                    self.spec.retry_budget.as_secs()
                )));
            }
            if attempts == 1 {
                tracing::warn!(route = %self.route, url = %self.shown_url, retry_in = ?wait, "HTTP sink: {message}; retrying");
            } else {
                tracing::debug!(route = %self.route, url = %self.shown_url, attempts, retry_in = ?wait, "HTTP sink: {message}; retrying");
            }
            retries.inc();
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(wait) => {}
            }
            delay = (delay * 2).min(self.spec.max_backoff);
            attempts += 1;
        }
    }

    async fn attempt(&self, source: &Event, index: usize, output: &Routed) -> Attempt {
        match self.spec.format {
            HttpFormat::JsonPost => self.post_value(source, index, output).await,
            HttpFormat::CrmUpsert => match parse_operation(output.value.as_deref()) {
                Ok(op) => self.upsert(&op).await,
                Err(message) => Attempt::Permanent(message),
            },
        }
    }

    /// `json-post`: the value as the body of one POST.
    async fn post_value(&self, source: &Event, index: usize, output: &Routed) -> Attempt {
        let sent = Sent {
            url: self.spec.url.clone(),
            shown: self.shown_url.clone(),
            values: string_leaves(output.value.as_deref()),
        };
        let Some(value) = output.value.as_deref() else {
            // A tombstone has nothing to post.
            return Attempt::Done;
        };
        // The same on every delivery of this output, so that the endpoint
        // can tell a redelivery from a new request.
        let key = format!(
            "{}/{}/{}/{}/{index}",
            self.route, source.topic, source.partition, source.offset
        );
        let request = self
            .client
            .post(self.spec.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", key)
            .body(value.to_vec());
        match self.send(Method::POST, &sent, request).await {
            Ok((status, _)) if status.is_success() => Attempt::Done,
            Ok((status, body)) => classify("POST", &sent, status, &body),
            Err(attempt) => attempt,
        }
    }

    /// `crm-upsert`: read the record; replace it with `set` written over
    /// it, or create it from `on_create` and `set`. A record that appears
    /// (409 on create) or vanishes (404 on replace) in between starts the
    /// round over.
    async fn upsert(&self, op: &Operation) -> Attempt {
        let (collection, record) = match self.resource_urls(op) {
            Ok(urls) => urls,
            Err(message) => return Attempt::Permanent(message),
        };
        // What messages may show: the record by a placeholder (its id may
        // be a person's), and answers without the values the operation
        // sends (an endpoint may echo what it refused).
        let mut values = string_leaves(Some(op.id.to_string().as_bytes()));
        for fields in [&op.set, &op.on_create] {
            values.extend(string_leaves(Some(
                Value::Object(fields.clone()).to_string().as_bytes(),
            )));
        }
        let shown_collection = redact_userinfo(collection.as_str());
        let record = Sent {
            url: record,
            shown: format!("{shown_collection}/{{id}}"),
            values: values.clone(),
        };
        let collection = Sent {
            url: collection,
            shown: shown_collection,
            values,
        };
        for _ in 0..UPSERT_ROUNDS {
            let (status, body) = match self
                .send(Method::GET, &record, self.client.get(record.url.clone()))
                .await
            {
                Ok(reply) => reply,
                Err(attempt) => return attempt,
            };
            match status {
                StatusCode::OK => {
                    let current = match serde_json::from_slice::<Value>(&body) {
                        Ok(Value::Object(current)) => current,
                        _ => {
                            return Attempt::Permanent(format!(
                                "GET {} answered 200 with a body that is not a JSON object",
                                record.shown
                            ))
                        }
                    };
                    let mut replaced = current.clone();
                    replaced.extend(op.set.iter().map(|(k, v)| (k.clone(), v.clone())));
                    if replaced == current {
                        // Already as the operation says (a redelivery).
                        return Attempt::Done;
                    }
                    match self.post_json(&record, &Value::Object(replaced)).await {
                        Ok((status, _)) if status.is_success() => return Attempt::Done,
                        Ok((StatusCode::NOT_FOUND, _)) => continue,
                        Ok((status, body)) => return classify("POST", &record, status, &body),
                        Err(attempt) => return attempt,
                    }
                }
                StatusCode::NOT_FOUND => {
                    let mut created = op.on_create.clone();
                    created.extend(op.set.iter().map(|(k, v)| (k.clone(), v.clone())));
                    match self.post_json(&collection, &Value::Object(created)).await {
                        Ok((status, _)) if status.is_success() => return Attempt::Done,
                        Ok((StatusCode::CONFLICT, _)) => continue,
                        Ok((status, body)) => return classify("POST", &collection, status, &body),
                        Err(attempt) => return attempt,
                    }
                }
                status => return classify("GET", &record, status, &body),
            }
        }
        Attempt::transient(format!(
            "{} kept appearing and vanishing while being written ({UPSERT_ROUNDS} rounds)",
            record.shown
        ))
    }

    /// `{url}/{resource}` and `{url}/{resource}/{id}`, the id encoded as one
    /// path segment.
    fn resource_urls(&self, op: &Operation) -> Result<(Url, Url), String> {
        if op.op != "upsert" {
            return Err(format!(
                "CRM operation `{}` is not supported (only `upsert`)",
                op.op
            ));
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if op.resource.is_empty() || !op.resource.chars().all(valid) {
            return Err(format!(
                "CRM operation: `resource` must be letters, digits, `-` or `_`, got {:?}",
                op.resource
            ));
        }
        let id = match &op.id {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(format!(
                    "CRM operation: `id` must be a non-empty string or a number, got {other}"
                ))
            }
        };
        let mut collection = self.spec.url.clone();
        collection
            .path_segments_mut()
            .map_err(|()| format!("{} cannot be a base URL", self.shown_url))?
            .pop_if_empty()
            .push(&op.resource);
        let mut record = collection.clone();
        record.path_segments_mut().expect("checked above").push(&id);
        Ok((collection, record))
    }

    async fn post_json(&self, to: &Sent, body: &Value) -> Result<(StatusCode, Vec<u8>), Attempt> {
        let request = self.client.post(to.url.clone()).json(body);
        self.send(Method::POST, to, request).await
    }

    /// Send `request` to `to`; the status and body (at most
    /// [`MAX_RESPONSE_BODY`] of it), or the attempt's outcome when no answer
    /// came (timeouts and connection errors are transient).
    async fn send(
        &self,
        method: Method,
        to: &Sent,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), Attempt> {
        let labels = |status: &str| HttpSinkLabels {
            route: self.route.clone(),
            status: status.to_owned(),
        };
        let requests = &metrics::global().http_sink_requests;
        let shown = &to.shown;
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                requests.get_or_create(&labels("error")).inc();
                let what = if e.is_timeout() {
                    format!("no answer within {} ms", self.spec.timeout.as_millis())
                } else if e.is_connect() {
                    "cannot connect".to_owned()
                } else {
                    "request failed".to_owned()
                };
                // The error's own text names the URL, record id and all.
                return Err(Attempt::transient(format!(
                    "{method} {shown}: {what} ({})",
                    error_chain(&e.without_url())
                )));
            }
        };
        let status = response.status();
        requests.get_or_create(&labels(status.as_str())).inc();
        let retry_after = retry_after(&response);
        match read_limited(response, MAX_RESPONSE_BODY).await {
            Ok(body) => {
                if is_transient(status) {
                    let mut attempt = classify(method.as_str(), to, status, &body);
                    if let Attempt::Transient {
                        retry_after: hint, ..
                    } = &mut attempt
                    {
                        *hint = retry_after;
                    }
                    return Err(attempt);
                }
                Ok((status, body))
            }
            Err(e) => Err(Attempt::transient(format!(
                "{method} {shown}: the answer was cut off ({})",
                error_chain(&e.without_url())
            ))),
        }
    }
}

/// Where a request goes, and what its messages may show of it.
struct Sent {
    url: Url,
    /// The URL as messages show it: no credentials, no record id.
    shown: String,
    /// The values the request sends, which an answer quoted in a message
    /// must not repeat (see [`string_leaves`]).
    values: Vec<String>,
}

/// The body of `response`, cut after `limit` bytes.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == limit {
            break;
        }
    }
    Ok(body)
}

fn parse_operation(value: Option<&[u8]>) -> Result<Operation, String> {
    let bytes = value.ok_or("a CRM operation was expected, got a tombstone (no value)")?;
    serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "not a CRM operation ({{\"op\": \"upsert\", \"resource\", \"id\", \"set\", \
             \"on_create\"}}): {e}"
        )
    })
}

fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// What an answer that is not the hoped-for one means.
fn classify(method: &str, to: &Sent, status: StatusCode, body: &[u8]) -> Attempt {
    let mut quoted = quote(body);
    for value in &to.values {
        if quoted.contains(value.as_str()) {
            quoted = quoted.replace(value.as_str(), WITHHELD);
        }
    }
    let message = format!("{method} {} answered {status}: {quoted}", to.shown);
    if is_transient(status) {
        Attempt::transient(message)
    } else {
        Attempt::Permanent(message)
    }
}

/// A `Retry-After` of whole seconds (the HTTP-date form is not used by the
/// services this talks to, and is ignored).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    value
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(no body)".into();
    }
    match text.char_indices().nth(QUOTED_BODY) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Deliver the HTTP outputs of a batch (in offset order, as the chain
/// returned them) before the worker hands the records on. A record whose
/// outputs were all taken keeps its result (its HTTP outputs count as
/// delivered, like a buffer's); one whose delivery was given up fails
/// with a `sink` failure, for the route's `on_error` to deal with. With
/// `stop_lane_on_failure` (a halting route), a key's later records are not
/// tried once one failed. `None` when `stop` came first: the batch is
/// then not acknowledged at all, and is delivered again after a restart.
pub async fn deliver_batch(
    batch: &[Event],
    mut results: Vec<RecordResult>,
    stop: &CancellationToken,
    retries: &Counter,
    stop_lane_on_failure: bool,
) -> Option<Vec<RecordResult>> {
    // Lanes: the records of one source key, in offset order.
    let mut lanes: Vec<Vec<usize>> = Vec::new();
    let mut lane_of: HashMap<Option<&[u8]>, usize> = HashMap::new();
    let mut concurrency = 1;
    for (i, result) in results.iter().enumerate() {
        let Ok(outputs) = result else { continue };
        let Some(sink) = outputs.iter().find_map(http_sink_of) else {
            continue;
        };
        concurrency = concurrency.max(sink.spec.concurrency);
        let lane = *lane_of.entry(batch[i].key.as_deref()).or_insert_with(|| {
            lanes.push(Vec::new());
            lanes.len() - 1
        });
        lanes[lane].push(i);
    }
    if lanes.is_empty() {
        return Some(results);
    }
    let results_ref = &results;
    let failures: Vec<Option<Vec<(usize, String)>>> = futures::stream::iter(lanes)
        .map(|lane| async move {
            let mut failed = Vec::new();
            for i in lane {
                let Ok(outputs) = &results_ref[i] else {
                    continue;
                };
                for (n, output) in outputs.iter().enumerate() {
                    let Some(sink) = http_sink_of(output) else {
                        continue;
                    };
                    match sink.deliver(&batch[i], n, output, stop, retries).await? {
                        Ok(()) => {}
                        Err(message) => {
                            failed.push((i, message));
                            break;
                        }
                    }
                }
                if stop_lane_on_failure && failed.last().is_some_and(|(f, _)| *f == i) {
                    break;
                }
            }
            Some(failed)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for lane in failures {
        for (i, message) in lane? {
            results[i] = Err(Failure {
                plugin: "switchyard".into(),
                kind: FailureKind::Sink,
                message: format!("HTTP sink: {message}"),
                reasons: Vec::new(),
            });
        }
    }
    Some(results)
}

fn http_sink_of(output: &Routed) -> Option<&Arc<HttpSink>> {
    match &output.to {
        Destination::Http(sink) => Some(sink),
        _ => None,
    }
}

/// How long to wait before the next attempt: the endpoint's `Retry-After`
/// hint, but no sooner than our own (jittered) backoff and no later than
/// the largest backoff. The jitter can take the backoff above that largest
/// wait, so the upper bound is applied last (`Ord::clamp` would panic on
/// bounds the wrong way round).
fn retry_wait(hint: Option<Duration>, jittered: Duration, max_backoff: Duration) -> Duration {
    hint.map_or(jittered, |hint| hint.max(jittered).min(max_backoff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_after_hint_is_kept_within_the_backoff_bounds_whatever_the_jitter() {
        let ms = Duration::from_millis;
        // The jittered backoff above the largest one (backoff_ms =
        // max_backoff_ms): the largest wins, no panic.
        assert_eq!(retry_wait(Some(ms(1000)), ms(1200), ms(1000)), ms(1000));
        assert_eq!(retry_wait(Some(ms(50)), ms(1200), ms(1000)), ms(1000));
        // Within bounds: the hint, raised to the backoff, capped.
        assert_eq!(retry_wait(Some(ms(300)), ms(100), ms(1000)), ms(300));
        assert_eq!(retry_wait(Some(ms(10)), ms(100), ms(1000)), ms(100));
        assert_eq!(retry_wait(Some(ms(60_000)), ms(100), ms(1000)), ms(1000));
        assert_eq!(retry_wait(None, ms(1200), ms(1000)), ms(1200));
    }

    fn spec(url: &str) -> HttpSinkSpec {
        HttpSinkSpec {
            url: Url::parse(url).unwrap(),
            format: HttpFormat::CrmUpsert,
            headers: Vec::new(),
            on_erasure: Vec::new(),
            timeout: Duration::from_secs(1),
            retry_budget: Duration::from_secs(1),
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            concurrency: 4,
        }
    }

    fn op(json: &str) -> Operation {
        parse_operation(Some(json.as_bytes())).unwrap()
    }

    #[test]
    fn resource_urls_encode_the_id_as_one_segment() {
        let sink = HttpSink::new("r", &spec("http://crm:5050/api/"), None).unwrap();
        let (collection, record) = sink
            .resource_urls(&op(
                r#"{"op":"upsert","resource":"users","id":"a/b c","set":{"X":1}}"#,
            ))
            .unwrap();
        assert_eq!(collection.as_str(), "http://crm:5050/api/users");
        assert_eq!(record.as_str(), "http://crm:5050/api/users/a%2Fb%20c");
        let (_, numbered) = sink
            .resource_urls(&op(
                r#"{"op":"upsert","resource":"trips","id":42,"set":{"X":1}}"#,
            ))
            .unwrap();
        assert_eq!(numbered.as_str(), "http://crm:5050/api/trips/42");
    }

    #[test]
    fn bad_operations_are_refused_naming_the_problem() {
        let sink = HttpSink::new("r", &spec("http://crm:5050"), None).unwrap();
        let refuse = |json: &str| sink.resource_urls(&op(json)).unwrap_err();
        assert!(
            refuse(r#"{"op":"delete","resource":"users","id":"u","set":{}}"#)
                .contains("`delete` is not supported")
        );
        assert!(
            refuse(r#"{"op":"upsert","resource":"../admin","id":"u","set":{}}"#)
                .contains("`resource` must be letters")
        );
        assert!(
            refuse(r#"{"op":"upsert","resource":"users","id":"","set":{}}"#)
                .contains("`id` must be a non-empty string")
        );
        let not_op = parse_operation(Some(br#"{"op":"upsert"}"#)).unwrap_err();
        assert!(not_op.contains("not a CRM operation"), "{not_op}");
        assert!(parse_operation(None).unwrap_err().contains("tombstone"));
    }

    #[test]
    fn server_errors_throttling_and_timeouts_are_transient_the_rest_permanent() {
        let to = Sent {
            url: Url::parse("http://crm/users/ada").unwrap(),
            shown: "http://crm/users/{id}".into(),
            values: vec!["ada@example.com".into()],
        };
        for status in [500, 502, 503, 504, 408, 429] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(classify("GET", &to, status, b""), Attempt::Transient { .. }),
                "{status}"
            );
        }
        for status in [301, 307, 400, 401, 403, 404, 409, 422] {
            let status = StatusCode::from_u16(status).unwrap();
            let attempt = classify(
                "POST",
                &to,
                status,
                br#"{"error":"invalid user","problems":["Email: ada@example.com"]}"#,
            );
            let Attempt::Permanent(message) = attempt else {
                panic!("{status} should be permanent");
            };
            assert!(message.contains("invalid user"), "{message}");
            assert!(message.contains(status.as_str()), "{message}");
            assert!(message.contains("POST http://crm/users/{id} "), "{message}");
            assert!(
                message.contains("Email: <withheld: personal data>"),
                "{message}"
            );
        }
    }

    #[test]
    fn quoted_bodies_are_cut_and_credentials_never_shown() {
        let long = "x".repeat(1000);
        assert_eq!(quote(long.as_bytes()).chars().count(), QUOTED_BODY + 1);
        assert_eq!(quote(b"  "), "(no body)");
        assert_eq!(
            redact_userinfo("http://user:secret@crm:5050/x"),
            "http://***@crm:5050/x"
        );
    }
}
