//! Events posted to Switchyard's ingest API (`--ingest`), which runs each
//! through its route's plugin chain (encrypting the personal fields per
//! data subject) and publishes it, so personal data reaches Kafka only
//! encrypted.
//!
//! One request: `POST` of a batch of events as JSON Lines (the envelope, as
//! it is produced to Kafka, one per line) with `Authorization: Bearer`. The
//! API answers 200 once every accepted event is acknowledged by the broker,
//! naming the lines it rejected for good.
//!
//! Batches go one at a time, in order, a failed one retried as it was
//! before the next is sent, so a later event of a user never overtakes an
//! earlier one. Delivery is at least once: a batch retried after a 503 or a
//! lost answer may be published twice in part (the events carry their
//! `eventId`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mobility_contracts::Envelope;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{per_second, Done, Outcome, Progress, Signals, Sink};

/// The largest request body the ingest API takes (it answers 413 above);
/// batches are cut before they grow past it.
pub const MAX_BODY: usize = 1 << 20;
/// How long one request may take. The API answers within its own wait for
/// the broker (503 past it); no answer by then is a lost answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause before the first retry of a batch, doubling up to
/// [`LAST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(5);
/// The most events waiting for a batch; beyond, producing waits.
const QUEUE_MAX: usize = 10_000;
/// How much of an answer that is not the API's JSON is quoted in errors.
const QUOTE_MAX: usize = 300;
pub const CONTENT_TYPE_NDJSON: &str = "application/x-ndjson";

/// How to reach the ingest API and how to batch.
#[derive(Debug)]
pub struct IngestOptions {
    /// The endpoint, `http://HOST:PORT/ingest/ROUTE`.
    pub url: Url,
    /// `Bearer TOKEN`, marked sensitive so that it is never shown.
    pub authorization: HeaderValue,
    /// The most events in one request (at least 1).
    pub batch_max: usize,
    /// How long a batch waits for more events after its first.
    pub linger: Duration,
}

/// The ingest API as a sink: events queue for a task that batches them
/// and posts the batches, one request at a time.
pub struct Ingest {
    lines: mpsc::Sender<Line>,
    /// Set: stop after the request in flight.
    stop: watch::Sender<bool>,
    stats: Arc<Stats>,
    poster: tokio::task::JoinHandle<()>,
    /// Events taken so far.
    taken: u64,
}

/// One event, serialised.
struct Line {
    json: String,
    /// What the logs name a rejected event by: its line holds personal
    /// data in plaintext, which must not reach the logs either.
    event_id: String,
    event_type: &'static str,
}

/// What the poster did so far, read by progress lines and at the end.
#[derive(Default)]
struct Stats {
    accepted: AtomicU64,
    rejected: AtomicU64,
    retries: AtomicU64,
    /// Events of the request being posted (0 between requests).
    in_flight: AtomicU64,
    /// Events posted whose fate is unknown.
    unconfirmed: AtomicU64,
    /// The API refused a request as a whole: the run must stop.
    refused: AtomicBool,
}

impl Ingest {
    pub fn new(options: IngestOptions) -> anyhow::Result<Ingest> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirected POST would turn into a GET or lose its token on
            // the way; the endpoint is to be named as it is.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mobility-producer/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("creating the HTTP client")?;
        let (lines, queue) = mpsc::channel(options.batch_max.clamp(1, QUEUE_MAX));
        let (stop, stopping) = watch::channel(false);
        let stats = Arc::new(Stats::default());
        let poster = tokio::spawn(post_batches(
            Poster {
                client,
                options,
                stats: stats.clone(),
                stopping,
                backoff: Backoff::new(),
            },
            queue,
        ));
        Ok(Ingest {
            lines,
            stop,
            stats,
            poster,
            taken: 0,
        })
    }
}

impl Sink for Ingest {
    /// False once the API refused a request as a whole.
    async fn send(&mut self, event: &Envelope) -> bool {
        let json = serde_json::to_string(event).expect("an envelope always serialises");
        // Fails once the poster has stopped: it only does so on a refusal.
        let Ok(room) = self.lines.reserve().await else {
            return false;
        };
        room.send(Line {
            json,
            event_id: event.event_id.clone(),
            event_type: event.event.type_name(),
        });
        self.taken += 1;
        true
    }

    fn log_progress(&self, run: &Progress) {
        tracing::info!(
            sent = run.sent,
            accepted = self.stats.accepted.load(Ordering::Relaxed),
            rejected = self.stats.rejected.load(Ordering::Relaxed),
            retries = self.stats.retries.load(Ordering::Relaxed),
            rate = per_second(run.rate),
            users = run.users,
            "progress"
        );
    }

    /// At the run's end, posts the events still queued; on a signal, only
    /// waits for the answer to the request in flight. A (further) signal
    /// while posting the rest stops after the request in flight; one more
    /// gives up on it.
    async fn finish(self, _sent: u64, signalled: bool, signals: &mut Signals) -> Outcome {
        let Ingest {
            lines,
            stop,
            stats,
            mut poster,
            taken,
        } = self;
        // No more events: the poster sends what is queued and ends.
        drop(lines);
        if signalled {
            stop.send_replace(true);
        }
        if !poster.is_finished() {
            tracing::info!(
                "{} (Ctrl-C or SIGTERM {})",
                if signalled {
                    "waiting for the answer to the request in flight"
                } else {
                    "posting the events still queued"
                },
                if signalled {
                    "again gives up on it"
                } else {
                    "stops after the request in flight"
                }
            );
        }
        let mut abandoned = false;
        loop {
            tokio::select! {
                _ = &mut poster => break,
                Some(()) = signals.recv() => {
                    if *stop.borrow() {
                        tracing::warn!("giving up on the request in flight");
                        poster.abort();
                        abandoned = true;
                        break;
                    }
                    tracing::info!("stopping after the request in flight (Ctrl-C or SIGTERM again gives up on it)");
                    stop.send_replace(true);
                }
            }
        }
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let mut unconfirmed = load(&stats.unconfirmed);
        if abandoned {
            unconfirmed += load(&stats.in_flight);
        }
        let (accepted, rejected) = (load(&stats.accepted), load(&stats.rejected));
        let unsent = taken.saturating_sub(accepted + rejected + unconfirmed);
        if unconfirmed > 0 {
            tracing::warn!(
                unconfirmed,
                "events posted without an answer: some of them may have been published, some not"
            );
        }
        if unsent > 0 {
            tracing::info!(unsent, "events generated but not published");
        }
        Outcome {
            delivered: accepted,
            failed: rejected,
            unconfirmed,
            unsent,
            retries: load(&stats.retries),
            error: stats.refused.load(Ordering::Relaxed),
        }
    }

    fn log_done(outcome: &Outcome, run: &Done<'_>) {
        tracing::info!(
            sent = run.sent,
            accepted = outcome.delivered,
            rejected = outcome.failed,
            unconfirmed = outcome.unconfirmed,
            unsent = outcome.unsent,
            retries = outcome.retries,
            users = run.users,
            elapsed = format!("{:.1}s", run.elapsed_secs),
            rate = run.rate(),
            by_type = ?run.by_type,
            "done"
        );
    }
}

/// Events for one request.
#[derive(Default)]
struct Batch {
    /// JSON Lines, each line ended by a newline.
    body: String,
    lines: Vec<Line>,
}

impl Batch {
    fn push(&mut self, line: Line) {
        self.body.push_str(&line.json);
        self.body.push('\n');
        self.lines.push(line);
    }

    /// Whether `line` still fits under `max_body` (a first line always
    /// does: if it alone is too large, the API says so).
    fn fits(&self, line: &Line, max_body: usize) -> bool {
        // `<`: room for the line and its newline.
        self.lines.is_empty() || self.body.len() + line.json.len() < max_body
    }
}

/// The next batch from `queue`: waits for its first event, then takes more
/// until `batch_max` events or [`MAX_BODY`] bytes, `linger` after the
/// first, or the end of the queue. `carry` is an event taken that did not
/// fit the previous batch. `None`: the queue ended, or `stopping` was set
/// (what was taken is dropped: it was not sent).
async fn collect(
    queue: &mut mpsc::Receiver<Line>,
    carry: &mut Option<Line>,
    stopping: &mut watch::Receiver<bool>,
    batch_max: usize,
    linger: Duration,
    max_body: usize,
) -> Option<Batch> {
    let mut batch = Batch::default();
    let first = match carry.take() {
        Some(line) => line,
        None => tokio::select! {
            biased;
            _ = stopping.wait_for(|&stop| stop) => return None,
            line = queue.recv() => line?,
        },
    };
    batch.push(first);
    let deadline = Instant::now() + linger;
    while batch.lines.len() < batch_max {
        let line = tokio::select! {
            biased;
            _ = stopping.wait_for(|&stop| stop) => return None,
            line = queue.recv() => match line {
                Some(line) => line,
                None => break,
            },
            () = tokio::time::sleep_until(deadline) => break,
        };
        if !batch.fits(&line, max_body) {
            *carry = Some(line);
            break;
        }
        batch.push(line);
    }
    Some(batch)
}

/// What posts the batches.
struct Poster {
    client: reqwest::Client,
    options: IngestOptions,
    stats: Arc<Stats>,
    stopping: watch::Receiver<bool>,
    backoff: Backoff,
}

/// Posts the batches from `queue`, one request at a time, until the queue
/// ends, a stop is asked for, or the API refuses a request as a whole.
async fn post_batches(mut poster: Poster, mut queue: mpsc::Receiver<Line>) {
    let mut carry = None;
    loop {
        let Some(batch) = collect(
            &mut queue,
            &mut carry,
            &mut poster.stopping,
            poster.options.batch_max,
            poster.options.linger,
            MAX_BODY,
        )
        .await
        else {
            return;
        };
        let events = batch.lines.len() as u64;
        poster.stats.in_flight.store(events, Ordering::Relaxed);
        let posted = poster.post(&batch).await;
        poster.stats.in_flight.store(0, Ordering::Relaxed);
        match posted {
            Posted::Answered(answer) => poster.count(&batch, answer),
            Posted::Refused { error, published } => {
                tracing::error!("the ingest API refused a request of {events} events: {error}");
                if published {
                    poster
                        .stats
                        .unconfirmed
                        .fetch_add(events, Ordering::Relaxed);
                }
                poster.stats.refused.store(true, Ordering::Relaxed);
                return;
            }
            Posted::Stopped => {
                poster
                    .stats
                    .unconfirmed
                    .fetch_add(events, Ordering::Relaxed);
                return;
            }
        }
        if *poster.stopping.borrow() {
            return;
        }
    }
}

/// How a batch's posting ended.
enum Posted {
    /// A 200: how many events were accepted, which lines rejected.
    Answered(Answer),
    /// Refused as a whole, for a reason retrying would not change (the
    /// token, the URL, the request). `published`: the API may have
    /// published the events nonetheless (it answered 200, but not as it
    /// should).
    Refused { error: String, published: bool },
    /// Stopped while retrying.
    Stopped,
}

/// The answer to a request the API took.
#[derive(Debug, PartialEq)]
struct Answer {
    accepted: u64,
    /// (line, counted from 1; the reasons)
    rejected: Vec<(u64, Vec<String>)>,
}

/// Why an attempt did not end with an [`Answer`].
#[derive(Debug, PartialEq)]
enum Failure {
    /// Worth retrying as it is: the API or the broker unavailable, no
    /// answer.
    Transient(String),
    /// See [`Posted::Refused`].
    Refused { error: String, published: bool },
}

impl Poster {
    /// Posts `batch` until it is answered, refused, or a stop is asked for
    /// between attempts. A request in flight is never cut short by a stop:
    /// its answer is what says whether the batch was published.
    async fn post(&mut self, batch: &Batch) -> Posted {
        self.backoff.reset();
        loop {
            let error = match attempt(&self.client, &self.options, batch).await {
                Ok(answer) => return Posted::Answered(answer),
                Err(Failure::Refused { error, published }) => {
                    return Posted::Refused { error, published }
                }
                Err(Failure::Transient(error)) => error,
            };
            if *self.stopping.borrow() {
                tracing::warn!(%error, "the request in flight failed while stopping");
                return Posted::Stopped;
            }
            let pause = self.backoff.next_pause();
            tracing::warn!(
                %error,
                events = batch.lines.len(),
                retry_in = format!("{}ms", pause.as_millis()),
                "posting a batch to the ingest API failed; retrying the same batch"
            );
            tokio::select! {
                biased;
                _ = self.stopping.wait_for(|&stop| stop) => return Posted::Stopped,
                () = tokio::time::sleep(pause) => {}
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an answer, logging each rejected line.
    fn count(&self, batch: &Batch, answer: Answer) {
        let events = batch.lines.len() as u64;
        for (line, reasons) in &answer.rejected {
            match usize::try_from(*line)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| batch.lines.get(i))
            {
                Some(event) => tracing::error!(
                    event_id = %event.event_id,
                    event_type = event.event_type,
                    ?reasons,
                    "the ingest API rejected an event"
                ),
                None => tracing::error!(
                    line,
                    ?reasons,
                    "the ingest API rejected line {line} of a request of {events}"
                ),
            }
        }
        let rejected = answer.rejected.len() as u64;
        if answer.accepted + rejected != events {
            tracing::warn!(
                events,
                accepted = answer.accepted,
                rejected,
                "the ingest API's answer does not account for every event of the request"
            );
        }
        self.stats
            .accepted
            .fetch_add(answer.accepted, Ordering::Relaxed);
        self.stats.rejected.fetch_add(rejected, Ordering::Relaxed);
    }
}

/// One request of `batch`.
async fn attempt(
    client: &reqwest::Client,
    options: &IngestOptions,
    batch: &Batch,
) -> Result<Answer, Failure> {
    let response = client
        .post(options.url.clone())
        .header(AUTHORIZATION, options.authorization.clone())
        .header(CONTENT_TYPE, CONTENT_TYPE_NDJSON)
        .body(batch.body.clone())
        .send()
        .await
        .map_err(|e| Failure::Transient(format!("no answer: {}", chain(&e))))?;
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned);
    let body = response
        .text()
        .await
        .map_err(|e| Failure::Transient(format!("{status}, its body lost: {}", chain(&e))))?;
    judge(status, location.as_deref(), &body)
}

/// What an answer means.
fn judge(status: StatusCode, location: Option<&str>, body: &str) -> Result<Answer, Failure> {
    if status.is_success() {
        return answer(body).ok_or_else(|| Failure::Refused {
            error: format!(
                "{status}, but not with {{\"accepted\": N, \"rejected\": [...]}}: {}",
                quote(body)
            ),
            published: true,
        });
    }
    let error = error_text(status, body);
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        return Err(Failure::Transient(error));
    }
    let hint = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => " (check --ingest-token)",
        StatusCode::NOT_FOUND => {
            " (check the route in --ingest, and that Switchyard's ingest API is configured)"
        }
        StatusCode::PAYLOAD_TOO_LARGE => " (lower --batch-max)",
        _ if status.is_redirection() => {
            return Err(Failure::Refused {
                error: format!(
                    "{error}: the URL redirects{}; pass the endpoint's own URL to --ingest",
                    location.map(|l| format!(" to {l}")).unwrap_or_default()
                ),
                published: false,
            })
        }
        _ => "",
    };
    Err(Failure::Refused {
        error: format!("{error}{hint}"),
        published: false,
    })
}

/// `{"accepted": N, "rejected": [{"line": L, "reasons": ["..."]}]}`.
fn answer(body: &str) -> Option<Answer> {
    let json: Value = serde_json::from_str(body).ok()?;
    let accepted = json.get("accepted")?.as_u64()?;
    let rejected = match json.get("rejected") {
        None | Some(Value::Null) => Vec::new(),
        Some(rejected) => rejected
            .as_array()?
            .iter()
            .map(|r| {
                let line = r.get("line")?.as_u64()?;
                let reasons = match r.get("reasons") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(reasons) => reasons
                        .as_array()?
                        .iter()
                        .map(|reason| match reason {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect(),
                };
                Some((line, reasons))
            })
            .collect::<Option<_>>()?,
    };
    Some(Answer { accepted, rejected })
}

/// The status with the API's `{"error": "..."}`, or with (the start of)
/// whatever else answered.
fn error_text(status: StatusCode, body: &str) -> String {
    let said = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|json| json.get("error")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| quote(body));
    if said.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {said}")
    }
}

/// `text` trimmed and cut to [`QUOTE_MAX`] characters.
fn quote(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(QUOTE_MAX) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// An error with its sources, as `a: b: c`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Pauses between the attempts of a batch: [`FIRST_RETRY`] doubling up to
/// [`LAST_RETRY`], each drawn between half and all of that, so that
/// producers failing together do not retry together.
struct Backoff {
    next: Duration,
    rng: ChaCha8Rng,
}

impl Backoff {
    fn new() -> Backoff {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        Backoff {
            next: FIRST_RETRY,
            rng: ChaCha8Rng::seed_from_u64(nanos),
        }
    }

    fn reset(&mut self) {
        self.next = FIRST_RETRY;
    }

    fn next_pause(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = (self.next * 2).min(LAST_RETRY);
        ceiling.mul_f64(self.rng.random_range(0.5..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize, size: usize) -> Line {
        Line {
            json: format!("{n:0size$}"),
            event_id: n.to_string(),
            event_type: "UserRegistered",
        }
    }

    #[test]
    fn the_backoff_doubles_up_to_its_ceiling_with_jitter() {
        let mut backoff = Backoff::new();
        let pauses: Vec<Duration> = (0..10).map(|_| backoff.next_pause()).collect();
        let ceilings = [200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000, 5000];
        for (pause, ceiling) in pauses.iter().zip(ceilings) {
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                *pause >= ceiling / 2 && *pause <= ceiling,
                "{pauses:?} against {ceiling:?}"
            );
        }
        // Drawn, not fixed.
        assert!(pauses[5..].iter().any(|p| *p != pauses[5]), "{pauses:?}");
        backoff.reset();
        assert!(backoff.next_pause() <= FIRST_RETRY);
    }

    #[tokio::test]
    async fn batches_are_cut_at_the_count_and_the_body_size_keeping_the_order() {
        let (tx, mut queue) = mpsc::channel(100);
        let (_stop, mut stopping) = watch::channel(false);
        // 10 lines of 100 bytes (and a newline): 3 fit in 350 bytes.
        for n in 0..10 {
            tx.send(line(n, 100)).await.unwrap();
        }
        drop(tx);
        let mut carry = None;
        let mut sizes = Vec::new();
        let mut order = Vec::new();
        while let Some(batch) = collect(
            &mut queue,
            &mut carry,
            &mut stopping,
            4,
            Duration::from_secs(60),
            350,
        )
        .await
        {
            assert!(batch.body.len() <= 350);
            assert_eq!(
                batch.body,
                batch
                    .lines
                    .iter()
                    .map(|l| format!("{}\n", l.json))
                    .collect::<String>()
            );
            sizes.push(batch.lines.len());
            order.extend(batch.lines.iter().map(|l| l.event_id.clone()));
        }
        assert_eq!(sizes, [3, 3, 3, 1]);
        let expected: Vec<String> = (0..10).map(|n| n.to_string()).collect();
        assert_eq!(order, expected);

        // The count cuts first when the lines are small.
        let (tx, mut queue) = mpsc::channel(100);
        for n in 0..10 {
            tx.send(line(n, 10)).await.unwrap();
        }
        drop(tx);
        let batch = collect(
            &mut queue,
            &mut None,
            &mut stopping,
            4,
            Duration::from_secs(60),
            MAX_BODY,
        )
        .await
        .unwrap();
        assert_eq!(batch.lines.len(), 4);
    }

    #[tokio::test]
    async fn a_batch_goes_after_the_linger_time_even_if_not_full() {
        let (tx, mut queue) = mpsc::channel(100);
        let (_stop, mut stopping) = watch::channel(false);
        tx.send(line(1, 10)).await.unwrap();
        tx.send(line(2, 10)).await.unwrap();
        let started = Instant::now();
        let batch = collect(
            &mut queue,
            &mut None,
            &mut stopping,
            500,
            Duration::from_millis(150),
            MAX_BODY,
        )
        .await
        .unwrap();
        let waited = started.elapsed();
        assert_eq!(batch.lines.len(), 2);
        assert!(
            waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        drop(tx);
    }

    #[tokio::test]
    async fn a_stop_drops_the_batch_being_collected() {
        let (tx, mut queue) = mpsc::channel(100);
        let (stop, mut stopping) = watch::channel(false);
        tx.send(line(1, 10)).await.unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.send_replace(true);
            // Kept until the collection ended.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let batch = collect(
            &mut queue,
            &mut None,
            &mut stopping,
            500,
            Duration::from_secs(60),
            MAX_BODY,
        )
        .await;
        assert!(batch.is_none());
        drop(tx);
    }

    #[test]
    fn answers_are_judged() {
        let ok = judge(
            StatusCode::OK,
            None,
            r#"{"accepted": 2, "rejected": [{"line": 3, "reasons": ["no userId", "bad type"]}]}"#,
        );
        assert_eq!(
            ok,
            Ok(Answer {
                accepted: 2,
                rejected: vec![(3, vec!["no userId".into(), "bad type".into()])]
            })
        );
        assert_eq!(
            judge(StatusCode::OK, None, r#"{"accepted": 5, "rejected": []}"#),
            Ok(Answer {
                accepted: 5,
                rejected: vec![]
            })
        );
        // A 200 that is not the API's answer: the events may be published,
        // but what became of each is unknown.
        assert!(matches!(
            judge(StatusCode::OK, None, "<html>ok</html>"),
            Err(Failure::Refused {
                published: true,
                ..
            })
        ));
        for status in [503, 500, 502, 504, 408, 429] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(
                    judge(
                        status,
                        None,
                        r#"{"error":"Kafka did not acknowledge in time"}"#
                    ),
                    Err(Failure::Transient(_))
                ),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 405, 413, 415] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(
                    judge(status, None, r#"{"error":"no"}"#),
                    Err(Failure::Refused {
                        published: false,
                        ..
                    })
                ),
                "{status}"
            );
        }
        assert_eq!(
            judge(
                StatusCode::UNAUTHORIZED,
                None,
                r#"{"error":"invalid bearer token"}"#
            ),
            Err(Failure::Refused {
                error: "401 Unauthorized: invalid bearer token (check --ingest-token)".into(),
                published: false
            })
        );
        let Err(Failure::Refused { error, .. }) = judge(
            StatusCode::PERMANENT_REDIRECT,
            Some("http://elsewhere/ingest/x"),
            "",
        ) else {
            panic!("a redirect is followed");
        };
        assert!(
            error.contains("redirects to http://elsewhere/ingest/x"),
            "{error}"
        );
        // Not the API's JSON: quoted, and cut.
        let Err(Failure::Transient(error)) =
            judge(StatusCode::BAD_GATEWAY, None, &"x".repeat(1000))
        else {
            panic!("a 502 is not retried");
        };
        assert_eq!(
            error,
            format!("502 Bad Gateway: {}...", "x".repeat(QUOTE_MAX))
        );
        assert_eq!(
            error_text(StatusCode::SERVICE_UNAVAILABLE, ""),
            "503 Service Unavailable"
        );
    }
}
